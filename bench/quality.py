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
   ``boxes`` (the box losses alone) and ``both``; each round fine-tunes the baseline and hands on its best
   validated weights (no guard: ``min_improvement=-1``), so that every signal can be judged on it;
3. the **ceiling**: the same start, data and budget with the weak pool's true masks as targets, no
   validation guard, the last weights (the round's oracle);
4. **joint**: a baseline trained on the polygons and the weak pool's boxes together from the start.

Every figure is eval mean IoU against the hand-drawn polygons (never used to choose anything). The table
shows each round as the guard would hand it on when stages are compared on validation (the round if it
beats the baseline by ``min_improvement`` 0.01, else the baseline; the same decision the guard makes
during training), with mean ± sd over seeds, then ``gain closed = Σ(final − baseline) / Σ(ceiling −
baseline)`` per variant over the regimes whose gap (ceiling − baseline) exceeds 2 sd of the baseline.

**Selection signals** (``model_selection.signal``): every stage's model is also scored on the weak_holdout
frames' boxes (``box_agreement``). Per regime and seed, Kendall's tau-b between each signal (validation,
box agreement, their mean) and eval over the five models (baseline, the three rounds, joint) says how
well it ranks models as eval does; the round decision made with each signal says what it costs.

``--rows FILE`` appends each finished (regime, seed) as a JSON line; ``--summarize FILE`` prints the tables
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
from scipy.stats import kendalltau

from sewer_segmentation.data.synthetic import REGIMES, config_for_regime, write_dataset
from sewer_segmentation.modelling.box_agreement import selection_score

VARIANTS = ("refined", "boxes", "both")
COLUMNS = ("box_masks", "baseline", *VARIANTS, "joint", "ceiling")
MODELS = ("baseline", *VARIANTS, "joint")  # the models every signal ranks
SIGNALS = ("validation", "box_agreement", "combined")
MIN_IMPROVEMENT = 0.01  # final_training.min_improvement's default


def read(project, dataset, name):
    return json.loads((project / "data/08_reporting" / dataset / name).read_text())


def eval_iou(report: dict) -> float:
    return report["metrics"]["model"]["polygons"]["mean_iou"]


def signals(report: dict) -> dict:
    """The stage's validation score, box agreement on weak_holdout and their mean (model_selection.signal)."""
    validation = report.get("best_validation_score")
    agreement = (report.get("weak_holdout") or {}).get("box_agreement")
    return {"validation": validation, "box_agreement": agreement, "combined": selection_score("combined", validation, agreement)}


def run_once(regime: str, seed: int, args) -> dict:
    project = fresh_project(f"sewer-quality-{regime}-{seed}-")
    dataset = f"bench_{regime}"
    raw = project / "data/01_raw" / dataset
    config = config_for_regime(regime, num_images=args.images, num_hand_labelled=args.labelled, seed=seed, layout="yolo")
    write_dataset(config, raw, raw.parent / f"{dataset}_ground_truth")
    params = f"dataset={dataset},seed={seed},model_selection.signal=validation" + (f",{args.params}" if args.params else "")
    start = time.perf_counter()
    kedro_run(project, "--pipeline=baseline", f"--params={params}", log=project / "baseline.log")
    report = read(project, dataset, "baseline_metrics.json")
    row = {"regime": regime, "seed": seed, "baseline": eval_iou(report), "signals": {"baseline": signals(report)}}
    for variant in VARIANTS:
        oracle = "true" if variant == VARIANTS[0] else "false"
        kedro_run(project, "--pipeline=refine", f"--params={params},round=1,final_training.weak_targets={variant},"
                  f"final_training.oracle.enabled={oracle},final_training.min_improvement=-1", log=project / f"round_{variant}.log")  # fmt: skip
        report = read(project, dataset, "round_1_metrics.json")
        row[f"{variant}_trained"] = eval_iou(report)
        row["signals"][variant] = signals(report)
        if variant == VARIANTS[0]:
            row["ceiling"] = report["oracle"]["eval"]["mean_iou"]
            row["box_masks"] = report["refinement"]["box_masks_vs_ground_truth"]["mean_iou"]
    # Last: it writes a new baseline version (the rounds above started from the polygon-only baseline).
    kedro_run(project, "--pipeline=baseline_training", f"--params={params},baseline_training.joint.enabled=true", log=project / "joint.log")
    report = read(project, dataset, "baseline_metrics.json")
    row["joint"], row["signals"]["joint"] = eval_iou(report), signals(report)
    row["seconds"] = time.perf_counter() - start
    if args.keep:
        print(f"{regime} seed {seed}: project kept in {project}")
    else:
        shutil.rmtree(project, ignore_errors=True)
    return row


def model_eval(row: dict, model: str) -> float:
    """Eval IoU of one of the ranked models, as trained (a round without its guard)."""
    return row[model] if model in ("baseline", "joint") else row[f"{model}_trained"]


def kept(row: dict, variant: str, signal: str) -> bool:
    """Whether a round is handed on when stages are compared on ``signal`` (it must beat its start by 0.01)."""
    score, start = row["signals"][variant][signal], row["signals"]["baseline"][signal]
    return score is not None and start is not None and score > start + MIN_IMPROVEMENT


def final(row: dict, variant: str, signal: str = "validation") -> float:
    """Eval IoU of the model a round hands on, compared on ``signal``."""
    return row[f"{variant}_trained"] if kept(row, variant, signal) else row["baseline"]


def with_finals(row: dict) -> dict:
    return {**row, **{v: final(row, v) for v in VARIANTS}, **{f"{v}_kept": kept(row, v, "validation") for v in VARIANTS}}


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(rows: list[dict]) -> tuple[list[str], dict]:
    """The table's lines, and per variant its gain closed over the regimes with a clear gap."""
    rows = [with_finals(r) for r in rows]
    lines = ["| regime | seeds | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    gains = {v: [0.0, 0.0] for v in (*VARIANTS, "joint")}
    clear = []
    for regime in dict.fromkeys(r["regime"] for r in rows):
        runs = [r for r in rows if r["regime"] == regime]
        stats = {c: mean_sd([r[c] for r in runs]) for c in COLUMNS}
        cells = []
        for c in COLUMNS:
            kept_count = f" (kept {sum(r[f'{c}_kept'] for r in runs)}/{len(runs)})" if c in VARIANTS else ""
            cells.append(f"{stats[c][0]:.3f} ± {stats[c][1]:.3f}{kept_count}")
        lines.append(f"| {regime} | {len(runs)} | " + " | ".join(cells) + " |")
        gap = stats["ceiling"][0] - stats["baseline"][0]
        if gap > 2 * stats["baseline"][1] and gap > 0:
            clear.append(regime)
            for v in gains:
                gains[v][0] += stats[v][0] - stats["baseline"][0]
                gains[v][1] += gap
    closed = {v: (num / den if den else float("nan")) for v, (num, den) in gains.items()}
    return lines + ["", f"regimes with a clear gap (ceiling - baseline > 2 sd): {', '.join(clear) or 'none'}"], closed


def signal_table(rows: list[dict]) -> list[str]:
    """Per signal: Kendall's tau-b with eval over the five models of each (regime, seed), mean ± sd; and
    the round decision (weak_targets both) made with it: eval gained over the baseline, how often it kept
    a round that eval says is worse, and how often it refused one that eval says is better."""
    lines = ["| signal | tau with eval (mean ± sd) | runs | eval of the model it ranks first | final (both) − baseline "
             "| kept, worse on eval | refused, better on eval |", "|---|---|---|---|---|---|---|"]
    best_possible = statistics.fmean(max(model_eval(r, m) for m in MODELS) for r in rows)
    for signal in SIGNALS:
        taus, firsts = [], []
        for r in rows:
            pairs = [(r["signals"][m][signal], model_eval(r, m)) for m in MODELS]
            pairs = [(s, e) for s, e in pairs if s is not None]
            firsts.append(max(pairs)[1])
            if len(pairs) >= 3:
                tau = kendalltau(*zip(*pairs, strict=True)).statistic
                if tau == tau:  # NaN when a side is constant
                    taus.append(float(tau))
        gains = [final(r, "both", signal) - r["baseline"] for r in rows]
        harmful = sum(kept(r, "both", signal) and r["both_trained"] < r["baseline"] for r in rows)
        missed = sum(not kept(r, "both", signal) and r["both_trained"] > r["baseline"] for r in rows)
        tau_text = "{:.2f} ± {:.2f}".format(*mean_sd(taus)) if taus else "n/a"
        lines.append(f"| {signal} | {tau_text} | {len(taus)} | {statistics.fmean(firsts):.3f} | {statistics.fmean(gains):+.3f} "
                     f"| {harmful}/{len(rows)} | {missed}/{len(rows)} |")
    lines.append(f"| (eval itself, for reference) | 1 | {len(rows)} | {best_possible:.3f} | | | |")
    return lines


def print_tables(rows: list[dict]) -> None:
    lines, closed = summarize(rows)
    print()
    print("\n".join(lines))
    print("gain closed: " + ", ".join(f"{v} {g:+.2f}" for v, g in closed.items()))
    finals = [with_finals(r) for r in rows]
    for v in (*VARIANTS, "joint"):
        worst = min(r[v] - r["baseline"] for r in finals)
        print(f"{v}: worst final - baseline {worst:+.3f}")
    print()
    print("\n".join(signal_table(rows)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=list(REGIMES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--quick", action="store_true", help="crack and deposition, seed 1")
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--labelled", type=int, default=48)
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
    rows = []
    for seed in args.seeds:  # every regime once before the next seed: a stopped bench still covers them all
        for regime in args.regimes:
            rows.append(run_once(regime, seed, args))
            r = with_finals(rows[-1])
            if args.rows:
                with args.rows.open("a") as out:
                    out.write(json.dumps(rows[-1]) + "\n")
            print(f"{regime} seed {seed}: " + ", ".join(f"{c} {r[c]:.3f}" for c in COLUMNS) + f" ({r['seconds']:.0f} s)", flush=True)
    print_tables(rows)


if __name__ == "__main__":
    main()
