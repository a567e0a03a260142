"""Weigh an ONNX export of the served network against the TorchScript one MLflow stores.

    python bench/onnx_export.py [--frames 50] [--height 128 --width 160]

Builds the default model (UNetAttention, resnet18, random weights: the sizes and times do not depend on
the values), traces it to TorchScript as ``tracking/registry.py`` does, exports it to ONNX
(``torch.onnx.export``, opset 17, dynamic batch), and prints per format: the file size, the time to load
it, the time per frame at batch 1 on this CPU (torch, onnxruntime), the largest difference between the
two outputs, and what must be installed to serve it. Needs ``pip install onnx onnxruntime`` (not project
dependencies: this bench is how the choice in docs/tracking.md was made).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from sewer_segmentation.modelling.models import build_model


def installed_megabytes(package: str) -> float:
    """The size of an installed package's folder (its own files, not its dependencies)."""
    import importlib  # noqa: PLC0415

    folder = Path(importlib.import_module(package).__file__).parent
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def per_frame_seconds(predict, frame: np.ndarray, repeats: int) -> float:
    predict(frame)  # warm-up: first-call allocations and graph optimisation
    start = time.perf_counter()
    for _ in range(repeats):
        predict(frame)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=160)
    args = parser.parse_args()
    import onnxruntime  # noqa: PLC0415 - only this bench needs it

    torch.manual_seed(0)
    network = build_model({"architecture": "UNetAttention", "encoder_name": "resnet18", "encoder_weights": None}).eval()
    example = torch.zeros(1, 3, args.height, args.width)
    frame = np.random.default_rng(0).standard_normal((1, 3, args.height, args.width)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted_file, onnx_file = Path(tmp) / "network.pt", Path(tmp) / "network.onnx"
        with torch.no_grad():
            torch.jit.trace(network, example, check_trace=False).save(str(scripted_file))
            torch.onnx.export(network, example, str(onnx_file), opset_version=17, input_names=["frames"], output_names=["logits"],
                              dynamic_axes={"frames": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)  # fmt: skip
        start = time.perf_counter()
        scripted = torch.jit.load(str(scripted_file)).eval()
        torch_load = time.perf_counter() - start
        start = time.perf_counter()
        session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
        onnx_load = time.perf_counter() - start

        def torch_predict(x):
            with torch.no_grad():
                return scripted(torch.from_numpy(x)).numpy()

        def onnx_predict(x):
            return session.run(None, {"frames": x})[0]

        difference = float(np.abs(torch_predict(frame) - onnx_predict(frame)).max())
        torch_needs, onnx_needs = (f"{name} ({installed_megabytes(name):.0f} MB installed here)" for name in ("torch", "onnxruntime"))
        rows = [("TorchScript (stored today)", scripted_file, torch_load, per_frame_seconds(torch_predict, frame, args.frames), torch_needs),
                ("ONNX", onnx_file, onnx_load, per_frame_seconds(onnx_predict, frame, args.frames), onnx_needs)]  # fmt: skip
        print(f"network: UNetAttention resnet18, input 1x3x{args.height}x{args.width}, {torch.get_num_threads()} threads")
        print("| format | file MB | load s | ms per frame (batch 1) | serving needs |")
        print("|---|---|---|---|---|")
        for name, path, load, seconds, needs in rows:
            print(f"| {name} | {path.stat().st_size / 1e6:.1f} | {load:.2f} | {seconds * 1000:.1f} | {needs} |")
        print(f"largest difference between the two outputs (logits): {difference:.2e}")


if __name__ == "__main__":
    main()
