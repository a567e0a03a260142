import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from sewer_segmentation.errors import BadInputError, MissingArtifactError
from sewer_segmentation.params import ShardParams
from sewer_segmentation.pipelines.mask_refinement.nodes import merge_refined_shards, shard_of


@given(st.sets(st.text(min_size=1, max_size=6), max_size=40), st.integers(1, 7))
def test_shards_are_disjoint_and_cover_everything(ids, count):
    parts = [shard_of(list(ids), ShardParams(index=i, count=count)) for i in range(count)]
    assert sorted(sum(parts, [])) == sorted(ids)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_a_shard_index_outside_its_count_is_refused_by_the_parameter_model():
    with pytest.raises(ValidationError, match="0..count-1"):
        ShardParams(index=2, count=2)


def shard(name, ids):
    return {f"{name}/{kind}/{i}": np.full((2, 2), 7, np.uint8) for i in ids for kind in ("masks", "weights")}


def test_merge_joins_every_shard_once_and_ignores_other_counts():
    shards = {**shard("0-of-2", ["a", "c"]), **shard("1-of-2", ["b"]), **shard("0-of-3", ["zzz"])}
    failures = {"1-of-2": lambda: pd.DataFrame([{"image_id": "d", "error": "boom"}]), "0-of-3": lambda: pd.DataFrame([{"image_id": "x", "error": "old"}])}
    merged, table = merge_refined_shards(shards, failures, 2)
    assert merged.ids() == ["a", "b", "c"] and sorted(merged.weights) == ["a", "b", "c"]
    assert merged.mask("b").tolist() == [[7, 7], [7, 7]]
    assert table.image_id.tolist() == ["d"]


def test_mixed_or_half_written_shards_are_refused_naming_the_images():
    twice = {**shard("0-of-2", ["a", "b"]), **shard("1-of-2", ["b"])}
    with pytest.raises(BadInputError, match="b appear in two shards"):
        merge_refined_shards(twice, {}, 2)
    half = {**shard("0-of-2", ["a"]), **shard("1-of-2", ["b"]), "1-of-2/masks/c": np.zeros((2, 2), np.uint8)}
    with pytest.raises(BadInputError, match="refined-mask shard 1-of-2: c lack a mask or a weight map"):
        merge_refined_shards(half, {}, 2)


def test_a_missing_shard_names_the_command_that_makes_it():
    with pytest.raises(MissingArtifactError, match=r"1-of-2 are missing.*shard.index=1,mask_refinement.shard.count=2"):
        merge_refined_shards(shard("0-of-2", ["a"]), {}, 2)
