"""``${a:b:c}`` references inside inventory strings: telling them apart and taking them apart.

``\\${`` is a literal ``${``; ``\\\\${`` is a backslash followed by a reference (as in reclass);
references nest (``${a:${b}}``). Resolving them is ``resolve``'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from generator.core import errors
from generator.core.jsonpath import format_path
from generator.core.location import Location

KeyPath = tuple[str | int, ...]
"""A path into the parameters: keys, and list indices as ints."""

_REF_OPEN = "${"
QUERY = "$["
"""Opens a reclass inventory query (``\\$[`` is a literal ``$[``)."""


class Template(str):
    """A string written in an inventory file that holds ``${``: references still to resolve. Values
    that are already resolved (and copies of them) are plain ``str``, so they are never read twice:
    a ``\\${x}`` that became the literal ``${x}`` stays literal wherever it is referenced."""


def template(value: Any) -> Any:
    """``value`` marked as a Template when it is a string holding ``${`` (or an escaped ``\\$[``);
    otherwise unchanged. Tabs in it become spaces (8-column stops), as reclass's parser does."""
    if isinstance(value, str) and ("${" in value or QUERY in value):
        return Template(value.expandtabs() if "\t" in value else value)
    return value


def has_markup(value: Any) -> bool:
    """Whether ``value`` still has references to resolve."""
    return isinstance(value, Template)


@dataclass(frozen=True)
class Query:
    """``$[ ... ]``: a reclass inventory query, its text between the brackets."""

    text: str


@dataclass
class Ref:
    """``${...}``: the key path is itself a token list, so references can nest."""

    parts: list[str | Ref]


def is_whole_reference(value: str) -> bool:
    """Whether ``value`` is exactly one reference (its value replaces the string, of any type)."""
    if not value.startswith((_REF_OPEN, QUERY)) or not value.endswith(("}", "]")):
        return False
    try:
        tokens = tokenize(value, None, ())
    except errors.GenError:
        return False  # malformed: reported with its location when references are resolved
    return len(tokens) == 1 and isinstance(tokens[0], (Ref, Query))


def tokenize(text: str, where: Location | None, path: KeyPath) -> list[str | Ref | Query]:
    """Split a string into literal text and references; ``\\${`` is a literal ``${``,
    ``\\\\${`` is a backslash followed by a reference (as in reclass). The result is shared
    (the same text recurs in every target): do not change it."""
    tokens = _TOKENS.get(text)
    if tokens is None:
        tokens, pos = _parse(text, 0, where, path, nested=False)
        if pos != len(text):
            raise errors.located(where, f"unbalanced '}}' in {text!r}", format_path(path))
        if len(_TOKENS) < 100_000:
            _TOKENS[text] = tokens
    return tokens


_TOKENS: dict[str, list[str | Ref | Query]] = {}
"""Well-formed texts already tokenized (malformed ones are not kept: their errors are located)."""


def _parse(
    text: str, pos: int, where: Location | None, path: KeyPath, nested: bool
) -> tuple[list[str | Ref | Query], int]:
    tokens: list[str | Ref | Query] = []
    buf: list[str] = []
    while pos < len(text):
        if text.startswith("\\\\${", pos):
            buf.append("\\")
            pos += 2
        elif text.startswith("\\${", pos) or text.startswith("\\$[", pos):
            buf.append(text[pos + 1 : pos + 3])
            pos += 3
        elif text.startswith(_REF_OPEN, pos):
            if buf:
                tokens.append("".join(buf))
                buf = []
            inner, pos = _parse(text, pos + 2, where, path, nested=True)
            if pos >= len(text) or text[pos] != "}":
                raise errors.located(
                    where,
                    f"unterminated reference in {text!r}; close it with '}}'",
                    format_path(path),
                )
            tokens.append(Ref(inner))  # type: ignore[arg-type]  # no Query inside a reference
            pos += 1
        elif not nested and text.startswith(QUERY, pos):
            end = text.find("]", pos)
            if end < 0:
                raise errors.located(
                    where,
                    f"unterminated inventory query in {text!r}; close it with ']'",
                    format_path(path),
                )
            if buf:
                tokens.append("".join(buf))
                buf = []
            tokens.append(Query(text[pos + 2 : end].strip()))
            pos = end + 1
        elif nested and text[pos] == "}":
            break
        else:
            buf.append(text[pos])
            pos += 1
    if buf:
        tokens.append("".join(buf))
    return tokens, pos
