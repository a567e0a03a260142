"""The few lines printed at the end of a run: what was produced, the key metrics per stage, the MLflow
run, and the command to try next. Pure functions; ``hooks.RunSummaryHook`` gathers the inputs."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from sewer_segmentation.reporting.reports import eval_difference_text


def output_folders(paths: list[str], project: Path) -> tuple[list[str], list[str], list[str]]:
    """Output file and folder paths -> (the distinct folders they fall in, the Markdown reports among
    them, the galleries among them), relative to the project. A run writes hundreds of files: the summary
    says where, and names what a person opens first. Folders are ``data/<layer>/<dataset>/``, and
    ``data/06_models/<dataset>/<stage>/`` for models."""
    folders: list[str] = []
    reports: list[str] = []
    galleries: list[str] = []
    for path in paths:
        try:
            relative = PurePosixPath(Path(path).resolve().relative_to(project.resolve()).as_posix())
        except ValueError:
            relative = PurePosixPath(path)
        parts = relative.parts
        if relative.suffix == ".md":
            reports.append(str(relative))
        if relative.name.endswith("gallery.png"):
            galleries.append(str(relative))
        depth = 4 if len(parts) > 1 and parts[1] == "06_models" else 3
        folder = str(PurePosixPath(*parts[:depth])) + "/" if parts[:1] == ("data",) and len(parts) > depth else str(relative)
        if folder not in folders:
            folders.append(folder)
    return sorted(folders), sorted(reports), sorted(galleries)


def stage_line(stage: str, metrics: dict) -> str:
    """``round_1: eval mean IoU 0.705 (box masks 0.541), improved (combined)``."""
    summary = metrics.get("metrics", {})
    model = summary.get("model", {}).get("polygons", {}).get("mean_iou")
    box = summary.get("box_mask", {}).get("polygons", {}).get("mean_iou")
    text = f"{stage}: eval mean IoU {model:.3f}" if model is not None else f"{stage}: no eval metrics"
    if box is not None:
        text += f" (box masks {box:.3f})"
    signal = metrics.get("selection_signal") or "validation"
    if metrics.get("kept_initial_weights"):
        text += f", DID NOT improve ({signal}; its starting weights were handed on)"
    elif (metrics.get("guard_difference") or 0) < 0:
        text += f", SCORED BELOW ITS START ({signal} {metrics['guard_difference']:+.3f}; handed on as within the noise: compare eval)"
    elif metrics.get("improved_on_validation") is False:
        text += f", did not improve ({signal})"
    elif metrics.get("improved_on_validation"):
        text += f", improved ({signal})"
    method = (metrics.get("refinement") or {}).get("method")
    if method:
        text += f"; refinement {method}"
    if metrics.get("below_boxes_on_validation"):
        text += (f"; WORSE THAN THE BOX MASKS on validation ({metrics['best_validation_score']:.3f} vs {metrics['box_validation_score']:.3f}): "
                 "try more steps, a larger image_size, box supervision (a round with final_training.weak_targets=both, "
                 "or baseline_training.joint.enabled=true) or more hand labels")  # fmt: skip
    return text


def next_commands(pipelines: list[str], round_number: int, failed: bool) -> list[str]:
    if failed:
        return ["fix the error above, then run the same command again (finished outputs are kept)"]
    ran = set(pipelines)
    if ran & {"refine", "final_training"}:
        steps = [f"kedro run --pipeline=refine --params=round:{round_number + 1}"]
    elif ran & {"__default__"}:
        steps = ["kedro run --pipeline=refine --params=round:2"]
    elif ran & {"baseline", "baseline_training"}:
        steps = ["kedro run --pipeline=refine --params=round:1"]
    elif ran & {"data_engineering"}:
        steps = ["kedro run --pipeline=baseline"]
    else:
        steps = []
    return steps + ["kedro viz", "mlflow ui --backend-store-uri sqlite:///mlflow.db"]


def _eval_iou(metrics: dict) -> float | None:
    return (metrics.get("metrics") or {}).get("model", {}).get("polygons", {}).get("mean_iou")


def below_baseline_lines(stages: dict[str, dict], baseline: dict | None) -> list[str]:
    """A line for each round of this run whose eval IoU is below the baseline's: rounds are chosen on
    validation and the weak_holdout boxes, never on eval, so eval is where a round that hurt shows."""
    base = baseline or stages.get("baseline") or {}
    reference = _eval_iou(base)
    if reference is None:
        return []
    lines = []
    for stage, metrics in stages.items():
        score = _eval_iou(metrics)
        if stage != "baseline" and score is not None and score < reference:
            # two lines: the log keeps lines under MAX_LOG_LINE characters, and the advice must not be cut
            lines.append(f"{stage} IS WORSE THAN THE BASELINE ON EVAL: {score:.3f} vs {reference:.3f}{eval_difference_text(metrics, base)}")
            lines.append("  it was chosen on validation and the weak_holdout boxes; rounds.md compares every stage; "
                         "`kedro run --pipeline=predict --params=predict_model=baseline` predicts with the baseline")  # fmt: skip
    return lines


def summary_lines(
    pipelines: list[str], dataset: str, seconds: float, folders: tuple[list[str], list[str]], stages: dict[str, dict],
    mlflow_run: str | None, experiment: str | None, round_number: int, failed: bool = False, baseline: dict | None = None,
) -> list[str]:  # fmt: skip
    """``baseline``: the baseline's metrics when this run trained only a round (its eval IoU is the reference)."""
    what = ",".join(pipelines)
    lines = [f"Run summary: pipeline {what}, dataset {dataset}, {'FAILED after' if failed else 'finished in'} {seconds:.0f} s"]
    where, reports, galleries = folders
    if where:
        lines.append("  outputs in: " + ", ".join(where))
    if reports:
        lines.append("  reports: " + ", ".join(reports))
    if galleries:
        lines.append("  galleries: " + ", ".join(galleries))
    lines += [f"  {stage_line(stage, metrics)}" for stage, metrics in stages.items()]
    lines += [f"  {line}" for line in below_baseline_lines(stages, baseline)]
    if mlflow_run:
        lines.append(f"  MLflow: run {mlflow_run}" + (f" in experiment {experiment}" if experiment else ""))
    lines += [f"  next: {command}" for command in next_commands(pipelines, round_number, failed)]
    return lines
