#!/usr/bin/env bash
# Kapitan 0.36.3 in a throwaway venv under the cache, for the live half of the differential
# corpus (tests/kapitan: gen's parameters against Kapitan's own). gen never imports it; the test
# runs its `kapitan` executable. Prints the executable's path. Needs PyPI once (about a minute);
# cached in $GEN_CACHE_DIR (default ~/.cache/gen)/kapitan-0.36.3 afterwards. An interrupted
# install has no `.complete` marker and is redone.
set -euo pipefail
version=0.36.3
cache="${GEN_CACHE_DIR:-$HOME/.cache/gen}"
venv="$cache/kapitan-$version"
if [[ ! -f "$venv/.complete" ]]; then
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kapitan==$version" >&2
  "$venv/bin/kapitan" --version >/dev/null
  touch "$venv/.complete"
fi
echo "$venv/bin/kapitan"
