"""Statistics shared by the round guard (``modelling/round_guard.py``) and the reports: the noise of a
comparison of two models scored on the same items. Numpy only."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


def paired_difference(trained: Mapping[str, float], start: Mapping[str, float]) -> tuple[float, float, int] | None:
    """Mean per-item difference ``trained - start`` over the items both scored, its standard error and the
    number of such items; None with fewer than 2 of them (the noise cannot be estimated)."""
    common = sorted(set(trained) & set(start))
    if len(common) < 2:
        return None
    differences = np.array([float(trained[k]) - float(start[k]) for k in common])
    return float(differences.mean()), float(differences.std(ddof=1) / math.sqrt(len(differences))), len(common)


def paired_standard_error(trained: Mapping[str, float], start: Mapping[str, float]) -> float | None:
    """Standard error of the mean per-item difference ``trained - start`` (``paired_difference``); None
    with fewer than 2 items both scored."""
    paired = paired_difference(trained, start)
    return None if paired is None else paired[1]
