"""Which weak-pool frames a hand label would teach the model most: the ranking of ``suggest_labels``.

Two families, as in active learning for segmentation:

- **uncertainty**: the mean binary entropy of the model's probabilities inside the frame's boxes (where
  the defect is known to be; the wall far from any box says little). A frame the model is unsure of is
  one its label would change.
- **diversity**: greedy k-center (the core-set of Sener and Savarese, ICLR 2018) on the encoder's pooled
  features: each pick is the frame farthest from every frame already labelled or picked, so the budget
  covers the kinds of frames the labelled set lacks instead of N near-copies of one hard frame.

``hybrid`` takes the most uncertain frames (``candidate_factor`` times the budget) and spreads the budget
over them by k-center. Every method takes at most one frame per near-duplicate cluster (or group of the
split manifest). ``random`` is the baseline the bench compares them with.

Numpy and torch only; importable without Kedro.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import torch

from sewer_segmentation.data.samples import normalization_for, to_model_input

METHODS = ("uncertainty", "diversity", "hybrid", "random")
EPS = 1e-6


def box_entropy(probability: np.ndarray, boxes: np.ndarray) -> float:
    """Mean binary entropy (bits) of ``probability`` (H x W in [0, 1]) over the pixels of the ``K x 4``
    boxes (x0, y0, x1, y1); over the whole frame when it has no box."""
    p = np.clip(np.asarray(probability, np.float64), EPS, 1 - EPS)
    entropy = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    inside = np.zeros(p.shape, bool)
    for x0, y0, x1, y1 in np.asarray(boxes, np.int64).reshape(-1, 4):
        inside[y0:y1, x0:x1] = True
    return float(entropy[inside].mean() if inside.any() else entropy.mean())


def pooled_features(model: torch.nn.Module, images: Mapping[str, Callable[[], np.ndarray]], model_config: dict, size: tuple[int, int],
                    batch_size: int = 16) -> dict[str, np.ndarray]:  # fmt: skip
    """The deepest encoder stage of each frame, averaged over space (one vector per frame, L2-normalized).
    Frames are resized to ``size`` (height, width) and normalized as the model was trained."""
    mean, std = normalization_for(model_config)
    ids = sorted(images)
    out = {}
    model = model.eval()
    with torch.no_grad():
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            x = to_model_input([images[i]() for i in chunk], *size, mean, std)
            deepest = model.encoder(x)[-1].float().mean(dim=(2, 3))
            vectors = torch.nn.functional.normalize(deepest, dim=1).numpy()
            out.update(zip(chunk, vectors, strict=True))
    return out


def k_center_greedy(pool: np.ndarray, budget: int, labelled: np.ndarray | None = None, groups: np.ndarray | None = None) -> list[int]:
    """Indices of ``budget`` rows of ``pool`` (N x D), each the farthest from its nearest center: the
    ``labelled`` rows and the picks so far; at most one row per value of ``groups`` (one per cluster)."""
    if len(pool) == 0 or budget <= 0:
        return []
    if labelled is not None and len(labelled):
        nearest = np.min(np.linalg.norm(pool[:, None, :] - labelled[None, :, :], axis=2), axis=1)
    else:
        nearest = np.full(len(pool), np.inf)
    open_rows = np.ones(len(pool), bool)
    picks: list[int] = []
    while len(picks) < budget and open_rows.any():
        choice = int(np.flatnonzero(open_rows)[np.argmax(np.where(open_rows, nearest, -np.inf)[open_rows])])
        picks.append(choice)
        open_rows &= (groups != groups[choice]) if groups is not None else (np.arange(len(pool)) != choice)
        nearest = np.minimum(nearest, np.linalg.norm(pool - pool[choice], axis=1))
    return picks


def rank_frames(scores: pd.DataFrame, budget: int, method: str, features: Mapping[str, np.ndarray] | None = None,
                labelled_features: np.ndarray | None = None, seed: int = 0, candidate_factor: int = 3) -> pd.DataFrame:  # fmt: skip
    """``budget`` frames of ``scores`` (columns ``image_id``, ``uncertainty``, ``cluster``) by ``method``,
    at most one per cluster: ``frame``, ``score`` (the frame's uncertainty), ``reason``, in pick order."""
    if method not in METHODS:
        raise ValueError(f"unknown ranking {method!r}; choose one of {', '.join(METHODS)}")
    table = scores.sort_values(["uncertainty", "image_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
    taken: set = set()

    def allowed(cluster) -> bool:
        return cluster not in taken

    picks: list[tuple[int, str]] = []
    if method in ("uncertainty", "random"):
        order = table.index if method == "uncertainty" else np.random.default_rng(seed).permutation(len(table))
        taken: set = set()
        for i in order:
            if len(picks) < budget and table.cluster[i] not in taken:
                taken.add(table.cluster[i])
                picks.append((int(i), f"uncertain: entropy {table.uncertainty[i]:.3f} in its boxes" if method == "uncertainty" else "random"))
    else:
        candidates = table if method == "diversity" else table.head(max(budget, candidate_factor * budget))
        if candidates.cluster.nunique() < min(budget, table.cluster.nunique()):  # near-duplicates among the candidates
            candidates = table
        pool = np.stack([features[i] for i in candidates.image_id])
        rows = k_center_greedy(pool, budget, labelled_features, candidates.cluster.to_numpy())
        kind = "unlike the labelled frames" if method == "diversity" else "uncertain and unlike the labelled frames"
        picks = [(int(candidates.index[row]), f"{kind} (entropy {candidates.uncertainty.iloc[row]:.3f})") for row in rows]
    return pd.DataFrame([{"frame": table.image_id[i], "score": round(float(table.uncertainty[i]), 5), "reason": r} for i, r in picks],
                        columns=["frame", "score", "reason"])  # fmt: skip
