#!/usr/bin/env bash
# vm.sh: run this crate's programs on a real cgroup v2 kernel, inside a throwaway VM.
#
# Usage:
#   scripts/vm.sh test [TEST ARGS...]   build the test suite statically, boot, run every test
#                                       binary as root with --include-ignored; exit 0 iff all pass
#   scripts/vm.sh demo                  run every scenario binary once and show its transcript
#   scripts/vm.sh exec 'COMMAND'        run a shell command in the VM (the scenario binaries are
#                                       on PATH), e.g. a loop of runs
#
# The VM boots the kernel of Debian's linux-image-amd64 (Ubuntu: linux-image-generic), fetched
# with `apt-get download` and unpacked without installing, with a busybox initramfs that
# mounts cgroup2 alone on /sys/fs/cgroup (no cgroup v1, no systemd). The kernel's controllers
# are all available there; nothing on the host's cgroups is touched.
#
# Environment:
#   VM_CACHE    where the kernel and busybox are kept     [default: target/vm]
#   VM_SMP      virtual CPUs                              [default: 1]
#               (scripts/test-all.sh runs the suite with 1 and then with 2)
#   VM_MEMORY   guest memory                              [default: 256M; below 96M it won't boot]
#   VM_TIMEOUT  seconds one boot may take in all               [default: 1200]
#   VM_UP_TIMEOUT  seconds until the VM's first sign of life    [default: 60]
#   VM_ACCEL    tcg or kvm                                [default: kvm where the CPU shows
#                                                          vmx/svm and /dev/kvm is usable]
#
# Exit status: 0 all passed (or the demo/command ran); 1 a test or the command failed; 2 the
# VM cannot run here (the message says why and what to install); a boot that shows no sign of
# life by VM_UP_TIMEOUT is retried once before it counts as a failure. The last line on
# standard error counts the boots and the retries: `vm.sh: boots=N retried=M`.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cache=${VM_CACHE:-$here/target/vm}
smp=${VM_SMP:-1}
memory=${VM_MEMORY:-256M}
boot_timeout=${VM_TIMEOUT:-1200}
up_timeout=${VM_UP_TIMEOUT:-60}
target=x86_64-unknown-linux-gnu
# Every binary goes into the VM; the demo runs the scenarios in the order of scenarios.txt.
mapfile -t bins < <(cd "$here/src/bin" && ls -- *.rs | sed 's/\.rs$//')
mapfile -t demo_bins < "$here/scripts/scenarios.txt"

die() { echo "vm.sh: $*" >&2; exit 2; }
say() { echo "vm.sh: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

# qemu: installed when missing, where apt and root (or sudo) allow.
ensure_qemu() {
    command -v qemu-system-x86_64 >/dev/null && return
    command -v apt-get >/dev/null || die "qemu-system-x86_64 is missing; install qemu-system-x86"
    say "installing qemu-system-x86"
    as_root apt-get update -qq >/dev/null \
        && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            qemu-system-x86 >/dev/null \
        || die "could not install qemu-system-x86 (needs root or sudo): install it and retry"
}

# The package that holds the distribution's current kernel image.
kernel_package() {
    local meta
    if apt-cache show linux-image-amd64 >/dev/null 2>&1; then meta=linux-image-amd64
    elif apt-cache show linux-image-generic >/dev/null 2>&1; then meta=linux-image-generic
    else return 1; fi
    apt-cache depends "$meta" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -1
}

# Kernel (an ELF vmlinux where it can be extracted, so PVH boot skips decompression) and
# busybox, cached by package version.
ensure_guest_files() {
    command -v apt-get >/dev/null || die "needs apt-get to fetch a kernel (Debian or Ubuntu)"
    mkdir -p "$cache"
    local package
    package=$(kernel_package) || true
    if [ -z "$package" ]; then
        as_root apt-get update -qq >/dev/null || true
        package=$(kernel_package) || die "no linux-image-amd64 or linux-image-generic in apt; run apt-get update"
    fi
    kernel_dir=$cache/$package
    if [ ! -e "$kernel_dir/kernel" ]; then
        say "fetching $package"
        rm -rf "$kernel_dir" && mkdir -p "$kernel_dir/deb"
        (cd "$kernel_dir/deb" && apt-get download "$package" >/dev/null 2>&1) \
            || die "apt-get download $package failed"
        dpkg-deb -x "$kernel_dir"/deb/*.deb "$kernel_dir/x"
        local vmlinuz
        vmlinuz=$(ls "$kernel_dir"/x/boot/vmlinuz-* | head -1)
        extract_vmlinux "$vmlinuz" "$kernel_dir/vmlinux" \
            && mv "$kernel_dir/vmlinux" "$kernel_dir/kernel" \
            || cp "$vmlinuz" "$kernel_dir/kernel"
        cp "$kernel_dir"/x/boot/config-* "$kernel_dir/config"
        rm -rf "$kernel_dir/deb" "$kernel_dir/x"
    fi
    kernel=$kernel_dir/kernel
    busybox=$cache/busybox
    if [ ! -x "$busybox" ]; then
        say "fetching busybox-static"
        local tmp
        tmp=$(mktemp -d)
        (cd "$tmp" && apt-get download busybox-static >/dev/null 2>&1) || die "apt-get download busybox-static failed"
        dpkg-deb -x "$tmp"/*.deb "$tmp/x"
        cp "$tmp/x/bin/busybox" "$busybox"
        rm -rf "$tmp"
    fi
}

# A bzImage carries the kernel compressed after its setup code; find the payload and
# decompress it. Fails (and the bzImage is booted instead) where the format is unknown.
extract_vmlinux() {
    local image=$1 out=$2 offset
    for format in 'xz:\xfd7zXZ\x00:xz -dc' 'zstd:\x28\xb5\x2f\xfd:zstd -dcq' 'gzip:\x1f\x8b\x08:gzip -dc'; do
        local magic=${format#*:}; magic=${magic%%:*}
        local tool=${format##*:}
        command -v "${tool%% *}" >/dev/null || continue
        offset=$(LC_ALL=C grep -obUaP "$magic" "$image" | head -1 | cut -d: -f1) || true
        [ -n "$offset" ] || continue
        tail -c +$((offset + 1)) "$image" | $tool > "$out" 2>/dev/null || true
        if [ "$(head -c 4 "$out" | od -An -c | tr -d ' ')" = '177ELF' ]; then return 0; fi
    done
    rm -f "$out"
    return 1
}

# Static builds: the initramfs has no libc, so glibc is linked in (+crt-static). A separate
# --target keeps these builds from invalidating the host's ordinary ones.
build_static() {
    local what=$1
    export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static"
    (cd "$here" && cargo build --quiet --release --target "$target" --bins)
    bin_dir=$here/target/$target/release
    test_exes=()
    if [ "$what" = tests ]; then
        local json
        json=$(cd "$here" && cargo test --quiet --release --target "$target" --no-run --message-format=json 2>/dev/null)
        mapfile -t test_exes < <(printf '%s\n' "$json" | grep '"profile":{[^}]*"test":true' | grep -E '"kind":\["(lib|test)"\]' \
            | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | sort -u)
        [ "${#test_exes[@]}" -gt 0 ] || die "cargo test --no-run built no test executables"
    fi
}

# The initramfs: busybox, the binaries at the same absolute paths the tests were compiled
# with (env!("CARGO_BIN_EXE_...")) and on PATH, and an init that runs $1 and powers off.
make_initramfs() {
    local script=$1 root
    root=$(mktemp -d)
    chmod 755 "$root"  # it becomes the guest's /, which unprivileged test runs must traverse
    mkdir -p "$root"/{bin,proc,sys,dev,tmp,tests} "$root$bin_dir"
    cp "$busybox" "$root/bin/busybox"
    for b in "${bins[@]}"; do
        cp "$bin_dir/$b" "$root$bin_dir/$b"
        ln -s "$bin_dir/$b" "$root/bin/$b"
    done
    for t in "${test_exes[@]}"; do cp "$t" "$root/tests/"; done
    # The one script a test runs in the guest, at the path the tests were built with.
    mkdir -p "$root$here/scripts"
    cp "$here/scripts/make-foo-cgroup.sh" "$root$here/scripts/"
    cat > "$root/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
chmod 1777 /tmp  # no tmpfs here: the build tree may itself live under /tmp
mkdir -p /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
export PATH=/bin HOME=/tmp RUST_BACKTRACE=1
echo "@@vm-up \$(uname -r) cpus=\$(nproc) controllers=\$(cat /sys/fs/cgroup/cgroup.controllers | tr ' ' ,)"
$script
echo "@@vm-done"
poweroff -f
EOF
    chmod +x "$root/init"
    initramfs=$cache/initramfs.cpio.gz
    (cd "$root" && find . | "$busybox" cpio -o -H newc 2>/dev/null | gzip -1 > "$initramfs")
    rm -rf "$root"
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

accel_args() {
    local accel=${VM_ACCEL:-}
    if [ -z "$accel" ]; then
        if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then accel=kvm; else accel=tcg; fi
    fi
    case $accel in
        kvm) echo "-accel kvm -cpu host" ;;
        *) echo "-accel tcg -cpu max" ;;
    esac
}

# Boots once; the serial console goes to $log and to stdout. Returns 0 if the init reached
# its end (@@vm-done), 1 otherwise. A boot that shows no sign of life (@@vm-up) within
# VM_UP_TIMEOUT seconds has hung: it is killed at once rather than at VM_TIMEOUT. Under TCG
# about one boot in three hung that way until the guest was told the TSC frequency
# (host_tsc_khz); the watchdog stays as the last resort.
boot() {
    local log=$1 loglevel=$2 pidfile=$cache/qemu.pid
    boots=$((boots + 1))
    : > "$log"
    rm -f "$pidfile"
    # shellcheck disable=SC2046
    timeout --foreground -k 5 "$boot_timeout" qemu-system-x86_64 $(accel_args) -M microvm -smp "$smp" -m "$memory" \
        -nodefaults -no-user-config -nographic -serial stdio -no-reboot -pidfile "$pidfile" \
        -kernel "$kernel" -initrd "$initramfs" \
        -append "console=ttyS0 rdinit=/init panic=-1 quiet loglevel=$loglevel${tsc_khz:+ tsc_early_khz=$tsc_khz}" \
        < /dev/null 2>&1 | tr -d '\r' | grep --line-buffered -v '^\[ *[0-9.]*\] PCI: Fatal' | tee "$log" &
    local console=$! waited=0
    while kill -0 "$console" 2>/dev/null; do
        if [ "$waited" -ge "$up_timeout" ] && ! grep -q '^@@vm-up' "$log"; then
            say "no sign of life from the VM after ${up_timeout}s; stopping it"
            kill "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null || true
            break
        fi
        sleep 1
        waited=$((waited + 1))
    done
    wait "$console" || true
    grep -q '^@@vm-done' "$log"
}

boot_with_retry() {
    local log=$1 loglevel=$2
    if boot "$log" "$loglevel"; then return 0; fi
    if grep -q '^@@vm-up' "$log"; then
        say "the VM started but did not finish within ${boot_timeout}s"
        return 1
    fi
    say "the VM printed no result; retrying once"
    retries=$((retries + 1))
    boot "$log" "$loglevel"
}

# Boots and retries of this invocation, reported on exit (scripts/test-all.sh adds them up).
boots=0 retries=0
report_boots() { [ "$boots" = 0 ] || echo "vm.sh: boots=$boots retried=$retries" >&2; }

main() {
    local mode=${1:-}
    shift || true
    case $mode in
        test|demo|exec) ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "usage: scripts/vm.sh test [TEST ARGS...] | demo | exec 'COMMAND'  (see --help)" ;;
    esac
    command -v cargo >/dev/null || die "cargo is missing"
    ensure_qemu
    ensure_guest_files
    tsc_khz=
    if [ "$(accel_args | cut -d' ' -f2)" = tcg ]; then
        tsc_khz=$(host_tsc_khz) || true
        [ -n "$tsc_khz" ] || say "the host's TSC frequency is unknown: the guest calibrates its own (a boot may hang; the watchdog retries it)"
    fi
    trap report_boots EXIT
    local script log
    log=$cache/$mode-smp$smp.log
    case $mode in
        test)
            build_static tests
            local args="--include-ignored --test-threads=1 --show-output $*"
            script="for t in /tests/*; do echo \"@@test-begin \${t##*/}\"; (cd /tmp && \$t $args); echo \"@@test-end \${t##*/} rc=\$?\"; done"
            make_initramfs "$script"
            say "booting $(basename "$kernel_dir") with ${#test_exes[@]} test binaries (smp=$smp, $(accel_args | cut -d' ' -f2))"
            boot_with_retry "$log" 1 || { say "no complete run; log: $log"; exit 1; }
            if grep -q '^@@test-end .* rc=[1-9]' "$log"; then
                say "FAILED: $(grep '^@@test-end .* rc=[1-9]' "$log" | cut -d' ' -f2 | tr '\n' ' ')"
                exit 1
            fi
            [ "$(grep -c '^@@test-end .* rc=0' "$log")" = "${#test_exes[@]}" ] || { say "not every test binary ran"; exit 1; }
            ;;
        demo)
            build_static bins
            script='for b in '"${demo_bins[*]}"'; do echo; echo "\$ sudo $b"; $b; echo "(exit status $?)"; done'
            make_initramfs "$script"
            # loglevel 4 lets the kernel's own "Memory cgroup out of memory: Killed process" through.
            boot_with_retry "$log" 4 || exit 1
            ;;
        exec)
            [ $# -ge 1 ] || die "exec needs a command"
            build_static bins
            make_initramfs "$*; echo \"@@exec-status \$?\""
            boot_with_retry "$log" 3 || exit 1
            grep -q '^@@exec-status 0$' "$log" || exit 1
            ;;
    esac
}

main "$@"; exit
