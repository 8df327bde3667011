"""`python -m devnet.screenshot`: a picture of a running demo's status page, for the README.

It waits until node0 of a demo under `--out` has finished `--after` rounds,
then loads its page in headless Chromium (Debian's `chromium`, driven by
`playwright`, which downloads nothing) and saves a full-page PNG. Run it beside
a demo:

    gradswarm demo --peers 3 --rounds 12 --out demo-out &
    python -m devnet.screenshot --out demo-out --after 11 --png docs/status-page.png
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from node.round.report import read_reports


def wait_for_rounds(node: Path, rounds: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while len(read_reports(node / "rounds.jsonl")) < rounds:
        if time.time() > deadline:
            raise TimeoutError(f"{node} finished fewer than {rounds} rounds in {timeout:.0f} s")
        time.sleep(1.0)


def page_url(out: Path, node: str, timeout: float) -> str:
    """The node's page as the demo recorded it (summary.json is written at the end, so read the run file)."""
    deadline = time.time() + timeout
    run = out / "nodes" / node / "run.toml"
    while not run.exists():
        if time.time() > deadline:
            raise TimeoutError(f"no {run}")
        time.sleep(1.0)
    from node.config import load_run_file

    return f"http://{load_run_file(run)[1].http}/"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the demo's --out folder")
    parser.add_argument("--node", default="node0")
    parser.add_argument("--after", type=int, default=11, help="rounds node0 must have finished first")
    parser.add_argument("--png", required=True)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    browser_path = shutil.which("chromium")
    if browser_path is None:
        print("error: no chromium on PATH (apt-get install chromium)", file=sys.stderr)
        return 2
    out = Path(args.out)
    url = page_url(out, args.node, args.timeout)
    wait_for_rounds(out / "nodes" / args.node, args.after, args.timeout)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url)
        page.wait_for_selector("circle[data-round]")
        time.sleep(3.0)  # one more poll, so the newest round is drawn
        page.screenshot(path=args.png, full_page=True)
        browser.close()
    print(json.dumps({"url": url, "png": args.png, "console_errors": errors}))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
