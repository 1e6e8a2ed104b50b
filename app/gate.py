"""`seglens gate`: a headless QA gate for CI. Evaluates a reference and a candidate model on a dataset and
checks the candidate against thresholds.

Exit 0: the candidate passes; 1: a rule is broken (each listed with its numbers; points are mIoU percentage
points); 2: the run itself failed (unreadable model, empty dataset, nothing evaluated, bad arguments).

Predictions go through the on-disk prediction cache, so re-running after changing only thresholds costs
decoding and counting, not inference. Cached predictions keep the latency measured when they were made, so
the latency rule compares real inference times on a re-run too.

It lives at the top of the package, not in app.inference, because it also writes reports (app.report).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.commands.options import add_dataset_options, add_run_options, request_from_args
from app.core.domain.errors import SegLensError
from app.core.io.fileutil import atomic_write_bytes, atomic_write_text
from app.core.runtime.argtypes import nonnegative_int
from app.evaluation.service import ModelLoader

if TYPE_CHECKING:
    from app.evaluation.results import EvaluationResult, ModelResult
    from app.report.run import TopMasks

PASS, FAIL, ERROR = 0, 1, 2


@dataclass(frozen=True)
class RuleResult:
    """One checked rule. `passed` None means skipped (not applicable or not asked for)."""

    name: str
    passed: bool | None
    message: str
    value: float | None = None
    threshold: float | None = None
    details: tuple[str, ...] = ()  # one line per item (e.g. each skipped file and why)


@dataclass(frozen=True)
class Thresholds:
    """Limits the candidate must keep. Drops are in percentage points; latency as candidate/reference P50."""

    max_miou_drop: float = 0.5
    max_class_drop: float = 2.0
    classes: tuple[str, ...] = ()  # empty: every evaluated class
    max_latency_ratio: float | None = None  # None: not checked (latency is noisy on shared CI machines)
    max_skipped: int = 0  # images not scored for both models (unreadable, no labels, a model failed)
    # With a confidence (e.g. 0.95), an mIoU drop past max_miou_drop fails only when the paired bootstrap
    # says it is significant at that confidence; a set too small to tell passes and says so.
    require_confidence: float | None = None


def _points(ref: float, cand: float) -> float | None:
    if math.isnan(ref) or math.isnan(cand):
        return None
    return (ref - cand) * 100


def check_rules(
    ref: ModelResult, cand: ModelResult, limits: Thresholds, run: EvaluationResult | None = None
) -> list[RuleResult]:
    """The rules on the reference's and the candidate's results (same run, same scheme); with the whole
    `run`, also the rule on skipped images (--max-skipped)."""
    rules = [_miou_rule(ref, cand, limits)]
    if limits.require_confidence is not None:
        rules[0] = _with_significance(rules[0], run, limits.require_confidence)
    known = list(ref.scheme.names)
    for name in limits.classes or tuple(known):
        rules.append(_class_rule(known.index(name), name, ref, cand, limits))
    rules.append(_latency_rule(ref, cand, limits))
    rules.append(_coverage_rule(ref, cand))
    if run is not None:
        rules.append(skipped_rule(run, limits.max_skipped))
    return rules


def _with_significance(rule: RuleResult, run: EvaluationResult | None, confidence: float) -> RuleResult:
    """The mIoU rule judged with the paired bootstrap of the run: a drop past the limit fails only when
    it is significant; the interval is always quoted."""
    from app.analysis.bootstrap import significant_drop

    bootstrap = None if run is None or run.analysis is None else run.analysis.bootstrap
    if bootstrap is None:
        return RuleResult(rule.name, rule.passed, f"{rule.message}; no bootstrap (needs two models)",
                          rule.value, rule.threshold)  # fmt: skip
    verdict = significant_drop(bootstrap, confidence)
    details = (verdict.message,)
    if rule.passed is not False:
        return RuleResult(rule.name, rule.passed, rule.message, rule.value, rule.threshold, details)
    if verdict.fails:
        return RuleResult(rule.name, False, f"{rule.message}; significant at {confidence:.0%}",
                          rule.value, rule.threshold, details)  # fmt: skip
    why = "too small to tell" if verdict.status == "too_small" else f"not significant at {confidence:.0%}"
    return RuleResult(rule.name, True, f"{rule.message}; {why}", rule.value, rule.threshold, details)


def skipped_images(run: EvaluationResult) -> dict[str, str]:
    """Key -> why, for every image of the run that was not scored for every model: unreadable image or
    label, no labels, or a model's error on it."""
    skipped: dict[str, str] = dict(run.sample_errors)
    for key, reason in run.unlabelled().items():
        skipped.setdefault(key, f"no labels: {reason}")
    for model in run.models:
        for key, message in model.errors.items():
            skipped.setdefault(key, f"{model.info.name}: {message}")
    return dict(sorted(skipped.items()))


def skipped_rule(run: EvaluationResult, max_skipped: int) -> RuleResult:
    """Fails when more than `max_skipped` images were left out: metrics of an incomplete evaluation are
    not the dataset's. Every skipped image is listed with its reason."""
    skipped = skipped_images(run)
    total = run.images_total
    lines = tuple(f"{key}: {why}" for key, why in skipped.items())
    if not skipped:
        return RuleResult("skipped images", True, f"none of {total} images skipped", 0, max_skipped)
    text = f"{len(skipped)} of {total} images skipped (max {max_skipped})"
    return RuleResult("skipped images", len(skipped) <= max_skipped, text, len(skipped), max_skipped, lines)


def _change(drop: float) -> str:
    if abs(drop) < 0.005:
        return "unchanged"
    return f"fell {drop:.2f} points" if drop > 0 else f"rose {-drop:.2f} points"


def _miou_rule(ref: ModelResult, cand: ModelResult, limits: Thresholds) -> RuleResult:
    a, b = ref.scores.miou, cand.scores.miou
    drop = _points(a, b)
    if drop is None:
        return RuleResult("mIoU drop", None, "mIoU undefined (no labelled pixels)")
    text = f"mIoU {a * 100:.2f} -> {b * 100:.2f}: {_change(drop)}"
    return RuleResult(
        "mIoU drop", drop <= limits.max_miou_drop, f"{text} (max drop {limits.max_miou_drop:g})",
        drop, limits.max_miou_drop,
    )  # fmt: skip


def _class_rule(k: int, name: str, ref: ModelResult, cand: ModelResult, limits: Thresholds) -> RuleResult:
    rule = f"class IoU drop: {name}"
    a, b = float(ref.scores.iou[k]), float(cand.scores.iou[k])
    drop = _points(a, b)
    if drop is None:
        return RuleResult(rule, None, f"{name}: IoU undefined (class absent from the ground truth)")
    text = f"{name} IoU {a * 100:.2f} -> {b * 100:.2f}: {_change(drop)}"
    return RuleResult(
        rule, drop <= limits.max_class_drop, f"{text} (max drop {limits.max_class_drop:g})",
        drop, limits.max_class_drop,
    )  # fmt: skip


def _latency_rule(ref: ModelResult, cand: ModelResult, limits: Thresholds) -> RuleResult:
    if limits.max_latency_ratio is None:
        return RuleResult("latency ratio", None, "not checked (no --max-latency-ratio)")
    a, b = ref.latency.p50, cand.latency.p50
    if not a or b is None:
        return RuleResult("latency ratio", None, "latency not measured")
    ratio = b / a
    return RuleResult(
        "latency ratio",
        ratio <= limits.max_latency_ratio,
        f"P50 {a:.1f} ms -> {b:.1f} ms: {ratio:.2f}x (max {limits.max_latency_ratio:g}x)",
        ratio,
        limits.max_latency_ratio,
    )


def _coverage_rule(ref: ModelResult, cand: ModelResult) -> RuleResult:
    # A candidate that crashes on images the reference handles has regressed, whatever its mIoU says.
    failed = sorted(set(cand.errors) - set(ref.errors))
    if not failed:
        return RuleResult("images evaluated", True, f"{cand.images_evaluated} images, none failed", 0, 0)
    listed = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
    return RuleResult("images evaluated", False, f"candidate failed on {len(failed)} images: {listed}",
                      len(failed), 0)  # fmt: skip


# --- JUnit ------------------------------------------------------------------------------------------------

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(text: object) -> str:
    """Text XML 1.0 can carry (ElementTree escapes <, & and quotes but not control characters)."""
    return _XML_INVALID.sub("?", str(text))


def junit_xml(rules: Sequence[RuleResult], *, suite: str, seconds: float, error: str | None = None) -> bytes:
    """A JUnit report: one testcase per rule; a failed run is one testcase with an <error>."""
    failures = sum(1 for r in rules if r.passed is False)
    skipped = sum(1 for r in rules if r.passed is None)
    tests = len(rules) + (1 if error else 0)
    counts = {"tests": str(tests), "failures": str(failures), "errors": "1" if error else "0",
              "skipped": str(skipped), "time": f"{seconds:.3f}"}  # fmt: skip
    root = ET.Element("testsuites", {"name": "seglens gate", **counts})
    node = ET.SubElement(root, "testsuite", {"name": _x(suite), **counts})
    for rule in rules:
        case = ET.SubElement(
            node, "testcase", {"name": _x(rule.name), "classname": "seglens.gate", "time": "0"}
        )
        text = "\n".join((rule.message, *rule.details))
        if rule.passed is False:
            ET.SubElement(case, "failure", {"message": _x(rule.message), "type": "threshold"}).text = _x(text)
        elif rule.passed is None:
            ET.SubElement(case, "skipped", {"message": _x(rule.message)})
        else:
            ET.SubElement(case, "system-out").text = _x(text)
    if error:
        case = ET.SubElement(
            node, "testcase", {"name": "evaluation", "classname": "seglens.gate", "time": "0"}
        )
        ET.SubElement(case, "error", {"message": _x(error), "type": "run"}).text = _x(error)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


# --- command ----------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seglens gate", description=__doc__.split("\n\n")[0] if __doc__ else "")
    add_dataset_options(p)
    p.add_argument("--reference", required=True, help="the model in production (A)")
    p.add_argument("--candidate", required=True, help="the model to accept or refuse (B)")
    p.add_argument(
        "--max-miou-drop", type=float, default=0.5, help="mIoU points the candidate may lose (0.5)"
    )
    p.add_argument(
        "--max-class-drop", type=float, default=2.0, help="IoU points any checked class may lose (2)"
    )
    p.add_argument("--classes", help="comma-separated classes to check (default: all)")
    p.add_argument(
        "--max-latency-ratio", type=float, help="candidate/reference P50 limit (default: unchecked)"
    )
    p.add_argument("--junit", type=Path, help="write a JUnit XML report here")
    p.add_argument("--json", type=Path, help="write the gate result and the full run as JSON here")
    p.add_argument("--report", type=Path, help="write the comparison report (.html or .pdf) here")
    p.add_argument(
        "--require-confidence",
        type=_confidence,
        metavar="C",
        help="fail an mIoU drop past --max-miou-drop only when the paired bootstrap finds it significant at "
        "confidence C (e.g. 0.95); a set too small to tell passes and says so",
    )
    p.add_argument(
        "--max-skipped",
        type=nonnegative_int,
        default=0,
        help="images that may be left out (unreadable, no labels, a model failed) before the gate fails (0)",
    )
    add_run_options(p, cache_default=True)
    return p


def main(argv: Sequence[str] | None = None, *, loader: ModelLoader | None = None) -> int:
    """Entry point of `seglens gate`. `loader` opens a model file (tests inject a counting one)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(args_list)
    try:
        _check_targets(args)
    except SegLensError as exc:  # before any model runs; nothing could record the verdict anyway
        print(f"seglens gate: error: {exc}", file=sys.stderr)
        return ERROR
    start = time.perf_counter()
    try:
        outcome = _run(args, args_list, loader)
    except SegLensError as exc:
        outcome = _Outcome([], None, None, str(exc), {})
    seconds = time.perf_counter() - start
    return _finish(args, outcome, seconds)


@dataclass
class _Outcome:
    rules: list[RuleResult]
    document: dict[str, Any] | None
    limits: Thresholds | None
    error: str | None
    cache: dict[str, int]
    result: EvaluationResult | None = None  # the run, when there was one


def _check_targets(args: argparse.Namespace) -> None:
    from app.core.io.fileutil import check_output_file

    for path, what in ((args.junit, "JUnit file"), (args.json, "JSON file"), (args.report, "report")):
        if path is not None:
            check_output_file(path, what)


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a confidence is a number like 0.95, not {text!r}") from None
    if not 0.5 <= value < 1:
        raise argparse.ArgumentTypeError(f"a confidence lies in [0.5, 1), e.g. 0.95, not {value:g}")
    return value


def _thresholds(args: argparse.Namespace) -> Thresholds:
    classes = tuple(c.strip() for c in (args.classes or "").split(",") if c.strip())
    return Thresholds(
        args.max_miou_drop,
        args.max_class_drop,
        classes,
        args.max_latency_ratio,
        args.max_skipped,
        args.require_confidence,
    )


def _run(args: argparse.Namespace, argv: list[str], loader: ModelLoader | None) -> _Outcome:
    from app.evaluation.document import result_document
    from app.evaluation.progress import run_with_progress
    from app.evaluation.service import open_session
    from app.report.run import TopMasks, reproduce_settings

    limits = _thresholds(args)
    request = request_from_args(args, [args.reference, args.candidate], measure_memory=bool(args.report))
    keeper = TopMasks(5)
    with open_session(request, loader=loader) as session:
        for note in session.notes:
            print(note, file=sys.stderr)
        result = run_with_progress(session, quiet=args.quiet, report_skipped=not args.quiet, on_image=keeper)
    document = result_document(result)
    ref, cand = result.models
    stats = {
        "hits": sum(m.cache.hits for m in result.models if m.cache),
        "misses": sum(m.cache.misses for m in result.models if m.cache),
    }
    for role, entry in (("reference", ref), ("candidate", cand)):
        if not entry.images_evaluated:
            problem = f"nothing evaluated for the {role} {entry.info.name}"
            return _Outcome([], document, limits, problem, stats, result)
    unknown = [c for c in limits.classes if c not in ref.scheme.names]
    if unknown:
        known = ", ".join(ref.scheme.names)
        problem = f"unknown classes {', '.join(unknown)}; known: {known}"
        return _Outcome([], document, limits, problem, stats, result)
    if args.report:
        _write_report(args.report, result, reproduce_settings("seglens gate", argv), keeper)
    return _Outcome(check_rules(ref, cand, limits, result), document, limits, None, stats, result)


def _write_report(path: Path, result: EvaluationResult, settings: dict[str, str], keeper: TopMasks) -> None:
    from app.report.writer import write_report

    fmt = "pdf" if path.suffix.lower() == ".pdf" else "html"
    target = path if path.suffix else path.with_suffix(".html")
    write_report(result, target, formats=(fmt,), settings=settings, masks=keeper.mask)


def _finish(args: argparse.Namespace, outcome: _Outcome, seconds: float) -> int:
    broken = [r for r in outcome.rules if r.passed is False]
    code = ERROR if outcome.error else (FAIL if broken else PASS)
    for rule in outcome.rules:
        mark = {True: "PASS", False: "FAIL", None: "SKIP"}[rule.passed]
        print(f"{mark}  {rule.name}: {rule.message}")
        for line in rule.details:
            print(f"      {line}")
    error = outcome.error
    if error and outcome.result is not None:
        skipped = skipped_images(outcome.result)
        error = "\n".join((error, *(f"skipped {key}: {why}" for key, why in skipped.items())))
    if outcome.error:
        print(f"seglens gate: error: {error}", file=sys.stderr)
    elif broken:
        print(f"seglens gate: FAILED: {len(broken)} of {len(outcome.rules)} rules broken", file=sys.stderr)
    else:
        print("seglens gate: passed", file=sys.stderr)
    if args.junit:
        suite = f"seglens gate: {args.candidate} vs {args.reference}"
        atomic_write_bytes(args.junit, junit_xml(outcome.rules, suite=suite, seconds=seconds, error=error))
    if args.json:
        status = {PASS: "pass", FAIL: "fail", ERROR: "error"}[code]
        document = {
            "status": status,
            "exit_code": code,
            "error": outcome.error,
            "thresholds": asdict(outcome.limits) if outcome.limits else None,
            "rules": [asdict(r) for r in outcome.rules],
            "broken": [r.name for r in broken],
            "cache": outcome.cache,
            "seconds": round(seconds, 3),
            "run": outcome.document,
        }
        atomic_write_text(args.json, json.dumps(document, indent=2, allow_nan=False))
    return code
