"""Kedro project settings."""

from kedro.config import OmegaConfigLoader  # noqa: F401

from sewer_segmentation.hooks import MlflowTagsHook, NodeTimingHook, ParameterCheckHook, PlainLogsHook, SyntheticDataHook
from sewer_segmentation.resolvers import CUSTOM_RESOLVERS

# Hooks run last-in-first-out; kedro-mlflow registers its own hook through its entry point.
HOOKS = (PlainLogsHook(), ParameterCheckHook(), SyntheticDataHook(), MlflowTagsHook(), NodeTimingHook())

# kedro-viz's hook adds nothing to a plain run.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-viz",)

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
