"""Command line: `python -m cli.findings [--quick] [--claims C,...] [--file F] [--spec S] [--report-only] ...`.

Trains the runs the findings still miss (skipping every finished one), then writes the report.
Every user error ends as one line on stderr and exit code 2, with no traceback.
"""

import argparse
import sys

from cli.errors import Parser, run_reporting_errors
from harness.urls import masked


def _run(args: argparse.Namespace) -> None:
    from findings import tuned
    from findings.execute import run_missing
    from findings.plan import build_plan
    from findings.report import write_report
    from findings.spec import load
    from findings.store import collect

    only = None if args.claims is None else [c.strip() for c in args.claims.split(",")]
    experiments = load(args.file, spec_file=args.spec)
    spec, where = experiments.section("findings"), experiments.files["findings"]
    plan = build_plan(spec, experiments, args.quick, args.tracking_uri, args.artifact_root, only)
    jobs = plan.unique_jobs()
    print(
        f"findings ({'quick' if plan.quick else 'full'}) from {where}: {len(plan.claims)} claims, "
        f"{len(jobs)} distinct runs, MLflow experiment '{plan.mlflow_experiment}' at "
        f"{masked(plan.tracking_uri)}",
        flush=True,
    )
    if not args.report_only:
        done = run_missing(plan, log=lambda line: print(line, flush=True))
        print(f"trained {done.ran}, skipped {done.skipped} finished, {done.diverged} diverged")
        if plan.tuned:
            print("the lr-by-batch-size study (findings.tuned_lr):", flush=True)
            tuned.run(plan, experiments)
    records = collect(plan.tracking_uri, plan.mlflow_experiment, plan.hashes)
    print(f"wrote {write_report(plan, records, tuned.read(plan, experiments, records))}")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m cli.findings", description=__doc__)
    p.add_argument("--quick", action="store_true", help="the spec's quick seeds and overrides")
    p.add_argument("--file", default="experiments.yaml", help="the experiments file")
    p.add_argument(
        "--spec",
        default=None,
        help="a file with a top-level 'findings:' key (seeds, overrides, report, tuned_lr; "
        "default: the experiments file's own 'findings:' section)",
    )
    p.add_argument(
        "--claims",
        default=None,
        metavar="NAME[,NAME...]",
        help="only these claims of findings/claims.py (and tuned_lr for the lr-by-batch study); "
        "default: all, with the figures' settings",
    )
    p.add_argument("--report-only", action="store_true", help="train nothing; report what exists")
    p.add_argument("--tracking-uri", default=None, help="MLflow store (default: the file's)")
    p.add_argument("--artifact-root", default=None, help="artifact folder for a local store")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_reporting_errors(_run, args)


if __name__ == "__main__":
    sys.exit(main())
