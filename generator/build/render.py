"""jinja2 environment + components/ -> Kubernetes objects (plain dicts), each tagged with its
template.

A component is a directory ``components/<name>/`` of ``*.yml.j2`` / ``*.yaml.j2`` templates. A
service names its component (``services.<name>.component``) and each template is rendered once
for it; the site's ``site.components`` are rendered once per site. Undefined variables are errors.
A template that reads a *late* variable (a value computed from the site's other objects, such as
the agent's RBAC) is left out of the site's render and rendered alone once that value is known.
This is the only module that imports jinja2; its errors are turned into located user errors here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jinja2.runtime
import jinja2.utils
import markupsafe

from generator.build import tracking
from generator.core import errors, yamlio
from generator.core.location import Location
from generator.core.units import kube_version

TEMPLATE_SUFFIXES = (".yml.j2", ".yaml.j2")


@dataclass(frozen=True)
class Rendered:
    """One object produced by a template, with what produced it (for messages and the index)."""

    obj: dict[str, Any]
    template: str
    """Template path relative to the root, e.g. components/stateful-service/statefulset.yml.j2."""
    unit: str
    """What the template was rendered for: ``service gatekeeper`` or ``site``."""
    key: tuple[str, int] | None = None
    """(rendered text, document index) when the object came from a template: equal keys, equal
    objects."""


class TemplateFailure(errors.GenError):
    """Raised by ``fail()`` inside a template."""


_ACTIVE: tracking.Recorder | None = None
"""The recorder of the render under way, if it is tracked (renders are not concurrent)."""


class _Context(jinja2.runtime.Context):
    """jinja2's context, telling the active recorder which top-level names a template reads."""

    def resolve_or_missing(self, key: str) -> Any:
        if key in self.vars:
            return self.vars[key]
        if key in self.parent:
            value = self.parent[key]
            if _ACTIVE is not None:
                _ACTIVE.top(key, value)
            return value
        return jinja2.utils.missing


_DICT_ATTRIBUTES = frozenset(dir(dict))
"""What ``getattr`` finds on a plain dict (it has no instance attributes)."""


class _Environment(jinja2.Environment):
    """jinja2's environment, with ``obj.attr`` and ``obj[key]`` on a tracked value behaving as on
    the dict or list it stands for (an attribute of the real value, else an entry)."""

    context_class = _Context

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            # jinja2's getattr on a plain dict, without its AttributeError first (most reads are
            # ``site.x`` / ``service.x``): no attribute of that name, so the entry or undefined.
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        if isinstance(obj, tracking.TrackedDict | tracking.TrackedList):
            if hasattr(obj._gen_value, attribute):
                return obj._gen_attribute(attribute)
            try:
                return obj[attribute]
            except (TypeError, LookupError):
                return self.undefined(obj=obj._gen_value, name=attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if type(obj) is dict:
            try:
                return obj[argument]
            except (TypeError, LookupError):
                pass  # jinja2's way: an attribute of that name, else undefined
        if isinstance(obj, tracking.TrackedDict | tracking.TrackedList):
            try:
                return obj[argument]
            except (TypeError, LookupError):
                if isinstance(argument, str) and hasattr(obj._gen_value, argument):
                    return obj._gen_attribute(argument)
                return self.undefined(obj=obj._gen_value, name=argument)
        return super().getitem(obj, argument)


def _dumps(obj: Any, **kwargs: Any) -> str:
    """``tojson``: json.dumps, on the real values when the render is tracked."""
    return json.dumps(tracking.unwrap(obj) if _ACTIVE is not None else obj, **kwargs)


_JSON_SCALARS: dict[tuple[type, Any], Any] = {}
"""``tojson`` of a string, integer, boolean or null, by type and value: templates quote the same
few thousand scalars tens of thousands of times per compile."""


@jinja2.pass_eval_context
def _tojson(eval_ctx: Any, value: Any, indent: int | None = None) -> Any:
    """jinja2's ``tojson``, remembered for scalars (the same text: a scalar is not tracked)."""
    kind = type(value)
    if indent is None and (kind is str or kind is int or kind is bool or value is None):
        key = (kind, value)
        text = _JSON_SCALARS.get(key)
        if text is None:
            text = _JSON_SCALARS[key] = jinja2.filters.do_tojson(eval_ctx, value)
        return text
    policies = eval_ctx.environment.policies
    if (
        indent is None
        and policies["json.dumps_function"] is _dumps
        and policies["json.dumps_kwargs"] == _DUMPS_KWARGS
    ):
        # do_tojson and htmlsafe_json_dumps inlined, with one encoder for every call (json.dumps
        # with arguments builds a new one each time): 33,000 lists and mappings per compile.
        text = _ENCODE(tracking.unwrap(value) if _ACTIVE is not None else value)
        return markupsafe.Markup(
            text.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("'", "\\u0027")
        )
    return jinja2.filters.do_tojson(eval_ctx, value, indent)


_DUMPS_KWARGS: dict[str, Any] = {"sort_keys": True, "ensure_ascii": False}
"""The ``json.dumps`` arguments of ``tojson`` (jinja2's policy)."""
_ENCODE = json.JSONEncoder(sort_keys=True, ensure_ascii=False).encode  # json.dumps with those


def _same_as(value: Any, other: Any) -> bool:
    """The ``sameas`` test: identity, which a tracked render cannot record (so not remembered)."""
    if _ACTIVE is not None and (
        isinstance(value, tracking.Tracked) or isinstance(other, tracking.Tracked)
    ):
        _ACTIVE.unsafe = True
        value = value._gen_value if isinstance(value, tracking.Tracked) else value
        other = other._gen_value if isinstance(other, tracking.Tracked) else other
    return value is other


class Renderer:
    """Renders components; templates are compiled once and reused for every site.

    ``code_cache``: a directory for jinja2's compiled templates (created if missing).
    ``patch=False`` when a single site renders (nothing to patch later texts from).
    With ``reuse`` (the default), a template's output is remembered by the values it read
    (``tracking``) and reused for every later render that would read the same values: each
    distinct object is rendered once per compile. ``reuse=False`` renders every time (the
    reference the bench compares against, byte for byte).
    """

    def __init__(
        self,
        root: Path,
        late: frozenset[str] = frozenset(),
        reuse: bool = True,
        code_cache: Path | None = None,
        patch: bool = True,
    ) -> None:
        self.root = root
        self.patch = patch
        """Keep parsed texts to patch later ones from (``_parse``): worth it when several sites
        render."""
        self.late = late
        self.reuse = reuse
        if code_cache is not None:
            try:
                code_cache.mkdir(parents=True, exist_ok=True)
            except OSError:
                code_cache = None  # a read-only home: compile templates every time
        self._memos: dict[tuple[str, tuple[str, ...]], tracking.Memo] = {}
        self._templates: dict[str, list[str]] = {}
        self._seen: dict[tuple[str, str], list[int]] = {}
        """(template, unit) -> [outputs reused, outputs rendered] (see ``_GIVE_UP``)."""
        self._bases: dict[tuple[str, str, int], list[_Base]] = {}
        """(template, unit, lines) -> the first texts of that many lines the template rendered for
        the unit that no earlier one could patch (up to ``_MAX_BASES``), as lines, their documents
        and where their one-line scalars are (``_patch``)."""
        self._values: dict[str, Any] = {}
        """A one-line scalar's text -> its value (``_patch``)."""
        """Late variables: computed from the site's objects, given to ``site`` after its render."""
        self._reads_late: dict[str, bool] = {}
        self.components_dir = root / "components"
        # Sites often render identical text (same service, same settings); parse each text once.
        # The parsed objects are shared between sites, so nothing downstream may modify them.
        self._parsed: dict[str, list[dict[str, Any]]] = {}
        self.env = _Environment(
            loader=jinja2.FileSystemLoader(str(self.components_dir)),
            auto_reload=False,  # templates do not change during a compile: no stat per render
            # Compiled templates, by name and source checksum (a per-user cache, outside the
            # project): a one-site compile does not compile every template again.
            bytecode_cache=jinja2.FileSystemBytecodeCache(str(code_cache)) if code_cache else None,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            autoescape=False,
        )
        self.env.policies["json.dumps_kwargs"] = dict(_DUMPS_KWARGS)
        self.env.policies["json.dumps_function"] = _dumps
        self.env.tests["sameas"] = _same_as
        self.env.filters["tojson"] = _tojson
        self.env.filters["sha256"] = lambda text: hashlib.sha256(str(text).encode()).hexdigest()
        self.env.globals.update(fail=_fail, port_name=port_name, probe=probe)

    def components(self) -> list[str]:
        """Names of the components that exist (directories under components/)."""
        if not self.components_dir.is_dir():
            return []
        return sorted(
            p.name
            for p in self.components_dir.iterdir()
            if p.is_dir() and not p.name.startswith(".")
        )

    def templates(self, component: str) -> list[str]:
        """Template names of a component, relative to components/, in file-name order (listed
        once per compile)."""
        found = self._templates.get(component)
        if found is None:
            directory = self.components_dir / component
            found = self._templates[component] = sorted(
                f"{component}/{p.name}"
                for p in directory.iterdir()
                if p.is_file() and p.name.endswith(TEMPLATE_SUFFIXES)
            )
        return found

    def component_files(self, component: str) -> list[Path]:
        """Every file of a component (templates and anything they include), for change detection."""
        return sorted(p for p in (self.components_dir / component).rglob("*") if p.is_file())

    def site(
        self, target: str, params: dict[str, Any], late: Mapping[str, Any] | None = None
    ) -> list[Rendered]:
        """Render the site's components, then each enabled service's component.

        Without ``late``, templates reading a late variable are left out; with it, only those are
        rendered, with the late values (so every template of a site is rendered once in all).
        """
        site = params["site"]
        services = {n: s for n, s in params["services"].items() if s.get("enabled", True)}
        base: dict[str, Any] = {
            "target": target,
            "site": site,
            "services": services,
            "parameters": params,
        }
        if late is not None:
            base.update(late)
        out: list[Rendered] = []
        for component in site.get("components", []):
            out += self._component(component, base, "site", late is not None)
        for name, service in services.items():
            labels = {
                "app": name,
                "app.kubernetes.io/name": name,
                "app.kubernetes.io/managed-by": "gen",
                **service.get("labels", {}),
            }
            context = {
                **base,
                "name": name,
                "service": service,
                "labels": labels,
                "selector": {"app": name},
            }
            unit = f"service {name}"
            out += self._component(service["component"], context, unit, late is not None)
        return out

    def _component(
        self, component: str, context: dict[str, Any], unit: str, late: bool
    ) -> list[Rendered]:
        out: list[Rendered] = []
        for name in self.templates(component):
            if self._reads_late_variable(name) != late:
                continue
            source = f"components/{name}"
            text = self._render(name, context, source, unit)
            docs = self._parsed.get(text)
            if docs is None:
                docs = self._parsed[text] = [
                    _check_shape(obj, source, unit) for obj in self._parse(text, name, source, unit)
                ]
            out += [Rendered(obj, source, unit, (text, index)) for index, obj in enumerate(docs)]
        return out

    def _parse(self, text: str, name: str, source: str, unit: str) -> list[dict[str, Any]]:
        """The documents of a rendered text; when the text differs from one this template gave
        earlier for ``unit`` (one of the first ``_MAX_BASES`` of that many lines that were parsed)
        only in a few whole one-line scalars (a site's registry or namespace), that parse with
        those values replaced (each parsed alone, the same way)."""
        key = (name, unit, text.count("\n"))
        bases = self._bases.get(key)
        if bases is not None:
            for base in bases:
                patched = _patch(base, text, self._values)
                if patched is not None:
                    return patched
            if len(bases) >= _MAX_BASES:
                return yamlio.load_rendered(text, f"{source} ({unit}, rendered)")
        if not self.patch:
            return yamlio.load_rendered(text, f"{source} ({unit}, rendered)")
        docs, lines = yamlio.load_rendered_lines(text, f"{source} ({unit}, rendered)")
        if lines and text.isascii() and "\r" not in text:
            self._bases.setdefault(key, []).append((text.split("\n"), docs, lines))
        return docs

    def _reads_late_variable(self, name: str) -> bool:
        """Whether template ``name`` itself reads a late variable (parsed once per template)."""
        if not self.late:
            return False
        if name not in self._reads_late:
            loader = self.env.loader
            assert loader is not None  # set in __init__
            try:
                source, _, _ = loader.get_source(self.env, name)
                # A name the source does not contain cannot be read: parse only the others.
                if not any(variable in source for variable in self.late):
                    found = set()
                else:
                    parsed = self.env.parse(source)
                    found = jinja2.meta.find_undeclared_variables(parsed) & self.late
            except jinja2.TemplateSyntaxError:
                found = set()  # an early template then: its render reports the error, located
            self._reads_late[name] = bool(found)
        return self._reads_late[name]

    def _render(self, name: str, values: dict[str, Any], source: str, unit: str) -> str:
        """Template ``name``'s text for the context ``values`` (plain data: the helpers are added
        here), reused when an earlier render read the same values."""
        if not self.reuse:
            return self._render_plain(name, values, source, unit)
        seen = self._seen.get((name, unit))
        if seen is None:
            seen = self._seen[(name, unit)] = [0, 0]
        elif seen[1] >= _GIVE_UP and not seen[0]:
            # This template never gave this unit an earlier output (the unit's values differ from
            # site to site, e.g. its registry): tracking costs more than it saves.
            return self._render_plain(name, values, source, unit)
        key = (name, tuple(values))
        memo = self._memos.get(key)
        if memo is None:
            memo = self._memos[key] = tracking.Memo()
        text: str | None = memo.lookup(values)
        if text is not None:
            seen[0] += 1
            return text
        seen[1] += 1
        global _ACTIVE
        recorder = tracking.Recorder({})
        wrapped = {k: tracking.wrap(v, (k,), recorder) for k, v in values.items()}
        recorder.roots = wrapped
        _ACTIVE = recorder
        try:
            text = self.env.get_template(name).render({**wrapped, **_helpers(wrapped["site"])})
        except Exception:
            text = None  # the error as an untracked render raises it, below
        finally:
            _ACTIVE = None
        if text is None:
            return self._render_plain(name, values, source, unit)
        if not recorder.unsafe:
            memo.add(recorder.reads, text)
        return text

    def _render_plain(self, name: str, values: dict[str, Any], source: str, unit: str) -> str:
        try:
            return self.env.get_template(name).render({**values, **_helpers(values["site"])})
        except jinja2.TemplateSyntaxError as e:
            raise errors.located(
                Location(source, e.lineno or 0), f"template syntax error: {e.message}"
            ) from e
        except TemplateFailure as e:
            raise errors.located(Location(source, _template_line(e, source)), f"{unit}: {e}") from e
        except jinja2.UndefinedError as e:
            raise errors.located(
                Location(source, _template_line(e, source)),
                f"{unit}: undefined value: {e.message}; "
                "set it in the inventory or guard it with {% if %} / | default",
            ) from e
        except (
            TypeError,
            ValueError,
            KeyError,
            AttributeError,
            ZeroDivisionError,
            jinja2.TemplateError,
        ) as e:
            raise errors.located(
                Location(source, _template_line(e, source)),
                f"{unit}: template failed: {type(e).__name__}: {e}",
            ) from e


_GIVE_UP = 4
"""A template rendered this many times for a unit (in as many sites) without once reusing an
output is rendered without tracking from then on: its output for that unit differs per site."""

_Base = tuple[list[str], list[dict[str, Any]], dict[int, yamlio.Line]]
_MAX_PATCHED_LINES = 8
_MAX_BASES = 4
"""Texts kept per (template, unit, lines) to patch others from: the same number of lines can
come from different structures (a site with a pull secret and one line fewer elsewhere)."""
# A value that scans as one plain scalar token to the end of the line whatever follows it: no
# indicator first, no space, comment, flow indicator or quote inside, no ':' at the end.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_./=+][A-Za-z0-9_./=+:@~-]*(?<!:)")
_QUOTED_VALUE = re.compile(r'"(?:[^"\\\x00-\x1f\x7f]|\\[^\x00-\x1f])*"')
_UNSET: Any = object()


def _patch(base: _Base, text: str, values: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The documents of ``text`` from those of the base text, when every line that differs is a
    whole one-line scalar of the base (plain or double-quoted) and still is one of the same style
    in ``text`` (same indentation and key, the value up to the end of the line): the structure is
    then the base's, and only those values change. None when that cannot be shown."""
    old_lines, docs, where = base
    if not text.isascii() or "\r" in text:
        return None
    new_lines = text.split("\n")
    if len(new_lines) != len(old_lines):
        return None
    changed = [i for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b]
    if not changed or len(changed) > _MAX_PATCHED_LINES:
        return None
    updates = []
    for i in changed:
        entry = where.get(i)
        if entry is None:
            return None
        doc, path, start, end, style = entry
        old, new = old_lines[i], new_lines[i]
        if end != len(old) or old[:start] != new[:start]:
            return None
        scalar = new[start:]
        pattern = _PLAIN_VALUE if style is None else _QUOTED_VALUE
        if not pattern.fullmatch(scalar):
            return None
        value = values.get(scalar, _UNSET)
        if value is _UNSET:
            # A string as written (no escape to decode, no int/bool/null to resolve): no parse.
            if style is None and yamlio.plain_is_string(scalar):
                value = values[scalar] = scalar
            elif style is not None and "\\" not in scalar:
                value = values[scalar] = scalar[1:-1]
        if value is _UNSET:
            try:
                value = yamlio.load_rendered(f"v: {scalar}\n", "<value>")[0]["v"]
            except errors.GenError:
                return None
            values[scalar] = value
        updates.append((doc, path, value))
    out = list(docs)
    for doc, path, value in updates:
        out[doc] = _replaced(out[doc], path, value)
    return out


def _replaced(container: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``container`` with the value at ``path`` replaced (copies along the path only)."""
    key = path[0]
    copy = dict(container) if type(container) is dict else list(container)
    copy[key] = value if len(path) == 1 else _replaced(container[key], path[1:], value)
    return copy


def _helpers(site: Any) -> dict[str, Any]:
    """The template functions that read the site (tracked when ``site`` is)."""
    return {
        "image_ref": lambda svc: image_ref(site, svc),
        "ingress_host": lambda name, entry: ingress_host(site, name, entry),
        "kube_at_least": lambda version: _kube_at_least(site["kubernetes_version"], version),
    }


def _template_line(error: BaseException, source: str) -> int:
    """The template line being rendered when ``error`` was raised (jinja2 rewrites tracebacks)."""
    line = 0
    tb = error.__traceback__
    suffix = source.split("/", 1)[1] if "/" in source else source
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(suffix):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _fail(message: str) -> None:
    raise TemplateFailure(message)


def _check_shape(obj: Any, source: str, unit: str) -> dict[str, Any]:
    where = Location(source)
    if not isinstance(obj, dict):
        raise errors.located(
            where,
            f"{unit}: a template document must be a mapping (a Kubernetes object), "
            f"got {type(obj).__name__}",
        )
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            raise errors.located(where, f"{unit}: object without {key}")
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise errors.located(where, f"{unit}: {obj['kind']} without metadata.name")
    return obj


def image_ref(site: dict[str, Any], service: dict[str, Any]) -> str:
    """``<registry>/<image>:<tag>``: images always come from the site's own registry."""
    return f"{site['registry']}/{service['image']}:{service['tag']}"


def ingress_host(site: dict[str, Any], name: str, entry: dict[str, Any]) -> str:
    """The host of an ingress entry: explicit host, nip.io on the entry's IP, the site's domain, or
    its first IP."""
    if entry.get("host"):
        return str(entry["host"])
    ingress = site["ingress"]
    if entry.get("ip"):
        return f"{name}.{site['namespace']}.{entry['ip']}.nip.io"
    if ingress.get("domain"):
        return f"{name}.{ingress['domain']}"
    return f"{name}.{site['namespace']}.{ingress['ips'][0]}.nip.io"


def port_name(port: dict[str, Any]) -> str:
    """A port's name, ``http-<port>`` (``udp-<port>``, ``sctp-<port>``) when unset, as in the
    article."""
    if port.get("name"):
        return str(port["name"])
    protocol = port.get("protocol", "TCP")
    return f"{'http' if protocol == 'TCP' else protocol.lower()}-{port['port']}"


def probe(spec: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes probe from the inventory's short form (tcp_port, http_path + http_port,
    command)."""
    out: dict[str, Any] = {}
    if "tcp_port" in spec:
        out["tcpSocket"] = {"port": spec["tcp_port"]}
    elif "http_path" in spec:
        out["httpGet"] = {"path": spec["http_path"], "port": spec["http_port"]}
    else:
        out["exec"] = {"command": list(spec["command"])}
    names: dict[str, str] = {
        "initial_delay_seconds": "initialDelaySeconds",
        "period_seconds": "periodSeconds",
        "timeout_seconds": "timeoutSeconds",
        "failure_threshold": "failureThreshold",
    }
    for key, k8s_key in names.items():
        if key in spec:
            out[k8s_key] = spec[key]
    return out


def _kube_at_least(cluster: str, version: str) -> bool:
    """The template global ``kube_at_least("1.21")``: is the site's cluster that version or newer?

    A malformed version fails the template at the line that asked (a TemplateFailure).
    """
    try:
        return kube_version(cluster, "site.kubernetes_version") >= kube_version(
            version, "kube_at_least()"
        )
    except errors.GenError as e:
        raise TemplateFailure(str(e)) from e
