"""A PostgreSQL server of a test's own, to crash and restart by its process id without touching the machine's.

``own_postgres()`` runs ``initdb`` into a temporary folder (trust authentication, superuser ``postgres``) and starts
``postgres`` on a free loopback port; the ``OwnPostgres`` it yields stops the server (SIGINT, a fast shutdown) or
crashes it (SIGKILL to its whole process group, as when its machine dies) and starts it again on the same port with
the same data directory, so clients see the same URL come back. PostgreSQL refuses to run as root: then the server
runs as the ``postgres`` OS user, which owns the temporary folders.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

START_TIMEOUT = 30.0


def _bin_dir() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` folder that holds ``initdb``, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port: int = free.getsockname()[1]
    return port


class OwnPostgres:
    """One PostgreSQL server: its URL stays the same across ``crash``/``stop`` and ``start``."""

    def __init__(self, bin_dir: Path, root: Path, user: str | None) -> None:
        self.bin_dir, self.user = bin_dir, user
        self.data, self.sockets = root / "data", root / "sockets"
        self.port = _free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root / "postgres.log"

    def initdb(self) -> None:
        command = [str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        done = subprocess.run(command, user=self.user, capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"initdb failed: {done.stderr}"

    def start(self) -> None:
        """Start the server (crash recovery first, if it was killed) and wait until it accepts connections."""
        assert self.process is None, "already running"
        command = [
            str(self.bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.sockets),
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            # a session of its own: a crash kills the postmaster and its backends together, by its group id
            self.process = subprocess.Popen(command, user=self.user, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not self.accepts():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"postgres did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def accepts(self) -> bool:
        """Whether a client can connect and run a query now."""
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 2})
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
            return True
        except sa.exc.OperationalError:
            return False
        finally:
            engine.dispose()

    def crash(self) -> None:
        """SIGKILL the postmaster and every backend at once: no shutdown, the next start recovers from the WAL."""
        process = self._running()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        self._wait_for_backends(process.pid)
        self.process = None

    def stop(self) -> None:
        """A fast shutdown (SIGINT): open transactions are rolled back and clients disconnected."""
        process = self._running()
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        self._wait_for_backends(process.pid)
        self.process = None

    def _running(self) -> subprocess.Popen[bytes]:
        assert self.process is not None and self.process.poll() is None, "postgres is not running"
        return self.process

    @staticmethod
    def _wait_for_backends(group: int) -> None:
        """Until no process of the server's group is left: a new postmaster refuses shared memory still attached."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise AssertionError(f"postgres processes of group {group} did not exit")


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    """A fresh PostgreSQL server of the test's own, started; killed and its folders removed afterwards."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL's initdb is not installed (looked in /usr/lib/postgresql/*/bin)")
    user = "postgres" if os.getuid() == 0 else None
    # not under pytest's tmp_path: its parents are private to root, and the server may run as another user
    root = Path(tempfile.mkdtemp(prefix="reportctl-pg-"))
    try:
        (root / "sockets").mkdir()
        if user is not None:
            account = pwd.getpwnam(user)
            for path in (root, root / "sockets"):
                os.chown(path, account.pw_uid, account.pw_gid)
        server = OwnPostgres(bin_dir, root, user)
        server.initdb()
        server.start()
        try:
            yield server
        finally:
            if server.process is not None and server.process.poll() is None:
                server.crash()
    finally:
        shutil.rmtree(root, ignore_errors=True)
