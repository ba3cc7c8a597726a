#!/usr/bin/env python3
"""MovieLens-100k as a Trainyard app group: the Python half of scripts/movielens-kit.sh.

The data comes from the `recbole==1.2.1` wheel on PyPI, downloaded at run time into a cache
outside the repository (its licence forbids redistribution: it is never committed) and checked
against a pinned sha256. From its three files (ratings, movies, users) this derives, in JSON
Lines ready for `trainyard import`:

    movies.jsonl      documents of table `movies` (primary key item_id)
    item_info.jsonl   ITEM_INFO records (one per movie)
    users.jsonl       USER records (one per user)
    behavior.jsonl    BEHAVIOR events: one `expose` per rating, plus one `click` per rating >= 4
    query_log.jsonl   searches derived from the clicks (seeded, Zipf-weighted; see below)
    summary.json      the counts, the parameters and the sha256 of every file written

docs/movielens-kit.md states every rule; the constants below are the ones it names. The
derivation is deterministic: the same wheel and flags give byte-identical files (with
--shift-to-now, on the same UTC day), so re-running an import skips what already went in.

    python3 scripts/movielens_kit.py fetch                    # download (cached) and verify
    python3 scripts/movielens_kit.py derive --out DIR [--shift-to-now]
    python3 scripts/movielens_kit.py ensure-app --endpoint HOST:PORT --app NAME
    python3 scripts/movielens_kit.py prepare --out DIR --endpoint HOST:PORT --app NAME

`derive` needs only the standard library; `ensure-app` and `prepare` need the official SDK
(tests/data/requirements.txt). AccessKey: TRAINYARD_ACCESS_KEY_ID / TRAINYARD_ACCESS_KEY_SECRET,
else the key file of a local server's data dir (--data-dir, TRAINYARD_DATA_DIR, ./trainyard-data).
"""

import argparse
import bisect
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter, defaultdict

# ---- the source ----------------------------------------------------------------------------

RECBOLE_VERSION = "1.2.1"
WHEEL_NAME = f"recbole-{RECBOLE_VERSION}-py3-none-any.whl"
# sha256 of the wheel as PyPI serves it (pinned: pip refuses any other file, and so do we).
WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
MEMBER = "recbole/dataset_example/ml-100k/ml-100k.{}"

# ---- the derivation's constants (docs/movielens-kit.md names each) --------------------------

TABLE = "movies"
PRIMARY_KEY = "item_id"
BIZ_ID = "movielens"
TRACE_ID = "Alibaba"
ITEM_TYPE = "movie"
CLICK_MIN_RATING = 4  # a rating >= this is also a click
RN_FORMAT = "ml100k-{user_id}-{timestamp}"  # one synthetic search request per (user, timestamp)

SEED = 20171225  # the query log's random.Random seed
P_SEARCH = 0.25  # a click is preceded by a search with this probability
# What the search's query is: a genre of the clicked movie, a word of its title, or its title.
QUERY_TYPES = ("genre", "word", "title")
QUERY_TYPE_BOUNDS = (0.40, 0.70, 1.00)  # cumulative: 40 % genre, 30 % word, 30 % title
P_NOT_RAW = 0.10  # share of those searches that are system queries (raw_query false)
P_TYPO = 0.05  # share of typed (raw) searches whose text loses one character
MAX_LEAD_SECONDS = 30  # a search is 1..30 s before its click
ZIPF_EXPONENT = 1.0  # weight of the query ranked r by popularity: 1 / r**ZIPF_EXPONENT
MIN_TOKEN_CHARACTERS = 3  # shorter title words are never queries on their own
STOPWORDS = frozenset(
    "a an and at by de del der des di die das du el for from his her il in is it its l la le "
    "les my no not of on or so the to und with you your".split()
)
# RecBole writes "Ice Storm, The"; the article goes back in front for the query text.
TRAILING_ARTICLE = re.compile(r"^(?P<rest>.*), (?P<article>The|A|An|La|Le|Les|L'|Il|Der|Die|Das|El)$")
TOKEN = re.compile(r"[^\W_]+(?:['-][^\W_]+)*")
PLACEHOLDER_TITLES = frozenset({"unknown", "unkonwn"})  # item 267's title is RecBole's "unkonwn"
UNKNOWN_GENRE = "unknown"

DAY_SECONDS = 86_400


def say(message):
    print(f"movielens-kit: {message}", file=sys.stderr, flush=True)


# ---- download -----------------------------------------------------------------------------


def default_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "trainyard", "movielens")


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def refuse_committable(cache_dir):
    """The data must never be committed: refuse a cache inside the repository unless git ignores it."""
    repository = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    target = os.path.realpath(cache_dir)
    if target != repository and not target.startswith(repository + os.sep):
        return
    ignored = subprocess.run(
        ["git", "-C", repository, "check-ignore", "-q", target + "/" + WHEEL_NAME], stdout=subprocess.DEVNULL
    )
    if ignored.returncode != 0:
        raise SystemExit(
            f"refusing cache dir {cache_dir}: it is inside the repository and not ignored by git "
            "(MovieLens' licence forbids redistributing the data)"
        )


def fetch(cache_dir):
    """The path of the verified wheel in cache_dir, downloading it from PyPI when needed."""
    refuse_committable(cache_dir)
    os.makedirs(cache_dir, exist_ok=True)
    wheel = os.path.join(cache_dir, WHEEL_NAME)
    if os.path.exists(wheel):
        if sha256_of(wheel) == WHEEL_SHA256:
            return wheel
        say(f"{wheel} does not have the pinned sha256; downloading it again")
        os.remove(wheel)
    say(f"downloading recbole=={RECBOLE_VERSION} from PyPI into {cache_dir}")
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as staging:
        requirements = os.path.join(staging, "requirements.txt")
        with open(requirements, "w") as file:
            file.write(f"recbole=={RECBOLE_VERSION} --hash=sha256:{WHEEL_SHA256}\n")
        subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                "--no-deps", "--only-binary=:all:", "--require-hashes", "-r", requirements,
                "-d", staging,
            ],
            check=True,
        )
        downloaded = os.path.join(staging, WHEEL_NAME)
        actual = sha256_of(downloaded)
        if actual != WHEEL_SHA256:
            raise SystemExit(f"the downloaded wheel has sha256 {actual}, not {WHEEL_SHA256}")
        os.replace(downloaded, wheel)
    return wheel


def read_table(wheel, suffix):
    """Rows of ml-100k.<suffix> as dicts keyed by the header's names without their `:type`."""
    with zipfile.ZipFile(wheel) as archive:
        lines = archive.read(MEMBER.format(suffix)).decode("utf-8").splitlines()
    header = [column.split(":", 1)[0] for column in lines[0].split("\t")]
    rows = []
    for line in lines[1:]:
        if line:
            values = line.split("\t")
            if len(values) != len(header):
                raise SystemExit(f"ml-100k.{suffix}: a line has {len(values)} columns: {line!r}")
            rows.append(dict(zip(header, values)))
    return rows


# ---- text rules for the query log ---------------------------------------------------------


def query_title(title):
    """The title as a person would type it: no parenthesised alternate title, the article in
    front, lower case, single spaces ("Ice Storm, The" -> "the ice storm")."""
    text = re.sub(r"\s*\([^)]*\)", "", title).strip()
    match = TRAILING_ARTICLE.match(text)
    if match:
        article = match.group("article")
        text = article + ("" if article.endswith("'") else " ") + match.group("rest")
    return " ".join(text.lower().split())


def tokens(text):
    return TOKEN.findall(text.lower())


def genre_list(movie):
    return [genre for genre in movie["class"].split(" ") if genre]


def movie_terms(movie):
    """What a query is matched against: the words of the query title and the genre names."""
    terms = set(tokens(query_title(movie["movie_title"])))
    terms.update(genre.lower() for genre in genre_list(movie))
    return terms


def candidate_queries(movie):
    """The queries a click on this movie may follow, by type: its genres, the words of its title
    (at least MIN_TOKEN_CHARACTERS long, with a letter, not a stopword) and its whole title."""
    genres = {genre.lower() for genre in genre_list(movie) if genre != UNKNOWN_GENRE}
    title = query_title(movie["movie_title"])
    if not title or title in PLACEHOLDER_TITLES:
        return {"genre": genres, "word": set(), "title": set()}
    words = {
        word
        for word in tokens(title)
        if len(word) >= MIN_TOKEN_CHARACTERS and word not in STOPWORDS and any(c.isalpha() for c in word)
    }
    return {"genre": genres, "word": words, "title": {title}}


def hit_counter(movies):
    """hits(query): how many movies have every word of the query among their terms."""
    postings = defaultdict(set)
    for movie in movies:
        for term in movie_terms(movie):
            postings[term].add(movie["item_id"])
    cache = {}

    def hits(query):
        if query not in cache:
            words = tokens(query)
            matched = set(postings.get(words[0], ())) if words else set()
            for word in words[1:]:
                matched &= postings.get(word, set())
            cache[query] = len(matched)
        return cache[query]

    return hits


# ---- the derivation -----------------------------------------------------------------------


def shift_seconds_to_now(newest, now):
    """Whole days that move the newest event onto yesterday (UTC): times of day and day
    boundaries stay, everything stays in the past, and a rerun on the same day is identical."""
    return ((now // DAY_SECONDS - 1) - newest // DAY_SECONDS) * DAY_SECONDS


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        for record in records:
            file.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
            file.write("\n")
    return len(records)


def derive(wheel, out_dir, shift_to_now=False, now=None):
    started = time.monotonic()
    os.makedirs(out_dir, exist_ok=True)
    ratings = read_table(wheel, "inter")
    movies = read_table(wheel, "item")
    users = read_table(wheel, "user")

    # Ratings in a fixed order: time, then user and item as numbers.
    ratings.sort(key=lambda rating: (int(rating["timestamp"]), int(rating["user_id"]), int(rating["item_id"])))
    newest = max(int(rating["timestamp"]) for rating in ratings)
    shift = shift_seconds_to_now(newest, int(time.time() if now is None else now)) if shift_to_now else 0

    documents = []
    item_infos = []
    for movie in sorted(movies, key=lambda movie: int(movie["item_id"])):
        genres = genre_list(movie)
        document = {"item_id": movie["item_id"], "title": movie["movie_title"]}
        if re.fullmatch(r"\d{4}", movie["release_year"]):
            document["year"] = int(movie["release_year"])
        document["genres"] = genres
        documents.append(document)
        item_infos.append(
            {"item_id": movie["item_id"], "item_type": ITEM_TYPE, "title": movie["movie_title"], "tags": ",".join(genres)}
        )

    user_records = [
        {
            "user_id": user["user_id"],
            "age": int(user["age"]),
            "gender": user["gender"],
            "occupation": user["occupation"],
            "zip_code": user["zip_code"],
        }
        for user in sorted(users, key=lambda user: int(user["user_id"]))
    ]

    events = []
    clicks = []
    for rating in ratings:
        timestamp = int(rating["timestamp"])
        stars = int(float(rating["rating"]))
        base = {
            "user_id": rating["user_id"],
            "item_id": rating["item_id"],
            "item_type": ITEM_TYPE,
            "biz_id": BIZ_ID,
            "trace_id": TRACE_ID,
            "rn": RN_FORMAT.format(user_id=rating["user_id"], timestamp=timestamp),
            "bhv_time": timestamp + shift,
            "rating": stars,
        }
        events.append({**base, "bhv_type": "expose"})
        if stars >= CLICK_MIN_RATING:
            click = {**base, "bhv_type": "click"}
            events.append(click)
            clicks.append(click)

    searches = derive_query_log(clicks, movies)

    files = {
        "documents": ("movies.jsonl", documents),
        "item_info": ("item_info.jsonl", item_infos),
        "users": ("users.jsonl", user_records),
        "behavior": ("behavior.jsonl", events),
        "query_log": ("query_log.jsonl", searches),
    }
    written = {}
    for kind, (name, records) in files.items():
        path = os.path.join(out_dir, name)
        written[kind] = {"file": name, "records": write_jsonl(path, records), "sha256": sha256_of(path)}

    query_counts = Counter(search["query"] for search in searches)
    summary = {
        "source": {"wheel": WHEEL_NAME, "sha256": WHEEL_SHA256},
        "shift_seconds": shift,
        "files": written,
        "documents": len(documents),
        "users": len(user_records),
        "behavior": {
            "events": len(events),
            "by_type": dict(sorted(Counter(event["bhv_type"] for event in events).items())),
            "distinct_users": len({event["user_id"] for event in events}),
            "distinct_items": len({event["item_id"] for event in events}),
            "distinct_rn": len({event["rn"] for event in events}),
            "first_time": min(event["bhv_time"] for event in events),
            "last_time": max(event["bhv_time"] for event in events),
        },
        "query_log": {
            "searches": len(searches),
            "raw_query_searches": sum(search["raw_query"] for search in searches),
            "raw_query_searches_with_results": sum(search["raw_query"] and search["hits"] > 0 for search in searches),
            "zero_hit_searches": sum(search["hits"] == 0 for search in searches),
            "distinct_queries": len(query_counts),
            "distinct_rn": len({search["rn"] for search in searches}),
            "top_queries": query_counts.most_common(10),
            "queries_seen_once": sum(1 for count in query_counts.values() if count == 1),
            "first_time": min(search["timestamp"] for search in searches),
            "last_time": max(search["timestamp"] for search in searches),
        },
        "parameters": {
            "seed": SEED,
            "p_search": P_SEARCH,
            "p_not_raw": P_NOT_RAW,
            "p_typo": P_TYPO,
            "max_lead_seconds": MAX_LEAD_SECONDS,
            "zipf_exponent": ZIPF_EXPONENT,
            "query_types": dict(zip(QUERY_TYPES, QUERY_TYPE_BOUNDS)),
            "click_min_rating": CLICK_MIN_RATING,
        },
        "derive_seconds": round(time.monotonic() - started, 2),
    }
    with open(os.path.join(out_dir, "summary.json"), "w") as file:
        json.dump(summary, file, indent=2)
        file.write("\n")
    return summary


def derive_query_log(clicks, movies):
    """One search before some clicks; see docs/movielens-kit.md, "The query log"."""
    hits = hit_counter(movies)
    candidates_of = {movie["item_id"]: candidate_queries(movie) for movie in movies}
    # Popularity of a query: the clicks on movies it is a candidate for. Ranked per type (rank 1
    # = most popular, ties by the query text); the Zipf weight of rank r is 1 / r**ZIPF_EXPONENT.
    popularity = {query_type: Counter() for query_type in QUERY_TYPES}
    for click in clicks:
        for query_type, candidates in candidates_of[click["item_id"]].items():
            popularity[query_type].update(candidates)
    rank_of = {}
    for query_type in QUERY_TYPES:
        ranked = sorted(popularity[query_type], key=lambda query: (-popularity[query_type][query], query))
        rank_of[query_type] = {query: rank for rank, query in enumerate(ranked, start=1)}
    choices = {}  # (item_id, type) -> (candidates by rank, cumulative Zipf weights)
    for item_id in sorted({click["item_id"] for click in clicks}, key=int):
        for query_type, candidates in candidates_of[item_id].items():
            ordered = sorted(candidates, key=rank_of[query_type].__getitem__)
            cumulative, total = [], 0.0
            for query in ordered:
                total += 1.0 / rank_of[query_type][query] ** ZIPF_EXPONENT
                cumulative.append(total)
            choices[item_id, query_type] = (ordered, cumulative)

    rng = random.Random(SEED)
    searches = []
    for click in clicks:  # in the ratings' order: time, user, item
        if rng.random() >= P_SEARCH:
            continue
        point = rng.random()
        query_type = next(
            (kind for kind, bound in zip(QUERY_TYPES, QUERY_TYPE_BOUNDS) if point < bound), QUERY_TYPES[-1]
        )
        ordered, cumulative = choices[click["item_id"], query_type]
        if not ordered:  # no genre (only "unknown") or no usable title word: the whole title
            ordered, cumulative = choices[click["item_id"], "title"]
        if not ordered:  # a placeholder title: no search
            continue
        point = rng.random() * cumulative[-1]
        query = ordered[min(bisect.bisect_right(cumulative, point), len(ordered) - 1)]
        raw_query = rng.random() >= P_NOT_RAW
        if raw_query and rng.random() < P_TYPO:
            position = int(rng.random() * len(query))
            query = query[:position] + query[position + 1 :]
        lead = 1 + int(rng.random() * MAX_LEAD_SECONDS)
        searches.append(
            {
                "query": query,
                "raw_query": raw_query,
                "hits": hits(query),
                "timestamp": click["bhv_time"] - lead,
                "rn": click["rn"],
                "user_id": click["user_id"],
                "biz_id": BIZ_ID,
            }
        )
    searches.sort(key=lambda search: search["timestamp"])  # stable: ties keep the clicks' order
    return searches


# ---- the server ---------------------------------------------------------------------------


def access_key(data_dir):
    key_id = os.environ.get("TRAINYARD_ACCESS_KEY_ID")
    secret = os.environ.get("TRAINYARD_ACCESS_KEY_SECRET")
    if key_id and secret:
        return key_id, secret
    data_dir = data_dir or os.environ.get("TRAINYARD_DATA_DIR") or "./trainyard-data"
    path = os.path.join(data_dir, "root-access-key.json")
    try:
        with open(path) as file:
            key = json.load(file)
    except FileNotFoundError:
        raise SystemExit(
            f"no AccessKey: set TRAINYARD_ACCESS_KEY_ID and TRAINYARD_ACCESS_KEY_SECRET, or pass "
            f"--data-dir of a local server ({path} does not exist)"
        )
    return key["access_key_id"], key["access_key_secret"]


def ensure_app_group(endpoint, app, data_dir=None):
    """Creates app group `app` unless it exists; returns its id (DescribeAppGroup)."""
    from alibabacloud_opensearch20171225 import models
    from alibabacloud_opensearch20171225.client import Client
    from alibabacloud_tea_openapi.exceptions import ClientException
    from alibabacloud_tea_openapi.utils_models import Config

    key_id, secret = access_key(data_dir)
    client = Client(Config(access_key_id=key_id, access_key_secret=secret, endpoint=endpoint, protocol="http"))
    try:
        described = client.describe_app_group(app).body.result
        say(f"app group {app} exists (id {described.id})")
        return described.id
    except ClientException as error:
        if error.code != "App.NotFound":
            raise
    client.create_app_group(models.CreateAppGroupRequest(name=app, type="standard"))
    described = client.describe_app_group(app).body.result
    say(f"created app group {app} (id {described.id})")
    return described.id


# ---- command line -------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def with_cache(command):
        command.add_argument("--cache-dir", default=default_cache_dir(), help="where the wheel is kept")

    def with_derive(command):
        command.add_argument("--out", required=True, help="directory for the JSONL files")
        command.add_argument(
            "--shift-to-now",
            action="store_true",
            help="shift all times by whole days so that the newest event falls on yesterday (UTC)",
        )

    def with_server(command):
        command.add_argument("--endpoint", required=True, help="host:port of the server")
        command.add_argument("--app", required=True, help="app group name")
        command.add_argument("--data-dir", help="data dir of a local server, for its root key file")

    fetch_command = commands.add_parser("fetch", help="download (cached) and verify the wheel; print its path")
    with_cache(fetch_command)
    derive_command = commands.add_parser("derive", help="write the JSONL files and summary.json")
    with_cache(derive_command)
    with_derive(derive_command)
    app_command = commands.add_parser("ensure-app", help="create the app group if missing; print its id")
    with_server(app_command)
    prepare_command = commands.add_parser("prepare", help="fetch, derive and ensure-app")
    with_cache(prepare_command)
    with_derive(prepare_command)
    with_server(prepare_command)
    arguments = parser.parse_args(argv)

    if arguments.command == "fetch":
        print(fetch(arguments.cache_dir))
    elif arguments.command == "ensure-app":
        print(ensure_app_group(arguments.endpoint, arguments.app, arguments.data_dir))
    else:
        wheel = fetch(arguments.cache_dir)
        summary = derive(wheel, arguments.out, arguments.shift_to_now)
        say(
            f"derived in {summary['derive_seconds']} s: {summary['documents']} movies, {summary['users']} users, "
            f"{summary['behavior']['events']} behavior events {summary['behavior']['by_type']}, "
            f"{summary['query_log']['searches']} searches (shift {summary['shift_seconds']} s)"
        )
        if arguments.command == "prepare":
            print(ensure_app_group(arguments.endpoint, arguments.app, arguments.data_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
