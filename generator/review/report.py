"""Render a ``diff.Result`` for people (text, markdown for a merge-request comment) or scripts
(JSON).

Pure: values in, a string or a JSON-ready dict out. Colour is the caller's business: ``text`` takes
a ``paint(text, role)`` function (roles: ``added``, ``removed``, ``changed``, ``site``, ``file``,
``dim``) and the CLI passes one that colours only when colour is wanted.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable
from typing import Any

from generator.review.diff import Diff, Entry, FieldChange, Item, Op, Result, SiteDiff

Paint = Callable[[str, str], str]
MARKER = "<!-- gen-diff -->"
"""First line of the markdown report: lets a CI job find and update its own comment."""
MAX_VALUE = 120
"""Longer values are cut (with an ellipsis) in text and markdown; JSON always has them whole."""
MARKDOWN_LIMIT = 900_000
"""GitLab refuses notes over 1,000,000 characters; site sections beyond this many are left out."""

_SIGN = {Op.ADDED: "+", Op.REMOVED: "-", Op.CHANGED: "~", Op.REORDERED: "~"}


def plain(text: str, role: str) -> str:
    """The no-colour ``paint``."""
    return text


# ------------------------------------------------------------------------------------------------
# Text
# ------------------------------------------------------------------------------------------------


def text(result: Result, *, verbose: bool = False, paint: Paint = plain) -> str:
    """A terminal report: a summary table, then per site each object and field that differs."""
    diff = result.diff
    lines = [paint(f"{result.source} compared with {result.base}", "dim"), headline(diff)]
    if diff.sites:
        lines += ["", *_table_text(diff.sites)]
    for site in diff.sites:
        lines += ["", paint(_site_title(site), "site")]
        lines += [f"  {line}" for line in _site_text(site, paint)]
    if verbose and diff.unchanged:
        lines += [
            "",
            paint("unchanged: " + ", ".join(_site_name(s) for s in diff.unchanged), "dim"),
        ]
    return "\n".join(lines) + "\n"


def headline(diff: Diff) -> str:
    """``2 of 3 sites differ (1 changed, 1 added)`` or ``no difference in 3 sites``."""
    total = len(diff.sites) + len(diff.unchanged)
    if not diff.sites:
        return f"no difference in {_plural(total, 'site')}"
    kinds = [
        f"{n} {op.value}"
        for op in (Op.CHANGED, Op.ADDED, Op.REMOVED)
        if (n := sum(1 for s in diff.sites if s.op is op))
    ]
    verb = "differs" if len(diff.sites) == 1 else "differ"
    return f"{len(diff.sites)} of {_plural(total, 'site')} {verb} ({', '.join(kinds)})"


def _table_text(sites: Iterable[SiteDiff]) -> list[str]:
    rows = [("site", "+", "-", "~")] + [(_site_name(s.site), *map(str, _counts(s))) for s in sites]
    width = max(len(r[0]) for r in rows)
    return [f"{r[0]:<{width}}  {r[1]:>4} {r[2]:>4} {r[3]:>4}" for r in rows]


def _site_text(site: SiteDiff, paint: Paint) -> list[str]:
    lines = []
    for entry in site.entries:
        lines.append(
            paint(f"{_SIGN[entry.op]} {entry.name}", entry.op.value) + _where(entry, paint)
        )
        if entry.op is Op.CHANGED:
            lines += [f"    {line}" for line in _entry_detail_text(entry, paint)]
    if site.derived and not site.entries:
        lines.append(paint(f"only derived files differ: {', '.join(site.derived)}", "dim"))
    return lines


def _where(entry: Entry, paint: Paint) -> str:
    if entry.object is None:  # a file, or an item of one: its name says where it is
        return ""
    moved = f", moved from {entry.old_path}" if entry.old_path else ""
    return paint(f"  ({entry.path}{moved})", "file")


def _entry_detail_text(entry: Entry, paint: Paint) -> list[str]:
    if not entry.fields and not entry.lines:
        return [paint(_no_detail(entry), "dim")]
    lines = [paint(f"{sign} {line}", _LINE_ROLE[sign]) for sign, line in entry.lines]
    for change in entry.fields:
        if _multiline(change):
            lines.append(paint(f"~ {change.where}:", "changed"))
            lines += [
                f"    {paint(line, _LINE_ROLE.get(line[:1], 'dim'))}" for line in _text_diff(change)
            ]
        else:
            lines.append(paint(f"{_SIGN[change.op]} {_field_text(change)}", change.op.value))
    return lines


_LINE_ROLE = {"-": "removed", "+": "added"}


def _no_detail(entry: Entry) -> str:
    """Why a changed entry lists no field: a secret's text, or only formatting changed."""
    if entry.secret:
        return "content changed (secret: values not shown)"
    return "moved, same content" if entry.old_path else "same data, different formatting"


def _field_text(change: FieldChange) -> str:
    where = change.where
    if change.hidden:
        return f"{where}: {_hidden(change.op)}"
    if change.op is Op.ADDED:
        return f"{where}: {value_text(change.new)}"
    if change.op is Op.REMOVED:
        return f"{where}: {value_text(change.old)}"
    if change.op is Op.REORDERED:
        return f"{where}: order {value_text(change.old)} -> {value_text(change.new)}"
    return f"{where}: {value_text(change.old)} -> {value_text(change.new)}"


def _hidden(op: Op) -> str:
    return {
        Op.ADDED: "added (secret value not shown)",
        Op.REMOVED: "removed (secret value not shown)",
    }.get(op, "value changed (secret value not shown)")


def value_text(value: Any, limit: int = MAX_VALUE) -> str:
    """A value as compact JSON (so ``"1"`` and ``1`` differ), cut at ``limit`` characters."""
    out = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return out if len(out) <= limit else out[: limit - 1] + "…"


def _multiline(change: FieldChange) -> bool:
    return (
        not change.hidden
        and change.op is Op.CHANGED
        and isinstance(change.old, str)
        and isinstance(change.new, str)
        and ("\n" in change.old or "\n" in change.new)
    )


def _text_diff(change: FieldChange) -> list[str]:
    """A multi-line string's change as unified-diff lines with a little context."""
    old, new = change.old.splitlines(), change.new.splitlines()
    return [line for line in difflib.unified_diff(old, new, lineterm="", n=2)][2:]


# ------------------------------------------------------------------------------------------------
# Markdown (a merge-request comment)
# ------------------------------------------------------------------------------------------------


def markdown(result: Result, *, limit: int = MARKDOWN_LIMIT) -> str:
    """A merge-request comment: headline, per-site summary table, a collapsible section per site."""
    diff = result.diff
    head = [
        MARKER,
        f"### gen diff: {headline(diff)}",
        "",
        f"Compiled output of {result.source} compared with `{result.base}`.",
    ]
    if not diff.sites:
        return "\n".join(head) + "\n"
    head += ["", "| site | added | removed | changed |", "| :--- | ---: | ---: | ---: |"]
    head += [
        f"| {_code(_site_name(s.site))}{_site_note(s)} | {' | '.join(map(str, _counts(s)))} |"
        for s in diff.sites
    ]
    if diff.unchanged:
        head += ["", f"{_plural(len(diff.unchanged), 'site')} unchanged."]
    out = "\n".join(head) + "\n"
    open_all = len(diff.sites) <= 3
    for i, site in enumerate(diff.sites):
        section = _site_markdown(site, open_all)
        if len(out) + len(section) > limit:
            left = len(diff.sites) - i
            out += (
                f"\n_{_plural(left, 'more site')} not shown (the comment would be too long): "
                "run `gen diff` locally or see the job's artifact._\n"
            )
            break
        out += section
    return out


def _site_note(site: SiteDiff) -> str:
    return {Op.ADDED: " (new site)", Op.REMOVED: " (site removed)"}.get(site.op, "")


def _site_markdown(site: SiteDiff, open_: bool) -> str:
    plus, minus, tilde = _counts(site)
    summary = (
        f"<b>{_html(_site_name(site.site))}</b>{_html(_site_note(site))}: +{plus} -{minus} ~{tilde}"
    )
    lines = ["", f"<details{' open' if open_ else ''}><summary>{summary}</summary>", ""]
    for entry in site.entries:
        if entry.op is Op.CHANGED:
            lines += _entry_markdown(entry)
    for op in (Op.ADDED, Op.REMOVED):
        whole = [e for e in site.entries if e.op is op]
        if whole:
            lines += [f"**{_SIGN[op]} {op.value}** ({len(whole)}):", ""]
            lines += [f"- {_code(e.name)}" for e in whole] + [""]
    if site.derived and not site.entries:
        lines += [f"Only derived files differ: {', '.join(map(_code, site.derived))}.", ""]
    lines += ["</details>"]
    return "\n".join(lines) + "\n"


def _entry_markdown(entry: Entry) -> list[str]:
    """A changed object or file: a heading, a table of fields, diff blocks for lines."""
    where = "" if entry.object is None else f" in {_code(entry.path)}"
    if entry.old_path:
        where += f" (moved from {_code(entry.old_path)})"
    lines = [f"**{_SIGN[entry.op]} {entry.op.value}** {_code(entry.name)}{where}", ""]
    if not entry.fields and not entry.lines:
        return [*lines, _no_detail(entry).capitalize() + ".", ""]
    if entry.lines:
        lines += ["```diff", *(f"{sign} {line}" for sign, line in entry.lines), "```", ""]
    rows = [c for c in entry.fields if not _multiline(c)]
    if rows:
        lines += ["| | field | old | new |", "| --- | --- | --- | --- |"]
        lines += [_field_row(c) for c in rows]
        lines.append("")
    for change in entry.fields:
        if _multiline(change):
            lines += [f"{_code(change.where)}:", "", "```diff", *_text_diff(change), "```", ""]
    return lines


def _field_row(change: FieldChange) -> str:
    if change.hidden:
        old, new = ("", _hidden(change.op)) if change.op is Op.ADDED else (_hidden(change.op), "")
        if change.op is Op.CHANGED:
            old, new = "_hidden_", "_hidden_"
    else:
        old = "" if change.op is Op.ADDED else _code(value_text(change.old))
        new = "" if change.op is Op.REMOVED else _code(value_text(change.new))
    return f"| {_SIGN[change.op]} | {_code(change.where)} | {old} | {new} |"


def _code(text: str) -> str:
    """Inline code that survives a table cell: pipes escaped, backticks fenced by longer runs."""
    text = text.replace("|", "\\|").replace("\n", " ")
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ------------------------------------------------------------------------------------------------
# JSON
# ------------------------------------------------------------------------------------------------


def as_json(result: Result) -> dict[str, Any]:
    """The whole diff as JSON-ready data (values uncut; secrets' values absent)."""
    diff = result.diff
    entries = [e for s in diff.sites for e in s.entries]
    return {
        "base": {"ref": result.base.name, "commit": result.base.commit},
        "differs": diff.differs,
        "summary": {
            "sites": {
                op.value: sum(1 for s in diff.sites if s.op is op)
                for op in (Op.ADDED, Op.REMOVED, Op.CHANGED)
            }
            | {"unchanged": len(diff.unchanged)},
            "objects": {
                op.value: sum(1 for e in entries if e.op is op)
                for op in (Op.ADDED, Op.REMOVED, Op.CHANGED)
            },
        },
        "sites": [_site_json(s) for s in diff.sites],
        "unchanged": list(diff.unchanged),
    }


def _site_json(site: SiteDiff) -> dict[str, Any]:
    plus, minus, tilde = _counts(site)
    return {
        "site": site.site,
        "op": site.op.value,
        "added": plus,
        "removed": minus,
        "changed": tilde,
        "derived": list(site.derived),
        "entries": [_entry_json(e) for e in site.entries],
    }


def _entry_json(entry: Entry) -> dict[str, Any]:
    oid = entry.object
    out: dict[str, Any] = {
        "op": entry.op.value,
        "name": entry.name,
        "path": entry.path,
        "object": {
            "group": oid.group,
            "kind": oid.kind,
            "namespace": oid.namespace,
            "name": oid.name,
        }
        if oid
        else None,
        "secret": entry.secret,
    }
    if entry.old_path:
        out["old_path"] = entry.old_path
    if entry.fields:
        out["fields"] = [_field_json(c) for c in entry.fields]
    if entry.lines:
        out["lines"] = [{"op": sign, "line": line} for sign, line in entry.lines]
    return out


def _field_json(change: FieldChange) -> dict[str, Any]:
    out: dict[str, Any] = {
        "path": change.where,
        "segments": [_segment_json(s) for s in change.path],
        "op": change.op.value,
    }
    if change.hidden:
        out["hidden"] = True
        return out
    if change.op is not Op.ADDED:
        out["old"] = change.old
    if change.op is not Op.REMOVED:
        out["new"] = change.new
    return out


def _segment_json(segment: str | int | Item) -> Any:
    return {"key": segment.key, "value": segment.value} if isinstance(segment, Item) else segment


# ------------------------------------------------------------------------------------------------


def _counts(site: SiteDiff) -> tuple[int, int, int]:
    return site.count(Op.ADDED), site.count(Op.REMOVED), site.count(Op.CHANGED)


def _site_title(site: SiteDiff) -> str:
    return _site_name(site.site) + _site_note(site)


def _site_name(site: str) -> str:
    return site or "compiled/"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
