"""How much of a ``bench/active_learning.py`` result is which frames, and how much the training's luck.

    python bench/checkpoint_noise.py hard:4 --rows bench/results/active_learning_second_cpu.jsonl > noise.jsonl

For each REGIME:SEED, the frames a row's rankings picked (``random`` and ``uncertain_pixels``) are trained
again, beside the 12 first labels and with the row's steps, with three training seeds (the row's own
first), keeping either the best weights on the 6 validation frames or the last weights. One JSON line per
training on stdout: the spread over training seeds of the same frames is luck, not the ranking. Rows of
``--supervision boxes`` are not retrained (their box-only frames would be missing).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from active_learning import METHODS, eval_iou, merged, setting, split_frames, train

from sewer_segmentation.params import ModelParams, TrainingParams


def picked_row(rows: list[dict], regime: str, seed: int, methods: list[str]) -> dict:
    """The one row of (regime, seed) trained on hand labels alone that names every method's picks."""
    found = [r for r in rows if (r["regime"], r["seed"]) == (regime, seed) and setting(r)[0] == "labels" and all(f"{m}_frames" in r for m in methods)]
    if len(found) != 1:
        raise SystemExit(f"{regime}:{seed}: {len(found)} rows trained on hand labels alone name the picks of {', '.join(methods)}; need exactly one")
    return found[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="REGIME:SEED, e.g. hard:4")
    parser.add_argument("--rows", type=Path, required=True, help="rows of bench/active_learning.py that name the frames picked")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=["random", "uncertain_pixels"], help="whose picks to train again")
    parser.add_argument("--train-seeds", nargs="+", type=int, default=[101, 102], help="besides the row's own seed")
    args = parser.parse_args()
    rows = merged([json.loads(line) for line in args.rows.read_text().splitlines() if line.strip()])
    model_config = ModelParams().as_dict()
    with tempfile.TemporaryDirectory() as root:
        for regime, seed in ((name, int(number)) for name, number in (run.split(":") for run in args.runs)):
            row = picked_row(rows, regime, seed, args.methods)
            training = {**TrainingParams().as_dict(), "steps": row["steps"], "progress_bar": False}
            parts = split_frames(regime, seed)
            by_name = {f.name: (key, f) for key, f in parts["pool"]}
            for method in args.methods:
                frames = parts["labelled"] + [by_name[name] for name in row[f"{method}_frames"]]
                for train_seed in (seed, *args.train_seeds):
                    for keep_last in (False, True):
                        start = time.perf_counter()
                        model = train(frames, parts["val"], model_config, training, train_seed, Path(root), keep_last=keep_last)
                        print(json.dumps({"regime": regime, "seed": seed, "method": method, "row": row[method], "train_seed": train_seed,
                                          "weights": "last" if keep_last else "validated", "eval": eval_iou(model, model_config, parts["eval"]),
                                          "seconds": round(time.perf_counter() - start)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
