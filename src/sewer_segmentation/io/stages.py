"""Which model is which: the stages of a dataset (``baseline``, ``round_1``, ...), their newest saved
versions, and the best model so far.

This is the one place that answers "which model does round r start from": every round hands on either
its trained weights or the weights it started from (the round guard, ``modelling/round_guard.py``), so
the stages form a chain and the newest stage holds the best model so far. Round r refines masks with,
and fine-tunes, the model of stage r-1 (``best_model_before``), and ``predict_model: best`` (the
registry's ``@best``) predicts with the newest stage (``best_stage``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sewer_segmentation.errors import ConfigurationError, MissingArtifactError
from sewer_segmentation.io.files import version_dir


def parse_round(value: Any) -> int:
    """``round`` as a whole number >= 1, or a one-line error."""
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigurationError(f"round must be a whole number (1, 2, ...), got {value!r}") from None
    if number < 1:
        raise ConfigurationError(f"round must be 1 or more, got {number}")
    return number


def stage_name(round_number: int) -> str:
    return "baseline" if int(round_number) == 0 else f"round_{int(round_number)}"


def stage_command(stage: str) -> str:
    """The command that trains ``stage``."""
    return "kedro run --pipeline=baseline" if stage == "baseline" else f"kedro run --pipeline=refine --params=round:{stage[6:]}"


def saved_stages(models_root: str | Path) -> dict[str, Path]:
    """Newest complete version folder of every stage that has one: ``{"baseline": ..., "round_1": ...}``."""
    root = Path(models_root)
    found = {}
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if child.name == "baseline" or (child.name.startswith("round_") and child.name[6:].isdigit()):
                folder = version_dir(child)
                if folder is not None:
                    found[child.name] = folder
    return found


def stage_number(stage: str) -> int:
    """0 for ``baseline``, r for ``round_<r>``: the order of the chain."""
    return 0 if stage == "baseline" else int(stage[6:])


def best_stage(candidates: dict[str, Path]) -> str:
    """The newest stage of ``candidates``: it holds what the chain of round guards handed on."""
    return max(candidates, key=stage_number)


def best_model_before(models_root: str | Path, round_number: int) -> tuple[str, Path]:
    """Stage and version folder of the model that refines round ``round_number``: what stage r-1 handed
    on. That stage must exist (rounds run in order)."""
    round_number = parse_round(round_number)
    previous = stage_name(round_number - 1)
    saved = saved_stages(models_root)
    if previous not in saved:
        raise MissingArtifactError(f"no trained model in {Path(models_root) / previous}. Run `{stage_command(previous)}` first.")
    return previous, saved[previous]
