"""A ``moto_server`` S3 endpoint on 127.0.0.1 for tests: started on a free port, stopped by its process id.

Use it from a module-scoped fixture, so one server serves a whole test file::

    @pytest.fixture(scope="module")
    def s3() -> Iterator[MotoServer]:
        with running_moto_server() as server:
            yield server

It skips the test when moto_server is not installed, or fails it under REPORTCTL_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

import pytest

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
"""The console script installed with moto[server], in the same environment as the test run."""
REGION = "us-east-1"
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"
"""moto accepts any credentials until authentication is switched on (see ``MotoServer.authentication``)."""
STARTUP_SECONDS = 30.0


@dataclass
class MotoServer:
    endpoint: str
    pid: int

    def client(self, service: str = "s3", **credentials: str) -> Any:
        """A boto3 client for this server with explicit credentials and region, so nothing leaves loopback."""
        import boto3

        keys = {"aws_access_key_id": ACCESS_KEY_ID, "aws_secret_access_key": SECRET_ACCESS_KEY, **credentials}
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION, **keys)

    @contextmanager
    def authentication(self) -> Iterator[dict[str, str]]:
        """Inside: moto checks signatures and IAM permissions; yields a valid key (user with s3:*) to use."""
        iam = self.client("iam")
        try:
            name = f"reporter-{os.urandom(4).hex()}"
            iam.create_user(UserName=name)
            policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
            iam.put_user_policy(UserName=name, PolicyName="s3-all", PolicyDocument=json.dumps(policy))
            key = iam.create_access_key(UserName=name)["AccessKey"]
        finally:
            iam.close()
        self._set_no_auth_count("0")
        try:
            yield {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
        finally:
            self._set_no_auth_count("inf")

    def _set_no_auth_count(self, count: str) -> None:
        # moto checks credentials once this many requests went by unchecked; "inf" switches checking off again
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth",
            data=count.encode(),
            # not urllib's default form type, which would leave the raw body unread by moto's handler
            headers={"Content-Type": "text/plain"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


@contextmanager
def running_moto_server() -> Iterator[MotoServer]:
    """A moto_server subprocess answering on 127.0.0.1, terminated (by pid) when the block ends."""
    if not MOTO_SERVER.is_file():
        _unavailable(f"moto_server is not installed next to {sys.executable} (install moto[server])")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    # a file, not a pipe: moto logs every request, and an unread pipe would fill and stall the server
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_answering(process, endpoint, log)
            yield MotoServer(endpoint, process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (it was free a moment ago)."""
    return _free_port()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_answering(process: subprocess.Popen[bytes], endpoint: str, log: IO[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            output = log.read().decode(errors="replace").strip()
            pytest.fail(f"moto_server exited with {process.returncode} on start: {output[-500:]}")
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1) as response:
                response.read()
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    pytest.fail(f"moto_server did not answer on {endpoint} within {STARTUP_SECONDS:g}s")


def _unavailable(reason: str) -> NoReturn:
    """Skip, or fail when REPORTCTL_REQUIRE_SERVICES=1 (the pattern of tests/conftest.py's require_service)."""
    if os.environ.get("REPORTCTL_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and REPORTCTL_REQUIRE_SERVICES=1 requires it")
    pytest.skip(reason)
