import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sewer_segmentation.data.dedupe import (
    bits_to_words,
    close_pairs,
    cluster_hashes,
    hex_to_words,
    perceptual_hash,
    words_to_hex,
)
from sewer_segmentation.data.synthetic import SyntheticConfig, draw_frame


def test_crafted_near_duplicates_cluster_and_distinct_frames_do_not():
    config = SyntheticConfig(width=320, height=240, seed=11)
    a, b = draw_frame(config, 0).image, draw_frame(config, 1).image
    _, jpeg = cv2.imencode(".jpg", a, [cv2.IMWRITE_JPEG_QUALITY, 40])
    reencoded = cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED)
    resized = cv2.resize(a, (310, 232), interpolation=cv2.INTER_AREA)
    shifted = np.roll(a, 2, axis=1)
    hashes = np.stack([perceptual_hash(x) for x in (a, reencoded, resized, shifted, b)])
    labels = cluster_hashes(hashes, max_distance=6)
    assert labels[0] == labels[1] == labels[2] == labels[3]
    assert labels[4] != labels[0]


def test_clusters_are_transitive_chains():
    # 0 ~ 1 (2 bits), 1 ~ 2 (2 bits), 0 vs 2 is 4 bits: with threshold 2 all three are one cluster.
    hashes = np.array([[0b0000], [0b0011], [0b1111], [2**63 + 2**62 + 2**61]], dtype=np.uint64)
    assert cluster_hashes(hashes, 2).tolist() == [0, 0, 0, 1]


def test_hex_round_trip_and_padding():
    bits = np.zeros(100, bool)
    bits[[0, 99]] = True
    words = bits_to_words(bits)
    assert words.shape == (2,)
    assert words_to_hex(words) == "8000000000000000" + "0000000010000000"
    assert (hex_to_words(words_to_hex(words)) == words).all()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=2**64 - 1), min_size=1, max_size=60),
    st.integers(min_value=0, max_value=64),
    st.integers(min_value=1, max_value=17),
)
def test_close_pairs_match_brute_force_for_any_block_size(values, threshold, block):
    # Hashes drawn near each other so that some pairs are close.
    base = values[0]
    hashes = np.array([[v if i % 2 else base ^ (v & 0xFF)] for i, v in enumerate(values)], dtype=np.uint64)
    i, j = close_pairs(hashes, threshold, block_size=block)
    found = set(zip(i.tolist(), j.tolist(), strict=True))
    expected = {
        (a, b)
        for a in range(len(hashes))
        for b in range(a + 1, len(hashes))
        if bin(int(hashes[a, 0]) ^ int(hashes[b, 0])).count("1") <= threshold
    }
    assert found == expected


# --------------------------------------------------------------------------------------------------
# The aligned detector (dedupe.method: aligned)
# --------------------------------------------------------------------------------------------------


def _copies(image, rng):
    """A mirrored, a cropped (15 %, at a corner), a zoomed (1.1), a shifted (5 %) and two re-exposed copies."""
    h, w = image.shape[:2]
    ch, cw = round(h * 0.85), round(w * 0.85)
    zh, zw = round(h / 1.1), round(w / 1.1)
    shift = np.float32([[1, 0, round(0.05 * w)], [0, 1, -round(0.05 * h)]])
    return {
        "mirror": image[:, ::-1].copy(),
        "crop15": image[h - ch :, :cw].copy(),
        "zoom1.1": cv2.resize(image[(h - zh) // 2 : (h - zh) // 2 + zh, (w - zw) // 2 : (w - zw) // 2 + zw], (w, h)),
        "shift5": cv2.warpAffine(image, shift, (w, h), borderMode=cv2.BORDER_REPLICATE),
        "brighter": np.clip(image.astype(np.float32) * 1.2, 0, 255).astype(np.uint8),
        "darker": (image.astype(np.float32) * 0.8).astype(np.uint8),
    }


def test_aligned_copies_join_their_original_and_distinct_frames_stay_apart():
    from sewer_segmentation.data.dedupe import cluster_signatures, frame_signature

    rng = np.random.default_rng(0)
    originals = [draw_frame(SyntheticConfig(width=352, height=288, seed=200 + k), 0).image for k in range(6)]
    frames, source = list(originals), list(range(len(originals)))
    for k, image in enumerate(originals):
        for copy in _copies(image, rng).values():
            frames.append(copy)
            source.append(k)
    labels = cluster_signatures([frame_signature(f, "aligned") for f in frames], "aligned")
    assert [labels[i] for i in range(len(frames))] == [labels[s] for s in source]  # every copy with its original
    assert len(set(labels[: len(originals)])) == len(originals)  # no two distinct frames merged
    # the perceptual hash the project used before misses the mirror, the crop and the zoom
    hashed = cluster_signatures([frame_signature(f, "phash") for f in frames], "phash")
    missed = {name for (name, _), i in zip(_copies(originals[0], rng).items(), range(6, 12), strict=True) if hashed[i] != hashed[0]}
    assert {"mirror", "crop15"} <= missed


def test_frames_of_one_pipe_a_metre_apart_are_not_duplicates_but_a_crop_of_one_is():
    from sewer_segmentation.data.aligned_duplicates import near_duplicate_pairs, thumbnail
    from sewer_segmentation.data.pipe_runs import pipe_run_frame

    run = [pipe_run_frame(7, 30.0 + metre, 352, 288) for metre in range(6)]
    crop = run[2][20:270, 10:320]
    pairs = near_duplicate_pairs([thumbnail(f) for f in [*run, crop]])
    assert [(i, j) for i, j, _ in pairs] == [(2, 6)]


def test_the_graph_index_finds_what_the_exact_index_finds(monkeypatch):
    from sewer_segmentation.data import aligned_duplicates
    from sewer_segmentation.data.aligned_duplicates import near_duplicate_pairs, thumbnail

    originals = [draw_frame(SyntheticConfig(width=160, height=128, seed=300 + k), 0).image for k in range(12)]
    thumbs = [thumbnail(f) for f in originals] + [thumbnail(f[:, ::-1]) for f in originals] + [thumbnail(f[10:, 12:]) for f in originals]
    exact = near_duplicate_pairs(thumbs)
    monkeypatch.setattr(aligned_duplicates, "EXACT_UP_TO", 4)
    approximate = near_duplicate_pairs(thumbs)
    assert {(i, j) for i, j, _ in exact} == {(i, j) for i, j, _ in approximate}
    assert {(k, k + 12) for k in range(12)} | {(k, k + 24) for k in range(12)} <= {(i, j) for i, j, _ in exact}


def test_alignment_scores_one_for_the_same_frame_and_less_for_another():
    from sewer_segmentation.data.aligned_duplicates import CENTRAL, alignment_score, thumbnail

    a, b = (thumbnail(draw_frame(SyntheticConfig(width=160, height=128, seed=s), 0).image) for s in (1, 2))
    assert alignment_score(a, a, (CENTRAL, 0.0, 0.0), False) == pytest.approx(1.0, abs=1e-4)
    assert alignment_score(a, a[:, ::-1].copy(), (CENTRAL, 0.0, 0.0), True) == pytest.approx(1.0, abs=1e-4)
    assert alignment_score(a, b, (CENTRAL, 0.0, 0.0), False) < 0.8


def test_frames_that_change_split_are_listed():
    import pandas as pd

    from sewer_segmentation.data.splits import split_changes

    before = pd.DataFrame({"image_id": ["a", "b", "c"], "split": ["eval", "weak", "baseline_train"]})
    after = pd.DataFrame({"image_id": ["a", "b", "d"], "split": ["eval", "baseline_val", "weak"]})
    changes = split_changes(before, after)
    assert changes.to_dict("records") == [{"image_id": "b", "before": "weak", "after": "baseline_val"},
                                          {"image_id": "c", "before": "baseline_train", "after": "(not kept)"},
                                          {"image_id": "d", "before": "(not kept)", "after": "weak"}]  # fmt: skip
    assert split_changes(None, after).empty


def test_exposure_shots_of_a_labelled_frame_form_one_cluster_that_group_keeps_whole_and_drop_keeps_once():
    import pandas as pd  # noqa: PLC0415

    from sewer_segmentation.data.dedupe import cluster_signatures, frame_signature, keep_one_per_cluster  # noqa: PLC0415
    from sewer_segmentation.data.synthetic import SyntheticConfig, draw_frame, exposure_copies  # noqa: PLC0415

    config = SyntheticConfig(exposure_copies=3)
    sources = [draw_frame(config, i) for i in range(4)]
    frames = sources + exposure_copies(config, sources[:2])  # frames 0 and 1 shot at 3 more exposures each
    clusters = cluster_signatures([frame_signature(f.image, "aligned") for f in frames], "aligned")
    by_name = dict(zip((f.name for f in frames), clusters, strict=True))
    for source in sources[:2]:
        assert {by_name[f"{source.name}_exposure{k}"] for k in (1, 2, 3)} == {by_name[source.name]}
    assert len(set(clusters)) == 4  # and the four scenes stay apart
    inventory = pd.DataFrame({"image_id": [f.name for f in frames], "cluster_id": clusters, "has_polygon": True, "width": 320, "height": 240})
    dropped, table = keep_one_per_cluster(inventory, drop_duplicates=True)
    grouped, _ = keep_one_per_cluster(inventory, drop_duplicates=False)
    assert int(dropped.kept.sum()) == 4 and bool(grouped.kept.all())
    assert sorted(table["size"]) == [4, 4] and set(dropped.drop_reason[~dropped.kept].str[:17]) == {"near-duplicate of"}
