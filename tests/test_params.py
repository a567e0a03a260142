"""Typed parameters (``params.py``): every bad value is refused before the first node, as one line that
names the key, the value and what is allowed; docs/parameters.md is the models' own description."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kedro.config import OmegaConfigLoader
from kedro.framework.startup import bootstrap_project

from sewer_segmentation.errors import ConfigurationError
from sewer_segmentation.hooks import ParameterCheckHook
from tests.conftest import REPO, nested

# What a new user tried (the 27 values and more), one key of each section at least. Values are
# given as on the command line; each names (part of) the key the error must name.
BAD_VALUES = {
    "seed=abc": "seed='abc'",
    "seed=-1": "seed=-1",
    "round=0": "round=0",
    "dataset=a:b": "dataset='a:b'",
    "dataset=../x": "dataset='../x'",
    "image_size.height=100": "image_size.height=100",
    "image_size.mode=stretch": "image_size.mode='stretch'",
    "model.architecture=foo": "model.architecture='foo'",
    "model.encoder_name=foo": "model.encoder_name='foo'",
    "inference.batch_size=0": "inference.batch_size=0",
    "inference.precision=fp8": "inference.precision='fp8'",
    "data_engineering.dedupe.min_similarity=abc": "data_engineering.dedupe.min_similarity='abc'",
    "data_engineering.dedupe.max_distance=abc": "data_engineering.dedupe.max_distance='abc'",
    "data_engineering.dedupe.method=foo": "data_engineering.dedupe.method='foo'",
    "data_engineering.split.eval_fraction=1.5": "data_engineering.split.eval_fraction=1.5",
    "data_engineering.split.val_fraction=0": "data_engineering.split.val_fraction=0",
    "data_engineering.on_bad_file=ignore": "data_engineering.on_bad_file='ignore'",
    "data_engineering.layout=labelstudio": "data_engineering.layout='labelstudio'",
    "synthetic.num_images=abc": "synthetic.num_images='abc'",
    "baseline_training.training.validations=abc": "baseline_training.training.validations='abc'",
    "baseline_training.training.num_workers=-1": "baseline_training.training.num_workers=-1",
    "baseline_training.training.learning_rate=.inf": "baseline_training.training.learning_rate",
    "baseline_training.training.steps=2.7": "baseline_training.training.steps=2.7",
    "baseline_training.training.warmup_fraction=5": "baseline_training.training.warmup_fraction=5",
    "baseline_training.training.loss.name=foo": "baseline_training.training.loss.name='foo'",
    "baseline_training.training.lr_schedule=foo": "baseline_training.training.lr_schedule='foo'",
    "baseline_training.training.precision=foo": "baseline_training.training.precision='foo'",
    "baseline_training.joint.labelled_share=2": "baseline_training.joint.labelled_share=2",
    "final_training.labelled_share=2": "final_training.labelled_share=2",
    "final_training.init_from=foo": "final_training.init_from='foo'",
    "final_training.round_guard.min_improvement=abc": "final_training.round_guard.min_improvement='abc'",
    "final_training.training_overrides.steps=0": "final_training.training_overrides.steps=0",
    "mask_refinement.method=foo": "mask_refinement.method='foo'",
    "mask_refinement.auto.thresholds=abc": "mask_refinement.auto.thresholds='abc'",
    "mask_refinement.threshold.band=-1": "mask_refinement.threshold.band=-1",
    "predict.threshold=abc": "predict.threshold='abc'",
    "predict.batch_size=0": "predict.batch_size=0",
    "engine=gpu": "engine='gpu'",
    "ray.address=somewhere": "ray.address='somewhere'",
    "ray.concurrency=0": "ray.concurrency=0",
    "ray.num_gpus=-1": "ray.num_gpus=-1",
}


@pytest.fixture(scope="module", autouse=True)
def project():
    bootstrap_project(REPO)  # the registered pipelines: their nodes' type hints say which key is which model


def check(option: str) -> None:
    """What ``kedro run --params=OPTION`` does before the first node: Kedro splits the option, the
    configuration is loaded with it, and the project's ParameterCheckHook checks keys and values."""
    from kedro.framework.project import settings  # noqa: PLC0415

    from sewer_segmentation.cli import run  # noqa: PLC0415

    split = next(o for o in run.params if o.name == "params").callback  # the project's --params callback
    runtime = nested(split(None, None, option))
    loader = OmegaConfigLoader(str(REPO / "conf"), env="local", runtime_params=runtime, **settings.CONFIG_LOADER_ARGS)
    ParameterCheckHook().after_context_created(SimpleNamespace(config_loader=loader, env="local"))


def test_the_project_configuration_is_valid():
    check("")
    check("round:2,seed=3,mask_refinement.method=grabcut,final_training.init_from=fresh")
    check("engine:ray,ray.address:auto,ray.num_gpus:0.5,ray.concurrency:4")


@pytest.mark.parametrize("option", list(BAD_VALUES))
def test_each_bad_value_is_one_line_naming_the_key_and_value(option):
    with pytest.raises(ConfigurationError) as refused:
        check(option)
    message = str(refused.value)
    assert "\n" not in message and BAD_VALUES[option] in message, message


def test_the_message_says_what_is_allowed():
    for option, allowed in {
        "mask_refinement.method=foo": "auto, threshold, grabcut, box_prior, seed, box",
        "baseline_training.training.loss.name=foo": "tversky",
        "baseline_training.training.steps=2.7": "valid integer",
        "data_engineering.split.eval_fraction=1.5": "less than 1",
        "image_size.height=100": "multiple of 32",
        "engine=gpu": "'local' or 'ray'",
    }.items():
        with pytest.raises(ConfigurationError, match=allowed):
            check(option)


def test_several_problems_are_listed_on_one_line():
    with pytest.raises(ConfigurationError) as refused:
        check("seed=abc,inference.batch_size=0")
    message = str(refused.value)
    assert "\n" not in message and "seed='abc'" in message and "inference.batch_size=0" in message


def test_round_overrides_are_merged_over_the_baseline_training_then_validated():
    from sewer_segmentation.params import FinalTrainingParams, TrainingParams  # noqa: PLC0415

    base = TrainingParams(steps=100, learning_rate=0.01, batch_size=4)
    final = FinalTrainingParams(training_overrides={"steps": 7})
    merged = final.training(base)
    assert (merged.steps, merged.learning_rate, merged.batch_size) == (7, 0.01, 4)
    with pytest.raises(ValueError, match="steps"):
        FinalTrainingParams(training_overrides={"steps": 2.5}).training(base)


def test_docs_parameters_md_is_generated_from_the_models():
    from sewer_segmentation.parameters_doc import parameters_markdown  # noqa: PLC0415

    assert (REPO / "docs/parameters.md").read_text() == parameters_markdown(), (
        "docs/parameters.md is out of date: python -m sewer_segmentation.parameters_doc > docs/parameters.md"
    )


def test_only_errors_no_type_can_express_remain_configuration_errors():
    """Every ``ConfigurationError(`` raised in src/ is one docs/parameters.md lists as a run-time check."""
    from sewer_segmentation.parameters_doc import RUN_TIME_CHECKS  # noqa: PLC0415

    raised = sorted({
        str(path.relative_to(REPO / "src/sewer_segmentation"))
        for path in (REPO / "src/sewer_segmentation").rglob("*.py")
        if "ConfigurationError(" in path.read_text() and path.name != "errors.py"
    })
    assert raised == sorted({module for _, _, module in RUN_TIME_CHECKS})
