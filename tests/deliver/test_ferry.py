"""The ferry end to end with real git, real bundles and real SSH signatures.

Every refusal is checked the same way: the outcome says why, the inside repository's refs are
exactly what they were, and (for a rejection) the envelope sits in ``rejected/`` with REASON.txt.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from generator.cli import app
from generator.core import units
from generator.core.errors import GenError
from generator.deliver import publish
from generator.deliver.ferry import ledger
from generator.deliver.ferry import pack as packer
from generator.deliver.ferry import status as ferry_status
from generator.deliver.ferry.receive import QUARANTINE, Report, Status
from generator.deliver.git import plumbing, sign
from generator.deliver.git.repo import RefUpdate, open_repo
from generator.formats import envelope
from tests.support.ferry import IDENTITY, OTHER_SITE, SITE, World, refs, rev
from tests.support.project import REPO

BRANCH = publish.branch(SITE)


synced = pytest.mark.parametrize("world", ["synced"], indirect=True)
"""The test starts with both sides in sync: the first (full) envelope of SITE already imported."""


def assert_rejected(
    w: World, report: Report, name: str, before: dict[str, str], *words: str
) -> str:
    """The envelope was rejected for a reason containing ``words``, moved aside with it,
    refs untouched."""
    outcome = w.outcome(report, name)
    assert outcome.status is Status.REJECTED, outcome
    for word in words:
        assert word in outcome.message, outcome.message
    reason = (w.drop / "rejected" / name / "REASON.txt").read_text()
    assert outcome.message in reason and name in reason
    assert not (w.drop / name).exists()
    assert refs(w.inside) == before
    assert not report.ok
    return outcome.message


# --- the round trip ---------------------------------------------------------------------------


def test_full_then_incremental_envelope_arrive_verified_on_the_inside(world: World) -> None:
    first = world.pack()
    report = world.receive()
    assert [o.status for o in report.outcomes] == [Status.IMPORTED]
    assert rev(world.inside, BRANCH) == rev(world.deploy, BRANCH)
    tip = world.change()
    second = packer.pack(packer.Request(SITE), world.drop, world.pack_settings())
    assert second.path is not None, second.note
    assert second.manifest and not second.manifest.full and second.manifest.basis_sequence == 1
    assert second.size < 10_000
    report = world.receive()
    assert [(o.name, o.status) for o in report.outcomes] == [(second.path.name, Status.IMPORTED)]
    assert rev(world.inside, BRANCH) == tip
    assert sorted(p.name for p in (world.drop / "imported").iterdir()) == [
        first.name,
        second.path.name,
    ]


def test_inside_repository_gets_only_the_sites_it_takes_and_only_their_branches(
    world: World,
) -> None:
    world.pack(SITE)
    world.pack(OTHER_SITE)
    report = world.receive(SITE, OTHER_SITE)
    assert report.ok
    heads = {r for r in refs(world.inside) if r.startswith("refs/heads/")}
    assert heads == {BRANCH, publish.branch(OTHER_SITE)}


@synced
def test_status_shows_last_imported_sequence_tip_and_time(world: World) -> None:
    world.change()
    world.pack()
    world.receive()
    [row] = ferry_status.status(world.inside)
    assert (row.site, row.side, row.sequence, row.tip, row.branch) == (
        SITE,
        "imported",
        2,
        rev(world.deploy, BRANCH),
        "at tip",
    )
    sent = [r for r in ferry_status.status(world.deploy) if r.site == SITE]
    assert [(r.side, r.sequence) for r in sent] == [("sent", 2)]


def test_pack_writes_nothing_when_nothing_changed_since_last_sent(world: World) -> None:
    world.pack()
    packed = packer.pack(packer.Request(SITE), world.drop, world.pack_settings())
    assert packed.path is None and "nothing new since sequence 1" in packed.note
    assert [p.name for p in world.drop.iterdir()] == [envelope.envelope_name(SITE, 1)]


def test_manifest_is_canonical_and_names_basis_tip_hashes_and_expiry(world: World) -> None:
    world.pack()
    tip = world.change()
    path = world.pack()
    raw = (path / envelope.MANIFEST).read_bytes()
    body = json.loads(raw)
    assert raw == (json.dumps(body, sort_keys=True, indent=1) + "\n").encode()
    assert (body["site"], body["sequence"], body["tip"], body["basis_sequence"]) == (
        SITE,
        2,
        tip,
        1,
    )
    basis = ledger.Ledger(open_repo(world.deploy), ledger.SENT).find(SITE, 1)
    assert basis is not None
    assert body["basis"] == basis.manifest.tip
    assert body["files"] == [
        {
            "name": "bundle",
            "size": (path / "bundle").stat().st_size,
            "sha256": envelope.digest((path / "bundle").read_bytes()),
        }
    ]
    assert envelope.parse(raw).expires - envelope.parse(raw).created == timedelta(days=30)


# --- damaged or forged envelopes --------------------------------------------------------------


@synced
def test_bit_flip_in_bundle_is_rejected_before_git_reads_it(world: World) -> None:
    world.change()
    path = world.pack()
    data = bytearray((path / "bundle").read_bytes())
    data[len(data) // 2] ^= 0x04
    (path / "bundle").write_bytes(bytes(data))
    before = refs(world.inside)
    assert_rejected(
        world, world.receive(), path.name, before, "bundle sha256", "damaged in transit"
    )


@synced
def test_truncated_bundle_is_rejected(world: World) -> None:
    world.change()
    path = world.pack()
    data = (path / "bundle").read_bytes()
    (path / "bundle").write_bytes(data[: len(data) - 20])
    before = refs(world.inside)
    assert_rejected(world, world.receive(), path.name, before, "truncated")


@synced
def test_tampered_manifest_fails_its_signature(world: World) -> None:
    world.change()
    path = world.pack()
    manifest = path / envelope.MANIFEST
    manifest.write_bytes(manifest.read_bytes().replace(b'"expires": "20', b'"expires": "21'))
    before = refs(world.inside)
    assert_rejected(world, world.receive(), path.name, before, "signature does not match")


@synced
def test_manifest_signed_by_an_unknown_key_is_rejected_naming_its_fingerprint(world: World) -> None:
    world.change()
    path = world.pack()
    raw = (path / envelope.MANIFEST).read_bytes()
    (path / envelope.SIGNATURE).write_bytes(
        sign.sign(raw, world.keys.stranger.private, envelope.NAMESPACE)
    )
    before = refs(world.inside)
    message = assert_rejected(world, world.receive(), path.name, before, "does not trust")
    assert "SHA256:" in message


@synced
def test_signature_for_another_namespace_is_rejected(world: World) -> None:
    world.change()
    path = world.pack()
    raw = (path / envelope.MANIFEST).read_bytes()
    (path / envelope.SIGNATURE).write_bytes(sign.sign(raw, world.keys.release.private, "git"))
    assert_rejected(
        world, world.receive(), path.name, refs(world.inside), "signature does not match"
    )


@pytest.mark.parametrize("signer", ["nobody", "stranger"])
@synced
def test_untrusted_commit_inside_a_validly_signed_bundle_is_rejected(
    world: World, signer: str
) -> None:
    repo = open_repo(world.deploy)
    parent = repo.resolve(BRANCH)
    assert parent
    key = world.keys.stranger.private if signer == "stranger" else None
    commit = plumbing.commit_tree(
        repo, plumbing.tree_of(repo, parent), [parent], "sneaky\n", IDENTITY, key
    )
    repo.update_refs([RefUpdate(BRANCH, commit, parent)])
    path = world.pack()
    before = refs(world.inside)
    message = assert_rejected(
        world, world.receive(), path.name, before, "not signed by an allowed signer", commit[:12]
    )
    assert ("not signed" if signer == "nobody" else "does not trust") in message


@synced
def test_signed_but_non_canonical_manifest_is_rejected(world: World) -> None:
    world.change()
    path = world.pack()
    raw = json.dumps(
        json.loads((path / envelope.MANIFEST).read_bytes())
    ).encode()  # valid JSON, other layout
    (path / envelope.MANIFEST).write_bytes(raw)
    (path / envelope.SIGNATURE).write_bytes(
        sign.sign(raw, world.keys.release.private, envelope.NAMESPACE)
    )
    assert_rejected(world, world.receive(), path.name, refs(world.inside), "canonical")


# --- a hostile drop folder ---------------------------------------------------------------------


def make_hostile(path: Path, kind: str) -> None:
    """Put something that is not a regular file at ``path`` (replacing what is there)."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    if kind == "directory":
        path.mkdir()
    elif kind == "FIFO":
        os.mkfifo(path)
    elif kind == "link to /dev/zero":
        os.symlink("/dev/zero", path)
    else:  # a link to a large file: it must be refused, not read whole into memory
        large = path.parent.parent / "large"
        with open(large, "wb") as f:
            f.truncate(1 << 33)
        os.symlink(large, path)


@pytest.mark.parametrize(
    ("file", "kind", "complaint"),
    [
        (envelope.MANIFEST, "directory", "manifest.json is a directory"),
        (envelope.SIGNATURE, "FIFO", "manifest.json.sig is a FIFO"),
        (envelope.BUNDLE, "link to /dev/zero", "bundle is a symbolic link"),
        (envelope.MANIFEST, "link to a large file", "manifest.json is a symbolic link"),
        (envelope.BUNDLE, "directory", "bundle is a directory"),
    ],
)
@synced
def test_an_envelope_file_that_is_not_a_regular_file_is_rejected_and_poisons_nothing(
    world: World, file: str, kind: str, complaint: str
) -> None:
    world.change()
    path = world.pack()
    intact = shutil.copytree(path, world.drop.parent / "intact")
    make_hostile(path / file, kind)
    before = refs(world.inside)
    message = assert_rejected(world, world.receive(), path.name, before, complaint)
    assert message == f"{complaint}, not a regular file"
    assert world.receive().outcomes == ()  # the drop folder is clean again
    shutil.move(intact, path)
    assert world.receive().ok and rev(world.inside, BRANCH) == rev(world.deploy, BRANCH)


@pytest.mark.parametrize("kind", ["directory", "FIFO", "link to /dev/zero"])
@synced
def test_a_drop_entry_that_is_not_a_directory_is_set_aside_and_later_envelopes_import(
    world: World, kind: str
) -> None:
    world.change()
    path = world.pack()
    make_hostile(world.drop / "aaa-000001", "FIFO" if kind == "directory" else kind)
    report = world.receive()
    stray = world.outcome(report, "aaa-000001")
    assert stray.status is Status.REJECTED
    assert stray.moved_to == world.drop.resolve() / "rejected" / "aaa-000001"
    assert (stray.moved_to / "REASON.txt").read_text().count("not an envelope directory") == 1
    assert world.outcome(report, path.name).status is Status.IMPORTED
    assert rev(world.inside, BRANCH) == rev(world.deploy, BRANCH)


@synced
def test_a_name_with_a_newline_is_printed_escaped_and_cannot_forge_an_output_line(
    world: World,
) -> None:
    world.change()
    path = world.pack()
    forged = f"x\nimported         {path.name}: ok"
    shutil.copytree(path, world.drop / forged)
    before = refs(world.inside)
    code, out, err = gen(
        "ferry",
        "import",
        str(world.drop),
        "--repo",
        str(world.inside),
        "--site",
        SITE,
        "--allowed-signers",
        str(world.keys.allowed_signers),
    )
    shown = f"x\\x0aimported         {path.name}: ok"
    assert code == 1 and "Traceback" not in err
    assert err.startswith(f"rejected         {shown}: {shown} is not an envelope name")
    assert len(err.splitlines()) == 1
    assert out.startswith(f"imported         {path.name}: ") and len(out.splitlines()) == 1
    assert (world.drop / "rejected" / shown / "REASON.txt").is_file()
    assert refs(world.inside) != before and rev(world.inside, BRANCH) == rev(world.deploy, BRANCH)


@synced
def test_an_entry_that_cannot_be_set_aside_is_skipped_with_a_warning_and_blocks_nothing(
    world: World,
) -> None:
    world.change()
    path = world.pack()
    (world.drop / "notes.txt").write_text("hello")
    (world.drop / "rejected").write_text("a file where the rejected folder goes")
    report = world.receive()
    stray = world.outcome(report, "notes.txt")
    assert stray.status is Status.REJECTED and stray.moved_to is None
    assert stray.message == (
        "notes.txt is a regular file, not an envelope directory; warning: could not be set "
        f"aside, skipped: {world.drop.resolve() / 'rejected'} is a regular file, not a directory"
    )
    assert world.outcome(report, path.name).status is Status.IMPORTED
    assert (world.drop / "notes.txt").read_text() == "hello"
    assert rev(world.inside, BRANCH) == rev(world.deploy, BRANCH)


# --- sequence, site, expiry --------------------------------------------------------------------


def test_same_envelope_twice_is_a_no_op(world: World, tmp_path: Path) -> None:
    path = world.pack()
    shutil.copytree(path, tmp_path / "copy")
    world.receive()
    before = refs(world.inside)
    shutil.copytree(tmp_path / "copy", path)
    report = world.receive()
    assert [o.status for o in report.outcomes] == [Status.DUPLICATE] and report.ok
    assert refs(world.inside) == before
    assert (world.drop / "imported" / f"{path.name}.1").is_dir()


def test_replayed_copy_of_an_older_imported_envelope_changes_nothing(
    world: World, tmp_path: Path
) -> None:
    old = world.pack()
    shutil.copytree(old, tmp_path / "old")
    world.receive()
    world.change()
    world.pack()
    world.receive()
    before = refs(world.inside)
    shutil.copytree(tmp_path / "old", old)
    report = world.receive()
    assert [o.status for o in report.outcomes] == [Status.DUPLICATE]
    assert refs(world.inside) == before


def test_older_sequence_never_imported_is_refused_no_rollback(world: World) -> None:
    stale = world.pack(out=world.drop.parent / "held-back")
    world.change()
    world.pack(full=True)
    world.receive()
    shutil.move(stale, world.drop / stale.name)
    before = refs(world.inside)
    assert_rejected(
        world, world.receive(), stale.name, before, "older than the last imported sequence 2"
    )


@synced
def test_rollback_with_a_resigned_older_sequence_is_refused(world: World) -> None:
    world.change()
    world.pack()
    world.receive()
    # the sender's key re-signs sequence 2 pointing back at the first tip: a rollback attempt
    forged_dir = world.drop / "forged"
    first = ledger.Ledger(open_repo(world.inside), ledger.IMPORTED).find(SITE, 1)
    assert first
    shutil.copytree(world.drop / "imported" / envelope.envelope_name(SITE, 1), forged_dir)
    m = first.manifest
    forged = envelope.Manifest(
        m.site, 2, m.tip, None, None, m.created, m.expires, m.sender, m.files
    )
    raw = forged.to_json()
    (forged_dir / envelope.MANIFEST).write_bytes(raw)
    (forged_dir / envelope.SIGNATURE).write_bytes(
        sign.sign(raw, world.keys.release.private, envelope.NAMESPACE)
    )
    before = refs(world.inside)
    assert_rejected(
        world, world.receive(), "forged", before, "already imported with a different manifest"
    )


@synced
def test_envelope_for_another_site_is_rejected(world: World) -> None:
    path = world.pack(OTHER_SITE)
    before = refs(world.inside)
    message = assert_rejected(
        world, world.receive(SITE), path.name, before, f"for site {OTHER_SITE}"
    )
    assert "wrong site" in message
    assert rev(world.inside, publish.branch(OTHER_SITE)) is None
    assert not (
        world.drop / "rejected" / path.name / "bundle"
    ).exists()  # another customer's configuration


@synced
def test_expired_envelope_is_rejected(world: World) -> None:
    world.change()
    path = world.pack()
    later = envelope.parse((path / envelope.MANIFEST).read_bytes()).expires
    before = refs(world.inside)
    assert_rejected(
        world, world.receive(now=later), path.name, before, "expired at", "pack a new envelope"
    )


# --- gaps and order ----------------------------------------------------------------------------


@synced
def test_gap_waits_and_names_the_sequence_to_resend_then_imports_when_it_arrives(
    world: World,
) -> None:
    world.change()
    lost = world.pack(out=world.drop.parent / "lost")
    world.change()
    third = world.pack()
    before = refs(world.inside)
    report = world.receive()
    outcome = world.outcome(report, third.name)
    assert outcome.status is Status.WAITING and not report.ok
    assert "resend sequence 2" in outcome.message and "--since 1" in outcome.message
    assert third.is_dir() and refs(world.inside) == before
    shutil.move(lost, world.drop / lost.name)
    report = world.receive()
    assert [(o.sequence, o.status) for o in report.outcomes] == [
        (2, Status.IMPORTED),
        (3, Status.IMPORTED),
    ]
    assert rev(world.inside, BRANCH) == rev(world.deploy, BRANCH)


@synced
def test_gap_closed_by_packing_since_what_the_inside_has(world: World) -> None:
    world.change()
    world.pack(out=world.drop.parent / "lost")
    world.change()
    resent = world.pack(since=1)
    report = world.receive()
    assert world.outcome(report, resent.name).status is Status.IMPORTED
    assert rev(world.inside, BRANCH) == rev(world.deploy, BRANCH)


def test_incremental_into_an_empty_repository_asks_for_a_full_bundle(world: World) -> None:
    world.pack(out=world.drop.parent / "lost")
    world.change()
    path = world.pack()
    outcome = world.outcome(world.receive(), path.name)
    assert (
        outcome.status is Status.WAITING
        and "--full" in outcome.message
        and "resend sequence 1" in outcome.message
    )
    full = world.pack(full=True)
    report = world.receive()
    assert world.outcome(report, full.name).status is Status.IMPORTED
    superseded = world.outcome(report, path.name)
    assert superseded.status is Status.REJECTED and "superseded" in superseded.message


def test_envelopes_delivered_in_reverse_order_are_imported_in_sequence_order(world: World) -> None:
    names = [world.pack().name]
    for _ in range(2):
        world.change()
        names.append(world.pack().name)
    for label, name in zip(
        "cba", names, strict=True
    ):  # the gatekeeper's names sort the other way round
        os.rename(world.drop / name, world.drop / f"{label}-{name}")
    report = world.receive()
    assert [o.sequence for o in report.outcomes] == [1, 2, 3] and report.ok
    assert rev(world.inside, BRANCH) == rev(world.deploy, BRANCH)


@synced
def test_later_envelope_first_waits_for_the_earlier_one(world: World) -> None:
    world.change()
    second = world.pack(out=world.drop.parent / "late")
    world.change()
    world.pack()
    assert not world.receive().ok
    shutil.move(second, world.drop / second.name)
    assert world.receive().ok
    assert rev(world.inside, BRANCH) == rev(world.deploy, BRANCH)


def test_incomplete_envelope_is_left_in_place(world: World) -> None:
    path = world.pack()
    (path / envelope.SIGNATURE).unlink()
    report = world.receive()
    assert report.outcomes[0].status is Status.WAITING and "missing" in report.outcomes[0].message
    assert path.is_dir() and rev(world.inside, BRANCH) is None


@synced
def test_rewritten_history_is_refused_by_pack_and_by_import(world: World) -> None:
    repo = open_repo(world.deploy)
    old = repo.resolve(BRANCH)
    assert old
    orphan = plumbing.commit_tree(
        repo, plumbing.tree_of(repo, old), [], "rewritten\n", IDENTITY, world.keys.release.private
    )
    repo.update_refs([RefUpdate(BRANCH, orphan, old)])
    with pytest.raises(GenError, match="rewritten; pack with --full"):
        world.pack()
    path = world.pack(full=True)
    assert_rejected(world, world.receive(), path.name, refs(world.inside), "not a fast-forward")


def corrupt_tree(repo: Path, how: str) -> str:
    """A tree git's fsck calls corrupt, written as is (``hash-object --literally``)."""
    blob = subprocess.run(
        ["git", "--git-dir", str(repo), "hash-object", "-w", "--stdin"],
        input=b"x\n",
        capture_output=True,
        check=True,
    ).stdout.strip()
    entry = {"duplicate": b"100644 a\0" * 2, "bad-mode": b"100645 a\0"}[how]
    oid = bytes.fromhex(blob.decode())
    raw = b"".join(e + b"\0" + oid for e in entry.split(b"\0")[:-1])
    return (
        subprocess.run(
            [
                "git",
                "--git-dir",
                str(repo),
                "hash-object",
                "-t",
                "tree",
                "-w",
                "--literally",
                "--stdin",
            ],
            input=raw,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )


@pytest.mark.parametrize(
    ("how", "complaint"), [("duplicate", "duplicateEntries"), ("bad-mode", "badFilemode")]
)
@synced
def test_signed_commit_with_a_tree_git_calls_corrupt_is_refused_before_any_ref_moves(
    world: World, how: str, complaint: str
) -> None:
    repo = open_repo(world.deploy)
    parent = repo.resolve(BRANCH)
    assert parent
    tree = corrupt_tree(world.deploy, how)
    commit = plumbing.commit_tree(
        repo, tree, [parent], "corrupt\n", IDENTITY, world.keys.release.private
    )
    repo.update_refs([RefUpdate(BRANCH, commit, parent)])
    path = world.pack()
    before = refs(world.inside)
    message = assert_rejected(
        world, world.receive(), path.name, before, "git refuses the objects", complaint, tree
    )
    assert "fsck error" in message


# --- crashes -----------------------------------------------------------------------------------

CRASH = """
import os, sys
from pathlib import Path
from generator.deliver.ferry import receive
from generator.deliver.git import repo

mode, drop, inside, allowed, site = sys.argv[1:]
apply = repo.Repo.update_refs

def crash(self, updates):
    keep = {"before": (), "journal-first": ("refs/ferry/",), "branch-first": ("refs/heads/",)}[mode]
    if keep:
        apply(self, [u for u in updates if u.ref.startswith(keep)])
    os._exit(137)

repo.Repo.update_refs = crash
receive.receive(Path(drop), receive.Settings(Path(inside), Path(allowed), (site,)))
"""


def crash_during_import(w: World, mode: str) -> None:
    args = [mode, str(w.drop), str(w.inside), str(w.keys.allowed_signers), SITE]
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, *args], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 137, proc.stderr


@synced
def test_crash_between_fetch_and_ref_update_leaves_old_state_then_import_completes(
    world: World,
) -> None:
    world.change()
    path = world.pack()
    before = refs(world.inside)
    crash_during_import(world, "before")
    after = refs(world.inside)
    assert {r: c for r, c in after.items() if not r.startswith(QUARANTINE)} == before
    assert path.is_dir()  # not moved: nothing was decided
    report = world.receive()
    assert [o.status for o in report.outcomes] == [Status.IMPORTED]
    assert rev(world.inside, BRANCH) == rev(world.deploy, BRANCH)
    assert not any(r.startswith(QUARANTINE) for r in refs(world.inside))


@pytest.mark.parametrize("mode", ["journal-first", "branch-first"])
@synced
def test_crash_half_way_through_the_ref_transaction_converges_on_the_next_run(
    world: World, mode: str
) -> None:
    world.change()
    world.pack()
    crash_during_import(world, mode)
    report = world.receive()
    assert report.ok
    assert len(report.repaired) == (1 if mode == "journal-first" else 0)
    assert rev(world.inside, BRANCH) == rev(world.deploy, BRANCH)
    [row] = ferry_status.status(world.inside)
    assert (row.sequence, row.branch) == (2, "at tip")
    history = list(ledger.Ledger(open_repo(world.inside), ledger.IMPORTED).history(SITE))
    assert len(history) == 2  # no accepted envelope lost, none recorded twice


def test_a_second_import_into_the_same_repository_at_once_is_refused(world: World) -> None:
    world.pack()
    inside = open_repo(world.inside, create=True)
    with open(inside.git_dir / "gen-ferry-import.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(GenError, match="another `gen ferry import` is running"):
            world.receive()
    assert world.receive().ok


# --- the command line --------------------------------------------------------------------------

runner = CliRunner()


def gen(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_cli_round_trip_publish_pack_import_status(world: World) -> None:
    env = {
        "GEN_DEPLOY_REPO": str(world.deploy),
        "GEN_SIGNING_KEY": str(world.keys.release.private),
        "GEN_FERRY_SENDER": IDENTITY.email,
        "GEN_ALLOWED_SIGNERS": str(world.keys.allowed_signers),
    }
    code, out, _ = gen(
        "publish",
        "--root",
        str(world.root),
        "--author",
        "Release Bot <release@example.com>",
        env=env,
    )
    assert code == 0 and f"{SITE}: unchanged" in out
    code, out, _ = gen(
        "ferry", "pack", "-t", SITE, "-t", OTHER_SITE, "--out", str(world.drop), env=env
    )
    assert code == 0 and "sequence 1, full" in out
    code, out, err = gen(
        "ferry",
        "import",
        str(world.drop),
        "--repo",
        str(world.inside),
        "--site",
        SITE,
        "--site",
        OTHER_SITE,
        env=env,
    )
    assert code == 0, err
    assert out.count("imported") == 2
    code, out, _ = gen("ferry", "status", "--repo", str(world.inside), env=env)
    assert code == 0 and f"{SITE}" in out and "sequence 1" in out and "at tip" in out


def test_cli_import_exits_1_and_says_why_when_an_envelope_is_rejected(world: World) -> None:
    path = world.pack()
    (path / "bundle").write_bytes((path / "bundle").read_bytes()[:-1])
    code, _, err = gen(
        "ferry",
        "import",
        str(world.drop),
        "--repo",
        str(world.inside),
        "--site",
        SITE,
        "--allowed-signers",
        str(world.keys.allowed_signers),
    )
    assert code == 1
    assert f"rejected         {path.name}: bundle is" in err and "truncated" in err
    assert "Traceback" not in err


def test_cli_import_asks_which_sites_when_none_is_configured(world: World) -> None:
    code, _, err = gen(
        "ferry",
        "import",
        str(world.drop),
        "--repo",
        str(world.inside),
        "--allowed-signers",
        str(world.keys.allowed_signers),
    )
    assert code == 1 and "which sites does this repository take" in err


# --- the manifest format -----------------------------------------------------------------------


def sample_manifest() -> envelope.Manifest:
    moment = envelope.now()
    return envelope.Manifest(
        SITE,
        3,
        "a" * 40,
        "b" * 40,
        2,
        moment,
        moment + timedelta(days=1),
        "r@example.com",
        (envelope.FileEntry("bundle", 10, "c" * 64),),
    )


def test_canonical_manifest_parses_back_to_itself() -> None:
    m = sample_manifest()
    assert envelope.parse(m.to_json()) == m


@pytest.mark.parametrize(
    "edit, complaint",
    [
        (lambda b: b.replace(b'"sequence": 3', b'"sequence": 3, "sequence": 9'), "canonical"),
        (
            lambda b: b.replace(b'"sequence": 3', b'"sequence": "3"'),
            "sequence is not a positive integer",
        ),
        (
            lambda b: b.replace(b'"basis_sequence": 2', b'"basis_sequence": null'),
            "both be set or both be null",
        ),
        (
            lambda b: b.replace(b'"basis_sequence": 2', b'"basis_sequence": 3'),
            "not before sequence",
        ),
        (
            lambda b: b.replace(b'"site": "cn-east-1"', b'"site": "../../x"'),
            "not a valid site name",
        ),
        (
            lambda b: b.replace(b'"name": "bundle"', b'"name": "../bundle"'),
            "name '../bundle' is malformed",
        ),
        (lambda b: b.replace(b"gen-ferry/1", b"gen-ferry/2"), "a newer gen?"),
        (lambda b: b.replace(b'"tip": "aaaa', b'"tip": "AAAA'), "tip"),
        (lambda b: b"[]", "expected"),
    ],
)
def test_malformed_manifests_are_refused_saying_what_is_wrong(edit: object, complaint: str) -> None:
    raw = edit(sample_manifest().to_json())  # type: ignore[operator]
    with pytest.raises(envelope.EnvelopeError, match=re.escape(complaint)):
        envelope.parse(raw)


@pytest.mark.parametrize(
    "text, seconds", [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("2w", 1209600)]
)
def test_durations_read_as_an_operator_writes_them(text: str, seconds: int) -> None:
    assert units.positive_duration(text, "--expires-in").total_seconds() == seconds


@pytest.mark.parametrize("text", ["0d", "-1d", "soon", "1y"])
def test_nonsense_durations_are_refused(text: str) -> None:
    with pytest.raises(GenError, match="not a positive duration"):
        units.positive_duration(text, "--expires-in")


def test_an_expiry_without_a_unit_is_refused_naming_the_option(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "ferry",
            "pack",
            "-t",
            "cn-east-1",
            "--out",
            str(tmp_path / "out"),
            "--deploy-repo",
            str(tmp_path / "deploy"),
            "--signing-key",
            str(tmp_path / "key"),
            "--expires-in",
            "7",
        ],
    )
    assert result.exit_code == 1, result.output
    assert (
        "--expires-in/GEN_FERRY_EXPIRES_IN: '7' is not a positive duration: a unit is required"
        in result.output
    )
    assert not (tmp_path / "out").exists()


@synced
def test_lost_sender_ledger_is_recovered_with_full_and_an_explicit_sequence(world: World) -> None:
    repo = open_repo(world.deploy)
    repo.delete_ref(ledger.Ledger(repo, ledger.SENT).ref(SITE))  # the ledger is gone
    world.change()
    again = world.pack()
    assert again.name.endswith("000001")
    outcome = world.outcome(world.receive(), again.name)
    assert outcome.status is Status.REJECTED and "different manifest" in outcome.message
    with pytest.raises(GenError, match="not above the last one sent"):
        packer.pack(packer.Request(SITE, full=True, sequence=1), world.drop, world.pack_settings())
    recovered = packer.pack(
        packer.Request(SITE, full=True, sequence=2), world.drop, world.pack_settings()
    )
    assert world.outcome(world.receive(), recovered.path.name).status is Status.IMPORTED  # type: ignore[union-attr]
    assert rev(world.inside, BRANCH) == rev(world.deploy, BRANCH)
