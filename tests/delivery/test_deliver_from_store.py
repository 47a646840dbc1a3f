"""Delivering a run on a machine that did not render it: its files come from the artifact store.

A run is rendered with ``artifacts: s3://...`` (a real moto_server), then its folder is removed, as on the daemon's
machine or an operator's laptop when a celery worker rendered it. ``reportctl deliver RUN`` and the daemon's reaper
fetch the files, check them against the run's record and deliver the same bytes, with links signed to the stored
files; a file the store no longer holds (or holds changed) is one line naming the run, the file and its URL, and
nothing is sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
import requests
from http_peers import HttpPeer, running
from s3_server import MotoServer
from standardwebhooks.webhooks import Webhook

from conftest import OTHER_HOST_WORKER, CliResult, silence
from reportctl.artifact_store import ArtifactFetchError
from reportctl.config import find_project
from reportctl.state import open_store

Cli = Callable[..., CliResult]
SECRET = "whsec_" + base64.b64encode(b"a key for the deliver-from-store!").decode()
REPORT = """\
apiVersion: reportctl/v1
name: health
title: Health
sources:
  metrics: {kind: sample, rows: 200, seed: 3}
datasets:
  by_service: {from: metrics, group_by: [service], aggregate: {samples: count(), p95: p95(latency_ms)}}
sections:
  - {id: services, type: table, dataset: by_service}
outputs: [csv, json]
delivery:
"""
CRASH_AFTER_FIRST_BATCH = """
import os, sys
import reportctl.delivery.sending as sending
send = sending._BatchSender.send
def send_then_die(self, batch):
    send(self, batch)
    os._exit(9)  # as a worker lost after its first batch: the rest stays pending
sending._BatchSender.send = send_then_die
from reportctl.cli import main
sys.argv = ["reportctl", "render", "--deliver", sys.argv[1]]
main()
"""

pytestmark = pytest.mark.usefixtures("aws_environment")


@pytest.fixture(autouse=True)
def _no_state_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPORTCTL_STATE_URL", raising=False)


@pytest.fixture
def receiver() -> Iterator[HttpPeer]:
    with running(HttpPeer()) as peer:
        yield peer


@pytest.fixture
def write_spec(project: Path, s3: MotoServer, bucket: str) -> Callable[..., Path]:
    """``write(deliveries, config)``: the health report with these deliveries, in a project keeping runs in
    ``bucket``, with ``config`` added to its reportctl.yaml."""

    def write(deliveries: str, config: str = "") -> Path:
        (project / "reportctl.yaml").write_text(
            f"timezone: UTC\nartifacts: {{url: 's3://{bucket}/runs/', endpoint_url: '{s3.endpoint}'}}\n{config}"
        )
        path = project / "specs" / "health.yaml"
        path.write_text(REPORT + deliveries)
        return path

    return write


def rendered_elsewhere(cli: Cli, project: Path, spec: Path) -> tuple[str, dict[str, bytes]]:
    """Render ``spec`` (nothing delivered), then remove the project's out/ as on a machine that did not render it:
    the run's id and its files' bytes as written."""
    result = cli("render", str(spec), "--json")
    assert result.exit_code == 0, result.stderr
    run_id: str = json.loads(result.stdout)["run_id"]
    folder = project / "out" / "health" / run_id
    written = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    shutil.rmtree(project / "out")
    return run_id, written


def show(cli: Cli, run_id: str) -> dict[str, Any]:
    result = cli("runs", "show", run_id, "--json")
    assert result.exit_code == 0, result.stderr
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


def downloaded(link: str) -> bytes:
    with requests.get(link, timeout=10) as answer:
        assert answer.status_code == 200, link
        return answer.content


def linked_in(message: EmailMessage, endpoint: str) -> dict[str, str]:
    """File name -> the link the message's text gives for it, for links into the store at ``endpoint``."""
    body = cast(EmailMessage, message.get_body(("plain",))).get_content()
    links = re.findall(r"\]\(<(" + re.escape(endpoint) + r"/[^>]+)>\)", body)
    return {urlsplit(link).path.rpartition("/")[2]: link for link in links}


@pytest.mark.parametrize("missing", ["the run's folder", "one file"])
def test_deliver_fetches_the_files_from_the_store_and_sends_the_bytes_the_run_wrote(
    cli: Cli,
    project: Path,
    write_spec: Callable[..., Path],
    receiver: HttpPeer,
    s3: MotoServer,
    missing: str,
) -> None:
    spec = write_spec(
        f"  - {{channel: webhook, url: '{receiver.url('/hook')}', secret: '{SECRET}'}}\n"
        "  - {channel: file, path: outbox}\n"
    )
    result = cli("render", str(spec), "--json")
    assert result.exit_code == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    folder = project / "out" / "health" / run_id
    written = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    if missing == "one file":
        (folder / "health.csv").unlink()
    else:
        shutil.rmtree(project / "out")

    delivered = cli("deliver", run_id)

    assert delivered.exit_code == 0, delivered.stderr
    assert delivered.stdout.splitlines()[-1] == "delivered file: 1 sent; webhook: 1 sent"
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == written, "the run's folder is whole again"
    assert [path.name for path in folder.parent.iterdir()] == [run_id], "no staging folder is left"
    outbox = project / "outbox" / "health" / run_id
    for name, content in written.items():
        assert (outbox / name).read_bytes() == content
    (request,) = receiver.received("/hook")
    payload = Webhook(SECRET).verify(request.body, request.headers)["data"]
    manifest = json.loads(written["manifest.json"])
    assert payload["title"] == "Health", "the title comes from the run's manifest"
    assert payload["generated_at"] == manifest["generated_at"], "the run's time, as its first delivery had it"
    for artifact in payload["artifacts"]:
        assert artifact["url"].startswith(s3.endpoint + "/"), "linked where the store keeps it"
        assert downloaded(artifact["url"]) == written[artifact["name"]]
        assert hashlib.sha256(written[artifact["name"]]).hexdigest() == artifact["sha256"]


def test_the_reaper_finishes_a_lost_workers_delivery_with_the_files_from_the_store(
    cli: Cli, project: Path, write_spec: Callable[..., Path], receiver: HttpPeer, s3: MotoServer
) -> None:
    from PIL import Image

    from reportctl.schedule.daemon import Daemon

    (project / "brand").mkdir()
    Image.new("RGB", (120, 40), (192, 57, 43)).save(project / "brand" / "logo.png")
    spec = write_spec(
        f"  - {{channel: webhook, url: '{receiver.url('/hook')}'}}\n  - {{channel: file, path: outbox, attach: []}}\n",
        "theme: {logo: brand/logo.png}\n",
    )
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_FIRST_BATCH, str(spec)], capture_output=True, check=False
    )
    assert crashed.returncode == 9, crashed.stderr.decode()
    (folder,) = (project / "out" / "health").iterdir()
    run_id = folder.name
    written = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    logo = (folder / "preview" / "logo.png").read_bytes()
    shutil.rmtree(project / "out")  # the worker was another machine: its folder is not here
    assert show(cli, run_id)["state"] == "DISTRIBUTING" and len(receiver.received("/hook")) == 1
    with open_store(find_project()) as store:
        silence(store, run_id, silent_for=timedelta(hours=1), worker=OTHER_HOST_WORKER)
        daemon = Daemon(find_project(), store)

        assert daemon.reap() == [run_id]
        for thread in daemon.resuming:
            thread.join(timeout=30)

    shown = show(cli, run_id)
    assert shown["state"] == "COMPLETED"
    assert shown["deliveries"]["counts"] == {"file": {"sent": 1}, "webhook": {"sent": 1}}
    assert len(receiver.received("/hook")) == 1, "the webhook the worker sent is not sent again"
    outbox = project / "outbox" / "health" / run_id
    for name, content in written.items():
        assert (outbox / name).read_bytes() == content
    message = message_from_bytes((outbox / "message.eml").read_bytes(), policy=policy.default)
    links = linked_in(message, s3.endpoint)
    assert sorted(links) == ["health.csv", "health.json"], "nothing attached: each file is linked in the store"
    for name, link in links.items():
        assert downloaded(link) == written[name]
    pictures = {part["Content-ID"]: part.get_content() for part in message.walk() if part["Content-ID"]}
    assert pictures == {f"<logo@{run_id}.reportctl>": logo}, "the message's picture was kept in the store too"


@pytest.mark.parametrize("change", ["deleted", "replaced"])
def test_a_file_the_store_no_longer_holds_is_one_line_and_nothing_is_sent(
    cli: Cli,
    project: Path,
    write_spec: Callable[..., Path],
    receiver: HttpPeer,
    s3: MotoServer,
    bucket: str,
    peer: Any,
    change: str,
) -> None:
    spec = write_spec(
        f"  - {{channel: webhook, url: '{receiver.url('/hook')}'}}\n  - {{channel: file, path: outbox}}\n"
    )
    run_id, written = rendered_elsewhere(cli, project, spec)
    key = f"runs/health/{run_id}/health.json"
    if change == "deleted":
        peer.delete_object(Bucket=bucket, Key=key)
        why = f"no such object at {s3.endpoint} (deleted, or expired by a lifecycle rule?)"
    else:
        changed = written["health.json"][:-1] + b" "  # same size, other bytes
        peer.put_object(Bucket=bucket, Key=key, Body=changed)
        recorded = hashlib.sha256(written["health.json"]).hexdigest()
        why = f"its sha256 is {hashlib.sha256(changed).hexdigest()[:12]}..., the run recorded {recorded[:12]}..."

    result = cli("deliver", run_id)

    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        f"error: run {run_id}: cannot fetch health.json from the artifact store: s3://{bucket}/{key}: {why}; "
        "nothing was sent"
    ]
    assert receiver.received() == [] and not (project / "outbox").exists()
    assert not (project / "out" / "health").exists(), "neither the fetched files nor a staging folder is left"
    assert show(cli, run_id)["deliveries"]["recipients"] == [], "nothing recorded: `deliver` can finish it later"
    with open_store(find_project()) as store, pytest.raises(ArtifactFetchError) as raised:
        from reportctl.delivery.engine import resume_delivery

        resume_delivery(store, find_project(), store.get_run(run_id))
    assert str(raised.value) == result.stderr.removeprefix("error: ").strip()
    assert receiver.received() == []


def test_the_error_masks_the_secrets_the_store_is_reached_with(
    cli: Cli,
    project: Path,
    write_spec: Callable[..., Path],
    s3: MotoServer,
    bucket: str,
    peer: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REPORTCTL_SECRET_STORE_ENDPOINT", s3.endpoint)
    spec = write_spec("  - {channel: file, path: outbox}\n")
    config = project / "reportctl.yaml"
    config.write_text(config.read_text().replace(s3.endpoint, "${secret:store_endpoint}"))
    run_id, _ = rendered_elsewhere(cli, project, spec)
    peer.delete_object(Bucket=bucket, Key=f"runs/health/{run_id}/health.csv")

    result = cli("deliver", run_id)

    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        f"error: run {run_id}: cannot fetch health.csv from the artifact store: "
        f"s3://{bucket}/runs/health/{run_id}/health.csv: no such object at *** (deleted, or expired by a lifecycle "
        "rule?); nothing was sent"
    ]


def test_a_machine_without_the_stores_credentials_is_told_which_secret_to_set(
    cli: Cli, project: Path, write_spec: Callable[..., Path], bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_spec("  - {channel: file, path: outbox}\n")
    config = project / "reportctl.yaml"
    keys = "access_key_id: '${secret:store_key_id}', secret_access_key: '${secret:store_secret}'"
    config.write_text(config.read_text().replace("endpoint_url:", keys + ", endpoint_url:"))
    monkeypatch.setenv("REPORTCTL_SECRET_STORE_KEY_ID", "testing")
    monkeypatch.setenv("REPORTCTL_SECRET_STORE_SECRET", "testing")
    run_id, _ = rendered_elsewhere(cli, project, spec)
    monkeypatch.delenv("REPORTCTL_SECRET_STORE_KEY_ID")  # this machine was not given the store's key

    result = cli("deliver", run_id)

    assert result.exit_code == 3
    [line] = result.stderr.splitlines()
    assert line.startswith(
        f"error: run {run_id}: cannot fetch health.csv from the artifact store: "
        f"s3://{bucket}/runs/health/{run_id}/health.csv: artifacts.access_key_id in {config}: secret 'store_key_id' "
        "is not set; set the environment variable REPORTCTL_SECRET_STORE_KEY_ID"
    )
    assert line.endswith("; nothing was sent") and not (project / "outbox").exists()
