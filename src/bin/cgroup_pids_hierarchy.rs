//! cgroup_pids_hierarchy: the rules of the pids controller, from its documentation, shown on
//! the kernel.
//!
//! Usage: `cargo sudo-run --bin cgroup_pids_hierarchy`
//!
//! A parent cgroup with pids.max = 2 and a child cgroup under it whose own pids.max is `max`
//! (step 1). A manager born in the child cgroup forks until it cannot: the parent's limit
//! binds the child cgroup, and fork #2 fails with EAGAIN (2). Moving processes in is never
//! refused: two more written to cgroup.procs make pids.current 4, above pids.max 2 (3). With
//! the count above the limit, every fork fails (4). pids.events counts the refusals: where the
//! kernel has pids.events.local (6.11 and later), in the cgroup whose limit refused them (the
//! parent), before that in the cgroup where the fork was tried (the child) (5). Threads count as
//! tasks: a process of three threads moved into a fresh cgroup makes pids.current 3 (6).
//!
//! Expect `fork #2 failed: EAGAIN`, `pids.current = 4` with `pids.max = 2`, a refused fork
//! at 4, `max` events counted, `pids.current = 3` for three threads; exit status 0.

use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clone_cgroup::cgroup::{self, Cgroup};
use clone_cgroup::child_say;
use clone_cgroup::cli::{no_options, Scenario, Summary, Verdict};
use clone_cgroup::clone3::{clone3_child, CloneArgs};
use clone_cgroup::process::{die_with_parent, fork_child, Child, Waited};
use clone_cgroup::say;
use clone_cgroup::sync::{self, SignalWatch, CHILD_TO_PARENT, PARENT_TO_CHILD};
use clone_cgroup::Error;
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::{getpid, Pid};

const SCENARIO: Scenario = Scenario {
    name: "cgroup_pids_hierarchy",
    about:
        "The pids controller's rules: a parent's pids.max binds its children, moving in is never\n\
            refused, a count above the limit stops every fork, pids.events counts, threads count.",
    options: "",
};

/// How long anything here may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The parent cgroup's limit.
const PARENT_MAX: u64 = 2;
/// The threads of the process of step 5 (its main thread included).
const THREADS: u64 = 3;

/// `--hold-threads`: what this program is when step 5 runs it: a process of THREADS threads
/// that waits to be killed.
fn hold_threads() -> ExitCode {
    for _ in 1..THREADS {
        std::thread::spawn(|| std::thread::sleep(TIMEOUT));
    }
    say!("holding {THREADS} threads");
    std::thread::sleep(TIMEOUT);
    ExitCode::SUCCESS
}

/// The `max` counter of a pids.events file, or `None` where the kernel has no such file.
fn max_events(cgroup: &Cgroup, file: &str) -> Result<Option<u64>, Error> {
    if !cgroup.has_file(file) {
        return Ok(None);
    }
    Ok(Some(cgroup.read_keyed(file, "max")?.unwrap_or(0)))
}

fn shown(events: Option<u64>) -> String {
    events.map_or("not offered by this kernel".into(), |n| format!("max {n}"))
}

/// A process of ours that sleeps until it is killed (a Child: killed and reaped when dropped).
fn sleeper() -> Result<Child, Error> {
    let deadline = Instant::now() + TIMEOUT;
    let me = getpid();
    fork_child(move || {
        die_with_parent(me);
        sleep_until(deadline)
    })
}

/// How the manager's forks came to an end.
enum ForksEnded {
    /// The kernel refused one, with this errno.
    Refused(Errno),
    /// More children than the list has room for: the limit did not bind.
    LimitDidNotBind,
    /// The library would not fork (see the crate's rule: this process has threads).
    NotForked,
}

/// The manager's side of the story (steps 2 and 4), under the rule for child code: it forks
/// until the kernel refuses, tells `parent`, and when told tries once more. `children` was
/// allocated by the parent; more children than it has room for would mean the limit did not
/// bind, and the manager stops there rather than let a push allocate. It exits 0 if both
/// refusals were EAGAIN.
fn manager(parent: Pid, mut children: Vec<Child>, deadline: Instant) -> i32 {
    die_with_parent(parent);
    let me = getpid();
    let fork_one = || fork_child(|| sleep_until(deadline));
    let ended = loop {
        match fork_one() {
            Ok(child) if children.len() < children.capacity() => {
                let pid = child.pid();
                children.push(child);
                child_say!("manager[{me}]: 2. fork #{} -> {pid}", children.len());
            }
            // Dropped, the child is killed and reaped.
            Ok(_) => break ForksEnded::LimitDidNotBind,
            Err(Error::Sys { errno, .. }) => break ForksEnded::Refused(errno),
            Err(_) => break ForksEnded::NotForked,
        }
    };
    let n = children.len() + 1;
    match ended {
        ForksEnded::Refused(errno) => child_say!("manager[{me}]: 2. fork #{n} failed: {errno:?}"),
        ForksEnded::LimitDidNotBind => {
            child_say!("manager[{me}]: 2. fork #{n} succeeded: the limit did not bind")
        }
        ForksEnded::NotForked => child_say!("manager[{me}]: 2. fork_child refused fork #{n}"),
    }
    let _ = sync::send(parent, CHILD_TO_PARENT);
    // 4. Told again after the move: with the count above the limit, one more try.
    sync::wait_for(PARENT_TO_CHILD, deadline.saturating_duration_since(Instant::now()));
    let again = fork_one();
    let refused_again = matches!(again, Err(Error::Sys { errno: Errno::EAGAIN, .. }));
    let said = match again {
        Ok(_) => "a child",
        Err(_) if refused_again => "EAGAIN",
        Err(_) => "another error",
    };
    child_say!("manager[{me}]: 4. with the count above the limit, fork: {said}");
    // Each Child dropped is killed and reaped; clear() keeps the buffer, so nothing is freed.
    children.clear();
    i32::from(!(matches!(ended, ForksEnded::Refused(Errno::EAGAIN)) && refused_again))
}

/// A child's whole life: sleep until `deadline`, unless killed first.
fn sleep_until(deadline: Instant) -> i32 {
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    0
}

/// Starts this program again with `--hold-threads` (a process of [`THREADS`] threads), moves
/// it into `cgroup` once it says it holds them, and returns the cgroup's `pids.current`.
fn tasks_counted_for_a_threaded_process(cgroup: &Cgroup) -> Result<u64, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::io("failed to find this program", e))?;
    let mut holder = Command::new(&exe)
        .arg("--hold-threads")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(&format!("failed to run {}", exe.display()), e))?;
    let holder_pid = Pid::from_raw(holder.id() as i32);
    let mut line = String::new();
    let read = std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().expect("piped")),
        &mut line,
    );
    // No `?` until the holder is killed: it would be left running.
    let threads = match read {
        Ok(_) => cgroup.add_process(holder_pid).and_then(|()| cgroup.read_counter("pids.current")),
        Err(e) => Err(Error::io("failed to read from the thread holder", e)),
    };
    let _ = holder.kill();
    let _ = holder.wait();
    threads
}

fn run(args: &[String]) -> Result<Summary, Error> {
    no_options(args)?;
    let me = getpid();
    let watch = SignalWatch::install()?;

    // 1. The parent cgroup (pids.max = 2) and a child cgroup in it (pids.max = max).
    let (parent, notes) = cgroup::prepare("pids-parent", "pids", None, None)?;
    for note in notes {
        say!("parent[{me}]: 1. {note}");
    }
    parent.write("pids.max", &PARENT_MAX.to_string())?;
    parent.write("cgroup.subtree_control", "+pids")?;
    let (child_cgroup, _) = cgroup::prepare("pids-child", "pids", Some(parent.path()), None)?;
    say!(
        "parent[{me}]: 1. {} pids.max = {}; {} pids.max = {}",
        parent.path().display(),
        parent.read("pids.max")?.trim(),
        child_cgroup.path().display(),
        child_cgroup.read("pids.max")?.trim()
    );

    // 2. A manager born in the child cgroup forks until the kernel refuses; then it tells us
    //    and, when told, tries once more. Its children list is allocated here: a child
    //    allocates nothing.
    let dir = child_cgroup.open_path()?;
    let children = Vec::with_capacity(8);
    let manager = move || manager(me, children, Instant::now() + TIMEOUT);
    let clone_args = CloneArgs::new(Signal::SIGCHLD).pidfd().into_cgroup(&dir);
    let mut manager = clone3_child(&clone_args, manager)?;
    let pid = manager.pid();
    say!("parent[{me}]: 2. clone3(CLONE_INTO_CGROUP) returned manager {pid} in the child cgroup");
    if manager.wait_for_signal(&watch, CHILD_TO_PARENT, TIMEOUT)? != Waited::SignalCame {
        return Err(Error::Failed(format!("manager {pid} never reported")));
    }
    let bound = parent.read_counter("pids.current")?;
    say!("parent[{me}]: 2. the parent's limit bound the child cgroup: pids.current = {bound}");

    // 3. Moving in is not refused: two sleepers written to the child cgroup's cgroup.procs.
    let sleepers = [sleeper()?, sleeper()?];
    for s in &sleepers {
        child_cgroup.add_process(s.pid())?;
    }
    let above = parent.read_counter("pids.current")?;
    say!(
        "parent[{me}]: 3. moved {} and {} in: pids.current = {above} with pids.max = {PARENT_MAX}",
        sleepers[0].pid(),
        sleepers[1].pid()
    );

    // 4. Above the limit, a fork fails (the manager tries; its line is step 4).
    sync::send(pid, PARENT_TO_CHILD)?;
    let ended = manager.wait(&watch, TIMEOUT, |_| {})?;
    drop(sleepers);
    say!("parent[{me}]: 4. waitid(P_PIDFD): {:?}", ended.status);

    // 5. The refusals as the kernel counts them.
    let (parent_events, parent_local) =
        (max_events(&parent, "pids.events")?, max_events(&parent, "pids.events.local")?);
    let (child_events, child_local) = (
        max_events(&child_cgroup, "pids.events")?,
        max_events(&child_cgroup, "pids.events.local")?,
    );
    say!(
        "parent[{me}]: 5. parent cgroup pids.events: {}; pids.events.local: {}",
        shown(parent_events),
        shown(parent_local)
    );
    say!(
        "parent[{me}]: 5. child cgroup pids.events: {}; pids.events.local: {}",
        shown(child_events),
        shown(child_local)
    );
    say!(
        "parent[{me}]:    {}",
        if parent_local.is_some() {
            "counted in the cgroup whose limit refused the fork (hierarchical pids.events)"
        } else {
            "counted in the cgroup where the fork was tried (before hierarchical pids.events)"
        }
    );

    // 6. Threads count as tasks: this program, started again with --hold-threads, holds
    //    three threads; moved into a fresh cgroup, it is three tasks there.
    let (fresh, _) = cgroup::prepare("threads", "pids", None, None)?;
    let threads = tasks_counted_for_a_threaded_process(&fresh)?;
    say!(
        "parent[{me}]: 6. a process of {THREADS} threads moved into {}: pids.current = {threads}",
        fresh.path().display()
    );

    // 7. Remove the cgroups, the child cgroup first.
    for cgroup in [fresh, child_cgroup, parent] {
        if let Some(path) = cgroup.remove()? {
            say!("parent[{me}]: 7. removed {}", path.display());
        }
    }

    // Where the kernel has pids.events.local (6.11), pids.events counts a refusal in the
    // cgroup whose limit refused it, and in its ancestors; before, in the cgroup where the
    // fork was tried.
    let counted = match parent_local {
        Some(_) => parent_events.unwrap_or(0) >= 2,
        None => child_events.unwrap_or(0) >= 2,
    };
    let holds = bound == PARENT_MAX
        && above == PARENT_MAX + 2
        && ended.outcome == clone_cgroup::process::Outcome::Exited(0)
        && counted
        && threads == THREADS;
    if !holds {
        say!("parent[{me}]: NOT AS CLAIMED: the pids controller did not behave as documented");
    }
    Ok(Summary::new(SCENARIO.name, Verdict::of(holds))
        .field("bound_by_parent", bound)
        .field("moved_in_current", above)
        .field("manager_outcome", ended.outcome.token())
        .field("parent_events_max", parent_events.map_or("none".into(), |n| n.to_string()))
        .field("parent_events_local_max", parent_local.map_or("none".into(), |n| n.to_string()))
        .field("child_events_max", child_events.map_or("none".into(), |n| n.to_string()))
        .field("threads_counted", threads))
}

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "--hold-threads") {
        return hold_threads();
    }
    SCENARIO.main(run)
}
