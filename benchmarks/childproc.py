"""What the benchmarks share: running a command as a child, the figures and machine their results report, and a
PostgreSQL schema of their own.

A command's wall time, peak RSS and CPU are measured by a trampoline: a child's ru_maxrss starts at the RSS of
the process it was forked from, so the command is started by a small interpreter of its own (the trampoline),
which also times it, leaving its own start out.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TRAMPOLINE = """
import json, os, subprocess, sys, time
with open(sys.argv[1], "wb") as log:
    t = time.perf_counter()
    child = subprocess.Popen(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t
child.returncode = os.waitstatus_to_exitcode(status)
figures = {"wall": wall, "peak_rss_mib": usage.ru_maxrss / 1024, "cpu": usage.ru_utime + usage.ru_stime}
print(json.dumps({"code": child.returncode, "figures": figures}))
"""


class ChildFailed(Exception):
    """The command exited with an error, so its figures mean nothing."""


def run_child(command: list[str], log: Path, cwd: Path | None = None) -> tuple[dict[str, float], str]:
    """Wall time, peak RSS in MiB and CPU seconds of ``command`` (run in ``cwd``), and what it printed (kept in
    ``log``)."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100"}
    done = subprocess.run(
        [sys.executable, "-c", TRAMPOLINE, str(log), *command], check=False, capture_output=True, env=env, cwd=cwd
    )
    report = json.loads(done.stdout) if done.returncode == 0 else {"code": None}
    output = log.read_text(errors="replace") if log.exists() else done.stderr.decode()
    if report["code"] != 0:
        raise ChildFailed(f"{' '.join(command)} exited {report['code']}: {output.strip()}")
    figures: dict[str, float] = report["figures"]
    return figures, output


def machine(**versions: str) -> dict[str, Any]:
    """What the figures were measured on: cores, CPU, Python, reportctl and the given library versions."""
    from reportctl import __version__

    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        **versions,
        "reportctl": __version__,
        "platform": platform.platform(),
    }


def result_header(benchmark: str, **versions: str) -> dict[str, Any]:
    """The fields a benchmark's JSON result starts with: its name, when, the command line and the machine."""
    return {
        "benchmark": benchmark,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(**versions),
    }


def summarise(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """The median and minimum of each figure over ``runs``, rounded to four decimals."""
    return {
        key: {
            "median": round(statistics.median(run[key] for run in runs), 4),
            "min": round(min(run[key] for run in runs), 4),
        }
        for key in runs[0]
    }


def spread(values: list[float]) -> tuple[float, float, float]:
    """Min, median and max of one figure's samples, the way every benchmark reports them."""
    return min(values), statistics.median(values), max(values)


POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
"""The machine's PostgreSQL, where a benchmark keeps its state store in a schema of its own."""


@contextmanager
def store_schema(prefix: str) -> Iterator[str]:
    """A state store URL in a PostgreSQL schema of its own (``PREFIX_<random>``), dropped afterwards."""
    import uuid

    import sqlalchemy as sa

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        try:
            yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    finally:
        admin.dispose()
