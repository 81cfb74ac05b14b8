"""The release trailers of a deploy commit message."""

from __future__ import annotations

import pytest

from generator.core import release
from generator.core.release import Release, ReleaseError


def test_a_release_round_trips_through_its_trailers() -> None:
    made = Release(7, "spring-upgrade", 3)
    message = "deploy cn-east-1: 2 files\n\n~ a.yaml\n\n" + "\n".join(
        [*made.trailers(), "Source-Commit: abc123"]
    )
    assert release.parse(message) == Release(7, "spring-upgrade", 3, "abc123")
    assert made.label == "7 (spring-upgrade)"


def test_a_commit_from_before_releases_has_none() -> None:
    assert release.parse("deploy a: 1 file from x\n\n+ a.yaml\n\nSource-Commit: x\n") is None


def test_only_the_last_paragraph_holds_trailers() -> None:
    message = "deploy a\n\nRelease: 4\n\nchanges follow\n+ a.yaml\n"
    assert release.trailers(message) == {}
    assert release.parse(message) is None


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ("x\n\nRelease: seven\n", "is not a release number"),
        ("x\n\nRelease: 0\n", "numbers start at 1"),
        ("x\n\nRelease: 3\nRollback-To: 3\n", "only an earlier release"),
        ("x\n\nRelease: 3\nRelease-Name: no spaces\n", "release name"),
    ],
)
def test_a_malformed_trailer_says_what_is_wrong(message: str, says: str) -> None:
    with pytest.raises(ReleaseError, match=says):
        release.parse(message)
