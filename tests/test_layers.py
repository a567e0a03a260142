"""The package's layers: what may import Kedro and Lightning (docs/architecture.md, "Where things live")."""

import subprocess
import sys

import pytest

#: Plain modules: usable from a notebook or another project without Kedro.
WITHOUT_KEDRO = [
    "sewer_segmentation.data.annotations", "sewer_segmentation.data.dedupe", "sewer_segmentation.data.splits",
    "sewer_segmentation.data.samples", "sewer_segmentation.data.synthetic", "sewer_segmentation.io.imaging",
    "sewer_segmentation.io.files", "sewer_segmentation.io.stages", "sewer_segmentation.modelling.training",
    "sewer_segmentation.modelling.plan", "sewer_segmentation.modelling.inference", "sewer_segmentation.modelling.evaluation",
    "sewer_segmentation.refinement.methods",
    "sewer_segmentation.refinement.masks", "sewer_segmentation.tracking.registry", "sewer_segmentation.tracking.runs",
    "sewer_segmentation.reporting.reports", "sewer_segmentation.reporting.run_summary",
]  # fmt: skip
#: Storage and inference: a model is loaded and run without the training loop.
#: Also every pipeline and the hooks: Lightning (3-4 s to import) only when a stage trains.
WITHOUT_LIGHTNING = ["sewer_segmentation.io.datasets", "sewer_segmentation.modelling.inference", "sewer_segmentation.modelling.plan",
                     "sewer_segmentation.quick_predict", "sewer_segmentation.pipeline_registry", "sewer_segmentation.settings"]  # fmt: skip


def probe(modules: list[str], forbidden: str) -> subprocess.Popen:
    """A fresh interpreter importing ``modules``; prints whether the package ``forbidden`` came with them."""
    code = f"import sys; import {', '.join(modules)}; print({forbidden!r} in {{m.split('.')[0] for m in sys.modules}})"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def imported(process: subprocess.Popen) -> bool:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-2000:]
    return out.strip() == "True"


def test_layers_import_only_what_they_need():
    checks = {("kedro", tuple(WITHOUT_KEDRO)): None, ("lightning", tuple(WITHOUT_LIGHTNING)): None,
              ("kedro", ("sewer_segmentation.pipeline_registry",)): None}  # the last one shows the probe sees imports
    for forbidden, modules in checks:  # all at once, in parallel
        checks[forbidden, modules] = probe(list(modules), forbidden)
    results = {key: imported(process) for key, process in checks.items()}
    assert results.pop(("kedro", ("sewer_segmentation.pipeline_registry",))) is True
    for (forbidden, modules), found in results.items():
        if found:  # name the modules
            offenders = [m for m in modules if imported(probe([m], forbidden))]
            pytest.fail(f"these modules import {forbidden}: {offenders}")
