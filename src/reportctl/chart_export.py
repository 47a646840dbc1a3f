"""Every chart of a run exported to PNG and SVG in one headless Chromium, driven by kaleido.

Identical figures are exported once. PNG bytes from Chromium are stable; plotly names SVG clip paths after a
random id, which is replaced by a hash of the picture so SVGs are stable too. Without a browser nothing starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from reportctl.charts import ChartError, build_figure, figure_json
from reportctl.document import ChartBlock, ChartImage
from reportctl.errors import exception_line
from reportctl.formats import DEFAULT_LOCALE

BROWSER_ENV = "REPORTCTL_BROWSER"
BROWSER_NAMES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
IMAGE_FORMATS = frozenset({"png", "svg"})
BROWSER_TIMEOUT_SECONDS = 60
"""How long the browser may take to start, to export one chart, or to close, before the run gives up on it."""


class BrowserMissingError(ChartError):
    """No Chrome/Chromium to export charts with."""

    def __init__(self) -> None:
        super().__init__(
            "charts need Chromium, which was not found; install it with `sudo apt-get install "
            f"chromium-headless-shell` (Debian/Ubuntu), or set {BROWSER_ENV} to a Chrome/Chromium binary"
        )


def find_browser() -> Path | None:
    """The Chrome/Chromium to export with: $REPORTCTL_BROWSER, else one on PATH, else kaleido's downloaded one."""
    explicit = os.environ.get(BROWSER_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        return path if path.is_file() and os.access(path, os.X_OK) else None
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    try:
        from choreographer.cli._cli_utils import get_chrome_download_path, get_old_chrome_download_path
    except ImportError:  # pragma: no cover - another choreographer layout
        return None
    for downloaded in (get_chrome_download_path(mkdir=False), get_old_chrome_download_path()):  # type: ignore[no-untyped-call]
        if downloaded is not None and downloaded.is_file() and os.access(downloaded, os.X_OK):
            return Path(downloaded)
    return None


def check_browser() -> tuple[bool, str]:
    """For `reportctl doctor`: whether charts can be exported here, in one line."""
    import subprocess

    path = find_browser()
    if path is None:
        return False, str(BrowserMissingError())
    try:
        version = subprocess.run(
            [str(path), "--version"], check=False, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        version = ""
    probe = ChartImage(0, 0)
    try:
        import polars as pl

        block = ChartBlock("doctor", None, "bar", pl.DataFrame({"x": ["a"], "y": [1]}), "x", ("y",))
        probe = export_charts([block], {"png"}, timezone="UTC", width=60, height=40, scale=1)["doctor"]
    except ChartError as exc:
        return False, f"{path}: {exc}"
    if not (probe.png or b"").startswith(b"\x89PNG"):
        return False, f"{path}: the test export gave no PNG"
    return True, f"{version or 'browser'} at {path} exports charts"


# -- export --------------------------------------------------------------------------------------------------


def export_charts(
    blocks: Sequence[ChartBlock],
    formats: Collection[str],
    *,
    timezone: str,
    locale: str = DEFAULT_LOCALE,
    width: int = 900,
    height: int = 450,
    scale: int = 2,
    stats: dict[str, float] | None = None,
) -> dict[str, ChartImage]:
    """Every chart as PNG (at ``scale``) and/or SVG, keyed by block id, all in one browser session.

    Charts with the same figure are exported once. ``stats`` (when given) receives the seconds spent starting
    the browser and exporting, and the number of figures and of exports.
    """
    wanted = sorted(set(formats))
    unknown = [f for f in wanted if f not in IMAGE_FORMATS]
    if unknown:
        raise ChartError(f"unknown chart image format {unknown[0]!r}; valid formats: png, svg")
    browser = find_browser()
    if browser is None:
        raise BrowserMissingError
    if not blocks or not wanted:
        return {}
    unique: dict[str, dict[str, Any]] = {}
    owners: dict[str, list[str]] = {}
    key_of: dict[str, str] = {}
    for block in blocks:
        try:
            # every writer that embeds the picture puts the section's title above it, so the picture has none
            key = figure_json(build_figure(dataclasses.replace(block, title=None), timezone, locale))
        except ChartError:
            raise
        except Exception as exc:
            raise ChartError(f"chart '{block.id}': cannot build the figure: {exception_line(exc)}") from exc
        key_of[block.id] = key
        unique.setdefault(key, json.loads(key))
        owners.setdefault(key, []).append(block.id)
    jobs = [(owners[key][0], key, figure) for key, figure in unique.items()]
    timings: dict[str, float] = {}
    results = _in_own_loop(_export_session(browser, jobs, wanted, width, height, scale, timings))
    images = {
        key: ChartImage(width, height, png=images.get("png"), svg=images.get("svg"), png_scale=scale)
        for key, images in results.items()
    }
    if stats is not None:
        stats.update(timings, figures=float(len(blocks)), exported=float(len(jobs)))
    return {block.id: images[key_of[block.id]] for block in blocks}


async def _export_session(
    browser: Path,
    jobs: list[tuple[str, str, dict[str, Any]]],
    formats: list[str],
    width: int,
    height: int,
    scale: int,
    timings: dict[str, float],
) -> dict[str, dict[str, bytes]]:
    import kaleido

    started = time.perf_counter()
    try:
        session = kaleido.Kaleido(path=str(browser), mathjax=False, timeout=BROWSER_TIMEOUT_SECONDS)
    except Exception as exc:
        raise ChartError(f"cannot start the browser {browser}: {exception_line(exc)}") from exc
    try:
        await asyncio.wait_for(session.open(), BROWSER_TIMEOUT_SECONDS)
    except Exception as exc:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.close(), BROWSER_TIMEOUT_SECONDS)
        reason = _silent() if isinstance(exc, TimeoutError) else exception_line(exc)
        raise ChartError(f"cannot start the browser {browser}: {reason}") from exc
    timings["browser_start"] = time.perf_counter() - started
    started = time.perf_counter()
    results: dict[str, dict[str, bytes]] = {}
    try:
        for chart_id, key, figure in jobs:
            results[key] = {}
            for fmt in formats:
                opts = {"format": fmt, "width": width, "height": height, "scale": scale if fmt == "png" else 1}
                try:
                    # bounded here too: a browser that died leaves kaleido waiting for a tab before its own timeout
                    data: bytes = await asyncio.wait_for(session.calc_fig(figure, opts=opts), BROWSER_TIMEOUT_SECONDS)
                except TimeoutError as exc:
                    raise ChartError(f"chart '{chart_id}': {fmt} export failed: {_silent()}") from exc
                except Exception as exc:
                    raise ChartError(f"chart '{chart_id}': {fmt} export failed: {exception_line(exc)}") from exc
                results[key][fmt] = _stable_svg(data) if fmt == "svg" else data
    finally:
        timings["export"] = time.perf_counter() - started
        # a browser that died mid-export never answers the close: the files are done, do not wait for it
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.close(), BROWSER_TIMEOUT_SECONDS)
    return results


def _silent() -> str:
    return f"the browser did not answer within {BROWSER_TIMEOUT_SECONDS} s"


def _in_own_loop(coroutine: Any) -> Any:
    """Run ``coroutine`` in a fresh event loop on its own thread, so callers inside a loop can export too."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as exc:
            outcome["error"] = exc

    # a daemon thread: a browser that hangs past every timeout must still not keep the process alive at exit
    thread = threading.Thread(target=run, name="reportctl-charts", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _stable_svg(svg: bytes) -> bytes:
    """Plotly names its clip paths and defs after a random per-render id; fix it, so equal charts give equal files."""
    found = re.search(rb'<defs id="defs-([0-9a-f]+)"', svg)
    if not found:
        return svg
    uid = found.group(1)
    stable = hashlib.sha256(svg.replace(uid, b"")).hexdigest()[: len(uid)].encode()
    return re.sub(
        rb'(id="|url\([\'"]?#|href="#)([^"\'\)]*)', lambda m: m.group(1) + m.group(2).replace(uid, stable), svg
    )
