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

use clone_cgroup::cgroup::{self, MemoryEvidence};
use clone_cgroup::child_say;
use clone_cgroup::cli::{Claim, MemoryOptions, Scenario, Summary, MEMORY_OPTIONS_HELP};
use clone_cgroup::memory::{self, pages_word, ChildStack, MOVED_CHILD_STACK_SIZE};
use clone_cgroup::process::{clone_child, describe_status, die_with_parent};
use clone_cgroup::procfs;
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

/// The exit status of a child whose own setup failed (it says why): BSD's EX_SOFTWARE.
const CHILD_SETUP_FAILED: i32 = 70;

// `pub`, like SCENARIO: clone_waitpid_cgroup_memory_fail holds this file as its module `story`.
pub fn main() -> ExitCode {
    SCENARIO.main(|args| run(SCENARIO.name, Claim::Survives, args))
}

/// The delayed move as the parent made it: what it saw just before, and when it was done.
struct Move {
    /// The child's state letter just before the write to `cgroup.procs`.
    state: String,
    /// From just before `clone` to the return of the write to `cgroup.procs`: the child's
    /// sleep cannot end before `delay` after the same instant.
    done_after: Duration,
}

/// Whether the bet was won, and the words that say why. The kernel's evidence decides where
/// it has any; the clock only where it has none; a disagreement between the two is said.
fn judge_bet(moved: &Move, delay: Duration, evidence: &MemoryEvidence) -> (bool, String) {
    let (state, ms, delay_ms) = (&moved.state, moved.done_after.as_millis(), delay.as_millis());
    if state != "S" {
        return (false, format!("the child was in state {state}, not asleep, when it was moved"));
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
            (won, format!("{clock}, {joint} the kernel {what}{seen}"))
        }
        None => {
            (in_time, format!("{clock} (judged by the clock: this kernel keeps no memory.peak)"))
        }
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
    let (cgroup, notes) =
        cgroup::prepare("memory", options.parent.as_deref(), options.cgroup.as_deref())?;
    for note in notes {
        println!("parent[{me}]: 1. {note}");
    }
    println!("parent[{me}]: 1. {}", cgroup.limit_memory(options.limit)?);
    let events_before = cgroup.memory_events()?;
    watch.stop_if_interrupted()?;

    // 2. Clone. No CLONE_* flags: an ordinary child with a copy of our memory. Its sleep
    //    cannot end before `delay` after this instant.
    let mut stack = ChildStack::new(MOVED_CHILD_STACK_SIZE)?;
    let mut body = || child_side(me, alloc as usize, delay);
    let before_clone = Instant::now();
    let mut child = clone_child(&mut body, &mut stack, CloneFlags::empty(), Signal::SIGCHLD)?;
    let cloned = Instant::now();
    let pid = child.pid();
    println!("parent[{me}]: 2. clone() returned child {pid}");

    // 4. The bet on timing: after half the child's delay it should be parked (S, sleeping).
    //    Write its pid to cgroup.procs: from now on its new pages are charged there.
    let (mut moved, mut in_cgroup) = (None, None);
    if child.still_running_after(&watch, delay / 2)? {
        let state = procfs::state_word(pid);
        cgroup.add_process(pid)?;
        let done_after = before_clone.elapsed();
        in_cgroup = Some(cloned.elapsed());
        println!(
            "parent[{me}]: 4. moved child {pid} (state {state} at the move) into {}; \
             cgroup.procs lists {:?}",
            cgroup.path().display(),
            cgroup.processes()?
        );
        moved = Some(Move { state, done_after });
    } else {
        println!("parent[{me}]: 4. child {pid} ended before it was moved");
    }

    // 7. Wait for the end, bounded; on the deadline or a Ctrl-C the child is killed and reaped.
    let ended = child.wait(&watch, options.timeout, |_| {})?;
    println!("parent[{me}]: 7. waitpid: {:?}", ended.status);
    println!("parent[{me}]:    {}: {}", describe_status(ended.status), ended.outcome);

    // 8. The kernel's own evidence: how often the limit was hit, whether the OOM killer
    //    acted, the most the cgroup ever held.
    let evidence = cgroup.memory_evidence(ended, events_before)?;
    println!("parent[{me}]: 8. memory.events: {}", evidence.events);
    println!("parent[{me}]: 8. memory.peak: {}", evidence.peak_text());
    //    And what they say of the bet: won only if the move came after the warm-up and
    //    before the writes.
    let (bet_won, why) = match &moved {
        Some(moved) => judge_bet(moved, delay, &evidence),
        None => (false, "the child ended before it was moved".to_string()),
    };
    let bet = if bet_won { "the delay won its bet" } else { "the delay lost its bet" };
    println!("parent[{me}]: 8. {bet}: {why}");

    // 9. Remove the cgroup (if it is ours): it is empty now that the child is reaped.
    if let Some(path) = cgroup.remove()? {
        println!("parent[{me}]: 9. removed {}", path.display());
    }
    Ok(claim
        .summary(scenario, &options, &evidence, bet_won)
        .field("placement", "delayed")
        .field("clone_to_cgroup_us", in_cgroup.map_or("none".into(), |d| d.as_micros().to_string()))
        .field("bet", if bet_won { "won" } else { "lost" }))
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
        let moved = Move { state: state.to_string(), done_after: Duration::from_millis(ms) };
        judge_bet(&moved, Duration::from_millis(200), &evidence(oom_kill, peak))
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
        assert!(!won && why.contains("state R, not asleep"), "{why}");
    }
}
