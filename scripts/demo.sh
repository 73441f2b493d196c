#!/usr/bin/env bash
# demo.sh: run every scenario once and show its transcript.
#
# On a host with cgroup v2 and the memory controller available, the binaries run right here
# (as root: directly, or through sudo). Anywhere else (a hybrid or cgroup v1 host, like most
# machines still booted with cgroup v1 memory), they run inside the VM of scripts/vm.sh, on a
# stock Debian kernel with a pure cgroup v2 hierarchy.
#
# Usage: scripts/demo.sh [--kernel LINE] [--cpus N]   (the options choose the VM's kernel; see
#        scripts/vm.sh --help)
#
# Exit status: 0 when every scenario ended as claimed, 1 otherwise, 2 when neither way can run.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/build-env.sh
. scripts/build-env.sh

mapfile -t bins < scripts/scenarios.txt

mount=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
if [ -n "$mount" ] && grep -qw memory "$mount/cgroup.controllers" 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then run_as=(); elif command -v sudo >/dev/null; then run_as=(sudo); else
        echo "demo.sh: cgroup v2 is here, but running the scenarios needs root or sudo" >&2; exit 2
    fi
    echo "demo.sh: cgroup v2 with the memory controller at $mount: running on this host"
    cargo build --quiet "${build_args[@]}" --bins
    status=0
    for b in "${bins[@]}"; do
        echo
        echo "\$ sudo $b"
        "${run_as[@]}" "$build_dir/$b" || { code=$?; echo "(exit status $code)"; status=1; continue; }
        echo "(exit status 0)"
    done
    exit "$status"
fi

echo "demo.sh: no cgroup v2 memory controller on this host (${mount:-no cgroup2 mount}): running in the VM"
exec scripts/vm.sh demo "$@"
