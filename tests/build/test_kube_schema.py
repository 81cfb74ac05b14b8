"""generator.build.kube_schema: verdicts equal to jsonschema's, version selection,
the on-disk code cache."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import referencing
import referencing.jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.build import kube_schema
from generator.build.kube_schema import Validator, cache_root, schema_version_for
from generator.core.errors import GenError
from generator.core.jsonpath import format_path

VERSIONS = ["1.25", "1.33"]


def statefulset() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "labels": {"app.kubernetes.io/name": "web"},
        },
        "spec": {
            "serviceName": "web",
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {"checksum/config": "abc"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.25",
                            "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                            "env": [
                                {"name": "MODE", "value": "prod"},
                                {
                                    "name": "POD",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                },
                            ],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"memory": 1},
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/health", "port": "http"},
                                "periodSeconds": 5,
                            },
                            "livenessProbe": {"tcpSocket": {"port": 8080}},
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ],
                    "securityContext": {"runAsNonRoot": True, "fsGroup": 1000},
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }


def service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "selector": {"app": "web"},
            "type": "ClusterIP",
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                {"name": "admin", "port": 9000, "targetPort": 9000},
            ],
        },
    }


def ingress() -> dict[str, Any]:
    backend = {"service": {"name": "web", "port": {"name": "http"}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "web",
            "annotations": {"nginx.ingress.kubernetes.io/ssl-redirect": "true"},
        },
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["shop.example.org"], "secretName": "web-tls"}],
            "rules": [
                {
                    "host": "shop.example.org",
                    "http": {
                        "paths": [
                            {"path": "/", "pathType": "Prefix", "backend": backend},
                            {
                                "path": "/api",
                                "pathType": "Exact",
                                "backend": {"service": {"name": "api", "port": {"number": 8080}}},
                            },
                        ]
                    },
                }
            ],
        },
    }


def endpointslice() -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": True}}],
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
    }


def endpoints() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "db"},
        "subsets": [{"addresses": [{"ip": "10.0.0.5"}], "ports": [{"name": "pg", "port": 5432}]}],
    }


def configmap() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg"},
        "data": {"app.yaml": "a: 1\n"},
        "binaryData": {"blob": "AAEC"},
    }


VALID = [statefulset, service, ingress, endpointslice, endpoints, configmap]


# --- an independent reference: jsonschema on the files, as kubernetes-validate itself does ---


@functools.cache
def _oracle(version: str, api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    root = (
        Path(kubernetes_validate.__file__).parent
        / "kubernetes-json-schema"
        / f"v{version}.0-local-strict"
    )
    schema = kubernetes_validate.utils.schema_contents(
        f"kubernetes-json-schema/{root.name}/{kube_schema.schema_file_name(api_version, kind)}",
        version,
    )
    defs = kubernetes_validate.utils.schema_contents(
        f"kubernetes-json-schema/{root.name}/_definitions.json", version
    )
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(
        (s["$id"], referencing.jsonschema.DRAFT202012.create_resource(s)) for s in (schema, defs)
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


def oracle_paths(obj: dict[str, Any], version: str) -> list[str]:
    errors = _oracle(version, obj["apiVersion"], obj["kind"]).iter_errors(obj)
    return sorted({format_path(e.absolute_path) for e in errors})


def paths(messages: list[str]) -> list[str]:
    return sorted({m.split(": ", 1)[0] for m in messages})


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the session, so each kind is generated once per test run."""
    return tmp_path_factory.mktemp("gen-cache")


@pytest.fixture(autouse=True)
def _cache_env(monkeypatch: pytest.MonkeyPatch, shared_cache: Path) -> None:
    monkeypatch.setenv("GEN_CACHE_DIR", str(shared_cache))


@pytest.fixture(scope="session")
def validator(shared_cache: Path) -> Validator:
    return Validator(cache_dir=shared_cache)


def cached_files(cache: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.rglob("*") if p.is_file()}


# --- valid objects --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("make", VALID, ids=lambda f: f.__name__)
def test_valid_objects_pass(validator: Validator, make: Any, version: str) -> None:
    obj = make()
    assert oracle_paths(obj, version) == []
    assert validator.validate(obj, version) == []
    assert obj == make()  # validation never fills in defaults or otherwise touches the object


def test_valid_objects_are_accepted_by_the_fast_path_alone(
    validator: Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_reference(*args: object) -> None:
        raise AssertionError("the reference validator ran for a valid object")

    monkeypatch.setattr(kube_schema, "_reference_validator", no_reference)
    fresh = Validator(cache_dir=Path(os.environ["GEN_CACHE_DIR"]))
    for make in VALID:
        assert fresh.validate(make(), "1.33.4") == []


# --- invalid objects: the reference's verdict and messages ----------------------------------------


def test_unknown_field(validator: Validator) -> None:
    obj = statefulset()
    obj["spec"]["template"]["spec"]["containers"][0]["bogus"] = 1
    assert validator.validate(obj, "1.33") == [
        "$.spec.template.spec.containers[0]: "
        "Additional properties are not allowed ('bogus' was unexpected)"
    ]


def test_wrong_type(validator: Validator) -> None:
    obj = statefulset()
    obj["spec"]["replicas"] = "three"
    assert validator.validate(obj, "1.25.16") == [
        "$.spec.replicas: 'three' is not of type 'integer', 'null'"
    ]


def test_missing_required_field(validator: Validator) -> None:
    obj = statefulset()
    del obj["spec"]["template"]["spec"]["containers"][0]["name"]
    assert validator.validate(obj, "1.33") == [
        "$.spec.template.spec.containers[0]: 'name' is a required property"
    ]


def test_all_errors_are_reported_sorted(validator: Validator) -> None:
    obj = statefulset()
    obj["spec"]["replicas"] = "three"
    obj["metadata"]["labels"]["tier"] = 1
    del obj["spec"]["template"]["spec"]["containers"][0]["name"]
    messages = validator.validate(obj, "1.33")
    assert messages == sorted(messages) and len(messages) == 3
    assert paths(messages) == oracle_paths(obj, "1.33")


@pytest.mark.parametrize(
    "target, valid",
    [
        ("http", True),
        (8080, True),
        (8080.0, True),
        ("8080", True),
        (8080.5, False),
        (True, False),
        (None, False),
        ({"port": 1}, False),
        (["http"], False),
    ],
)
def test_int_or_string(validator: Validator, target: object, valid: bool) -> None:
    obj = service()
    obj["spec"]["ports"][0]["targetPort"] = target
    assert (validator.validate(obj, "1.33") == []) is valid
    assert paths(validator.validate(obj, "1.33")) == oracle_paths(obj, "1.33")


def test_port_must_be_an_integer(validator: Validator) -> None:
    obj = service()
    obj["spec"]["ports"][1]["port"] = "9000"
    assert validator.validate(obj, "1.33") == [
        "$.spec.ports[1].port: '9000' is not of type 'integer'"
    ]


def test_tuples_are_not_arrays(validator: Validator) -> None:
    """fastjsonschema alone would accept a tuple; the reference does not, and it decides."""
    obj = statefulset()
    spec = obj["spec"]["template"]["spec"]
    spec["containers"] = tuple(spec["containers"])
    assert paths(validator.validate(obj, "1.33")) == oracle_paths(obj, "1.33") != []


def test_wrong_kind_spelling_is_a_schema_error(validator: Validator) -> None:
    obj = configmap()
    obj["kind"] = "configmap"
    assert validator.validate(obj, "1.33") == ["$.kind: 'configmap' is not one of ['ConfigMap']"]


def test_property_named_dollar_ref_in_a_crd(validator: Validator) -> None:
    crd: dict[str, Any] = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.org"},
        "spec": {
            "group": "example.org",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": {"$ref": "#/definitions/x"}},
                        }
                    },
                }
            ],
        },
    }
    assert validator.validate(crd, "1.33") == []
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["$ref"] = 7
    assert paths(validator.validate(crd, "1.33")) == oracle_paths(crd, "1.33") != []


def _values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 2**40),
        st.sampled_from([2.0, 0.5]),
        st.text(max_size=4),
        st.sampled_from(["http", "TCP", "Prefix", "IPv4"]),
    )
    return st.one_of(
        scalars,
        st.lists(scalars, max_size=2),
        st.dictionaries(st.text(max_size=3), scalars, max_size=2),
        st.just(()),
        st.just([{}]),
    )


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key-or-index) in a JSON tree."""
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    out: list[tuple[Any, Any]] = []
    for key, value in items:
        out.append((node, key))
        out.extend(_slots(value))
    return out


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    obj: dict[str, Any] = draw(st.sampled_from([statefulset, service, ingress, endpointslice]))()
    for _ in range(draw(st.integers(1, 3))):
        container, key = draw(st.sampled_from(_slots(obj)))
        if key in ("apiVersion", "kind") and container is obj:
            continue
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            container[key] = draw(_values())
        elif action == "delete" and isinstance(container, dict):
            del container[key]
        elif isinstance(container, dict):
            container[draw(st.sampled_from(["bogus", "name", "$ref", "port", "spec"]))] = draw(
                _values()
            )
    return obj


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(obj=mutated(), version=st.sampled_from(VERSIONS))
def test_same_verdict_as_jsonschema(
    validator: Validator, obj: dict[str, Any], version: str
) -> None:
    assert paths(validator.validate(obj, version)) == oracle_paths(obj, version)


# --- kinds without a schema -----------------------------------------------------------------------


def test_unknown_kind(validator: Validator) -> None:
    widget = {"apiVersion": "example.org/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert validator.validate(widget, "1.33.4") == [
        "$: no schema exists for example.org/v1 Widget in Kubernetes 1.33"
    ]
    assert not validator.prepare("1.33.4", "example.org/v1", "Widget")


def test_skip_kinds() -> None:
    skipping = Validator(skip_kinds={("example.org/v1", "Widget")})
    assert (
        skipping.validate({"apiVersion": "example.org/v1", "kind": "Widget", "x": 1}, "1.33") == []
    )


@pytest.mark.parametrize(
    "obj",
    [
        {},
        {"kind": "ConfigMap"},
        {"apiVersion": "v1", "kind": 3},
        {"apiVersion": "../../x", "kind": "../y"},
    ],
)
def test_objects_without_usable_apiversion_and_kind(
    validator: Validator, obj: dict[str, Any]
) -> None:
    assert len(validator.validate(obj, "1.33")) == 1


def test_removed_api_has_no_schema_in_newer_versions(validator: Validator) -> None:
    psp = {"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy", "metadata": {"name": "p"}}
    assert validator.validate(psp, "1.33") == [
        "$: no schema exists for policy/v1beta1 PodSecurityPolicy in Kubernetes 1.33"
    ]


# --- version selection ----------------------------------------------------------------------------


def test_version_selection() -> None:
    assert schema_version_for("1.33.4") == ("1.33", None)
    assert schema_version_for("v1.30.0") == ("1.30", None)
    assert schema_version_for("1.28.3-eks-a1b2") == ("1.28", None)
    assert schema_version_for("1.25") == ("1.25", None)


def test_older_than_bundled_uses_oldest_with_warning() -> None:
    version, warning = schema_version_for("1.21.5")
    assert version == "1.25"
    assert warning and "1.21.5" in warning and "older" in warning


def test_newer_than_bundled_uses_newest_with_warning() -> None:
    newest = kube_schema._mm(max(kube_schema._bundle().dirs))
    version, warning = schema_version_for("1.99")
    assert version == newest
    assert warning and "newer" in warning and newest in warning


def test_minor_versions_compare_numerically(monkeypatch: pytest.MonkeyPatch) -> None:
    real = kube_schema._bundle()
    dirs = {
        (1, 9): "v1.9.0-local-strict",
        (1, 10): "v1.10.0-local-strict",
        (1, 11): "v1.11.0-local-strict",
    }
    monkeypatch.setattr(
        kube_schema, "_bundle", lambda: kube_schema._Bundle(real.root, real.version, dirs)
    )
    assert schema_version_for("1.10.3") == ("1.10", None)
    assert schema_version_for("1.9.9") == ("1.9", None)
    assert schema_version_for("v1.11") == ("1.11", None)
    assert schema_version_for("1.100")[0] == "1.11" and "newer" in str(
        schema_version_for("1.100")[1]
    )
    assert schema_version_for("1.8")[0] == "1.9" and "older" in str(schema_version_for("1.8")[1])


def test_patch_releases_of_schemas_pick_the_highest(tmp_path: Path) -> None:
    for name in [
        "v1.9.0-local-strict",
        "v1.10.2-local-strict",
        "v1.10.10-local-strict",
        "v1.10.9-local",
    ]:
        (tmp_path / name).mkdir()
    assert kube_schema._strict_dirs(tmp_path) == {
        (1, 9): "v1.9.0-local-strict",
        (1, 10): "v1.10.10-local-strict",
    }


@pytest.mark.parametrize("bad", ["", "latest", "1", "1.x", "v", "1.33.4.5.6.7 junk"])
def test_unsupported_version_strings(bad: str, validator: Validator) -> None:
    with pytest.raises(GenError, match="unsupported Kubernetes version"):
        schema_version_for(bad)
    with pytest.raises(GenError):
        validator.validate(configmap(), bad)


# --- the disk cache -------------------------------------------------------------------------------


def test_cache_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GEN_CACHE_DIR", str(tmp_path / "a"))
    assert cache_root() == tmp_path / "a"
    monkeypatch.delenv("GEN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "gen"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "gen"


def test_cache_layout_and_reuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEN_CACHE_DIR", str(tmp_path))
    assert Validator().validate(configmap(), "1.33") == []
    files = cached_files(tmp_path)
    version = kube_schema._bundle().version
    folder = kube_schema.cache_folder(version)
    py = tmp_path / "kube-schemas" / folder / "v1.33.0-local-strict" / "configmap-v1.py"
    assert py in files and any(p.suffix == ".pyc" for p in files)

    def no_codegen(*args: object) -> str:
        raise AssertionError("regenerated although the cache is warm")

    monkeypatch.setattr(kube_schema, "_generate", no_codegen)
    assert Validator().validate(configmap(), "1.33") == []
    assert cached_files(tmp_path) == files  # nothing rewritten


@pytest.mark.parametrize("damage", ["garbage", "truncated", "stale", "bad-pyc", "no-pyc"])
def test_damaged_cache_is_regenerated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    monkeypatch.setenv("GEN_CACHE_DIR", str(tmp_path))
    assert Validator().prepare("1.33", "v1", "ConfigMap")
    py = next(tmp_path.rglob("configmap-v1.py"))
    pyc = next(tmp_path.rglob("configmap-v1.*.pyc"))
    good = py.read_bytes()
    if damage == "garbage":
        py.write_bytes(b"\x00\xff not python (")
    elif damage == "truncated":
        py.write_bytes(good[: len(good) // 2])
    elif damage == "stale":
        py.write_bytes(good.replace(b"GEN_FORMAT = ", b"GEN_FORMAT = 0"))
    elif damage == "bad-pyc":
        pyc.write_bytes(pyc.read_bytes()[:20] + b"\x00" * 40)
    else:
        pyc.unlink()
    bad = configmap()
    bad["data"]["n"] = 1
    fresh = Validator()
    assert fresh.validate(configmap(), "1.33") == []
    assert fresh.validate(bad, "1.33") == ["$.data.n: 1 is not of type 'string', 'null'"]
    assert py.read_bytes() == good
    assert pyc.is_file() and pyc.stat().st_size > 100


def test_unwritable_cache_is_not_fatal(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    v = Validator(cache_dir=blocker)
    assert v.validate(configmap(), "1.33") == []
    bad = configmap()
    bad["bogus"] = 1
    assert v.validate(bad, "1.33") == [
        "$: Additional properties are not allowed ('bogus' was unexpected)"
    ]
