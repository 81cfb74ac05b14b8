#!/usr/bin/env bash
# The build stage of agent/Dockerfile, without Docker: the locks install with --require-hashes.
set -eu
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
python3.11 -m venv "$work/gen-agent"
"$work/gen-agent/bin/pip" install --quiet --require-hashes --only-binary :all: -r agent/requirements.lock
python3.11 -m venv "$work/build"
"$work/build/bin/pip" install --quiet --require-hashes --only-binary :all: -r agent/build.lock
mkdir "$work/src" && cp -r pyproject.toml README.md generator "$work/src/"
"$work/build/bin/pip" wheel --quiet --no-deps --no-build-isolation --wheel-dir "$work/wheels" "$work/src"
"$work/gen-agent/bin/pip" install --quiet --no-index --no-deps "$work"/wheels/gen_gitops-*.whl
"$work/gen-agent/bin/pip" check
"$work/gen-agent/bin/gen-agent" --help >/dev/null
for module in jinja2 ruamel.yaml jsonschema kubernetes_validate; do
  if "$work/gen-agent/bin/python" -c "import $module" 2>/dev/null; then
    echo "the agent's environment holds $module (a compile dependency)" >&2; exit 1
  fi
done
echo "ok: $("$work/gen-agent/bin/pip" list --format freeze | wc -l) distributions, $(du -sh "$work/gen-agent" | cut -f1)"
