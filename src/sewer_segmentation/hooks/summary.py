"""The summary that ends every run: where the outputs went, each trained stage's eval metrics, the MLflow
run and the next command (``reporting/run_summary.py`` writes the lines)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from kedro.framework.hooks import hook_impl

from sewer_segmentation.hooks.context import RunContext

logger = logging.getLogger(__name__)

#: Outputs whose JSON holds a stage's eval metrics, and the stage they belong to.
STAGE_METRICS = {"baseline.metrics": "baseline", "round.metrics": "round"}


class RunSummaryHook(RunContext):
    """End every run with a short summary: where the outputs went, the eval metrics of each stage it
    trained, the MLflow run and the next command to try (also after a failure, without the metrics)."""

    def __init__(self) -> None:
        super().__init__()
        self._started = 0.0
        self._mlflow: tuple[str, str | None] | None = None

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        self._started, self._mlflow = time.perf_counter(), None

    @hook_impl
    def after_node_run(self, node, catalog, inputs, outputs, is_async, run_id) -> None:
        if self._mlflow is None:  # kedro-mlflow's run, while it is open
            import mlflow  # noqa: PLC0415

            run = mlflow.active_run()
            if run is not None:
                experiment = mlflow.get_experiment(run.info.experiment_id)
                self._mlflow = (run.info.run_id, experiment.name if experiment else None)

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        self._log(run_params, pipeline, catalog, failed=False)

    @hook_impl
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        self._log(run_params, pipeline, catalog, failed=True)

    def _log(self, run_params, pipeline, catalog, failed: bool) -> None:
        from sewer_segmentation.reporting.run_summary import output_folders, summary_lines  # noqa: PLC0415

        outputs = sorted(pipeline.all_outputs())
        paths = []
        for name in outputs:
            path = self.location(name)
            if path and (not failed or Path(path).exists()):
                paths.append(str(path))
        stages = {}
        for name, stage in STAGE_METRICS.items():
            if name in outputs and not failed:
                metrics = catalog.load(name)
                stages[metrics.get("stage", stage)] = metrics
        # a run of a round alone compares it with the saved baseline's eval IoU
        baseline = catalog.load("baseline.metrics") if stages and "baseline" not in stages and catalog.exists("baseline.metrics") else None
        run = self._mlflow or (None, None)
        lines = summary_lines(
            run_params.get("pipeline_names") or ["__default__"], str(self.params.get("dataset")),
            time.perf_counter() - self._started, output_folders(paths, self.project_path), stages,
            run[0], run[1], int(self.params.get("round", 1)), failed, baseline,
        )  # fmt: skip
        logger.info("\n".join(lines))
