# build-env.sh: sourced by vm.sh and test-all.sh, so that both use one build.
#
# The binaries and test executables are linked statically (+crt-static): the VM's initramfs
# has no libc, and the host runs the very same files. Not as a static PIE, Rust's default: a
# static PIE relocates itself at every start, writing (and so copying) every page of pointers
# it has, which under TCG made a start cost 23 ms instead of 6 (a hello world on 6.12), a third
# of a memory scenario's run. An explicit --target keeps these artifacts apart from ordinary
# `cargo build`s, and applies the flags to this crate's code only, not to build scripts.
# shellcheck shell=bash
build_target=x86_64-unknown-linux-gnu
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static"
build_args=(--release --target "$build_target")
# Where cargo puts them: CARGO_TARGET_DIR where it is set (absolute, or relative to the crate).
build_dir=${CARGO_TARGET_DIR:-target}/$build_target/release
