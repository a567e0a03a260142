"""Which model is which: the stages of a dataset (``baseline``, ``round_1``, ...), their newest saved
versions, and the best model so far by its selection score (``model_selection.signal``).

This is the one place that answers "which model does round r start from": round r refines masks with,
and fine-tunes, the best of ``baseline`` .. ``round_<r-1>`` by selection score (``best_model_before``), and
``predict_model: best`` predicts with the best of all stages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sewer_segmentation.errors import ConfigurationError, MissingArtifactError
from sewer_segmentation.io.files import version_dir
from sewer_segmentation.modelling.models import read_model_config


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


def saved_selection_score(version_folder: Path, signal: str = "validation") -> float | None:
    """A saved model's score under ``signal`` (``model_selection.signal``), recomputed from the parts in its
    ``model_config.json`` (validation score, weak_holdout box agreement), so that models trained under
    another signal, or before the box agreement existed (validation only), compare on the same rule."""
    from sewer_segmentation.modelling.box_agreement import selection_score  # noqa: PLC0415

    meta = read_model_config(version_folder).get("metadata", {})
    agreement = (meta.get("weak_holdout") or {}).get("box_agreement")
    return selection_score(signal, meta.get("best_validation_score"), agreement)


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


def best_stage(candidates: dict[str, Path], signal: str = "validation") -> str:
    """The stage with the highest selection score under ``signal``; on a tie (or no score) the earlier stage."""
    order = sorted(candidates, key=lambda s: 0 if s == "baseline" else int(s[6:]))
    scored = [(saved_selection_score(candidates[s], signal), -k, s) for k, s in enumerate(order)]
    return max(scored, key=lambda x: (x[0] if x[0] is not None else float("-inf"), x[1]))[2]


def best_model_before(models_root: str | Path, round_number: int, signal: str = "validation") -> tuple[str, Path]:
    """Stage and version folder of the model that refines round ``round_number``: the best of
    ``baseline`` .. ``round_<r-1>`` on validation. The stage just before must exist (rounds run in order)."""
    round_number = parse_round(round_number)
    previous = stage_name(round_number - 1)
    saved = saved_stages(models_root)
    if previous not in saved:
        raise MissingArtifactError(f"no trained model in {Path(models_root) / previous}. Run `{stage_command(previous)}` first.")
    candidates = {s: f for s, f in saved.items() if s == "baseline" or int(s[6:]) < round_number}
    stage = best_stage(candidates, signal)
    return stage, candidates[stage]
