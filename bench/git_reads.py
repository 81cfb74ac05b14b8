#!/usr/bin/env python3
"""Reading git objects on the two hot paths: gitpython against the git-binary fast path.

    PYTHONPATH=. .venv/bin/python bench/git_reads.py            # --sites 200 --files 83 --repeat 5
    PYTHONPATH=. .venv/bin/python bench/git_reads.py --json

Two synthetic repositories are built in a temporary directory (nothing is compiled):

    diff     ``compiled/`` of N sites x F files (~1.5 KB each) on ``main``; ``gen diff`` lists the
             base side's blob ids and reads only the blobs that differ: 2 (a one-line edit) and
             2 x N (a class edit: every site differs)
    agent    one site's deploy commit: ``manifests/`` of A files, ``index.json``, ``n9e/``; the
             agent lists the commit and reads every blob (first reconcile) or only ``index.json``
             (a no-op reconcile: every manifest is in its parse cache)

Each case runs both readers in the same process, alternating, median of --repeat runs, on warm OS
caches: ``fast`` is what generator.deliver.git.tree does (one ``git ls-tree -r -z`` and one
``git cat-file --batch`` per read, output split in Python); ``gitpython`` is ``git.Repo``: the
commit's tree walked through ``repo.odb`` (a persistent ``cat-file --batch``; trees parsed in
Python) and each blob read with ``repo.odb.stream``. For ``diff`` the gitpython repository is
opened in every run (each ``gen diff`` is a process of its own); for ``agent`` it is opened once
(the agent's loop keeps it). Exit status 1 if the readers disagree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import git

from generator.deliver.git import tree
from generator.deliver.git.repo import open_repo
from generator.run.agent import source

THRESHOLD = 1.10
"""gitpython is used on a hot path unless it costs more than 10% over the fast path."""

Reader = Callable[[Path, str, str, int], dict[str, bytes]]


def fast(root: Path, commit: str, prefix: str, count: int) -> dict[str, bytes]:
    """The fast path: blob ids of everything under ``prefix``, then ``count`` of the blobs.

    With a prefix, what ``gen diff`` runs (generator.deliver.git.tree); without, what the agent
    runs (generator.run.agent.source).
    """
    if prefix:
        ids = tree.listing(root, tree.Ref(commit, commit), prefix)
        chosen = sorted(ids)[:count]
        blobs = tree.read_blobs(root, [ids[p] for p in chosen])
    else:
        local = open_repo(root)
        ids = source._listing(local, commit)
        chosen = sorted(ids)[:count]
        blobs = source._cat(local, sorted({ids[p] for p in chosen}))
    return {p: blobs[ids[p]] for p in chosen}


_KEPT: dict[Path, git.Repo] = {}
"""The agent's repositories, opened once: its loop keeps one for its whole life."""


def with_gitpython(root: Path, commit: str, prefix: str, count: int) -> dict[str, bytes]:
    """The same through gitpython: tree walk and blob streams over one persistent cat-file.

    ``gen diff`` (a prefix) opens the repository per run, as each ``gen diff`` process does; the
    agent (no prefix) reuses one, so its cat-file processes are already running.
    """
    repo = _KEPT.setdefault(root, git.Repo(root)) if not prefix else git.Repo(root)
    try:
        top = repo.commit(commit).tree / prefix.rstrip("/") if prefix else repo.commit(commit).tree
        assert isinstance(top, git.Tree), f"{prefix} is no directory"
        ids = {
            str(item.path)[len(prefix) :]: item.binsha
            for item in top.traverse()
            if isinstance(item, git.Blob)
        }
        chosen = sorted(ids)[:count]
        return {p: repo.odb.stream(ids[p]).read() for p in chosen}
    finally:
        if prefix:
            repo.close()


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _build(root: Path, files: dict[str, int]) -> str:
    """A repository with one commit of ``{path: size}`` (deterministic filler text); its id."""
    _git(root.parent, "init", "--quiet", str(root))
    for path, size in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        line = f"# {path}\nkind: ConfigMap\n"
        target.write_text((line * (size // len(line) + 1))[:size])
    _git(root, "add", "-A")
    _git(
        root,
        "-c",
        "user.name=bench",
        "-c",
        "user.email=bench@localhost",
        "commit",
        "--quiet",
        "-m",
        "bench",
    )
    return _git(root, "rev-parse", "HEAD")


def diff_repo(root: Path, sites: int, per_site: int) -> str:
    return _build(
        root,
        {
            f"compiled/site-{s:03d}/manifests/f{f:03d}.yaml": 900 + 37 * f
            for s in range(sites)
            for f in range(per_site)
        },
    )


def agent_repo(root: Path, objects: int) -> str:
    files = {f"manifests/o{i:04d}.yaml": 700 + 3 * (i % 100) for i in range(objects)}
    files |= {"index.json": 90_000, "n9e/rules.json": 4_000}
    return _build(root, files)


def measure(
    name: str,
    root: Path,
    commit: str,
    prefix: str,
    count: int,
    repeat: int,
) -> dict[str, object]:
    """Both readers, alternating; their medians and gitpython's ratio to the fast path."""
    times: dict[str, list[float]] = {"fast": [], "gitpython": []}
    readers: dict[str, Reader] = {"fast": fast, "gitpython": with_gitpython}
    results = {}
    for _ in range(repeat):
        for label, reader in readers.items():
            start = time.perf_counter()
            results[label] = reader(root, commit, prefix, count)
            times[label].append(time.perf_counter() - start)
    if results["fast"] != results["gitpython"]:
        raise SystemExit(f"{name}: the two readers disagree")
    medians = {label: statistics.median(ts) for label, ts in times.items()}
    return {
        "case": name,
        "blobs read": len(results["fast"]),
        "fast s": round(medians["fast"], 4),
        "gitpython s": round(medians["gitpython"], 4),
        "ratio": round(medians["gitpython"] / medians["fast"], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--files", type=int, default=83, help="files per site in the diff repo")
    parser.add_argument("--objects", type=int, default=1000, help="manifests in the agent's commit")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gen-bench-git-") as tmp:
        diff_root, agent_root = Path(tmp) / "diff", Path(tmp) / "agent"
        diff_commit = diff_repo(diff_root, args.sites, args.files)
        agent_commit = agent_repo(agent_root, args.objects)
        rows = [
            measure(
                "diff: list compiled/, read 2 blobs (one-line edit)",
                diff_root,
                diff_commit,
                "compiled/",
                2,
                args.repeat,
            ),
            measure(
                f"diff: list compiled/, read {2 * args.sites} blobs (class edit)",
                diff_root,
                diff_commit,
                "compiled/",
                2 * args.sites,
                args.repeat,
            ),
            measure(
                "agent: list a commit, read every blob (first reconcile)",
                agent_root,
                agent_commit,
                "",
                args.objects + 2,
                args.repeat,
            ),
            measure(
                "agent: list a commit, read 1 blob (no-op reconcile)",
                agent_root,
                agent_commit,
                "",
                1,
                args.repeat,
            ),
        ]
    for kept in _KEPT.values():
        kept.close()
    if args.json:
        json.dump({"load": os.getloadavg()[0], "rows": rows}, sys.stdout, indent=2)
        print()
        return 0
    print(f"load average {os.getloadavg()[0]:.1f}; gitpython {git.__version__}")
    for row in rows:
        verdict = "over 10%: keep the fast path" if float(str(row["ratio"])) > THRESHOLD else "ok"
        print(
            f"{row['case']:<58} {row['blobs read']:>5} blobs  fast {row['fast s']:.4f} s  "
            f"gitpython {row['gitpython s']:.4f} s  x{row['ratio']}  {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
