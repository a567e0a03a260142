"""Thin defects at their true width: resize to 160x128, resize to 352x256, or native crops, at equal time.

    python bench/resolution.py                      # crack and deposition, seeds 1 2, 150 s of training each
    python bench/resolution.py --regimes crack --seeds 1 --train-seconds 60   # development

For each regime and seed it writes a dataset of realistic CCTV frames (704x576 by default; the crack
regime's cracks are 1-3 px wide whatever the frame size), runs ``--pipeline=data_engineering`` once in a
fresh project copy, then trains and scores the baseline once per way frames meet the model
(``image_size``):

- ``resize 160x128`` and ``resize 352x256``: every frame resized for training and prediction;
- ``native 256x256``: random 256x256 crops of the frames at their own scale (half of them centred on a
  defect, ``crop.box_bias: 0.5``), prediction by overlapping tiles.

The budget is the same training time, not the same steps: each setting's fp32 training speed is measured
on this machine first (``precision.time_training_steps``) and its step count set to ``--train-seconds``
of it. Figures are eval mean IoU against the hand-drawn polygons at the frames' own size, mean ± sd over
seeds, and the wall seconds of the whole baseline_training run (training, validation, eval).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics

import torch
from _project import fresh_project, kedro_run

from sewer_segmentation.data.synthetic import REGIMES, config_for_regime, write_dataset
from sewer_segmentation.modelling.precision import time_training_steps

#: name -> image_size parameters
SETTINGS = {
    "resize 160x128": {"height": 128, "width": 160},
    "resize 352x256": {"height": 256, "width": 352},
    "native 256x256": {"height": 256, "width": 256, "mode": "native"},
}
MODEL = {"architecture": "UNetAttention", "encoder_name": "resnet18", "encoder_weights": None, "in_channels": 3, "classes": 1,
         "args": {"decoder_channels": [64, 32, 16, 16, 16], "gate_dropout": 0.2}}  # fmt: skip (conf/base's model)
BATCH = 8


def steps_for(size: dict, seconds: float) -> int:
    """Optimizer steps of batch ``BATCH`` this machine trains in ``seconds`` at fp32 at ``size``."""
    images_per_second = time_training_steps(MODEL, size, BATCH, "32", torch.device("cpu"), True, steps=5)
    return max(10, round(seconds * images_per_second / BATCH))


def run_regime(regime: str, seed: int, steps: dict[str, int], args) -> dict:
    project = fresh_project(f"sewer-resolution-{regime}-{seed}-")
    dataset = f"bench_{regime}"
    raw = project / "data/01_raw" / dataset
    config = config_for_regime(regime, num_images=args.images, num_hand_labelled=args.labelled, seed=seed, width=args.width,
                               height=args.height)  # fmt: skip
    write_dataset(config, raw, raw.parent / f"{dataset}_ground_truth")
    common = f"dataset={dataset},seed={seed},baseline_training.training.precision=32"
    kedro_run(project, "--pipeline=data_engineering", f"--params={common}", log=project / "data_engineering.log")
    row = {"regime": regime, "seed": seed}
    for name, size in SETTINGS.items():
        sizes = ",".join(f"image_size.{k}={v}" for k, v in size.items())
        params = f"{common},{sizes},baseline_training.training.steps={steps[name]}"
        seconds = kedro_run(project, "--pipeline=baseline_training", f"--params={params}", log=project / f"{name.replace(' ', '_')}.log")
        report = json.loads((project / "data/08_reporting" / dataset / "baseline_metrics.json").read_text())
        row[name] = report["metrics"]["model"]["polygons"]["mean_iou"]
        row[f"{name} seconds"] = seconds
    if args.keep:
        print(f"{regime} seed {seed}: project kept in {project}")
    else:
        shutil.rmtree(project, ignore_errors=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regimes", nargs="+", default=["crack", "deposition"], choices=list(REGIMES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--train-seconds", type=float, default=150.0, help="training time of every setting (fp32)")
    parser.add_argument("--width", type=int, default=704)
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--images", type=int, default=80)
    parser.add_argument("--labelled", type=int, default=48)
    parser.add_argument("--keep", action="store_true", help="keep the project folders")
    args = parser.parse_args()
    steps = {name: steps_for(size, args.train_seconds) for name, size in SETTINGS.items()}
    print("steps for", f"{args.train_seconds:.0f} s of fp32 training:", ", ".join(f"{n} {s}" for n, s in steps.items()), flush=True)
    rows = []
    for seed in args.seeds:
        for regime in args.regimes:
            rows.append(run_regime(regime, seed, steps, args))
            print(f"{regime} seed {seed}: " + ", ".join(f"{n} {rows[-1][n]:.3f} ({rows[-1][n + ' seconds']:.0f} s)" for n in SETTINGS), flush=True)
    print()
    print(f"frames {args.width}x{args.height}; eval mean IoU, mean ± sd over seeds {args.seeds}; seconds of the baseline_training run")
    print("| regime | " + " | ".join(SETTINGS) + " | native − better resize |")
    print("|---|" + "---|" * (len(SETTINGS) + 1))
    for regime in args.regimes:
        runs = [r for r in rows if r["regime"] == regime]
        cells, means = [], {}
        for name in SETTINGS:
            values = [r[name] for r in runs]
            means[name] = statistics.fmean(values)
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{means[name]:.3f} ± {sd:.3f} ({statistics.fmean(r[name + ' seconds'] for r in runs):.0f} s)")
        better_resize = max(means["resize 160x128"], means["resize 352x256"])
        print(f"| {regime} | " + " | ".join(cells) + f" | {means['native 256x256'] - better_resize:+.3f} |")


if __name__ == "__main__":
    main()
