#!/usr/bin/env bash
# vm.sh: run this crate's programs on a real cgroup v2 kernel, inside a throwaway VM.
#
# Usage:
#   scripts/vm.sh test [OPTIONS] [-- TEST ARGS...]  every test binary as root, ignored tests
#                                                   included; exit 0 iff all pass
#   scripts/vm.sh demo [OPTIONS]                    every scenario once, with its transcript;
#                                                   exit 0 iff every one ended as claimed
#   scripts/vm.sh exec [OPTIONS] 'COMMAND'          a shell command in the VM, the scenario
#                                                   binaries and examples on PATH
#   scripts/vm.sh build (test|bins)                 only build the static binaries and the
#                                                   initramfs (test-all.sh does it once)
#
# Options:
#   --arch ARCH     amd64 or arm64: what the binaries are built for and the VM emulates (or
#                   runs with KVM, on a host of that architecture) [default: this host's]. A
#                   foreign architecture is cross-built with Debian's cross toolchain, which is
#                   installed where missing (see scripts/build-env.sh); arm64 boots on qemu's
#                   `virt` machine
#   --kernel LINE   which kernel line to boot: bullseye (5.10), bookworm (6.1), trixie (6.12)
#                   or sid (the newest), each with its updates; bookworm-point (6.1 as the
#                   point release has it); `host` off Debian [default: trixie; see kernels.sh]
#   --cpus N        virtual CPUs [default: 1]
#   --quick         test: leave out the stress test
#   --stress-runs N test: runs of each memory scenario in the stress test [default: its own, 100]
#   --no-build      use the binaries built last (test: and its initramfs, as `build` made it)
#
# The VM boots a stock kernel (scripts/kernels.sh fetches it with apt, unpacked, never
# installed) with a busybox initramfs that mounts cgroup2 alone on /sys/fs/cgroup (no cgroup
# v1, no systemd): every controller is available there and nothing of the host's cgroups is
# touched. The binaries and test executables are built statically, once, and the same
# initramfs serves every kernel. Inside, the test executables run at the same time, each
# with several test threads: every test is written to run beside the others.
#
# Environment:
#   VM_MEMORY      guest memory                     [default: 512M; below 96M it won't boot]
#   VM_TIMEOUT     seconds one boot may take in all [default: 900]
#   VM_UP_TIMEOUT  seconds until the first sign of life [default: 60]
#   VM_ACCEL       tcg or kvm                       [default: kvm where the CPU shows vmx/svm
#                                                    and /dev/kvm is usable]
#   VM_TEST_THREADS  test threads per test executable in the guest [default: 8]
#   VM_APPEND      more words for the guest kernel's command line
#   VM_CACHE       where downloads are kept (see scripts/kernels.sh)
#
# Exit status: 0 all passed (or the demo/command ran); 1 a test or the command failed, or
# the VM never finished; 2 the VM cannot run here (the message says why and what to
# install). A boot that shows no sign of life by VM_UP_TIMEOUT, or whose guest kernel
# oopses, is retried once before it counts as a failure (one that crashes while booting,
# before anything ran, up to twice). The last line on standard error
# counts the boots and the retries: `vm.sh: boots=N retried=M`.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
work=$here/target/vm
memory=${VM_MEMORY:-512M}
boot_timeout=${VM_TIMEOUT:-900}
up_timeout=${VM_UP_TIMEOUT:-60}
test_threads=${VM_TEST_THREADS:-8}
# Every binary goes into the VM; the demo runs the scenarios in the order of scenarios.txt.
# A binary is src/bin/NAME.rs, or a folder src/bin/NAME/ with its main.rs.
mapfile -t bins < <(cd "$here/src/bin" && for b in *.rs */main.rs; do
    [ -e "$b" ] && { b=${b%/main.rs}; echo "${b%.rs}"; }; done | sort)
mapfile -t examples < <(cd "$here/examples" && ls -- *.rs | sed 's/\.rs$//')
mapfile -t demo_bins < "$here/scripts/scenarios.txt"

die() { echo "vm.sh: $*" >&2; exit 2; }
say() { echo "vm.sh: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

# qemu: installed when missing, where apt and root (or sudo) allow. test-all starts several
# VMs at once on a fresh machine: one of them installs, the others wait for it on a lock
# (apt itself takes one install at a time and refuses the others at once).
ensure_qemu() {
    local qemu package
    case $arch in
        amd64) qemu=qemu-system-x86_64 package=qemu-system-x86 ;;
        arm64) qemu=qemu-system-aarch64 package=qemu-system-arm ;;
    esac
    command -v "$qemu" >/dev/null && return
    command -v apt-get >/dev/null || die "$qemu is missing; install $package"
    exec 9> "$here/target/install.lock"
    flock 9
    if ! command -v "$qemu" >/dev/null; then
        say "installing $package"
        as_root apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null \
            && as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
                install -y -qq --no-install-recommends "$package" >/dev/null \
            || die "could not install $package (needs root or sudo): install it and retry"
    fi
    exec 9>&-
}

# shellcheck source=scripts/build-env.sh
. "$here/scripts/build-env.sh"

# Sets the build variables and bin_dir for $arch.
set_arch() {
    use_arch "$arch" || exit 2
    case $build_dir in /*) bin_dir=$build_dir ;; *) bin_dir=$here/$build_dir ;; esac
    executables=$work/test-executables-$arch
}

# Builds the binaries and, for `test`, the test executables; lists the latter in
# $work/test-executables-ARCH. tests/lessons.rs stays on the host: it reads the sources, which the
# guest does not have, and what it checks does not depend on the kernel.
build_static() {
    local what=$1 json
    ensure_toolchain "$arch" || exit 2
    (cd "$here" && cargo build --quiet "${build_args[@]}" --bins --examples)
    : > "$executables"
    if [ "$what" = test ]; then
        json=$(cd "$here" && cargo test --quiet "${build_args[@]}" --no-run --message-format=json 2>/dev/null)
        printf '%s\n' "$json" | grep '"profile":{[^}]*"test":true' | grep -E '"kind":\["(lib|test)"\]' \
            | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | grep -v '/lessons-[^/]*$' \
            | sort -u > "$executables"
        [ -s "$executables" ] || die "cargo test --no-run built no test executables"
    fi
}

# The guest's side, run by /init: mount what a minimal system needs, run /task, power off.
# Written to a file as it is (no expansion here); /task is made per mode below.
guest_init='#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
chmod 1777 /tmp  # no tmpfs here: the build tree may itself live under /tmp
mkdir -p /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# tracefs, for --trace (a kernel built without it leaves the directory missing; --trace says so).
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
# A named cgroup v1 hierarchy, with no controller, for the clone3_args case that points
# CLONE_INTO_CGROUP at one; where this kernel mounts none, that case says so.
mkdir /tmp/cgroup-v1 && { mount -t cgroup -o none,name=clone-cgroup cgroup /tmp/cgroup-v1 2>/dev/null || rmdir /tmp/cgroup-v1; }
# Enabling a trace event, or a trace'"'"'s pid filter, turns on code by patching the running
# kernel, as the memory controller does (see the test task): under TCG a CPU running code
# another CPU patches can take the patch'"'"'s int3 for a fault. Two kinds of patch: a
# tracepoint'"'"'s static key, when its first probe comes (seen on 7.2, two CPUs, as --trace
# started), and its static call, which calls a lone probe directly and two or more through
# an iterator, so it is patched when the count goes between one and two (tracepoint_update_call,
# kernel/tracepoint.c; seen on 6.12, two CPUs, at the call to the sys_exit tracepoint in
# syscall_exit_to_user_mode_prepare). Each instance adds its own probe. So two instances that
# record nothing (tracing_on 0) keep every event --trace uses, and a pid filter, enabled
# until poweroff: a run'"'"'s own instance takes the count from two to three and back, where
# the call stays on the iterator and x86'"'"'s __static_call_transform finds nothing to patch.
# With one CPU no other CPU can run the code being patched: one keeper is enough there.
keepers=vm-static-keys
[ "$(nproc)" -gt 1 ] && keepers="$keepers vm-static-calls"
for keeper in $keepers; do
    keys=/sys/kernel/tracing/instances/$keeper
    mkdir "$keys" 2>/dev/null || continue
    echo 0 > "$keys/tracing_on"; echo 1 > "$keys/options/event-fork"; echo 1 > "$keys/set_event_pid"
    for event in task/task_newtask sched/sched_process_fork sched/sched_process_exec \
        sched/sched_process_exit sched/sched_process_wait signal/signal_generate \
        signal/signal_deliver oom/mark_victim raw_syscalls/sys_exit cgroup/cgroup_mkdir \
        cgroup/cgroup_rmdir cgroup/cgroup_attach_task cgroup/cgroup_notify_populated \
        cgroup/cgroup_freeze cgroup/cgroup_unfreeze cgroup/cgroup_notify_frozen; do
        [ -e "$keys/events/$event/enable" ] && echo 1 > "$keys/events/$event/enable"
    done
done
export PATH=/bin HOME=/tmp RUST_BACKTRACE=1
echo "@@vm-up $(uname -r) cpus=$(nproc) controllers=$(tr " " , < /sys/fs/cgroup/cgroup.controllers)"
. /task
echo "@@vm-done"
poweroff -f
'

# The test task, in three parts. First every test executable at once, each with several test
# threads, all but the stress test and the delayed pair's claims. Then the stress test, which
# runs many scenarios at once itself, as soon as all but the trace tests have ended. Last, on
# an otherwise idle machine, the delayed pair's claims: it bets that a child is parked by half
# its delay, which a busy machine can make it lose (the scenario then says so). Each
# executable's output is kept apart and shown whole.
guest_test_task='started=$(cut -d" " -f1 /proc/uptime)
# The memory controller turns on some of its code by patching the running kernel (static
# keys): kernel-memory accounting when the first memory cgroup comes online, socket and BPF
# accounting whenever the number of memory cgroups goes from 0 to 1, and off again at 0
# (mem_cgroup_css_alloc and _free). Under TCG, a CPU running code that another CPU is patching
# can take the int3 of the patching for a fault: seen once in more than a hundred boots (7.2,
# two CPUs: "Oops: int3" in memcg_charge_kernel_stack during a clone3). So the keys flip
# here, before any test runs, and this cgroup keeps the number above 0 until poweroff.
echo "+memory +pids" > /sys/fs/cgroup/cgroup.subtree_control
mkdir /sys/fs/cgroup/vm-static-keys
filters=$(echo "${TEST_ARGS:-}" | tr , " ")
args="--include-ignored --test-threads=$TEST_THREADS --show-output"
runs=0
show() {
    wait "$2"; rc=$?
    echo "@@test-begin $1"
    cat "/tmp/out.$1"
    echo "@@test-end $1 rc=$rc at=$(awk -v s="$started" "{ printf \"%d\", \$1 - s }" /proc/uptime)s"
    runs=$((runs + 1))
}
# Each executable'"'"'s list of tests, read once and before any of them starts: a list read
# while the others run waits seconds for a CPU, and delays the executable it is read for.
for t in /tests/*; do "$t" --list > "/tmp/list.${t##*/}" 2>/dev/null; done
listed() { grep -qx "$2: test" "/tmp/list.${1##*/}"; }
# The delayed pair'"'"'s claims, by their whole names: --skip and filters match any part of a
# name, and "delayed_" alone also matched tests that merely mention the delayed child.
delayed_tests() { sed -n "s/^\(delayed_[a-z0-9_]*\): test$/\1/p" "/tmp/list.${1##*/}"; }
# With one CPU, the traced runs of every lesson are left to the same kernel'"'"'s two-CPU boot:
# what they prove does not depend on the CPUs, and here they only repeated it. Each test left
# is named (@@test-left), never counted as run.
one_cpu_leaves="every_lesson_traced_ends_as_untraced_and_its_trace_holds_its_events delayed_pair_traced_ends_as_untraced_its_bet_included"
# Test arguments name tests, as parts of their names.
selected() {
    [ -n "$filters" ] || return 0
    for f in $filters; do case $1 in *"$f"*) return 0 ;; esac; done
    return 1
}
left_here() {
    [ "$(nproc)" = 1 ] || return 0
    for l in $one_cpu_leaves; do listed "$1" "$l" && selected "$l" && echo "$l"; done
}
for t in /tests/*; do
    for l in $(left_here "$t"); do echo "@@test-left ${t##*/}: $l (one CPU: the two-CPU boot runs it)"; done
done
# The trace tests start first: their runs take turns in the kernel (a tracefs instance is
# made under one lock), so they are the longest part wherever they run in full.
for t in /tests/trace-* /tests/*; do
    name=${t##*/}
    case $name in stress-*) continue ;; esac
    [ -e "$t" ] && [ ! -e "/tmp/pid.$name" ] || continue
    skips=$( { delayed_tests "$t"; left_here "$t"; } | sort -u | sed "s/^/--skip /")
    # shellcheck disable=SC2086
    (cd /tmp && exec "$t" $args $filters $skips) > "/tmp/out.$name" 2>&1 &
    echo "$!" > "/tmp/pid.$name"
done
for t in /tests/*; do
    name=${t##*/}
    case $name in trace-*) continue ;; esac
    [ -e "/tmp/pid.$name" ] && show "$name" "$(cat "/tmp/pid.$name")"
done
# The stress test starts as soon as the others have ended, beside the trace tests'"'"' remainder:
# where a kernel makes its instances slowly (6.1, without eventfs) that remainder is long, and
# mostly one CPU waiting on that lock.
for t in /tests/stress-*; do
    [ -e "$t" ] || continue
    if [ "$QUICK" = 1 ]; then echo "@@test-skipped ${t##*/} (quick mode)"; continue; fi
    # shellcheck disable=SC2086
    (cd /tmp && exec "$t" $args $filters) > "/tmp/out.${t##*/}" 2>&1 &
    echo "$!" > "/tmp/pid.${t##*/}"
done
for t in /tests/trace-* /tests/stress-*; do
    name=${t##*/}
    [ -e "/tmp/pid.$name" ] && show "$name" "$(cat "/tmp/pid.$name")"
done
# Then the delayed pair'"'"'s claims, alone.
for t in /tests/*; do
    name=${t##*/}
    case $name in stress-*) continue ;; esac
    set -- $(for d in $(delayed_tests "$t" | grep -vxF "$(left_here "$t")"); do selected "$d" && echo "$d"; done)
    [ $# -gt 0 ] || continue
    name=$name:delayed
    # shellcheck disable=SC2086
    (cd /tmp && exec "$t" $args "$@") > "/tmp/out.$name" 2>&1 &
    show "$name" "$!"
    set --
done
echo "@@test-runs $runs"
echo "@@test-seconds $(awk -v s="$started" "{ printf \"%d\", \$1 - s }" /proc/uptime)"
'

# The initramfs: busybox, the binaries at the same absolute paths they were built at (the
# tests find them with env!("CARGO_BIN_EXE_...")) and on PATH, the test executables, and
# /task, the shell code that /init runs.
make_initramfs() {
    local mode=$1 task=$2 root busybox out=$work/initramfs-$1-$arch.cpio.gz
    busybox=$("$here/scripts/kernels.sh" --arch "$arch" busybox)
    root=$(mktemp -d)
    chmod 755 "$root"  # it becomes the guest's /, which unprivileged test runs must traverse
    mkdir -p "$root"/{bin,proc,sys,dev,tmp,tests} "$root$bin_dir"
    cp "$busybox" "$root/bin/busybox"
    for b in "${bins[@]}"; do
        cp "$bin_dir/$b" "$root$bin_dir/$b"
        ln -s "$bin_dir/$b" "$root/bin/$b"
    done
    for e in "${examples[@]}"; do
        cp "$bin_dir/examples/$e" "$root/bin/$e"
    done
    while read -r t; do [ -n "$t" ] && cp "$t" "$root/tests/"; done < "$executables"
    # The one script a test runs in the guest, at the path the tests were built with.
    mkdir -p "$root$here/scripts"
    cp "$here/scripts/make-foo-cgroup.sh" "$root$here/scripts/"
    printf '%s' "$guest_init" > "$root/init"
    chmod +x "$root/init"
    printf '%s\n' "$task" > "$root/task"
    # The archive is written with a cpio this host can run: the guest's busybox may be another
    # architecture's.
    local cpio=(cpio)
    command -v cpio >/dev/null || cpio=("$("$here/scripts/kernels.sh" --arch "$host_arch" busybox)" cpio)
    (cd "$root" && find . | "${cpio[@]}" -o -H newc 2>/dev/null | gzip -1 > "$out.new")
    mv "$out.new" "$out"
    rm -rf "$root"
}

# KVM only for the host's own architecture, where the CPU offers it.
accel() {
    local accel=${VM_ACCEL:-}
    if [ -z "$accel" ]; then
        accel=tcg
        if [ "$arch" = "$host_arch" ] && [ -w /dev/kvm ]; then
            case $arch in
                amd64) grep -qwE 'vmx|svm' /proc/cpuinfo && accel=kvm ;;
                arm64) accel=kvm ;;
            esac
        fi
    fi
    echo "$accel"
}

# The host's TSC frequency in kHz, for the guest's tsc_early_khz=. Under TCG the guest's TSC
# ticks at the host's rate, but the guest kernel cannot always measure that rate: its PIT
# calibration, itself emulated, fails now and then ("tsc: Unable to calibrate against PIT"),
# and the boot then hangs. Told the rate, it skips the calibration. Taken from what the host
# kernel found (its log), else from /proc/cpuinfo; empty if neither says.
host_tsc_khz() {
    local mhz
    mhz=$( { dmesg 2>/dev/null || journalctl -k -b -q --no-pager 2>/dev/null || true; } \
        | sed -n 's/.*tsc: Refined TSC clocksource calibration: \([0-9.]*\) MHz.*/refined \1/p;
                  s/.*tsc: Detected \([0-9.]*\) MHz processor.*/detected \1/p' \
        | sort | head -1 | cut -d' ' -f2)
    if [ -z "$mhz" ] && grep -qw constant_tsc /proc/cpuinfo; then
        mhz=$(sed -n 's/^cpu MHz[[:space:]]*: \([0-9.]*\)$/\1/p' /proc/cpuinfo | head -1)
    fi
    [ -n "$mhz" ] && awk -v mhz="$mhz" 'BEGIN { if (mhz > 0) printf "%d\n", mhz * 1000 + 0.5 }'
}

# Boots once; the serial console goes to $log and to stdout. Returns
# 0 if the init reached its end (@@vm-done), 1 otherwise. A boot that shows no sign of life
# (@@vm-up) within VM_UP_TIMEOUT seconds has hung: it is killed at once rather than at
# VM_TIMEOUT. Under TCG about one boot in three hung that way until the guest was told the
# TSC frequency (host_tsc_khz); the watchdog stays as the last resort.
boot() {
    local log=$1 loglevel=$2 initramfs=$3 append pidfile machine
    pidfile=$(mktemp)
    boots=$((boots + 1))
    : > "$log"
    case $arch in
        amd64) append="console=ttyS0" ;;
        arm64) append="console=ttyAMA0" ;;
    esac
    append="$append rdinit=/init panic=-1 quiet loglevel=$loglevel"
    # tsc=reliable: without it 5.10 under TCG keeps its clock on jiffies (refined-jiffies, 4 ms
    # steps), and a trace's events within one step lose their order across CPUs.
    [ -n "$tsc_khz" ] && append="$append tsc_early_khz=$tsc_khz tsc=reliable"
    # Words without a dot that the kernel does not know go to /init as its environment.
    append="$append QUICK=$quick TEST_THREADS=$test_threads"
    [ -n "$test_args" ] && append="$append TEST_ARGS=$test_args"
    [ -n "$stress_runs" ] && append="$append STRESS_RUNS=$stress_runs"
    [ -n "${VM_APPEND:-}" ] && append="$append $VM_APPEND"
    [ -n "${STRESS_SCENARIOS:-}" ] && append="$append STRESS_SCENARIOS=$STRESS_SCENARIOS"
    # x86-64 boots on qemu's microvm (no PCI, no firmware); arm64 on virt, the machine Linux
    # knows from its device tree. Under TCG, arm64's "max" CPU authenticates pointers with
    # QARMA, costly to emulate; the implementation-defined algorithm is as good for a guest
    # and much faster.
    case $arch:$(accel) in
        amd64:kvm) machine=(qemu-system-x86_64 -M microvm -accel kvm -cpu host) ;;
        amd64:*) machine=(qemu-system-x86_64 -M microvm -accel tcg -cpu max) ;;
        arm64:kvm) machine=(qemu-system-aarch64 -M virt -accel kvm -cpu host) ;;
        arm64:*) machine=(qemu-system-aarch64 -M virt -accel tcg -cpu max,pauth-impdef=on) ;;
    esac
    timeout --foreground -k 5 "$boot_timeout" "${machine[@]}" \
        -smp "$cpus" -m "$memory" -nodefaults -no-user-config -nographic -serial stdio -no-reboot \
        -pidfile "$pidfile" -kernel "$kernel" -initrd "$initramfs" -append "$append" \
        < /dev/null 2>&1 | sed -u -e 's/\r$//' -e '/^\[ *[0-9.]*\] PCI: Fatal/d' | tee "$log" &
    # sed -u passes every line on at once: the watchdog below reads the log for a sign of life.
    local console=$! waited=0
    while kill -0 "$console" 2>/dev/null; do
        if [ "$waited" -ge "$up_timeout" ] && ! grep -q '^@@vm-up' "$log"; then
            say "$where: no sign of life from the VM after ${up_timeout}s; stopping it"
            kill "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null || true
            break
        fi
        sleep 1
        waited=$((waited + 1))
    done
    wait "$console" || true
    rm -f "$pidfile"
    grep -q '^@@vm-done' "$log"
}

boot_with_retry() {
    local crashed_booting=0 crashed_running=0 silent=0 when bzimage=${kernel%/*}/bzimage
    rm -f "$1.oops"
    while ! boot "$@"; do
        # qemu boots an ELF kernel only through PVH; a kernel built without it boots as a
        # bzImage.
        if grep -q 'PVH ELF Note' "$1" && [ -e "$bzimage" ] && [ "$kernel" != "$bzimage" ]; then
            say "$where: this kernel has no PVH entry point; booting its bzImage"
            kernel=$bzimage
            continue
        fi
        # A guest kernel that oopsed or panicked is the emulator's doing unless it happens
        # again (see the static keys in the test task): kept apart, said, and retried once.
        # One that crashed while booting, before /init said it was up, ran nothing of the
        # suite (the kernel patches itself as it boots, too): retried up to twice.
        if grep -qE '^\[ *[0-9.]+\] (Oops:|Kernel panic)' "$1"; then
            cat "$1" >> "$1.oops"
            if grep -q '^@@vm-up' "$1"; then
                crashed_running=$((crashed_running + 1)) when=""
                [ "$crashed_running" -le 1 ] || { say "$where: the guest kernel crashed again; every crashed boot's log is in $1.oops"; return 1; }
            else
                crashed_booting=$((crashed_booting + 1)) when=" while booting, before anything ran"
                [ "$crashed_booting" -le 2 ] || { say "$where: the guest kernel crashed while booting three times; their logs are in $1.oops"; return 1; }
            fi
            say "$where: the guest kernel crashed$when ($(grep -m1 -oE '(Oops|Kernel panic)[^[]*' "$1" \
                | head -c 80)); log kept in $1.oops; retrying"
            retries=$((retries + 1))
            continue
        fi
        if grep -q '^@@vm-up' "$1"; then
            say "$where: the VM started but did not finish (log: $1)"
            return 1
        fi
        silent=$((silent + 1))
        [ "$silent" -le 1 ] || { say "$where: the VM printed no result again (log: $1)"; return 1; }
        say "$where: the VM printed no result; retrying once"
        retries=$((retries + 1))
    done
}

# Boots and retries of this invocation, reported on exit (scripts/test-all.sh adds them up).
boots=0 retries=0
report_boots() { [ "$boots" = 0 ] || echo "vm.sh: boots=$boots retried=$retries" >&2; }

usage() {
    die "usage: scripts/vm.sh test|demo|exec|build [--arch ARCH] [--kernel LINE] [--cpus N] [--quick] [--no-build] ...  (see --help)"
}

main() {
    local mode=${1:-} build=1
    shift || true
    line=${VM_KERNEL:-}
    arch=$host_arch
    cpus=1
    quick=0
    test_args=
    stress_runs=
    case $mode in
        test|demo|exec|build) ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) usage ;;
    esac
    local rest=()
    while [ $# -gt 0 ]; do
        case $1 in
            --kernel) [ $# -ge 2 ] || usage; line=$2; shift 2 ;;
            --kernel=*) line=${1#*=}; shift ;;
            --arch) [ $# -ge 2 ] || usage; arch=$2; shift 2 ;;
            --arch=*) arch=${1#*=}; shift ;;
            --cpus) [ $# -ge 2 ] || usage; cpus=$2; shift 2 ;;
            --cpus=*) cpus=${1#*=}; shift ;;
            --quick) quick=1; shift ;;
            --stress-runs) [ $# -ge 2 ] || usage; stress_runs=$2; shift 2 ;;
            --stress-runs=*) stress_runs=${1#*=}; shift ;;
            --no-build) build=0; shift ;;
            --) shift; rest+=("$@"); break ;;
            *) rest+=("$1"); shift ;;
        esac
    done
    case $cpus in ''|*[!0-9]*|0) die "--cpus takes a whole number from 1" ;; esac
    case $stress_runs in *[!0-9]*) die "--stress-runs takes a whole number" ;; esac
    command -v cargo >/dev/null || die "cargo is missing"
    mkdir -p "$work"
    set_arch

    if [ "$mode" = build ]; then
        local what=${rest[0]:-test}
        case $what in test|bins) ;; *) usage ;; esac
        build_static "$what"
        make_initramfs "$what" "$([ "$what" = test ] && echo "$guest_test_task")"
        exit 0
    fi

    ensure_qemu
    [ -n "$line" ] || line=$("$here/scripts/kernels.sh" --arch "$arch" default)
    kernel=$("$here/scripts/kernels.sh" --arch "$arch" path "$line") || exit 2
    where=$line
    [ "$arch" = amd64 ] || where="$line ($arch)"
    tsc_khz=
    if [ "$arch" = amd64 ] && [ "$(accel)" = tcg ]; then
        tsc_khz=$(host_tsc_khz) || true
        [ -n "$tsc_khz" ] || say "the host's TSC frequency is unknown: the guest calibrates its own (a boot may hang; the watchdog retries it)"
    fi
    # A demo or a command may run beside another one: its files carry this run's pid.
    local run=$mode
    [ "$mode" = test ] || run=$mode-$$
    if [ "$mode" = test ]; then
        trap report_boots EXIT
    else
        trap "report_boots; rm -f '$work/initramfs-$run-$arch.cpio.gz'" EXIT
    fi
    local log=$work/$run-$line-cpus$cpus.log task initramfs
    [ "$arch" = amd64 ] || log=$work/$run-$arch-$line-cpus$cpus.log
    case $mode in
        test)
            if [ "$build" = 1 ]; then
                build_static test
                make_initramfs test "$guest_test_task"
            fi
            initramfs=$work/initramfs-test-$arch.cpio.gz
            [ -e "$initramfs" ] || die "no initramfs: run scripts/vm.sh build test first"
            say "$where: booting $("$here/scripts/kernels.sh" --arch "$arch" version "$line") with $(wc -l < "$executables") test executables (cpus=$cpus, $(accel))"
            test_args=$(IFS=,; echo "${rest[*]}")
            case $test_args in *' '*) die "test arguments cannot contain spaces" ;; esac
            boot_with_retry "$log" 1 "$initramfs" || { say "$where: no complete run; log: $log"; exit 1; }
            if grep -q '^@@test-end .* rc=[1-9]' "$log"; then
                say "$where: FAILED: $(grep '^@@test-end .* rc=[1-9]' "$log" | cut -d' ' -f2 | tr '\n' ' ')"
                exit 1
            fi
            # Every executable ran (or, the stress test in quick mode, was skipped on purpose).
            local runs skipped
            runs=$(sed -n 's/^@@test-runs //p' "$log")
            skipped=$(grep -c '^@@test-skipped' "$log" || true)
            [ -n "$runs" ] && [ "$(grep -c '^@@test-end .* rc=0' "$log")" = "$runs" ] \
                && [ "$((runs + skipped))" -ge "$(wc -l < "$executables")" ] \
                || { say "$where: not every test executable ran"; exit 1; }
            ;;
        demo)
            [ "$build" = 0 ] || build_static bins
            task='for b in '"${demo_bins[*]}"'; do echo; echo "$ sudo $b"; $b; echo "(exit status $?)"; done'
            make_initramfs "$run" "$task"
            # loglevel 4 lets the kernel's own "Memory cgroup out of memory: Killed process" through.
            boot_with_retry "$log" 4 "$work/initramfs-$run-$arch.cpio.gz" || exit 1
            ! grep -q '^(exit status [1-9]' "$log" || exit 1
            ;;
        exec)
            [ "${#rest[@]}" -ge 1 ] || die "exec needs a command"
            [ "$build" = 0 ] || build_static bins
            make_initramfs "$run" "${rest[*]}"'
echo "@@exec-status $?"'
            # loglevel 4, as for the demo: the kernel's own OOM line is an error (KERN_ERR).
            boot_with_retry "$log" 4 "$work/initramfs-$run-$arch.cpio.gz" || exit 1
            grep -q '^@@exec-status 0$' "$log" || exit 1
            ;;
    esac
}

main "$@"; exit
