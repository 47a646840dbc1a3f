"""The query cache: results of sql and http sources shared by the runs of a project, single flight across processes.

Queries are counted by the database itself: the PostgreSQL queries call ``nextval`` on a sequence of their own, so
the sequence's value is how many times the server ran them.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from reportctl.data.cache import QueryCache, cache_key

SPEC = """\
apiVersion: reportctl/v1
name: {name}
parameters:
  region: {{type: string, default: eu}}
sources:
  orders:
    kind: sql
    url: {url}
    query: {query}
{extra}sections:
  - {{id: t, type: table, dataset: orders}}
outputs: [csv]
"""
SQLITE_QUERY = "SELECT id, amount FROM orders WHERE region = :region ORDER BY id"


def _sqlite_project(project: Path, *, extra: str = "", config: str = "") -> None:
    with sqlite3.connect(project / "app.db") as db:
        db.execute("CREATE TABLE orders (id INTEGER, region TEXT, amount REAL)")
        db.executemany("INSERT INTO orders VALUES (?, ?, ?)", [(1, "eu", 10.5), (2, "us", 20.0)])
    (project / "reportctl.yaml").write_text("timezone: UTC\n" + config)
    spec = SPEC.format(name="orders", url="sqlite:///app.db", query=json.dumps(SQLITE_QUERY), extra=extra)
    (project / "specs" / "orders.yaml").write_text(spec)


def _add_order(project: Path, order_id: int, region: str = "eu") -> None:
    with sqlite3.connect(project / "app.db") as db:
        db.execute("INSERT INTO orders VALUES (?, ?, 1.0)", (order_id, region))


def _rendered_ids(cli: Any, *args: str) -> list[int]:
    result = cli("render", "specs/orders.yaml", "--json", *args)
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    csv = Path(payload["directory"]) / "orders.csv"
    return pl.read_csv(csv)["id"].to_list()


def _age_entries(project: Path, seconds: float) -> None:
    for entry in (project / ".reportctl" / "cache").glob("*.arrow"):
        stat = entry.stat()
        os.utime(entry, (stat.st_atime - seconds, stat.st_mtime - seconds))


def test_a_second_render_reads_the_cached_result_and_says_so(project: Path, cli: Any) -> None:
    _sqlite_project(project)
    first = cli("render", "specs/orders.yaml", "--json")
    assert json.loads(first.stdout)["sources"] == [{"source": "orders", "cache": "stored", "age_seconds": None}]
    _add_order(project, 3)
    result = cli("render", "specs/orders.yaml")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith("; orders from cache (0s old)")
    run_dir = Path(result.stdout.splitlines()[-1].split(" in ")[-1].split(";")[0])
    assert pl.read_csv(run_dir / "orders.csv")["id"].to_list() == [1]  # the row added since is not seen yet
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["sources"][0]["source"] == "orders" and manifest["sources"][0]["cache"] == "hit"
    run_id = run_dir.name
    shown = cli("runs", "show", run_id).stdout
    assert "FORMATTING" in shown and "orders from cache (0s old)" in shown


def test_no_cache_reads_live_and_leaves_the_cache_alone(project: Path, cli: Any) -> None:
    _sqlite_project(project)
    assert _rendered_ids(cli) == [1]
    _add_order(project, 3)
    payload = json.loads(cli("render", "specs/orders.yaml", "--json", "--no-cache").stdout)
    assert payload["sources"] == []
    assert pl.read_csv(Path(payload["directory"]) / "orders.csv")["id"].to_list() == [1, 3]
    assert _rendered_ids(cli) == [1]  # the entry stored before is still the one served


def test_the_ttl_ends_an_entry(project: Path, cli: Any) -> None:
    _sqlite_project(project, extra="    cache: {ttl: 10m}\n")
    assert _rendered_ids(cli) == [1]
    _add_order(project, 3)
    _age_entries(project, 9 * 60)
    assert _rendered_ids(cli) == [1]  # 9 minutes old: fresh under a 10-minute TTL
    _age_entries(project, 2 * 60)
    assert _rendered_ids(cli) == [1, 3]  # 11 minutes old: queried again


def test_the_default_ttl_is_the_projects(project: Path, cli: Any) -> None:
    _sqlite_project(project, config="cache: {ttl: 1m}\n")
    assert _rendered_ids(cli) == [1]
    _add_order(project, 3)
    _age_entries(project, 61)
    assert _rendered_ids(cli) == [1, 3]


def test_cache_false_on_a_source_or_in_the_project_reads_live(project: Path, cli: Any) -> None:
    _sqlite_project(project, extra="    cache: false\n")
    assert _rendered_ids(cli) == [1]
    _add_order(project, 3)
    assert _rendered_ids(cli) == [1, 3]
    assert not list((project / ".reportctl").glob("cache/*.arrow"))

    (project / "specs" / "orders.yaml").write_text(
        SPEC.format(name="orders", url="sqlite:///app.db", query=json.dumps(SQLITE_QUERY), extra="")
    )
    (project / "reportctl.yaml").write_text("timezone: UTC\ncache: {enabled: false}\n")
    _add_order(project, 4)
    assert _rendered_ids(cli) == [1, 3, 4]
    _add_order(project, 5)
    assert _rendered_ids(cli) == [1, 3, 4, 5]


def test_another_parameter_value_is_another_entry(project: Path, cli: Any) -> None:
    _sqlite_project(project)
    assert _rendered_ids(cli) == [1]
    assert _rendered_ids(cli, "-p", "region=us") == [2]
    _add_order(project, 3, "us")
    assert _rendered_ids(cli, "-p", "region=us") == [2]  # cached for region=us
    assert len(list((project / ".reportctl" / "cache").glob("*.arrow"))) == 2


def test_a_file_source_takes_no_cache_option(project: Path, cli: Any) -> None:
    (project / "data.csv").write_text("a\n1\n")
    (project / "specs" / "f.yaml").write_text(
        "apiVersion: reportctl/v1\nname: f\nsources:\n  s: {kind: file, path: data.csv, cache: false}\n"
        "sections:\n  - {id: t, type: table, dataset: s}\n"
    )
    result = cli("validate", "specs/f.yaml")
    assert result.exit_code == 1
    assert "sources.s.cache: unknown key 'cache'" in result.stdout and "f.yaml:4:" in result.stdout


def test_cache_clear_removes_the_entries(project: Path, cli: Any) -> None:
    _sqlite_project(project)
    _rendered_ids(cli)
    _rendered_ids(cli, "-p", "region=us")
    _age_entries(project, 7200)
    _rendered_ids(cli, "--no-cache")
    kept = cli("cache", "clear", "--older-than", "3h")
    assert kept.stdout.startswith("removed 0 cached results (0 B) from ")
    result = cli("cache", "clear", "--older-than", "1h")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("removed 2 cached results (")
    assert not list((project / ".reportctl" / "cache").glob("*.arrow"))
    bad = cli("cache", "clear", "--older-than", "soon")
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: --older-than: ")


def test_the_key_covers_the_options_and_the_bound_values_but_not_the_timeout() -> None:
    base = {"kind": "sql", "url": "sqlite:///a.db", "query": "SELECT 1", "parameters": {"d": "2026-01-01"}}
    assert cache_key(base) == cache_key(dict(base))
    assert cache_key(base) != cache_key({**base, "query": "SELECT 2"})
    assert cache_key(base) != cache_key({**base, "parameters": {"d": "2026-01-02"}})
    from reportctl.data.sources.base import SourceContext
    from reportctl.data.sources.sql import SqlOptions, SqlSource

    context = SourceContext(Path("."), datetime_now(), "UTC", {"region": "eu", "unused": 1})
    options = {"kind": "sql", "url": "sqlite:///${secret:DB}", "query": "SELECT 1 WHERE :region = 'eu'"}
    fast = SqlSource("s", SqlOptions(**options, timeout="5s"), context).cache_identity()
    slow = SqlSource("s", SqlOptions(**options, timeout="60s", cache={"ttl": "1h"}), context).cache_identity()
    assert fast == slow
    assert fast["parameters"] == {"region": "eu"}  # only what the query binds
    assert fast["url"] == "sqlite:///${secret:DB}"  # the secret as written, never its value


def datetime_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_a_waiter_that_gives_up_queries_itself_without_storing(tmp_path: Path) -> None:
    import fcntl

    cache = QueryCache(tmp_path)
    identity = {"kind": "test", "n": 1}
    key = cache_key(identity)
    (tmp_path / "locks").mkdir()
    stripe = tmp_path / "locks" / f"{int(key[:8], 16) % 256:03d}.lock"
    with open(stripe, "a+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        frame, read = cache.read("t", identity, timedelta(minutes=5), lambda: pl.LazyFrame({"a": [1]}), wait=0.2)
    assert read.outcome == "live" and frame["a"].to_list() == [1]
    assert not list(tmp_path.glob("*.arrow"))
    _, again = cache.read("t", identity, timedelta(minutes=5), lambda: pl.LazyFrame({"a": [2]}), wait=0.2)
    assert again.outcome == "stored"
    frame, hit = cache.read("t", identity, timedelta(minutes=5), lambda: pl.LazyFrame({"a": [3]}), wait=0.2)
    assert hit.outcome == "hit" and frame["a"].to_list() == [2]


def test_types_survive_the_cache(tmp_path: Path) -> None:
    from datetime import date, datetime

    source = pl.DataFrame(
        {
            "when": [datetime(2026, 1, 1, 9), None],
            "day": [date(2026, 1, 1), None],
            "n": [1, None],
            "x": [0.1 + 0.2, None],
            "s": ["ä", None],
            "b": [True, None],
            "nothing": [None, None],
        }
    ).with_columns(pl.col("when").dt.replace_time_zone("Europe/Berlin"))
    cache = QueryCache(tmp_path)
    cache.read("t", {"k": 1}, timedelta(minutes=5), source.lazy, wait=1)
    frame, read = cache.read("t", {"k": 1}, timedelta(minutes=5), pl.LazyFrame, wait=1)
    assert read.outcome == "hit"
    assert frame.schema == source.schema
    assert frame.equals(source)


# -- several processes against PostgreSQL -------------------------------------------------------------------


@pytest.fixture
def counted_query(postgres_url: str) -> Iterator[tuple[str, str, str]]:
    """(url, query, sequence): a slow query whose every execution the server counts on a sequence of its own."""
    from sqlalchemy import create_engine, text

    sequence = f"reportctl_cache_{uuid.uuid4().hex[:10]}"
    engine = create_engine(postgres_url)
    with engine.begin() as db:
        db.execute(text(f"CREATE SEQUENCE {sequence}"))
    query = f"SELECT nextval('{sequence}') AS n, (SELECT 1 FROM pg_sleep(0.8)) AS slept"
    try:
        yield postgres_url, query, sequence
    finally:
        with engine.begin() as db:
            db.execute(text(f"DROP SEQUENCE {sequence}"))
        engine.dispose()


def _executions(url: str, sequence: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as db:
        last, called = db.execute(text(f"SELECT last_value, is_called FROM {sequence}")).one()
    engine.dispose()
    return int(last) if called else 0


def test_concurrent_renders_of_one_query_query_once(project: Path, counted_query: tuple[str, str, str]) -> None:
    url, query, sequence = counted_query
    for number in range(4):
        spec = SPEC.format(name=f"r{number}", url=url, query=json.dumps(query), extra="")
        (project / "specs" / f"r{number}.yaml").write_text(spec)
    reportctl = Path(sys.executable).parent / "reportctl"
    renders = [
        subprocess.Popen(
            [str(reportctl), "render", f"specs/r{number}.yaml", "--no-state", "--json"],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for number in range(4)
    ]
    outcomes = []
    for render in renders:
        out, err = render.communicate(timeout=120)
        assert render.returncode == 0, err
        payload = json.loads(out)
        outcomes.append(payload["sources"][0]["cache"])
        assert pl.read_csv(Path(payload["directory"]) / f"{payload['report']}.csv")["n"].to_list() == [1]
    assert _executions(url, sequence) == 1  # the server ran the query once for the four of them
    assert sorted(outcomes) == ["hit", "hit", "hit", "stored"]


HOLDER = """\
import sys, time
from datetime import timedelta
from pathlib import Path
import polars as pl
from reportctl.data.cache import QueryCache

def query():
    Path(sys.argv[2]).write_text("querying")
    time.sleep(600)
    return pl.LazyFrame({"a": [0]})

QueryCache(Path(sys.argv[1])).read("t", {"kind": "held"}, timedelta(minutes=5), query, wait=5)
"""


def test_a_killed_process_leaves_no_key_locked(tmp_path: Path) -> None:
    marker = tmp_path / "querying"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(tmp_path / "cache"), str(marker)],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert holder.poll() is None, "the holder exited before querying"
            assert time.monotonic() < deadline, "the holder never started its query"
            time.sleep(0.05)
        waiter: dict[str, Any] = {}

        def wait_for_it() -> None:
            cache = QueryCache(tmp_path / "cache")
            waiter["read"] = cache.read(
                "t", {"kind": "held"}, timedelta(minutes=5), lambda: pl.LazyFrame({"a": [1]}), wait=60
            )

        thread = threading.Thread(target=wait_for_it)
        thread.start()
        time.sleep(0.3)
        assert thread.is_alive()  # waiting for the holder's query
        os.kill(holder.pid, signal.SIGKILL)
        thread.join(timeout=60)
        assert not thread.is_alive()
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    frame, read = waiter["read"]
    assert read.outcome == "stored"  # it took the lock the dead process held, queried and stored
    assert frame["a"].to_list() == [1]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("{ttl: soon}", "sources.orders.cache.ttl: expected a duration such as 5m, 1h30m or 2d, got 'soon'"),
        ("maybe", "sources.orders.cache: expected true, false or a mapping such as {ttl: 10m}, got 'maybe'"),
    ],
)
def test_a_bad_cache_option_is_one_line_at_its_position(project: Path, cli: Any, setting: str, message: str) -> None:
    _sqlite_project(project, extra=f"    cache: {setting}\n")
    result = cli("validate", "specs/orders.yaml")
    assert result.exit_code == 1
    (line,) = [line for line in result.stdout.splitlines() if "orders.yaml:" in line]
    assert line.startswith("specs/orders.yaml:10:") and line.endswith(message)
