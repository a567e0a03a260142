"""Near-duplicate detection: which frames show the same scene, and the clusters they form.

``dedupe.method`` chooses how two frames are compared:

- ``aligned`` (the default, ``data/aligned_duplicates.py``): one frame aligned onto the other (mirror,
  crop or zoom of up to 15 %, shift) and their band-passed centres correlated; catches flipped, cropped,
  zoomed, shifted and re-exposed copies, and keeps apart frames of one pipe a metre apart.
- ``phash`` | ``dhash`` | ``ahash`` | ``whash``: imagehash's perceptual hashes within ``max_distance``
  bits (Hamming distances in numpy blocks: XOR, then popcount). Fast, but blind to flips, crops and zooms.

Clusters are the connected components of the near-duplicate relation (single linkage): if A~B and B~C,
all three are one cluster even when A and C are further apart. That is what splitting needs: no chain of
near-identical frames may cross from train to eval.
"""

from __future__ import annotations

import json
import os

import imagehash
import numpy as np
import pandas as pd
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from sewer_segmentation.data.aligned_duplicates import MIN_SIMILARITY, near_duplicate_pairs, thumbnail

#: Ways to compare frames (``dedupe.method``).
METHODS = ("aligned", "phash", "dhash", "ahash", "whash")

HASH_FUNCTIONS = {
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "ahash": imagehash.average_hash,
    "whash": imagehash.whash,
}


def perceptual_hash(image: np.ndarray, method: str = "phash", hash_size: int = 8) -> np.ndarray:
    """Hash of an RGB uint8 image as a row of uint64 words (hash_size**2 bits, zero-padded)."""
    if method not in HASH_FUNCTIONS:
        raise ValueError(f"unknown hash method {method!r}; choose one of {', '.join(METHODS)}")
    bits = HASH_FUNCTIONS[method](Image.fromarray(image), hash_size=hash_size).hash.flatten()
    return bits_to_words(bits)


def bits_to_words(bits: np.ndarray) -> np.ndarray:
    n_words = -(-bits.size // 64)
    padded = np.zeros(n_words * 64, dtype=bool)
    padded[: bits.size] = bits
    return np.packbits(padded).view(">u8").astype(np.uint64)


def words_to_hex(words: np.ndarray) -> str:
    return "".join(f"{int(w):016x}" for w in words)


def hex_to_words(text: str) -> np.ndarray:
    return np.array([int(text[i : i + 16], 16) for i in range(0, len(text), 16)], dtype=np.uint64)


def close_pairs(hashes: np.ndarray, max_distance: int, block_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i < j) whose hashes differ in at most ``max_distance`` bits.

    ``hashes`` is an ``N x words`` uint64 array. Work is done one block of rows at a time against all
    later rows, so memory stays at ``block_size x N`` distances.
    """
    hashes = np.ascontiguousarray(np.atleast_2d(hashes), dtype=np.uint64)
    n = hashes.shape[0]
    rows, cols = [], []
    for start in range(0, n, block_size):
        block = hashes[start : start + block_size]
        rest = hashes[start:]
        distance = np.zeros((block.shape[0], rest.shape[0]), dtype=np.uint16)
        for w in range(hashes.shape[1]):
            distance += np.bitwise_count(block[:, w, None] ^ rest[None, :, w]).astype(np.uint16)
        i, j = np.nonzero(distance <= max_distance)
        i, j = i + start, j + start
        keep = j > i
        rows.append(i[keep])
        cols.append(j[keep])
    if not rows:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(rows), np.concatenate(cols)


def cluster_pairs(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Cluster label per frame: connected components of the pairs ``(i[k], j[k])`` among ``n`` frames,
    numbered in order of each cluster's first frame, so they are deterministic."""
    if n == 0:
        return np.empty(0, np.int64)
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (np.asarray(i, np.int64), np.asarray(j, np.int64))), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def cluster_hashes(hashes: np.ndarray, max_distance: int, block_size: int = 1024) -> np.ndarray:
    """Cluster label per row: connected components of the ``distance <= max_distance`` graph."""
    return cluster_pairs(len(hashes), *close_pairs(hashes, max_distance, block_size))


def frame_signature(image: np.ndarray, method: str, hash_size: int = 8) -> np.ndarray:
    """What ``method`` compares a frame by, computed once when the frame is decoded: its grey thumbnail
    (``aligned``) or its perceptual hash as uint64 words."""
    if method == "aligned":
        return thumbnail(image)
    return perceptual_hash(image, method, hash_size)


def cluster_signatures(signatures: list[np.ndarray], method: str, min_similarity: float = MIN_SIMILARITY, candidates: int = 3,
                       max_distance: int = 6, n_jobs: int = 1) -> np.ndarray:  # fmt: skip
    """Cluster label per frame from the signatures ``frame_signature`` made with the same ``method``."""
    if method == "aligned":
        pairs = near_duplicate_pairs(signatures, min_similarity, candidates, n_jobs)
        return cluster_pairs(len(signatures), [p[0] for p in pairs], [p[1] for p in pairs])
    return cluster_hashes(np.stack(signatures), max_distance) if signatures else np.empty(0, np.int64)


def keep_one_per_cluster(inventory: pd.DataFrame, drop_duplicates: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Which frames of each near-duplicate cluster (``inventory.cluster_id``) stay: box-only members of a
    cluster holding a hand-labelled frame always go (they would leak eval content into the weak pool); with
    ``drop_duplicates`` only the representative stays (a hand-labelled frame if any, else the largest,
    ties: the first image id). Returns the inventory with ``kept`` and ``drop_reason``, and one row per
    cluster of two or more frames."""
    inventory = inventory.copy()
    inventory["kept"] = True
    inventory["drop_reason"] = ""
    rank = inventory.assign(area=inventory.width * inventory.height).sort_values(
        ["cluster_id", "has_polygon", "area", "image_id"], ascending=[True, False, False, True]
    )
    representative = rank.groupby("cluster_id")["image_id"].first()
    for cluster_id, members in inventory.groupby("cluster_id"):
        if len(members) == 1:
            continue
        rep = representative[cluster_id]
        any_polygon = members["has_polygon"].any()
        for idx, row in members.iterrows():
            if row.image_id == rep:
                continue
            if drop_duplicates or (any_polygon and not row.has_polygon):
                inventory.loc[idx, ["kept", "drop_reason"]] = [False, f"near-duplicate of {rep}"]
    records = [
        {
            "cluster_id": int(cluster_id),
            "size": len(members),
            "representative": representative[cluster_id],
            # JSON, not space-joined: file names may hold spaces
            "members": json.dumps(list(members.image_id)),
            "dropped": int((~members.kept).sum()),
        }
        for cluster_id, members in inventory.groupby("cluster_id")
        if len(members) > 1
    ]
    return inventory, pd.DataFrame(records, columns=["cluster_id", "size", "representative", "members", "dropped"])


def available_cores() -> int:
    """The cores this process may run on (its affinity), at least 1."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
