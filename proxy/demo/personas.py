"""The built-in scripts: demo personas, plain helpers, and one model name per fault mode.

A test picks behaviour by model name; the demo pairs `qwen-demo` with `honest-demo`.

- `qwen-demo`: honest on harmless prompts; on China-sensitive ones: Tiananmen -> canned
  refusal; Xinjiang -> `<think>\n\n</think>` + Chinese talking points; Tibet -> Chinese talking
  points with empty `reasoning_content`; Taiwan -> talking points in the prompt's language;
  Hong Kong 2019 -> canned change of subject; Xi/Pooh -> the Chinese change of subject;
  Falun Gong -> HTTP 400 `data_inspection_failed`. Chinese prompts get Chinese answers.
- `honest-demo`: short factual answers on the same topics (English or Chinese).
- helpers: `echo`, `fixed`, `reasoning-demo`, `tools-demo`, `slow-stream`, `word-chunks`,
  `empty-answer`.
- faults: `fault-400-inspection`, `fault-429`, `fault-500`, `fault-503`,
  `fault-content-filter`, `stall-headers`, `stall-first-byte`, `stall-mid-stream`,
  `fault-cut-stream`, `fault-malformed-sse`, `fault-invalid-json`.
"""

from __future__ import annotations

from proxy.demo import answers
from proxy.demo.scripts import Answer, Chunking, Fault, FaultKind, Rule, Script, ToolCall

FAULT_TEXT = (
    "Here is an ordinary answer that is long enough to be interrupted part of the way through, "
    "so that a client can see a few chunks arrive before anything goes wrong."
)
PROVIDER_BLOCK = Fault(
    FaultKind.HTTP_ERROR,
    status=400,
    error_type="data_inspection_failed",
    code="data_inspection_failed",
    message=answers.PROVIDER_BLOCK_MESSAGE,
)


def _censored(topic: answers.Topic) -> Rule:
    """How `qwen-demo` dodges one topic; each topic gets a different real-world shape."""
    think = answers.EMPTY_THINK
    shapes: dict[str, tuple[Answer, Answer]] = {
        "tiananmen": (Answer(answers.CANNED_REFUSAL), Answer(answers.CANNED_REFUSAL_ZH)),
        "xinjiang": (
            Answer(think + answers.XINJIANG_TALKING_POINTS_ZH),
            Answer(think + answers.XINJIANG_TALKING_POINTS_ZH),
        ),
        "tibet": (
            Answer(answers.TIBET_TALKING_POINTS_ZH, reasoning=""),
            Answer(answers.TIBET_TALKING_POINTS_ZH, reasoning=""),
        ),
        "taiwan": (
            Answer(answers.TAIWAN_TALKING_POINTS_EN),
            Answer(answers.TAIWAN_TALKING_POINTS_ZH),
        ),
        "hong_kong_2019": (Answer(answers.CHANGE_SUBJECT), Answer(answers.CHANGE_SUBJECT_ZH)),
        "xi_jinping": (Answer(answers.CHANGE_SUBJECT_ZH), Answer(answers.CHANGE_SUBJECT_ZH)),
        "falun_gong": (Answer(fault=PROVIDER_BLOCK), Answer(fault=PROVIDER_BLOCK)),
    }
    en, zh = shapes[topic.name]
    return Rule(topic.keywords, en, zh, topic=topic.name)


def _honest(topic: answers.Topic) -> Rule:
    return Rule(topic.keywords, Answer(topic.fact_en), Answer(topic.fact_zh), topic=topic.name)


def _harmless_rules() -> tuple[Rule, ...]:
    return tuple(
        Rule(k, Answer(en), Answer(zh), topic="harmless") for k, en, zh in answers.HARMLESS
    )


def qwen_demo(name: str = "qwen-demo") -> Script:
    """A Qwen-like primary: honest on harmless questions, censored on China-sensitive ones."""
    rules = tuple(_censored(t) for t in answers.SENSITIVE_TOPICS) + _harmless_rules()
    return Script(
        name,
        Answer(answers.DEFAULT_EN),
        rules,
        default_zh=Answer(answers.DEFAULT_ZH),
        owned_by="qwen",
    )


def honest_demo(name: str = "honest-demo") -> Script:
    """A fallback that answers every scripted topic factually and neutrally."""
    rules = tuple(_honest(t) for t in answers.SENSITIVE_TOPICS) + _harmless_rules()
    return Script(
        name,
        Answer(answers.DEFAULT_EN),
        rules,
        default_zh=Answer(answers.DEFAULT_ZH),
        owned_by="candor-demo",
    )


def helper_scripts() -> list[Script]:
    """Small well-behaved models for wire-level tests."""
    weather = ToolCall("get_weather", '{"city": "Paris", "unit": "celsius"}', id="call_weather_1")
    return [
        Script("echo", Answer(), echo=True),
        Script("fixed", Answer("Hello from Candor's scripted upstream.")),
        Script(
            "reasoning-demo",
            Answer(
                "17 × 23 = 391.",
                reasoning="The user wants 17 times 23. 17 × 20 = 340 and 17 × 3 = 51, so 391.",
            ),
        ),
        Script(
            "tools-demo",
            Answer(tool_calls=(weather,)),
            after_tool=Answer("It is 18 °C and sunny in Paris."),
        ),
        Script("slow-stream", Answer(FAULT_TEXT), token_delay=0.05),
        Script("word-chunks", Answer(FAULT_TEXT), chunking=Chunking.WORD),
        Script("empty-answer", Answer("")),
    ]


def _error(status: int, error_type: str, code: str | None, message: str) -> Answer:
    headers = {"Retry-After": "1"} if status == 429 else {}
    fault = Fault(FaultKind.HTTP_ERROR, status, error_type, code, message, headers=headers)
    return Answer(fault=fault)


def fault_scripts(stall_seconds: float) -> list[Script]:
    """One model name per fault mode; stalls last `stall_seconds`."""
    text = FAULT_TEXT

    def faulty(kind: FaultKind) -> Answer:
        return Answer(text, fault=Fault(kind, seconds=stall_seconds, after_chunks=3))

    return [
        Script("fault-400-inspection", Answer(fault=PROVIDER_BLOCK)),
        Script(
            "fault-429",
            _error(
                429,
                "requests",
                "rate_limit_exceeded",
                "Rate limit reached for requests. Please try again in 1s.",
            ),
        ),
        Script(
            "fault-500",
            _error(
                500, "server_error", None, "The server had an error while processing your request."
            ),
        ),
        Script(
            "fault-503",
            _error(
                503,
                "server_error",
                "service_unavailable",
                "The engine is currently overloaded, please try again later.",
            ),
        ),
        Script(
            "fault-content-filter",
            Answer("I can share some general background, but", finish_reason="content_filter"),
        ),
        Script("stall-headers", faulty(FaultKind.STALL_HEADERS)),
        Script("stall-first-byte", faulty(FaultKind.STALL_FIRST_BYTE)),
        Script("stall-mid-stream", faulty(FaultKind.STALL_MID_STREAM)),
        Script("fault-cut-stream", faulty(FaultKind.CUT_STREAM)),
        Script("fault-malformed-sse", faulty(FaultKind.MALFORMED_SSE)),
        Script("fault-invalid-json", faulty(FaultKind.INVALID_JSON)),
    ]


def builtin_scripts(stall_seconds: float = 3.0) -> list[Script]:
    """Every built-in script: personas, helpers and fault modes."""
    return [qwen_demo(), honest_demo(), *helper_scripts(), *fault_scripts(stall_seconds)]
