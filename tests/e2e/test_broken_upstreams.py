"""An upstream that breaks the protocol in ways no fault model of the scripted upstream does
(an event cut short by a clean end of the body, JSON of the wrong shape) gets the documented
answer: `bad_upstream_response`, as an SSE error event once streaming, as a 502 (or the outage
chain's answer) while held; counted as an error, and no upstream stream left open."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from proxy.settings import ModelRoute, Timeouts
from tests.raw_upstream import RawReply, RawUpstream, answer_frames, chunk, whole_answer
from tests.servers import TEST_ADMIN_KEY, CandorServer, running_candor

pytestmark = pytest.mark.e2e

REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"
CLEAN = "Paris is the capital of France. It lies on the Seine river in the north of the country."
REFUSAL = (
    "I am sorry, I cannot answer that question. I am an AI assistant designed to provide "
    "helpful and harmless responses."
)
PLAIN = [{"role": "user", "content": "What is the capital of France?"}]
POLITICAL = [{"role": "user", "content": "What happened at Tiananmen Square in June 1989?"}]
CUT_EVENT = b'data: {"id":"chatcmpl-raw","choices":[{"ind'
MIB = b"a" * (1024 * 1024)
JSON = {"content-type": "application/json"}


def _with(frames: list[bytes | float], at: int, extra: bytes) -> list[bytes | float]:
    return [*frames[:at], extra, *frames[at:]]


GATEWAY_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    b"</h1></center><hr><center>nginx/1.25.3 (gw-internal-7.corp.example)</center></body></html>"
)
VLLM_ERROR = {
    "object": "error",
    "message": "This model's maximum context length is 4096 tokens.",
    "type": "BadRequestError",
    "param": None,
    "code": 400,
}
REPLIES = {
    "clean": RawReply(answer_frames(CLEAN), whole=whole_answer(CLEAN)),
    "refusal": RawReply(answer_frames(REFUSAL), whole=whole_answer(REFUSAL)),
    "cut-event": RawReply([*answer_frames(CLEAN)[:5], CUT_EVENT]),
    # A 200 stream that ends before any event: no answer, no error, no `[DONE]`. It is
    # `bad_upstream_response` too (never the generic `bad_gateway`, which nothing sends).
    "empty": RawReply([]),
    "refusal-cut": RawReply([*answer_frames(REFUSAL)[:-2], CUT_EVENT]),
    "choices-int": RawReply(
        _with(answer_frames(CLEAN), 3, chunk(choices=5)), whole=whole_answer(CLEAN, choices=5)
    ),
    "delta-str": RawReply(
        _with(answer_frames(CLEAN), 3, chunk(choices=[{"index": 0, "delta": "oops"}])),
        whole=whole_answer(CLEAN, choices=[{"index": 0, "message": "oops"}]),
    ),
    # One malformed chunk early, then a chunk every 50 ms for 10 s: read to the end only if
    # Candor leaves the stream open.
    "bad-then-endless": RawReply(
        [chunk("Paris "), chunk(choices=5), *[0.05, chunk("word ")] * 200]
    ),
    # A whole answer past the 16 MiB cap, then silence: read to the end only if Candor buffers
    # without a limit (then it times out instead).
    "huge-body": RawReply([b'{"id":"', *[MIB] * 17, 10.0], headers=JSON),
    # Errors not in OpenAI's envelope: a gateway's page, vLLM's flat error, a FastAPI detail.
    "html-502": RawReply([GATEWAY_PAGE], status=502, headers={"content-type": "text/html"}),
    "vllm-400": RawReply([orjson.dumps(VLLM_ERROR)], status=400, headers=JSON),
    "detail-404": RawReply([b'{"detail":"Not Found"}'], status=404, headers=JSON),
    "huge-length": RawReply(
        [b'{"id":"', 10.0], headers={**JSON, "content-length": str(64 * 1024 * 1024)}
    ),
}
POLICIES = {
    "f": "action: flag\n",
    "r": "action: reroute\nfallbacks: [clean]\n",
    "o": "action: reroute\nfallbacks: [spare]\noutage_fallbacks: [clean]\n",
    "rx": "action: reroute\nfallbacks: [fallback-bad]\n",
}


@pytest.fixture(scope="module")
def raw() -> Iterator[RawUpstream]:
    server = RawUpstream(REPLIES).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def candor(raw: RawUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CandorServer]:
    folder = tmp_path_factory.mktemp("policies")
    (folder / "detector").symlink_to(REPO_POLICIES / "detector")
    (folder / "default.yaml").write_text("action: flag\n")
    for name, text in POLICIES.items():
        (folder / f"{name}.yaml").write_text(text)
    routes = {
        f"{policy}-{scenario}": ModelRoute(
            base_url=raw.base_url, upstream_model=scenario, policy=policy
        )
        for policy in POLICIES
        for scenario in REPLIES
    }
    routes["clean"] = ModelRoute(base_url=raw.base_url, upstream_model="clean")
    routes["spare"] = ModelRoute(base_url=raw.base_url, upstream_model="clean")
    routes["fallback-bad"] = ModelRoute(base_url=raw.base_url, upstream_model="bad-then-endless")
    timeouts = Timeouts(connect=1, first_byte=2, idle=2, total=30)
    with running_candor(models=routes, policies_dir=folder, timeouts=timeouts) as server:
        yield server


def ask(server: CandorServer, model: str, stream: bool, messages: object = PLAIN) -> httpx.Response:
    with httpx.Client(timeout=20) as http:
        return http.post(
            f"{server.base_url}/chat/completions",
            json={"model": model, "messages": messages, "stream": stream},
        )


def events(response: httpx.Response) -> list[object]:
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    return [line if line == "[DONE]" else orjson.loads(line) for line in lines]


def counted(server: CandorServer, model: str, outcome: str, route: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    name = f'candor_requests_total{{model="{model}",outcome="{outcome}",route="{route}"}} '
    found = [line for line in text.splitlines() if line.startswith(name)]
    return float(found[0].split()[-1]) if found else 0.0


@pytest.mark.parametrize("scenario", ["cut-event", "choices-int", "delta-str", "empty"])
def test_a_broken_stream_ends_with_an_error_event(candor: CandorServer, scenario: str) -> None:
    response = ask(candor, f"f-{scenario}", True)
    assert response.status_code == 200
    sent = events(response)
    assert "[DONE]" not in sent
    last = sent[-1]
    assert isinstance(last, dict) and last["error"]["code"] == "bad_upstream_response"
    assert counted(candor, f"f-{scenario}", "error", "chat_stream") == 1


def audit_actions(server: CandorServer, model: str) -> list[str]:
    with httpx.Client(timeout=5) as http:
        audit = http.get(
            f"{server.url}/admin/events",
            headers={"authorization": f"Bearer {TEST_ADMIN_KEY}"},
            params={"model": model},
        ).json()
    return [event["action"] for event in audit["data"]]


def test_a_censored_stream_that_breaks_is_flagged_and_audited(candor: CandorServer) -> None:
    response = ask(candor, "f-refusal-cut", True, POLITICAL)
    last = events(response)[-1]
    assert isinstance(last, dict) and last["error"]["code"] == "bad_upstream_response"
    assert counted(candor, "f-refusal-cut", "error", "chat_stream") == 1
    assert audit_actions(candor, "f-refusal-cut") == ["flag"]


@pytest.mark.parametrize("scenario", ["cut-event", "choices-int", "delta-str", "empty"])
def test_a_held_broken_stream_is_a_502(candor: CandorServer, scenario: str) -> None:
    response = ask(candor, f"r-{scenario}", True)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "bad_upstream_response"
    assert counted(candor, f"r-{scenario}", "error", "chat_stream") == 1


@pytest.mark.parametrize("scenario", ["cut-event", "choices-int", "delta-str"])
def test_a_held_broken_stream_goes_down_the_outage_chain(
    candor: CandorServer, scenario: str
) -> None:
    response = ask(candor, f"o-{scenario}", True)
    assert response.status_code == 200
    sent = events(response)
    assert sent[-1] == "[DONE]"
    note = sent[-2]
    assert isinstance(note, dict)
    assert note["candor"]["model"] == "clean" and note["candor"]["reason"] == "outage"


@pytest.mark.parametrize("scenario", ["choices-int", "delta-str"])
def test_a_whole_answer_of_the_wrong_shape_is_a_502(candor: CandorServer, scenario: str) -> None:
    response = ask(candor, f"f-{scenario}", False)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "bad_upstream_response"
    assert counted(candor, f"f-{scenario}", "error", "chat") == 1
    rescued = ask(candor, f"o-{scenario}", False)
    assert rescued.status_code == 200 and rescued.json()["candor"]["model"] == "clean"


@pytest.mark.parametrize("scenario", ["huge-body", "huge-length"])
def test_a_whole_answer_over_the_cap_is_a_502_at_once(
    candor: CandorServer, raw: RawUpstream, scenario: str
) -> None:
    started = time.monotonic()
    response = ask(candor, f"f-{scenario}", False)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "bad_upstream_response"
    assert "over 16777216 bytes" in response.json()["error"]["message"]
    assert time.monotonic() - started < 1.5  # not after the 2 s read timeout
    deadline = time.monotonic() + 2
    while raw.streaming and time.monotonic() < deadline:
        time.sleep(0.05)
    assert raw.streaming == 0, "the upstream response was left open"
    rescued = ask(candor, f"o-{scenario}", False)
    assert rescued.status_code == 200 and rescued.json()["candor"]["model"] == "clean"


def test_a_held_broken_stream_is_closed_at_once(candor: CandorServer, raw: RawUpstream) -> None:
    response = ask(candor, "r-bad-then-endless", True)
    assert response.status_code == 502
    deadline = time.monotonic() + 2
    while raw.streaming and time.monotonic() < deadline:
        time.sleep(0.05)
    assert raw.streaming == 0, "the upstream stream was left open"


def test_a_broken_fallback_leaves_the_answer_flagged(
    candor: CandorServer, raw: RawUpstream
) -> None:
    response = ask(candor, "rx-refusal", True, POLITICAL)
    assert response.status_code == 200
    sent = events(response)
    assert sent[-1] == "[DONE]"
    note = sent[-2]
    assert isinstance(note, dict)
    assert note["candor"]["action"] == "flag"
    assert note["candor"]["reason"] == "fallbacks_exhausted"
    deadline = time.monotonic() + 2
    while raw.streaming and time.monotonic() < deadline:
        time.sleep(0.05)
    assert raw.streaming == 0, "the fallback's stream was left open"
    assert audit_actions(candor, "rx-refusal") == ["flag"]


@pytest.mark.parametrize("stream", [False, True])
def test_an_error_outside_openais_envelope_passes_its_words_but_not_a_page(
    candor: CandorServer, stream: bool
) -> None:
    """A gateway's HTML page (naming internal hosts and software) went to the client as the
    error message, and vLLM's flat error passed as raw JSON text in the message."""
    page = ask(candor, "f-html-502", stream)
    assert page.status_code == 502
    assert (
        page.json()["error"]["message"]
        == "upstream returned HTTP 502 (its body is in Candor's log)"
    )
    assert "nginx" not in page.text and "corp.example" not in page.text
    vllm = ask(candor, "f-vllm-400", stream)
    assert vllm.status_code == 400
    error = vllm.json()["error"]
    assert (error["message"], error["type"], error["code"]) == (
        VLLM_ERROR["message"],
        "BadRequestError",
        "400",
    )
    detail = ask(candor, "f-detail-404", stream)
    assert (detail.status_code, detail.json()["error"]["message"]) == (404, "Not Found")
