//! clone_waitpid_cgroup_memory: the delayed placement, with a child that needs less than 4 KiB.
//!
//! Usage: `cargo sudo-run --bin clone_waitpid_cgroup_memory -- [OPTIONS]` (see `--help`)
//!
//! The parent creates a cgroup with memory.max = 4096 and clones a child. The child warms up
//! (its first output, its stack, the page tables of a 3000-byte buffer), then sleeps 200 ms;
//! half-way through, the parent moves it into the cgroup. The child wakes and writes its
//! 3000 bytes: one new page, which fits. Expect `waitpid: Exited(Pid(N), 0)`,
//! `memory.events: max 0 oom 0 oom_kill 0`, `memory.peak: 4096 bytes`, exit status 0.
//!
//! The delay is a bet on timing: the move must land after the warm-up and before the
//! writes. The parent judges its bet after the child's end. The child must have been asleep
//! (state S) at the move; then the kernel's own evidence decides: a page charged in the
//! cgroup (memory.peak above 0) or an OOM kill there shows that the move came before the
//! writes. Only where the kernel keeps no such evidence (no memory.peak before 5.19, and no
//! OOM kill) does the clock decide: the move must have been done before the child's sleep
//! could end. A lost bet ends not as claimed (`bet=lost`, exit 1), as it can on a busy
//! machine, and says why; where clock and kernel disagree, it says that too.
//! clone_wait_signal_cgroup_memory removes the bet. This file is also the story of
//! clone_waitpid_cgroup_memory_fail, whose child writes 1 MiB.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clone_cgroup::cgroup::MemoryEvidence;
use clone_cgroup::child_say;
use clone_cgroup::cli::{
    Claim, LimitedCgroup, MemoryOptions, Scenario, Summary, MEMORY_OPTIONS_HELP,
};
use clone_cgroup::memory::{
    self, pages_word, ChildStack, CHILD_SETUP_FAILED, MOVED_CHILD_STACK_SIZE,
};
use clone_cgroup::process::{clone_child, describe_status, die_with_parent};
use clone_cgroup::procfs;
use clone_cgroup::say;
use clone_cgroup::sync::SignalWatch;
use clone_cgroup::Error;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::{getpid, Pid};

pub const SCENARIO: Scenario = Scenario {
    name: "clone_waitpid_cgroup_memory",
    about: "A child parks in a sleep; the parent moves it into a cgroup with memory.max=4096;\n\
            the child then writes 3000 bytes of new memory and exits 0.",
    options: MEMORY_OPTIONS_HELP,
};

/// How long the child sleeps after its warm-up unless `--delay` says otherwise.
const DEFAULT_DELAY: Duration = Duration::from_millis(200);

// `pub`, like SCENARIO: clone_waitpid_cgroup_memory_fail holds this file as its module `story`.
pub fn main() -> ExitCode {
    SCENARIO.main(|args| run(SCENARIO.name, Claim::Survives, args))
}

/// The delayed move as the parent made it.
struct Move {
    /// The child's state letter just before the write to `cgroup.procs`: `S` if it was asleep,
    /// parked in its delay.
    state: String,
    /// From just before `clone` to the return of the write to `cgroup.procs`: the child's
    /// sleep cannot end before `delay` after the same instant. The summary's
    /// `clone_to_cgroup_us` is this span.
    done_after: Duration,
    /// Whether `cgroup.procs` listed the child after the write. A process that has begun to
    /// exit is neither moved nor listed (kernel/cgroup/cgroup.c: cgroup_migrate_add_task skips
    /// a PF_EXITING task, and the iterator of cgroup.procs a dying leader).
    took_hold: bool,
}

/// The delayed placement's bet on timing, judged once the child has ended.
struct Bet {
    won: bool,
    /// Why, in the words of step 8.
    why: String,
}

/// Judges the bet: the move must have come while the child was parked, after its warm-up and
/// before its writes. The kernel's evidence decides where it has any; the clock only where it
/// has none; a disagreement between the two is said.
fn judge_bet(moved: Option<&Move>, delay: Duration, evidence: &MemoryEvidence) -> Bet {
    let lost = |why: &str| Bet { won: false, why: why.to_string() };
    let Some(moved) = moved else {
        return lost("the child ended before it could be moved: it was never limited");
    };
    if !moved.took_hold {
        return lost("the child had begun to exit when it was moved: it was never limited");
    }
    let (state, ms, delay_ms) = (&moved.state, moved.done_after.as_millis(), delay.as_millis());
    if state != "S" {
        return lost(&format!(
            "the child was not asleep but in state {state} when it was moved: the move came \
             before it parked, so its warm-up may have been charged in the cgroup"
        ));
    }
    let in_time = moved.done_after < delay;
    let clock = if in_time {
        format!("the move was done {ms} ms after clone, before the {delay_ms} ms sleep could end")
    } else {
        format!(
            "the move was done {ms} ms after clone, when the {delay_ms} ms sleep could have ended"
        )
    };
    // Charges do not move: whatever the cgroup counts was charged after the move.
    let kernel = if evidence.events.oom_kill >= 1 {
        Some((true, format!("oom_kill {}", evidence.events.oom_kill)))
    } else {
        evidence.peak.map(|peak| (peak > 0, format!("memory.peak {peak}")))
    };
    match kernel {
        Some((won, seen)) => {
            // "and" where clock and kernel agree, "but" where they do not.
            let joint = if won == in_time { "and" } else { "but" };
            let what = if won {
                "charged the child's writes in the cgroup".to_string()
            } else {
                format!("charged nothing in the cgroup ({seen}): the writes came first")
            };
            let seen = if won { format!(" ({seen})") } else { String::new() };
            Bet { won, why: format!("{clock}, {joint} the kernel {what}{seen}") }
        }
        None => Bet {
            won: in_time,
            why: format!("{clock} (judged by the clock: this kernel keeps no memory.peak)"),
        },
    }
}

/// The child's side of the story (steps 3, 5 and 6), under the rule for child code. It ends
/// with 0, or with [`CHILD_SETUP_FAILED`] where it could not reserve its buffer (and says so).
fn child_side(parent: Pid, alloc: usize, delay: Duration) -> i32 {
    die_with_parent(parent);
    let me = getpid();
    // 3. Everything that costs memory, while still in the parent's cgroup; then park.
    let mut buffer = match memory::warm_up(alloc) {
        Ok(buffer) => buffer,
        Err(e) => {
            child_say!("child[{me}]: cannot reserve {alloc} bytes: {e}");
            return CHILD_SETUP_FAILED;
        }
    };
    child_say!(
        "child[{me}]: 3. warmed up, reserved {alloc} bytes; sleeping {} ms",
        delay.as_millis()
    );
    std::thread::sleep(delay);
    // 5. Whatever cgroup we are in now pays for these pages.
    child_say!("child[{me}]: 5. awake; writing {alloc} bytes of new memory");
    let pages = buffer.touch(alloc);
    // 6. (Only a child that fits gets here.)
    child_say!(
        "child[{me}]: 6. wrote {alloc} bytes ({pages} new {}); exiting 0",
        pages_word(pages)
    );
    0
}

/// The story, for the small child and (from clone_waitpid_cgroup_memory_fail) the big one.
pub fn run(scenario: &str, claim: Claim, args: &[String]) -> Result<Summary, Error> {
    let options = MemoryOptions::parse(args, claim.defaults(DEFAULT_DELAY))?;
    let (alloc, delay) = (options.alloc, options.delay);
    let me = getpid();

    // 1. Block SIGCHLD and the interruptions first, so that no end is missed and a Ctrl-C,
    //    even during setup, is ours to handle. Refuse early if this machine cannot run the
    //    scenario; create the cgroup and set its limit.
    let watch = SignalWatch::install()?;
    let LimitedCgroup { cgroup, notes, events_before } = options.limited_cgroup()?;
    for note in notes {
        say!("parent[{me}]: 1. {note}");
    }
    watch.stop_if_interrupted()?;

    // 2. Clone. No CLONE_* flags: an ordinary child with a copy of our memory. Its sleep
    //    cannot end before `delay` after this instant.
    let mut stack = ChildStack::new(MOVED_CHILD_STACK_SIZE)?;
    let mut body = || child_side(me, alloc as usize, delay);
    let before_clone = Instant::now();
    let mut child = clone_child(&mut body, &mut stack, CloneFlags::empty(), Signal::SIGCHLD)?;
    let pid = child.pid();
    say!("parent[{me}]: 2. clone() returned child {pid}");

    // 4. The bet on timing: after half the child's delay it should be parked (S, sleeping).
    //    Write its pid to cgroup.procs: from now on its new pages are charged there.
    let mut moved = None;
    if child.still_running_after(&watch, delay / 2)? {
        let state = procfs::state_word(pid);
        cgroup.add_process(pid)?;
        let done_after = before_clone.elapsed();
        let listed = cgroup.processes()?;
        let took_hold = listed.contains(&pid);
        let ms = done_after.as_millis();
        if took_hold {
            say!(
                "parent[{me}]: 4. moved child {pid} (state {state} at the move) into {}, {ms} ms \
                 after clone; cgroup.procs lists {listed:?}",
                cgroup.path().display()
            );
        } else {
            say!(
                "parent[{me}]: 4. wrote child {pid} (state {state}) to cgroup.procs {ms} ms after \
                 clone, but the cgroup does not list it: it had begun to exit, and an exiting \
                 process is not moved"
            );
        }
        moved = Some(Move { state, done_after, took_hold });
    } else {
        say!("parent[{me}]: 4. child {pid} ended before it was moved: it was never limited");
    }

    // 7. Wait for the end, bounded; on the deadline or a Ctrl-C the child is killed and reaped.
    let ended = child.wait(&watch, options.timeout, |_| {})?;
    say!("parent[{me}]: 7. waitpid: {:?}", ended.status);
    say!("parent[{me}]:    {}: {}", describe_status(ended.status), ended.outcome);

    // 8. The kernel's own evidence: how often the limit was hit, whether the OOM killer
    //    acted, the most the cgroup ever held.
    let evidence = cgroup.memory_evidence(ended, events_before)?;
    say!("parent[{me}]: 8. memory.events: {}", evidence.events);
    say!("parent[{me}]: 8. memory.peak: {}", evidence.peak_text());
    //    And what they say of the bet: won only if the move came after the warm-up and
    //    before the writes.
    let bet = judge_bet(moved.as_ref(), delay, &evidence);
    let verb = if bet.won { "won" } else { "lost" };
    say!("parent[{me}]: 8. the delay {verb} its bet: {}", bet.why);

    // 9. Remove the cgroup (if it is ours): it is empty now that the child is reaped.
    if let Some(path) = cgroup.remove()? {
        say!("parent[{me}]: 9. removed {}", path.display());
    }
    let in_cgroup = moved.filter(|m| m.took_hold).map(|m| m.done_after.as_micros());
    let placement_failed = (!bet.won).then_some("the delay lost its bet (step 8)");
    Ok(claim
        .summary(scenario, &options, &evidence, placement_failed)
        .field("placement", "delayed")
        .field("clone_to_cgroup_us", in_cgroup.map_or("none".into(), |us| us.to_string()))
        .field("bet", verb))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clone_cgroup::cgroup::MemoryEvents;
    use clone_cgroup::process::{Ended, Outcome};
    use nix::sys::wait::WaitStatus;

    fn evidence(oom_kill: u64, peak: Option<u64>) -> MemoryEvidence {
        let status = WaitStatus::Exited(Pid::from_raw(2), 0);
        MemoryEvidence {
            ended: Ended { status, outcome: Outcome::Exited(0) },
            events: MemoryEvents { max: 0, oom: 0, oom_kill },
            peak,
            still_charged: String::new(),
        }
    }

    fn judge(state: char, ms: u64, oom_kill: u64, peak: Option<u64>) -> (bool, String) {
        let done_after = Duration::from_millis(ms);
        let moved = Move { state: state.to_string(), done_after, took_hold: true };
        let bet = judge_bet(Some(&moved), Duration::from_millis(200), &evidence(oom_kill, peak));
        (bet.won, bet.why)
    }

    #[test]
    fn the_kernels_evidence_decides_and_a_disagreeing_clock_is_said() {
        let (won, why) = judge('S', 120, 0, Some(4096));
        assert!(won, "{why}");
        assert!(why.contains("before the 200 ms sleep could end, and the kernel charged"), "{why}");
        // Late by the clock, but the page was charged in the cgroup: won, and says "but".
        let (won, why) = judge('S', 240, 0, Some(4096));
        assert!(won, "{why}");
        assert!(why.contains("could have ended, but the kernel charged the child's writes"));
        let (won, why) = judge('S', 240, 1, Some(4096));
        assert!(won && why.ends_with("(oom_kill 1)"), "{why}");
        // In time by the clock, yet nothing charged: lost, and says "but".
        let (won, why) = judge('S', 120, 0, Some(0));
        assert!(!won, "{why}");
        assert!(why.contains("but the kernel charged nothing in the cgroup (memory.peak 0)"));
        let (won, why) = judge('S', 240, 0, Some(0));
        assert!(!won && why.contains(", and the kernel charged nothing"), "{why}");
    }

    #[test]
    fn without_memory_peak_the_clock_decides_and_a_busy_child_loses() {
        assert!(judge('S', 120, 0, None).0);
        let (won, why) = judge('S', 240, 0, None);
        assert!(!won && why.contains("judged by the clock"), "{why}");
        let (won, why) = judge('R', 120, 0, Some(4096));
        assert!(!won && why.contains("not asleep but in state R"), "{why}");
    }

    #[test]
    fn a_child_that_was_never_limited_loses_the_bet_and_says_so() {
        let moved = Move { state: "R".into(), done_after: Duration::ZERO, took_hold: false };
        let delay = Duration::from_millis(2);
        let bet = judge_bet(Some(&moved), delay, &evidence(0, Some(0)));
        assert!(!bet.won && bet.why.ends_with("it was never limited"), "{}", bet.why);
        let bet = judge_bet(None, delay, &evidence(0, Some(0)));
        assert!(!bet.won && bet.why.contains("ended before it could be moved"), "{}", bet.why);
    }
}
