"""The configuration environments load and are consistent."""

from kedro.config import OmegaConfigLoader

from sewer_segmentation.data import check_image_size
from sewer_segmentation.resolvers import CUSTOM_RESOLVERS, model_folder_name, previous_round_command, previous_round_name

from .conftest import REPO


def load(env: str, runtime_params: dict | None = None):
    loader = OmegaConfigLoader(str(REPO / "conf"), base_env="base", default_run_env=env, custom_resolvers=CUSTOM_RESOLVERS,
                               runtime_params=runtime_params or {}, config_patterns={"mlflow": ["mlflow*"]})  # fmt: skip
    return loader


def test_base_and_gpu_environments_load_with_valid_sizes():
    base = load("local")["parameters"]
    gpu = load("gpu")["parameters"]
    assert base["dataset"] == "synthetic" and base["round"] == 1
    assert check_image_size(**base["image_size"]) == (128, 160)
    assert check_image_size(**gpu["image_size"]) == (512, 704)
    assert gpu["model"]["encoder_name"] == "resnet34" and gpu["model"]["encoder_weights"] == "imagenet"
    assert gpu["baseline_training"]["training"]["scoring_per_epoch"] == 4
    assert set(gpu["baseline_training"]["training"]) == set(base["baseline_training"]["training"])


def test_round_parameter_moves_every_round_path():
    catalog = load("local", {"round": 3, "dataset": "Deposition"})["catalog"]
    assert catalog["previous_model"]["path"] == "data/06_models/round_2"
    assert catalog["previous_model"]["missing_hint"] == "kedro run --pipeline=refine --params=round:2"
    assert catalog["round_model"]["path"] == "data/06_models/round_3"
    assert catalog["refined_masks"]["path"] == "data/04_feature/hybrid_masks/round_3"
    assert catalog["raw_images"]["path"] == "data/01_raw/Deposition/images"
    first = load("local")["catalog"]
    assert first["previous_model"]["path"] == "data/06_models/baseline"


def test_resolvers():
    assert previous_round_name(1) == "baseline" and previous_round_name("4") == "round_3"
    assert previous_round_command(1) == "kedro run --pipeline=baseline"
    assert model_folder_name("2") == "round_2" and model_folder_name("baseline") == "baseline"
