# build-env.sh: sourced by vm.sh and test-all.sh, so that both use one build per architecture.
#
# The binaries and test executables are linked statically (+crt-static): the VM's initramfs
# has no libc, and the host runs the very same files. Not as a static PIE, Rust's default: a
# static PIE relocates itself at every start, writing (and so copying) every page of pointers
# it has, which under TCG made a start cost 23 ms instead of 6 (a hello world on 6.12), a third
# of a memory scenario's run. An explicit --target keeps these artifacts apart from ordinary
# `cargo build`s, and applies the flags to this crate's code only, not to build scripts.
#
# Two architectures, by their Debian names: amd64 (x86-64) and arm64 (aarch64). The host's
# own is built natively; the other is cross-built with Debian's cross toolchain and its C
# library (for the static link), which `use_arch` installs where they are missing.
# shellcheck shell=bash
build_env_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
static_flags="-C target-feature=+crt-static -C relocation-model=static"
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS=$static_flags
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS=$static_flags

case $(uname -m) in
    aarch64|arm64) host_arch=arm64 ;;
    *) host_arch=amd64 ;;
esac
# A cross build links with the cross toolchain's gcc.
[ "$host_arch" = amd64 ] || export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc
[ "$host_arch" = arm64 ] || export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc

# The Rust target of a Debian architecture; fails for one this project does not build.
rust_target_of() {
    case $1 in
        amd64) echo x86_64-unknown-linux-gnu ;;
        arm64) echo aarch64-unknown-linux-gnu ;;
        *) return 1 ;;
    esac
}

# Sets build_arch, build_target, build_args and build_dir for architecture $1.
use_arch() {
    build_arch=$1
    build_target=$(rust_target_of "$1") || { echo "build-env.sh: unknown architecture $1 (amd64 or arm64)" >&2; return 2; }
    build_args=(--release --target "$build_target")
    # Where cargo puts them: CARGO_TARGET_DIR where it is set (absolute, or relative to the crate).
    build_dir=${CARGO_TARGET_DIR:-target}/$build_target/release
}

# Makes a build for $1 possible on this host: for a foreign architecture, the rustup target,
# the cross gcc and the C library it links statically against, installed with apt (root or
# sudo) where missing. Several VMs may ask at once: one installs, the others wait on a lock.
# Returns 1 after one line that says what is missing and why it could not be had.
ensure_toolchain() {
    local arch=$1 target gcc packages
    target=$(rust_target_of "$arch") || return 1
    [ "$arch" = "$host_arch" ] && return 0
    case $arch in
        amd64) gcc=x86_64-linux-gnu-gcc packages="gcc-x86-64-linux-gnu libc6-dev-amd64-cross" ;;
        arm64) gcc=aarch64-linux-gnu-gcc packages="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;;
    esac
    if command -v rustup >/dev/null && ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
        rustup target add "$target" >/dev/null 2>&1 \
            || { echo "build-env.sh: rustup target add $target failed: $arch cannot be built here" >&2; return 1; }
    fi
    command -v "$gcc" >/dev/null && return 0
    command -v apt-get >/dev/null || { echo "build-env.sh: $gcc is missing: install $packages" >&2; return 1; }
    mkdir -p "$build_env_root/target"
    (
        flock 9
        command -v "$gcc" >/dev/null && exit 0
        echo "build-env.sh: installing $packages" >&2
        as_root_for_apt apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null \
            && as_root_for_apt env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
                install -y -qq --no-install-recommends $packages >/dev/null
    ) 9> "$build_env_root/target/install.lock" \
        || { echo "build-env.sh: could not install $packages (needs root or sudo): $arch cannot be built here" >&2; return 1; }
}

as_root_for_apt() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

use_arch "$host_arch"
