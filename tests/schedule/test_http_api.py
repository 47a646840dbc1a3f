"""The daemon's HTTP API: real `reportctl schedule daemon --listen` processes answering real HTTP requests.

One leading daemon serves the module's tests (health, metrics, runs, tokens, limits, links); a standby, a TLS daemon
and the refused listens start their own. Runs are followed by polling GET /runs/ID until they end.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from daemon_process import DaemonProcess
from reportctl.schedule.signed_links import link_signature
from reportctl.state import audit
from reportctl.state.idempotency import IDEMPOTENCY_WINDOW, create_run_once
from reportctl.state.store import StateStore

TOKEN, OTHER_TOKEN, SIGNING_KEY = "t0k3n-for-ci-0123456789", "second-token-abcdef", "links-key-0123456789"
CONFIG = """\
timezone: UTC
api: {tokens: [ci_token, ops_token], signing_key: link_key, link_expiry: 10m}
"""
SPEC = """\
apiVersion: reportctl/v1
name: server-health
parameters:
  region: {type: string, default: all, choices: [all, eu, us]}
sources:
  metrics: {kind: sample, rows: 12}
sections:
  - {id: t, type: table, dataset: metrics}
outputs: [csv, json]
delivery:
  - {channel: file, path: outbox, to: [ops@example.com]}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _make_project(folder: Path) -> Path:
    (folder / "specs").mkdir(parents=True)
    (folder / "reportctl.yaml").write_text(CONFIG)
    (folder / "specs" / "server-health.yaml").write_text(SPEC)
    return folder


@pytest.fixture(scope="module")
def tokens() -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    patch.setenv("REPORTCTL_SECRET_CI_TOKEN", TOKEN)
    patch.setenv("REPORTCTL_SECRET_OPS_TOKEN", OTHER_TOKEN)
    patch.setenv("REPORTCTL_SECRET_LINK_KEY", SIGNING_KEY)
    yield
    patch.undo()


class Api:
    """A daemon with its API on a free loopback port, and its project's state store."""

    def __init__(self, project: Path, *options: str, scheme: str = "http") -> None:
        self.project, self.port = project, _free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.daemon = DaemonProcess(project, "--listen", f"127.0.0.1:{self.port}", *options)
        self.daemon.wait_for("api.listening")

    def store(self) -> StateStore:
        return StateStore(f"sqlite:///{self.project / '.reportctl' / 'state.db'}")

    def post(self, path: str, body: Any = None, *, token: str | None = TOKEN, **headers: str) -> requests.Response:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.post(self.url + path, json=body, headers=headers, timeout=30)

    def get(self, path: str, *, token: str | None = TOKEN, **options: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return requests.get(self.url + path, headers=headers, timeout=30, **options)

    def finished(self, run_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run: dict[str, Any] = self.get(f"/runs/{run_id}").json()
            if run["state"] in ("COMPLETED", "FAILED", "SKIPPED", "COMPLETED_WITH_WARNINGS"):
                return run
            time.sleep(0.2)
        raise AssertionError(f"run {run_id} did not end within {timeout:g}s")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, tokens: None) -> Iterator[Api]:
    server = Api(_make_project(tmp_path_factory.mktemp("api")))
    try:
        yield server
    finally:
        server.daemon.stop()


def test_health_and_metrics_need_no_token(api: Api) -> None:
    health = api.get("/healthz", token=None)
    assert (health.status_code, health.json()) == (200, {"status": "ok", "leading": True, "store": "ok"})
    metrics = api.get("/metrics", token=None)
    assert metrics.status_code == 200 and metrics.headers["Content-Type"].startswith("text/plain")
    assert "reportctl_scheduler_leader 1.0" in metrics.text


def test_a_run_renders_delivers_and_its_files_download_by_signed_link(api: Api) -> None:
    answer = api.post("/runs", {"spec": "server-health", "parameters": {"region": "eu"}})
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert accepted["state"] == "SCHEDULED" and accepted["created"] is True
    assert accepted["links"]["self"] == f"{api.url}/runs/{accepted['run_id']}"
    run = api.finished(accepted["run_id"][:17])  # a unique prefix will do
    assert (run["state"], run["trigger"], run["parameters"]["region"]) == ("COMPLETED", "api", "eu")
    assert run["deliveries"]["sent"] == 1 and run["deliveries"]["recipients"][0]["recipient"] == "ops@example.com"
    files = {artifact["format"]: artifact for artifact in run["artifacts"]}
    assert set(files) == {"csv", "json"}
    csv = files["csv"]
    download = requests.get(csv["link"], timeout=30)
    on_disk = Path(run["output_dir"]) / csv["path"]
    assert download.status_code == 200 and download.content == on_disk.read_bytes()
    assert download.headers["Content-Length"] == str(csv["bytes"])
    with api.store() as store:
        entries = audit.events(store, report="server-health")
    actors = {(entry.action, entry.actor) for entry in entries if entry.run_id == run["id"]}
    assert {("trigger", "api:ci_token"), ("render", "api:ci_token"), ("delivery", "api:ci_token")} <= actors


def test_a_bad_or_expired_link_is_refused(api: Api) -> None:
    run_id = api.post("/runs", {"spec": "specs/server-health.yaml", "deliver": False}).json()["run_id"]
    run = api.finished(run_id)
    assert run["state"] == "COMPLETED" and run["deliveries"]["total"] == 0  # deliver: false sends nothing
    link = run["artifacts"][0]["link"]
    tampered = link[:-4] + ("0000" if not link.endswith("0000") else "1111")
    assert requests.get(tampered, timeout=30).status_code == 403
    path = run["artifacts"][0]["path"]
    expired = int((datetime.now(UTC) - timedelta(seconds=5)).timestamp())
    sig = link_signature(SIGNING_KEY.encode(), run_id, path, expired)
    answer = requests.get(f"{api.url}/artifacts/{run_id}/{path}?expires={expired}&sig={sig}", timeout=30)
    assert (answer.status_code, answer.json()["error"]) == (
        403,
        "the link has expired; ask GET /runs/ID for a fresh link",
    )
    later = int((datetime.now(UTC) + timedelta(minutes=5)).timestamp())
    sig = link_signature(SIGNING_KEY.encode(), run_id, "../../reportctl.yaml", later)
    outside = requests.get(
        f"{api.url}/artifacts/{run_id}/..%2F..%2Freportctl.yaml?expires={later}&sig={sig}", timeout=30
    )
    assert outside.status_code == 404  # only the run's own recorded files, even with a valid signature


def test_the_same_idempotency_key_returns_the_first_run(api: Api) -> None:
    body = {"spec": "server-health", "deliver": False}
    first = api.post("/runs", body, **{"Idempotency-Key": "deploy-4711"})
    again = api.post("/runs", body, token=OTHER_TOKEN, **{"Idempotency-Key": "deploy-4711"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["run_id"] == first.json()["run_id"] and again.json()["created"] is False
    api.finished(first.json()["run_id"])
    with api.store() as store:
        keyed = [e for e in audit.events(store, action="trigger") if e.detail.get("idempotency_key") == "deploy-4711"]
    assert len(keyed) == 1


def test_a_missing_or_unknown_token_is_refused_and_audited(api: Api) -> None:
    with api.store() as store:
        before = len(store.list_runs(limit=1000))
    missing = api.post("/runs", {"spec": "server-health"}, token=None)
    wrong = api.post("/runs", {"spec": "server-health"}, token="not-a-token")
    reading = api.get("/runs/anything", token=None)
    for answer in (missing, wrong, reading):
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.json()["error"].startswith("no bearer token")
    assert wrong.json()["error"].startswith("unknown token")
    with api.store() as store:
        assert len(store.list_runs(limit=1000)) == before
        denied = audit.events(store, action="api.denied", limit=3)
    assert [entry.detail["reason"] for entry in denied] == ["no bearer token", "unknown token", "no bearer token"]
    assert all(entry.actor == "api:anonymous" for entry in denied)


def test_unknown_spec_and_bad_parameter_get_422_with_the_clis_line(api: Api) -> None:
    with api.store() as store:
        before = len(store.list_runs(limit=1000))
    unknown = api.post("/runs", {"spec": "no-such-report"})
    assert unknown.status_code == 422
    assert unknown.json()["error"].startswith("unknown spec 'no-such-report'")
    bad = api.post("/runs", {"spec": "server-health", "parameters": {"region": "mars"}})
    cli = subprocess.run(
        [sys.executable, "-m", "reportctl", "render", "specs/server-health.yaml", "-p", "region=mars"],
        cwd=api.project, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert bad.status_code == 422 and cli.returncode == 1
    assert cli.stderr.splitlines()[0] == f"error: {bad.json()['error']}"
    assert "region" in bad.json()["error"] and "mars" in bad.json()["error"]
    with api.store() as store:
        assert len(store.list_runs(limit=1000)) == before  # nothing recorded


def test_bodies_are_capped_and_must_be_json(api: Api) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    too_big = requests.post(f"{api.url}/runs", data=b"x" * 1_000_001, headers=headers, timeout=30)
    assert too_big.status_code == 413
    malformed = requests.post(f"{api.url}/runs", data=b"{spec: oops", headers=headers, timeout=30)
    assert malformed.status_code == 400 and malformed.json()["error"].startswith("the body is not JSON")
    assert "\n" not in malformed.json()["error"]
    not_an_object = api.post("/runs", ["server-health"])
    assert not_an_object.status_code == 422
    assert api.get("/runs/19990101T000000Z-000000").status_code == 404
    assert api.get("/nowhere", token=None).status_code == 404


def test_a_standby_refuses_runs_with_retry_after(api: Api) -> None:
    standby = Api(api.project)
    try:
        health = standby.get("/healthz", token=None).json()
        assert health == {"status": "ok", "leading": False, "store": "ok"}
        refused = standby.post("/runs", {"spec": "server-health"})
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
        assert "standby" in refused.json()["error"]
    finally:
        standby.daemon.stop()


def test_tls_with_a_self_signed_certificate(tmp_path: Path, tokens: None) -> None:
    cert, key = _self_signed(tmp_path)
    server = Api(_make_project(tmp_path / "project"), "--tls-cert", str(cert), "--tls-key", str(key), scheme="https")
    try:
        health = server.get("/healthz", token=None, verify=str(cert))
        assert (health.status_code, health.json()["store"]) == (200, "ok")
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{server.url}/healthz", timeout=30)  # not trusted without the certificate
    finally:
        server.daemon.stop()


def test_a_public_listen_needs_tls_or_insecure_listen(tmp_path: Path, tokens: None) -> None:
    project = _make_project(tmp_path)
    command = [sys.executable, "-m", "reportctl", "schedule", "daemon", "--listen", f"0.0.0.0:{_free_port()}"]
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: --listen 0.0.0.0:{command[-1].rpartition(':')[2]}: only loopback is served without TLS; give "
        "--tls-cert and --tls-key, or --insecure-listen when a TLS-terminating proxy sits in front"
    ]


def test_idempotency_keys_are_shared_through_the_store_and_expire_after_a_day(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    now = datetime(2026, 12, 4, 9, tzinfo=UTC)
    with StateStore(url) as one, StateStore(url) as other:  # two daemons, or one before and after a restart
        first = create_run_once(one, "alert:group-1", "incident", now, trigger="alert")
        same = create_run_once(other, "alert:group-1", "incident", now + timedelta(hours=23), trigger="alert")
        later = create_run_once(other, "alert:group-1", "incident", now + IDEMPOTENCY_WINDOW, trigger="alert")
        runs = {run.id: run.trigger for run in one.list_runs()}
    assert first.created and not same.created and same.run_id == first.run_id
    assert later.created and later.run_id != first.run_id
    assert runs == {first.run_id: "alert", later.run_id: "alert"}


def _self_signed(folder: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "api.crt", folder / "api.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


INCIDENT = """\
apiVersion: reportctl/v1
name: incident
parameters:
  service: {type: string, default: all}
  period: {type: period, default: last_7_days}
sources:
  metrics: {kind: sample, rows: 5}
sections:
  - {id: t, type: table, dataset: metrics}
outputs: [csv]
"""


def _alertmanager_payload(status: str, ends_at: str) -> dict[str, Any]:
    """A webhook body as Alertmanager (notify/webhook, version 4) sends it for a one-alert group."""
    labels = {"alertname": "HighLatency", "service": "checkout", "severity": "page"}
    alert = {
        "status": status, "labels": labels, "annotations": {"summary": "p95 above 2s"},
        "startsAt": "2026-12-04T08:00:00Z", "endsAt": ends_at,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=latency", "fingerprint": "c0ffee0123456789",
    }  # fmt: skip
    return {
        "version": "4", "groupKey": '{}:{alertname="HighLatency"}', "truncatedAlerts": 0, "status": status,
        "receiver": "reportctl", "groupLabels": {"alertname": "HighLatency"}, "commonLabels": labels,
        "commonAnnotations": alert["annotations"], "externalURL": "http://alertmanager:9093", "alerts": [alert],
    }  # fmt: skip


def test_an_alertmanager_group_renders_once_however_often_it_is_sent(api: Api) -> None:
    (api.project / "specs" / "incident.yaml").write_text(INCIDENT)
    firing = api.post("/alerts/incident", _alertmanager_payload("firing", "0001-01-01T00:00:00Z"))
    resent = api.post("/alerts/incident", _alertmanager_payload("firing", "2026-12-04T08:30:00Z"))
    assert (firing.status_code, resent.status_code) == (202, 200), (firing.text, resent.text)
    assert resent.json()["run_id"] == firing.json()["run_id"]
    run = api.finished(firing.json()["run_id"])
    assert (run["state"], run["trigger"], run["parameters"]["service"]) == ("COMPLETED", "alert", "checkout")
    bad = api.post("/alerts/incident", {"alerts": "not a list"})
    assert bad.status_code == 422 and "\n" not in bad.json()["error"]
    with api.store() as store:
        entries = audit.events(store, report="incident", action="trigger")
    assert [(entry.actor, entry.detail["trigger"]) for entry in entries] == [("api:ci_token", "alert")]


def test_health_says_when_the_store_is_down_and_runs_are_refused_meanwhile(
    tmp_path: Path, tokens: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from own_postgres import own_postgres

    project = _make_project(tmp_path)
    with own_postgres() as postgres:
        monkeypatch.setenv("REPORTCTL_STATE_URL", postgres.url)
        server = Api(project)
        try:
            assert server.get("/healthz", token=None).json()["store"] == "ok"
            postgres.crash()
            down = server.get("/healthz", token=None)
            assert (down.status_code, down.json()["status"], down.json()["store"]) == (503, "degraded", "unreachable")
            refused = server.post("/runs", {"spec": "server-health"})
            assert refused.status_code == 503 and "\n" not in refused.json()["error"]
            postgres.start()
            deadline = time.monotonic() + 60
            while server.get("/healthz", token=None).status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert server.get("/healthz", token=None).json()["store"] == "ok"
        finally:
            server.daemon.stop()
