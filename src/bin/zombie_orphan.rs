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
use clone_cgroup::procfs::{state_word, Stat};
use clone_cgroup::sync::{await_go, send, SignalWatch};
use clone_cgroup::Error;
use nix::errno::Errno;
use nix::sys::prctl::set_child_subreaper;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag};
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

/// Waits until `pid` has ended, without reaping it (`waitid` with WNOWAIT).
fn until_ended(pid: Pid) -> Result<(), Error> {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
    waitid(Id::Pid(pid), flags).map(drop).map_err(|e| Error::sys("waitid(WNOWAIT)", e))
}

/// An orphan made for us: a middle child forks a grandchild that waits for SIGUSR1, tells us
/// its pid through a pipe, and ends when told. Returns the grandchild's pid, its parent
/// before the middle ended, and after (the middle reaped by us meanwhile).
fn orphan() -> Result<(Pid, Option<Pid>, Option<Pid>), Error> {
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
    let grandchild = Pid::from_raw(i32::from_ne_bytes(bytes));
    let before = parent_of(grandchild);
    send(middle.pid(), Signal::SIGUSR1)?;
    middle.reap()?;
    Ok((grandchild, before, parent_of(grandchild)))
}

fn run(args: &[String]) -> Result<Summary, Error> {
    no_options(args)?;
    let me = getpid();

    // 1. A cgroup whose pids.max two processes fill.
    let watch = SignalWatch::install()?;
    let (cgroup, notes) = cgroup::prepare("pids", None, None)?;
    for note in notes {
        println!("parent[{me}]: 1. {note}");
    }
    cgroup.write("pids.max", &PIDS_MAX.to_string())?;
    println!("parent[{me}]: 1. pids.max = {}", cgroup.read("pids.max")?.trim());

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
    println!(
        "parent[{me}]: 2. children {} and {} have exited, unwaited: states {states:?}; \
         pids.current = {filled}",
        zombies[0].pid(),
        zombies[1].pid()
    );

    // 3. Zombies alone fill pids.max: a third child cannot be born there.
    let third = match clone3_child(&args, || 0) {
        Ok(mut child) => format!("child {} ({:?})", child.pid(), child.reap()?.status),
        Err(Error::Sys { errno, .. }) => format!("{errno:?}"),
        Err(e) => return Err(e),
    };
    let refused = cgroup.read_keyed("pids.events", "max")?.unwrap_or(0);
    println!("parent[{me}]: 3. a third clone3 into it: {third}; pids.events max {refused}");

    // 4. One wait releases one zombie: its pid is freed, the cgroup has room again.
    let released = zombies[0].pid();
    let ended = zombies[0].reap()?;
    let after = cgroup.read_counter("pids.current")?;
    let mut another = clone3_child(&args, || 0)?;
    let born = another.pid();
    another.reap()?;
    zombies[1].reap()?;
    println!(
        "parent[{me}]: 4. waitpid({released}): {:?}; /proc/{released}: {}; pids.current = \
         {after}; a new child ({born}) is born there",
        ended.status,
        state_word(released)
    );
    watch.stop_if_interrupted()?;

    // 5. An orphan, with us as its subreaper: its new parent is us, and our wait reaps it.
    set_child_subreaper(true).map_err(|e| Error::sys("prctl(PR_SET_CHILD_SUBREAPER)", e))?;
    let (grandchild, before, adopted) = orphan()?;
    send(grandchild, Signal::SIGUSR1)?;
    let reaped = waitpid(grandchild, None).map_err(|e| Error::sys("waitpid", e))?;
    println!(
        "parent[{me}]: 5. subreaper: grandchild {grandchild}'s parent went {} -> {} when its \
         parent ended; our waitpid: {reaped:?}",
        before.map_or("?".into(), |p| p.to_string()),
        adopted.map_or("?".into(), |p| p.to_string())
    );

    // 6. An orphan with no subreaper in between: init, or the nearest subreaper above us, is
    //    its new parent, and our wait finds no such child.
    set_child_subreaper(false).map_err(|e| Error::sys("prctl(PR_SET_CHILD_SUBREAPER)", e))?;
    let (orphaned, _, taken_by) = orphan()?;
    let comm = taken_by.map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")));
    let comm = comm.and_then(Result::ok).unwrap_or_default();
    send(orphaned, Signal::SIGUSR1)?;
    let ours = waitpid(orphaned, None);
    // Its new parent reaps it when it next waits: its /proc entry goes (given 5 s here).
    let deadline = Instant::now() + Duration::from_secs(5);
    while Stat::of(orphaned).is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "parent[{me}]: 6. no subreaper: grandchild {orphaned}'s new parent is {} ({}); our \
         waitpid: {}; then it is {}",
        taken_by.map_or("?".into(), |p| p.to_string()),
        comm.trim(),
        ours.map_or_else(|e| format!("{e:?}"), |s| format!("{s:?}")),
        if Stat::of(orphaned).is_none() { "reaped by it" } else { "not yet reaped by it" }
    );

    // 7. Remove the cgroup: everything it held has been reaped.
    if let Some(path) = cgroup.remove()? {
        println!("parent[{me}]: 7. removed {}", path.display());
    }
    let holds = states == ["Z", "Z"]
        && filled == PIDS_MAX
        && third == format!("{:?}", Errno::EAGAIN)
        && refused >= 1
        && after == PIDS_MAX - 1
        && adopted == Some(me)
        && before != Some(me)
        && taken_by.is_some_and(|p| p != me)
        && ours == Err(Errno::ECHILD);
    if !holds {
        println!("parent[{me}]: NOT AS CLAIMED: zombies or orphans did not behave as documented");
    }
    Ok(Summary::new(SCENARIO.name, Verdict::of(holds))
        .field("zombie_states", states.join(","))
        .field("pids_current", filled)
        .field("third_child", third)
        .field("events_max", refused)
        .field("after_one_wait", after)
        .field("adopted_by_subreaper", adopted == Some(me))
        .field("adopted_without", taken_by.map_or("none".into(), |p| p.to_string()))
        .field("our_wait_without", ours.map_or_else(|e| format!("{e:?}"), |s| format!("{s:?}"))))
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}
