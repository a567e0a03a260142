import pandas as pd

from sewer_segmentation.pipelines.final_training.nodes import assemble_round_metrics, build_rounds_report


def stage(model_iou, box_iou=0.5):
    def block(v):
        return {"polygons": {"mean_iou": v, "mean_dice": v + 0.05, "pooled_iou": v + 0.01}}

    return {"metrics": {"model": block(model_iou), "box_mask": block(box_iou), "all_background": block(0.0)}, "model_version": "v"}


def round_metrics(number, model_iou, oracle=None, improved=True, guard=None):
    quality = {"used": "threshold@0.3", "box_masks_vs_ground_truth": {"mean_iou": 0.04}, "methods": {
        "threshold@0.3": {"selection_vs_polygons": 0.8, "weak_vs_ground_truth": {"mean_iou": 0.75}},
        "box": {"selection_vs_polygons": 0.5},
    }}  # fmt: skip
    oracle_result = {"enabled": True, "eval": {"mean_iou": oracle}} if oracle else {"enabled": False}
    report = {**stage(model_iou), "improved_on_validation": improved, "kept_initial_weights": not improved,
              "refined_from": "baseline", "best_validation_score": 0.5, **(guard or {})}  # fmt: skip
    return assemble_round_metrics(report, quality, pd.DataFrame(columns=["image_id", "error"]), oracle_result, number)


def test_report_shows_every_round_with_deltas_quality_and_oracle():
    on_disk = {"round_1": lambda: round_metrics(1, 0.65), "round_10": lambda: round_metrics(10, 0.5), "baseline": lambda: {}}
    md, chart = build_rounds_report(round_metrics(2, 0.70, oracle=0.8), stage(0.60), on_disk)
    lines = md.splitlines()
    rows = [line for line in lines if line.startswith("| round_") or line.startswith("| baseline")]
    assert [r.split("|")[1].strip() for r in rows[:4]] == ["baseline", "round_1", "round_2", "round_10"]
    round_2 = next(r for r in rows if r.startswith("| round_2 | 0.700"))
    assert "+0.100" in round_2 and "+0.050" in round_2  # vs baseline, vs round 1
    assert "| round_2 | threshold@0.3 | 0.800 | 0.750 | **yes** |" in md
    assert "| round_2 | box masks (no refinement) | | 0.040 | |" in md
    assert "| round_2 | 0.800 | 87.5% |" in md  # oracle ratio
    assert "box mask 0.500" in md
    assert "## Warnings" in md and "round_10 is worse than the baseline on eval" in md
    assert chart.ndim == 3 and chart.shape[2] == 3


def test_a_round_that_handed_on_its_start_or_scored_below_it_is_flagged_at_the_top():
    refused = {"guard_difference": -0.08, "guard_standard_error": 0.02, "guard_reason": "worse than the start by more than the tolerance"}
    md, _ = build_rounds_report(round_metrics(1, 0.60, improved=False, guard=refused), stage(0.60), {})
    head = md.split("| stage |")[0]
    assert "**round_1 handed on its start (baseline)**: its trained weights were worse than the start by more than the tolerance" in head
    assert "| -0.080 ± 0.020 | **its start** |" in md
    dip = {"guard_difference": -0.01, "guard_standard_error": 0.02}
    md, _ = build_rounds_report(round_metrics(1, 0.62, improved=False, guard=dip) | {"kept_initial_weights": False}, stage(0.60), {})
    assert "**round_1 scored below its start (baseline)** on validation (-0.010 ± 0.020) and was handed on" in md.split("| stage |")[0]
    assert "| -0.010 ± 0.020 | trained weights |" in md
    good, _ = build_rounds_report(round_metrics(1, 0.65, guard={"guard_difference": 0.03, "guard_standard_error": 0.01}), stage(0.60), {})
    assert "## Warnings" not in good and "| +0.030 ± 0.010 | trained weights |" in good


def test_both_signals_are_shown_for_every_stage_with_the_one_that_compares_them():
    def signals(report, validation, agreement, score):
        return {**report, "best_validation_score": validation, "selection_signal": "combined", "selection_score": score,
                "weak_holdout": {"frames": 17, "box_agreement": agreement, "box_coverage": 0.9, "outside_share": 0.1}}  # fmt: skip

    round_1 = signals(round_metrics(1, 0.62, improved=False), 0.58, 0.70, 0.64)
    md, _ = build_rounds_report(round_1, signals(stage(0.60), 0.55, 0.80, 0.675), {})
    assert "(combined: the mean of the validation score on baseline_val and the box agreement on 17 weak_holdout frames;" in md
    assert "| baseline | 0.600 | 0.650 | 0.610 | 0.550 | n/a | 0.800 | 0.675 |" in md
    assert "| round_1 | 0.620 | 0.670 | 0.630 | 0.580 | n/a | 0.700 | 0.640 |  | **its start** |" in md
    assert "**round_1 handed on its start (baseline)**: its trained weights were not better (combined)" in md
    from sewer_segmentation.reporting.reports import rounds_series, summarize_rounds

    lines = rounds_series(summarize_rounds({"baseline": signals(stage(0.60), 0.55, 0.80, 0.675), "round_1": round_1}))
    assert lines["validation score"] == ([0, 1], [0.55, 0.58]) and lines["box agreement (weak_holdout)"] == ([0, 1], [0.80, 0.70])


def test_box_agreements_counted_up_to_different_reaches_are_flagged():
    def holdout(report, reach=None):
        agreement = {"frames": 8, "box_agreement": 0.7, "box_coverage": 0.9, "outside_share": 0.1}
        return {**report, "weak_holdout": agreement if reach is None else {**agreement, "reach": reach}}

    # a baseline saved before reaches were recorded (counted to 1) and a round counted to 0.93
    md, _ = build_rounds_report(holdout(round_metrics(1, 0.65), 0.93), holdout(stage(0.60)), {})
    assert "**The box agreements were counted up to different reaches** (baseline 1.000, round_1 0.930)" in md.split("| stage |")[0]
    same, _ = build_rounds_report(holdout(round_metrics(1, 0.65), 0.93), holdout(stage(0.60), 0.9301), {})
    assert "different reaches" not in same
    # a stage without weak_holdout frames has no agreement to compare
    empty = {**stage(0.60), "weak_holdout": {"frames": 0, "box_agreement": None, "per_frame": {}, "reach": 1.0}}
    for baseline in (empty, stage(0.60)):
        md, _ = build_rounds_report(holdout(round_metrics(1, 0.65), 0.93), baseline, {})
        assert "different reaches" not in md
