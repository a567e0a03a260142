"""``precision: auto`` for training, chosen by measurement.

Which precision trains fastest depends on the device, the model, the batch and the frame size: bf16 is
about twice as fast as fp32 on CPUs with AMX/AVX512-BF16, several times slower on CPUs without them, and
on a GPU it can lose to fp32 at a batch of 2 yet win at a batch of 8. So ``auto`` times a few real
training steps of each candidate at the configured model, batch and size on the actual device (two
interleaved rounds, best of each), keeps the fastest only if it beats fp32 by ``MARGIN``, and caches the
answer per device and configuration (``$SEWER_SEGMENTATION_CACHE`` or ``~/.cache/sewer_segmentation``).
fp32 is always a candidate, so the choice is never slower than fp32 (within the measurement's noise).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from sewer_segmentation.modelling.models import build_model

logger = logging.getLogger(__name__)

MARGIN = 0.05  # a candidate must train at least 5 % faster than fp32 to replace it


def cache_file() -> Path:
    root = os.environ.get("SEWER_SEGMENTATION_CACHE") or Path.home() / ".cache" / "sewer_segmentation"
    return Path(root) / "precision.json"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()}:{os.cpu_count()}:{_cpu_flags()}"


def _cpu_flags() -> str:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    return ",".join(f for f in ("avx512_bf16", "amx_bf16", "avx512f", "avx2") if f" {f}" in flags)


def candidates(device: torch.device, cpu_bf16: bool) -> list[str]:
    """fp32 always; bf16-mixed where the hardware has it (on other CPUs it is emulated and far slower);
    16-mixed on GPUs without bf16."""
    if device.type == "cuda":
        return ["32", "bf16-mixed"] if torch.cuda.is_bf16_supported() else ["32", "16-mixed"]
    return ["32", "bf16-mixed"] if cpu_bf16 else ["32"]


def _config_key(device: torch.device, model_config: dict, image_size: dict, batch_size: int, channels_last: bool) -> str:
    text = json.dumps([device_name(device), model_config, image_size, batch_size, channels_last, torch.__version__], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def time_training_steps(model_config: dict, image_size: dict, batch_size: int, precision: str, device: torch.device,
                        channels_last: bool, steps: int = 2) -> float:  # fmt: skip
    """Images per second of ``steps`` forward/backward/AdamW steps on random data (after one warm-up)."""
    torch.manual_seed(0)
    model = build_model({**model_config, "encoder_weights": None}).to(device).train()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    x = torch.randn(batch_size, 3, image_size["height"], image_size["width"], device=device).to(memory_format=memory_format)
    y = (torch.rand(batch_size, 1, image_size["height"], image_size["width"], device=device) > 0.5).float()
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)

    def step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps * batch_size / (time.perf_counter() - start)


def choose(rates: dict[str, float]) -> str:
    """The fastest candidate, if it beats fp32 by ``MARGIN``; else fp32."""
    best = max(rates, key=rates.get)
    return best if best != "32" and rates[best] >= (1 + MARGIN) * rates["32"] else "32"


def probe_precision(
    model_config: dict, image_size: dict, batch_size: int, device: torch.device, channels_last: bool, cpu_bf16: bool,
    timer: Callable[..., float] = time_training_steps,
) -> str:  # fmt: skip
    """The precision ``auto`` trains with on ``device``: cached, or measured now and cached."""
    options = candidates(device, cpu_bf16)
    if options == ["32"]:
        return "32"
    key = _config_key(device, model_config, image_size, batch_size, channels_last)
    path = cache_file()
    cache = json.loads(path.read_text()) if path.is_file() else {}
    if key in cache:
        logger.info("precision auto: %s (measured earlier on this device: %s images/s)", cache[key]["choice"], cache[key]["rates"])
        return cache[key]["choice"]
    rates: dict[str, float] = {}
    for _ in range(2):  # two interleaved rounds: a slow moment of the machine does not decide alone
        for precision in options:
            try:
                rate = timer(model_config, image_size, batch_size, precision, device, channels_last)
            except Exception as exc:  # noqa: BLE001 - a candidate that cannot run is simply not chosen
                logger.info("precision auto: %s cannot train here (%s)", precision, exc)
                rate = 0.0
            rates[precision] = max(rates.get(precision, 0.0), rate)
    if rates.get("32", 0.0) <= 0:
        return "32"
    choice = choose(rates)
    logger.info("precision auto: %s (measured images/s: %s; needs %.0f%% over fp32)", choice,
                ", ".join(f"{k} {v:.1f}" for k, v in rates.items()), 100 * MARGIN)  # fmt: skip
    cache[key] = {"choice": choice, "rates": {k: round(v, 2) for k, v in rates.items()}, "device": device_name(device)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cache, indent=2))
    os.replace(tmp, path)
    return choice
