#!/usr/bin/env bash
# Regenerate agent/requirements.lock, the agent image's dependencies (pyproject.toml's base
# `dependencies`, no extras), and agent/build.lock, the build backend gen's wheel is built with
# (`[build-system] requires`): every version pinned and every file hashed, for `pip install
# --require-hashes` in agent/Dockerfile. Run it after changing the base dependencies and commit the
# result; review the diff like code (it is what runs at every site).
#
# pip-tools runs in a throwaway venv (never the project's), resolving for the interpreter given
# by $PYTHON (default python3.11: the agent image's Python); the index is $PIP_INDEX_URL if set.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3.11}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "pip-tools==7.5.3" >&2
cd "$root"
CUSTOM_COMPILE_COMMAND="tools/lock-agent.sh" "$work/venv/bin/pip-compile" \
  --quiet --generate-hashes --strip-extras --no-emit-index-url --allow-unsafe --no-emit-find-links \
  --newline lf --output-file agent/requirements.lock pyproject.toml >&2
"$python" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))' >"$work/build.in"
CUSTOM_COMPILE_COMMAND="tools/lock-agent.sh" "$work/venv/bin/pip-compile" \
  --quiet --generate-hashes --allow-unsafe --no-emit-find-links --no-emit-index-url \
  --newline lf --output-file agent/build.lock "$work/build.in" >&2
sed -i "s|$work/build.in|pyproject.toml (build-system)|" agent/build.lock
echo "$root/agent/requirements.lock"
echo "$root/agent/build.lock"
