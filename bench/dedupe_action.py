"""``dedupe.action: drop`` against ``group`` where hand-labelled frames were shot at several exposures.

    python bench/dedupe_action.py [--seeds 1 2 3] [--copies 3] [--labelled 24]

Generates one dataset (``synthetic`` defaults, 200 frames, ``--labelled`` of them hand-labelled, each of
those with ``--copies`` more shots at other exposures, also hand-labelled: a camera's bracketing, which
near-duplicate detection groups into one cluster), then per seed runs ``kedro run --pipeline=baseline`` with
``drop`` (one frame per cluster) and with ``group`` (every frame, all in one split), at fp32.

Both are scored on the same eval frames: the clusters are split alike (by cluster, with the seed), and
each eval cluster counts once, by the frame ``drop`` kept. Prints the hand-labelled frames each setting
trains and validates on, eval mean IoU per seed, and mean ± sd. The last line is
``drop=<mean> group=<mean> gain=<mean> sd=<sd>``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics

import pandas as pd
from _project import fresh_project, kedro_run

from sewer_segmentation.data.synthetic import SyntheticConfig, write_dataset


def run(seed: int, action: str, config: SyntheticConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The manifest and the baseline's per-image eval scores of one run."""
    project = fresh_project("dedupe-action-")
    try:
        raw = project / "data/01_raw/exposures"
        write_dataset(config, raw, raw.parent / "exposures_ground_truth")
        params = (f"dataset=exposures,seed={seed},data_engineering.dedupe.action={action},"
                  "baseline_training.training.precision=32,inference.precision=32")  # fmt: skip
        kedro_run(project, "--pipeline=baseline", f"--params={params}", log=project / "run.log")
        manifest = pd.read_csv(project / "data/03_primary/exposures/split_manifest.csv", dtype={"image_id": str})
        scores = pd.read_csv(project / "data/08_reporting/exposures/baseline_eval_per_image.csv", dtype={"image_id": str})
        return manifest, scores
    finally:
        shutil.rmtree(project, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--labelled", type=int, default=24)
    args = parser.parse_args()
    config = SyntheticConfig(num_images=200, num_hand_labelled=args.labelled, exposure_copies=args.copies)
    results = {"drop": [], "group": []}
    for seed in args.seeds:
        drop_manifest, drop_scores = run(seed, "drop", config)
        group_manifest, group_scores = run(seed, "group", config)
        eval_frames = set(drop_manifest.image_id[drop_manifest.split == "eval"])
        moved = eval_frames - set(group_manifest.image_id[group_manifest.split == "eval"])
        if moved:
            raise SystemExit(f"seed {seed}: drop and group split the clusters differently ({sorted(moved)[:5]}): the comparison is void")
        for action, manifest, scores in (("drop", drop_manifest, drop_scores), ("group", group_manifest, group_scores)):
            mean = float(scores.set_index("image_id").loc[sorted(eval_frames), "model.polygons.iou"].mean())
            results[action].append(mean)
            trained = {split: int((manifest.split == split).sum()) for split in ("baseline_train", "baseline_val", "eval")}
            print(f"seed {seed} {action:<5}: eval mean IoU {mean:.3f} on the {len(eval_frames)} frames drop kept in eval; "
                  f"hand-labelled frames: {trained}", flush=True)  # fmt: skip
    gains = [g - d for g, d in zip(results["group"], results["drop"], strict=True)]
    spread = statistics.stdev(gains) if len(gains) > 1 else 0.0
    print(f"over seeds {args.seeds}: drop {statistics.fmean(results['drop']):.3f}, "
          f"group {statistics.fmean(results['group']):.3f}, group - drop {statistics.fmean(gains):+.3f} ± {spread:.3f} "
          f"(run by run: {', '.join(f'{g:+.3f}' for g in gains)})")  # fmt: skip
    print(f"drop={statistics.fmean(results['drop']):.3f} group={statistics.fmean(results['group']):.3f} "
          f"gain={statistics.fmean(gains):+.3f} sd={spread:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
