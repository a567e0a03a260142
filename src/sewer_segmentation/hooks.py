"""Project hooks."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from kedro.framework.hooks import hook_impl

from sewer_segmentation.datasets import atomic_write_bytes
from sewer_segmentation.errors import ConfigurationError
from sewer_segmentation.stages import parse_round
from sewer_segmentation.synthetic import SyntheticConfig, write_dataset, write_inference_samples

DEFAULT_INFERENCE_FOLDER = "data/01_raw/inference"

logger = logging.getLogger(__name__)


class SyntheticDataHook:
    """Generate the bundled synthetic dataset before a run when it is selected and missing.

    ``kedro run`` on a fresh clone then works with no data at hand. The dataset is written under a
    temporary name and renamed into place, so an interrupted generation is simply redone next time.
    """

    def __init__(self) -> None:
        self._params: dict = {}
        self._project_path = Path.cwd()

    @hook_impl
    def after_context_created(self, context) -> None:
        self._params = context.params
        self._project_path = Path(context.project_path)

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        names = run_params.get("pipeline_names") or ["__default__"]
        if "__default__" in names and parse_round(self._params.get("round", 1)) != 1:
            raise ConfigurationError(
                "plain `kedro run` trains the baseline and refinement round 1; "
                "for a later round run `kedro run --pipeline=refine --params=round:N`"
            )
        parse_round(self._params.get("round", 1))  # round:abc or round:0 fail here, in one line
        self._ensure_inference_samples()
        dataset = self._params.get("dataset")
        if dataset != "synthetic":
            return
        raw_dir = self._project_path / "data" / "01_raw" / dataset
        if raw_dir.exists():
            return
        truth_dir = raw_dir.parent / f"{dataset}_ground_truth"
        if truth_dir.exists():  # left from an earlier dataset: it must match the frames
            logger.info("Removing stale %s", truth_dir)
            shutil.rmtree(truth_dir)
        options = dict(self._params.get("synthetic") or {})
        logger.info("Generating the synthetic dataset in %s (%s)", raw_dir, options)
        summary = write_dataset(SyntheticConfig(**options), raw_dir, truth_dir)
        logger.info("Synthetic dataset written: %s", summary)

    def _ensure_inference_samples(self) -> None:
        """The default predict folder is filled with sample frames when it does not exist."""
        folder = (self._params.get("predict") or {}).get("input_folder")
        if folder != DEFAULT_INFERENCE_FOLDER or (self._project_path / folder).exists():
            return
        count = write_inference_samples(self._project_path / folder)
        logger.info("Wrote %d sample frames to %s for the predict pipeline", count, folder)


class MlflowTagsHook:
    """Tag the MLflow run that kedro-mlflow opened with the pipeline, round and dataset.

    Tags are set before the first node runs: kedro-mlflow opens the run in its own
    ``before_pipeline_run``, whose order relative to ours is not guaranteed.
    """

    def __init__(self) -> None:
        self._tags: dict[str, str] | None = None
        self._params: dict = {}

    @hook_impl
    def after_context_created(self, context) -> None:
        self._params = context.params

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        names = run_params.get("pipeline_names") or ["__default__"]
        self._tags = {
            "pipeline": ",".join(names),
            "round": str(self._params.get("round", 1)),
            "dataset": str(self._params.get("dataset")),
        }

    @hook_impl
    def before_node_run(self, node, catalog, inputs, is_async, run_id) -> None:
        if self._tags is None:
            return
        import mlflow  # noqa: PLC0415

        if mlflow.active_run() is not None:
            mlflow.set_tags(self._tags)
            self._tags = None


class NodeTimingHook:
    """Log how long each node took and write ``data/08_reporting/<dataset>/run_timings.json`` after each run
    (seconds per node and per pipeline namespace): where the time goes, without a profiler."""

    def __init__(self) -> None:
        self._project_path = Path.cwd()
        self._dataset = ""
        self._started: dict[str, float] = {}
        self._durations: dict[str, float] = {}
        self._run_start = 0.0

    @hook_impl
    def after_context_created(self, context) -> None:
        self._project_path = Path(context.project_path)
        self._dataset = str(context.params.get("dataset", ""))

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        self._durations, self._run_start = {}, time.perf_counter()

    @hook_impl
    def before_node_run(self, node, catalog, inputs, is_async, run_id) -> None:
        self._started[node.name] = time.perf_counter()

    @hook_impl
    def after_node_run(self, node, catalog, inputs, outputs, is_async, run_id) -> None:
        seconds = time.perf_counter() - self._started.pop(node.name, time.perf_counter())
        self._durations[node.name] = round(seconds, 3)
        logger.info("%s took %.1f s", node.name, seconds)

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        by_namespace: dict[str, float] = {}
        for name, seconds in self._durations.items():
            namespace = name.split(".", 1)[0] if "." in name else "(none)"
            by_namespace[namespace] = round(by_namespace.get(namespace, 0.0) + seconds, 3)
        summary = {
            "pipelines": run_params.get("pipeline_names") or ["__default__"],
            "total_seconds": round(time.perf_counter() - self._run_start, 3),
            "seconds_by_namespace": by_namespace,
            "seconds_by_node": self._durations,
        }
        atomic_write_bytes(self._project_path / "data/08_reporting" / self._dataset / "run_timings.json", json.dumps(summary, indent=2).encode())
