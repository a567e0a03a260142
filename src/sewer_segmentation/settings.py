"""Kedro project settings."""

import warnings

from kedro.config import OmegaConfigLoader  # noqa: F401

from sewer_segmentation.hooks import (
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
from sewer_segmentation.resolvers import CUSTOM_RESOLVERS

# Kedro and kedro-mlflow register their resolvers with OmegaConf's deprecated call; nothing this project
# can change, and each one printed a wrapped multi-line warning at every run.
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning)
# MLflow asks every PythonModel subclass for type hints (kedro-mlflow's at import, ours when logged); both
# take arrays and carry an explicit signature instead.
warnings.filterwarnings("ignore", message=r".*Add type hints to the `predict` method", category=UserWarning)

# Hooks run last-in-first-out; kedro-mlflow registers its own hook through its entry point.
HOOKS = (PlainLogsHook(), ParameterCheckHook(), StageLockHook(), SyntheticDataHook(), MlflowTagsHook(), StageRunsHook(), PredictionRunHook(),
         NodeTimingHook(), RunSummaryHook())  # fmt: skip


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
