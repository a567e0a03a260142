"""Which weak-pool frames a hand label would teach the model most: the rankings of ``suggest_labels``.

Three families, as in active learning for segmentation, and a control with no model, each measured
against random frames by ``bench/active_learning.py`` (docs/labelling.md has the table):

- **uncertainty**: the binary entropy of the model's probabilities inside the frame's boxes (where the
  defect is known to be; the wall far from any box says little), averaged over the box pixels
  (``uncertainty``) or summed (``uncertain_pixels``: the expected number of pixels the label settles; the
  mean favours frames whose boxes are small). ``stratified`` takes the mean without its small-box bias:
  the frames are split by the share of the frame their boxes cover into ``budget`` strata of equal size,
  and each stratum gives its most uncertain frame (mean entropy inside the boxes), so the picks keep the
  pool's spread of defect sizes, as random frames do. ``uncertain_clusters`` keeps the summed entropy in
  charge and only stops it spending the budget on one kind of frame (the top-k-then-cluster batch of
  Zhdanov, "Diverse mini-batch active learning", 2019, and Citovsky et al.'s cluster-margin, NeurIPS
  2021): k-means splits the ``candidate_factor`` x budget frames with the most uncertain pixels into
  budget clusters of the encoder's features, and each cluster gives its most uncertain frame.
- **error against the boxes**: ``disagreement``, 1 - the agreement of the model's mask with the frame's own
  boxes (rows and columns of a box it misses, mask outside every box; ``box_agreement``). Entropy finds
  where the model is unsure; the boxes show where it is wrong, sure or not.
- **diversity**: greedy k-center (the core-set of Sener and Savarese, ICLR 2018) on the encoder's pooled
  features: each pick is the frame farthest from every frame already labelled or picked. ``typical`` is
  TypiClust (Hacohen, Dekel and Weinshall, ICML 2022), made for small budgets: k-means splits the
  features into as many clusters as labelled frames plus budget, and each pick is the densest frame of
  the largest cluster no labelled frame is in (k-center reaches for the frames farthest from everything,
  outliers as often as new kinds of defect). ``hybrid`` spreads the budget by k-center over the
  ``candidate_factor`` x budget most uncertain frames (mean entropy).
- **no model**: ``largest_boxes``, the frames whose boxes cover most of the frame: the control that says
  how much of the summed entropy's gain is only the size of the defects it picks (it grows with the box
  area).

Every method takes at most one frame per near-duplicate cluster (or group of the split manifest).
``random`` is the reference the bench compares them with.

Numpy, torch and scikit-learn (k-means); importable without Kedro.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import torch

from sewer_segmentation.data.boxes import inside_boxes
from sewer_segmentation.data.samples import normalization_for, to_model_input
from sewer_segmentation.modelling.box_agreement import frame_agreement, thresholded

METHODS = ("uncertainty", "uncertain_pixels", "disagreement", "diversity", "hybrid", "uncertain_clusters", "typical", "stratified",
           "largest_boxes", "random")
EPS = 1e-6


def box_entropy(probability: np.ndarray, boxes: np.ndarray, total: bool = False) -> float:
    """Mean binary entropy (bits) of ``probability`` (H x W in [0, 1]) over the pixels of the ``K x 4``
    boxes (x0, y0, x1, y1); over the whole frame when it has no box. ``total``: the sum instead of the
    mean, the expected number of pixels the model is unsure of (a frame's label is worth more the more
    of them it settles; the mean favours frames whose boxes are small)."""
    p = np.clip(np.asarray(probability, np.float64), EPS, 1 - EPS)
    entropy = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    inside = inside_boxes(boxes, p.shape)
    counted = entropy[inside] if inside.any() else entropy
    return float(counted.sum() if total else counted.mean())


def box_share(boxes: np.ndarray, shape: tuple[int, int]) -> float:
    """The share of a ``shape`` (height, width) frame inside at least one of the ``K x 4`` boxes
    (overlapping boxes count their shared pixels once): a defect's size that does not depend on the
    camera's resolution."""
    return float(inside_boxes(boxes, shape).mean())


def first_per_cluster(table: pd.DataFrame, order, budget: int, taken: set) -> list[int]:
    """Up to ``budget`` rows of ``table`` in ``order``, each the first of its ``cluster`` not in ``taken``
    (which grows with the picks): never two frames of one near-duplicate cluster."""
    rows: list[int] = []
    for row in order:
        if len(rows) < budget and table.cluster[row] not in taken:
            taken.add(table.cluster[row])
            rows.append(int(row))
    return rows


def stratified_rows(table: pd.DataFrame, budget: int) -> tuple[list[int], set[int]]:
    """Rows of ``table`` (indexed 0..n-1 from the most uncertain frame down, as ``rank_frames`` sorts it;
    columns ``box_share``, ``cluster``), most uncertain first: the pool split by box share into ``budget`` strata of equal size, the most
    uncertain row of each whose cluster is not taken yet; then, for strata whose clusters were all taken,
    the most uncertain rows left (the second set: those rows)."""
    by_size = table.sort_values(["box_share", "image_id"], kind="stable").index.to_numpy()
    taken: set = set()
    strata = np.array_split(by_size, min(budget, len(by_size))) if len(by_size) else []
    rows = [row for stratum in strata for row in first_per_cluster(table, sorted(stratum), 1, taken)]  # sorted: most uncertain first
    filled = first_per_cluster(table, table.index, budget - len(rows), taken)
    return sorted(rows + filled), set(filled)


def box_disagreement(probability: np.ndarray, boxes: np.ndarray, threshold: float = 0.5, reach: float = 1.0) -> float:
    """1 - the agreement of the model's mask (``probability >= threshold``) with the frame's own boxes
    (``box_agreement.frame_agreement``: rows and columns of each box the mask misses, mask drawn outside
    every box), coverage counted up to ``reach`` as the model's stage counted it. Where entropy finds the
    frames the model is unsure of, this finds the frames its own boxes prove it wrong on, sure or not."""
    coverage, outside = frame_agreement(thresholded(probability, threshold), boxes, reach)
    return float(1.0 - coverage * (1.0 - outside))


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


def typicality(points: np.ndarray, neighbours: int = 20) -> np.ndarray:
    """Inverse mean distance of each row of ``points`` to its ``neighbours`` nearest other rows (TypiClust's
    density; 1 for a lone row). A nearest-neighbour index, not all pairs: memory grows with the rows, not
    their square."""
    from sklearn.neighbors import NearestNeighbors  # noqa: PLC0415  (only this ranking needs scikit-learn)

    if len(points) < 2:
        return np.ones(len(points))
    k = min(neighbours, len(points) - 1)
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    return 1.0 / (distances[:, 1:].mean(axis=1) + EPS)


def typical_picks(pool: np.ndarray, budget: int, labelled: np.ndarray | None = None, groups: np.ndarray | None = None, seed: int = 0,
                  min_cluster_size: int = 5) -> list[int]:  # fmt: skip
    """TypiClust: indices of ``budget`` rows of ``pool``. k-means (seeded) clusters the pool and the
    ``labelled`` rows into ``len(labelled) + budget`` clusters. Clusters are visited in this order, each
    giving its most typical open row per pass: those without a labelled row, largest first; then those with
    one; clusters of fewer than ``min_cluster_size`` pool rows last (a lone far frame, junk, gets a cluster
    of its own: TypiClust skips them). Passes repeat until the budget is spent; at most one row per value of
    ``groups``. The result depends on the rows' order only through k-means' ties: give rows in a stable
    order (``rank_frames`` sorts them by frame name)."""
    from sklearn.cluster import KMeans  # noqa: PLC0415

    if len(pool) == 0 or budget <= 0:
        return []
    labelled = np.empty((0, pool.shape[1])) if labelled is None else np.asarray(labelled).reshape(-1, pool.shape[1])
    clusters = min(len(pool) + len(labelled), len(labelled) + budget)
    assignment = KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit_predict(np.vstack([pool, labelled]))
    covered = set(assignment[len(pool) :].tolist())
    assignment = assignment[: len(pool)]
    sizes = np.bincount(assignment, minlength=clusters)
    order = sorted(range(clusters), key=lambda c: (sizes[c] < min_cluster_size, c in covered, -sizes[c], c))
    density = np.zeros(len(pool))
    for c in order:
        members = np.flatnonzero(assignment == c)
        density[members] = typicality(pool[members])
    groups = np.arange(len(pool)) if groups is None else np.asarray(groups)
    open_rows = np.ones(len(pool), bool)
    picks: list[int] = []
    while len(picks) < budget and open_rows.any():
        for c in order:
            members = np.flatnonzero((assignment == c) & open_rows)
            if len(picks) < budget and len(members):
                choice = int(members[np.argmax(density[members])])
                picks.append(choice)
                open_rows &= groups != groups[choice]
    return picks


def uncertain_cluster_picks(pool: np.ndarray, budget: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices of up to ``budget`` rows of ``pool`` (N x D, rows most uncertain first): k-means (seeded) splits
    the rows into ``budget`` clusters and each gives its first (most uncertain) row; the picks in that order.
    Identical rows (black frames) can leave k-means fewer clusters than asked: the most uncertain rows left
    fill the budget (the second list: those rows)."""
    import warnings  # noqa: PLC0415

    from sklearn.cluster import KMeans  # noqa: PLC0415
    from sklearn.exceptions import ConvergenceWarning  # noqa: PLC0415

    if len(pool) <= budget:
        return list(range(len(pool))), []
    with warnings.catch_warnings():  # fewer distinct rows than clusters: handled below
        warnings.simplefilter("ignore", ConvergenceWarning)
        assignment = KMeans(n_clusters=budget, n_init=10, random_state=seed).fit_predict(pool)
    picks = {int(np.flatnonzero(assignment == c)[0]) for c in np.unique(assignment)}
    fill = [row for row in range(len(pool)) if row not in picks][: budget - len(picks)]
    return sorted(picks | set(fill)), fill


#: The score column each ranking ranks by (``next_to_label.csv``'s ``score``): ``uncertain_clusters`` its
#: candidates; the other k-means and k-center rankings and random list the mean entropy inside the boxes.
SCORE_COLUMN = {"uncertainty": "uncertainty", "uncertain_pixels": "uncertain_pixels", "disagreement": "disagreement",
                "uncertain_clusters": "uncertain_pixels", "largest_boxes": "box_share"}  # fmt: skip
#: The rankings that take the frames in their score's order, one per cluster.
IN_SCORE_ORDER = ("uncertainty", "uncertain_pixels", "disagreement", "largest_boxes")
REASONS = {
    "uncertainty": "uncertain: mean entropy {:.3f} inside its boxes",
    "uncertain_pixels": "uncertain: entropy summed over its boxes {:.0f}",
    "disagreement": "its boxes disagree with the model's mask ({:.3f})",
    "random": "random",
    "typical": "typical: the densest frame of its feature cluster (entropy {:.3f})",
    "diversity": "unlike the labelled frames (entropy {:.3f})",
    "hybrid": "uncertain and unlike the labelled frames (entropy {:.3f})",
    "uncertain_clusters": "the most uncertain of its feature cluster (entropy summed over its boxes {:.0f})",
    "uncertain_clusters_fill": "uncertain (entropy summed over its boxes {:.0f}); its candidates' features held fewer clusters than the budget",
    "largest_boxes": "its boxes cover {:.1%} of the frame",
    "stratified": "the most uncertain of the frames whose boxes are about its size (entropy {:.3f})",
    "stratified_fill": "uncertain (entropy {:.3f}); its stratum's frames were all near-duplicates of frames picked",
}


def rank_frames(scores: pd.DataFrame, budget: int, method: str, features: Mapping[str, np.ndarray] | None = None,
                labelled_features: np.ndarray | None = None, seed: int = 0, candidate_factor: int = 3) -> pd.DataFrame:  # fmt: skip
    """``budget`` frames of ``scores`` (columns ``image_id``, ``cluster``, ``uncertainty`` and the method's
    score column, ``SCORE_COLUMN``; ``stratified`` also ``box_share``) by ``method``, at most one per
    cluster: ``frame``, ``score`` (the score the method ranks by, else the mean entropy), ``reason``, in
    pick order."""
    if method not in METHODS:
        raise ValueError(f"unknown ranking {method!r}; choose one of {', '.join(METHODS)}")
    column = SCORE_COLUMN.get(method, "uncertainty")
    for needed in (column, "box_share") if method == "stratified" else (column,):
        if needed not in scores:
            raise ValueError(f"the {method} ranking needs a {needed!r} column of scores")
    table = scores.sort_values([column, "image_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
    filled: set[int] = set()  # stratified, uncertain_clusters: picks that only filled the budget
    if method in IN_SCORE_ORDER or method == "random":
        order = table.index if method != "random" else np.random.default_rng(seed).permutation(len(table))
        rows = first_per_cluster(table, order, budget, set())
    elif method == "typical":
        by_name = table.sort_values("image_id", kind="stable").index  # k-means sees the frames in a stable order
        pool = np.stack([features[i] for i in table.image_id[by_name]])
        rows = [int(by_name[r]) for r in typical_picks(pool, budget, labelled_features, table.cluster[by_name].to_numpy(), seed=seed)]
    elif method == "stratified":
        rows, filled = stratified_rows(table, budget)
    elif method == "uncertain_clusters":  # one frame per near-duplicate cluster among the candidates, then k-means
        candidates = first_per_cluster(table, table.index, max(budget, candidate_factor * budget), set())
        pool = np.stack([features[i] for i in table.image_id[candidates]]) if candidates else np.empty((0, 1))
        picks, fill = uncertain_cluster_picks(pool, budget, seed=seed)
        rows, filled = [candidates[r] for r in picks], {candidates[r] for r in fill}
    else:
        candidates = table if method == "diversity" else table.head(max(budget, candidate_factor * budget))
        if candidates.cluster.nunique() < min(budget, table.cluster.nunique()):  # near-duplicates among the candidates
            candidates = table
        pool = np.stack([features[i] for i in candidates.image_id])
        rows = [int(candidates.index[r]) for r in k_center_greedy(pool, budget, labelled_features, candidates.cluster.to_numpy())]
    reasons = {i: REASONS[f"{method}_fill" if i in filled else method] for i in rows}
    listed = [{"frame": table.image_id[i], "score": round(float(table[column][i]), 5), "reason": reasons[i].format(table[column][i])} for i in rows]
    return pd.DataFrame(listed, columns=["frame", "score", "reason"])
