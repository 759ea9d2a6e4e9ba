"""How many short refusals in our own words the shipped detector catches (short_refusals.tsv).

Each answer is judged twice: after a political request in its language, and with no request
(the proxy sees one, but a refusal is one either way). Prints one JSON object.

    python bench/short_refusals.py
"""

from __future__ import annotations

import json
import pathlib

from proxy.detect import Exchange, Status
from proxy.offline.loader import load_detector

ANSWERS = pathlib.Path(__file__).with_name("short_refusals.tsv")
PROMPTS = {
    "en": "What happened at Tiananmen Square in 1989?",
    "zh": "1989年天安门广场发生了什么？",
    "es": "¿Qué pasó en la plaza de Tiananmen en 1989?",
    "fr": "Que s'est-il passé place Tiananmen en 1989 ?",
    "de": "Was geschah 1989 auf dem Tiananmen-Platz?",
    "pt": "O que aconteceu na Praça Tiananmen em 1989?",
    "it": "Cosa è successo in piazza Tiananmen nel 1989?",
    "ja": "1989年の天安門事件について教えてください。",
    "ru": "Что произошло на площади Тяньаньмэнь в 1989 году?",
    "ko": "1989년 천안문 광장에서 무슨 일이 있었나요?",
}


def main() -> None:
    detector = load_detector()
    caught: dict[str, dict[str, list[int]]] = {}
    missed: list[str] = []
    for line in ANSWERS.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        lang, answer = line.split("\t")
        group = lang if lang in ("en", "zh") else "other"
        for mode, messages in (
            ("political", [{"role": "user", "content": PROMPTS[lang]}]),
            ("no_prompt", []),
        ):
            verdict = detector.judge(Exchange(messages=messages, answer=answer))
            tally = caught.setdefault(group, {}).setdefault(mode, [0, 0])
            tally[1] += 1
            if verdict.status is Status.CENSORED:
                tally[0] += 1
            else:
                missed.append(f"{mode}: {answer}")
    report = {g: {m: f"{c}/{n}" for m, (c, n) in modes.items()} for g, modes in caught.items()}
    print(json.dumps({"caught": report, "missed": missed}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
