"""CTR on MovieLens-100k: Trainyard's trainers against Vowpal Wabbit on the same examples and the
same split (run it through bench/ctr.sh, which builds the release binary and the venv).

1. Starts a release server on a throwaway data dir, loads MovieLens-100k with the kit
   (scripts/movielens-kit.sh: one `expose` per rating, a `click` when the rating is >= 4, the
   movies as documents, the users' age, gender and occupation as USER records) and stops it.
2. For each split (`time`: the last 10 % of the time range held out, the product's evaluation;
   `random`: a seeded 10 % of the examples, the split of the published anchors):
   - `trainyard train-offline --export-vw` writes the examples each model trains and evaluates
     on (their user-id features carry per-model values), as Vowpal Wabbit text lines whose
     feature names are Trainyard's hashed slots (so `vw -b <hash_bits>` uses the very same
     slots); VW's logistic regressions get ftrl_lr's examples, its lrq fm's;
   - `trainyard train-offline` trains fm and ftrl_lr end to end (snapshot, join, features,
     epochs, evaluation) and scores 100 items per request for the latency figures;
   - Vowpal Wabbit 9.11.9 (PyPI) trains on the exported train file with the same number of
     passes — logistic regression with its default adaptive SGD and with `--ftrl` and
     Trainyard's hyper-parameters (against ftrl_lr), and `--lrq ff<k>`, its
     factorization-machine-like low-rank quadratic (against fm) — and predicts the holdout file;
     its AUC is computed here. Its time is parsing + learning + predicting the text files: it
     does not include making them, so the comparison flatters VW.
3. Prints a table and the verdicts of the issue (Trainyard at least 2x faster end to end with an
   equal or better AUC; AUC targets 0.71 time split, 0.78 random split) and writes it under
   bench/results/.

Peak memory: Trainyard's is the train-offline process's VmHWM; VW's the child process's
ru_maxrss.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "data"))

import check_movielens as kit  # noqa: E402  (Server, the kit runner, environments)

APP = "movielens"
# MovieLens-100k ends on 1998-04-22: the training time of every run (windows end here).
NOW = 893_300_000
CREATE = {
    "id_field": "item_id",
    "title_field": "title",
    "tags_field": "genres",
    "user_fields": "age,gender,occupation",
    "training_window_days": "365",
}
SPLITS = ("time", "random")
MODELS = ("fm", "ftrl_lr")
TARGETS = {"time": 0.71, "random": 0.78}
SCORE_REQUESTS = 2000

VW_CHILD = r"""
import json, resource, sys, time
from vowpalwabbit import pyvw
arguments, train, holdout, predictions = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
started = time.monotonic()
learner = pyvw.Workspace(f"{arguments} -d {train} -f {predictions}.model --quiet")
learner.finish()
trained = time.monotonic()
scorer = pyvw.Workspace(f"-i {predictions}.model -t -d {holdout} -p {predictions} --link logistic --quiet")
scorer.finish()
done = time.monotonic()
print(json.dumps({"train_seconds": trained - started, "seconds": done - started,
                  "peak_resident_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


# Two AUCs closer than this count as equal: the run-to-run spread of Trainyard's two Hogwild
# threads is about ±0.0005, and single-threaded ftrl_lr reproduces VW's FTRL (the same algorithm
# with the same hyper-parameters) to 0.0001. The verdict also prints the holdout AUC's standard
# error (Hanley & McNeil), ten times larger, for scale.
AUC_EQUAL_WITHIN = 0.001


def auc_standard_error(auc, positives, negatives):
    """Hanley & McNeil (1982): the standard error of an AUC over `positives` and `negatives`."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives
    )
    return variance ** 0.5


def auc_verdict(ours, best):
    if ours >= best:
        return "better than or equal to"
    if best - ours <= AUC_EQUAL_WITHIN:
        return f"equal (within {AUC_EQUAL_WITHIN}) to"
    return "NOT equal to or better than"


def say(message):
    print(f"ctr-bench: {message}", file=sys.stderr, flush=True)


def auc_of(scored):
    return kit.auc_of(scored)


def train_offline(binary, data_dir, parameters, extra=()):
    command = [binary, "train-offline", "--data-dir", data_dir, "--app", APP, "--function", "ctr", "--now", str(NOW)]
    for name, value in parameters.items():
        command += ["--param", f"{name}={value}"]
    command += list(extra)
    finished = subprocess.run(command, env=kit.without_trainyard_settings(), capture_output=True, text=True)
    if finished.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{finished.stderr[:3000]}")
    return json.loads(finished.stdout)


def run_vw(python, arguments, train_file, holdout_file, work_dir):
    predictions = os.path.join(work_dir, "predictions.txt")
    for stale in (predictions, predictions + ".model", train_file + ".cache"):
        if os.path.exists(stale):
            os.remove(stale)
    finished = subprocess.run(
        [python, "-c", VW_CHILD, arguments, train_file, holdout_file, predictions], capture_output=True, text=True
    )
    if finished.returncode != 0:
        raise SystemExit(f"vw {arguments} failed:\n{finished.stderr[:3000]}")
    figures = json.loads(finished.stdout.strip().splitlines()[-1])
    with open(holdout_file) as labels, open(predictions) as scores:
        scored = [(float(score.split()[0]), line.startswith("1 ")) for line, score in zip(labels, scores)]
    figures["auc"] = auc_of(scored)
    figures["holdout_examples"] = len(scored)
    return figures


def load_movielens(binary, cache_dir, work_dir):
    server = kit.Server(binary, work_dir)
    try:
        environment = dict(kit.client_environment(), TRAINYARD_BIN=binary)
        command = ["bash", kit.KIT_SCRIPT, "--cache-dir", cache_dir, server.address, APP]
        status = kit.run_process_group(command, environment)
        if status != 0:
            raise SystemExit(f"the kit failed (status {status}):\n{server.output()}")
    finally:
        server.stop()
    return server.data_dir


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", required=True, help="the release trainyard binary")
    parser.add_argument("--cache-dir", default=kit.default_cache_dir())
    parser.add_argument("--epochs", default=None, help="override the catalog's default epochs")
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "bench", "results"))
    arguments = parser.parse_args()
    binary = os.path.abspath(arguments.bin)
    work_dir = tempfile.mkdtemp(prefix="trainyard-ctr-bench.")
    say(f"work dir {work_dir}")
    data_dir = load_movielens(binary, arguments.cache_dir, work_dir)

    rows, verdicts = [], []
    for split in SPLITS:
        split_parameters = dict(CREATE, holdout_split=split)
        if arguments.epochs:
            split_parameters["epochs"] = arguments.epochs
        # Each model's own examples: the features' values depend on the model (the user scales).
        export_dirs = {}
        for model in MODELS:
            export_dirs[model] = os.path.join(work_dir, f"vw-{split}-{model}")
            os.makedirs(export_dirs[model])
            exported = train_offline(
                binary, data_dir, dict(split_parameters, model=model), ["--export-vw", export_dirs[model]]
            )
            say(f"{split} split, {model}: exported {exported['export']}")
        trainyard = {}
        for model in MODELS:
            report = train_offline(
                binary, data_dir, dict(split_parameters, model=model), ["--score-bench", str(SCORE_REQUESTS)]
            )
            metrics = report["metrics"]
            trainyard[model] = report
            rows.append({
                "split": split, "trainer": f"trainyard {model}", "seconds": report["seconds"], "auc": metrics["auc"],
                "logloss": metrics.get("logloss"), "baseline_auc": metrics.get("baseline_auc"),
                "examples_per_second": metrics.get("examples_per_second"),
                "peak_mib": (report.get("peak_resident_bytes") or 0) / 2**20,
                "score_p99_ms": (report.get("scoring") or {}).get("p99_ms"),
                "score_p50_ms": (report.get("scoring") or {}).get("p50_ms"),
            })
            say(f"{split} trainyard {model}: {rows[-1]}")
        parameters = trainyard["ftrl_lr"]["parameters"]
        bits, epochs, factors = parameters["hash_bits"], parameters["epochs"], trainyard["fm"]["parameters"]["factors"]
        base = f"--loss_function logistic -b {bits} --passes {epochs} -c -k --holdout_off"
        ftrl = f"--ftrl --ftrl_alpha {parameters['learning_rate']} --ftrl_beta {parameters['ftrl_beta']} --l1 {parameters['l1']} --l2 {parameters['l2']}"
        # Each Trainyard model against the VW configurations of its family.
        vw_configs = {
            "sgd_lr": ("ftrl_lr", base),
            "ftrl_lr": ("ftrl_lr", f"{base} {ftrl}"),
            "lrq": ("fm", f"{base} --lrq ff{factors}"),
        }
        vw = {}
        for name, (family, vw_arguments) in vw_configs.items():
            export_dir = export_dirs[family]
            figures = run_vw(
                sys.executable, vw_arguments, os.path.join(export_dir, "train.vw"), os.path.join(export_dir, "holdout.vw"),
                export_dir,
            )
            figures["family"] = family
            vw[name] = figures
            rows.append({
                "split": split, "trainer": f"vw {name} ({vw_arguments})", "seconds": figures["seconds"], "auc": figures["auc"],
                "logloss": None, "baseline_auc": None, "examples_per_second": None,
                "peak_mib": figures["peak_resident_bytes"] / 2**20, "score_p99_ms": None, "score_p50_ms": None,
            })
            say(f"{split} vw {name}: {rows[-1]}")
        for model in MODELS:
            ours = trainyard[model]
            family = [figures for figures in vw.values() if figures["family"] == model]
            fastest = min(figures["seconds"] for figures in family)
            best_auc = max(figures["auc"] for figures in family)
            speedup = fastest / ours["seconds"]
            metrics = ours["metrics"]
            positives = metrics["holdout_positives"]
            error = auc_standard_error(metrics["auc"], positives, metrics["holdout_examples"] - positives)
            verdicts.append(
                f"{split} split, {model}: Trainyard {ours['seconds']:.2f} s end to end, AUC {metrics['auc']:.4f} "
                f"(standard error {error:.4f}); VW of the same family: fastest {fastest:.2f} s, best AUC {best_auc:.4f} "
                f"-> {speedup:.1f}x ({'ok' if speedup >= 2 else 'NOT'} >= 2x), AUC {auc_verdict(metrics['auc'], best_auc)} "
                "VW's best"
            )
        best = max(trainyard.values(), key=lambda report: report["metrics"]["auc"])
        target = TARGETS[split]
        verdicts.append(
            f"{split} split: best Trainyard AUC {best['metrics']['auc']:.4f} "
            f"({'ok' if best['metrics']['auc'] >= target else 'NOT'} >= target {target}); "
            f"smoothed-popularity baseline {best['metrics'].get('baseline_auc'):.4f}"
        )

    lines = [
        f"# ctr on MovieLens-100k, {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"machine: {os.cpu_count()} cores; parameters: {json.dumps(CREATE)}",
        "",
        "| split | trainer | seconds | AUC | logloss | baseline AUC | examples/s | peak MiB | score 100 items p50 / p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(value, digits=4):
        return "-" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))

    for row in rows:
        lines.append(
            f"| {row['split']} | {row['trainer']} | {cell(row['seconds'], 2)} | {cell(row['auc'])} | {cell(row['logloss'])} | "
            f"{cell(row['baseline_auc'])} | {cell(row['examples_per_second'], 0)} | {cell(row['peak_mib'], 0)} | "
            f"{cell(row['score_p50_ms'], 3)} / {cell(row['score_p99_ms'], 3)} |"
        )
    lines += ["", *[f"- {verdict}" for verdict in verdicts]]
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(arguments.out, exist_ok=True)
    path = os.path.join(arguments.out, f"ctr-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.md")
    with open(path, "w") as file:
        file.write(text)
    say(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
