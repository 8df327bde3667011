"""The status page served at `/`: one self-contained HTML document, its styles and scripts inlined.

The assets live in node/status/static/ (page.html, page.css, chart.js, page.js). Inlining them keeps
the server to a single route for the page and the page free of any further request but its polls of
`/status`; its Content-Security-Policy forbids everything else (no CDN, no external hosts).
"""

from __future__ import annotations

import functools
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
SCRIPTS = ("chart.js", "page.js")


@functools.cache
def render_page() -> bytes:
    """The page as UTF-8 HTML bytes (the same for every request: it is the JS that fetches the data)."""
    html = (STATIC / "page.html").read_text(encoding="utf-8")
    css = (STATIC / "page.css").read_text(encoding="utf-8")
    js = "\n".join((STATIC / name).read_text(encoding="utf-8") for name in SCRIPTS)
    if "</script" in js.lower() or "</style" in css.lower():
        raise ValueError("an inlined asset would close its own tag")
    html = html.replace("/*PAGE_CSS*/", css).replace("/*PAGE_JS*/", js)
    return html.encode("utf-8")
