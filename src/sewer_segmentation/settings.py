"""Kedro project settings."""

import logging
import os
import sys
import warnings

from kedro.config import OmegaConfigLoader  # noqa: F401

# MLflow draws a progress bar per artifact download with carriage returns: on a terminal it redraws in
# place, in a log file (nohup, CI) every redraw is one more line.
if not sys.stdout.isatty():
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

# Kedro and kedro-mlflow register their resolvers with OmegaConf's deprecated call; nothing this project
# can change, and each one printed a wrapped multi-line warning at every run.
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning)
# MLflow asks every PythonModel subclass for type hints (kedro-mlflow's at import, ours when logged); both
# take several kinds of input and carry an explicit signature instead. MLflow raises that warning under a
# "once" filter of its own, in front of any filter set here, so it is dropped where Kedro logs warnings.
# Python warnings become log records (as Kedro's rich handler would make them): one line each, in the log.
logging.captureWarnings(True)
logging.getLogger("py.warnings").addFilter(lambda record: "Add type hints to the `predict` method" not in record.getMessage())

from sewer_segmentation.hooks import (  # noqa: E402 - after the warning filters: importing the hooks imports MLflow
    MlflowParamsHook,
    MlflowTagsHook,
    NodeTimingHook,
    ParameterCheckHook,
    PlainLogsHook,
    PredictionRunHook,
    RunSummaryHook,
    StageLockHook,
    StageRunsHook,
    SyntheticDataHook,
)
from sewer_segmentation.resolvers import CUSTOM_RESOLVERS  # noqa: E402

# Hooks run last-in-first-out. kedro-mlflow's hook is registered here (MlflowParamsHook: its hook, logging
# typed parameters as flattened keys) instead of through its entry point, last as the entry point put it:
# it opens the MLflow run before the others. ParameterCheckHook comes just before it, so that a bad
# parameter stops the run before any other hook reads the parameters.
HOOKS = (PlainLogsHook(), StageLockHook(), SyntheticDataHook(), MlflowTagsHook(), StageRunsHook(), PredictionRunHook(), NodeTimingHook(),
         RunSummaryHook(), ParameterCheckHook(), MlflowParamsHook())  # fmt: skip
# Kedro compares the distribution name as its metadata spells it, which differs between releases.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-mlflow", "kedro_mlflow")


CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "custom_resolvers": CUSTOM_RESOLVERS,
    # An environment (conf/gpu) or --params overrides single keys of a parameter dictionary and keeps
    # the rest, instead of replacing the whole dictionary.
    "merge_strategy": {"parameters": "soft"},
    "config_patterns": {
        "mlflow": ["mlflow*", "mlflow*/**"],
    },
}
