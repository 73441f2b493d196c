//! clone_wait_signal_cgroup_memory: the signal-synced placement, with a child that needs less
//! than 4 KiB.
//!
//! Usage: `cargo sudo-run --bin clone_wait_signal_cgroup_memory -- [OPTIONS]` (see `--help`)
//!
//! The parent blocks SIGUSR1, SIGUSR2 and SIGCHLD, creates a cgroup with memory.max = 4096 and
//! clones a child, which inherits the blocked mask. The child warms up, sends SIGUSR2
//! ("ready") and waits in sigtimedwait for SIGUSR1. The parent moves it and sends SIGUSR1; the
//! child writes 3000 bytes (one new page) and sends SIGUSR2 again ("done"). Because the
//! signals are blocked before clone, none can be lost, whoever runs first; nothing is left to
//! timing. Expect `waitpid: Exited(Pid(N), 0)`, `done signal ... arrived`, `oom_kill 0`, exit
//! status 0, and `memory.peak: 8192 bytes`: the "done" signal is queued from inside the
//! cgroup, and the kernel (since 5.15) charges its queue entry there, past the limit,
//! because it may not refuse it.
//!
//! This file is also the story of clone_wait_signal_cgroup_memory_fail, whose child writes
//! 1 MiB.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clone_cgroup::child_say;
use clone_cgroup::cli::{
    Claim, LimitedCgroup, MemoryOptions, Scenario, Summary, MEMORY_OPTIONS_HELP,
};
use clone_cgroup::memory::{
    self, pages_word, ChildStack, CHILD_SETUP_FAILED, MOVED_CHILD_STACK_SIZE,
};
use clone_cgroup::process::{clone_child, describe_status, die_with_parent, Waited};
use clone_cgroup::say;
use clone_cgroup::sync::{self, SignalWatch, CHILD_TO_PARENT, PARENT_TO_CHILD};
use clone_cgroup::Error;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::{getpid, Pid};

pub const SCENARIO: Scenario = Scenario {
    name: "clone_wait_signal_cgroup_memory",
    about:
        "A child waits, with SIGUSR1 blocked since before clone, until the parent has moved it\n\
            into a cgroup with memory.max=4096; it writes 3000 bytes and signals that it is done.",
    options: MEMORY_OPTIONS_HELP,
};

// `pub`, like SCENARIO: clone_wait_signal_cgroup_memory_fail holds this file as its module `story`.
pub fn main() -> ExitCode {
    SCENARIO.main(|args| run(SCENARIO.name, Claim::Survives, args))
}

/// The child's side of the story (steps 3, 5 and 6), under the rule for child code. It ends
/// with 0, or with [`CHILD_SETUP_FAILED`] where it could not play its part (and says why).
fn child_side(parent: Pid, alloc: usize, timeout: Duration) -> i32 {
    die_with_parent(parent);
    let me = getpid();
    // 3. Everything that costs memory, while still in the parent's cgroup; then "ready".
    let mut buffer = match memory::warm_up(alloc) {
        Ok(buffer) => buffer,
        Err(e) => {
            child_say!("child[{me}]: cannot reserve {alloc} bytes: {e}");
            return CHILD_SETUP_FAILED;
        }
    };
    child_say!("child[{me}]: 3. warmed up, reserved {alloc} bytes; SIGUSR2 to {parent}: ready");
    // 5. SIGUSR1 means "moved". Bounded: a parent that never answers does not leave us
    //    waiting forever.
    let told =
        sync::send(parent, CHILD_TO_PARENT).is_ok() && sync::wait_for(PARENT_TO_CHILD, timeout);
    if !told {
        child_say!("child[{me}]: no SIGUSR1 within {} s; giving up", timeout.as_secs());
        return CHILD_SETUP_FAILED;
    }
    child_say!("child[{me}]: 5. got SIGUSR1: moved; writing {alloc} bytes of new memory");
    let pages = buffer.touch(alloc);
    // 6. (Only a child that fits gets here.) "done": a signal queued from inside the cgroup.
    child_say!(
        "child[{me}]: 6. wrote {alloc} bytes ({pages} new {}); SIGUSR2: done",
        pages_word(pages)
    );
    match sync::send(parent, CHILD_TO_PARENT) {
        Ok(()) => 0,
        Err(_) => CHILD_SETUP_FAILED,
    }
}

/// The story, for the small child and (from clone_wait_signal_cgroup_memory_fail) the big one.
pub fn run(scenario: &str, claim: Claim, args: &[String]) -> Result<Summary, Error> {
    let options = MemoryOptions::parse(args, claim.defaults(Duration::ZERO))?;
    let (alloc, timeout) = (options.alloc, options.timeout);
    let me = getpid();

    // 1. Block SIGUSR1, SIGUSR2, SIGCHLD and the interruptions *before* clone: the child
    //    inherits the mask, so a signal sent before its receiver waits stays pending instead
    //    of being lost (or killing it: the default action of SIGUSR1 is to terminate). Then
    //    refuse early if this machine cannot run the scenario; create the cgroup, set its limit.
    let watch = SignalWatch::install()?;
    say!("parent[{me}]: 1. SIGUSR1, SIGUSR2 and SIGCHLD are blocked; the child inherits the mask");
    let LimitedCgroup { cgroup, notes, events_before } = options.limited_cgroup()?;
    for note in notes {
        say!("parent[{me}]: 1. {note}");
    }
    watch.stop_if_interrupted()?;

    // 2. Clone an ordinary child, with a copy of our memory and our blocked mask.
    let mut stack = ChildStack::new(MOVED_CHILD_STACK_SIZE)?;
    let mut body = || child_side(me, alloc as usize, timeout);
    let before_clone = Instant::now();
    let mut child = clone_child(&mut body, &mut stack, CloneFlags::empty(), Signal::SIGCHLD)?;
    let pid = child.pid();
    say!("parent[{me}]: 2. clone() returned child {pid}");

    // 4. Wait, bounded, for "ready"; let the child wait --delay ms to show that timing no
    //    longer matters; move it (write its pid to cgroup.procs); say "go".
    let said_ready = child.wait_for_signal(&watch, CHILD_TO_PARENT, timeout)?;
    match said_ready {
        Waited::SignalCame => say!("parent[{me}]: 4. got SIGUSR2 from {pid}: ready"),
        Waited::ChildEnded => {
            say!("parent[{me}]: 4. child {pid} ended before it said ready; not moved")
        }
        Waited::TimeUp => {
            let ended = child.kill_and_reap()?;
            say!(
                "parent[{me}]: 4. no ready signal from {pid} within {timeout:?}; killed it: {:?}",
                ended.status
            );
            return Err(Error::Failed(format!("child {pid} never said ready within {timeout:?}")));
        }
    }
    let mut still_waiting = said_ready == Waited::SignalCame;
    if still_waiting && !options.delay.is_zero() {
        say!("parent[{me}]: 4. keeping it waiting {} ms", options.delay.as_millis());
        still_waiting = child.still_running_after(&watch, options.delay)?;
        if !still_waiting {
            say!("parent[{me}]: 4. child {pid} ended while it waited; not moved");
        }
    }
    let mut in_cgroup = None;
    if still_waiting {
        cgroup.add_process(pid)?;
        let done_after = before_clone.elapsed();
        in_cgroup = Some(done_after);
        say!(
            "parent[{me}]: 4. moved it into {}, {} ms after clone; cgroup.procs lists {:?}; \
             SIGUSR1 to {pid}",
            cgroup.path().display(),
            done_after.as_millis(),
            cgroup.processes()?
        );
        sync::send(pid, PARENT_TO_CHILD)?;
    }

    // 7. Wait for the end, bounded, noting whether "done" arrived before it.
    let mut done = false;
    let note_done = |r: sync::Received| done |= r.signal == CHILD_TO_PARENT && r.sender == pid;
    let ended = child.wait(&watch, timeout, note_done)?;
    say!("parent[{me}]: 7. waitpid: {:?}", ended.status);
    say!("parent[{me}]:    {}: {}", describe_status(ended.status), ended.outcome);
    say!(
        "parent[{me}]:    done signal (SIGUSR2) from the child: {}",
        if done { "arrived" } else { "never came" }
    );

    // 8. The kernel's own evidence. A peak above memory.max is a charge the kernel could not
    //    refuse: the queue entry of the "done" signal, allocated atomically.
    let evidence = cgroup.memory_evidence(ended, events_before)?;
    say!("parent[{me}]: 8. memory.events: {}", evidence.events);
    say!("parent[{me}]: 8. memory.peak: {}", evidence.peak_text());
    if evidence.peak.is_some_and(|peak| peak > options.limit) {
        say!(
            "parent[{me}]:    (above memory.max: the kernel forced a charge it could not \
             refuse, such as the signal the child queued after the move)"
        );
    }

    // 9. Remove the cgroup (if it is ours): it is empty now that the child is reaped.
    if let Some(path) = cgroup.remove()? {
        say!("parent[{me}]: 9. removed {}", path.display());
    }
    // The big child never gets as far as its "done".
    let placement_failed = (!done && claim == Claim::Survives)
        .then_some("the child's \"done\" signal never came: it did not finish its writes");
    Ok(claim
        .summary(scenario, &options, &evidence, placement_failed)
        .field("placement", "signal")
        .field("clone_to_cgroup_us", in_cgroup.map_or("none".into(), |d| d.as_micros().to_string()))
        .field("done_signal", done))
}
