"""``gen fleet``: per site what was published, packed, is waiting, and what the site reported in a
signed file carried out by hand (real git, real SSH signatures)."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from generator.cli import app
from generator.core.errors import GenError
from generator.deliver import fleet, fleet_html
from generator.deliver.git import sign
from generator.formats import agent_report
from tests.support.ferry import OTHER_SITE, SITE, Key, World, make_key, refs

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STATUS = {
    "site": SITE,
    "result": "synced",
    "commit": "a" * 40,
    "release": "3",
    "releaseName": "spring",
    "lastHealthyRelease": "3",
    "objects": "12",
    "unknownKey": "left out",
}

PAGE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "p", "time", "table", "thead",
    "tbody", "tr", "th", "td", "code", "small", "span", "b",
}  # fmt: skip


@pytest.fixture
def site_key(tmp_path: Path) -> Key:
    return make_key(tmp_path, "site-key", f"gen-agent@{SITE}")


@pytest.fixture
def trusted(tmp_path: Path, site_key: Key) -> Path:
    path = tmp_path / "report_signers"
    path.write_text(f'{site_key.principal} namespaces="gen-agent-report" {site_key.public}\n')
    return path


def report_file(key: Key, status: dict[str, str] = STATUS, when: datetime = NOW) -> bytes:
    made = agent_report.make(SITE, key.principal, when, status)
    return agent_report.seal(made, sign.sign(made.to_json(), key.private, agent_report.NAMESPACE))


def by_site(world: World) -> dict[str, fleet.Site]:
    return {s.site: s for s in fleet.fleet(world.deploy, world.drop)}


def test_the_fleet_shows_published_packed_not_packed_and_waiting_per_site(world: World) -> None:
    world.pack()  # release 1, sequence 1
    world.change()
    world.pack()  # release 2, sequence 2
    world.change()  # release 3, not packed
    sites = by_site(world)
    east, north = sites[SITE], sites[OTHER_SITE]
    assert east.published is not None and east.published.number == 3
    assert east.packed is not None and east.packed.release is not None
    assert (east.packed.sequence, east.packed.release.number, east.unpacked) == (2, 2, 1)
    assert east.waiting == 2 and east.reported is None
    assert (north.published and north.published.number, north.packed, north.unpacked) == (
        1,
        None,
        1,
    )
    assert north.waiting == 0
    assert world.receive().ok  # the inside took both: nothing waits any more
    assert by_site(world)[SITE].waiting == 0
    assert fleet.fleet(world.deploy)[0].waiting is None  # no outbox: unknown


def test_a_signed_report_adds_the_sites_status_line(
    world: World, site_key: Key, trusted: Path
) -> None:
    imported = fleet.import_report(world.deploy, report_file(site_key), trusted, "r.report")
    assert imported.new and imported.report.site == SITE
    reported = by_site(world)[SITE].reported
    assert reported is not None and reported.report.time == NOW
    assert "unknownKey" not in reported.report.status
    assert fleet.status_line(reported.report) == (
        f"synced, release 3 (spring), last healthy 3, commit {'a' * 12}"
    )
    again = fleet.import_report(world.deploy, report_file(site_key), trusted, "r.report")
    assert not again.new


def test_a_report_without_the_release_keys_is_taken_as_it_is(
    world: World, site_key: Key, trusted: Path
) -> None:
    old_agent = {"site": SITE, "result": "degraded", "commit": "b" * 40, "message": "1 unhealthy"}
    fleet.import_report(world.deploy, report_file(site_key, old_agent), trusted, "r")
    reported = by_site(world)[SITE].reported
    assert reported is not None
    assert fleet.status_line(reported.report) == f"degraded, commit {'b' * 12}, 1 unhealthy"


def test_tampered_unsigned_untrusted_and_stale_reports_are_refused_and_nothing_is_kept(
    world: World, site_key: Key, trusted: Path, tmp_path: Path
) -> None:
    good = report_file(site_key)
    tampered = good.replace(b'"release": "3"', b'"release": "9"')
    stranger = make_key(tmp_path, "stranger", f"gen-agent@{SITE}")
    before = refs(world.deploy)
    cases = [
        (tampered, r"the signature does not match \(tampered or damaged\)"),
        (good[: good.index(agent_report.BEGIN)], "not signed"),
        (report_file(stranger), "which .* does not trust"),
        (b"hello", "not signed"),
    ]
    for data, why in cases:
        with pytest.raises(GenError, match=f"^r.report: .*{why}"):
            fleet.import_report(world.deploy, data, trusted, "r.report")
    assert refs(world.deploy) == before
    fleet.import_report(world.deploy, good, trusted, "r.report")
    older = report_file(site_key, when=NOW - timedelta(hours=1))
    with pytest.raises(GenError, match="is not newer than the one already imported"):
        fleet.import_report(world.deploy, older, trusted, "r.report")


def test_a_report_of_one_site_signed_as_another_site_is_refused_even_with_a_trusted_key(
    world: World, site_key: Key, trusted: Path, tmp_path: Path
) -> None:
    other = make_key(tmp_path, "other-key", f"gen-agent@{OTHER_SITE}")
    trusted.write_text(
        trusted.read_text() + f'{other.principal} namespaces="gen-agent-report" {other.public}\n'
    )
    document = agent_report.Report(SITE, other.principal, NOW, {"result": "synced"}).to_json()
    forged = document + sign.sign(document, other.private, agent_report.NAMESPACE)
    before = refs(world.deploy)
    with pytest.raises(GenError) as exc:
        fleet.import_report(world.deploy, forged, trusted, "r.report")
    assert str(exc.value) == (
        f"r.report: refused: the report of site {SITE} is signed as gen-agent@{OTHER_SITE}; a "
        f"site's report is signed as <name>@{SITE}, so that one site's key cannot speak for "
        "another"
    )
    assert refs(world.deploy) == before
    with pytest.raises(agent_report.ReportError, match=f"is signed as <name>@{SITE}"):
        agent_report.make(SITE, other.principal, NOW, STATUS)


def test_the_html_page_is_one_self_contained_file_with_every_value_escaped(
    world: World, site_key: Key, trusted: Path
) -> None:
    hostile = {**STATUS, "message": '<script>alert("x")</script><img src=http://evil/>'}
    fleet.import_report(world.deploy, report_file(site_key, hostile), trusted, "r")
    page = fleet_html.render(fleet.fleet(world.deploy, world.drop), NOW)
    assert page == fleet_html.render(fleet.fleet(world.deploy, world.drop), NOW)  # deterministic
    assert (
        set(re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)", page)) <= PAGE_TAGS
    )  # no script, img, link, ...
    tags = re.findall(r"<[^>]*>", page)
    assert not [t for t in tags if re.search(r"\s(src|href)=", t)]  # nothing loaded from anywhere
    assert html.escape('<script>alert("x")</script>') in page
    for site in (SITE, OTHER_SITE):
        assert f'id="site-{site}"' in page


def test_fleet_cli_imports_a_report_then_prints_json_and_writes_html(
    world: World, site_key: Key, trusted: Path, tmp_path: Path
) -> None:
    report = tmp_path / "east.report"
    report.write_bytes(report_file(site_key))
    page = tmp_path / "fleet.html"
    args = ["fleet", "--deploy-repo", str(world.deploy), "--outbox", str(world.drop)]
    result = CliRunner().invoke(
        app,
        [*args, "--import-report", str(report), "--html", str(page), "-o", "json"],
        env={"GEN_FLEET_ALLOWED_SIGNERS": str(trusted)},
    )
    assert result.exit_code == 0, result.output
    rows = {r["site"]: r for r in json.loads(result.output)}
    assert rows[SITE]["report"]["status"]["release"] == "3" and rows[OTHER_SITE]["report"] is None
    assert rows[SITE]["published"]["release"] == 1 and rows[SITE]["waiting"] == 0
    assert 'id="site-cn-east-1"' in page.read_text()
    report.write_bytes(report.read_bytes().replace(b"synced", b"failed"))
    refused = CliRunner().invoke(
        app,
        [*args, "--import-report", str(report)],
        env={"GEN_FLEET_ALLOWED_SIGNERS": str(trusted)},
    )
    assert refused.exit_code == 1 and "tampered" in refused.output
    text = CliRunner().invoke(app, args)
    assert text.exit_code == 0 and "synced, release 3 (spring)" in text.output
