"""Bursting: one variant of a report per recipient group, each filtered for its group and sent only to it.

``burst: {by: team}`` splits the recipients of a spec's deliveries into groups: each ``team:NAME`` or
``list:NAME`` entry is a group, and each address written alone is a group of one; ``by: recipient`` makes every
resolved address its own group. Each group gets a variant: a run of its own (trigger ``burst``, its ``viewer`` the
group, ``burst_of`` the run that was fired), rendered with the rows every member of the group may see (the
intersection of their policies, so a variant shared by several people shows none of them more than they may see),
and delivered only to the group's members, whom the variant's run records so that a resumed delivery never
reaches anyone else. A burst run resumed after a crash or retried after a failure renders only the variants that
did not complete, and finishes the deliveries of those that did; the ledger never sends a variant twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from reportctl.data.policies import (
    Access,
    ColumnFilter,
    RowFilter,
    Viewer,
    protected_columns,
    resolve_viewer,
    row_filter,
    value_text,
)
from reportctl.errors import Problem, RenderError, ReportctlError, SourceError
from reportctl.run_record import RunResult

if TYPE_CHECKING:
    from reportctl.delivery.engine import DeliveryReport
    from reportctl.delivery.recipients import Directory
    from reportctl.spec.loader import LoadedSpec
    from reportctl.state.models import RunRecord
    from reportctl.state.store import StateStore

ROLES = ("to", "cc", "bcc")


@dataclass(frozen=True)
class Audience:
    """One recipient group of a burst: its name (``team:frontend``, an address) and its members' addresses."""

    key: str
    members: tuple[str, ...]

    def __str__(self) -> str:
        return self.key


def recipient_entries(loaded: LoadedSpec) -> list[str]:
    """Every recipient entry the spec's deliveries name, in order, once each."""
    entries: dict[str, None] = {}
    for options in loaded.deliveries:
        for role in ROLES:
            for entry in getattr(options, role, None) or ():
                entries.setdefault(entry.strip(), None)
    return list(entries)


def audiences(loaded: LoadedSpec, directory: Directory) -> list[Audience]:
    """The burst's groups, each with its members as the directory has them now; entries that reach nobody (an
    empty team, a malformed address) make no group: their deliveries record them as failed as usual."""
    by = loaded.spec.burst.by if loaded.spec.burst else "team"
    groups: dict[str, Audience] = {}
    for entry in recipient_entries(loaded):
        members = group_members(entry, directory)
        if not members:
            continue
        if by == "recipient" or ":" not in entry:
            for member in members:
                groups.setdefault(member, Audience(member, (member,)))
        else:
            groups.setdefault(entry, Audience(entry, members))
    return list(groups.values())


def group_members(entry: str, directory: Directory) -> tuple[str, ...]:
    """The addresses a recipient entry (an address, ``team:NAME``, ``list:NAME``) reaches now, lower-case, once."""
    return tuple(dict.fromkeys(r.address.lower() for r in directory.resolve([entry]) if r.problem is None))


def audience_access(loaded: LoadedSpec, audience: Audience, directory: Directory) -> Access:
    """What a group's variant shows: for each protected source, only the rows every member may see."""
    from reportctl.data.policies import load_policies

    policies = load_policies(loaded.project)
    protected = {name: protected_columns(o) for name, o in loaded.sources.items() if protected_columns(o)}
    filters: dict[str, RowFilter] = {}
    if policies is not None:
        viewers = [resolve_viewer(member, directory) for member in audience.members]
        for name, columns in protected.items():
            filters[name] = intersection(
                name, [row_filter(policies, viewer, directory, name, columns) for viewer in viewers]
            )
    return Access(Viewer(audience.key, None), filters, policies.file if policies else None, audience.members)


def intersection(source: str, filters: Sequence[RowFilter]) -> RowFilter:
    """The rows every one of ``filters`` allows (no filters: no rows)."""
    if not filters:
        return RowFilter(source, (), ())
    columns = []
    for index, column in enumerate(filters[0].columns):
        allowed: set[str] | None = None
        values: dict[str, object] = {}
        for each in filters:
            found = each.columns[index].values
            if found is None:
                continue
            texts = {value_text(v) for v in found}
            values.update({value_text(v): v for v in found})
            allowed = texts if allowed is None else allowed & texts
        kept = None if allowed is None else tuple(values[text] for text in sorted(allowed))
        columns.append(ColumnFilter(column.column, kept))  # type: ignore[arg-type]
    rules = tuple(dict.fromkeys(rule for each in filters for rule in each.rules))
    return RowFilter(source, tuple(columns), rules)


def check_burst(loaded: LoadedSpec) -> list[Problem]:
    """For ``validate``: a burst needs a protected source to split by, and deliveries that reach people only."""
    if loaded.spec.burst is None:
        return []
    problems = []
    if not any(protected_columns(o) for o in loaded.sources.values()):
        problems.append(
            loaded.problem(
                ("burst",),
                "a burst gives each recipient group the rows its policy allows, and no source has protected_by; "
                "protect a source or remove burst",
            )
        )
    for index, options in enumerate(loaded.deliveries):
        if not any(hasattr(options, role) for role in ROLES):
            problems.append(
                loaded.problem(
                    ("delivery", index, "channel"),
                    f"a burst sends each variant only to its own recipients, and a {options.channel} delivery has "
                    "none; move it to a spec without burst",
                )
            )
    if not recipient_entries(loaded):
        problems.append(loaded.problem(("burst",), "a burst splits the deliveries' recipients, and there are none"))
    return problems


def members_text(members: Iterable[str]) -> str:
    shown = list(members)
    return f"{len(shown)} recipient{'s' * (len(shown) != 1)}"


@dataclass
class Variant:
    """What became of one group's variant in a burst run."""

    audience: Audience
    run_id: str
    result: RunResult | None = None
    delivery: DeliveryReport | None = None
    error: ReportctlError | None = None
    earlier: bool = False
    """Rendered by an earlier attempt of the burst: only its unfinished deliveries were finished now."""


class BurstFailed(RenderError):
    """Some variants of a burst failed; the others were rendered and delivered."""


class _BurstSourceFailed(BurstFailed, SourceError):
    """Every failed variant failed to read a source: worth retrying, as any source failure is (the retry renders
    only those variants)."""

    def __init__(self, message: str) -> None:
        self.source, self.option = "", ""
        ReportctlError.__init__(self, message)


def render_burst(
    store: StateStore,
    loaded: LoadedSpec,
    run_id: str,
    *,
    dry_run: bool = False,
    retry: Callable[[BaseException], str | None] | None = None,
    node: str | None = None,
    **render_options: Any,
) -> RunResult:
    """Render and deliver each recipient group's variant of ``loaded`` as a run of its own under the burst run
    ``run_id`` (recorded, SCHEDULED); ``run_id`` itself writes no files and ends COMPLETED when every variant did.

    Variants an earlier attempt of the same burst completed (the same run, or the same scheduled fire) are not
    rendered again: their deliveries are finished, which the ledger makes send nothing twice.
    """
    from reportctl.delivery.directory import load_directory
    from reportctl.delivery.engine import DeliveryTarget, deliver_run
    from reportctl.runner import default_run_time
    from reportctl.state.lifecycle import RunState
    from reportctl.state.recording import RunRecorder

    now = render_options.get("now") or default_run_time()
    say = render_options.get("progress") or (lambda _message: None)
    burst = loaded.spec.burst
    assert burst is not None
    parent = store.get_run(run_id)
    timeout = loaded.project.config.state.heartbeat_timeout
    recorder = RunRecorder(store, run_id, timeout, say=say, retry=retry, node=node)
    try:
        groups = audiences(loaded, load_directory(loaded.project, now))
        recorder.stage("GENERATING", f"burst by {burst.by}: {len(groups)} variant{'s' * (len(groups) != 1)}")
        earlier = store.burst_variants(parent)
        variants: list[Variant] = []
        for audience in groups:
            say(f"variant for {audience} ({members_text(audience.members)})")
            found = earlier.get(audience.key)
            if found is not None and found.state.succeeded:  # COMPLETED, or with placeholder sections
                target = DeliveryTarget.recorded(found)
                delivery = deliver_run(store, loaded, target, dry_run=dry_run, say=say)
                variants.append(Variant(audience, found.id, delivery=delivery, earlier=True))
                continue
            variants.append(_render_variant(store, loaded, parent, audience, now, dry_run, node, render_options))
    except BaseException as exc:
        recorder.failed(exc)
        raise
    failed = [v for v in variants if v.error is not None]
    summary = burst_summary(variants)
    if failed:
        kind = _BurstSourceFailed if all(isinstance(v.error, SourceError) for v in failed) else BurstFailed
        shown = "; ".join(f"{v.audience}: {str(v.error).splitlines()[0]}" for v in failed)
        error = kind(f"{len(failed)} of {len(variants)} variants failed: {shown}")
        recorder.failed(error)
        raise error
    store.transition(run_id, RunState.FORMATTING, detail=summary)
    store.transition(run_id, RunState.DISTRIBUTING)
    result = RunResult(
        run_id, loaded.spec.name, "completed", loaded.project.output_dir / loaded.spec.name, [],
        dict(parent.parameters or {}),
    )  # fmt: skip
    result.variants = variants
    recorder.completed(result)
    return result


def _render_variant(
    store: StateStore,
    loaded: LoadedSpec,
    parent: RunRecord,
    audience: Audience,
    now: datetime,
    dry_run: bool,
    node: str | None,
    render_options: dict[str, Any],
) -> Variant:
    """A group's variant as a run of its own, delivered only to the group."""
    from reportctl.state import recording

    child = store.create_run(
        loaded.spec.name,
        trigger="burst",
        viewer=audience.key,
        burst_of=parent.id,
        audience=list(audience.members),
        spec_path=parent.spec_path,
        spec_hash=parent.spec_hash,
        revision=parent.revision,
        parameters=parent.parameters,
        scheduled_for=parent.scheduled_for,
        now=now,
    )
    try:
        result = recording.render_recorded(
            store, loaded, child.id, deliver=True, dry_run=dry_run, node=node, **{**render_options, "viewer": audience}
        )
    except ReportctlError as exc:
        return Variant(audience, child.id, error=exc)
    return Variant(audience, child.id, result=result, delivery=result.delivery)


def burst_summary(variants: Sequence[Variant]) -> str:
    """'3 variants: team:frontend (run ...), ...' for the burst run's timeline."""
    shown = ", ".join(f"{v.audience} ({v.run_id}{', earlier' if v.earlier else ''})" for v in variants)
    return f"{len(variants)} variant{'s' * (len(variants) != 1)}: {shown}" if variants else "no recipients"


def variant_payload(variant: Variant) -> dict[str, Any]:
    """One variant as ``render --json`` describes it."""
    result = variant.result
    return {
        "group": variant.audience.key,
        "recipients": list(variant.audience.members),
        "run_id": variant.run_id,
        "rendered_earlier": variant.earlier,
        "directory": str(result.directory) if result is not None else None,
        "artifacts": [a.as_dict() | {"path": str(a.path)} for a in result.artifacts] if result is not None else [],
        "delivery": variant.delivery.as_dict() if variant.delivery is not None else None,
    }
