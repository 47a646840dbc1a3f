"""``executor: celery``: fires queued on the machine's Redis, rendered by real ``reportctl worker`` processes.

Each test has queues of its own (a random prefix), so tests and other runs on the same Redis never take each
other's messages; workers are started as processes and stopped by their process id.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from celery_workers import REDIS, make_celery_project, own_broker, own_redis, running_worker
from conftest import CliResult, silence
from daemon_process import DaemonProcess
from reportctl import __version__
from reportctl.config import find_project
from reportctl.schedule.celery_broker import BrokerStatus, broker_status, messages_in_broker, queue_stranded
from reportctl.schedule.celery_executor import QueuedRun
from reportctl.schedule.celery_worker import execute
from reportctl.schedule.specs import scheduled_specs
from reportctl.state import RunState, StateStore
from slow_source import SLOW_SPEC, SlowSource

Cli = Callable[..., CliResult]
T = "2026-11-30T09:05:00+00:00"


@pytest.fixture
def celery_project(project: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_celery_project(project, store_url, monkeypatch)


@pytest.fixture
def worker(celery_project: Path) -> Iterator[subprocess.Popen[bytes]]:
    with running_worker(celery_project, "w1@test") as process:
        yield process


def _wait_for_end(store_url: str, run_id: str, timeout: float = 90) -> RunState:
    deadline = time.monotonic() + timeout
    with StateStore(store_url) as store:
        while time.monotonic() < deadline:
            state = store.get_run(run_id).state
            if state.terminal:
                return state
            time.sleep(0.3)
    raise AssertionError(f"run {run_id} did not end within {timeout:g} s")


def test_a_tick_queues_the_fire_and_a_worker_renders_and_records_it(
    cli: Cli, celery_project: Path, worker: subprocess.Popen[bytes], store_url: str
) -> None:
    result = cli("schedule", "tick", "--now", T, "--json")
    assert result.exit_code == 0, result.stderr
    (fire,) = json.loads(result.stdout)["fires"]
    queue = (fire["state"], fire["detail"])
    assert queue[0] == "QUEUED" and queue[1].startswith("queued on t") and queue[1].endswith(".standard")
    assert _wait_for_end(store_url, fire["run_id"]) is RunState.COMPLETED
    with StateStore(store_url) as store:
        run = store.get_run(fire["run_id"])
    assert run.worker is not None and run.worker.startswith(f"{socket.gethostname()}:")
    assert int(run.worker.rsplit(":", 1)[1]) != os.getpid()  # rendered by the worker's process, not the tick
    assert run.worker_node == "w1@test"
    assert f"worker     w1@test ({run.worker})" in cli("runs", "show", run.id).stdout.splitlines()
    header, line = cli("runs", "list").stdout.splitlines()
    assert header.split()[:5] == ["RUN", "REPORT", "TRIGGER", "STATE", "WORKER"]
    assert line.split()[:5] == [run.id, "hourly", "schedule", "COMPLETED", "w1@test"]
    (artifact,) = run.artifacts
    assert (Path(run.output_dir or "") / artifact["path"]).stat().st_size > 0
    # a second tick at the same time finds the fire claimed: nothing queued twice
    assert json.loads(cli("schedule", "tick", "--now", T, "--json").stdout)["fires"] == []


def _queued(celery_project: Path, store_url: str, **changes: object) -> QueuedRun:
    """A fire of ``hourly`` claimed in the store as a tick would, and the message that names it."""
    from reportctl.spec.loader import load_spec

    loaded = load_spec(celery_project / "specs" / "hourly.yaml", find_project(celery_project))
    scheduled = datetime(2026, 11, 30, 9, tzinfo=UTC)
    with StateStore(store_url) as store:
        claim = store.claim_fire(
            "hourly", scheduled, scheduled, spec_path="specs/hourly.yaml", spec_hash=loaded.spec_hash
        )
        assert claim is not None
        now = store.clock()
    message = QueuedRun(
        run_id=claim.id, report="hourly", spec="specs/hourly.yaml", revision=None, parameters={},
        scheduled=scheduled.isoformat(), queued_at=now.isoformat(), late_seconds=60.0, priority="standard",
        timeout_seconds=None, misfire_grace_seconds=1800.0, retries=0,
    )  # fmt: skip
    return replace(message, **changes)  # type: ignore[arg-type]


def test_a_message_handed_out_twice_renders_the_run_once(celery_project: Path, store_url: str) -> None:
    message = _queued(celery_project, store_url)
    project = find_project(celery_project)
    assert execute(project, message, "w1").startswith("COMPLETED on w1")
    assert execute(project, message, "w2") == f"run {message.run_id} is COMPLETED: nothing to do"
    with StateStore(store_url) as store:
        states = [change.state for change in store.timeline(message.run_id)]
    assert states.count(RunState.GENERATING) == 1


def test_a_tick_leaves_a_run_waiting_in_the_broker_to_its_worker_when_its_daemon_is_gone(
    cli: Cli, celery_project: Path, store_url: str
) -> None:
    message = _queued(celery_project, store_url)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])  # the daemon that claimed the fire, gone since
    ended.wait(timeout=30)
    with StateStore(store_url) as store:
        silence(store, message.run_id, worker=f"{socket.gethostname()}:{ended.pid}")
        result = cli("schedule", "tick", "--now", T, "--json")
        assert result.exit_code == 0, result.stderr
        assert store.get_run(message.run_id).state is RunState.SCHEDULED


def test_a_worker_of_another_version_refuses_the_run(celery_project: Path, store_url: str) -> None:
    message = _queued(celery_project, store_url, version="0.0.1")
    why = execute(find_project(celery_project), message)
    assert why == (
        f"the run was queued by reportctl 0.0.1 and this worker runs {__version__}; run one version on daemons and "
        "workers"
    )
    with StateStore(store_url) as store:
        run = store.get_run(message.run_id)
    assert (run.state, run.error) == (RunState.FAILED, why)


def test_a_run_that_waited_in_the_queue_past_its_grace_is_skipped_not_rendered_late(
    celery_project: Path, store_url: str
) -> None:
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    message = _queued(celery_project, store_url, queued_at=an_hour_ago)
    why = execute(find_project(celery_project), message)
    assert why.startswith("waited 1h") and why.endswith("in the queue, past misfire_grace 30m")
    with StateStore(store_url) as store:
        run = store.get_run(message.run_id)
    assert run.state is RunState.SKIPPED and not run.artifacts


def test_a_worker_whose_checkout_has_another_spec_fails_the_run_saying_so(celery_project: Path, store_url: str) -> None:
    message = _queued(celery_project, store_url)
    with StateStore(store_url) as store:
        recorded = store.get_run(message.run_id).spec_hash
    spec = celery_project / "specs" / "hourly.yaml"
    spec.write_text(spec.read_text().replace("rows: 200", "rows: 300"))  # the worker's copy moved on
    why = execute(find_project(celery_project), message)
    assert why == (
        f"{spec}: this worker's copy differs from the spec the fire recorded (hash {recorded[:12]}) and the run "
        "recorded no commit; deploy the same revision to workers and daemons"
    )
    with StateStore(store_url) as store:
        assert store.get_run(message.run_id).state is RunState.FAILED


def test_a_fire_the_broker_never_takes_is_recorded_skipped_with_the_reason(
    cli: Cli, celery_project: Path, store_url: str
) -> None:
    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    config = celery_project / "reportctl.yaml"
    config.write_text(config.read_text().replace(REDIS, f"redis://127.0.0.1:{port}/0"))
    spec = celery_project / "specs" / "hourly.yaml"
    spec.write_text(spec.read_text().replace("misfire_grace: 30m", "misfire_grace: 2s"))
    # a second late: sending is tried again (after 1 s, 2 s) until the fire is later than its grace
    result = cli("schedule", "tick", "--now", "2026-11-30T09:00:01+00:00", "--json")
    assert result.exit_code == 0, result.stderr
    (fire,) = json.loads(result.stdout)["fires"]
    assert fire["state"] == "SKIPPED"
    assert fire["detail"].startswith(f"not queued: the broker redis://127.0.0.1:{port}/0 did not take run ")
    assert re.search(r"Connection refused; retried for [1-9][0-9]*s, past misfire_grace$", fire["detail"])
    with StateStore(store_url) as store:
        assert store.get_run(fire["run_id"]).state is RunState.SKIPPED


def test_worker_refuses_a_project_that_renders_locally(cli: Cli, project: Path) -> None:
    result = cli("worker")
    assert result.exit_code == 2
    assert "executor is 'local'; set executor: {kind: celery, broker: redis://HOST:6379/0} to run workers" in (
        result.stderr
    )


def test_an_executor_that_is_not_redis_is_a_one_line_error(cli: Cli, project: Path) -> None:
    (project / "reportctl.yaml").write_text("executor: {kind: celery, broker: 'amqp://guest@localhost//'}\n")
    result = cli("worker")
    assert result.exit_code != 0
    assert "broker must be a redis:// or rediss:// URL" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_validate_refuses_a_timeout_the_visibility_timeout_does_not_cover(cli: Cli, celery_project: Path) -> None:
    config = celery_project / "reportctl.yaml"
    config.write_text(config.read_text().rstrip().removesuffix("}") + ", visibility_timeout: 1h}\n")
    spec = celery_project / "specs" / "hourly.yaml"
    spec.write_text(spec.read_text().replace("priority: standard", "priority: standard, timeout: 90m"))
    result = cli("validate", str(spec))
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        "specs/hourly.yaml:8:95: schedule.timeout: 1h30m is not shorter than executor.visibility_timeout 1h in "
        "reportctl.yaml; raise visibility_timeout above the longest report timeout"
    )
    spec.write_text(spec.read_text().replace("timeout: 90m", "timeout: 50m"))
    assert cli("validate", str(spec)).exit_code == 0


def test_the_daemon_queues_its_fires_for_a_worker(
    celery_project: Path, worker: subprocess.Popen[bytes], store_url: str
) -> None:
    """A real daemon with `executor: celery`: its catch-up fire (an every-minute schedule, never fired before) is
    claimed and queued by the daemon and rendered by the worker process."""
    spec = celery_project / "specs" / "hourly.yaml"
    spec.write_text(spec.read_text().replace('cron: "0 * * * *"', 'cron: "* * * * *"'))
    daemon = DaemonProcess(celery_project)
    try:
        queued = daemon.wait_for("run.queued")
        assert queued["report"] == "hourly" and queued["message"].startswith("queued on t")
        assert _wait_for_end(store_url, queued["run_id"]) is RunState.COMPLETED
    finally:
        daemon.stop()
    with StateStore(store_url) as store:
        run = store.get_run(queued["run_id"])
    assert run.worker is not None and int(run.worker.rsplit(":", 1)[1]) not in (daemon.pid, os.getpid())


def test_a_spec_outside_the_project_fails_its_fire_saying_why(
    cli: Cli, celery_project: Path, store_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (celery_project / "specs" / "hourly.yaml").rename(outside / "hourly.yaml")
    config = celery_project / "reportctl.yaml"
    config.write_text(config.read_text() + f"specs: [specs, '{outside}']\n")
    result = cli("schedule", "tick", "--now", T, "--json")
    assert result.exit_code == 1
    (fire,) = json.loads(result.stdout)["fires"]
    assert fire["state"] == "FAILED"
    assert fire["detail"] == (
        f"{outside / 'hourly.yaml'}: executor: celery needs specs inside the project folder {celery_project}, where "
        "workers find them in their own checkouts"
    )


def test_the_broker_status_counts_queued_runs_and_names_the_workers(
    cli: Cli, celery_project: Path, store_url: str
) -> None:
    project = find_project(celery_project)
    assert broker_status(project, timeout=0.5) == BrokerStatus({"critical": 0, "standard": 0}, [])
    assert cli("schedule", "tick", "--now", T).exit_code == 0  # no worker runs: the fire waits in its queue
    assert broker_status(project, timeout=0.5).queued == {"critical": 0, "standard": 1}
    with running_worker(celery_project, "status@test"):
        deadline = time.monotonic() + 60
        status = broker_status(project, timeout=0.5)
        while "status@test" not in status.workers or status.queued["standard"]:
            assert time.monotonic() < deadline, f"the worker did not show up and take the run: {status}"
            status = broker_status(project, timeout=0.5)


def test_doctor_says_what_waits_in_the_queues_and_which_workers_take_them(cli: Cli, celery_project: Path) -> None:
    assert cli("schedule", "tick", "--now", T).exit_code == 0
    alone = cli("doctor", "--json")
    checks = {check["name"]: check for check in json.loads(alone.stdout)}
    assert (checks["broker"]["ok"], checks["broker"]["detail"]) == (True, "runs queued: critical 0, standard 1")
    assert (checks["workers"]["ok"], checks["workers"]["fix"]) == (False, "start `reportctl worker`")
    assert alone.exit_code == 1
    with running_worker(celery_project, "doctor@test"):
        deadline = time.monotonic() + 60
        while "doctor@test" not in broker_status(find_project(celery_project), timeout=0.5).workers:
            assert time.monotonic() < deadline, "the worker never answered"
        checks = {check["name"]: check for check in json.loads(cli("doctor", "--json").stdout)}
    assert checks["workers"]["ok"] and checks["workers"]["detail"] == "doctor@test"


def test_doctor_names_a_broker_that_does_not_answer(cli: Cli, celery_project: Path) -> None:
    config = celery_project / "reportctl.yaml"
    config.write_text(config.read_text().replace(REDIS, "redis://127.0.0.1:9/0"))
    checks = {check["name"]: check for check in json.loads(cli("doctor", "--json").stdout)}
    assert not checks["broker"]["ok"] and "workers" not in checks
    assert checks["broker"]["detail"].startswith("the broker redis://127.0.0.1:9/0 does not answer: ")
    assert checks["broker"]["fix"] == "start Redis or fix executor.broker (REPORTCTL_BROKER_URL)"


def test_a_run_whose_worker_process_is_killed_is_rendered_again_under_the_same_record(
    cli: Cli, celery_project: Path, worker: subprocess.Popen[bytes], store_url: str
) -> None:
    source = SlowSource()
    try:
        spec = SLOW_SPEC.replace("URL", source.url).replace("misfire_grace: 2h", "misfire_grace: 30m")
        (celery_project / "specs" / "hourly.yaml").write_text(spec)  # one fire due at T, not two
        (fire,) = json.loads(cli("schedule", "tick", "--now", T, "--json").stdout)["fires"]
        assert source.asked.wait(60), "the worker never asked the source"
        with StateStore(store_url) as store:
            lost = store.get_run(fire["run_id"]).worker
        assert lost is not None and int(lost.rsplit(":", 1)[1]) != worker.pid  # the pool process, not the worker
        os.kill(int(lost.rsplit(":", 1)[1]), signal.SIGKILL)
        source.release.set()  # the next attempt's request is answered at once
        assert _wait_for_end(store_url, fire["run_id"]) is RunState.COMPLETED
    finally:
        source.close()
    with StateStore(store_url) as store:
        run = store.get_run(fire["run_id"])
        timeline = [(change.state, change.detail) for change in store.timeline(run.id)]
    assert run.attempt == 2 and run.worker not in (None, lost) and len(run.artifacts) == 1
    assert [state for state, _ in timeline] == [
        RunState.SCHEDULED, RunState.GENERATING, RunState.SCHEDULED, RunState.GENERATING, RunState.FORMATTING,
        RunState.DISTRIBUTING, RunState.COMPLETED,
    ]  # fmt: skip
    assert timeline[2][1] == f"worker {lost} lost while GENERATING; rendered again by another worker"


def test_a_run_lost_a_second_time_fails_and_one_still_rendering_is_left_alone(
    celery_project: Path, store_url: str
) -> None:
    with subprocess.Popen([sys.executable, "-c", "pass"]) as ended:
        ended.wait()
    gone, here = f"{socket.gethostname()}:{ended.pid}", f"{socket.gethostname()}:{os.getpid()}"
    project = find_project(celery_project)
    rendering = _queued(celery_project, store_url)
    with StateStore(store_url) as store:
        store.transition(rendering.run_id, RunState.GENERATING)  # by this process, alive
        assert execute(project, rendering) == f"run {rendering.run_id} is GENERATING on {here}: nothing to do"
        silence(store, rendering.run_id, worker=gone, silent_for=timedelta(0))
        assert store.requeue(rendering.run_id, "lost once", worker=gone) is not None
        store.transition(rendering.run_id, RunState.GENERATING)
        silence(store, rendering.run_id, worker=gone, silent_for=timedelta(0))
    assert execute(project, rendering) == f"run {rendering.run_id} is FAILED: nothing to do"
    with StateStore(store_url) as store:
        run = store.get_run(rendering.run_id)
    assert run.error == f"worker {gone} lost while GENERATING, the second time; not tried again"


def test_a_run_rendering_on_another_host_is_looked_at_again_once_its_worker_would_count_as_lost(
    celery_project: Path, store_url: str
) -> None:
    """A pool process killed on another host sends its message back at once, while the heartbeat it left still
    looks fresh: the worker that gets it cannot tell a dead worker from a live one yet, so it sends the message
    again for when a silent worker counts as lost (heartbeat_timeout), and then takes the run over."""
    project = find_project(celery_project)
    rendering = _queued(celery_project, store_url)
    with StateStore(store_url) as store:
        store.transition(rendering.run_id, RunState.GENERATING)
        silence(store, rendering.run_id, silent_for=timedelta(0))  # elsewhere.invalid, beating a moment ago
        assert execute(project, rendering) == (
            f"run {rendering.run_id} is GENERATING on elsewhere.invalid:4242: looked at again in 2m5s"
        )
        assert messages_in_broker(project) == {rendering.run_id}
        silence(store, rendering.run_id, silent_for=timedelta(minutes=3))  # it never beat again: it is gone
        assert execute(project, rendering, "w2").startswith("COMPLETED on w2")
        taken_over = [change for change in store.timeline(rendering.run_id) if change.state is RunState.SCHEDULED][-1]
        assert (
            taken_over.detail == "worker elsewhere.invalid:4242 lost while GENERATING; rendered again by another worker"
        )


def test_while_redis_is_down_the_fire_waits_and_goes_out_when_it_is_back(celery_project: Path, store_url: str) -> None:
    port = own_broker(celery_project)
    tick = [sys.executable, "-m", "reportctl", "schedule", "tick", "--now", "2026-11-30T09:00:10+00:00", "--json"]
    with own_redis(port) as first, running_worker(celery_project, "w@test"):
        deadline = time.monotonic() + 60
        while "w@test" not in broker_status(find_project(celery_project), timeout=0.5).workers:
            assert time.monotonic() < deadline, "the worker never answered"
        first.kill()  # Redis goes away, with whatever it held
        first.wait()
        with subprocess.Popen(tick, cwd=celery_project, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as ticking:
            time.sleep(3)  # the tick finds the broker down and tries again, the run recorded and waiting
            with StateStore(store_url) as store:
                (waiting,) = store.list_runs()
            assert waiting.state is RunState.SCHEDULED and ticking.poll() is None
            with own_redis(port):  # back, empty: the worker reconnects, the tick's next try gets through
                out, _ = ticking.communicate(timeout=120)
                (fire,) = json.loads(out)["fires"]
                assert (fire["state"], fire["run_id"]) == ("QUEUED", waiting.id)
                assert _wait_for_end(store_url, waiting.id) is RunState.COMPLETED


def test_a_run_whose_message_redis_lost_in_a_restart_is_queued_again(
    cli: Cli, celery_project: Path, store_url: str
) -> None:
    port = own_broker(celery_project)
    spec = celery_project / "specs" / "hourly.yaml"
    spec.write_text(spec.read_text().replace('cron: "0 * * * *"', 'cron: "* * * * *"'))
    project = find_project(celery_project)
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    with own_redis(port):
        fires = json.loads(cli("schedule", "tick", "--now", now, "--json").stdout)["fires"]
        (fire,) = [fire for fire in fires if fire["state"] == "QUEUED"]  # the earlier minutes: one SKIPPED record
        assert messages_in_broker(project) == {fire["run_id"]}
    with own_redis(port), StateStore(store_url) as store:  # restarted: it kept nothing, the run waits
        assert messages_in_broker(project) == set()
        specs = {scheduled.name: scheduled for scheduled in scheduled_specs([spec], project)[0]}
        assert queue_stranded(project, store, specs) == [], "claimed moments ago: its message may be on its way"
        assert queue_stranded(project, store, specs, older_than=timedelta(0)) == [fire["run_id"]]
        assert messages_in_broker(project) == {fire["run_id"]}
        with running_worker(celery_project, "w@test"):
            assert _wait_for_end(store_url, fire["run_id"]) is RunState.COMPLETED
        rendered = [run.id for run in store.list_runs() if run.state is not RunState.SKIPPED]
        assert rendered == [fire["run_id"]]  # the same run, not a second one


def test_a_run_that_overlap_queue_holds_back_is_not_sent_as_stranded(celery_project: Path, store_url: str) -> None:
    """A daemon claims a fire of an ``overlap: queue`` report and holds it (SCHEDULED, no message) until the
    report's earlier run ends: the stranded check must not send it meanwhile, or the two would render at once."""
    port = own_broker(celery_project)
    spec = celery_project / "specs" / "hourly.yaml"
    spec.write_text(spec.read_text().replace("priority: standard", "priority: standard, overlap: queue"))
    project = find_project(celery_project)
    with own_redis(port), StateStore(store_url) as store:
        specs = {scheduled.name: scheduled for scheduled in scheduled_specs([spec], project)[0]}
        earlier = store.create_run("hourly", trigger="schedule", now=datetime(2026, 11, 30, 8, tzinfo=UTC))
        store.transition(earlier.id, RunState.GENERATING)
        held = store.create_run("hourly", trigger="schedule", now=datetime(2026, 11, 30, 9, tzinfo=UTC))
        assert queue_stranded(project, store, specs, older_than=timedelta(0)) == []
        store.transition(earlier.id, RunState.FAILED, error="ended")
        assert queue_stranded(project, store, specs, older_than=timedelta(0)) == [held.id]


def test_a_tick_queues_again_a_run_the_broker_lost_and_a_late_one_is_skipped_by_its_worker(
    cli: Cli, celery_project: Path, store_url: str
) -> None:
    port = own_broker(celery_project)
    project = find_project(celery_project)
    with own_redis(port):
        (fire,) = json.loads(cli("schedule", "tick", "--now", T, "--json").stdout)["fires"]
    with own_redis(port):  # restarted without the message; the fire (days ago by the clock) is past its grace
        again = cli("schedule", "tick", "--now", T, "--json")
        assert again.exit_code == 0 and json.loads(again.stdout)["fires"] == []
        assert messages_in_broker(project) == {fire["run_id"]}
        with running_worker(celery_project, "w@test"):
            assert _wait_for_end(store_url, fire["run_id"]) is RunState.SKIPPED
    with StateStore(store_url) as store:
        (run,) = store.list_runs()
        skipped = store.timeline(run.id)[-1]
    assert run.id == fire["run_id"] and "past misfire_grace 30m" in (skipped.detail or "")
