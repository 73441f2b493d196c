//! The memory scenarios: a child is moved into a cgroup with a tiny `memory.max`, then writes
//! new memory; the kernel lets it finish or kills it.
//!
//! Three placements, each a function of numbered steps that a pair of binaries runs:
//! - [`delayed`]: the child parks in a sleep and the parent moves it meanwhile. Simple, but a
//!   bet on timing: the move must land after the child's warm-up and before its writes.
//! - [`signal_synced`]: the child says "ready" with a signal and waits, with the signal blocked
//!   since before `clone`, until the parent has moved it and said "go". Nothing is left to
//!   timing.
//! - [`clone3_into_cgroup`]: `clone3` starts the child inside the cgroup; there is no move.
//!
//! What makes "needs less than 4 KiB" exact: a process is charged for a page when it first
//! writes it, and only pages first written *after* the move are charged to the new cgroup.
//! So the child does everything that costs memory (its first output, its stack, the page
//! tables of its buffer) before the move, and after the move writes only its buffer.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::{geteuid, getpid, Pid};

use crate::cgroup::{enable_controller, remove_stale, Cgroup, Cgroup2Mount, MemoryEvents, Stale};
use crate::cli::{MemoryOptions, Summary, Verdict};
use crate::memory::{warm_up_stack, Reservation, STACK_SIZE};
use crate::process::{
    clone_child, describe_status, die_with_parent, kill_and_reap, state_of, Child, ChildStack,
    Ended, Outcome, WaitFailure,
};
use crate::sync::{self, SignalWatch, CHILD_TO_PARENT, PARENT_TO_CHILD};
use crate::{child_say, Error};

/// The exit status of a child whose own setup failed (it prints why): BSD's EX_SOFTWARE.
pub const CHILD_SETUP_FAILED: i32 = 70;

/// What a memory scenario claims will happen to its child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The child writes less than the limit and exits 0.
    Survives,
    /// The child writes far more; the kernel's OOM killer ends it with SIGKILL.
    KilledByKernel,
}

impl Claim {
    /// The `--alloc` default that goes with the claim: 3000 bytes fit in one 4 KiB page;
    /// 1 MiB is 256 pages.
    pub fn default_alloc(&self) -> u64 {
        match self {
            Claim::Survives => 3000,
            Claim::KilledByKernel => 1 << 20,
        }
    }

    /// The options' defaults for this claim and a placement's delay.
    pub fn defaults(&self, delay: Duration) -> MemoryOptions {
        MemoryOptions::defaults(self.default_alloc(), delay)
    }

    /// The outcome token the claim expects.
    pub fn token(&self) -> &'static str {
        match self {
            Claim::Survives => "exited:0",
            Claim::KilledByKernel => "killed:SIGKILL",
        }
    }

    /// Whether a child's end and the cgroup's new events bear the claim out.
    pub fn holds(&self, outcome: Outcome, events: MemoryEvents) -> bool {
        match self {
            Claim::Survives => outcome == Outcome::Exited(0),
            Claim::KilledByKernel => {
                matches!(
                    outcome,
                    Outcome::Killed {
                        signal: Signal::SIGKILL,
                        ..
                    }
                ) && events.oom_kill >= 1
            }
        }
    }
}

/// The cgroup a memory scenario runs in, with its counters as they were before the child.
pub struct MemoryCgroup {
    /// The cgroup.
    pub cgroup: Cgroup,
    /// `memory.events` before the run: a reused `--cgroup` keeps counting across runs.
    pub events_before: MemoryEvents,
}

/// Checks that this machine can run a scenario that needs `controller` and returns its
/// cgroup: `existing` if given (checked to be an empty cgroup v2 directory; kept at the end),
/// otherwise a new one under `parent` (default: the cgroup2 mount's root), after enabling the
/// controller there if needed and removing what killed runs left behind.
///
/// Every refusal happens before the first write.
pub fn prepare_cgroup(
    controller: &str,
    parent: Option<&Path>,
    existing: Option<&Path>,
) -> Result<Cgroup, Error> {
    let me = getpid();
    if !geteuid().is_root() {
        return Err(Error::cannot_run(
            "needs root to create cgroups and move processes: run it with sudo",
        ));
    }
    let mount = Cgroup2Mount::find()?;
    mount.require_controller(controller)?;
    let cgroup = match existing {
        Some(dir) => {
            let cgroup = Cgroup::existing(mount.resolve_dir(dir)?);
            let others = cgroup.processes()?;
            if !others.is_empty() {
                let first: Vec<String> = others.iter().take(5).map(|p| p.to_string()).collect();
                return Err(Error::cannot_run(format!(
                    "{} already holds {} processes ({}{}): its limits would hit them too; \
                     use an empty cgroup",
                    cgroup.path().display(),
                    others.len(),
                    first.join(" "),
                    if others.len() > 5 { " ..." } else { "" }
                )));
            }
            println!(
                "parent[{me}]: 1. using the existing cgroup {} (it will be kept)",
                cgroup.path().display()
            );
            cgroup
        }
        None => {
            let parent = mount.resolve_dir(parent.unwrap_or(&mount.path))?;
            // A run killed with SIGKILL cannot clean up after itself; the next run does.
            for stale in remove_stale(&parent) {
                match stale {
                    Stale::Removed(path) => println!(
                        "parent[{me}]: 1. removed {}, left behind by a run that no longer exists",
                        path.display()
                    ),
                    Stale::Kept(path, why) => println!(
                        "parent[{me}]: 1. {} was left behind by a run that no longer exists; \
                         kept: {why}",
                        path.display()
                    ),
                }
            }
            // A child cgroup gets the controller's files only if its parent hands it down.
            if enable_controller(&parent, controller)? {
                println!(
                    "parent[{me}]: 1. enabled the {controller} controller: wrote \"+{controller}\" to {}",
                    parent.join("cgroup.subtree_control").display()
                );
            }
            let cgroup = Cgroup::create_unique(&parent)?;
            println!(
                "parent[{me}]: 1. created cgroup {}",
                cgroup.path().display()
            );
            cgroup
        }
    };
    Ok(cgroup)
}

/// Checks that this machine can run a memory scenario and sets up its cgroup: creates one
/// under the chosen parent (enabling the memory controller there if needed) or checks the
/// `--cgroup` given, then writes `memory.max` and, where swap is accounted, `memory.swap.max`.
///
/// Every refusal happens before the first write.
pub fn prepare_memory_cgroup(options: &MemoryOptions) -> Result<MemoryCgroup, Error> {
    let me = getpid();
    let cgroup = prepare_cgroup(
        "memory",
        options.parent.as_deref(),
        options.cgroup.as_deref(),
    )?;
    if !cgroup.has_file("memory.max") {
        return Err(Error::cannot_run(format!(
            "{} has no memory.max: enable the controller for it with `echo +memory > {}`",
            cgroup.path().display(),
            cgroup
                .path()
                .parent()
                .unwrap_or(cgroup.path())
                .join("cgroup.subtree_control")
                .display()
        )));
    }
    cgroup.write("memory.max", &options.limit.to_string())?;
    // With swap, the kernel would push the child's pages out instead of killing it.
    let swap = if cgroup.has_file("memory.swap.max") {
        cgroup.write("memory.swap.max", "0")?;
        ", memory.swap.max = 0"
    } else {
        ""
    };
    println!(
        "parent[{me}]: 1. memory.max = {}{swap}",
        cgroup.read("memory.max")?.trim()
    );
    let events_before = cgroup.memory_events()?;
    Ok(MemoryCgroup {
        cgroup,
        events_before,
    })
}

/// Step 1 of every memory scenario: block SIGCHLD, SIGUSR1, SIGUSR2 and the interruptions
/// (so that none is lost, and a Ctrl-C during setup waits to be handled), prepare the cgroup,
/// and stop there if an interruption already came.
fn block_signals_and_prepare(
    options: &MemoryOptions,
) -> Result<(SignalWatch, MemoryCgroup), Error> {
    let watch = SignalWatch::install()?;
    let setup = prepare_memory_cgroup(options)?;
    if let Some(signal) = watch.pending_interruption()? {
        return Err(Error::Interrupted(signal));
    }
    Ok((watch, setup))
}

/// What the parent saw after the child ended.
struct Evidence {
    ended: Ended,
    events: MemoryEvents,
    peak: Option<u64>,
    still_charged: String,
}

/// Waits, bounded, for the child to end and prints its status. On a timeout or an
/// interruption the child is killed and reaped, and the error says which.
fn wait_child(
    me: Pid,
    child: &mut Child,
    watch: &SignalWatch,
    options: &MemoryOptions,
    step: u32,
    on_other: impl FnMut(sync::Received),
) -> Result<Ended, Error> {
    let ended = match child.wait(watch, options.timeout, on_other) {
        Ok(ended) => ended,
        Err(WaitFailure::TimedOut(ended)) => {
            println!(
                "parent[{me}]: child {} still running after {:?}; killed it: {:?}",
                child.pid(),
                options.timeout,
                ended.status
            );
            return Err(Error::Failed(format!(
                "child did not end within {:?}",
                options.timeout
            )));
        }
        Err(WaitFailure::Interrupted(signal, ended)) => {
            println!(
                "parent[{me}]: got {}; killed and reaped child {}: {:?}",
                signal.as_str(),
                child.pid(),
                ended.status
            );
            return Err(Error::Interrupted(signal));
        }
        Err(WaitFailure::Sys(e)) => return Err(e),
    };
    println!("parent[{me}]: {step}. waitpid: {:?}", ended.status);
    println!(
        "parent[{me}]:    {}: {}",
        describe_status(ended.status),
        ended.outcome
    );
    Ok(ended)
}

/// Reads the kernel's counters for this run, removes the cgroup (if ours), prints both.
fn collect_evidence(
    me: Pid,
    ended: Ended,
    setup: MemoryCgroup,
    options: &MemoryOptions,
    step: u32,
) -> Result<Evidence, Error> {
    let now = setup.cgroup.memory_events()?;
    let events = MemoryEvents {
        max: now.max.saturating_sub(setup.events_before.max),
        oom: now.oom.saturating_sub(setup.events_before.oom),
        oom_kill: now.oom_kill.saturating_sub(setup.events_before.oom_kill),
    };
    let peak = setup.cgroup.memory_peak()?;
    // What is still charged once the child is gone: its own pages are freed by then, so
    // anything left was charged for something that outlived it (kernel objects, buffers).
    let still_charged = format!(
        "memory.current {}; memory.stat: {}",
        setup.cgroup.read("memory.current")?.trim(),
        crate::cgroup::parse_flat_keyed(&setup.cgroup.read("memory.stat")?)
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("parent[{me}]: {step}. memory.events: {events}");
    match peak {
        Some(peak) => {
            println!("parent[{me}]: {step}. memory.peak: {peak} bytes");
            if peak > options.limit {
                // Seen with the signal-synced child: its "done" signal queues a sigqueue,
                // accounted to the sender's cgroup and allocated with GFP_ATOMIC, which the
                // memory controller may not refuse, so it is charged past the limit.
                println!(
                    "parent[{me}]:    (above memory.max: the kernel forced a charge it could not \
                     refuse, such as the signal the child queued after the move)"
                );
            }
        }
        None => {
            println!("parent[{me}]: {step}. memory.peak: not offered by this kernel (before 5.19)")
        }
    }
    let path = setup.cgroup.path().to_path_buf();
    if setup.cgroup.is_owned() {
        setup.cgroup.remove()?;
        println!("parent[{me}]: {}. removed {}", step + 1, path.display());
    }
    Ok(Evidence {
        ended,
        events,
        peak,
        still_charged,
    })
}

fn summarize(
    scenario: &str,
    claim: Claim,
    options: &MemoryOptions,
    evidence: &Evidence,
    extra: bool,
) -> Summary {
    let holds = claim.holds(evidence.ended.outcome, evidence.events) && extra;
    let me = getpid();
    if !holds {
        println!(
            "parent[{me}]: NOT AS CLAIMED: expected {}, the child {} (oom_kill {})",
            claim.token(),
            evidence.ended.outcome,
            evidence.events.oom_kill
        );
        println!(
            "parent[{me}]:    still charged after the child's end: {}",
            evidence.still_charged
        );
    }
    Summary::new(scenario, Verdict::of(holds))
        .field("claim", claim.token())
        .field("outcome", evidence.ended.outcome.token())
        .field("oom_kill", evidence.events.oom_kill)
        .field(
            "peak",
            evidence.peak.map_or("none".to_string(), |p| p.to_string()),
        )
        .field("limit", options.limit)
        .field("alloc", options.alloc)
}

/// "page" or "pages", without allocating (for child output).
fn pages_word(n: usize) -> &'static str {
    if n == 1 {
        "page"
    } else {
        "pages"
    }
}

/// Sleeps for `duration` unless an interruption or the child's end comes first.
fn parent_pause(watch: &SignalWatch, duration: Duration) -> Result<Option<sync::Received>, Error> {
    let deadline = Instant::now() + duration;
    loop {
        match watch.next(deadline)? {
            None => return Ok(None),
            Some(r) if r.is_interruption() || r.signal == Signal::SIGCHLD => return Ok(Some(r)),
            Some(_) => {}
        }
    }
}

/// `nanosleep` for the whole `duration`, resuming after interruptions. Async-signal-safe.
fn child_sleep(duration: Duration) {
    let mut left = libc::timespec {
        tv_sec: duration.as_secs() as libc::time_t,
        tv_nsec: duration.subsec_nanos() as libc::c_long,
    };
    loop {
        let request = left;
        // SAFETY: both pointers are to live timespecs on this stack.
        if unsafe { libc::nanosleep(&request, &mut left) } == 0 {
            return;
        }
    }
}

/// The first thing a memory-scenario child does: everything that costs memory, before the
/// move. Returns the reserved buffer, or `None` after saying why it could not.
fn child_warm_up(alloc: u64) -> Option<Reservation> {
    warm_up_stack();
    match Reservation::new(alloc as usize) {
        Ok(mut buffer) => {
            buffer.build_page_tables();
            Some(buffer)
        }
        Err(e) => {
            child_say!("child[{}]: cannot reserve {alloc} bytes: {e}", getpid());
            None
        }
    }
}

/// The delayed pair's default `--delay`: how long the child sleeps.
pub const DELAYED_DEFAULT_DELAY: Duration = Duration::from_millis(200);

/// The delayed placement: the child parks in a sleep; the parent, half-way through that sleep,
/// moves it into the cgroup; the child wakes and writes `--alloc` bytes of new memory.
pub fn delayed(scenario: &str, claim: Claim, args: &[String]) -> Result<Summary, Error> {
    let options = MemoryOptions::parse(args, claim.defaults(DELAYED_DEFAULT_DELAY))?;
    let me = getpid();

    // 1. Block SIGCHLD and the interruptions first, so that no end is missed and a Ctrl-C,
    //    even during setup, is ours to handle; refuse early if this machine cannot run the
    //    scenario; create the cgroup and set the limit.
    let (watch, setup) = block_signals_and_prepare(&options)?;

    // 2. Clone. No CLONE_* flags: an ordinary child with a copy of our memory.
    let mut stack = ChildStack::new(STACK_SIZE)?;
    let (alloc, delay) = (options.alloc, options.delay);
    let mut body = || {
        die_with_parent(me);
        let Some(mut buffer) = child_warm_up(alloc) else {
            return CHILD_SETUP_FAILED;
        };
        // 3. Parked: still in the parent's cgroup, everything paid for.
        child_say!(
            "child[{}]: 3. warmed up, reserved {alloc} bytes; sleeping {} ms",
            getpid(),
            delay.as_millis()
        );
        child_sleep(delay);
        // 5. Whatever cgroup we are in now pays for these pages.
        child_say!(
            "child[{}]: 5. awake; writing {alloc} bytes of new memory",
            getpid()
        );
        let pages = buffer.touch(alloc as usize);
        child_say!(
            "child[{}]: 6. wrote {alloc} bytes ({pages} new {}); exiting 0",
            getpid(),
            pages_word(pages)
        );
        0
    };
    // The child's sleep cannot end before `delay` after this instant.
    let before_clone = Instant::now();
    let pid = clone_child(&mut body, &mut stack, CloneFlags::empty(), Signal::SIGCHLD)?;
    let cloned = Instant::now();
    let mut child = Child::adopt(pid);
    println!("parent[{me}]: 2. clone() returned child {pid}");

    // 4. The bet on timing: after half the child's delay it should be parked. /proc shows
    //    whether it was (S = sleeping), but the move happens either way.
    let mut in_cgroup = None;
    let mut bet_won = false;
    match parent_pause(&watch, delay / 2)? {
        Some(r) if r.is_interruption() => return Err(interrupted(me, child, r.signal)),
        Some(_) => println!("parent[{me}]: 4. child {pid} ended before it was moved"),
        None => {
            let state = state_of(pid).unwrap_or('?');
            setup.cgroup.add_process(pid)?;
            in_cgroup = Some(cloned.elapsed());
            println!(
                "parent[{me}]: 4. moved child {pid} (state {state} at the move) into {}; \
                 cgroup.procs lists {:?}",
                setup.cgroup.path().display(),
                setup.cgroup.processes()?
            );
            // Won only if the child was asleep (its warm-up done) and the move was over
            // before its sleep could have ended. On a busy machine the move can come late,
            // and then a small child survives without ever having been limited.
            let moved_after = before_clone.elapsed();
            bet_won = state == 'S' && moved_after < delay;
            if !bet_won {
                println!(
                    "parent[{me}]:    the delay lost its bet: the move was over {} ms after \
                     clone, with the child in state {state}; its sleep ends {} ms after clone",
                    moved_after.as_millis(),
                    delay.as_millis()
                );
            }
        }
    }

    // 7. Wait for the end; 8.-9. the kernel's evidence; clean up.
    let ended = wait_child(me, &mut child, &watch, &options, 7, |_| {})?;
    let evidence = collect_evidence(me, ended, setup, &options, 8)?;
    Ok(summarize(scenario, claim, &options, &evidence, bet_won)
        .field("placement", "delayed")
        .field("clone_to_cgroup_us", micros(in_cgroup))
        .field("bet", if bet_won { "won" } else { "lost" }))
}

/// Microseconds for a summary field, or `none` if the child was never moved.
fn micros(duration: Option<Duration>) -> String {
    duration.map_or("none".to_string(), |d| d.as_micros().to_string())
}

/// Kills and reaps `child` after an interruption and says so: the error path of Ctrl-C.
fn interrupted(me: Pid, child: Child, signal: Signal) -> Error {
    let pid = child.pid();
    drop(child);
    println!(
        "parent[{me}]: got {}; killed and reaped child {pid}",
        signal.as_str()
    );
    Error::Interrupted(signal)
}

/// The signal-synced placement: the child warms up, sends SIGUSR2 ("ready") and waits for
/// SIGUSR1; the parent moves it and sends SIGUSR1 ("moved"); the child writes `--alloc` bytes
/// and sends SIGUSR2 again ("done").
pub fn signal_synced(scenario: &str, claim: Claim, args: &[String]) -> Result<Summary, Error> {
    let options = MemoryOptions::parse(args, claim.defaults(Duration::ZERO))?;
    let me = getpid();

    // 1. Block SIGUSR1, SIGUSR2, SIGCHLD and the interruptions *before* clone: the child
    //    inherits the mask, so a signal sent before its receiver waits stays pending instead
    //    of being lost (or killing it: the default action of SIGUSR1 is to terminate). Then
    //    refuse early if this machine cannot run the scenario; create the cgroup.
    let (watch, setup) = block_signals_and_prepare(&options)?;
    println!(
        "parent[{me}]: 2. SIGUSR1, SIGUSR2 and SIGCHLD are blocked; the child inherits the mask"
    );
    let mut stack = ChildStack::new(STACK_SIZE)?;
    let (alloc, timeout) = (options.alloc, options.timeout);
    let mut go = SigSet::empty();
    go.add(PARENT_TO_CHILD);
    let mut body = || {
        die_with_parent(me);
        let Some(mut buffer) = child_warm_up(alloc) else {
            return CHILD_SETUP_FAILED;
        };
        child_say!(
            "child[{}]: 3. warmed up, reserved {alloc} bytes; SIGUSR2 to {me}: ready",
            getpid()
        );
        if sync::send(me, CHILD_TO_PARENT).is_err() {
            return CHILD_SETUP_FAILED;
        }
        // 5. Bounded: a parent that never answers does not leave us waiting forever.
        match sync::wait_signal(&go, Instant::now() + timeout) {
            Ok(Some(_)) => {}
            _ => {
                child_say!(
                    "child[{}]: no SIGUSR1 within {} s; giving up",
                    getpid(),
                    timeout.as_secs()
                );
                return CHILD_SETUP_FAILED;
            }
        }
        child_say!(
            "child[{}]: 5. got SIGUSR1: moved; writing {alloc} bytes of new memory",
            getpid()
        );
        let pages = buffer.touch(alloc as usize);
        child_say!(
            "child[{}]: 6. wrote {alloc} bytes ({pages} new {}); SIGUSR2: done",
            getpid(),
            pages_word(pages)
        );
        if sync::send(me, CHILD_TO_PARENT).is_err() {
            return CHILD_SETUP_FAILED;
        }
        0
    };
    let pid = clone_child(&mut body, &mut stack, CloneFlags::empty(), Signal::SIGCHLD)?;
    let cloned = Instant::now();
    let mut child = Child::adopt(pid);
    println!("parent[{me}]: 2. clone() returned child {pid}");

    // 4. Wait for "ready" (bounded), let the child wait --delay ms to show that the timing no
    //    longer matters, move it, say "go".
    let deadline = Instant::now() + options.timeout;
    let mut in_cgroup = None;
    let ready = match watch.expect(CHILD_TO_PARENT, pid, deadline)? {
        Some(r) if r.signal == CHILD_TO_PARENT => true,
        Some(r) if r.is_interruption() => return Err(interrupted(me, child, r.signal)),
        Some(_) => {
            println!("parent[{me}]: 4. child {pid} ended before it said ready; not moved");
            false
        }
        None => {
            let ended = kill_and_reap(pid).map_err(WaitFailure::into_error)?;
            child.mark_reaped();
            println!(
                "parent[{me}]: 4. no ready signal from {pid} within {:?}; killed it: {:?}",
                options.timeout, ended.status
            );
            return Err(Error::Failed(format!(
                "child {pid} never said ready within {:?}",
                options.timeout
            )));
        }
    };
    if ready {
        println!("parent[{me}]: 4. got SIGUSR2 from {pid}: ready");
        let early_end = if options.delay.is_zero() {
            None
        } else {
            println!(
                "parent[{me}]: 4. keeping it waiting {} ms",
                options.delay.as_millis()
            );
            parent_pause(&watch, options.delay)?
        };
        match early_end {
            Some(r) if r.is_interruption() => return Err(interrupted(me, child, r.signal)),
            Some(_) => println!("parent[{me}]: 4. child {pid} ended while it waited; not moved"),
            None => {
                setup.cgroup.add_process(pid)?;
                in_cgroup = Some(cloned.elapsed());
                println!(
                    "parent[{me}]: 4. moved it into {}; cgroup.procs lists {:?}; SIGUSR1 to {pid}",
                    setup.cgroup.path().display(),
                    setup.cgroup.processes()?
                );
                sync::send(pid, PARENT_TO_CHILD)?;
            }
        }
    }

    // 7. Wait for the end, noting whether "done" arrived before it.
    let mut done = false;
    let mut note_done = |r: sync::Received| {
        if r.signal == CHILD_TO_PARENT && r.sender == pid {
            done = true;
        }
    };
    let ended = wait_child(me, &mut child, &watch, &options, 7, &mut note_done)?;
    // The child may have ended before the wait loop read its "done": it is still pending.
    while let Some(r) = watch.next(Instant::now())? {
        note_done(r);
    }
    println!(
        "parent[{me}]:    done signal (SIGUSR2) from the child: {}",
        if done { "arrived" } else { "never came" }
    );

    // 8.-9. The kernel's evidence; clean up.
    let evidence = collect_evidence(me, ended, setup, &options, 8)?;
    let extra = match claim {
        Claim::Survives => done,
        Claim::KilledByKernel => true,
    };
    Ok(summarize(scenario, claim, &options, &evidence, extra)
        .field("placement", "signal")
        .field("clone_to_cgroup_us", micros(in_cgroup))
        .field("done_signal", done))
}

/// The clone3 placement: `clone3` with `CLONE_INTO_CGROUP` starts the child inside the cgroup,
/// so there is nothing to time and nothing to synchronise; `CLONE_PIDFD` gives a pidfd that
/// the parent polls and then reaps with `waitid(P_PIDFD)`.
///
/// Born in the cgroup, the child is charged from its first instruction, so it runs on a
/// stack that costs it nothing ([`Reservation::with_shared_stack`]) and writes only its
/// buffer and one line of output.
pub fn clone3_into_cgroup(scenario: &str, claim: Claim, args: &[String]) -> Result<Summary, Error> {
    use crate::clone3::{clone3_child_on_stack, CloneArgs};

    let options = MemoryOptions::parse(args, claim.defaults(Duration::ZERO))?;
    let me = getpid();

    // 1. Block SIGCHLD and the interruptions; refuse early; create the cgroup, set the limit.
    let (watch, setup) = block_signals_and_prepare(&options)?;

    // 2. Everything the child will use is prepared, and paid for, here: its stack (shared,
    //    written now), its buffer's page tables. The cgroup is named by an open directory.
    let mut buffer = Reservation::with_shared_stack(options.alloc as usize, CLONE3_STACK_SIZE)?;
    buffer.build_page_tables();
    let stack = buffer.shared_stack().expect("a shared stack was asked for");
    let cgroup_dir = std::fs::File::open(setup.cgroup.path()).map_err(|e| {
        Error::io(
            &format!("failed to open {}", setup.cgroup.path().display()),
            e,
        )
    })?;
    let clone_args = CloneArgs::new(Signal::SIGCHLD)
        .pidfd()
        .into_cgroup(&cgroup_dir);
    println!(
        "parent[{me}]: 2. clone3(flags = CLONE_PIDFD | CLONE_INTO_CGROUP = {:#x}, cgroup = fd {})",
        clone_args.flags(),
        std::os::fd::AsRawFd::as_raw_fd(&cgroup_dir)
    );
    let alloc = options.alloc;
    let mut body = || {
        // 3. Born in the cgroup: no parking, no signal. This line and the buffer are all it
        //    writes.
        child_say!(
            "child[{}]: 3. born in the cgroup; writing {alloc} bytes of new memory",
            getpid()
        );
        let pages = buffer.touch(alloc as usize);
        child_say!(
            "child[{}]: 4. wrote {alloc} bytes ({pages} new {}); exiting 0",
            getpid(),
            pages_word(pages)
        );
        0
    };
    // SAFETY: single-threaded parent (the library's binaries start no threads); the child
    // runs on the 64 KiB shared stack, writes only that stack and the buffer, and returns.
    let mut child = unsafe { clone3_child_on_stack(&clone_args, stack, &mut body)? };
    let pid = child.pid();
    println!(
        "parent[{me}]: 2. clone3 returned child {pid} and pidfd {}; /proc/{pid}/cgroup says {}",
        child
            .pidfd()
            .map_or(-1, |fd| std::os::fd::AsRawFd::as_raw_fd(&fd)),
        crate::cgroup::cgroup_of(pid).unwrap_or_else(|_| "(gone)".into())
    );

    // 5. poll() the pidfd until it is readable (the child has ended), then waitid(P_PIDFD).
    let ended = match child.wait(&watch, options.timeout) {
        Ok(ended) => ended,
        Err(WaitFailure::Interrupted(signal, ended)) => {
            println!(
                "parent[{me}]: got {}; killed and reaped child {pid}: {:?}",
                signal.as_str(),
                ended.status
            );
            return Err(Error::Interrupted(signal));
        }
        Err(failure) => return Err(failure.into_error()),
    };
    println!(
        "parent[{me}]: 5. poll: pidfd readable; waitid(P_PIDFD): {:?}",
        ended.status
    );
    println!(
        "parent[{me}]:    {}: {}",
        describe_status(ended.status),
        ended.outcome
    );

    // 6.-7. The kernel's evidence; clean up.
    let evidence = collect_evidence(me, ended, setup, &options, 6)?;
    // Born there: zero time outside the cgroup.
    Ok(summarize(scenario, claim, &options, &evidence, true)
        .field("placement", "clone3")
        .field("clone_to_cgroup_us", 0))
}

/// The clone3 child's stack: a line of output and a loop need little.
const CLONE3_STACK_SIZE: usize = 64 << 10;
