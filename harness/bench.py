"""`make bench`: epoch time of the seed's input pipeline against ours, interleaved, over rounds.

Pipelines, each one epoch at batch 128 with augmentation, then one test evaluation, from a fresh
model:
- the seed's, as its notebooks ran it: per-image torchvision RandomAffine in a Dataset, a
  DataLoader with 0, 1 or all-core workers (pin_memory on CUDA) - three settings;
- ours: `harness.trainer.train` (data on the device, batch augmentation, no workers).
Every round runs each pipeline once, in an order rotated from round to round, so a slow spell of
a shared machine falls on all of them. Reported: each pipeline's median and spread (min, max)
over the rounds. The baseline is the seed setting with the lowest median; the ratio is ours'
median over the baseline's. Writes reports/bench.json. A benchmark, not a test.
"""

import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from harness.config import Experiments
from harness.data import MEAN, STD, ensure_mnist, load_split
from harness.device import resolve_device
from harness.trainer import build_model, build_optimizer, train

ROUNDS = 3


def _seed_epoch(cfg, device: torch.device, workers: int, root: str) -> float:
    """One epoch of the seed's own loop (train, then test), timed end to end."""
    aug = cfg.augment
    train_tf = transforms.Compose(
        [
            transforms.RandomAffine(
                aug.degrees, translate=(aug.translate, aug.translate), scale=aug.scale
            ),
            transforms.ToTensor(),
            transforms.Normalize((MEAN,), (STD,)),
        ]
    )
    test_tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])
    kw = {"num_workers": workers, "pin_memory": device.type == "cuda"} if workers else {}
    train_loader = DataLoader(
        datasets.MNIST(root, train=True, transform=train_tf),
        batch_size=cfg.batch_size,
        shuffle=True,
        **kw,
    )
    test_loader = DataLoader(
        datasets.MNIST(root, train=False, transform=test_tf),
        batch_size=cfg.batch_size,
        shuffle=False,
        **kw,
    )
    model = build_model(cfg, device)
    opt, _ = build_optimizer(cfg, model)
    t0 = time.perf_counter()
    model.train()
    correct = 0
    for x, y in train_loader:
        x, y = x.to(device), y.to(device)
        opt.zero_grad()
        out = model(x)
        loss = F.nll_loss(out, y)
        loss.backward()
        opt.step()
        correct += out.argmax(1).eq(y).sum().item()  # the seed read its counters every step
    model.eval()
    with torch.no_grad():
        for x, y in test_loader:
            x, y = x.to(device), y.to(device)
            correct += model(x).argmax(1).eq(y).sum().item()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def cpu_name() -> str:
    """The CPU's model name where Linux says it, else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _spread(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "rounds": values,
    }


def run(
    out: Path = Path("reports/bench.json"),
    root: str = "data",
    device: str = "auto",
    rounds: int = ROUNDS,
) -> dict:
    """Time every pipeline `rounds` times, interleaved, and write the JSON report; returns it."""
    ensure_mnist(root)
    dev = resolve_device(device)
    cfg = Experiments().resolve("s7_file3", {"epochs": 1, "progress": False})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    tr, te = load_split(root, True), load_split(root, False)
    arms = {f"seed_{w}_workers": w for w in sorted({0, 1, cores or 1})}
    arms["ours"] = None
    times: dict[str, list[float]] = {a: [] for a in arms}
    names = list(arms)
    for r in range(rounds):
        for a in names[r % len(names) :] + names[: r % len(names)]:
            w = arms[a]
            if w is None:
                t = train(cfg, tr, {"test": te}, device=dev).history[0]["epoch_seconds"]
            else:
                t = _seed_epoch(cfg, dev, w, root)
            times[a].append(t)
            print(f"round {r + 1}/{rounds}  {a:16s} {t:6.2f} s", flush=True)
    stats = {a: _spread(v) for a, v in times.items()}
    seeds = {a: s for a, s in stats.items() if a != "ours"}
    baseline = min(seeds, key=lambda a: seeds[a]["median"])
    report = {
        "device": str(dev),
        "cpu": cpu_name(),
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "cores": cores,
        "torch": torch.__version__,
        "batch_size": cfg.batch_size,
        "rounds": rounds,
        "seconds_per_epoch": stats,
        "baseline": baseline,
        "ratio_ours_to_baseline": stats["ours"]["median"] / stats[baseline]["median"],
        "date": time.strftime("%Y-%m-%d"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"device {dev} ({cores} cores), torch {torch.__version__}, batch {cfg.batch_size}, "
        f"augmentation on, {rounds} rounds interleaved: median [min, max] s/epoch"
    )
    for a, s in stats.items():
        mark = "  <- baseline (fastest seed setting)" if a == baseline else ""
        print(f"  {a:16s} {s['median']:6.2f} [{s['min']:.2f}, {s['max']:.2f}]{mark}")
    print(f"ours / baseline = {report['ratio_ours_to_baseline']:.2f} (medians)")
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    run()
