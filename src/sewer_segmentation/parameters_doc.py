"""``docs/parameters.md``, generated from the parameter models (``params.py``): every key, its type, its
default, what is allowed and what it is for. ``python -m sewer_segmentation.parameters_doc > docs/parameters.md``
writes it; ``tests/test_params.py`` fails when the file and the models disagree."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from sewer_segmentation import params as p

#: The sections in the order of the configuration files: (key, model, where it is set).
SECTIONS: list[tuple[str, type[BaseModel], str]] = [
    ("dataset", p.DatasetName, "parameters.yml (default in globals.yml)"),
    ("seed", p.Seed, "parameters.yml"),
    ("round", p.RoundNumber, "parameters.yml (default in globals.yml)"),
    ("model_selection", p.ModelSelectionParams, "parameters.yml"),
    ("engine", p.EngineName, "parameters.yml"),
    ("ray", p.RayParams, "parameters.yml"),
    ("image_size", p.ImageSizeParams, "parameters_baseline_training.yml"),
    ("model", p.ModelParams, "parameters_baseline_training.yml"),
    ("inference", p.InferenceParams, "parameters_baseline_training.yml"),
    ("baseline_training", p.BaselineTrainingParams, "parameters_baseline_training.yml"),
    ("data_engineering", p.DataEngineeringParams, "parameters_data_engineering.yml"),
    ("synthetic", p.SyntheticParams, "parameters_data_engineering.yml"),
    ("mask_refinement", p.MaskRefinementParams, "parameters_mask_refinement.yml"),
    ("final_training", p.FinalTrainingParams, "parameters_final_training.yml"),
    ("predict", p.PredictParams, "parameters_predict.yml"),
    ("export_review", p.ExportReviewParams, "parameters_export_review.yml"),
    ("suggest", p.SuggestParams, "parameters_suggest_labels.yml"),
]

#: The problems no type can express, raised while a run works (each a ``ConfigurationError`` in ``src/``).
RUN_TIME_CHECKS = [  # (what, when it is refused, the module that raises it)
    ("`--params` keys", "a key that names no parameter: refused before the run starts, with the nearest valid names",
     "hooks/parameters.py"),
    ("the parameter values", "every value a model refuses, one problem per `key=value` on one line", "hooks/parameters.py"),
    ("the dataset folder", "`data/01_raw/<dataset>/images` missing or empty: the run stops before any node, naming the datasets found",
     "hooks/synthetic.py"),
    ("`round` with plain `kedro run`", "a round other than 1: later rounds run with `--pipeline=refine`", "hooks/synthetic.py"),
    ("`--pipeline`, `--env`", "a pipeline or environment that does not exist: one line with the ones that do", "cli.py"),
    ("`model.encoder_weights`", "a local weights file that does not exist; `imagenet` weights that cannot be downloaded (offline)",
     "modelling/models.py"),
    ("`model.args`", "keyword arguments the architecture does not take (the architecture says which)", "modelling/models.py"),
    ("`predict.model`", "neither `best`, `baseline`, a round number, a `models:/` URI nor an MLflow run id the tracking store knows",
     "tracking/registry.py"),
    ("a stage name", "`round_<r>`, `baseline` or a round number where a stage is named (the predict CLI's `--model`)", "stage.py"),
    ("`previous_model`", "the refining model is read-only: it is chosen from saved models, never written", "datasets.py"),
]


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _constraints(field: FieldInfo) -> str:
    words = {"Ge": ">=", "Gt": ">", "Le": "<=", "Lt": "<", "MultipleOf": "multiple of"}
    out = []
    for meta in field.metadata:
        name = type(meta).__name__
        value = next((getattr(meta, attr) for attr in ("ge", "gt", "le", "lt", "multiple_of") if hasattr(meta, attr)), None)
        if name in words and value is not None:
            out.append(f"{words[name]} {value:g}" if isinstance(value, float) else f"{words[name]} {value}")
    return ", ".join(out)


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    candidates = [annotation, *typing.get_args(annotation)]
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel) and c.model_fields), None)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "(required)"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return ""
    return "`null`" if value is None else f"`{value}`"


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}"
        nested = _nested_model(field.annotation)
        if nested is not None and _default(field) == "":
            rows += _rows(nested, key)
            continue
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {_constraints(field)} | {description} |")
    return rows


def _section(key: str, model: type[BaseModel], where: str) -> list[str]:
    doc = " ".join((model.__doc__ or "").strip().split("\n\n")[0].split()).replace("``", "`")
    lines = [f"## `{key}`", "", f"{doc} Set in `conf/base/{where.split(' ')[0]}`{where[len(where.split(' ')[0]):]}.", ""]
    lines += ["| key | type | default | allowed | what for |", "|---|---|---|---|---|"]
    if issubclass(model, p.RootModel):
        root = model.model_fields["root"]
        lines.append(f"| `{key}` | {_type_name(root.annotation)} | | {_constraints(root)} | |")
    else:
        lines += _rows(model, key)
    if model is p.MaskRefinementParams:
        lines += _method_rows(key)
    return [*lines, ""]


def _method_rows(key: str) -> list[str]:
    from sewer_segmentation.refinement.registry import REFINEMENT_METHODS  # noqa: PLC0415

    rows = []
    for name, method in REFINEMENT_METHODS.items():
        rows += _rows(method.params, f"{key}.{name}") or [f"| `{key}.{name}` | | `{{}}` | | no settings |"]
    return rows


def parameters_markdown() -> str:
    lines = [
        "# Parameters",
        "",
        "Generated from the parameter models, which `src/sewer_segmentation/params.py` gathers",
        "(`python -m sewer_segmentation.parameters_doc > docs/parameters.md`); a test keeps it in sync. Every key is checked",
        "before the first node runs: Kedro validates the nodes' typed `params:` inputs, and",
        "`hooks/parameters.py` prints each problem as one line (`key=value: what is allowed`), with the nearest valid",
        "names for a key that does not exist. Set a key on the command line with `--params=key=value` or `--params=key:value`.",
        "",
    ]
    for key, model, where in SECTIONS:
        lines += _section(key, model, where)
    lines += ["## Checked while a run works", "", "What no type can say is checked where it can be: each is a `ConfigurationError`, printed",
              "as one line.", "", "| what | when it is refused |", "|---|---|"]  # fmt: skip
    lines += [f"| {what} | {when} |" for what, when, _ in RUN_TIME_CHECKS]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m sewer_segmentation.parameters_doc > docs/parameters.md
    print(parameters_markdown(), end="")
