"""Shared by the benches: a throw-away copy of the project's configuration to run `kedro run` in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fresh_project(prefix: str) -> Path:
    """A temporary folder with conf/ (without conf/local), pyproject.toml and an empty data/."""
    project = Path(tempfile.mkdtemp(prefix=prefix))
    shutil.copytree(ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf/local").mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(ROOT / name, project / name)
    (project / "src").mkdir()
    (project / "data/01_raw").mkdir(parents=True)
    return project


def kedro_run(project: Path, *args: str, log: Path | None = None) -> float:
    """Run `kedro run ARGS` in ``project``; return its wall seconds. Output goes to ``log`` (or is
    captured); a failure prints the end of the output and stops the bench."""
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    start = time.perf_counter()
    with open(log or os.devnull, "w") as out:
        result = subprocess.run([sys.executable, "-m", "kedro", "run", *args], cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        if log is not None:
            print(Path(log).read_text()[-5000:])
        raise SystemExit(f"kedro run {' '.join(args)} failed with exit code {result.returncode} (in {project})")
    return time.perf_counter() - start
