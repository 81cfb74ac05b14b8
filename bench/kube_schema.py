"""Benchmark of generator.build.kube_schema: codegen, cache loads, per-object validation vs plain
jsonschema.

Run: .venv/bin/python bench/kube_schema.py [kubernetes-version]   (uses a throw-away cache
directory)
"""

from __future__ import annotations

import functools
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema

from generator.build import kube_schema
from generator.build.kube_schema import Validator
from generator.core import units

CONTAINER = {
    "name": "web",
    "image": "nginx:1.25",
    "ports": [{"containerPort": 8080, "name": "http"}],
    "env": [{"name": "MODE", "value": "prod"}],
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
    "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}},
    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
}
OBJECTS: dict[str, dict[str, Any]] = {
    "StatefulSet": {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "serviceName": "web",
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [CONTAINER]},
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
    },
    "Service": {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    },
    "Ingress": {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web"},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["a.example.org"], "secretName": "tls"}],
            "rules": [
                {
                    "host": "a.example.org",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "web", "port": {"name": "http"}}},
                            }
                        ]
                    },
                }
            ],
        },
    },
    "ConfigMap": {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg"},
        "data": {"a": "b"},
    },
    "EndpointSlice": {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "db-1"},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": True}}],
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
    },
}


def per_call(fn: Callable[[], object], seconds: float = 0.3) -> float:
    """Mean seconds per call, measured over about ``seconds``."""
    fn()
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        n += 1
    return elapsed / n


def main(version: str) -> None:
    picked, warning = kube_schema.schema_version_for(version)
    bundle = kube_schema._bundle()
    schema_dir = bundle.root / bundle.dirs[units.kube_version(picked).minor_version]
    print(
        f"Kubernetes {version} -> schemas {picked} (kubernetes-validate {bundle.version})"
        + (f"\n  warning: {warning}" if warning else "")
    )
    start = time.perf_counter()
    kube_schema._fast_definitions(schema_dir)
    kube_schema._definitions_resource(schema_dir)
    elapsed = time.perf_counter() - start
    print(f"_definitions.json read + transformed (once per schema version): {ms(elapsed)}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        cold(version, cache)
        warm(version, cache, schema_dir)
        per_object(version, cache, schema_dir)


def cold(version: str, cache: Path) -> None:
    print("\ncold: codegen + compile + write to the disk cache, per kind")
    for kind, obj in OBJECTS.items():
        start = time.perf_counter()
        Validator(cache_dir=cache).prepare(version, obj["apiVersion"], kind)
        print(f"  {kind:14} {ms(time.perf_counter() - start)}")


def warm(version: str, cache: Path, schema_dir: Path) -> None:
    print(
        "\nwarm: load from the disk cache, per kind   (.pyc + exec  |  compile(.py) + exec instead)"
    )
    for kind, obj in OBJECTS.items():

        def prepare(obj: dict[str, Any] = obj, kind: str = kind) -> bool:
            return Validator(cache_dir=cache).prepare(version, obj["apiVersion"], kind)

        load = per_call(prepare, 0.2)
        stem = kube_schema.schema_file_name(obj["apiVersion"], kind).removesuffix(".json")
        py = next(cache.rglob(f"{schema_dir.name}/{stem}.py"))
        source = py.read_bytes()

        def run_source(source: bytes = source, py: Path = py) -> None:
            exec(compile(source, str(py), "exec"), {})

        recompile = per_call(run_source, 0.2)
        print(f"  {kind:14} {ms(load)}   |  {ms(recompile)}")


def per_object(version: str, cache: Path, schema_dir: Path) -> None:
    print(
        "\nper object, valid objects: Validator.validate (fast path)  "
        "vs  jsonschema Draft202012Validator"
    )
    validator = Validator(cache_dir=cache)
    for kind, obj in OBJECTS.items():
        file = kube_schema.schema_file_name(obj["apiVersion"], kind)
        reference = kube_schema._reference_validator(schema_dir, file)
        assert validator.validate(obj, version) == [] and reference.is_valid(obj)
        fast = per_call(functools.partial(validator.validate, obj, version))

        def reference_errors(
            obj: dict[str, Any] = obj, reference: jsonschema.Draft202012Validator = reference
        ) -> list[jsonschema.ValidationError]:
            return list(reference.iter_errors(obj))

        slow = per_call(reference_errors)
        print(f"  {kind:14} {us(fast)}  vs  {us(slow)}   x{slow / fast:5.1f}")
    sts = OBJECTS["StatefulSet"]
    total = per_call(lambda: validator.validate(sts, version)) * 16000
    print(f"\n16,000 StatefulSet-sized objects: {total:.2f} s on the fast path")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:8.1f} us"


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "1.33")
