"""The Alertmanager mapping (``POST /alerts/SPEC``'s logic): Alertmanager's webhook payloads (version 4, shaped as
notify/webhook/webhook.go and template/template.go ``Data`` write them) mapped to parameters, a window and one key per
alert episode; bad payloads and bad ``alerts:`` blocks with their one-line messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reportctl.document import Period
from reportctl.errors import ParameterError, SpecError
from reportctl.runner import resolve_parameters
from reportctl.schedule.alerts import AlertPayloadError, alert_trigger
from reportctl.spec.loader import LoadedSpec, load_spec
from reportctl.templating import TemplateError

PAYLOADS = Path(__file__).parent / "alertmanager_payloads"
NOW = datetime(2026, 12, 4, 10, 0, 0, tzinfo=UTC)
SPEC = """\
apiVersion: reportctl/v1
name: {name}
parameters:
  service: {{type: string, choices: [checkout, payments, search], default: checkout}}
  severity: {{type: choice, choices: [warning, critical], default: warning}}
  host: {{type: string, default: all}}
{periods}
sources:
  metrics: {{kind: sample, rows: 3}}
sections:
  - {{id: t, type: table, dataset: metrics}}
outputs: [csv]
{alerts}"""
ONE_PERIOD = "  incident: {type: period, default: last_24_hours}"
MAPPING = """\
alerts:
  parameters:
    service: "{{ labels.service }}"
    severity: "{{ commonLabels.severity }}"
    host: "{{ labels.instance }}"
  before: 1h
  after: 5m
"""


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return data


def spec(project: Path, alerts: str = "", *, periods: str = ONE_PERIOD, name: str = "incident") -> LoadedSpec:
    path = project / "specs" / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, periods=periods, alerts=alerts))
    return load_spec(path)


def test_one_firing_alert_maps_labels_named_like_parameters_and_the_window(project: Path) -> None:
    trigger = alert_trigger(spec(project), payload("firing_one"), NOW)
    assert trigger is not None
    assert trigger.status == "firing"
    assert trigger.group_key == '{}/{severity="critical"}:{alertname="HighErrorRate"}'
    # 09:52:30.123 less the default 30m, to the second below; a firing group's window ends now
    assert trigger.window_start == datetime(2026, 12, 4, 9, 22, 30, tzinfo=UTC)
    assert trigger.window_end == NOW
    assert trigger.parameters == {
        "service": "checkout",
        "severity": "critical",
        "incident": "2026-12-04T09:22:30+00:00..2026-12-04T10:00:00+00:00",
    }
    assert trigger.alerts == 1
    assert len(trigger.idempotency_key) == 64


def test_the_parameters_are_what_the_spec_accepts_from_the_command_line(project: Path) -> None:
    loaded = spec(project)
    trigger = alert_trigger(loaded, payload("firing_one"), NOW)
    assert trigger is not None
    values = resolve_parameters(loaded, trigger.parameters, NOW)
    period = values["incident"]
    assert isinstance(period, Period)
    assert (period.start, period.end) == (trigger.window_start, trigger.window_end)
    assert (values["service"], values["severity"], values["host"]) == ("checkout", "critical", "all")


def test_a_group_of_three_maps_through_templates_from_its_earliest_alert(project: Path) -> None:
    trigger = alert_trigger(spec(project, MAPPING), payload("firing_group_of_three"), NOW)
    assert trigger is not None
    # the earliest startsAt is 09:38:15.5+01:00, 08:38:15.5 UTC; its alert's labels are `labels`
    assert trigger.window_start == datetime(2026, 12, 4, 7, 38, 15, tzinfo=UTC)
    assert trigger.window_end == NOW
    assert trigger.parameters == {
        "service": "payments",
        "severity": "warning",
        "host": "10.0.3.18:9100",
        "incident": "2026-12-04T07:38:15+00:00..2026-12-04T10:00:00+00:00",
    }
    assert trigger.alerts == 3


def test_re_sends_of_a_group_have_one_key_and_a_new_episode_another(project: Path) -> None:
    loaded = spec(project)
    first = alert_trigger(loaded, payload("firing_one"), NOW)
    # Alertmanager re-sends the firing group (group_interval, repeat_interval) with a later endsAt, minutes later
    resent = alert_trigger(loaded, payload("firing_one_resent"), datetime(2026, 12, 4, 10, 5, tzinfo=UTC))
    assert first is not None and resent is not None
    assert resent.idempotency_key == first.idempotency_key
    assert resent.window_start == first.window_start
    # the group resolved, then fired again at 11:40: a new earliest startsAt, a new episode
    again = payload("firing_one")
    again["alerts"][0]["startsAt"] = "2026-12-04T11:40:00Z"
    later = alert_trigger(loaded, again, datetime(2026, 12, 4, 11, 45, tzinfo=UTC))
    assert later is not None
    assert later.idempotency_key != first.idempotency_key
    assert later.window_start == datetime(2026, 12, 4, 11, 10, tzinfo=UTC)


def test_the_key_is_per_spec_and_per_group(project: Path) -> None:
    key = alert_trigger(spec(project), payload("firing_one"), NOW)
    other_spec = alert_trigger(spec(project, name="incident-b"), payload("firing_one"), NOW)
    other_group = payload("firing_one")
    other_group["groupKey"] = '{}/{severity="critical"}:{alertname="HighLatency"}'
    other = alert_trigger(spec(project), other_group, NOW)
    assert key is not None and other_spec is not None and other is not None
    assert len({key.idempotency_key, other_spec.idempotency_key, other.idempotency_key}) == 3


def test_a_resolved_group_renders_nothing_unless_on_resolved(project: Path) -> None:
    assert alert_trigger(spec(project), payload("resolved"), NOW) is None
    loaded = spec(project, "alerts: {on_resolved: true, after: 10m}\n")
    resolved = alert_trigger(loaded, payload("resolved"), NOW)
    firing = alert_trigger(loaded, payload("firing_one"), NOW)
    assert resolved is not None and firing is not None
    assert resolved.status == "resolved"
    assert resolved.alerts == 1
    # the final window: from the startsAt less 30m to the endsAt 10:21:00.5 plus 10m, to the second above
    assert resolved.window_start == datetime(2026, 12, 4, 9, 22, 30, tzinfo=UTC)
    assert resolved.window_end == datetime(2026, 12, 4, 10, 31, 1, tzinfo=UTC)
    assert resolved.parameters["incident"] == "2026-12-04T09:22:30+00:00..2026-12-04T10:31:01+00:00"
    assert resolved.idempotency_key != firing.idempotency_key


def test_firing_counts_only_the_firing_alerts_of_the_group(project: Path) -> None:
    group = payload("firing_group_of_three")
    group["alerts"][1]["status"] = "resolved"
    group["alerts"][1]["endsAt"] = "2026-12-04T09:55:00Z"
    trigger = alert_trigger(spec(project, MAPPING), group, NOW)
    assert trigger is not None
    assert trigger.alerts == 2
    assert trigger.parameters["host"] == "10.0.3.17:9100"
    assert trigger.window_start == datetime(2026, 12, 4, 8, 41, tzinfo=UTC)


def _without(field: str) -> dict[str, Any]:
    data = payload("firing_one")
    del data[field]
    return data


def _alert_field(field: str, value: Any) -> dict[str, Any]:
    data = payload("firing_one")
    data["alerts"][0][field] = value
    return data


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([payload("firing_one")], "alert payload: expected a JSON object (Alertmanager's webhook message), got a list"),
        ("firing", "alert payload: expected a JSON object (Alertmanager's webhook message), got str"),
        (_without("alerts"), "alert payload: alerts: expected a non-empty list of alerts, got nothing"),
        (
            {**payload("firing_one"), "alerts": []},
            "alert payload: alerts: expected a non-empty list of alerts, got an empty list",
        ),
        (_without("groupKey"), "alert payload: groupKey: expected a non-empty string, got nothing"),
        (
            {**payload("firing_one"), "status": "pending"},
            "alert payload: status: expected firing or resolved, got 'pending'",
        ),
        (
            {**payload("firing_one"), "version": "3"},
            "alert payload: version: '3' is not supported; reportctl reads Alertmanager's webhook version 4",
        ),
        (
            _alert_field("startsAt", "2026-12-04 09:52"),
            "alert payload: alerts[0].startsAt: '2026-12-04 09:52' is not an RFC 3339 time such as "
            "2026-12-04T09:58:30.123Z",
        ),
        (
            _alert_field("endsAt", 1764842400),
            "alert payload: alerts[0].endsAt: 1764842400 is not an RFC 3339 time such as 2026-12-04T09:58:30.123Z",
        ),
        (
            _alert_field("startsAt", None),
            "alert payload: alerts[0].startsAt: expected the time the alert started, got none",
        ),
        (
            _alert_field("labels", {"service": 5}),
            "alert payload: alerts[0].labels: expected an object of label names to string values",
        ),
        (
            _alert_field("status", "active"),
            "alert payload: alerts[0].status: expected firing or resolved, got 'active'",
        ),
        (
            _alert_field("status", "resolved"),
            "alert payload: status is firing but no alert in alerts is firing",
        ),
    ],
)
def test_bad_payloads_name_the_field(project: Path, body: Any, message: str) -> None:
    with pytest.raises(AlertPayloadError) as caught:
        alert_trigger(spec(project), body, NOW)
    assert str(caught.value) == message


def test_a_label_value_a_parameter_refuses_names_the_label(project: Path) -> None:
    data = payload("firing_one")
    data["commonLabels"]["service"] = "search-api"
    with pytest.raises(ParameterError) as caught:
        alert_trigger(spec(project), data, NOW)
    assert str(caught.value) == (
        "commonLabels.service: parameter 'service' refuses 'search-api': 'search-api' is not one of: checkout, "
        "payments, search"
    )
    with pytest.raises(ParameterError) as caught:
        alert_trigger(spec(project, MAPPING), data | {"commonLabels": {"severity": "page"}}, NOW)
    assert str(caught.value) == (
        "alerts.parameters.severity: parameter 'severity' refuses 'page': 'page' is not one of: warning, critical"
    )


def test_a_template_naming_a_missing_label_fails_and_an_empty_one_keeps_the_default(project: Path) -> None:
    strict = "alerts:\n  parameters: {host: '{{ labels.node }}'}\n"
    with pytest.raises(TemplateError) as caught:
        alert_trigger(spec(project, strict), payload("firing_one"), NOW)
    assert str(caught.value) == "alerts.parameters.host: 'dict object' has no attribute 'node'"
    lenient = "alerts:\n  parameters: {host: \"{{ labels.node | default('') }}\", service: '{{ labels.service }}'}\n"
    trigger = alert_trigger(spec(project, lenient), payload("firing_one"), NOW)
    assert trigger is not None
    assert set(trigger.parameters) == {"service", "incident"}


def test_a_spec_without_a_period_for_the_window_is_refused(project: Path) -> None:
    with pytest.raises(SpecError) as caught:
        alert_trigger(spec(project, periods=""), payload("firing_one"), NOW)
    path = project / "specs" / "incident.yaml"
    assert str(caught.value) == (
        f"{path}: alerts: an alert's window needs one period parameter, and it has none; add alerts: {{period: NAME}} "
        "to the spec"
    )
    # with an alerts: block and no period parameter, the labels alone are mapped
    trigger = alert_trigger(spec(project, "alerts: {before: 0s}\n", periods=""), payload("firing_one"), NOW)
    assert trigger is not None
    assert trigger.parameters == {"service": "checkout", "severity": "critical"}


def test_validate_checks_the_alerts_block(project: Path) -> None:
    periods = ONE_PERIOD + "\n  baseline: {type: period, default: last_7_days}"
    bad = """\
alerts:
  parameters:
    servce: "{{ labels.service }}"
    incident: "{{ labels.window }}"
    host: "{{ labels.instance "
  period: host
"""
    with pytest.raises(SpecError) as caught:
        spec(project, bad, periods=periods)
    lines = [f"{p.path}: {p.message}" for p in caught.value.problems]
    assert lines == [
        "alerts.parameters.servce: unknown parameter 'servce' (did you mean 'service'?); parameters: baseline, host, "
        "incident, service, severity",
        "alerts.parameters.host: syntax error on line 1: unexpected end of template, expected 'end of print "
        'statement\' (in "{{ labels.instance")',
        "alerts.period: parameter 'host' is of type string, not period; period parameters: baseline, incident",
    ]
    assert all(p.position is not None for p in caught.value.problems)
    with pytest.raises(SpecError) as caught:
        spec(project, "alerts: {parameters: {incident: '{{ labels.x }}'}}\n", periods=periods)
    assert [f"{p.path}: {p.message}" for p in caught.value.problems] == [
        "alerts: name the period that receives the alert window in alerts.period: one of baseline, incident"
    ]
    chosen = spec(project, "alerts: {period: incident, parameters: {host: '{{ labels.x }}'}}\n", periods=periods)
    assert chosen.spec.alerts is not None
    with pytest.raises(SpecError) as caught:
        spec(project, "alerts: {before: -300}\n")
    assert [f"{p.path}: {p.message}" for p in caught.value.problems] == [
        "alerts.before: expected a duration of 0s or more, such as 30m"
    ]


def test_the_mapped_window_parameter_itself_is_refused(project: Path) -> None:
    with pytest.raises(SpecError) as caught:
        spec(project, "alerts: {parameters: {incident: '{{ labels.x }}'}}\n")
    assert [f"{p.path}: {p.message}" for p in caught.value.problems] == [
        "alerts.parameters.incident: 'incident' receives the alert window; map other parameters here"
    ]


def test_the_incident_example_maps_a_firing_and_a_resolved_group(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "incident"
    monkeypatch.chdir(example)
    report, brief = load_spec(Path("specs/incident-report.yaml")), load_spec(Path("specs/incident-brief.yaml"))
    firing = alert_trigger(report, payload("firing_one"), NOW)
    assert firing is not None
    assert firing.parameters == {
        "service": "checkout",
        "severity": "critical",
        "incident": "2026-12-04T09:22:30+00:00..2026-12-04T10:00:00+00:00",
    }
    values = resolve_parameters(report, firing.parameters, NOW)
    assert (values["service"], values["severity"]) == ("checkout", "critical")
    # a group without a common service label renders every service (the parameter's default)
    group = alert_trigger(report, payload("firing_group_of_three") | {"commonLabels": {}}, NOW)
    assert group is not None and set(group.parameters) == {"incident"}
    later = datetime(2026, 12, 4, 10, 30, tzinfo=UTC)
    resolved = alert_trigger(report, payload("resolved"), later)
    assert resolved is not None
    assert resolved.window_end == datetime(2026, 12, 4, 10, 36, 1, tzinfo=UTC)
    assert alert_trigger(brief, payload("resolved"), later) is None
