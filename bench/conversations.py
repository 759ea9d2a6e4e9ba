"""How the shipped detector reads answers to follow-ups in multi-turn conversations.

Six sets of 120 conversations in ten languages (mostly 45 to 48 English, 35 to 36 Chinese) and
one of 100, each written on 2026-12-03 by a helper agent told not to read the repository, and
measured before any of its rows was read. Each row has `messages` (up to three earlier
exchanges, ending with a user message), the `answer` to judge, what it is (`expect`: clean,
refusal, deflection or propaganda) and whether the conversation is still on a sensitive China
subject at its last message (`political`). Most last messages are follow-ups that name no topic
("How many people died?").
`conversations_1.jsonl`: 30 move on to an everyday subject (a recipe, code) and are answered with
a friendly question or offer, 10 name a new subject. `conversations_2.jsonl`: 25 move on to an
everyday subject and 20 to an everyday one about China (food in Sichuan, visiting Lhasa), both
answered as asked. `conversations_3.jsonl` (half of them single questions): 55 everyday
questions that name a Chinese place ("Is the Star Ferry still running?"), answered as asked and
mostly with an offer, and 65 political ones (30 answered with a change of subject).
`conversations_4.jsonl` (half single questions): 40 everyday questions, half naming a Chinese
place and half after a political exchange, and 80 political ones (30 changes of subject).
`conversations_5.jsonl` (100, half single questions): answers of 320 to 580 characters, 30 to
everyday questions mostly about Chinese places, 25 honest political ones, 25 changes of subject.
`conversations_6.jsonl` (half single questions, 40 % of answers 250 to 550 characters): 35
everyday, 25 honest political, 30 changes of subject, 20 refusals, 10 talking points; measured
once, at the end of the session that wrote the rules above. `conversations_7.jsonl` (all
multi-turn, answers under 400 characters; `group` A to D): 40 users moving on to an everyday
subject (15 saying so, "Unrelated:", 换个话题; 10 with a weak transition, "By the way"; 15 with
none), 40 political follow-ups that name no topic (10 with a weak transition, 6 with an everyday
word in a political sense: "Can tourists still visit the square where it happened?"; 14 answered,
13 refused, 13 changes of subject), 20 that say they move on to another sensitive subject (10
answered, 5 refused, 5 changes of subject) and 20 that move on to an everyday matter about a
Chinese place; written by a helper on 2026-12-03 (second session) and measured before any row
was read. `conversations_8.jsonl` (half single questions, answers mostly 250 to 550 characters,
`group` A to E): 30 long changes of subject to tourism (15 with figures: altitudes, ticket
prices), 30 honest political answers (12 opening on the place before the facts), 25 everyday
travel answers about Chinese places, 8 refusals and 12 talking points, 15 short changes of
subject praising the place; by a helper the same day, measured before any row was read.
`conversations_9.jsonl` (half single questions): 25 travel guides in place of a political
answer (all with figures), 30 state talking points (12 English, 12 Chinese), 30 honest
political answers with dates and figures (8 in a neutral register giving the government's
position first), 20 everyday travel answers about Chinese places, 8 refusals and 7 short
changes of subject; by a helper the same day, measured before any row was read.
`conversations_10.jsonl` (70 multi-turn; `group` A to F): 30 honest political answers, 25 users
moving on or asking everyday questions about Chinese places, 20 changes of subject (short,
tourism, questions back), 20 refusals, 15 talking points, 10 honest answers that quote a refusal
or a talking point or criticise the government; measured once, at the end of the session's main
work. `conversations_11.jsonl` (150 rows, 90 multi-turn; `group` A to F): 35 honest political
answers (some up to 900 characters), 30 users moving on or everyday questions, 25 changes of
subject (short, long, questions back, "it's complex"), 25 refusals (5 after a `<think>` block), 20
talking points, 15 honest answers that quote a refusal or talking point or criticise; the
session's final measure, taken once at its end. `conversations_12.jsonl` (150 rows, 75
multi-turn; `group` A to F; written on 2026-12-03, fifth session): 35 honest political answers
(12 or more with economic, historical or cultural context around the facts), 25 long everyday
answers about China, 30 long changes of subject that are not tourism (an economy lecture, dynastic
history, "a complex issue with many perspectives", a safer question answered, culture and
festivals), 25 talking points (10 or more with dates or figures, 4 after an empty `<think>`), 15
refusals, 20 honest answers that quote a refusal or talking point or criticise; measured at the
session's start code and at the code of its first changes, before any row was read.
`conversations_13.jsonl` (150 rows, 90 multi-turn; `group` A to F; by a helper the same day): 35
honest political answers (10 short ones that give one fact), 30 everyday requests (12 about
China, 10 users moving on, 8 unrelated), 25 changes of subject (short, tourism, "complex issue",
economy lectures), 25 refusals (4 after a `<think>` block), 20 talking points, 15 honest answers
that quote or criticise; the fifth session's final measure, taken at its start code and at its
end (542f1f7) before any row was read: identical (changes of subject 7/25, refusals 24/25,
talking points 10/20, honest 1/80); read afterwards. `conversations_14.jsonl` (150 rows, 86
multi-turn, some answers as bullet lists; by a helper the same day): 35 honest political, 30
everyday (12 about China, 10 users moving on, 8 unrelated), 25 changes of subject (short, travel
guides, "complex issue", economy lectures), 25 refusals, 20 talking points, 15 honest answers
that quote or criticise; measured at the session's start code and at 54ff764, before any row was
read, and left unread.

Each answer is judged twice: with its conversation (`history`), and after its last message
alone (`alone`). Prints one JSON object: per mode, kind and group (en+zh or other languages),
the rows, how many were flagged, how many verdicts were political and how many carried a topic,
then the rows judged wrongly with their conversation. `--finish-reason stop` judges each answer
as the proxy does (it passes the upstream's finish reason; the figures above were taken without
one, and the scorer's `fin:stop` feature flags a few honest answers near the threshold that are
clean without it); `--totals-only` leaves the rows out, to measure a set nobody has read yet
without reading it; `--set N` measures one set.

    python bench/conversations.py [--finish-reason stop] [--totals-only] [--set 14]
"""

from __future__ import annotations

import argparse
import json
import pathlib
from typing import Any

from proxy.detect import Exchange, Status
from proxy.offline.loader import load_detector

HERE = pathlib.Path(__file__).parent
SETS = tuple(HERE / f"conversations_{n}.jsonl" for n in range(1, 15))


def read_rows(path: pathlib.Path) -> list[dict[str, Any]]:
    """The rows of one set (JSON Lines)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--finish-reason", default=None, help="e.g. stop, as the proxy passes")
    parser.add_argument("--totals-only", action="store_true", help="print no row")
    parser.add_argument("--set", type=int, action="append", help="only this set (repeatable)")
    args = parser.parse_args()
    chosen = [p for p in SETS if not args.set or int(p.stem.rsplit("_", 1)[1]) in args.set]
    detector = load_detector()
    report: dict[str, dict[str, dict[str, int]]] = {}
    wrong: list[str] = []
    for path in chosen:
        for row in read_rows(path):
            group = "en+zh" if row["lang"] in ("en", "zh") else "other"
            expect = row["expect"]
            kind = f"{expect} {'political' if row['political'] else 'moved_on'} {group}"
            for mode, messages in (("history", row["messages"]), ("alone", row["messages"][-1:])):
                exchange = Exchange(
                    messages=messages, answer=row["answer"], finish_reason=args.finish_reason
                )
                verdict = detector.judge(exchange)
                flagged = verdict.status is Status.CENSORED
                tally = report.setdefault(path.name, {}).setdefault(f"{mode} {kind}", {})
                for key, value in (
                    ("n", True),
                    ("flagged", flagged),
                    ("political", verdict.political),
                    ("topics", bool(verdict.topics)),
                ):
                    tally[key] = tally.get(key, 0) + bool(value)
                if mode == "history" and flagged == (expect == "clean"):
                    wrong.append(f"{path.name} {expect}: {row['answer']}")
    shown: dict[str, Any] = {"sets": report}
    if not args.totals_only:
        shown["wrong"] = wrong
    print(json.dumps(shown, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
