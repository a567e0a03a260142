"""Does the weak pool pay? The whole method, two rounds, on several synthetic regimes and seeds, each way of using it.

    python bench/quality.py                # 4 regimes x 3 seeds (11 to 21 minutes each on a 2-core CPU: 2 to 4 hours)
    python bench/quality.py --regimes loose  # thin defects in loose boxes (not in the default four)
    python bench/quality.py --quick        # crack and deposition, 1 seed (development)
    python bench/quality.py --variants both  # the default way and the ceiling only (about 1 hour): the acceptance
    python bench/quality.py --regimes crack --seeds 1 2 --params final_training.round_guard.rule=better

Defaults tuned on one generator fail on real data; this bench checks every default on regimes that
differ in defect shape, contrast and texture (``sewer_segmentation.data.synthetic.REGIMES``). For each
regime and seed it writes a dataset in the YOLO layout (so the per-box lists are the detector's own
boxes) whose training side is shaped like a small real one: about 19 hand-labelled training and 6
validation images, and 176 box-only frames (about 26 of them weak_holdout). Its eval side is large
(``eval_fraction`` 0.8 of 124 hand-labelled frames: about 96 images), because eval only measures: with
the 20-odd eval images of a small real set, the seed-to-seed noise of a difference is as large as the
gains to be measured. Frames are generated at the training size (``--frame-size``, default 160x128 for
the default ``image_size``), as a user with thin defects trains at the frames' own scale: at half that
scale a 1-3 px crack is under a pixel wide.

In a fresh project copy, with every default of the project except the dataset and seed, it runs:

1. ``--pipeline=baseline``: data engineering and the baseline (hand-drawn polygons only);
2. rounds 1 and 2 once per way the weak pool trains (``final_training.weak_targets``): ``refined``
   (pseudo-masks), ``boxes`` (the box losses alone) and ``both``. Each round hands on its trained weights
   or its start as the round guard decides; **final** is the model ``predict_model: best`` picks after
   round 2 (the newest stage);
3. the **ceiling**: round 1's start, data and budget with the weak pool's true masks as targets, no
   guard, the last weights (the round's oracle);
4. **joint**: a baseline trained on the polygons and the weak pool's boxes together from the start.

Steps 2 and 4 run the ways ``--variants`` names (default: all four).

Every figure is eval mean IoU against the hand-drawn polygons (never used to choose anything), mean ± sd
over seeds, then ``gain closed = Σ(final − baseline) / Σ(ceiling − baseline)`` per variant over the regimes
whose gap (ceiling − baseline) exceeds 2 sd of the baseline, and the acceptance checks of the
box-supervision issue for the default variant (``both``).

``--variants`` runs some of the ways only (the ceiling always runs, in the first one's round 1; the tables
show the columns every row has). ``--rows FILE`` appends each finished (regime, seed) as a JSON line; ``--summarize FILE`` prints the tables
of such a file without training (a stopped bench keeps its finished runs).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

from _project import fresh_project, kedro_run

from sewer_segmentation.data.synthetic import REGIMES, config_for_regime, write_dataset

#: The four regimes of the box-supervision issue's acceptance; ``loose`` runs on request.
DEFAULT_REGIMES = ("deposition", "obstacle", "crack", "hard")

VARIANTS = ("refined", "boxes", "both")
DEFAULT_VARIANT = "both"  # final_training.weak_targets' default
COLUMNS = ("box_masks", "baseline", *VARIANTS, "joint", "ceiling")
ROUNDS = (1, 2)


def read(project: Path, dataset: str, name: str) -> dict:
    return json.loads((project / "data/08_reporting" / dataset / name).read_text())


def eval_iou(report: dict) -> float:
    return report["metrics"]["model"]["polygons"]["mean_iou"]


def round_record(report: dict) -> dict:
    """What a round handed on and why: its eval IoU, the guard's comparison with its start, and the two
    parts of its selection score (to see which of them tracks eval)."""
    return {"eval": eval_iou(report), "handed_on": "start" if report.get("kept_initial_weights") else "trained",
            "vs_start": report.get("guard_difference"), "standard_error": report.get("guard_standard_error"), **selection_parts(report)}  # fmt: skip


def selection_parts(report: dict) -> dict:
    """A stage's validation score on baseline_val and box agreement on weak_holdout (None where absent)."""
    return {"validation": report.get("best_validation_score"), "box_agreement": (report.get("weak_holdout") or {}).get("box_agreement")}


def run_once(regime: str, seed: int, args) -> dict:
    project = fresh_project(f"sewer-quality-{regime}-{seed}-")
    dataset = f"bench_{regime}"
    raw = project / "data/01_raw" / dataset
    width, height = args.frame_size
    config = config_for_regime(regime, num_images=args.images, num_hand_labelled=args.labelled, seed=seed, layout="yolo", width=width, height=height)
    write_dataset(config, raw, raw.parent / f"{dataset}_ground_truth")
    params = f"dataset={dataset},seed={seed},data_engineering.split.eval_fraction={args.eval_fraction}" + (f",{args.params}" if args.params else "")
    start = time.perf_counter()
    kedro_run(project, "--pipeline=baseline", f"--params={params}", log=project / "baseline.log")
    baseline = read(project, dataset, "baseline_metrics.json")
    row = {"regime": regime, "seed": seed, "baseline": eval_iou(baseline), "baseline_selection": selection_parts(baseline), "rounds": {}}
    variants = [v for v in VARIANTS if v in args.variants]
    for variant in variants:  # round 2 of a variant starts from what round 1 of the same variant handed on
        rounds = []
        for number in ROUNDS:
            # The oracle trains on the true masks, whatever the variant: it runs once, in the first round 1.
            oracle = "true" if (variant, number) == (variants[0], 1) else "false"
            kedro_run(project, "--pipeline=refine", f"--params={params},round={number},final_training.weak_targets={variant},"
                      f"final_training.oracle.enabled={oracle}", log=project / f"round_{number}_{variant}.log")  # fmt: skip
            report = read(project, dataset, f"round_{number}_metrics.json")
            rounds.append(round_record(report))
            if oracle == "true":
                row["ceiling"] = report["oracle"]["eval"]["mean_iou"]
                row["box_masks"] = report["refinement"]["box_masks_vs_ground_truth"]["mean_iou"]
        row["rounds"][variant] = rounds
        row[variant] = rounds[-1]["eval"]  # final: the newest stage, what predict_model: best picks
    if "joint" in args.variants:  # last: it writes a new baseline version (the rounds above started from the polygon-only one)
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


def handed_on(runs: list[dict], variant: str) -> str:
    """How many rounds handed on their trained weights: ``r1 3/3, r2 2/3``."""
    counts = [sum(r["rounds"][variant][k]["handed_on"] == "trained" for r in runs) for k in range(len(ROUNDS))]
    return ", ".join(f"r{n} {c}/{len(runs)}" for n, c in zip(ROUNDS, counts, strict=True))


def present(rows: list[dict], names) -> list[str]:
    """The columns every row has (a ``--variants`` run leaves the others out)."""
    return [c for c in names if all(c in r for r in rows)]


def summarize(rows: list[dict]) -> tuple[list[str], dict, dict]:
    """The table's lines, per variant its gain closed over the regimes with a clear gap, and per regime the
    mean of (final − baseline) of the default variant."""
    columns = present(rows, COLUMNS)
    lines = ["| regime | seeds | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    gains = {v: [0.0, 0.0] for v in present(rows, (*VARIANTS, "joint"))}
    clear, default_gain = [], {}
    for regime in dict.fromkeys(r["regime"] for r in rows):
        runs = [r for r in rows if r["regime"] == regime]
        stats = {c: mean_sd([r[c] for r in runs]) for c in columns}
        cells = [f"{stats[c][0]:.3f} ± {stats[c][1]:.3f}" + (f" (trained handed on: {handed_on(runs, c)})" if c in VARIANTS else "") for c in columns]
        lines.append(f"| {regime} | {len(runs)} | " + " | ".join(cells) + " |")
        if DEFAULT_VARIANT in stats:
            default_gain[regime] = stats[DEFAULT_VARIANT][0] - stats["baseline"][0]
        gap = stats["ceiling"][0] - stats["baseline"][0]
        if gap > 2 * stats["baseline"][1] and gap > 0:
            clear.append(regime)
            for v in gains:
                gains[v][0] += stats[v][0] - stats["baseline"][0]
                gains[v][1] += gap
    closed = {v: (num / den if den else float("nan")) for v, (num, den) in gains.items()}
    partial = [c for c in COLUMNS if c not in columns and any(c in r for r in rows)]
    lines += [f"left out, not in every row: {', '.join(partial)}"] if partial else []
    return lines + ["", f"regimes with a clear gap (ceiling - baseline > 2 sd): {', '.join(clear) or 'none'}"], closed, default_gain


def round_table(rows: list[dict]) -> list[str]:
    """Per regime and variant: eval after round 1 and round 2 (mean over seeds), and the guard's decisions."""
    lines = ["| regime | variant | round 1 | round 2 | round 1 vs its start (selection score, mean) | round 2 vs its start |", "|---|---|---|---|---|---|"]
    for regime in dict.fromkeys(r["regime"] for r in rows):
        runs = [r for r in rows if r["regime"] == regime]
        for v in present(rows, VARIANTS):
            cells = []
            for k in range(len(ROUNDS)):
                cells.append(f"{statistics.fmean(r['rounds'][v][k]['eval'] for r in runs):.3f}")
            for k in range(len(ROUNDS)):
                diffs = [r["rounds"][v][k]["vs_start"] for r in runs if r["rounds"][v][k]["vs_start"] is not None]
                cells.append(f"{statistics.fmean(diffs):+.3f}" if diffs else "n/a")
            lines.append(f"| {regime} | {v} | " + " | ".join(cells) + " |")
    return lines


def print_tables(rows: list[dict]) -> None:
    lines, closed, default_gain = summarize(rows)
    print()
    print("\n".join(lines))
    print("gain closed: " + ", ".join(f"{v} {g:+.2f}" for v, g in closed.items()))
    for v in present(rows, (*VARIANTS, "joint")):
        worst = min(r[v] - r["baseline"] for r in rows)
        print(f"{v}: worst final - baseline over runs {worst:+.3f}")
    print()
    print("\n".join(round_table(rows)))
    print()
    if DEFAULT_VARIANT not in closed:
        print(f"acceptance: the default variant ({DEFAULT_VARIANT}) was not run")
        return
    crack = default_gain.get("crack")
    checks = [f"crack: final - baseline {crack:+.3f} (>= +0.05)" if crack is not None else "crack: not run",
              f"every regime: worst mean final - baseline {min(default_gain.values()):+.3f} (>= -0.01)",
              f"gain closed ({DEFAULT_VARIANT}) {closed[DEFAULT_VARIANT]:+.2f} (>= 0.5)"]  # fmt: skip
    print("acceptance (" + DEFAULT_VARIANT + "): " + "; ".join(checks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regimes", nargs="+", default=list(DEFAULT_REGIMES), choices=list(REGIMES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--quick", action="store_true", help="crack and deposition, seed 1")
    parser.add_argument("--variants", nargs="+", default=[*VARIANTS, "joint"], choices=[*VARIANTS, "joint"],
                        help="ways of using the weak pool to run (the ceiling always runs); fewer take less time")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--labelled", type=int, default=124)
    parser.add_argument("--eval-fraction", type=float, default=0.8, help="of the hand-labelled frames (the rest trains and validates)")
    parser.add_argument("--frame-size", nargs=2, type=int, default=[160, 128], metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--params", default="", help="extra --params for every kedro run")
    parser.add_argument("--keep", action="store_true", help="keep the project folders")
    parser.add_argument("--rows", type=Path, help="append each finished run to this JSON-lines file")
    parser.add_argument("--summarize", type=Path, help="print the tables of a --rows file and stop")
    args = parser.parse_args()
    if args.summarize:
        print_tables([json.loads(line) for line in args.summarize.read_text().splitlines() if line.strip()])
        return
    if args.quick:
        args.regimes, args.seeds = ["crack", "deposition"], [1]
    if not set(args.variants) & set(VARIANTS):
        parser.error(f"--variants needs one of {', '.join(VARIANTS)}: the ceiling runs in its first round")
    rows = []
    for seed in args.seeds:  # every regime once before the next seed: a stopped bench still covers them all
        for regime in args.regimes:
            rows.append(run_once(regime, seed, args))
            r = rows[-1]
            if args.rows:
                with args.rows.open("a") as out:
                    out.write(json.dumps(r) + "\n")
            print(f"{regime} seed {seed}: " + ", ".join(f"{c} {r[c]:.3f}" for c in present([r], COLUMNS)) + f" ({r['seconds']:.0f} s)", flush=True)
    print_tables(rows)


if __name__ == "__main__":
    main()
