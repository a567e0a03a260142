"""Time the default `kedro run` (synthetic data -> baseline -> refinement round 1), stage by stage.

    python bench/end_to_end.py [--precision 32] [--keep]
    python bench/end_to_end.py --precision 32 --seeds 1 2 3 --readme

Runs in a fresh copy of the project's configuration in a temporary folder, so the synthetic data is
generated as on a fresh clone and nothing of the working copy is touched. Prints the wall time of the
whole command and the seconds per pipeline stage and per node (from run_timings.json/<version>/, saved by the
project's NodeTimingHook). `--precision 32` forces fp32 (the case of CPUs without native bf16).
Target: under 5 minutes on a 2-core CPU. The last line is `total_seconds=<s> precision=<p>`.

`--seeds` runs the same command once per `seed` (the bundled data stay the same; the seed draws the splits
and the training) and prints each
stage's eval mean IoU as mean ± sd over them; `--readme` also rewrites the README's headline block (between
`<!-- headline:start -->` and `<!-- headline:end -->`) with that table and the command that made it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
from pathlib import Path

from _project import ROOT, fresh_project, kedro_run

README_START, README_END = "<!-- headline:start -->", "<!-- headline:end -->"


def run_once(precision: str, seed: int | None, extra: str, env: str | None, keep: bool) -> dict:
    """One fresh default run: its wall seconds, per-stage timings and the figures of its reports."""
    project = fresh_project("sewer-e2e-")
    try:
        params = f"baseline_training.training.precision={precision},inference.precision={precision}"
        params += f",seed={seed}" if seed is not None else ""
        params += f",{extra}" if extra else ""
        wall = kedro_run(project, f"--params={params}", *([f"--env={env}"] if env else []), log=project / "run.log")
        reports = project / "data/08_reporting/synthetic"
        newest = max((reports / "run_timings.json").iterdir())  # versioned: <timestamp>/run_timings.json
        baseline = json.loads((reports / "baseline_metrics.json").read_text())
        round_1 = json.loads((reports / "round_1_metrics.json").read_text())
        model = json.loads(next((project / "data/06_models/synthetic/baseline").glob("*/model_config.json")).read_text())
        if keep:
            print(f"project kept in {project}")
        return {"seed": seed, "wall": wall, "timings": json.loads((newest / "run_timings.json").read_text()),
                "rounds_md": (reports / "rounds.md").read_text(), "precision": model["metadata"]["precision"],
                "box_masks": baseline["metrics"]["box_mask"]["polygons"]["mean_iou"],
                "baseline": baseline["metrics"]["model"]["polygons"]["mean_iou"],
                "round_1": round_1["metrics"]["model"]["polygons"]["mean_iou"],
                "round_1_handed_on": "start" if round_1.get("kept_initial_weights") else "trained",
                "refinement": round_1.get("refinement", {}).get("used")}  # fmt: skip
    finally:
        if not keep:
            shutil.rmtree(project, ignore_errors=True)


def print_run(run: dict) -> None:
    timings = run["timings"]
    print(f"kedro run (fresh, synthetic data generated, seed {run['seed']}): {run['wall']:.1f} s wall, "
          f"{timings['total_seconds']:.1f} s in the pipeline")  # fmt: skip
    print("seconds by stage:")
    for namespace, seconds in timings["seconds_by_namespace"].items():
        print(f"  {namespace:<20} {seconds:8.1f}")
    print("slowest nodes:")
    for name, seconds in sorted(timings["seconds_by_node"].items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {name:<50} {seconds:8.1f}")
    print("\n".join(line for line in run["rounds_md"].splitlines() if line.startswith(("| stage", "| baseline", "| round_1 |"))))
    print(f"baseline eval mean IoU {run['baseline']:.3f}")


def spread(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def headline(runs: list[dict], command: str) -> str:
    """The README's headline block: eval mean IoU per stage over the runs, and what made it."""
    seeds = ", ".join(str(r["seed"]) for r in runs)
    gains = [r["round_1"] - r["baseline"] for r in runs]
    handed = sum(r["round_1_handed_on"] == "trained" for r in runs)
    methods = sorted({str(r["refinement"]) for r in runs})
    walls = [r["wall"] for r in runs]
    return "\n".join([
        f"| stage | eval mean IoU (mean ± sd over seeds {seeds}: each draws its own splits and trains with it) |",
        "|---|---|",
        f"| box masks used as predictions | {spread([r['box_masks'] for r in runs])} |",
        f"| baseline (hand-labelled frames only) | {spread([r['baseline'] for r in runs])} |",
        f"| round 1 (refined masks and boxes; refinement chose {', '.join(methods)}) | {spread([r['round_1'] for r in runs])} |",
        "",
        f"Round 1 minus baseline, run by run: {', '.join(f'{g:+.3f}' for g in gains)}; the round guard handed round 1's trained "
        f"weights on in {handed} of {len(runs)} runs. Each run took {min(walls):.0f} to {max(walls):.0f} s "
        f"(precision {runs[0]['precision']}). Made by `{command}` on {datetime.date.today().isoformat()}.",
    ])  # fmt: skip


def rewrite_readme(block: str, readme: Path = ROOT / "README.md") -> None:
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise SystemExit(f"{readme} has no {README_START} ... {README_END} block to rewrite")
    before, rest = text.split(README_START, 1)
    after = rest.split(README_END, 1)[1]
    readme.write_text(f"{before}{README_START}\n{block}\n{README_END}{after}")
    print(f"rewrote the headline block of {readme}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary project folder")
    parser.add_argument("--precision", default="auto", help="auto | 32 | bf16-mixed (training and inference)")
    parser.add_argument("--params", default="", help="extra --params for kedro run")
    parser.add_argument("--env", default=None, help="configuration environment (e.g. gpu)")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="one run per training seed (default: one run, the configured seed)")
    parser.add_argument("--readme", action="store_true", help="rewrite the README's headline block with the figures")
    args = parser.parse_args()
    runs = []
    for seed in args.seeds or [None]:
        runs.append(run_once(args.precision, seed, args.params, args.env, args.keep))
        print_run(runs[-1])
    if len(runs) > 1:
        print(f"over seeds {[r['seed'] for r in runs]}: baseline {spread([r['baseline'] for r in runs])}, "
              f"round 1 {spread([r['round_1'] for r in runs])}")  # fmt: skip
    if args.readme:
        command = "python bench/end_to_end.py --precision " + args.precision + (" --seeds " + " ".join(map(str, args.seeds)) if args.seeds else "")
        rewrite_readme(headline(runs, command + " --readme"))
    print(f"total_seconds={statistics.fmean(r['wall'] for r in runs):.0f} precision={runs[0]['precision']}")


if __name__ == "__main__":
    main()
