"""Deterministic, duplicate-aware splits of hand-labelled images.

Whole duplicate clusters are assigned to one split, so near-identical frames never sit in train and
eval at once. Randomness comes from ``numpy.random.default_rng(seed)`` over sorted cluster ids, so
the result depends only on the seed and the set of clusters, not on file order or Python's hash salt.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from sewer_segmentation.errors import BadInputError

logger = logging.getLogger(__name__)

BASELINE_TRAIN, BASELINE_VAL, EVAL, WEAK = "baseline_train", "baseline_val", "eval", "weak"
#: Box-only frames held out of the weak pool: never trained on, never refined; they score models by how well
#: their predictions agree with the boxes (``modelling.box_agreement``).
WEAK_HOLDOUT = "weak_holdout"
SPLITS = (BASELINE_TRAIN, BASELINE_VAL, EVAL, WEAK, WEAK_HOLDOUT)
#: Splits whose frames no training set and no refined mask may hold.
HELD_OUT = (EVAL, WEAK_HOLDOUT)


def split_clusters(
    cluster_sizes: pd.Series, eval_fraction: float, val_fraction: float, seed: int
) -> dict[int, str]:
    """Assign each cluster (index = cluster id, value = number of images) to a split.

    Clusters are shuffled with the seed, then eval takes clusters until it holds ``eval_fraction`` of the
    images; of the rest, validation takes ``val_fraction`` and train the remainder. With at least three
    clusters, every split gets at least one.
    """
    if not 0 < eval_fraction < 1 or not 0 < val_fraction < 1:
        raise ValueError("eval_fraction and val_fraction must be strictly between 0 and 1")
    ids = np.array(sorted(cluster_sizes.index))
    order = np.random.default_rng(seed).permutation(len(ids))
    ids = ids[order]
    sizes = cluster_sizes.loc[ids].to_numpy()
    total = sizes.sum()
    n_eval = _take_until(sizes, eval_fraction * total, keep_after=2 if len(ids) >= 3 else 0)
    rest = sizes[n_eval:]
    n_val = _take_until(rest, val_fraction * rest.sum(), keep_after=1 if len(rest) >= 2 else 0)
    assignment = {}
    for k, cluster in enumerate(ids):
        if k < n_eval:
            assignment[int(cluster)] = EVAL
        elif k < n_eval + n_val:
            assignment[int(cluster)] = BASELINE_VAL
        else:
            assignment[int(cluster)] = BASELINE_TRAIN
    return assignment


def holdout_clusters(cluster_sizes: pd.Series, fraction: float, seed: int) -> set[int]:
    """The box-only clusters (index = cluster id, value = number of images) held out as ``weak_holdout``:
    seeded like the other splits, on a stream of its own (the hand-labelled splits do not move when the
    fraction changes), about ``fraction`` of the images, and never every cluster (the weak pool keeps one)."""
    if not 0 <= fraction < 1:
        raise ValueError("weak_holdout_fraction must be at least 0 and below 1")
    if fraction == 0 or len(cluster_sizes) < 2:
        return set()
    ids = np.array(sorted(cluster_sizes.index))
    ids = ids[np.random.default_rng([seed, 1]).permutation(len(ids))]
    cumulative = np.cumsum(cluster_sizes.loc[ids].to_numpy())
    target = fraction * cumulative[-1]
    taken = int(np.argmin(np.abs(np.concatenate([[0], cumulative]) - target)))  # 0 .. len(ids) leading clusters
    return {int(c) for c in ids[: min(taken, len(ids) - 1)]}


def _take_until(sizes: np.ndarray, target: float, keep_after: int) -> int:
    """How many leading clusters to take so that their images come closest to ``target`` (at least 1
    when any exist), leaving at least ``keep_after`` clusters for the later splits."""
    if len(sizes) == 0:
        return 0
    cumulative = np.cumsum(sizes)
    best = int(np.argmin(np.abs(cumulative - target))) + 1
    return int(np.clip(best, 1, max(1, len(sizes) - keep_after)))


def check_splits_agree(manifest: pd.DataFrame, folders: dict[str, object]) -> None:
    """Refuse split folders that do not hold exactly what ``split_manifest.csv`` assigns to them.

    ``folders`` maps ``<split>`` or ``<split>/<kind>`` (``eval/masks``) to that folder's image ids
    (partition keys). An interrupted data_engineering run can leave folders of two runs side by side;
    training on them could put eval images in a training set, so every reader checks before it reads.
    """
    ids = manifest.image_id.astype(str)
    problems = []
    for name, folder in folders.items():
        split = name.split("/", 1)[0]
        expected, found = set(ids[manifest.split == split]), set(folder)
        if expected != found:
            extra, missing = sorted(found - expected), sorted(expected - found)
            problems.append(f"{name}: {len(extra)} images the manifest does not put there ({', '.join(extra[:3]) or '-'}), "
                            f"{len(missing)} missing ({', '.join(missing[:3]) or '-'})")  # fmt: skip
    if problems:
        raise BadInputError(
            "the split folders do not match split_manifest.csv (an interrupted data_engineering run?): "
            + "; ".join(problems) + ". Run `kedro run --pipeline=data_engineering` again."
        )


def check_no_held_out_images(manifest: pd.DataFrame, training_ids, what: str) -> None:
    """Refuse to train on any image the manifest puts in eval or weak_holdout: those score models, and a
    model that saw them would score itself."""
    training_ids = set(training_ids)
    for split in HELD_OUT:
        held = set(manifest.image_id.astype(str)[manifest.split == split])
        leaked = sorted(held & training_ids)
        if leaked:
            raise BadInputError(f"{what} holds {len(leaked)} {split} images ({', '.join(leaked[:5])}); {split} images are never trained on. "
                                "Run `kedro run --pipeline=data_engineering` and then the rounds again.")  # fmt: skip


def split_fingerprint(manifest: pd.DataFrame) -> str:
    """A short hash of which image is in which split. Saved with every model, so a model trained before
    the splits changed (data_engineering run again with another seed or other data) is never refined
    from: its training set may hold images that are in eval now."""
    rows = sorted(f"{i}\t{s}" for i, s in zip(manifest.image_id.astype(str), manifest.split, strict=True))
    return hashlib.sha1("\n".join(rows).encode()).hexdigest()[:16]


def check_model_matches_splits(manifest: pd.DataFrame, metadata: dict, what: str) -> None:
    """Refuse a model trained on other splits than ``split_manifest.csv`` holds now (models saved before
    fingerprints existed carry none and are accepted)."""
    saved = metadata.get("split_fingerprint")
    if saved is not None and saved != split_fingerprint(manifest):
        stage = metadata.get("stage") or "the model"
        raise BadInputError(
            f"{what} ({stage}, version {metadata.get('version')}) was trained on other splits than split_manifest.csv holds now "
            "(data_engineering ran again since): some of its training images may be eval images now. "
            "Run `kedro run --pipeline=baseline` again, then the rounds."
        )


def split_changes(previous: pd.DataFrame | None, current: pd.DataFrame) -> pd.DataFrame:
    """Frames whose split differs between two manifests: ``image_id, before, after``, where a frame in
    only one of them is ``(not kept)`` in the other (left out as a duplicate, removed, or new). None or an
    empty ``previous`` (a first run) changes nothing."""
    columns = ["image_id", "before", "after"]
    if previous is None or previous.empty:
        return pd.DataFrame(columns=columns)
    before = previous.set_index(previous.image_id.astype(str)).split
    after = current.set_index(current.image_id.astype(str)).split
    both = pd.concat([before.rename("before"), after.rename("after")], axis=1).fillna("(not kept)")
    moved = both[both.before != both.after]
    return moved.rename_axis("image_id").reset_index()[columns].sort_values("image_id", kind="stable").reset_index(drop=True)


def log_split_changes(previous: pd.DataFrame | None, manifest: pd.DataFrame) -> None:
    """Warn, naming them, about the frames whose split differs from the last run's manifest (``previous``)."""
    changes = split_changes(previous, manifest)
    if changes.empty:
        return
    listing = ", ".join(f"{r.image_id} ({r.before} -> {r.after})" for r in changes.head(20).itertuples())
    logger.warning("%d frames changed split since the last data_engineering run (near-duplicates grouped differently, other data "
                   "or settings): %s%s. Models trained on the old splits are refused; train the baseline again",
                   len(changes), listing, ", ..." if len(changes) > 20 else "")  # fmt: skip


def rows_of_split(manifest: pd.DataFrame, split: str) -> pd.DataFrame:
    """The manifest rows of ``split`` (a ValueError for a split that does not exist)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    return manifest[manifest.split == split]


def split_settings(split, seed: int) -> str:
    """What a manifest's splits were drawn with (``split``: the ``data_engineering.split`` section). A later run
    with the same settings keeps each frame's split; other settings draw the splits anew."""
    grouped = f";group_by={split.group_by}" if split.group_by else ""
    grouped += f";group_by_column={split.group_by_column}" if split.group_by_column else ""
    return f"seed={seed};eval={split.eval_fraction};val={split.val_fraction};holdout={split.weak_holdout_fraction}{grouped}"


def metadata_groups(metadata: pd.DataFrame | None, column: str | None, source: str = "metadata.csv") -> dict[str, str]:
    """File name -> value of ``column`` in the dataset's ``metadata.csv`` (``split.group_by_column``): frames with
    one value (an inspection, a pipe section, a manhole pair) share a split. Empty without a column."""
    if not column:
        return {}
    if metadata is None:
        raise BadInputError(f"{source}: no such file, and data_engineering.split.group_by_column is {column!r}; write it beside images/ "
                            "with a column file (the image's file name) and a column per grouping, or unset group_by_column")  # fmt: skip
    missing = [c for c in ("file", column) if c not in metadata.columns]
    if missing:
        raise BadInputError(f"{source}: no column {' or '.join(map(repr, missing))} (columns: {', '.join(map(str, metadata.columns))})")
    repeated = metadata.file[metadata.file.duplicated()].astype(str).tolist()
    if repeated:
        raise BadInputError(f"{source}: {len(repeated)} files are listed more than once ({', '.join(repeated[:5])}): one row per frame")
    rows = metadata[metadata[column].notna()]
    return dict(zip(rows.file.astype(str), rows[column].astype(str), strict=True))


def group_units(kept: pd.DataFrame, pattern: str | None = None, groups: Mapping[str, str] | None = None) -> pd.Series:
    """Per frame, the unit it is split with: its near-duplicate cluster joined with every cluster holding a frame
    of the same group, so frames of one inspection or pipe run share a split even when they do not look alike.
    A frame's groups: the match of ``pattern`` in its file name (``source_file``; the first group, if it has
    one), and its value in ``groups`` (file name -> value, from a metadata column)."""
    regex, parent = (re.compile(pattern) if pattern else None), {}
    groups = groups or {}

    def root(node):
        while parent.get(node, node) != node:
            node = parent[node]
        return node

    for cluster, name in zip(kept.cluster_id, kept.source_file.astype(str), strict=True):
        match = regex.search(name) if regex else None
        if match:
            parent[root(("cluster", cluster))] = root(("group", match.group(1) if regex.groups else match.group(0)))
        if name in groups:
            parent[root(("cluster", cluster))] = root(("column", groups[name]))
    roots = {cluster: root(("cluster", cluster)) for cluster in kept.cluster_id}
    numbers = {r: i for i, r in enumerate(sorted(set(roots.values()), key=str))}
    return kept.cluster_id.map(lambda c: numbers[roots[c]])


def draw_splits(kept: pd.DataFrame, split, seed: int, previous: pd.DataFrame | None = None, groups: Mapping[str, str] | None = None) -> pd.Series:
    """The split of every kept frame (``kept``: image_id, cluster_id, has_polygon), by cluster.

    The rule: hand-labelled clusters into baseline_train / baseline_val / eval (``split_clusters``), box-only
    ones into weak, a seeded share of them into weak_holdout (``holdout_clusters``). With ``split.stable`` and
    a ``previous`` manifest drawn with the same settings, a frame keeps the split it had (``keep_splits``):
    adding hand labels never moves an eval frame, and a frame corrected after a review joins the training
    side, never eval."""
    if split.group_by or groups:  # a unit of the rule is a cluster joined with its group's clusters
        kept = kept.assign(cluster_id=group_units(kept, split.group_by, groups))
    labelled = kept[kept.has_polygon]
    assignment = split_clusters(labelled.groupby("cluster_id").size(), split.eval_fraction, split.val_fraction, seed)
    drawn = pd.Series(np.where(kept.has_polygon, kept.cluster_id.map(assignment), WEAK), index=kept.index)
    # box-only frames of a unit in eval are never trained on: they score models (weak_holdout) instead
    drawn[~kept.has_polygon & kept.cluster_id.isin(labelled.cluster_id[labelled.cluster_id.map(assignment) == EVAL])] = WEAK_HOLDOUT
    weak = kept[drawn == WEAK]
    held = holdout_clusters(weak.groupby("cluster_id").size(), split.weak_holdout_fraction, seed)
    drawn[(drawn == WEAK) & kept.cluster_id.isin(held)] = WEAK_HOLDOUT
    same = previous is not None and "drawn_with" in previous and (previous.drawn_with == split_settings(split, seed)).all()
    if not (split.stable and same):
        return drawn
    before = dict(zip(previous.image_id.astype(str), previous.split, strict=True))
    return keep_splits(kept.assign(drawn=drawn), before)


#: Splits a frame has been trained on or used to choose a model with: never moved into eval.
_USED = (BASELINE_TRAIN, BASELINE_VAL, WEAK, WEAK_HOLDOUT)


def keep_splits(kept: pd.DataFrame, before: dict[str, str]) -> pd.Series:
    """Per cluster, the split its frames had ``before`` (image id -> split), else the rule's (``drawn``).

    - A hand-labelled cluster with a frame that was in eval stays in eval (an eval frame never moves); an eval
      frame whose label is gone (a box-only cluster now) goes to weak_holdout, never trained on.
    - A hand-labelled cluster whose frames were box-only before (labels corrected after a review) goes to the
      training side: the labelled split one of them had, else the rule's unless it is eval, else baseline_train.
    - Otherwise the split its frames had on the same side (labelled: the most of them, a tie baseline_train;
      box-only: weak if one was trained on, else weak_holdout), or, for new frames, the rule's.
    """
    out = kept.drawn.copy()
    for _, members in kept.groupby("cluster_id"):
        had = [before[i] for i in members.image_id.astype(str) if i in before]
        labelled, rule = bool(members.has_polygon.any()), members.drawn.iloc[0]
        if labelled and EVAL in had:
            choice = EVAL
            joined = [i for i in members.image_id.astype(str) if before.get(i) in _USED]
            if joined:
                logger.warning("Frames used for training before now share a near-duplicate cluster with an eval frame and join eval: %s",
                               ", ".join(joined[:10]))  # fmt: skip
        elif labelled and set(had) & {WEAK, WEAK_HOLDOUT}:
            earlier = [s for s in had if s in (BASELINE_TRAIN, BASELINE_VAL)]
            choice = earlier[0] if earlier else (rule if rule != EVAL else BASELINE_TRAIN)
        elif labelled and set(had) & {BASELINE_TRAIN, BASELINE_VAL}:
            choice = min(set(had), key=lambda s: (-had.count(s), SPLITS.index(s)))  # the most of them; a tie: train
        elif not labelled and EVAL in had:
            choice = WEAK_HOLDOUT  # its label is gone: an eval frame until now is never trained on
        elif not labelled and set(had) & {WEAK, WEAK_HOLDOUT}:
            choice = WEAK if WEAK in had else WEAK_HOLDOUT  # a frame trained on never scores models
        else:
            choice = rule
        out[members.index] = choice
        if labelled:  # box-only frames grouped with hand-labelled ones (split.group_by) stay on the box-only side
            for index, image_id, drawn in zip(members.index, members.image_id.astype(str), members.drawn, strict=True):
                if members.has_polygon[index]:
                    continue
                if choice == EVAL:
                    out[index] = WEAK_HOLDOUT  # never trained on beside an eval frame of its group
                elif before.get(image_id) in (WEAK, WEAK_HOLDOUT):
                    out[index] = before[image_id]
                else:
                    out[index] = drawn
    return out
