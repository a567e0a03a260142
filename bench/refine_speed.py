"""Refinement on every core: frames per second with one thread and with ``n_jobs: auto``.

    python bench/refine_speed.py [--frames 80] [--method grabcut]

Refines synthetic 320x240 frames (probability maps made from the true masks, blurred and noisy) with
``refinement.refine_pool`` twice, checks the masks are identical, and prints the speed-up. Target:
>= 0.7 x the number of cores. The last line is `speedup=<x> cores=<n>`.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from sewer_segmentation.data.synthetic import SyntheticConfig, box_mask, draw_frame
from sewer_segmentation.io.imaging import to_uint8
from sewer_segmentation.refinement.methods import refine_pool, resolve_jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=80)
    parser.add_argument("--method", default="grabcut")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    frames = [draw_frame(SyntheticConfig(), i) for i in range(args.frames)]
    probabilities = {}
    for f in frames:
        soft = cv2.GaussianBlur(f.truth.astype(np.float32) / 255, (0, 0), 3) * 0.8 + 0.1
        probabilities[f.name] = to_uint8(np.clip(soft + rng.normal(0, 0.05, soft.shape), 0, 1))
    images = {f.name: (lambda f=f: f.image) for f in frames}
    boxes = {f.name: (lambda f=f: box_mask(f.boxes, f.truth.shape)) for f in frames}
    seconds = {}
    results = {}
    for jobs in (1, "auto"):
        start = time.perf_counter()
        results[jobs] = refine_pool(probabilities, images, boxes, args.method, {}, n_jobs=jobs)
        seconds[jobs] = time.perf_counter() - start
    same = all(np.array_equal(results[1][k][i], results["auto"][k][i]) for k in results[1] for i in (0, 1))
    cores = resolve_jobs("auto")
    print(f"{args.method}, {args.frames} frames of 320x240: 1 thread {args.frames / seconds[1]:.1f} frames/s, "
          f"{cores} threads {args.frames / seconds['auto']:.1f} frames/s; masks identical: {same}")  # fmt: skip
    if not same:
        raise SystemExit("masks differ between 1 and several threads")
    print(f"speedup={seconds[1] / seconds['auto']:.2f} cores={cores}")


if __name__ == "__main__":
    main()
