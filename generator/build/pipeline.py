"""The pipeline: inventory -> per-site stages (``stages``) -> tree (in memory) -> write.

``compile_site`` runs each site through ``stages()``, the list of what a compile does. Every site
is compiled in memory first; if any site has a problem, every problem of every site is reported
and nothing is written. Sites whose inputs and
output are unchanged since the last compile are skipped (see ``cache``); the rest are compiled in
parallel worker processes when there are many.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generator.build import cache, inventory, write
from generator.core import errors
from generator.core.errors import Problem
from generator.core.location import Location

if TYPE_CHECKING:  # loaded by Context.create: a no-op compile never imports jinja2 or jsonschema
    from generator.build import kube_schema, render
    from generator.build import schemas as validate
    from generator.build.stages import Stage, manifests

REUSE_VARIABLE = "GEN_RENDER_REUSE"
"""Set to 0 to render every template for every site (no reuse by values read): the reference
output ``bench/compile.py`` compares the reusing compile against."""
PARALLEL_THRESHOLD = 16
"""Fewer dirty sites than this compile in-process: forking workers costs more than it saves."""


@dataclass(frozen=True)
class Options:
    """What to compile and how."""

    root: Path
    """Project root holding inventory/, components/, schemas/ and compiled/."""
    targets: tuple[str, ...] = ()
    """Targets to compile; empty means all (and compiled/ entries of removed targets are
    deleted)."""
    check: bool = False
    """Write nothing (neither compiled/ nor .gen-cache/): compare in memory and report what a
    compile would change."""
    jobs: int = 0
    """Worker processes; 0 picks the number of CPUs."""
    use_cache: bool = True
    """Skip sites whose inputs and output are unchanged since the last compile."""
    progress: Callable[[int, int], None] | None = None
    """Called with (sites done, sites to compile) as each site finishes (the CLI draws a bar)."""
    fail_fast: bool = False
    """With ``check``: stop at the first site that differs (or has a problem)."""
    shard: tuple[int, int] | None = None
    """(I, N): compile only the sites of shard I of N (``in_shard``), 1 <= I <= N."""


@dataclass(frozen=True)
class SiteOutput:
    """One compiled site: its files, and what its compile read (for the cache)."""

    name: str
    files: dict[str, bytes]
    inputs: tuple[str, ...]
    probes: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    change: write.SiteChange | None = None
    """What it changes in compiled/ (without the files), once ``settle`` has compared (and, unless
    checking, staged) it."""


@dataclass(frozen=True)
class Result:
    """What a compile did (or, with ``check``, would do)."""

    compiled: tuple[str, ...]
    skipped: tuple[str, ...]
    plan: write.Plan
    warnings: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()
    """With ``check`` and ``fail_fast``: the sites left unchecked after the first difference."""
    selected: int = 0
    """How many sites the targets and the shard selected."""

    @property
    def up_to_date(self) -> bool:
        return self.plan.empty


@dataclass
class Context:
    """Everything compiled once per process and reused for every site."""

    root: Path
    inv: inventory.Inventory
    schemas: validate.Schemas
    renderer: render.Renderer
    kube: kube_schema.Validator
    components: list[str] = field(default_factory=list)
    stages: tuple[Stage, ...] = ()
    objects: dict[Any, manifests.ObjectFile] = field(default_factory=dict)
    """Per-object results by (text, index, namespace, labels, version): sites share most objects."""

    @classmethod
    def create(cls, root: Path, inv: inventory.Inventory | None = None, sites: int = 0) -> Context:
        """Load schemas, templates and validators; ``sites`` to compile (0: unknown) decides if
        keeping parsed texts to patch later ones from pays off."""
        from generator.build import kube_schema, render
        from generator.build import schemas as validate
        from generator.build.stages import agent_rbac
        from generator.formats import encrypted_secret as encrypted

        reuse = os.environ.get(REUSE_VARIABLE, "1") != "0"
        renderer = render.Renderer(
            root,
            late=frozenset({agent_rbac.VARIABLE}),
            reuse=reuse,
            code_cache=kube_schema.cache_root() / "templates",
            patch=sites != 1,
        )
        inv = inv or inventory.Inventory(root, inventory.settings_for(root))
        return cls(
            root,
            inv,
            validate.load(root),  # the fast check is kept on disk: worth it for one site too
            renderer,
            kube_schema.Validator(skip_kinds=[(encrypted.API_VERSION, encrypted.KIND)]),
            renderer.components(),
            stages(),
        )


def run(options: Options) -> Result:
    """Compile the selected targets into compiled/ (or check it), all or nothing."""
    tool = cache.tool_fingerprint()
    # --check writes nothing, so it does not keep the parse cache either (CI checks a fresh clone).
    use_parsed = options.use_cache and not options.check
    parsed = (options.root / cache.PARSE_CACHE, tool) if use_parsed else None
    inv = inventory.Inventory(options.root, inventory.settings_for(options.root), parsed)
    everything = select(inv, options.targets)
    names = [n for n in everything if in_shard(n, options.shard)]
    state = cache.load(options.root, tool) if options.use_cache else cache.State("")
    hasher = cache.Hasher(options.root)
    compiled_dir = options.root / "compiled"
    skipped = [
        n for n in names if options.use_cache and cache.fresh(state, n, hasher, compiled_dir)
    ]
    dirty = [n for n in names if n not in skipped]
    keep = None if options.targets else everything
    shard = options.shard
    owned = (lambda entry: in_shard(entry, shard)) if shard else None
    if options.check:
        return _check(options, compiled_dir, dirty, skipped, keep, owned, inv, len(names))
    outputs: list[SiteOutput] = []
    changes: list[write.SiteChange] = []
    write.prepare(compiled_dir)
    if dirty:
        # Schemas, templates and validators are loaded only when some site needs compiling.
        ctx = Context.create(options.root, inv, len(dirty))

        def arrived(result: SiteOutput | list[Problem]) -> bool:
            if isinstance(result, SiteOutput) and result.change is not None:
                changes.append(result.change)
            return False

        try:
            outputs = compile_sites(
                ctx, dirty, options.jobs, options.progress, arrived, settle(compiled_dir, False)
            )
        except BaseException:
            write.discard(compiled_dir, dirty)
            raise
    removed_sites, removed_other = write.removals(compiled_dir, keep, owned)
    changes.sort(key=lambda c: c.site)
    plan = write.Plan(compiled_dir, tuple(changes), removed_sites, removed_other)
    write.commit(plan)
    _remember(state, outputs, hasher, compiled_dir, options, everything)
    warnings = tuple(w for o in outputs for w in o.warnings)
    return Result(
        tuple(o.name for o in outputs), tuple(skipped), plan, warnings, selected=len(names)
    )


def _check(
    options: Options,
    compiled_dir: Path,
    dirty: list[str],
    skipped: list[str],
    keep: list[str] | None,
    owned: Callable[[str], bool] | None,
    inv: inventory.Inventory,
    selected: int,
) -> Result:
    """``run`` for ``check``: each site compared with compiled/ in memory as it compiles."""
    removed_sites, removed_other = write.removals(compiled_dir, keep, owned)
    changes: list[write.SiteChange] = []

    def arrived(result: SiteOutput | list[Problem]) -> bool:
        """A compared site; True to stop (``fail_fast`` and a difference)."""
        if isinstance(result, list):
            return options.fail_fast
        assert result.change is not None
        changes.append(result.change)  # the report needs the paths only
        return options.fail_fast and not result.change.empty

    outputs: list[SiteOutput] = []
    if dirty and not (options.fail_fast and (removed_sites or removed_other)):
        ctx = Context.create(options.root, inv, len(dirty))
        outputs = compile_sites(
            ctx, dirty, options.jobs, options.progress, arrived, settle(compiled_dir, True)
        )
    plan = write.Plan(
        compiled_dir, tuple(sorted(changes, key=lambda c: c.site)), removed_sites, removed_other
    )
    done = {o.name for o in outputs}
    return Result(
        tuple(o.name for o in outputs),
        tuple(skipped),
        plan,
        tuple(w for o in outputs for w in o.warnings),
        tuple(n for n in dirty if n not in done),
        selected,
    )


def shard_of(name: str, total: int) -> int:
    """The shard (1..total) of site ``name``: from a hash of the name alone, so a site stays in
    its shard when other sites are added or removed."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") % total + 1


def in_shard(name: str, shard: tuple[int, int] | None) -> bool:
    return shard is None or shard_of(name, shard[1]) == shard[0]


def select(inv: inventory.Inventory, wanted: Iterable[str]) -> list[str]:
    """The targets to compile, in name order; an unknown name is an error listing the known ones."""
    known = list(inv.target_files())
    wanted = list(wanted)
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise errors.GenError(
            f"unknown target{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"targets: {', '.join(known) or 'none'}"
        )
    return sorted(set(wanted)) if wanted else known


def settle(compiled: Path, check: bool) -> Callable[[SiteOutput], SiteOutput]:
    """For ``compile_sites``: compare a site with compiled/ and, unless ``check``, stage it
    (``write.stage``; ``write.commit`` swaps it in), where it compiled; what it changed is kept
    in ``SiteOutput.change`` and its files leave memory."""

    def settled(out: SiteOutput) -> SiteOutput:
        change = write.site_change(compiled, out.name, out.files)
        if not check and not change.empty:
            write.stage(compiled, change)
        return replace(out, files={}, change=replace(change, files={}))

    return settled


def compile_sites(
    ctx: Context,
    names: list[str],
    jobs: int = 0,
    progress: Callable[[int, int], None] | None = None,
    stop: Callable[[SiteOutput | list[Problem]], bool] | None = None,
    then: Callable[[SiteOutput], SiteOutput] | None = None,
) -> list[SiteOutput]:
    """Compile sites in memory; raise one report with every problem of every site.

    ``stop`` sees each site's result in order; when it returns True, the sites after it are not
    compiled (their results are left out). ``then`` (``settle``) runs on each compiled site in
    the process that compiled it: a worker compares and writes its own sites, so the parent
    neither receives their files through a pipe nor writes them all alone."""
    with _fewer_collections():
        return _compile_sites(ctx, names, jobs, progress, stop, then)


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Python's cyclic garbage collector run less often while sites compile: by default it runs
    after every 700 new container objects, and its full passes over the growing heap (parsed
    classes, templates, rendered objects) cost ~5-10% of a compile; the objects a compile makes
    are almost all acyclic and freed by reference counting anyway."""
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], _GC_THRESHOLD), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


_GC_THRESHOLD = 50_000


def _compile_sites(
    ctx: Context,
    names: list[str],
    jobs: int,
    progress: Callable[[int, int], None] | None,
    stop: Callable[[SiteOutput | list[Problem]], bool] | None,
    then: Callable[[SiteOutput], SiteOutput] | None,
) -> list[SiteOutput]:
    workers = min(jobs or os.cpu_count() or 1, len(names) // 4 or 1)
    done: Iterable[SiteOutput | list[Problem]]
    if len(names) >= PARALLEL_THRESHOLD and workers > 1 and _can_fork():
        done = _parallel(ctx, names, workers, then)
    else:
        done = (_compile_then(ctx, name, then) for name in names)
    results: list[SiteOutput | list[Problem]] = []
    try:
        for result in done:
            results.append(result)
            if progress:
                progress(len(results), len(names))
            if stop is not None and stop(result):
                break
    finally:
        if isinstance(done, Generator):
            done.close()  # stops the workers
    problems = {
        name: r
        for name, r in zip(names[: len(results)], results, strict=True)
        if isinstance(r, list)
    }
    if problems:
        from generator.build import schemas as validate

        found = validate.dedupe(problems)
        sites = len(problems)
        raise errors.ProblemReport(
            found,
            f"{len(found)} problem{'s' if len(found) != 1 else ''} in {sites} "
            f"target{'s' if sites != 1 else ''}; nothing was written",
        )
    return [r for r in results if isinstance(r, SiteOutput)]


def _can_fork() -> bool:
    import multiprocessing  # here: a compile of a few sites never needs it

    return "fork" in multiprocessing.get_all_start_methods()


_WORKER_CONTEXT: Context | None = None
"""The parent's Context, inherited by forked workers (parsed classes, templates, validators)."""
_WORKER_THEN: Callable[[SiteOutput], SiteOutput] | None = None
"""``compile_sites``'s ``then``, inherited by forked workers."""


def _compile_then(
    ctx: Context, name: str, then: Callable[[SiteOutput], SiteOutput] | None
) -> SiteOutput | list[Problem]:
    result = compile_site(ctx, name)
    if then is not None and isinstance(result, SiteOutput):
        return then(result)
    return result


def _parallel(
    ctx: Context,
    names: list[str],
    workers: int,
    then: Callable[[SiteOutput], SiteOutput] | None = None,
) -> Iterator[SiteOutput | list[Problem]]:
    """Results in the order of ``names``, each as soon as it and those before it are done.

    The first site compiles here, before the workers fork: they inherit what it parsed, rendered
    and checked (the shared classes, templates and objects), instead of each doing it again."""
    global _WORKER_CONTEXT, _WORKER_THEN
    first = _compile_then(ctx, names[0], then)
    yield first
    _WORKER_CONTEXT, _WORKER_THEN = ctx, then
    rest = names[1:]
    # What the workers inherit is left out of their collections: their collector neither walks it
    # nor, writing to its objects' headers, copies its pages.
    gc.freeze()
    try:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(workers) as pool:
            yield from pool.imap(
                _compile_in_worker, rest, chunksize=max(1, len(rest) // (workers * 4))
            )
    finally:
        gc.unfreeze()
        _WORKER_CONTEXT = _WORKER_THEN = None


def _compile_in_worker(name: str) -> SiteOutput | list[Problem]:
    assert _WORKER_CONTEXT is not None
    return _compile_then(_WORKER_CONTEXT, name, _WORKER_THEN)


def stages() -> tuple[Stage, ...]:
    """How a site compiles, in order (``generator.build.stages``); a new feature adds a stage."""
    from generator.build.stages import (
        agent_rbac,
        kubekey,
        manifests,
        monitoring,
        parameters,
        rendering,
        secrets,
        site_files,
    )

    return (
        parameters.check,  # schema check, defaults, the files the site reads
        secrets.sealing,  # ?{age:...} -> ciphertext, before any template sees the parameters
        rendering.render,  # the components' templates, except those reading late variables
        secrets.placing,  # the EncryptedSecrets the pods use
        agent_rbac.render,  # the agent's RBAC from the objects so far; the templates reading it
        monitoring.n9e,  # n9e/ files from the parameters and workloads
        manifests.check,  # every object checked and laid out under manifests/
        kubekey.add,  # kubekey-manifest.yaml, kubekey-cluster.yaml, checked against KubeKey
        site_files.add,  # images.txt, index.json
    )


def compile_site(ctx: Context, name: str) -> SiteOutput | list[Problem]:
    """One site from inventory to files: its output, or every problem of the stage that failed."""
    from generator.build.stages import SiteBuild

    try:
        target = ctx.inv.target(name)
    except errors.ProblemReport as e:
        return e.problems
    except errors.GenError as e:
        return [Problem(Location(f"inventory/targets/{name}.yml"), "", str(e))]
    build = SiteBuild(name, target, target.parameters)
    try:
        for stage in ctx.stages:
            build = stage(ctx, build)
    except errors.ProblemReport as e:
        return e.problems
    warnings = (*(w.format() for w in target.warnings), *build.warnings)
    return SiteOutput(name, dict(build.files), build.inputs, target.probes, warnings)


def _remember(
    state: cache.State,
    outputs: list[SiteOutput],
    hasher: cache.Hasher,
    compiled: Path,
    options: Options,
    names: list[str],
) -> None:
    if not options.use_cache:
        return
    for out in outputs:
        inputs = {rel: hasher.digest(rel) or "" for rel in out.inputs}
        state.sites[out.name] = cache.SiteState(
            inputs, list(out.probes), cache.stat_files(compiled / out.name)
        )
    kept = len(state.sites)
    if not options.targets:
        state.sites = {k: v for k, v in state.sites.items() if k in names}
    if outputs or len(state.sites) != kept:  # a no-op leaves the state file as it is
        cache.save(options.root, state)
