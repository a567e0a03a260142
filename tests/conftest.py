"""Shared fixtures: tiny generated datasets and throw-away Kedro project folders."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

# pytest runs the tests on two pytest-xdist workers (pyproject's addopts). Each worker and every Kedro run it
# starts gets one thread for torch's kernels: two workers on a 2-core CPU with two threads each only fight
# over the cores. Set before anything imports torch.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

from sewer_segmentation.data.synthetic import SyntheticConfig, write_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# Small frames keep every test fast; 64 is the generator's minimum.
TINY = dict(num_images=40, num_hand_labelled=16, width=128, height=96, seed=3)


@pytest.fixture
def kedro_project(tmp_path: Path) -> Path:
    """A copy of the project's configuration in a temporary folder, ready for `kedro run`."""
    return new_project(tmp_path / "project")


def new_project(project: Path) -> Path:
    project.mkdir(parents=True)
    shutil.copytree(REPO / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    shutil.copy(REPO / "pyproject.toml", project / "pyproject.toml")
    shutil.copy(REPO / ".telemetry", project / ".telemetry")
    (project / "src").mkdir()  # Kedro checks it exists; the package itself is installed
    (project / "data" / "01_raw").mkdir(parents=True)
    return project


def make_dataset(project: Path, name: str = "tiny", **overrides) -> Path:
    raw = project / "data" / "01_raw" / name
    write_dataset(SyntheticConfig(**{**TINY, **overrides}), raw, raw.parent / f"{name}_ground_truth")
    return raw


def run_kedro(project: Path, *args: str, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in ``project``; returns the completed process (output in .stdout)."""
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "kedro", "run", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cli(project: Path, *args: str):
    """The project's ``kedro run`` command in this process (click's runner): for errors that stop a run
    before it starts, without the seconds a new interpreter takes. Returns click's result."""
    from click.testing import CliRunner  # noqa: PLC0415
    from kedro.framework.startup import bootstrap_project  # noqa: PLC0415

    from sewer_segmentation.cli import run  # noqa: PLC0415

    bootstrap_project(project)  # what `kedro` does before it calls the project's run command
    with contextlib.chdir(project):
        return CliRunner().invoke(run, list(args))


def run_pipeline(project: Path, name: str, **runtime_params) -> dict:
    """Run a registered pipeline in this process with Kedro's ``SequentialRunner`` on the project's own
    catalog (no CLI start-up, no run hooks): node exceptions propagate as they are."""
    import mlflow  # noqa: PLC0415
    from kedro.framework.project import pipelines  # noqa: PLC0415
    from kedro.framework.session import KedroSession  # noqa: PLC0415
    from kedro.framework.startup import bootstrap_project  # noqa: PLC0415
    from kedro.runner import SequentialRunner  # noqa: PLC0415

    bootstrap_project(project)
    with contextlib.chdir(project), KedroSession.create(project_path=project, runtime_params=nested(runtime_params)) as session:
        context = session.load_context()
        try:
            return SequentialRunner().run(pipelines[name], context.catalog)
        finally:
            # Without kedro-mlflow's run hooks, the first MLflow artifact a dataset logs (the data report)
            # starts a run of its own: close it, as kedro-mlflow closes the run of a `kedro run`.
            if mlflow.active_run() is not None:
                mlflow.end_run()


def project_catalog(project: Path, **runtime_params):
    """The project's catalog with ``runtime_params``, to load what a run wrote."""
    from kedro.framework.session import KedroSession  # noqa: PLC0415
    from kedro.framework.startup import bootstrap_project  # noqa: PLC0415

    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params=nested(runtime_params)) as session:
        return session.load_context().catalog


def nested(dotted: dict) -> dict:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``, as the CLI turns ``--params=a.b=1`` into runtime parameters."""
    out: dict = {}
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out
