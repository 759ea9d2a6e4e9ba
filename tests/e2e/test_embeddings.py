"""POST /v1/embeddings: an app whose one OpenAI client points at Candor keeps its embeddings.
They go to the model's upstream as sent, unjudged, and come back as answered."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import orjson
import pytest

from proxy.settings import ModelRoute
from tests.raw_upstream import RawReply, RawUpstream
from tests.servers import CandorServer, running_candor

pytestmark = pytest.mark.e2e

UPSTREAM_KEY = "sk-upstream-embeddings-0123456789"
VECTORS = {
    "object": "list",
    "data": [
        {"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 0.125]},
        {"object": "embedding", "index": 1, "embedding": [0.5, 0.0, -0.25]},
    ],
    "model": "text-embedding-v3",
    "usage": {"prompt_tokens": 7, "total_tokens": 7},
}
REFUSED = {"error": {"message": "input too long", "type": "invalid_request_error", "code": None}}


@pytest.fixture(scope="module")
def upstream() -> Iterator[RawUpstream]:
    json = {"content-type": "application/json"}
    raw = RawUpstream(
        {
            "text-embedding-v3": RawReply([], whole=orjson.dumps(VECTORS)),
            "refuses": RawReply([orjson.dumps(REFUSED)], status=400, headers=json),
        }
    ).start()
    yield raw
    raw.stop()


@pytest.fixture(scope="module")
def candor(upstream: RawUpstream) -> Iterator[CandorServer]:
    routes = {
        "embed": ModelRoute(
            base_url=upstream.base_url,
            upstream_model="text-embedding-v3",
            api_key_env="CANDOR_TEST_EMBED_KEY",
        ),
        "refuses": ModelRoute(base_url=upstream.base_url),
    }
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CANDOR_TEST_EMBED_KEY", UPSTREAM_KEY)
        with running_candor(models=routes) as server:
            yield server


def test_the_sdk_gets_the_upstreams_embeddings(candor: CandorServer, upstream: RawUpstream) -> None:
    with openai.OpenAI(base_url=candor.base_url, api_key="client-key", max_retries=0) as sdk:
        got = sdk.embeddings.create(
            model="embed", input=["Paris", "Lyon"], encoding_format="float", dimensions=3
        )
    assert [e.embedding for e in got.data] == [e["embedding"] for e in VECTORS["data"]]
    assert got.usage.total_tokens == 7
    headers, sent = upstream.requests[-1]
    # The client's fields as sent, the route's model name and key.
    assert sent == {
        "model": "text-embedding-v3",
        "input": ["Paris", "Lyon"],
        "encoding_format": "float",
        "dimensions": 3,
    }
    assert headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_embedding_tokens_are_counted(candor: CandorServer) -> None:
    def prompt_tokens() -> float:
        text = httpx.get(f"{candor.url}/metrics").text
        line = [
            ln
            for ln in text.splitlines()
            if ln.startswith("candor_upstream_tokens_total")
            and 'model="embed"' in ln
            and "prompt" in ln
        ]
        return float(line[0].rsplit(" ", 1)[1]) if line else 0.0

    before = prompt_tokens()
    post(candor, {"model": "embed", "input": "Paris"})
    assert prompt_tokens() == before + 7


def post(candor: CandorServer, body: object) -> httpx.Response:
    return httpx.post(f"{candor.base_url}/embeddings", json=body, timeout=10)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "nope", "input": "x"}, 404, "model"),
        ({"model": "embed"}, 400, "input"),
        ({"model": "embed", "input": ""}, 400, "input"),
        ({"input": "x"}, 400, "model"),
        ([1, 2], 400, None),
    ],
)
def test_bad_requests_get_an_openai_error(
    candor: CandorServer, body: object, status: int, param: str | None
) -> None:
    response = post(candor, body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param


def test_an_upstream_refusal_passes_in_the_envelope(candor: CandorServer) -> None:
    response = post(candor, {"model": "refuses", "input": "x" * 100})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "input too long"
