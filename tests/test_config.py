"""The configuration environments load and are consistent."""

import os

from kedro.config import OmegaConfigLoader

from sewer_segmentation.data.samples import FrameSize, frame_size
from sewer_segmentation.resolvers import CUSTOM_RESOLVERS, model_folder_name
from tests.conftest import REPO


def load(env: str, runtime_params: dict | None = None):
    from sewer_segmentation.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(str(REPO / "conf"), base_env="base", default_run_env=env, custom_resolvers=CUSTOM_RESOLVERS,
                               runtime_params=runtime_params or {}, config_patterns={"mlflow": ["mlflow*"]},
                               merge_strategy=CONFIG_LOADER_ARGS["merge_strategy"])  # fmt: skip
    return loader


def test_base_and_gpu_environments_load_with_valid_sizes():
    base = load("local")["parameters"]
    gpu = load("gpu")["parameters"]
    assert base["dataset"] == "synthetic" and base["round"] == 1
    assert frame_size(base["image_size"]) == FrameSize(128, 160, "resize", 0.5, 64)
    assert frame_size(gpu["image_size"]) == FrameSize(512, 704, "resize", 0.5, 64)  # mode, crop and tile from base
    assert gpu["model"]["encoder_name"] == "resnet34" and gpu["model"]["encoder_weights"] == "imagenet"
    assert gpu["baseline_training"]["training"]["steps"] == 1000 and gpu["baseline_training"]["training"]["batch_size"] == 2
    assert gpu["model"]["freeze_encoder"] is True and gpu["model"]["architecture"] == "UNetAttention"  # kept from base
    assert gpu["mask_refinement"] == base["mask_refinement"]  # not overridden: the whole dictionary is base's
    assert set(gpu["baseline_training"]["training"]) == set(base["baseline_training"]["training"])


def test_round_and_dataset_parameters_move_every_derived_path():
    catalog = load("local", {"round": 3, "dataset": "Deposition"})["catalog"]
    assert catalog["previous_model"] == {"type": "sewer_segmentation.datasets.RefiningModelDataset", "metadata": {"kedro-viz": {"layer": "model_input"}},
                                         "models_root": "data/06_models/Deposition", "round": 3}  # fmt: skip
    assert load("local", {"model_selection": {"signal": "box_agreement"}})["parameters"]["model_selection"]["signal"] == "box_agreement"
    assert catalog["round.model"]["path"] == "data/06_models/Deposition/round_3"
    assert catalog["refined_masks"]["path"] == "data/04_feature/Deposition/hybrid_masks/round_3"
    assert catalog["raw_images"]["path"] == "data/01_raw/Deposition/images"
    derived = [v for k, v in catalog.items() if isinstance(v, dict) and not k.startswith(("raw_", "inference_", "_")) and "prefix" not in v
               and v.get("type") != "MemoryDataset"]  # fmt: skip
    for entry in derived:  # every output of a pipeline lives under the dataset's own folder
        location = entry.get("path") or entry.get("filepath") or entry.get("models_root") or entry.get("dataset", {}).get("filepath")
        assert "/Deposition" in str(location), entry
    params = load("local", {"dataset": "Deposition"})["parameters"]
    assert params["predict"]["models_root"] == "data/06_models/Deposition"
    assert load("local", {"dataset": "B"})["mlflow"]["tracking"]["experiment"]["name"] == "sewer_segmentation-B"


def test_resolvers():
    assert model_folder_name("2") == "round_2" and model_folder_name("baseline") == "baseline" and model_folder_name("best") == "best"


def test_mlflow_download_bars_are_off_without_a_terminal():
    """Without a terminal (a log file, CI) MLflow's carriage-return progress bars would add a line per redraw."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = "import os, sewer_segmentation.settings; print(os.environ.get('MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR'))"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)  # stdout is a pipe
    assert result.returncode == 0 and result.stdout.strip().splitlines()[-1] == "false", result.stderr[-2000:]
