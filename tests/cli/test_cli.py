"""End to end through the CLI: every kind of bad input gives one located message, exit 1, no
traceback, and compiled/ unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from generator.cli import app
from tests.support.project import tree_digest

runner = CliRunner()


def gen(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


GATEKEEPER = "inventory/classes/services/gatekeeper.yml"
EAST = "inventory/targets/cn-east-1.yml"


def _cyclic_classes(root: Path) -> None:
    edit(
        root / "inventory/classes/sites/kubekey.yml",
        "parameters:",
        "classes: [common]\nparameters:",
    )
    edit(
        root / "inventory/classes/common.yml",
        "parameters:",
        "classes: [sites.kubekey]\nparameters:",
    )


BAD_INPUTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "malformed yaml": (
        lambda r: edit(r / GATEKEEPER, "      replicas: 1\n", "      replicas: [1\n"),
        "inventory/classes/services/gatekeeper.yml:11:19  "
        "invalid YAML: while parsing a flow sequence did not find expected ',' or ']'",
    ),
    "unknown class": (
        lambda r: edit(r / EAST, "  - sites.kubekey\n", "  - sites.kubekee\n"),
        "inventory/targets/cn-east-1.yml:4:5  class 'sites.kubekee' not found",
    ),
    "cyclic classes": (
        _cyclic_classes,
        "class cycle: common -> sites.kubekey -> common",
    ),
    "cyclic reference": (
        lambda r: edit(
            r / GATEKEEPER,
            "gatekeeper_version: v362",
            "gatekeeper_version: ${services:gatekeeper:tag}",
        ),
        "$.services.gatekeeper.tag  reference cycle: "
        "$.services.gatekeeper.tag -> $.gatekeeper_version -> $.services.gatekeeper.tag",
    ),
    "unresolvable reference": (
        lambda r: edit(r / GATEKEEPER, "tag: ${gatekeeper_version}", "tag: ${gatekeeper_versoin}"),
        "inventory/classes/services/gatekeeper.yml:9:7  "
        "$.services.gatekeeper.tag  cannot resolve reference "
        "${gatekeeper_versoin}: key 'gatekeeper_versoin' not found in $",
    ),
    "dict over scalar": (
        lambda r: edit(
            r / EAST,
            '    kubernetes_version: "1.25.16"\n',
            '    namespace: {name: x}\n    kubernetes_version: "1.25.16"\n',
        ),
        "inventory/targets/cn-east-1.yml:10:5  "
        "$.site.namespace  cannot merge a mapping over a str ('project') "
        "set at inventory/classes/common.yml:5:5",
    ),
    "wrong type": (
        lambda r: edit(r / GATEKEEPER, "      replicas: 1\n", "      replicas: three\n"),
        "inventory/classes/services/gatekeeper.yml:10:7  "
        "$.services.gatekeeper.replicas  'three' is not of type 'integer'",
    ),
    "template failure": (
        lambda r: edit(
            r / "components/stateful-service/service.yml.j2",
            "  type: {{ service.service_type }}",
            "  type: {{ service.servce_type }}",
        ),
        "components/stateful-service/service.yml.j2:9  "
        "service gatekeeper: undefined value: 'dict object' has no "
        "attribute 'servce_type'",
    ),
    "kubernetes schema violation": (
        lambda r: edit(
            r / "components/stateful-service/service.yml.j2",
            "  type: {{ service.service_type }}",
            "  type: {{ service.service_type }}\n  sessionAffinityy: None",
        ),
        "components/stateful-service/service.yml.j2  "
        "service gatekeeper: Service project/gatekeeper: $.spec: "
        "Additional properties are not allowed ('sessionAffinityy' was unexpected)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_located_message_and_writes_nothing(project: Path, case: str) -> None:
    breaks, expected = BAD_INPUTS[case]
    before = tree_digest(project / "compiled")
    breaks(project)
    code, out, err = gen("compile", "--root", str(project))
    assert code == 1, out + err
    assert expected in err
    assert "Traceback" not in err
    assert tree_digest(project / "compiled") == before


def test_duplicate_key_is_an_error_when_strict(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Kapitan keeps the last value (gen too, with a warning); GEN_INVENTORY_STRICT refuses.
    monkeypatch.setenv("GEN_INVENTORY_STRICT", "1")
    before = tree_digest(project / "compiled")
    edit(project / GATEKEEPER, "      replicas: 1\n", "      replicas: 1\n      replicas: 2\n")
    code, out, err = gen("compile", "--root", str(project))
    assert code == 1, out + err
    assert (
        "inventory/classes/services/gatekeeper.yml:11:7  "
        "$.parameters.services.gatekeeper.replicas  duplicate key 'replicas' (also at line 10)"
    ) in err
    assert tree_digest(project / "compiled") == before


def test_validate_reports_every_problem_at_once_pointing_at_the_setting_file(project: Path) -> None:
    edit(project / GATEKEEPER, "      replicas: 1\n", "      replicas: -1\n")
    edit(
        project / EAST,
        '    kubernetes_version: "1.25.16"\n',
        "    kubernetes_version: 1.25\n    colour: blue\n",
    )
    code, _out, err = gen("validate", "--root", str(project))
    assert code == 1
    lines = err.splitlines()
    assert (
        "inventory/classes/services/gatekeeper.yml:10:7  "
        "$.services.gatekeeper.replicas  -1 is less than the "
        "minimum of 0 (target: cn-east-1)" in lines
    )
    assert (
        "inventory/classes/services/gatekeeper.yml:10:7  "
        "$.services.gatekeeper.replicas  -1 is less than the "
        "minimum of 0 (target: cn-north-2)" not in lines
    )  # cn-north-2 overrides replicas
    assert (
        "inventory/targets/cn-east-1.yml:10:5  "
        "$.site.kubernetes_version  1.25 is not of type 'string'" in lines
    )
    assert any(
        line.startswith("inventory/targets/cn-east-1.yml:11:5  $.site.colour  unknown key 'colour'")
        for line in lines
    )
    assert lines[-1] == "1 of 2 target(s) invalid"


def test_validate_passes_on_reference_platform() -> None:
    code, out, _ = gen("validate")
    assert code == 0 and out.strip() == "2 target(s) valid"


def test_check_exits_1_listing_stale_files(project: Path) -> None:
    edit(project / GATEKEEPER, "gatekeeper_version: v362", "gatekeeper_version: v363")
    code, _, err = gen("compile", "--root", str(project), "--check")
    assert code == 1
    assert "  ~ cn-east-1/manifests/project/statefulset-gatekeeper.yaml" in err.splitlines()


def test_inventory_prints_merged_parameters_as_json_and_yaml() -> None:
    code, out, _ = gen("inventory", "-t", "cn-east-1", "--output", "json")
    params = json.loads(out)["parameters"]
    assert code == 0
    assert params["services"]["gatekeeper"]["tag"] == "v362"
    assert params["site"]["name"] == "cn-east-1"
    code, out, _ = gen("inventory", "-t", "cn-east-1")
    assert code == 0 and "    tag: v362\n" in out


def test_inventory_without_a_target_prints_every_target(project: Path) -> None:
    code, out, _ = gen("inventory", "--root", str(project), "-o", "json")
    assert code == 0
    every = json.loads(out)
    assert sorted(every) == ["cn-east-1", "cn-north-2"]
    _, one, _ = gen("inventory", "--root", str(project), "-t", "cn-north-2", "-o", "json")
    assert every["cn-north-2"] == json.loads(one)


def test_root_before_the_command_works_like_git_c(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = gen("-C", str(project), "inventory", "-t", "cn-east-1", "-o", "json")
    assert code == 0 and json.loads(out)["parameters"]["site"]["name"] == "cn-east-1"


def test_inventory_warnings_go_to_stderr_and_strict_refuses(project: Path) -> None:
    edit(project / EAST, "parameters:", "parameters:\n  mode: 0550")
    code, out, err = gen("inventory", "--root", str(project), "-t", "cn-east-1", "-o", "json")
    assert code == 0 and json.loads(out)["parameters"]["mode"] == 360
    assert err.startswith(
        "warning: inventory/targets/cn-east-1.yml:8:3  $.parameters.mode  0550 reads as the int "
        "360 in YAML 1.1"
    )
    code, out, err = gen("inventory", "--root", str(project), "-t", "cn-east-1", "--strict")
    assert code == 1 and out == ""
    assert err.startswith("inventory/targets/cn-east-1.yml:8:3  $.parameters.mode  0550 reads")


def test_compile_and_validate_print_the_inventory_warnings_and_still_succeed(
    project: Path,
) -> None:
    edit(project / EAST, "parameters:", "parameters:\n  mode: 0550")
    where = "warning: inventory/targets/cn-east-1.yml:8:3  $.parameters.mode  0550 reads as the int"
    code, _, err = gen("validate", "--root", str(project))
    assert code == 0 and err.startswith(where)
    code, out, _ = gen("validate", "--root", str(project), "-o", "json")
    assert code == 0 and json.loads(out)["warnings"][0].startswith(where[len("warning: ") :])
    code, _, err = gen("compile", "--root", str(project))
    assert code == 0 and where in err


def test_unknown_target_is_a_user_error() -> None:
    code, _, err = gen("inventory", "-t", "nowhere")
    assert code == 1
    assert "unknown target 'nowhere'; targets in inventory/targets: cn-east-1, cn-north-2" in err


def test_installed_console_script_compiles_end_to_end(project: Path) -> None:
    gen_bin = Path(sys.executable).with_name("gen")
    (project / "compiled").rename(project / "old")
    done = subprocess.run(
        [str(gen_bin), "compile", "--root", str(project)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    files = len(tree_digest(project / "old"))
    assert done.stdout.startswith(f"compiled 2 site(s), 0 unchanged, {files} file(s) changed")
    assert tree_digest(project / "compiled") == tree_digest(project / "old")


def test_usage_error_exits_2() -> None:
    code, _, _ = gen("compile", "--bogus")
    assert code == 2


@pytest.mark.parametrize("option, value", [("--interval", "90"), ("--health-timeout", "3")])
def test_agent_durations_without_a_unit_are_refused_naming_option_and_variable(
    tmp_path: Path, option: str, value: str
) -> None:
    signers = tmp_path / "allowed_signers"
    signers.write_text("")
    code, out, err = gen(
        "agent",
        "run",
        "--site",
        "cn-east-1",
        "--allowed-signers",
        str(signers),
        "--envelopes",
        str(tmp_path / "inbox"),
        "--state-dir",
        str(tmp_path / "state"),
        "--once",
        option,
        value,
    )
    variable = "GEN_AGENT_" + option.removeprefix("--").replace("-", "_").upper()
    assert code == 1
    assert (
        f"{option}/{variable}: {value!r} is not a positive duration: a unit is required"
        in out + err
    )
    assert "Traceback" not in out + err
    assert not (tmp_path / "state").exists()


def test_a_command_built_alone_has_the_help_and_errors_of_the_whole_app() -> None:
    from typer.testing import CliRunner

    from generator import cli

    runner = CliRunner()
    for args in (
        ["compile", "--help"],
        ["compile", "--bogus"],
        ["validate", "-h"],
        ["diff", "--help"],
        ["inventory", "--help"],
    ):
        slim = cli._for_command(cli.app, args)
        assert slim is not cli.app and len(slim.registered_commands) == 1
        whole, alone = runner.invoke(cli.app, args), runner.invoke(slim, args)
        assert (alone.exit_code, alone.output) == (whole.exit_code, whole.output), args
    for args in (["secrets", "list"], ["-C", ".", "compile"], ["--help"], [], ["nope"]):
        assert cli._for_command(cli.app, args) is cli.app, args
