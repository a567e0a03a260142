"""Benchmark of near-duplicate detection: hashing throughput and clustering time vs N.

    python bench/dedupe.py [--hash-images 200] [--sizes 1000 5000 20000]

Hashing is measured on synthetic frames (decoded arrays in memory, so decode time is excluded).
Clustering is measured on random 64-bit hashes with 5% planted near-duplicates (1-3 bits flipped).
"""

from __future__ import annotations

import argparse
import itertools
import math
import time

import numpy as np

from sewer_segmentation.data.dedupe import cluster_hashes, perceptual_hash
from sewer_segmentation.data.synthetic import SyntheticConfig, draw_frame


def hashing_throughput(n_images: int, width: int, height: int) -> float:
    config = SyntheticConfig(width=width, height=height)
    frames = [draw_frame(config, i).image for i in range(n_images)]
    start = time.perf_counter()
    for frame in frames:
        perceptual_hash(frame)
    return n_images / (time.perf_counter() - start)


def planted_hashes(n: int, rng: np.random.Generator) -> np.ndarray:
    hashes = rng.integers(0, 2**63, size=n, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, n, dtype=np.uint64)
    n_dup = n // 20
    sources = rng.integers(0, n - n_dup, n_dup)
    for k, src in enumerate(sources):
        flips = rng.choice(64, size=rng.integers(1, 4), replace=False)
        hashes[n - n_dup + k] = hashes[src] ^ np.uint64(sum(1 << int(b) for b in flips))
    return hashes[:, None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hash-images", type=int, default=200)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--max-distance", type=int, default=6)
    args = parser.parse_args()

    for width, height in ((320, 240), (704, 512)):
        rate = hashing_throughput(args.hash_images, width, height)
        print(f"hashing (phash, {width}x{height} frames): {rate:,.0f} images/s")

    rng = np.random.default_rng(0)
    timings = []
    for n in args.sizes:
        hashes = planted_hashes(n, rng)
        start = time.perf_counter()
        labels = cluster_hashes(hashes, args.max_distance)
        seconds = time.perf_counter() - start
        timings.append((n, seconds))
        clusters = np.bincount(labels)
        print(f"clustering N={n:>6}: {seconds:7.3f} s, {int((clusters > 1).sum())} duplicate clusters")
    for (n1, t1), (n2, t2) in itertools.pairwise(timings):
        exponent = math.log(t2 / t1) / math.log(n2 / n1)
        print(f"growth {n1} -> {n2}: time x{t2 / t1:.1f} for N x{n2 / n1:.0f} (~ N^{exponent:.2f})")


if __name__ == "__main__":
    main()
