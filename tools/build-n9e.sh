#!/usr/bin/env bash
# Build Nightingale (n9e) "center" from the Go module proxy for the test suite.
#
# Output: ${GEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gen}/n9e/<version>/
#           n9e             the binary (cmd/center)
#           etc/            the module's config directory (config.toml, metrics.yaml, i18n, ...)
#           integrations/   built-in integrations, read at start-up (n9e panics without it)
# The directory is printed on the LAST line of stdout; everything else goes to stderr.
#
# - If N9E_ASSETS is set and holds an executable n9e plus etc/config.toml, that directory is
#   printed and nothing is built (bring your own build, like KUBEBUILDER_ASSETS for envtest).
# - N9E_SRC=<dir> builds from a local source tree (a checkout of the tag) instead of the proxy.
# - N9E_SRC_TARBALL=<file.tar.gz> builds from a source tarball (default: the team's vendored
#   ../shared/vendor/nightingale-<version>-src.tar.gz beside the repository, used when it exists,
#   because the module proxy here refuses Nightingale). The tarball's sha256 is part of the cache
#   key (n9e/<version>-src-<sha12>/), so a different source never reuses a stale binary.
# - Idempotent (exits at once when the binary answers -version), serialised with flock, and
#   atomic (the whole directory is staged under a temporary name and renamed into place).
#
# Every n9e tag declares module path github.com/ccfos/nightingale/v6, so "@v9.1.1" is not a
# valid module version: the proxy is asked for the tag's commit and resolves a pseudo-version.
# go.mod has replace directives (v8+), so `go install` cannot work: download, copy, go build.
#
# Environment: N9E_VERSION (default v9.1.1), N9E_COMMIT (the tag's commit, default 4e05615014),
#              N9E_ASSETS, N9E_SRC, N9E_SRC_TARBALL, GEN_CACHE_DIR, XDG_CACHE_HOME.
set -euo pipefail

N9E_VERSION="${N9E_VERSION:-v9.1.1}"
N9E_COMMIT="${N9E_COMMIT:-4e05615014}"
N9E_MODULE="github.com/ccfos/nightingale/v6"

log() { printf '[build-n9e] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

assets_ok() {
  local dir="$1"
  [[ -x "$dir/n9e" && -f "$dir/etc/config.toml" ]] || return 1
  "$dir/n9e" -version >/dev/null 2>&1 || return 1
}

if [[ -n "${N9E_ASSETS:-}" ]]; then
  if assets_ok "$N9E_ASSETS"; then
    log "using N9E_ASSETS=$N9E_ASSETS"
    echo "$N9E_ASSETS"
    exit 0
  fi
  log "N9E_ASSETS=$N9E_ASSETS lacks a working n9e and etc/config.toml; building into the cache instead"
fi

CACHE_ROOT="${GEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gen}"
BASE="$CACHE_ROOT/n9e"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${N9E_SRC:-}" && -z "${N9E_SRC_TARBALL:-}" ]]; then
  vendored="$REPO_ROOT/../shared/vendor/nightingale-$N9E_VERSION-src.tar.gz"
  [[ -f "$vendored" ]] && N9E_SRC_TARBALL="$vendored"
fi
KEY="$N9E_VERSION"
if [[ -n "${N9E_SRC:-}" ]]; then
  # A local tree: key by the hash of its go.mod, go.sum and file list with sizes.
  src_sha="$(cd "$N9E_SRC" && { cat go.mod go.sum; find . -type f -printf '%P %s\n' | LC_ALL=C sort; } | sha256sum | cut -c1-12)"
  KEY="$N9E_VERSION-tree-$src_sha"
elif [[ -n "${N9E_SRC_TARBALL:-}" ]]; then
  [[ -f "$N9E_SRC_TARBALL" ]] || die "N9E_SRC_TARBALL=$N9E_SRC_TARBALL does not exist"
  src_sha="$(sha256sum "$N9E_SRC_TARBALL" | cut -c1-12)"
  KEY="$N9E_VERSION-src-$src_sha"
fi
OUT="$BASE/$KEY"

if assets_ok "$OUT"; then
  echo "$OUT"
  exit 0
fi

mkdir -p "$BASE"
exec 9>"$BASE/.lock-$KEY"
if ! flock -n 9; then
  log "another build holds $BASE/.lock-$KEY; waiting for it"
  flock 9
fi
if assets_ok "$OUT"; then
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || die "go is not on PATH (n9e v9 needs Go >= 1.25)"
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/build-n9e.XXXXXX")"
STAGE="$BASE/.$KEY.tmp.$$"
trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK" "$STAGE"' EXIT

timed() {
  local label="$1"; shift
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -f "[build-n9e] $label: %e s wall, max RSS %M KB" "$@"
  else
    local t0=$SECONDS
    "$@"
    log "$label: $((SECONDS - t0)) s wall"
  fi
}

SRC="$WORK/src"
if [[ -n "${N9E_SRC:-}" ]]; then
  [[ -f "$N9E_SRC/go.mod" ]] || die "N9E_SRC=$N9E_SRC has no go.mod"
  log "building from local source $N9E_SRC"
  cp -a "$N9E_SRC/." "$SRC/"
elif [[ -n "${N9E_SRC_TARBALL:-}" ]]; then
  log "building from source tarball $N9E_SRC_TARBALL (sha256 ${src_sha}...)"
  mkdir -p "$WORK/tar"
  tar -xzf "$N9E_SRC_TARBALL" -C "$WORK/tar"
  top="$(find "$WORK/tar" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
  [[ -f "$top/go.mod" ]] || die "$N9E_SRC_TARBALL holds no go.mod under its top directory"
  mv "$top" "$SRC"
else
  log "asking the module proxy for $N9E_MODULE@$N9E_COMMIT ($N9E_VERSION)"
  if ! info="$(cd "$WORK" && go mod download -json "$N9E_MODULE@$N9E_COMMIT" 2>"$WORK/download.err")"; then
    cat "$WORK/download.err" >&2
    grep -E '"Error"' <<<"${info:-}" >&2 || true
    die "the Go module proxy did not serve $N9E_MODULE@$N9E_COMMIT. Set N9E_SRC to a source checkout of $N9E_VERSION, or N9E_ASSETS to a directory with a built n9e, etc/ and integrations/."
  fi
  dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$info")"
  ver="$(sed -n 's/^[[:space:]]*"Version": "\(.*\)",$/\1/p' <<<"$info")"
  [[ -d "$dir" ]] || die "go mod download gave no directory: $info"
  log "resolved $N9E_VERSION to $N9E_MODULE@$ver"
  mkdir -p "$SRC"
  cp -a "$dir/." "$SRC/"
fi
chmod -R u+w "$SRC"

(
  cd "$SRC"
  timed "n9e go build" go build -mod=mod -trimpath \
    -ldflags "-s -w -X 'github.com/ccfos/nightingale/v6/pkg/version.Version=$N9E_VERSION'" \
    -o "$WORK/n9e" ./cmd/center
)

mkdir -p "$STAGE"
mv "$WORK/n9e" "$STAGE/n9e"
cp -a "$SRC/etc" "$STAGE/etc"
[[ -d "$SRC/integrations" ]] && cp -a "$SRC/integrations" "$STAGE/integrations"
[[ -d "$SRC/docker/initsql" ]] && mkdir -p "$STAGE/docker" && cp -a "$SRC/docker/initsql" "$STAGE/docker/initsql"
printf '%s\n' "$N9E_VERSION" >"$STAGE/VERSION"
printf '%s\n' "$KEY" >"$STAGE/SOURCE"
assets_ok "$STAGE" || die "the built n9e does not run -version"

rm -rf "$OUT"
mv "$STAGE" "$OUT"
echo "$OUT"
