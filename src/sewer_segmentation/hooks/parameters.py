"""Bad parameters stop a run before anything starts, one line each."""

from __future__ import annotations

import difflib

from kedro.framework.hooks import hook_impl

from sewer_segmentation.errors import ConfigurationError
from sewer_segmentation.params import parameter_problems

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


