"""What the daemon's HTTP API does with a run: find and check the spec, record the run (once per idempotency key),
hand it to the daemon's own path, and describe a recorded run as JSON.

A run asked for over the API is checked like ``reportctl render``: an unknown spec, an invalid one or a bad
parameter raises ``ApiRequestError`` (HTTP 422) with the one line the CLI prints, before anything is recorded. Then
it is recorded SCHEDULED (trigger ``api`` or ``alert``), its ``trigger`` audit entry names ``api:<token name>`` (so
the render, policy and delivery entries of the run name it too), and the leading daemon renders it in the worker
pool of the spec's priority, or queues it on Celery with ``executor: celery``. Like a manual render, such a run does
not claim a schedule's fire and is not subject to ``overlap``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportctl.errors import ReportctlError, SpecError, first_line

if TYPE_CHECKING:
    from reportctl.config import Project
    from reportctl.schedule.daemon_service import DaemonService
    from reportctl.spec.loader import LoadedSpec
    from reportctl.state.models import RunRecord
    from reportctl.state.store import StateStore


class ApiRequestError(ReportctlError):
    """A request the API cannot act on: an unknown spec, an invalid one, a bad parameter or field (HTTP 422)."""


@dataclass(frozen=True)
class RunRequest:
    """The body of ``POST /runs``: which spec, its ``-p`` parameters as text, and whether to deliver."""

    spec: str
    parameters: dict[str, str]
    deliver: bool = True

    @classmethod
    def of(cls, body: Any) -> RunRequest:
        """Read a decoded JSON body; ``ApiRequestError`` names the field that is wrong."""
        if not isinstance(body, dict):
            raise ApiRequestError("the body must be a JSON object: {spec: NAME, parameters: {...}, deliver: true}")
        unknown = sorted(set(body) - {"spec", "parameters", "deliver"})
        if unknown:
            raise ApiRequestError(f"unknown field '{unknown[0]}'; a run takes spec, parameters and deliver")
        spec, deliver = body.get("spec"), body.get("deliver", True)
        if not isinstance(spec, str) or not spec.strip():
            raise ApiRequestError("'spec' must be a spec's name or its path relative to the project")
        if not isinstance(deliver, bool):
            raise ApiRequestError(f"'deliver' must be true or false, not {deliver!r}")
        return cls(spec.strip(), parameter_text(body.get("parameters") or {}), deliver)


def parameter_text(parameters: Any) -> dict[str, str]:
    """JSON parameters as the text ``-p KEY=VALUE`` would give (true/false for booleans)."""
    if not isinstance(parameters, dict):
        raise ApiRequestError('\'parameters\' must be an object of names to values, e.g. {"region": "eu"}')
    text: dict[str, str] = {}
    for name, value in parameters.items():
        if isinstance(value, bool):
            text[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            text[name] = str(value)
        else:
            raise ApiRequestError(f"parameter '{name}': give a string, number or boolean, not {type(value).__name__}")
    return text


@dataclass(frozen=True)
class Submitted:
    """A run the API recorded (``created``) or found for the request's idempotency key (not ``created``)."""

    run: RunRecord
    created: bool


def find_spec(project: Project, known: dict[str, Path], spec: str) -> LoadedSpec:
    """The spec named ``spec`` (a report name, or a path relative to the project), loaded and checked;
    ``ApiRequestError`` with the CLI's one line when it is unknown or invalid. ``known``: the daemon's scheduled
    specs by name, looked up first."""
    from reportctl.spec.files import find_yaml, is_rendered_spec
    from reportctl.spec.loader import load_spec

    root = project.root.resolve()
    path: Path | None = known.get(spec)
    if path is None and spec.endswith((".yaml", ".yml")):
        candidate = (root / spec).resolve()
        if not candidate.is_relative_to(root) or not candidate.is_file():
            raise ApiRequestError(f"{spec}: no such spec file in the project {root}")
        path = candidate
    if path is None:
        folders = [folder for folder in project.spec_dirs if folder.is_dir()]
        named = [folder / f"{spec}{ext}" for folder in folders for ext in (".yaml", ".yml")]
        path = next((file for file in named if file.is_file()), None) or _by_name(find_yaml(folders), spec, project)
    if path is None or not is_rendered_spec(path):
        raise ApiRequestError(f"unknown spec '{spec}'; give a report name or a path relative to {root}")
    try:
        return load_spec(path, project)
    except SpecError as exc:
        raise ApiRequestError(first_line(str(exc), "invalid spec")) from None


def _by_name(files: list[Path], name: str, project: Project) -> Path | None:
    """The spec file whose report is ``name`` (a file not named after its report): read each until found."""
    from reportctl.spec.loader import load_spec

    for file in files:
        try:
            if load_spec(file, project, check=False).spec.name == name:
                return file
        except ReportctlError:
            continue
    return None


def submit(
    service: DaemonService,
    loaded: LoadedSpec,
    parameters: dict[str, str],
    *,
    actor: str,
    key: str | None,
    trigger: str,
    deliver: bool = True,
    detail: dict[str, Any] | None = None,
) -> Submitted:
    """Check the parameters, record the run (or find the one ``key`` started within a day) and start it."""
    from reportctl.run_record import jsonable_parameters
    from reportctl.runner import default_run_time, resolve_parameters
    from reportctl.state import audit
    from reportctl.state.idempotency import create_run_once

    store = service.daemon.store
    celery = service.daemon.project.config.executor.kind == "celery"
    if celery and not deliver:  # a Celery worker reads the spec itself, deliveries included
        raise ApiRequestError("deliver: false is not available with executor: celery; leave it out or set it true")
    now = default_run_time()
    try:
        resolved = jsonable_parameters(resolve_parameters(loaded, parameters, now))
    except ReportctlError as exc:  # the CLI's one line, nothing recorded
        raise ApiRequestError(first_line(str(exc), "invalid parameters")) from None
    keyed = create_run_once(
        store, key, loaded.spec.name, now, trigger=trigger, spec_path=str(loaded.path), spec_hash=loaded.spec_hash,
        parameters=resolved,
    )  # fmt: skip
    if not keyed.created:
        return Submitted(store.get_run(keyed.run_id), False)
    audit.record(
        store, "trigger", actor=actor, report=loaded.spec.name, run_id=keyed.run_id, spec_hash=loaded.spec_hash,
        detail={"command": "api", "trigger": trigger, "deliver": deliver, "idempotency_key": key, **(detail or {})},
    )  # fmt: skip
    if not deliver:  # render and record, send nothing: the same spec without its deliveries
        loaded = dataclasses.replace(loaded, spec=loaded.spec.model_copy(update={"delivery": []}), deliveries=())
    if celery:
        _queue(service, store, loaded, keyed.run_id, parameters, now)
    else:
        service.submit_run(loaded, keyed.run_id, parameters, now)
    return Submitted(store.get_run(keyed.run_id), True)


def _queue(
    service: DaemonService,
    store: StateStore,
    loaded: LoadedSpec,
    run_id: str,
    parameters: dict[str, str],
    now: datetime,
) -> None:
    """Send the run to its priority's Celery queue; a broker that does not take it fails the run with its line."""
    from reportctl.schedule.celery_executor import queue_run
    from reportctl.schedule.specs import ScheduledSpec
    from reportctl.state.lifecycle import RunState

    schedule = loaded.spec.schedule
    spec = service.daemon.specs.get(loaded.spec.name) or ScheduledSpec(
        name=loaded.spec.name, path=loaded.path, cron="", timezone="UTC",
        priority=schedule.priority if schedule is not None else "standard", jitter=timedelta(0), overlap="queue",
        misfire_grace=timedelta(hours=1), retries=schedule.retries if schedule is not None else 0,
        timeout=schedule.timeout if schedule is not None else None,
    )  # fmt: skip
    try:
        queue_run(service.daemon.project, spec, run_id, parameters, now, timedelta(0), now)
    except ReportctlError as exc:
        store.transition(run_id, RunState.FAILED, error=first_line(str(exc), "not queued"))
        raise


def run_json(store: StateStore, run: RunRecord, links: Any) -> dict[str, Any]:
    """A run as ``GET /runs/ID`` shows it: its record, timeline, deliveries, and each artifact with its signed
    download ``link`` (``links(run, path)``; None without ``api.signing_key``)."""
    from reportctl.state.ledger import DeliveryLedger, counts_by_delivery

    timeline = store.timeline(run.id)
    deliveries = DeliveryLedger(store).entries(run.id)
    record = run.as_dict()
    record.pop("audience", None)  # the addresses a burst variant may reach: not for every token holder
    artifacts: list[dict[str, Any]] = []
    for artifact in run.artifacts:
        shown: dict[str, Any] = {
            key: artifact[key] for key in ("format", "path", "bytes", "sha256", "compression") if key in artifact
        }
        artifacts.append({**shown, "link": None if run.artifacts_deleted_at else links(run, str(artifact["path"]))})
    return {
        **record,
        "artifacts": artifacts,
        "timeline": [change.as_dict() for change in timeline],
        "warnings": _manifest_warnings(run),
        "deliveries": {
            "total": len(deliveries),
            "sent": sum(1 for entry in deliveries if entry.status == "sent"),
            "counts": counts_by_delivery(deliveries),
            "recipients": [
                {key: value for key, value in entry.as_dict().items() if key not in ("claimed_by", "idempotency_key")}
                for entry in deliveries
            ],
        },
    }


def _manifest_warnings(run: RunRecord) -> list[Any]:
    """The sections that rendered as placeholders, as the run's manifest.json lists them (``warnings``); none when
    the manifest is not on this machine."""
    import json

    manifest = Path(run.output_dir) / "manifest.json" if run.output_dir else None
    if manifest is None or not manifest.is_file():
        return []
    try:
        warnings = json.loads(manifest.read_text(encoding="utf-8")).get("warnings") or []
    except (OSError, ValueError, AttributeError):
        return []
    return list(warnings) if isinstance(warnings, list) else []


__all__ = ["ApiRequestError", "RunRequest", "Submitted", "find_spec", "parameter_text", "run_json", "submit"]
