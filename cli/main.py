"""Command line: `s7 data | train | sweep | confirm | export | ui | dashboard | bench` (the Makefile's targets call these).

`sweep --worker I:T` is internal: one of the processes that `sweep --workers k` starts.

Every user error ends as one line on stderr and exit code 2, with no traceback; argparse's own
errors too (`Parser.error`).
"""

import argparse
import sys
from pathlib import Path

from cli.errors import Parser, one_line, run_reporting_errors
from harness.errors import UserError


def _positive(text: str) -> int:
    """A whole number of at least 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(
            f"invalid count {one_line(text, 40)!r}: expected 1 or more"
        )
    return n


def _port(text: str) -> int:
    """A TCP port number, 1-65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {one_line(text, 40)!r}: expected 1-65535")
    return port


def _output_file(path: Path, flag: str) -> None:
    """Refuse an output path that cannot be written, before anything is written."""
    if path.is_dir():
        raise UserError(f"{flag} {one_line(str(path), 300)}: is a folder; expected a file name")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise UserError(
            f"{flag} {one_line(str(path), 300)}: folder {one_line(str(parent), 300)} {what}; "
            "create it first"
        )


def _train(args: argparse.Namespace) -> None:
    from harness.config import Experiments, load_config_file, parse_overrides
    from tracking.job import describe, run_training

    overrides = parse_overrides(args.overrides)
    tags = {}
    if args.config:
        cfg, provenance = load_config_file(args.config, overrides)
        wanted = ("study", "trial", "mlflow_run_id")
        tags = {f"source_{k}": v for k, v in provenance.items() if k in wanted}
    else:
        cfg = Experiments(args.file, overrides).resolve(args.exp)
    print(
        f"training {cfg.name}: seed {cfg.seed}, {cfg.epochs} epochs, batch {cfg.batch_size}, "
        f"device {cfg.device}",
        flush=True,
    )
    holdout = (args.val_size, args.split_seed) if args.val_size else None
    print(describe(run_training(cfg, tags, holdout)))


def _sweep_spec(args: argparse.Namespace):
    """The experiments file with its `sweep:` section, the command line's overrides applied
    (`sweep.*` keys change the section, the rest every trial's config): (file, section, the
    training overrides)."""
    from harness.config import parse_overrides
    from sweep import spec

    overrides = parse_overrides(args.overrides)
    for key in ("n_trials", "workers"):
        if getattr(args, key, None) is not None:
            overrides.setdefault("sweep", {})[key] = getattr(args, key)
    exps = spec.load(args.file, overrides)
    return exps, exps.section("sweep"), exps.overrides


def _sweep(args: argparse.Namespace) -> None:
    import signal

    from sweep import run_sweep
    from sweep.workers import WorkerPlan

    # Ctrl-C and `kill` end the running trial cleanly, even where the shell that started us
    # ignored SIGINT (a background job of a script), which Python would otherwise inherit.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    exps, spec, train_over = _sweep_spec(args)
    worker = None
    if args.worker:  # internal: one of the k processes that `--workers k` starts
        index, _, threads = args.worker.partition(":")
        worker = WorkerPlan(int(index), train_over.get("device", "auto"), int(threads))
    # options first: the workers' own overrides follow these, and argparse takes positional
    # arguments in one run
    command = ["sweep", "--file", args.file]
    if args.n_trials is not None:
        command += ["--n-trials", str(args.n_trials)]
    command += args.overrides
    run_sweep(exps, spec, train_over, command=command, worker=worker)


def _confirm(args: argparse.Namespace) -> None:
    import signal

    from sweep.study import confirm_study

    # as `sweep`: Ctrl-C ends the running confirmation run KILLED, finished ones are kept
    signal.signal(signal.SIGINT, signal.default_int_handler)
    exps, spec, train_over = _sweep_spec(args)
    confirm_study(exps, spec, train_over)


def _export(args: argparse.Namespace) -> None:
    from sweep import export_best

    out, table = Path(args.out), Path(args.table)
    _output_file(out, "--out")
    _output_file(table, "--table")
    if out.resolve() == table.resolve():
        raise UserError(f"--out and --table name the same file {one_line(args.out, 300)}")
    exps, spec, train_over = _sweep_spec(args)
    uri = exps.resolve(spec.base_experiment, train_over).tracking.uri  # as `make sweep`
    doc = export_best(spec, Path(args.out), Path(args.table), uri)
    p, c = doc["provenance"], doc["provenance"]["confirmation"]
    if c:
        chosen = next(x for x in c["candidates"] if x["candidate"] == c["chosen"])
        what = (
            f"{c['chosen']}, confirmed over {len(c['seeds'])} paired seeds: mean "
            f"{chosen['mean']:.2f}%, {c['verdict']} the baseline"
        )
        also = f", {args.table} and {Path(args.table).parent / 'confirm.csv'}"
    else:
        what = f"trial {p['trial']}, validation accuracy {p['val_acc']:.2f}%: {p['pick']}"
        also = f" and {args.table}"
    print(f"wrote {args.out} ({what}){also}; retrain with: make train CONFIG={args.out}")
    m = p["model"]
    if m["registered"]:
        print(f"registered its model as {m['uri']} (version {m['version']})")
    else:
        print(f"model not registered: {m['why']}")


def _ui(args: argparse.Namespace) -> None:
    import os

    from harness.urls import masked, with_driver

    exps, spec, _ = _sweep_spec(args)
    cfg = exps.resolve(None)  # MLFLOW_TRACKING_URI, when set, wins
    uri = cfg.tracking.uri
    artifacts = Path(cfg.tracking.artifact_root).resolve()
    base = f"http://{args.host}:{args.port}"
    print(f"MLflow UI on {base} (store {masked(uri)}); Ctrl-C stops it", flush=True)
    print(f"the study's runs: {base}/{_study_page(uri, spec)}", flush=True)
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--artifacts-destination",
        str(artifacts),
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--workers",
        "1",  # one browser's requests; MLflow's default of 4 took ~30 s to start on 2 cores
    ]
    # The store goes in MLflow's own variable, not on the command line, where `ps` shows any
    # password in it to every user of the machine. No job runner: it serves GenAI judges only.
    env = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": with_driver(uri),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    os.execve(sys.executable, cmd, env)


def _study_page(uri: str, spec) -> str:
    """The study's runs page (a `#/...` path), or the experiments list before the first sweep."""
    from mlflow.tracking import MlflowClient

    from harness.urls import with_driver
    from sweep.summary import VIEW_KEY
    from tracking.trial_runs import runs_page

    try:
        exp = MlflowClient(with_driver(uri)).get_experiment_by_name(
            spec.mlflow_experiment or spec.study_name
        )
    except Exception:  # no store yet: the server creates it
        exp = None
    return runs_page(exp.experiment_id, VIEW_KEY) if exp else "#/experiments"


def _dashboard(args: argparse.Namespace) -> None:
    from harness.errors import UserError
    from harness.urls import masked
    from sweep.storage import open_storage, storage_url

    try:
        import optuna_dashboard
    except ImportError:
        raise UserError(
            "optuna-dashboard is not installed: .venv/bin/pip install -e '.[dashboard]'"
        ) from None
    _, spec, _ = _sweep_spec(args)
    storage = open_storage(spec, create=False)  # an object: the URL never reaches argv
    base = f"http://{args.host}:{args.port}"
    print(f"optuna-dashboard on {base} (storage {masked(storage_url(spec))}); Ctrl-C stops it")
    try:
        study_id = storage.get_study_id_from_name(spec.study_name)
        print(f"the study {spec.study_name!r}: {base}/dashboard/studies/{study_id}", flush=True)
    except KeyError:
        print(f"no study {spec.study_name!r} yet; run `make sweep`", flush=True)
    optuna_dashboard.run_server(storage, host=args.host, port=args.port)


def _data(args: argparse.Namespace) -> None:
    from harness.data import MD5, ensure_mnist

    raw = ensure_mnist(args.root)
    for name, digest in MD5.items():
        print(f"{raw / name}  md5 {digest}  ok")


def _bench(args: argparse.Namespace) -> None:
    from harness import bench

    bench.run(Path(args.out), root=args.root, device=args.device, rounds=args.rounds)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="s7", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser(
        "train", help="train one experiment from experiments.yaml, tracked in MLflow"
    )
    t.add_argument("--file", default="experiments.yaml", help="the experiments file")
    t.add_argument("--exp", default=None, help="experiment name (default: default_experiment)")
    t.add_argument("--config", default=None, help="a standalone config such as best_config.yaml")
    t.add_argument(
        "--val-size",
        type=_positive,
        default=None,
        help="hold out this many of the 60k as a sweep does (and evaluate them): a trial or "
        "confirmation run trained again",
    )
    t.add_argument("--split-seed", type=int, default=0, help="the hold-out's split seed")
    t.add_argument("overrides", nargs="*", help="key=value overrides, dotted for nested keys")
    t.set_defaults(func=_train)

    s = sub.add_parser("sweep", help="run (or resume) the Optuna study; every trial in MLflow")
    s.add_argument("--file", default="experiments.yaml")
    s.add_argument("--n-trials", type=int, default=None, help="total finished trials wanted")
    s.add_argument(
        "--workers", type=int, default=None, help="worker processes on this machine (default 1)"
    )
    s.add_argument(
        "overrides", nargs="*", help="sweep.key=value for the study, key=value for trials"
    )
    s.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # INDEX:THREADS, internal
    s.set_defaults(func=_sweep)

    c = sub.add_parser(
        "confirm", help="re-run the study's top trials and the baseline over paired seeds"
    )
    c.add_argument("--file", default="experiments.yaml")
    c.add_argument(
        "overrides", nargs="*", help="sweep.key=value for the study, key=value as for its sweep"
    )
    c.set_defaults(func=_confirm)

    e = sub.add_parser("export", help="write best_config.yaml and trials.csv from the study")
    e.add_argument("--file", default="experiments.yaml")
    e.add_argument("--out", default="best_config.yaml")
    e.add_argument("--table", default="trials.csv")
    e.add_argument("overrides", nargs="*", help="sweep.key=value (e.g. sweep.study_name=...)")
    e.set_defaults(func=_export)

    u = sub.add_parser("ui", help="the MLflow UI on the project's tracking store")
    u.add_argument("--file", default="experiments.yaml")
    u.add_argument("--host", default="127.0.0.1")
    u.add_argument("--port", type=_port, default=5000)
    u.add_argument("overrides", nargs="*", help="sweep.key=value (e.g. sweep.study_name=...)")
    u.set_defaults(func=_ui)

    g = sub.add_parser("dashboard", help="optuna-dashboard on the study's Optuna storage")
    g.add_argument("--file", default="experiments.yaml")
    g.add_argument("--host", default="127.0.0.1")
    g.add_argument("--port", type=_port, default=8080)
    g.add_argument("overrides", nargs="*", help="sweep.key=value (e.g. sweep.study_name=...)")
    g.set_defaults(func=_dashboard)

    d = sub.add_parser("data", help="provision MNIST under ROOT/MNIST/raw and check its MD5s")
    d.add_argument("--root", default="data")
    d.set_defaults(func=_data)

    b = sub.add_parser("bench", help="seed pipeline vs ours, seconds per epoch, over rounds")
    b.add_argument("--root", default="data")
    b.add_argument("--rounds", type=_positive, default=3, help="rounds (each runs every pipeline)")
    b.add_argument("--device", default="auto")
    b.add_argument("--out", default="reports/bench.json")
    b.set_defaults(func=_bench)
    return p


# MLflow's chatter, one to three lines per run: schema creation, the system-metrics monitor's
# start and stop, and a warning about the pickle format we choose on purpose (it loads back as
# the nn.Module a user can evaluate and train; see tracking.mlflow_store.RunHandle.log_model).
QUIET_LOGGERS = {"mlflow.store.db.utils": "WARNING", "mlflow.system_metrics": "WARNING"}
QUIET_LOGGERS |= {"mlflow.pytorch": "ERROR", "alembic": "WARNING"}


def main(argv: list[str] | None = None) -> int:
    import logging

    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    args = build_parser().parse_args(argv)
    return run_reporting_errors(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
