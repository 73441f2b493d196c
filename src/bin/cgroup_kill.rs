//! cgroup_kill: cgroup v2's ways to act on every process of a cgroup at once: freeze it,
//! kill it, and have the OOM killer take the whole group; and a kernel bug in one of them,
//! seen live.
//!
//! Usage: `cargo sudo-run --bin cgroup_kill` (root and a cgroup v2 memory controller)
//!
//! Most steps follow a case of the kernel's cgroup selftests, named in its line, each in a
//! cgroup named for its role. test_cgfreezer_simple: ten children born in the cgroup;
//! `cgroup.freeze` 1 stops them all (`cgroup.events`: frozen 1) without a signal (no wait
//! reports them stopped), and 0 lets them go on. test_cgkill_simple: `cgroup.kill` 1 ends all
//! ten with SIGKILL. test_cgkill_forkbomb: a child that forks as fast as it can, killed with
//! all its descendants while it forks (`cgroup.events`: populated 0; we are their subreaper,
//! so we reap every one and see SIGKILL).
//!
//! Then a child born, with `clone3(CLONE_INTO_CGROUP)`, into a cgroup that was killed once
//! before, from a parent in a cgroup never killed; the other way round; and with both killed
//! once. The kernel counts the kills of each cgroup (`kill_seq`, from "cgroup: fix race
//! between fork and cgroup.kill", 6.14, in the stable lines from 6.1.129, 6.6.79 and
//! 6.12.16): `cgroup_css_set_fork` takes a count before the child exists and
//! `cgroup_post_fork` compares it with the target cgroup's (`kill = kargs->kill_seq !=
//! cgrp_kill_seq`), so that a kill in between takes the child too. That first count came from
//! the *parent's* cgroup, `cset->dfl_cgrp->kill_seq`, until "cgroup: fix spurious SIGKILL of
//! CLONE_INTO_CGROUP children" (7.3, in the stable lines since): where the two cgroups' counts
//! differ, a kernel with the first commit and not the second kills the child at its birth
//! (Debian 12's 6.1.176 does); with both, or neither, every child lives and exits 7.
//!
//! Last, test_memcg_oom_group_*: a hog and two bystanders under memory.max = 32M; with
//! `memory.oom.group` 0 the OOM killer takes the hog alone, with 1 all three. mm/oom_kill.c
//! counts each process it kills that still holds its memory in `memory.events` oom_kill: the
//! hog, then with a group each member as it walks the group, the hog included (counted again
//! while it has not let go of its memory yet). So the source guarantees at least 1, then at
//! least 3 (usually 4); and `oom_group_kill` (5.17) counts the group kill itself, 0 then 1.
//! Where the kernel lacks `cgroup.kill` (before 5.14) the kill steps say so. Expect frozen 1
//! then 0, SIGKILL everywhere, every child born into a killed cgroup exiting 7 (or, on a
//! kernel with the bug, killed wherever the counts differ), oom_kill +1 then +3 or more, exit
//! status 0. The cgroup is never left frozen: a guard thaws it on every path.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clone_cgroup::cgroup::{self, Cgroup};
use clone_cgroup::cli::{no_options, Scenario, Summary, Verdict};
use clone_cgroup::clone3::{clone3_child, CloneArgs};
use clone_cgroup::memory::{Reservation, CHILD_SETUP_FAILED};
use clone_cgroup::process::{fork_child, Child, Outcome};
use clone_cgroup::say;
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
            signal, cgroup.kill ends them all, memory.oom.group makes the OOM killer take all;\n\
            and a child born into a cgroup once killed, which a kernel bug killed at birth.",
    options: "",
};

/// How many children the freezer and the kill act on.
const CHILDREN: usize = 10;

/// The exit status of a child born into a cgroup in step 5, where it lives to choose one.
const BORN_AND_EXITED: i32 = 7;

fn main() -> ExitCode {
    SCENARIO.main(run)
}

fn run(args: &[String]) -> Result<Summary, Error> {
    no_options(args)?;
    let me = getpid();

    // 1. A cgroup, and us as the subreaper of whatever is orphaned below us.
    let watch = SignalWatch::install()?;
    let (cgroup, notes) = cgroup::prepare("freeze-kill", "memory", None, None)?;
    for note in notes {
        say!("parent[{me}]: 1. {note}");
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
    let stops_reported = children
        .iter()
        .filter(|c| !matches!(waitid(Id::Pid(c.pid()), stop), Ok(WaitStatus::StillAlive) | Err(_)))
        .count();
    say!(
        "parent[{me}]: 2. test_cgfreezer_simple: {CHILDREN} children; cgroup.freeze 1: frozen {}; \
         waits that report a stop: {stops_reported}",
        u8::from(frozen)
    );
    cgroup.write("cgroup.freeze", "0")?;
    let thawed = until_event(&cgroup, "frozen", 0, Duration::from_secs(5))?;
    drop(thaw);
    say!("parent[{me}]: 2. cgroup.freeze 0: frozen {}", u8::from(!thawed));
    watch.stop_if_interrupted()?;

    // 3. test_cgkill_simple: one write ends every process of the cgroup, with SIGKILL.
    let has_kill = cgroup.has_file("cgroup.kill");
    let (mut killed_simple, mut bomb, mut birth) = (None, None, None);
    if has_kill {
        cgroup.write("cgroup.kill", "1")?;
        let killed = reap_killed(children)?;
        say!(
            "parent[{me}]: 3. test_cgkill_simple: cgroup.kill 1: {killed} of {CHILDREN} ended by \
             SIGKILL"
        );
        killed_simple = Some(killed);

        // 4. test_cgkill_forkbomb: a child forking as fast as it can is killed with all its
        //    descendants; orphaned by its death, they are ours to reap.
        let killed = kill_a_forkbomb()?;
        for note in &killed.notes {
            say!("parent[{me}]: 4. {note}");
        }
        say!(
            "parent[{me}]: 4. test_cgkill_forkbomb: {} processes when cgroup.kill 1 was written; \
             populated {}; reaped {}, {} ended by SIGKILL",
            killed.processes_at_kill,
            u8::from(!killed.emptied),
            killed.reaped,
            killed.killed
        );
        bomb = Some(killed);
        watch.stop_if_interrupted()?;

        // 5. Children born into a cgroup once killed, and from a parent in one: the kernel
        //    compares two counts of kills, and which two decides whether a child lives.
        let births = births_after_a_kill()?;
        for note in &births.notes {
            say!("parent[{me}]: 5. {note}");
        }
        for case in &births.cases {
            say!(
                "parent[{me}]: 5. a child born into {} from a parent in {}: {}",
                case.target,
                case.parent,
                case.ended
            );
        }
        say!("parent[{me}]: 5. {}", births.reading().words());
        birth = Some(births);
    } else {
        for child in &children {
            send(child.pid(), Signal::SIGUSR1)?;
        }
        reap_killed(children)?;
        say!("parent[{me}]: 3. cgroup.kill is not offered by this kernel (5.14 brings it)");
        say!("parent[{me}]: 4. test_cgkill_forkbomb: not shown without cgroup.kill");
        say!("parent[{me}]: 5. a child born into a killed cgroup: not shown without cgroup.kill");
    }
    watch.stop_if_interrupted()?;

    // 6. test_memcg_oom_group_*: a hog and two bystanders under memory.max = 32M, first with
    //    memory.oom.group 0 (the OOM killer takes one), then with 1 (it takes the group).
    let (oom_cgroup, notes) = cgroup::prepare("oom-group", "memory", None, None)?;
    for note in notes {
        say!("parent[{me}]: 6. {note}");
    }
    oom_cgroup.write("memory.max", "32M")?;
    if oom_cgroup.has_file("memory.swap.max") {
        oom_cgroup.write("memory.swap.max", "0")?;
    }
    let oom_dir = oom_cgroup.open_path()?;
    let born_in_oom = CloneArgs::new(Signal::SIGCHLD).into_cgroup(&oom_dir);
    let alone = oom_round(&oom_cgroup, &born_in_oom, false)?;
    let group = oom_round(&oom_cgroup, &born_in_oom, true)?;
    for (setting, round) in [(0, &alone), (1, &group)] {
        let group_kills =
            round.group_kills.map_or(String::new(), |n| format!(", oom_group_kill +{n}"));
        say!(
            "parent[{me}]: 6. memory.oom.group {setting}: the hog {}; bystanders killed: {} of 2; \
             memory.events oom_kill +{}{group_kills}",
            round.hog,
            round.bystanders_killed,
            round.oom_kills
        );
    }

    // 7. Remove the cgroups: every process they held has been reaped.
    for cgroup in [cgroup, oom_cgroup] {
        if let Some(path) = cgroup.remove()? {
            say!("parent[{me}]: 7. removed {}", path.display());
        }
    }

    let kill_held = match (killed_simple, &bomb, &birth) {
        (Some(simple), Some(bomb), Some(birth)) => {
            simple == CHILDREN
                && bomb.emptied
                && bomb.reaped >= 10
                && bomb.killed == bomb.reaped
                && birth.reading() != Reading::Neither
        }
        _ => !has_kill,
    };
    let holds = frozen
        && thawed
        && stops_reported == 0
        && kill_held
        && alone.as_claimed(false)
        && group.as_claimed(true);
    if !holds {
        say!("parent[{me}]: NOT AS CLAIMED: the cgroup did not act on its processes so");
    }
    let none = || "none".to_string();
    Ok(Summary::new(SCENARIO.name, Verdict::of(holds))
        .field("frozen", frozen)
        .field("thawed", thawed)
        .field("stops_reported", stops_reported)
        .field("kill", if has_kill { "offered" } else { "not-offered" })
        .field("killed_simple", killed_simple.map_or_else(none, |n| n.to_string()))
        .field("forkbomb_reaped", bomb.as_ref().map_or_else(none, |b| b.reaped.to_string()))
        .field("forkbomb_killed", bomb.as_ref().map_or_else(none, |b| b.killed.to_string()))
        .field("born_into_killed", birth.map_or("not-shown", |b| b.reading().token()))
        .field("oom_kill_alone", alone.oom_kills)
        .field("bystanders_killed_alone", alone.bystanders_killed)
        .field("oom_kill_group", group.oom_kills)
        .field("bystanders_killed_group", group.bystanders_killed)
        .field("oom_group_kill", group_kills_field(alone.group_kills, group.group_kills)))
}

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

/// Waits, at most `within`, until `cgroup.events` shows `name` = `value`; whether it did.
fn until_event(cgroup: &Cgroup, name: &str, value: u64, within: Duration) -> Result<bool, Error> {
    let deadline = Instant::now() + within;
    while cgroup.read_keyed("cgroup.events", name)? != Some(value) {
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

/// Every child we have reaped (our own, and orphans we took as subreaper).
struct Reaped {
    all: usize,
    /// How many of them SIGKILL ended.
    by_sigkill: usize,
}

/// Reaps every child we have, until none is left.
fn reap_all() -> Result<Reaped, Error> {
    let mut reaped = Reaped { all: 0, by_sigkill: 0 };
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::__WALL)) {
            Ok(status) => {
                reaped.all += 1;
                let sigkill = matches!(status, WaitStatus::Signaled(_, Signal::SIGKILL, _));
                reaped.by_sigkill += usize::from(sigkill);
            }
            Err(Errno::ECHILD) => return Ok(reaped),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("waitpid(-1)", e)),
        }
    }
}

/// Reaps `children`, given up by their guards: how many SIGKILL ended.
fn reap_killed(children: Vec<Child>) -> Result<usize, Error> {
    let mut killed = 0;
    for mut child in children {
        killed += usize::from(is_sigkill(child.reap()?.outcome));
    }
    Ok(killed)
}

fn is_sigkill(outcome: Outcome) -> bool {
    matches!(outcome, Outcome::Killed { signal: Signal::SIGKILL, .. })
}

/// What the kill of a fork bomb left to see.
struct ForkbombKill {
    /// The making and the removal of its cgroup, for the story to print.
    notes: Vec<String>,
    /// How many processes the cgroup held when `cgroup.kill` was written.
    processes_at_kill: usize,
    /// Whether `cgroup.events` said populated 0 afterwards.
    emptied: bool,
    /// How many processes we reaped: the forker, and as their subreaper its children.
    reaped: usize,
    /// How many of them SIGKILL ended.
    killed: usize,
}

/// A forker born in a cgroup of its own, killed with `cgroup.kill` once it has made at least
/// ten children (or after 5 s).
fn kill_a_forkbomb() -> Result<ForkbombKill, Error> {
    let (cgroup, mut notes) = cgroup::prepare("forkbomb", "memory", None, None)?;
    let dir = cgroup.open_path()?;
    let forker = clone3_child(&CloneArgs::new(Signal::SIGCHLD).into_cgroup(&dir), forkbomb)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while cgroup.processes()?.len() < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let processes_at_kill = cgroup.processes()?.len();
    cgroup.write("cgroup.kill", "1")?;
    let emptied = until_event(&cgroup, "populated", 0, Duration::from_secs(5))?;
    forker.release(); // reaped below, with its children
    let reaped = reap_all()?;
    if let Some(path) = cgroup.remove()? {
        notes.push(format!("removed {}", path.display()));
    }
    Ok(ForkbombKill {
        notes,
        processes_at_kill,
        emptied,
        reaped: reaped.all,
        killed: reaped.by_sigkill,
    })
}

/// How a child born in step 5 ended, as the middle process that made it reports it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Born {
    /// It lived and exited with [`BORN_AND_EXITED`].
    Lived,
    /// SIGKILL ended it before it could run: the kernel killed it at birth.
    KilledAtBirth,
    /// Anything else, with the middle's exit status: the middle could not play its part.
    Otherwise(i32),
}

impl std::fmt::Display for Born {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Born::Lived => write!(f, "it lived and exited {BORN_AND_EXITED}"),
            Born::KilledAtBirth => write!(f, "SIGKILL at birth"),
            Born::Otherwise(code) => {
                write!(f, "its parent could not play its part (status {code})")
            }
        }
    }
}

/// One child of step 5: the cgroup its parent was in, the one it was born into, its end.
struct BirthCase {
    parent: String,
    target: String,
    ended: Born,
}

/// What step 5 saw.
struct Births {
    notes: Vec<String>,
    /// Parent never killed / target killed once; parent killed once / target never killed;
    /// both killed once.
    cases: Vec<BirthCase>,
}

/// Which count of kills a kernel compares the target cgroup's with, read from step 5's ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Every child lived: the count taken before the child was made is the target's own (or
    /// the kernel predates the counts), so a past kill never touches a new child.
    TargetsOwn,
    /// A child was killed at birth wherever the two cgroups' counts differ, and lived where
    /// they are equal: the first count is the parent's cgroup's.
    ParentsCgroup,
    /// Neither pattern: not as the source says.
    Neither,
}

impl Reading {
    fn token(&self) -> &'static str {
        match self {
            Reading::TargetsOwn => "lives",
            Reading::ParentsCgroup => "killed-where-counts-differ",
            Reading::Neither => "neither",
        }
    }

    fn words(&self) -> &'static str {
        match self {
            Reading::TargetsOwn => {
                "every child lived: this kernel compares the target cgroup's count of kills \
                 with itself, so a kill before the child's birth does not touch it"
            }
            Reading::ParentsCgroup => {
                "killed wherever the two cgroups' counts of kills differ: this kernel takes its \
                 first count from the parent's cgroup (cgroup_css_set_fork: \
                 cset->dfl_cgrp->kill_seq), the bug that \"cgroup: fix spurious SIGKILL of \
                 CLONE_INTO_CGROUP children\" fixed"
            }
            Reading::Neither => {
                "neither the kernel's fixed rule nor its bug: not as the source says"
            }
        }
    }
}

impl Births {
    fn reading(&self) -> Reading {
        let ends: Vec<Born> = self.cases.iter().map(|case| case.ended).collect();
        match ends.as_slice() {
            [Born::Lived, Born::Lived, Born::Lived] => Reading::TargetsOwn,
            [Born::KilledAtBirth, Born::KilledAtBirth, Born::Lived] => Reading::ParentsCgroup,
            _ => Reading::Neither,
        }
    }
}

/// Step 5: two fresh cgroups, one of them killed once while empty (which counts a kill all
/// the same); then three children born with `CLONE_INTO_CGROUP`, each by a middle process of
/// ours that first moves itself into the parent's cgroup of its case.
fn births_after_a_kill() -> Result<Births, Error> {
    let (killed_once, mut notes) = cgroup::prepare("killed-once", "memory", None, None)?;
    killed_once.write("cgroup.kill", "1")?;
    notes.push(format!(
        "wrote 1 to {}/cgroup.kill while it was empty",
        killed_once.path().display()
    ));
    let (never_killed, more) = cgroup::prepare("never-killed", "memory", None, None)?;
    notes.extend(more);
    // A cgroup by its role: "killed-once" of clone-cgroup-812-killed-once.
    let role = |cgroup: &Cgroup| {
        let name = cgroup.path().file_name().map(|n| n.to_string_lossy().into_owned());
        name.and_then(|n| n.splitn(4, '-').nth(3).map(str::to_string)).unwrap_or_default()
    };
    let mut cases = Vec::new();
    for (parent, target) in
        [(&never_killed, &killed_once), (&killed_once, &never_killed), (&killed_once, &killed_once)]
    {
        let ended = born_into(parent, target)?;
        cases.push(BirthCase { parent: role(parent), target: role(target), ended });
    }
    for cgroup in [killed_once, never_killed] {
        if let Some(path) = cgroup.remove()? {
            notes.push(format!("removed {}", path.display()));
        }
    }
    Ok(Births { notes, cases })
}

/// A middle process of ours moves itself into `parent` (one `write(2)` of "0" to its
/// `cgroup.procs`, opened beforehand) and makes a child with `CLONE_INTO_CGROUP` into
/// `target`, which exits [`BORN_AND_EXITED`] unless it is killed first; the middle passes its
/// end on in its own exit status (128 + the signal for a kill).
fn born_into(parent: &Cgroup, target: &Cgroup) -> Result<Born, Error> {
    let procs =
        OpenOptions::new().write(true).open(parent.path().join("cgroup.procs")).map_err(|e| {
            Error::io(&format!("failed to open {}/cgroup.procs", parent.path().display()), e)
        })?;
    let target_dir = target.open_path()?;
    let args = CloneArgs::new(Signal::SIGCHLD).into_cgroup(&target_dir);
    let mut middle = fork_child(|| middle_of_a_birth(&procs, &args))?;
    Ok(match middle.reap()?.outcome {
        Outcome::Exited(BORN_AND_EXITED) => Born::Lived,
        Outcome::Exited(code) if code == 128 + Signal::SIGKILL as i32 => Born::KilledAtBirth,
        Outcome::Exited(code) => Born::Otherwise(code),
        Outcome::Killed { signal, .. } => Born::Otherwise(128 + signal as i32),
    })
}

/// The middle process of [`born_into`], under the rule for child code.
fn middle_of_a_birth(procs: &File, args: &CloneArgs) -> i32 {
    // "0" moves the writer itself (cgroup_procs_write_start: no pid, current).
    // SAFETY: one byte from a static buffer to a descriptor we hold.
    let moved = unsafe { libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) };
    if moved != 1 {
        return CHILD_SETUP_FAILED;
    }
    let Ok(mut child) = clone3_child(args, || BORN_AND_EXITED) else {
        return CHILD_SETUP_FAILED;
    };
    match child.reap().map(|ended| ended.outcome) {
        Ok(Outcome::Exited(code)) => code,
        Ok(Outcome::Killed { signal, .. }) => 128 + signal as i32,
        Err(_) => CHILD_SETUP_FAILED,
    }
}

/// One OOM in the cgroup with `memory.oom.group` set as `group` says: a hog writes 64M under
/// the limit beside two bystanders that only wait.
struct OomRound {
    /// How the hog ended.
    hog: Outcome,
    /// How many bystanders SIGKILL ended.
    bystanders_killed: usize,
    /// How much `memory.events` oom_kill grew.
    oom_kills: u64,
    /// How much `memory.events` oom_group_kill grew, where the kernel counts it (5.17).
    group_kills: Option<u64>,
}

impl OomRound {
    /// Whether the round went as mm/oom_kill.c guarantees: the hog killed, and either the
    /// bystanders spared and at least one kill counted, or (a group) both killed and at least
    /// three counted: the hog, then each bystander, which still holds its memory as the group
    /// is walked (the hog again if it still holds its own: usually 4). One group kill counted
    /// in the second round only.
    fn as_claimed(&self, group: bool) -> bool {
        let (bystanders, at_least, group_kills) = if group { (2, 3, 1) } else { (0, 1, 0) };
        is_sigkill(self.hog)
            && self.bystanders_killed == bystanders
            && self.oom_kills >= at_least
            && self.group_kills.map_or(true, |n| n == group_kills)
    }
}

fn oom_round(cgroup: &Cgroup, born_there: &CloneArgs, group: bool) -> Result<OomRound, Error> {
    cgroup.write("memory.oom.group", if group { "1" } else { "0" })?;
    let kills = || cgroup.read_keyed("memory.events", "oom_kill").map(Option::unwrap_or_default);
    let group_kills = || cgroup.read_keyed("memory.events", "oom_group_kill");
    let (kills_before, group_kills_before) = (kills()?, group_kills()?);
    let bystanders = vec![clone3_child(born_there, await_go)?, clone3_child(born_there, await_go)?];
    let hog = clone3_child(born_there, || hog(64 << 20))?.reap()?.outcome;
    for child in &bystanders {
        let _ = send(child.pid(), Signal::SIGUSR1);
    }
    let bystanders_killed = reap_killed(bystanders)?;
    let group_kills = match (group_kills_before, group_kills()?) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    Ok(OomRound { hog, bystanders_killed, oom_kills: kills()? - kills_before, group_kills })
}

/// How much oom_group_kill grew in the two OOM rounds, as the summary gives it: `0,1` as
/// claimed, or `not-counted` where the kernel lacks the counter.
fn group_kills_field(alone: Option<u64>, group: Option<u64>) -> String {
    match (alone, group) {
        (Some(alone), Some(group)) => format!("{alone},{group}"),
        _ => "not-counted".into(),
    }
}
