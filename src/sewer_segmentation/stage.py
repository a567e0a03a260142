"""A training stage as a value: ``baseline`` or ``round_<r>``.

The one place that knows how stages are named, parsed and ordered, and which stage a round starts from:
every round hands on its trained weights or the weights it started from (the round guard), so round r
starts from whatever stage r-1 handed on, and the newest stage holds the best model so far. Folders,
reports, the registry's aliases and the predict pipeline's choices all read stage names through it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sewer_segmentation.errors import ConfigurationError

BASELINE = "baseline"
_ROUND_PREFIX = "round_"


@functools.total_ordering
@dataclass(frozen=True)
class Stage:
    """Stage ``number``: 0 is the baseline, r is refinement round r. Stages order by number."""

    number: int

    def __post_init__(self) -> None:
        if self.number < 0:
            raise ConfigurationError(f"a stage number is 0 (the baseline) or a round number, got {self.number}")

    def __lt__(self, other: Stage) -> bool:
        return self.number < other.number

    @classmethod
    def parse(cls, value: Any) -> Stage:
        """``baseline``, ``round_3``, a round number (``3``, ``"3"``) or a ``Stage``; a one-line error otherwise."""
        if isinstance(value, Stage):
            return value
        found = cls.from_name(str(value).strip())
        if found is not None:
            return found
        raise ConfigurationError(f"{value!r} names no stage: use baseline, round_<r> or a round number (1, 2, ...)")

    @classmethod
    def from_name(cls, text: str) -> Stage | None:
        """The stage a folder or model name means, or None (``best``, a run id, another folder)."""
        if text == BASELINE:
            return cls(0)
        number = text.removeprefix(_ROUND_PREFIX)
        if number.isdigit() and int(number) >= 1:
            return cls(int(number))
        return None

    @classmethod
    def round(cls, value: Any) -> Stage:
        """Refinement round ``value`` (1 or more)."""
        stage = cls.parse(value)
        if stage.is_baseline:
            raise ConfigurationError(f"round must be 1 or more, got {value!r}")
        return stage

    @property
    def is_baseline(self) -> bool:
        return self.number == 0

    @property
    def name(self) -> str:
        """``baseline`` or ``round_<r>``: the stage's folder under ``data/06_models/<dataset>/``, its metric
        file's prefix and its registry alias."""
        return BASELINE if self.is_baseline else f"{_ROUND_PREFIX}{self.number}"

    def previous(self) -> Stage:
        """The stage this round starts from (and refines its masks with)."""
        if self.is_baseline:
            raise ConfigurationError("the baseline starts from no earlier stage")
        return Stage(self.number - 1)

    def command(self) -> str:
        """The command that trains this stage."""
        return "kedro run --pipeline=baseline" if self.is_baseline else f"kedro run --pipeline=refine --params=round:{self.number}"

    def __str__(self) -> str:
        return self.name
