"""The trainer on a small subset of the real MNIST: it learns, it is deterministic, it reports."""

import math

import pytest

from harness.config import parse_overrides
from harness.data import subset
from harness.trainer import DivergedError, train

TIMING = {"epoch_seconds"}


def _cfg(experiments, *over, exp="s7_file3"):
    return experiments.resolve(exp, parse_overrides(["progress=false", "device=cpu", *over]))


def test_it_learns_and_reports_every_metric_each_epoch(experiments, small_data):
    tr, te = small_data
    seen = []
    result = train(
        _cfg(experiments, "epochs=3", exp="s7_file2"),
        tr,
        {"test": te},
        on_epoch=lambda e, m: seen.append((e, m)),
    )
    assert [e for e, _ in seen] == [1, 2, 3] and seen[-1][1] is result.history[-1]
    m = result.history[-1]
    assert set(m) == {"train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_seconds"}
    assert all(math.isfinite(v) for v in m.values())
    # chance is 10%; 48 steps on 2,000 images get well past it (how far depends on the thread
    # count's float rounding: 46-61% seen), and the training loss falls
    assert m["test_acc"] > 30.0
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert 0.0 <= m["train_acc"] <= 100.0 and m["lr"] == 0.1


def test_same_config_and_seed_give_identical_metrics_on_cpu(experiments, small_data):
    tr, te = small_data
    cfg = _cfg(experiments, "epochs=2")
    runs = [train(cfg, tr, {"test": te}).history for _ in range(2)]
    strip = [[{k: v for k, v in h.items() if k not in TIMING} for h in run] for run in runs]
    assert strip[0] == strip[1]
    other = train(_cfg(experiments, "epochs=2", "seed=2"), tr, {"test": te}).history
    assert other[-1]["train_loss"] != runs[0][-1]["train_loss"]


def test_step_lr_is_stepped_once_per_epoch(experiments, small_data):
    tr, te = subset(small_data[0], 256), subset(small_data[1], 128)
    cfg = _cfg(experiments, "epochs=3", "scheduler.step_size=1", "scheduler.gamma=0.5")
    lrs = [h["lr"] for h in train(cfg, tr, {"val": te}).history]
    assert lrs == pytest.approx([0.1, 0.05, 0.025])


def test_on_epoch_can_stop_training(experiments, small_data):
    tr, te = subset(small_data[0], 256), subset(small_data[1], 128)

    class Stop(Exception):
        pass

    def stop_after_two(epoch, _metrics):
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train(_cfg(experiments, "epochs=5"), tr, {"val": te}, on_epoch=stop_after_two)


def test_a_nan_loss_stops_training_with_diverged_error(experiments, small_data):
    tr, te = small_data
    seen = []
    with pytest.raises(DivergedError, match="diverged at epoch 1"):
        train(
            _cfg(experiments, "epochs=3", "optimizer.lr=10.0"),
            tr,
            {"val": te},
            on_epoch=lambda e, m: seen.append(e),
        )
    assert seen == []  # no epoch with a NaN loss is ever reported
