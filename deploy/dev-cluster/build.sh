#!/usr/bin/env bash
# Builds (once) the binaries of the local control plane and caches them outside the repo.
#
#   deploy/dev-cluster/build.sh        # prints nothing on stdout; progress goes to stderr
#
# - etcd comes from Debian's `etcd-server` package (/usr/bin/etcd).
# - kube-apiserver and kube-controller-manager are built from Debian's `kubernetes` source
#   package (1.20.2) with Debian's `golang-go`, and cached in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/rollouts-dev-cluster/kubernetes-1.20.2/bin/
#   (override the root with ROLLOUTS_DEV_CLUSTER_CACHE).
#
# Idempotent: when the binaries and the packages are there, it does nothing. The `deb-src`
# entry lives in a private apt configuration (its own sources, lists and archives under the
# cache dir): the system's apt sources and lists are not touched.
set -euo pipefail

K8S_VERSION=1.20.2
CACHE_ROOT=${ROLLOUTS_DEV_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rollouts-dev-cluster}
DIR=$CACHE_ROOT/kubernetes-$K8S_VERSION
BIN=$DIR/bin
# Debian archive holding the source package (bookworm ships kubernetes 1.20.5+really1.20.2).
DEBIAN_MIRROR=${ROLLOUTS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SUITE=${ROLLOUTS_DEBIAN_SUITE:-bookworm}

# Debian's reflect2 1.0.2 (Go >= 1.18 support), replacing the tree's vendored 1.0.1.
REFLECT2=/usr/share/gocode/src/github.com/modern-go/reflect2

log() { echo "build.sh: $*" >&2; }
die() { echo "build.sh: error: $*" >&2; exit 1; }

# Bumped whenever the way the binaries are made changes, so that stale caches get rebuilt.
# 2: vendored reflect2 replaced by 1.0.2 (1.0.1 makes a Go >= 1.18 apiserver panic on JSON).
RECIPE=2
have_binaries() {
    [[ -x $BIN/kube-apiserver && -x $BIN/kube-controller-manager && $(cat "$BIN/recipe" 2>/dev/null) == "$RECIPE" ]]
}
have_packages() { command -v etcd && command -v openssl && command -v curl; } >/dev/null

if have_binaries && have_packages; then
    exit 0
fi

# --- system packages -----------------------------------------------------------------------
as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root (or sudo) to run: $*"; fi
}

missing=()
command -v etcd >/dev/null || missing+=(etcd-server)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
if ! have_binaries; then
    [[ -x /usr/lib/go/bin/go ]] || missing+=(golang-go)
    command -v dpkg-source >/dev/null || missing+=(dpkg-dev)
    command -v make >/dev/null || missing+=(make)
    command -v rsync >/dev/null || missing+=(rsync)
    [[ -f $REFLECT2/go_above_118.go ]] || missing+=(golang-github-modern-go-reflect2-dev)
fi
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
        { as_root apt-get update -q >&2 &&
          as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; } ||
        die "could not apt-get install ${missing[*]} (is Debian's archive reachable?)"
fi
have_binaries && exit 0

# --- kubernetes source, through a private apt configuration -------------------------------
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/build.lock"
flock 9 # another build.sh may be building; wait for it
have_binaries && exit 0

APT=$DIR/apt
mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$APT/sources.list.d" "$DIR/src"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -r $keyring ]] || die "missing $keyring (apt-get install debian-archive-keyring)"
cat >"$APT/sources.list" <<EOF
deb-src [signed-by=$keyring] $DEBIAN_MIRROR $DEBIAN_SUITE main
EOF
cat >"$APT/apt.conf" <<EOF
Dir::Etc::SourceList "$APT/sources.list";
Dir::Etc::SourceParts "$APT/sources.list.d";
Dir::State::Lists "$APT/lists";
Dir::Cache::Archives "$APT/archives";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Sandbox::User "root";
EOF
export APT_CONFIG=$APT/apt.conf

# The source package files are kept (34 MB) so that a rebuild needs no network.
dsc=$(find "$DIR/srcpkg" -maxdepth 1 -name 'kubernetes_*.dsc' 2>/dev/null | head -n1 || true)
if [[ -z $dsc ]]; then
    log "fetching the kubernetes source package from $DEBIAN_MIRROR $DEBIAN_SUITE"
    rm -rf "$DIR/srcpkg.tmp" && mkdir -p "$DIR/srcpkg.tmp"
    apt-get update -q >&2 || die "apt-get update of the private deb-src list failed ($APT/sources.list)"
    (cd "$DIR/srcpkg.tmp" && apt-get source -q --download-only kubernetes >&2) ||
        die "apt-get source kubernetes failed ($DEBIAN_MIRROR $DEBIAN_SUITE unreachable?)"
    rm -rf "$DIR/srcpkg" && mv "$DIR/srcpkg.tmp" "$DIR/srcpkg"
    dsc=$(find "$DIR/srcpkg" -maxdepth 1 -name 'kubernetes_*.dsc' | head -n1)
    [[ -n $dsc ]] || die "apt-get source kubernetes downloaded no .dsc into $DIR/srcpkg"
fi
[[ $dsc == *"really$K8S_VERSION"* || $dsc == *"_$K8S_VERSION"* ]] ||
    die "the kubernetes source package in $DEBIAN_SUITE ($(basename "$dsc")) is not version $K8S_VERSION"
tree=$DIR/src/kubernetes
rm -rf "$DIR/src" && mkdir -p "$DIR/src"
log "extracting $(basename "$dsc") (Debian's patches applied)"
dpkg-source -x "$dsc" "$tree" >&2 || die "dpkg-source -x $dsc failed"
# reflect2 1.0.1 reads Go's map internals the pre-1.18 way: every JSON request body with a map
# in it (labels...) makes the apiserver panic. 1.0.2 has the same API. Only the files change;
# vendor/modules.txt keeps saying v1.0.1, which `go build -mod=vendor` accepts.
[[ -f $REFLECT2/go_above_118.go ]] || die "missing $REFLECT2 (apt-get install golang-github-modern-go-reflect2-dev)"
rm -rf "$tree/vendor/github.com/modern-go/reflect2"
cp -r "$REFLECT2" "$tree/vendor/github.com/modern-go/reflect2"
rm -f "$tree/vendor/github.com/modern-go/reflect2/go.mod"

# --- build -----------------------------------------------------------------------------------
log "building kube-apiserver and kube-controller-manager in $tree (a few minutes; log: $DIR/build.log)"
start=$(date +%s)
(
    cd "$tree"
    # No .git in a source package: tell the version scripts what this is, so /version says
    # v1.20.2 (clients parse it) instead of v0.0.0-master.
    export KUBE_GIT_VERSION=v$K8S_VERSION KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 \
        KUBE_GIT_TREE_STATE=clean KUBE_GIT_COMMIT=debian-$(dpkg-parsechangelog -S Version 2>/dev/null | tr -c 'a-zA-Z0-9.\n' '-')
    # Debian's Go (1.19 on bookworm) even when another one comes first in PATH.
    export PATH=/usr/lib/go/bin:$PATH CGO_ENABLED=0 GOCACHE=$DIR/go-build GOFLAGS= GOTOOLCHAIN=local
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager"
) >"$DIR/build.log" 2>&1 || die "make WHAT=\"cmd/kube-apiserver cmd/kube-controller-manager\" failed; see $DIR/build.log"
out=$tree/_output/bin
[[ -x $out/kube-apiserver && -x $out/kube-controller-manager ]] ||
    die "the build left no kube-apiserver/kube-controller-manager in $out; see $DIR/build.log"
rm -rf "$BIN.tmp" && mkdir -p "$BIN.tmp"
cp "$out/kube-apiserver" "$out/kube-controller-manager" "$BIN.tmp/"
echo "$RECIPE" >"$BIN.tmp/recipe"
rm -rf "$BIN" && mv "$BIN.tmp" "$BIN"
log "built in $(($(date +%s) - start))s: $BIN"
# The tree and the Go caches are large (GBs); the binaries are all that is needed.
if [[ -z ${ROLLOUTS_KEEP_K8S_SRC:-} ]]; then
    chmod -R u+w "$DIR/go-build" 2>/dev/null || true
    rm -rf "$DIR/src" "$DIR/go-build"
fi
