"""The review workflow end to end: `gen diff` through the CLI, exit statuses, colour and progress on
terminals only, JSON for scripts, the GitLab CI job and the pre-commit hooks."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from generator.build import cache
from generator.cli import app
from tests.support.project import REPO
from tests.support.review import GATEKEEPER, edit, git, make_repo

GEN = Path(sys.executable).with_name("gen")
IMAGE = "dockerhub.kubekey.local/project/gatekeeper"
runner = CliRunner()


def gen(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def repo(project: Path) -> Path:
    return make_repo(project)


@pytest.fixture
def bumped(repo: Path) -> Path:
    """The reference platform with one inventory line changed (not compiled)."""
    edit(repo / GATEKEEPER, "gatekeeper_version: v362", "gatekeeper_version: v363")
    return repo


# ------------------------------------------------------------------------------------------------
# gen diff
# ------------------------------------------------------------------------------------------------


STATEFULSET = "manifests/project/statefulset-gatekeeper.yaml"
EAST_SECTION = f"""
<details open><summary><b>cn-east-1</b>: +0 -0 ~2</summary>

**~ changed** `StatefulSet.apps project/gatekeeper` in `{STATEFULSET}`

| | field | old | new |
| --- | --- | --- | --- |
| ~ | `spec.template.spec.containers[name=gatekeeper].image` | `"{IMAGE}:v362"` | `"{IMAGE}:v363"` |

**~ changed** `images.txt`

```diff
- {IMAGE}:v362
+ {IMAGE}:v363
```

</details>
"""


def test_markdown_for_a_one_line_change_names_the_objects_and_fields(bumped: Path) -> None:
    code, out, err = gen("diff", "--root", str(bumped), "--output", "markdown")
    assert code == 1, err
    assert out.startswith(
        "<!-- gen-diff -->\n### gen diff: 1 of 2 sites differs (1 changed)\n\nCompiled output "
        "of the inventory in the working tree compared with `merge-base(HEAD, main) ("
    )
    assert (
        "| site | added | removed | changed |\n"
        "| :--- | ---: | ---: | ---: |\n"
        "| `cn-east-1` | 0 | 0 | 2 |\n" in out
    )
    assert "1 site unchanged." in out
    assert EAST_SECTION in out


def test_text_report_and_exit_status(bumped: Path) -> None:
    code, out, _ = gen("diff", "--root", str(bumped))
    assert code == 1
    lines = out.splitlines()
    assert lines[1:5] == [
        "1 of 2 sites differs (1 changed)",
        "",
        "site          +    -    ~",
        "cn-east-1     0    0    2",
    ]
    assert (
        "      ~ spec.template.spec.containers[name=gatekeeper].image: "
        f'"{IMAGE}:v362" -> "{IMAGE}:v363"' in lines
    )
    assert "\x1b[" not in out  # not a terminal: no colour


def test_no_difference_exits_0_and_quiet_prints_nothing(repo: Path) -> None:
    code, out, _ = gen("diff", "--root", str(repo))
    assert code == 0 and out.splitlines()[1] == "no difference in 2 sites"
    assert gen("diff", "--root", str(repo), "-q") == (0, "", "")
    edit(repo / GATEKEEPER, "gatekeeper_version: v362", "gatekeeper_version: v363")
    assert gen("diff", "--root", str(repo), "-q") == (1, "", "")
    assert gen("diff", "--root", str(repo), "-q", "-t", "cn-north-2")[0] == 0


def test_json_for_scripts(bumped: Path) -> None:
    code, out, _ = gen("diff", "--root", str(bumped), "-o", "json", "--base", "main")
    doc = json.loads(out)
    assert code == 1 and doc["differs"] is True and doc["base"]["ref"] == "main"
    assert doc["summary"] == {
        "sites": {"added": 0, "removed": 0, "changed": 1, "unchanged": 1},
        "objects": {"added": 0, "removed": 0, "changed": 2},
    }
    (field,) = doc["sites"][0]["entries"][0]["fields"]
    assert field == {
        "path": "spec.template.spec.containers[name=gatekeeper].image",
        "segments": [
            "spec",
            "template",
            "spec",
            "containers",
            {"key": "name", "value": "gatekeeper"},
            "image",
        ],
        "op": "changed",
        "old": f"{IMAGE}:v362",
        "new": f"{IMAGE}:v363",
    }


def test_base_from_the_environment_and_verbose_timing(bumped: Path) -> None:
    git(bumped, "commit", "-qam", "bump the inventory, forget compiled/")
    code, out, err = gen("diff", "--root", str(bumped), "-v", env={"GEN_DIFF_BASE": "HEAD"})
    assert code == 1 and "compared with HEAD (" in out  # HEAD's compiled/ is stale
    assert "unchanged: cn-north-2" in out
    assert "2 site(s) compiled, 0 read from compiled/ in" in err


def test_a_base_that_cannot_be_found_exits_3_not_1(repo: Path) -> None:
    code, out, err = gen("diff", "--root", str(repo), "--base", "no-such-branch")
    assert (code, out) == (3, "")
    assert err == f"git repository {repo}: no commit 'no-such-branch'\n"
    code, out, _ = gen("diff", "--root", str(repo), "--base", "no-such-branch", "-o", "json")
    assert code == 3 and json.loads(out) == {
        "ok": False,
        "summary": f"git repository {repo}: no commit 'no-such-branch'",
        "problems": [],
    }


def test_a_root_outside_git_exits_3_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    code, _, err = gen("diff", "--root", str(tmp_path / "plain"))
    assert code == 3 and "is not inside a git repository" in err and "Traceback" not in err


def test_a_file_system_error_exits_3_not_70(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from generator.review import diff

    def disk_full(options: object) -> None:  # a full disk cannot be made on demand in a test
        raise OSError(28, "No space left on device", str(repo / ".gen-cache"))

    monkeypatch.setattr(diff, "run", disk_full)
    code, out, err = gen("diff", "--root", str(repo))
    assert (code, out) == (3, "")
    assert err == f"gen: [Errno 28] No space left on device: '{repo / '.gen-cache'}'\n"


def test_an_unreachable_server_exits_3(project: Path) -> None:
    assert gen("compile", "--root", str(project), "-q")[0] == 0
    code, out, err = gen(
        "n9e",
        "apply",
        "--root",
        str(project),
        "-t",
        "cn-east-1",
        "--url",
        "http://127.0.0.1:9",
        "--token",
        "t",
    )
    assert (code, out) == (3, "") and "cannot reach n9e at http://127.0.0.1:9" in err


def test_inventory_problems_stop_the_diff_with_their_locations(repo: Path) -> None:
    edit(repo / GATEKEEPER, "      replicas: 1\n", "      replicas: three\n")
    code, _, err = gen("diff", "--root", str(repo))
    assert (
        code == 1
        and f"{GATEKEEPER}:10:7  $.services.gatekeeper.replicas  'three' is not of type 'integer'"
        in err
    )
    code, out, _ = gen("diff", "--root", str(repo), "-o", "json")
    assert code == 1 and json.loads(out)["problems"][0]["path"] == "$.services.gatekeeper.replicas"


def test_usage_errors_exit_2(repo: Path) -> None:
    assert gen("diff", "--root", str(repo), "--output", "html")[0] == 2
    assert gen("diff", "--bogus")[0] == 2


def test_a_bug_exits_70_with_a_hint(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from generator.review import diff

    def broken(options: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(diff, "run", broken)
    code, _, err = gen("diff", "--root", str(repo))
    assert code == 70
    assert "RuntimeError: boom" in err and "internal error (a bug). Please report it" in err


# ------------------------------------------------------------------------------------------------
# Terminals: colour and progress only there, NO_COLOR and --color respected
# ------------------------------------------------------------------------------------------------


def run_on_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the installed console script with stdout and stderr on a pseudo-terminal."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [str(GEN), *args], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(), b"".join(chunks).decode(errors="replace")


def plain_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    return {**env, "TERM": "xterm-256color", "COLUMNS": "200", **extra}


def test_colour_on_a_terminal_unless_no_color(bumped: Path) -> None:
    code, out = run_on_terminal(["diff", "--root", str(bumped)], plain_env())
    assert code == 1 and "\x1b[33m~ StatefulSet.apps project/gatekeeper" in out
    code, out = run_on_terminal(["diff", "--root", str(bumped)], plain_env(NO_COLOR="1"))
    assert code == 1 and "~ StatefulSet.apps project/gatekeeper" in out and "\x1b[3" not in out
    code, out = run_on_terminal(["diff", "--root", str(bumped), "--color", "never"], plain_env())
    assert "\x1b[3" not in out


def test_colour_can_be_forced_into_a_pipe(bumped: Path) -> None:
    for args in (["diff", "--color", "always"], ["--color", "always", "diff"]):
        done = subprocess.run(
            [str(GEN), *args, "--root", str(bumped)],
            capture_output=True,
            text=True,
            env=plain_env(),
        )
        assert "\x1b[33m~ StatefulSet.apps project/gatekeeper" in done.stdout


def test_progress_bar_on_a_terminal_only(bumped: Path) -> None:
    _, out = run_on_terminal(["compile", "--root", str(bumped), "--no-cache"], plain_env())
    assert "compiling" in out and "2/2" in out
    done = subprocess.run(
        [str(GEN), "compile", "--root", str(bumped), "--no-cache"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stderr == ""


def test_a_failing_compile_clears_the_progress_bar_before_its_first_problem(project: Path) -> None:
    edit(project / GATEKEEPER, "      replicas: 1\n", "      replicas: three\n")
    code, out = run_on_terminal(["compile", "--root", str(project), "--no-cache"], plain_env())
    problem = f"{GATEKEEPER}:10:7  $.services.gatekeeper.replicas  'three' is not of type"
    assert code == 1 and "compiling" in out
    before, _, after = out.partition(problem)
    assert after, out
    assert before.endswith("\x1b[2K"), repr(before[-80:])  # the bar's line was erased first
    assert "compiling" not in after  # and not drawn again below the problems


# ------------------------------------------------------------------------------------------------
# The other reading commands: --output json, -q/-v, help with examples and exit statuses
# ------------------------------------------------------------------------------------------------


def test_validate_json_lists_problems_as_objects(project: Path) -> None:
    edit(project / GATEKEEPER, "      replicas: 1\n", "      replicas: three\n")
    code, out, _ = gen("validate", "--root", str(project), "--output", "json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False
    assert {
        "file": GATEKEEPER,
        "line": 10,
        "column": 7,
        "path": "$.services.gatekeeper.replicas",
        "message": "'three' is not of type 'integer' (target: cn-east-1)",
    } in doc["problems"]
    assert doc["summary"] == "1 of 2 target(s) invalid"


def test_validate_json_and_quiet_when_valid(project: Path) -> None:
    code, out, _ = gen("validate", "--root", str(project), "-o", "json")
    assert code == 0 and json.loads(out) == {
        "ok": True,
        "summary": "2 target(s) valid",
        "problems": [],
        "warnings": [],
        "targets": ["cn-east-1", "cn-north-2"],
    }
    assert gen("validate", "--root", str(project), "-q") == (0, "", "")
    assert gen("-q", "validate", "--root", str(project)) == (0, "", "")


def test_user_errors_are_json_too_when_json_was_asked_for(project: Path) -> None:
    code, out, _ = gen("validate", "--root", str(project), "-t", "nowhere", "-o", "json")
    assert code == 1 and json.loads(out) == {
        "ok": False,
        "problems": [],
        "summary": "unknown target nowhere; targets: cn-east-1, cn-north-2",
    }


def test_targets_json(project: Path) -> None:
    code, out, _ = gen("targets", "--root", str(project), "-o", "json")
    assert code == 0 and json.loads(out) == [
        {"name": "cn-east-1", "file": "inventory/targets/cn-east-1.yml"},
        {"name": "cn-north-2", "file": "inventory/targets/cn-north-2.yml"},
    ]


def test_compile_check_json_and_verbose(bumped: Path) -> None:
    code, out, _ = gen("compile", "--root", str(bumped), "--check", "-o", "json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and doc["up_to_date"] is False
    assert {"op": "changed", "path": "cn-east-1/images.txt"} in doc["changes"]
    code, out, _ = gen("compile", "--root", str(bumped), "-v")
    assert (
        code == 0
        and "  ~ cn-east-1/manifests/project/statefulset-gatekeeper.yaml" in out.splitlines()
    )
    assert gen("compile", "--root", str(bumped), "-q") == (0, "", "")


def test_compile_problems_as_json(project: Path) -> None:
    edit(project / GATEKEEPER, "      replicas: 1\n", "      replicas: three\n")
    code, out, _ = gen("compile", "--root", str(project), "-o", "json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False
    assert {
        "file": GATEKEEPER,
        "line": 10,
        "column": 7,
        "path": "$.services.gatekeeper.replicas",
        "message": "'three' is not of type 'integer' (target: cn-east-1)",
    } in doc["problems"]


@pytest.mark.parametrize("command", ["compile", "validate", "inventory", "targets", "diff"])
def test_every_command_has_examples_in_its_help(command: str) -> None:
    code, out, _ = gen(command, "--help")
    assert code == 0 and "Examples:" in out and f"gen {command}" in out


def test_top_level_help_documents_exit_statuses() -> None:
    code, out, _ = gen("--help", env={"COLUMNS": "300"})
    assert code == 0
    assert (
        "Exit status: 0 success, nothing differs; 1 differences (compile --check, diff) or "
        "invalid input; 2 wrong usage; 3 gen could not tell (git failed, a commit cannot be "
        "found, a server cannot be reached, a file system error); 70 a bug in gen (it asks you "
        "to report it); 130 interrupted."
    ) in " ".join(out.split())
    assert "NO_COLOR" in out and "--install-completion" in out


COMMANDS = [
    [],
    ["compile"],
    ["validate"],
    ["inventory"],
    ["targets"],
    ["publish"],
    ["diff"],
    ["agent", "run"],
    ["ferry", "pack"],
    ["ferry", "import"],
    ["ferry", "status"],
    ["n9e", "apply"],
    ["secrets", "set"],
    ["secrets", "rotate"],
    ["secrets", "show"],
    ["secrets", "list"],
    ["secrets", "keygen"],
    ["secrets", "materialize"],
]
TYPE_LABEL = re.compile(r"<(bool|int|float|str|dir|file|path|list\[[^>]*\]|[a-z]+ range)[^>]*>")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "gen")
def test_option_help_reads_like_kubectl_without_type_labels(command: list[str]) -> None:
    code, out, _ = gen(*command, "--help", env={"COLUMNS": "100"})
    options = out.partition("\nOptions:\n")[2].partition("\n\n")[0]
    assert code == 0 and options, out
    assert TYPE_LABEL.findall(options) == [] and "Arguments:" not in out
    assert "╭" not in out and "-h, --help" in options


def test_help_names_values_and_hides_the_old_format_flag() -> None:
    _, out, _ = gen("diff", "--help", env={"COLUMNS": "100"})
    lines = [line.strip() for line in out.splitlines()]
    assert "-v, --verbose        Say more; repeat for more." in lines  # a count: no value shown
    worktree = next(line for line in lines if line.startswith("--worktree"))
    assert worktree.split()[:3] == ["--worktree", "Take", "compiled/"]  # a flag: no <bool>
    assert any(line.startswith("-t, --target SITE ") for line in lines)
    assert any(line.startswith("-o, --output FORMAT ") for line in lines)
    assert "--format" not in out and "-f," not in out


def test_the_old_format_flag_still_works_and_says_it_is_deprecated(project: Path) -> None:
    new = gen("targets", "--root", str(project), "-o", "json")
    for flag in ("-f", "--format"):
        code, out, err = gen("targets", "--root", str(project), flag, "json")
        assert (code, out) == (0, new[1])
        assert err == (
            "gen: -f/--format is deprecated and will be removed in a later release; "
            "use -o/--output\n"
        )
    assert new[0] == 0 and new[2] == "" and json.loads(new[1])[0]["name"] == "cn-east-1"
    code, out, _ = gen("inventory", "--root", str(project), "-t", "cn-east-1", "-f", "json")
    assert code == 0 and "parameters" in json.loads(out)


def test_output_wins_over_the_old_format_flag(bumped: Path) -> None:
    code, out, err = gen("diff", "--root", str(bumped), "-f", "json", "-o", "markdown")
    assert code == 1 and out.startswith("<!-- gen-diff -->") and "deprecated" in err


def test_shell_completion_of_targets_and_refs(repo: Path) -> None:
    def complete(words: str) -> list[str]:
        env = {
            **os.environ,
            "_GEN_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - 1),
        }
        return subprocess.run(
            [str(GEN)], cwd=repo, env=env, capture_output=True, text=True
        ).stdout.split()

    assert complete("gen diff -t cn-n") == ["cn-north-2"]
    assert complete("gen diff --base ma") == ["main"]


# ------------------------------------------------------------------------------------------------
# The GitLab CI job (ci/gitlab-ci.yml), run as the runner would, against a fake GitLab API
# ------------------------------------------------------------------------------------------------


class FakeGitLab(BaseHTTPRequestHandler):
    """Records requests to the merge-request and notes API; answers like GitLab (notes in pages of
    ``per_page``, the merge request with its head ``sha``)."""

    calls: ClassVar[list[tuple[str, str, dict[str, Any] | None]]] = []
    notes: ClassVar[list[dict[str, Any]]] = []
    head: ClassVar[str | None] = None

    def _reply(self, data: Any) -> None:
        body = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def do_GET(self) -> None:
        self.calls.append(("GET", self.path, None))
        url = urlsplit(self.path)
        if not url.path.endswith("/notes"):
            self._reply({"iid": 3, "sha": self.head})
            return
        query = parse_qs(url.query)
        size, page = int(query["per_page"][0]), int(query.get("page", ["1"])[0])
        self._reply(self.notes[(page - 1) * size : page * size])

    def do_POST(self) -> None:
        body = self._body()
        assert self.headers["PRIVATE-TOKEN"] == "glpat-test"
        self.calls.append(("POST", self.path, body))
        self.notes.append({"id": 41, **(body or {})})
        self._reply({"id": 41})

    def do_PUT(self) -> None:
        self.calls.append(("PUT", self.path, self._body()))
        self._reply({"id": 41})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gitlab() -> Iterator[str]:
    FakeGitLab.calls, FakeGitLab.notes = [], [{"id": 7, "body": "LGTM"}]
    FakeGitLab.head = None
    server = HTTPServer(("127.0.0.1", 0), FakeGitLab)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v4"
    server.shutdown()


def run_ci_job(root: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """The .gen-review job's before_script + script as one bash script, as the runner runs it."""
    job = yaml.safe_load((REPO / "ci" / "gitlab-ci.yml").read_text())[".gen-review"]
    script = "\n".join(["set -eo pipefail", *job["before_script"], *job["script"]])
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and k != "GEN_DIFF_BASE"}
    env.update(job["variables"])
    env.update(PATH=f"{GEN.parent}:{env['PATH']}", GEN_INSTALL="true", **variables)
    return subprocess.run(["bash", "-c", script], cwd=root, env=env, capture_output=True, text=True)


def merge_request(repo: Path, compile_it: bool) -> str:
    """A feature branch with the one-line change, compiled or not; returns the base commit."""
    base = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "checkout", "-qb", "feature")
    edit(repo / GATEKEEPER, "gatekeeper_version: v362", "gatekeeper_version: v363")
    if compile_it:
        assert gen("compile", "--root", str(repo), "-q")[0] == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "gatekeeper v363")
    return base


def test_ci_job_prints_and_posts_the_diff_and_updates_its_comment(repo: Path, gitlab: str) -> None:
    base = merge_request(repo, compile_it=True)
    mr = {
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": base,
        "CI_MERGE_REQUEST_IID": "3",
        "CI_PROJECT_ID": "12",
        "CI_API_V4_URL": gitlab,
        "GEN_REVIEW_TOKEN": "glpat-test",
    }
    done = run_ci_job(repo, **mr)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "compiled/ is up to date" in done.stdout
    assert "\x1b[33m~ StatefulSet.apps project/gatekeeper" in done.stdout  # coloured job log
    assert "posted merge-request comment 41" in done.stdout
    markdown = (repo / "gen-diff.md").read_text()
    assert markdown.startswith("<!-- gen-diff -->") and EAST_SECTION in markdown
    assert FakeGitLab.calls[-1] == (
        "POST",
        "/api/v4/projects/12/merge_requests/3/notes",
        {"body": markdown},
    )
    done = run_ci_job(repo, **mr)
    assert "updated merge-request comment 41" in done.stdout
    assert FakeGitLab.calls[-1] == (
        "PUT",
        "/api/v4/projects/12/merge_requests/3/notes/41",
        {"body": markdown},
    )


def test_ci_job_fails_on_a_stale_compiled_tree(repo: Path, gitlab: str) -> None:
    base = merge_request(repo, compile_it=False)
    done = run_ci_job(
        repo,
        CI_MERGE_REQUEST_DIFF_BASE_SHA=base,
        CI_MERGE_REQUEST_IID="3",
        CI_PROJECT_ID="12",
        CI_API_V4_URL=gitlab,
        GEN_REVIEW_TOKEN="glpat-test",
    )
    assert done.returncode == 1
    assert "compiled/ is not what `gen compile` produces:" in done.stderr
    assert "  ~ cn-east-1/manifests/project/statefulset-gatekeeper.yaml" in done.stderr.splitlines()
    assert FakeGitLab.calls == []


def test_ci_job_without_a_token_keeps_the_diff_as_an_artifact(repo: Path) -> None:
    merge_request(repo, compile_it=True)
    done = run_ci_job(repo)  # a branch pipeline: default base, no merge request
    assert done.returncode == 0, done.stderr
    assert "gen-diff.md is a job artifact" in done.stdout
    assert (repo / "gen-diff.md").read_text().startswith("<!-- gen-diff -->")


def mr_variables(base: str, gitlab: str, **more: str) -> dict[str, str]:
    return {
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": base,
        "CI_MERGE_REQUEST_IID": "3",
        "CI_PROJECT_ID": "12",
        "CI_API_V4_URL": gitlab,
        "GEN_REVIEW_TOKEN": "glpat-test",
        **more,
    }


def test_ci_job_fails_and_posts_nothing_when_the_base_cannot_be_fetched(
    repo: Path, gitlab: str
) -> None:
    merge_request(repo, compile_it=True)
    missing = "0123456789abcdef0123456789abcdef01234567"
    (repo / "gen-diff.md").write_text("<!-- gen-diff -->\nstale from an earlier run\n")
    done = run_ci_job(repo, **mr_variables(missing, gitlab))
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"warning: could not fetch the base commit {missing}" in done.stdout
    assert f"no commit '{missing}'" in done.stderr
    assert "gen diff failed (exit status 3): no merge-request comment" in done.stderr
    assert FakeGitLab.calls == [] and not (repo / "gen-diff.md").exists()


def test_ci_job_finds_its_comment_past_the_first_100_notes(repo: Path, gitlab: str) -> None:
    base = merge_request(repo, compile_it=True)
    FakeGitLab.notes = [
        {"id": 7, "body": "<!-- gen-diff -->\nthe first push's diff"},
        *({"id": 100 + i, "body": f"review remark {i}"} for i in range(230)),
    ]
    FakeGitLab.notes.reverse()  # newest first: the job's own comment is on the last page
    done = run_ci_job(repo, **mr_variables(base, gitlab))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "updated merge-request comment 7" in done.stdout
    pages = [path for method, path, _ in FakeGitLab.calls if path.split("?")[0].endswith("/notes")]
    assert [p.split("page=")[-1].split("&")[0] for p in pages if "page=" in p] == ["1", "2", "3"]
    assert FakeGitLab.calls[-1][:2] == ("PUT", "/api/v4/projects/12/merge_requests/3/notes/7")


def test_ci_job_does_not_post_the_diff_of_a_commit_no_longer_at_the_head(
    repo: Path, gitlab: str
) -> None:
    base = merge_request(repo, compile_it=True)
    FakeGitLab.head = "f" * 40  # a newer push reached the merge request meanwhile
    ours = git(repo, "rev-parse", "HEAD").strip()
    done = run_ci_job(repo, **mr_variables(base, gitlab, CI_COMMIT_SHA=ours))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        f"not posting: the merge request is at ffffffffffff now, this diff is of {ours[:12]}"
        in (done.stdout)
    )
    assert [method for method, _, _ in FakeGitLab.calls] == ["GET"]
    FakeGitLab.head = ours
    done = run_ci_job(repo, **mr_variables(base, gitlab, CI_COMMIT_SHA=ours))
    assert "posted merge-request comment 41" in done.stdout


def test_the_template_runs_one_pipeline_per_merge_request() -> None:
    template = yaml.safe_load((REPO / "ci" / "gitlab-ci.yml").read_text())
    assert template["workflow"]["rules"] == [
        {"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'},
        {"if": "$CI_COMMIT_BRANCH && $CI_OPEN_MERGE_REQUESTS", "when": "never"},
        {"if": "$CI_COMMIT_BRANCH"},
        {"if": "$CI_COMMIT_TAG"},
    ]


def test_this_repository_runs_the_template() -> None:
    pipeline = yaml.safe_load((REPO / ".gitlab-ci.yml").read_text())
    assert {"local": "ci/gitlab-ci.yml"} in pipeline["include"]
    assert pipeline["gen-review"]["extends"] == ".gen-review"
    assert pipeline["test"]["script"] == [".ci/run"]
    assert pipeline["test"]["before_script"][-1] == ".ci/needs"


def test_the_test_job_names_what_its_image_lacks(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("python3", "make", "git", "ssh-keygen", "ip", "unshare"):  # everything but Go
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    needs = [shutil.which("bash") or "bash", str(REPO / ".ci" / "needs")]
    done = subprocess.run(needs, env={"PATH": str(bin_dir)}, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "the test image lacks: go",
        "make test needs Python >= 3.11, make, git, ssh-keygen, Go >= 1.26, ip and unshare "
        "(README.md)",
    ]


# ------------------------------------------------------------------------------------------------
# pre-commit hooks
# ------------------------------------------------------------------------------------------------


def test_pre_commit_hooks_run_gen_commands_that_work(bumped: Path) -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == {"gen-validate", "gen-compile-check", "gen-compile"}

    def run_hook(hook_id: str) -> int:
        hook = hooks[hook_id]
        assert hook["language"] == "python" and hook["pass_filenames"] is False
        entry = hook["entry"].split()
        assert entry[0] == "gen"
        return subprocess.run([str(GEN), *entry[1:]], cwd=bumped, capture_output=True).returncode

    assert run_hook("gen-validate") == 0
    assert run_hook("gen-compile-check") == 1  # the inventory changed, compiled/ did not
    assert run_hook("gen-compile") == 0
    assert run_hook("gen-compile-check") == 0


def test_every_file_a_compile_reads_triggers_every_hook(project: Path) -> None:
    assert gen("compile", "--root", str(project), "-q")[0] == 0
    state = cache.load(project, cache.tool_fingerprint())
    read = {p for site in state.sites.values() for p in (*site.inputs, *site.probes)}
    assert read
    assert any(p.startswith("secrets/") for p in read)
    assert "inventory/reclass-config.yml" in read  # probed even when absent
    for hook in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text()):
        pattern = re.compile(hook["files"])
        assert [p for p in sorted(read) if not pattern.search(p)] == [], hook["id"]
        if hook["id"] != "gen-validate":
            assert pattern.search("compiled/cn-east-1/images.txt"), hook["id"]
