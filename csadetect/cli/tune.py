"""``csadetect tune``: choose a classifier threshold for a target precision or FPR (DESIGN §5).

Prints one JSON line on stdout (threshold, precision, recall, FPR, counts, 95% Wilson intervals)
and a human summary on stderr, writes the PR and ROC curves as PNG beside the scores (or in
``--curves-dir``), and with ``--write-config`` stores the threshold and its provenance in a YAML
config under ``--config-key`` (required: one of the schema's score thresholds, and the one for the
detector that scored the examples: their ``detector`` column, or ``--detector``). The maths and
the readers are :mod:`csadetect.tuning.tune`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from csadetect.cli.output import emit, error, handled, say
from csadetect.core.fs import sha256_file
from csadetect.core.timeutil import utc_iso
from csadetect.tuning.tune import (
    DETECTORS, TUNABLE, TuneError, check_config_key, choose_threshold, detectors_in, read_examples,
    write_config, write_curves,
)


def _fraction(value: str) -> float:
    try:
        f = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number") from None
    if not 0.0 <= f <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return f


@handled(tuple)  # an OSError (a file where --curves-dir should be, say): one line, exit 1, as every command
def _cmd_tune(args) -> int:
    try:
        return _run(args)
    except TuneError as exc:
        error(str(exc))
        return 2


def _detector(args, path: Path):
    """What scored the examples: the file's ``detector`` column, else ``--detector``; None when
    neither says. Raises TuneError for a file of several detectors or one that contradicts the flag."""
    found = detectors_in(path)
    if len(found) > 1:
        raise TuneError(f"{path}: scores of {len(found)} detectors ({', '.join(found)}): tune one detector at a time")
    if found and args.detector and found[0] != args.detector:
        raise TuneError(f"{path} holds {found[0]} scores, not {args.detector} (--detector)")
    return found[0] if found else args.detector


def _run(args) -> int:
    quiet = getattr(args, "quiet", False)
    path = Path(args.scores)
    scores, labels = read_examples(path, args.score_column, args.label_column, quiet=quiet)
    if args.write_config:  # before any work: the key must exist and fit the scores
        check_config_key(args.config_key, _detector(args, path))
    elif args.config_key:
        raise TuneError("--config-key needs --write-config FILE (the YAML file the threshold goes to)")
    result = choose_threshold(scores, labels, target_precision=args.target_precision, target_fpr=args.target_fpr)

    curves_dir = Path(args.curves_dir) if args.curves_dir else path.parent
    curves_dir.mkdir(parents=True, exist_ok=True)
    pr_path, roc_path = curves_dir / f"{path.stem}-pr.png", curves_dir / f"{path.stem}-roc.png"
    write_curves(scores, labels, result, pr_path, roc_path)
    result["curves"] = {"pr": str(pr_path), "roc": str(roc_path)}

    if args.write_config:
        provenance = {
            "dataset": str(path),
            "dataset_sha256": sha256_file(path),
            "n": result["n"],
            "target": result["target"],
            "precision": result["precision"],
            "recall": result["recall"],
            "chosen_at": utc_iso(),
            "model_version": args.model_version,
        }
        write_config(args.write_config, args.config_key, result["threshold"], provenance)
        result["config"] = {"path": str(args.write_config), "key": args.config_key}

    emit(result)
    pl, ph = result["precision_ci95"]
    rl, rh = result["recall_ci95"]
    say(f"threshold {result['threshold']:.6g}: precision {result['precision']:.4f} [{pl:.3f}, {ph:.3f}], "
          f"recall {result['recall']:.4f} [{rl:.3f}, {rh:.3f}], FPR {result['fpr']:.4f} "
          f"(tp={result['tp']} fp={result['fp']} fn={result['fn']} tn={result['tn']} n={result['n']}); "
          f"curves: {pr_path}, {roc_path}"
        + (f"; wrote {args.config_key} to {args.write_config}" if args.write_config else ""))
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("tune", help="choose a score threshold for a target precision or FPR (DESIGN §5)")
    p.add_argument("--scores", required=True, metavar="FILE", help="scored, labelled examples (.parquet, .jsonl, .json)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-precision", type=_fraction, metavar="P", help="lowest threshold with precision >= P")
    target.add_argument("--target-fpr", type=_fraction, metavar="F", help="lowest threshold with FPR <= F")
    p.add_argument("--score-column", default="score")
    p.add_argument("--label-column", default="label", help="1/0, true/false or confirmed/manifestly_unfounded")
    p.add_argument("--model-version", default=None, help="recorded in the provenance")
    p.add_argument("--curves-dir", default=None, metavar="DIR", help="where PR/ROC PNGs go (default: beside --scores)")
    p.add_argument("--write-config", default=None, metavar="FILE", help="YAML file to store the threshold in")
    p.add_argument("--config-key", default=None, metavar="KEY",
                   help=f"with --write-config (required there): {', '.join(TUNABLE)}")
    p.add_argument("--detector", default=None, choices=DETECTORS,
                   help="what scored the examples, when they have no detector column (checked against --config-key)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_tune)
    return p
