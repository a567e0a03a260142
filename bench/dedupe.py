"""Near-duplicate detection: recall per transform, false merges, frames per second, and how it scales.

    python bench/dedupe.py                        # 300 frames + 10 pipe runs of 10 frames, 704x576
    python bench/dedupe.py --frames 100 --runs 3  # quicker
    python bench/dedupe.py --scaling 1000 4000 16000

The labelled set: ``--frames`` generator frames from distinct seeds, plus ``--runs`` pipe runs of 10
frames one metre apart (``data/pipe_runs.py``: the same pipe, lamp and far end, other joints and wall:
the look-alikes a detector must keep apart). Each of these originals gets a copy per transform: a
horizontal flip, crops of 5, 10 and 15 % at a random place, a zoom of 1.1, a shift of 5 %, and brightness
+20 % and -20 %. Every frame is stored as a JPEG (quality 90) and the timing includes decoding it.

Per transform, the originals and that transform's copies are clustered together (as data_engineering
does: ``dedupe.method`` aligned or a perceptual hash); **recall** is the share of copies that land in
their original's cluster, **false merges** the share of pairs of distinct originals that land in one
cluster (and how many of the 9 pairs of neighbouring frames per pipe run). ``--scaling`` times the
aligned detector on N frames of 160x128 (half of them copies) to show how its cost grows.
"""

from __future__ import annotations

import argparse
import math
import time

import cv2
import numpy as np

from sewer_segmentation.data.aligned_duplicates import MIN_SIMILARITY, near_duplicate_pairs, thumbnail
from sewer_segmentation.data.dedupe import cluster_hashes, perceptual_hash
from sewer_segmentation.data.pipe_runs import pipe_run_frame
from sewer_segmentation.data.synthetic import SyntheticConfig, draw_frame
from sewer_segmentation.io.imaging import decode_image

TRANSFORMS = ("hflip", "crop5", "crop10", "crop15", "zoom1.1", "shift5", "bright+20", "bright-20")


def transformed(image: np.ndarray, name: str, rng: np.random.Generator) -> np.ndarray:
    """``image`` under one of ``TRANSFORMS`` (crops at a seeded random place, same aspect ratio)."""
    h, w = image.shape[:2]
    if name == "hflip":
        return image[:, ::-1].copy()
    if name.startswith("crop"):
        keep = 1 - int(name[4:]) / 100
        ch, cw = round(h * keep), round(w * keep)
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        return image[y0 : y0 + ch, x0 : x0 + cw].copy()
    if name.startswith("zoom"):
        factor = float(name[4:])
        ch, cw = round(h / factor), round(w / factor)
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        return cv2.resize(image[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    if name == "shift5":
        sx, sy = round(0.05 * w) * int(rng.choice([-1, 1])), round(0.05 * h) * int(rng.choice([-1, 1]))
        return cv2.warpAffine(image, np.float32([[1, 0, sx], [0, 1, sy]]), (w, h), borderMode=cv2.BORDER_REPLICATE)
    factor = 1 + int(name[6:]) / 100  # bright+20 / bright-20
    return np.clip(image.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def labelled_set(frames: int, runs: int, width: int, height: int) -> tuple[list[bytes], dict[str, list[bytes]], list[tuple[int, int]]]:
    """Originals (JPEG), their copies per transform (same order), and the index pairs of neighbouring
    frames of each pipe run."""
    rng = np.random.default_rng(0)
    originals = [draw_frame(SyntheticConfig(width=width, height=height, seed=1000 + k), 0).image for k in range(frames)]
    neighbours = []
    for run in range(runs):
        first = len(originals)
        originals += [pipe_run_frame(500 + run, 20.0 + metre, width, height) for metre in range(10)]
        neighbours += [(first + m, first + m + 1) for m in range(9)]
    copies = {name: [jpeg(transformed(image, name, rng)) for image in originals] for name in TRANSFORMS}
    return [jpeg(image) for image in originals], copies, neighbours


def clusters(encoded: list[bytes], method: str, min_similarity: float, max_distance: int, jobs: int) -> np.ndarray:
    """Cluster label per frame, decoding each JPEG as data_engineering does."""
    from scipy.sparse import coo_matrix  # noqa: PLC0415
    from scipy.sparse.csgraph import connected_components  # noqa: PLC0415

    frames = [decode_image(data) for data in encoded]
    if method != "aligned":
        return cluster_hashes(np.stack([perceptual_hash(f, method) for f in frames]), max_distance)
    pairs = near_duplicate_pairs([thumbnail(f) for f in frames], min_similarity, n_jobs=jobs)
    i, j = (np.array([p[k] for p in pairs], dtype=np.int64) for k in (0, 1))
    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(len(frames), len(frames)))
    return connected_components(graph, directed=False)[1]


def quality_table(args) -> None:
    originals, copies, neighbours = labelled_set(args.frames, args.runs, 704, 576)
    n = len(originals)
    setting = f"min_similarity {args.min_similarity}" if args.method == "aligned" else f"max_distance {args.max_distance}"
    print(f"{args.frames} frames from distinct seeds + {args.runs} pipe runs x 10 frames 1 m apart = {n} originals, 704x576, "
          f"method {args.method}, {setting}")  # fmt: skip
    print("| transform | recall | false merges (distinct pairs) | neighbouring run frames merged | frames/s (decode + detect) |")
    print("|---|---|---|---|---|")
    worst_recall, worst_false, total_frames, total_seconds = 1.0, 0.0, 0, 0.0
    for name in TRANSFORMS:
        start = time.perf_counter()
        labels = clusters(originals + copies[name], args.method, args.min_similarity, args.max_distance, args.jobs)
        seconds = time.perf_counter() - start
        recall = float(np.mean(labels[n:] == labels[:n]))
        counts = np.bincount(labels[:n])
        false = float(sum(c * (c - 1) // 2 for c in counts) / (n * (n - 1) // 2))
        merged_neighbours = sum(labels[a] == labels[b] for a, b in neighbours)
        worst_recall, worst_false = min(worst_recall, recall), max(worst_false, false)
        total_frames, total_seconds = total_frames + 2 * n, total_seconds + seconds
        print(f"| {name} | {recall:.3f} | {false:.4f} | {merged_neighbours}/{len(neighbours)} | {2 * n / seconds:.0f} |", flush=True)
    print(f"\nworst recall {worst_recall:.3f} (>= 0.95), worst false merges {worst_false:.4f} (<= 0.01), "
          f"{total_frames / total_seconds:.0f} frames/s including decoding (>= 200)")  # fmt: skip


def scaling(args) -> None:
    """Time of the aligned detector on N thumbnails of 160x128 frames (half of them transformed copies)."""
    rng = np.random.default_rng(1)
    timings = []
    for n in args.scaling:
        originals = [draw_frame(SyntheticConfig(width=160, height=128, seed=5000 + k), 0).image for k in range(n // 2)]
        thumbs = [thumbnail(f) for f in originals] + [thumbnail(transformed(f, TRANSFORMS[k % len(TRANSFORMS)], rng)) for k, f in enumerate(originals)]
        start = time.perf_counter()
        pairs = near_duplicate_pairs(thumbs, args.min_similarity, n_jobs=args.jobs)
        seconds = time.perf_counter() - start
        timings.append((n, seconds))
        print(f"N={n:>6}: {seconds:7.1f} s ({n / seconds:.0f} frames/s, thumbnails given), {len(pairs)} near-duplicate pairs", flush=True)
    for (n1, t1), (n2, t2) in zip(timings, timings[1:], strict=False):
        print(f"growth {n1} -> {n2}: time x{t2 / t1:.1f} for N x{n2 / n1:.0f} (~ N^{math.log(t2 / t1) / math.log(n2 / n1):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--method", default="aligned", choices=["aligned", "phash", "dhash", "ahash", "whash"])
    parser.add_argument("--min-similarity", type=float, default=MIN_SIMILARITY)
    parser.add_argument("--max-distance", type=int, default=6, help="perceptual hashes only")
    parser.add_argument("--jobs", type=int, default=2, help="threads for the alignment scores")
    parser.add_argument("--scaling", type=int, nargs="+", help="time the aligned detector on these numbers of frames instead")
    args = parser.parse_args()
    if args.scaling:
        scaling(args)
    else:
        quality_table(args)


if __name__ == "__main__":
    main()
