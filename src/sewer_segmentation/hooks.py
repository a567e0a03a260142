"""Project hooks."""

from __future__ import annotations

import difflib
import json
import logging
import shutil
import sys
import time
from pathlib import Path

from kedro.framework.hooks import hook_impl

from sewer_segmentation.data.synthetic import SyntheticConfig, write_dataset, write_inference_samples
from sewer_segmentation.errors import ConfigurationError
from sewer_segmentation.io.files import atomic_write_bytes
from sewer_segmentation.params import parameter_problems, plain_params
from sewer_segmentation.stage import Stage

DEFAULT_INFERENCE_FOLDER = "data/01_raw/inference"

logger = logging.getLogger(__name__)


def _end_mlflow_run_failed() -> None:
    import mlflow  # noqa: PLC0415

    if mlflow.active_run() is not None:
        mlflow.end_run("FAILED")


def check_raw_dataset(raw_root: Path, dataset: str) -> None:
    """One line instead of Kedro's tracebacks when the dataset folder or its images are missing."""
    images = raw_root / dataset / "images"
    if images.is_dir() and any(images.iterdir()):
        return
    available = sorted(p.name for p in raw_root.glob("*") if (p / "images").is_dir()) if raw_root.is_dir() else []
    problem = "is empty" if images.is_dir() else "does not exist"
    raise ConfigurationError(
        f"{images} {problem}: a raw dataset needs an images/ folder (see README 'Raw data layouts'). "
        f"Datasets found in {raw_root}: {', '.join(available) or 'none'}"
    )


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
        self._params = plain_params(context.params)
        self._project_path = Path(context.project_path)

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        try:
            self._prepare(run_params, pipeline)
        except Exception:
            _end_mlflow_run_failed()  # kedro-mlflow may have opened it already; no error hook follows
            raise

    def _prepare(self, run_params, pipeline) -> None:
        names = run_params.get("pipeline_names") or ["__default__"]
        if "__default__" in names and int(self._params.get("round", 1)) != 1:
            raise ConfigurationError(
                "plain `kedro run` trains the baseline and refinement round 1; "
                "for a later round run `kedro run --pipeline=refine --params=round:N`"
            )
        self._ensure_inference_samples()
        dataset = str(self._params.get("dataset"))
        if dataset != "synthetic":
            if any(node.name.endswith("inspect_raw_files") for node in pipeline.nodes):
                check_raw_dataset(self._project_path / "data" / "01_raw", dataset)
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


#: Keys --params may set that are read by the catalog, not by any node (conf/base/globals.yml).
CATALOG_KEYS = {"dataset", "round", "predict_model", "inference_folder"}
#: Sections that take any key: keyword arguments passed on to the architecture, loss or normalization.
OPEN_SECTIONS = ("model.args.", "model.normalization.", "baseline_training.training.loss.args.")
#: Parameters whose folders the catalog takes from the command line: set them by these keys instead.
CATALOG_ALIASES = {"predict.model": "predict_model", "predict.input_folder": "inference_folder"}


def _dotted_keys(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        path = f"{prefix}{key}"
        keys.add(path)
        if isinstance(value, dict):
            keys |= _dotted_keys(value, f"{path}.")
    return keys


def unknown_parameter_keys(runtime_params: dict, known: set[str]) -> dict[str, list[str]]:
    """``--params`` keys that name no parameter, each with the closest valid names (a typo or a missing
    section prefix would otherwise be silently ignored)."""
    # a round's training overrides take any key of the baseline's training parameters
    suggestions = sorted(known)
    known = known | {k.replace("baseline_training.training.", "final_training.training_overrides.", 1)
                     for k in known if k.startswith("baseline_training.training.")}  # fmt: skip
    unknown = {}
    for key in sorted(_dotted_keys(runtime_params)):
        if key in CATALOG_ALIASES:
            unknown[key] = [CATALOG_ALIASES[key]]
            continue
        if (key in known or key in CATALOG_KEYS or key.startswith(OPEN_SECTIONS)
                or any(k.startswith(f"{key}.") for k in (*known, *OPEN_SECTIONS))):  # fmt: skip
            continue
        if any(key.startswith(f"{parent}.") for parent in unknown):
            continue  # the parent is already reported
        leaf = key.rsplit(".", 1)[-1]
        close = [k for k in suggestions if k.rsplit(".", 1)[-1] == leaf][:3] or difflib.get_close_matches(key, suggestions, 3)
        unknown[key] = close
    return unknown


PLAIN_LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
#: Longest line a plain log writes; Kedro's "Running node: ..." lists every input and output.
MAX_LOG_LINE = 300


class ShortLinesFormatter(logging.Formatter):
    """One plain line per record, each line at most ``MAX_LOG_LINE`` characters (the cut is marked)."""

    def format(self, record: logging.LogRecord) -> str:
        return "\n".join(shorten_line(line) for line in super().format(record).splitlines())


def shorten_line(line: str, limit: int = MAX_LOG_LINE) -> str:
    if len(line) <= limit:
        return line
    keep = limit - len(f" ... (+{len(line)} characters)")
    return f"{line[:keep]} ... (+{len(line) - keep} characters)"


def plain_handlers_without_terminal(logger: logging.Logger, stream=None) -> int:
    """Replace the rich handlers of ``logger`` by plain stream handlers (one line per record) when
    ``stream`` (stdout) is not a terminal; returns how many were replaced."""
    stream = stream or sys.stdout
    if stream.isatty():
        return 0
    from rich.logging import RichHandler  # noqa: PLC0415

    replaced = 0
    for handler in list(logger.handlers):
        if isinstance(handler, RichHandler):
            plain = logging.StreamHandler(stream)
            plain.setLevel(handler.level)
            plain.setFormatter(ShortLinesFormatter(PLAIN_LOG_FORMAT, datefmt="%H:%M:%S"))
            logger.removeHandler(handler)
            logger.addHandler(plain)
            replaced += 1
    return replaced


class PlainLogsHook:
    """Without a terminal (``kedro run > run.log``, CI, nohup) logs are plain lines, not rich's
    80-column wrapped panels (Kedro only lets conf/logging.yml name handlers of ``logging`` and
    ``kedro.logging``, so the swap happens here, once the configuration is loaded)."""

    @hook_impl
    def after_context_created(self, context) -> None:
        plain_handlers_without_terminal(logging.getLogger())


class ParameterCheckHook:
    """Bad parameters stop a run before anything starts, one line each: values the parameter models refuse
    (``params.py``: the models the nodes' ``params:`` inputs are typed with, which Kedro validates too),
    ``--params`` keys that name no parameter (with the nearest valid names), and a dataset name that is a
    path. Registered so that it runs before every other hook reads the (validated) parameters."""

    @hook_impl
    def after_context_created(self, context) -> None:
        runtime = getattr(context.config_loader, "runtime_params", None) or {}
        if runtime:
            check_parameter_keys(context, runtime)
        problems = parameter_problems(context.config_loader["parameters"], parameter_models())
        if problems:
            raise ConfigurationError(f"bad parameters (see docs/parameters.md): {'; '.join(problems)}")


def parameter_models() -> dict:
    """Which parameter key must be which model: what Kedro finds in the type hints of the registered
    pipelines' nodes (its own ``TypeExtractor``), and the sections a hook reads (``params.HOOK_SECTIONS``)."""
    from kedro.framework.project import pipelines  # noqa: PLC0415
    from kedro.validation.type_extractor import TypeExtractor  # noqa: PLC0415

    from sewer_segmentation.params import HOOK_SECTIONS  # noqa: PLC0415

    return {**TypeExtractor(dict(pipelines)).extract_types_from_pipelines(), **HOOK_SECTIONS}


def check_parameter_keys(context, runtime: dict) -> None:
    """``--params`` keys are checked against the configuration loaded without them."""
    from kedro.config import OmegaConfigLoader  # noqa: PLC0415
    from kedro.framework.project import settings  # noqa: PLC0415 - the project's settings, as Kedro loaded them

    loader = OmegaConfigLoader(conf_source=str(context.config_loader.conf_source), env=context.env, runtime_params={},
                               **settings.CONFIG_LOADER_ARGS)  # fmt: skip
    unknown = unknown_parameter_keys(runtime, _dotted_keys(loader["parameters"]))
    if unknown:
        hints = "; ".join(f"{k} (did you mean {' or '.join(v)}?)" if v else k for k, v in unknown.items())
        raise ConfigurationError(f"--params names no parameter: {hints}. See conf/base/parameters_*.yml.")


class MlflowTagsHook:
    """Tag the MLflow run that kedro-mlflow opened with the pipeline, round and dataset.

    Tags are set before the first node runs: kedro-mlflow opens the run in its own
    ``before_pipeline_run``, whose order relative to ours is not guaranteed.
    """

    def __init__(self) -> None:
        self._pipelines: list[str] | None = None  # the run's pipelines, until its tags are set
        self._params: dict = {}
        self._project_path = Path.cwd()

    @hook_impl
    def after_context_created(self, context) -> None:
        self._params = plain_params(context.params)
        self._project_path = Path(context.project_path)

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
            mlflow.set_tags(private_tags(mlflow.get_run(active.info.run_id).data.tags, self._project_path))
            self._pipelines = None
            killed = mark_dead_runs_killed(mlflow.tracking.MlflowClient(), active.info.experiment_id, active.info.run_id)
            if killed:
                logger.info("MLflow: %d run(s) left RUNNING by a process that no longer exists marked KILLED (%s)", len(killed), ", ".join(killed))

    def _tags(self, names: list[str]) -> dict[str, str]:
        from sewer_segmentation.tracking.runs import PROCESS_TAG, code_version, process_tag, run_name  # noqa: PLC0415

        dataset, round_number = str(self._params.get("dataset")), self._params.get("round", 1)
        return {
            PROCESS_TAG: process_tag(),
            "pipeline": ",".join(names),
            "round": str(round_number),
            "dataset": dataset,
            "code_version": code_version(self._project_path),
            "mlflow.runName": run_name(names, dataset, round_number),
        }


class StageRunsHook:
    """One MLflow child run per training stage, nested under the pipeline's run and named after the stage,
    with the same metric names in every stage; the refinement candidates' scores as metrics of the
    round's run (``tracking/runs.py``)."""

    @hook_impl
    def after_node_run(self, node, catalog, inputs, outputs, is_async, run_id) -> None:
        from sewer_segmentation.tracking import runs as tracking  # noqa: PLC0415

        step = node.name.rsplit(".", 1)[-1]
        if step != tracking.STAGE_END_NODE and step not in tracking.REFINEMENT_SCORE_NODES:
            return
        import mlflow  # noqa: PLC0415

        parent = mlflow.active_run()
        if parent is None:  # tracking disabled
            return
        result = outputs[node.outputs[0]]
        if step in tracking.REFINEMENT_SCORE_NODES:
            mlflow.log_metrics(tracking.refinement_metrics(result))
            return
        tags = tracking.stage_tags(result, mlflow.get_run(parent.info.run_id).data.tags)
        with mlflow.start_run(run_name=str(result.get("stage")), nested=True, tags=tags):
            mlflow.log_metrics(tracking.stage_metrics(result))


class PredictionRunHook:
    """Each ``kedro run --pipeline=predict`` is one run of its own experiment,
    ``sewer_segmentation-<dataset>-predictions`` (kedro-mlflow does not track that pipeline, see
    conf/base/mlflow.yml): the model used, the folder, frame counts and ``predictions.csv``. Training
    experiments then hold training runs only. A failure to log never fails the prediction."""

    def __init__(self) -> None:
        self._params: dict = {}
        self._project_path = Path.cwd()
        self._active = False

    @hook_impl
    def after_context_created(self, context) -> None:
        self._params, self._project_path = plain_params(context.params), Path(context.project_path)

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        self._active = (run_params.get("pipeline_names") or []) == ["predict"]

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        if self._active:
            self._log(catalog, "FINISHED")

    @hook_impl
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        if self._active:
            self._log(catalog, "FAILED")

    def _log(self, catalog, status: str) -> None:
        import mlflow  # noqa: PLC0415

        from sewer_segmentation.tracking.runs import code_version, portable_path, private_tags  # noqa: PLC0415

        dataset, predict = str(self._params.get("dataset")), self._params.get("predict", {})
        try:
            client = mlflow.MlflowClient()
            name = f"sewer_segmentation-{dataset}-predictions"
            experiment = client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
            run = client.create_run(experiment_id, run_name=f"predict · {dataset} · {predict.get('model')}",
                                    tags={"pipeline": "predict", "dataset": dataset, "code_version": code_version(self._project_path)})  # fmt: skip
            run_id = run.info.run_id
            for key in ("model", "input_folder", "threshold", "flip_tta"):
                value = predict.get(key)
                client.log_param(run_id, key, portable_path(value, self._project_path) if key == "input_folder" and value else str(value))
            for key, value in private_tags(client.get_run(run_id).data.tags, self._project_path).items():
                client.set_tag(run_id, key, value)
            table_path = _description(catalog, "predictions_table").get("filepath")
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
        self._dataset = str(plain_params(context.params).get("dataset", ""))

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


#: Outputs whose JSON holds a stage's eval metrics, and the stage they belong to.
STAGE_METRICS = {"baseline.metrics": "baseline", "round.metrics": "round"}


class StageLockHook:
    """One run at a time per dataset and training stage (``io/locks.py``): a run that trains the
    baseline or round r takes that stage's lock before any node runs, and a second such run stops at
    once naming the holder (or waits ``run_lock_wait_seconds``). Released when the run ends."""

    def __init__(self) -> None:
        self._params: dict = {}
        self._project_path = Path.cwd()
        self._locks: list = []

    @hook_impl
    def after_context_created(self, context) -> None:
        self._params = plain_params(context.params)
        self._project_path = Path(context.project_path)

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        from sewer_segmentation.io.locks import StageLock  # noqa: PLC0415

        names = {node.name for node in pipeline.nodes}
        stages = [stage for stage, node in (("baseline", "baseline.train_model"), ("round", "round.train_model")) if node in names]
        dataset = str(self._params.get("dataset"))
        wait = float(self._params.get("run_lock_wait_seconds") or 0)
        try:
            for stage in stages:
                name = Stage.round(self._params.get("round")).name if stage == "round" else stage
                lock = StageLock(self._project_path / "data/06_models", dataset, name, wait)
                lock.acquire()
                self._locks.append(lock)
        except Exception:
            self._release()
            _end_mlflow_run_failed()  # kedro-mlflow may have opened it already; no error hook follows
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


class RunSummaryHook:
    """End every run with a short summary: where the outputs went, the eval metrics of each stage it
    trained, the MLflow run and the next command to try (also after a failure, without the metrics)."""

    def __init__(self) -> None:
        self._project_path = Path.cwd()
        self._params: dict = {}
        self._started = 0.0
        self._mlflow: tuple[str, str | None] | None = None

    @hook_impl
    def after_context_created(self, context) -> None:
        self._project_path = Path(context.project_path)
        self._params = plain_params(context.params)

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
            description = _description(catalog, name)
            path = description.get("filepath") or description.get("path")
            if path and (not failed or Path(path).exists()):
                paths.append(str(path))
        stages = {}
        for name, stage in STAGE_METRICS.items():
            if name in outputs and not failed:
                metrics = catalog.load(name)
                stages[metrics.get("stage", stage)] = metrics
        run = self._mlflow or (None, None)
        lines = summary_lines(
            run_params.get("pipeline_names") or ["__default__"], str(self._params.get("dataset")),
            time.perf_counter() - self._started, output_folders(paths, self._project_path), stages,
            run[0], run[1], int(self._params.get("round", 1)), failed,
        )  # fmt: skip
        logger.info("\n".join(lines))


def _description(catalog, name: str) -> dict:
    """A dataset's own description (file or folder path), looking inside kedro-mlflow's wrappers."""
    try:
        description = catalog.get(name)._describe()
    except Exception:  # noqa: BLE001 - a summary never fails a run
        return {}
    inner = description.get("dataset")
    if isinstance(inner, dict) and not ("filepath" in description or "path" in description):
        return inner
    return description


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
