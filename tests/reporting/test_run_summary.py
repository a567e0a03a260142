"""The summary that ends every run (run_summary.py) and the plain log lines (hooks.ShortLinesFormatter)."""

import io
import logging

from sewer_segmentation.hooks.logs import MAX_LOG_LINE, ShortLinesFormatter, shorten_line
from sewer_segmentation.reporting.run_summary import below_baseline_lines, next_commands, output_folders, stage_line, summary_lines


def test_outputs_are_listed_by_folder_and_reports_by_name(tmp_path):
    paths = [str(tmp_path / p) for p in (
        "data/03_primary/ds/eval/images", "data/03_primary/ds/split_manifest.csv", "data/06_models/ds/baseline",
        "data/06_models/ds/round_1", "data/08_reporting/ds/rounds.md", "data/08_reporting/ds/rounds.png",
        "data/08_reporting/ds/stages_gallery.png",
    )]  # fmt: skip
    folders, reports, galleries = output_folders(paths, tmp_path)
    assert folders == ["data/03_primary/ds/", "data/06_models/ds/baseline", "data/06_models/ds/round_1", "data/08_reporting/ds/"]
    assert reports == ["data/08_reporting/ds/rounds.md"] and galleries == ["data/08_reporting/ds/stages_gallery.png"]


def test_a_stage_says_its_score_and_whether_it_helped():
    metrics = {"metrics": {"model": {"polygons": {"mean_iou": 0.7051}}, "box_mask": {"polygons": {"mean_iou": 0.5}}}}
    assert stage_line("baseline", metrics) == "baseline: eval mean IoU 0.705 (box masks 0.500)"
    worse = {**metrics, "improved_on_validation": False, "kept_initial_weights": True, "refinement": {"method": "grabcut"}}
    assert stage_line("round_2", worse).endswith("DID NOT improve (validation; its starting weights were handed on); refinement grabcut")
    dip = {**metrics, "improved_on_validation": False, "guard_difference": -0.012, "selection_signal": "combined"}
    assert stage_line("round_2", dip).endswith("SCORED BELOW ITS START (combined -0.012; handed on as within the noise: compare eval)")


def test_a_round_below_the_baseline_on_eval_is_said_in_the_summary():
    def stage(iou):
        return {"metrics": {"model": {"polygons": {"mean_iou": iou}}}}

    both = {"baseline": stage(0.750), "round_1": stage(0.739)}
    lines = summary_lines(["__default__"], "d", 1.0, ([], [], []), both, None, None, 1)
    flag = next(i for i, line in enumerate(lines) if "WORSE THAN THE BASELINE" in line)
    assert [line.strip() for line in lines[flag : flag + 2]] == [
        "round_1 IS WORSE THAN THE BASELINE ON EVAL: 0.739 vs 0.750",
        "it was chosen on validation and the weak_holdout boxes; rounds.md compares every stage; "
        "`kedro run --pipeline=predict --params=predict_model=baseline` predicts with the baseline"]
    assert all(len(line) <= MAX_LOG_LINE for line in lines)  # no line of the summary is cut in the log
    # a round run alone is compared with the saved baseline; a better round, or no baseline, says nothing
    assert below_baseline_lines({"round_2": stage(0.70)}, stage(0.72))[0].startswith("round_2 IS WORSE THAN THE BASELINE ON EVAL: 0.700 vs 0.720")
    assert below_baseline_lines({"round_2": stage(0.73)}, stage(0.72)) == [] and below_baseline_lines({"round_2": stage(0.1)}, None) == []


def test_a_drop_on_eval_comes_with_the_noise_of_the_eval_images():
    def stage(per_image):
        return {"metrics": {"model": {"polygons": {"mean_iou": sum(per_image.values()) / len(per_image)}}}, "eval_iou_per_image": per_image}

    base = stage({"a": 0.6, "b": 0.7, "c": 0.8, "d": 0.5})
    noisy = stage({"a": 0.5, "b": 0.75, "c": 0.7, "d": 0.55})  # differences -0.1, +0.05, -0.1, +0.05: mean -0.025, se 0.043
    line = below_baseline_lines({"round_1": noisy}, base)[0]
    assert line.endswith("0.625 vs 0.650 (-0.025 ± 0.043 over 4 eval images: within 2 standard errors)")
    steady = stage({"a": 0.55, "b": 0.64, "c": 0.75, "d": 0.46})  # every image about 0.05 lower
    assert "over 4 eval images: beyond 2 standard errors" in below_baseline_lines({"round_1": steady}, base)[0]
    from sewer_segmentation.reporting.reports import regression_warnings

    warned = regression_warnings({"baseline": base, "round_1": steady}, ["baseline", "round_1"])
    assert any("**round_1 is worse than the baseline on eval**: mean IoU 0.600 vs 0.650 (-0.050 ± 0.004 over 4 eval images" in w for w in warned)


def test_the_next_command_follows_what_ran():
    assert next_commands(["__default__"], 1, False)[0] == "kedro run --pipeline=refine --params=round:2"
    assert next_commands(["refine"], 3, False)[0] == "kedro run --pipeline=refine --params=round:4"
    assert next_commands(["baseline"], 1, False)[0] == "kedro run --pipeline=refine --params=round:1"
    assert next_commands(["data_engineering"], 1, False)[0] == "kedro run --pipeline=baseline"
    assert next_commands(["refine"], 2, True) == ["fix the error above, then run the same command again (finished outputs are kept)"]
    lines = summary_lines(["refine"], "ds", 12.4, ([], [], []), {}, "abc", "exp", 2, failed=True)
    assert lines[0] == "Run summary: pipeline refine, dataset ds, FAILED after 12 s" and "  MLflow: run abc in experiment exp" in lines


def test_log_lines_are_cut_at_the_limit_with_a_marker():
    long = "Running node: x([" + ";".join(f"input_{i}" for i in range(100)) + "])"
    short = shorten_line(long)
    assert len(short) <= MAX_LOG_LINE and short.endswith(f"(+{len(long) - short.index(' ... (+')} characters)")
    assert shorten_line("short") == "short"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ShortLinesFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("test_short_lines")
    logger.addHandler(handler)
    logger.warning("first line\n" + "y" * 1000)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "WARNING first line" and len(lines[1]) <= MAX_LOG_LINE and lines[1].startswith("yyy")
