import cv2
import numpy as np
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
