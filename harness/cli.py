"""Command line: `s7 data | train | bench` (the Makefile's targets call these).

Every user error ends as one line on stderr and exit code 2, with no traceback.
"""

import argparse
import sys
from pathlib import Path

from harness.errors import UserError


def _train(args: argparse.Namespace) -> None:
    from harness.config import Experiments, load_config_file, parse_overrides
    from harness.runner import describe, run_training

    overrides = parse_overrides(args.overrides)
    if args.config:
        cfg = load_config_file(args.config, overrides)
    else:
        cfg = Experiments(args.file).resolve(args.exp, overrides)
    print(
        f"training {cfg.name}: seed {cfg.seed}, {cfg.epochs} epochs, batch {cfg.batch_size}, "
        f"device {cfg.device}",
        flush=True,
    )
    print(describe(run_training(cfg)))


def _data(args: argparse.Namespace) -> None:
    from harness.data import MD5, ensure_mnist

    raw = ensure_mnist(args.root)
    for name, digest in MD5.items():
        print(f"{raw / name}  md5 {digest}  ok")


def _bench(args: argparse.Namespace) -> None:
    from harness import bench

    bench.run(Path(args.out), root=args.root, device=args.device)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="s7", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser(
        "train", help="train one experiment from experiments.yaml, tracked in MLflow"
    )
    t.add_argument("--file", default="experiments.yaml", help="the experiments file")
    t.add_argument("--exp", default=None, help="experiment name (default: default_experiment)")
    t.add_argument("--config", default=None, help="a standalone config such as best_config.yaml")
    t.add_argument("overrides", nargs="*", help="key=value overrides, dotted for nested keys")
    t.set_defaults(func=_train)

    d = sub.add_parser("data", help="provision MNIST under ROOT/MNIST/raw and check its MD5s")
    d.add_argument("--root", default="data")
    d.set_defaults(func=_data)

    b = sub.add_parser("bench", help="seed pipeline vs ours, seconds per epoch")
    b.add_argument("--root", default="data")
    b.add_argument("--device", default="auto")
    b.add_argument("--out", default="reports/bench.json")
    b.set_defaults(func=_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
