"""The ``sample`` source: deterministic synthetic server metrics, so demos and tests need no server."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import ConfigDict, Field, model_validator

from reportctl.data.sources.base import SourceContext
from reportctl.errors import SourceError
from reportctl.spec.models import SourceOptions
from reportctl.spec.types import IDENTIFIER

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

DEFAULT_SPAN = timedelta(days=7)
MAX_ROWS = 50_000_000

_HOUR_US = 3_600_000_000
_DAY_US = 24 * _HOUR_US


@dataclass(frozen=True)
class _ServiceProfile:
    """How a service behaves: typical latency, share of traffic and idle CPU."""

    latency_ms: float
    traffic: float
    cpu: float


_SERVICES = {
    "api": _ServiceProfile(latency_ms=45, traffic=3.0, cpu=30),
    "auth": _ServiceProfile(latency_ms=25, traffic=2.0, cpu=20),
    "billing": _ServiceProfile(latency_ms=120, traffic=0.6, cpu=25),
    "checkout": _ServiceProfile(latency_ms=180, traffic=0.8, cpu=35),
    "search": _ServiceProfile(latency_ms=90, traffic=1.5, cpu=45),
    "web": _ServiceProfile(latency_ms=60, traffic=2.5, cpu=28),
}
# Latency grows with distance from the (European) core; the hour offset puts each region's busiest time in
# its own afternoon.
_REGIONS = {"eu": (1.0, 0.0), "us": (1.15, 6.0), "ap": (1.4, -7.0)}


class SampleOptions(SourceOptions):
    """Options of the ``sample`` source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["sample"] = Field(description="Generates synthetic server metrics, the same for the same options.")
    rows: int = Field(default=10_000, ge=0, le=MAX_ROWS, description="How many rows to generate.")
    seed: int = Field(default=0, ge=0, description="Another seed gives other, equally realistic, values.")
    services: list[str] = Field(default_factory=lambda: list(_SERVICES), min_length=1, description="Service names.")
    regions: list[str] = Field(default_factory=lambda: list(_REGIONS), min_length=1, description="Region names.")
    hosts_per_service: int = Field(
        default=3, ge=1, le=1000, description="Hosts per service in each region, named like api-eu-1."
    )
    start: datetime | None = Field(default=None, description="First timestamp; defaults to 7 days before end.")
    end: datetime | None = Field(
        default=None,
        description="Timestamps stay before this; defaults to the run time, floored to the hour.",
    )
    period: Annotated[str, Field(pattern=IDENTIFIER)] | None = Field(
        default=None, description="A period parameter whose start and end bound the timestamps."
    )

    @model_validator(mode="after")
    def _one_way_to_set_the_span(self) -> SampleOptions:
        if self.period is not None and (self.start is not None or self.end is not None):
            raise ValueError("give either 'period' or 'start'/'end', not both")
        return self


class SampleSource:
    """Per-service latency with a daily cycle, lognormal noise and rare spikes, and a few error incidents."""

    PLUGIN_NAME: ClassVar[str] = "sample"
    Options: ClassVar[type[SourceOptions]] = SampleOptions

    def __init__(self, name: str, options: SampleOptions, context: SourceContext) -> None:
        self.name = name
        self.options = options
        self.context = context

    def describe(self) -> str:
        return f"sample {self.options.rows} rows, seed {self.options.seed}"

    def known_schema(self) -> pl.Schema:
        import polars as pl

        return pl.Schema(
            {
                "timestamp": pl.Datetime("us", "UTC"),
                "service": pl.String(),
                "region": pl.String(),
                "host": pl.String(),
                "latency_ms": pl.Float64(),
                "error_rate": pl.Float64(),
                "cpu": pl.Float64(),
                "memory": pl.Float64(),
            }
        )

    def fetch(self) -> pl.LazyFrame:
        start, end = self._span()
        return self._generate(start, end).lazy()

    def _error(self, cause: str) -> SourceError:
        return SourceError(self.name, self.describe(), cause)

    def _span(self) -> tuple[datetime, datetime]:
        """Start and end in UTC, from the period parameter, the options, or the week before the run."""
        options = self.options
        if options.period is not None:
            values = []
            for bound in ("start", "end"):
                key = f"{options.period}_{bound}"
                if key not in self.context.parameters:
                    raise self._error(f"period '{options.period}' has no {bound}: the run has no parameter {key}")
                values.append(self._instant(self.context.parameters[key], key))
            start, end = values
        else:
            run_end = self._instant(self.context.run_time, "run_time").replace(minute=0, second=0, microsecond=0)
            given_start = self._instant(options.start, "start") if options.start else None
            given_end = self._instant(options.end, "end") if options.end else None
            if given_end is not None:
                end = given_end
            else:
                end = given_start + DEFAULT_SPAN if given_start is not None else run_end
            start = given_start if given_start is not None else end - DEFAULT_SPAN
        if end <= start:
            raise self._error(f"the span is empty: end {end.isoformat()} is not after start {start.isoformat()}")
        return start, end

    def _instant(self, value: Any, what: str) -> datetime:
        """``value`` as an aware UTC datetime; naive values and dates are read in the report's time zone."""
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise self._error(f"{what} is not an ISO date or datetime: {value!r}") from None
        if isinstance(value, date) and not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day)
        if not isinstance(value, datetime):
            raise self._error(f"{what} is not a date or datetime: {value!r}")
        instant: datetime = value
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=ZoneInfo(self.context.timezone))
        return instant.astimezone(UTC)

    def _generate(self, start: datetime, end: datetime) -> pl.DataFrame:
        import numpy as np
        import polars as pl

        options = self.options
        n = options.rows
        services, regions, per_host = options.services, options.regions, options.hosts_per_service
        start_us = _epoch_us(start)
        span_us = _epoch_us(end) - start_us
        # The span's start is part of the seed, so this week's numbers differ from last week's.
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([options.seed, start_us % 2**63])))

        # Split the span exactly in integers: a float step would drift, and i * span overflows int64.
        index = np.arange(n, dtype=np.int64)
        step, remainder = divmod(span_us, max(n, 1))
        offset = index * step + (index * remainder) // max(n, 1)
        timestamps = start_us + offset

        profiles = [_SERVICES.get(s) or _invented_profile(s) for s in services]
        traffic = np.array([p.traffic for p in profiles])
        service = rng.choice(len(services), size=n, p=traffic / traffic.sum())
        region = rng.integers(0, len(regions), size=n)
        host = (service * len(regions) + region) * per_host + rng.integers(0, per_host, size=n)

        region_factor = np.array([_REGIONS.get(r, (_invented_factor(r), 0.0))[0] for r in regions])
        region_shift = np.array([_REGIONS.get(r, (1.0, 0.0))[1] for r in regions])
        day_fraction = (timestamps % _DAY_US) / _DAY_US
        hour = day_fraction * 24 + region_shift[region]
        # 0 in the small hours, 1 in the mid-afternoon peak.
        load = 0.5 + 0.5 * np.sin(2 * np.pi * (hour - 9) / 24)

        base_latency = np.array([p.latency_ms for p in profiles])[service] * region_factor[region]
        latency = base_latency * (1 + 0.6 * load) * rng.lognormal(0.0, 0.25, size=n)
        spikes = rng.random(n) < 0.002
        latency = np.where(spikes, latency * rng.uniform(3, 12, size=n), latency)

        # About 0.08% at night and 0.16% at the peak, so that only incidents pass 1%.
        error_rate = rng.gamma(2.0, 0.0004, size=n) * (1 + load)
        cpu = np.array([p.cpu for p in profiles])[service] + 35 * load + rng.normal(0, 6, size=n)

        host_memory = rng.uniform(35, 70, size=len(services) * len(regions) * per_host)
        # Memory creeps up through the day and drops at the nightly restart.
        memory = host_memory[host] + 12 * day_fraction + rng.normal(0, 2, size=n)

        _add_incidents(
            rng,
            timestamps=timestamps,
            service=service,
            service_count=len(services),
            region=region,
            region_count=len(regions),
            span_us=span_us,
            start_us=start_us,
            latency=latency,
            error_rate=error_rate,
            cpu=cpu,
        )

        return pl.DataFrame(
            [
                pl.Series("timestamp", timestamps).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
                pl.Series(services, dtype=pl.String).gather(service).alias("service"),
                pl.Series(regions, dtype=pl.String).gather(region).alias("region"),
                pl.Series(_host_names(services, regions, per_host), dtype=pl.String).gather(host).alias("host"),
                pl.Series("latency_ms", latency.round(2)),
                pl.Series("error_rate", np.clip(error_rate, 0, 1).round(5)),
                pl.Series("cpu", np.clip(cpu, 0, 100).round(1)),
                pl.Series("memory", np.clip(memory, 0, 100).round(1)),
            ]
        )


def _add_incidents(
    rng: np.random.Generator,
    *,
    timestamps: np.ndarray[Any, Any],
    service: np.ndarray[Any, Any],
    service_count: int,
    region: np.ndarray[Any, Any],
    region_count: int,
    span_us: int,
    start_us: int,
    latency: np.ndarray[Any, Any],
    error_rate: np.ndarray[Any, Any],
    cpu: np.ndarray[Any, Any],
) -> None:
    """Roughly one outage every two days: one service in one region errs at several percent, slows down and
    runs hot."""
    import numpy as np

    count = min(100, max(1, round(span_us / (2 * _DAY_US))))
    begins = start_us + rng.uniform(0, span_us, size=count).astype(np.int64)
    lengths = (rng.uniform(15, 90, size=count) * 60_000_000).astype(np.int64)
    hit = rng.integers(0, service_count, size=count)
    where = rng.integers(0, region_count, size=count)
    severity = rng.uniform(0.02, 0.2, size=count)
    # Timestamps are sorted, so each incident is one contiguous slice; no pass over every row per incident.
    lows = np.searchsorted(timestamps, begins)
    highs = np.searchsorted(timestamps, begins + lengths)
    for low, high, target, place, extra in zip(lows, highs, hit, where, severity, strict=True):
        affected = low + np.flatnonzero((service[low:high] == target) & (region[low:high] == place))
        error_rate[affected] += extra * rng.uniform(0.5, 1.5, size=affected.size)
        latency[affected] *= 1.5 + 10 * extra
        cpu[affected] += 25


def _host_names(services: list[str], regions: list[str], per_host: int) -> list[str]:
    return [f"{s}-{r}-{i}" for s in services for r in regions for i in range(1, per_host + 1)]


def _invented_profile(service: str) -> _ServiceProfile:
    """A stable profile for a service not built in; crc32, unlike ``hash``, is the same in every process."""
    code = zlib.crc32(service.encode())
    return _ServiceProfile(latency_ms=20 + code % 180, traffic=0.5 + (code >> 8) % 25 / 10, cpu=15 + (code >> 16) % 30)


def _invented_factor(region: str) -> float:
    return 1.0 + zlib.crc32(region.encode()) % 50 / 100


def _epoch_us(value: datetime) -> int:
    return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
