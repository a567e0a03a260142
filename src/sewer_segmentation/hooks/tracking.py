"""MLflow: kedro-mlflow's hook with typed parameters, the run's tags, one child run per training stage, and
the predict pipeline's own run."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from pathlib import Path

from kedro.framework.hooks import hook_impl

from sewer_segmentation.hooks.context import RunContext
from sewer_segmentation.params import plain_params

logger = logging.getLogger(__name__)

#: The node of a training stage that trains (``<stage>.train_model``): it runs inside the stage's child run.
TRAIN_NODE = "train_model"


def end_mlflow_run_failed() -> None:
    """A hook that fails before any node ends kedro-mlflow's run as FAILED (no error hook follows it)."""
    import mlflow  # noqa: PLC0415

    if mlflow.active_run() is not None:
        mlflow.end_run("FAILED")


class MlflowTagsHook(RunContext):
    """Tag the MLflow run that kedro-mlflow opened with the pipeline, round and dataset.

    Tags are set before the first node runs: kedro-mlflow opens the run in its own
    ``before_pipeline_run``, whose order relative to ours is not guaranteed.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pipelines: list[str] | None = None  # the run's pipelines, until its tags are set

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        self._pipelines = run_params.get("pipeline_names") or ["__default__"]

    @hook_impl
    def before_node_run(self, node, catalog, inputs, is_async, run_id) -> None:
        if self._pipelines is None:
            return
        import mlflow  # noqa: PLC0415

        active = mlflow.active_run()
        if active is not None:  # none for untracked pipelines (predict): no git calls for them
            from sewer_segmentation.tracking.runs import mark_dead_runs_killed, private_tags  # noqa: PLC0415

            mlflow.set_tags(self._tags(self._pipelines))
            mlflow.set_tags(private_tags(mlflow.get_run(active.info.run_id).data.tags, self.project_path))
            self._pipelines = None
            killed = mark_dead_runs_killed(mlflow.tracking.MlflowClient(), active.info.experiment_id, active.info.run_id)
            if killed:
                logger.info("MLflow: %d run(s) left RUNNING by a process that no longer exists marked KILLED (%s)", len(killed), ", ".join(killed))

    def _tags(self, names: list[str]) -> dict[str, str]:
        from sewer_segmentation.tracking.runs import PROCESS_TAG, code_version, process_tag, run_name  # noqa: PLC0415

        dataset, round_number = str(self.params.get("dataset")), self.params.get("round", 1)
        return {
            PROCESS_TAG: process_tag(),
            "pipeline": ",".join(names),
            "round": str(round_number),
            "dataset": dataset,
            "code_version": code_version(self.project_path),
            "mlflow.runName": run_name(names, dataset, round_number),
        }


class StageRunsHook:
    """One MLflow child run per training stage, nested under the pipeline's run and named after the stage
    (``tracking/runs.py``): the stage's parameters and training curves (its ``train_model`` node runs with
    the child run active), its model (logged by the model dataset into the same child run), and its eval
    metrics, with the same names in every stage; the registered version gets a description. The
    refinement candidates' scores are metrics of the round's (pipeline) run."""

    def __init__(self) -> None:
        self._training = ExitStack()
        self._in_stage_run = False  # a train_model node runs inside its stage's child run

    @hook_impl
    def before_node_run(self, node, catalog, inputs, is_async, run_id) -> None:
        if node.name.rsplit(".", 1)[-1] != TRAIN_NODE:
            return
        import mlflow  # noqa: PLC0415

        from sewer_segmentation.tracking.runs import stage_params, stage_run  # noqa: PLC0415

        if mlflow.active_run() is None:  # tracking disabled
            return
        plan = inputs[node.inputs[0]]
        self._training.enter_context(stage_run(plan.stage))
        self._in_stage_run = True
        mlflow.log_params(stage_params(plan, inputs.get("params:seed", 0)))

    @hook_impl
    def after_node_run(self, node, catalog, inputs, outputs, is_async, run_id) -> None:
        from sewer_segmentation.tracking import runs as tracking  # noqa: PLC0415

        step = node.name.rsplit(".", 1)[-1]
        if step == TRAIN_NODE:
            self._training.close()  # the pipeline's run is active again; the model is logged into the child when saved
            self._in_stage_run = False
            return
        if step != tracking.STAGE_END_NODE and step not in tracking.REFINEMENT_SCORE_NODES:
            return
        import mlflow  # noqa: PLC0415

        if mlflow.active_run() is None:  # tracking disabled
            return
        result = outputs[node.outputs[0]]
        if step in tracking.REFINEMENT_SCORE_NODES:
            mlflow.log_metrics(tracking.refinement_metrics(result))
            return
        self._close_stage(result, inputs.get(node.inputs[-1]))

    @hook_impl
    def on_node_error(self, error, node, catalog, inputs, is_async, run_id) -> None:
        if node.name.rsplit(".", 1)[-1] == TRAIN_NODE and self._in_stage_run:
            import mlflow  # noqa: PLC0415

            mlflow.end_run("FAILED")  # the stage's child run; the pipeline's run ends as kedro-mlflow ends it
            self._training, self._in_stage_run = ExitStack(), False

    @staticmethod
    def _close_stage(report: dict, trained) -> None:
        """The stage's eval metrics and tags on its child run (MLflow links them to the model logged there),
        and the description of the version registered from it."""
        import mlflow  # noqa: PLC0415

        from sewer_segmentation.tracking import runs as tracking  # noqa: PLC0415

        stage = str(report.get("stage"))
        parent_tags = mlflow.get_run(mlflow.active_run().info.run_id).data.tags
        tags = tracking.stage_tags(report, parent_tags)
        with tracking.stage_run(stage) as child:
            mlflow.log_metrics(tracking.stage_metrics(report))
            mlflow.set_tags(tags)
        client = mlflow.MlflowClient()
        metadata = getattr(trained, "metadata", {}) or {}
        for version in client.search_model_versions(f"run_id = '{child}'"):
            client.update_model_version(version.name, version.version, description=tracking.version_description(report, metadata, tags))


class PredictionRunHook(RunContext):
    """Each ``kedro run --pipeline=predict`` is one run of its own experiment,
    ``sewer_segmentation-<dataset>-predictions`` (kedro-mlflow does not track that pipeline, see
    conf/base/mlflow.yml): the model used, the folder, frame counts and ``predictions.csv``. Training
    experiments then hold training runs only. A failure to log never fails the prediction."""

    def __init__(self) -> None:
        super().__init__()
        self._active = False

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        self._active = (run_params.get("pipeline_names") or []) == ["predict"]

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        if self._active:
            self._log("FINISHED")

    @hook_impl
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        if self._active:
            self._log("FAILED")

    def _log(self, status: str) -> None:
        import mlflow  # noqa: PLC0415

        from sewer_segmentation.tracking.runs import code_version, portable_path, private_tags  # noqa: PLC0415

        dataset, predict = str(self.params.get("dataset")), self.params.get("predict", {})
        try:
            client = mlflow.MlflowClient()
            name = f"sewer_segmentation-{dataset}-predictions"
            experiment = client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
            run = client.create_run(experiment_id, run_name=f"predict · {dataset} · {predict.get('model')}",
                                    tags={"pipeline": "predict", "dataset": dataset, "code_version": code_version(self.project_path)})  # fmt: skip
            run_id = run.info.run_id
            for key in ("model", "input_folder", "threshold", "flip_tta"):
                value = predict.get(key)
                client.log_param(run_id, key, portable_path(value, self.project_path) if key == "input_folder" and value else str(value))
            for key, value in private_tags(client.get_run(run_id).data.tags, self.project_path).items():
                client.set_tag(run_id, key, value)
            table_path = self.location("predictions_table")
            if status == "FINISHED" and table_path and Path(table_path).is_file():
                import pandas as pd  # noqa: PLC0415

                table = pd.read_csv(table_path)
                client.log_metric(run_id, "frames_predicted", float((table.status == "ok").sum()))
                client.log_metric(run_id, "frames_skipped", float((table.status != "ok").sum()))
                client.log_artifact(run_id, str(table_path))
            client.set_terminated(run_id, status)
            logger.info("MLflow: prediction run %s in experiment %s", run_id, name)
        except Exception as exc:  # noqa: BLE001 - tracking is a record of the prediction, never a reason to fail it
            logger.warning("MLflow: the prediction run could not be logged (%s)", exc)


def _mlflow_hook_class():
    from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook  # noqa: PLC0415 - kedro-mlflow's own hook

    class MlflowParamsHook(MlflowHook):
        """kedro-mlflow's hook (registered here in place of its plugin entry point, see settings.py), with the
        typed parameter sections a node receives logged as it logs dicts: one flattened key per value
        (``baseline_training.training.learning_rate``), not one text of the whole model."""

        @hook_impl
        def before_node_run(self, node, catalog, inputs, is_async) -> None:
            super().before_node_run(node, catalog, plain_params(inputs), is_async)

    return MlflowParamsHook


MlflowParamsHook = _mlflow_hook_class()
