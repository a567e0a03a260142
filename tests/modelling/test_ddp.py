"""Distributed data parallel on CPU: two processes, disjoint data, one model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sewer_segmentation.io.files import list_versions

pytestmark = pytest.mark.slow


def test_two_cpu_processes_see_disjoint_data_and_write_one_model(tmp_path):
    script = Path(__file__).with_name("ddp_train_script.py")
    env = {**os.environ, "PYTHONPATH": str(script.parent.parent / "src")}
    result = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    from sewer_segmentation.modelling.training import StepSampler

    ranks = [json.loads((tmp_path / f"rank_{r}_epoch_0.json").read_text()) for r in (0, 1)]
    assert all(r["world_size"] == 2 for r in ranks)
    first, second = ranks[0]["indices"], ranks[1]["indices"]
    # the two processes share out one pass of the step sampler (12 steps x batch 2 draws), without overlap
    assert len(first) == len(second) == 12
    assert sorted(first + second) == sorted(StepSampler(12, 24, seed=0))
    assert len(list_versions(tmp_path / "models")) == 1
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["train"] and history["val"]  # recorded in the children, handed back to the parent
    assert max(r["step"] for r in history["train"]) == 12  # the budget counts optimizer steps, whatever the processes
