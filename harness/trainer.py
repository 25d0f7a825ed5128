"""The trainer: one plain function, the same code path on every device.

`train(cfg, train_set, eval_sets)` trains the configured model with SGD + StepLR on tensors that
already live on the training device: a seeded device-side `randperm` shuffles, slices make the
batches, augmentation runs on the whole batch, and loss/accuracy accumulate on the device and are
read once per epoch. After each epoch `on_epoch(epoch, metrics)` is called; the sweep uses it to
report and prune (by raising), tracking to log. This module imports neither optuna nor mlflow.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from harness.augment import random_affine
from harness.config import TrainConfig
from harness.data import Split
from harness.device import resolve_device
from model_zoo import create_model

OnEpoch = Callable[[int, dict[str, float]], None]
DIVERGENCE_CHECK = 50  # steps between checks of the running loss for NaN/inf


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite; `epoch` is where it was seen."""

    def __init__(self, epoch: int, loss: float):
        super().__init__(f"training diverged at epoch {epoch}: train loss {loss}")
        self.epoch, self.loss = epoch, loss


@dataclass
class TrainResult:
    """The trained model (on its device) and one metrics dict per finished epoch."""

    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    device: str = "cpu"

    def best(self, key: str) -> float:
        return max(h[key] for h in self.history)

    def final(self, key: str) -> float:
        return self.history[-1][key]


def build_model(cfg: TrainConfig, device: torch.device) -> nn.Module:
    torch.manual_seed(cfg.seed)  # same seed, same initial weights (and dropout masks on CPU)
    return create_model(cfg.model.name, dropout=cfg.model.dropout).to(device)


def build_optimizer(cfg: TrainConfig, model: nn.Module):
    o = cfg.optimizer
    opt = torch.optim.SGD(
        model.parameters(),
        lr=o.lr,
        momentum=o.momentum,
        weight_decay=o.weight_decay,
        nesterov=o.nesterov,
    )
    if cfg.scheduler.name == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, cfg.scheduler.step_size, cfg.scheduler.gamma)
    else:
        sched = None
    return opt, sched


@torch.no_grad()
def evaluate(
    model: nn.Module, data: Split, batch_size: int = 2000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean NLL loss and accuracy (%) of `model` on `data`, as device tensors (no host sync)."""
    was_training = model.training
    model.eval()
    loss = torch.zeros((), device=data.x.device)
    correct = torch.zeros((), device=data.x.device, dtype=torch.long)
    for i in range(0, len(data), batch_size):
        out = model(data.x[i : i + batch_size])
        y = data.y[i : i + batch_size]
        loss += F.nll_loss(out, y, reduction="sum")
        correct += (out.argmax(1) == y).sum()
    model.train(was_training)
    n = len(data)
    return loss / n, correct.float() * (100.0 / n)  # float32: Apple's MPS has no float64


def train(
    cfg: TrainConfig,
    train_set: Split,
    eval_sets: dict[str, Split],
    on_epoch: OnEpoch | None = None,
    device: torch.device | str | None = None,
) -> TrainResult:
    """Train `cfg.model` on `train_set` for `cfg.epochs`, evaluating on every `eval_sets` entry per epoch.

    Args:
        cfg: the validated config; only it decides what is trained.
        train_set, eval_sets: data; moved to the device once if they are not there already.
        on_epoch: called after each epoch with the epoch (1-based) and its metrics: `train_loss`,
            `train_acc` (running, in train mode, as the seed's progress bar), `<name>_loss` and
            `<name>_acc` for each eval set, `lr` (used in that epoch), `epoch_seconds`. It may
            raise to stop training (the exception propagates).
        device: overrides `cfg.device`.
    Returns:
        A `TrainResult` with the model and the per-epoch history.
    Raises:
        DivergedError: the training loss became NaN or infinite (checked every
            `DIVERGENCE_CHECK` steps and at the end of each epoch).
    """
    dev = resolve_device(str(device)) if device is not None else resolve_device(cfg.device)
    train_set = train_set.to(dev)
    eval_sets = {k: v.to(dev) for k, v in eval_sets.items()}
    model = build_model(cfg, dev)
    opt, sched = build_optimizer(cfg, model)
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)
    aug = cfg.augment
    n, bs = len(train_set), cfg.batch_size
    steps = math.ceil(n / bs)
    result = TrainResult(model=model, device=str(dev))

    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        lr = opt.param_groups[0]["lr"]
        model.train()
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        perm = torch.randperm(n, device=dev, generator=gen)
        bar = tqdm(
            range(steps),
            desc=f"epoch {epoch}/{cfg.epochs}",
            leave=False,
            disable=not cfg.progress,
            mininterval=0.5,
        )
        for i in bar:
            idx = perm[i * bs : (i + 1) * bs]
            x, y = train_set.x[idx], train_set.y[idx]
            if aug.enabled:
                x = random_affine(x, aug.degrees, aug.translate, aug.scale, gen)
            out = model(x)
            loss = F.nll_loss(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(y)
            correct += (out.argmax(1) == y).sum()
            # A NaN/inf loss poisons the running sum for good, so checking it every
            # DIVERGENCE_CHECK steps stops a diverged run early for one host read per check.
            if (i + 1) % DIVERGENCE_CHECK == 0 and not torch.isfinite(loss_sum).item():
                raise DivergedError(epoch, float(loss_sum))
        if sched is not None:
            sched.step()
        evals = {k: evaluate(model, v, cfg.eval_batch_size) for k, v in eval_sets.items()}
        values = torch.stack(
            [loss_sum / n, correct.float() * (100.0 / n)]
            + [t for pair in evals.values() for t in pair]
        ).tolist()  # the one host read of the epoch
        metrics = {"train_loss": values[0], "train_acc": values[1]}
        for j, k in enumerate(evals):
            metrics[f"{k}_loss"], metrics[f"{k}_acc"] = values[2 + 2 * j], values[3 + 2 * j]
        metrics["lr"] = lr
        metrics["epoch_seconds"] = time.perf_counter() - t0
        bar.close()
        if not math.isfinite(metrics["train_loss"]):
            raise DivergedError(epoch, metrics["train_loss"])
        result.history.append(metrics)
        if cfg.progress:
            tqdm.write(
                f"epoch {epoch:>3}  " + "  ".join(f"{k}={v:.4f}" for k, v in metrics.items())
            )
        if on_epoch is not None:
            on_epoch(epoch, metrics)
    return result
