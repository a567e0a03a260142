"""Near-duplicate detection: perceptual hashes and vectorized Hamming-distance clustering.

Two frames are near-duplicates when the Hamming distance of their perceptual hashes is at most
``max_distance`` bits. Clusters are the connected components of that relation (single linkage):
if A~B and B~C, all three are one cluster even when A and C are further apart. That is what splitting
needs: no chain of near-identical frames may cross from train to eval.

Distances are computed with numpy in blocks (XOR, then popcount): no Python loop over pairs.
"""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

HASH_FUNCTIONS = {
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "ahash": imagehash.average_hash,
    "whash": imagehash.whash,
}


def perceptual_hash(image: np.ndarray, method: str = "phash", hash_size: int = 8) -> np.ndarray:
    """Hash of an RGB uint8 image as a row of uint64 words (hash_size**2 bits, zero-padded)."""
    if method not in HASH_FUNCTIONS:
        raise ValueError(f"unknown hash method {method!r}; choose one of {sorted(HASH_FUNCTIONS)}")
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


def cluster_hashes(hashes: np.ndarray, max_distance: int, block_size: int = 1024) -> np.ndarray:
    """Cluster label per row: connected components of the ``distance <= max_distance`` graph.

    Labels are numbered in order of each cluster's first row, so they are deterministic.
    """
    n = len(hashes)
    if n == 0:
        return np.empty(0, np.int64)
    i, j = close_pairs(hashes, max_distance, block_size)
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)
