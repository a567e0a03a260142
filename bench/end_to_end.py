"""Time the default `kedro run` (synthetic data -> baseline -> refinement round 1), stage by stage.

    python bench/end_to_end.py [--keep]

Runs in a fresh copy of the project's configuration in a temporary folder, so the synthetic data is
generated as on a fresh clone and nothing of the working copy is touched. Prints the wall time of the
whole command and the seconds per pipeline stage and per node (from data/08_reporting/run_timings.json,
written by the project's NodeTimingHook). Target: under 5 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary project folder")
    parser.add_argument("--params", default="", help="extra --params for kedro run")
    args = parser.parse_args()
    project = Path(tempfile.mkdtemp(prefix="sewer-e2e-"))
    try:
        shutil.copytree(ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
        (project / "conf/local").mkdir()
        for name in ("pyproject.toml", ".telemetry"):
            shutil.copy(ROOT / name, project / name)
        (project / "src").mkdir()
        (project / "data").mkdir()
        command = [sys.executable, "-m", "kedro", "run"] + ([f"--params={args.params}"] if args.params else [])
        start = time.perf_counter()
        result = subprocess.run(command, cwd=project, env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"},
                                capture_output=True, text=True)  # fmt: skip
        wall = time.perf_counter() - start
        if result.returncode != 0:
            print(result.stdout[-5000:], result.stderr[-5000:])
            raise SystemExit(f"kedro run failed with exit code {result.returncode}")
        timings = json.loads((project / "data/08_reporting/run_timings.json").read_text())
        print(f"kedro run (fresh, synthetic data generated): {wall:.1f} s wall, {timings['total_seconds']:.1f} s in the pipeline")
        print("seconds by stage:")
        for namespace, seconds in timings["seconds_by_namespace"].items():
            print(f"  {namespace:<20} {seconds:8.1f}")
        print("slowest nodes:")
        for name, seconds in sorted(timings["seconds_by_node"].items(), key=lambda kv: -kv[1])[:8]:
            print(f"  {name:<50} {seconds:8.1f}")
        rounds = (project / "data/08_reporting/rounds.md").read_text().splitlines()
        print("\n".join(line for line in rounds if line.startswith("| baseline") or line.startswith("| round_1 |")))
        if args.keep:
            print(f"project kept in {project}")
    finally:
        if not args.keep:
            shutil.rmtree(project, ignore_errors=True)


if __name__ == "__main__":
    main()
