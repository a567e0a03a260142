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
