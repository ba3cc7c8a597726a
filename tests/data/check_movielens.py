#!/usr/bin/env python3
"""End-to-end check of the MovieLens kit: run it through `bash scripts/movielens-kit.sh --check`.

It starts a fresh server (a throwaway data dir, fixed test keys; stopped on exit, whatever
happens), runs scripts/movielens-kit.sh against it, and checks what the server holds against
its OWN reading of the raw MovieLens files (it imports nothing from the kit):

* `trainyard stats --json` (DescribeDatasetStats): documents, users, items, behavior events by
  type and by day, distinct users and items, first and last times, the query log's counts,
  nothing left uncompacted, the readiness verdicts;
* the compacted Parquet files, read by an outside engine (DuckDB, with Hive partitioning): the
  same counts, every behavior event, document and user field for field, every search's rn,
  user, time and hit count against the raw files, and each file's `dt=` partition against the
  event time inside it;
* the query log's counts, which depend on the seeded derivation, against the numbers recorded
  in docs/movielens-kit.md (QUERY_LOG below): a change of the derivation must update both.

The kit runs twice against the same server: app group `movielens` keeps MovieLens' own times
(1997-98: every check above, the files' recorded sha256, nothing ready to train), and
`movielens_now` is loaded with --shift-to-now (the same checks with the shift, the shifted files
against the unshifted ones, everything ready). On `movielens_now` it then trains through the
SDK (CreateFunctionInstance, CreateFunctionTask, GetFunctionTask polled until done):

* hot and hint (global, and a personalized hint): the served lists (QueryHot hit=30, QueryHint
  hit=10) against the top lists it computes itself from the query log the kit pushed
  (`query_log.jsonl` of the kit's --out dir), with the counting rules of crates/train/src/
  searches.rs written again here, the window ending at the task's StartTime;
* pop: ExtendInfo's holdout `auc` against `baseline_auc`, and QueryPopularity's scores in [0, 1].
* ctr (fm and ftrl_lr, the kit's fields, the whole history): the holdout `auc` above the server's
  `baseline_auc` and above the strongest of a family of smoothed-popularity baselines computed
  here from the ratings on the trainer's time split (whose size is checked against the server's
  `holdout_examples`); QueryCtr's answers for 100 items.

Ends with `movielens: N passed, M failed`; the exit status is 1 when anything failed.
"""

import argparse
import collections
import contextlib
import datetime
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile

import duckdb
from alibabacloud_opensearch20171225 import models
from alibabacloud_opensearch20171225.client import Client
from alibabacloud_tea_openapi import utils_models as open_api_models
from alibabacloud_tea_openapi.utils_models import Config
from darabonba.runtime import RuntimeOptions

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KIT_SCRIPT = os.path.join(REPO_ROOT, "scripts", "movielens-kit.sh")
ACCESS_KEY_ID = "TYMOVIELENSCHECKKEY001"
ACCESS_KEY_SECRET = "movielens-check-secret-do-not-use-elsewhere"
APP = "movielens"  # MovieLens' own times
APP_NOW = "movielens_now"  # loaded with --shift-to-now: the data falls in the training windows
START_TIMEOUT_SECONDS = 60
TRAIN_TIMEOUT_SECONDS = 300  # per task; the tasks take about a second each
HEARTBEAT_MILLIS = 100  # the runner reports progress this often (default 1000): more values to see

WHEEL_NAME = "recbole-1.2.1-py3-none-any.whl"
WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
DAY = 86_400

# What the seeded derivation gives (docs/movielens-kit.md, "Measured counts").
QUERY_LOG = {
    "searches": 13867,
    "raw_query_searches": 12484,
    "raw_query_searches_with_results": 11851,
    "zero_hit_searches": 633,
    "distinct_queries": 2066,
    "top_queries": [("drama", 2077), ("comedy", 1029), ("action", 570), ("thriller", 430), ("romance", 257)],
}

# The kit's files without --shift-to-now, byte for byte: the derivation is reproducible.
FILE_SHA256 = {
    "movies.jsonl": "5d6463815bd7e8abf26711af86faa609ae2fd4621d956af6344e2c61cba87b0f",
    "item_info.jsonl": "b967b3bc6b1afd36a95ce74f187f9673863937f4449632b00e0b210c82224253",
    "users.jsonl": "184f114ce950ea122937ab2bbe19e8c8153a1d2d0ea5051b44e84870e8e49c18",
    "behavior.jsonl": "de39b93159fbb768ea6ae3955651b08d41f3d7b6600ff577c760d10cf71a2b08",
    "query_log.jsonl": "6465b3c65912e68e110787e174ac666548d66211372c06a5999907975bcabdb6",
}

# Training (crates/train/src/hot.rs, hint.rs, searches.rs; the create parameters' defaults).
HOT_WINDOW_DAYS = 14
HOT_TOP_N = 100
SESSION_GAP_SECONDS = 30 * 60
HOT_HIT = 30  # QueryHot's largest hit
HINT_HIT = 10  # QueryHint's largest hit for a global model
BOUNDARY_SECONDS = 5  # a search this close to a window edge could fall either side of it
# pop instances: (instance, create parameters, whether the check requires auc > baseline_auc).
# Both are required: with the defaults (the last 30 days) and over the whole history (213 days;
# 240 covers them) the model beats the raw-count baseline on this data (docs/movielens-kit.md,
# "Training on the kit", has the figures). An instance marked False would only be printed, with
# the server's own warning checked against its numbers.
POP_INSTANCES = (
    ("pop_default", {}, True),
    ("pop_history", {"training_window_days": "240"}, True),
)

RESULTS = {"passed": 0, "failed": 0}


def say(message):
    print(f"movielens-check: {message}", file=sys.stderr, flush=True)


SECTION = []  # the app group the current checks are about, shown before each check's name


@contextlib.contextmanager
def section(name):
    SECTION.append(name)
    try:
        yield
    finally:
        SECTION.pop()


def check(name, actual, expected):
    """One named check: passes when actual == expected; prints the difference otherwise."""
    if SECTION:
        name = f"[{SECTION[-1]}] {name}"
    if actual == expected:
        RESULTS["passed"] += 1
        print(f"ok    {name}", flush=True)
        return True
    RESULTS["failed"] += 1
    shown = lambda value: (repr(value)[:600] + "...") if len(repr(value)) > 600 else repr(value)  # noqa: E731
    print(f"FAIL  {name}\n        expected {shown(expected)}\n        got      {shown(actual)}", flush=True)
    return False


def default_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "trainyard", "movielens")


# ---- the raw files, read here on their own ------------------------------------------------


def sha256_of(path):
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


class Raw:
    def __init__(self, wheel):
        digest = sha256_of(wheel)
        if digest != WHEEL_SHA256:
            raise SystemExit(f"{wheel} has sha256 {digest}, not the pinned {WHEEL_SHA256}")
        with zipfile.ZipFile(wheel) as archive:

            def table(suffix):
                text = archive.read(f"recbole/dataset_example/ml-100k/ml-100k.{suffix}").decode("utf-8")
                lines = text.split("\n")
                names = [column.partition(":")[0] for column in lines[0].split("\t")]
                return [dict(zip(names, line.split("\t"))) for line in lines[1:] if line.strip()]

            self.ratings = table("inter")
            self.movies = table("item")
            self.users = table("user")
        self.clicks = [rating for rating in self.ratings if float(rating["rating"]) >= 4]

    def events(self, shift):
        """(user, item, type, time) of every behavior event, with the times shifted."""
        events = collections.Counter()
        for rating in self.ratings:
            moment = int(rating["timestamp"]) + shift
            events[rating["user_id"], rating["item_id"], "expose", moment] += 1
            if float(rating["rating"]) >= 4:
                events[rating["user_id"], rating["item_id"], "click", moment] += 1
        return events


def day_text(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d")


# The hit rule of docs/movielens-kit.md, written again here: a query hits a movie when each of
# its words is a word of the movie's title (without parenthesised parts, article in front, lower
# case) or one of its genres (lower case).
ARTICLE = re.compile(r"^(.*), (The|A|An|La|Le|Les|L'|Il|Der|Die|Das|El)$")
WORD = re.compile(r"[^\W_]+(?:['-][^\W_]+)*")


def movie_words(movie):
    title = re.sub(r"\s*\([^)]*\)", "", movie["movie_title"]).strip()
    match = ARTICLE.match(title)
    if match:
        title = match.group(2) + ("" if match.group(2).endswith("'") else " ") + match.group(1)
    words = set(WORD.findall(title.lower()))
    return words | {genre.lower() for genre in movie["class"].split()}


def hits_of(raw):
    words_of = [movie_words(movie) for movie in raw.movies]
    cache = {}

    def hits(query):
        if query not in cache:
            wanted = set(WORD.findall(query.lower()))
            cache[query] = sum(1 for words in words_of if wanted and wanted <= words)
        return cache[query]

    return hits


# ---- the server ---------------------------------------------------------------------------


class Server:
    def __init__(self, binary, work_dir):
        self.work_dir = work_dir
        self.data_dir = os.path.join(work_dir, "data")
        os.makedirs(self.data_dir)
        # Only this check's settings: a TRAINYARD_DATABASE_URL (or any other) from outside must
        # not point the throwaway server at someone's data.
        environment = dict(
            without_trainyard_settings(),
            TRAINYARD_ACCESS_KEY_ID=ACCESS_KEY_ID,
            TRAINYARD_ACCESS_KEY_SECRET=ACCESS_KEY_SECRET,
            TRAINYARD_SHUTDOWN_GRACE_SECONDS="2",
            TRAINYARD_TASK_HEARTBEAT_MILLIS=str(HEARTBEAT_MILLIS),
        )
        self.stdout_path = os.path.join(work_dir, "server.out")
        self.log_path = os.path.join(work_dir, "server.log")
        with open(self.stdout_path, "wb") as stdout, open(self.log_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data_dir],
                stdout=stdout,
                stderr=stderr,
                env=environment,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        self.address = None
        while self.address is None:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited before listening:\n{self.output()}")
            if time.monotonic() > deadline:
                raise SystemExit(f"the server did not print its address within {START_TIMEOUT_SECONDS} s")
            with open(self.stdout_path) as file:
                match = re.search(r"^trainyard listening on http://([0-9.]+:[0-9]+)\s*$", file.read(), re.M)
            if match:
                self.address = match.group(1)
            else:
                time.sleep(0.1)
        say(f"server (pid {self.process.pid}) listening on {self.address}, data in {self.data_dir}")

    def output(self, lines=40):
        text = ""
        for path in (self.stdout_path, self.log_path):
            with open(path, errors="replace") as file:
                text += "".join(file.readlines()[-lines:])
        return text

    def alive(self):
        return self.process.poll() is None

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                say("the server did not stop within 5 s; killing it")
                self.process.kill()
                self.process.wait()


def run_process_group(command, environment):
    """Runs command in its own process group; on any interruption the whole group is ended
    (the script and the `trainyard import` it is running), not only its first process."""
    process = subprocess.Popen(command, env=environment, start_new_session=True)
    try:
        return process.wait()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def without_trainyard_settings():
    return {name: value for name, value in os.environ.items() if not name.startswith("TRAINYARD_")}


def client_environment():
    environment = dict(without_trainyard_settings(), TRAINYARD_ACCESS_KEY_ID=ACCESS_KEY_ID, TRAINYARD_ACCESS_KEY_SECRET=ACCESS_KEY_SECRET)
    for variable in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        environment.pop(variable, None)
    environment["no_proxy"] = environment["NO_PROXY"] = "127.0.0.1,localhost"
    return environment


def sdk_client(address):
    config = Config(access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET, endpoint=address, protocol="http")
    return Client(config)


def app_group_id(address, app):
    return sdk_client(address).describe_app_group(app).body.result.id


# ---- the checks ---------------------------------------------------------------------------


def check_stats(stats, raw, shift, parquet_files):
    ratings = raw.ratings
    times = [int(rating["timestamp"]) + shift for rating in ratings]
    by_day = collections.defaultdict(collections.Counter)
    for rating, moment in zip(ratings, times):
        by_day[day_text(moment)]["expose"] += 1
        if float(rating["rating"]) >= 4:
            by_day[day_text(moment)]["click"] += 1
    behavior = stats["Behavior"]
    check("stats: documents of table movies", stats["Tables"], [{"Table": "movies", "Documents": len(raw.movies)}])
    check("stats: 1682 documents", len(raw.movies), 1682)
    check("stats: USER records", stats["Users"], len(raw.users))
    check("stats: 943 users", len(raw.users), 943)
    check("stats: ITEM_INFO records", stats["ItemInfos"], len(raw.movies))
    check("stats: expose events = ratings (100000)", behavior["ByType"].get("expose"), 100000)
    check("stats: click events = ratings >= 4", behavior["ByType"].get("click"), len(raw.clicks))
    check("stats: behavior types", sorted(behavior["ByType"]), ["click", "expose"])
    check("stats: behavior events", behavior["Events"], len(ratings) + len(raw.clicks))
    check("stats: distinct users", behavior["DistinctUsers"], len({rating["user_id"] for rating in ratings}))
    check("stats: distinct items", behavior["DistinctItems"], len({rating["item_id"] for rating in ratings}))
    check("stats: first and last event", (behavior["FirstTime"], behavior["LastTime"]), (min(times), max(times)))
    check(
        "stats: behavior events by day and type",
        [(day["Day"], day["ByType"]) for day in behavior["ByDay"]],
        [(day, dict(sorted(counts.items()))) for day, counts in sorted(by_day.items())],
    )
    searches = stats["QueryLog"]
    check(
        "stats: query log counts as derived",
        {
            "searches": searches["Searches"],
            "raw_query_searches": searches["RawQuerySearches"],
            "raw_query_searches_with_results": searches["RawQuerySearchesWithResults"],
            "distinct_queries": searches["DistinctQueries"],
        },
        {key: QUERY_LOG[key] for key in ("searches", "raw_query_searches", "raw_query_searches_with_results", "distinct_queries")},
    )
    check("stats: nothing left in the log", stats["RecordsInLog"], 0)
    check("stats: Parquet files = files on disk", stats["ParquetFiles"], parquet_files)
    ready = {function["FunctionName"]: function["Ready"] for function in stats["Functions"]}
    recent = shift != 0  # unshifted, every event is from 1997-98: no recent window has any
    check(
        "stats: readiness with default windows",
        ready,
        {
            "ctr": recent, "pop": recent, "category": True, "hot": recent, "hint": recent,
            "suggest": True, "analyzer": True, "termweight": True, "synonym": True,
        },
    )
    return searches


def check_parquet(base, raw, shift, stats_query_log, pushed_query_log):
    """Reads the compacted files with DuckDB (Hive partitioning) and checks them."""
    database = duckdb.connect()

    def files(kind):
        return f"read_parquet('{base}/kind={kind}/**/*.parquet', hive_partitioning=true)"

    def rows(sql):
        return database.execute(sql).fetchall()

    every_file = f"read_parquet('{base}/**/*.parquet', hive_partitioning=true, union_by_name=true)"
    check(
        "duckdb: rows per kind over all files (kind= partitions)",
        dict(rows(f"SELECT kind, count(*) FROM {every_file} GROUP BY kind")),
        {
            "documents": len(raw.movies),
            "item_info": len(raw.movies),
            "users": len(raw.users),
            "behavior": len(raw.ratings) + len(raw.clicks),
            "query_log": QUERY_LOG["searches"],
        },
    )
    check(
        "duckdb: app_group_id partition",
        rows(f"SELECT DISTINCT app_group_id FROM {every_file}"),
        [(int(base.rsplit("=", 1)[1]),)],
    )

    # Behavior: every event, and the dt= partition of each against its time.
    events = collections.Counter()
    for user, item, kind, moment, biz, trace, item_type, rn in rows(
        f"SELECT user_id, item_id, bhv_type, bhv_time, biz_id, trace_id, item_type, rn FROM {files('behavior')}"
    ):
        events[user, item, kind, moment] += 1
        events["constant fields", biz, trace, item_type] += 1
        events["rn", rn == f"ml100k-{user}-{moment - shift}"] += 1
    expected = raw.events(shift)
    total = sum(expected.values())
    expected["constant fields", "movielens", "Alibaba", "movie"] = total
    expected["rn", True] = total
    check("duckdb: every behavior event (user, item, type, time, biz_id, trace_id, item_type, rn)", events, expected)
    check(
        "duckdb: behavior dt= partition = day of bhv_time",
        rows(
            f"SELECT count(*) FROM {files('behavior')} "
            "WHERE dt <> DATE '1970-01-01' + CAST(bhv_time // 86400 AS INTEGER)"
        ),
        [(0,)],
    )
    check(
        "duckdb: distinct users and items",
        rows(f"SELECT count(DISTINCT user_id), count(DISTINCT item_id) FROM {files('behavior')}"),
        [(len({rating["user_id"] for rating in raw.ratings}), len({rating["item_id"] for rating in raw.ratings}))],
    )

    # Documents and users, field for field.
    documents = {
        key: json.loads(fields)
        for key, fields in rows(
            f"SELECT primary_key, fields_json FROM {files('documents')} WHERE table_name = 'movies' AND command = 'add'"
        )
    }
    wanted_documents = {}
    for movie in raw.movies:
        document = {"item_id": movie["item_id"], "title": movie["movie_title"], "genres": movie["class"].split()}
        if re.fullmatch(r"[0-9]{4}", movie["release_year"]):
            document["year"] = int(movie["release_year"])
        wanted_documents[movie["item_id"]] = document
    check("duckdb: every movie document", documents, wanted_documents)
    users = {key: json.loads(fields) for key, fields in rows(f"SELECT key, fields_json FROM {files('users')}")}
    check(
        "duckdb: every USER record",
        users,
        {
            user["user_id"]: {
                "user_id": user["user_id"], "age": int(user["age"]), "gender": user["gender"],
                "occupation": user["occupation"], "zip_code": user["zip_code"],
            }
            for user in raw.users
        },
    )
    check(
        "duckdb: ITEM_INFO keys",
        sorted(key for (key,) in rows(f"SELECT key FROM {files('item_info')}")),
        sorted(movie["item_id"] for movie in raw.movies),
    )

    # The query log: counts, and each search against the raw files.
    searches = rows(
        f"SELECT query, raw_query, hits, timestamp, rn, user_id, biz_id, dt FROM {files('query_log')}"
    )
    queries = collections.Counter(search[0] for search in searches)
    check(
        "duckdb: query log counts as derived",
        {
            "searches": len(searches),
            "raw_query_searches": sum(1 for search in searches if search[1]),
            "raw_query_searches_with_results": sum(1 for search in searches if search[1] and search[2] > 0),
            "zero_hit_searches": sum(1 for search in searches if search[2] == 0),
            "distinct_queries": len(queries),
            "top_queries": queries.most_common(5),
        },
        QUERY_LOG,
    )
    check(
        "duckdb: query log by day = stats",
        {str(day): count for day, count in rows(f"SELECT dt, count(*) FROM {files('query_log')} GROUP BY dt")},
        stats_query_log["ByDay"],
    )
    pushed = collections.Counter()
    with open(pushed_query_log) as file:
        for line in file:
            search = json.loads(line)
            pushed[tuple(search[field] for field in ("query", "raw_query", "hits", "timestamp", "rn", "user_id", "biz_id"))] += 1
    check(
        "duckdb: every search = the kit's query_log.jsonl, the file the training checks count",
        collections.Counter(search[:7] for search in searches),
        pushed,
    )
    click_requests = {(click["user_id"], int(click["timestamp"])) for click in raw.clicks}
    hits = hits_of(raw)
    problems = collections.Counter()
    for query, raw_query, hit_count, moment, rn, user, biz, dt in searches:
        match = re.fullmatch(r"ml100k-([0-9]+)-([0-9]+)", rn or "")
        if not match or (match.group(1), int(match.group(2))) not in click_requests:
            problems["rn is not a request with a click"] += 1
        elif match.group(1) != user:
            problems["user_id is not the rn's user"] += 1
        elif not 1 <= int(match.group(2)) + shift - moment <= 30:
            problems["not 1..30 s before its click"] += 1
        if hit_count != hits(query):
            problems["hits is not the number of matching movies"] += 1
        if hit_count == 0 and not raw_query:
            problems["a system query (raw_query false) without results"] += 1
        if biz != "movielens":
            problems["biz_id is not movielens"] += 1
        if str(dt) != day_text(moment):
            problems["dt= partition is not the day of timestamp"] += 1
    check("duckdb: every search (rn, user, time, hits, biz_id, dt) against the raw files", dict(problems), {})


def check_shifted_files(out_dir, now_dir, before, after):
    """--shift-to-now, as the kit wrote the files it pushed to APP_NOW: whole days, the newest event
    on yesterday (UTC) at the time of the run, and otherwise the same files as without the shift."""
    with open(os.path.join(now_dir, "summary.json")) as file:
        shift = json.load(file)["shift_seconds"]
    check("--shift-to-now: a whole number of days", shift % DAY, 0)
    newest_day = (893286638 + shift) // DAY
    check("--shift-to-now: the newest event is on yesterday (UTC)", newest_day in {before // DAY - 1, after // DAY - 1}, True)
    with open(os.path.join(now_dir, "behavior.jsonl")) as file:
        first = json.loads(file.readline())
    check("--shift-to-now: first event shifted", first["bhv_time"], 874724710 + shift)
    check(
        "--shift-to-now: documents, items and users are the recorded files",
        {name: sha256_of(os.path.join(now_dir, name)) for name in ("movies.jsonl", "item_info.jsonl", "users.jsonl")},
        {name: FILE_SHA256[name] for name in ("movies.jsonl", "item_info.jsonl", "users.jsonl")},
    )
    for name, field in (("behavior.jsonl", "bhv_time"), ("query_log.jsonl", "timestamp")):
        differences = collections.Counter()
        with open(os.path.join(out_dir, name)) as original, open(os.path.join(now_dir, name)) as shifted:
            lines = 0
            for original_line, shifted_line in itertools.zip_longest(original, shifted):
                lines += 1
                if original_line is None or shifted_line is None:
                    differences["a file has more lines"] += 1
                    continue
                record, moved = json.loads(original_line), json.loads(shifted_line)
                record[field] += shift
                if record != moved:
                    differences["a record differs by more than the shift of " + field] += 1
        check(f"--shift-to-now: {name} = the unshifted one, {field} + shift, line for line ({lines} lines)", dict(differences), {})
    return shift


# ---- training on APP_NOW ------------------------------------------------------------------

# normalize_query of crates/core/src/text.rs, written again: full-width ASCII forms (and the
# ideographic space) to half-width, ASCII letters to lower case, whitespace runs to one space,
# trimmed. Python's isspace() also counts U+001C..U+001F, which Rust's is_whitespace does not.
NOT_RUST_WHITESPACE = frozenset("\x1c\x1d\x1e\x1f")


def normalize_query(text):
    characters = []
    pending_space = False
    for character in text:
        if character == "\u3000":
            character = " "
        elif "\uff01" <= character <= "\uff5e":
            character = chr(ord(character) - 0xFEE0)
        if character.isspace() and character not in NOT_RUST_WHITESPACE:
            pending_space = bool(characters)
            continue
        if pending_space:
            characters.append(" ")
            pending_space = False
        characters.append(character.lower() if character.isascii() else character)
    return "".join(characters)


def counted_searches(searches):
    """(time, normalised query, user_id, rn) of the searches hot and hint count, in any window:
    raw_query (typed), with results, not empty once normalised."""
    counted = []
    for search in searches:
        if search.get("raw_query") is not True or not (search.get("hits") or 0) > 0:
            continue
        query = normalize_query(search.get("query") or "")
        if query:
            counted.append((search["timestamp"], query, search.get("user_id") or None, search.get("rn") or None))
    return counted


def session_counts(counted, start, end):
    """pv of each query over the counted searches with start <= time < end: once per session of
    its user (a user's searches, any query, less than 30 minutes apart chain into one); without a
    user_id, once per (rn, query); with neither, every search."""
    by_user = collections.defaultdict(list)
    pv = collections.Counter()
    requests = set()
    for moment, query, user, rn in counted:
        if not start <= moment < end:
            continue
        if user is not None:
            by_user[user].append((moment, query))
        elif rn is not None:
            if (rn, query) not in requests:
                requests.add((rn, query))
                pv[query] += 1
        else:
            pv[query] += 1
    for searches in by_user.values():
        searches.sort()
        session, previous, pairs = 0, None, set()
        for moment, query in searches:
            if previous is not None and moment - previous >= SESSION_GAP_SECONDS:
                session += 1
            previous = moment
            pairs.add((query, session))
        for query, _ in pairs:
            pv[query] += 1
    return pv


def top_list(pv, limit):
    """The `limit` most searched: pv descending, then the query ascending."""
    return sorted(pv.items(), key=lambda entry: (-entry[1], entry[0]))[:limit]


def expected_hot(counted, now):
    """hot's list for a task started at `now` (Unix seconds): (query, pv, tags) of the top_n."""
    window = HOT_WINDOW_DAYS * DAY
    current = top_list(session_counts(counted, now - window, now + 1), HOT_TOP_N)
    previous = dict(top_list(session_counts(counted, now - 2 * window, now - window), HOT_TOP_N))
    entries = []
    for query, pv in current:
        if query not in previous:
            tags = 0  # new
        elif pv + 1 >= 2 * (previous[query] + 1):
            tags = 2  # surging
        else:
            tags = 1  # hot
        entries.append((query, pv, tags))
    return entries


def near_window_edges(counted, now):
    """Counted searches within BOUNDARY_SECONDS of an edge of hot's two windows."""
    edges = {
        "the window's start (now - 14 days)": now - HOT_WINDOW_DAYS * DAY,
        "the window's end (now)": now,
        "the previous window's start (now - 28 days)": now - 2 * HOT_WINDOW_DAYS * DAY,
    }
    return {
        label: sorted(moment for moment, *_ in counted if abs(moment - edge) <= BOUNDARY_SECONDS)
        for label, edge in edges.items()
    }


def serve(client, route, action, query):
    """A serving route (`/v3/openapi/apps/APP_NOW/actions/<route>`) through the SDK's generic
    call_api, signed like every other call; returns the body."""
    params = open_api_models.Params(
        action=action, version="2017-12-25", protocol="HTTP", pathname=f"/v3/openapi/apps/{APP_NOW}/actions/{route}",
        method="GET", auth_type="AK", style="ROA", req_body_type="json", body_type="json",
    )
    request = open_api_models.OpenApiRequest(query={name: str(value) for name, value in query.items()})
    return client.call_api(params, request, RuntimeOptions())["body"]


def run_task(client, function, instance, model_type, create=None):
    """Creates the instance, runs CreateFunctionTask and polls GetFunctionTask until the task is
    done; checks that it succeeded and that its progress never went down and ended at 100.
    Returns the last GetFunctionTask result, its ExtendInfo parsed and the progress seen; None
    when it did not succeed."""
    label = f"{function} ({instance})"
    parameters = [
        models.CreateFunctionInstanceRequestCreateParameters(name=name, value=value) for name, value in (create or {}).items()
    ]
    client.create_function_instance(
        APP_NOW,
        function,
        models.CreateFunctionInstanceRequest(instance_name=instance, model_type=model_type, create_parameters=parameters or None),
    )
    requested_ms = int(time.time() * 1000)
    client.create_function_task(APP_NOW, function, instance)
    deadline = time.monotonic() + TRAIN_TIMEOUT_SECONDS
    progress = []
    while True:
        task = client.get_function_task(APP_NOW, function, instance, "1").body.result
        if not progress or progress[-1] != task.progress:
            progress.append(task.progress)
        if task.status != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    try:
        info = json.loads(task.extend_info or "{}")
    except ValueError:
        info = {"unparsed": task.extend_info}
    succeeded = check(f"{label}: task succeeded within {TRAIN_TIMEOUT_SECONDS} s", task.status, "success")
    if not succeeded:
        print(f"        ExtendInfo {json.dumps(info)[:1500]}", flush=True)
        return None
    check(f"{label}: Progress never went down and ended at 100 (seen {progress})", (progress == sorted(progress), progress[-1]), (True, 100))
    check(
        f"{label}: CreateFunctionTask <= StartTime (the claim) <= EndTime",
        requested_ms <= task.start_time <= task.end_time,
        True,
    )
    for key in ("metrics", "dataReport", "errors"):
        check(f"{label}: ExtendInfo has {key}", key in info, True)
    return {"task": task, "info": info, "progress": progress, "seconds": (task.end_time - task.start_time) / 1000}


def check_trainer_now(label, trained, window_key="window"):
    """The trainer's window ends at its `now`: the task's StartTime (the claim), a moment later."""
    now = trained["task"].start_time // 1000
    window = trained["info"].get("dataReport", {}).get(window_key) or {}
    check(f"{label}: the trained window ends at StartTime (within 2 s)", 0 <= (window.get("end", 0) - 1) - now <= 2, True)
    return now


def check_hot_and_hint(client, searches, figures):
    counted = counted_searches(searches)
    hot = run_task(client, "hot", "hot_kit", "offline_inference")
    if hot is not None:
        now = check_trainer_now("hot", hot)
        expected = expected_hot(counted, now)
        figures["hot"] = {"seconds": hot["seconds"], "progress": hot["progress"], "top5": expected[:5], "now": now}
        edges = near_window_edges(counted, now)
        variants = {tuple(expected_hot(counted, moment)[:HOT_HIT]) for moment in range(now - BOUNDARY_SECONDS, now + BOUNDARY_SECONDS + 1)}
        near = {label: moments for label, moments in edges.items() if moments}
        if not near:
            say(
                f"hot: window [{moment_text(now - HOT_WINDOW_DAYS * DAY)}, {moment_text(now)} (StartTime)]: no counted "
                f"search lies within {BOUNDARY_SECONDS} s of an edge of the window or of the previous one"
            )
        for label, moments in near.items():
            note = (
                f"the first {HOT_HIT} are the same for any now within {BOUNDARY_SECONDS} s"
                if len(variants) == 1
                else "THE LIST DEPENDS ON WHICH SIDE THEY FALL (expected: the side StartTime puts them)"
            )
            say(f"hot: {len(moments)} counted searches within {BOUNDARY_SECONDS} s of {label} {moments}: {note}")
        figures["hot"]["boundary"] = {label: len(moments) for label, moments in edges.items()}
        window = (now - HOT_WINDOW_DAYS * DAY, now + 1)
        in_window = [search for search in counted if window[0] <= search[0] < window[1]]
        report = hot["info"].get("dataReport", {})
        figures["hot"]["window"] = (
            f"{moment_text(window[0])} .. {moment_text(now)}: {len(in_window)} searches counted, "
            f"{len({search[1] for search in in_window})} distinct queries, {len({search[2] for search in in_window})} users"
        )
        check(
            "hot: counted searches and distinct queries of the window = this check's",
            (report.get("query_log", {}).get("searches_counted"), report.get("distinct_queries")),
            (len(in_window), len({search[1] for search in in_window})),
        )
        served = serve(client, "hot", "QueryHot", {"hit": HOT_HIT, "model_name": "hot_kit"})
        answer = served.get("result") or []
        check(
            f"hot: QueryHot hit={HOT_HIT} = the first {HOT_HIT} (query, pv) counted here from query_log.jsonl",
            [(entry["hot"], entry["pv"]) for entry in answer],
            [(query, pv) for query, pv, _ in expected[:HOT_HIT]],
        )
        check(
            "hot: tags (0 new, 1 hot, 2 surging against the previous 14 days) = this check's",
            [(entry["hot"], entry["tags"]) for entry in answer],
            [(query, tags) for query, _, tags in expected[:HOT_HIT]],
        )
        client.update_function_default_instance(
            APP_NOW, "hot", models.UpdateFunctionDefaultInstanceRequest(instance_name="hot_kit")
        )
        check(
            "hot: QueryHot without model_name (the default instance) = with it",
            serve(client, "hot", "QueryHot", {"hit": HOT_HIT}).get("result"),
            answer,
        )

    hint = run_task(client, "hint", "hint_kit", "offline_inference", {"personalized": "false"})
    if hint is not None:
        now = check_trainer_now("hint", hint)
        expected = top_list(session_counts(counted, now - HOT_WINDOW_DAYS * DAY, now + 1), HOT_TOP_N)
        figures["hint"] = {"seconds": hint["seconds"], "progress": hint["progress"], "top3": expected[:3]}
        served = serve(client, "hint", "QueryHint", {"hit": HINT_HIT, "model_name": "hint_kit"})
        check(
            f"hint: QueryHint hit={HINT_HIT} = the first {HINT_HIT} (query, pv) counted here",
            [(entry["hint"], entry["pv"]) for entry in served.get("result") or []],
            expected[:HINT_HIT],
        )

    personal = run_task(client, "hint", "hint_personal", "offline_inference", {"personalized": "true"})
    if personal is not None:
        now = check_trainer_now("hint (personalized)", personal)
        expected = top_list(session_counts(counted, now - HOT_WINDOW_DAYS * DAY, now + 1), HOT_TOP_N)
        report = personal["info"].get("dataReport", {}).get("personalized", {})
        figures["hint_personal"] = {"seconds": personal["seconds"], "progress": personal["progress"], "report": report}
        unknown = serve(client, "hint", "QueryHint", {"hit": HINT_HIT, "model_name": "hint_personal", "user_id": "no-such-user"})
        check(
            "hint (personalized): an unknown user gets the global hints",
            [(entry["hint"], entry["pv"]) for entry in unknown.get("result") or []],
            expected[:HINT_HIT],
        )
        searchers = sorted({user for moment, _, user, _ in counted if user and now - HOT_WINDOW_DAYS * DAY <= moment <= now}, key=int)
        personalized, malformed = 0, []
        for user in searchers:
            answer = serve(client, "hint", "QueryHint", {"hit": HINT_HIT, "model_name": "hint_personal", "user_id": user})
            hints = [entry["hint"] for entry in answer.get("result") or []]
            if len(hints) != HINT_HIT or len(set(hints)) != len(hints):
                malformed.append(user)
            personalized += hints != [query for query, _ in expected[:HINT_HIT]]
        figures["hint_personal"]["users_asked"] = len(searchers)
        figures["hint_personal"]["users_not_global"] = personalized
        check("hint (personalized): every user who searched gets 10 distinct hints", malformed, [])
        check("hint (personalized): some of those users get hints of their own", personalized > 0, True)
        wide = serve(client, "hint", "QueryHint", {"hit": 30, "model_name": "hint_personal", "user_id": searchers[0] if searchers else "1"})
        check("hint (personalized): hit=30 is allowed and answered in full", len(wide.get("result") or []), 30)


def check_pop(client, raw, shift, figures):
    # The items asked about: the 20 most clicked of the last 30 days, a few others, and one unknown.
    newest = max(int(rating["timestamp"]) for rating in raw.ratings)
    recent = collections.Counter(click["item_id"] for click in raw.clicks if int(click["timestamp"]) > newest - 30 * DAY)
    items = [item for item, _ in recent.most_common(20)] + ["1", "267", "1412", "1682", "no-such-item"]
    items = list(dict.fromkeys(items))
    for instance, create, required in POP_INSTANCES:
        trained = run_task(client, "pop", instance, "pop", create)
        if trained is None:
            continue
        metrics = trained["info"].get("metrics", {})
        auc, baseline = metrics.get("auc"), metrics.get("baseline_auc")
        figures[instance] = {
            "seconds": trained["seconds"], "progress": trained["progress"], "create": create, "auc": auc,
            "baseline_auc": baseline, "holdout_impressions": metrics.get("holdout_impressions"),
            "holdout_clicked_impressions": metrics.get("holdout_clicked_impressions"),
            "events_used": trained["info"].get("dataReport", {}).get("events_used"),
            "prior": (metrics.get("evaluation_model") or {}).get("prior") or {},
        }
        numbers = isinstance(auc, float) and isinstance(baseline, float)
        check(f"pop ({instance}): auc and baseline_auc are numbers in [0, 1]", numbers and 0 <= auc <= 1 and 0 <= baseline <= 1, True)
        if not numbers:
            continue
        say(f"pop ({instance}, {create or 'defaults'}): auc {auc:.4f}, baseline_auc {baseline:.4f}")
        warned = any("below the raw-count baseline" in error for error in trained["info"].get("errors", []))
        check(f"pop ({instance}): ExtendInfo errors warn exactly when auc < baseline_auc", warned, auc < baseline)
        if required:
            check(f"pop ({instance}): auc {auc:.4f} > baseline_auc {baseline:.4f}", auc > baseline, True)
        elif auc <= baseline:
            say(f"NOTE pop ({instance}): auc {auc:.4f} does not beat baseline_auc {baseline:.4f} (see docs/movielens-kit.md)")
        served = serve(client, "popularity", "QueryPopularity", {"item_ids": ",".join(items), "model_name": instance})
        scores = served.get("result") or []
        check(f"pop ({instance}): QueryPopularity answers every item asked, in order", [entry["item_id"] for entry in scores], items)
        check(
            f"pop ({instance}): every score is in [0, 1]",
            [entry for entry in scores if not (isinstance(entry["score"], (int, float)) and 0 <= entry["score"] <= 1)],
            [],
        )
        figures[instance]["scores"] = {entry["item_id"]: entry["score"] for entry in scores[:3]}


# The ctr instance of the check: the kit's fields as item and user features, and a window that
# holds all of MovieLens' seven months.
CTR_CREATE = {
    "id_field": "item_id",
    "title_field": "title",
    "tags_field": "genres",
    "user_fields": "age,gender,occupation",
    "training_window_days": "365",
}
CTR_HOLDOUT_PERCENT = 10  # the catalog default
# Strengths of the Beta smoothing tried for the baseline; the best one ON THE HOLDOUT is kept, so
# the baseline the model must beat is the strongest of the family, not a straw man.
BASELINE_STRENGTHS = (1, 2, 5, 10, 20, 50, 100, 200)
CTR_SCORED_ITEMS = 100


def auc_of(scored):
    """AUC of (score, label) pairs: the probability that a random positive outscores a random
    negative, ties counting half (rank-sum with average ranks)."""
    ordered = sorted(scored, key=lambda pair: pair[0])
    positives = sum(1 for _, label in scored if label)
    negatives = len(scored) - positives
    if positives == 0 or negatives == 0:
        return None
    rank_sum, index = 0.0, 0
    while index < len(ordered):
        end = index
        while end + 1 < len(ordered) and ordered[end + 1][0] == ordered[index][0]:
            end += 1
        average_rank = (index + end) / 2 + 1
        rank_sum += average_rank * sum(1 for _, label in ordered[index : end + 1] if label)
        index = end + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def smoothed_popularity_baseline(raw, split_time, shift):
    """The smoothed-popularity baseline, computed here from the raw ratings and nothing of the
    trainer's but its split time: each rating is an impression (clicked when rating >= 4); an
    item's score is its click rate over the impressions before the split, Beta-smoothed toward
    the global rate with strength k: (clicks + k * rate) / (impressions + k); AUC over the
    impressions at or after the split. Returns (best auc, its k, holdout size)."""
    training, holdout = [], []
    for rating in raw.ratings:
        example = (rating["item_id"], float(rating["rating"]) >= 4)
        (training if int(rating["timestamp"]) + shift < split_time else holdout).append(example)
    clicks, impressions = collections.Counter(), collections.Counter()
    for item, clicked in training:
        impressions[item] += 1
        clicks[item] += clicked
    global_rate = sum(clicks.values()) / max(1, len(training))
    best = None
    for strength in BASELINE_STRENGTHS:
        scored = [
            ((clicks[item] + strength * global_rate) / (impressions[item] + strength), clicked) for item, clicked in holdout
        ]
        auc = auc_of(scored)
        if auc is not None and (best is None or auc > best[0]):
            best = (auc, strength)
    return (best[0], best[1], len(holdout)) if best else (None, None, len(holdout))


def score_ctr(client, body):
    """QueryCtr (`POST /v3/openapi/apps/APP_NOW/actions/ctr`) through the SDK's call_api."""
    params = open_api_models.Params(
        action="QueryCtr", version="2017-12-25", protocol="HTTP", pathname=f"/v3/openapi/apps/{APP_NOW}/actions/ctr",
        method="POST", auth_type="AK", style="ROA", req_body_type="json", body_type="json",
    )
    return client.call_api(params, open_api_models.OpenApiRequest(body=body), RuntimeOptions())["body"]


def check_ctr(client, raw, shift, figures):
    for model in ("fm", "ftrl_lr"):
        instance = f"ctr_{model}"
        create = dict(CTR_CREATE, model=model)
        trained = run_task(client, "ctr", instance, "tf_checkpoint", create)
        if trained is None:
            continue
        metrics = trained["info"].get("metrics", {})
        report = trained["info"].get("dataReport", {})
        auc, trainer_baseline = metrics.get("auc"), metrics.get("baseline_auc")
        split_time = (report.get("split") or {}).get("split_time")
        numbers = all(isinstance(value, float) for value in (auc, trainer_baseline)) and isinstance(split_time, int)
        check(f"ctr ({instance}): auc, baseline_auc and the split time are reported", numbers, True)
        if not numbers:
            print(f"        ExtendInfo {json.dumps(trained['info'])[:1500]}", flush=True)
            continue
        baseline, strength, holdout = smoothed_popularity_baseline(raw, split_time, shift)
        figures[instance] = {
            "seconds": trained["seconds"], "progress": trained["progress"], "create": create, "auc": auc,
            "baseline_auc": trainer_baseline, "python_baseline_auc": baseline, "python_strength": strength,
            "holdout_impressions": holdout, "holdout_clicked_impressions": metrics.get("holdout_positives"),
            "events_used": report.get("events_in_window"), "logloss": metrics.get("logloss"),
        }
        say(
            f"ctr ({instance}): holdout auc {auc:.4f}; smoothed popularity: {baseline:.4f} here (k={strength}, "
            f"{holdout} impressions), {trainer_baseline:.4f} by the trainer"
        )
        check(f"ctr ({instance}): the trainer's holdout = the ratings from the split on", metrics.get("holdout_examples"), holdout)
        check(f"ctr ({instance}): auc {auc:.4f} > the server's baseline_auc {trainer_baseline:.4f}", auc > trainer_baseline, True)
        check(f"ctr ({instance}): auc {auc:.4f} > the baseline computed here {baseline:.4f}", auc > baseline, True)
        warned = any("below the smoothed-popularity baseline" in error for error in trained["info"].get("errors", []))
        check(f"ctr ({instance}): ExtendInfo errors warn exactly when auc < baseline_auc", warned, auc < trainer_baseline)
        check(
            f"ctr ({instance}): the trainer's baseline_auc is within 0.02 of the best one here",
            abs(trainer_baseline - baseline) <= 0.02,
            True,
        )
        # Scoring: the served model answers for each item, in order, with probabilities.
        items = [movie["item_id"] for movie in raw.movies[:CTR_SCORED_ITEMS - 1]] + ["no-such-item"]
        answer = score_ctr(client, {"model_name": instance, "user_id": "1", "biz_id": "movielens", "item_ids": items})
        scores = answer.get("result") or []
        check(f"ctr ({instance}): QueryCtr answers the {len(items)} items asked, in order", [entry.get("item_id") for entry in scores], items)
        check(
            f"ctr ({instance}): every score is a probability in (0, 1)",
            [entry for entry in scores if not (isinstance(entry.get("score"), float) and 0 < entry["score"] < 1)],
            [],
        )
        check(f"ctr ({instance}): the scores are not all equal", len({entry.get("score") for entry in scores}) > 1, True)


def moment_text(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def decimal(value):
    return f"{value:.4f}" if isinstance(value, float) else repr(value)


def print_figures(figures):
    print("training on movielens_now:", flush=True)
    for name, figure in figures.items():
        line = f"  {name:<14} {figure['seconds']:.2f} s, progress {figure['progress']}"
        if "top5" in figure:
            line += f"; {figure['window']}; top 5: " + ", ".join(f"{query} {pv}" for query, pv, _ in figure["top5"])
        if "top3" in figure:
            line += "; first 3: " + ", ".join(f"{query} {pv}" for query, pv in figure["top3"])
        if "report" in figure:
            line += (
                f"; users kept {figure['report'].get('users_kept')}, with hints {figure['report'].get('users_with_hints')}; "
                f"{figure['users_not_global']} of the {figure['users_asked']} users who searched get their own"
            )
        if "auc" in figure:
            line += (
                f"; {figure['create'] or 'defaults'}: auc {decimal(figure['auc'])}, baseline_auc {decimal(figure['baseline_auc'])} "
                f"({figure['holdout_impressions']} holdout impressions, {figure['holdout_clicked_impressions']} clicked; "
                f"{figure['events_used']} events used)"
            )
            if "python_baseline_auc" in figure:
                line += f"; baseline computed here {decimal(figure['python_baseline_auc'])} (k={figure['python_strength']})"
            prior = figure.get("prior") or {}
            if prior.get("bands"):
                line += (
                    f"; evaluation prior: strength {decimal(prior.get('strength'))}, band means "
                    + ", ".join(f"{band['least_exposures']}+ {band['mean']:.3f} ({band['items']})" for band in prior["bands"])
                )
        print(line, flush=True)


# ---- main ---------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description="End-to-end check of the MovieLens kit.")
    parser.add_argument("--bin", required=True, help="the trainyard binary")
    parser.add_argument("--cache-dir", default=default_cache_dir())
    parser.add_argument("--keep", action="store_true", help="keep the data dir and files for inspection")
    arguments = parser.parse_args()
    binary = os.path.abspath(arguments.bin)
    started = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work_dir = tempfile.mkdtemp(prefix="trainyard-movielens-check.")
    server = None
    try:
        server = Server(binary, work_dir)
        environment = dict(client_environment(), TRAINYARD_BIN=binary)
        out_dirs = {APP: os.path.join(work_dir, "files"), APP_NOW: os.path.join(work_dir, "files-now")}
        kit_seconds, kit_times = {}, {}
        for app, shifted in ((APP, False), (APP_NOW, True)):
            command = ["bash", KIT_SCRIPT, "--cache-dir", arguments.cache_dir, "--out", out_dirs[app]]
            command += ["--shift-to-now"] if shifted else []
            command += [server.address, app]
            say("running " + " ".join(command))
            kit_started = time.monotonic()
            before = int(time.time())
            kit_status = run_process_group(command, environment)
            after = int(time.time())
            kit_seconds[app] = time.monotonic() - kit_started
            kit_times[app] = (before, after)
            if kit_status != 0 or not server.alive():
                say(f"the kit failed (status {kit_status}); the server's last lines:\n{server.output()}")
                return 1
            say(f"the kit took {kit_seconds[app]:.1f} s")

        checks_started = time.monotonic()
        raw = Raw(os.path.join(arguments.cache_dir, WHEEL_NAME))

        def stats_of(app):
            return json.loads(
                subprocess.run(
                    [binary, "stats", "--endpoint", server.address, "--app", app, "--json"],
                    env=client_environment(),
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )

        def check_app(app, stats, shift):
            base = os.path.join(server.data_dir, "objects", "datasets", f"app_group_id={app_group_id(server.address, app)}")
            parquet_files = sum(1 for _, _, names in os.walk(base) for name in names if name.endswith(".parquet"))
            stats_query_log = check_stats(stats, raw, shift, parquet_files)
            check_parquet(base, raw, shift, stats_query_log, os.path.join(out_dirs[app], "query_log.jsonl"))

        newest = max(int(rating["timestamp"]) for rating in raw.ratings)
        with section(APP):
            stats = stats_of(APP)
            check("no time shift by default", stats["Behavior"]["LastTime"] - newest, 0)
            check(
                "the kit's files are byte-identical to the recorded ones (sha256)",
                {name: sha256_of(os.path.join(out_dirs[APP], name)) for name in FILE_SHA256},
                FILE_SHA256,
            )
            check_app(APP, stats, 0)
        with section(APP_NOW):
            shift = check_shifted_files(out_dirs[APP], out_dirs[APP_NOW], *kit_times[APP_NOW])
            stats = stats_of(APP_NOW)
            check("the server holds the shifted times", stats["Behavior"]["LastTime"] - newest, shift)
            check_app(APP_NOW, stats, shift)
        data_seconds = time.monotonic() - checks_started

        training_started = time.monotonic()
        figures = {}
        with section(APP_NOW):
            with open(os.path.join(out_dirs[APP_NOW], "query_log.jsonl")) as file:
                searches = [json.loads(line) for line in file]
            client = sdk_client(server.address)
            check_hot_and_hint(client, searches, figures)
            check_pop(client, raw, shift, figures)
            check_ctr(client, raw, shift, figures)
            check("the server is still running", server.alive(), True)
        print_figures(figures)
        say(
            f"kit {kit_seconds[APP]:.1f} s + {kit_seconds[APP_NOW]:.1f} s (shifted), data checks {data_seconds:.1f} s, "
            f"training and its checks {time.monotonic() - training_started:.1f} s, total {time.monotonic() - started:.1f} s"
        )
    finally:
        if server is not None:
            server.stop()
        if arguments.keep:
            say(f"kept {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    print(f"movielens: {RESULTS['passed']} passed, {RESULTS['failed']} failed", flush=True)
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
