"""Reports: the numbers first, then their rendering as Markdown and charts. No Kedro, no I/O.

- The rounds report (``rounds.md``, ``rounds.png``): ``summarize_rounds`` from every stage's
  ``<stage>_metrics.json`` dict (``baseline``, ``round_1``, ...), then ``rounds_markdown`` and ``rounds_chart``.
- The data report (``data_report.md``): ``data_report_markdown`` from the ``data_report.json`` numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from sewer_segmentation.reporting.plots import line_chart
from sewer_segmentation.stage import Stage
from sewer_segmentation.stats import paired_difference

#: Eval IoU below the baseline's by more than this is flagged at the top of the report.
WORSE_THAN_BASELINE = 0.01


def stage_number(name: str) -> int:
    """0 for the baseline, r for ``round_<r>`` (rounds sort by number: round_10 after round_9)."""
    return Stage.parse(name).number


def eval_score(stage: dict, predictor: str = "model", reference: str = "polygons", metric: str = "mean_iou") -> float:
    return stage["metrics"][predictor][reference][metric]


@dataclass
class StageRow:
    name: str
    mean_iou: float
    mean_dice: float
    pooled_iou: float
    validation_score: float | None
    box_validation_score: float | None  # the box masks of the validation images, scored the same way
    box_agreement: float | None  # agreement of the model's masks with the weak_holdout frames' boxes
    holdout_frames: int
    selection_score: float | None  # what stages are compared by (selection_signal)
    selection_signal: str | None
    improved_on_validation: bool | None
    handed_on: str | None  # a round: "trained" weights or its "start" (the round guard); None for the baseline
    vs_start: str  # a round's selection score minus its start's, with the standard error the guard used
    vs_baseline: float | None
    vs_previous: float | None
    started_from: str | None
    model_version: str | None


@dataclass
class CandidateRow:
    stage: str
    label: str
    selection_vs_polygons: float | None
    weak_vs_ground_truth: float | None
    used: bool


@dataclass
class RoundsSummary:
    stages: list[StageRow]
    warnings: list[str]
    candidates: list[CandidateRow]
    box_masks_vs_ground_truth: dict[str, float] = field(default_factory=dict)  # per round, synthetic data only
    trivial: dict[str, float] = field(default_factory=dict)  # eval IoU of box masks and all background
    oracle: dict[str, float] = field(default_factory=dict)  # per round, when the oracle ran
    failed_predictions: dict[str, int] = field(default_factory=dict)


def below_boxes_warning(name: str, stage: dict) -> str | None:
    """The warning for a stage whose model scores below its box masks on validation (None otherwise)."""
    if not stage.get("below_boxes_on_validation"):
        return None
    return (f"**{name} is worse than the box masks it was given** on validation ({_num(stage.get('best_validation_score'))} vs "
            f"{_num(stage.get('box_validation_score'))}): try more steps, a larger image_size, box supervision "
            "(a round with `final_training.weak_targets: both`, or `baseline_training.joint.enabled` for the baseline) "
            "or more hand-labelled images.")  # fmt: skip


def eval_difference_text(stage: dict, reference: dict) -> str:
    """`` (-0.016 ± 0.029 over 29 eval images: within 2 standard errors)``: the stage's mean eval IoU minus
    the reference's with the standard error of the per-image differences, so a drop can be told from the
    noise of the eval set; empty where per-image scores were not saved (stages from before 2026-12-06)."""
    paired = paired_difference(stage.get("eval_iou_per_image") or {}, reference.get("eval_iou_per_image") or {})
    if paired is None:
        return ""
    difference, error, images = paired
    verdict = "within 2 standard errors" if abs(difference) <= 2 * error else "beyond 2 standard errors"
    return f" ({difference:+.3f} ± {error:.3f} over {images} eval images: {verdict})"


def regression_warnings(stages: dict[str, dict], names: list[str]) -> list[str]:
    """Stages below their box masks on validation, rounds that did not improve on validation, and rounds
    whose eval IoU fell below the baseline's (reported, never used to choose anything)."""
    lines = [w for w in (below_boxes_warning(n, stages[n]) for n in names) if w]
    base = stages.get("baseline")
    for name in names:
        stage = stages[name]
        if name == "baseline":
            continue
        signal, start = stage.get("selection_signal") or "validation", stage.get("refined_from") or "the previous model"
        if stage.get("kept_initial_weights"):
            lines.append(f"**{name} handed on its start ({start})**: its trained weights were {stage.get('guard_reason') or 'not better'} "
                         f"({signal}).")  # fmt: skip
        elif (stage.get("guard_difference") or 0) < 0:
            lines.append(f"**{name} scored below its start ({start})** on {signal} ({_vs_start(stage)}) and was handed on as within the "
                         "noise of these images: compare eval below.")  # fmt: skip
        elif stage.get("improved_on_validation") is False:
            lines.append(f"**{name} did not improve on {start} ({signal})**.")
        if base is not None and eval_score(stage) < eval_score(base) - WORSE_THAN_BASELINE:
            lines.append(f"**{name} is worse than the baseline on eval**: mean IoU {eval_score(stage):.3f} vs {eval_score(base):.3f}"
                         f"{eval_difference_text(stage, base)}.")  # fmt: skip
    return lines


def reach_warning(stages: dict[str, dict], names: list[str]) -> str | None:
    """A warning when the stages' box agreements were counted up to different reaches (a project upgraded
    mid-way, or ``box_loss`` overrides in a round's ``training_overrides``): that column then compares
    unlike things. Each round's guard scores its start at its own reach, so the guard is unaffected."""
    scored = {n: stages[n]["weak_holdout"] for n in names if (stages[n].get("weak_holdout") or {}).get("box_agreement") is not None}
    reaches = {n: float(holdout.get("reach", 1.0)) for n, holdout in scored.items()}  # saved before reaches were recorded: 1
    if not reaches or max(reaches.values()) - min(reaches.values()) <= 0.005:
        return None
    listed = ", ".join(f"{n} {r:.3f}" for n, r in reaches.items())
    return (f"**The box agreements were counted up to different reaches** ({listed}): compare that column only between stages "
            "with the same reach (docs/training.md, section 4).")


def summarize_rounds(stages: dict[str, dict]) -> RoundsSummary:
    """Every number the report shows, from the metrics of each stage."""
    names = sorted(stages, key=lambda n: (stage_number(n), n))
    base = eval_score(stages["baseline"]) if "baseline" in stages else None
    rows, previous = [], None
    for name in names:
        stage, value = stages[name], eval_score(stages[name])
        rows.append(StageRow(
            name, value, eval_score(stage, metric="mean_dice"), eval_score(stage, metric="pooled_iou"),
            stage.get("best_validation_score"), stage.get("box_validation_score"),
            (stage.get("weak_holdout") or {}).get("box_agreement"), int((stage.get("weak_holdout") or {}).get("frames") or 0),
            stage.get("selection_score", stage.get("best_validation_score")), stage.get("selection_signal"), stage.get("improved_on_validation"),
            None if name == "baseline" else ("start" if stage.get("kept_initial_weights") else "trained"), _vs_start(stage),
            None if base is None or name == "baseline" else value - base, None if previous is None else value - previous,
            stage.get("refined_from"), stage.get("model_version"),
        ))  # fmt: skip
        previous = value
    summary = RoundsSummary(rows, [*regression_warnings(stages, names), *filter(None, [reach_warning(stages, names)])], [])
    if "baseline" in stages:
        summary.trivial = {p: eval_score(stages["baseline"], p) for p in ("box_mask", "all_background")}
    for name in (n for n in names if n != "baseline"):
        stage = stages[name]
        refinement = stage["refinement"]
        box = refinement.get("box_masks_vs_ground_truth", {}).get("mean_iou")
        if box is not None:
            summary.box_masks_vs_ground_truth[name] = box
        for label, scores in refinement["methods"].items():
            summary.candidates.append(CandidateRow(name, label, scores.get("selection_vs_polygons"),
                                                   scores.get("weak_vs_ground_truth", {}).get("mean_iou"), label == refinement["used"]))  # fmt: skip
        if stage.get("oracle", {}).get("enabled"):
            summary.oracle[name] = stage["oracle"]["eval"]["mean_iou"]
        if stage.get("failed_predictions"):
            summary.failed_predictions[name] = len(stage["failed_predictions"])
    return summary


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _vs_start(stage: dict) -> str:
    """``-0.012 ± 0.020``: the guard's difference (trained minus start selection score) and its standard error."""
    difference, error = stage.get("guard_difference"), stage.get("guard_standard_error")
    if difference is None:
        return ""
    return f"{difference:+.3f}" + ("" if error is None else f" ± {error:.3f}")


def rounds_markdown(summary: RoundsSummary) -> str:
    md = ["# Refinement rounds", ""]
    if summary.warnings:
        md += ["## Warnings", "", *(f"- {w}" for w in summary.warnings), ""]
    else:
        md += ["Every round scored at least as well as the model it started from (by its selection score).", ""]
    signals = sorted({r.selection_signal for r in summary.stages if r.selection_signal}) or ["validation"]
    frames = max((r.holdout_frames for r in summary.stages), default=0)
    holdout = f"the box agreement on {frames} weak_holdout frames" if frames else "no weak_holdout frames, so the validation score alone"
    described = {"validation": "the validation score on baseline_val", "box_agreement": holdout,
                 "combined": f"the mean of the validation score on baseline_val and {holdout}" if frames else holdout}  # fmt: skip
    md += ["Eval metrics of each stage's model against the hand-drawn polygons (same eval images). Each round hands on its trained "
           "weights or its start, as the round guard decides on the selection score "
           f"({'; '.join(f'{s}: {described.get(s, s)}' for s in signals)}; see docs/training.md, sections 3 and 8), and the newest "
           "stage is `best`; eval is reported, never used to choose.", "",
           "| stage | eval mean IoU | eval mean Dice | eval pooled IoU | validation score | box masks on validation "
           "| box agreement (weak_holdout) | selection score | vs start (± standard error) | handed on | vs baseline | vs previous "
           "| started from | model version |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in summary.stages:
        handed_on = {"trained": "trained weights", "start": "**its start**", None: ""}[r.handed_on]
        below = r.validation_score is not None and r.box_validation_score is not None and r.validation_score < r.box_validation_score
        boxes = "n/a" if r.box_validation_score is None else f"{'**' if below else ''}{r.box_validation_score:.3f}{'**' if below else ''}"
        md.append(f"| {r.name} | {r.mean_iou:.3f} | {r.mean_dice:.3f} | {r.pooled_iou:.3f} | {_num(r.validation_score)} | {boxes} "
                  f"| {_num(r.box_agreement)} | {_num(r.selection_score)} | {r.vs_start} | {handed_on} "
                  f"| {_num(r.vs_baseline, True)} | {_num(r.vs_previous, True)} | {r.started_from or ''} | {r.model_version} |")  # fmt: skip
    if summary.trivial:
        md += ["", f"Trivial predictors on the same images: box mask {summary.trivial['box_mask']:.3f}, "
                   f"all background {summary.trivial['all_background']:.3f} (mean IoU)."]  # fmt: skip

    md += ["", "## How good were the training masks?", "",
           "Each candidate refinement, scored by soft IoU with the hand-drawn polygons of baseline_val (the images "
           "`auto` chooses on), and, on synthetic data only, by mean IoU with the true masks of the weak pool "
           "(never used to choose).", "",
           "| round | candidate | agreement on baseline_val | weak pool vs ground truth | used |", "|---|---|---|---|---|"]  # fmt: skip
    for stage in dict.fromkeys(c.stage for c in summary.candidates):
        if stage in summary.box_masks_vs_ground_truth:
            md.append(f"| {stage} | box masks (no refinement) | | {summary.box_masks_vs_ground_truth[stage]:.3f} | |")
        for c in (c for c in summary.candidates if c.stage == stage):
            md.append(f"| {stage} | {c.label} | {_num(c.selection_vs_polygons)} | {_num(c.weak_vs_ground_truth)} | {'**yes**' if c.used else ''} |")
    if summary.oracle:
        ious = {r.name: r.mean_iou for r in summary.stages}
        md += ["", "## Oracle (ground-truth masks, same start, model and budget)", "", "| round | oracle eval IoU | round eval IoU / oracle |", "|---|---|---|"]
        md += [f"| {n} | {o:.3f} | {ious[n] / o:.1%} |" for n, o in summary.oracle.items()]
    if summary.failed_predictions:
        md += ["", "## Failed predictions", ""]
        md += [f"- {n}: {k} images could not be predicted (see round_N_metrics.json)" for n, k in summary.failed_predictions.items()]
    md += ["", "Figures: `rounds.png`, `round_<r>_refinement_gallery.png`, `round_<r>_prediction_gallery.png`.", ""]
    return "\n".join(md)


def rounds_chart(summary: RoundsSummary) -> np.ndarray:
    return line_chart(rounds_series(summary), "Baseline (0) and refinement rounds", "round", "mean IoU (eval) / score")


def rounds_series(summary: RoundsSummary) -> dict[str, tuple[list, list]]:
    """The lines of ``rounds.png``: eval IoU per stage, the box masks', the refined masks' (synthetic), the
    oracle's, and the two scores that chose the stages (validation, weak_holdout box agreement)."""
    steps = [stage_number(r.name) for r in summary.stages]
    series = {"eval IoU (model vs polygons)": (steps, [r.mean_iou for r in summary.stages])}
    if summary.trivial:
        series["eval IoU (box masks)"] = (steps, [summary.trivial["box_mask"]] * len(steps))
    used = [(stage_number(c.stage), c.weak_vs_ground_truth) for c in summary.candidates if c.used and c.weak_vs_ground_truth is not None]
    if used:
        series["refined masks vs truth (weak pool)"] = ([s for s, _ in used], [v for _, v in used])
    if summary.oracle:
        series["oracle eval IoU"] = ([stage_number(n) for n in summary.oracle], list(summary.oracle.values()))
    # what chose the stages, beside what eval says of them
    for label, values in (("validation score", [r.validation_score for r in summary.stages]),
                          ("box agreement (weak_holdout)", [r.box_agreement for r in summary.stages])):  # fmt: skip
        known = [(step, v) for step, v in zip(steps, values, strict=True) if v is not None]
        if known:
            series[label] = ([step for step, _ in known], [v for _, v in known])
    return series


# --------------------------------------------------------------------------------------------------
# The data report (data_engineering)
# --------------------------------------------------------------------------------------------------

COARSENESS_LABELS = {
    "box_vs_polygon_iou": "box mask vs hand-drawn polygons",
    "box_vs_truth_iou": "box mask vs ground truth (synthetic)",
    "polygon_vs_truth_iou": "polygons vs ground truth (synthetic)",
}


def data_report_markdown(report: dict) -> str:
    """``data_report.md`` from the numbers of ``data_report.json`` (nothing else)."""
    md = [f"# Data report: `{report['dataset']}`", "", "## Splits", "", "| split | images |", "|---|---|"]
    md += [f"| {s} | {n} |" for s, n in report["split_counts"].items()]
    kept, dropped = report["regions_kept_per_class"], report["regions_dropped_per_class"]
    md += ["", "## Classes (regions)", "", "| class | kept | dropped |", "|---|---|---|"]
    md += [f"| {name} | {kept.get(name, 0)} | {dropped.get(name, 0)} |" for name in sorted(set(kept) | set(dropped))]
    md += ["", "## How coarse are the boxes?", "", "Mean IoU of the filled box masks against finer masks:", ""]
    md += [f"- {COARSENESS_LABELS[k]}: **{v['mean']:.3f}** over {v['images']} images" for k, v in report["box_coarseness"].items()]
    clusters = report["clusters"]
    md += ["", f"## Duplicates: {len(clusters)} clusters, {report['duplicates_dropped']} images dropped", ""]
    if clusters:
        md += ["| cluster | size | kept | members |", "|---|---|---|---|"]
        md += [f"| {c['cluster_id']} | {c['size']} | {c['representative']} | {', '.join(json.loads(c['members']))} |" for c in clusters]
    excluded = report["excluded_files"]
    md += ["", f"## Excluded or flagged files: {len(excluded)}", ""]
    if excluded:
        md += ["| file | severity | reason |", "|---|---|---|"]
        md += [f"| `{e['file']}` | {e['severity']} | {e['reason']} |" for e in excluded]
    md += ["", "Galleries: `data_report_samples.png`, `data_report_duplicates.png`.", ""]
    return "\n".join(md)
