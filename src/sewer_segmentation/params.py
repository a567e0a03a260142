"""Every parameter of the project as a typed model: one source of truth for what a value may be.

Each section of ``conf/base/parameters*.yml`` is a Pydantic model here, and the nodes take these models as
the type hints of their ``params:`` inputs. Kedro converts and validates them before the first node runs
(Kedro's parameter validation); ``hooks.ParameterCheckHook`` validates the same models a moment earlier,
only to print each problem as one line (the key, the value, what is allowed). Nothing else checks a
parameter: the code after a node's boundary trusts what it is given. ``docs/parameters.md`` is generated
from these models (``python -m sewer_segmentation.parameters_doc``; a test keeps it in sync).

Choices that come from a registry (losses, refinement methods, raw layouts, architectures) are checked
against the registry when validated, so a method registered later (a toy one in the tests) is accepted.
No Kedro here: Pydantic, and the registries' modules.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, Field, RootModel, ValidationError, field_validator

from sewer_segmentation.data.config import (  # noqa: F401 - re-exported: every section is reachable from here
    ClassFilterParams,
    CropParams,
    DataEngineeringParams,
    DedupeParams,
    ExportReviewParams,
    ImageSizeParams,
    ReportParams,
    SplitParams,
    SyntheticParams,
    TileParams,
    ViaParams,
)
from sewer_segmentation.modelling.config import (  # noqa: F401
    SELECTION_METRICS,
    AugmentationParams,
    BaselineTrainingParams,
    BoxLossParams,
    FinalTrainingParams,
    InferenceParams,
    JointParams,
    LossParams,
    ModelParams,
    ModelSelectionParams,
    NormalizationParams,
    OracleParams,
    RoundGuardParams,
    SuggestParams,
    TrainingParams,
)
from sewer_segmentation.refinement.config import AutoRefinementParams, MaskRefinementParams  # noqa: F401
from sewer_segmentation.scaling.config import EngineName, RayParams  # noqa: F401
from sewer_segmentation.schema import PRECISIONS, Section, as_model, known_precision, nearest_hint, plain, plain_params  # noqa: F401


class DatasetName(RootModel[str]):
    """``dataset``: the name of a folder of ``data/01_raw/`` (never a path: derived files would leave the
    dataset's own folders)."""

    @field_validator("root")
    @classmethod
    def _a_folder_name(cls, value: str) -> str:
        if not value or "/" in value or "\\" in value or ":" in value or value.startswith(".") or value != value.strip():
            raise ValueError("a dataset is the name of a folder in data/01_raw/ (no path separators, no ':', no leading '.')")
        return value


class Seed(RootModel[int]):
    """``seed``: of every random choice (splits, training, augmentation)."""

    root: int = Field(ge=0, le=2**32 - 1)


class RoundNumber(RootModel[int]):
    """``round``: refinement round, 1 or more."""

    root: int = Field(ge=1)


class PredictParams(Section):
    """``predict``: the predict pipeline."""

    model: str = Field("best", description="best, baseline, a round number, or an MLflow run id")
    input_folder: str = Field("data/01_raw/inference", description="folder of new frames")
    models_root: str
    tracking_uri: str | None = Field("sqlite:///mlflow.db", description="where MLflow run ids are looked up")
    threshold: float = Field(0.5, ge=0, le=1)
    batch_size: int = Field(16, ge=1)
    precision: str = Field("auto", description=f"one of {', '.join(PRECISIONS)}")
    flip_tta: bool = False

    @field_validator("precision", mode="before")
    @classmethod
    def _known_precision(cls, value: Any) -> str:
        return known_precision(value)

    @field_validator("model", mode="before")
    @classmethod
    def _round_number_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


#: Keys checked by ``hooks.ParameterCheckHook`` the same way, beyond the nodes' typed inputs: sections no
#: node takes (a hook reads them), and the top-level scalars. Nodes take those as plain ``int`` / ``str``, so
#: that ``context.params`` in a notebook holds ``42``, not a model wrapping it.
HOOK_SECTIONS: dict[str, type[BaseModel]] = {"synthetic": SyntheticParams, "dataset": DatasetName, "seed": Seed, "round": RoundNumber,
                                             "engine": EngineName}  # fmt: skip



# --------------------------------------------------------------------------------------------------
# Problems as one line each
# --------------------------------------------------------------------------------------------------


_MISSING = object()


def lookup(params: dict, key: str) -> Any:
    """``params`` at the dotted ``key`` (``baseline_training.training``); ``_MISSING`` when absent."""
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _fields_at(model: type[BaseModel], path: tuple) -> list[str]:
    """The field names of the (sub-)model at ``path`` inside ``model`` (for the nearest-name hint)."""
    for part in path:
        field = model.model_fields.get(str(part))
        nested = getattr(field, "annotation", None) if field else None
        candidates = [nested, *getattr(nested, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return []
    return list(model.model_fields)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def problems_of(key: str, model: type[BaseModel], value: Any) -> list[str]:
    """Why ``value`` is not a valid ``model`` for parameter ``key``: one line per problem, naming the full
    key, the value given and what is allowed (empty when it is valid)."""
    try:
        model.model_validate(value)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = tuple(part for part in error["loc"] if part != "root")
            where = ".".join([key, *map(str, loc)])
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                hint = nearest_hint(str(loc[-1]), _fields_at(model, loc[:-1])) if loc else ""
                lines.append(f"{where}: no such parameter{hint}")
            else:
                if error["type"] == "multiple_of" and isinstance(error.get("input"), int):  # say which value would do
                    step = error["ctx"]["multiple_of"]
                    message += f" (nearest: {max(step, round(error['input'] / step) * step)})"
                lines.append(f"{where}={_shown(error.get('input'))}: {message}")
        return lines
    return []


def parameter_problems(params: dict, requirements: dict[str, type[BaseModel]]) -> list[str]:
    """Every problem of ``params`` (the loaded configuration) against the models ``requirements`` names
    per dotted key (what Kedro found in the nodes' type hints, plus ``HOOK_SECTIONS``)."""
    lines = []
    for key, model in sorted(requirements.items()):
        value = lookup(params, key)
        optional = type(None) in typing.get_args(model)  # ``Model | None``: None is allowed
        model = next((a for a in typing.get_args(model) if isinstance(a, type) and issubclass(a, BaseModel)), model)
        if value is not _MISSING and not (optional and value is None):
            lines += problems_of(key, model, value)
    return lines
