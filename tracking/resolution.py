"""Accuracies rounded to what their data can resolve, so the UI shows 98.80, not 98.80000000001.

An accuracy in percent over n images moves in steps of 100/n points: 0.01 for 10,000 images,
0.2 for 500. More digits than that are float noise.
"""

import math


def accuracy_decimals(n: int) -> int:
    """Decimals an accuracy (%) over `n` images can resolve: 2 for 10,000, 1 for 500, 0 for 100."""
    return max(0, math.ceil(math.log10(n / 100))) if n > 0 else 0


def round_accuracies(metrics: dict[str, float], sizes: dict[str, int]) -> dict[str, float]:
    """`metrics` with each `<split>_acc` rounded for its split's size (`sizes[split]`); other
    metrics (losses, lr, seconds) unchanged.

    Args:
        metrics: e.g. {"train_acc": 97.123456, "val_acc": 98.80000000001, "val_loss": 0.04}.
        sizes: images per split, e.g. {"train": 50000, "val": 10000, "test": 10000}.
    """
    out = {}
    for key, value in metrics.items():
        split = key.removesuffix("_acc")
        for prefix in ("best_", "final_"):  # the trial's summary metrics, e.g. best_val_acc
            split = split.removeprefix(prefix)
        if key.endswith("_acc") and split in sizes:
            value = round(float(value), accuracy_decimals(sizes[split]))
        out[key] = value
    return out
