//! zombie_orphan: a child that has ended but has not been waited for is a zombie, which keeps
//! its pid and its place in its cgroup; a child whose parent ends is an orphan, which the
//! nearest subreaper, or init, adopts.
//!
//! Usage: `cargo sudo-run --bin zombie_orphan` (root and a cgroup v2 pids controller)
//!
//! Two children are born (clone3, CLONE_INTO_CGROUP) in a cgroup with pids.max = 2 and exit
//! at once. Not waited for, they are zombies: state Z in /proc/PID/stat, and still counted in
//! pids.current, so a third child cannot be born there (EAGAIN; pids.events max 1): zombies
//! alone fill the cgroup. One wait releases one: its /proc entry is gone, pids.current drops,
//! and a child can be born again. Then orphans: a child forks a grandchild and ends. With
//! PR_SET_CHILD_SUBREAPER set on us, the grandchild's parent (in /proc/PID/stat) becomes us,
//! and our wait reaps a process we never forked. Without it, the nearest subreaper above us,
//! or init, adopts it, and our wait finds no such child (ECHILD). Expect states Z, EAGAIN,
//! the grandchild adopted by us, then by another, and exit status 0.

use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clone_cgroup::cgroup;
use clone_cgroup::cli::{no_options, Scenario, Summary, Verdict};
use clone_cgroup::clone3::{clone3_child, CloneArgs};
use clone_cgroup::process::{fork_child, Child};
use clone_cgroup::procfs::{state_word, Stat, GONE};
use clone_cgroup::say;
use clone_cgroup::sync::{await_go, send, SignalWatch};
use clone_cgroup::Error;
use nix::errno::Errno;
use nix::sys::prctl::set_child_subreaper;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, pipe, read, setpgid, write, Pid};

const SCENARIO: Scenario = Scenario {
    name: "zombie_orphan",
    about: "Zombies keep their pid and their place in a cgroup (pids.max fills up) until one\n\
            wait releases them; orphans are adopted by a subreaper, or by init.",
    options: "",
};

/// The cgroup's pids.max: two zombies fill it.
const PIDS_MAX: u64 = 2;

fn parent_of(pid: Pid) -> Option<Pid> {
    Stat::of(pid).map(|stat| stat.parent)
}

/// A grandchild whose parent has ended, as we saw it.
struct Orphan {
    pid: Pid,
    /// Its parent while the middle child still ran: the middle child.
    parent_before: Option<Pid>,
    /// Its parent once the middle child had ended and been reaped: whoever adopted it.
    adopted_by: Option<Pid>,
}

/// What a third clone3 into the full cgroup gave.
enum ThirdChild {
    Born { pid: Pid, status: WaitStatus },
    Refused(Errno),
}

/// Waits until `pid` has ended, without reaping it (`waitid` with WNOWAIT).
fn until_ended(pid: Pid) -> Result<(), Error> {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
    waitid(Id::Pid(pid), flags).map(drop).map_err(|e| Error::sys("waitid(WNOWAIT)", e))
}

/// An orphan made for us: a middle child forks a grandchild that waits for SIGUSR1, tells us
/// its pid through a pipe, and ends when told. Returns the grandchild with its parent before
/// the middle ended, and after (the middle reaped by us meanwhile).
fn orphan() -> Result<Orphan, Error> {
    let (from_middle, to_us) = pipe().map_err(|e| Error::sys("pipe", e))?;
    let mut middle = fork_child(|| {
        // Given up at once: its parent, this middle child, ends before it. In a process group
        // of its own, as the init that may adopt it reaps it when it next waits.
        let orphan = || {
            let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
            await_go()
        };
        let Ok(grandchild) = fork_child(orphan).map(Child::release) else {
            return 1;
        };
        let _ = write(&to_us, &grandchild.as_raw().to_ne_bytes());
        await_go()
    })?;
    drop(to_us);
    let mut bytes = [0u8; 4];
    match read(from_middle.as_fd(), &mut bytes) {
        Ok(4) => {}
        other => return Err(Error::Failed(format!("no grandchild from the middle: {other:?}"))),
    }
    let pid = Pid::from_raw(i32::from_ne_bytes(bytes));
    let parent_before = parent_of(pid);
    send(middle.pid(), Signal::SIGUSR1)?;
    middle.reap()?;
    Ok(Orphan { pid, parent_before, adopted_by: parent_of(pid) })
}

fn run(args: &[String]) -> Result<Summary, Error> {
    no_options(args)?;
    let me = getpid();

    // 1. A cgroup whose pids.max two processes fill.
    let watch = SignalWatch::install()?;
    let (cgroup, notes) = cgroup::prepare("zombies", "pids", None, None)?;
    for note in notes {
        say!("parent[{me}]: 1. {note}");
    }
    cgroup.write("pids.max", &PIDS_MAX.to_string())?;
    say!("parent[{me}]: 1. pids.max = {}", cgroup.read("pids.max")?.trim());

    // 2. Two children born there, which exit at once. Not waited for, they are zombies: still
    //    in the process table, and still counted in the cgroup.
    let dir = cgroup.open_path()?;
    let args = CloneArgs::new(Signal::SIGCHLD).into_cgroup(&dir);
    let mut zombies = [clone3_child(&args, || 0)?, clone3_child(&args, || 0)?];
    for zombie in &zombies {
        until_ended(zombie.pid())?;
    }
    let states: Vec<String> = zombies.iter().map(|z| state_word(z.pid())).collect();
    let filled = cgroup.read_counter("pids.current")?;
    say!(
        "parent[{me}]: 2. children {} and {} have exited, unwaited: states {states:?}; \
         pids.current = {filled}",
        zombies[0].pid(),
        zombies[1].pid()
    );

    // 3. Zombies alone fill pids.max: a third child cannot be born there. The kernel gives a
    //    new process its pid before the pids controller refuses it (alloc_pid comes before
    //    cgroup_can_fork in copy_process), and hands pids out in turn: the refused one's
    //    number is skipped by the next child.
    let third = match clone3_child(&args, || 0) {
        Ok(mut child) => ThirdChild::Born { pid: child.pid(), status: child.reap()?.status },
        Err(Error::Sys { errno, .. }) => ThirdChild::Refused(errno),
        Err(e) => return Err(e),
    };
    let refused = cgroup.read_keyed("pids.events", "max")?.unwrap_or(0);
    let third_said = match &third {
        ThirdChild::Born { pid, status } => format!("child {pid} was born ({status:?})"),
        ThirdChild::Refused(errno) => {
            format!("{errno:?}, after it had been given a pid number that the next child skips")
        }
    };
    say!("parent[{me}]: 3. a third clone3 into it: {third_said}; pids.events max {refused}");

    // 4. One wait releases one zombie: its pid is freed, the cgroup has room again.
    let released = zombies[0].pid();
    let ended = zombies[0].reap()?;
    let after = cgroup.read_counter("pids.current")?;
    let mut another = clone3_child(&args, || 0)?;
    let born = another.pid();
    another.reap()?;
    zombies[1].reap()?;
    say!(
        "parent[{me}]: 4. waitpid({released}): {:?}; /proc/{released}: {}; pids.current = \
         {after}; a new child ({born}) is born there",
        ended.status,
        state_word(released)
    );
    watch.stop_if_interrupted()?;

    // 5. An orphan, with us as its subreaper: its new parent is us, and our wait reaps it.
    set_child_subreaper(true).map_err(|e| Error::sys("prctl(PR_SET_CHILD_SUBREAPER)", e))?;
    let ours = orphan()?;
    send(ours.pid, Signal::SIGUSR1)?;
    let reaped = waitpid(ours.pid, None).map_err(|e| Error::sys("waitpid", e))?;
    let pid_or_gone = |pid: Option<Pid>| pid.map_or(GONE.to_string(), |p| p.to_string());
    say!(
        "parent[{me}]: 5. subreaper: grandchild {}'s parent went {} -> {} when its parent \
         ended; our waitpid: {reaped:?}",
        ours.pid,
        pid_or_gone(ours.parent_before),
        pid_or_gone(ours.adopted_by)
    );

    // 6. An orphan with no subreaper in between: init, or the nearest subreaper above us, is
    //    its new parent, and our wait finds no such child.
    set_child_subreaper(false).map_err(|e| Error::sys("prctl(PR_SET_CHILD_SUBREAPER)", e))?;
    let theirs = orphan()?;
    let comm = theirs.adopted_by.map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")));
    let comm = comm.and_then(Result::ok).unwrap_or_default();
    send(theirs.pid, Signal::SIGUSR1)?;
    let our_wait = waitpid(theirs.pid, None);
    // Its new parent reaps it when it next waits: its /proc entry goes (given 5 s here).
    let deadline = Instant::now() + Duration::from_secs(5);
    while Stat::of(theirs.pid).is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let our_wait_said = our_wait.map_or_else(|e| format!("{e:?}"), |s| format!("{s:?}"));
    say!(
        "parent[{me}]: 6. no subreaper: grandchild {}'s new parent is {} ({}); our waitpid: \
         {our_wait_said}; then it is {}",
        theirs.pid,
        pid_or_gone(theirs.adopted_by),
        comm.trim(),
        if Stat::of(theirs.pid).is_none() { "reaped by it" } else { "not yet reaped by it" }
    );

    // 7. Remove the cgroup: everything it held has been reaped.
    if let Some(path) = cgroup.remove()? {
        say!("parent[{me}]: 7. removed {}", path.display());
    }
    let holds = states == ["Z", "Z"]
        && filled == PIDS_MAX
        && matches!(third, ThirdChild::Refused(Errno::EAGAIN))
        && refused >= 1
        && after == PIDS_MAX - 1
        && ours.adopted_by == Some(me)
        && ours.parent_before != Some(me)
        && theirs.adopted_by.is_some_and(|p| p != me)
        && our_wait == Err(Errno::ECHILD);
    if !holds {
        say!("parent[{me}]: NOT AS CLAIMED: zombies or orphans did not behave as documented");
    }
    let third_field = match third {
        ThirdChild::Born { pid, .. } => format!("born:{pid}"),
        ThirdChild::Refused(errno) => format!("{errno:?}"),
    };
    Ok(Summary::new(SCENARIO.name, Verdict::of(holds))
        .field("zombie_states", states.join(","))
        .field("pids_current", filled)
        .field("third_child", third_field)
        .field("events_max", refused)
        .field("after_one_wait", after)
        .field("adopted_by_subreaper", ours.adopted_by == Some(me))
        .field("adopted_without", theirs.adopted_by.map_or("none".into(), |p| p.to_string()))
        .field("our_wait_without", our_wait_said))
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}
