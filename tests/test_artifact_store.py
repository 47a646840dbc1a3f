"""The artifact store (``artifacts:`` in reportctl.yaml) against a real S3 API: moto_server on 127.0.0.1.

A recorded run's artifacts and manifest.json land in the bucket with the bytes and sha256 the manifest lists, the
run's record carries each object's URL (``runs show``), links are signed on demand, and a store that refuses the
upload fails the run in one line. Without the setting nothing changes.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import CliResult
from delivery.s3_server import MotoServer, closed_port
from reportctl.artifact_store import ArtifactStore, ArtifactStoreError
from reportctl.config import ArtifactStoreConfig
from reportctl.run_record import Artifact, RunResult

Cli = Callable[..., CliResult]

REPORT = """\
apiVersion: reportctl/v1
name: health
title: Health
sources:
  metrics: {kind: sample, rows: 200, seed: 3}
datasets:
  by_service:
    from: metrics
    group_by: [service]
    aggregate: {samples: count(), p95: p95(latency_ms)}
sections:
  - {id: services, type: table, dataset: by_service}
outputs: [csv, json]
"""


pytestmark = pytest.mark.usefixtures("aws_environment")


@pytest.fixture(autouse=True)
def _no_state_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPORTCTL_STATE_URL", raising=False)


@pytest.fixture
def spec(project: Path) -> Path:
    path = project / "specs" / "health.yaml"
    path.write_text(REPORT)
    return path


def configure(project: Path, artifacts: str) -> None:
    (project / "reportctl.yaml").write_text(f"timezone: UTC\nartifacts: {artifacts}\n")


def show(cli: Cli, run_id: str, *options: str) -> dict[str, Any]:
    result = cli("runs", "show", run_id, "--json", *options)
    assert result.exit_code == 0, result.stderr
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


def only_run(cli: Cli) -> dict[str, Any]:
    listed = cli("runs", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    (run,) = json.loads(listed.stdout)
    return show(cli, run["id"])


def test_a_run_keeps_its_artifacts_and_manifest_in_the_store_with_the_manifests_bytes_and_hashes(
    cli: Cli, project: Path, spec: Path, s3: MotoServer, bucket: str, peer: Any
) -> None:
    configure(project, f"{{url: 's3://{bucket}/team/runs', endpoint_url: '{s3.endpoint}', sse: AES256}}")

    rendered = cli("render", str(spec), "--json")

    assert rendered.exit_code == 0, rendered.stderr
    run_id = json.loads(rendered.stdout)["run_id"]
    folder = project / "out" / "health" / run_id
    manifest = json.loads((folder / "manifest.json").read_text())
    prefix = f"team/runs/health/{run_id}/"
    keys = sorted(o["Key"] for o in peer.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted([*(prefix + a["path"] for a in manifest["artifacts"]), prefix + "manifest.json"])
    for listed in manifest["artifacts"]:
        stored = peer.get_object(Bucket=bucket, Key=prefix + listed["path"])
        body = stored["Body"].read()
        assert body == (folder / listed["path"]).read_bytes()
        assert hashlib.sha256(body).hexdigest() == listed["sha256"] and len(body) == listed["bytes"]
        assert stored["Metadata"] == {"sha256": listed["sha256"], "run-id": run_id}
        assert stored["ServerSideEncryption"] == "AES256"
    stored_manifest = peer.get_object(Bucket=bucket, Key=prefix + "manifest.json")["Body"].read()
    assert stored_manifest == (folder / "manifest.json").read_bytes()

    record = show(cli, run_id)
    assert {a["path"]: a["url"] for a in record["artifacts"]} == {
        a["path"]: f"s3://{bucket}/{prefix}{a['path']}" for a in manifest["artifacts"]
    }
    assert record["artifact_store"] == {
        "url": f"s3://{bucket}/{prefix}",
        "manifest": f"s3://{bucket}/{prefix}manifest.json",
    }
    distributing = next(c for c in record["timeline"] if c["state"] == "DISTRIBUTING")
    assert distributing["detail"].startswith("stored 3 files (") and distributing["detail"].endswith(
        f" in s3://{bucket}/{prefix}"
    )
    text = cli("runs", "show", run_id).stdout.splitlines()
    assert f"                    s3://{bucket}/{prefix}health.csv" in text
    assert f"  stored            s3://{bucket}/{prefix}" in text


def test_links_download_the_stored_files_on_a_machine_without_the_run_folder(
    cli: Cli, project: Path, spec: Path, s3: MotoServer, bucket: str
) -> None:
    configure(project, f"{{url: 's3://{bucket}/', endpoint_url: '{s3.endpoint}', link_expiry: 1h}}")
    assert cli("render", str(spec)).exit_code == 0
    record = only_run(cli)
    # another machine: the worker's folder is not there, only the state store and the bucket
    for path in (project / "out" / "health").iterdir():
        for file in sorted(path.rglob("*"), reverse=True):
            file.unlink() if file.is_file() else file.rmdir()
        path.rmdir()

    linked = show(cli, record["id"], "--links")

    for artifact in linked["artifacts"]:
        assert artifact["link"].startswith(s3.endpoint + "/") and "X-Amz-Expires=3600" in artifact["link"]
        with requests.get(artifact["link"], timeout=10) as download:
            assert download.status_code == 200
            assert hashlib.sha256(download.content).hexdigest() == artifact["sha256"]
    store = linked["artifact_store"]
    assert store["links_valid_for"] == "1h"
    with requests.get(store["manifest_link"], timeout=10) as download:
        assert json.loads(download.content)["run_id"] == record["id"]
    text = cli("runs", "show", record["id"], "--links").stdout.splitlines()
    signed = [line.strip() for line in text if line.strip().startswith(s3.endpoint)]
    assert [link.partition("?")[0] for link in signed] == [a["link"].partition("?")[0] for a in linked["artifacts"]]
    assert text[-1].endswith(" (links valid for 1h)")


def test_a_bucket_that_does_not_exist_fails_the_run_in_one_line_and_leaves_nothing(
    cli: Cli, project: Path, spec: Path, s3: MotoServer, peer: Any
) -> None:
    missing = f"missing-{uuid.uuid4().hex[:10]}"
    configure(project, f"{{url: 's3://{missing}/runs/', endpoint_url: '{s3.endpoint}'}}")

    result = cli("render", str(spec))

    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(
        f"error: cannot keep the run's files in the artifact store (artifacts.url in {project / 'reportctl.yaml'}): "
        f"s3://{missing}/runs/health/"
    )
    assert line.endswith(f"bucket '{missing}' does not exist at {s3.endpoint}; create it or fix url")
    record = only_run(cli)
    assert record["state"] == "FAILED" and record["error"] == line.removeprefix("error: ")
    assert record["artifacts"] == [] and "artifact_store" not in record
    assert list((project / "out" / "health").iterdir()) == [], "a failed run leaves no folder behind"
    assert missing not in {b["Name"] for b in peer.list_buckets()["Buckets"]}


def test_without_the_setting_nothing_is_uploaded_and_links_are_refused(
    cli: Cli, project: Path, spec: Path, bucket: str, peer: Any
) -> None:
    result = cli("render", str(spec), "--json")

    assert result.exit_code == 0, result.stderr
    assert all("url" not in a for a in json.loads(result.stdout)["artifacts"])
    record = only_run(cli)
    assert (
        "artifact_store" not in record
        and [sorted(a) for a in record["artifacts"]] == [["bytes", "format", "path", "sha256"]] * 2
    )
    assert not any(c["detail"] for c in record["timeline"] if c["state"] == "DISTRIBUTING")
    assert "Contents" not in peer.list_objects_v2(Bucket=bucket)
    refused = cli("runs", "show", record["id"], "--links")
    assert refused.exit_code == 2
    assert refused.stderr.strip() == (
        f"error: --links: run {record['id']} has no files in an artifact store; runs keep their files there once "
        "artifacts: {url: s3://bucket/prefix/} is set in reportctl.yaml"
    )


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (
            "url: https://runs/team/",
            "3:8: artifacts.url: expected an s3://bucket/prefix/ URL, got 'https://runs/team/'",
        ),
        ("url: s3://Bad_Bucket/", "3:8: artifacts.url: 'Bad_Bucket' is not a valid bucket name: 3 to 63 lowercase"),
        ("endpoint_url: minio:9000", "4:17: artifacts.endpoint_url: expected an http:// or https:// URL such as"),
        ("link_expiry: 8d", "4:16: artifacts.link_expiry: 8d is too long: S3 presigned links (SigV4) last at most 7d"),
        ("kms_key_id: k1", "4:15: artifacts.kms_key_id: a KMS key applies only with sse: aws:kms; set sse: aws:kms"),
        ("access_key_id: a", "3:3: artifacts: give access_key_id and secret_access_key together, or neither"),
        ("bucket: runs", "4:3: artifacts.bucket: "),
    ],
)
def test_config_errors_are_one_line_naming_reportctl_yaml_the_field_and_the_fix(
    cli: Cli, project: Path, settings: str, problem: str
) -> None:
    lines = [settings] if settings.startswith("url:") else ["url: s3://runs/team/", settings]
    (project / "reportctl.yaml").write_text("timezone: UTC\nartifacts:\n" + "".join(f"  {x}\n" for x in lines))

    result = cli("validate")

    assert result.exit_code == 1
    assert result.stdout.splitlines()[0].startswith(f"reportctl.yaml:{problem}"), result.stdout
    assert result.stdout.splitlines()[1:] == ["1 problem in 1 of 1 files"]


def test_a_url_alone_is_the_whole_setting(cli: Cli, project: Path) -> None:
    configure(project, "s3://runs/team/")

    from reportctl.config import find_project

    settings = find_project().config.artifacts
    assert settings is not None and settings.url == "s3://runs/team/" and settings.sse is None
    assert cli("validate").exit_code == 0


def test_an_unreachable_store_is_tried_again_with_backoff_then_fails_naming_the_endpoint(tmp_path: Path) -> None:
    folder = tmp_path / "health" / "run-1"
    folder.mkdir(parents=True)
    (folder / "health.csv").write_text("a\n1\n")
    (folder / "manifest.json").write_text("{}\n")
    digest = hashlib.sha256(b"a\n1\n").hexdigest()
    result = RunResult("run-1", "health", "completed", folder, [Artifact("csv", folder / "health.csv", 4, digest)], {})
    endpoint = f"http://127.0.0.1:{closed_port()}"
    settings = ArtifactStoreConfig.model_validate({"url": "s3://runs/", "endpoint_url": endpoint, "retries": 2})
    waits: list[float] = []

    with (
        ArtifactStore(settings, tmp_path / "reportctl.yaml", sleep=waits.append) as store,
        pytest.raises(ArtifactStoreError) as raised,
    ):
        store.keep(result)

    assert waits == [1.0, 2.0]
    message = str(raised.value)
    assert message.startswith(
        f"cannot keep the run's files in the artifact store (artifacts.url in {tmp_path / 'reportctl.yaml'}): "
        "s3://runs/health/run-1/health.csv: cannot reach " + endpoint
    )
    assert message.endswith("after 3 tries") and "\n" not in message


def test_without_boto3_the_setting_names_the_s3_extra(
    cli: Cli, project: Path, spec: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    import reportctl.extras

    real = importlib.util.find_spec
    monkeypatch.setattr(reportctl.extras, "find_spec", lambda name: None if name == "boto3" else real(name))
    configure(project, "{url: 's3://runs/team/'}")

    for command in (("validate",), ("render", str(spec))):
        result = cli(*command)
        assert result.exit_code == 1
        assert (
            "reportctl.yaml:2:12: artifacts: the artifact store needs boto3, which is not installed; "
            "pip install 'reportctl[s3]'"
        ) in result.stdout + result.stderr
    assert not (project / "out").exists()


HOURLY = """\
apiVersion: reportctl/v1
name: hourly
sources:
  metrics: {kind: sample, rows: 200}
sections:
  - {id: t, type: table, dataset: metrics}
outputs: [csv]
schedule: {cron: "0 * * * *", timezone: UTC, misfire_grace: 30m}
"""


def test_a_celery_worker_keeps_the_run_it_renders_in_the_store_for_other_machines(
    cli: Cli,
    project: Path,
    s3: MotoServer,
    bucket: str,
    peer: Any,
    pg_store_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import signal
    import subprocess
    import sys
    import time

    from conftest import require_service
    from reportctl.state import StateStore

    require_service("Redis", "127.0.0.1", 6379)
    queues = f"t{uuid.uuid4().hex[:10]}"
    (project / "reportctl.yaml").write_text(
        "timezone: UTC\n"
        f"executor: {{kind: celery, broker: 'redis://127.0.0.1:6379/0', "
        f"queues: {{critical: {queues}.critical, standard: {queues}.standard}}}}\n"
        f"artifacts: {{url: 's3://{bucket}/runs/', endpoint_url: '{s3.endpoint}'}}\n"
    )
    (project / "specs" / "hourly.yaml").write_text(HOURLY)
    monkeypatch.setenv("REPORTCTL_STATE_URL", pg_store_url)
    command = [sys.executable, "-m", "reportctl", "worker", "--concurrency", "1", "--name", "w1@test"]
    with subprocess.Popen(command, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as worker:
        try:
            ticked = cli("schedule", "tick", "--now", "2026-11-30T09:05:00+00:00", "--json")
            assert ticked.exit_code == 0, ticked.stderr
            (fire,) = json.loads(ticked.stdout)["fires"]
            assert fire["state"] == "QUEUED", "the worker renders it, not the tick"
            deadline = time.monotonic() + 90
            with StateStore(pg_store_url) as store:
                while not store.get_run(fire["run_id"]).state.terminal:
                    assert time.monotonic() < deadline, "the worker did not finish the run within 90 s"
                    time.sleep(0.3)
                run = store.get_run(fire["run_id"])
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()

    assert run.state.value == "COMPLETED", run.error
    (artifact,) = run.artifacts
    key = f"runs/hourly/{run.id}/hourly.csv"
    assert artifact["url"] == f"s3://{bucket}/{key}"
    stored = peer.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == artifact["sha256"]
    # elsewhere: without the worker's folder, the run's files still download from its record
    (project / "out").rename(project / "worker-disk")
    linked = show(cli, run.id, "--links")
    with requests.get(linked["artifacts"][0]["link"], timeout=10) as download:
        assert download.content == stored


def test_deliveries_link_to_the_stored_files_with_signed_links(
    cli: Cli, project: Path, spec: Path, s3: MotoServer, bucket: str
) -> None:
    """With no s3 delivery publishing the files and no artifact_base_url, a message links each artifact where the
    store keeps it, a link signed for artifacts.link_expiry, also for a run read back from the state store."""
    from reportctl.config import find_project
    from reportctl.delivery.base import DeliveryContext, DeliveryTarget
    from reportctl.delivery.recipients import Directory
    from reportctl.state import open_store

    configure(project, f"{{url: 's3://{bucket}/runs', endpoint_url: '{s3.endpoint}'}}")
    rendered = cli("render", str(spec), "--json")
    assert rendered.exit_code == 0, rendered.stderr
    run_id = json.loads(rendered.stdout)["run_id"]
    here = find_project()
    with open_store(here) as store:
        target = DeliveryTarget.recorded(store.get_run(run_id))
    context = DeliveryContext.of(target, timezone="UTC", project=here, people=Directory([]))
    for artifact in context.artifacts:
        assert artifact.url == f"s3://{bucket}/runs/health/{run_id}/{artifact.path.name}"
        link = context.link(artifact)
        assert link is not None and link.startswith(s3.endpoint) and "Signature=" in link
        assert requests.get(link, timeout=10).content == artifact.path.read_bytes()


def test_replay_elsewhere_says_the_snapshot_stays_on_the_machine_that_rendered_it(
    cli: Cli, project: Path, spec: Path, s3: MotoServer, bucket: str
) -> None:
    from conftest import OTHER_HOST_WORKER, silence
    from reportctl.config import find_project
    from reportctl.state import open_store

    configure(project, f"{{url: 's3://{bucket}/runs/', endpoint_url: '{s3.endpoint}'}}\nsnapshots: true")
    rendered = cli("render", str(spec), "--json")
    assert rendered.exit_code == 0, rendered.stderr
    run_id = json.loads(rendered.stdout)["run_id"]
    with open_store(find_project()) as store:  # rendered by a worker on another host, whose disk this is not
        silence(store, run_id, worker=OTHER_HOST_WORKER)
    snapshot = project / "out" / "health" / run_id / "snapshot"
    (project / "out").rename(project / "worker-disk")

    result = cli("replay", run_id)

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: run {run_id}: its data snapshot {snapshot} is on elsewhere.invalid, which rendered it, not on this "
        "machine; replay it there (the artifact store keeps a run's files, not its snapshot)"
    ]
