"""The report the writer tests render: its header, period and parameters, built in one place.

Each writer's tests vary the title, description, zone and owner to probe what that writer must escape or show, and
keep their own blocks and frames. Imported as ``from writer_documents import ...``: pytest puts this folder on
``sys.path`` for the tests in it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo

from reportctl.document import KpiBlock, KpiValue, ParameterValue, Period, ReportInfo

RUN_ID = "20261128T090000-abc"

REGION = ParameterValue("region", "Region", "string", "eu")
SINCE = ParameterValue("since", "Since", "date", date(2026, 1, 1))
REGIONS = ParameterValue("regions", "Regions", "list", ["eu", "us"])
WINDOW = ParameterValue("window", "Window", "duration", timedelta(minutes=5))


def report_info(
    *,
    tz: tzinfo = UTC,
    timezone: str = "UTC",
    name: str = "server-health",
    title: str = "Server health",
    description: str | None = None,
    run_id: str = RUN_ID,
    spec_path: str = "specs/server-health.yaml",
    version: str | None = None,
    owner: str | None = None,
    labels: dict[str, str] | None = None,
) -> ReportInfo:
    """A run generated at 2026-11-28 09:00:01 in ``tz``; ``timezone`` is the report's zone, which may differ."""
    return ReportInfo(
        name=name,
        title=title,
        description=description,
        run_id=run_id,
        generated_at=datetime(2026, 11, 28, 9, 0, 1, tzinfo=tz),
        timezone=timezone,
        spec_path=spec_path,
        spec_hash="sha256:0123",
        version=version,
        owner=owner,
        labels=labels or {},
    )


def last_7_days(tz: tzinfo = UTC) -> ParameterValue:
    """The period parameter: 2026-11-21 to 2026-11-28 (excluded), both midnight in ``tz``."""
    period = Period("last_7_days", datetime(2026, 11, 21, tzinfo=tz), datetime(2026, 11, 28, tzinfo=tz))
    return ParameterValue("period", "Period", "period", period)


def key_figures() -> KpiBlock:
    """KPIs with a unit and a description, a percent, an aware datetime, and a missing value."""
    return KpiBlock(
        "kpis",
        "Key figures",
        (
            KpiValue("Worst p95", 1234.4, "number:0 ms", "highest p95 latency"),
            KpiValue("Error rate", 0.0853, "percent"),
            KpiValue("Last seen", datetime(2026, 11, 28, 13, 5, tzinfo=UTC)),
            KpiValue("Missing", None, "number:1"),
        ),
    )
