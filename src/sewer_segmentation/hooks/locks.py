"""One run at a time per dataset and training stage (``io/locks.py``)."""

from __future__ import annotations

from pathlib import Path

from kedro.framework.hooks import hook_impl

from sewer_segmentation.hooks.context import RunContext
from sewer_segmentation.hooks.tracking import end_mlflow_run_failed
from sewer_segmentation.io.locks import StageLock
from sewer_segmentation.stage import Stage


class StageLockHook(RunContext):
    """One run at a time per dataset and training stage (``io/locks.py``): a run that trains the
    baseline or round r takes that stage's lock before any node runs, and a second such run stops at
    once naming the holder (or waits ``run_lock_wait_seconds``). Released when the run ends."""

    def __init__(self) -> None:
        super().__init__()
        self._locks: list = []

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        names = {node.name for node in pipeline.nodes}
        stages = [stage for stage, node in (("baseline", "baseline.train_model"), ("round", "round.train_model")) if node in names]
        dataset = str(self.params.get("dataset"))
        # beside the dataset's models: the catalog's data/06_models/<dataset>/baseline, one folder up
        models_root = Path(self.location("baseline.model") or f"data/06_models/{dataset}/baseline").parent.parent
        wait = float(self.params.get("run_lock_wait_seconds") or 0)
        try:
            for stage in stages:
                name = Stage.round(self.params.get("round")).name if stage == "round" else stage
                lock = StageLock(models_root, dataset, name, wait)
                lock.acquire()
                self._locks.append(lock)
        except Exception:
            self._release()
            end_mlflow_run_failed()  # kedro-mlflow may have opened it already; no error hook follows
            raise

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        self._release()

    @hook_impl
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        self._release()

    def _release(self) -> None:
        while self._locks:
            self._locks.pop().release()


