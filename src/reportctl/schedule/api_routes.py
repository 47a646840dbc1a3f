"""The routes of the daemon's HTTP API (``schedule.http_api``): each reads the request, acts, answers in JSON.

Every refusal is one JSON line ``{"error": ...}``: 400 a body that is not JSON, 401 a missing or unknown token
(with ``WWW-Authenticate: Bearer`` and an ``api.denied`` audit entry), 403 a bad or expired link, 404 an unknown
path, run or file, 413 a body over 1 MB, 422 an unknown spec or bad parameter (the CLI's line), 503 a standby
daemon (``Retry-After``) or an unreachable store.
"""

from __future__ import annotations

import importlib
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportctl.errors import ReportctlError, first_line
from reportctl.schedule.http_api import BadRequest, path_parts, query_of
from reportctl.schedule.logs import log_event

if TYPE_CHECKING:
    from reportctl.schedule.daemon_service import DaemonService
    from reportctl.schedule.http_api import ApiHandler

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
"""An ``Idempotency-Key``: 1 to 200 visible ASCII characters (a UUID, a hash, a client's own name for the request)."""


def route_get(handler: ApiHandler) -> None:
    """``/healthz``, ``/metrics``, ``/runs/ID``, ``/artifacts/RUN/FILE``."""
    parts = path_parts(handler.path)
    try:
        if parts == ["healthz"]:
            _healthz(handler)
        elif parts == ["metrics"]:
            _metrics(handler)
        elif len(parts) == 2 and parts[0] == "runs":
            if _authorized(handler) is not None:
                _show_run(handler, parts[1])
        elif len(parts) >= 3 and parts[0] == "artifacts":
            _artifact(handler, parts[1], "/".join(parts[2:]))
        else:
            handler.send_error_json(404, f"no route GET {'/' + '/'.join(parts)}; see docs/operations.md")
    except _StoreDown as exc:
        handler.send_error_json(503, str(exc))


def route_post(handler: ApiHandler) -> None:
    """``/runs`` and ``/alerts/SPEC``: a token first, then the body, then the daemon."""
    parts = path_parts(handler.path)
    if parts != ["runs"] and not (len(parts) == 2 and parts[0] == "alerts"):
        handler.close_connection = True  # its body is not read
        handler.send_error_json(404, f"no route POST {'/' + '/'.join(parts)}; see docs/operations.md")
        return
    actor = _authorized(handler)
    if actor is None:
        handler.close_connection = True
        return
    try:
        body = handler.read_json()
        key = handler.headers.get("Idempotency-Key")
        if key is not None and not IDEMPOTENCY_KEY.match(key):
            raise BadRequest(400, "Idempotency-Key must be 1 to 200 visible ASCII characters")
        if parts == ["runs"]:
            _post_run(handler, body, actor, key)
        else:
            _post_alert(handler, parts[1], body, actor)
    except BadRequest as exc:
        handler.send_error_json(exc.status, str(exc))
    except _Unprocessable as exc:
        handler.send_error_json(422, str(exc))
    except _StoreDown as exc:
        handler.send_error_json(503, str(exc))


class _Unprocessable(ReportctlError):
    """422: the request is well formed but names an unknown spec, a bad parameter or field."""


class _StoreDown(ReportctlError):
    """503: the state store cannot be reached."""


def _service(handler: ApiHandler) -> DaemonService:
    service = handler.api.service
    if service is None:
        raise _StoreDown("the daemon is starting; try again in a moment")
    return service


def _authorized(handler: ApiHandler) -> str | None:
    """The actor (``api:<token secret name>``), or None after answering 401 and auditing the refusal."""
    from reportctl.state import audit

    header = handler.headers.get("Authorization")
    name = handler.api.token_name(header)
    if name is not None:
        return f"api:{name}"
    reason = "no bearer token" if not header else "unknown token"
    path = "/" + "/".join(path_parts(handler.path))
    service = handler.api.service
    if service is not None:  # an entry per refusal: who knocked, where, and why
        detail = {"method": handler.command, "path": path, "client": handler.client_address[0], "reason": reason}
        audit.record(service.daemon.store, "api.denied", actor="api:anonymous", detail=detail)
    log_event(handler.api.log, logging.WARNING, "api.denied", f"{handler.command} {path}: {reason}", path=path)
    handler.send_error_json(
        401, f"{reason}: send Authorization: Bearer <token> with a token named in api.tokens",
        {"WWW-Authenticate": 'Bearer realm="reportctl"'},
    )  # fmt: skip
    return None


def _healthz(handler: ApiHandler) -> None:
    from reportctl.schedule.daemon import DAEMON_TICK
    from reportctl.state.store import StateStoreError

    service = handler.api.service
    leading = bool(service is not None and service.daemon.leading)
    store = "unreachable"
    if service is not None:
        try:
            service.daemon.store.last_tick(DAEMON_TICK)  # one query: the store answers
            store = "ok"
        except StateStoreError:
            pass
    status = "ok" if store == "ok" else "degraded"
    handler.send_json(200 if store == "ok" else 503, {"status": status, "leading": leading, "store": store})


def _metrics(handler: ApiHandler) -> None:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    data = generate_latest(handler.api.metrics.registry)
    handler.send_response(200)
    handler.send_header("Content-Type", CONTENT_TYPE_LATEST)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _run_links(handler: ApiHandler) -> Any:
    base = handler.base_url()
    return lambda run, path: handler.api.link(base, run, path)


def _show_run(handler: ApiHandler, run_id: str) -> None:
    from reportctl.schedule.api_runs import run_json
    from reportctl.state.lifecycle import UnknownRun
    from reportctl.state.store import StateStoreError

    store = _service(handler).daemon.store
    try:
        run = store.get_run(run_id)
        handler.send_json(200, run_json(store, run, _run_links(handler)))
    except UnknownRun as exc:
        handler.send_error_json(404, str(exc))
    except StateStoreError as exc:
        raise _StoreDown(str(exc)) from None


def _accepting(handler: ApiHandler, service: DaemonService) -> bool:
    """Whether this daemon takes runs now; else a 503 has been answered (a standby, or stopping)."""
    if service.daemon.stopping.is_set():
        handler.send_error_json(503, "the daemon is stopping", {"Retry-After": handler.retry_after()})
        return False
    if not service.daemon.leading:
        handler.send_error_json(
            503, "this daemon is a standby; the leading daemon takes runs", {"Retry-After": handler.retry_after()}
        )
        return False
    return True


def _post_run(handler: ApiHandler, body: Any, actor: str, key: str | None) -> None:
    from reportctl.schedule.api_runs import ApiRequestError, RunRequest, find_spec

    service = _service(handler)
    try:
        request = RunRequest.of(body)
        loaded = find_spec(service.daemon.project, _known(service), request.spec)
    except ApiRequestError as exc:
        raise _Unprocessable(str(exc)) from None
    if _accepting(handler, service):
        _start(handler, service, loaded, request.parameters, actor, key, "api", request.deliver, {})


def _post_alert(handler: ApiHandler, spec: str, payload: Any, actor: str) -> None:
    """An Alertmanager notification: ``schedule.alerts.alert_trigger`` maps it to parameters and a key per alert
    group, or to nothing (a resolved group); the run starts as ``POST /runs`` would."""
    from datetime import UTC, datetime

    from reportctl.schedule.api_runs import ApiRequestError, find_spec

    service = _service(handler)
    try:
        alerts: Any = importlib.import_module("reportctl.schedule.alerts")
    except ImportError:
        handler.send_error_json(501, "this reportctl has no Alertmanager receiver (reportctl.schedule.alerts)")
        return
    try:
        loaded = find_spec(service.daemon.project, _known(service), spec)
        trigger = alerts.alert_trigger(loaded, payload, datetime.now(UTC))
    except (ApiRequestError, ReportctlError) as exc:
        raise _Unprocessable(first_line(str(exc), "invalid alert")) from None
    if trigger is None:
        handler.send_json(200, {"run_id": None, "state": None, "detail": "nothing to render for this notification"})
        return
    if _accepting(handler, service):
        detail = {"group_key": str(trigger.group_key), "status": str(trigger.status)}
        key = f"alert:{loaded.spec.name}:{trigger.idempotency_key}"
        _start(handler, service, loaded, dict(trigger.parameters), actor, key, "alert", True, detail)


def _start(
    handler: ApiHandler, service: DaemonService, loaded: Any, parameters: dict[str, str], actor: str,
    key: str | None, trigger: str, deliver: bool, detail: dict[str, Any],
) -> None:  # fmt: skip
    from reportctl.schedule.api_runs import ApiRequestError, submit
    from reportctl.state.store import StateStoreError

    try:
        submitted = submit(
            service, loaded, parameters, actor=actor, key=key, trigger=trigger, deliver=deliver, detail=detail
        )
    except ApiRequestError as exc:
        raise _Unprocessable(str(exc)) from None
    except StateStoreError as exc:
        raise _StoreDown(str(exc)) from None
    except ReportctlError as exc:  # the broker did not take it (executor: celery): recorded FAILED
        handler.send_error_json(503, str(exc))
        return
    run = submitted.run
    base = handler.base_url()
    body = {
        "run_id": run.id,
        "state": run.state.value,
        "created": submitted.created,
        "links": {"self": f"{base}/runs/{run.id}"},
    }
    if submitted.created:
        log_event(
            handler.api.log, logging.INFO, "api.run_submitted", f"{actor} asked for {run.report}",
            report=run.report, run_id=run.id, trigger=trigger,
        )  # fmt: skip
    handler.send_json(202 if submitted.created else 200, body, {"Location": f"/runs/{run.id}"})


def _known(service: DaemonService) -> dict[str, Path]:
    return {name: spec.path for name, spec in list(service.daemon.specs.items())}


def _artifact(handler: ApiHandler, run_id: str, filename: str) -> None:
    """A run's file by a signed link: streamed from this machine's copy, or redirected to a presigned link from
    the artifact store when only that holds it."""
    from datetime import UTC, datetime

    from reportctl.schedule.signed_links import BadLink, check_link
    from reportctl.state.lifecycle import UnknownRun
    from reportctl.state.store import StateStoreError

    api = handler.api
    if api.signing_key is None:
        handler.send_error_json(404, "no download links: api.signing_key is not set in reportctl.yaml")
        return
    query = query_of(handler.path)
    try:
        check_link(api.signing_key, run_id, filename, query.get("expires", ""), query.get("sig", ""), datetime.now(UTC))
    except BadLink as exc:
        handler.send_error_json(403, str(exc))
        return
    try:
        run = _service(handler).daemon.store.get_run(run_id)
    except UnknownRun:
        run = None
    except StateStoreError as exc:
        raise _StoreDown(str(exc)) from None
    artifact = next((a for a in run.artifacts if str(a.get("path")) == filename), None) if run else None
    if run is None or run.id != run_id or artifact is None:
        handler.send_error_json(404, f"run {run_id} has no file '{filename}'")
        return
    local = _local_file(run.output_dir, filename)
    if local is not None:
        _stream(handler, local)
        return
    if artifact.get("url"):
        from reportctl.artifact_store import ArtifactStore

        stored = ArtifactStore.of(api.project)
        if stored is not None:
            with stored:
                try:
                    location = stored.link(str(artifact["url"]))
                except ReportctlError as exc:
                    handler.send_error_json(503, str(exc))
                    return
            handler.send_response(302)
            handler.send_header("Location", location)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
    note = run.artifacts_note or "it is not on this machine and no artifact store holds it"
    handler.send_error_json(410, f"run {run_id}'s file '{filename}' is gone: {note}")


def _local_file(output_dir: str | None, filename: str) -> Path | None:
    """The artifact's file in the run's folder on this machine, never a path outside it."""
    if not output_dir:
        return None
    folder = Path(output_dir).resolve()
    path = (folder / filename).resolve()
    return path if path.is_relative_to(folder) and path.is_file() else None


def _stream(handler: ApiHandler, path: Path) -> None:
    """Send the file in chunks (never whole in memory), as an attachment."""
    import mimetypes
    import shutil
    from urllib.parse import quote

    size = path.stat().st_size
    kind, encoding = mimetypes.guess_type(path.name)
    kind = "application/octet-stream" if encoding or kind is None else kind  # a .csv.gz is sent as it is stored
    handler.send_response(200)
    handler.send_header("Content-Type", kind)
    handler.send_header("Content-Length", str(size))
    handler.send_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(path.name)}")
    handler.end_headers()
    with path.open("rb") as file:
        shutil.copyfileobj(file, handler.wfile, 64 * 1024)


__all__ = ["IDEMPOTENCY_KEY", "route_get", "route_post"]
