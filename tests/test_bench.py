"""The benches' own logic that writes into the docs: the README headline block of bench/end_to_end.py, the
merge and verdicts of bench/active_learning.py."""

import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def bench_module(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


def end_to_end():
    return bench_module("end_to_end")


def test_the_headline_shows_each_stage_as_mean_and_sd_over_the_seeds_and_names_its_command(tmp_path):
    bench = end_to_end()
    runs = [{"seed": s, "wall": w, "precision": "32", "box_masks": 0.5, "baseline": b, "round_1": r, "round_1_handed_on": h, "refinement": "grabcut"}
            for s, w, b, r, h in ((1, 190.0, 0.60, 0.65, "trained"), (2, 210.0, 0.70, 0.70, "start"))]  # fmt: skip
    block = bench.headline(runs, "python bench/end_to_end.py --seeds 1 2 --readme")
    assert "| baseline (hand-labelled frames only) | 0.650 ± 0.071 |" in block
    assert "| round 1 (refined masks and boxes; refinement chose grabcut) | 0.675 ± 0.035 |" in block
    assert "+0.050, +0.000" in block and "in 1 of 2 runs" in block and "190 to 210 s" in block
    assert "`python bench/end_to_end.py --seeds 1 2 --readme`" in block

    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{bench.README_START}\nold figures\n{bench.README_END}\n\nmore text\n")
    bench.rewrite_readme(block, readme)
    text = readme.read_text()
    assert "old figures" not in text and block in text and text.startswith("# title") and text.endswith("more text\n")


def test_active_learning_rows_of_separate_runs_merge_and_a_ranking_is_judged_against_random(capsys):
    bench = bench_module("active_learning")
    base = {"steps": 250, "budget": 12}
    rows = [{**base, "regime": "crack", "seed": s, "labelled": 0.1, "random": r, "diversity": d} for s, r, d in ((1, 0.10, 0.20), (2, 0.12, 0.22))]
    rows += [{**base, "regime": "crack", "seed": s, "labelled": 0.1, "typical": t} for s, t in ((1, 0.05), (2, 0.07))]  # a later --methods run
    merged = bench.merged(rows)
    assert len(merged) == 2 and all({"random", "diversity", "typical"} <= set(r) for r in merged)
    bench.summarize(rows)
    out = capsys.readouterr().out
    assert "crack diversity: +0.100 vs random over 2 seeds" in out and out.split("crack diversity")[1].split("\n")[0].endswith("beats random")
    assert out.split("crack typical")[1].split("\n")[0].endswith("loses to random")
    with pytest.raises(SystemExit, match="first model scored"):  # rows of two different first models never merge
        bench.merged([rows[0], {**rows[2], "labelled": 0.3}])


def test_active_learning_rows_of_other_training_settings_stay_apart(capsys):
    bench = bench_module("active_learning")
    base = {"steps": 250, "budget": 12, "regime": "hard", "seed": 1}
    rows = [{**base, "labelled": 0.40, "random": 0.50}, {**base, "labelled": 0.40, "random": 0.52, "seed": 2},  # rows of before the option
            {**base, "supervision": "boxes", "labelled": 0.55, "random": 0.60}, {**base, "supervision": "boxes", "labelled": 0.56, "random": 0.61, "seed": 2},
            {**base, "supervision": "labels", "weights": "last", "labelled": 0.45, "random": 0.58}]  # fmt: skip
    assert len(bench.merged(rows)) == 5  # other first models: not merged, and not refused as a clash either
    bench.summarize(rows)
    out = capsys.readouterr().out
    assert "| hard | 2 | 0.400 ± 0.000 | 0.510 ± 0.014 |" in out and "| hard, with the pool's boxes | 2 | 0.555 ± 0.007 | 0.605 ± 0.007 |" in out
    assert "| hard, last weights | 1 | 0.450 | 0.580 |" in out


def test_active_learning_rows_of_a_warmer_start_are_other_first_models(capsys):
    bench = bench_module("active_learning")
    base = {"steps": 250, "budget": 12, "regime": "crack", "weights": "last", "labelled": 0.1, "random": 0.2}
    rows = [{**base, "seed": 1}, {**base, "seed": 1, "first_labels": 12}, {**base, "seed": 1, "first_labels": 48, "labelled": 0.3}]
    assert len(bench.merged(rows)) == 2  # rows before the option are the 12 of the cold start; 48 is another first model
    bench.summarize(rows)
    out = capsys.readouterr().out
    assert "| crack, last weights | 1 | 0.100 | 0.200 |" in out and "| crack, last weights, 48 first labels | 1 | 0.300 | 0.200 |" in out


def test_a_larger_first_set_holds_the_smaller_one_and_keeps_eval_and_validation():
    bench = bench_module("active_learning")
    small, large = bench.split_frames("crack", 3), bench.split_frames("crack", 3, first_labels=30)
    names = {part: [f.name for _, f in frames] for part, frames in small.items()}
    larger = {part: [f.name for _, f in frames] for part, frames in large.items()}
    assert larger["eval"] == names["eval"] and larger["val"] == names["val"]  # the same yardstick for both starts
    assert larger["labelled"][: len(names["labelled"])] == names["labelled"] and len(larger["labelled"]) >= 30
    assert set(larger["pool"]) < set(names["pool"]) and set(larger["labelled"]).isdisjoint(larger["eval"] + larger["val"])


def test_the_cold_start_keeps_the_cache_key_of_the_runs_before_first_labels(tmp_path):
    import hashlib  # noqa: PLC0415
    import json  # noqa: PLC0415

    bench = bench_module("active_learning")
    model, training = {"arch": "unet", "encoder_weights": None}, {"steps": 250}
    before = hashlib.sha256(json.dumps([model, training, bench.SPLIT, bench.SIZE, "last"], sort_keys=True, default=str).encode()).hexdigest()[:12]
    assert bench.first_model_key(model, training, 12, None, keep_last=True) == before  # cached first models are read again
    assert bench.first_model_key(model, training, 48, None, keep_last=True) != before
    assert bench.first_model_key(model, training, 12, "boxes", keep_last=True) != before
    with pytest.raises(SystemExit, match="fewer than 12 clusters"):  # too many first labels: no pool to rank, said before any training
        bench.run_once("crack", 3, steps=1, budget=12, root=tmp_path, first_labels=280)


def test_active_learning_summarizes_several_rows_files_as_one_table(tmp_path, monkeypatch, capsys):
    import json  # noqa: PLC0415

    bench = bench_module("active_learning")
    base = {"steps": 250, "budget": 12, "regime": "crack", "weights": "last"}
    first = [{**base, "seed": s, "labelled": 0.1, "random": r} for s, r in ((1, 0.10), (2, 0.12))]
    later = [{**base, "seed": s, "labelled": 0.1, "typical": t} for s, t in ((1, 0.30), (2, 0.32))]  # a later --methods run, its own file
    for name, rows in (("a.jsonl", first), ("b.jsonl", later)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(sys, "argv", ["active_learning.py", "--summarize", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")])
    bench.main()
    out = capsys.readouterr().out
    assert "| crack, last weights | 2 | 0.100 ± 0.000 | 0.310 ± 0.014 | 0.110 ± 0.014 |" in out
    assert "crack, last weights typical: +0.200 vs random over 2 seeds" in out


def test_active_learning_measures_the_defects_of_the_frames_each_ranking_picked():
    from types import SimpleNamespace  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    bench = bench_module("active_learning")

    def frame(name, side):  # a square defect of side x side pixels (4 polygon corners), or none
        truth = np.zeros((40, 40), np.uint8)
        truth[5 : 5 + side, 5 : 5 + side] = 255
        return name, SimpleNamespace(name=name, truth=truth)

    def split(regime, seed, first_labels):  # a larger first set leaves a smaller pool
        return {"pool": [frame("big", 20), frame("small", 4), frame("none", 0), frame("mid", 10)][: 4 if first_labels == 12 else 2]}

    base = {"steps": 250, "budget": 2, "regime": "crack", "labelled": 0.1, "weights": "last"}
    rows = [{**base, "seed": 1, "random": 0.1, "random_frames": ["small", "none"], "uncertain_pixels": 0.2, "uncertain_pixels_frames": ["big", "mid"]},
            {**base, "seed": 2, "random": 0.1, "random_frames": ["big", "none"]}]  # fmt: skip
    header, _, line = bench.picked_defects(rows, split)
    assert header == "| regime | weak pool | uncertain_pixels | random |"
    # pool: (400 + 16 + 0 + 100) / 4 = 129 px, 3 corners; uncertain_pixels on seed 1 only: 250 px, 4 corners
    # random: seed 1 (16 + 0) / 2 = 8 px, seed 2 (400 + 0) / 2 = 200 px: 104 px; 2 corners per frame
    assert line == "| crack, last weights | 129 px, 3.0 corners | 250 px, 4.0 corners (1) | 104 px, 2.0 corners |"
    warmer = {**base, "seed": 1, "first_labels": 48, "random": 0.2, "random_frames": ["small"]}  # its pool: big and small only
    *_, cold, warm = bench.picked_defects([*rows, warmer], split)
    assert cold == line and warm == "| crack, last weights, 48 first labels | 208 px, 4.0 corners | – | 16 px, 4.0 corners |"


def test_random_of_the_same_cost_extends_random_frames_until_their_corners_reach_the_default_rankings():
    import pandas as pd  # noqa: PLC0415

    from sewer_segmentation.modelling.acquisition import rank_frames  # noqa: PLC0415

    bench = bench_module("active_learning")
    names = [f"f{i:02d}" for i in range(20)]
    scores = pd.DataFrame({"image_id": names, "cluster": names, "uncertainty": 0.5, "uncertain_pixels": [float(i) for i in range(20)]})
    corners = {name: (40 if i >= 17 else 4) for i, name in enumerate(names)}  # the three most uncertain frames are long cracks
    assert bench.DEFAULT == "uncertain_pixels"
    picked = bench.random_of_same_cost(scores, 3, seed=5, corners=corners)
    random_three = list(rank_frames(scores, 3, "random", seed=5).frame)
    assert picked[:3] == random_three  # random's own frames first: the arms are paired
    assert picked == list(rank_frames(scores, 20, "random", seed=5).frame)[: len(picked)]  # and then random's next ones
    total = sum(corners[n] for n in picked)
    assert total >= 120 > total - corners[picked[-1]] and len(set(picked)) == len(picked) > 3


def test_the_summary_judges_the_default_against_random_frames_of_its_cost(capsys):
    bench = bench_module("active_learning")
    base = {"steps": 250, "budget": 12, "regime": "hard", "labelled": 0.4, "weights": "last"}
    rows = [{**base, "seed": s, "random": 0.50, "uncertain_pixels": up, "random_same_cost": same, "random_same_cost_frames": ["a"] * n}
            for s, up, same, n in ((1, 0.60, 0.58, 15), (2, 0.62, 0.63, 17))]  # fmt: skip
    bench.summarize(rows)
    out = capsys.readouterr().out
    assert "+ random, as many corners as +12 uncertain_pixels" in out.split("\n")[0]
    line = out.split("hard, last weights uncertain_pixels: ")[2].split("\n")[0]  # the second verdict: against the same cost
    assert line.startswith("+0.005 vs random_same_cost over 2 seeds") and "16.0 frames" in line and line.endswith("ties random_same_cost")
    with pytest.raises(SystemExit, match="different rankings"):  # arms that matched two rankings' costs are not one column
        bench.summarize([rows[0], {**rows[1], "random_same_cost_of": "uncertain_clusters"}])


def test_active_learning_box_only_frames_train_through_their_boxes_alone():
    from types import SimpleNamespace

    import numpy as np

    bench = bench_module("active_learning")
    truth = np.zeros((8, 10), np.uint8)
    truth[2:4, 3:6] = 255
    frame = SimpleNamespace(name="f1", image=np.zeros((8, 10, 3), np.uint8), truth=truth, boxes=[(2, 1, 7, 5)])
    (sample,) = bench.box_samples([("cluster", frame)])
    assert sample.box_supervised and sample.boxes.tolist() == [[2.0, 1.0, 7.0, 5.0]]
    assert not sample.target.any() and not sample.weight.any()  # the true mask is never seen: only the box teaches


def test_checkpoint_noise_retrains_the_one_hand_label_row_that_names_the_picks():
    noise = bench_module("checkpoint_noise")
    base = {"regime": "hard", "seed": 4, "steps": 250, "budget": 12, "random_frames": ["a"], "uncertain_pixels_frames": ["b"]}
    labels, boxes = {**base, "weights": "validated"}, {**base, "supervision": "boxes", "random_frames": ["c"]}
    assert noise.picked_row([boxes, labels], "hard", 4, ["random", "uncertain_pixels"]) is labels  # box rows lack the box-only frames
    with pytest.raises(SystemExit, match="hard:4: 2 rows"):
        noise.picked_row([labels, {**labels, "weights": "last"}], "hard", 4, ["random"])
    with pytest.raises(SystemExit, match="hard:5: 0 rows"):
        noise.picked_row([labels], "hard", 5, ["random"])


def test_a_round_record_keeps_both_parts_of_the_selection_score_beside_eval():
    quality = bench_module("quality")
    report = {"metrics": {"model": {"polygons": {"mean_iou": 0.31}}}, "kept_initial_weights": True, "guard_difference": -0.04,
              "guard_standard_error": 0.01, "best_validation_score": 0.42, "weak_holdout": {"box_agreement": 0.55, "frames": 9}}  # fmt: skip
    assert quality.round_record(report) == {"eval": 0.31, "handed_on": "start", "vs_start": -0.04, "standard_error": 0.01,
                                            "validation": 0.42, "box_agreement": 0.55}  # fmt: skip
    assert quality.selection_parts({"best_validation_score": 0.4}) == {"validation": 0.4, "box_agreement": None}


def quality_row(regime: str, seed: int, baseline: float, both: float, ceiling: float) -> dict:
    """A row of ``bench/quality.py --variants both``: no refined, boxes or joint column."""
    rounds = [{"eval": both, "handed_on": "trained", "vs_start": 0.01}] * 2
    return {"regime": regime, "seed": seed, "box_masks": 0.3, "baseline": baseline, "both": both, "ceiling": ceiling, "rounds": {"both": rounds}}


def test_the_quality_tables_of_a_run_of_the_default_variant_alone_judge_its_acceptance(capsys):
    quality = bench_module("quality")
    rows = [quality_row("crack", 1, 0.10, 0.17, 0.20), quality_row("crack", 2, 0.12, 0.19, 0.22),
            quality_row("hard", 1, 0.50, 0.49, 0.50), quality_row("hard", 2, 0.52, 0.52, 0.52)]  # fmt: skip
    lines, closed, default_gain = quality.summarize(rows)
    assert lines[0] == "| regime | seeds | box_masks | baseline | both | ceiling |"  # the columns every row has
    assert set(closed) == {"both"} and closed["both"] == pytest.approx(0.07 / 0.10)  # hard has no clear gap: left out
    assert default_gain == pytest.approx({"crack": 0.07, "hard": -0.005})
    quality.print_tables(rows)
    out = capsys.readouterr().out
    assert "crack: final - baseline +0.070 (>= +0.05)" in out and "gain closed (both) +0.70 (>= 0.5)" in out and "| crack | both |" in out
    assert "refined" not in out and "joint" not in out
    full = {**rows[0], "refined": 0.15, "joint": 0.12}  # a row of a run of every way: its extra columns are named as left out
    assert "left out, not in every row: refined, joint" in quality.summarize([full, *rows[1:]])[0]


def test_round_moves_are_measured_from_what_the_round_before_handed_on(capsys):
    rounds_only = bench_module("rounds_only")
    row = {"regime": "crack", "seed": 1, "baseline": 0.10, "baseline_selection": {"validation": 0.20, "box_agreement": 0.30},
           "rounds": {"both": [{"eval": 0.15, "handed_on": "trained", "validation": 0.25, "box_agreement": 0.20},
                               {"eval": 0.15, "handed_on": "start", "validation": 0.25, "box_agreement": 0.20},
                               {"eval": 0.12, "handed_on": "trained", "validation": 0.30, "box_agreement": 0.10}]}}  # fmt: skip
    moves = rounds_only.round_moves(row, "both")
    assert [round(m["eval"], 3) for m in moves] == [0.05, 0.0, -0.03]  # round 3 against round 1, which round 2 handed on
    assert [round(m["box_agreement"], 3) for m in moves] == [-0.1, 0.0, -0.1]
    no_holdout = {**row, "rounds": {"both": [{"eval": 0.2, "handed_on": "trained", "validation": 0.3, "box_agreement": None}]}}
    assert rounds_only.round_moves(no_holdout, "both") == []
    rounds_only.signals([row, no_holdout, {"regime": "crack", "seed": 2, "baseline": 0.1, "rounds": {"both": []}}], "both")
    out = capsys.readouterr().out
    assert "1 of 3 rows left out" in out
    assert "2 rounds handed on their trained weights; moved the same way as eval: validation 1, box_agreement 1, combined 1" in out
    assert "handed on while eval fell by more than 0.01: 1; crack seed 1 round 3 (-0.030)" in out


def test_compare_pairs_runs_of_two_variants_and_sums_each_regime(capsys):
    rounds_only = bench_module("rounds_only")

    def row(regime, seed, baseline, final, variant):
        return {"regime": regime, "seed": seed, "baseline": baseline, "rounds": {variant: [{"eval": final}]}}

    new = [row("crack", 1, 0.10, 0.16, "both"), row("crack", 2, 0.20, 0.22, "both"), row("hard", 1, 0.5, 0.48, "both")]
    rounds_only.compare(new, [row("crack", 1, 0.10, 0.13, "boxes")], "both", "boxes")
    out = capsys.readouterr().out
    assert "| crack | 1 | 0.100 / 0.100 | 0.160 / 0.130 | +0.060 | +0.030 |" in out
    assert "crack: new final − baseline +0.040 ± 0.028 over 2 runs, worst +0.020" in out
    assert "hard: new final − baseline -0.020 ± 0.000 over 1 runs, worst -0.020" in out
