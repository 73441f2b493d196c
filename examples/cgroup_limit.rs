//! Create a cgroup, set memory.max, run a child in it, read its memory.events, remove it:
//! the library's `cgroup`, `clone3` and `memory` modules on their own.
//!
//! Run, as root on a host with cgroup v2 (or in the VM: `scripts/vm.sh exec`):
//! `cargo build --example cgroup_limit && sudo target/debug/examples/cgroup_limit`

use std::time::Duration;

use clone_cgroup::cgroup;
use clone_cgroup::clone3::{clone3_child, CloneArgs};
use clone_cgroup::sync::SignalWatch;
use nix::sys::signal::Signal;

fn main() -> Result<(), clone_cgroup::Error> {
    let watch = SignalWatch::install()?;
    // Refuses, before writing anything, where this machine cannot do it (no root, no cgroup
    // v2 memory controller), and says why.
    let (cgroup, notes) = cgroup::prepare("example", "memory", None, None)?;
    for note in notes {
        println!("{note}");
    }
    cgroup.limit_memory(1 << 20)?;
    let before = cgroup.memory_events()?;

    // The child is born in the cgroup and writes 4 MiB into a 1 MiB limit: the kernel kills it.
    let dir = cgroup.open_path()?;
    let args = CloneArgs::new(Signal::SIGCHLD).pidfd().into_cgroup(&dir);
    // 4 MiB allocated here, in the parent, so that the child only writes (it allocates and
    // frees nothing: the closure borrows the buffer).
    let mut buffer = vec![0u8; 4 << 20];
    let mut child = clone3_child(&args, || {
        for page in buffer.chunks_mut(4096) {
            page[0] = 1;
        }
        0
    })?;
    let ended = child.wait(&watch, Duration::from_secs(10), |_| {})?;
    let evidence = cgroup.memory_evidence(ended, before)?;
    println!(
        "child: {}; memory.events: {}; memory.peak: {}",
        ended.outcome,
        evidence.events,
        evidence.peak_text()
    );
    cgroup.remove()?;
    Ok(())
}
