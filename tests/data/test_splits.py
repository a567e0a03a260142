import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sewer_segmentation.data.splits import BASELINE_TRAIN, BASELINE_VAL, EVAL, split_clusters

cluster_sizes = st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=80)


def as_series(sizes):
    return pd.Series(sizes, index=[10 * i + 3 for i in range(len(sizes))])


@settings(max_examples=60, deadline=None)
@given(cluster_sizes, st.integers(0, 10**6), st.floats(0.1, 0.9), st.floats(0.05, 0.5))
def test_every_cluster_goes_to_exactly_one_split_deterministically(sizes, seed, eval_fraction, val_fraction):
    series = as_series(sizes)
    first = split_clusters(series, eval_fraction, val_fraction, seed)
    assert first == split_clusters(series, eval_fraction, val_fraction, seed)
    assert set(first) == set(series.index)  # a cluster id maps to one split, so it never spans two
    assert set(first.values()) <= {BASELINE_TRAIN, BASELINE_VAL, EVAL}
    if len(sizes) >= 3:
        assert set(first.values()) == {BASELINE_TRAIN, BASELINE_VAL, EVAL}


@settings(max_examples=40, deadline=None)
@given(st.integers(40, 200), st.integers(0, 1000))
def test_fractions_are_respected_for_singleton_clusters(n, seed):
    split = split_clusters(as_series([1] * n), 0.5, 0.15, seed)
    counts = pd.Series(split).value_counts()
    assert abs(counts[EVAL] - n / 2) <= 1
    assert abs(counts[BASELINE_VAL] - 0.15 * (n - counts[EVAL])) <= 1


def test_order_of_input_does_not_matter():
    series = as_series([1, 2, 1, 3, 1, 1, 2])
    assert split_clusters(series, 0.5, 0.2, 7) == split_clusters(series.iloc[::-1], 0.5, 0.2, 7)


def test_invalid_fractions_are_rejected():
    with pytest.raises(ValueError, match="strictly between"):
        split_clusters(as_series([1, 1]), 1.0, 0.1, 0)


def test_split_folders_must_match_the_manifest_and_never_hold_eval():
    from sewer_segmentation.data.splits import check_no_held_out_images, check_splits_agree
    from sewer_segmentation.errors import BadInputError

    manifest = pd.DataFrame({"image_id": ["001", "002", "003", "004"], "split": ["baseline_train", "baseline_val", "eval", "weak"]})
    check_splits_agree(manifest, {"baseline_train": {"001": 1}, "eval": ["003"], "weak": ["004"]})
    # a weak folder from an earlier run that still holds an image the manifest now puts in eval
    with pytest.raises(BadInputError, match=r"weak: 1 images the manifest does not put there \(003\).*data_engineering"):
        check_splits_agree(manifest, {"weak": ["004", "003"]})
    with pytest.raises(BadInputError, match="1 eval images \\(003\\)"):
        check_no_held_out_images(manifest, ["004", "003"], "the refined masks")
    check_no_held_out_images(manifest, ["004"], "the refined masks")


# -- stable splits ---------------------------------------------------------------------------------------


def _frames(labelled: int, weak: int, start: int = 0) -> pd.DataFrame:
    ids = [f"f{k:03d}" for k in range(start, start + labelled + weak)]
    return pd.DataFrame({"image_id": ids, "cluster_id": range(start, start + len(ids)), "has_polygon": [k < labelled for k in range(len(ids))]})


def _manifest(frames: pd.DataFrame, splits: pd.Series, split, seed: int) -> pd.DataFrame:
    from sewer_segmentation.data.splits import split_settings  # noqa: PLC0415

    return frames.assign(split=splits.to_numpy(), drawn_with=split_settings(split, seed))


def test_added_and_corrected_labels_never_move_an_eval_frame_and_corrected_ones_never_enter_eval():
    from sewer_segmentation.data.config import SplitParams  # noqa: PLC0415
    from sewer_segmentation.data.splits import draw_splits  # noqa: PLC0415

    split = SplitParams(eval_fraction=0.5, val_fraction=0.25, weak_holdout_fraction=0.15)
    first = _frames(labelled=40, weak=60)
    before = _manifest(first, draw_splits(first, split, 3), split, 3)
    was = before.set_index("image_id").split
    # 10 box-only frames corrected in a review (now hand-labelled), and 30 frames never seen before
    weak_ids = list(was[was == "weak"].index[:10])
    second = pd.concat([first.assign(has_polygon=first.has_polygon | first.image_id.isin(weak_ids)), _frames(30, 0, start=100)], ignore_index=True)
    now = pd.Series(draw_splits(second, split, 3, before).to_numpy(), index=second.image_id)
    assert all(now[i] == "eval" for i in was[was == "eval"].index)  # every old eval frame is still in eval
    assert all(now[i] in ("baseline_train", "baseline_val") for i in weak_ids)  # corrected frames: training side
    unchanged = [i for i in was.index if i not in weak_ids]
    assert (now[unchanged] == was[unchanged]).all()  # nothing else moved
    assert set(now[[f"f{k:03d}" for k in range(100, 130)]]) <= {"baseline_train", "baseline_val", "eval"}
    # other settings draw anew; so does split.stable: false
    assert not draw_splits(first, split, 4, before).equals(draw_splits(first, split, 3, before))
    assert draw_splits(second, split.model_copy(update={"stable": False}), 3, before).equals(draw_splits(second, split, 3))


def test_a_cluster_that_joins_an_eval_frame_with_a_trained_one_stays_in_eval(caplog):
    import logging  # noqa: PLC0415

    from sewer_segmentation.data.splits import keep_splits  # noqa: PLC0415

    kept = pd.DataFrame({"image_id": ["a", "b", "c"], "cluster_id": [1, 1, 2], "has_polygon": [True, True, True],
                         "drawn": ["baseline_train", "baseline_train", "eval"]})  # fmt: skip
    with caplog.at_level(logging.WARNING):
        out = keep_splits(kept, {"a": "eval", "b": "baseline_train", "c": "baseline_val"})
    assert list(out) == ["eval", "eval", "baseline_val"]
    assert "join eval: b" in caplog.text
    # an eval frame whose label is gone (its region row was dropped) is held out, never trained on
    box_only = pd.DataFrame({"image_id": ["d"], "cluster_id": [3], "has_polygon": [False], "drawn": ["weak"]})
    assert list(keep_splits(box_only, {"d": "eval"})) == ["weak_holdout"]


def test_frames_of_one_pipe_run_never_straddle_training_and_eval():
    from sewer_segmentation.data.config import SplitParams  # noqa: PLC0415
    from sewer_segmentation.data.splits import draw_splits  # noqa: PLC0415

    # 12 pipe runs of 8 frames; each frame its own near-duplicate cluster; 5 of every 8 hand-labelled
    names = [f"pipe{chr(65 + run)}_{k:03d}.png" for run in range(12) for k in range(8)]
    frames = pd.DataFrame({"image_id": [n[:-4] for n in names], "source_file": names, "cluster_id": range(len(names)),
                           "has_polygon": [k % 8 < 5 for k in range(len(names))]})  # fmt: skip
    split = SplitParams(eval_fraction=0.5, val_fraction=0.25, weak_holdout_fraction=0.15, group_by=r"^(pipe[A-Z])_")
    drawn = frames.assign(split=draw_splits(frames, split, 1).to_numpy(), run=frames.source_file.str[:5])
    training = {"baseline_train", "baseline_val", "weak"}
    for run, rows in drawn.groupby("run"):
        splits = set(rows.split)
        assert not ("eval" in splits and splits & training), (run, splits)
    assert (drawn.split == "eval").any() and (drawn.split == "weak").any()
    # without the grouping, the rule splits each run's frames across eval and training
    loose = frames.assign(split=draw_splits(frames, split.model_copy(update={"group_by": None}), 1).to_numpy(), run=frames.source_file.str[:5])
    assert any("eval" in set(rows.split) and set(rows.split) & training for _, rows in loose.groupby("run"))


def test_a_group_by_that_is_no_regex_is_refused_in_one_line():
    from sewer_segmentation.data.config import SplitParams  # noqa: PLC0415
    from sewer_segmentation.params import problems_of  # noqa: PLC0415

    (line,) = problems_of("data_engineering.split", SplitParams, {"group_by": "pipe(["})
    assert line.startswith("data_engineering.split.group_by='pipe([': not a regular expression")


def test_frames_of_one_inspection_in_metadata_csv_never_straddle_training_and_eval():
    from sewer_segmentation.data.config import SplitParams  # noqa: PLC0415
    from sewer_segmentation.data.splits import draw_splits, metadata_groups  # noqa: PLC0415

    # file names say nothing of the inspection: only metadata.csv does (12 inspections of 8 frames, shuffled names)
    names = [f"img_{(37 * k) % 96:03d}.png" for k in range(96)]
    frames = pd.DataFrame({"image_id": [n[:-4] for n in names], "source_file": names, "cluster_id": range(96),
                           "has_polygon": [k % 8 < 5 for k in range(96)]})  # fmt: skip
    metadata = pd.DataFrame({"file": names, "inspection_id": [f"insp{k // 8}" for k in range(96)], "operator": "x"})
    split = SplitParams(eval_fraction=0.5, val_fraction=0.25, weak_holdout_fraction=0.15, group_by_column="inspection_id")
    groups = metadata_groups(metadata, split.group_by_column)
    drawn = frames.assign(split=draw_splits(frames, split, 1, groups=groups).to_numpy(), inspection=metadata.inspection_id)
    training = {"baseline_train", "baseline_val", "weak"}
    for inspection, rows in drawn.groupby("inspection"):
        assert not ("eval" in set(rows.split) and set(rows.split) & training), (inspection, set(rows.split))
    assert (drawn.split == "eval").any() and (drawn.split == "baseline_train").any()


def test_a_metadata_csv_that_cannot_group_is_named_with_its_problem():
    from sewer_segmentation.data.splits import metadata_groups  # noqa: PLC0415
    from sewer_segmentation.errors import BadInputError  # noqa: PLC0415

    assert metadata_groups(None, None) == {}  # no column asked: no file needed
    table = pd.DataFrame({"file": ["a.png", "b.png"], "inspection_id": ["i1", None]})
    assert metadata_groups(table, "inspection_id") == {"a.png": "i1"}  # a frame without a value has no group
    for metadata, message in ((None, "metadata.csv: no such file"), (table, "metadata.csv: no column 'pipe'"),
                              (pd.concat([table, table]), "metadata.csv: 2 files are listed more than once")):  # fmt: skip
        with pytest.raises(BadInputError, match=message):
            metadata_groups(metadata, "pipe" if metadata is table else "inspection_id")
