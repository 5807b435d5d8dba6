"""``csadetect grooming score`` and ``csadetect models {train,evaluate}`` (DESIGN.md §11).

:func:`register` adds the commands to an argparse subparsers object (``csadetect.cli.main`` calls
it); each handler is ``(args) -> exit code``. JSON Lines go to stdout, human messages to stderr.
A bad input line gives ``error: line N: reason`` on stderr (never the line's text), the other
lines are still processed, and the exit code is 1 at the end. Also runnable on its own:
``python -m csadetect.cli.models grooming score PATH``.

Models are loaded through :mod:`csadetect.models.loader` (``--model``: a directory, a ``.keras``
file or a ``gs://``-style URL; default: the reference model). ``models train`` and ``models
evaluate`` drive the training tools, which are not part of the package: see :func:`training_tool`.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections import OrderedDict
from types import ModuleType
from typing import Iterator, Optional

from csadetect.cli.output import emit, say
from csadetect.core.timeutil import parse_time
from csadetect.models import ModelError

REQUIRED = {"conversation_id": str, "sender": str, "sent_at": str, "text": str, "participants_minor": bool}
BATCH_CONVERSATIONS = 256
# the evaluation split's rewrites (issue 17's attack benchmarks): option -> (training tool, its forms,
# its function (convs, form, seed=...), the word for what was done, what is said of each form or of any)
REWRITES = {
    "obfuscate": ("grooming_obfuscate", "ATTACKS", "obfuscate", "obfuscated",
                  {"*": "half the words of one writer per conversation, by {form}"}),
    "regroup": ("grooming_bursts", "FORMS", "regroup", "regrouped", {
        "pieces": "the same words sent as pieces of 1-3 words by one writer per conversation",
        "halves": "the same words sent as two messages for each of one writer's messages of 4+ words",
        "joined": "the same words sent as one message for each run of one writer's consecutive messages",
        "everyone": "the same words sent as two messages for each message of 4+ words, by every sender"}),
    "pad": ("grooming_padding", "FORMS", "pad", "padded",
            {"*": "one writer per conversation pads every message with everyday sentences of a held-out "
                  "language ({form})"}),
}


def _threshold(value: str) -> float:
    try:
        t = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("threshold must be a number") from None
    if not 0.0 <= t <= 1.0:
        raise argparse.ArgumentTypeError("threshold must be between 0 and 1")
    return t


def training_tool(module: str) -> ModuleType:
    """``training.<module>``, the one place the command line reaches the training tools. They live
    in the source tree's top-level ``training/``, outside the wheel (docs/architecture.md), so
    ``models train`` and ``models evaluate`` work from a checkout's root (``python -m csadetect
    models ...``, or pytest there); from an installed package without them this exits with one
    line saying where they are."""
    try:
        return importlib.import_module(f"training.{module}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("training", f"training.{module}"):
            raise
        raise SystemExit(f"error: training.{module} is not installed: the training tools live in training/ of the "
                         "source tree, outside the csadetect package; from a checkout's root run `python -m csadetect "
                         "models ...` or the tools themselves, `python -m training.<tool> --help`") from None


def check_message(obj) -> Optional[str]:
    """Why a parsed JSON value is not a valid message (None when it is). Never quotes text."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    for key, kind in REQUIRED.items():
        if key not in obj:
            return f"missing field '{key}'"
        if not isinstance(obj[key], kind):
            return f"field '{key}' must be {'true/false' if kind is bool else 'a string'}"
    if not obj["conversation_id"]:
        return "field 'conversation_id' is empty"
    try:
        parse_time(obj["sent_at"], field="sent_at")
    except ValueError as exc:
        return str(exc)
    return None


def read_messages(lines) -> tuple["OrderedDict[str, list]", list[str]]:
    """Group valid messages by conversation (first-appearance order); collect one-line errors."""
    convs: "OrderedDict[str, list]" = OrderedDict()
    errors = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            errors.append(f"line {number}: not valid JSON")
            continue
        reason = check_message(obj)
        if reason:
            errors.append(f"line {number}: {reason}")
            continue
        convs.setdefault(obj["conversation_id"], []).append(obj)
    return convs, errors


def _rounded(result: dict) -> dict:
    out = {"conversation_id": result["conversation_id"],
           "score": None if result["score"] is None else round(result["score"], 6),
           "flagged": result["flagged"], "flagged_at_message": result["flagged_at_message"],
           "evidence": [{"pattern": e["pattern"], "message_index": e["message_index"], "score": round(e["score"], 4)}
                        for e in result["evidence"]]}
    if not result.get("scanned", True):
        out["scanned"] = False
    else:
        out["language"] = result.get("language")
        out["language_supported"] = result.get("language_supported")
    return out


def _batches(items, size) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _quiet_tensorflow() -> None:
    """Start TensorFlow through the model loader, its start-up noise (CUDA, oneDNN) kept off
    stderr unless ``csadetect --verbose``, before anything else imports it (the training tools,
    ``set_threads``)."""
    from csadetect.models.loader import import_tensorflow  # lazy: Beam and TensorFlow, only for these commands

    import_tensorflow()


def _load_model(args):
    """The model of ``args.model`` (default: the reference model), or None after a one-line error."""
    from csadetect.models.grooming import GroomingModel, set_threads  # lazy: Beam (the model loader)

    _quiet_tensorflow()  # before set_threads, which imports TensorFlow itself
    set_threads(args.threads)
    try:
        return GroomingModel.load(args.model, undo_obfuscation=not getattr(args, "as_written", False))
    except ModelError as exc:
        say(f"error: {exc}")
        return None


def cmd_grooming_score(args) -> int:
    try:
        if args.path == "-":
            convs, errors = read_messages(sys.stdin)
        else:
            with open(args.path, encoding="utf-8", errors="replace") as fh:
                convs, errors = read_messages(fh)
    except OSError as exc:
        say(f"error: {args.path}: {exc.strerror or type(exc).__name__}")
        return 1
    for e in errors:
        say(f"error: {e}")
    model = _load_model(args)
    if model is None:
        return 1
    threshold = model.threshold if args.threshold is None else args.threshold
    for chunk in _batches(list(convs.values()), BATCH_CONVERSATIONS):
        for result in model.score_conversations(chunk, threshold):
            emit(_rounded(result))
    if errors:
        say(f"{len(errors)} bad line(s) skipped")
    return 1 if errors else 0


def cmd_models_evaluate(args) -> int:
    if sum(map(bool, (args.grooming, args.embedding, args.classifier))) != 1:
        say("error: choose one model to evaluate: --grooming, --embedding or --classifier")
        return 2
    _quiet_tensorflow()
    if args.embedding:
        argv = ["--n-heldout", str(args.n_heldout)] if args.n_heldout else []
        if args.model:
            argv += ["--model", args.model]
        if args.out:
            argv += ["--out", args.out]
        return training_tool("evaluate_images").main(argv)
    if args.classifier:
        return _evaluate_classifier(args)
    corpus = training_tool("grooming_corpus")
    evaluate_heldout = training_tool("train_grooming").evaluate_heldout
    model = _load_model(args)
    if model is None:
        return 1
    if args.data:
        try:
            convs = corpus.read_corpus(args.data, "eval")
        except (OSError, ValueError, KeyError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            say(f"error: cannot read evaluation data in {args.data}: {reason}")
            return 1
        source, seed = os.path.join(args.data, "eval"), 1 if args.seed is None else args.seed
    else:
        training = model.metadata.get("training", {})
        seed = int(training.get("seed", 1)) if args.seed is None else args.seed
        n = int(training.get("conversations", 2000))
        n = int(training.get("conversations_per_language", n))
        languages = list(training.get("languages", ["en"]))
        say(f"generating the held-out synthetic evaluation split (seed {seed}, {','.join(languages)}) ...")
        convs = corpus.generate_splits(n, seed, args.n_eval, languages=languages)["eval"]
        source = f"training.grooming_corpus seed {seed} split eval ({','.join(languages)})"
    if args.balanced_replies:
        convs = training_tool("grooming_augment").balance_replies(convs, seed)  # the seed train_grooming balances with
        source += ", reply-balanced"
        say("reply-balanced: the benign conversations carry children's replies at the grooming conversations' rate")
    for flag, (module, forms, rewrite, done, says) in REWRITES.items():
        form = getattr(args, flag)
        if not form:
            continue
        tool = training_tool(module)
        if form not in getattr(tool, forms):
            say(f"error: --{flag} {form!r} is not one of {', '.join(getattr(tool, forms))}")
            return 2
        convs = getattr(tool, rewrite)(convs, form, seed=seed)
        source += f", {done} ({form})"
        say(f"{done}: " + says.get(form, says.get("*", "")).format(form=form))
    if args.as_written:
        source += ", read as written"
    metrics = evaluate_heldout(model, convs, source, threshold=args.threshold, log=say)
    say(language_table(metrics))
    plots = _reliability_plots(metrics, args.out or os.path.join("out", "models", "grooming-eval"))
    say(f"reliability plots: {', '.join(plots)}")
    lat = metrics["latency_messages_until_flag"]
    summary = {"model": "grooming", "model_version": metrics["model_version"], "data": source,
               "conversations": metrics["conversations"], "threshold": metrics["threshold"],
               "precision": round(metrics["precision"], 4), "recall": round(metrics["recall"], 4),
               "f0_5": round(metrics["f0_5"], 4), "false_positive_rate": round(metrics["false_positive_rate"], 4),
               "ece": round(metrics["ece"], 4),
               "latency_messages_until_flag": {"median": lat["median"], "p90": lat["p90"]},
               "latency_messages_after_first_pattern": metrics["latency_messages_after_first_pattern"],
               "evidence_message_level": {k: round(v, 4) for k, v in metrics["evidence_message_level"].items()},
               "messages_per_s": metrics["throughput_messages_per_s"],
               "tp": metrics["tp"], "fp": metrics["fp"], "fn": metrics["fn"], "tn": metrics["tn"],
               "not_scanned": metrics["not_scanned"],
               "f1": round(metrics["f1"], 4), "latency_weighted_f1": round(metrics["latency_weighted_f1"], 4),
               "precision_hard_negatives": round(metrics["precision_hard_negatives"], 4),
               "unsupported_language": metrics["unsupported_language"],
               "by_language": {code: _language_summary(m) for code, m in metrics["by_language"].items()},
               "reliability_plots": plots}
    emit(summary if not args.full else {**metrics, "reliability_plots": plots})
    return 0


def _language_summary(m: dict) -> dict:
    lat = m["latency_messages_until_flag"]
    keys = ("precision", "recall", "f1", "f0_5", "latency_weighted_f1", "speed", "latency_p", "ece",
            "precision_hard_negatives")
    return {**{k: round(m[k], 4) for k in keys}, "median_until_flag": lat["median"], "p90_until_flag": lat["p90"],
            "conversations": m["conversations"], "tp": m["tp"], "fp": m["fp"], "fn": m["fn"],
            "hard_negative_false_positives": m["hard_negative_false_positives"], "threshold": round(m["threshold"], 4),
            "supported": m["supported"], "language_detection_accuracy": m["language_detection_accuracy"],
            "ece_interval_95": _round4(m["ece_spread"]["interval_95"]),
            "ece_calibrated_p95": _round4(m["ece_spread"]["calibrated_p95"])}


def _round4(x):
    return None if x is None else [round(v, 4) for v in x] if isinstance(x, list) else round(x, 4)


def language_table(metrics: dict) -> str:
    """The per-language results as a markdown table (stderr of ``models evaluate --grooming``)."""
    head = ("| language | conversations | precision | recall | F1 | F0.5 | latency-weighted F1 | median / p90 "
            "messages until flag | ECE (95% bootstrap; a calibrated model's p95) | precision, hard negatives | "
            "threshold |")
    lines = [head, "|" + "---|" * 11]
    for code, m in metrics["by_language"].items():
        lat = m["latency_messages_until_flag"]
        lines.append(f"| {code}{'' if m['supported'] else ' (unsupported)'} | {m['conversations']} | "
                     f"{m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['f0_5']:.3f} | "
                     f"{m['latency_weighted_f1']:.3f} | {_num(lat['median'])} / {_num(lat['p90'])} | {_ece(m)} | "
                     f"{m['precision_hard_negatives']:.3f} ({m['hard_negative_false_positives']} FP in "
                     f"{m['hard_negative_conversations']}) | {m['threshold']:.3f} |")
    return "\n".join(lines)


def _ece(m: dict) -> str:
    """``0.071 (0.058-0.087; 0.036)``: the ECE, its bootstrap interval, and the ECE a perfectly
    calibrated model would reach by chance at this size in 95% of draws (``ece_spread``)."""
    spread = m.get("ece_spread") or {}
    if spread.get("interval_95") is None:
        return f"{m['ece']:.3f}"
    lo, hi = spread["interval_95"]
    return f"{m['ece']:.3f} ({lo:.3f}-{hi:.3f}; {spread['calibrated_p95']:.3f})"


def _num(x) -> str:
    return "-" if x is None else f"{x:.1f}".removesuffix(".0")


def _reliability_plots(metrics: dict, out_dir: str) -> list[str]:
    """One reliability plot (PNG) per language: mean calibrated score against the grooming rate
    per score bin, with the bin sizes; returns the files written."""
    import matplotlib  # lazy: only for `models evaluate --grooming`

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # lazy: as above

    os.makedirs(out_dir, exist_ok=True)
    written = []
    for code, m in metrics["by_language"].items():
        bins = [b for b in m["reliability"] if b["n"]]
        fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
        ax.plot([b["mean_score"] for b in bins], [b["positive_rate"] for b in bins], marker="o", label="model")
        for b in bins:
            ax.annotate(str(b["n"]), (b["mean_score"], b["positive_rate"]), textcoords="offset points",
                        xytext=(4, -10), fontsize=7)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="calibrated conversation score (bin mean)",
               ylabel="share of grooming conversations",
               title=f"{code}: ECE {m['ece']:.3f} ({m['conversations']} conversations)")
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, f"reliability-grooming-{code}.png")
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def _evaluate_classifier(args) -> int:
    """Held-out metrics of the new-material classifier on its benign proxy task; with ``--out``
    also writes the scored, labelled examples that ``csadetect tune`` reads."""
    from csadetect.models.classifier import NewMaterialClassifier, evaluate, write_scores  # lazy: Beam (loader)
    from csadetect.models.embedding import EmbeddingModel  # lazy: as above

    corpus = training_tool("classifier_corpus")
    try:
        classifier = NewMaterialClassifier.load(args.model)
        embedder = EmbeddingModel.load(args.embedding_model)
    except ModelError as exc:
        say(f"error: {exc}")
        return 1
    n = args.n_heldout or 1000
    seed = 0 if args.seed is None else args.seed
    say(f"generating {n} held-out proxy images (split eval, seed {seed}) and scoring them ...")
    items = [(img, label, f"{info['kind']}:{info['background']}") for img, label, info
             in corpus.dataset("eval", n, seed, with_info=True)]
    metrics = evaluate(classifier, embedder, items, threshold=args.threshold)
    if args.out:
        write_scores(classifier, embedder, items, args.out)
        say(f"wrote scored examples to {args.out} (input for csadetect tune)")
    summary = {"model": "new-material", "model_version": classifier.version, "data": f"classifier_corpus eval seed {seed}",
               "n": metrics["n"], "roc_auc": round(metrics["roc_auc"], 4), "ece": round(metrics["ece"], 4)}
    for key in ("at_review", "at_report", "at_threshold"):
        if key in metrics:
            summary[key] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics[key].items()}
    emit(summary if not args.full else metrics)
    return 0


def cmd_models_train(args) -> int:
    if not args.grooming:
        say("error: choose a model to train: --grooming")
        return 2
    _quiet_tensorflow()
    argv = ["--n", str(args.n), "--seed", str(args.seed), "--epochs", str(args.epochs), "--threads", str(args.threads)]
    if args.out:
        argv += ["--out", args.out]
    return training_tool("train_grooming").main(argv)


def register(subparsers) -> None:
    """Add ``grooming score`` and ``models {evaluate,train}`` to a subparsers object."""
    g = subparsers.add_parser("grooming", help="grooming-risk scoring of conversations (JSON Lines)")
    gsub = g.add_subparsers(dest="grooming_command", metavar="COMMAND")
    gsub.required = True
    p = gsub.add_parser("score", help="score conversations: one JSON line per conversation",
                        description="Read JSON Lines messages {conversation_id, sender, sent_at, text, "
                                    "participants_minor} in any order; print one JSON line per conversation.")
    p.add_argument("path", metavar="PATH", help="JSON Lines file of messages ('-' for stdin)")
    p.add_argument("--model", default=None, help="model directory (default: the reference model in the package)")
    p.add_argument("--threshold", type=_threshold, default=None, help="flag threshold (default: the model's)")
    p.add_argument("--threads", type=int, default=1, help="TensorFlow threads (default 1)")
    p.add_argument("--as-written", action="store_true",
                   help="read messages as written, without undoing look-alike letters, invisible characters, digits "
                        "for letters and spelled-out words (the setting grooming.undo_obfuscation: false)")
    p.set_defaults(func=cmd_grooming_score)

    m = subparsers.add_parser("models", help="train and evaluate the reference models")
    msub = m.add_subparsers(dest="models_command", metavar="COMMAND")
    msub.required = True
    e = msub.add_parser("evaluate", help="precision, recall, F0.5, latency on held-out synthetic data")
    e.add_argument("--grooming", action="store_true", help="evaluate the grooming model")
    e.add_argument("--embedding", action="store_true",
                   help="evaluate known-image matching: PDQ vs embedding vs combined recall per edit, false matches")
    e.add_argument("--classifier", action="store_true",
                   help="evaluate the new-material classifier: precision, recall, F0.5, AUC, ECE on held-out images")
    e.add_argument("--n-heldout", type=int, default=None, help="held-out items: --embedding originals (default 100), --classifier images (default 1000)")
    e.add_argument("--out", default=None, metavar="PATH",
                   help="--embedding: write the result (.json); --classifier: write scored examples (.jsonl/.parquet) "
                        "for tune; --grooming: directory for the reliability plots, one PNG per language "
                        "(default out/models/grooming-eval)")
    e.add_argument("--embedding-model", default=None, help="--classifier: embedding model dir (default: the reference)")
    e.add_argument("--data", default=None, help="corpus directory written by training.grooming_corpus (uses DATA/eval)")
    e.add_argument("--model", default=None, help="model directory (default: the reference model)")
    e.add_argument("--threshold", type=_threshold, default=None)
    e.add_argument("--seed", type=int, default=None, help="corpus seed when generating (default: the training seed)")
    e.add_argument("--n-eval", type=int, default=None,
                   help="conversations to generate per language (default: training n / 2)")
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--balanced-replies", action="store_true",
                   help="--grooming: put children's replies into the benign conversations too, at the grooming "
                        "conversations' rate, so a reply alone tells nothing (the plain split's replies follow only "
                        "a groomer's line; see the grooming model card)")
    e.add_argument("--regroup", default=None, metavar="FORM",
                   help="--grooming: cut the same words into other messages first: pieces, halves, joined, "
                        "everyone (training/grooming_bursts.py; benchmarks/bursts.md)")
    e.add_argument("--pad", default=None, metavar="FORM",
                   help="--grooming: pad one writer's messages per conversation with another language first: append, "
                        "prepend, wrap, run-on, one, interleaved (training/grooming_padding.py; benchmarks/padding.md)")
    e.add_argument("--obfuscate", default=None, metavar="ATTACK",
                   help="--grooming: obfuscate half the words of one writer per conversation first (homoglyphs, "
                        "invisible, styled, marks, leet, spelled, doubled, mixed; training/grooming_obfuscate.py)")
    e.add_argument("--as-written", action="store_true",
                   help="--grooming: read messages as written (grooming.undo_obfuscation: false)")
    e.add_argument("--full", action="store_true", help="print every metric (per-family flag rates included)")
    e.set_defaults(func=cmd_models_evaluate)
    t = msub.add_parser("train", help="train a reference model on synthetic data")
    t.add_argument("--grooming", action="store_true", help="train the grooming model")
    t.add_argument("--out", default=None, help="output directory (default: the package's reference model)")
    t.add_argument("--n", type=int, default=2000, help="training conversations per language (default 2000)")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--epochs", type=int, default=2)
    t.add_argument("--threads", type=int, default=1)
    t.set_defaults(func=cmd_models_train)


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(prog="python -m csadetect.cli.models")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    register(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
