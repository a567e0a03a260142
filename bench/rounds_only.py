"""A quicker check of one change to the box supervision: the baseline and two guarded rounds of one
``weak_targets`` variant, per regime and seed, on the same datasets as ``bench/quality.py`` (no other
variants, no ceiling, no joint training).

    python bench/rounds_only.py --regimes crack --seeds 1 2 3 --rows bench/results/my_change.jsonl
    python bench/rounds_only.py --compare bench/results/my_change.jsonl bench/results/quality_rows.jsonl
    python bench/rounds_only.py --signals bench/results/my_change.jsonl

Each finished (regime, seed) is appended to ``--rows`` as a JSON line; ``--compare NEW OLD`` prints, run by
run, final − baseline of the new rows beside the same (regime, seed) of a ``bench/quality.py`` rows file
(``--old-variant`` when OLD ran another ``weak_targets``); ``--signals ROWS`` prints, round by round, how
eval moved against each part of the selection score the round guard judged by.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
from _project import fresh_project, kedro_run
from quality import VARIANTS, eval_iou, read, round_record, selection_parts

from sewer_segmentation.data.synthetic import REGIMES, config_for_regime, write_dataset


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_once(regime: str, seed: int, variant: str, extra: str) -> dict:
    project = fresh_project(f"sewer-rounds-{regime}-{seed}-")
    dataset = f"bench_{regime}"
    raw = project / "data/01_raw" / dataset
    write_dataset(config_for_regime(regime, num_images=300, num_hand_labelled=124, seed=seed, layout="yolo", width=160, height=128),
                  raw, raw.parent / f"{dataset}_ground_truth")  # fmt: skip
    params = f"dataset={dataset},seed={seed},data_engineering.split.eval_fraction=0.8" + (f",{extra}" if extra else "")
    start = time.perf_counter()
    kedro_run(project, "--pipeline=baseline", f"--params={params}", log=project / "baseline.log")
    baseline = read(project, dataset, "baseline_metrics.json")
    row = {"regime": regime, "seed": seed, "baseline": eval_iou(baseline), "baseline_selection": selection_parts(baseline), "rounds": {}}
    rounds = []
    for number in (1, 2):
        kedro_run(project, "--pipeline=refine", f"--params={params},round={number},final_training.weak_targets={variant}", log=project / f"r{number}.log")
        rounds.append(round_record(read(project, dataset, f"round_{number}_metrics.json")))
    row["rounds"][variant], row[variant], row["seconds"] = rounds, rounds[-1]["eval"], time.perf_counter() - start
    shutil.rmtree(project, ignore_errors=True)
    return row


def compare(new_rows: list[dict], old_rows: list[dict], variant: str, old_variant: str) -> None:
    """Run by run: baseline and final of NEW beside OLD (same regime and seed), and final − baseline of each.
    Rows measured at different commits train different baselines from the same seed (the code in between
    changes more than the change measured), so the gains over each run's own baseline are the paired
    figures; the finals are shown too."""
    print(f"| regime | seed | baseline new / old | final ({variant} / {old_variant}) new / old | final − baseline new | old |")
    print("|---|---|---|---|---|---|")
    gains, by_regime = {"new": [], "old": []}, {}
    for new in new_rows:
        old = next((o for o in old_rows if (o["regime"], o["seed"]) == (new["regime"], new["seed"])), None)
        new_final = new["rounds"][variant][-1]["eval"]
        gains["new"].append(new_final - new["baseline"])
        by_regime.setdefault(new["regime"], []).append(gains["new"][-1])
        if old is None:
            print(f"| {new['regime']} | {new['seed']} | {new['baseline']:.3f} / | {new_final:.3f} / | {gains['new'][-1]:+.3f} | |")
            continue
        old_final = old["rounds"][old_variant][-1]["eval"]
        gains["old"].append(old_final - old["baseline"])
        print(f"| {new['regime']} | {new['seed']} | {new['baseline']:.3f} / {old['baseline']:.3f} | {new_final:.3f} / {old_final:.3f} | "
              f"{gains['new'][-1]:+.3f} | {gains['old'][-1]:+.3f} |")  # fmt: skip
    print(f"mean final − baseline: new {statistics.fmean(gains['new']):+.3f}" + (f", old {statistics.fmean(gains['old']):+.3f}" if gains["old"] else ""))
    for regime, mine in by_regime.items():
        print(f"{regime}: new final − baseline {statistics.fmean(mine):+.3f} ± {statistics.stdev(mine) if len(mine) > 1 else 0:.3f} "
              f"over {len(mine)} runs, worst {min(mine):+.3f}")  # fmt: skip


def round_moves(row: dict, variant: str) -> list[dict]:
    """Each recorded round of ``row`` against its start (the baseline, or what the round before handed on):
    the change in eval IoU, in the validation score and in the weak_holdout box agreement."""
    start, moves = {"eval": row["baseline"], **row["baseline_selection"]}, []
    for number, record in enumerate(row["rounds"][variant], 1):
        if any(record.get(k) is None or start.get(k) is None for k in ("validation", "box_agreement")):
            continue  # no validation images or no weak_holdout frames: nothing to compare
        moves.append({"regime": row["regime"], "seed": row["seed"], "round": number, "handed_on": record["handed_on"],
                      **{k: record[k] - start[k] for k in ("eval", "validation", "box_agreement")}})  # fmt: skip
        if record["handed_on"] == "trained":
            start = {k: record[k] for k in ("eval", "validation", "box_agreement")}
    return moves


def signals(rows: list[dict], variant: str) -> None:
    """Round by round, how eval moved against the two parts of the selection score, and how often each part
    (and their mean, ``combined``) moved the same way as eval: which part tracks eval on these regimes."""
    recorded = [row for row in rows if row.get("baseline_selection") and variant in row["rounds"]]
    if len(recorded) < len(rows):
        print(f"{len(rows) - len(recorded)} of {len(rows)} rows left out: run without --variant {variant}, or recorded before the "
              "selection score's parts were (2026-12-06)")  # fmt: skip
    moves = [m for row in recorded for m in round_moves(row, variant)]
    print("| regime | seed | round | handed on | Δ eval | Δ validation | Δ box agreement | Δ combined |")
    print("|---|---|---|---|---|---|---|---|")
    agree = {"validation": 0, "box_agreement": 0, "combined": 0}
    for m in moves:
        m["combined"] = (m["validation"] + m["box_agreement"]) / 2
        print(f"| {m['regime']} | {m['seed']} | {m['round']} | {m['handed_on']} | {m['eval']:+.3f} | {m['validation']:+.3f} | "
              f"{m['box_agreement']:+.3f} | {m['combined']:+.3f} |")  # fmt: skip
        for part in agree:  # a round that handed on its start recorded the start's scores: nothing moved
            agree[part] += m["handed_on"] == "trained" and np.sign(round(m[part], 4)) == np.sign(round(m["eval"], 4))
    trained = sum(m["handed_on"] == "trained" for m in moves)
    print(f"{trained} rounds handed on their trained weights; moved the same way as eval: " + ", ".join(f"{part} {n}" for part, n in agree.items()))
    harmful = [m for m in moves if m["handed_on"] == "trained" and m["eval"] < -0.01]
    print(f"handed on while eval fell by more than 0.01: {len(harmful)}" + "".join(f"; {m['regime']} seed {m['seed']} round {m['round']} "
                                                                             f"({m['eval']:+.3f})" for m in harmful))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=list(REGIMES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--variant", default="both", choices=VARIANTS)
    parser.add_argument("--params", default="", help="extra --params for every kedro run")
    parser.add_argument("--rows", type=Path, help="append each finished run to this JSON-lines file")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("NEW", "OLD"), help="print the runs of NEW beside those of OLD and stop")
    parser.add_argument("--old-variant", choices=VARIANTS, help="the weak_targets of OLD's rows (default: --variant)")
    parser.add_argument("--signals", type=Path, metavar="ROWS", help="print how eval moved against the selection score's parts and stop")
    args = parser.parse_args()
    if args.compare:
        new, old = (read_rows(path) for path in args.compare)
        compare(new, old, args.variant, args.old_variant or args.variant)
        return
    if args.signals:
        signals(read_rows(args.signals), args.variant)
        return
    for seed in args.seeds:
        for regime in args.regimes:
            row = run_once(regime, seed, args.variant, args.params)
            if args.rows:
                with args.rows.open("a") as out:
                    out.write(json.dumps(row) + "\n")
            rounds = row["rounds"][args.variant]
            print(f"{regime} seed {seed}: baseline {row['baseline']:.3f}, round 1 {rounds[0]['eval']:.3f}, round 2 {rounds[1]['eval']:.3f} "
                  f"({row['seconds']:.0f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
