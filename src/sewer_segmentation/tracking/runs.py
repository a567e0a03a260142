"""What MLflow shows of a run beyond kedro-mlflow's own logging: comparable stages and a readable run.

- Every training stage (baseline, round r) gets a child run nested under the pipeline's run, named after
  the stage: its parameters, its training curves, its logged model and its metrics, with the same metric
  names in every stage (``eval.model.polygons.mean_iou``, ``validation.best_score``). Stages compare side
  by side in the MLflow UI and with ``mlflow.search_runs``, and MLflow links each stage's metrics to that
  stage's model only (MLflow 3 links a run's metrics to the models logged in that run).
- The refinement candidates' scores are logged as metrics of the round's run.
- The pipeline's run is named after what ran (``refine · synthetic · round 2``) and tagged with the code
  version (the git commit where there is one).

Pure functions here; ``hooks.StageRunsHook`` calls them at the right moments.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sewer_segmentation import __version__

#: The node whose outputs close a training stage (``<stage>.evaluate_on_eval``): its first output is the
#: stage's eval report.
STAGE_END_NODE = "evaluate_on_eval"
#: Nodes whose output is a round's refinement scores (``refinement_quality``).
REFINEMENT_SCORE_NODES = ("score_refinement_methods", "score_merged_refinement")


#: Tag of every pipeline run: ``<host>:<pid>`` of the process that runs it, so that a later run can tell a
#: run left RUNNING by a killed process (kill -9, a power cut) from one still going.
PROCESS_TAG = "sewer.process"


def process_tag() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_gone(tag: str, host: str) -> bool:
    """Whether the process a run's tag names is gone; only processes of this host can be told."""
    tag_host, _, pid = tag.rpartition(":")
    if tag_host != host or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


def mark_dead_runs_killed(client, experiment_id: str, current_run_id: str | None = None) -> list[str]:
    """Runs of the experiment still RUNNING whose process on this host is gone are ended as KILLED (they
    would otherwise show as running forever); returns their ids."""
    host = socket.gethostname()
    killed = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'"):
        tag = run.data.tags.get(PROCESS_TAG)
        if run.info.run_id != current_run_id and tag and _process_gone(tag, host):
            client.set_terminated(run.info.run_id, status="KILLED")
            killed.append(run.info.run_id)
    return killed


def end_active_runs_killed() -> None:
    """Ctrl-C (or Lightning's ``sys.exit(1)`` after one): the open runs end KILLED, not FINISHED, which is
    what MLflow's exit handler would record."""
    import mlflow  # noqa: PLC0415

    while mlflow.active_run() is not None:
        mlflow.end_run(status="KILLED")


#: Set it to put a name on runs (``mlflow.user``); without it no user name leaves the machine.
USER_VARIABLE = "SEWER_SEGMENTATION_MLFLOW_USER"


def portable_path(path: str | Path, project_path: Path) -> str:
    """A path as runs record it: relative to the project when inside it, else its last two parts (no
    home folders or user names in a shared tracking server)."""
    path, project = Path(path).expanduser().absolute(), Path(project_path).absolute()
    if path.is_relative_to(project):
        return str(path.relative_to(project)) or "."
    return str(Path(*path.parts[-2:])) if len(path.parts) > 1 else str(path)


def private_tags(tags: dict[str, str], project_path: Path) -> dict[str, str]:
    """The run tags that would carry absolute paths or the user name (kedro-mlflow's ``project_path``,
    MLflow's ``mlflow.source.name`` and ``mlflow.user``), rewritten: paths relative to the project, the
    user name only when ``SEWER_SEGMENTATION_MLFLOW_USER`` names one."""
    out = {"mlflow.user": os.environ.get(USER_VARIABLE, "")}
    if "project_path" in tags:
        out["project_path"] = portable_path(tags["project_path"], project_path)
    if tags.get("mlflow.source.name"):
        out["mlflow.source.name"] = Path(tags["mlflow.source.name"]).name
    return out


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
    for name, value in (report.get("weak_holdout") or {}).items():  # agreement with the held-out frames' boxes (not per frame)
        if isinstance(value, int | float):
            metrics[f"weak_holdout.{name}"] = float(value)
    for key, name in (("selection_score", "score"), ("guard_difference", "vs_start"), ("guard_standard_error", "vs_start_standard_error")):
        if report.get(key) is not None:  # the round guard's comparison with the start
            metrics[f"selection.{name}"] = float(report[key])
    return metrics


def stage_tags(report: dict, parent_tags: dict[str, str]) -> dict[str, str]:
    tags = {key: parent_tags[key] for key in ("dataset", "round", "code_version") if key in parent_tags}
    tags["stage"] = str(report.get("stage"))
    # set at creation, so MLflow stores no user name and no absolute path for the stage's run
    tags.update(private_tags({"mlflow.source.name": sys.argv[0] if sys.argv and sys.argv[0] else "kedro"}, Path.cwd()))
    for key in ("model_version", "selected_by", "selection_signal", "refined_from", "improved_on_validation", "below_boxes_on_validation"):
        if report.get(key) is not None:
            tags[key] = str(report[key])
    if report.get("refined_from") is not None:
        tags["handed_on"] = "start" if report.get("kept_initial_weights") else "trained"
    return tags


def stage_run_id(stage: str) -> str | None:
    """The child run of ``stage`` under the active pipeline run: found by its tags, else created (named
    after the stage, tagged with the parent's dataset, round and code version). None without an active
    run (tracking disabled). When the active run is already that child, its own id."""
    import mlflow  # noqa: PLC0415

    active = mlflow.active_run()
    if active is None:
        return None
    client = mlflow.MlflowClient()
    tags = client.get_run(active.info.run_id).data.tags
    if tags.get("stage") == stage and "mlflow.parentRunId" in tags:
        return active.info.run_id
    parent = active.info.run_id
    found = client.search_runs([active.info.experiment_id], f"tags.mlflow.parentRunId = '{parent}' and tags.stage = '{stage}'", max_results=1)
    if found:
        return found[0].info.run_id
    child_tags = {"mlflow.parentRunId": parent, "mlflow.runName": stage, **stage_tags({"stage": stage}, tags)}
    return client.create_run(active.info.experiment_id, run_name=stage, tags=child_tags).info.run_id


@contextmanager
def stage_run(stage: str) -> Iterator[str | None]:
    """The stage's child run (``stage_run_id``) as the active run inside the block; the pipeline's run is
    active again after it. Yields the child's id (None and nothing changes when tracking is off)."""
    import mlflow  # noqa: PLC0415

    run_id = stage_run_id(stage)
    active = mlflow.active_run()
    if run_id is None or active.info.run_id == run_id:
        yield run_id
        return
    with mlflow.start_run(run_id=run_id, nested=True):
        yield run_id


def flat_params(values: dict, prefix: str = "") -> dict[str, str]:
    """Nested parameters as MLflow params with dotted keys (``training.box_loss.fill``), values as text."""
    out = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat_params(value, f"{name}."))
        else:
            out[name] = str(value)[:6000]  # MLflow's limit on a param value
    return out


def stage_params(plan, seed: int) -> dict[str, str]:
    """What a stage trained with (its ``TrainingPlan``): model, training, image size, set sizes, seed."""
    params = flat_params({"model": plan.model_config, "training": plan.training, "image_size": plan.image_size})
    params.update({"seed": str(seed), "train_images": str(len(plan.train)), "val_images": str(len(plan.val)),
                   "box_supervised_images": str(sum(s.box_supervised for s in plan.train)),
                   "fine_tuned_from": str((plan.starts_from or {}).get("stage", "none"))})  # fmt: skip
    return params


def version_description(report: dict, trained: dict, tags: dict[str, str]) -> str:
    """A registered version's description: what it is, on what it was trained (``trained``: the model's
    metadata), and how it scored."""
    model = report.get("metrics", {}).get("model", {})
    eval_iou = (model.get("polygons") or next(iter(model.values()), {})).get("mean_iou")
    lines = [f"{tags.get('stage', report.get('stage'))} of dataset {tags.get('dataset', '?')} (code {tags.get('code_version', '?')})"]
    if report.get("best_validation_score") is not None:
        lines.append(f"validation ({report.get('selected_by', 'selection score')}): {float(report['best_validation_score']):.4f}")
    if eval_iou is not None:
        lines.append(f"eval mean IoU: {float(eval_iou):.4f} on {report.get('eval_images', '?')} images")
    if trained.get("train_images") is not None:
        lines.append(f"trained on {trained['train_images']} images ({trained.get('box_supervised_images', 0)} of them through their boxes), "
                     f"{trained.get('steps', '?')} steps")  # fmt: skip
    return "\n".join(lines)


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
