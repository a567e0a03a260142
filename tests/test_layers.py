"""The package's layers: which part may import which (every import points down), and what may import
Kedro and Lightning (docs/architecture.md, "Layers")."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "sewer_segmentation"

#: The package's parts, bottom first: a part imports only parts of lower layers (lazy imports count too),
#: so there is no circle and no import back up. docs/architecture.md draws the same layers.
LAYERS = [
    {"__init__", "errors"},  # leaves: no project import
    {"stage", "progress", "schema", "stats"},  # stage names, progress bars, the base of every parameter model, paired noise
    {"io", "reporting", "resolvers"},  # files, images, locks, saved stages; plots and reports
    {"data"},  # raw layouts, annotations, splits, samples, the synthetic generator
    {"modelling"},  # networks, losses, training, inference
    {"refinement", "tracking"},  # box masks -> refined masks; MLflow
    {"scaling"},  # the per-frame jobs on Ray
    {"params", "datasets"},  # every parameter model gathered; the Kedro datasets
    {"parameters_doc"},
    {"pipelines", "hooks"},
    {"quick_predict", "pipeline_registry", "cli", "settings"},
    {"__main__"},
]

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
#: Ray (an extra) is imported only when ``engine: ray`` runs a job: see the "ray" probe below.
#: Storage and inference: a model is loaded and run without the training loop.
#: Also every pipeline and the hooks: Lightning (3-4 s to import) only when a stage trains.
WITHOUT_LIGHTNING = ["sewer_segmentation.datasets", "sewer_segmentation.modelling.inference", "sewer_segmentation.modelling.plan",
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
              ("ray", ("sewer_segmentation.pipeline_registry", "sewer_segmentation.settings", "sewer_segmentation.scaling.ray_engine")): None,
              ("kedro", ("sewer_segmentation.pipeline_registry",)): None}  # the last one shows the probe sees imports
    for forbidden, modules in checks:  # all at once, in parallel
        checks[forbidden, modules] = probe(list(modules), forbidden)
    results = {key: imported(process) for key, process in checks.items()}
    assert results.pop(("kedro", ("sewer_segmentation.pipeline_registry",))) is True
    for (forbidden, modules), found in results.items():
        if found:  # name the modules
            offenders = [m for m in modules if imported(probe([m], forbidden))]
            pytest.fail(f"these modules import {forbidden}: {offenders}")


def part_of(module: str) -> str:
    """``sewer_segmentation.data.samples`` -> ``data``; the package itself (``__version__``) -> ``__init__``."""
    parts = module.split(".")
    named = parts[1] if len(parts) > 1 else "__init__"
    return named if (PACKAGE / named).is_dir() or (PACKAGE / f"{named}.py").is_file() else "__init__"


def project_imports(path: Path) -> set[str]:
    """Every ``sewer_segmentation`` module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sewer_segmentation":
            # ``from sewer_segmentation import params`` imports the module params
            subs = [f"{node.module}.{a.name}" for a in node.names] if node.module == "sewer_segmentation" else [node.module]
            found.update(subs)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "sewer_segmentation")
    return found


def layer_of(part: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def test_every_import_points_down_the_layers():
    parts = {p.stem if p.parent == PACKAGE else p.relative_to(PACKAGE).parts[0] for p in PACKAGE.rglob("*.py")}
    assert parts == set().union(*LAYERS), "a new part of the package needs its place in LAYERS"
    upward = []
    for path in PACKAGE.rglob("*.py"):
        here = path.stem if path.parent == PACKAGE else path.relative_to(PACKAGE).parts[0]
        for module in project_imports(path):
            there = part_of(module)
            if there != here and layer_of(there) >= layer_of(here):
                upward.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not upward, "imports that do not point down the layers:\n" + "\n".join(sorted(upward))


def test_the_layer_check_sees_an_upward_import(tmp_path):
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from sewer_segmentation.pipelines.predict import nodes\nfrom sewer_segmentation import params\n")
    assert project_imports(source) == {"sewer_segmentation.pipelines.predict", "sewer_segmentation.params"}
    assert layer_of(part_of("sewer_segmentation.pipelines.predict")) > layer_of("modelling")


def test_no_private_kedro_names():
    """Kedro's private names change between releases without notice: the project uses its public API only
    (a dataset's own ``_describe``/``_exists`` are the methods Kedro asks a dataset to define)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kedro"):
                offenders += [f"{path.name}: from {node.module} import {a.name}" for a in node.names if a.name.startswith("_")]
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("_describe", "_load", "_save"):
                owner = node.func.value
                if not (isinstance(owner, ast.Name) and owner.id == "self" or isinstance(owner, ast.Call) and getattr(owner.func, "id", "") == "super"):
                    offenders.append(f"{path.name}: calls .{node.func.attr}() of another object")
    assert not offenders, offenders
