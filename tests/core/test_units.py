"""generator.core.units: the one duration parser and the one Kubernetes-version parser."""

from __future__ import annotations

from datetime import timedelta

import pytest

from generator.core import units
from generator.core.errors import GenError
from generator.core.units import KubeVersion

# -- durations ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("30s", 30),
        ("5m", 300),
        ("2h", 7200),
        ("7d", 604800),
        ("2w", 1209600),
        ("250ms", 0.25),
        ("1.5h", 5400),
        ("0s", 0),
        (" 5m ", 300),
        ("1h30m", 5400),
        ("2d12h", 216000),
        ("1m30s", 90),
        ("1h0m5s", 3605),
        ("1s500ms", 1.5),
    ],
)
def test_a_duration_is_numbers_with_units_largest_first(text: str, seconds: float) -> None:
    assert units.duration(text, "x") == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["90", "0", "1.5", " 7 "])
def test_a_bare_number_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(GenError) as caught:
        units.duration(text, "site.monitoring.eval_interval")
    raw = text.strip()
    assert str(caught.value) == (
        f"site.monitoring.eval_interval: {text!r} is not a duration: "
        f"a unit is required, e.g. {raw}s, {raw}m, {raw}h or {raw}d"
    )


@pytest.mark.parametrize(
    "text",
    ["-1s", "-5m", "soon", "", "1y", "5M", "5 m", "m", "1h-30m", "1.h", ".5s", "1e3s", "5min"],
)
def test_negative_and_garbage_durations_are_refused_naming_the_field(text: str) -> None:
    message = r"^--interval: .* is not a duration like 30s, 5m, 2h, 7d or 1h30m$"
    with pytest.raises(GenError, match=message):
        units.duration(text, "--interval")


@pytest.mark.parametrize("text", ["30m1h", "1h1h", "5s2m", "1ms1s"])
def test_a_unit_out_of_order_or_repeated_is_refused(text: str) -> None:
    with pytest.raises(GenError, match="list each unit once, largest first"):
        units.duration(text, "for")


@pytest.mark.parametrize("value", [30, 1.5, None, True, ["5m"]])
def test_a_duration_that_is_not_a_string_is_refused(value: object) -> None:
    with pytest.raises(GenError, match=r"^timeout: .* is not a duration"):
        units.duration(value, "timeout")  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["0s", "0m", "0h0m0s", "0ms"])
def test_a_positive_duration_refuses_zero(text: str) -> None:
    with pytest.raises(GenError, match=f"^--expires-in: '{text}' is not a positive duration like"):
        units.positive_duration(text, "--expires-in")


def test_a_positive_duration_names_the_field_for_a_bare_number_too() -> None:
    message = "^--expires-in: '7' is not a positive duration: a unit is required"
    with pytest.raises(GenError, match=message):
        units.positive_duration("7", "--expires-in")


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("1h30m", 5400), ("0s", 0), ("2000ms", 2)])
def test_whole_seconds(text: str, seconds: int) -> None:
    assert units.whole_seconds(text, "for") == seconds


def test_whole_seconds_refuses_a_fraction_of_a_second() -> None:
    with pytest.raises(GenError, match=r"^for: '1500ms' is not a whole number of seconds$"):
        units.whole_seconds("1500ms", "for")


@pytest.mark.parametrize(
    "seconds, text", [(0, "0s"), (30, "30s"), (300, "5m"), (5400, "1h30m"), (90061, "25h1m1s")]
)
def test_format_duration_writes_what_duration_reads(seconds: int, text: str) -> None:
    assert units.format_duration(seconds) == text
    assert units.whole_seconds(text, "for") == seconds


# -- Kubernetes versions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, version",
    [
        ("1.30", KubeVersion(1, 30)),
        ("v1.30.2", KubeVersion(1, 30, 2)),
        ("1.25.16", KubeVersion(1, 25, 16)),
        ("1.28.3-eks-1", KubeVersion(1, 28, 3)),
        ("v1.29.1+k3s1", KubeVersion(1, 29, 1)),
        (" 1.21 ", KubeVersion(1, 21)),
    ],
)
def test_kubernetes_versions_parse_as_clusters_report_them(text: str, version: KubeVersion) -> None:
    assert units.kube_version(text) == version


def test_kubernetes_versions_compare_numerically() -> None:
    assert units.kube_version("1.9") < units.kube_version("1.10") < units.kube_version("1.10.1")
    assert units.kube_version("1.21") == units.kube_version("v1.21.0")
    assert units.kube_version("1.25.16").minor_version == (1, 25)


@pytest.mark.parametrize(
    "text", ["", "1", "one.two", "1.x", "1.30.", "v", "1..2", "latest", "1.30 2"]
)
def test_a_malformed_kubernetes_version_is_refused_naming_the_field(text: str) -> None:
    message = (
        r"^site.kubernetes_version: unsupported Kubernetes version .*: "
        r"expected e.g. 1.30 or v1.30.2$"
    )
    with pytest.raises(GenError, match=message):
        units.kube_version(text, "site.kubernetes_version")


def test_a_kubernetes_version_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(GenError, match=r"unsupported Kubernetes version 1\.25"):
        units.kube_version(1.25)  # type: ignore[arg-type]
