"""Recording runs in the state store: the runner's observer, and the housekeeping after each run.

``RunRecorder`` turns the runner's stages into state transitions and keeps a heartbeat while the run works, so a
process that dies (kill -9, a lost machine) is found by ``StateStore.reap_lost`` and never blocks its report.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from reportctl.state.lifecycle import RunState, completed_state

if TYPE_CHECKING:
    from reportctl.artifact_store import ArtifactStore
    from reportctl.config import Project
    from reportctl.run_record import RunResult
    from reportctl.spec.loader import LoadedSpec
    from reportctl.spec.retention import Retention
    from reportctl.state.models import RunRecord
    from reportctl.state.store import StateStore


class RunRecorder:
    """Records one run as the runner reports it (a ``reportctl.runner.RunObserver``)."""

    def __init__(
        self,
        store: StateStore,
        run_id: str,
        heartbeat_timeout: timedelta,
        *,
        artifact_store: ArtifactStore | None = None,
        say: Callable[[str], None] | None = None,
        retry: Callable[[BaseException], str | None] | None = None,
        node: str | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.artifact_store = artifact_store
        self._retry = retry
        self._node = node
        self._say = say or (lambda _message: None)
        # four beats per timeout: a run is only declared lost after several missed beats
        self._interval = max(heartbeat_timeout.total_seconds() / 4, 0.05)
        self._stop = threading.Event()
        self._beating: threading.Thread | None = None

    def stage(self, state: str, detail: str | None = None) -> None:
        self.store.transition(self.run_id, RunState(state), detail=detail, node=self._node)
        if self._beating is None:
            self._beating = threading.Thread(target=self._beat, name=f"heartbeat-{self.run_id}", daemon=True)
            self._beating.start()

    def rendered(self, result: RunResult) -> None:
        """The artifacts are recorded as delivery starts, so ``deliver RUN`` can finish it if this process dies.

        With an artifact store, the run's files are uploaded first (still FORMATTING: they are not in place for
        everyone until then), so the record carries their URLs and deliveries can link them. A failed upload fails
        the run and removes its folder, as any failed run leaves nothing behind.
        """
        stored = None
        if self.artifact_store is not None:
            from reportctl.artifact_store import ArtifactStoreError

            self._say(f"uploading to {self.artifact_store.folder(result.report, result.run_id).url}")
            try:
                stored = self.artifact_store.keep(result)
            except ArtifactStoreError:
                shutil.rmtree(result.directory, ignore_errors=True)
                raise
            result.artifacts = stored.artifacts
        artifacts = [artifact.as_dict(relative_to=result.directory) for artifact in result.artifacts]
        self.store.transition(
            self.run_id,
            RunState.DISTRIBUTING,
            detail=stored.describe() if stored is not None else None,
            artifacts=artifacts,
            output_dir=str(result.directory),
            git_commit=result.git_commit,
            git_dirty=result.git_dirty,
            snapshot=result.snapshot,
        )

    def completed(self, result: RunResult) -> None:
        self._stop_beating()
        # sections rendered as placeholders (on_error: placeholder): delivered, with warnings
        state = completed_state(result.warnings)
        self.store.transition(self.run_id, state, detail=_delivery_detail(result))

    def failed(self, error: BaseException) -> None:
        """The run failed: FAILED, or back to SCHEDULED as its next attempt when ``retry`` gives a reason to try
        again (the note on its timeline)."""
        from reportctl.secrets import redact

        self._stop_beating()
        again = self._retry(error) if self._retry is not None else None
        if again is not None and self.store.requeue(self.run_id, redact(again)) is not None:
            return
        message = redact(str(error).strip() or type(error).__name__)
        if isinstance(error, KeyboardInterrupt | SystemExit):
            message = "interrupted"
        self.store.transition(self.run_id, RunState.FAILED, error=message)

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if not self.store.heartbeat(self.run_id):
                    return  # the run was ended elsewhere (reaped): stop beating for it
            except Exception:  # a missed beat is survivable; the next one tries again
                continue

    def _stop_beating(self) -> None:
        self._stop.set()
        if self._beating is not None:
            self._beating.join(timeout=5)


def _delivery_detail(result: RunResult) -> str | None:
    """The timeline's note on the COMPLETED state: how delivery went, when the run was delivered."""
    failed = ""
    if result.warnings:
        names = ", ".join(w["section"] for w in result.warnings)
        failed = f"{len(result.warnings)} section{'s' if len(result.warnings) != 1 else ''} not rendered: {names}"
    if result.delivery is None or not result.delivery.entries:
        return failed or None
    return "; ".join(filter(None, [failed, "delivered: " + result.delivery.summary()]))


def record_failed_once_stored(
    store: StateStore,
    run_id: str,
    error: str,
    *,
    sleep: Callable[[float], None],
    warn: Callable[[str], None],
    longest_wait: float = 30.0,
) -> None:
    """Make sure the run ``run_id``, whose render failed, is recorded ended: FAILED with ``error`` unless it ended
    already. A render that failed because the store broke under it could not record so itself, and the reaper spares
    a run whose process lives on (a render worker, a Celery pool process): it would stay active for ever. While the
    store does not answer, ``warn`` is told and the write is tried again after 1 s, 2 s, 4 s ... at most
    ``longest_wait``; ``sleep`` may raise to give up (the process is stopping)."""
    from reportctl.state.lifecycle import IllegalTransition, UnknownRun
    from reportctl.state.store import StateStoreError

    delay = 1.0
    while True:
        try:
            if not store.get_run(run_id).state.terminal:
                store.transition(run_id, RunState.FAILED, error=error)
            return
        except (IllegalTransition, UnknownRun):
            return  # it ended meanwhile
        except StateStoreError as exc:
            warn(f"{exc}; recording run {run_id} FAILED again in {delay:g}s")
        sleep(delay)
        delay = min(delay * 2, longest_wait)


def housekeeping(
    store: StateStore, project: Project, report: str, retention: Retention | None = None
) -> dict[str, Any]:
    """After a run: ``report``'s retention policy (its spec's ``retention:`` over the project's ``state.history``,
    ``state.retention`` and ``state.archive``: ``reportctl.retention``), then audit entries past ``audit.retention``
    (the only way audit entries are ever deleted). A file that cannot be archived now stays for the next prune."""
    from reportctl.retention import housekeeping_retention
    from reportctl.state import audit

    pruned = housekeeping_retention(store, project, report, retention)
    keep_audit = project.config.audit.retention
    forgotten = audit.prune(store, keep_audit) if keep_audit else 0
    return {
        "pruned_runs": pruned.count("forget"),
        "expired_artifacts": [run.run_id for run in pruned.runs if run.action != "forget"],
        "archive_failures": pruned.failures,
        "pruned_audit": forgotten,
    }


def render_recorded(
    store: StateStore,
    loaded: Any,
    run_id: str,
    *,
    deliver: bool = False,
    dry_run: bool = False,
    retry: Callable[[BaseException], str | None] | None = None,
    node: str | None = None,
    **render_options: Any,
) -> RunResult:
    """Render ``loaded`` as the recorded run ``run_id`` (already in the store, SCHEDULED), then tidy its history.

    With ``deliver`` the run's deliveries are sent as its DISTRIBUTING stage (only previewed with ``dry_run``), and a
    run that fails sends its ``when: failure`` deliveries before the error is raised. A failure for which ``retry``
    gives a reason leaves the run SCHEDULED as its next attempt instead (the error is raised all the same).
    ``node`` is the Celery worker rendering it, recorded with the run.
    """
    from reportctl.artifact_store import ArtifactStore
    from reportctl.delivery.engine import DeliveryTarget, deliver_run
    from reportctl.errors import ReportctlError
    from reportctl.runner import default_run_time, render_report
    from reportctl.secrets import names_read
    from reportctl.state import audit

    if deliver and loaded.spec.burst is not None and render_options.get("viewer") is None:
        from reportctl.burst import render_burst

        with audit.acting_for_run(store, run_id):  # each variant records its own render, policy and deliveries
            try:
                return render_burst(store, loaded, run_id, dry_run=dry_run, retry=retry, node=node, **render_options)
            finally:
                audit.record_render(store, run_id)
    now = render_options.get("now") or default_run_time()
    say = render_options.get("progress")
    artifact_store = ArtifactStore.of(loaded.project)
    recorder = RunRecorder(
        store, run_id, loaded.project.config.state.heartbeat_timeout, artifact_store=artifact_store, say=say,
        retry=retry, node=node,
    )  # fmt: skip

    def distribute(result: RunResult) -> Any:
        return deliver_run(store, loaded, DeliveryTarget.rendered(result, now), dry_run=dry_run, say=say)

    with audit.acting_for_run(store, run_id), names_read() as secrets:
        try:
            result = render_report(
                loaded, run_id=run_id, observer=recorder, distribute=distribute if deliver else None, **render_options
            )
            if result.access is not None:
                viewer, filters = result.access["viewer"], result.access["filters"]
                audit.record_policy(store, report=result.report, run_id=run_id, viewer=viewer, filters=filters)
            return result
        except ReportctlError as exc:
            record = store.get_run(run_id) if deliver and not dry_run else None
            if record is not None and record.state == RunState.FAILED:
                send_failure_deliveries(store, loaded, record, str(exc), now, say=say)
            raise
        finally:
            if artifact_store is not None:
                artifact_store.close()
            audit.record_render(store, run_id, secrets=secrets)
            housekeeping(store, loaded.project, loaded.spec.name, loaded.spec.retention)


def send_failure_deliveries(
    store: StateStore, loaded: Any, record: RunRecord, error: str, now: datetime, *, say: Any = None
) -> None:
    """The ``when: failure`` deliveries of the FAILED run ``record``, telling ``error`` (redacted). A delivery
    that fails is not raised: the run's own error is the one to report."""
    from reportctl.delivery.engine import DeliveryTarget, deliver_run
    from reportctl.errors import ReportctlError
    from reportctl.secrets import redact

    target = DeliveryTarget.failed(record.id, loaded.spec.name, redact(error), record.parameters or {}, now)
    with contextlib.suppress(ReportctlError):
        deliver_run(store, loaded, target, say=say)


def record_manual_render(
    loaded: LoadedSpec, options: dict[str, Any], say: Any, *, deliver: bool, dry_run: bool
) -> RunResult:
    """Render with the run recorded in the state store (parameters and formats are checked before anything is
    recorded)."""
    from reportctl.run_record import jsonable_parameters
    from reportctl.runner import chosen_writers, default_run_time, resolve_parameters
    from reportctl.state import audit, open_store

    now = default_run_time()
    # a mistyped parameter or format is a usage problem, not a run: checked before anything is recorded
    resolved = resolve_parameters(loaded, options["parameters"], now)
    chosen_writers(loaded, options["formats"])
    with open_store(loaded.project) as store:
        run = store.create_run(
            loaded.spec.name,
            trigger="manual",
            spec_path=str(loaded.path),
            spec_hash=loaded.spec_hash,
            revision=loaded.ref,
            parameters=jsonable_parameters(resolved),
            viewer=options.get("viewer"),
            now=now,
        )
        audit.record(
            store, "trigger", report=run.report, run_id=run.id, spec_hash=run.spec_hash,
            detail={"command": "render", "deliver": deliver, "dry_run": dry_run},
        )  # fmt: skip
        return render_recorded(
            store,
            loaded,
            run.id,
            deliver=deliver,
            dry_run=dry_run,
            now=now,
            progress=say,
            **options,
        )
