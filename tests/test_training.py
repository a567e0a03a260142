import logging

import numpy as np
import pytest
from lightning.pytorch.callbacks import Callback

from sewer_segmentation.data import Sample
from sewer_segmentation.errors import ConfigurationError
from sewer_segmentation.training import predict_probabilities, resolve_precision, train_model

MODEL = {"architecture": "UNetAttention", "encoder_name": "resnet18", "encoder_weights": None,
         "args": {"decoder_channels": [16, 16, 8, 8, 8]}}  # fmt: skip
SIZE = {"height": 64, "width": 64}


def training(**overrides):
    base = {"epochs": 3, "batch_size": 4, "learning_rate": 0.01, "weight_decay": 0.0, "loss": {"name": "dice"},
            "scoring_per_epoch": 2, "save_by_metric": "val_iou", "precision": "32", "accelerator": "cpu",
            "devices": 1, "progress_bar": False, "augmentation": {"hflip": 0.5}}  # fmt: skip
    return {**base, **overrides}


def samples(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        image = rng.integers(0, 60, (64, 64, 3), dtype=np.uint8)
        target = np.zeros((64, 64), np.float32)
        x0, y0 = rng.integers(5, 35, 2)
        image[y0 : y0 + 20, x0 : x0 + 20] = 220  # a bright square is the "defect"
        target[y0 : y0 + 20, x0 : x0 + 20] = 1
        out.append(Sample(f"s{seed}_{i}", image, target))
    return out


class StopAfterEpochs(Callback):
    def __init__(self, n):
        self.n = n

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 >= self.n:
            raise RuntimeError("simulated crash")


def test_training_keeps_the_best_validation_checkpoint_and_learns(tmp_path):
    trained = train_model(samples(8, 0), samples(4, 1), MODEL, training(epochs=4), SIZE, 0, "t", tmp_path)
    meta = trained.metadata
    assert meta["selected_by"] == "val_iou"
    val_scores = [r["val_iou"] for r in meta["history"]["val"]]
    assert len(val_scores) == 4 * 2  # two scorings per epoch
    assert meta["best_validation_score"] == pytest.approx(max(val_scores))
    assert not any(tmp_path.iterdir())  # finished runs leave no checkpoints behind
    probs = predict_probabilities(trained.model, [s.image for s in samples(2, 5)], MODEL, SIZE, precision="32", accelerator="cpu")
    assert probs[0].shape == (64, 64) and 0 <= probs[0].min() and probs[0].max() <= 1


def test_same_seed_same_model(tmp_path):
    a = train_model(samples(8, 0), samples(4, 1), MODEL, training(epochs=1), SIZE, 3, "a", tmp_path)
    b = train_model(samples(8, 0), samples(4, 1), MODEL, training(epochs=1), SIZE, 3, "a", tmp_path)
    for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        assert np.allclose(x.numpy(), y.numpy())


def test_an_interrupted_run_resumes_from_its_last_checkpoint(tmp_path, caplog):
    train, val = samples(8, 0), samples(4, 1)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_model(train, val, MODEL, training(epochs=4), SIZE, 0, "r", tmp_path, extra_callbacks=[StopAfterEpochs(2)])
    assert any(p.name == "last.ckpt" for p in tmp_path.rglob("*.ckpt"))
    with caplog.at_level(logging.INFO, logger="sewer_segmentation.training"):
        resumed = train_model(train, val, MODEL, training(epochs=4), SIZE, 0, "r", tmp_path)
    assert "resuming the interrupted run" in caplog.text
    epochs = {r["epoch"] for r in resumed.metadata["history"]["train"]}
    # Completed epochs are not trained again (the epoch in progress may restart); the run goes to the end.
    assert 0 not in epochs and max(epochs) == 3


def test_selection_on_an_eval_metric_is_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="validation metrics"):
        train_model(samples(4, 0), samples(2, 1), MODEL, training(save_by_metric="eval_iou"), SIZE, 0, "x", tmp_path)


def test_precision_resolution(monkeypatch):
    assert resolve_precision("32") == "32"
    assert resolve_precision("bf16-mixed") == "bf16-mixed"
    with pytest.raises(ConfigurationError):
        resolve_precision("fp8")
    monkeypatch.setattr("sewer_segmentation.training.cpu_has_fast_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16-mixed"
    monkeypatch.setattr("sewer_segmentation.training.cpu_has_fast_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "32"
