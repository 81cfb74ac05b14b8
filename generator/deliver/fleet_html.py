"""``gen fleet --html FILE``: the fleet as one static page a team can open or publish.

One self-contained file: inline CSS, no script, no font, image or link to anything outside it, so
it opens the same from a file share, a wiki attachment or a static web server inside an air-gapped
network. Every value is HTML-escaped (site names, release names and report messages come from
people and from sites). Pure: the same sites and time give the same bytes.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime

from generator.deliver import releases
from generator.deliver.fleet import Site, status_line
from generator.formats import agent_report

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1f2328}
h1{font-size:1.4rem;margin:0 0 .25rem}
p.meta{color:#59636e;margin:0 0 1.25rem}
table{border-collapse:collapse;width:100%}
th code{white-space:nowrap}
th,td{border-bottom:1px solid #d1d9e0;padding:.45rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85em}
.ok{color:#1a7f37}.warn{color:#9a6700}.bad{color:#d1242f}.dim{color:#59636e}
small{display:block;color:#59636e}
""".strip()


def render(sites: Sequence[Site], now: datetime, title: str = "gen fleet") -> str:
    """The page: one table row per site (``id="site-<name>"``), newest facts in each column."""
    rows = "\n".join(_row(site) for site in sites) or (
        '<tr><td colspan="6" class="dim">no site published yet</td></tr>'
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="gen fleet">
<title>{_e(title)}</title>
<style>
{_CSS}
</style>
</head>
<body>
<h1>{_e(title)}</h1>
<p class="meta">{len(sites)} site{"s" if len(sites) != 1 else ""}, as of \
<time datetime="{releases.format_time(now)}">{releases.format_time(now)}</time> \
(published and packed from the deploy repository; reported: the last status report carried \
out of the site)</p>
<table>
<thead><tr><th>site</th><th>published</th><th>packed</th><th>not packed</th>\
<th>waiting to be carried</th><th>reported by the site</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""


def _row(site: Site) -> str:
    cells = [
        f'<th scope="row"><code>{_e(site.site)}</code></th>',
        f"<td>{_published(site)}</td>",
        f"<td>{_packed(site)}</td>",
        f'<td class="num {"warn" if site.unpacked else "ok"}">{site.unpacked}</td>',
        _waiting(site),
        f"<td>{_reported(site)}</td>",
    ]
    return f'<tr id="site-{_e(site.site)}" data-site="{_e(site.site)}">{"".join(cells)}</tr>'


def _release(info: releases.Info) -> str:
    back = f' <span class="warn">rollback to {info.rollback_to}</span>' if info.rollback_to else ""
    return f"release <b>{_e(info.label)}</b>{back}"


def _published(site: Site) -> str:
    p = site.published
    if p is None:
        return '<span class="dim">nothing published</span>'
    return (
        f"{_release(p)}<small>{_e(releases.format_time(p.time))} · "
        f"<code>{_e(p.commit[:12])}</code> · {_e(p.summary)}</small>"
    )


def _packed(site: Site) -> str:
    k = site.packed
    if k is None:
        return '<span class="dim">never packed</span>'
    what = _release(k.release) if k.release else f"<code>{_e(k.tip[:12])}</code>"
    return f"{what}<small>sequence {k.sequence} · {_e(releases.format_time(k.time))}</small>"


def _waiting(site: Site) -> str:
    if site.waiting is None:
        return '<td class="num dim" title="no outbox given (--outbox)">?</td>'
    return f'<td class="num {"warn" if site.waiting else "ok"}">{site.waiting}</td>'


def _reported(site: Site) -> str:
    r = site.reported
    if r is None:
        return '<span class="dim">no report</span>'
    result = r.report.status.get("result", "unknown")
    css = "ok" if result == "synced" else "bad"
    return (
        f'<span class="{css}">{_e(status_line(r.report))}</span>'
        f"<small>made {_e(agent_report.format_time(r.report.time))} · signed by "
        f"{_e(r.report.signer)} · imported {_e(releases.format_time(r.imported))}</small>"
    )


def _e(text: str) -> str:
    return html.escape(text, quote=True)
