"""How close real training comes to the model's raw step rate.

    python bench/train_overhead.py [--precision 32] [--steps 30] [--height 128 --width 160 --batch 8]

raw: forward + backward + AdamW on random tensors already in memory, no framework around it
(``precision.time_training_steps``). real: the project's ``train_model`` (Lightning, the step sampler,
albumentations, the history and best-weights callbacks) on cached synthetic samples, timed from its
second step to its last (setup, the first step and the final validation excluded, as the raw rate
excludes its warm-up). Target: real >= 0.85 x raw on a CPU. The last line is `ratio=<real/raw>`.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from sewer_segmentation.data.samples import Sample, resize_image, resize_mask
from sewer_segmentation.data.synthetic import SyntheticConfig, draw_frame
from sewer_segmentation.modelling.precision import time_training_steps
from sewer_segmentation.modelling.training import train_model


class StepTimer(Callback):
    def __init__(self):
        self.start = self.end = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == 1 and self.start is None:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.end = time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precision", default="32")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--encoder", default="resnet18")
    args = parser.parse_args()
    size = {"height": args.height, "width": args.width}
    model = {"architecture": "UNetAttention", "encoder_name": args.encoder, "encoder_weights": None,
             "args": {"decoder_channels": [64, 32, 16, 16, 16], "gate_dropout": 0.2}}  # fmt: skip
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    raw = max(time_training_steps(model, size, args.batch, args.precision, device, True, steps=args.steps // 2) for _ in range(2))

    frames = [draw_frame(SyntheticConfig(), i) for i in range(32)]
    samples = [Sample(f.name, resize_image(f.image, args.height, args.width), resize_mask(f.truth.astype(np.float32) / 255, args.height, args.width))
               for f in frames]  # fmt: skip
    training = {"steps": args.steps + 1, "batch_size": args.batch, "learning_rate": 1e-3, "loss": {"name": "tversky"},
                "validations": 1, "precision": args.precision, "progress_bar": False, "checkpoint_every_seconds": 3600,
                "augmentation": {"hflip": 0.5, "rotate_limit": 10, "shift_limit": 0.05, "scale_limit": 0.1,
                                 "brightness_contrast": 0.2, "noise_p": 0.2}}  # fmt: skip
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as root:
        train_model(samples[:24], samples[24:], model, training, size, 0, "bench", root, extra_callbacks=[timer])
    real = args.steps * args.batch / (timer.end - timer.start)
    print(f"{device.type}, {args.height}x{args.width}, batch {args.batch}, precision {args.precision}, {args.encoder}")
    print(f"raw step rate {raw:.1f} images/s; train_model {real:.1f} images/s")
    print(f"ratio={real / raw:.2f}")


if __name__ == "__main__":
    main()
