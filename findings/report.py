"""`reports/findings.md`: every claim with S7's number, ours over seeds, and a verdict.

All numbers about our runs are read from MLflow (through `findings.store`); S7's numbers and
the thresholds come from the claims (`findings.claims`). Nothing numeric is typed into this module.
"""

import math
import os
import platform
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from findings.claims import FIGURES, SETTINGS
from findings.figures import draw_all, tuned_figure
from findings.plan import HASH_IGNORED, HASH_IGNORED_PREFIXES, Plan
from findings.store import Records
from findings.tuned import FINISHED_STATES, OPEN_STATES, Point, TunedResult, edge_side
from findings.verdicts import METRIC_MEANING, ClaimResult, Comparison, Part, evaluate_claims
from harness.stats import LEVEL, MOST_SEEDS, POWER, Interval
from harness.urls import masked

TUNED_FIGURE = "tuned_lr"  # figure name of the lr-by-batch study
SETTING_KEYS = (
    "epochs",
    "batch_size",
    "model.dropout",
    "scheduler.name",
    "scheduler.step_size",
    "scheduler.gamma",
    "augment.enabled",
    "optimizer.lr",
    "data.train_subset",
    "data.test_subset",
)


# ---------------------------------------------------------------- formatting


def num(x: float | None, metric: str = "") -> str:
    """One value as the report prints it: 3 decimals, parameters as a whole number."""
    if x is None:
        return "—"
    if math.isnan(x):
        return "n/a"
    return f"{x:,.0f}" if metric == "n_params" else f"{x:.3f}"


def interval(est: Interval, metric: str = "", signed: bool = False) -> str:
    """`mean [lo, hi]`, or what is missing for an interval."""
    if est.n == 0:
        return "no runs"
    mean = f"{est.mean:+.3f}" if signed else num(est.mean, metric)
    if est.n < 2:
        return f"{mean} (1 seed, no interval)"
    lo, hi = (
        (f"{v:+.3f}" for v in (est.lo, est.hi))
        if signed
        else (num(est.lo, metric), num(est.hi, metric))
    )
    return f"{mean} [{lo}, {hi}]"


def seeds_text(values: dict[int, float], metric: str = "", signed: bool = False) -> str:
    """`1: 99.410, 2: 99.380` (seed: value)."""
    if not values:
        return "—"
    return ", ".join(f"{s}: {f'{v:+.3f}' if signed else num(v, metric)}" for s, v in values.items())


def reported_num(x: float | None, metric: str = "") -> str:
    """S7's own number, as short as it was reported (its gap may be derived: 0.32)."""
    return "—" if x is None else f"{x:,.0f}" if metric == "n_params" else f"{x:.4g}"


def duration(seconds: float) -> str:
    """`42 s`, `12.5 min` or `3.21 h`."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


def _version(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "absent"


# ---------------------------------------------------------------- sections


def quick_banner(plan: Plan) -> list[str]:
    """The first lines of a quick report: it is quick, and its verdicts are not verdicts."""
    q = plan.spec.quick
    over = ", ".join(f"`{o}`" for o in q.overrides) or "none"
    return [
        f"> **QUICK MODE: these verdicts are not verdicts.** Seeds {q.seeds}, overrides {over}. "
        "This checks the machinery end to end; the numbers below say nothing about S7's "
        "claims. Run `python -m cli.findings` without `--quick` for the real report.",
        "",
    ]


def incomplete_banner(plan: Plan, records: Records, tuned: TunedResult | None) -> list[str]:
    """A warning on top while planned runs or grid points are missing (empty when none are)."""
    planned = {j.config_hash for j in plan.unique_jobs()}
    done = {r.config_hash for r in records.values()} & planned
    points = tuned.points if tuned else []
    open_points = [p for p in points if p.state in OPEN_STATES]
    if len(done) == len(planned) and not open_points:
        return []
    grid = ""
    if tuned:
        finished = sum(p.state in FINISHED_STATES for p in points)
        failed = sum(p.state == "FAIL" for p in points)
        grid = f" and {finished} of {len(points)} points of the lr grid" + (
            f" ({failed} failed)" if failed else ""
        )
    return [
        f"> **INCOMPLETE: {len(done)} of {len(planned)} planned runs{grid} have finished.** "
        "Verdicts below use only the seeds that exist, and a claim missing runs says which. "
        "Run `make findings` again: it trains only what is missing.",
        "",
    ]


def rules(plan: Plan) -> list[str]:
    pct = f"{LEVEL:.0%}"
    metrics = "\n".join(f"- `{m}`: {text}" for m, text in METRIC_MEANING.items())
    ignored = ", ".join(
        f"`{k}`" for k in (*HASH_IGNORED, *(p + "*" for p in HASH_IGNORED_PREFIXES))
    )
    return [
        "## How to read this",
        "",
        metrics,
        f"- **Ours** is the mean over seeds with its {pct} t-interval, "
        f"mean ± t({1 - (1 - LEVEL) / 2:.3f}, n−1)·sd/√n (scipy's t quantile).",
        "- **Paired** comparisons take the difference seed by seed (seed i of both settings starts "
        "from the same initial weights and shuffling generator) and give that difference's "
        f"{pct} t-interval.",
        f"- A comparison is **reproduced** when its {pct} interval lies entirely on the claimed "
        "side of the threshold, **contradicted** when it lies entirely on the other side, and "
        "**inconclusive** otherwise, always so with fewer than two seeds.",
        f"- **Resolves** is the smallest true difference (from the threshold, or between paired "
        f"settings) that a two-sided {pct} t-test on these seeds detects with {POWER:.0%} power, "
        "from the observed per-seed spread (noncentral t), and about how many seeds the observed "
        "difference would need to be detected as often.",
        "- A claim with several parts (and a `best` part, which compares one setting with each "
        "other) is reproduced when every comparison is reproduced, contradicted when any is "
        "contradicted, inconclusive otherwise.",
        f"- Runs are found by the `config_hash` tag: a hash of the whole resolved config except "
        f"{ignored}. A re-run trains only what has no FINISHED run.",
        "",
    ]


def summary(results: list[ClaimResult], tuned: TunedResult | None = None) -> list[str]:
    out = [
        "## Summary",
        "",
        "| claim | S7 reported | ours (deciding comparisons) | verdict |",
        "|---|---|---|---|",
    ]
    for r in results:
        seed = "; ".join(
            f"{s}: " + ", ".join(f"{m} {reported_num(v, m)}" for m, v in vals.items())
            for s, vals in r.reported.items()
        )
        ours = "<br>".join(
            f"{c.description}: {interval(c.estimate, p.metric, p.kind != 'threshold')}"
            for p in r.parts
            for c in p.comparisons
        )
        out.append(f"| `{r.claim_id}` {r.statement} | {seed or '—'} | {ours} | **{r.verdict}** |")
    if tuned is not None:
        ours = "; ".join(
            f"{b}: lr {p.lr:g}, val {p.val_acc:.2f}" for b, p in sorted(tuned.best.items())
        )
        out.append(
            f"| `tuned_lr` {tuned.spec.question} | — (S7 kept lr fixed) "
            f"| {ours or 'no completed points'} | **{tuned.verdict}** |"
        )
    return [*out, ""]


def resolves(c: Comparison) -> str:
    """The smallest difference the comparison's seeds detect, and the seeds the observed one
    would need: `0.087; observed +0.014 needs ~150 seeds`."""
    if c.estimate.n < 2 or math.isnan(c.resolution):
        return "n/a (fewer than two seeds)"
    need = c.seeds_needed
    wants = (
        "no difference to detect"
        if c.observed == 0
        else f"needs ~{need} seeds"
        if need is not None
        else f"needs more than {MOST_SEEDS} seeds"
    )
    return f"{c.resolution:.3f}; observed {c.observed:+.3f} {wants}"


def resolution_line(name: str, c: Comparison) -> str:
    """For an inconclusive comparison: what lies below this experiment's resolution."""
    need = c.seeds_needed
    settle = (
        f"settling the observed {c.observed:+.3f} would take about {need} seeds"
        if need is not None
        else f"the observed {c.observed:+.3f} would need more than {MOST_SEEDS} seeds"
    )
    return (
        f"- `{name}` ({c.description}): differences below {c.resolution:.3f} points are below "
        f"this experiment's resolution ({c.estimate.n} seeds); {settle}."
    )


def _part_lines(p: Part) -> list[str]:
    lines = []
    for c in p.comparisons:
        signed = p.kind != "threshold"  # paired and best compare signed differences
        lines.append(
            f"| {p.name} | {c.description} | {interval(c.estimate, p.metric, signed)} "
            f"| {seeds_text(c.per_seed, p.metric, signed)} | {resolves(c)} | {c.verdict} |"
        )
    return lines


def claim_section(i: int, r: ClaimResult) -> list[str]:
    out = [f"## Claim {i} `{r.claim_id}`: **{r.verdict}**", "", f"> {r.statement}", ""]
    if r.note:
        out += [r.note, ""]
    out += [
        f"Seeds {r.seeds}.",
        "",
        "| setting | metric | S7 reported | ours: mean [95% CI] | per seed |",
        "|---|---|---|---|---|",
    ]
    for row in r.rows:
        out.append(
            f"| {row.setting} | {row.metric} | {reported_num(row.reported, row.metric)} "
            f"| {interval(row.estimate, row.metric)} | {seeds_text(row.per_seed, row.metric)} |"
        )
    out += [
        "",
        "Deciding comparisons:",
        "",
        "| part | comparison | estimate [95% CI] | per seed | resolves (80% power) | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for p in r.parts:
        out += _part_lines(p)
    unresolved = [
        resolution_line(p.name, c)
        for p in r.parts
        for c in p.comparisons
        if c.verdict == "inconclusive" and c.estimate.n >= 2 and not math.isnan(c.resolution)
    ]
    if unresolved:
        out += ["", "What these seeds cannot resolve:", "", *unresolved]
    for p in r.parts:
        if p.highest_mean is not None:
            out.append(f"\nPart `{p.name}`: the highest mean {p.metric} is `{p.highest_mean}`.")
    if r.missing:
        miss = ", ".join(f"{s} seed {seed}" for s, seed in r.missing)
        out.append(f"\nMissing runs (not finished in MLflow): {miss}.")
    return [*out, ""]


STATE_WORDS = {"FAIL": "failed", "PRUNED": "pruned", "RUNNING": "running", "WAITING": "queued"}


def _cell(p: Point | None, best: bool) -> str:
    """A grid cell: the validation accuracy (bold for the batch size's best), the state, or
    `·` where the point was never planned (an extension tried that lr at other batch sizes)."""
    if p is None:
        return "·"
    if p.val_acc is None:
        return STATE_WORDS.get(p.state, "—")
    return f"**{p.val_acc:.2f}**" if best else f"{p.val_acc:.2f}"


def _edge_note(t: TunedResult) -> list[str]:
    """Batch sizes whose best lr is still the smallest or largest they have tried: their optimum
    may lie beyond, so their tuned score is a lower bound."""
    at_edge = []
    for b, p in sorted(t.best.items()):
        side = edge_side(t.points, p)
        if side and sum(q.batch_size == b for q in t.points) > 1:
            at_edge.append(f"batch {b} ({side}, {p.lr:g})")
    if not at_edge:
        return []
    return [
        "",
        f"At the edge of the lrs tried: {', '.join(at_edge)}. The best lr there may lie beyond "
        f"(extensions stop {_steps(t.extend)} past the grid), so those batch "
        "sizes' tuned scores are lower bounds.",
    ]


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def _extension_text(t: TunedResult) -> str:
    """How the grid was extended past its edge, if it was."""
    if not t.extensions:
        return (
            f"Where a batch size's best lr is on the grid's edge, it is tried again at half (or "
            f"twice) that lr, up to {_steps(t.extend)} past the grid; none has run yet. "
        )
    tried = ", ".join(
        f"lr {lr:g} at batch {', '.join(str(p.batch_size) for p in t.points if p.lr == lr)}"
        for lr in t.lrs
        if lr not in t.grid_lrs
    )
    return (
        f"Where a batch size's best lr sat on the edge of what it had tried, it was tried again "
        f"at half (or twice) that lr, up to {_steps(t.extend)} past the grid, one study per lr "
        f"({', '.join(f'`{n}`' for n in t.extensions)}; the grid's points were not re-run): "
        f"{tried}. "
    )


def tuned_section(t: TunedResult, figure: Path | None, report: Path) -> list[str]:
    """Item 3: each batch size with its own lr, chosen on validation; the verdict on the
    reference batch size, judged against a noise margin."""
    s = t.spec
    pruners = ", ".join(p.name for p in s.pruners) or "none"
    sizes = ", ".join(map(str, t.batch_sizes))
    lrs = ", ".join(f"{lr:g}" for lr in t.grid_lrs)
    out = [
        f"## With the learning rate tuned per batch size: **{t.verdict}**",
        "",
        f"> {s.question}",
        "",
        f"A grid study `{t.study_name}` (Optuna storage `{t.storage}`, MLflow experiment of the "
        f"same name, one run per trial): batch size {{{sizes}}} x initial lr {{{lrs}}}, every "
        f"other key from setting `{s.setting}`, one seed. {_extension_text(t)}"
        f"Each trial's score is the study objective ({t.objective}) on a fixed hold-out of "
        f"{t.val_size:,} of the 60k training images; each batch size's lr is the one with the "
        f"best validation score. Test accuracy is shown, never used to choose. Pruners: {pruners} "
        "(a pruned or failed point is not compared).",
        "",
        "Validation accuracy (%), best lr per batch size in bold:",
        "",
        "| batch size | " + " | ".join(f"lr {lr:g}" for lr in t.lrs) + " |",
        "|---" * (len(t.lrs) + 1) + "|",
    ]
    for b in t.batch_sizes:
        best = t.best.get(b)
        cells = [_cell(p := t.point(b, lr), p is not None and p is best) for lr in t.lrs]
        out.append(f"| {b} | " + " | ".join(cells) + " |")
    failed = [
        f"batch {p.batch_size}, lr {p.lr:g}: {p.fail_reason or 'no reason recorded'}"
        for p in t.points
        if p.state == "FAIL"
    ]
    if failed:
        out += ["", "Failed points (no result, not compared): " + "; ".join(failed) + "."]
    out += [
        "",
        "| batch size | best lr (by validation) | validation acc | test acc (reported) "
        "| trial | MLflow run |",
        "|---|---|---|---|---|---|",
    ]
    for b in t.batch_sizes:
        p = t.best.get(b)
        if p is None:
            out.append(f"| {b} | no completed point | — | — | — | — |")
            continue
        test = "n/a" if p.test_acc is None else f"{p.test_acc:.2f}"
        trial = p.trial if p.study == t.study_name else f"{p.trial} of `{p.study}`"
        out.append(f"| {b} | {p.lr:g} | {p.val_acc:.3f} | {test} | {trial} | {p.run_id or '—'} |")
    out += _edge_note(t)
    sd = "n/a" if math.isnan(t.noise_sd) else f"{t.noise_sd:.3f}"
    margin = "n/a" if math.isnan(t.margin) else f"{t.margin:.3f}"
    out += [
        "",
        f"Rule: one run's score on 10k images varies from seed to seed; its spread is taken from "
        f"setting `{s.noise_setting}`'s final test accuracy over its {t.noise_n} seeds "
        f"(sd {sd} points). Two single runs then differ by noise alone by up to about "
        f"2·√2·sd = {margin} points (95%, normal). **Reproduced** when batch {s.reference} has "
        f"the highest tuned validation accuracy and leads the runner-up by more than that margin; "
        f"**contradicted** when another batch size beats it by more; **inconclusive** otherwise.",
        "",
        f"Verdict: **{t.verdict}**. Highest tuned validation accuracy: batch "
        f"{t.winner if t.winner is not None else '—'}; {t.reason}.",
        "",
    ]
    ended = [p for p in t.points if p.state in FINISHED_STATES]
    out += [
        f"The {len(ended)} finished trials{' (grid and extensions)' if t.extensions else ''} took {duration(sum(p.seconds for p in ended))} "
        "in all (sum of Optuna's trial start-to-end times).",
        "",
    ]
    if figure is not None:
        out += [f"![lr tuned per batch size]({os.path.relpath(figure, report.parent)})", ""]
    return out


def figures_section(plan: Plan, paths: dict[str, Path], report: Path) -> list[str]:
    out = ["## Figures", ""]
    for name, path in paths.items():
        rel = os.path.relpath(path, report.parent)
        out += [f"![{FIGURES[name].title}]({rel})", ""]
    return out


def settings_section(plan: Plan, records: Records) -> list[str]:
    out = [
        "## Settings (from the runs' logged params)",
        "",
        "| setting | experiment + overrides | "
        + " | ".join(SETTING_KEYS)
        + " | config hash | seeds run |",
        "|---" * (len(SETTING_KEYS) + 4) + "|",
    ]
    for name, setting in SETTINGS.items():
        seeds = plan.setting_seeds(name)
        if not seeds:
            continue
        done = [s for s in seeds if (name, s) in records]
        if done:
            params = records[(name, done[0])].params
        else:  # nothing logged yet: show what is planned, marked as such
            params = {k: str(v) for k, v in plan.jobs[(name, seeds[0])].cfg.flat().items()}
        over = " ".join(f"`{o}`" for o in setting.overrides)
        hashes = sorted({plan.jobs[(name, s)].config_hash for s in seeds})
        out.append(
            f"| {name} | {setting.experiment} {over} | "
            + " | ".join(params.get(k, "?") for k in SETTING_KEYS)
            + f" | {', '.join(hashes) if len(hashes) < 3 else f'{len(hashes)} (one per seed)'} "
            + f"| {len(done)}/{len(seeds)}{'' if done else ' (planned)'} |"
        )
    return [*out, ""]


def runs_section(plan: Plan, records: Records) -> list[str]:
    out = [
        "## Runs",
        "",
        "| setting | seed | MLflow run | best_test_acc | final_test_acc | best_train_acc | gap "
        "| epochs | train seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (setting, seed), r in sorted(records.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        v = r.values
        out.append(
            f"| {setting} | {seed} | {r.run_id} | {num(v['best_test_acc'])} "
            f"| {num(v['final_test_acc'])} | {num(v['best_train_acc'])} | {num(v['gap'])} "
            f"| {len(r.history['test_acc'])} | {r.train_seconds:.1f} |"
        )
    return [*out, ""]


def machine_section(plan: Plan, records: Records) -> list[str]:
    runs = {r.run_id: r for r in records.values()}.values()

    def tag(key: str) -> str:
        return ", ".join(sorted({r.tags.get(key, "?") for r in runs})) or "—"

    train_s = sum(r.train_seconds for r in runs)
    dur_s = sum(r.duration_s for r in runs)
    out = [
        "## Machine, versions, time",
        "",
        f"- Runs: {len(runs)} finished MLflow runs in experiment `{plan.mlflow_experiment}` at "
        f"`{masked(plan.tracking_uri)}` ({len(plan.unique_jobs())} planned).",
        f"- Where they ran: device {tag('device')}; platform {tag('platform')}; "
        f"{tag('cpu_count')} CPUs; arch {tag('machine')}.",
        f"- Versions: Python {tag('python_version')}, torch {tag('torch_version')}, torchvision "
        f"{tag('torchvision_version')}, mlflow {tag('mlflow_version')}, numpy "
        f"{tag('numpy_version')}; code at git commit {tag('git_commit')}.",
        f"- Total wall time of the runs: {duration(train_s)} as the sum of their `epoch_seconds` "
        f"(training and evaluation); {duration(dur_s)} as the sum of run durations (with data "
        "loading and logging).",
    ]
    if runs:
        first = datetime.fromtimestamp(min(r.start_ms for r in runs) / 1000, UTC)
        last = datetime.fromtimestamp(max(r.end_ms for r in runs) / 1000, UTC)
        out.append(f"- Run dates: {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC.")
    out.append(
        f"- This report: written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.platform()}, "
        f"{os.cpu_count()} CPUs, with mlflow {_version('mlflow')}, scipy {_version('scipy')}, "
        f"matplotlib {_version('matplotlib')}."
    )
    return [*out, ""]


# ---------------------------------------------------------------- the report


def render(
    plan: Plan,
    records: Records,
    results: list[ClaimResult],
    figures: dict[str, Path],
    tuned: TunedResult | None = None,
    tuned_png: Path | None = None,
) -> str:
    """The whole report as Markdown."""
    path = plan.report_path
    mode = "quick" if plan.quick else "full"
    runs = len({r.run_id for r in records.values()})
    lines = quick_banner(plan) if plan.quick else []
    if plan.only is not None:
        lines += [
            f"> **PARTIAL: only {', '.join(f'`{c}`' for c in plan.only)} (`--claims`).** "
            "The other claims are left out and the figures show only these claims' settings; "
            "claims are numbered within this report.",
            "",
        ]
    lines += incomplete_banner(plan, records, tuned)
    args = (" --quick" if plan.quick else "") + (
        f" --claims {','.join(plan.only)}" if plan.only is not None else ""
    )
    lines += [
        f"# Findings: S7's claims over seeds ({mode})",
        "",
        f"Written by `python -m cli.findings{args}` from {runs} finished "
        f"MLflow runs. Every number about our runs is read from MLflow; S7's numbers and "
        "the thresholds come from `findings/claims.py`.",
        "",
    ]
    lines += summary(results, tuned)
    lines += rules(plan)
    for i, r in enumerate(results, 1):
        lines += claim_section(i, r)
    if tuned is not None:
        lines += tuned_section(tuned, tuned_png, path)
    lines += figures_section(plan, figures, path)
    lines += settings_section(plan, records)
    lines += runs_section(plan, records)
    lines += machine_section(plan, records)
    return "\n".join(lines)


def write_report(plan: Plan, records: Records, tuned: TunedResult | None = None) -> Path:
    """Judge the claims, draw the figures and write the report.

    Args:
        plan: the plan (spec, mode, report path).
        records: the runs read from MLflow by `findings.store.collect`.
        tuned: the lr-by-batch study read back by `findings.tuned.read`, if the spec has one.
    Returns:
        The report's path; figures go to the folder of the same name beside it.
    """
    path = plan.report_path
    path.parent.mkdir(parents=True, exist_ok=True)
    figures = draw_all(plan, records, path.with_suffix(""))
    tuned_png = None
    if tuned is not None:
        tuned_png = tuned_figure(tuned, path.with_suffix("") / f"{TUNED_FIGURE}.png")
    results = evaluate_claims(plan.claims, records, plan.seeds)
    path.write_text(render(plan, records, results, figures, tuned, tuned_png))
    return path
