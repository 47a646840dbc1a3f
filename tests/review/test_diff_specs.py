"""The comparison over two real specs, loaded and rendered: schedule, deliveries, outputs, parameters and data."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from reportctl.review import ReportDiff, ReportSide, compare_reports
from reportctl.review.model import MembersChange, ValueChange
from reportctl.runner import build_document
from reportctl.spec.loader import load_spec

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

SPEC = """\
apiVersion: reportctl/v1
name: health
title: "Health"
parameters:
  period: {{type: period, default: last_7_days}}
  {parameter}
sources:
  metrics: {{kind: sample, rows: 300, seed: 3, period: period}}
datasets:
  by_service:
    from: metrics
    where: "error_rate > {threshold}"
    group_by: [service]
    aggregate: {{samples: count(), worst: max(latency_ms)}}
    sort: [service]
sections:
  - {{id: services, type: table, dataset: by_service}}
outputs: [{outputs}]
schedule: {{cron: "{cron}", timezone: Europe/Berlin}}
delivery:
  - {{channel: email, to: [{to}], from: r@example.com, subject: "{subject}", username: ada, password: "{password}"}}
  - {{channel: file, path: outbox}}
"""


def spec(folder: Path, name: str, **changes: str) -> ReportSide:
    values = {
        "parameter": "region: {type: string, default: all}",
        "threshold": "0.0",
        "outputs": "csv, json",
        "cron": "0 8 * * MON",
        "to": "ada@example.com, team:sre",
        "subject": "Health",
        "password": "${secret:smtp}",
    } | changes
    path = folder / "specs" / f"{name}.yaml"
    path.write_text(SPEC.format(**values))
    loaded = load_spec(path)
    return ReportSide(loaded, build_document(loaded, now=NOW), name)


def changes_by_field(diff: ReportDiff, topic: str) -> dict[str, tuple[object, ...]]:
    found: dict[str, tuple[object, ...]] = {}
    for change in getattr(diff, topic):
        if isinstance(change, ValueChange):
            found[change.field] = (change.base, change.head)
        elif isinstance(change, MembersChange):
            found[change.field] = (change.removed, change.added)
    return found


def test_two_identical_specs_differ_in_nothing(project: Path) -> None:
    diff = compare_reports(spec(project, "a"), spec(project, "b"))
    assert not diff.changed, diff.as_dict()


def test_schedule_recipients_outputs_and_parameters(project: Path) -> None:
    base = spec(project, "a")
    head = spec(
        project,
        "b",
        parameter="days: {type: int, default: 7}",
        outputs="csv, xlsx",
        cron="0 9 * * MON",
        to="ada@example.com, grace@example.com",
        subject="Health, weekly",
        password="hunter2",
    )
    diff = compare_reports(base, head)
    assert changes_by_field(diff, "settings") == {
        "schedule: cron": ("0 8 * * MON", "0 9 * * MON"),
        "outputs": (("json",), ("xlsx",)),
        "delivery email: to": (("team:sre",), ("grace@example.com",)),
        "delivery email: subject": ("Health", "Health, weekly"),
        "delivery email: password": ("(hidden)", "(hidden)"),  # a secret written into a spec is never shown
        "parameters": (("region",), ("days",)),
    }
    assert "hunter2" not in str(diff.as_dict())


def test_a_parameter_default_and_a_where_threshold(project: Path) -> None:
    base = spec(project, "a")
    head = spec(project, "b", parameter="region: {type: string, default: eu}", threshold="0.02")
    diff = compare_reports(base, head)
    assert changes_by_field(diff, "settings") == {"parameter region: default": ("all", "eu")}
    assert changes_by_field(diff, "data") == {"dataset by_service: where": ("error_rate > 0.0", "error_rate > 0.02")}
    (section,) = diff.sections
    assert section.table is not None and section.table.totals  # fewer rows over the threshold: smaller totals
    assert {t.field for t in section.table.totals} == {"Samples total", "Worst total"}
    assert section.table.key == ("service",)


def test_a_spec_missing_at_one_side(project: Path) -> None:
    head = spec(project, "a")
    diff = compare_reports(ReportSide(None, None, "HEAD~1"), head)
    assert diff.status == "added"
    assert changes_by_field(diff, "settings")["outputs"] == ((), ("csv", "json"))
    assert changes_by_field(diff, "settings")["schedule"] == (None, "0 8 * * MON (Europe/Berlin)")
    assert changes_by_field(diff, "settings")["delivery email: to"] == ((), ("ada@example.com", "team:sre"))
    removed = compare_reports(head, ReportSide(None, None, "HEAD"))
    assert removed.status == "removed" and [s.status for s in removed.sections] == ["removed"]


def test_a_password_in_a_source_url_is_never_shown(project: Path) -> None:
    def sql_spec(name: str, url: str) -> ReportSide:
        path = project / "specs" / f"{name}.yaml"
        path.write_text(
            "apiVersion: reportctl/v1\nname: sales\n"
            f"sources:\n  orders: {{kind: sql, url: '{url}', query: 'SELECT 1 AS one'}}\n"
            "sections:\n  - {id: intro, type: text, template: Sales}\n"
        )
        return ReportSide(load_spec(path), None, name)

    diff = compare_reports(
        sql_spec("a", "postgresql://report:s3cret@db/sales"), sql_spec("b", "postgresql://report:n3w@db2/sales")
    )
    assert changes_by_field(diff, "data") == {
        "source orders: url": ("postgresql://report:***@db/sales", "postgresql://report:***@db2/sales")
    }
    assert "s3cret" not in str(diff.as_dict()) and "n3w" not in str(diff.as_dict())


def test_a_schedule_pinned_to_another_revision(project: Path) -> None:
    base = spec(project, "a", cron='0 8 * * MON", rev: "v1.0')
    head = spec(project, "b", cron='0 8 * * MON", rev: "v1.1')
    assert changes_by_field(compare_reports(base, head), "settings") == {"schedule: rev": ("v1.0", "v1.1")}
    added = compare_reports(ReportSide(None, None, "HEAD~1"), base)
    assert changes_by_field(added, "settings")["schedule"] == (None, "0 8 * * MON (Europe/Berlin) at v1.0")
