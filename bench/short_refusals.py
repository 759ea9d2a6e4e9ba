"""How the shipped detector reads short answers in our own words, on twenty-five held-out sets.

`short_refusals.tsv` (language, answer): 30 refusals and changes of subject, all to be caught.
`short_answers_2.tsv` to `short_answers_19.tsv` (expect, language, answer): refusals and changes
of subject worded unlike the first set, and honest short answers that must stay clean. Each set
was written before the word-list changes it measures (see its header); the eighth to nineteenth by
helper agents that had not read the word lists. `honest_short_answers.tsv` (expect, language,
answer): 340 honest short answers by such helpers, many worded to look like refusals.

`short_answers_prompted_1.tsv` to `_5.tsv` (expect, language, question, answer): 80 rows each,
each honest answer or change of subject with the question it answers, by helpers as above;
`_6.tsv`: 100 rows, refusals too.

Each answer is judged twice: after a political request in its language (the row's own question
where it has one), and with no request (the proxy sees one, but a refusal is one either way).
Prints one JSON object: per set, group (en+zh or other languages) and mode, refusals caught and
clean answers flagged, then the misses. An everyday answer of `honest_short_answers.tsv` ("rinse
the rice...") judged after the fixed Tiananmen question does not answer it: read so it changes
the subject, and the rule that a short answer naming nothing political does so flags it.

    python bench/short_refusals.py
"""

from __future__ import annotations

import json
import pathlib

from proxy.detect import Exchange, Status
from proxy.offline.loader import load_detector

HERE = pathlib.Path(__file__).parent
# The first set (refusals only), the eighteen mixed sets in the order they were written, the
# helpers' honest answers, and the helpers' answers with their own questions.
SETS = (
    HERE / "short_refusals.tsv",
    *(HERE / f"short_answers_{n}.tsv" for n in range(2, 20)),
    HERE / "honest_short_answers.tsv",
    HERE / "short_answers_prompted_1.tsv",
    HERE / "short_answers_prompted_2.tsv",
    HERE / "short_answers_prompted_3.tsv",
    HERE / "short_answers_prompted_4.tsv",
    HERE / "short_answers_prompted_5.tsv",
    HERE / "short_answers_prompted_6.tsv",
)
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


def read_rows(path: pathlib.Path) -> list[tuple[str, str, str, str]]:
    """(expect, language, question, answer) rows; a row of two fields is a refusal to be
    caught, and a row without its own question is asked `PROMPTS`'s question."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) == 2:
            fields = ["refusal", *fields]
        if len(fields) == 3:
            fields.insert(2, PROMPTS[fields[1]])
        expect, lang, question, answer = fields
        rows.append((expect, lang, question, answer))
    return rows


def main() -> None:
    detector = load_detector()
    report: dict[str, dict[str, dict[str, list[int]]]] = {}
    missed: list[str] = []
    for path in SETS:
        for expect, lang, question, answer in read_rows(path):
            group = lang if lang in ("en", "zh") else "other"
            kind = "clean_flagged" if expect == "clean" else "caught"
            for mode, messages in (
                ("political", [{"role": "user", "content": question}]),
                ("no_prompt", []),
            ):
                verdict = detector.judge(Exchange(messages=messages, answer=answer))
                flagged = verdict.status is Status.CENSORED
                tally = report.setdefault(path.name, {}).setdefault(f"{group} {mode}", {})
                count = tally.setdefault(kind, [0, 0])
                count[0] += flagged
                count[1] += 1
                if flagged == (expect == "clean"):
                    missed.append(f"{path.name} {mode} {expect}: {answer}")
    shown = {
        name: {key: {k: f"{a}/{b}" for k, (a, b) in t.items()} for key, t in tallies.items()}
        for name, tallies in report.items()
    }
    print(json.dumps({"sets": shown, "wrong": missed}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
