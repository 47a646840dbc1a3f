"""Generate data/sales.db and data/targets.csv: a year of orders of a small European coffee-equipment retailer.

Deterministic (random.Random with a fixed seed, standard library only), so running it again gives the same
bytes; both files are committed so the example runs without this step. Orders span 2025-12-01 up to
2026-12-01 (UTC), with a December peak, a summer dip, quieter weekends and growth through the year. The
targets are the sales plan: a revenue target in EUR per country and month.

    python make_data.py            # rewrites data/sales.db and data/targets.csv
"""

from __future__ import annotations

import csv
import math
import random
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path

SEED = 2026
FIRST_DAY = date(2025, 12, 1)
END_DAY = date(2026, 12, 1)  # exclusive
HERE = Path(__file__).resolve().parent
DB_PATH = HERE / "data" / "sales.db"
TARGETS_PATH = HERE / "data" / "targets.csv"
# The plan: annual revenue target per country in EUR, spread over the months like SEASON.
ANNUAL_TARGETS_EUR = {"DE": 450_000, "US": 250_000, "NL": 190_000, "FR": 150_000, "GB": 90_000, "SE": 85_000}

# country: (currency, share of customers, share of business customers)
COUNTRIES = {
    "DE": ("EUR", 0.30, 0.25),
    "FR": ("EUR", 0.16, 0.20),
    "NL": ("EUR", 0.10, 0.30),
    "GB": ("GBP", 0.16, 0.20),
    "US": ("USD", 0.18, 0.15),
    "SE": ("SEK", 0.10, 0.25),
}
# EUR per unit of the currency in the first month, and its relative drift per month.
FX_START = {"EUR": (1.0, 0.0), "GBP": (1.165, 0.002), "USD": (0.925, -0.004), "SEK": (0.0875, 0.003)}
# Orders per day relative to an ordinary month: a December peak, a summer dip.
SEASON = {1: 0.95, 2: 0.9, 3: 1.0, 4: 1.0, 5: 1.0, 6: 0.95, 7: 0.8, 8: 0.78, 9: 1.0, 10: 1.08, 11: 1.3, 12: 1.45}

# product line: [(name, list price in EUR, cost share of the price)]
PRODUCTS = {
    "Espresso machines": [
        ("Aurelia single-boiler", 890.0, 0.58),
        ("Aurelia dual-boiler", 1590.0, 0.60),
        ("Piccolo lever", 640.0, 0.55),
        ("Barista Pro heat-exchanger", 1290.0, 0.59),
        ("Compact home espresso", 420.0, 0.62),
    ],
    "Grinders": [
        ("Macina 64 flat burr", 540.0, 0.52),
        ("Macina 83 flat burr", 1190.0, 0.55),
        ("Conico hand grinder", 189.0, 0.45),
        ("Conico electric", 329.0, 0.50),
    ],
    "Coffee beans": [
        ("House espresso blend 1 kg", 24.0, 0.48),
        ("Ethiopia Yirgacheffe 250 g", 13.5, 0.50),
        ("Colombia Huila 250 g", 12.0, 0.50),
        ("Brazil Cerrado 1 kg", 21.0, 0.46),
        ("Decaf Swiss water 250 g", 12.5, 0.52),
        ("Kenya AA 250 g", 15.0, 0.51),
    ],
    "Accessories": [
        ("Tamper 58 mm", 49.0, 0.35),
        ("Milk jug 600 ml", 29.0, 0.33),
        ("Knock box", 35.0, 0.34),
        ("Precision scale", 79.0, 0.40),
        ("Bottomless portafilter", 69.0, 0.38),
        ("Cleaning tablets (100)", 19.0, 0.30),
    ],
    "Service plans": [
        ("Annual service plan", 149.0, 0.25),
        ("Extended warranty 2 years", 99.0, 0.15),
    ],
}

FIRST_NAMES = [
    *("Anna", "Lukas", "Marie", "Jonas", "Léa", "Hugo", "Emma", "Daan", "Sanne", "Oliver", "Amelia", "Noah"),
    *("Olivia", "Liam", "Elsa", "Erik", "Sofia", "Felix", "Chloé", "Mila", "Finn", "Isla", "Lars", "Maja"),
]
LAST_NAMES = [
    *("Müller", "Schmidt", "Martin", "Bernard", "de Vries", "Jansen", "Smith", "Jones", "Johnson", "Brown"),
    *("Andersson", "Lindqvist", "Weber", "Dubois", "Bakker", "Taylor", "Garcia", "Nilsson", "Fischer", "Laurent"),
]
CAFE_WORDS = [
    *("Bean", "Crema", "Roast", "Grind", "Brew", "Cup", "Harbour", "Corner", "Morning", "Lantern", "Copper"),
    *("Oak", "Tulip", "Fika", "Velvet", "Station", "Atelier", "Union", "Little", "North"),
]
CAFE_KINDS = ["Coffee", "Café", "Espresso Bar", "Roasters", "Kitchen", "Coffee House"]


def month_index(day: date) -> int:
    return (day.year - FIRST_DAY.year) * 12 + day.month - FIRST_DAY.month


SCHEMA = """
CREATE TABLE fx_rates (
    currency TEXT NOT NULL, month TEXT NOT NULL, eur_per_unit REAL NOT NULL,
    PRIMARY KEY (currency, month)
);
CREATE TABLE products (
    product_id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    product_line TEXT NOT NULL, list_price_eur REAL NOT NULL, unit_cost_eur REAL NOT NULL
);
CREATE TABLE customers (
    customer_id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT NOT NULL,
    segment TEXT NOT NULL CHECK (segment IN ('Consumer', 'Business')), signup_date TEXT NOT NULL
);
CREATE TABLE orders (
    order_id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers,
    ordered_at TEXT NOT NULL,  -- UTC, 'YYYY-MM-DD HH:MM:SS'
    currency TEXT NOT NULL, channel TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('completed', 'refunded', 'cancelled'))
);
CREATE TABLE order_items (
    order_id INTEGER NOT NULL REFERENCES orders, line INTEGER NOT NULL,
    product_id INTEGER NOT NULL REFERENCES products, quantity INTEGER NOT NULL,
    unit_price REAL NOT NULL,  -- in the order's currency, after discount
    discount REAL NOT NULL,
    PRIMARY KEY (order_id, line)
) WITHOUT ROWID;
CREATE INDEX orders_by_time ON orders (ordered_at);
"""
# Which product lines consumers and businesses (cafés) buy.
LINE_WEIGHTS = {
    "Consumer": {
        "Espresso machines": 0.14,
        "Grinders": 0.14,
        "Coffee beans": 0.42,
        "Accessories": 0.24,
        "Service plans": 0.06,
    },
    "Business": {
        "Espresso machines": 0.10,
        "Grinders": 0.10,
        "Coffee beans": 0.55,
        "Accessories": 0.15,
        "Service plans": 0.10,
    },
}

Product = tuple[int, str, float]  # (id, line, list price in EUR)
Customer = tuple[int, str, str, date, float]  # (id, country, segment, signup, activity)


def main() -> None:
    rng = random.Random(SEED)
    DB_PATH.parent.mkdir(parents=True, exist_ok=True)
    DB_PATH.unlink(missing_ok=True)
    db = sqlite3.connect(DB_PATH)
    db.executescript(SCHEMA)
    fx = write_fx_rates(db, rng)
    products = write_products(db)
    customers = write_customers(db, rng)
    orders = write_orders(db, rng, fx, products, customers)
    db.commit()
    db.execute("VACUUM")
    db.close()
    print(f"wrote {DB_PATH.relative_to(HERE)}: {orders} orders, {DB_PATH.stat().st_size / 1024:.0f} KiB")
    write_targets()


def write_fx_rates(db: sqlite3.Connection, rng: random.Random) -> dict[tuple[str, int], float]:
    """EUR per unit of each currency for each month, drifting slowly with a little noise."""
    fx: dict[tuple[str, int], float] = {}
    for currency, (rate, drift) in FX_START.items():
        for m in range(month_index(END_DAY)):
            wobble = 0.0 if currency == "EUR" else rng.gauss(0, rate * 0.006)
            fx[currency, m] = round(rate * (1 + drift * m) + wobble, 5)
            year, month0 = divmod(FIRST_DAY.month - 1 + m, 12)
            db.execute(
                "INSERT INTO fx_rates VALUES (?, ?, ?)",
                (currency, f"{FIRST_DAY.year + year:04d}-{month0 + 1:02d}", fx[currency, m]),
            )
    return fx


def write_products(db: sqlite3.Connection) -> list[Product]:
    products: list[Product] = []
    for line_no, (line, items) in enumerate(PRODUCTS.items(), start=1):
        for item_no, (name, price, cost_share) in enumerate(items, start=1):
            product_id = len(products) + 1
            sku = f"{line[:3].upper()}-{line_no}{item_no:02d}"
            db.execute(
                "INSERT INTO products VALUES (?, ?, ?, ?, ?, ?)",
                (product_id, sku, name, line, price, round(price * cost_share, 2)),
            )
            products.append((product_id, line, price))
    return products


def write_customers(db: sqlite3.Connection, rng: random.Random) -> list[Customer]:
    customers: list[Customer] = []
    countries = list(COUNTRIES)
    weights = [COUNTRIES[c][1] for c in countries]
    for customer_id in range(1, 421):
        country = rng.choices(countries, weights)[0]
        business = rng.random() < COUNTRIES[country][2]
        if business:
            name = f"{rng.choice(CAFE_WORDS)} {rng.choice(CAFE_KINDS)}"
            name += {"DE": " GmbH", "GB": " Ltd", "US": " LLC"}.get(country, "")
        else:
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        # A third signed up during the year of orders, the rest before it.
        if rng.random() < 0.33:
            signup = FIRST_DAY + timedelta(days=rng.randrange((END_DAY - FIRST_DAY).days - 20))
        else:
            signup = date(2022, 1, 1) + timedelta(days=rng.randrange((FIRST_DAY - date(2022, 1, 1)).days))
        # A few very active customers (cafés re-ordering beans), many occasional ones.
        activity = min(25.0, 2 + 3 * rng.paretovariate(1.8)) if business else min(5.0, rng.paretovariate(2.5))
        segment = "Business" if business else "Consumer"
        db.execute(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?)",
            (customer_id, name, country, segment, signup.isoformat()),
        )
        customers.append((customer_id, country, segment, signup, activity))
    return customers


def write_orders(
    db: sqlite3.Connection,
    rng: random.Random,
    fx: dict[tuple[str, int], float],
    products: list[Product],
    customers: list[Customer],
) -> int:
    """Orders day by day, each with one to four lines; returns how many orders were written."""
    by_line: dict[str, list[Product]] = {}
    for product in products:
        by_line.setdefault(product[1], []).append(product)
    order_id = 0
    day = FIRST_DAY
    while day < END_DAY:
        m = month_index(day)
        # Seasonal, quieter at weekends, and about 20% growth over the year.
        weekday = 0.75 if day.weekday() >= 5 else 1.0
        expected = 8.0 * SEASON[day.month] * weekday * (1 + 0.2 * m / 11)
        for _ in range(_poisson(rng, expected)):
            customer_id, country, segment, _signup, _activity = rng.choices(
                customers, [c[4] if c[3] <= day else 0.0 for c in customers]
            )[0]
            order_id += 1
            currency = COUNTRIES[country][0]
            channel = (
                rng.choices(["sales_rep", "web"], [0.6, 0.4])[0]
                if segment == "Business"
                else rng.choices(["web", "marketplace"], [0.78, 0.22])[0]
            )
            status = rng.choices(["completed", "refunded", "cancelled"], [0.93, 0.04, 0.03])[0]
            hour = min(23, max(0, int(rng.gauss(14, 4))))
            ordered_at = datetime(day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60))
            db.execute(
                "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)",
                (order_id, customer_id, ordered_at.isoformat(" "), currency, channel, status),
            )
            write_order_items(db, rng, order_id, segment, fx[currency, m], currency, by_line)
        day += timedelta(days=1)
    return order_id


def write_order_items(
    db: sqlite3.Connection,
    rng: random.Random,
    order_id: int,
    segment: str,
    eur_per_unit: float,
    currency: str,
    by_line: dict[str, list[Product]],
) -> None:
    lines = rng.choices([1, 2, 3, 4], [0.5, 0.3, 0.15, 0.05])[0]
    chosen_lines = rng.choices(list(LINE_WEIGHTS[segment]), list(LINE_WEIGHTS[segment].values()), k=lines)
    used: set[int] = set()
    for line in chosen_lines:
        product_id, _, list_price = rng.choice(by_line[line])
        if product_id in used:
            continue
        used.add(product_id)
        if line == "Coffee beans":
            quantity = rng.randint(4, 20) if segment == "Business" else rng.randint(1, 4)
        elif line == "Accessories":
            quantity = rng.randint(1, 3)
        else:
            quantity = 1
        discount = rng.choices([0.0, 0.05, 0.10, 0.15], [0.7, 0.12, 0.12, 0.06])[0]
        if segment == "Business":
            discount = max(discount, 0.10)
        local_price = list_price / eur_per_unit * (1 - discount)
        # Prices end in .90 in the shop's own currency; SEK prices are whole crowns.
        unit_price = float(round(local_price)) if currency == "SEK" else math.floor(local_price) + 0.90
        db.execute(
            "INSERT INTO order_items VALUES (?, ?, ?, ?, ?, ?)",
            (order_id, len(used), product_id, quantity, unit_price, discount),
        )


def write_targets() -> None:
    months = [(FIRST_DAY.year + (FIRST_DAY.month - 1 + m) // 12, (FIRST_DAY.month - 1 + m) % 12 + 1) for m in range(12)]
    season_total = sum(SEASON[month] for _, month in months)
    with TARGETS_PATH.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["country", "month", "target_eur"])
        for country, annual in ANNUAL_TARGETS_EUR.items():
            for year, month in months:
                target = annual * SEASON[month] / season_total
                writer.writerow([country, f"{year:04d}-{month:02d}-01", round(target / 500) * 500])
    print(f"wrote {TARGETS_PATH.relative_to(HERE)}: {len(ANNUAL_TARGETS_EUR) * len(months)} targets")


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; fine for the small means here)."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


if __name__ == "__main__":
    main()
