"""Refinement rounds end to end on a tiny dataset: rounds, versions, crash safety, clear errors."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sewer_segmentation.datasets import list_versions

from .conftest import make_dataset, run_kedro

pytestmark = pytest.mark.slow

FAST = ("dataset=tiny,image_size.height=64,image_size.width=96,baseline_training.training.epochs=2,"
        "final_training.training_overrides.epochs=2")  # fmt: skip


def snapshot(folder):
    """Hash of every file under the round-1 outputs, to prove later runs never touch them."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def round_one_files(project):
    files = {}
    for folder in ("data/04_feature/hybrid_masks/round_1", "data/06_models/round_1", "data/06_models/baseline"):
        files.update({f"{folder}/{k}": v for k, v in snapshot(project / folder).items()})
    return files


def test_rounds_version_crash_and_errors(kedro_project):
    make_dataset(kedro_project)

    # Refinement before any data engineering: the message names the command to run first.
    result = run_kedro(kedro_project, "--pipeline=refine", f"--params={FAST}")
    assert result.returncode != 0
    assert "Run `kedro run --pipeline=data_engineering` first" in result.stdout + result.stderr

    # Plain `kedro run`: data engineering, baseline and round 1.
    result = run_kedro(kedro_project, f"--params={FAST}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((kedro_project / "data/08_reporting/round_1_metrics.json").read_text())
    assert metrics["round"] == 1 and metrics["refinement"]["used"] == "grabcut"
    assert set(metrics["refinement"]["methods"]) == {"seed", "box_prior", "grabcut", "box"}
    assert "weak_vs_ground_truth" in metrics["refinement"]["methods"]["grabcut"]
    assert len(list_versions(kedro_project / "data/04_feature/hybrid_masks/round_1")) == 1
    report = (kedro_project / "data/08_reporting/rounds.md").read_text()
    assert "| round_1 |" in report and "| baseline |" in report
    round_1 = round_one_files(kedro_project)

    # A later round before its model exists: the message names the command that makes it.
    result = run_kedro(kedro_project, "--pipeline=refine", f"--params={FAST},round:3")
    assert result.returncode != 0
    assert "Run `kedro run --pipeline=refine --params=round:2` first" in result.stdout + result.stderr


    # Round 2 with the `round:2` form; round 1's files stay byte-identical.
    result = run_kedro(kedro_project, "--pipeline=refine", f"--params={FAST},round:2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert round_one_files(kedro_project) == round_1
    report = (kedro_project / "data/08_reporting/rounds.md").read_text()
    assert "| round_2 |" in report and "| round_1 |" in report

    # SIGKILL in the middle of round 2 (again, with the `round=2` form), then the same command again.
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    command = [sys.executable, "-m", "kedro", "run", "--pipeline=refine", f"--params={FAST},round=2"]
    process = subprocess.Popen(command, cwd=kedro_project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    versions_before = list_versions(kedro_project / "data/04_feature/hybrid_masks/round_2")
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if len(list_versions(kedro_project / "data/04_feature/hybrid_masks/round_2")) > len(versions_before):
            break  # refined masks written: training of the final model is under way
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert round_one_files(kedro_project) == round_1
    models_before = list_versions(kedro_project / "data/06_models/round_2")
    result = run_kedro(kedro_project, "--pipeline=refine", f"--params={FAST},round=2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(list_versions(kedro_project / "data/06_models/round_2")) == len(models_before) + 1
    assert round_one_files(kedro_project) == round_1
    leftovers = [p for p in (kedro_project / "data").rglob("*.tmp")]
    assert leftovers == [] or all(p.parent.name != "round_1" for p in leftovers)

    # The default pipeline is round 1 only.
    result = run_kedro(kedro_project, f"--params={FAST},round:2")
    assert result.returncode != 0 and "--pipeline=refine --params=round:N" in result.stdout + result.stderr
