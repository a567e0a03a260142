"""Does the weak pool pay? The whole method on several synthetic regimes and seeds, every way of using it.

    python bench/quality.py                # 4 regimes x 3 seeds (hours on a 2-core CPU)
    python bench/quality.py --quick        # crack and deposition, 1 seed (development)
    python bench/quality.py --regimes crack --seeds 1 2 --params image_size.height=256,image_size.width=320

Defaults tuned on one generator fail on real data; this bench checks every default on regimes that
differ in defect shape, contrast and texture (``sewer_segmentation.data.synthetic.REGIMES``). For each
regime and seed it writes a dataset shaped like a small real one (160 frames, 48 hand-labelled: about 24
eval, 18 train and 6 validation images) in the YOLO layout, so the per-box lists are the detector's own
boxes, and in a fresh project copy runs:

1. ``--pipeline=baseline``: data engineering and the baseline (hand-drawn polygons only);
2. round 1 once per way the weak pool trains (``final_training.weak_targets``): ``refined`` (pseudo-masks),
   ``boxes`` (the box losses alone) and ``both``; each round fine-tunes the baseline and is kept only if it
   beats it on validation, so its eval figure is the model ``predict_model: best`` would pick;
3. the **ceiling**: the same start, data and budget with the weak pool's true masks as targets, no
   validation guard, the last weights (the round's oracle);
4. **joint**: a baseline trained on the polygons and the weak pool's boxes together from the start.

Every figure is eval mean IoU against the hand-drawn polygons (never used to choose anything). It prints
mean ± sd over seeds per regime and column, then ``gain closed = Σ(final − baseline) / Σ(ceiling −
baseline)`` per variant over the regimes whose gap (ceiling − baseline) exceeds 2 sd of the baseline.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time

from _project import fresh_project, kedro_run

from sewer_segmentation.data.synthetic import REGIMES, config_for_regime, write_dataset

VARIANTS = ("refined", "boxes", "both")
COLUMNS = ("box_masks", "baseline", *VARIANTS, "joint", "ceiling")


def read(project, dataset, name):
    return json.loads((project / "data/08_reporting" / dataset / name).read_text())


def eval_iou(report: dict) -> float:
    return report["metrics"]["model"]["polygons"]["mean_iou"]


def run_once(regime: str, seed: int, args) -> dict:
    project = fresh_project(f"sewer-quality-{regime}-{seed}-")
    dataset = f"bench_{regime}"
    raw = project / "data/01_raw" / dataset
    config = config_for_regime(regime, num_images=args.images, num_hand_labelled=args.labelled, seed=seed, layout="yolo")
    write_dataset(config, raw, raw.parent / f"{dataset}_ground_truth")
    params = f"dataset={dataset},seed={seed}" + (f",{args.params}" if args.params else "")
    start = time.perf_counter()
    kedro_run(project, "--pipeline=baseline", f"--params={params}", log=project / "baseline.log")
    row = {"regime": regime, "seed": seed, "baseline": eval_iou(read(project, dataset, "baseline_metrics.json"))}
    for variant in VARIANTS:
        oracle = "true" if variant == VARIANTS[0] else "false"
        kedro_run(project, "--pipeline=refine", f"--params={params},round=1,final_training.weak_targets={variant},final_training.oracle.enabled={oracle}",
                  log=project / f"round_{variant}.log")  # fmt: skip
        report = read(project, dataset, "round_1_metrics.json")
        row[variant] = eval_iou(report)
        row[f"{variant}_kept"] = bool(report.get("improved_on_validation"))
        if variant == VARIANTS[0]:
            row["ceiling"] = report["oracle"]["eval"]["mean_iou"]
            row["box_masks"] = report["refinement"]["box_masks_vs_ground_truth"]["mean_iou"]
    # Last: it writes a new baseline version (the rounds above started from the polygon-only baseline).
    kedro_run(project, "--pipeline=baseline_training", f"--params={params},baseline_training.joint.enabled=true", log=project / "joint.log")
    row["joint"] = eval_iou(read(project, dataset, "baseline_metrics.json"))
    row["seconds"] = time.perf_counter() - start
    if args.keep:
        print(f"{regime} seed {seed}: project kept in {project}")
    else:
        shutil.rmtree(project, ignore_errors=True)
    return row


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(rows: list[dict]) -> tuple[list[str], dict]:
    """The table's lines, and per variant its gain closed over the regimes with a clear gap."""
    lines = ["| regime | seeds | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    gains = {v: [0.0, 0.0] for v in (*VARIANTS, "joint")}
    clear = []
    for regime in dict.fromkeys(r["regime"] for r in rows):
        runs = [r for r in rows if r["regime"] == regime]
        stats = {c: mean_sd([r[c] for r in runs]) for c in COLUMNS}
        cells = []
        for c in COLUMNS:
            kept = f" (kept {sum(r[f'{c}_kept'] for r in runs)}/{len(runs)})" if c in VARIANTS else ""
            cells.append(f"{stats[c][0]:.3f} ± {stats[c][1]:.3f}{kept}")
        lines.append(f"| {regime} | {len(runs)} | " + " | ".join(cells) + " |")
        gap = stats["ceiling"][0] - stats["baseline"][0]
        if gap > 2 * stats["baseline"][1] and gap > 0:
            clear.append(regime)
            for v in gains:
                gains[v][0] += stats[v][0] - stats["baseline"][0]
                gains[v][1] += gap
    closed = {v: (num / den if den else float("nan")) for v, (num, den) in gains.items()}
    return lines + ["", f"regimes with a clear gap (ceiling - baseline > 2 sd): {', '.join(clear) or 'none'}"], closed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=list(REGIMES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--quick", action="store_true", help="crack and deposition, seed 1")
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--labelled", type=int, default=48)
    parser.add_argument("--params", default="", help="extra --params for every kedro run")
    parser.add_argument("--keep", action="store_true", help="keep the project folders")
    args = parser.parse_args()
    if args.quick:
        args.regimes, args.seeds = ["crack", "deposition"], [1]
    rows = []
    for seed in args.seeds:  # every regime once before the next seed: a stopped bench still covers them all
        for regime in args.regimes:
            rows.append(run_once(regime, seed, args))
            r = rows[-1]
            print(f"{regime} seed {seed}: " + ", ".join(f"{c} {r[c]:.3f}" for c in COLUMNS) + f" ({r['seconds']:.0f} s)", flush=True)
    lines, closed = summarize(rows)
    print()
    print("\n".join(lines))
    print("gain closed: " + ", ".join(f"{v} {g:+.2f}" for v, g in closed.items()))
    for v in (*VARIANTS, "joint"):
        worst = min(r[v] - r["baseline"] for r in rows)
        print(f"{v}: worst final - baseline {worst:+.3f}")


if __name__ == "__main__":
    main()
