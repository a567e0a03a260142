"""Trained models as standard MLflow models, in the model registry.

Every saved stage is logged as an MLflow pyfunc model (a TorchScript network and ``mlflow_pyfunc.py``:
no project code needed to load or serve it) and registered as a new version of
``sewer-segmentation-<dataset>``. Aliases name the versions: ``@baseline``, ``@round_1``, ... for each
stage's newest model, and ``@best`` for the stage with the best selection score (``io.stages.best_stage``,
the same rule as ``predict_model: best``):

    mlflow.pyfunc.load_model("models:/sewer-segmentation-synthetic@best").predict(frame)  # H x W probabilities
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from sewer_segmentation.data.samples import normalization_for
from sewer_segmentation.io.stages import best_stage, saved_stages

logger = logging.getLogger(__name__)

PYFUNC_CODE = Path(__file__).with_name("mlflow_pyfunc.py")
#: Shipped with every pyfunc model (MLflow ``code_paths``): native-mode models predict by tiles.
TILING_CODE = Path(__file__).parents[1] / "modelling" / "tiling.py"
#: What the pyfunc model needs at load time (nothing of this project).
PYFUNC_REQUIREMENTS = ("torch", "numpy", "opencv-python-headless", "mlflow")


def registered_name(dataset: str) -> str:
    return f"sewer-segmentation-{dataset}"


def log_pyfunc_model(trained, name: str, registered_model: str | None, tags: dict[str, str]):
    """Log ``trained`` (a ``TrainedModel``) to the active MLflow run as pyfunc model ``name``, registered
    under ``registered_model`` (when given) with ``tags`` on the new version. Returns the model info."""
    import mlflow  # noqa: PLC0415
    from mlflow.models import ModelSignature  # noqa: PLC0415
    from mlflow.types import Schema, TensorSpec  # noqa: PLC0415

    height, width = int(trained.image_size["height"]), int(trained.image_size["width"])
    mean, std = normalization_for(trained.model_config)
    network = trained.model.float().cpu().eval()
    example = np.zeros((1, height, width, 3), np.uint8)
    # any frame size and batch size: the model resizes each frame itself
    signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))]),
                               outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1))]))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # TorchScript is deprecated in favour of torch.export, but it is what loads with torch alone in
        # every torch 2.x; the signature is explicit, so MLflow's hint about type hints does not apply.
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.(trace|load)", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r".*type hints", category=UserWarning)
        scripted = Path(tmp) / "network.pt"
        with torch.no_grad():
            torch.jit.trace(network, torch.zeros(1, 3, height, width), check_trace=False).save(str(scripted))
        preprocessing = Path(tmp) / "preprocessing.json"
        size = trained.image_size
        preprocessing.write_text(json.dumps({"height": height, "width": width, "mean": list(mean), "std": list(std),
                                             "mode": size.get("mode", "resize"), "overlap": int((size.get("tile") or {}).get("overlap", 64))}))  # fmt: skip
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(PYFUNC_CODE),
            artifacts={"network": str(scripted), "preprocessing": str(preprocessing)},
            code_paths=[str(TILING_CODE)],
            signature=signature,
            input_example=example,
            pip_requirements=[_pinned(p) for p in PYFUNC_REQUIREMENTS],
            registered_model_name=registered_model,
            tags=tags,
        )
    if registered_model and info.registered_model_version is not None:
        client = mlflow.MlflowClient()
        for key, value in tags.items():
            client.set_model_version_tag(registered_model, info.registered_model_version, key, value)
    return info


def _pinned(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return f"{package}=={version(package)}"
    except PackageNotFoundError:
        return package


def update_aliases(registered_model: str, models_root: str | Path) -> dict[str, str]:
    """Point ``@<stage>`` at each stage's newest saved version and ``@best`` at the newest stage's (what
    the round guards handed on, ``io.stages.best_stage``).
    Versions are matched by the ``model_version`` tag set when they were logged. Returns alias -> version."""
    import mlflow  # noqa: PLC0415

    saved = saved_stages(models_root)
    if not saved:
        return {}
    client = mlflow.MlflowClient()
    by_folder = {}
    for version in client.search_model_versions(f"name='{registered_model}'"):
        key = (version.tags.get("stage"), version.tags.get("model_version"))
        by_folder[key] = max(by_folder.get(key, "0"), version.version, key=int)
    aliases = {}
    for stage, folder in saved.items():
        if (stage, folder.name) in by_folder:
            aliases[stage] = by_folder[(stage, folder.name)]
    best = best_stage(saved)
    if best in aliases:
        aliases["best"] = aliases[best]
    for alias, version in aliases.items():
        client.set_registered_model_alias(registered_model, alias, version)
    if "best" in aliases:
        logger.info("MLflow registry: models:/%s@best is version %s (%s)", registered_model, aliases["best"], best)
    return aliases
