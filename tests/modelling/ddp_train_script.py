"""Run by tests/modelling/test_ddp.py in its own process: two CPU processes (gloo) train one model with DDP.

Each rank writes the sample indices its sampler gave it; the main process saves the model once.
"""

import json
import sys
from pathlib import Path

import numpy as np
from lightning.pytorch.callbacks import Callback

from sewer_segmentation.data.samples import Sample
from sewer_segmentation.datasets import SegmentationModelDataset
from sewer_segmentation.modelling.training import train_model


class RecordShards(Callback):
    def __init__(self, out: str):
        self.out = out

    def on_train_epoch_start(self, trainer, pl_module):
        indices = list(iter(trainer.train_dataloader.sampler))
        path = Path(self.out) / f"rank_{trainer.global_rank}_epoch_{trainer.current_epoch}.json"
        path.write_text(json.dumps({"world_size": trainer.world_size, "indices": [int(i) for i in indices]}))


def samples(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        target = np.zeros((64, 64), np.float32)
        target[10:30, 10:30] = 1
        out.append(Sample(f"s{i}", image, target))
    return out


def main(out: str) -> None:
    model = {"architecture": "Unet", "encoder_name": "resnet18", "encoder_weights": None,
             "args": {"decoder_channels": [16, 16, 8, 8, 8]}}  # fmt: skip
    training = {"epochs": 2, "batch_size": 2, "learning_rate": 0.01, "loss": {"name": "dice"}, "precision": "32",
                "accelerator": "cpu", "devices": 2, "strategy": "ddp", "progress_bar": False}  # fmt: skip
    trained = train_model(samples(12, 0), samples(4, 1), model, training, {"height": 64, "width": 64}, 0, "ddp",
                          Path(out) / "checkpoints", extra_callbacks=[RecordShards(out)])  # fmt: skip
    SegmentationModelDataset(path=str(Path(out) / "models")).save(trained)
    (Path(out) / "history.json").write_text(json.dumps(trained.metadata["history"]))


if __name__ == "__main__":
    main(sys.argv[1])
