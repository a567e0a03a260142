import pandas as pd

from sewer_segmentation.pipelines.final_training.nodes import assemble_round_metrics, build_rounds_report


def stage(model_iou, box_iou=0.5):
    def block(v):
        return {"polygons": {"mean_iou": v, "mean_dice": v + 0.05, "pooled_iou": v + 0.01}}

    return {"metrics": {"model": block(model_iou), "box_mask": block(box_iou), "all_background": block(0.0)}, "model_version": "v"}


def round_metrics(number, model_iou, oracle=None):
    quality = {"used": "grabcut", "methods": {
        "grabcut": {"eval_vs_polygons": {"mean_iou": 0.8}, "weak_vs_ground_truth": {"mean_iou": 0.75}},
        "box": {"eval_vs_polygons": {"mean_iou": 0.5}},
    }}  # fmt: skip
    oracle_result = {"enabled": True, "eval": {"mean_iou": oracle}} if oracle else {"enabled": False}
    return assemble_round_metrics({**stage(model_iou)}, quality, pd.DataFrame(columns=["image_id", "error"]), oracle_result, number)


def test_report_shows_every_round_with_deltas_quality_and_oracle():
    on_disk = {"round_1": lambda: round_metrics(1, 0.65), "round_10": lambda: round_metrics(10, 0.5), "baseline": lambda: {}}
    md, chart = build_rounds_report(round_metrics(2, 0.70, oracle=0.8), stage(0.60), on_disk)
    lines = md.splitlines()
    rows = [line for line in lines if line.startswith("| round_") or line.startswith("| baseline")]
    assert [r.split("|")[1].strip() for r in rows[:4]] == ["baseline", "round_1", "round_2", "round_10"]
    round_2 = next(r for r in rows if r.startswith("| round_2 | 0.700"))
    assert "+0.100" in round_2 and "+0.050" in round_2  # vs baseline, vs round 1
    assert "| round_2 | grabcut | 0.800 | 0.750 | yes |" in md
    assert "| round_2 | 0.800 | 87.5% |" in md  # oracle ratio
    assert "box mask 0.500" in md
    assert chart.ndim == 3 and chart.shape[2] == 3
