import itertools
import json
import logging

import numpy as np
import pytest
from lightning.pytorch.callbacks import Callback
from pydantic import ValidationError

from sewer_segmentation.data.samples import Sample
from sewer_segmentation.modelling.inference import predict_probabilities, resolve_precision
from sewer_segmentation.modelling.training import (
    StepSampler,
    lr_factor_fn,
    resolve_budget,
    train_model,
)
from sewer_segmentation.params import InferenceParams, TrainingParams

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


class CrashAfterSteps(Callback):
    def __init__(self, n):
        self.n = n

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.n:
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
    # it learns: the training loss of the last steps is well below the first step's
    losses = [r["train_loss"] for r in meta["history"]["train"]]
    assert np.mean(losses[-2:]) < 0.8 * losses[0], losses


def test_same_seed_same_model(tmp_path):
    a = train_model(samples(8, 0), samples(4, 1), MODEL, training(epochs=1), SIZE, 3, "a", tmp_path)
    b = train_model(samples(8, 0), samples(4, 1), MODEL, training(epochs=1), SIZE, 3, "a", tmp_path)
    for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True):
        assert np.allclose(x.numpy(), y.numpy())


def test_an_interrupted_run_resumes_from_its_last_checkpoint(tmp_path, caplog):
    train, val = samples(8, 0), samples(4, 1)
    config = training(epochs=None, steps=8, validations=8, checkpoint_every_seconds=0)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_model(train, val, MODEL, config, SIZE, 0, "r", tmp_path, extra_callbacks=[CrashAfterSteps(5)])
    assert any(p.name == "last.ckpt" for p in tmp_path.rglob("*.ckpt"))
    with caplog.at_level(logging.INFO, logger="sewer_segmentation.modelling.training"):
        resumed = train_model(train, val, MODEL, config, SIZE, 0, "r", tmp_path)
    assert "resuming the interrupted run" in caplog.text
    steps = [r["step"] for r in resumed.metadata["history"]["train"]]
    # Steps before the last checkpoint are not trained again; the run goes to the end of its budget.
    assert min(steps) >= 4 and max(steps) == 8
    assert resumed.metadata["best_validation_score"] is not None


def test_selection_on_an_eval_metric_is_refused_by_the_parameter_model():
    with pytest.raises(ValidationError, match="Input should be 'val_mean_iou'"):
        TrainingParams(save_by_metric="eval_iou")


def test_precision_resolution(monkeypatch):
    assert resolve_precision("32") == "32"
    assert resolve_precision("bf16-mixed") == "bf16-mixed"
    with pytest.raises(ValidationError, match="precision"):
        InferenceParams(precision="fp8")
    monkeypatch.setattr("sewer_segmentation.modelling.inference.cpu_has_fast_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16-mixed"
    monkeypatch.setattr("sewer_segmentation.modelling.inference.cpu_has_fast_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "32"


def test_budget_in_steps_or_epochs():
    assert resolve_budget({"steps": 250, "batch_size": 8, "validations": 10}, 17) == (250, 25)
    assert resolve_budget({"steps": 7, "batch_size": 8, "val_every_steps": 3}, 17) == (7, 3)
    # epochs win when set: 40 epochs of 17 images at batch 8 are 120 steps, one validation per epoch
    assert resolve_budget({"steps": 250, "epochs": 40, "batch_size": 8, "scoring_per_epoch": 1}, 17) == (120, 3)
    for bad in ({"steps": 0, "batch_size": 8}, {"steps": 5, "batch_size": 0}, {"epochs": 0, "batch_size": 8}, {"steps": 2.7}):
        with pytest.raises(ValidationError, match="greater than or equal to 1|valid integer"):
            TrainingParams.model_validate(bad)


def test_learning_rate_warms_up_then_decays_per_step():
    factor = lr_factor_fn(100, 10, cosine=True)
    values = [factor(s) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(values[10:]))  # monotone decay after the warm-up
    assert values[-1] < 0.05
    assert lr_factor_fn(100, 0, cosine=False)(50) == 1.0


def test_step_sampler_covers_the_data_evenly_or_by_weight():
    plain = list(StepSampler(5, 12, seed=1))
    assert len(plain) == 12 and sorted(plain[:5]) == [0, 1, 2, 3, 4] and sorted(plain[5:10]) == [0, 1, 2, 3, 4]
    assert plain == list(StepSampler(5, 12, seed=1))  # seeded
    # 90 weak images and 10 labelled ones; half of all draws go to the labelled ones
    weights = [0.5 / 90] * 90 + [0.5 / 10] * 10
    drawn = np.array(list(StepSampler(100, 4000, seed=0, weights=weights)))
    assert 0.46 < (drawn >= 90).mean() < 0.54


def test_training_runs_for_its_step_budget_and_validates_on_schedule(tmp_path):
    config = training(epochs=None, steps=6, validations=3)
    trained = train_model(samples(8, 0), samples(4, 1), MODEL, config, SIZE, 0, "s", tmp_path)
    history = trained.metadata["history"]
    assert [r["step"] for r in history["train"]] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in history["val"]] == [2, 4, 6]
    assert trained.metadata["steps"] == 6


def test_fine_tuning_keeps_the_starting_weights_unless_validation_improves(tmp_path):
    start = train_model(samples(8, 0), samples(4, 1), MODEL, training(epochs=None, steps=8), SIZE, 0, "a", tmp_path)
    initial = {k: v.clone() for k, v in start.model.state_dict().items()}
    # an improvement of more than 1.0 IoU is impossible: the starting weights must come back unchanged
    kept = train_model(samples(8, 2), samples(4, 1), MODEL, training(epochs=None, steps=4), SIZE, 0, "b", tmp_path,
                       initial_state=initial, min_improvement=1.0)  # fmt: skip
    assert kept.metadata["kept_initial_weights"] is True
    assert kept.metadata["best_validation_score"] == pytest.approx(kept.metadata["initial_validation_score"])
    for name, value in kept.model.state_dict().items():
        assert np.array_equal(value.numpy(), initial[name].numpy()), name
    # without a margin, any better validation replaces them (and the score never goes below the start)
    tuned = train_model(samples(8, 2), samples(4, 1), MODEL, training(epochs=None, steps=6, learning_rate=0.003), SIZE, 0, "c",
                        tmp_path, initial_state=initial)  # fmt: skip
    assert tuned.metadata["best_validation_score"] >= tuned.metadata["initial_validation_score"]


def test_a_learning_rate_that_is_not_a_finite_positive_number_is_refused_by_the_parameter_model():
    for bad in ("abc", float("inf"), float("nan"), 0, -1e-3):
        with pytest.raises(ValidationError, match="learning_rate"):
            TrainingParams(learning_rate=bad)


def test_precision_probe_picks_the_fastest_only_with_a_margin_and_caches(tmp_path, monkeypatch):
    import torch

    from sewer_segmentation.modelling import precision

    monkeypatch.setenv("SEWER_SEGMENTATION_CACHE", str(tmp_path))
    calls = []

    def timer(rates):
        def fake(model_config, image_size, batch_size, name, device, channels_last):
            calls.append(name)
            if rates[name] is None:
                raise RuntimeError("not supported here")
            return rates[name]

        return fake

    cpu = torch.device("cpu")
    # without native bf16 only fp32 is a candidate: nothing is measured
    assert precision.probe_precision(MODEL, SIZE, 4, cpu, True, cpu_bf16=False, timer=timer({"32": 1.0})) == "32" and calls == []
    # bf16 2x faster: chosen, measured in two interleaved rounds, then cached
    assert precision.probe_precision(MODEL, SIZE, 4, cpu, True, cpu_bf16=True, timer=timer({"32": 10.0, "bf16-mixed": 20.0})) == "bf16-mixed"
    assert calls == ["32", "bf16-mixed", "32", "bf16-mixed"]
    assert precision.probe_precision(MODEL, SIZE, 4, cpu, True, cpu_bf16=True, timer=timer({"32": 99.0, "bf16-mixed": 1.0})) == "bf16-mixed"
    assert len(calls) == 4  # the cached answer, no new measurement
    cached = json.loads((tmp_path / "precision.json").read_text())
    assert list(cached.values())[0]["rates"] == {"32": 10.0, "bf16-mixed": 20.0}
    # another batch size is another configuration; 3 % faster is within the margin: fp32 stays
    assert precision.probe_precision(MODEL, SIZE, 8, cpu, True, cpu_bf16=True, timer=timer({"32": 10.0, "bf16-mixed": 10.3})) == "32"
    # a candidate that fails is never chosen
    assert precision.probe_precision(MODEL, SIZE, 2, cpu, True, cpu_bf16=True, timer=timer({"32": 10.0, "bf16-mixed": None})) == "32"


def test_precision_probe_times_real_training_steps_after_a_warm_up(monkeypatch):
    import torch

    from sewer_segmentation.modelling import precision as probe

    forwards, built = [], probe.build_model

    def counting_model(config):
        model = built(config)
        model.register_forward_hook(lambda *_: forwards.append(1))
        return model

    clock = iter([10.0, 12.0])  # the timed steps take 2 s on this clock
    monkeypatch.setattr(probe, "build_model", counting_model)
    monkeypatch.setattr(probe.time, "perf_counter", lambda: next(clock))
    rate = probe.time_training_steps(MODEL, SIZE, 2, "32", torch.device("cpu"), channels_last=True, steps=3)
    assert len(forwards) == 1 + 3  # one warm-up step, then the three timed ones
    assert rate == pytest.approx(3 * 2 / 2.0)  # images per second: steps x batch / seconds


class _Validated:
    """What BestWeights reads of a trainer and a module after one validation."""

    def __init__(self, score: float, step: int):
        import torch

        self.callback_metrics, self.sanity_checking, self.global_step = {"val_mean_iou": score}, False, step
        self.model = torch.nn.Linear(1, 1, bias=False)
        self.model.weight.data.fill_(score)


@pytest.mark.parametrize("scores", [[0.45, 0.55, 0.59], [0.2, 0.63, 0.3], [0.605]])
def test_a_round_that_starts_above_the_box_masks_never_hands_on_weights_below_them(scores):
    import torch

    from sewer_segmentation.modelling.training import BestWeights

    boxes, start = 0.5, 0.6  # validation scores of the box masks and of the model the round starts from
    best = BestWeights("val_mean_iou", "max", {"weight": torch.tensor([[start]])}, start, min_improvement=0.01)
    for step, score in enumerate(scores, 1):
        validated = _Validated(score, step)
        best.on_validation_end(validated, validated)
    handed_on = float(best.best_state["weight"])
    assert handed_on >= boxes and handed_on == pytest.approx(best.best_score)
    assert handed_on == pytest.approx(max(scores) if max(scores) > start + 0.01 else start)


def test_keep_last_returns_the_last_step_weights(tmp_path):
    from sewer_segmentation.data.samples import normalization_for
    from sewer_segmentation.modelling.training import validation_score

    val = samples(4, 1)
    last = train_model(samples(8, 0), val, MODEL, training(epochs=None, steps=4, validations=2), SIZE, 0, "l", tmp_path, keep_last=True)
    assert last.metadata["selected_by"] == "last" and last.metadata["best_step"] is None
    history = last.metadata["history"]["val"]
    assert [r["step"] for r in history] == [2, 4]
    # the returned weights score what the validation after the last step measured
    score = validation_score(last.model, val, *normalization_for(MODEL), "val_iou")
    assert score == pytest.approx(history[-1]["val_iou"], abs=1e-4)


def test_a_diverged_validation_is_never_kept_and_nan_weights_are_never_handed_on():
    import torch

    from sewer_segmentation.errors import TrainingDivergedError
    from sewer_segmentation.modelling.training import BestWeights, check_finite_weights

    best = BestWeights("val_mean_iou", "max")
    for step, score in enumerate([float("nan"), 0.3, float("nan"), 0.2], 1):
        validated = _Validated(score, step)
        best.on_validation_end(validated, validated)
    assert best.best_score == pytest.approx(0.3) and best.best_step == 2
    model = torch.nn.Linear(2, 1)
    check_finite_weights(model, "baseline")  # finite: nothing to say
    model.weight.data[0, 0] = float("nan")
    with pytest.raises(TrainingDivergedError, match="baseline: training diverged, the weights hold NaN or inf \\(weight\\)"):
        check_finite_weights(model, "baseline")


def test_a_truncated_resume_checkpoint_is_moved_aside_and_training_starts_over(tmp_path, caplog):
    train, val = samples(8, 0), samples(4, 1)
    config = training(epochs=None, steps=6, validations=3, checkpoint_every_seconds=0)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_model(train, val, MODEL, config, SIZE, 0, "r", tmp_path, extra_callbacks=[CrashAfterSteps(4)])
    last = next(tmp_path.rglob("last.ckpt"))
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 3])  # a disk that filled up mid-write
    with caplog.at_level(logging.WARNING, logger="sewer_segmentation.modelling.training"):
        again = train_model(train, val, MODEL, config, SIZE, 0, "r", tmp_path)
    assert "the resume checkpoint" in caplog.text and "cannot be read" in caplog.text and "training starts over" in caplog.text
    steps = [r["step"] for r in again.metadata["history"]["train"]]
    assert min(steps) <= 1 and max(steps) == 6  # the whole budget, from the first step
    assert [p.name.split(".unreadable-")[0] for p in tmp_path.glob("*.unreadable-*")] == [f"{last.parent.name}-last.ckpt"]


def test_each_validation_line_says_the_pace_and_the_time_left():
    from sewer_segmentation.modelling.training import pace_text  # noqa: PLC0415

    assert pace_text(50, 20.0, 200, 8) == ", 20.0 images/s, about 1 min 20 s left"  # 2.5 steps/s: 200 steps in 80 s
    assert pace_text(10, 4.0, 5, None) == ", 2.50 steps/s, about 2 s left"
    assert pace_text(0, 0.0, 100, 8) == ""  # nothing trained yet in this process (a resumed run starts counting anew)
