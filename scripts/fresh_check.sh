#!/usr/bin/env bash
# The README's two commands on a fresh machine of the project's kind (issue #12).
#
# Builds a throwaway Debian 12 (bookworm) chroot that holds only what the stock
# machine image has (ca-certificates git gcc g++ make libc6-dev python3
# python3-pip pkg-config valgrind libclang-cpp14; NOT gfortran, OpenMPI or
# libclang, which scripts/test.sh must install itself), makes the host's rustup
# toolchain available in it with a fresh, empty CARGO_HOME, puts a clean
# `git clone` of COMMIT at /work/main (and the host's ../shared/data, when there
# is one, at /work/shared/data, i.e. ../shared/data of the checkout, as on CI),
# then runs as root inside it
#
#   (b) bash .ci/run                     (CI's entry point: exec scripts/test.sh)
#   (a) cargo run --release -- demo
#
# logging each to a file and printing its elapsed time. Exits 1 if either fails.
#
# Usage: scripts/fresh_check.sh [--keep] [--prepare-only] [--refresh] [COMMIT]
#        scripts/fresh_check.sh --shell RUN_DIR      (enter a --keep'd chroot)
#
#   COMMIT          commit of this repository to check (default HEAD); only
#                   committed files are used, never the working tree
#   --prepare-only  stop once the chroot is ready and test.sh's prerequisite step
#                   (apt-get installs, NVRTC wheel + kernel check) has run, twice:
#                   the second time must install nothing (test.sh runs with
#                   LENSDIFF_TEST_PREREQS_ONLY=1, which stops it there).
#   --keep          keep the chroot (RUN_DIR is printed); mounts are always
#                   removed on exit, `--shell RUN_DIR` re-creates them
#   --refresh       rebuild the cached stock rootfs
#
# Environment:
#   FRESH_CACHE_DIR   cache of the stock rootfs tarball, logs and runs
#                     (default /var/tmp/lensdiff-fresh); reruns skip debootstrap
#   FRESH_WORK_DIR    where throwaway chroots are made (default $FRESH_CACHE_DIR/runs)
#   FRESH_LOG_DIR     where logs go (default $FRESH_CACHE_DIR/logs/DATE-SHA)
#   FRESH_MIRROR      Debian mirror (default http://deb.debian.org/debian)
#   FRESH_VARIANT     debootstrap variant (default minbase)
#   FRESH_EXTRA_PACKAGES  more packages for the "stock" image (space separated)
#   FRESH_DATA        folder copied to ../shared/data of the checkout (default:
#                     this repository's ../shared/data if present); `none` = none
#   FRESH_RUSTUP      overlay (default: RUSTUP_HOME is the host's, read-only under
#                     a throwaway overlay; anything rustup writes is listed in
#                     the logs) or ro (plain read-only bind mount)
#   FRESH_ENV         extra VAR=value words for the commands in the chroot
#                     (e.g. "CARGO_BUILD_JOBS=1 RUSTUP_AUTO_INSTALL=0")
#   FRESH_HOST_CA     1 (default): copy the host's extra CA certificates
#                     (/usr/local/share/ca-certificates) into the chroot and run
#                     update-ca-certificates, so https works where the host sits
#                     behind a TLS-intercepting proxy; 0: don't
#   FRESH_DEMO_FIRST=1  run (a) before (b) (then (a) sees a truly fresh machine)
#   FRESH_TEST_SH     DEVELOPMENT AID ONLY: copy this file over the clone's
#                     scripts/test.sh (to try an uncommitted test.sh); the run
#                     then no longer checks COMMIT as committed, and says so
#   FRESH_OVERLAY     DEVELOPMENT AID ONLY: space-separated paths, relative to
#                     this repository, copied from its working tree over the
#                     clone (e.g. a new file that the FRESH_TEST_SH test.sh runs)
#
# Needs root, debootstrap (installed with apt-get when missing), unshare,
# findmnt, overlayfs. All mounts live in a private mount namespace, so they
# also vanish if the script is killed.
set -euo pipefail

die() { echo "fresh_check: error: $*" >&2; exit 2; }
say() { echo "fresh_check: $*"; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

KEEP=0 PREPARE_ONLY=0 REFRESH=0 SHELL_DIR="" REV=""
while [ $# -gt 0 ]; do
    case "$1" in
        --keep) KEEP=1 ;;
        --prepare-only) PREPARE_ONLY=1 ;;
        --refresh) REFRESH=1 ;;
        --shell) [ $# -ge 2 ] || die "--shell needs RUN_DIR"; SHELL_DIR=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [ -z "$REV" ] || die "one COMMIT only"; REV=$1 ;;
    esac
    shift
done
REV=${REV:-HEAD}

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot, mounts)"

SELF=$(readlink -f "$0")
REPO=$(git -C "$(dirname "$SELF")" rev-parse --show-toplevel)
CACHE=$(readlink -m "${FRESH_CACHE_DIR:-/var/tmp/lensdiff-fresh}")
WORK=$(readlink -m "${FRESH_WORK_DIR:-$CACHE/runs}")
MIRROR=${FRESH_MIRROR:-http://deb.debian.org/debian}
VARIANT=${FRESH_VARIANT:-minbase}
SUITE=bookworm
RUSTUP_MODE=${FRESH_RUSTUP:-overlay}
HOST_RUSTUP=$(readlink -f "${RUSTUP_HOME:-$HOME/.rustup}")
HOST_CARGO_BIN=$(readlink -f "${CARGO_HOME:-$HOME/.cargo}")/bin
# what the stock machine image has (besides the rust toolchain)
STOCK_PACKAGES="ca-certificates git gcc g++ make libc6-dev python3 python3-pip pkg-config valgrind libclang-cpp14 ${FRESH_EXTRA_PACKAGES:-}"
CHROOT_PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
NO_CARGO_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Paths are matched against findmnt's output, which escapes odd characters:
# keep them plain so that the "is anything still mounted here" check is exact.
for p in "$CACHE" "$WORK"; do
    [[ "$p" =~ ^/[A-Za-z0-9/._+-]+$ && "$p" != / ]] || die "unsupported path '$p' (plain characters only)"
done
if [ -n "${FRESH_TEST_SH:-}" ]; then
    FRESH_TEST_SH=$(readlink -f "$FRESH_TEST_SH")
    [ -f "$FRESH_TEST_SH" ] || die "FRESH_TEST_SH=$FRESH_TEST_SH is not a file"
fi

# Re-run in a private mount namespace: nothing mounted here is seen by the
# host, and the kernel drops every mount when the script ends, however it ends.
if [ -z "${FRESH_CHECK_IN_NS:-}" ]; then
    command -v unshare >/dev/null || die "unshare (util-linux) not found"
    export FRESH_CHECK_IN_NS=1 FRESH_TEST_SH
    args=()
    [ "$KEEP" -eq 1 ] && args+=(--keep)
    [ "$PREPARE_ONLY" -eq 1 ] && args+=(--prepare-only)
    [ "$REFRESH" -eq 1 ] && args+=(--refresh)
    [ -n "$SHELL_DIR" ] && args+=(--shell "$SHELL_DIR")
    exec unshare --mount --propagation private -- bash "$SELF" "${args[@]}" "$REV"
fi

# ---------------------------------------------------------------- mounts

RUN="" ROOT=""
mounts_under() { # every mount point at or below $1, deepest first
    findmnt -rn -o TARGET | awk -v p="$1" '$0 == p || index($0, p "/") == 1' | sort -r
}
kill_chroot_procs() { # processes whose root is the chroot: only ours
    local pid r
    case "$1" in "$WORK"/run.??????/root) ;; *) echo "fresh_check: not killing in '$1'" >&2; return 0 ;; esac
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
        r=$(readlink "/proc/$pid/root" 2>/dev/null) || continue
        [ "$r" = "$1" ] && kill -TERM "$pid" 2>/dev/null && echo "$pid"
    done
}
unmount_all() {
    local r=$1 m left pids
    [ -n "$r" ] && [ -d "$r" ] || return 0
    pids=$(kill_chroot_procs "$r")
    if [ -n "$pids" ]; then
        sleep 2
        for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
    fi
    for m in $(mounts_under "$r"); do
        umount "$m" 2>/dev/null || umount -l "$m" || true
    done
    left=$(mounts_under "$r")
    if [ -n "$left" ]; then
        echo "fresh_check: still mounted under $r:" $left >&2
        return 1
    fi
}
mount_all() {
    local r=$1 n
    mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
    mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"
    # a private /dev: a tmpfs with the usual nodes, never the host's /dev
    mount -t tmpfs -o mode=755,nosuid,size=16m tmpfs "$r/dev"
    for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
        IFS=: read -r name maj min <<<"$n"
        if ! mknod -m 666 "$r/dev/$name" c "$maj" "$min" 2>/dev/null; then
            touch "$r/dev/$name" && mount --bind "/dev/$name" "$r/dev/$name"
        fi
    done
    ln -s /proc/self/fd "$r/dev/fd"
    ln -s /proc/self/fd/0 "$r/dev/stdin"
    ln -s /proc/self/fd/1 "$r/dev/stdout"
    ln -s /proc/self/fd/2 "$r/dev/stderr"
    mkdir "$r/dev/pts" "$r/dev/shm"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=620,nosuid,noexec devpts "$r/dev/pts"
    ln -s pts/ptmx "$r/dev/ptmx"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$r/dev/shm"   # OpenMPI's shared memory
    # name resolution as on the host (debootstrap leaves no /etc/hosts; OpenMPI
    # resolves the host name)
    cp -L /etc/resolv.conf "$r/etc/resolv.conf"
    [ -e "$r/etc/hosts" ] || cp -L /etc/hosts "$r/etc/hosts"
}
mount_rustup() { # the host toolchain at /root/.rustup, never written
    local r=$1
    mkdir -p "$r/root/.rustup"
    if [ "$RUSTUP_MODE" = overlay ]; then
        mkdir -p "$RUN/rustup-upper" "$RUN/rustup-work"
        if mount -t overlay overlay \
            -o "lowerdir=$HOST_RUSTUP,upperdir=$RUN/rustup-upper,workdir=$RUN/rustup-work" \
            "$r/root/.rustup"; then
            return 0
        fi
        say "overlayfs failed; falling back to a read-only bind mount of $HOST_RUSTUP"
    fi
    mount --bind "$HOST_RUSTUP" "$r/root/.rustup"
    mount -o remount,bind,ro "$r/root/.rustup"
}

# in_chroot PATH COMMAND...: run bash -c COMMAND in the chroot as root, with a
# clean environment (what a fresh login has, plus rustup's variables). Waited
# for in the background so that a signal to this script runs its cleanup at
# once (which kills whatever still runs in the chroot).
in_chroot() {
    local path=$1; shift
    # shellcheck disable=SC2086
    chroot "$ROOT" /usr/bin/env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash \
        TERM=dumb LANG=C.UTF-8 PATH="$path" RUSTUP_HOME=/root/.rustup CARGO_HOME=/root/.cargo \
        ${FRESH_ENV:-} /bin/bash -c "$*" </dev/null &
    wait $!
}

# ---------------------------------------------------------------- --shell

if [ -n "$SHELL_DIR" ]; then
    RUN=$(readlink -f "$SHELL_DIR"); ROOT=$RUN/root
    case "$RUN" in "$WORK"/run.??????) ;; *) die "--shell: $SHELL_DIR is not a run folder under $WORK" ;; esac
    [ -x "$ROOT/bin/bash" ] || die "$SHELL_DIR: no chroot at $ROOT"
    trap 'unmount_all "$ROOT"' EXIT
    mount_all "$ROOT"; mount_rustup "$ROOT"
    say "entering $ROOT (exit to leave; mounts are removed then)"
    chroot "$ROOT" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 PATH="$CHROOT_PATH" \
        RUSTUP_HOME=/root/.rustup CARGO_HOME=/root/.cargo /bin/bash -c 'cd /work/main 2>/dev/null; exec bash -i' || true
    exit 0
fi

# ---------------------------------------------------------------- setup

SHA=$(git -C "$REPO" rev-parse --verify --quiet "$REV^{commit}") || die "$REV: not a commit of $REPO"
[ -d "$HOST_RUSTUP/toolchains" ] || die "no rustup toolchain at $HOST_RUSTUP"
[ -x "$HOST_CARGO_BIN/rustup" ] || die "no rustup proxies in $HOST_CARGO_BIN"
if [ "${FRESH_DATA:-}" = none ]; then DATA=""
elif [ -n "${FRESH_DATA:-}" ]; then DATA=$(readlink -f "$FRESH_DATA"); [ -d "$DATA" ] || die "FRESH_DATA=$FRESH_DATA: no such folder"
elif [ -d "$REPO/../shared/data" ]; then DATA=$(readlink -f "$REPO/../shared/data")
else DATA=""; fi

mkdir -p "$CACHE" "$WORK"
LOG=$(readlink -m "${FRESH_LOG_DIR:-$CACHE/logs/$(date +%Y%m%d-%H%M%S)-${SHA:0:10}}")
mkdir -p "$LOG"
RUN=$(mktemp -d "$WORK/run.XXXXXX")
ROOT=$RUN/root
mkdir "$ROOT"

exec 7>&1 8>&2   # the script's own stdout/stderr, for cleanup() (a trap may
                 # fire inside a function whose output goes to a log)
cleanup() {
    local rc=$?
    set +e
    exec 1>&7 2>&8
    if ! unmount_all "$ROOT"; then
        echo "fresh_check: NOT deleting $RUN (something is still mounted in it)" >&2
    elif [ "$KEEP" -eq 1 ]; then
        say "kept $RUN (enter it with: $SELF --shell $RUN)"
    else
        case "$RUN" in
            "$WORK"/run.??????) rm -rf --one-file-system -- "$RUN" ;;
            *) echo "fresh_check: not deleting unexpected path '$RUN'" >&2 ;;
        esac
    fi
    say "logs in $LOG"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

T0=$SECONDS
elapsed() { local s=$(( $1 )); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

# ---- the stock rootfs: cached as a tarball (keyed on what goes into it)
KEY=$(printf '%s\n' "$SUITE" "$VARIANT" "$MIRROR" $STOCK_PACKAGES | sha256sum | cut -c1-12)
TARBALL=$CACHE/rootfs-$SUITE-$VARIANT-$KEY.tar.gz
exec 9>"$CACHE/.lock"
flock 9    # one builder of the cache at a time
if [ "$REFRESH" -eq 1 ] || [ ! -s "$TARBALL" ]; then
    if ! command -v debootstrap >/dev/null; then
        say "installing debootstrap on the host"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    fi
    say "debootstrap $SUITE ($VARIANT) from $MIRROR (log: $LOG/debootstrap.log)"
    t=$SECONDS
    debootstrap --variant="$VARIANT" "$SUITE" "$ROOT" "$MIRROR" >"$LOG/debootstrap.log" 2>&1 \
        || { tail -20 "$LOG/debootstrap.log" >&2; die "debootstrap failed"; }
    # the stock image's sources: the release, its updates and security
    mirror_base=${MIRROR%/debian}
    rm -f "$ROOT/etc/apt/sources.list"
    cat >"$ROOT/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $mirror_base/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # no daemons started by package scripts inside the chroot
    printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"; chmod 755 "$ROOT/usr/sbin/policy-rc.d"
    mount_all "$ROOT"
    say "installing the stock image's packages: $STOCK_PACKAGES"
    # shellcheck disable=SC2086
    in_chroot "$NO_CARGO_PATH" "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -y -qq \
        --no-install-recommends dist-upgrade && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends $STOCK_PACKAGES && apt-get clean && rm -rf /var/lib/apt/lists/*" \
        >"$LOG/stock-packages.log" 2>&1 \
        || { tail -20 "$LOG/stock-packages.log" >&2; die "installing the stock packages failed"; }
    unmount_all "$ROOT" || die "could not unmount $ROOT"
    rm -f "$ROOT/etc/resolv.conf"
    say "caching the stock rootfs in $TARBALL"
    tar --numeric-owner --one-file-system -C "$ROOT" -czpf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
    say "stock rootfs built in $(elapsed $((SECONDS - t)))"
else
    say "stock rootfs from the cache: $TARBALL"
    tar --numeric-owner -C "$ROOT" -xzpf "$TARBALL"
fi
flock -u 9

# ---- the toolchain: rustup's proxies in a fresh, writable CARGO_HOME
mkdir -p "$ROOT/root/.cargo"
cp -a "$HOST_CARGO_BIN" "$ROOT/root/.cargo/bin"
[ -f "$(dirname "$HOST_CARGO_BIN")/env" ] && cp "$(dirname "$HOST_CARGO_BIN")/env" "$ROOT/root/.cargo/env"
for f in .profile .bashrc; do
    grep -qs 'cargo/env' "$ROOT/root/$f" || echo '. "$HOME/.cargo/env"' >>"$ROOT/root/$f"
done

# ---- the checkout: a clean clone of COMMIT, next to ../shared/data as on CI
mkdir -p "$ROOT/work"
git clone --quiet --no-hardlinks --no-checkout "$REPO" "$ROOT/work/main"
git -C "$ROOT/work/main" -c advice.detachedHead=false checkout --quiet --detach "$SHA"
if [ -n "${FRESH_TEST_SH:-}" ]; then
    cp "$FRESH_TEST_SH" "$ROOT/work/main/scripts/test.sh"
    say "WARNING: FRESH_TEST_SH: scripts/test.sh replaced by $FRESH_TEST_SH (development aid; not the committed file)"
fi
for f in ${FRESH_OVERLAY:-}; do
    case "/$f/" in */../*|//*) die "FRESH_OVERLAY: '$f' must be relative, without '..'" ;; esac
    [ -e "$REPO/$f" ] || die "FRESH_OVERLAY: no $REPO/$f"
    mkdir -p "$(dirname "$ROOT/work/main/$f")"
    cp -a "$REPO/$f" "$ROOT/work/main/$f"
    say "WARNING: FRESH_OVERLAY: $f copied from the working tree (development aid)"
done
if [ -n "$DATA" ]; then
    mkdir -p "$ROOT/work/shared"
    cp -a "$DATA" "$ROOT/work/shared/data"
fi

mount_all "$ROOT"
mount_rustup "$ROOT"

# Network plumbing of THIS host, not part of the image: the extra CA
# certificates it trusts (here: a TLS-intercepting egress proxy), without which
# pip and cargo cannot reach PyPI and crates.io over https from the chroot.
HOST_CAS=/usr/local/share/ca-certificates
if [ "${FRESH_HOST_CA:-1}" = 1 ] && [ -n "$(find "$HOST_CAS" -name '*.crt' 2>/dev/null | head -1)" ]; then
    cp -r "$HOST_CAS/." "$ROOT/usr/local/share/ca-certificates/"
    in_chroot "$NO_CARGO_PATH" 'update-ca-certificates' >"$LOG/host-ca.log" 2>&1 \
        || { cat "$LOG/host-ca.log" >&2; die "update-ca-certificates failed in the chroot"; }
    say "host CA certificates added to the chroot's trust store: $(cd "$HOST_CAS" && find . -name '*.crt' | sed 's|^\./||' | tr '\n' ' ')"
fi

{
    echo "commit: $SHA ($REV) of $REPO"
    echo "test.sh: ${FRESH_TEST_SH:-committed}"
    echo "overlay: ${FRESH_OVERLAY:-none}"
    echo "data: ${DATA:-none} -> /work/shared/data"
    echo "rootfs: $TARBALL"
    echo "rustup: $HOST_RUSTUP ($RUSTUP_MODE)"
    in_chroot "$CHROOT_PATH" 'cat /etc/debian_version; rustup --version 2>/dev/null; cargo --version; rustc --version; python3 --version; gcc --version | head -1'
} >"$LOG/summary.txt" 2>&1
say "chroot ready in $(elapsed $((SECONDS - T0))): $(grep -m1 '^cargo ' "$LOG/summary.txt" || echo 'cargo: NOT WORKING')"
say "commit $SHA${FRESH_TEST_SH:+ (with test.sh from $FRESH_TEST_SH)}; data: ${DATA:-none}"

packages() { in_chroot "$NO_CARGO_PATH" "dpkg-query -W -f '\${db:Status-Abbrev} \${Package}\n' | awk '\$1 == \"ii\" {print \$2}' | sort"; }
pip_packages() { in_chroot "$NO_CARGO_PATH" 'python3 -m pip list --format=freeze 2>/dev/null | sort' || true; }
record_rustup_writes() {
    if [ -d "$RUN/rustup-upper" ]; then
        (cd "$RUN/rustup-upper" && find . -mindepth 1 | sort) >"$LOG/rustup-writes.txt"
        if [ -s "$LOG/rustup-writes.txt" ]; then
            say "note: rustup wrote into RUSTUP_HOME (kept in the throwaway overlay): $(tr '\n' ' ' <"$LOG/rustup-writes.txt" | cut -c1-300)"
        fi
    fi
}

# ---------------------------------------------------------------- --prepare-only

if [ "$PREPARE_ONLY" -eq 1 ]; then
    # test.sh's prerequisite step alone (LENSDIFF_TEST_PREREQS_ONLY=1)
    prereqs() { # prereqs N
        local log="$LOG/prereqs-$1.log" t=$SECONDS rc=0
        in_chroot "$CHROOT_PATH" 'cd /work/main && LENSDIFF_TEST_PREREQS_ONLY=1 bash scripts/test.sh' >"$log" 2>&1 || rc=$?
        say "prerequisite step, run $1: $(elapsed $((SECONDS - t))), exit $rc (log: $log)"
        if [ "$rc" -ne 0 ] || ! grep -q '^test.sh: prerequisites ready' "$log"; then
            tail -30 "$log" >&2
            echo "fresh_check: test.sh's prerequisite step failed" >&2
            return 1
        fi
        grep -E '^installing:' "$log" | sed 's/^/    /' || true
    }
    packages >"$LOG/packages-before.txt"; pip_packages >"$LOG/pip-before.txt"
    prereqs 1
    packages >"$LOG/packages-after.txt"; pip_packages >"$LOG/pip-after.txt"
    comm -13 "$LOG/packages-before.txt" "$LOG/packages-after.txt" >"$LOG/packages-added.txt"
    comm -13 "$LOG/pip-before.txt" "$LOG/pip-after.txt" >"$LOG/pip-added.txt"
    say "test.sh added $(wc -l <"$LOG/packages-added.txt") Debian packages ($LOG/packages-added.txt) and pip: $(tr '\n' ' ' <"$LOG/pip-added.txt")"
    prereqs 2
    if grep -q '^installing:' "$LOG/prereqs-2.log"; then
        echo "fresh_check: FAIL: the second run of the prerequisite step installed again" >&2
        exit 1
    fi
    say "second run installed nothing"
    record_rustup_writes
    say "prepare-only done in $(elapsed $((SECONDS - T0)))"
    exit 0
fi

# ---------------------------------------------------------------- the two commands

fails=()
run_step() { # run_step NAME COMMAND
    local name=$1 cmd=$2 log="$LOG/$1.log" t=$SECONDS rc=0
    say "running ($name) '$cmd' in /work/main (log: $log)"
    in_chroot "$CHROOT_PATH" "cd /work/main && $cmd" >"$log" 2>&1 || rc=$?
    say "($name) '$cmd': exit $rc after $(elapsed $((SECONDS - t)))"
    echo "$name: '$cmd' exit $rc, $((SECONDS - t)) s" >>"$LOG/summary.txt"
    if [ "$rc" -ne 0 ]; then
        tail -40 "$log" | sed 's/^/    /' >&2
        fails+=("$name")
    fi
}
packages >"$LOG/packages-before.txt"
steps=(b a)
[ "${FRESH_DEMO_FIRST:-0}" = 1 ] && steps=(a b)
for s in "${steps[@]}"; do
    case $s in
        b) run_step test 'bash .ci/run'
           packages >"$LOG/packages-after.txt"
           comm -13 "$LOG/packages-before.txt" "$LOG/packages-after.txt" >"$LOG/packages-added.txt" ;;
        a) run_step demo 'cargo run --release -- demo'
           [ -f "$ROOT/work/main/lensdiff-demo/demo.png" ] || say "note: no lensdiff-demo/demo.png was written" ;;
    esac
done
grep -h '^SKIPPED\|^test.sh: passed' "$LOG/test.log" 2>/dev/null | sort | uniq -c | sed 's/^/    /' || true
record_rustup_writes
say "total $(elapsed $((SECONDS - T0)))"
if [ ${#fails[@]} -gt 0 ]; then
    say "FAILED: ${fails[*]}"
    exit 1
fi
say "both README commands passed on a fresh $SUITE"
