"""The report's figures (`findings.claims.FIGURES`), drawn only from the runs read back from MLflow (PNG, headless Agg).

`interval`: one point per seed and the mean with its 95% t-interval, per setting (e.g. batch size
vs best test accuracy, or the train-test gap). `curves`: a per-epoch metric's mean over seeds with
its 95% band, one line per setting, like S7's test-accuracy plots.
"""

import math
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are only ever written to files
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from findings.claims import FIGURES, Figure  # noqa: E402
from findings.plan import Plan  # noqa: E402
from findings.store import Records  # noqa: E402
from findings.tuned import TunedResult  # noqa: E402
from harness.stats import mean_interval  # noqa: E402


def _label(plan: Plan, records: Records, fig: Figure, setting: str) -> str:
    """The setting's name, or `key=value` of config key `fig.x` as logged (else as planned)."""
    if fig.x is None:
        return setting
    for seed in plan.setting_seeds(setting):
        if (setting, seed) in records and fig.x in records[(setting, seed)].params:
            return records[(setting, seed)].params[fig.x]
    seed = plan.setting_seeds(setting)[0]
    return str(plan.jobs[(setting, seed)].cfg.flat()[fig.x])


def _save(f, ax, path: Path) -> Path:
    """Every figure's finish: grid, a legend when lines are labelled, written as PNG, closed."""
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    f.tight_layout()
    f.savefig(path, dpi=110)
    plt.close(f)
    return path


def interval_figure(plan: Plan, records: Records, fig: Figure, path: Path) -> Path:
    """Per setting: each seed's value, and the mean with its 95% interval as an error bar."""
    f, ax = plt.subplots(figsize=(7, 4.5))
    labels = []
    for i, s in enumerate(fig.settings):
        labels.append(_label(plan, records, fig, s))
        vals = [
            records[(s, x)].values[fig.metric] for x in plan.setting_seeds(s) if (s, x) in records
        ]
        ax.scatter([i] * len(vals), vals, color="0.6", s=14, zorder=2)
        est = mean_interval(vals)
        if not math.isnan(est.lo):
            ax.errorbar(
                i,
                est.mean,
                yerr=[[est.mean - est.lo], [est.hi - est.mean]],
                fmt="o",
                color="C0",
                capsize=5,
                zorder=3,
            )
        elif vals:
            ax.plot(i, est.mean, "o", color="C0", zorder=3)
    if fig.metric == "gap":
        ax.axhline(0.0, color="0.3", lw=0.8)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel(fig.x or "setting")
    ax.set_ylabel(fig.metric)
    ax.set_title(fig.title + "\n(grey: seeds; blue: mean with 95% t-interval)", fontsize=10)
    return _save(f, ax, path)


def mean_curves_figure(plan: Plan, records: Records, fig: Figure, path: Path) -> Path:
    """Per setting: the mean over seeds of per-epoch `fig.metric`, with a 95% t-interval band."""
    f, ax = plt.subplots(figsize=(7, 4.5))
    for i, s in enumerate(fig.settings):
        runs = [records[(s, x)] for x in plan.setting_seeds(s) if (s, x) in records]
        curves = [r.history[fig.metric] if fig.metric in r.history else [] for r in runs]
        curves = [c for c in curves if c]
        if not curves:
            continue
        epochs = range(1, min(len(c) for c in curves) + 1)
        ests = [mean_interval([c[e - 1] for c in curves]) for e in epochs]
        ax.plot(
            epochs,
            [e.mean for e in ests],
            marker="o",
            ms=3,
            color=f"C{i}",
            label=f"{s} (n={len(curves)})",
        )
        if len(curves) > 1:
            ax.fill_between(
                epochs, [e.lo for e in ests], [e.hi for e in ests], color=f"C{i}", alpha=0.2
            )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(fig.metric)
    ax.set_title(fig.title + "\n(mean over seeds, band: 95% t-interval)", fontsize=10)
    return _save(f, ax, path)


def tuned_figure(result: TunedResult, path: Path) -> Path:
    """Validation accuracy against learning rate, one line per batch size; each batch size's best
    lr (by validation) ringed. Pruned and failed points have no value and are left out."""
    f, ax = plt.subplots(figsize=(7, 4.5))
    for i, b in enumerate(result.batch_sizes):
        pts = sorted(
            (p for p in result.points if p.batch_size == b and p.val_acc is not None),
            key=lambda p: p.lr,
        )
        if not pts:
            continue
        ax.plot(
            [p.lr for p in pts],
            [p.val_acc for p in pts],
            marker="o",
            ms=4,
            color=f"C{i}",
            label=f"batch {b}",
        )
        best = result.best[b]
        ax.plot(best.lr, best.val_acc, "o", ms=11, mfc="none", mec=f"C{i}", mew=1.5)
    ax.set_xscale("log")
    ax.set_xticks(result.lrs, [f"{lr:g}" for lr in result.lrs])
    ax.minorticks_off()
    ax.set_xlabel("initial learning rate (optimizer.lr)")
    ax.set_ylabel(f"validation accuracy (%, {result.objective})")
    ax.set_title(
        f"Learning rate tuned per batch size (study {result.study_name})\n"
        "(ringed: each batch size's best lr; pruned and failed points left out)",
        fontsize=10,
    )
    return _save(f, ax, path)


def draw_all(plan: Plan, records: Records, folder: Path) -> dict[str, Path]:
    """Draw every figure of `findings.claims.FIGURES` into `folder` as `<name>.png`, each with
    the settings the plan holds (a plan of a few claims may hold only some, or none).

    Args:
        plan: the plan (the seeds of each setting).
        records: the runs read from MLflow.
        folder: created if missing.
    Returns:
        `{figure name: path}` of the figures drawn.
    """
    folder.mkdir(parents=True, exist_ok=True)
    draw = {"interval": interval_figure, "curves": mean_curves_figure}
    out = {}
    for name, fig in FIGURES.items():
        planned = [s for s in fig.settings if plan.setting_seeds(s)]
        if planned:
            fig = replace(fig, settings=planned)
            out[name] = draw[fig.kind](plan, records, fig, folder / f"{name}.png")
    return out
