#!/usr/bin/env bash
# Build kube-apiserver and etcd from the Go module proxy for the test suite
# (envtest-style control plane: etcd + kube-apiserver, no kubelet).
#
# Output: ${GEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gen}/envtest/<k8s>-<etcd>/{kube-apiserver,etcd}
# The directory is printed on the LAST line of stdout; everything else goes to stderr.
#
# - If KUBEBUILDER_ASSETS is set and holds executable kube-apiserver and etcd,
#   that directory is printed and nothing is built.
# - Idempotent: exits at once when both binaries exist and answer --version.
# - Concurrent callers serialise on a flock; the loser re-checks and exits.
# - Binaries are built to a temporary name and moved into place (atomic).
# - Go's module cache and build cache stay in their default places.
#
# Environment: K8S_VERSION (default 1.36.3), ETCD_VERSION (default 3.6.16),
#              GEN_CACHE_DIR, XDG_CACHE_HOME, KUBEBUILDER_ASSETS.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
K8S_VERSION="${K8S_VERSION#v}"
ETCD_VERSION="${ETCD_VERSION#v}"

log() { printf '[build-envtest] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Both binaries present, executable, and answering --version.
binaries_ok() {
  local dir="$1"
  [[ -x "$dir/kube-apiserver" && -x "$dir/etcd" ]] || return 1
  "$dir/kube-apiserver" --version >/dev/null 2>&1 || return 1
  "$dir/etcd" --version >/dev/null 2>&1 || return 1
}

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  if binaries_ok "$KUBEBUILDER_ASSETS"; then
    log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
    echo "$KUBEBUILDER_ASSETS"
    exit 0
  fi
  log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks working kube-apiserver/etcd; building into the cache instead"
fi

CACHE_ROOT="${GEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gen}"
OUT="$CACHE_ROOT/envtest/${K8S_VERSION}-${ETCD_VERSION}"

if binaries_ok "$OUT"; then
  echo "$OUT"
  exit 0
fi

mkdir -p "$OUT"
exec 9>"$OUT/.lock"
if ! flock -n 9; then
  log "another build holds $OUT/.lock; waiting for it"
  flock 9
fi
# Re-check: whoever held the lock may have built everything.
if binaries_ok "$OUT"; then
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || die "go is not on PATH (Go >= 1.26 needed for Kubernetes 1.36)"
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/build-envtest.XXXXXX")"
trap 'rm -rf "$WORK"; rm -f "$OUT"/.kube-apiserver.tmp.* "$OUT"/.etcd.tmp.*' EXIT

# Run a step, reporting wall time and peak RSS (largest single process) when
# GNU time is available.
timed() {
  local label="$1"; shift
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -f "[build-envtest] $label: %e s wall, max RSS %M KB" "$@"
  else
    local t0=$SECONDS
    "$@"
    log "$label: $((SECONDS - t0)) s wall"
  fi
}

# ---------------------------------------------------------------- kube-apiserver
build_kube_apiserver() {
  local v="v$K8S_VERSION" mod="$WORK/kube"
  local major minor staging_v
  major="${K8S_VERSION%%.*}"
  minor="${K8S_VERSION#*.}"; minor="${minor%%.*}"
  staging_v="v0.${minor}.${K8S_VERSION##*.}"
  mkdir -p "$mod"

  log "resolving k8s.io/kubernetes@$v"
  local info gomod
  info="$(go mod download -json "k8s.io/kubernetes@$v")"
  gomod="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' <<<"$info")"
  [[ -f "$gomod" ]] || die "no go.mod for k8s.io/kubernetes@$v"
  local infofile build_date
  infofile="$(sed -n 's/^[[:space:]]*"Info": "\(.*\)",$/\1/p' <<<"$info")"
  build_date="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$infofile" 2>/dev/null || true)"
  build_date="${build_date:-1970-01-01T00:00:00Z}"

  local go_line godebug_line staging
  go_line="$(grep -m1 -E '^go [0-9]' "$gomod")"
  godebug_line="$(grep -m1 -E '^godebug ' "$gomod" || true)"
  staging="$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$gomod")"
  [[ -n "$staging" ]] || die "no staging replace lines found in $gomod"
  log "$(wc -l <<<"$staging") staging modules pinned to $staging_v; $go_line; ${godebug_line:-no godebug}"

  {
    echo "module envtest-wrapper/kube-apiserver"
    echo
    echo "$go_line"
    [[ -n "$godebug_line" ]] && echo "$godebug_line"
    echo
    echo "require k8s.io/kubernetes $v"
    echo
    echo "replace ("
    while read -r m; do echo "	$m => $m $staging_v"; done <<<"$staging"
    echo ")"
  } >"$mod/go.mod"

  local ld=""
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X '$pkg.gitVersion=$v' -X '$pkg.gitMajor=$major' -X '$pkg.gitMinor=$minor'"
    ld+=" -X '$pkg.gitTreeState=clean' -X '$pkg.buildDate=$build_date'"
  done

  (
    cd "$mod"
    timed "kube-apiserver go get" go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@$v"
    timed "kube-apiserver go build" go build -trimpath -ldflags "-s -w$ld" \
      -o "$OUT/.kube-apiserver.tmp.$$" k8s.io/kubernetes/cmd/kube-apiserver
  )
  "$OUT/.kube-apiserver.tmp.$$" --version >&2
  mv -f "$OUT/.kube-apiserver.tmp.$$" "$OUT/kube-apiserver"
}

# ---------------------------------------------------------------------- etcd
build_etcd() {
  local v="v$ETCD_VERSION" mod="$WORK/etcd"
  mkdir -p "$mod"
  local go_line
  go_line="$(go env GOVERSION)"; go_line="go ${go_line#go}"
  printf 'module envtest-wrapper/etcd\n\n%s\n' "$go_line" >"$mod/go.mod"
  (
    cd "$mod"
    timed "etcd go get" go get -tool "go.etcd.io/etcd/server/v3@$v"
    timed "etcd go build" go build -trimpath -ldflags "-s -w" \
      -o "$OUT/.etcd.tmp.$$" go.etcd.io/etcd/server/v3
  )
  "$OUT/.etcd.tmp.$$" --version >&2
  mv -f "$OUT/.etcd.tmp.$$" "$OUT/etcd"
}

log "building into $OUT"
if [[ -x "$OUT/etcd" ]] && "$OUT/etcd" --version >/dev/null 2>&1; then
  log "etcd already built"
else
  build_etcd
fi
if [[ -x "$OUT/kube-apiserver" ]] && "$OUT/kube-apiserver" --version >/dev/null 2>&1; then
  log "kube-apiserver already built"
else
  build_kube_apiserver
fi

binaries_ok "$OUT" || die "binaries in $OUT do not run"
echo "$OUT"
