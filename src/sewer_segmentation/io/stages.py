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

from sewer_segmentation.errors import MissingArtifactError
from sewer_segmentation.io.files import version_dir
from sewer_segmentation.stage import Stage


def saved_stages(models_root: str | Path) -> dict[str, Path]:
    """Newest complete version folder of every stage that has one: ``{"baseline": ..., "round_1": ...}``."""
    root = Path(models_root)
    found = {}
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if Stage.from_name(child.name) is not None:
                folder = version_dir(child)
                if folder is not None:
                    found[child.name] = folder
    return found


def best_stage(candidates: dict[str, Path]) -> str:
    """The newest stage of ``candidates``: it holds what the chain of round guards handed on."""
    return max(candidates, key=Stage.parse)


def best_model_before(models_root: str | Path, round_number) -> tuple[str, Path]:
    """Stage and version folder of the model that refines round ``round_number``: what the stage before it
    handed on (``Stage.previous``). That stage must exist (rounds run in order)."""
    previous = Stage.round(round_number).previous()
    saved = saved_stages(models_root)
    if previous.name not in saved:
        raise MissingArtifactError(f"no trained model in {Path(models_root) / previous.name}. Run `{previous.command()}` first.")
    return previous.name, saved[previous.name]


def newest_stage_up_to(models_root: str | Path, round_number=None) -> tuple[str, Path]:
    """Stage and version folder of the newest saved stage up to round ``round_number`` (every stage when
    None): what the round guards handed on by then (``best`` of the predict pipeline)."""
    last = Stage.round(round_number) if round_number is not None else None
    saved = {name: folder for name, folder in saved_stages(models_root).items() if last is None or Stage.parse(name) <= last}
    if not saved:
        raise MissingArtifactError(f"no trained model in {models_root}. Run `kedro run --pipeline=baseline` first.")
    newest = best_stage(saved)
    return newest, saved[newest]
