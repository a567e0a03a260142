import pytest

from sewer_segmentation.cli import normalize_param_items, run


@pytest.mark.parametrize(
    "given, expected",
    [
        ("round:2", "round=2"),
        ("round=2", "round=2"),
        ("round:2,dataset:Deposition", "round=2,dataset=Deposition"),
        ("model=runs:/abc/model", "model=runs:/abc/model"),  # '=' present: the value keeps its ':'
        ("training.epochs:3", "training.epochs=3"),
    ],
)
def test_colon_and_equals_forms_are_both_accepted(given, expected):
    assert normalize_param_items(given) == expected


def test_run_keeps_every_kedro_option():
    from kedro.framework.cli.project import run as kedro_run

    assert [p.name for p in run.params] == [p.name for p in kedro_run.params]
    assert run.callback is not kedro_run.callback


def test_log_records_are_one_plain_line_without_a_terminal():
    import io
    import logging

    from rich.logging import RichHandler

    from sewer_segmentation.hooks.logs import plain_handlers_without_terminal

    logger = logging.getLogger("test_plain_logs")
    logger.addHandler(RichHandler())
    stream = io.StringIO()  # not a terminal
    assert plain_handlers_without_terminal(logger, stream) == 1
    logger.warning("round_1 eval mean IoU %.3f " + "x" * 150, 0.5)
    out = stream.getvalue()
    assert out.count("\n") == 1 and "WARNING test_plain_logs: round_1 eval mean IoU 0.500 xxx" in out
    assert not any(isinstance(h, RichHandler) for h in logger.handlers)


def test_the_plain_console_handler_becomes_rich_only_on_a_terminal():
    import io
    import logging

    from kedro.logging import RichHandler

    from sewer_segmentation.hooks.logs import CONSOLE_HANDLER, rich_console_on_terminal

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream, rich in ((io.StringIO(), False), (Terminal(), True)):
        logger = logging.getLogger(f"test_console_{rich}")
        console = logging.StreamHandler(stream)
        console.name = CONSOLE_HANDLER  # as conf/logging.yml names it
        logger.addHandler(console)
        assert rich_console_on_terminal(logger, stream) == int(rich)
        assert [isinstance(h, RichHandler) for h in logger.handlers] == [rich]


def test_unknown_params_are_named_with_the_nearest_keys():
    from sewer_segmentation.hooks.parameters import _dotted_keys, unknown_parameter_keys

    known = _dotted_keys({"data_engineering": {"on_bad_file": "skip"}, "model": {"args": {}}, "baseline_training": {"training": {"steps": 1}}})
    runtime = {"on_bad_file": "error", "dataset": "x", "model": {"args": {"decoder_attention_type": "scse"}},
               "baseline_training": {"training": {"stepz": 3, "steps": 4}}}  # fmt: skip
    assert unknown_parameter_keys(runtime, known) == {
        "baseline_training.training.stepz": ["baseline_training.training.steps", "baseline_training.training", "baseline_training"],
        "on_bad_file": ["data_engineering.on_bad_file"],
    }


def test_round_overrides_take_training_keys_and_catalog_keys_are_redirected():
    from sewer_segmentation.hooks.parameters import _dotted_keys, unknown_parameter_keys

    known = _dotted_keys({"baseline_training": {"training": {"steps": 1}}, "final_training": {"training_overrides": {}},
                          "predict": {"model": "best"}})  # fmt: skip
    assert unknown_parameter_keys({"final_training": {"training_overrides": {"steps": 5}}}, known) == {}
    assert "final_training.training_overrides.stpes" in unknown_parameter_keys({"final_training": {"training_overrides": {"stpes": 5}}}, known)
    assert unknown_parameter_keys({"predict": {"model": 2}}, known) == {"predict.model": ["predict_model"]}


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--pipeline=refin"], "no pipeline named 'refin' (did you mean refine?); the pipelines are: __default__, baseline,"),
     (["--pipelines=baseline,nope"], "no pipeline named 'nope'"),
     (["--env=nope", "--pipeline=data_engineering"], "--env nope: there is no folder conf/nope; the environments are: base,")],
)  # fmt: skip
def test_an_unknown_pipeline_or_environment_is_one_line_and_starts_nothing(kedro_project, args, message):
    from tests.conftest import run_cli

    result = run_cli(kedro_project, *args)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert message in result.output
    assert not (kedro_project / "mlruns").exists() and not (kedro_project / "mlflow.db").exists()
