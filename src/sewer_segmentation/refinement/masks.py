"""A round's refined masks: per weak image a soft mask and a loss weight map (``RefinedMasks``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MASKS, WEIGHTS = "masks", "weights"


def _loader(value: Callable[[], np.ndarray] | np.ndarray) -> Callable[[], np.ndarray]:
    return value if callable(value) else (lambda: value)


@dataclass
class RefinedMasks:
    """A round's training targets for the weak pool: per image id a soft mask (uint8, 0..255) and a
    per-pixel loss weight map (uint8, 255 = full weight), each as a loader (call it for the array).

    Stored as ``masks/<id>.png`` and ``weights/<id>.png`` (``datasets.RefinedMasksDataset``); this class is
    the one place that knows that layout.
    """

    masks: dict[str, Callable[[], np.ndarray]] = field(default_factory=dict)
    weights: dict[str, Callable[[], np.ndarray]] = field(default_factory=dict)

    @classmethod
    def of(cls, refined: dict[str, tuple[np.ndarray, np.ndarray]]) -> RefinedMasks:
        """From ``{image_id: (mask, weight)}`` arrays, as ``refine_pool`` returns them."""
        return cls({i: _loader(m) for i, (m, _) in refined.items()}, {i: _loader(w) for i, (_, w) in refined.items()})

    @classmethod
    def from_partitions(cls, partitions: dict[str, Any], where: str = "refined masks") -> RefinedMasks:
        refined = cls()
        for key, value in partitions.items():
            kind, _, image_id = key.partition("/")
            if kind not in (MASKS, WEIGHTS) or not image_id:
                raise ValueError(f"{where}: {key} is neither masks/<image id> nor weights/<image id>")
            (refined.masks if kind == MASKS else refined.weights)[image_id] = _loader(value)
        missing = sorted(set(refined.masks) ^ set(refined.weights))
        if missing:
            raise ValueError(f"{where}: {', '.join(missing[:5])} lack a mask or a weight map (an interrupted write?)")
        return refined

    def to_partitions(self) -> dict[str, Callable[[], np.ndarray]]:
        """``masks/<id>`` and ``weights/<id>`` loaders (saved lazily, one image in memory at a time)."""
        return {**{f"{MASKS}/{i}": m for i, m in self.masks.items()}, **{f"{WEIGHTS}/{i}": w for i, w in self.weights.items()}}

    def mask(self, image_id: str) -> np.ndarray:
        return self.masks[image_id]()

    def ids(self) -> list[str]:
        return sorted(self.masks)
