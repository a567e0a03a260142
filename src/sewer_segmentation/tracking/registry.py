"""Trained models as standard MLflow models, in the model registry.

Every saved stage is logged as an MLflow pyfunc model (a TorchScript network and ``mlflow_pyfunc.py``:
no project code needed to load or serve it) in that stage's own child run, and registered as a new
version of ``sewer-segmentation-<dataset>``. Aliases name the versions: ``@baseline``, ``@round_1``, ...
for each stage's newest model, and ``@best`` for the stage the round guards handed on
(``io.stages.best_stage``, the same rule as ``predict_model: best``):

    model = mlflow.pyfunc.load_model("models:/sewer-segmentation-synthetic@best")
    model.predict(frame[None])  # an RGB uint8 frame H x W x 3 -> 1 x H x W defect probabilities
    model.predict(pd.DataFrame({"image": [png_bytes]}), params={"threshold": 0.4})  # -> mask (base64 PNG), defect_share

MLflow stores the TorchScript network only: it is what loads with torch alone, in any process. The
project's own folders keep the safetensors weights the next round fine-tunes from.
"""

from __future__ import annotations

import base64
import json
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from sewer_segmentation.data.samples import normalization_for
from sewer_segmentation.errors import ConfigurationError, MissingArtifactError
from sewer_segmentation.io.imaging import encode_image
from sewer_segmentation.io.stages import best_stage, newest_stage_up_to, saved_stages
from sewer_segmentation.stage import Stage

logger = logging.getLogger(__name__)

PYFUNC_CODE = Path(__file__).with_name("mlflow_pyfunc.py")
#: Shipped with every pyfunc model (MLflow ``code_paths``): native-mode models predict by tiles.
TILING_CODE = Path(__file__).parents[1] / "modelling" / "tiling.py"
#: What the pyfunc model needs at load time (nothing of this project).
PYFUNC_REQUIREMENTS = ("torch", "numpy", "pandas", "opencv-python-headless", "mlflow")


#: The threshold a logged model binarizes with unless a request names one (MLflow predict ``params``).
DEFAULT_THRESHOLD = 0.5


def registered_name(dataset: str) -> str:
    return f"sewer-segmentation-{dataset}"


def log_pyfunc_model(trained, name: str, registered_model: str | None, tags: dict[str, str]):
    """Log ``trained`` (a ``TrainedModel``) to the active MLflow run as pyfunc model ``name``, registered
    under ``registered_model`` (when given) with ``tags`` on the new version. Returns the model info."""
    import mlflow  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415 - the predict command never logs a model
    from mlflow.models import ModelSignature  # noqa: PLC0415
    from mlflow.types import ParamSchema, ParamSpec  # noqa: PLC0415

    height, width = int(trained.image_size["height"]), int(trained.image_size["width"])
    mean, std = normalization_for(trained.model_config)
    network = trained.model.float().cpu().eval()
    threshold = float(trained.metadata.get("threshold", DEFAULT_THRESHOLD))
    # No input schema: the model takes both a table of encoded images and arrays of frames (see
    # mlflow_pyfunc.py), which one schema cannot describe; the threshold is a predict parameter.
    signature = ModelSignature(inputs=None, params=ParamSchema([ParamSpec("threshold", "float", threshold)]))
    example = pd.DataFrame({"image": [base64.b64encode(encode_image(np.zeros((height, width, 3), np.uint8))).decode("ascii")]})
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
        preprocessing.write_text(json.dumps({"height": height, "width": width, "mean": list(mean), "std": list(std), "threshold": threshold,
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


def load_chosen_model(choice, models_root: str, tracking_uri: str | None = None):
    """``best``, ``baseline``, a round number (``2``), a ``models:/NAME@ALIAS`` (or ``runs:/``) URI or an
    MLflow run id -> the ``TrainedModel``.

    Stages are read from the newest version under ``models_root``; ``best`` is the newest stage, which
    holds what the round guards handed on (``io.stages.best_stage``); a URI or a run id loads the pyfunc
    model logged to MLflow (``load_logged_model``). No Kedro: the predict pipeline and the predict command
    both choose with it."""
    from sewer_segmentation.io.files import version_dir  # noqa: PLC0415
    from sewer_segmentation.modelling.inference import load_trained_model  # noqa: PLC0415

    text = str(choice).strip()
    if text == "best":
        text = newest_stage_up_to(models_root)[0]
        logger.info("predict_model=best: %s (the newest stage)", text)
    stage = Stage.from_name(text)
    if stage is None:
        return load_logged_model(text, tracking_uri or None)
    folder = version_dir(Path(models_root) / stage.name)
    if folder is None or not folder.is_dir():
        raise MissingArtifactError(f"no trained model in {Path(models_root) / stage.name}. Run `{stage.command()}` first.")
    return load_trained_model(folder)


def logged_model_uri(reference: str, tracking_uri: str | None = None) -> str:
    """The model URI of ``reference``: a ``models:/`` or ``runs:/`` URI as it is, or a run id: the model
    that run logged, or, for a pipeline's run, the model of its latest stage's child run."""
    import mlflow  # noqa: PLC0415

    if reference.startswith(("models:/", "runs:/")):
        return reference
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    try:
        run = client.get_run(reference)
    except Exception as exc:  # noqa: BLE001 - any lookup failure means the reference is not a run of this store
        raise ConfigurationError(f"{reference!r} is neither a stage name, a models:/ URI, nor an MLflow run id of this store ({exc})") from exc
    runs = [run.info.run_id, *(r.info.run_id for r in client.search_runs([run.info.experiment_id],
                                                                         f"tags.mlflow.parentRunId = '{run.info.run_id}'"))]  # fmt: skip
    models = [m for m in client.search_logged_models([run.info.experiment_id]) if m.source_run_id in runs]
    if not models:
        raise MissingArtifactError(f"MLflow run {reference} logged no model (nor did its stages' runs)")
    latest = max(models, key=lambda m: (Stage.parse(m.tags.get("stage", "baseline")), m.creation_timestamp))
    return latest.model_uri


def _artifact_location(uri: str, tracking_uri: str | None) -> str:
    """Where the files of a ``models:/`` URI lie, looked up in the store ``tracking_uri`` names (MLflow would
    resolve the URI through the process's own registry, whatever store a call names); other URIs as they are."""
    import mlflow  # noqa: PLC0415

    if not uri.startswith("models:/"):
        return uri
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    name = uri.removeprefix("models:/").strip("/")
    if name.startswith("m-") and "/" not in name and "@" not in name:  # a logged model's own id
        return client.get_logged_model(name).artifact_location
    if "@" in name:
        name, alias = name.split("@", 1)
        version = client.get_model_version_by_alias(name, alias)
    else:
        name, number = name.rsplit("/", 1)
        version = client.get_model_version(name, number)
    if getattr(version, "model_id", None):
        return client.get_logged_model(version.model_id).artifact_location
    return client.get_model_version_download_uri(name, version.version)


def load_logged_model(reference: str, tracking_uri: str | None = None):
    """A ``TrainedModel`` from a logged pyfunc model (``logged_model_uri``): its TorchScript network, with
    the normalization, size and threshold it was logged with; predicts like a saved stage."""
    import mlflow  # noqa: PLC0415

    from sewer_segmentation.modelling.inference import TrainedModel  # noqa: PLC0415

    uri = logged_model_uri(reference, tracking_uri)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=_artifact_location(uri, tracking_uri), tracking_uri=tracking_uri))
    except Exception as exc:  # noqa: BLE001 - an unknown name, alias or version
        raise MissingArtifactError(f"{uri}: no such model in the MLflow store {tracking_uri or mlflow.get_tracking_uri()} ({exc})") from exc
    network_file, config_file = next(local.rglob("network.pt"), None), next(local.rglob("preprocessing.json"), None)
    if network_file is None or config_file is None:
        raise MissingArtifactError(f"{uri} is not a model this project logged (no network.pt and preprocessing.json)")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.load", category=FutureWarning)
        network = torch.jit.load(str(network_file), map_location="cpu").eval()
    config = json.loads(config_file.read_text())
    size = {"height": int(config["height"]), "width": int(config["width"])}
    if config.get("mode") == "native":
        size.update(mode="native", tile={"overlap": int(config.get("overlap", 64))})
    model_config = {"architecture": "TorchScript", "normalization": {"mean": config["mean"], "std": config["std"]}}
    return TrainedModel(network, model_config, size, {"model_uri": uri, "threshold": float(config.get("threshold", DEFAULT_THRESHOLD))})
