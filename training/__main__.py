"""python -m training {train,evaluate,export}: the FER model lifecycle."""

from __future__ import annotations

import argparse
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model from a config file and overrides")
    t.add_argument("--config", help="TOML or YAML training config")
    t.add_argument("--data", action="append", help="training folder tree or fer2013.csv (repeatable)")
    t.add_argument("--val", help="validation folder or CSV (default: stratified holdout)")
    t.add_argument("--model", help="registry name, e.g. moodnet, dcnn, mini_xception")
    t.add_argument("--epochs", type=int)
    t.add_argument("--run-dir")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key (JSON for lists/dicts)")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    from training.config import ConfigError, build_config
    from training.data import DatasetError
    from training.models import UnknownModelError
    try:
        if args.command == "train":
            from training.train import train
            cfg = build_config(args.config, args.set, data=args.data, val=args.val, model=args.model,
                               epochs=args.epochs, run_dir=args.run_dir)
            run = train(cfg)
            print(f"run written to {run}")
        return 0
    except (ConfigError, DatasetError, UnknownModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; resume by running the same command again", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
