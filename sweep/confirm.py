"""The confirmation: the study's best configs trained again over paired seeds, so that the config
`make export` ships is chosen on a mean over seeds, not on one lucky run.

A study's argmax over single-seed trials is mostly luck where the seed-to-seed spread is as large
as the gaps between its top trials (the winner's curse). Here the top `sweep.confirm.k` completed
trials and the baseline (the base experiment's own values of the searched keys) are each trained
again at every seed of `sweep.confirm.seeds`, on the study's validation hold-out; the test set is
reported, never used to choose. A config's seed sets its initial weights and its data order, so
seed i is shared by every candidate and they are compared paired, seed by seed (`harness.stats`).
The chosen config has the highest mean; the verdict says whether its paired difference to the
baseline lies above 0 (beats), straddles it (ties) or lies below (loses).

Each (config, seed) is a nested MLflow run under the study's run, tagged `role=confirm` with its
config hash: a finished one is found again, so an interrupted confirmation resumes and a re-run
trains nothing twice. The outcome is kept with the study (user attribute `confirmation`, which
`make export` reads) and on the study's MLflow run (tags `confirm_*`, confirm.csv, confirm.md).
"""

import datetime as dt
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import pandas as pd
import torch
from mlflow.entities import Run
from optuna.trial import FrozenTrial, TrialState

from harness.config import Experiments, TrainConfig
from harness.config_hash import config_hash
from harness.errors import RunFailed
from harness.stats import detectable_difference, mean_interval, paired_difference, seeds_needed
from harness.trainer import DivergedError
from harness.urls import scrub_text
from sweep.objective import SweepData, train_tracked, trial_config
from sweep.space import baseline_params
from sweep.spec import SweepSpec
from tracking import RunHandle, Tracker, provenance_tags
from tracking.mlflow_store import end_orphans
from tracking.trial_runs import searched_tags

ROLE = "confirm"  # the `role` tag of a confirmation run (the study's own run is `study`)
ATTR = "confirmation"  # the study's user attribute holding the last confirmation
DIVERGED = "DIVERGED"  # `state` tag of a run whose loss blew up: done, counted as no value
VERDICT = {"above": "beats", "straddles": "ties", "below": "loses"}
IS_BASELINE = "is the baseline"
NO_PAIRS = "cannot be compared with"  # fewer than two seeds where both have a value


@dataclass(frozen=True)
class Candidate:
    """One config to confirm: a top trial's searched values, or the baseline's."""

    label: str  # `trial-4`, or `baseline` (also when a trial proposed the baseline's values)
    trial: int | None  # the completed trial with these values; None: the baseline never ran
    params: dict[str, Any]
    config: TrainConfig  # at the base experiment's seed; the confirmation sets its own seeds
    baseline: bool


def top_trials(study: optuna.Study, k: int) -> list[FrozenTrial]:
    """The `k` best completed trials by the study's objective (ties: the earlier trial)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted(done, key=lambda t: (-t.value, t.number))[:k]


def candidates(
    study: optuna.Study, spec: SweepSpec, experiments: Experiments, fixed: dict[str, Any]
) -> list[Candidate]:
    """The top `spec.confirm.k` completed trials, then the baseline, one per distinct config.

    Args:
        study, spec: the study and its sweep section.
        experiments, fixed: the experiments file and the study's fixed overrides (what every
            trial's config was resolved from).
    Returns:
        The candidates, best trial first; exactly one of them is the baseline.
    """
    base = experiments.resolve(spec.base_experiment, fixed)
    base_params = baseline_params(spec.space, base)
    base_hash = config_hash(trial_config(base, spec, base_params))
    out: dict[str, Candidate] = {}  # by config hash: two trials with the same values train once
    for t in top_trials(study, spec.confirm.k):
        cfg = trial_config(base, spec, t.params)
        h = config_hash(cfg)
        if h not in out:
            label = "baseline" if h == base_hash else f"trial-{t.number}"
            out[h] = Candidate(label, t.number, dict(t.params), cfg, h == base_hash)
    if base_hash not in out:
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        trial = next((t.number for t in done if t.params == base_params), None)
        cfg = trial_config(base, spec, base_params)
        out[base_hash] = Candidate("baseline", trial, base_params, cfg, True)
    return list(out.values())


def _done_runs(tracker: Tracker, spec: SweepSpec, fingerprint: str | None) -> dict[str, Run]:
    """The study's finished (or diverged) confirmation runs by config hash, earliest first."""
    runs = tracker.client.search_runs(
        [tracker.experiment_id],
        filter_string=f"tags.role = '{ROLE}' and tags.study_name = '{spec.study_name}'",
        order_by=["attributes.start_time ASC"],
        max_results=10000,
    )
    out: dict[str, Run] = {}
    for r in runs:
        tags = r.data.tags
        # the study's fingerprint pins the hold-out (val_size, split_seed) the config hash lacks
        if tags.get("study_fingerprint", "") != (fingerprint or ""):
            continue
        ended = r.info.status == "FINISHED" or (
            r.info.status == "FAILED" and tags.get("state") == DIVERGED
        )
        if ended:
            out.setdefault(tags.get("config_hash", ""), r)
    return out


def _train_one(
    cand: Candidate,
    cfg: TrainConfig,
    spec: SweepSpec,
    data: SweepData,
    device: torch.device,
    tracker: Tracker,
    parent: RunHandle,
    tags: dict[str, Any],
) -> None:
    """One (candidate, seed) run; it ends FINISHED, KILLED (Ctrl-C) or FAILED (diverged)."""
    name = f"confirm · {cand.label} · seed {cfg.seed}"
    try:
        with tracker.run(name, tags, parent=parent) as run:
            run.log_params(cfg.flat())
            try:
                train_tracked(cfg, data, spec, device, run, [])
            except DivergedError as e:
                run.set_tags({"state": DIVERGED, "fail_reason": scrub_text(str(e))[:500]})
                raise
            run.set_tags({"state": "COMPLETE"})
    except DivergedError:
        pass  # recorded on the run; the candidate has no value at this seed


def run_confirmation(
    study: optuna.Study,
    spec: SweepSpec,
    experiments: Experiments,
    fixed: dict[str, Any],
    data: SweepData,
    device: torch.device,
    tracker: Tracker,
    parent: RunHandle,
    say: Callable[[str], None] = print,
) -> dict[str, Any] | None:
    """Train what the confirmation lacks, decide, and record the outcome.

    Args:
        study, spec: the study and its sweep section (`confirm.k`, `confirm.seeds`).
        experiments, fixed: what the trials' configs were resolved from.
        data, device: the study's data (its hold-out) on the training device.
        tracker, parent: the study's MLflow experiment and run (confirmation runs nest under it).
        say: where progress lines go.
    Returns:
        The confirmation (see `summarize`), also stored as the study's user attribute
        `confirmation` and on `parent`; None when the study has no completed trial.
    Raises:
        RunFailed: every candidate diverged at some seed (nothing can be chosen).
        KeyboardInterrupt: the running confirmation run ends KILLED; finished ones are kept.
    """
    top = top_trials(study, spec.confirm.k)
    if not top:
        say("confirmation: no completed trial to confirm")
        return None
    cands = candidates(study, spec, experiments, fixed)
    seeds = list(spec.confirm.seeds)
    fingerprint = study.user_attrs.get("fingerprint")
    ours = f"tags.role = '{ROLE}' and tags.study_name = '{spec.study_name}'"
    for line in end_orphans(tracker.client, tracker.experiment_id, ours):
        say(f"confirmation: {line}")
    found = _done_runs(tracker, spec, fingerprint)
    total, trained = len(cands) * len(seeds), 0
    say(
        f"confirmation: {len(cands)} configs ({', '.join(c.label for c in cands)}) x "
        f"{len(seeds)} seeds {seeds} on the study's hold-out"
    )
    trial_seed = next(c for c in cands if c.baseline).config.seed
    if trial_seed in seeds:
        say(
            f"  note: seed {trial_seed} is the trials' own seed: there a top trial's run repeats "
            "the value it was chosen on (the winner's curse); seeds without it confirm more"
        )
    runs: dict[tuple[str, int], Run] = {}
    for seed in seeds:  # seed by seed: an interrupted confirmation leaves whole pairs done
        for cand in cands:
            cfg = cand.config.model_copy(update={"seed": seed})
            h = config_hash(cfg)
            if h not in found:
                trained += 1
                say(
                    f"  [{len(runs) + 1}/{total}] {cand.label} seed {seed}: training "
                    f"{cfg.epochs} epoch{'s' if cfg.epochs > 1 else ''}"
                )
                tags = {
                    "role": ROLE,
                    "confirms_trial": "baseline" if cand.baseline else cand.trial,
                    "seed": seed,
                    "study_name": spec.study_name,
                    "study_fingerprint": fingerprint or "",
                    "config_hash": h,
                    **searched_tags(cand.params),
                    **provenance_tags(str(device)),
                }
                _train_one(cand, cfg, spec, data, device, tracker, parent, tags)
                found = _done_runs(tracker, spec, fingerprint)
            runs[(cand.label, seed)] = found[h]
    doc = summarize(cands, seeds, runs, spec, [t.number for t in top])
    doc["runs_trained"], doc["runs_found"] = trained, total - trained
    study.set_user_attr(ATTR, doc)
    record(doc, parent)
    return doc


def _seconds(run: Run) -> float:
    return ((run.info.end_time or run.info.start_time) - run.info.start_time) / 1000.0


def summarize(
    cands: list[Candidate],
    seeds: list[int],
    runs: dict[tuple[str, int], Run],
    spec: SweepSpec,
    top: list[int],
) -> dict[str, Any]:
    """The confirmation as plain data (kept with the study, exported to best_config.yaml).

    Args:
        cands: the candidates, baseline included.
        seeds: the seeds, in order (values are paired in this order).
        runs: the finished run of each (candidate label, seed).
        spec: the sweep section (objective).
        top: the study's top trial numbers the candidates came from.
    Returns:
        `candidates` (each: label, trial, params, config, per-seed values, mean and its 95%
        interval, paired difference to the baseline and its interval, mean reported test
        accuracy), `chosen`, `chosen_trial`, `verdict`, `difference` (the chosen one's paired
        difference to the baseline, with the smallest difference these seeds resolve and the
        seeds the observed one would need), the cost (`runs`, `epochs`, `seconds`) and when.
    Raises:
        RunFailed: no candidate has a value at every seed.
    """
    value_key = f"{spec.objective.reduce}_{spec.objective.metric}"

    def values(label: str, key: str) -> list[float]:
        out = []
        for s in seeds:
            run = runs[(label, s)]
            out.append(
                run.data.metrics.get(key, math.nan) if run.info.status == "FINISHED" else math.nan
            )
        return out

    baseline = next(c for c in cands if c.baseline)
    base_vals = values(baseline.label, value_key)
    rows = []
    for c in cands:
        vals = values(c.label, value_key)
        est = mean_interval(vals)
        # paired at the seeds where both have a value (a run may have diverged)
        pairs = [(a, b) for a, b in zip(vals, base_vals, strict=True) if not math.isnan(a + b)]
        diff = paired_difference([a for a, _ in pairs], [b for _, b in pairs])
        test = [v for v in values(c.label, "test_acc") if not math.isnan(v)]
        rows.append(
            {
                "candidate": c.label,
                "trial": c.trial,
                "baseline": c.baseline,
                "params": c.params,
                "config": c.config.public(),
                "values": vals,
                "mean": _r(est.mean),
                "sd": _r(est.sd),
                "lo": _r(est.lo),
                "hi": _r(est.hi),
                "diff_mean": None if c.baseline else _r(diff.mean),
                "diff_lo": None if c.baseline else _r(diff.lo),
                "diff_hi": None if c.baseline else _r(diff.hi),
                "test_acc_mean": _r(sum(test) / len(test)) if test else None,
                "_diff": diff,
            }
        )
    complete = [r for r in rows if not any(math.isnan(v) for v in r["values"])]
    if not complete:
        raise RunFailed(
            "confirmation: every candidate diverged at some seed; nothing can be chosen "
            "(see the confirmation runs' fail_reason in MLflow)"
        )
    # an exact tie goes to the baseline (nothing beat it), else to the earlier, better-ranked trial
    chosen = max(complete, key=lambda r: (r["mean"], r["baseline"]))
    diff = chosen.pop("_diff")
    for r in rows:
        r.pop("_diff", None)
    if chosen["baseline"]:
        verdict = IS_BASELINE
    elif math.isnan(diff.lo):  # fewer than two seeds where both have a value
        verdict = NO_PAIRS
    else:
        verdict = VERDICT[diff.side(0.0)]
    detectable = detectable_difference(diff.sd, diff.n)
    all_runs = list(runs.values())
    epochs = sum(int(r.data.params.get("epochs", 0)) for r in all_runs)
    return {
        "seeds": seeds,
        "k": spec.confirm.k,
        "top_trials": top,
        "objective": f"{spec.objective.reduce} {spec.objective.metric}",
        "level": 0.95,
        "candidates": rows,
        "chosen": chosen["candidate"],
        "chosen_trial": chosen["trial"],
        "verdict": verdict,
        "difference": {
            "mean": _r(diff.mean),
            "lo": _r(diff.lo),
            "hi": _r(diff.hi),
            "detectable": _r(detectable),
            "seeds_needed": None if chosen["baseline"] else seeds_needed(diff.mean, diff.sd),
        },
        "runs": len(all_runs),
        "epochs": epochs,
        "seconds": round(sum(_seconds(r) for r in all_runs), 1),
        "confirmed": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _r(x: float) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), 4)


def table(doc: dict[str, Any]) -> pd.DataFrame:
    """One row per candidate: mean and 95% interval, paired difference to the baseline and its
    interval, mean reported test accuracy, the per-seed values and which one was chosen."""
    rows = []
    for c in doc["candidates"]:
        row = {k: c[k] for k in ("candidate", "trial", "mean", "lo", "hi")}
        row |= {k: c[k] for k in ("diff_mean", "diff_lo", "diff_hi", "test_acc_mean")}
        row |= {f"seed_{s}": v for s, v in zip(doc["seeds"], c["values"], strict=True)}
        row["chosen"] = c["candidate"] == doc["chosen"]
        rows.append(row)
    return pd.DataFrame(rows)


def _num(x: float | None, sign: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.2f}" if sign else f"{x:.2f}"


def verdict_line(doc: dict[str, Any]) -> str:
    """One sentence: what was chosen and how it compares with the baseline."""
    chosen = next(c for c in doc["candidates"] if c["candidate"] == doc["chosen"])
    head = (
        f"chosen: {doc['chosen']} ({doc['objective']} mean {_num(chosen['mean'])}%, 95% "
        f"[{_num(chosen['lo'])}, {_num(chosen['hi'])}] over {len(doc['seeds'])} seeds)"
    )
    if doc["verdict"] == IS_BASELINE:
        return head + ": the baseline itself has the highest mean; no top trial beats it"
    d = doc["difference"]
    line = (
        f"{head}, which {doc['verdict']} the baseline: paired difference "
        f"{_num(d['mean'], True)} points, 95% [{_num(d['lo'], True)}, {_num(d['hi'], True)}]"
    )
    if d["detectable"] is not None:
        line += f"; these seeds resolve differences of about {d['detectable']:.2f} points"
        if doc["verdict"] == "ties" and d["seeds_needed"]:
            line += f" (settling this one would take about {d['seeds_needed']} seeds)"
    return line


def markdown(doc: dict[str, Any]) -> str:
    """The confirmation as a small Markdown table and its verdict (confirm.md)."""
    lines = [
        f"**Confirmation** over seeds {doc['seeds']} ({doc['objective']}, %, 95% t-intervals; "
        "difference to the baseline paired by seed)",
        "",
        "| candidate | trial | mean | 95% interval | vs baseline | 95% interval | test (reported) |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in doc["candidates"]:
        mark = " ★" if c["candidate"] == doc["chosen"] else ""
        trial = "-" if c["trial"] is None else str(c["trial"])
        lines.append(
            f"| {c['candidate']}{mark} | {trial} | {_num(c['mean'])} | "
            f"[{_num(c['lo'])}, {_num(c['hi'])}] | {_num(c['diff_mean'], True)} | "
            + (
                f"[{_num(c['diff_lo'], True)}, {_num(c['diff_hi'], True)}]"
                if c["diff_mean"] is not None
                else "-"
            )
            + f" | {_num(c['test_acc_mean'])} |"
        )
    lines += ["", verdict_line(doc) + "."]
    return "\n".join(lines) + "\n"


def describe(doc: dict[str, Any], study_seconds: float | None = None) -> str:
    """What `make sweep` and `make confirm` print at the end."""
    cost = (
        f"confirmation cost: {doc['runs']} runs, {doc['epochs']} epochs, {doc['seconds']:.0f} s "
        f"({doc['runs_trained']} trained now, {doc['runs_found']} found in MLflow)"
    )
    if study_seconds is not None:
        cost += f"; the study's trials: {study_seconds:.0f} s"
    return markdown(doc).rstrip("\n") + "\n" + cost


def record(doc: dict[str, Any], parent: RunHandle) -> None:
    """The confirmation on the study's MLflow run: `confirm_*` tags, confirm.csv, confirm.md."""
    d = doc["difference"]
    parent.set_tags(
        {
            "confirm_chosen": doc["chosen"],
            "confirm_verdict": doc["verdict"],
            "confirm_seeds": ",".join(map(str, doc["seeds"])),
            "confirm_difference": (
                "-"  # the baseline against itself
                if doc["verdict"] == IS_BASELINE
                else f"{_num(d['mean'], True)} [{_num(d['lo'], True)}, {_num(d['hi'], True)}]"
            ),
        }
    )
    buf = io.StringIO()
    table(doc).to_csv(buf, index=False)
    parent.log_text(buf.getvalue(), "confirm.csv")
    parent.log_text(markdown(doc), "confirm.md")


def current(study: optuna.Study) -> tuple[dict[str, Any] | None, str]:
    """The study's confirmation if it still speaks for the study: made on today's top trials
    (a later `make sweep N_TRIALS=...` may have found better ones). Its own `k` and seeds count,
    not today's settings, so `make export` needs none of the sweep's command-line overrides.

    Returns:
        The confirmation (or None) and, when None, why: one phrase for the user.
    """
    doc = study.user_attrs.get(ATTR)
    if not doc:
        return None, "the study has no confirmation (sweep.confirm.k = 0, or it was stopped)"
    if doc.get("top_trials") != [t.number for t in top_trials(study, doc.get("k", 0))]:
        return None, (
            "the study's confirmation is out of date (the study has new top trials since); "
            "`make confirm` brings it up to date"
        )
    return doc, ""
