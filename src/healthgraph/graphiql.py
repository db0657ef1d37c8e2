"""GraphiQL served whole from this package: the page at /graphql, its files under /graphiql/.

The files are the pinned releases strawberry's own page loads from a CDN (the versions, their
sources and licences are in static/graphiql/README.md), so the IDE works with no other host
reachable. The page has no inline script or style, and its Content-Security-Policy admits
scripts, styles and requests from this host only (fonts and icons are data: URLs inside
GraphiQL's stylesheet).
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import HTMLResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from healthgraph.security_headers import NOSNIFF, WithHeaders, page_headers, policy

ASSETS = Path(__file__).parent / "static" / "graphiql"
PREFIX = "/graphiql"

CONTENT_SECURITY_POLICY = policy(
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    # Queries over fetch, subscriptions over a WebSocket to the same host ('self' covers ws:).
    "connect-src 'self'",
)

# The vendored files with the hashes their releases publish (the same strawberry's page
# checks): the browser refuses a file that is not the pinned one.
_STYLES = (
    ("graphiql.min.css", "sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM"),
    (
        "plugin-explorer.css",
        "sha384-5DFJlDPW2tSATRbM8kzoP1j194jexLswuNmClWoRr2Q0x7R68JIQzPHZ02Faktwi",
    ),
)
_SCRIPTS = (
    (
        "react.production.min.js",
        "sha384-tMH8h3BGESGckSAVGZ82T9n90ztNXxvdwvdM6UoR56cYcf+0iGXBliJ29D+wZ/x8",
    ),
    (
        "react-dom.production.min.js",
        "sha384-bm7MnzvK++ykSwVJ2tynSE5TRdN+xL418osEVF2DE/L/gfWHj91J2Sphe582B1Bh",
    ),
    ("graphiql.min.js", "sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie"),
    (
        "plugin-explorer.umd.js",
        "sha384-2oonKe47vfHIZnmB6ZZ10vl7T0Y+qrHQF2cmNTaFDuPshpKqpUMGMc9jgj9MLDZ9",
    ),
)


def _page() -> str:
    styles = "".join(
        f'<link rel="stylesheet" href="{PREFIX}/{name}" integrity="{sri}">\n'
        for name, sri in _STYLES
    )
    scripts = "".join(
        f'<script src="{PREFIX}/{name}" integrity="{sri}"></script>\n' for name, sri in _SCRIPTS
    )
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>healthgraph GraphiQL</title>\n"
        f'{styles}<link rel="stylesheet" href="{PREFIX}/healthgraph-graphiql.css">\n'
        "</head>\n<body>\n"
        '<div id="graphiql">Loading…</div>\n'
        f'{scripts}<script src="{PREFIX}/healthgraph-graphiql.js"></script>\n'
        "</body>\n</html>\n"
    )


PAGE = _page()


def graphiql_page() -> HTMLResponse:
    """The GraphiQL page, with its security headers."""
    return HTMLResponse(PAGE, headers=page_headers(CONTENT_SECURITY_POLICY))


def graphiql_assets() -> Mount:
    """The route of the page's files (only mounted while GraphiQL is on)."""
    return Mount(PREFIX, WithHeaders(StaticFiles(directory=ASSETS), NOSNIFF), name="graphiql")
