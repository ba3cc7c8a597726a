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

It also derives the files once more with --shift-to-now (no server) and checks the shift.
Ends with `movielens: N passed, M failed`; the exit status is 1 when anything failed.
"""

import argparse
import collections
import datetime
import hashlib
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

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KIT_SCRIPT = os.path.join(REPO_ROOT, "scripts", "movielens-kit.sh")
KIT_PYTHON = os.path.join(REPO_ROOT, "scripts", "movielens_kit.py")
ACCESS_KEY_ID = "TYMOVIELENSCHECKKEY001"
ACCESS_KEY_SECRET = "movielens-check-secret-do-not-use-elsewhere"
APP = "movielens"
START_TIMEOUT_SECONDS = 60

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

RESULTS = {"passed": 0, "failed": 0}


def say(message):
    print(f"movielens-check: {message}", file=sys.stderr, flush=True)


def check(name, actual, expected):
    """One named check: passes when actual == expected; prints the difference otherwise."""
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


def app_group_id(address):
    from alibabacloud_opensearch20171225.client import Client
    from alibabacloud_tea_openapi.utils_models import Config

    config = Config(access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET, endpoint=address, protocol="http")
    return Client(config).describe_app_group(APP).body.result.id


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


def check_parquet(base, raw, shift, stats_query_log):
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


def check_shift(wheel_dir, python):
    """--shift-to-now, derived without a server: whole days, the newest event on yesterday."""
    with tempfile.TemporaryDirectory(prefix="trainyard-movielens-shift.") as out:
        before = int(time.time())
        subprocess.run(
            [python, KIT_PYTHON, "derive", "--shift-to-now", "--cache-dir", wheel_dir, "--out", out],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        after = int(time.time())
        with open(os.path.join(out, "summary.json")) as file:
            summary = json.load(file)
        shift = summary["shift_seconds"]
        newest_day = (893286638 + shift) // DAY
        check("--shift-to-now: a whole number of days", shift % DAY, 0)
        check(
            "--shift-to-now: the newest event is on yesterday (UTC)",
            newest_day in {before // DAY - 1, after // DAY - 1},
            True,
        )
        with open(os.path.join(out, "behavior.jsonl")) as file:
            first = json.loads(file.readline())
        check("--shift-to-now: first event shifted", first["bhv_time"], 874724710 + shift)
        check("--shift-to-now: same query log", summary["query_log"]["searches"], QUERY_LOG["searches"])


def main():
    parser = argparse.ArgumentParser(description="End-to-end check of the MovieLens kit.")
    parser.add_argument("--bin", required=True, help="the trainyard binary")
    parser.add_argument("--cache-dir", default=default_cache_dir())
    parser.add_argument("--shift-to-now", action="store_true", help="run the kit with --shift-to-now")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and files for inspection")
    arguments = parser.parse_args()
    binary = os.path.abspath(arguments.bin)
    started = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work_dir = tempfile.mkdtemp(prefix="trainyard-movielens-check.")
    server = None
    try:
        server = Server(binary, work_dir)
        out_dir = os.path.join(work_dir, "files")
        command = ["bash", KIT_SCRIPT, "--cache-dir", arguments.cache_dir, "--out", out_dir]
        command += ["--shift-to-now"] if arguments.shift_to_now else []
        command += [server.address, APP]
        say("running " + " ".join(command))
        kit_started = time.monotonic()
        environment = dict(client_environment(), TRAINYARD_BIN=binary)
        kit_status = run_process_group(command, environment)
        kit_seconds = time.monotonic() - kit_started
        if kit_status != 0 or not server.alive():
            say(f"the kit failed (status {kit_status}); the server's last lines:\n{server.output()}")
            return 1
        say(f"the kit took {kit_seconds:.1f} s")

        checks_started = time.monotonic()
        raw = Raw(os.path.join(arguments.cache_dir, WHEEL_NAME))
        stats_text = subprocess.run(
            [binary, "stats", "--endpoint", server.address, "--app", APP, "--json"],
            env=client_environment(),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        stats = json.loads(stats_text)
        shift = stats["Behavior"]["LastTime"] - max(int(rating["timestamp"]) for rating in raw.ratings)
        if not arguments.shift_to_now:
            check("no time shift by default", shift, 0)
            check(
                "the kit's files are byte-identical to the recorded ones (sha256)",
                {name: sha256_of(os.path.join(out_dir, name)) for name in FILE_SHA256},
                FILE_SHA256,
            )
        base = os.path.join(server.data_dir, "objects", "datasets", f"app_group_id={app_group_id(server.address)}")
        parquet_files = sum(
            1 for _, _, names in os.walk(base) for name in names if name.endswith(".parquet")
        )
        stats_query_log = check_stats(stats, raw, shift, parquet_files)
        check_parquet(base, raw, shift, stats_query_log)
        check_shift(arguments.cache_dir, sys.executable)
        check("the server is still running", server.alive(), True)
        say(
            f"kit {kit_seconds:.1f} s, checks {time.monotonic() - checks_started:.1f} s, "
            f"total {time.monotonic() - started:.1f} s"
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
