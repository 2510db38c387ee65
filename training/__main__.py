"""python -m training {train,evaluate,export}: the FER model lifecycle."""

from __future__ import annotations

import argparse
import json
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
    t.add_argument("--weights", help="transfer models: imagenet, none (offline) or a weights file")
    t.add_argument("--run-dir")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key (JSON for lists/dicts)")
    e = sub.add_parser("evaluate", help="accuracy, per-class metrics and confusion matrix of a model")
    e.add_argument("--model", required=True, help=".keras/.h5, .tflite or SavedModel directory")
    e.add_argument("--data", required=True, help="class-folder directory or fer2013.csv")
    e.add_argument("--usage", help="CSV Usage split (Training, PublicTest, PrivateTest) or a sub-folder")
    e.add_argument("--json", help="write the metrics JSON here")
    e.add_argument("--tta", action="store_true", help="average the face and its mirror image")
    e.add_argument("--report-dir", help="also write confusion matrix, curves and reports here")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--ferplus", metavar="VOTES.csv",
                   help="FER+ votes for --data: adds ferplus {accuracy, n} and ece to the result")
    e.add_argument("--corruptions", action="store_true",
                   help="also measure accuracy under each camera corruption and print the table")
    x = sub.add_parser("export", help="write .keras, .h5, the serving artefact and the model card")
    src = x.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="run directory holding best.keras and run_config.json")
    src.add_argument("--model", help="a .keras checkpoint")
    x.add_argument("--out", default="models", help="output folder (default: models)")
    x.add_argument("--name", default="emotion", help="file stem (default: emotion)")
    x.add_argument("--val", help="validation data (default: the run's validation data)")
    x.add_argument("--calibration-data", help="training data for int8 calibration (default: the run's)")
    x.add_argument("--ferplus", metavar="VOTES.csv",
                   help="FER+ votes for the validation data (default: the run's ferplus_val)")
    d = sub.add_parser("pack-device", help="write the training arrays as a bundle for a GPU machine "
                       "(docs/GPU_TRAINING.md)")
    d.add_argument("--config", required=True, help="the training config whose targets to pack")
    d.add_argument("--out", default=".device_bundle", help="bundle folder (default: .device_bundle)")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    k = sub.add_parser("keras-from-device", help="rebuild a .keras from device_train's weight chunks")
    k.add_argument("--weights", required=True, help="folder holding weights.json and weights.NNN.bin")
    k.add_argument("--out", required=True, help="the .keras file to write")
    return p


def _device(args) -> None:
    from training import device_bundle
    if args.command == "pack-device":
        from training.config import build_config
        manifest = device_bundle.pack(build_config(args.config, args.set), args.out)
        total = json.loads(manifest.read_text())["total_bytes"]
        print(f"bundle {manifest.parent}: {total / 2**20:.1f} MiB")
    else:
        print(f"wrote {device_bundle.keras_from_chunks(args.weights, args.out)}")


def _evaluate(args) -> None:
    from training.evaluate import evaluate
    from training.evaluate import format_corruptions
    result = evaluate(args.model, args.data, args.usage, tta=args.tta, json_out=args.json,
                      report_dir=args.report_dir, batch_size=args.batch_size, ferplus=args.ferplus,
                      corruptions=args.corruptions)
    extra = f" (without TTA {result['accuracy_plain']:.4f})" if args.tta else ""
    print(f"accuracy {result['accuracy']:.4f} on {result['n']} faces{extra}")
    if "ferplus" in result:
        print(f"FER+ majority accuracy {result['ferplus']['accuracy']:.4f} on {result['ferplus']['n']} "
              f"faces; ECE ({result['ece_bins']} bins) {result['ece']:.4f} on {result['ece_n']}")
    if "corruptions" in result:
        print(format_corruptions(result["corruptions"], result["accuracy"]))


def _export(args) -> None:
    from training.export import export
    card = export(run=args.run, model=args.model, out=args.out, name=args.name, val=args.val,
                  calibration_data=args.calibration_data, ferplus=args.ferplus)
    serving = json.loads(card.read_text())["serving"]
    print(f"model card {card}; serving {serving['format']} {serving['path']} ({serving['variant']})")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        import keras  # noqa: F401  (the services' production install has no TensorFlow/Keras)
    except ImportError:
        print("error: training needs the training dependencies: make venv-train "
              "(pip install -r requirements-train.lock)", file=sys.stderr)
        return 2
    from training.config import ConfigError, build_config
    from training.device_bundle import BundleError
    from training.data import DatasetError
    from training.ferplus import FerPlusError
    from training.export import ExportError
    from training.models import UnknownModelError
    from training.serving import ServingError
    try:
        if args.command == "train":
            from training.train import train
            cfg = build_config(args.config, args.set, data=args.data, val=args.val, model=args.model,
                               epochs=args.epochs, run_dir=args.run_dir, weights=args.weights)
            run = train(cfg)
            print(f"run written to {run}")
        elif args.command == "evaluate":
            _evaluate(args)
        elif args.command == "export":
            _export(args)
        else:
            _device(args)
        return 0
    except (BundleError, ConfigError, DatasetError, FerPlusError, UnknownModelError, ServingError, ExportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; resume by running the same command again", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
