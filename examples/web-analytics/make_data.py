"""Generate the web-analytics example data: daily page-view exports and a page dimension table.

    data/pages.parquet                  one row per page of the shop: path, title, type, section, published
    data/pageviews/YYYY-MM-DD.csv       one row per page view of that day (UTC), one file per day

Two weeks of a small online coffee shop, 2026-11-14 to 2026-11-27: an ordinary week, then Black Week
(from Monday 2026-11-23, ending on Black Friday 2026-11-27) with an email campaign and more paid traffic.
Sessions walk the site like shoppers do (landing page by channel, then category, product, cart, checkout,
confirmation, or leave), so the funnel is realistic. A few sessions are bots.

Deterministic: a seeded numpy Generator, sessions simulated in order, so the same bytes come out every time.

    python make_data.py                 # rewrites data/pages.parquet and data/pageviews/*.csv
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

SEED = 1127
FIRST_DAY = date(2026, 11, 14)
DAYS = 14
CAMPAIGN_START = date(2026, 11, 23)
HERE = Path(__file__).resolve().parent
DATA = HERE / "data"

CHANNELS = ["organic", "direct", "paid", "social", "email", "referral"]
CHANNEL_SHARE = np.array([0.40, 0.22, 0.14, 0.12, 0.05, 0.07])
CAMPAIGN_SHARE = np.array([0.32, 0.20, 0.20, 0.10, 0.13, 0.05])
DEVICES = ["desktop", "mobile", "tablet"]
DEVICE_SHARE = np.array([0.42, 0.51, 0.07])
# How much more likely than average a session on this channel / device is to move on to the next step.
CHANNEL_INTENT = {"organic": 1.0, "direct": 1.15, "paid": 1.1, "social": 0.6, "email": 1.4, "referral": 0.9}
DEVICE_INTENT = {"desktop": 1.2, "mobile": 0.8, "tablet": 1.0}

PAGES = [
    # (path, title, type, section, published)
    ("/", "Home", "home", "shop", date(2024, 3, 1)),
    ("/espresso-machines", "Espresso machines", "category", "shop", date(2024, 3, 1)),
    ("/grinders", "Grinders", "category", "shop", date(2024, 3, 1)),
    ("/coffee", "Coffee beans", "category", "shop", date(2024, 3, 1)),
    ("/accessories", "Accessories", "category", "shop", date(2024, 3, 1)),
    ("/black-week", "Black Week deals", "category", "shop", date(2026, 11, 20)),
    ("/p/aurelia-single-boiler", "Aurelia single-boiler", "product", "shop", date(2024, 3, 1)),
    ("/p/aurelia-dual-boiler", "Aurelia dual-boiler", "product", "shop", date(2024, 9, 12)),
    ("/p/piccolo-lever", "Piccolo lever", "product", "shop", date(2025, 2, 3)),
    ("/p/compact-home-espresso", "Compact home espresso", "product", "shop", date(2024, 3, 1)),
    ("/p/macina-64", "Macina 64 flat burr", "product", "shop", date(2024, 3, 1)),
    ("/p/conico-hand-grinder", "Conico hand grinder", "product", "shop", date(2025, 6, 18)),
    ("/p/conico-electric", "Conico electric", "product", "shop", date(2025, 10, 1)),
    ("/p/house-espresso-blend", "House espresso blend 1 kg", "product", "shop", date(2024, 3, 1)),
    ("/p/ethiopia-yirgacheffe", "Ethiopia Yirgacheffe 250 g", "product", "shop", date(2024, 5, 21)),
    ("/p/colombia-huila", "Colombia Huila 250 g", "product", "shop", date(2025, 1, 9)),
    ("/p/kenya-aa", "Kenya AA 250 g", "product", "shop", date(2026, 9, 30)),
    ("/p/precision-scale", "Precision scale", "product", "shop", date(2024, 3, 1)),
    ("/p/tamper-58", "Tamper 58 mm", "product", "shop", date(2024, 3, 1)),
    ("/p/milk-jug-600", "Milk jug 600 ml", "product", "shop", date(2024, 3, 1)),
    ("/cart", "Cart", "cart", "shop", date(2024, 3, 1)),
    ("/checkout", "Checkout", "checkout", "shop", date(2024, 3, 1)),
    ("/checkout/thank-you", "Order confirmation", "confirmation", "shop", date(2024, 3, 1)),
    ("/blog/dialing-in-espresso", "Dialing in espresso: a beginner's guide", "blog", "content", date(2024, 4, 8)),
    ("/blog/flat-vs-conical-burrs", "Flat or conical burrs?", "blog", "content", date(2024, 11, 19)),
    ("/blog/milk-steaming-basics", "Milk steaming basics", "blog", "content", date(2025, 2, 27)),
    ("/blog/water-for-coffee", "What water to brew with", "blog", "content", date(2025, 8, 14)),
    ("/blog/black-week-gift-guide", "Black Week gift guide", "blog", "content", date(2026, 11, 19)),
    ("/blog/descaling-your-machine", "Descaling your machine", "blog", "content", date(2026, 1, 22)),
    ("/help/shipping", "Shipping and delivery", "help", "support", date(2024, 3, 1)),
    ("/help/returns", "Returns", "help", "support", date(2024, 3, 1)),
    ("/help/warranty", "Warranty", "help", "support", date(2024, 3, 1)),
    ("/account", "My account", "account", "support", date(2024, 3, 1)),
]
PAGE_ID = {path: i for i, (path, *_rest) in enumerate(PAGES, start=101)}
BY_TYPE: dict[str, list[str]] = {}
for _path, _title, _kind, _section, _published in PAGES:
    BY_TYPE.setdefault(_kind, []).append(_path)

# Median seconds on a page and transfer size in KB, by page type.
TIME_ON_PAGE = {"home": 25, "category": 40, "product": 70, "cart": 35, "checkout": 110, "confirmation": 20}
TIME_ON_PAGE |= {"blog": 150, "help": 55, "account": 30}
PAGE_KB = {"home": 2300, "category": 1900, "product": 1600, "cart": 700, "checkout": 650, "confirmation": 400}
PAGE_KB |= {"blog": 1250, "help": 500, "account": 450}


def landing(rng: np.random.Generator, channel: str, campaign: bool) -> str:
    """The first page of a session: search lands on products and articles, email on deals and products."""
    weights = {
        "organic": {"home": 0.2, "category": 0.15, "product": 0.35, "blog": 0.25, "help": 0.05},
        "direct": {"home": 0.7, "category": 0.05, "product": 0.05, "account": 0.15, "help": 0.05},
        "paid": {"home": 0.1, "category": 0.35, "product": 0.55},
        "social": {"home": 0.15, "product": 0.25, "blog": 0.6},
        "email": {"category": 0.5, "product": 0.45, "blog": 0.05},
        "referral": {"home": 0.3, "product": 0.3, "blog": 0.4},
    }[channel]
    kind = _pick(rng, weights)
    if kind == "category" and campaign and rng.random() < 0.6:
        return "/black-week"
    return _page(rng, kind, campaign)


def next_page(rng: np.random.Generator, current: str, intent: float, campaign: bool) -> str | None:
    """Where a visitor goes from ``current``, or None when the session ends there."""
    kind = PAGES[PAGE_ID[current] - 101][2]
    boost = 1.15 if campaign else 1.0
    step = min(0.95, intent * boost)
    moves = {
        "home": {"category": 0.45, "product": 0.15, "blog": 0.08, "help": 0.04, None: 0.28},
        "category": {"product": 0.62, "category": 0.08, None: 0.30},
        "product": {"cart": 0.12 * step, "product": 0.30, "category": 0.08, "help": 0.03},
        "cart": {"checkout": 0.62 * step, "product": 0.12},
        "checkout": {"confirmation": 0.70 * min(step, 1.3)},
        "confirmation": {"blog": 0.03},
        "blog": {"blog": 0.18, "product": 0.14 * step, "home": 0.05},
        "help": {"help": 0.15, "home": 0.10},
        "account": {"home": 0.3, "product": 0.1},
    }[kind]
    stay = sum(p for k, p in moves.items() if k is not None)
    moves.setdefault(None, max(0.0, 1 - stay))
    chosen = _pick(rng, moves)
    return None if chosen is None else _page(rng, chosen, campaign)


def _page(rng: np.random.Generator, kind: str, campaign: bool) -> str:
    paths = BY_TYPE[kind]
    if kind == "category" and not campaign:
        paths = [p for p in paths if p != "/black-week"]
    if kind == "blog" and not campaign:
        paths = [p for p in paths if "black-week" not in p]
    # Earlier entries are the popular ones.
    weights = 1 / np.arange(1, len(paths) + 1) ** 0.8
    return paths[int(rng.choice(len(paths), p=weights / weights.sum()))]


def _pick(rng: np.random.Generator, weights: dict[str | None, float] | dict[str, float]) -> str | None:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def simulate_day(rng: np.random.Generator, day: date) -> pl.DataFrame:
    campaign = day >= CAMPAIGN_START
    weekend = day.weekday() >= 5
    expected = 260 * (0.8 if weekend else 1.0) * (1.0 + 0.12 * (day - FIRST_DAY).days / DAYS)
    if campaign:
        expected *= 1.35 + (0.9 if day.weekday() == 4 else 0.0)  # Black Friday
    sessions = int(rng.poisson(expected))
    rows: dict[str, list[object]] = {k: [] for k in ("timestamp", "session_id", "page_id", "channel", "device")}
    rows |= {"time_on_page_s": [], "bytes": [], "order_value": [], "is_bot": []}
    # Visits peak in the evening (UTC), with a smaller lunchtime bump.
    hour_weights = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 3.5, 3.6, 3.8, 4.5, 4.2, 3.8, 3.7, 3.9, 4.3, 5])
    hour_weights = np.concatenate([hour_weights, [5.6, 6, 5.2, 3.6, 2]])
    hour_weights = hour_weights / hour_weights.sum()
    hours = rng.choice(24, size=sessions, p=hour_weights)
    seconds_in_hour = rng.integers(0, 3600, sessions)
    starts = sorted(int(h) * 3600 + int(s) for h, s in zip(hours, seconds_in_hour, strict=True))
    for number, start in enumerate(starts, start=1):
        session_id = f"{day:%m%d}-{number:04d}"
        bot = rng.random() < 0.03
        channel = "direct" if bot else CHANNELS[int(rng.choice(6, p=CAMPAIGN_SHARE if campaign else CHANNEL_SHARE))]
        device = "desktop" if bot else DEVICES[int(rng.choice(3, p=DEVICE_SHARE))]
        intent = CHANNEL_INTENT[channel] * DEVICE_INTENT[device] * rng.lognormal(0, 0.25)
        page: str | None = landing(rng, channel, campaign)
        at = datetime(day.year, day.month, day.day) + timedelta(seconds=start)
        views = 0
        while page is not None and views < 40:
            kind = PAGES[PAGE_ID[page] - 101][2]
            # Crawlers stay a second or two; people a while, longest on articles and at checkout.
            seconds = int(rng.integers(1, 4)) if bot else max(2, int(rng.lognormal(np.log(TIME_ON_PAGE[kind]), 0.6)))
            kilobytes = PAGE_KB[kind] * (0.7 if device == "mobile" else 1.0) * rng.uniform(0.9, 1.1)
            rows["timestamp"].append(at)
            rows["session_id"].append(session_id)
            rows["page_id"].append(PAGE_ID[page])
            rows["channel"].append(channel)
            rows["device"].append(device)
            rows["time_on_page_s"].append(seconds)
            rows["bytes"].append(int(kilobytes * 1024))
            order_value = round(float(rng.lognormal(np.log(95), 0.7)), 2) if kind == "confirmation" else None
            rows["order_value"].append(order_value)
            rows["is_bot"].append(bot)
            views += 1
            at += timedelta(seconds=seconds)
            if bot:
                # Crawlers follow links at random and stop after a few dozen pages.
                page = PAGES[int(rng.integers(0, len(PAGES)))][0] if rng.random() < 0.93 else None
                if page in ("/cart", "/checkout", "/checkout/thank-you", "/account"):
                    page = "/"
            else:
                page = next_page(rng, page, intent, campaign)
    return pl.DataFrame(
        rows,
        schema={
            "timestamp": pl.Datetime("us"),
            "session_id": pl.String,
            "page_id": pl.Int64,
            "channel": pl.String,
            "device": pl.String,
            "time_on_page_s": pl.Int64,
            "bytes": pl.Int64,
            "order_value": pl.Float64,
            "is_bot": pl.Boolean,
        },
    ).sort("timestamp", maintain_order=True)


def main() -> None:
    rng = np.random.Generator(np.random.PCG64(SEED))
    (DATA / "pageviews").mkdir(parents=True, exist_ok=True)
    pages = pl.DataFrame(
        {
            "page_id": list(PAGE_ID.values()),
            "path": [p[0] for p in PAGES],
            "title": [p[1] for p in PAGES],
            "page_type": [p[2] for p in PAGES],
            "section": [p[3] for p in PAGES],
            "published": [p[4] for p in PAGES],
        }
    )
    # Without statistics the file is the same bytes on every run (with the same polars version).
    pages.write_parquet(DATA / "pages.parquet", statistics=False)
    for old in (DATA / "pageviews").glob("*.csv"):
        old.unlink()
    total = 0
    for offset in range(DAYS):
        day = FIRST_DAY + timedelta(days=offset)
        frame = simulate_day(rng, day)
        frame.write_csv(DATA / "pageviews" / f"{day.isoformat()}.csv", datetime_format="%Y-%m-%dT%H:%M:%S")
        total += frame.height
    print(f"wrote data/pages.parquet ({pages.height} pages) and {DAYS} daily files, {total} page views")


if __name__ == "__main__":
    main()
