"""Canonical YAML out, rendered YAML in.

``dump``/``dump_all`` write JSON-like data as block-style YAML that every reader the manifests meet
(PyYAML and go-yaml v2 as used by kubectl, both YAML 1.1; ruamel.yaml, YAML 1.2) reads back as the
same value, with output that depends only on the input (so regenerated manifests diff cleanly).
PyYAML, libyaml and ruamel are property-tested; go-yaml v2's resolver rules are covered by design.

``load_rendered`` reads template output with libyaml, refusing duplicate keys and keeping timestamps
as strings; every YAML problem becomes a located ``GenError``.

Speed on the 66-line StatefulSet of tests/core/test_yamlio.py (which asserts >= 5x), CPython 3.11.7,
PyYAML 6.0.4 + libyaml, best CPU time of 9 x 500 runs on a shared 2-core box (load average 5-7, so
the spread between runs is wide; the ratios are steadier than the absolute figures):
    yaml.dump(Dumper=yaml.CSafeDumper, sort_keys=False)     570-840 us per dump
    dump, string caches cleared before every call           100-170 us    ~5-8x faster
    dump, warm caches (the usual case: strings repeat)        35-55 us   ~10-24x faster
load_rendered costs the same as a bare yaml.CSafeLoader (about 10x less than yaml.SafeLoader).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from generator.core import errors
from generator.core.location import Location

__all__ = ["dump", "dump_all", "load_rendered"]

# --------------------------------------------------------------------------------------------------
# Emitter
# --------------------------------------------------------------------------------------------------

# Strings written unquoted: ASCII words that no YAML 1.1 (PyYAML, go-yaml v2) or 1.2 (ruamel)
# resolver turns into anything but a string and no indicator can misread. Everything else is quoted.
# Possessive runs rather than a per-character alternation: twice as fast on a cold cache.
_PLAIN = re.compile(
    r"""
    (?!(?i:y|n|yes|no|true|false|on|off|null)\Z)     # bools of YAML 1.1 / go-yaml v2, null
    (?![-+]?[0-9.][0-9a-fA-FxXoObB_:.,+tTzZ\ -]*\Z)  # superset of int/float/sexagesimal/timestamp
    (?![-+]?\.?(?i:inf(?:inity)?|nan)\Z)              # go-yaml v2 hands these to strconv.ParseFloat
    (?!---|\.\.\.|-(?:[\ ._0-9]|\Z))                 # document markers, "- " entries, negatives
    [A-Za-z0-9_/.-]                                   # no indicator (!&*?|>'"%@`#,[]{}) up front
    [A-Za-z0-9_/.=+@,;()~$%^-]*+                      # then runs of safe characters joined by
    (?:(?:\ ++:*+|:++)[A-Za-z0-9_/.=+@,;()~$%^-]++)*+  # spaces/colons: no ": ",
                                                      # no trailing " " or ":"
    """,
    re.VERBOSE,
)
_QUOTE_ESCAPE = re.compile('["\\\\\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]')
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\t": "\\t",
    "\r": "\\r",
    "\b": "\\b",
    "\f": "\\f",
}
# A literal block cannot hold non-printables, line breaks other than \n, trailing whitespace
# (editors strip it) or tabs in indentation.
_NOT_LITERAL = re.compile(
    "[^\n\t\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
    r"|[ \t]\n|[ \t]\Z|(?:\A|\n) *\t"
)
# libyaml/PyYAML give up on an implicit key longer than 1024 characters (or bytes).
_MAX_IMPLICIT_KEY = 1000


def dump(obj: object) -> str:
    """One YAML document (with trailing newline) for JSON-like ``obj``; same input, same bytes.

    Raises TypeError naming the type of any value that is not dict (str keys), list, str, int,
    float, bool or None.
    """
    out: list[str] = []
    _document(obj, out)
    return "".join(out)


def dump_all(objs: Iterable[object]) -> str:
    """A YAML stream of one document per item, separated by ``---``; ``""`` for no items."""
    out: list[str] = []
    for i, obj in enumerate(objs):
        if i:
            out.append("---\n")
        _document(obj, out)
    return "".join(out)


def _document(obj: object, out: list[str]) -> None:
    if type(obj) is dict:
        if obj:
            _mapping(obj, 0, out, "")
        else:
            out.append("{}\n")
    elif type(obj) is list:
        if obj:
            _sequence(obj, 0, out, "")
        else:
            out.append("[]\n")
    elif type(obj) is str:
        # Top level stays on one line: a block scalar's indentation indicator counts from column
        # -1 in the spec but from column 0 in libyaml/PyYAML.
        out.append(_key_text(obj) + "\n")
    elif type(obj) in _SCALARS:
        out.append(_SCALARS[type(obj)](obj) + "\n")
    else:
        _document(_canonical(obj), out)


def _mapping(d: dict[Any, Any], indent: int, out: list[str], lead: str) -> None:
    """Write ``d`` with keys at column ``indent``; ``lead`` precedes the first key (``""`` after
    ``- ``)."""
    pad = " " * indent
    for k, v in d.items():
        key = _key(k)
        if key is None:
            key = f"? {_key_text(k)}\n{pad}"
        t = type(v)
        if t is str:
            flat = _flat(v)
            out.append(f"{lead}{key}: {_literal(v, indent) if flat is None else flat}\n")
        elif t is dict:
            if v:
                out.append(f"{lead}{key}:\n")
                _mapping(v, indent + 2, out, pad + "  ")
            else:
                out.append(f"{lead}{key}: {{}}\n")
        elif t is list:
            if v:
                out.append(f"{lead}{key}:\n")
                _sequence(v, indent, out, pad)  # k8s style: "- " at the key's column
            else:
                out.append(f"{lead}{key}: []\n")
        else:
            fmt = _SCALARS.get(t)
            if fmt is None:
                _mapping({k: _canonical(v)}, indent, out, lead)
            else:
                out.append(f"{lead}{key}: {fmt(v)}\n")
        lead = pad


def _sequence(items: list[Any], indent: int, out: list[str], lead: str) -> None:
    """Write ``items`` with dashes at column ``indent``; ``lead`` precedes the first dash."""
    pad = " " * indent
    for v in items:
        t = type(v)
        if t is str:
            flat = _flat(v)
            out.append(f"{lead}- {_literal(v, indent) if flat is None else flat}\n")
        elif t is dict:
            if v:
                out.append(lead + "- ")
                _mapping(v, indent + 2, out, "")
            else:
                out.append(lead + "- {}\n")
        elif t is list:
            if v:
                out.append(lead + "- ")
                _sequence(v, indent + 2, out, "")
            else:
                out.append(lead + "- []\n")
        else:
            fmt = _SCALARS.get(t)
            if fmt is None:
                _sequence([_canonical(v)], indent, out, lead)
            else:
                out.append(f"{lead}- {fmt(v)}\n")
        lead = pad


def _canonical(v: object) -> object:
    """``v`` as an exact dict/list/str/int/float/bool/None (subclasses such as enums are
    unwrapped)."""
    if type(v) in _SCALARS or type(v) in (str, dict, list):
        return v
    if isinstance(v, int):  # bool cannot be subclassed, so this is an int subclass (IntEnum)
        return int(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, dict):
        return dict(v)
    if isinstance(v, list):
        return list(v)
    raise TypeError(
        f"cannot write {type(v).__name__} as YAML: only dict, list, str, int, float, bool and None"
    )


def _float(x: float) -> str:
    if math.isnan(x):
        return ".nan"
    if math.isinf(x):
        return ".inf" if x > 0 else "-.inf"
    r = repr(x)
    if "e" in r and "." not in r:  # YAML 1.1 floats need a dot: 1e+16 would read as a string
        mantissa, exponent = r.split("e")
        r = f"{mantissa}.0e{exponent}"
    return r


_SCALARS: dict[type, Callable[[Any], str]] = {
    type(None): lambda _: "null",
    bool: lambda b: "true" if b else "false",
    int: int.__repr__,
    float: _float,
}


def _quote(s: str) -> str:
    return '"' + _QUOTE_ESCAPE.sub(_escape_char, s) + '"'


def _escape_char(m: re.Match[str]) -> str:
    c = m.group()
    return _ESCAPES.get(c) or f"\\u{ord(c):04x}"


@functools.lru_cache(maxsize=1 << 16)
def _flat(s: str) -> str | None:
    """How ``s`` is written as a value: plain or quoted text, or None for a literal block."""
    if _PLAIN.fullmatch(s):
        return s
    if "\n" in s and s.strip("\n") and not _NOT_LITERAL.search(s):
        return None
    return _quote(s)


def _key_text(s: str) -> str:
    return s if _PLAIN.fullmatch(s) else _quote(s)


@functools.lru_cache(maxsize=1 << 16)
def _key(k: object) -> str | None:
    """How ``k`` is written as an implicit key, or None when it is too long for one."""
    if not isinstance(k, str):
        raise TypeError(f"cannot write a {type(k).__name__} mapping key as YAML: keys must be str")
    text = _key_text(k)
    too_long = len(text) > _MAX_IMPLICIT_KEY // 4 and len(text.encode()) > _MAX_IMPLICIT_KEY
    return None if too_long else text


def _literal(s: str, indent: int) -> str:
    """``s`` as a literal block scalar whose lines sit two columns right of ``indent``."""
    if s.endswith("\n"):
        chomp = "+" if s.endswith("\n\n") else ""
        body = s[:-1]
    else:
        chomp = "-"
        body = s
    hint = "2" if s[0] in " \n" else ""
    pad = " " * (indent + 2)
    return f"|{hint}{chomp}\n" + "\n".join(
        pad + line if line else line for line in body.split("\n")
    )


# --------------------------------------------------------------------------------------------------
# Loader
# --------------------------------------------------------------------------------------------------

_MERGE_TAG = "tag:yaml.org,2002:merge"
# Timestamps stay strings; "=" (the YAML 1.1 value key) has no safe constructor and would only fail.
_DROPPED_TAGS = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"}


class _Resolver(Resolver):
    """PyYAML's resolver minus the dropped tags, on a copy: the global tables stay untouched."""

    # Not ClassVar: types-PyYAML declares it an instance variable, which a ClassVar cannot override.
    yaml_implicit_resolvers = {  # noqa: RUF012
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
        for first, resolvers in Resolver.yaml_implicit_resolvers.items()
    }


def plain_is_string(text: str) -> bool:
    """Whether the plain scalar ``text`` (non-empty, as written) loads as that string: no implicit
    tag of the loader (int, float, bool, null, ...) matches it, as ``Resolver.resolve`` decides."""
    table = _Resolver.yaml_implicit_resolvers
    return not any(
        regexp.match(text) for _, regexp in (*table.get(text[0], ()), *table.get(None, ()))
    )


class _StrictConstructor(SafeConstructor):
    """SafeConstructor that refuses a key repeated within one mapping."""

    source = "<yaml>"

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            self._check_duplicates(node, deep)
        return super().construct_mapping(node, deep=deep)

    def _check_duplicates(self, node: yaml.MappingNode, deep: bool) -> None:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:  # merged keys may be overridden; that is their purpose
                continue
            key = self.construct_object(key_node, deep=deep)  # memoized: the real pass reuses it
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # unhashable key: SafeConstructor reports it
                continue
            if first is not key_node:
                raise errors.located(
                    _location(self.source, key_node.start_mark),
                    f"duplicate key {key!r} in mapping "
                    f"(first defined at line {first.start_mark.line + 1})",
                )


class _PyLoader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    yaml.composer.Composer,
    _StrictConstructor,
    _Resolver,
):
    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _StrictConstructor.__init__(self)
        _Resolver.__init__(self)


_Loader: Callable[[str], Any]
try:
    from yaml._yaml import CParser

    class _CLoader(CParser, _StrictConstructor, _Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _StrictConstructor.__init__(self)
            _Resolver.__init__(self)

    _Loader = _CLoader
except ImportError:  # PyYAML built without libyaml: same behaviour, slower
    _Loader = _PyLoader


def load_rendered(text: str, source: str) -> list[dict[str, Any]]:
    """The non-empty documents of the YAML stream ``text``, each a mapping.

    Timestamps stay strings. Duplicate keys, syntax errors and documents that are not mappings raise
    a ``ProblemReport`` located in ``source`` (1-based line and column, offending line quoted).
    """
    return _load(_Loader, text, source)


Line = tuple[int, tuple[Any, ...], int, int, "str | None"]
"""Where a one-line scalar sits: (document, key path, start column, end column, style)."""


def load_rendered_lines(text: str, source: str) -> tuple[list[dict[str, Any]], dict[int, Line]]:
    """``load_rendered``, and each line (0-based) holding a whole plain or double-quoted scalar
    of a block collection (no anchors, aliases, tags or merge keys in the way): what a caller needs
    to patch one value without parsing the text again. Errors as ``load_rendered``."""
    lines: dict[int, Line] = {}
    return _load(_Loader, text, source, lines), lines


def _scalar_lines(root: yaml.Node, doc: int, out: dict[int, Line]) -> bool:
    """Add the one-line scalars under ``root`` to ``out``; False if a node is reached twice (an
    alias: one line, several values) and no line of the text may be patched."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[Any, ...] | None]] = [(root, ())]
    found: dict[int, Line] = {}
    while stack:
        node, path = stack.pop()  # path None: inside what cannot be patched (flow, merge, key)
        if id(node) in seen:
            return False
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            start, end = node.start_mark, node.end_mark
            style = node.style or None  # plain: None from PyYAML, "" from libyaml
            if path and start.line == end.line and style in (None, '"'):
                found[start.line] = (doc, path, start.column, end.column, style)
        elif isinstance(node, yaml.MappingNode):
            plain = path is not None and not node.flow_style
            if any(k.tag == _MERGE_TAG for k, _ in node.value):
                plain = False
            for key, value in node.value:
                named = plain and isinstance(key, yaml.ScalarNode) and key.tag == _STR_TAG
                stack.append((key, None))
                stack.append((value, (*path, key.value) if named and path is not None else None))
        elif isinstance(node, yaml.SequenceNode):
            plain = path is not None and not node.flow_style
            stack += [
                (item, (*path, i) if plain and path is not None else None)
                for i, item in enumerate(node.value)
            ]
    out.update(found)
    return True


_STR_TAG = "tag:yaml.org,2002:str"


def _load(
    loader_class: Callable[[str], Any],
    text: str,
    source: str,
    lines: dict[int, Line] | None = None,
) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    loader = None
    try:
        loader = loader_class(text)  # the pure-Python reader already checks characters here
        loader.source = source
        while loader.check_node():
            node = loader.get_node()
            if lines is not None and not _scalar_lines(node, len(docs), lines):
                lines.clear()
                lines = None  # an alias: no line of this text may be patched
            data = loader.construct_document(node)  # (merge keys flattened: read the nodes first)
            if data is None:
                continue
            if not isinstance(data, dict):
                raise errors.located(
                    _location(source, node.start_mark),
                    f"expected a mapping at the top of the document, found {type(data).__name__}",
                )
            docs.append(data)
    except yaml.YAMLError as e:
        raise _yaml_error(e, text, source, loader_class is not _PyLoader) from e
    except UnicodeEncodeError as e:  # libyaml takes UTF-8, which cannot hold a lone surrogate
        err = yaml.reader.ReaderError(
            source, e.start, ord(text[e.start]), "utf-8", "lone surrogate"
        )
        raise _yaml_error(err, text, source, byte_offsets=False) from e
    finally:
        if loader is not None:
            loader.dispose()
    return docs


def _location(source: str, mark: yaml.Mark | None) -> Location:
    return Location(source, mark.line + 1, mark.column + 1) if mark else Location(source)


def _yaml_error(
    e: yaml.YAMLError, text: str, source: str, byte_offsets: bool
) -> errors.ProblemReport:
    """A located report for a PyYAML error, quoting the offending line."""
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        location = _location(source, mark)
        problem = e.problem or "invalid YAML"
        if e.context:
            problem = f"{problem} ({e.context})"
    elif isinstance(e, yaml.reader.ReaderError):
        location = _offset_location(text, source, e.position, byte_offsets)
        problem = f"unacceptable character #x{e.character:04x}: {e.reason}"
    else:
        return errors.located(Location(source), f"invalid YAML: {e}")
    if not location.line:
        return errors.located(location, f"invalid YAML: {problem}")
    line = _line_text(text, location.line)
    if len(line) > _MAX_QUOTED:
        line = line[:_MAX_QUOTED] + "..."
    return errors.located(location, f"invalid YAML: {problem}; line {location.line}: {line!r}")


def _offset_location(text: str, source: str, position: int, byte_offsets: bool) -> Location:
    # libyaml reports reader errors as an offset into the UTF-8 encoding, PyYAML into the str.
    before = text.encode()[:position].decode(errors="replace") if byte_offsets else text[:position]
    lines = _LINE_BREAK.split(before)
    return Location(source, len(lines), len(lines[-1]) + 1)


_MAX_QUOTED = 160
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def _line_text(text: str, line: int) -> str:
    """Line ``line`` (1-based) of ``text`` as YAML counts lines, or "" past the end."""
    lines = _LINE_BREAK.split(text)
    return lines[line - 1] if 0 < line <= len(lines) else ""
