"""What MLflow shows of a run beyond kedro-mlflow's own logging: comparable stages and a readable run.

- Every training stage (baseline, round r) gets a child run nested under the pipeline's run, named after
  the stage, with the same metric names in every stage (``eval.model.polygons.mean_iou``,
  ``validation.best_score``): stages compare side by side in the MLflow UI and with ``mlflow.search_runs``.
- The refinement candidates' scores are logged as metrics of the round's run.
- The pipeline's run is named after what ran (``refine · synthetic · round 2``) and tagged with the code
  version (the git commit where there is one).

Pure functions here; ``hooks.StageRunsHook`` calls them at the right moments.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from sewer_segmentation import __version__

#: The node whose outputs close a training stage (``<stage>.evaluate_on_eval``): its first output is the
#: stage's eval report.
STAGE_END_NODE = "evaluate_on_eval"
#: Nodes whose output is a round's refinement scores (``refinement_quality``).
REFINEMENT_SCORE_NODES = ("score_refinement_methods", "score_merged_refinement")


def metric_name(text: str) -> str:
    """MLflow keys allow letters, digits, ``_ - . / `` and space: ``threshold@0.3`` -> ``threshold_0.3``."""
    return re.sub(r"[^\w.\-/ ]", "_", text)


def stage_metrics(report: dict) -> dict[str, float]:
    """A stage's eval report as metrics whose names are the same in every stage."""
    metrics = {
        f"eval.{predictor}.{reference}.{name}": float(value)
        for predictor, by_reference in report["metrics"].items()
        for reference, values in by_reference.items()
        for name, value in values.items()
        if isinstance(value, int | float)
    }
    if report.get("best_validation_score") is not None:
        metrics["validation.best_score"] = float(report["best_validation_score"])
    if report.get("box_validation_score") is not None:  # the box masks as a predictor, scored the same way
        metrics["validation.box_masks_score"] = float(report["box_validation_score"])
    return metrics


def stage_tags(report: dict, parent_tags: dict[str, str]) -> dict[str, str]:
    tags = {key: parent_tags[key] for key in ("dataset", "round", "code_version") if key in parent_tags}
    tags["stage"] = str(report.get("stage"))
    for key in ("model_version", "selected_by", "refined_from", "improved_on_validation", "below_boxes_on_validation"):
        if report.get(key) is not None:
            tags[key] = str(report[key])
    return tags


def refinement_metrics(quality: dict) -> dict[str, float]:
    """Each candidate's agreement with the polygons of baseline_val (and, on synthetic data, its weak-pool
    masks against ground truth), under ``refinement.<candidate>.``."""
    out = {}
    for label, scores in quality.get("methods", {}).items():
        prefix = f"refinement.{metric_name(label)}"
        if scores.get("selection_vs_polygons") is not None:
            out[f"{prefix}.selection_vs_polygons"] = float(scores["selection_vs_polygons"])
        truth = scores.get("weak_vs_ground_truth", {}).get("mean_iou")
        if truth is not None:
            out[f"{prefix}.weak_vs_ground_truth"] = float(truth)
    return out


def run_name(pipelines: list[str], dataset: str, round_number: int | str) -> str:
    """``__default__ · synthetic · round 1``, ``baseline · Deposition``: what ran, on what."""
    names = ",".join(pipelines)
    rounds = not set(pipelines) <= {"data_engineering", "baseline", "baseline_training", "predict"}
    return f"{names} · {dataset}" + (f" · round {round_number}" if rounds else "")


def code_version(project_path: Path) -> str:
    """The git commit of the project (``+dirty`` with uncommitted changes), else the package version."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_path, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return __version__
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=project_path,
                               capture_output=True, text=True, timeout=10)  # fmt: skip
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return __version__
