"""``reportctl doctor``: what this machine has for rendering reports, and how to fix what is missing.

Each check returns a ``Check`` (or one per item, as the delivery channels do) and never raises.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def check_python() -> Check:
    version = ".".join(str(p) for p in sys.version_info[:3])
    ok = sys.version_info >= (3, 11)
    return Check("python", ok, f"Python {version}", "" if ok else "install Python 3.11 or newer")


def check_plugins() -> Check:
    from reportctl.plugins import CHANNELS, SOURCES, WRITERS, PluginError, load_plugin, plugin_names

    loaded: dict[str, list[str]] = {}
    broken = []
    for kind, group in (("sources", SOURCES), ("writers", WRITERS), ("channels", CHANNELS)):
        try:
            names = plugin_names(group)
        except PluginError as exc:
            return Check("plugins", False, str(exc), "uninstall the duplicate plugin package")
        for name in names:
            try:
                load_plugin(group, name)
                loaded.setdefault(kind, []).append(name)
            except PluginError as exc:
                broken.append(str(exc))
    if broken:
        return Check("plugins", False, broken[0], "reinstall or remove the plugin named above")
    return Check("plugins", True, "; ".join(f"{kind} {', '.join(names)}" for kind, names in loaded.items()))


def check_fonts() -> Check:
    from reportctl import fonts

    missing = [f.name for f in fonts.ALL if not f.is_file() or f.stat().st_size == 0]
    if missing:
        return Check("fonts", False, f"missing {', '.join(missing)}", "reinstall reportctl")
    return Check("fonts", True, f"{len(fonts.ALL)} TrueType fonts shipped (DejaVu Sans, Droid Sans Fallback for CJK)")


def check_browser() -> Check:
    from reportctl.chart_export import check_browser as probe

    ok, detail = probe()
    fix = "" if ok else "install chromium-headless-shell (Debian/Ubuntu: apt-get install chromium-headless-shell) "
    fix += "" if ok else "or set REPORTCTL_BROWSER to a Chrome or Chromium binary"
    return Check("charts", ok, detail, fix, required=False)


def check_project(start: Path | None = None) -> Check:
    from reportctl.config import find_config, load_config
    from reportctl.errors import SpecError

    config = find_config(start or Path.cwd())
    if config is None:
        return Check("project", True, "no reportctl.yaml here; defaults apply", required=False)
    try:
        load_config(config)
    except SpecError as exc:
        return Check("project", False, str(exc.problems[0]), f"fix {config} (reportctl validate lists every problem)")
    return Check("project", True, f"{config} is valid")


def check_state_store(start: Path | None = None) -> Check:
    from sqlalchemy.engine import make_url

    from reportctl.config import find_project
    from reportctl.errors import ReportctlError
    from reportctl.state import NoStateStore, open_store, state_url

    try:
        project = find_project(start)
        shown = make_url(state_url(project)).render_as_string(hide_password=True)
        with open_store(project, create=False) as store:
            runs = len(store.list_runs(limit=1000))
    except NoStateStore:
        return Check("state", True, f"{shown} (not created yet: the first render creates it)")
    except ReportctlError as exc:
        return Check("state", False, str(exc), "check state.url in reportctl.yaml or REPORTCTL_STATE_URL")
    return Check("state", True, f"{shown} ({runs}{'+' if runs == 1000 else ''} runs recorded)")


def check_scheduler(start: Path | None = None) -> list[Check]:
    """Which daemon holds the scheduler lease (and so fires the schedules); nothing to say without a state store,
    and nothing when it cannot be reached (the state check says so)."""
    from reportctl.config import find_project
    from reportctl.errors import ReportctlError
    from reportctl.state import open_store
    from reportctl.state.leader import describe_leader, read_lease

    try:
        with open_store(find_project(start), create=False) as store:
            lease = read_lease(store)
    except ReportctlError:
        return []
    return [Check("leader", True, describe_leader(lease), required=False)]


def check_executor(start: Path | None = None) -> list[Check]:
    """With ``executor: celery``: whether the broker answers, the runs waiting in each queue and the workers that
    take from them (none is worth a fix: queued runs wait for one). Nothing for the local executor."""
    from reportctl.config import CeleryExecutor, find_project
    from reportctl.errors import ReportctlError

    try:
        project = find_project(start)
    except ReportctlError:  # invalid settings: the project check says so
        return []
    if not isinstance(project.config.executor, CeleryExecutor):
        return []
    from reportctl.schedule.celery_broker import broker_status

    try:
        status = broker_status(project)
    except ReportctlError as exc:
        return [Check("broker", False, str(exc), "start Redis or fix executor.broker (REPORTCTL_BROKER_URL)")]
    waiting = ", ".join(f"{priority} {count}" for priority, count in status.queued.items())
    checks = [Check("broker", True, f"runs queued: {waiting}")]
    if status.workers:
        checks.append(Check("workers", True, ", ".join(status.workers)))
    else:
        checks.append(Check("workers", False, "no worker takes from this project's queues", "start `reportctl worker`"))
    return checks


def check_keyring() -> Check:
    from reportctl.secrets import keyring_backend

    backend = keyring_backend()
    if backend is None:
        return Check(
            "keyring",
            False,
            "no OS keyring backend; ${secret:NAME} is read from REPORTCTL_SECRET_<NAME> variables only",
            "set the variables, or install a keyring backend (e.g. Secret Service on Linux desktops)",
            required=False,
        )
    return Check("keyring", True, f"OS keyring: {backend}", required=False)


# what a delivery says about whom and what it sends, not about the service it reaches
_MESSAGE_FIELDS = {
    "id",
    "when",
    "to",
    "cc",
    "bcc",
    "subject",
    "body",
    "text",
    "attach",
    "formats",
    "retries",
    "backoff",
}


def check_channels(start: Path | None = None) -> list[Check]:
    """Each distinct channel configuration of the project's specs, reached without sending anything."""
    from reportctl.config import find_project
    from reportctl.delivery.base import ChannelCheckError
    from reportctl.delivery.engine import with_secrets
    from reportctl.errors import ReportctlError
    from reportctl.plugins import CHANNELS, load_plugin
    from reportctl.spec.files import find_yaml
    from reportctl.spec.loader import load_spec

    project = find_project(start)
    seen: set[str] = set()
    checks = []
    for spec_file in find_yaml([d for d in project.spec_dirs if d.is_dir()]):
        try:
            loaded = load_spec(spec_file, project, check=False)
        except ReportctlError:
            continue  # `reportctl validate` reports broken specs
        for index, options in enumerate(loaded.deliveries):
            identity = options.channel + repr(sorted(options.model_dump(exclude=_MESSAGE_FIELDS).items()))
            if identity in seen:
                continue
            seen.add(identity)
            where = f"{spec_file.relative_to(project.root)} delivery[{index}]"
            try:
                detail = load_plugin(CHANNELS, options.channel).check(with_secrets(options), project)
            except (ChannelCheckError, ReportctlError) as exc:
                checks.append(Check(options.channel, False, f"{where}: {exc}"))
            else:
                checks.append(Check(options.channel, True, f"{where}: {detail}"))
    return checks


CHECKS: tuple[Callable[[], Check | list[Check]], ...] = (
    check_python,
    check_plugins,
    check_fonts,
    check_browser,
    check_project,
    check_state_store,
    check_scheduler,
    check_executor,
    check_keyring,
    check_channels,
)


def run_checks() -> list[Check]:
    """Every check, in order; a check that crashes is reported as failed rather than stopping the others."""
    results = []
    for check in CHECKS:
        try:
            outcome = check()
            results.extend(outcome if isinstance(outcome, list) else [outcome])
        except Exception as exc:  # doctor must report, not crash, whatever is broken
            name = check.__name__.removeprefix("check_")
            results.append(Check(name, False, f"{type(exc).__name__}: {exc}", "run with --debug and report it"))
    return results
