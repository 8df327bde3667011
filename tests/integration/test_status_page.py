"""The status page in a real headless Chromium (Debian's `chromium`, driven by the `playwright` package).

Two pages: one served by a stub from a recorded /status (fast; verdicts, a node out of sync, formats),
and the real one, of a `gradswarm node run` alone on its dev chain, watched live for a few rounds.
On the page, every number the test compares carries its raw value in a data attribute, every plotted
point is a <circle data-series data-round data-value>, and <body data-status-now> names the /status
(by its `now`) the page last drew; the test captures every /status the page received, so it compares
the page with exactly the /status it was drawn from, and then with a fresh GET of its own.

GRADSWARM_SCREENSHOT=docs/status-page.png also writes the live page's screenshot there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from node.status.page import render_page
from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
SERIES = {
    "train_loss": lambda r: r.get("train_loss"),
    "eval_loss": lambda r: r.get("eval_loss"),
    "upload_bytes": lambda r: r["upload_payload_bytes"] + r["upload_state_bytes"],  # in every report (RoundReport's defaults)
    "compute_utilization": lambda r: r.get("compute_utilization"),
}
TABLE_ROWS = 16  # page.js shows the last 16 rounds, newest first

# What the page shows, read in one go (JS runs to completion, so it is one rendering).
READ_PAGE = """() => {
  const q = (s) => [...document.querySelectorAll(s)];
  const val = (id) => document.getElementById(id).dataset.value;
  return {
    now: Number(document.body.dataset.statusNow),
    round: val("round"), uid: val("uid"), stake: val("stake"),
    peers: [val("peers-connected"), val("peers-bound")],
    phase: document.getElementById("phase").textContent,
    health: document.getElementById("health").dataset.status,
    hotkey: document.getElementById("hotkey").title,
    points: Object.fromEntries(["train_loss", "eval_loss", "upload_bytes", "compute_utilization"].map(
      (k) => [k, q(`circle[data-series="${k}"]`).map((c) => [Number(c.dataset.round), Number(c.dataset.value)])])),
    rows: q("#rounds tbody tr[data-round]").map((tr) => Object.fromEntries(
      [...tr.querySelectorAll("td[data-field]")].map((td) => [td.dataset.field, td.dataset.value ?? null]))),
    given: q("#verdicts-given li[data-who]").map((li) => [li.dataset.who, Number(li.dataset.pass), Number(li.dataset.fail)]),
    received: q("#verdicts-received li[data-who]").map((li) => [li.dataset.who, Number(li.dataset.pass), Number(li.dataset.fail)]),
  };
}"""


def chromium_path() -> str:
    """Debian's chromium, installed with apt-get when missing (playwright never downloads a browser here)."""
    found = shutil.which("chromium")
    if found:
        return found
    if not shutil.which("apt-get"):
        pytest.skip("no chromium and no apt-get to install it: the status page test needs Debian's chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=600, env=env)
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.skip(f"could not install chromium ({' '.join(step)}: {e})")
        if done.returncode != 0:
            pytest.skip(f"could not install chromium ({' '.join(step)} exited {done.returncode}): {done.stderr[-500:]}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get installed chromium but no `chromium` is on PATH")
    return found


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the status page test needs playwright (pip install -e '.[test]')")
    executable = chromium_path()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


class Watched:
    """A page with its console errors, uncaught exceptions, requests and the /status bodies it got (by `now`)."""

    def __init__(self, browser, base: str, **context):
        self.base = base
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, **context)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.statuses: dict[float, dict] = {}
        self.page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.route(base + "/status", self._capture)

    def _capture(self, route) -> None:
        response = route.fetch()
        body = response.json()
        self.statuses[float(body["now"])] = body
        route.fulfill(response=response)

    def open(self) -> None:
        self.page.goto(self.base + "/")
        self.page.wait_for_function("() => document.body.dataset.statusNow !== undefined")

    def read(self) -> tuple[dict, dict]:
        """What the page shows now, and the /status it drew that from."""
        shown = self.page.evaluate(READ_PAGE)
        return shown, self.statuses[shown["now"]]

    def close(self) -> None:
        self.context.close()


def check_page_shows(shown: dict, status: dict) -> None:
    """Every number on the page is the one in `status`, every report with a field is a point."""
    reports = status["reports"]
    identity = status["identity"]
    assert shown["round"] == str(status["round"]) and shown["phase"] == status["phase"]
    assert shown["health"] == status["health"]["status"]
    assert shown["hotkey"] == identity["hotkey"] and shown["uid"] == json.dumps(identity["uid"])
    assert shown["peers"] == [str(status["peers"]["connected"]), str(status["peers"]["bound"])]
    if identity["stake"] is not None:
        assert float(shown["stake"]) == identity["stake"]
    for key, value in SERIES.items():
        expected = sorted((r["round"], value(r)) for r in reports if value(r) is not None)
        assert sorted(map(tuple, shown["points"][key])) == expected, key
    rows = reports[-TABLE_ROWS:][::-1]
    assert [int(row["round"]) for row in shown["rows"]] == [r["round"] for r in rows]
    for row, report in zip(shown["rows"], rows, strict=True):
        for field in ("train_loss", "eval_loss", "compute_utilization", "manifest_entries"):
            raw = report.get(field)
            assert (None if row[field] is None else float(row[field])) == raw, (report["round"], field)
        assert float(row["upload_bytes"]) == SERIES["upload_bytes"](report)
        assert row["in_manifest"] == str(identity["hotkey"] in report["manifest_hotkeys"]).lower()
        assert row["in_sync"] == str(report["in_sync"]).lower()


def test_the_page_is_one_self_contained_document():
    html = render_page().decode("utf-8")
    assert html.startswith("<!doctype html>") and "/*PAGE_" not in html
    assert "connect-src 'self'" in html and "default-src 'none'" in html
    # no script, style, image or font from anywhere: the only URLs are a data: icon and the SVG namespace
    assert re.findall(r"(?:src|href)\s*=\s*[\"']([^\"']*)", html) == ["data:,"]
    assert set(re.findall(r"https?://[^\s\"'`)]+", html)) == {"http://www.w3.org/2000/svg"}


# --- the page against a recorded /status ------------------------------------------------------------

ME = "5GNVDSx6mVbQcK4xL928xLR2kHpnQUwnEcghD48fu6iHeptG"
OTHER = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
THIRD = "5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y"


def recorded_status(n: int = 30) -> dict:
    """A validator's /status in round n: two peers, verdicts both ways, the last round out of sync."""
    reports = []
    for r in range(n):
        report = {
            "round": r, "hotkey": ME, "t_start": 1.0e9 + 12 * r, "t_end": 1.0e9 + 12 * r + 11,
            "manifest_entries": 3 if r else 1, "manifest_hotkeys": [ME, OTHER, THIRD] if r % 7 != 3 else [OTHER, THIRD],
            "in_sync": r != n - 1, "state_hash": f"{r:064x}", "upload_payload_bytes": 41850 + 13 * r,
            "upload_state_bytes": 0 if r != 5 else 4_461_056, "verdicts": [[r, OTHER, "pass"], [r, THIRD, "fail" if r % 4 == 1 else "pass"]],
            "rss_bytes": 1 << 30, "peak_rss_bytes": 1 << 30,
        }  # fmt: skip
        if r % 9 != 4:  # some rounds this node sat out training
            report.update(train_loss=5.2 * 0.93**r + 0.0123456789, compute_utilization=0.9412 + r / 10000, inner_steps=77)
        if r % 2 == 0:
            report["eval_loss"] = 5.5 * 0.94**r
        reports.append(report)
    return {
        "identity": {"hotkey": ME, "uid": 0, "peer_id": "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo", "run_id": "ab" * 32,
                     "run_name": "demo", "stake": 1000.0, "validator_permit": True},
        "now": 1.0e9 + 12 * n + 3.25, "round": n, "phase": "train", "round_seconds": 12.0,
        "health": {"status": "out_of_sync", "round": n - 1, "last_round_end_age_seconds": 4.25, "in_sync": False},
        "peers": {"connected": 2, "bound": 2},
        "reports": reports[-64:],
        "verdicts_received": [{"round": r, "validator": OTHER, "verdict": "pass"} for r in range(n - 5, n)],
    }  # fmt: skip


@pytest.fixture
def stub():
    """A server of `/` (the real page) and `/status` (recorded); anything else is a 404."""
    status = recorded_status()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            path = urllib.parse.urlsplit(self.path).path
            pages = {"/": ("text/html; charset=utf-8", render_page()), "/status": ("application/json", json.dumps(status).encode())}
            kind, body = pages.get(path, ("text/plain", b"not found"))
            self.send_response(200 if path in pages else 404)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", status
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_page_draws_a_recorded_status(browser, stub, tmp_path, scheme):
    base, status = stub
    watched = Watched(browser, base, color_scheme=scheme)
    try:
        watched.open()
        shown, drawn_from = watched.read()
        assert drawn_from == status
        check_page_shows(shown, status)
        assert len(shown["rows"]) == TABLE_ROWS
        # verdicts this node reached, per subject; the ones it received, per validator
        assert sorted(shown["given"]) == [[OTHER, 30, 0], [THIRD, 22, 8]]
        assert shown["received"] == [[OTHER, 5, 0]]
        page = watched.page
        assert page.locator("#health").get_attribute("class") == "badge bad"
        assert page.locator("#health-text").text_content() == "Out of sync"
        # formats: losses to 4 places, bytes in IEC units, utilization in percent
        newest = page.locator("#rounds tbody tr").first
        assert newest.locator('td[data-field="train_loss"]').text_content() == f"{status['reports'][-1]['train_loss']:.4f}"
        assert page.locator('#rounds tr[data-round="5"] td[data-field="upload_bytes"]').count() == 0  # past the last 16
        assert newest.locator('td[data-field="upload_bytes"]').text_content() == "41.2 KiB"
        assert newest.locator('td[data-field="in_sync"]').text_content() == "no"
        page.screenshot(path=str(tmp_path / f"recorded-{scheme}.png"), full_page=True)
        # it keeps polling, and nothing but the page and /status was requested
        with page.expect_request(base + "/status", timeout=5000):
            pass
        assert {urllib.parse.urlsplit(u).path for u in watched.requests} == {"/", "/status"}
        assert all(u.startswith(base + "/") for u in watched.requests)
        assert not watched.errors, watched.errors
    finally:
        watched.close()


def test_the_page_says_when_the_node_stops_answering(browser, stub):
    base, _ = stub
    watched = Watched(browser, base)
    try:
        watched.open()
        watched.page.unroute(base + "/status")
        watched.page.route(base + "/status", lambda route: route.abort())
        watched.page.wait_for_function("() => document.getElementById('health').dataset.status === 'unreachable'", timeout=8000)
        assert watched.page.locator("#health-text").text_content() == "Unreachable"
        assert watched.page.locator("#rounds tbody tr[data-round]").count() == TABLE_ROWS  # the last figures stay
        assert not [e for e in watched.errors if "pageerror" in e], watched.errors
    finally:
        watched.close()


# --- the page of a real node ------------------------------------------------------------------------


def test_the_page_follows_a_lone_node(browser, tmp_path):
    """A real node alone on its dev chain: the page loads before round 0 ends, follows the rounds live,
    and shows exactly the /status it was drawn from, which is what a GET of our own returns too."""
    from tests.support.lone_node import start_lone_node

    screenshot_to = os.environ.get("GRADSWARM_SCREENSHOT", "")
    wanted = 6 if screenshot_to else 2  # a picture for the docs is worth a few more rounds
    node = start_lone_node(tmp_path / "lone", rounds=wanted + 2)
    watched = None
    try:
        node.wait_for_reports(0, timeout=90)  # its status server answers
        watched = Watched(browser, node.url)
        watched.open()
        shown, drawn_from = watched.read()
        check_page_shows(shown, drawn_from)  # also before any round ended: empty charts, no rows
        watched.page.wait_for_function(f"() => Number(document.body.dataset.reports) >= {wanted}", timeout=60_000 + 15_000 * wanted)
        shown, drawn_from = watched.read()
        check_page_shows(shown, drawn_from)
        reports = drawn_from["reports"]
        assert drawn_from["identity"]["hotkey"] == node.hotkey and drawn_from["identity"]["validator_permit"]
        assert drawn_from["health"]["status"] == "ok" and shown["health"] == "ok"
        assert all(len(shown["points"][k]) == len(reports) for k in ("eval_loss", "upload_bytes"))
        # a /status of our own: the page, one poll later, agrees with it
        fresh = node.status()
        watched.page.wait_for_function(f"() => Number(document.body.dataset.statusNow) >= {fresh['now']!r}", timeout=10_000)
        shown, drawn_from = watched.read()
        assert shown["round"] in (str(fresh["round"]), str(fresh["round"] + 1))  # a round may have begun since
        assert drawn_from["reports"][: len(fresh["reports"])] == fresh["reports"]
        check_page_shows(shown, drawn_from)
        # read-only, no secrets: neither the wallet's nor the data dir's path is on the page
        content = watched.page.content()
        assert str(tmp_path) not in content and "wallets" not in content
        assert {urllib.parse.urlsplit(u).path for u in watched.requests} == {"/", "/status"}
        assert not watched.errors, watched.errors
        watched.page.screenshot(path=str(tmp_path / "status-page.png"), full_page=True)
        if screenshot_to:
            target = Path(screenshot_to)
            target = target if target.is_absolute() else REPO / target
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp_path / "status-page.png", target)
    finally:
        if watched:
            watched.close()
        node.stop()
