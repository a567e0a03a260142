"""What a refinement method is: a parameter model and a function (registered in ``registry.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from pydantic import BaseModel

#: ``(probability map p in [0, 1], binary box mask b, the method's parameters, the RGB frame or None)`` ->
#: ``(soft target mask, per-pixel loss weight)``, all float32 at the frame's own size.
Refine = Callable[[np.ndarray, np.ndarray, BaseModel, np.ndarray | None], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class RefinementMethod:
    """One way to turn a box mask into a refined mask: its parameter model and its function."""

    params: type[BaseModel]
    refine: Refine
    needs_image: bool = False  # the frame is read only for methods that look at it (GrabCut)


def box_components(box: np.ndarray) -> tuple[int, np.ndarray]:
    """The separate boxes of a box mask (4-connected components): count (background included) and labels."""
    n, labels = cv2.connectedComponents(box.astype(np.uint8), connectivity=4)
    return n, labels


def confidence_weight(mask: np.ndarray, inside: np.ndarray, min_weight: float) -> np.ndarray:
    """1 outside boxes; inside, 0 where the target is 0.5 rising to 1 where it is 0 or 1 (at least
    ``min_weight``): uncertain pixels barely steer the next model (Simple Does It, BoxSup)."""
    confidence = np.abs(mask - 0.5) * 2.0
    return np.where(inside > 0, np.maximum(confidence, min_weight), 1.0).astype(np.float32)
