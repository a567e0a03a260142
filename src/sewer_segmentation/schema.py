"""The parts every parameter model is built from: the ``Section`` base (unknown keys refused, finite floats,
frozen), the choice checks that name the nearest valid value, and the conversions to plain values.

A leaf: Pydantic only. Each layer keeps the models of its own parameters beside its code
(``data/config.py``, ``modelling/config.py``, ``refinement/config.py``); ``params.py`` gathers them.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

#: Precisions training and inference accept (``auto``: measured for training, chosen for inference).
PRECISIONS = ("auto", "32", "32-true", "bf16-mixed", "bf16-true", "16-mixed")


class Section(BaseModel):
    """A parameter section: unknown keys are refused, floats must be finite, values never change."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    def as_dict(self) -> dict[str, Any]:
        """The section as plain values (what the modelling code, model metadata and MLflow take)."""
        return self.model_dump(mode="python")


def plain(config: Any) -> dict[str, Any]:
    """A parameter section as a plain dict, whether it arrives as its model (from a node's validated
    inputs) or as a dict (a notebook, a model's saved metadata): what the modelling code reads."""
    if isinstance(config, BaseModel):
        return config.model_dump(mode="python")
    return dict(config or {})


def plain_params(params: dict) -> dict:
    """A run's whole parameters as plain values (hooks, MLflow logging, tests): Kedro hands the sections
    the nodes are typed with as their models, anywhere in the tree."""

    def plain_value(value: Any) -> Any:
        if isinstance(value, BaseModel):
            return plain(value)
        return {k: plain_value(v) for k, v in value.items()} if isinstance(value, dict) else value

    return plain_value(dict(params))


def as_model(model: type[BaseModel], value: Any) -> BaseModel:
    """``value`` as ``model``: itself when it is one already, else validated (a dict from a notebook or a test)."""
    return value if isinstance(value, model) else model.model_validate(value or {})


def known_precision(value: Any) -> str:
    """``value`` as a precision name, or a ValueError naming the choices."""
    text = str(value)
    if text not in PRECISIONS:
        raise ValueError(f"must be one of {', '.join(PRECISIONS)}")
    return text


def one_of(value: str, choices, what: str) -> str:
    """``value`` when it is one of ``choices``, else a ValueError naming them (and the nearest)."""
    if value not in choices:
        close = difflib.get_close_matches(str(value), list(choices), 1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(f"unknown {what}{hint}; choose one of {', '.join(choices)}")
    return value


def located(exc: ValidationError, *parents: str) -> ValidationError:
    """``exc`` with its errors placed under ``parents``: a nested section checked by a validator reports
    its full key (``mask_refinement.threshold.band``), as a field of the model would."""
    errors = [{"type": e["type"], "loc": (*parents, *e["loc"]), "input": e.get("input"), **({"ctx": e["ctx"]} if "ctx" in e else {})}
              for e in exc.errors()]  # fmt: skip
    return ValidationError.from_exception_data(exc.title, errors)


def nearest_hint(key: str, known) -> str:
    """`` (did you mean X?)`` for the known name nearest ``key``, or nothing."""
    close = difflib.get_close_matches(key, list(known), 1)
    return f" (did you mean {close[0]}?)" if close else ""
