#!/usr/bin/env python3
"""Vowpal Wabbit on the ctr trainer's own examples, for the speed and quality comparison.

The examples come from `ctr_movielens --vw DIR` (or any `ctr::export_vw_examples` output):
one `1 |f slot:value ...` / `-1 |f ...` line per example, in the trainer's order, with the
trainer's split. This trains VW (pip package `vowpalwabbit`, 9.11.9 when measured) with logistic
loss on the same hashed slots (`-b BITS`), as FTRL-LR (`--ftrl`) and as a factorization machine
(`--lrq ff8`: rank-8 interactions of the one namespace with itself), scores the holdout and
prints the AUC and logloss, and the wall time of training end to end (reading the text
included, as Trainyard's is).

    python3 -m venv /tmp/vwenv && /tmp/vwenv/bin/pip install vowpalwabbit
    cargo run --release -p trainyard-train --example ctr_movielens -- /tmp/ml --vw /tmp/ml-vw
    /tmp/vwenv/bin/python bench/ctr_vw.py /tmp/ml-vw [--bits 22] [--passes 5]
"""
import argparse
import math
import os
import sys
import tempfile
import time

from vowpalwabbit import Workspace


def auc(scored):
    scored.sort(key=lambda pair: pair[0])
    positives = sum(1 for _, label in scored if label)
    negatives = len(scored) - positives
    area, below, index = 0.0, 0, 0
    while index < len(scored):
        end, group_positives, group_negatives = index, 0, 0
        while end < len(scored) and scored[end][0] == scored[index][0]:
            group_positives += scored[end][1]
            group_negatives += 1 - scored[end][1]
            end += 1
        area += group_positives * (below + 0.5 * group_negatives)
        below += group_negatives
        index = end
    return area / (positives * negatives)


def run(directory, split, name, options, bits, passes):
    train_path = os.path.join(directory, f"{split}.train.vw")
    holdout_path = os.path.join(directory, f"{split}.holdout.vw")
    with tempfile.TemporaryDirectory() as scratch:
        model_path = os.path.join(scratch, "model")
        cache = os.path.join(scratch, "cache")
        multi_pass = f"--passes {passes} -k --cache_file {cache} --holdout_off" if passes > 1 else ""
        started = time.perf_counter()
        trainer = Workspace(
            f"-d {train_path} -b {bits} --loss_function logistic {options} {multi_pass} -f {model_path} --quiet"
        )
        trainer.finish()
        train_seconds = time.perf_counter() - started
        scorer = Workspace(f"-i {model_path} -t --quiet")
        scored, loss = [], 0.0
        with open(holdout_path) as holdout:
            for line in holdout:
                label = line.startswith("1 ")
                margin = scorer.predict(line)
                probability = 1.0 / (1.0 + math.exp(-max(-35.0, min(35.0, margin))))
                clamped = min(max(probability, 1e-7), 1 - 1e-7)
                loss -= math.log(clamped if label else 1 - clamped)
                scored.append((probability, 1 if label else 0))
        scorer.finish()
    print(f"{split:6} vw {name:8} auc {auc(scored):.4f} logloss {loss / len(scored):.4f} | "
          f"train {train_seconds:.2f} s ({passes} passes, text in)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory")
    parser.add_argument("--bits", type=int, default=22)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--skip-lrq", action="store_true", help="skip the (slow) rank-8 interaction model")
    arguments = parser.parse_args()
    for split in ("time", "random"):
        if not os.path.exists(os.path.join(arguments.directory, f"{split}.train.vw")):
            continue
        run(arguments.directory, split, "ftrl_lr",
            "--ftrl --ftrl_alpha 0.05 --ftrl_beta 1 --l1 1e-4 --l2 1e-4", arguments.bits, arguments.passes)
        run(arguments.directory, split, "sgd_lr", "", arguments.bits, arguments.passes)
        if not arguments.skip_lrq:
            run(arguments.directory, split, "fm_lrq8", "--lrq ff8", arguments.bits, arguments.passes)


if __name__ == "__main__":
    sys.exit(main())
