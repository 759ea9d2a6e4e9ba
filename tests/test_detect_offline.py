"""The I/O side: policy loading errors, label shapes, training, eval figures and floors."""

from __future__ import annotations

import argparse
import io
import json
import pathlib
import sys
from typing import Any

import pytest

from proxy.cli import main as cli_main
from proxy.detect import Exchange, native
from proxy.offline import commands
from proxy.offline.dataset import parse_label, read_examples
from proxy.offline.evaluate import check_floors
from proxy.offline.loader import PolicyError, load_detector

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "detect"


def _cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="candor")
    commands.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_lexicon_error_names_file_rule_and_field(policies_copy: pathlib.Path) -> None:
    policies = policies_copy
    lexicon = policies / "detector" / "lexicon.yaml"
    lexicon.write_text("rules:\n  - name: odd\n    category: gossip\n    phrases: [x]\n")
    with pytest.raises(PolicyError) as info:
        load_detector(policies)
    message = str(info.value)
    assert "lexicon.yaml" in message and "'odd'" in message and "'category'" in message


def test_weights_error_names_the_threshold(policies_copy: pathlib.Path) -> None:
    policies = policies_copy
    weights = policies / "detector" / "weights.json"
    doc = json.loads(weights.read_text(encoding="utf-8"))
    doc["thresholds"]["flag"] = 3
    weights.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(PolicyError, match=r"thresholds: field 'flag'"):
        load_detector(policies)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"label": "COMPLETE"}, (False, "")),
        ({"label": "EVASIVE"}, (True, "evasion")),
        ({"label": "DENIAL"}, (True, "refusal")),
        ({"label": "D (Deflection)"}, (True, "deflection")),
        ({"label": "T (Truthful)"}, (False, "")),
        ({"label": "refusal=0;ccp_propaganda=1;answers_question=0"}, (True, "propaganda")),
        ({"label": "2_full_refusal"}, (True, "refusal")),
        ({"label": "1_full_compliance"}, (False, "")),
        ({"censored": True}, (True, "censored")),
        ({"label": None}, (None, "")),
    ],
)
def test_label_shapes(row: dict[str, Any], expected: tuple[bool | None, str]) -> None:
    assert parse_label(row) == expected


def test_floors_compare_lower_bounds_and_ceilings() -> None:
    report = {"f1": 0.8, "fpr": 0.03, "by_language": {"en": {"f1": 0.9}}}
    assert (
        check_floors(report, {"f1": 0.7, "fpr_max": 0.05, "by_language": {"en": {"f1": 0.8}}}) == []
    )
    failures = check_floors(report, {"f1": 0.85, "fpr_max": 0.02, "by_language": {"zh": {"f1": 1}}})
    assert len(failures) == 3


def test_eval_json_has_the_documented_keys(capsys: pytest.CaptureFixture[str]) -> None:
    args = _cli(["eval", str(FIXTURES / "cases.jsonl"), "--stream", "--json"])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    for key in (
        "n",
        "precision",
        "recall",
        "f1",
        "fpr",
        "latency_us",
        "by_language",
        "by_category",
    ):
        assert key in report
    assert set(report["latency_us"]) >= {"p50", "p99"}
    assert set(report["stream"]) >= {"prerelease_recall", "false_stop_rate", "held_chars_p50_clean"}
    # The fixture rows carry no language field: each answer is counted under the verdict's.
    assert {"en", "zh"} <= set(report["by_language"])
    # Which path the latency measures: the C extension's sums when they are built.
    assert report["native_sums"] is native.AVAILABLE


def test_eval_floors_fail_when_below(tmp_path: pathlib.Path) -> None:
    floors = tmp_path / "floors.yaml"
    floors.write_text("f1: 1.01\n")
    args = _cli(["eval", str(FIXTURES / "cases.jsonl"), "--json", "--floors", str(floors)])
    assert args.func(args) == 1


def test_eval_rejects_unreadable_inputs_with_a_named_error(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_row = tmp_path / "rows.jsonl"
    bad_row.write_text('{"response": "ok", "censored": false}\nnot json\n', encoding="utf-8")
    not_object = tmp_path / "list.jsonl"
    not_object.write_text("[1, 2]\n", encoding="utf-8")
    not_utf8 = tmp_path / "latin1.jsonl"
    not_utf8.write_bytes(b'{"response": "ok", "censored": false}\n{"response": "\xe4"}\n')
    floors = tmp_path / "floors.yaml"
    floors.write_text("- 0.9\n", encoding="utf-8")
    cases = str(FIXTURES / "cases.jsonl")
    for argv, message in [
        (["eval", str(tmp_path / "missing.jsonl")], "missing.jsonl: No such file"),
        (["eval", str(bad_row)], f"{bad_row}:2: not a JSON row"),
        (["eval", str(not_object)], f"{not_object}:1: a row must be a JSON object"),
        (["eval", str(not_utf8)], f"{not_utf8}:2: not UTF-8 text"),
        (["eval", cases, "--floors", str(floors)], "floors must be a mapping"),
        (["train", str(bad_row)], f"{bad_row}:2"),
    ]:
        args = _cli(argv)
        assert args.func(args) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


@pytest.mark.parametrize("folds", ["1", "-3", "two"])
def test_cv_needs_two_folds_or_more(folds: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _cli(["eval", str(FIXTURES / "cases.jsonl"), "--cv-by-model", folds])
    assert exit_info.value.code == 2
    assert "2 or more" in capsys.readouterr().err


def test_train_extra_without_folds_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # Before, the extra files were ignored (nothing is trained without folds), without a word.
    cases = str(FIXTURES / "cases.jsonl")
    args = _cli(["eval", cases, "--train-extra", cases])
    assert args.func(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "candor: --train-extra needs --cv-by-model K (it adds rows to each training fold)\n"
    )


@pytest.mark.parametrize("command", ["train", "eval"])
def test_training_without_numpy_says_what_to_install(
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    # numpy is a training-time extra: without it these ended in a ModuleNotFoundError traceback.
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        '{"response": "I cannot answer that.", "censored": true, "model": "a"}\n'
        '{"response": "Tanks entered the square.", "censored": false, "model": "b"}\n',
        encoding="utf-8",
    )
    weights = tmp_path / "w.json"
    extra = ["--out", str(weights)] if command == "train" else ["--cv-by-model", "2"]
    monkeypatch.setitem(sys.modules, "numpy", None)  # an import of it fails, as when absent
    monkeypatch.delitem(sys.modules, "proxy.offline.train", raising=False)
    args = _cli([command, str(rows), *extra])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("candor: training") and err.strip().endswith("[train]'")
    assert not weights.exists()


@pytest.mark.parametrize("case", ["missing file", "not UTF-8", "no labels", "detector data"])
def test_offline_errors_start_as_the_other_commands_do(
    tmp_path: pathlib.Path,
    policies_copy: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    # Before, they began `input error:`, `file error:` or `policy error:`, or with nothing.
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"response": "ok"}\n', encoding="utf-8")
    if case == "missing file":
        rows = tmp_path / "missing.jsonl"
    elif case == "not UTF-8":
        rows.write_bytes(b'{"response": "\xff"}\n')
    elif case == "detector data":
        rows.write_text('{"response": "ok", "censored": false}\n', encoding="utf-8")
        (policies_copy / "detector" / "topics.yaml").unlink()
    args = _cli(["eval", str(rows), "--policies", str(policies_copy)])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("candor: ") and err.count("\n") == 1, err
    said = {
        "missing file": f"{rows}",
        "not UTF-8": "not UTF-8",
        "no labels": "no labelled rows",
        "detector data": "detector data: ",
    }[case]
    assert said in err, err


def test_eval_reads_a_file_that_starts_with_a_byte_order_mark(tmp_path: pathlib.Path) -> None:
    rows = tmp_path / "bom.jsonl"
    rows.write_text('\ufeff{"response": "ok", "censored": false}\n', encoding="utf-8")
    assert [ex.response for ex in read_examples([rows])] == ["ok"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("f1: high\n", "f1: the bound 'high' is not a number"),
        ("by_language:\n  en: {f1: true}\n", "by_language.en.f1: the bound True is not a number"),
        ("stream:\n  prerelease_recall:\n", "stream.prerelease_recall: the bound None is not"),
    ],
)
def test_eval_refuses_a_floor_that_is_not_a_number_before_the_run(
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    says: str,
) -> None:
    # Before, it was found after the run (minutes on the development data) and reported as a
    # figure below its floor, exit status 1: a CI job read a typo as a regression.
    floors = tmp_path / "floors.yaml"
    floors.write_text(text, encoding="utf-8")
    monkeypatch.setattr("proxy.offline.commands.run", lambda *a, **k: pytest.fail("ran"))
    args = _cli(["eval", str(FIXTURES / "cases.jsonl"), "--floors", str(floors)])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"candor: {floors}: {says}") and err.count("\n") == 1


def test_floor_that_is_not_a_number_fails_the_check() -> None:
    assert check_floors({"f1": 0.9}, {"f1": "high"}) == ["f1: the bound 'high' is not a number"]


def test_train_writes_weights_the_loader_reads(
    tmp_path: pathlib.Path, policies_copy: pathlib.Path
) -> None:
    pytest.importorskip("numpy")  # a training-time dependency only
    rows = [json.loads(line) for line in (FIXTURES / "cases.jsonl").read_text().splitlines()]
    data = tmp_path / "train.jsonl"
    with data.open("w", encoding="utf-8") as handle:
        for i, row in enumerate(rows * 3):
            handle.write(json.dumps({**row, "model": f"m{i % 3}"}, ensure_ascii=False) + "\n")
    policies = policies_copy
    out = policies / "detector" / "weights.json"
    args = _cli(["train", str(data), "--policies", str(policies), "--out", str(out)])
    assert args.func(args) == 0
    detector = load_detector(policies)
    answer = "I am sorry, I cannot answer that question."
    verdict = detector.judge(
        Exchange(messages=[{"role": "user", "content": "Tiananmen?"}], answer=answer)
    )
    assert verdict.score > 0.5
    assert len(read_examples([data])) == len(rows) * 3


def test_scan_reads_json_or_plain_text(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = {"prompt": "Tiananmen 1989?", "response": "I am sorry, I cannot answer that question."}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(doc)))
    args = _cli(["scan"])
    assert args.func(args) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["verdict"] == "censored"
    assert verdict["topics"] == ["tiananmen"]
    monkeypatch.setattr("sys.stdin", io.StringIO("Plants turn light into sugar."))
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["topics"] == []


def test_scan_prints_a_lone_surrogate_escaped(
    monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    doc = '{"prompt": "Tiananmen?", "response": "I cannot\\ud800answer that question."}'
    monkeypatch.setattr("sys.stdin", io.StringIO(doc))
    args = _cli(["scan"])
    assert args.func(args) == 0
    out = capsysbinary.readouterr().out
    verdict = json.loads(out)
    assert verdict["verdict"] == "censored"
    assert b"\\ud800" in out


def test_scan_rejects_malformed_fields(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = {"response": "", "provider_error": {"status": "bad", "code": "x"}}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(doc)))
    args = _cli(["scan"])
    assert args.func(args) == 2
    assert "provider_error.status" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"messages": ["hi"], "response": ""})))
    assert args.func(args) == 2
    assert "messages must be a list of objects" in capsys.readouterr().err
    # Before, a misspelt `response` was judged as an empty answer, and called censored.
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"prompt": "hi", "responce": "Hi!"})))
    assert args.func(args) == 2
    assert "needs `response`" in capsys.readouterr().err
    for doc in ({"response": 5}, {"prompt": ["hi"], "response": "x"}, {"answer": {"a": 1}}):
        monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(doc)))
        assert args.func(args) == 2
        assert "must be a string" in capsys.readouterr().err


@pytest.mark.parametrize("stdin", ["", "  \n"])
def test_scan_refuses_an_empty_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: str
) -> None:
    # Before, nothing piped in was judged as an empty answer: censored, exit status 0.
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    args = _cli(["scan"])
    assert args.func(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("candor: nothing on stdin")
    monkeypatch.setattr("sys.stdin", io.StringIO('{"response": ""}'))  # still judged when asked
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["category"] == "provider_block"


def test_ctrl_c_at_scan_waiting_on_stdin_is_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `candor scan` run on a terminal waits for stdin; Ctrl-C there printed a traceback.
    class Interrupted(io.StringIO):
        def read(self, size: int | None = -1) -> str:
            raise KeyboardInterrupt

    monkeypatch.setattr("sys.stdin", Interrupted())
    try:
        status = cli_main(["scan"])
    except KeyboardInterrupt:
        pytest.fail("the interrupt escaped `candor`'s main: a traceback")
    assert status == 130
    assert capsys.readouterr().err == "\ncandor: interrupted\n"


def test_missing_weights_file_is_named(policies_copy: pathlib.Path) -> None:
    policies = policies_copy
    (policies / "detector" / "weights.json").unlink()
    # Before: "weights.json: file: field '-': not found".
    with pytest.raises(PolicyError, match=r"weights.json: no such file \(run `candor train`\)"):
        load_detector(policies)


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("detector.yaml", "windows: 3\n", "windows: must be a mapping"),
        ("lexicon.yaml", "rules: [3]\n", "rule #0: must be a mapping"),
        ("lexicon.yaml", "[]\n", "top level must be a mapping"),
        ("lexicon.yaml", "rules: {}\n", "rules: must be a list"),
        ("weights.json", '{"whole": 3}', "thresholds: must be an object"),
    ],
)
def test_detector_data_errors_name_the_file_and_the_field_path(
    policies_copy: pathlib.Path, name: str, text: str, says: str
) -> None:
    # Before, a problem with no one field read "field '-'", and one with a section repeated it
    # ("rules: field 'rules'"); a section of detector.yaml that was no mapping named all eight.
    path = policies_copy / "detector" / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_detector(policies_copy)
    assert str(info.value) == f"{path}: {says}"


def test_topic_error_names_the_topic(policies_copy: pathlib.Path) -> None:
    policies = policies_copy
    (policies / "detector" / "topics.yaml").write_text(
        "topics:\n  - name: tibet\n    keywords: []\n"
    )
    with pytest.raises(PolicyError, match=r"topics.yaml: topic 'tibet': field 'keywords'"):
        load_detector(policies)
    (policies / "detector" / "topics.yaml").write_text(
        "topics:\n  - name: tibet\n    keywords: [tibet]\nplaces: lhasa\n"
    )
    with pytest.raises(PolicyError, match=r"topics.yaml: places: must be a non-empty list"):
        load_detector(policies)


def test_cv_needs_enough_models() -> None:
    args = _cli(["eval", str(FIXTURES / "cases.jsonl"), "--cv-by-model", "3"])
    assert args.func(args) == 2
