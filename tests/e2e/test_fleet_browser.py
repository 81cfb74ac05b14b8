"""The ``gen fleet --html`` page in a real headless Chromium: it renders, every site appears, a
hostile report message stays text, and a screenshot is kept as a test artifact
(``$GEN_TEST_ARTIFACTS/fleet.png``, else the test's tmp directory)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from generator.cli import app
from generator.deliver.git import sign
from generator.formats import agent_report
from tests.support.browser import Browser
from tests.support.ferry import OTHER_SITE, SITE, World, make_key

PNG = b"\x89PNG\r\n\x1a\n"


def test_the_fleet_page_renders_in_chromium_with_every_site(
    world: World, browser: Browser, artifacts: Path, tmp_path: Path
) -> None:
    world.pack()
    world.change()
    key = make_key(tmp_path, "site", f"gen-agent@{SITE}")
    signers = tmp_path / "signers"
    signers.write_text(f'{key.principal} namespaces="gen-agent-report" {key.public}\n')
    status = {
        "result": "synced",
        "release": "2",
        "lastHealthyRelease": "2",
        "message": "<script>document.title='owned'</script>",
    }
    made = agent_report.make(SITE, key.principal, datetime.now(UTC), status)
    report = tmp_path / "east.report"
    report.write_bytes(
        agent_report.seal(made, sign.sign(made.to_json(), key.private, agent_report.NAMESPACE))
    )
    page = tmp_path / "fleet.html"
    result = CliRunner().invoke(
        app,
        [
            "fleet",
            "--deploy-repo",
            str(world.deploy),
            "--outbox",
            str(world.drop),
            "--import-report",
            str(report),
            "--allowed-signers",
            str(signers),
            "--html",
            str(page),
        ],
    )
    assert result.exit_code == 0, result.output

    dom = browser.dom(page)
    for site in (SITE, OTHER_SITE):
        assert f'id="site-{site}"' in dom and f"<code>{site}</code>" in dom
    assert "<title>gen fleet</title>" in dom  # the script in the message never ran
    assert "&lt;script&gt;document.title='owned'&lt;/script&gt;" in dom
    assert "synced, release 2, last healthy 2" in dom

    shot = browser.screenshot(page, artifacts / "fleet.png")
    data = shot.read_bytes()
    assert data.startswith(PNG) and len(data) > 5000, f"{shot}: not a rendered page"
