"""Replace compiled/ with a new tree: unchanged files untouched, stale ones removed, each site
atomically.

No site directory changes before every site has compiled (the pipeline guarantees that). Each site
that changed is staged in ``compiled/.staging-<site>`` (as soon as it has compiled: ``stage``):
new files written, unchanged ones hard-linked (so their content and mtime stay as they were); once
all have compiled, each is swapped with the old directory (``commit``) in one
``renameat2(RENAME_EXCHANGE)`` where the kernel has it (a rename pair otherwise); if one failed,
the staging directories are removed (``discard``). A crash leaves
either the old or the new site, and a leftover staging directory that the next run removes.
There is no fsync: compiled/ is regenerated from git-tracked inputs, and on this machine's disk an
fsync per site cost more than the whole compile (each forces a journal commit of all data written).
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.core import errors

STAGING_PREFIX = ".staging-"
TRASH_PREFIX = ".trash-"


@dataclass(frozen=True)
class SiteChange:
    """What changes in one site's directory."""

    site: str
    files: dict[str, bytes]
    added: tuple[str, ...]
    modified: tuple[str, ...]
    removed: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.modified or self.removed)


@dataclass(frozen=True)
class Plan:
    """Everything a write would do; ``paths()`` lists it for ``--check``."""

    compiled: Path
    changes: tuple[SiteChange, ...]
    removed_sites: tuple[str, ...] = ()
    removed_other: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not (
            self.removed_sites or self.removed_other or any(not c.empty for c in self.changes)
        )

    def paths(self) -> list[str]:
        """Every path under compiled/ that would change, as ``+ path``, ``~ path``, ``- path``."""
        out = []
        for change in self.changes:
            out += [f"+ {change.site}/{p}" for p in change.added]
            out += [f"~ {change.site}/{p}" for p in change.modified]
            out += [f"- {change.site}/{p}" for p in change.removed]
        out += [f"- {site}/" for site in self.removed_sites]
        out += [f"- {name}" for name in self.removed_other]
        return sorted(out, key=lambda s: s[2:])


def plan(
    compiled: Path,
    sites: dict[str, dict[str, bytes]],
    keep: Iterable[str] | None,
    owned: Callable[[str], bool] | None = None,
) -> Plan:
    """Compare the new trees with compiled/ on disk.

    ``keep`` is the set of site names that stay (all targets); entries of compiled/ outside it are
    removed. ``None`` means a partial compile (``--target``): nothing else is removed. ``owned``
    narrows the removals to the entries it accepts (a shard removes only its own).
    """
    changes = tuple(site_change(compiled, site, files) for site, files in sorted(sites.items()))
    removed_sites, removed_other = removals(compiled, keep, owned)
    return Plan(compiled, changes, removed_sites, removed_other)


def removals(
    compiled: Path, keep: Iterable[str] | None, owned: Callable[[str], bool] | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The site directories and other entries of compiled/ outside ``keep`` (see ``plan``)."""
    removed_sites: list[str] = []
    removed_other: list[str] = []
    if keep is not None and compiled.is_dir():
        wanted = set(keep)
        for entry in sorted(compiled.iterdir()):
            if entry.name.startswith((STAGING_PREFIX, TRASH_PREFIX)) or entry.name in wanted:
                continue
            if owned is not None and not owned(entry.name):
                continue
            (removed_sites if entry.is_dir() else removed_other).append(entry.name)
    return tuple(removed_sites), tuple(removed_other)


def site_change(compiled: Path, site: str, files: dict[str, bytes]) -> SiteChange:
    """What writing ``files`` as compiled/<site>/ changes (compared in memory, nothing written)."""
    return _site_change(compiled / site, site, files)


def _site_change(directory: Path, site: str, files: dict[str, bytes]) -> SiteChange:
    existing = _listing(directory)
    added = [rel for rel in files if rel not in existing]
    present = [rel for rel in files if rel in existing]
    prefix = f"{directory}{os.sep}"
    same = _parallel(lambda rel: _same(prefix + rel, files[rel]), present)
    modified = [rel for rel, unchanged in zip(present, same, strict=True) if not unchanged]
    removed = sorted(set(existing) - set(files))
    return SiteChange(site, files, tuple(sorted(added)), tuple(sorted(modified)), tuple(removed))


def _listing(directory: Path) -> set[str]:
    """Every file under ``directory``, as a relative path with ``/`` (empty if it is missing)."""
    out: set[str] = set()
    stack = [(str(directory), "")]
    while stack:
        path, rel = stack.pop()
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue  # missing (or unreadable, as os.walk skips it)
        for entry in entries:
            if entry.is_dir():  # as os.walk: a symlink to a directory is neither listed nor walked
                if not entry.is_symlink():
                    stack.append((entry.path, f"{rel}{entry.name}/"))
            else:
                out.add(rel + entry.name)
    return out


_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


def _same(path: str, content: bytes) -> bool:
    """Whether the file at ``path`` holds exactly ``content`` (one open, one fstat, one read)."""
    try:
        fd = os.open(path, _READ)
    except OSError:
        return False
    try:
        if os.fstat(fd).st_size != len(content):
            return False
        data = os.read(fd, len(content) + 1)
        while len(data) < len(content) + 1:
            more = os.read(fd, len(content) + 1 - len(data))
            if not more:
                break
            data += more
        return data == content
    except OSError:
        return False
    finally:
        os.close(fd)


def apply(p: Plan) -> None:
    """Carry out a plan. Raises a GenError (with the path) if the disk refuses."""
    try:
        prepare(p.compiled)
        for change in p.changes:
            if not change.empty:
                _stage(p.compiled, change)
                _swap(p.compiled, change)
        _remove(p)
    except OSError as e:
        raise _cannot_write(e, p.compiled) from e


# A compile stages each site as soon as it has compiled (``prepare``, then ``stage`` per site)
# and swaps them all in once every site has (``commit``), or removes the staging directories if
# one failed (``discard``): compiled/ itself changes only when everything compiled, as with
# ``apply``, while writing overlaps compiling and no site's files wait in memory.


def prepare(compiled: Path) -> None:
    """compiled/, created if missing, without leftovers of an interrupted run."""
    try:
        compiled.mkdir(parents=True, exist_ok=True)
        clean_leftovers(compiled)
    except OSError as e:
        raise _cannot_write(e, compiled) from e


def stage(compiled: Path, change: SiteChange) -> None:
    """Write a changed site into its staging directory (``commit`` swaps it in)."""
    try:
        _stage(compiled, change)
    except OSError as e:
        raise _cannot_write(e, compiled) from e


def commit(p: Plan) -> None:
    """Swap in every changed site of ``p``, already staged, and make its removals."""
    try:
        for change in p.changes:
            if not change.empty:
                _swap(p.compiled, change)
        _remove(p)
    except OSError as e:
        raise _cannot_write(e, p.compiled) from e


def discard(compiled: Path, sites: Iterable[str]) -> None:
    """Remove the staging directories of ``sites`` (a compile that failed)."""
    for site in sites:
        shutil.rmtree(compiled / f"{STAGING_PREFIX}{site}", ignore_errors=True)


def _cannot_write(e: OSError, compiled: Path) -> errors.GenError:
    return errors.GenError(
        f"cannot write {e.filename or compiled}: {e.strerror}; "
        "compiled/ keeps each site either whole-old or whole-new"
    )


def _remove(p: Plan) -> None:
    for site in p.removed_sites:
        _remove_dir(p.compiled, p.compiled / site)
    for name in p.removed_other:
        (p.compiled / name).unlink(missing_ok=True)


def clean_leftovers(compiled: Path) -> None:
    """Remove staging and trash directories an interrupted run left behind."""
    for entry in compiled.iterdir():
        if entry.name.startswith((STAGING_PREFIX, TRASH_PREFIX)):
            shutil.rmtree(entry, ignore_errors=True)


def _stage(compiled: Path, change: SiteChange) -> None:
    target = compiled / change.site
    staging = compiled / f"{STAGING_PREFIX}{change.site}"
    shutil.rmtree(staging, ignore_errors=True)
    unchanged = set(change.files) - set(change.added) - set(change.modified)
    for directory in sorted({(staging / rel).parent for rel in change.files}):
        directory.mkdir(parents=True, exist_ok=True)
    old, new = f"{target}{os.sep}", f"{staging}{os.sep}"

    def stage(rel: str) -> None:
        if rel in unchanged:
            _link_or_copy(old + rel, new + rel)
        else:
            _write(new + rel, change.files[rel])

    _parallel(stage, list(change.files))


def _swap(compiled: Path, change: SiteChange) -> None:
    target = compiled / change.site
    staging = compiled / f"{STAGING_PREFIX}{change.site}"
    if target.exists():
        if not _exchange(staging, target):
            trash = compiled / f"{TRASH_PREFIX}{change.site}"
            os.rename(target, trash)
            os.rename(staging, target)
            staging = trash
        shutil.rmtree(staging)
    else:
        os.rename(staging, target)


def _parallel(action: Callable[[str], object], items: list[str]) -> list[object]:
    """``action`` over ``items``, in order, in this thread. Threads made it dearer: on this
    machine's disk 8,000 files cost ~0.3 s of system time written one after another and 5-8 s
    from 8 threads (the kernel's locks spin between them); a compile's workers each write their
    own sites instead (``pipeline.settle``)."""
    return [action(item) for item in items]


def _remove_dir(compiled: Path, directory: Path) -> None:
    trash = compiled / f"{TRASH_PREFIX}{directory.name}"
    os.rename(directory, trash)
    shutil.rmtree(trash)


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


def _write(path: str, content: bytes) -> None:
    # os.open, not open(): three system calls a file instead of six (open() also stats the
    # file, asks whether it is a terminal and seeks), for 16,517 files at 200 sites.
    fd = os.open(path, _CREATE, 0o666)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _link_or_copy(src: str, dest: str) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


@functools.cache
def _renameat2() -> Any:
    """libc's renameat2, or None (looked up once: find_library runs ldconfig)."""
    import ctypes  # here: only a compile that replaces a site needs it
    import ctypes.util

    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return None
    return getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2); False if the platform cannot."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    import ctypes

    err = ctypes.get_errno()
    if err in (38, 22, 95):  # ENOSYS, EINVAL (unsupported flag or fs), EOPNOTSUPP
        return False
    raise OSError(err, os.strerror(err), str(b))
