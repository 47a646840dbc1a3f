"""The s3 channel against a real S3 API (moto_server on 127.0.0.1): uploads, multipart, encryption, links, errors."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from pydantic import ValidationError
from s3_server import MotoServer, closed_port

from reportctl.delivery.base import ChannelCheckError, DeliveryContext, PermanentFailure, TemporaryFailure
from reportctl.delivery.s3 import S3Channel, S3Options
from reportctl.run_record import Artifact

MiB = 1024 * 1024
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


pytestmark = pytest.mark.usefixtures("aws_environment")


@pytest.fixture
def context(delivery_context: Callable[..., DeliveryContext]) -> DeliveryContext:
    """The fixture run, with a manifest.json beside its artifacts as the runner writes one."""
    made = delivery_context()
    assert made.directory is not None
    (made.directory / "manifest.json").write_text(json.dumps({"run_id": made.run_id}) + "\n")
    return made


@pytest.fixture
def channel(s3: MotoServer) -> Iterator[Callable[..., S3Channel]]:
    """``make(context, **options)``: an S3Channel on the moto endpoint, closed after the test."""
    made: list[S3Channel] = []

    def make(context: DeliveryContext, **options: Any) -> S3Channel:
        values = {"channel": "s3", "endpoint_url": s3.endpoint, **options}
        made.append(S3Channel(S3Options.model_validate(values), context))
        return made[-1]

    yield make
    for each in made:
        each.close()


def deliver(channel: S3Channel) -> str:
    """Send to the channel's one recipient as the engine would, and return the provider's response."""
    [recipient] = channel.recipients()
    assert recipient.problem is None
    outcome = channel.send([recipient])[recipient.address]
    assert outcome.status == "sent"
    return outcome.response


def test_uploads_each_artifact_and_the_manifest_under_the_rendered_prefix(
    channel: Callable[..., S3Channel], context: DeliveryContext, bucket: str, peer: Any
) -> None:
    s3 = channel(context, url=f"s3://{bucket}/{{{{ name }}}}/{{{{ run.date }}}}", sse="AES256")
    [recipient] = s3.recipients()
    assert recipient.address == f"s3://{bucket}/server-health/2026-11-28/"

    response = deliver(s3)

    assert response == f"uploaded 4 files (12.4 KiB) to s3://{bucket}/server-health/2026-11-28/"
    listed = peer.list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == [
        "server-health/2026-11-28/latency.csv",
        "server-health/2026-11-28/manifest.json",
        "server-health/2026-11-28/server-health.pdf",
        "server-health/2026-11-28/server-health.xlsx",
    ]
    types = {"pdf": "application/pdf", "xlsx": XLSX, "csv": "text/csv; charset=utf-8"}
    for artifact in context.artifacts:
        key = f"server-health/2026-11-28/{artifact.path.name}"
        stored = peer.get_object(Bucket=bucket, Key=key)
        assert stored["Body"].read() == artifact.path.read_bytes()
        assert stored["ContentType"] == types[artifact.format]
        assert stored["Metadata"] == {"sha256": artifact.sha256, "run-id": context.run_id}
        assert peer.head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "AES256"
    manifest = peer.get_object(Bucket=bucket, Key="server-health/2026-11-28/manifest.json")
    assert json.loads(manifest["Body"].read()) == {"run_id": context.run_id}
    assert manifest["ContentType"] == "application/json"


def test_resending_overwrites_with_the_same_bytes(
    channel: Callable[..., S3Channel], context: DeliveryContext, bucket: str, peer: Any
) -> None:
    deliver(channel(context, url=f"s3://{bucket}/weekly/"))
    deliver(channel(context, url=f"s3://{bucket}/weekly/"))

    listed = peer.list_objects_v2(Bucket=bucket)["Contents"]
    assert len(listed) == 4
    stored = peer.get_object(Bucket=bucket, Key="weekly/server-health.pdf")["Body"].read()
    assert stored == context.artifacts[0].path.read_bytes()


def test_a_file_above_8_mb_goes_up_in_parts(
    channel: Callable[..., S3Channel],
    delivery_context: Callable[..., DeliveryContext],
    tmp_path: Path,
    bucket: str,
    peer: Any,
) -> None:
    content = uuid.uuid4().bytes * (9 * MiB // 16)
    path = tmp_path / "archive.pdf"
    path.write_bytes(content)
    big = Artifact("pdf", path, len(content), hashlib.sha256(content).hexdigest())
    s3 = channel(delivery_context(artifacts=(big,), directory=None), url=f"s3://{bucket}/big/")

    assert deliver(s3) == f"uploaded 1 file (9.0 MiB) to s3://{bucket}/big/"

    head = peer.head_object(Bucket=bucket, Key="big/archive.pdf")
    assert head["ETag"].strip('"').endswith("-2")  # a multipart ETag counts its parts: 8 MiB + 1 MiB
    assert head["ContentLength"] == len(content)
    stored = peer.get_object(Bucket=bucket, Key="big/archive.pdf")["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == big.sha256


def test_kms_encryption_names_the_key(
    s3: MotoServer, channel: Callable[..., S3Channel], context: DeliveryContext, bucket: str, peer: Any
) -> None:
    kms = s3.client("kms")
    key_id = kms.create_key(Description="reports")["KeyMetadata"]["KeyId"]
    kms.close()

    deliver(channel(context, url=f"s3://{bucket}/", sse="aws:kms", kms_key_id=key_id, formats=["csv"]))

    head = peer.head_object(Bucket=bucket, Key="latency.csv")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(key_id)
    assert [o["Key"] for o in peer.list_objects_v2(Bucket=bucket)["Contents"]] == ["latency.csv"]


@pytest.mark.parametrize("addressing_style", ["auto", "path"])
def test_links_fetched_over_http_return_the_uploaded_bytes(
    channel: Callable[..., S3Channel], context: DeliveryContext, bucket: str, addressing_style: str
) -> None:
    options = {"url": f"s3://{bucket}/{{{{ run.date }}}}/", "addressing_style": addressing_style}
    deliver(channel(context, **options, link_expiry="1h"))

    # links() as a resumed delivery calls it: a new channel in a later process, with nothing kept from send()
    links = channel(context, **options, link_expiry="1h").links()

    assert sorted(links) == ["csv", "manifest", "pdf", "xlsx"]
    for artifact in context.artifacts:
        url = links[artifact.format]
        assert urlsplit(url).path == f"/{bucket}/2026-11-28/{artifact.path.name}"
        assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["3600"]
        with requests.get(url, timeout=10) as response:
            assert response.status_code == 200
            assert response.content == artifact.path.read_bytes()


def test_links_default_to_seven_days(channel: Callable[..., S3Channel], context: DeliveryContext, bucket: str) -> None:
    links = channel(context, url=f"s3://{bucket}/", formats=["pdf"]).links()

    assert list(links) == ["pdf"]
    assert parse_qs(urlsplit(links["pdf"]).query)["X-Amz-Expires"] == ["604800"]


def test_a_bucket_that_does_not_exist_is_a_permanent_failure(
    s3: MotoServer, channel: Callable[..., S3Channel], context: DeliveryContext
) -> None:
    with pytest.raises(PermanentFailure) as failure:
        deliver(channel(context, url="s3://no-such-reports-bucket/x/"))

    assert str(failure.value) == (
        f"bucket 'no-such-reports-bucket' does not exist at {s3.endpoint}; create it or fix url"
    )


@pytest.mark.parametrize("wrong", ["secret", "key"])
def test_wrong_credentials_are_a_permanent_failure_naming_the_fix(
    s3: MotoServer, channel: Callable[..., S3Channel], context: DeliveryContext, bucket: str, peer: Any, wrong: str
) -> None:
    with s3.authentication() as valid:
        # the same setup with valid keys succeeds, so the refusal below is moto checking the credentials
        deliver(channel(context, url=f"s3://{bucket}/ok/", formats=["csv"], **valid))
        bad = {**valid, "secret_access_key": "not-the-secret-4711"}
        if wrong == "key":
            bad["access_key_id"] = "AKIAUNKNOWNUNKNOWN00"
        with pytest.raises(PermanentFailure) as failure:
            deliver(channel(context, url=f"s3://{bucket}/bad/", formats=["csv"], **bad))

    message = str(failure.value)
    code = "InvalidAccessKeyId" if wrong == "key" else "SignatureDoesNotMatch"
    assert f"refused the credentials for bucket '{bucket}' ({code})" in message
    assert "fix access_key_id and secret_access_key" in message
    assert "not-the-secret-4711" not in message
    assert [o["Key"] for o in peer.list_objects_v2(Bucket=bucket)["Contents"]] == ["ok/latency.csv"]


def test_missing_credentials_name_the_options_and_variables(
    channel: Callable[..., S3Channel], context: DeliveryContext, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    with pytest.raises(PermanentFailure) as failure:
        deliver(channel(context, url=f"s3://{bucket}/"))

    assert str(failure.value).startswith("no S3 credentials found; set access_key_id and secret_access_key")
    assert "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in str(failure.value)


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An endpoint that accepts connections and never answers (the kernel queues them; nobody reads)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def throttling_endpoint() -> Iterator[str]:
    """An endpoint answering every request as S3 does when throttling: 503 SlowDown."""

    class SlowDown(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowDown)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_an_unreachable_endpoint_is_a_temporary_failure(
    channel: Callable[..., S3Channel], context: DeliveryContext
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"

    with pytest.raises(TemporaryFailure, match=f"cannot reach {endpoint}: Could not connect"):
        deliver(channel(context, url="s3://reports/", endpoint_url=endpoint, timeout="2s"))


def test_an_endpoint_that_never_answers_is_a_temporary_failure(
    channel: Callable[..., S3Channel], context: DeliveryContext, silent_endpoint: str
) -> None:
    with pytest.raises(TemporaryFailure, match=f"cannot reach {silent_endpoint}: Read timeout"):
        deliver(channel(context, url="s3://reports/", endpoint_url=silent_endpoint, timeout="200ms"))


def test_throttling_is_a_temporary_failure(
    channel: Callable[..., S3Channel], context: DeliveryContext, throttling_endpoint: str
) -> None:
    with pytest.raises(TemporaryFailure) as failure:
        deliver(channel(context, url="s3://reports/", endpoint_url=throttling_endpoint, formats=["csv"]))

    assert str(failure.value) == f"{throttling_endpoint} answered 503 SlowDown"


def test_formats_the_run_did_not_write_make_the_recipient_fail_before_sending(
    channel: Callable[..., S3Channel], context: DeliveryContext, bucket: str, peer: Any
) -> None:
    [recipient] = channel(context, url=f"s3://{bucket}/", formats=["pdf", "html"]).recipients()

    assert recipient.problem == "formats lists html but the run wrote no such artifact (it wrote csv, pdf, xlsx)"
    assert peer.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_a_url_rendering_to_a_bad_bucket_makes_the_recipient_fail(
    channel: Callable[..., S3Channel], delivery_context: Callable[..., DeliveryContext]
) -> None:
    [recipient] = channel(delivery_context(report="Server_Health"), url="s3://{{ name }}/").recipients()

    assert recipient.address == "s3://{{ name }}/"
    assert recipient.problem is not None
    assert "'Server_Health' is not a valid bucket name" in recipient.problem


def test_preview_lists_keys_types_and_sizes_without_writing(
    s3: MotoServer, channel: Callable[..., S3Channel], context: DeliveryContext, bucket: str, peer: Any
) -> None:
    preview_channel = channel(context, url=f"s3://{bucket}/{{{{ name }}}}/", sse="AES256")

    text = preview_channel.preview(preview_channel.recipients())

    key = f"s3://{bucket}/server-health/"
    rows = [
        ("server-health.pdf", "application/pdf", "2.4 KiB"),
        ("server-health.xlsx", XLSX, "10.0 KiB"),
        ("latency.csv", "text/csv; charset=utf-8", "32 B"),
        ("manifest.json", "application/json", "36 B"),
    ]
    assert text.splitlines() == [
        f"upload 4 files to {key} at {s3.endpoint}, encrypted with AES256; links valid for 7d",
        *(f"  {key}{name:18}  {kind:{len(XLSX)}}  {size}" for name, kind, size in rows),
    ]
    assert peer.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_check_finds_an_existing_bucket(s3: MotoServer, context: DeliveryContext, bucket: str) -> None:
    options = S3Options(channel="s3", url=f"s3://{bucket}/{{{{ name }}}}/", endpoint_url=s3.endpoint)

    assert S3Channel.check(options, context.project) == f"bucket '{bucket}' reachable at {s3.endpoint}"


@pytest.mark.parametrize(
    ("url", "endpoint", "message"),
    [
        ("s3://missing-bucket/", "moto", "bucket 'missing-bucket' does not exist at {endpoint}; create it or fix url"),
        ("s3://{{ name }}/x/", "moto", "the bucket is a template, so it cannot be checked before a run"),
        ("s3://reports/", "closed", "cannot reach {endpoint}"),
    ],
)
def test_check_says_what_to_fix(
    s3: MotoServer, context: DeliveryContext, url: str, endpoint: str, message: str
) -> None:
    address = s3.endpoint if endpoint == "moto" else f"http://127.0.0.1:{closed_port()}"
    options = S3Options(channel="s3", url=url, endpoint_url=address, timeout="2s")

    with pytest.raises(ChannelCheckError) as error:
        S3Channel.check(options, context.project)

    assert message.format(endpoint=address) in str(error.value)


def test_check_names_the_credentials_when_access_is_refused(
    s3: MotoServer, context: DeliveryContext, bucket: str
) -> None:
    options = S3Options(
        channel="s3", url=f"s3://{bucket}/", endpoint_url=s3.endpoint, access_key_id="AKIAX", secret_access_key="x"
    )
    with s3.authentication(), pytest.raises(ChannelCheckError) as error:
        S3Channel.check(options, context.project)

    assert str(error.value).startswith(f"{s3.endpoint} refused the credentials for bucket '{bucket}' (403); fix")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "https://reports.example.com/"}, "expected an s3://bucket/prefix/ URL"),
        ({"url": "s3://Reports_2026/"}, "'Reports_2026' is not a valid bucket name"),
        ({"url": "s3://ab/"}, "'ab' is not a valid bucket name"),
        ({"url": "s3://my..reports/"}, "'my..reports' is not a valid bucket name"),
        ({"url": "s3://192.168.10.1/"}, "must not look like an IP address"),
        ({"url": "s3://reports//daily/"}, "empty path segment"),
        ({"url": "s3:///daily/"}, "the url names no bucket"),
        ({"url": "s3://Bad_Bucket/{{ name }}/"}, "'Bad_Bucket' is not a valid bucket name"),
        ({"url": "s3://reports/{{ name /"}, "the template: syntax error on line 1"),
        ({"sse": "AES256", "kms_key_id": "k"}, "a KMS key applies only with sse: aws:kms"),
        ({"kms_key_id": "k"}, "a KMS key applies only with sse: aws:kms"),
        ({"link_expiry": "8d"}, "8d is too long: S3 presigned links (SigV4) last at most 7d"),
        ({"link_expiry": "0s"}, "expected a positive duration"),
        ({"access_key_id": "AKIAX"}, "give access_key_id and secret_access_key together"),
        ({"endpoint_url": "minio:9000"}, "expected an http:// or https:// URL"),
        ({"formats": ["pdff"]}, "unknown output format 'pdff' (did you mean 'pdf'?)"),
        ({"addressing_style": "host"}, "'auto', 'path' or 'virtual'"),
    ],
)
def test_options_reject(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as error:
        S3Options.model_validate({"channel": "s3", "url": "s3://reports/", **options})

    assert message in str(error.value)


@pytest.mark.parametrize(
    "options",
    [
        {"url": "s3://reports/{{ name }}/{{ run.date }}/"},
        {"url": "s3://{{ params.region }}-reports/"},
        {"url": "s3://reports"},
        {"sse": "aws:kms", "kms_key_id": "alias/reports", "link_expiry": "7d", "formats": ["pdf", "manifest"]},
        {"access_key_id": "${secret:S3_KEY}", "secret_access_key": "${secret:S3_SECRET}"},
        {"endpoint_url": "https://minio.example.com:9000", "addressing_style": "path", "region": "eu-central-1"},
    ],
)
def test_options_accept(options: dict[str, Any]) -> None:
    S3Options.model_validate({"channel": "s3", "url": "s3://reports/", **options})
