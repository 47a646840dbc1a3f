"""Delivery at scale: 10,000 email recipients at a configured 1,000 per second, and 200 webhook endpoints.

Everything goes through the real engine (``deliver_run``: directory, ledger in a SQLite state store, batches, rate
limit, channels) to real peers on 127.0.0.1 in a child process of their own (aiosmtpd, and a threading HTTP server
that answers after ``--hook-latency``), which stamp every RCPT and request as it arrives. Each delivery runs in a
fresh child, so its CPU and peak RSS are its own. Cases, engine and baseline alternating from round to round:

- email: the engine at ``rate_limit: 1000`` (and, as information, with no effective limit) against a plain smtplib
  loop sending the same message bytes to the same recipients in envelopes of 100, unpaced, and (first round only)
  paced at 1,000/s by sleeping until each envelope's scheduled time;
- webhooks: the engine at ``concurrency: 5`` against requests + ThreadPoolExecutor(5) POSTing the same signed body.

Targets (issue 5): no 1-second window holds more RCPTs than the limit, every recipient and endpoint is reached
exactly once, at most 5 webhook requests at once. Prints a table and PASS/FAIL lines; exits 0 either way (2 when a
child fails or a delivery does not reach everyone, since the figures would then mean nothing).

    .venv/bin/python benchmarks/bench_delivery.py [--rounds 3] [--directory csv|yaml] [--json]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from childproc import ChildFailed, machine, run_child

HOST = "127.0.0.1"
RATE, BATCH, CONCURRENCY = 1000, 100, 5
SECRET = "whsec_" + base64.b64encode(b"bench_delivery signing key 2026").decode()
SENDER = "reports@example.com"
TEST_PEERS = Path(__file__).resolve().parent.parent / "tests" / "delivery"
SPEC = """\
apiVersion: reportctl/v1
name: delivery-bench
title: Delivery benchmark
sources:
  metrics: {{kind: sample, rows: 50, seed: 1}}
sections:
  - {{id: t, type: table, dataset: metrics}}
outputs: [csv]
delivery:
  - {{id: paced, channel: email, to: [team:everyone], host: {host}, port: {smtp}, security: none, from: {sender},
      rate_limit: {rate}, batch_size: {batch}, attach: []}}
  - {{id: unpaced, channel: email, to: [team:everyone], host: {host}, port: {smtp}, security: none, from: {sender},
      rate_limit: 1000000000, batch_size: {batch}, attach: []}}
  - {{id: hooks, channel: webhook, url: {urls}, secret: '{secret}', concurrency: {concurrency}}}
"""


def address(number: int) -> str:
    return f"user{number + 1:05d}@example.com"


# --- the peers: aiosmtpd and a webhook receiver, in a child process -------------------------------------------------


def serve_peers(latency: float) -> None:
    """Run both servers; on each 'collect' line print what they received since the last one, as JSON."""
    sys.path.insert(0, str(TEST_PEERS))
    from smtp_server import smtp_server

    hooks = HookReceiver(latency)
    with smtp_server() as smtp:
        print(json.dumps({"smtp": smtp.port, "http": hooks.port}), flush=True)
        for line in sys.stdin:
            if line.strip() != "collect":
                break
            handler = smtp.handler
            received = {
                "rcpt_times": handler.rcpt_times,
                "envelopes": [m.rcpt_tos for m in handler.messages],
                "message_bytes": [len(m.data) for m in handler.messages],
                **hooks.collect(),
            }
            handler.rcpt_times, handler.messages = [], []
            print(json.dumps(received), flush=True)
    hooks.stop()


class HookReceiver:
    """HTTP/1.1 server answering 200 after ``latency`` seconds; counts requests in flight, verifies signatures."""

    def __init__(self, latency: float) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from standardwebhooks.webhooks import Webhook

        receiver = self
        verifier = Webhook(SECRET)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers offer

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.begin()
                time.sleep(latency)
                try:
                    verifier.verify(body, dict(self.headers))
                    signed = True
                except Exception:
                    signed = False
                # the request leaves the count before its answer is written, so a client's next request cannot
                # overlap it here: the count never exceeds the client's true concurrency
                receiver.end(self.path, self.headers.get("webhook-id"), signed)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

        self._lock = threading.Lock()
        self._in_flight = 0
        self._most = 0
        self._requests: list[tuple[str, str | None, bool, float]] = []
        self._server = Server((HOST, 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.start()

    def begin(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._most = max(self._most, self._in_flight)

    def end(self, path: str, message_id: str | None, signed: bool) -> None:
        with self._lock:
            self._in_flight -= 1
            self._requests.append((path, message_id, signed, time.monotonic()))

    def collect(self) -> dict[str, Any]:
        with self._lock:
            requests, self._requests = self._requests, []
            most, self._most = self._most, 0
        return {"hooks": requests, "most_in_flight": most}

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


# --- the cases, each in a fresh child process -----------------------------------------------------------------------


def _memory(field: str) -> float:
    """VmRSS or VmHWM of this process in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def engine_case(root: Path, rendered: str, delivery: str) -> dict[str, Any]:
    """Deliver the rendered run again as a new run (a fresh ledger) through ``delivery`` only."""
    from dataclasses import replace

    from reportctl.delivery.engine import DeliveryTarget, deliver_run
    from reportctl.spec.loader import load_spec
    from reportctl.state import open_store

    loaded = load_spec(root / "specs" / "delivery.yaml")
    with open_store(loaded.project) as store:
        run = store.create_run(loaded.spec.name, spec_path=str(loaded.path), spec_hash=loaded.spec_hash)
        target = replace(DeliveryTarget.recorded(store.get_run(rendered)), run_id=run.id)
        said: list[float] = []
        before = _memory("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM: the peak from here on is the delivery's
        began = time.monotonic()  # CLOCK_MONOTONIC, the clock the peers stamp what they receive with
        report = deliver_run(store, loaded, target, only=[delivery], say=lambda _m: said.append(time.monotonic()))
        ended = time.monotonic()
        peak = _memory("VmHWM")
    return {
        "seconds": ended - began,
        "began": began,
        "said": said[0] if said else began,
        "ended": ended,
        "ledger": report.counts().get(delivery, {}),
        "rss_before": before,
        "rss_growth": peak - before,
    }


def plain_email(port: int, message: Path, count: int, rate: float) -> dict[str, Any]:
    """The same bytes to the same recipients in envelopes of 100 over one connection; ``rate`` 0 is unpaced."""
    import smtplib

    data = message.read_bytes()
    refused = 0
    began = time.perf_counter()
    with smtplib.SMTP(HOST, port) as smtp:
        smtp.ehlo()
        for number, start in enumerate(range(0, count, BATCH)):
            if rate:  # the naive pacing: each envelope at its scheduled time, start + n * 100 / rate
                time.sleep(max(0.0, began + number * BATCH / rate - time.perf_counter()))
            smtp.mail(SENDER)
            refused += sum(smtp.rcpt(address(i))[0] != 250 for i in range(start, min(start + BATCH, count)))
            refused += BATCH * (smtp.data(data)[0] != 250)
    return {"seconds": time.perf_counter() - began, "refused": refused}


def plain_webhooks(base: str, count: int, body_file: Path) -> dict[str, Any]:
    """requests and a ThreadPoolExecutor(5): one signed POST of the same body per URL, a session per thread."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import requests

    body = body_file.read_bytes()
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    local = threading.local()
    sessions: list[requests.Session] = []

    def post(number: int) -> int:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            sessions.append(session)
        message_id, timestamp = f"msg_bench_{number}", str(int(time.time()))
        signature = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": "v1," + base64.b64encode(signature).decode(),
        }
        with session.post(f"{base}/hook/{number}", data=body, headers=headers, timeout=10) as response:
            return response.status_code

    began = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        codes = list(pool.map(post, range(count)))
    for session in sessions:
        session.close()
    return {"seconds": time.perf_counter() - began, "refused": sum(code != 200 for code in codes)}


def run_case(arguments: list[str]) -> None:
    kind, *rest = arguments
    if kind == "engine":
        figures = engine_case(Path(rest[0]), rest[1], rest[2])
    elif kind == "email":
        figures = plain_email(int(rest[0]), Path(rest[1]), int(rest[2]), float(rest[3]))
    else:
        figures = plain_webhooks(rest[0], int(rest[1]), Path(rest[2]))
    print(json.dumps(figures))


# --- the parent: project, rounds, checks, table ---------------------------------------------------------------------


def write_project(root: Path, args: argparse.Namespace, ports: dict[str, int]) -> None:
    """reportctl.yaml, the directory (people.yaml or a CSV) with everyone in team ``everyone``, and the spec."""
    people = f"people.{args.directory}"
    state = f"sqlite:///{root / 'state.db'}"
    (root / "reportctl.yaml").write_text(f"timezone: UTC\nstate: {{url: '{state}'}}\ndirectory: {{file: {people}}}\n")
    numbers = range(args.recipients)
    if args.directory == "csv":
        rows = "".join(f"{address(i)},User {i + 1},everyone,\n" for i in numbers)
        (root / people).write_text("email,name,teams,lists\n" + rows)
    else:
        rows = "".join(f"  - {{email: {address(i)}, name: User {i + 1}, teams: [everyone]}}\n" for i in numbers)
        (root / people).write_text("people:\n" + rows)
    (root / "specs").mkdir()
    urls = json.dumps([f"http://{HOST}:{ports['http']}/hook/{i}" for i in range(args.endpoints)])
    settings = {"host": HOST, "sender": SENDER, "rate": RATE, "batch": BATCH, "concurrency": CONCURRENCY}
    spec = SPEC.format(smtp=ports["smtp"], urls=urls, secret=SECRET, **settings)
    (root / "specs" / "delivery.yaml").write_text(spec)


def prepare(root: Path) -> str:
    """Render the spec once (recorded in the store); write the engine's own message and webhook body for the loops."""
    from reportctl.delivery.base import DeliveryContext
    from reportctl.delivery.directory import load_directory
    from reportctl.delivery.email import EmailChannel
    from reportctl.delivery.message import attached_formats, compose_message, render_content
    from reportctl.delivery.webhook import WebhookChannel
    from reportctl.runner import default_run_time
    from reportctl.spec.loader import load_spec
    from reportctl.state import open_store
    from reportctl.state.recording import render_recorded

    loaded = load_spec(root / "specs" / "delivery.yaml")
    now = default_run_time()
    with open_store(loaded.project) as store:
        run = store.create_run(loaded.spec.name, spec_path=str(loaded.path), spec_hash=loaded.spec_hash, now=now)
        result = render_recorded(store, loaded, run.id, parameters={}, now=now)
    context = DeliveryContext(
        run_id=result.run_id,
        report=result.report,
        title=result.title or result.report,
        status="completed",
        error=None,
        parameters=result.parameters,
        now=now,
        timezone="UTC",
        directory=result.directory,
        artifacts=tuple(result.artifacts),
        project=loaded.project,
        people=load_directory(loaded.project),
    )
    email, _, hooks = loaded.deliveries
    channel = EmailChannel(email, context)
    limit = int(email.max_attachment_size)
    content = render_content(context, email, attach=attached_formats(email, context), max_attachment_size=limit)
    message = compose_message(context, email, channel.recipients()[:BATCH], content)
    (root / "message.eml").write_bytes(message.as_bytes())
    (root / "hook.json").write_bytes(WebhookChannel(hooks, context).body())
    return result.run_id


def busiest_second(times: list[float]) -> int:
    """The most RCPTs within any closed 1-second window [t, t + 1]."""
    times, most, first = sorted(times), 0, 0
    for last, moment in enumerate(times):
        while moment - times[first] > 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def email_checks(received: dict[str, Any], recipients: int) -> dict[str, Any]:
    reached = Counter(a for envelope in received["envelopes"] for a in envelope)
    expected = {address(i) for i in range(recipients)}
    times = received["rcpt_times"]
    return {
        "busiest_second": busiest_second(times),
        "first": min(times, default=0.0),
        "last": max(times, default=0.0),
        "envelopes": len(received["envelopes"]),
        "message_bytes": statistics.median(received["message_bytes"]) if received["message_bytes"] else 0,
        "exactly_once": set(reached) == expected and set(reached.values()) == {1},
    }


def hook_checks(received: dict[str, Any], endpoints: int) -> dict[str, Any]:
    hooks = received["hooks"]
    paths = Counter(path for path, _, _, _ in hooks)
    return {
        "most_in_flight": received["most_in_flight"],
        "exactly_once": paths == Counter(f"/hook/{i}" for i in range(endpoints)),
        "all_signed": bool(hooks) and all(signed for _, _, signed, _ in hooks),
        "distinct_ids": len({message_id for _, message_id, _, _ in hooks}),
        "first": min((t for *_, t in hooks), default=0.0),
        "last": max((t for *_, t in hooks), default=0.0),
    }


EMAIL_CASES = ("engine 1000/s", "smtplib paced", "engine no limit", "smtplib no limit")
HOOK_CASES = ("engine webhooks", "requests + pool")
ONCE = ("smtplib paced",)
"""Run in the first round only: its time is its sleeps, and it is shown for its busiest second."""


class Bench:
    """The peers' child, and one child per case whose figures are joined with what the peers received."""

    def __init__(self, root: Path, args: argparse.Namespace) -> None:
        self.root, self.args = root, args
        self.peers = subprocess.Popen(
            [sys.executable, __file__, "--peers", str(args.hook_latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.peers.stdout is not None
        self.ports: dict[str, int] = json.loads(self.peers.stdout.readline())
        self.rendered = ""

    def received(self) -> dict[str, Any]:
        assert self.peers.stdin is not None and self.peers.stdout is not None
        self.peers.stdin.write("collect\n")
        self.peers.stdin.flush()
        answer: dict[str, Any] = json.loads(self.peers.stdout.readline())
        return answer

    def run(self, name: str) -> dict[str, Any]:
        args, root, smtp = self.args, self.root, str(self.ports["smtp"])
        plain_email = ["email", smtp, str(root / "message.eml"), str(args.recipients)]
        hooks = f"http://{HOST}:{self.ports['http']}"
        command = {
            "engine 1000/s": ["engine", str(root), self.rendered, "paced"],
            "engine no limit": ["engine", str(root), self.rendered, "unpaced"],
            "smtplib no limit": [*plain_email, "0"],
            "smtplib paced": [*plain_email, str(RATE)],
            "engine webhooks": ["engine", str(root), self.rendered, "hooks"],
            "requests + pool": ["hooks", hooks, str(args.endpoints), str(root / "hook.json")],
        }[name]
        process, output = run_child([sys.executable, __file__, "--case", *command], root / "case.log")
        figures = {**json.loads(output.strip().splitlines()[-1]), **process}
        received = self.received()
        if name in HOOK_CASES:
            return {**figures, **hook_checks(received, args.endpoints)}
        return {**figures, **email_checks(received, args.recipients)}

    def close(self) -> None:
        assert self.peers.stdin is not None
        self.peers.stdin.close()
        self.peers.wait(timeout=30)


def measure(args: argparse.Namespace) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """Every case ``args.rounds`` times (ONCE cases once), engine first in even rounds, baselines first in odd."""
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in EMAIL_CASES + HOOK_CASES}
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as folder:
        root = Path(folder)
        bench = Bench(root, args)
        try:
            write_project(root, args, bench.ports)
            bench.rendered = prepare(root)
            message_bytes = len((root / "message.eml").read_bytes())
            for number in range(args.rounds):
                for cases in (EMAIL_CASES, HOOK_CASES):
                    for name in cases if number % 2 == 0 else cases[::-1]:
                        if number == 0 or name not in ONCE:
                            samples[name].append(bench.run(name))
        finally:
            bench.close()
    return samples, message_bytes


def summarise(samples: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> dict[str, Any]:
    """Per case: (median, min) of the times, medians of memory and CPU, the worst window; and the verdicts."""

    def pair(values: list[float]) -> tuple[float, float]:
        return statistics.median(values), min(values)

    summary: dict[str, Any] = {}
    for name, runs in samples.items():
        count = args.endpoints if name in HOOK_CASES else args.recipients
        seconds, span = pair([s["seconds"] for s in runs]), pair([s["last"] - s["first"] for s in runs])
        case = summary[name] = {
            "seconds": seconds,
            "per_second": count / seconds[0],
            "server_span": span,
            "server_per_second": count / span[0],
            "peak_rss_mib": statistics.median(s["peak_rss_mib"] for s in runs),
            "cpu": statistics.median(s["cpu"] for s in runs),
        }
        if name in HOOK_CASES:
            case["most_in_flight"] = max(s["most_in_flight"] for s in runs)
        else:
            case["busiest_second"] = max(s["busiest_second"] for s in runs)
        if name.startswith("engine"):
            case["rss_growth_mib"] = statistics.median(s["rss_growth"] for s in runs)
            case["phases"] = {
                "directory": pair([s["said"] - s["began"] for s in runs]),
                "to_first": pair([s["first"] - s["said"] for s in runs]),
                "span": span,
                "after_last": pair([s["ended"] - s["last"] for s in runs]),
            }
    paced, hooks = samples["engine 1000/s"], samples["engine webhooks"]
    envelopes = -(-args.recipients // BATCH)
    verdicts = {
        f"rate limit held: no 1-second window over {RATE:,} RCPTs": all(s["busiest_second"] <= RATE for s in paced),
        f"every recipient exactly once, {envelopes} envelopes, ledger all sent": all(
            s["exactly_once"] and s["envelopes"] == envelopes and s["ledger"] == {"sent": args.recipients}
            for s in paced
        ),
        "every endpoint one signed POST, ledger all sent": all(
            s["exactly_once"] and s["all_signed"] and s["ledger"] == {"sent": args.endpoints} for s in hooks
        ),
        f"at most {CONCURRENCY} webhook requests at once at the server": all(
            s["most_in_flight"] <= CONCURRENCY for s in hooks
        ),
    }
    return {"cases": summary, "verdicts": verdicts}


def incomplete(samples: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> list[str]:
    """Runs that did not reach everyone (engine or baseline): their figures mean nothing."""
    broken = []
    for name, runs in samples.items():
        count = args.endpoints if name in HOOK_CASES else args.recipients
        for s in runs:
            if not s["exactly_once"] or s.get("refused") or s.get("ledger", {"sent": count}) != {"sent": count}:
                broken.append(f"{name}: ledger {s.get('ledger')}, refused {s.get('refused')}, once {s['exactly_once']}")
    return broken


def show(result: dict[str, Any], message_bytes: int, args: argparse.Namespace) -> None:
    cases = result["cases"]
    print(
        f"{args.recipients:,} email recipients (team:everyone from people.{args.directory}, envelopes of {BATCH}, "
        f"{message_bytes:,} bytes each); {args.endpoints} webhook endpoints answering after "
        f"{args.hook_latency * 1000:g} ms; median / min of {args.rounds} rounds (smtplib paced: 1)"
    )
    header = (
        f"{'seconds':>14}{'per s':>8}{'at server':>16}{'per s':>8}{{:>14}}{'peak RSS':>10}{'growth':>8}{'CPU s':>7}"
    )
    for title, names, worst, label in (
        ("email", EMAIL_CASES, "busiest_second", "busiest 1 s"),
        ("webhooks", HOOK_CASES, "most_in_flight", "most at once"),
    ):
        print(f"\n{title:<18}" + header.format(label))
        for name in names:
            c = cases[name]
            growth = f"{c['rss_growth_mib']:.0f} MiB" if "rss_growth_mib" in c else "-"
            print(
                f"{name:<18}{c['seconds'][0]:>7.2f} /{c['seconds'][1]:>5.2f}{c['per_second']:>8,.0f}"
                f"{c['server_span'][0]:>9.2f} /{c['server_span'][1]:>5.2f}{c['server_per_second']:>8,.0f}"
                f"{c[worst]:>14,}{c['peak_rss_mib']:>6.0f} MiB{growth:>8}{c['cpu']:>7.2f}"
            )
    print(
        f"\nthe fastest {RATE:,}/s allows: {args.recipients / RATE - 1:g} s from first to last RCPT (the first "
        f"{RATE:,} go at once); webhooks at {CONCURRENCY} at once: "
        f"{args.endpoints * args.hook_latency / CONCURRENCY:.2f} s"
    )
    print(
        "engine phases (median s): until the first delivery starts | to first RCPT/answer | first to last | after last"
    )
    for name in ("engine 1000/s", "engine no limit", "engine webhooks"):
        phases = cases[name]["phases"]
        print(
            f"  {name:<18}" + " | ".join(f"{phases[p][0]:.2f}" for p in ("directory", "to_first", "span", "after_last"))
        )
    print()
    for verdict, passed in result["verdicts"].items():
        print(f"{verdict:<70}{'PASS' if passed else 'FAIL'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=200)
    parser.add_argument("--directory", choices=("csv", "yaml"), default="csv", help="people.csv or people.yaml")
    parser.add_argument("--hook-latency", type=float, default=0.02, help="seconds each webhook answer takes")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--peers", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--case", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peers is not None:
        serve_peers(args.peers)
        return 0
    if args.case:
        run_case(args.case)
        return 0
    began = time.perf_counter()
    try:
        samples, message_bytes = measure(args)
    except ChildFailed as exc:
        print(f"a case failed, so there are no figures: {exc}", file=sys.stderr)
        return 2
    result = summarise(samples, args)
    broken = incomplete(samples, args)
    if args.json:
        from importlib.metadata import version

        versions = {name: version(name) for name in ("aiosmtpd", "requests", "sqlalchemy")}
        settings = {k: v for k, v in vars(args).items() if k not in ("json", "peers", "case")}
        document = {
            "machine": machine(**versions),
            "settings": {**settings, "message_bytes": message_bytes},
            **result,
            "samples": samples,
            "incomplete": broken,
            "total_seconds": time.perf_counter() - began,
        }
        print(json.dumps(document))
    else:
        show(result, message_bytes, args)
        print(f"\ntotal {time.perf_counter() - began:.0f} s")
    for problem in broken:
        print(f"incomplete delivery, so the figures mean nothing: {problem}", file=sys.stderr)
    return 2 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
