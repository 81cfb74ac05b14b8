"""The short ``gen diff`` summary of one site that a release records, and the diff a rollback
shows before it publishes.

Both compare two sets of a site's files (only those that differ, by path relative to the site)
with ``diff.compare_site``, so a release's summary says what ``gen diff`` would have said: which
objects were added, removed or changed and, for a change, which fields (a Secret's values are
never shown, only which fields changed).
"""

from __future__ import annotations

from collections.abc import Mapping

from generator.deliver.git import tree
from generator.review import diff
from generator.review.diff import Entry, Op

MAX_FIELDS = 4
"""Field paths named per changed object (the rest are counted)."""

_SIGN = {Op.ADDED: "+", Op.REMOVED: "-", Op.CHANGED: "~", Op.REORDERED: "~"}


def summarize(site: str, old: Mapping[str, bytes], new: Mapping[str, bytes]) -> str:
    """A headline (``2 changed, 1 added; derived: index.json``), then one line per object or file:
    ``~ StatefulSet app/db: spec.replicas, spec.template.spec.containers[name=db].image``."""
    found = diff.compare_site(site, old, new)
    if found is None:
        return "no change"
    counts = [
        f"{n} {op.value}" for op in (Op.CHANGED, Op.ADDED, Op.REMOVED) if (n := found.count(op))
    ]
    headline = ", ".join(counts) if found.entries else "only derived files differ"
    if found.derived:
        headline += f"; derived: {', '.join(found.derived)}"
    return "\n".join([headline, *(_line(e) for e in found.entries)])


def _line(entry: Entry) -> str:
    line = f"{_SIGN[entry.op]} {entry.name}"
    if entry.op is not Op.CHANGED:
        return line
    fields = list(dict.fromkeys(f.where for f in entry.fields))
    if not fields:
        return line + (" (secret: values not shown)" if entry.secret else "")
    shown = ", ".join(fields[:MAX_FIELDS])
    more = f" and {len(fields) - MAX_FIELDS} more" if len(fields) > MAX_FIELDS else ""
    return f"{line}: {shown}{more}"


def rollback_diff(
    site: str,
    current: Mapping[str, bytes],
    restored: Mapping[str, bytes],
    current_label: str,
    current_commit: str,
    restored_label: str,
) -> diff.Result:
    """What a rollback changes, as a ``gen diff`` result (for ``report.text``/``as_json``): the
    current release's files are the base, the restored release's the new side."""
    found = diff.compare_site(site, current, restored)
    result = diff.Diff((found,), ()) if found else diff.Diff((), (site,))
    return diff.Result(tree.Ref(current_label, current_commit), result, restored_label, 0, 0)
