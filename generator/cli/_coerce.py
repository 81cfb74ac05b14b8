"""Command-line values coerced without pydantic when they are plainly valid.

typer (0.29) builds a pydantic ``TypeAdapter`` for every option a command receives, so every gen
command pays for importing pydantic (~0.12 s) and building the adapters (~0.03-0.1 s) before it
does anything: a third of a no-op ``gen compile`` at 200 sites. The options gen declares are
plain strings, paths, integers, enums and lists of those; ``install`` gives typer a coercion that
converts such values itself (the same result the adapter gives) and hands anything else (an
invalid value, an unusual annotation or constraint) to typer's own adapter, so every error
message stays typer's. Nothing changes if typer's internals are not the ones expected.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

_INTEGER = re.compile(r"[+-]?[0-9]+")
_NO_VALUE = object()


def install() -> None:
    """Patch typer's parameters to try the plain coercion first (once; a no-op if typer
    differs)."""
    try:
        from typer import _coercion, _param_types
        from typer.core import _TyperParameter
    except ImportError:  # pragma: no cover - another typer
        return
    original = getattr(_TyperParameter, "get_runtime_param", None)
    if original is None or getattr(original, "_gen_plain", False):
        return
    if not hasattr(_param_types, "coerce_cli_path") or not hasattr(_coercion, "RuntimeParam"):
        return  # pragma: no cover - another typer

    def get_runtime_param(self: Any) -> Any:
        runtime = getattr(self, "_gen_runtime_param", None)
        if runtime is None:
            runtime = _Plain(self, original)
            self._gen_runtime_param = runtime
        return runtime

    get_runtime_param._gen_plain = True  # type: ignore[attr-defined]
    _TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]


def _unwrap_optional(annotation: Any) -> Any:
    """``X`` for ``X | None`` (``Optional[X]``): None itself never reaches a coercion."""
    if get_origin(annotation) in (Union, UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


class _Plain:
    """A runtime parameter: the plain conversion, else typer's (pydantic) one."""

    def __init__(self, param: Any, original: Any) -> None:
        self.param = param
        self.original = original
        descriptor = param.type_descriptor
        self.annotation = _unwrap_optional(descriptor.annotation)
        self.info = descriptor.parameter_info
        self.plain = descriptor.file_annotation is None and self.info.parser is None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        multi = param.multiple or param.nargs == -1
        if value is None:  # as typer's RuntimeParam.coerce
            return () if multi else None
        if self.plain:
            if multi and isinstance(value, (list, tuple)) and get_origin(self.annotation) is list:
                (item_type,) = get_args(self.annotation) or (Any,)
                items = [self._leaf(item_type, item, param, ctx) for item in value]
                if all(item is not _NO_VALUE for item in items):
                    return items
            elif not multi:
                result = self._leaf(self.annotation, value, param, ctx)
                if result is not _NO_VALUE:
                    return result
        return self.original(self.param).coerce(value, param=param, ctx=ctx)

    def _leaf(self, annotation: Any, value: Any, param: Any, ctx: Any) -> Any:
        info = self.info
        if annotation is str and isinstance(value, str):
            return value
        if isinstance(annotation, type) and issubclass(annotation, Enum):
            from typer._param_types import coerce_cli_choice

            try:
                return coerce_cli_choice(
                    value, choices=list(annotation), case_sensitive=info.case_sensitive, ctx=ctx
                )
            except ValueError:
                return _NO_VALUE
        if annotation is int and not info.clamp:
            if isinstance(value, str) and _INTEGER.fullmatch(value):
                number = int(value)
            elif isinstance(value, int) and not isinstance(value, bool):
                number = value
            else:
                return _NO_VALUE
            if (info.min is not None and number < info.min) or (
                info.max is not None and number > info.max
            ):
                return _NO_VALUE
            return number
        if annotation is Path and info.path_type is None and isinstance(value, (str, Path)):
            from typer._param_types import coerce_cli_path

            # A Path (a default value is one already): typer's own checks (exists, file_okay,
            # ...) run, pydantic does not.
            return coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx)
        return _NO_VALUE
