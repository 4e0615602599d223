# Shared by `up`, `down` and `kubelet` (sourced, not run).
#
# Environment (all optional):
#   ROLLOUTS_DEV_CLUSTER_STATE   state dir (pids, certs, kubeconfig, logs, etcd data);
#                                default ${XDG_RUNTIME_DIR:-/tmp}/rollouts-dev-cluster
#   ROLLOUTS_DEV_CLUSTER_CACHE   cache root for the built binaries;
#                                default ${XDG_CACHE_HOME:-$HOME/.cache}/rollouts-dev-cluster

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
K8S_VERSION=1.20.2
CACHE_ROOT=${ROLLOUTS_DEV_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rollouts-dev-cluster}
K8S_BIN=$CACHE_ROOT/kubernetes-$K8S_VERSION/bin
STATE=${ROLLOUTS_DEV_CLUSTER_STATE:-${XDG_RUNTIME_DIR:-/tmp}/rollouts-dev-cluster}
STATE=${STATE%/}
# Started in this order, stopped in the reverse one.
COMPONENTS=(etcd kube-apiserver kube-controller-manager fake-kubelet)
# The data planes `ingress` and `gateway` start on a plane that is up (each: the proxy, and the
# translator that runs it); not needed for the plane to be up; stopped first (translators
# first: each stops its proxy).
DATAPLANES=(ingress-proxy ingress-dataplane gateway-proxy gateway-dataplane)

log() { echo "$(basename "$0"): $*" >&2; }
die() { echo "$(basename "$0"): error: $*" >&2; exit 1; }

# Serialises up/down/kubelet on one state dir. The lock file sits next to the state dir
# (removing it while someone waits on it would break the exclusion), and fd 9 is closed for
# every process we start.
take_lock() {
    mkdir -p "$(dirname "$STATE")"
    exec 9>"$STATE.lock"
    flock 9
}

# The pid recorded for a component, if that process is still alive and still runs the program
# it was started with (a recycled pid belongs to someone else and is left alone).
live_pid() {
    local name=$1 pid exe
    [[ -f $STATE/pids/$name && -f $STATE/pids/$name.exe ]] || return 1
    pid=$(<"$STATE/pids/$name")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    [[ ${exe% (deleted)} == "$(<"$STATE/pids/$name.exe")" ]] || return 1
    echo "$pid"
}

# Stops one component (TERM, then KILL after 10s) and forgets its pid.
stop_component() {
    local name=$1 pid i
    if pid=$(live_pid "$name"); then
        kill -TERM "$pid" 2>/dev/null || true
        # Not `kill -0`: an exited process stays a zombie until init reaps it; a zombie has
        # no /proc/PID/exe.
        for ((i = 0; i < 100; i++)); do
            readlink "/proc/$pid/exe" >/dev/null 2>&1 || break
            sleep 0.1
        done
        if readlink "/proc/$pid/exe" >/dev/null 2>&1; then
            log "$name ($pid) ignored SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$STATE/pids/$name" "$STATE/pids/$name.exe"
}

# Waits (up to 20 s) until nothing listens on 127.0.0.1:PORT any more. A killed process's
# /proc/PID/exe goes before its sockets do (the kernel drops the memory map first, the file
# table when the last thread has gone), so a restart on the same port waits for this too.
wait_port_free() {
    local port hex i
    port=$1
    printf -v hex '%04X' "$port"
    for ((i = 0; i < 200; i++)); do
        # /proc/net/tcp: "sl local_address rem_address st ..."; 0A is LISTEN.
        awk -v want=":$hex" 'NR > 1 && substr($2, length($2) - 4) == want && $4 == "0A" { found = 1 } END { exit !found }' /proc/net/tcp || return 0
        sleep 0.1
    done
    die "127.0.0.1:$port is still in use 20 s after its process stopped"
}

# Starts PROGRAM detached (own session, no inherited stdout/lock fds), logging to
# $STATE/logs/NAME.log, and records its pid and program once it runs it.
start_component() {
    local name=$1 program i exe pid
    program=$(readlink -f "$2") || die "no program $2"
    shift 2
    mkdir -p "$STATE/pids" "$STATE/logs"
    setsid "$program" "$@" </dev/null >>"$STATE/logs/$name.log" 2>&1 3>&- 9>&- &
    pid=$!
    echo "$program" >"$STATE/pids/$name.exe"
    echo "$pid" >"$STATE/pids/$name"
    # Until the forked shell has exec'd the program, /proc/PID/exe is bash.
    for ((i = 0; i < 100; i++)); do
        exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || break
        [[ ${exe% (deleted)} == "$program" ]] && break
        sleep 0.05
    done
}

stop_all() {
    local i
    for ((i = ${#DATAPLANES[@]} - 1; i >= 0; i--)); do
        stop_component "${DATAPLANES[i]}"
    done
    for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
        stop_component "${COMPONENTS[i]}"
    done
}

# Starts kube-apiserver on $APISERVER_PORT against etcd on $ETCD_PORT, with the certificates
# and tokens of $STATE/pki (`up`, `restart-apiserver`).
start_apiserver() {
    local PKI=$STATE/pki
    start_component kube-apiserver "$K8S_BIN/kube-apiserver" \
        --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
        --bind-address=127.0.0.1 \
        --advertise-address=127.0.0.1 \
        --secure-port="$APISERVER_PORT" \
        --tls-cert-file="$PKI/apiserver.crt" \
        --tls-private-key-file="$PKI/apiserver.key" \
        --cert-dir="$PKI" \
        --token-auth-file="$PKI/tokens.csv" \
        --authorization-mode=RBAC \
        --service-account-key-file="$PKI/sa.pub" \
        --service-account-signing-key-file="$PKI/sa.key" \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-cluster-ip-range=10.96.0.0/16 \
        --enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultTolerationSeconds,Priority,ResourceQuota,MutatingAdmissionWebhook,ValidatingAdmissionWebhook \
        --endpoint-reconciler-type=none \
        --allow-privileged=true \
        --profiling=false \
        --v=1
}

# Reads the plane's settings written by `up`.
load_env() {
    [[ -f $STATE/env ]] || return 1
    # shellcheck disable=SC1091
    source "$STATE/env"
}

# GET on the apiserver with the admin token; prints the body.
api_get() {
    curl -fsS --max-time 5 -k -H "Authorization: Bearer $ADMIN_TOKEN" "https://127.0.0.1:$APISERVER_PORT$1"
}

# The fake kubelet binary: $ROLLOUTS_FAKE_KUBELET, else the workspace's debug build, (re)built
# with cargo only when missing or older than its sources (cargo waits for the build-dir lock
# while other builds run, so it is not called needlessly).
fake_kubelet_binary() {
    if [[ -n ${ROLLOUTS_FAKE_KUBELET:-} ]]; then
        [[ -x $ROLLOUTS_FAKE_KUBELET ]] || die "ROLLOUTS_FAKE_KUBELET=$ROLLOUTS_FAKE_KUBELET is not executable"
        echo "$ROLLOUTS_FAKE_KUBELET"
        return
    fi
    local target=${CARGO_TARGET_DIR:-$REPO/target}
    [[ $target == /* ]] || target=$REPO/$target
    local bin=$target/debug/fake-kubelet
    if [[ ! -x $bin || $REPO/shell/src/bin/fake-kubelet.rs -nt $bin || $REPO/shell/Cargo.toml -nt $bin || $REPO/Cargo.lock -nt $bin ]]; then
        command -v cargo >/dev/null || die "cargo is missing: cannot build the fake kubelet (or set ROLLOUTS_FAKE_KUBELET)"
        log "building the fake kubelet (cargo build -p rollouts --bin fake-kubelet)"
        (cd "$REPO" && cargo build -q -p rollouts --bin fake-kubelet) >&2 ||
            die "cargo build -p rollouts --bin fake-kubelet failed"
        [[ -x $bin ]] || die "cargo built no $bin"
        touch "$bin"
    fi
    echo "$bin"
}

# The data plane translator: $ROLLOUTS_DATAPLANE, else the workspace's debug build, (re)built
# with cargo only when missing or older than its sources.
dataplane_binary() {
    if [[ -n ${ROLLOUTS_DATAPLANE:-} ]]; then
        [[ -x $ROLLOUTS_DATAPLANE ]] || die "ROLLOUTS_DATAPLANE=$ROLLOUTS_DATAPLANE is not executable"
        echo "$ROLLOUTS_DATAPLANE"
        return
    fi
    local target=${CARGO_TARGET_DIR:-$REPO/target}
    [[ $target == /* ]] || target=$REPO/$target
    local bin=$target/debug/rollouts-dataplane stale=
    if [[ -x $bin ]]; then
        [[ $REPO/dataplane/Cargo.toml -nt $bin || $REPO/Cargo.lock -nt $bin ]] && stale=1
        [[ -n $(find "$REPO/dataplane/src" -newer "$bin" -print -quit 2>/dev/null) ]] && stale=1
    else
        stale=1
    fi
    if [[ -n $stale ]]; then
        command -v cargo >/dev/null || die "cargo is missing: cannot build the data plane (or set ROLLOUTS_DATAPLANE)"
        log "building the data plane (cargo build -p rollouts-dataplane)"
        (cd "$REPO" && cargo build -q -p rollouts-dataplane) >&2 || die "cargo build -p rollouts-dataplane failed"
        [[ -x $bin ]] || die "cargo built no $bin"
        touch "$bin"
    fi
    echo "$bin"
}

# A 127.0.0.1 port nobody listens on.
free_loopback_port() {
    local port i
    for ((i = 0; i < 200; i++)); do
        port=$((20000 + RANDOM % 12000))
        if ! (exec 5<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "found no free port on 127.0.0.1"
}

# Does the proxy on 127.0.0.1:PORT answer its served configuration?
dataplane_serves() {
    curl -fsS --noproxy "*" --max-time 2 -o /dev/null "http://127.0.0.1:$1/.rollouts/served" 2>/dev/null
}

# Shared by `ingress` and `gateway`: starts data plane NAME (translator subcommand MODE, proxy
# binary from the script $HERE/MODE) on the plane that is up, unless it runs already; prints
# `export VAR=http://127.0.0.1:<port>` on fd 3. Extra arguments go to the translator.
start_dataplane() {
    local name=$1 mode=$2 var=$3
    shift 3
    local dir=$STATE/$name port pid proxy_bin bin i
    take_lock
    [[ -f $STATE/up.done ]] && load_env || die "no plane is up in $STATE (run deploy/dev-cluster/up)"
    bin=$(dataplane_binary)
    # Running, serving, and not older than the translator binary (rebuilt since: restart).
    if live_pid "$name-dataplane" >/dev/null && live_pid "$name-proxy" >/dev/null &&
        [[ ! $bin -nt $STATE/pids/$name-dataplane ]] &&
        port=$(cat "$dir/port" 2>/dev/null) && dataplane_serves "$port"; then
        log "$name already serves on 127.0.0.1:$port"
        echo "export $var=http://127.0.0.1:$port" >&3
        return
    fi
    stop_component "$name-dataplane"
    stop_component "$name-proxy"
    proxy_bin=$("$HERE/$mode") || die "no $mode binary (see above)"
    port=${ROLLOUTS_DEV_CLUSTER_DATAPLANE_PORT:-$(free_loopback_port)}
    rm -rf "$dir" && mkdir -p "$dir"
    echo "$port" >"$dir/port"
    log "starting $name: $mode on 127.0.0.1:$port (log: $STATE/logs/$name-dataplane.log)"
    KUBECONFIG=$KUBECONFIG_PATH start_component "$name-dataplane" "$bin" "$mode" "--$mode" "$proxy_bin" \
        --state "$dir" --port "$port" "$@"
    local deadline=$((SECONDS + ${ROLLOUTS_DEV_CLUSTER_TIMEOUT:-90}))
    until [[ -s $dir/proxy.pid ]] && dataplane_serves "$port"; do
        if ! live_pid "$name-dataplane" >/dev/null || ((SECONDS > deadline)); then
            tail -n 20 "$STATE/logs/$name-dataplane.log" >&2 || true
            stop_component "$name-dataplane"
            die "$name did not come up (log: $STATE/logs/$name-dataplane.log)"
        fi
        sleep 0.2
    done
    # The proxy is the translator's child; recorded too, so that `down` stops it even if the
    # translator died.
    pid=$(<"$dir/proxy.pid")
    for ((i = 0; i < 50; i++)); do
        readlink "/proc/$pid/exe" >"$STATE/pids/$name-proxy.exe" 2>/dev/null && break
        sleep 0.1
    done
    sed -i 's/ (deleted)$//' "$STATE/pids/$name-proxy.exe"
    echo "$pid" >"$STATE/pids/$name-proxy"
    echo "export $var=http://127.0.0.1:$port" >&3
}
