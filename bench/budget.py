"""How many optimizer steps the baseline needs: eval mean IoU and seconds for several step budgets, on
several regimes, with everything else at its default.

    python bench/budget.py [--steps 100 250 500] [--regimes deposition crack] [--images 160 --labelled 48]

Each regime gets one dataset shaped like a small real one (by default 160 frames, 48 hand-labelled),
and each budget one `kedro run --pipeline=baseline` in the same project (the data engineering is
repeated, and is the same). The numbers behind `baseline_training.training.steps` in docs/training.md.
The last line is `best_steps=<regime>:<steps>,...`.
"""

from __future__ import annotations

import argparse
import json
import shutil

from _project import fresh_project, kedro_run

from sewer_segmentation.data.synthetic import REGIMES, config_for_regime, write_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", nargs="+", type=int, default=[100, 250, 500])
    parser.add_argument("--regimes", nargs="+", default=["deposition", "crack"], choices=list(REGIMES))
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--labelled", type=int, default=48)
    parser.add_argument("--params", default="", help="extra --params for every run")
    args = parser.parse_args()
    print("| regime | steps | baseline eval mean IoU | validation mean IoU | seconds |")
    print("|---|---|---|---|---|")
    best = {}
    for regime in args.regimes:
        project = fresh_project(f"sewer-budget-{regime}-")
        dataset = f"bench_{regime}"
        raw = project / "data/01_raw" / dataset
        write_dataset(config_for_regime(regime, num_images=args.images, num_hand_labelled=args.labelled), raw, raw.parent / f"{dataset}_ground_truth")
        try:
            for steps in args.steps:
                params = f"dataset={dataset},baseline_training.training.steps={steps}" + (f",{args.params}" if args.params else "")
                seconds = kedro_run(project, "--pipeline=baseline", f"--params={params}", log=project / f"steps_{steps}.log")
                report = json.loads((project / "data/08_reporting" / dataset / "baseline_metrics.json").read_text())
                iou = report["metrics"]["model"]["polygons"]["mean_iou"]
                print(f"| {regime} | {steps} | {iou:.3f} | {report['best_validation_score']:.3f} | {seconds:.0f} |", flush=True)
                best[regime] = max(best.get(regime, (-1.0, 0)), (iou, steps))
        finally:
            shutil.rmtree(project, ignore_errors=True)
    print("best_steps=" + ",".join(f"{r}:{s}" for r, (_, s) in best.items()))


if __name__ == "__main__":
    main()
