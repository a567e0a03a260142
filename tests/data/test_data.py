import numpy as np
import pytest
from pydantic import ValidationError

from sewer_segmentation.data.samples import SegmentationDataset, build_augmentation, load_samples
from sewer_segmentation.errors import BadInputError
from sewer_segmentation.params import ImageSizeParams


@pytest.mark.parametrize("h, w", [(100, 160), (128, 150), (0, 64)])
def test_image_size_must_be_positive_multiples_of_32(h, w):
    with pytest.raises(ValidationError, match="multiple of 32|greater than 0"):
        ImageSizeParams(height=h, width=w)


def test_samples_are_decoded_once_and_resized():
    calls = {"n": 0}
    image = np.zeros((60, 90, 3), np.uint8)
    mask = np.zeros((60, 90), np.uint8)
    mask[:, :45] = 255

    def load_image():
        calls["n"] += 1
        return image

    samples = load_samples({"a": load_image}, {"a": lambda: mask}, 32, 64)
    assert calls["n"] == 1
    assert samples[0].image.shape == (32, 64, 3) and samples[0].target.shape == (32, 64)
    assert samples[0].target.max() == pytest.approx(1.0) and samples[0].target.dtype == np.float32
    dataset = SegmentationDataset(samples, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    for _ in range(3):
        dataset[0]
    assert calls["n"] == 1  # epochs never decode again


def test_missing_masks_are_named():
    with pytest.raises(BadInputError, match="b"):
        load_samples({"a": lambda: 0, "b": lambda: 0}, {"a": lambda: 0}, 32, 32)


def test_flip_moves_mask_and_weight_with_the_image():
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, :8] = 255
    target = np.zeros((32, 32), np.float32)
    target[:, :8] = 1
    samples = load_samples({"a": lambda: image}, {"a": lambda: (target * 255).astype(np.uint8)}, 32, 32)
    dataset = SegmentationDataset(samples, (0, 0, 0), (1, 1, 1), build_augmentation({"hflip": 1.0}))
    x, y, w = dataset[0]
    assert x.shape == (3, 32, 32) and y.shape == (1, 32, 32) and w.shape == (1, 32, 32)
    assert y[0, :, -8:].min() == 1 and y[0, :, :8].max() == 0
    assert x[0, :, -8:].min() == pytest.approx(1.0, abs=1e-3)  # image pixels moved the same way
    assert float(w.min()) == 1.0
