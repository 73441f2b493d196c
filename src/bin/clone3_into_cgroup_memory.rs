//! clone3_into_cgroup_memory: clone3 with CLONE_INTO_CGROUP and CLONE_PIDFD, with a child that
//! needs less than 4 KiB.
//!
//! Usage: `cargo sudo-run --bin clone3_into_cgroup_memory -- [OPTIONS]` (see `--help`; Linux
//! 5.7 or later, x86-64 or aarch64)
//!
//! The child is born inside a new cgroup with memory.max = 4096: no delay, no handshake,
//! nothing to race. Charged from its first instruction on, it runs on a stack the parent
//! already paid for (mapped shared, written beforehand) and writes 3000 bytes, one new page.
//! The parent polls the child's pidfd and reaps it with waitid(P_PIDFD). Expect
//! `waitid(P_PIDFD): Exited(Pid(N), 0)`, `oom_kill 0`, `memory.peak: 4096 bytes`, exit
//! status 0. This file is also the story of clone3_into_cgroup_memory_fail, whose child
//! writes 1 MiB.

use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::Duration;

use clone_cgroup::child_say;
use clone_cgroup::cli::{
    Claim, LimitedCgroup, MemoryOptions, Scenario, Summary, MEMORY_OPTIONS_HELP,
};
use clone_cgroup::clone3::{clone3_child_on_stack, not_offered, CloneArgs, Flags};
use clone_cgroup::memory::{self, pages_word, Reservation};
use clone_cgroup::process::describe_status;
use clone_cgroup::procfs;
use clone_cgroup::say;
use clone_cgroup::sync::SignalWatch;
use clone_cgroup::Error;
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::getpid;

pub const SCENARIO: Scenario = Scenario {
    name: "clone3_into_cgroup_memory",
    about: "clone3 starts the child inside a cgroup with memory.max=4096 (CLONE_INTO_CGROUP);\n\
            the child writes 3000 bytes and exits 0; the parent waits on its pidfd.",
    options: MEMORY_OPTIONS_HELP,
};

/// The stack of a child born in the cgroup: a line of output and a loop need little. It lies
/// in a shared mapping that the parent has paid for (see `Reservation::with_shared_stack`), so
/// it is not the [`memory::MOVED_CHILD_STACK_SIZE`] of the children that are moved.
const SHARED_STACK_SIZE: usize = 64 << 10;

// `pub`, like SCENARIO: clone3_into_cgroup_memory_fail holds this file as its module `story`.
pub fn main() -> ExitCode {
    SCENARIO.main(|args| run(SCENARIO.name, Claim::Survives, args))
}

/// The story, for the small child and (from clone3_into_cgroup_memory_fail) the big one.
pub fn run(scenario: &str, claim: Claim, args: &[String]) -> Result<Summary, Error> {
    let options = MemoryOptions::parse(args, claim.defaults(Duration::ZERO))?;
    let alloc = options.alloc;
    // The buffer and the child's stack share one page table (see Reservation): refused here,
    // before anything is created, where they would not.
    let largest = memory::largest_buffer_beside_stack(SHARED_STACK_SIZE);
    if alloc > largest as u64 {
        return Err(Error::Usage(format!(
            "--alloc {alloc}: the clone3 pair's child writes at most {}K, since its buffer \
             and its {}K stack share one 2 MiB page table",
            largest >> 10,
            SHARED_STACK_SIZE >> 10
        )));
    }
    let me = getpid();

    // 1. Block SIGCHLD and the interruptions; refuse early if this machine cannot run the
    //    scenario; create the cgroup and set its limit.
    let watch = SignalWatch::install()?;
    let LimitedCgroup { cgroup, notes, events_before } = options.limited_cgroup()?;
    for note in notes {
        say!("parent[{me}]: 1. {note}");
    }
    watch.stop_if_interrupted()?;

    // 2. Everything the child will use is prepared, and paid for, here: its stack (shared,
    //    written now) and its buffer's page tables. The cgroup is named by a descriptor of its
    //    directory, opened O_PATH.
    let mut buffer = Reservation::with_shared_stack(alloc as usize, SHARED_STACK_SIZE)?;
    buffer.build_page_tables();
    let stack = buffer.shared_stack().expect("a shared stack was asked for");
    let cgroup_dir = cgroup.open_path()?;
    let clone_args = CloneArgs::new(Signal::SIGCHLD).pidfd().into_cgroup(&cgroup_dir);
    let flags = clone_args.flag_set();
    say!(
        "parent[{me}]: 2. clone3(flags = {flags} = {:#x}, cgroup = fd {})",
        flags.0,
        cgroup_dir.as_raw_fd()
    );
    let mut body = || {
        // 3. Born in the cgroup: no parking, no signal. This line and the buffer are all it
        //    writes.
        child_say!(
            "child[{}]: 3. born in the cgroup; writing {alloc} bytes of new memory",
            getpid()
        );
        let pages = buffer.touch(alloc as usize);
        // 4. (Only a child that fits gets here.)
        child_say!(
            "child[{}]: 4. wrote {alloc} bytes ({pages} new {}); exiting 0",
            getpid(),
            pages_word(pages)
        );
        0
    };
    // SAFETY: this program starts no threads; the child runs on the 64 KiB shared stack, writes
    // only that stack and the buffer, and then ends.
    let started = unsafe { clone3_child_on_stack(&clone_args, stack, &mut body) };
    let mut child = match started {
        Ok(child) => child,
        Err(Error::Sys { errno, .. }) if not_offered(errno).is_some() => {
            return Err(Error::cannot_run(not_offered(errno).unwrap_or_default()))
        }
        Err(Error::Sys { errno: Errno::EINVAL, .. }) if flags.contains(Flags::INTO_CGROUP) => {
            return Err(Error::cannot_run(
                "clone3 refused CLONE_INTO_CGROUP (EINVAL): it needs Linux 5.7 and a cgroup v2 \
                 directory",
            ))
        }
        Err(e) => return Err(e),
    };
    let pid = child.pid();
    say!(
        "parent[{me}]: 2. clone3 returned child {pid} and pidfd {}; /proc/{pid}/cgroup says {}",
        child.pidfd().map_or(-1, |fd| fd.as_raw_fd()),
        procfs::cgroup_of(pid).unwrap_or_else(|| procfs::GONE.into())
    );

    // 5. poll() the pidfd until it is readable (the child has ended), then waitid(P_PIDFD),
    //    which can reap this child and no other.
    let ended = child.wait(&watch, options.timeout, |_| {})?;
    say!("parent[{me}]: 5. poll: pidfd readable; waitid(P_PIDFD): {:?}", ended.status);
    say!("parent[{me}]:    {}: {}", describe_status(ended.status), ended.outcome);

    // 6. The kernel's own evidence.
    let evidence = cgroup.memory_evidence(ended, events_before)?;
    say!("parent[{me}]: 6. memory.events: {}", evidence.events);
    say!("parent[{me}]: 6. memory.peak: {}", evidence.peak_text());

    // 7. Remove the cgroup (if it is ours).
    if let Some(path) = cgroup.remove()? {
        say!("parent[{me}]: 7. removed {}", path.display());
    }
    // Born there: no time outside the cgroup.
    Ok(claim
        .summary(scenario, &options, &evidence, None)
        .field("placement", "clone3")
        .field("clone_to_cgroup_us", 0))
}
