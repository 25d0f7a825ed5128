"""`make bench`: epoch time of the seed's input pipeline against ours, same machine, same run.

(a) the seed's pipeline as its notebooks ran it: per-image torchvision RandomAffine in a Dataset,
    a DataLoader with num_workers=1 and pin_memory on CUDA, the defaults elsewhere;
(b) the same with as many DataLoader workers as cores (the stronger baseline);
(c) ours: `harness.trainer.train` (data on the device, batch augmentation, no workers).
Each does one epoch at batch 128 with augmentation, then one test evaluation, on the same model.
Prints the three times and the ratios and writes reports/bench.json. A benchmark, not a test.
"""

import json
import os
import platform
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


def run(out: Path = Path("reports/bench.json"), root: str = "data", device: str = "auto") -> dict:
    """Measure (a), (b), (c) once each and write the JSON report; returns it."""
    ensure_mnist(root)
    dev = resolve_device(device)
    cfg = Experiments().resolve("s7_file3", {"epochs": 1, "progress": False})
    cores = os.cpu_count() or 1
    seed_1 = _seed_epoch(cfg, dev, 1 if dev.type == "cuda" else 0, root)
    seed_n = _seed_epoch(cfg, dev, cores, root)
    tr, te = load_split(root, True), load_split(root, False)
    ours = train(cfg, tr, {"test": te}, device=dev).history[0]["epoch_seconds"]
    report = {
        "device": str(dev),
        "cpu": cpu_name(),
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "cores": cores,
        "torch": torch.__version__,
        "batch_size": cfg.batch_size,
        "seconds_per_epoch": {
            "a_seed_pipeline": seed_1,
            "b_seed_pipeline_all_workers": seed_n,
            "c_ours": ours,
        },
        "ratio_ours_to_a": ours / seed_1,
        "ratio_ours_to_b": ours / seed_n,
        "date": time.strftime("%Y-%m-%d"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    s = report["seconds_per_epoch"]
    print(
        f"device {dev} ({cores} cores), torch {torch.__version__}, batch {cfg.batch_size}, augmentation on"
    )
    print(
        f"(a) seed pipeline, {1 if dev.type == 'cuda' else 0} workers : {s['a_seed_pipeline']:7.2f} s/epoch"
    )
    print(f"(b) seed pipeline, {cores} workers : {s['b_seed_pipeline_all_workers']:7.2f} s/epoch")
    print(f"(c) ours                   : {s['c_ours']:7.2f} s/epoch")
    print(
        f"ours / (a) = {report['ratio_ours_to_a']:.2f}   ours / (b) = {report['ratio_ours_to_b']:.2f}"
    )
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    run()
