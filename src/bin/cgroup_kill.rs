//! cgroup_kill: cgroup v2's ways to act on every process of a cgroup at once: freeze it,
//! kill it, and have the OOM killer take the whole group.
//!
//! Usage: `cargo sudo-run --bin cgroup_kill` (root and a cgroup v2 memory controller)
//!
//! Each step follows a case of the kernel's cgroup selftests, named in its line.
//! test_cgfreezer_simple: ten children born in the cgroup; `cgroup.freeze` 1 stops them all
//! (`cgroup.events`: frozen 1) without a signal (no wait reports them stopped), and 0 lets
//! them go on. test_cgkill_simple: `cgroup.kill` 1 ends all ten with SIGKILL. test_cgkill_-
//! forkbomb: a child that forks as fast as it can, killed with all its descendants while it
//! forks (`cgroup.events`: populated 0; we are their subreaper, so we reap every one and see
//! SIGKILL). Then test_memcg_oom_group_*: a hog and two bystanders under memory.max = 32M;
//! with `memory.oom.group` 0 the OOM killer takes the hog alone, with 1 all three
//! (`memory.events` oom_kill counts the victim, then each member of its group: +4). The fork
//! bomb and the OOM killer each get a fresh cgroup (see step 4). Where the kernel lacks
//! `cgroup.kill` (before 5.14) the kill steps say so. Expect frozen 1 then 0,
//! SIGKILL everywhere, oom_kill +1 then +4, exit status 0. The cgroup is never left frozen: a
//! guard thaws it on every path.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clone_cgroup::cgroup::{self, Cgroup};
use clone_cgroup::cli::{no_options, Scenario, Summary, Verdict};
use clone_cgroup::clone3::{clone3_child, CloneArgs};
use clone_cgroup::memory::Reservation;
use clone_cgroup::process::{fork_child, Child, Outcome};
use clone_cgroup::sync::{await_go, send, SignalWatch};
use clone_cgroup::Error;
use nix::errno::Errno;
use nix::sys::prctl::set_child_subreaper;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, Pid};

const SCENARIO: Scenario = Scenario {
    name: "cgroup_kill",
    about: "cgroup v2 acting on a whole cgroup: cgroup.freeze stops every process without a\n\
            signal, cgroup.kill ends them all, memory.oom.group makes the OOM killer take all.",
    options: "",
};

/// How many children the freezer and the kill act on.
const CHILDREN: usize = 10;

/// A child that forks as fast as it can, each of its children waiting; it stops after 4000.
fn forkbomb() -> i32 {
    for _ in 0..4000 {
        // Given up at once: the kill ends them, and we, their subreaper, reap them.
        if fork_child(await_go).map(Child::release).is_err() {
            return 1;
        }
    }
    0
}

/// A child that writes `bytes` of memory, one page after another.
fn hog(bytes: usize) -> i32 {
    match Reservation::new(bytes) {
        Ok(mut buffer) => {
            buffer.touch(bytes);
            0
        }
        Err(_) => 1,
    }
}

/// The value of `key` in `file` (a flat keyed file: cgroup.events, memory.events), 0 where
/// the kernel does not count it.
fn key(cgroup: &Cgroup, file: &str, key: &str) -> Result<u64, Error> {
    Ok(cgroup.read_keyed(file, key)?.unwrap_or(0))
}

/// Waits, at most `within`, until `cgroup.events` shows `name` = `value`; whether it did.
fn until_event(cgroup: &Cgroup, name: &str, value: u64, within: Duration) -> Result<bool, Error> {
    let deadline = Instant::now() + within;
    while key(cgroup, "cgroup.events", name)? != value {
        if Instant::now() > deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(true)
}

/// `cgroup.freeze` back to 0 when dropped: no path leaves the cgroup frozen.
struct Thaw<'a>(&'a Cgroup);

impl Drop for Thaw<'_> {
    fn drop(&mut self) {
        let _ = self.0.write("cgroup.freeze", "0");
    }
}

/// Reaps every child we have (our own, and orphans we took as subreaper): how many, and how
/// many of them SIGKILL ended.
fn reap_all() -> Result<(usize, usize), Error> {
    let (mut reaped, mut killed) = (0, 0);
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::__WALL)) {
            Ok(status) => {
                reaped += 1;
                killed +=
                    usize::from(matches!(status, WaitStatus::Signaled(_, Signal::SIGKILL, _)));
            }
            Err(Errno::ECHILD) => return Ok((reaped, killed)),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("waitpid(-1)", e)),
        }
    }
}

/// Reaps `children`, given up by their guards: how many SIGKILL ended.
fn reap_killed(children: Vec<Child>) -> Result<usize, Error> {
    let mut killed = 0;
    for mut child in children {
        killed += usize::from(matches!(
            child.reap()?.outcome,
            Outcome::Killed { signal: Signal::SIGKILL, .. }
        ));
    }
    Ok(killed)
}

/// One OOM in the cgroup with `memory.oom.group` = `group`: a hog writes 64M under the limit
/// beside two bystanders that only wait. How the hog ended, how many bystanders SIGKILL ended,
/// and how much `memory.events` oom_kill and (where the kernel counts it) oom_group_kill grew.
fn oom_round(
    cgroup: &Cgroup,
    born_there: &CloneArgs,
    group: u8,
) -> Result<(Outcome, usize, u64, Option<u64>), Error> {
    cgroup.write("memory.oom.group", &group.to_string())?;
    let counts_groups = cgroup.read("memory.events")?.contains("oom_group_kill");
    let events = || -> Result<(u64, u64), Error> {
        Ok((
            key(cgroup, "memory.events", "oom_kill")?,
            key(cgroup, "memory.events", "oom_group_kill")?,
        ))
    };
    let before = events()?;
    let bystanders = vec![clone3_child(born_there, await_go)?, clone3_child(born_there, await_go)?];
    let hog_end = clone3_child(born_there, || hog(64 << 20))?.reap()?.outcome;
    for child in &bystanders {
        let _ = send(child.pid(), Signal::SIGUSR1);
    }
    let bystanders_killed = reap_killed(bystanders)?;
    let after = events()?;
    Ok((
        hog_end,
        bystanders_killed,
        after.0 - before.0,
        counts_groups.then_some(after.1 - before.1),
    ))
}

/// How much oom_group_kill grew in the two OOM rounds, as the summary gives it: `0,1` as
/// claimed, or `not-counted` where the kernel lacks the counter.
fn group_kills_field(first: Option<u64>, second: Option<u64>) -> String {
    match (first, second) {
        (Some(first), Some(second)) => format!("{first},{second}"),
        _ => "not-counted".into(),
    }
}

/// A forker born in a fresh cgroup, killed with `cgroup.kill` once it has made at least ten
/// children (or after 5 s): the notes of the cgroup's making and removal, how many processes
/// the cgroup held at the kill, whether it emptied, how many processes we reaped (the forker,
/// and as their subreaper its children) and how many of them SIGKILL ended.
fn kill_a_forkbomb() -> Result<(Vec<String>, usize, bool, usize, usize), Error> {
    let (cgroup, mut notes) = cgroup::prepare("memory", None, None)?;
    let dir = cgroup.open_path()?;
    let forker = clone3_child(&CloneArgs::new(Signal::SIGCHLD).into_cgroup(&dir), forkbomb)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while cgroup.processes()?.len() < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let procs = cgroup.processes()?.len();
    cgroup.write("cgroup.kill", "1")?;
    let emptied = until_event(&cgroup, "populated", 0, Duration::from_secs(5))?;
    forker.release(); // reaped below, with its children
    let (reaped, killed) = reap_all()?;
    if let Some(path) = cgroup.remove()? {
        notes.push(format!("removed {}", path.display()));
    }
    Ok((notes, procs, emptied, reaped, killed))
}

fn run(args: &[String]) -> Result<Summary, Error> {
    no_options(args)?;
    let me = getpid();

    // 1. A cgroup, and us as the subreaper of whatever is orphaned below us.
    let watch = SignalWatch::install()?;
    let (cgroup, notes) = cgroup::prepare("memory", None, None)?;
    for note in notes {
        println!("parent[{me}]: 1. {note}");
    }
    set_child_subreaper(true).map_err(|e| Error::sys("prctl(PR_SET_CHILD_SUBREAPER)", e))?;
    let dir = cgroup.open_path()?;
    let born_there = CloneArgs::new(Signal::SIGCHLD).into_cgroup(&dir);

    // 2. test_cgfreezer_simple: every process stopped at once, without a signal.
    let mut children = Vec::new();
    for _ in 0..CHILDREN {
        children.push(clone3_child(&born_there, await_go)?);
    }
    let thaw = Thaw(&cgroup);
    cgroup.write("cgroup.freeze", "1")?;
    let frozen = until_event(&cgroup, "frozen", 1, Duration::from_secs(5))?;
    let stop = WaitPidFlag::WSTOPPED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    let reported_stopped = children
        .iter()
        .filter(|c| !matches!(waitid(Id::Pid(c.pid()), stop), Ok(WaitStatus::StillAlive) | Err(_)))
        .count();
    println!(
        "parent[{me}]: 2. test_cgfreezer_simple: {CHILDREN} children; cgroup.freeze 1: frozen {}; \
         waits that report a stop: {reported_stopped}",
        u8::from(frozen)
    );
    cgroup.write("cgroup.freeze", "0")?;
    let thawed = until_event(&cgroup, "frozen", 0, Duration::from_secs(5))?;
    drop(thaw);
    println!("parent[{me}]: 2. cgroup.freeze 0: frozen {}", u8::from(!thawed));
    watch.stop_if_interrupted()?;

    // 3. test_cgkill_simple: one write ends every process of the cgroup, with SIGKILL.
    let has_kill = cgroup.has_file("cgroup.kill");
    let (mut killed_simple, mut bomb) = (None, None);
    if has_kill {
        cgroup.write("cgroup.kill", "1")?;
        killed_simple = Some(reap_killed(children)?);
        println!(
            "parent[{me}]: 3. test_cgkill_simple: cgroup.kill 1: {} of {CHILDREN} ended by SIGKILL",
            killed_simple.unwrap_or(0)
        );

        // 4. test_cgkill_forkbomb: a child forking as fast as it can is killed with all its
        //    descendants; orphaned by its death, they are ours to reap. In a cgroup of its
        //    own: 6.1's cgroup_css_set_fork takes the kill count of the parent's cgroup, not
        //    of the CLONE_INTO_CGROUP target, so a child cloned into a cgroup that was once
        //    killed is killed at its birth there (6.12 and 7.2 take the target's).
        let (notes, procs, emptied, reaped, killed) = kill_a_forkbomb()?;
        for note in notes {
            println!("parent[{me}]: 4. {note}");
        }
        println!(
            "parent[{me}]: 4. test_cgkill_forkbomb: {procs} processes when cgroup.kill 1 was \
             written; populated {}; reaped {reaped}, {killed} ended by SIGKILL",
            u8::from(!emptied)
        );
        bomb = Some((emptied, reaped, killed));
    } else {
        for child in &children {
            send(child.pid(), Signal::SIGUSR1)?;
        }
        reap_killed(children)?;
        println!("parent[{me}]: 3. cgroup.kill is not offered by this kernel (5.14 brings it)");
        println!("parent[{me}]: 4. test_cgkill_forkbomb: not shown without cgroup.kill");
    }
    watch.stop_if_interrupted()?;

    // 5. test_memcg_oom_group_*: a hog and two bystanders under memory.max = 32M, first with
    //    memory.oom.group 0 (the OOM killer takes one), then with 1 (it takes the group); in a
    //    cgroup of its own, for the reason of step 4.
    let (oom_cgroup, notes) = cgroup::prepare("memory", None, None)?;
    for note in notes {
        println!("parent[{me}]: 5. {note}");
    }
    oom_cgroup.write("memory.max", "32M")?;
    if oom_cgroup.has_file("memory.swap.max") {
        oom_cgroup.write("memory.swap.max", "0")?;
    }
    let oom_dir = oom_cgroup.open_path()?;
    let born_in_oom = CloneArgs::new(Signal::SIGCHLD).into_cgroup(&oom_dir);
    let mut oom = Vec::new();
    for group in [0, 1] {
        let (hog_end, bystanders_killed, kills, group_kill) =
            oom_round(&oom_cgroup, &born_in_oom, group)?;
        let group_note = group_kill.map_or(String::new(), |n| format!(", oom_group_kill +{n}"));
        println!(
            "parent[{me}]: 5. memory.oom.group {group}: the hog {hog_end}; bystanders killed: \
             {bystanders_killed} of 2; memory.events oom_kill +{kills}{group_note}"
        );
        oom.push((hog_end, bystanders_killed, kills, group_kill));
    }

    // 6. Remove the cgroups: every process they held has been reaped.
    for cgroup in [cgroup, oom_cgroup] {
        if let Some(path) = cgroup.remove()? {
            println!("parent[{me}]: 6. removed {}", path.display());
        }
    }
    let sigkill = Outcome::Killed { signal: Signal::SIGKILL, core_dumped: false };
    let kill_held = match (killed_simple, bomb) {
        (Some(simple), Some((emptied, reaped, killed))) => {
            simple == CHILDREN && emptied && reaped >= 10 && killed == reaped
        }
        _ => !has_kill,
    };
    let holds = frozen && thawed && reported_stopped == 0 && kill_held;
    let counted = |n: u64| oom[0].3.map(|_| n); // oom_group_kill, where the kernel counts it
    let holds = holds && oom == [(sigkill, 0, 1, counted(0)), (sigkill, 2, 4, counted(1))];
    if !holds {
        println!("parent[{me}]: NOT AS CLAIMED: the cgroup did not act on its processes so");
    }
    Ok(Summary::new(SCENARIO.name, Verdict::of(holds))
        .field("frozen", frozen)
        .field("thawed", thawed)
        .field("stops_reported", reported_stopped)
        .field("kill", if has_kill { "offered" } else { "not-offered" })
        .field("killed_simple", killed_simple.map_or("none".into(), |n| n.to_string()))
        .field("forkbomb_reaped", bomb.map_or("none".into(), |b| b.1.to_string()))
        .field("forkbomb_killed", bomb.map_or("none".into(), |b| b.2.to_string()))
        .field("oom_group_0", format!("{}+{}", oom[0].2, oom[0].1))
        .field("oom_group_1", format!("{}+{}", oom[1].2, oom[1].1))
        .field("oom_group_kill", group_kills_field(oom[0].3, oom[1].3)))
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}
