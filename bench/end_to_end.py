"""Time the default `kedro run` (synthetic data -> baseline -> refinement round 1), stage by stage.

    python bench/end_to_end.py [--precision 32] [--keep]

Runs in a fresh copy of the project's configuration in a temporary folder, so the synthetic data is
generated as on a fresh clone and nothing of the working copy is touched. Prints the wall time of the
whole command and the seconds per pipeline stage and per node (from run_timings.json/<version>/, saved by the
project's NodeTimingHook). `--precision 32` forces fp32 (the case of CPUs without native bf16).
Target: under 5 minutes on a 2-core CPU. The last line is `total_seconds=<s> precision=<p>`.
"""

from __future__ import annotations

import argparse
import json
import shutil

from _project import fresh_project, kedro_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary project folder")
    parser.add_argument("--precision", default="auto", help="auto | 32 | bf16-mixed (training and inference)")
    parser.add_argument("--params", default="", help="extra --params for kedro run")
    parser.add_argument("--env", default=None, help="configuration environment (e.g. gpu)")
    args = parser.parse_args()
    project = fresh_project("sewer-e2e-")
    try:
        params = f"baseline_training.training.precision={args.precision},inference.precision={args.precision}"
        params += f",{args.params}" if args.params else ""
        options = [f"--params={params}"] + ([f"--env={args.env}"] if args.env else [])
        wall = kedro_run(project, *options, log=project / "run.log")
        reports = project / "data/08_reporting/synthetic"
        newest = max((reports / "run_timings.json").iterdir())  # versioned: <timestamp>/run_timings.json
        timings = json.loads((newest / "run_timings.json").read_text())
        print(f"kedro run (fresh, synthetic data generated): {wall:.1f} s wall, {timings['total_seconds']:.1f} s in the pipeline")
        print("seconds by stage:")
        for namespace, seconds in timings["seconds_by_namespace"].items():
            print(f"  {namespace:<20} {seconds:8.1f}")
        print("slowest nodes:")
        for name, seconds in sorted(timings["seconds_by_node"].items(), key=lambda kv: -kv[1])[:8]:
            print(f"  {name:<50} {seconds:8.1f}")
        rounds = (reports / "rounds.md").read_text().splitlines()
        print("\n".join(line for line in rounds if line.startswith(("| stage", "| baseline", "| round_1 |"))))
        used = json.loads((reports / "baseline_metrics.json").read_text())
        model = json.loads(next((project / "data/06_models/synthetic/baseline").glob("*/model_config.json")).read_text())
        precision = model["metadata"]["precision"]
        if args.keep:
            print(f"project kept in {project}")
        print(f"baseline eval mean IoU {used['metrics']['model']['polygons']['mean_iou']:.3f}")
        print(f"total_seconds={wall:.0f} precision={precision}")
    finally:
        if not args.keep:
            shutil.rmtree(project, ignore_errors=True)


if __name__ == "__main__":
    main()
