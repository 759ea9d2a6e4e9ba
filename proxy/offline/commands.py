"""The `candor scan`, `candor eval` and `candor train` subcommands."""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
from typing import Any

import yaml

from proxy.detect import native
from proxy.detect.engine import CandorDetector
from proxy.detect.model import Scorer
from proxy.detect.verdict import Exchange, ProviderError
from proxy.offline.dataset import DataError, Example, read_examples
from proxy.offline.evaluate import Outcome, check_floors, run, summarize
from proxy.offline.loader import PolicyError, default_policies, load_detector, load_parts

NO_LABELS = (
    'no labelled rows in the given files: a row is labelled by `"censored": true` or `false`'
    " (or a `label` such as COMPLETE, EVASIVE or DENIAL)"
)


NO_NUMPY = (
    "training (candor train, candor eval --cv-by-model) needs numpy: "
    "pip install 'candor-proxy[train]'"
)


def _exchange_from(raw: str) -> Exchange:
    if not raw.strip():
        # Judged as an empty answer, it was called censored (provider_block), exit status 0.
        raise DataError(
            "nothing on stdin: pipe the answer as plain text, or a JSON object with `response`"
            ' (`{"response": ""}` judges an empty answer)'
        )
    try:
        doc: Any = json.loads(raw)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return Exchange(answer=raw)
    if not any(field in doc for field in ("response", "answer", "provider_error", "tool_calls")):
        # A misspelt field was judged as an empty answer: censored (provider_block).
        raise DataError('a JSON object needs `response`, the answer to judge ("" for none)')
    # From here on, each of these fields is a string or None.
    for field in ("prompt", "response", "answer", "reasoning", "finish_reason"):
        if doc.get(field) is not None and not isinstance(doc[field], str):
            raise DataError(f"{field} must be a string")
    messages = doc.get("messages")
    if isinstance(messages, list) and not all(isinstance(m, dict) for m in messages):
        raise DataError("messages must be a list of objects (OpenAI chat messages)")
    if not isinstance(messages, list):
        prompt = doc.get("prompt")
        messages = [{"role": "user", "content": prompt}] if prompt is not None else []
    error = doc.get("provider_error")
    provider_error = None
    if isinstance(error, dict):
        status = error.get("status", 400)
        if not isinstance(status, int) or isinstance(status, bool):
            raise DataError("provider_error.status must be an HTTP status code (an integer)")
        code = error.get("code")
        provider_error = ProviderError(
            status=status,
            code=code if isinstance(code, str) else None,
            message=str(error.get("message", "")),
        )
    answer = doc.get("response", doc.get("answer"))
    return Exchange(
        messages=messages,
        answer=answer or "",
        reasoning=doc.get("reasoning"),
        finish_reason=doc.get("finish_reason") or None,
        provider_error=provider_error,
        has_tool_calls=bool(doc.get("tool_calls")),
        wants_json=bool(doc.get("wants_json")),
    )


def scan(args: argparse.Namespace) -> int:
    """Judge one answer read from stdin and print the verdict as JSON."""
    detector = load_detector(args.policies)
    verdict = detector.judge(_exchange_from(sys.stdin.read()))
    text = json.dumps(verdict.to_dict(), ensure_ascii=False, indent=2)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from the input: escaped, as JSON allows
        text = json.dumps(verdict.to_dict(), indent=2)
    print(text)
    return 0


def _cross_validate(
    args: argparse.Namespace, examples: list[Example], extra: list[Example]
) -> list[Outcome]:
    from proxy.offline.train import TrainSettings, featurize, group_folds, train_scorer

    parts = load_parts(args.policies, scorer=Scorer())
    settings = TrainSettings()
    data = [featurize(parts, ex) for ex in examples]
    extra_data = [featurize(parts, ex) for ex in extra]
    folds = group_folds([ex.model for ex in examples], args.cv_by_model)
    outcomes: list[Outcome] = []
    for fold in range(args.cv_by_model):
        train = [i for i, f in enumerate(folds) if f != fold]
        test = [examples[i] for i, f in enumerate(folds) if f == fold]
        scorer = train_scorer(
            [data[i] for i in train] + extra_data,
            [examples[i] for i in train] + extra,
            settings,
            calibrate=[True] * len(train) + [False] * len(extra),
        )
        detector = CandorDetector(dataclasses.replace(parts, scorer=scorer))
        outcomes += run(detector, test, stream=args.stream)
        print(f"fold {fold + 1}/{args.cv_by_model} done", file=sys.stderr)
    return outcomes


def _print_table(report: dict[str, Any]) -> None:
    def line(name: str, r: dict[str, Any]) -> str:
        return (
            f"{name:<10} n={r['n']:<5} precision={r['precision']:.3f} recall={r['recall']:.3f} "
            f"f1={r['f1']:.3f} fpr={r['fpr']:.3f}"
        )

    print(line("all", report))
    for lang, r in report["by_language"].items():
        print(line(lang, r))
    for cat, r in report["by_category"].items():
        print(f"category {cat:<12} n={r['n']:<5} recall={r['recall']:.3f}")
    lat, cpu = report["latency_us"], report["latency_cpu_us"]
    print(
        f"latency_us p50={lat['p50']} p99={lat['p99']} (cpu p50={cpu['p50']} p99={cpu['p99']}; "
        f"native sums: {'yes' if report['native_sums'] else 'no'})"
    )
    if "stream" in report:
        s = report["stream"]
        print(
            f"stream prerelease_recall={s['prerelease_recall']:.3f} "
            f"false_stop_rate={s['false_stop_rate']:.3f} "
            f"held_chars_p50_clean={s['held_chars_p50_clean']}"
        )


def _read_floors(path: pathlib.Path) -> dict[str, Any]:
    try:
        floors = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(floors, dict):
        raise DataError(f"{path}: floors must be a mapping of figure names to numbers")
    _check_bounds(path, floors, "")
    return floors


def _check_bounds(path: pathlib.Path, floors: dict[str, Any], prefix: str) -> None:
    """Each bound a number, or a mapping of them: a bound that is not one was found only after
    the run, reported as a figure below its floor (exit status 1, not 2)."""
    for key, bound in floors.items():
        name = f"{prefix}{key}"
        if isinstance(bound, dict):
            _check_bounds(path, bound, f"{name}.")
        elif not isinstance(bound, int | float) or isinstance(bound, bool):
            raise DataError(f"{path}: {name}: the bound {bound!r} is not a number")


def evaluate(args: argparse.Namespace) -> int:
    """Measure the detector on labelled JSONL files (optionally cross-validated by model)."""
    if args.train_extra and not args.cv_by_model:
        # Without folds nothing is trained: the files were ignored, without a word.
        return _error("--train-extra needs --cv-by-model K (it adds rows to each training fold)")
    # Read before the (possibly long) run, so a broken file fails at once.
    floors = None if args.floors is None else _read_floors(args.floors)
    examples = read_examples(args.files)
    if not examples:
        return _error(NO_LABELS)
    if args.cv_by_model:
        models = {ex.model for ex in examples}
        if len(models) < args.cv_by_model:
            return _error(
                f"--cv-by-model {args.cv_by_model} needs at least as many models in the rows "
                f"(found {len(models)})"
            )
        extra = read_examples(args.train_extra) if args.train_extra else []
        outcomes = _cross_validate(args, examples, extra)
    else:
        outcomes = run(load_detector(args.policies), examples, stream=args.stream)
    report = summarize(outcomes, stream=args.stream)
    # Which path the latency figures measure (the C extension's sums, or pure Python).
    report["native_sums"] = native.AVAILABLE
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        _print_table(report)
    if floors is not None:
        failures = check_floors(report, floors)
        for failure in failures:
            print(f"below floor: {failure}", file=sys.stderr)
        if failures:
            return 1
    return 0


def train(args: argparse.Namespace) -> int:
    """Fit the scorer on labelled JSONL files and write the weights file."""
    from proxy.offline.train import TrainSettings, featurize, train_scorer, write_scorer

    examples = read_examples(args.files)
    if not examples:
        return _error(NO_LABELS)
    parts = load_parts(args.policies, scorer=Scorer())
    data = [featurize(parts, ex) for ex in examples]
    scorer = train_scorer(data, examples, TrainSettings())
    out = args.out or args.policies / "detector" / "weights.json"
    meta = {"rows": len(examples), "files": [p.name for p in args.files]}
    write_scorer(scorer, out, meta)
    t = scorer.thresholds
    print(
        f"wrote {out}: {len(scorer.whole.weights)} + {len(scorer.early.weights)} weights, "
        f"flag={t.flag:.3f} stop={t.stop:.3f} release={t.release:.3f} settle={t.settle:.3f}"
    )
    return 0


def _guard(func: Any) -> Any:
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except PolicyError as exc:
            return _error(f"detector data: {exc}")  # as `candor serve` says it
        except DataError as exc:
            return _error(str(exc))
        except ModuleNotFoundError as exc:
            if exc.name != "numpy":
                raise
            # A training-time dependency only: the image and a plain install have none.
            return _error(NO_NUMPY)
        except UnicodeDecodeError as exc:  # stdin, or a floors or policy file
            return _error(f"not UTF-8 text ({exc.reason}, byte {exc.start})")
        except OSError as exc:
            # Reading the inputs or writing the weights file.
            where = f"{exc.filename}: " if exc.filename else ""
            return _error(f"{where}{exc.strerror or exc}")

    return wrapped


def _error(message: str) -> int:
    """Say why the command stops, as the other commands do (`candor: ...`); exit status 2."""
    print(f"candor: {message}", file=sys.stderr)
    return 2


def _folds(value: str) -> int:
    try:
        k = int(value)
    except ValueError:
        k = -1
    if k < 2:
        raise argparse.ArgumentTypeError(f"needs a whole number, 2 or more (got {value!r})")
    return k


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `scan`, `eval` and `train` to the `candor` command line."""

    def policies_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--policies",
            type=pathlib.Path,
            default=default_policies(),
            help="policies directory (default: $CANDOR_POLICIES_DIR, else the repository's)",
        )

    p_scan = subparsers.add_parser(
        "scan", help="judge one answer from stdin ({prompt, response} JSON or plain text)"
    )
    policies_arg(p_scan)
    p_scan.set_defaults(func=_guard(scan))

    p_eval = subparsers.add_parser("eval", help="measure the detector on labelled JSONL files")
    p_eval.add_argument("files", nargs="+", type=pathlib.Path)
    p_eval.add_argument("--stream", action="store_true", help="also replay answers as streams")
    p_eval.add_argument("--json", action="store_true", help="print one JSON object")
    p_eval.add_argument(
        "--cv-by-model",
        type=_folds,
        default=0,
        metavar="K",
        help="train on K-1 folds grouped by model, judge the held-out fold (K folds)",
    )
    p_eval.add_argument(
        "--train-extra",
        type=pathlib.Path,
        nargs="*",
        default=[],
        help="with --cv-by-model: more labelled files added to every training fold",
    )
    p_eval.add_argument(
        "--floors", type=pathlib.Path, help="YAML of minimum figures; exit 1 when below"
    )
    policies_arg(p_eval)
    p_eval.set_defaults(func=_guard(evaluate))

    p_train = subparsers.add_parser("train", help="fit the scorer and write its weights")
    p_train.add_argument("files", nargs="+", type=pathlib.Path)
    p_train.add_argument(
        "--out",
        type=pathlib.Path,
        help="weights file to write (default: the policies directory's detector/weights.json)",
    )
    policies_arg(p_train)
    p_train.set_defaults(func=_guard(train))
