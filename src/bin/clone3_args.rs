//! clone3_args: the kernel's own checks of clone3's arguments, one row per case: where the
//! case comes from, its input, the result it expects, the result this kernel gives.
//!
//! Usage: `cargo sudo-run --bin clone3_args` (root: set_tid, CLONE_NEWPID and cgroups need it)
//!
//! The cases are every case of the kernel's clone3 selftests (tools/testing/selftests/clone3/:
//! clone3.c, clone3_selftests.h's probe, clone3_set_tid.c with its cases inside a new PID
//! namespace, clone3_clear_sighand.c, clone3_cap_checkpoint_restore.c), the clone3 cases of
//! pidfd/pidfd_autoreap_test.c and filesystems/empty_mntns/clone3_empty_mntns_test.c, the
//! CLONE_INTO_CGROUP cases of cgroup/test_core.c, and each refusal of the kernel's clone3 path
//! that no selftest makes, labelled with the function that decides it (kernel/fork.c unless
//! named: copy_clone_args_from_user, clone3_args_valid, clone3_stack_valid, copy_process,
//! kernel_clone; nsproxy.c's copy_namespaces; cgroup.c's cgroup_css_set_fork and the
//! functions it calls).
//!
//! Each goes through the library's CloneArgs, or a clone3_probe where the case needs what
//! CloneArgs would not build; a case of CLONE_THREAD, which needs CLONE_VM, through a thread
//! built by hand. Where a case expects a child, the child checks what the case gave it (the
//! pid it asked for, its signal handlers) and exits 0 if it holds, and the parent checks the
//! pid clone3 returned. Some cases are made by a child of ours first: as uid 65534 (nobody),
//! without capabilities, with RLIMIT_NPROC at 0, or keeping CAP_CHECKPOINT_RESTORE alone;
//! after unshare(CLONE_NEWPID); or as pid 1 of a new PID namespace. Where a selftest checks
//! only that the call fails, the row expects "an error" and shows the errno. A kernel that
//! lacks what a case needs (a flag of 7.1, CLONE_INTO_CGROUP, a cgroup v1 hierarchy to point
//! at) says so in the row instead of passing or failing it. Expect every row to match and
//! exit status 0.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clone_cgroup::attributes::{
    become_keeping, disposition, set_disposition, Disposition, CAP_CHECKPOINT_RESTORE,
};
use clone_cgroup::cgroup::{self, Cgroup};
use clone_cgroup::cli::{no_options, Scenario, Summary, Verdict};
use clone_cgroup::clone3::{not_offered, CloneArgs, Flags};
use clone_cgroup::clone3_probe::{
    knows_flags, try_clone3, try_clone3_running, Probe, KERNEL_HALF, UNMAPPED,
};
use clone_cgroup::process::{fork_child, Outcome};
use clone_cgroup::say;
use clone_cgroup::sync::SignalWatch;
use clone_cgroup::Error;
use nix::errno::Errno;
use nix::sched::{unshare, CloneFlags};
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::{geteuid, getpid, setgid, setuid, Gid, Pid, Uid};

#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu"))]
use clone_cgroup::thread::{HandBuiltThread, NPTL_FLAGS};

const SCENARIO: Scenario = Scenario {
    name: "clone3_args",
    about: "The argument checks of the kernel's clone3 selftests and the kernel's own refusals:\n\
            each case's input, the result its source expects, and the result this kernel gives.",
    options: "",
};

fn main() -> ExitCode {
    SCENARIO.main(run)
}

fn run(args: &[String]) -> Result<Summary, Error> {
    no_options(args)?;
    if !geteuid().is_root() {
        return Err(Error::cannot_run(
            "set_tid, CLONE_NEWPID and cgroups need root: run it with sudo",
        ));
    }
    let me = getpid();
    // What clone3 itself needs: a kernel that has it.
    if let Err(errno) = try_clone3(&CloneArgs::new(Signal::SIGCHLD).into())? {
        return Err(Error::cannot_run(not_offered(errno).unwrap_or("clone3 fails here")));
    }

    // SIGINT, SIGTERM and SIGHUP wait, blocked, until the stage is removed (a run takes about
    // a second); the run then ends with 128 + the signal.
    let _watch = SignalWatch::interruptions_only()?;

    // 1. The stage: cgroups of our own with the targets of the CLONE_INTO_CGROUP cases, a pid
    //    that has just been freed, the largest pid, and handlers of ours for SIGUSR1 and
    //    SIGUSR2, which CLONE_CLEAR_SIGHAND is to drop.
    let (base, notes) = cgroup::prepare("stage", "memory", None, None)?;
    let (busy, more) = cgroup::prepare("busy", "memory", None, None)?;
    for note in notes.into_iter().chain(more) {
        say!("parent[{me}]: 1. {note}");
    }
    let targets = targets(&base, &busy);
    let pid_max = fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    let freed = freed_pid()?;
    say!("parent[{me}]: 1. pid_max {pid_max}; pid {freed} has just been freed");
    let _handlers = CaughtWhileAlive::catch([Signal::SIGUSR1, Signal::SIGUSR2])?;
    let kernel = Kernel::ask(freed)?;

    // 2. Each case as its source makes it; a child that is created checks itself and exits.
    let rows = match &targets {
        Ok(targets) => cases(targets, pid_max, freed),
        Err(e) => {
            remove_targets(&base, &busy);
            return Err(Error::Failed(format!("the cgroups of the CLONE_INTO_CGROUP cases: {e}")));
        }
    };
    say!("parent[{me}]: 2. {} cases:", rows.len());
    say!("    {:<36} {:<42} {:<14} {:<14}", "source", "input", "expected", "seen");
    let mut tally = Tally::default();
    let mut clone_failed = Ok(());
    for (i, row) in rows.iter().enumerate() {
        // The stage is removed below whatever happens here.
        let seen = match kernel.lacks(row) {
            Some(lack) => Err(lack),
            None => match made(row) {
                Ok(seen) => Ok(seen),
                Err(e) => {
                    clone_failed = Err(e);
                    break;
                }
            },
        };
        let (seen_word, verdict) = match &seen {
            Err(lack) => {
                tally.not_offered += 1;
                ("-".to_string(), format!("not offered by this kernel: {lack}"))
            }
            Ok(seen) if row.expect.met_by(seen) => {
                tally.as_expected += 1;
                (seen.to_string(), "as expected".to_string())
            }
            Ok(seen) => {
                tally.mismatched.push(i + 1);
                (seen.to_string(), "NOT AS EXPECTED".to_string())
            }
        };
        let expected = row.expect.to_string();
        say!("    {:<36} {:<42} {expected:<14} {seen_word:<14} {verdict}", row.source, row.input);
    }

    // 3. Remove the stage.
    remove_targets(&base, &busy);
    for cgroup in [base, busy] {
        if let Some(path) = cgroup.remove()? {
            say!("parent[{me}]: 3. removed {}", path.display());
        }
    }
    clone_failed?;
    if !tally.mismatched.is_empty() {
        let rows = &tally.mismatched;
        say!("parent[{me}]: NOT AS CLAIMED: rows {rows:?} differ from their sources");
    }
    let mismatched = if tally.mismatched.is_empty() {
        "none".to_string()
    } else {
        tally.mismatched.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",")
    };
    Ok(Summary::new(SCENARIO.name, Verdict::of(tally.mismatched.is_empty()))
        .field("cases", rows.len())
        .field("as_expected", tally.as_expected)
        .field("not_offered", tally.not_offered)
        .field("mismatched", mismatched))
}

/// The rows as they went.
#[derive(Default)]
struct Tally {
    as_expected: usize,
    not_offered: usize,
    /// Row numbers, from 1.
    mismatched: Vec<usize>,
}

/// One row: where it comes from, what it passes, what it expects, and who makes it.
struct Case {
    source: &'static str,
    input: String,
    call: Call,
    expect: Expect,
    needs: Needs,
    maker: Maker,
    /// What a child that is made checks of itself.
    check: ChildCheck,
    /// The pid clone3 must return, where the case asks for one (set_tid), as its maker sees it.
    pid_asked: Option<Pid>,
}

/// A plain row: made by us, as root, with nothing checked but the result.
fn case(
    source: &'static str,
    input: &str,
    args: impl Into<Probe<'static>>,
    expect: Expect,
) -> Case {
    Case {
        source,
        input: input.to_string(),
        call: Call::Clone3(Box::new(args.into())),
        expect,
        needs: Needs::Nothing,
        maker: Maker::Us,
        check: ChildCheck::Nothing,
        pid_asked: None,
    }
}

/// How a case makes its call.
enum Call {
    /// `clone3` through a probe: a fork-like child, if one is made.
    Clone3(Box<Probe<'static>>),
    /// `clone3` with these flags (glibc's thread flags, and more) on a stack of its own, as a
    /// thread built by hand (CLONE_THREAD needs CLONE_VM), born in the cgroup given if any.
    Thread { flags: Flags, into: Option<&'static OwnedFd> },
}

/// Who makes a case's call.
#[derive(Clone, Copy)]
enum Maker {
    /// This process, as root.
    Us,
    /// A child of ours that has become uid and gid 65534 (nobody), without capabilities.
    Nobody,
    /// The same, with RLIMIT_NPROC at 0: no process more for uid 65534.
    NobodyWithNoProcessesLeft,
    /// A child of ours that has become uid 65534 keeping CAP_CHECKPOINT_RESTORE alone.
    NobodyKeepingCheckpointRestore,
    /// A child of ours after `unshare(CLONE_NEWPID)`: its children go into a new PID
    /// namespace, which has no init until the first of them.
    AfterUnsharePid,
    /// The first child of such a process: pid 1, the init, of the new namespace.
    InitOfNewPidNamespace,
}

/// What a case expects: a child (or thread) that passed its checks, this errno, or (where the
/// source checks no more) any failure.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    Child,
    Fails(Errno),
    FailsSomehow,
}

impl Expect {
    fn met_by(&self, seen: &Seen) -> bool {
        match (self, seen) {
            (Expect::Child, Seen::Child | Seen::Thread) => true,
            (Expect::Fails(expected), Seen::Refused(errno)) => expected == errno,
            (Expect::FailsSomehow, Seen::Refused(_)) => true,
            _ => false,
        }
    }
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Child => write!(f, "child"),
            Expect::Fails(errno) => write!(f, "{errno:?}"),
            Expect::FailsSomehow => write!(f, "an error"),
        }
    }
}

/// What a case gave.
#[derive(Clone, Copy, PartialEq)]
enum Seen {
    /// A child, whose checks held.
    Child,
    /// A child whose checks did not hold (another pid, a handler kept), or that ended otherwise.
    ChildNotAsAsked,
    /// A thread, made and joined.
    Thread,
    /// The kernel's refusal.
    Refused(Errno),
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seen::Child => write!(f, "child"),
            Seen::ChildNotAsAsked => write!(f, "child, wrong"),
            Seen::Thread => write!(f, "thread"),
            Seen::Refused(errno) => write!(f, "{errno:?}"),
        }
    }
}

/// What a child checks of itself; its exit status says whether it held (0).
#[derive(Clone, Copy)]
enum ChildCheck {
    Nothing,
    /// `getpid()` is this pid: the one set_tid asked for in its innermost namespace.
    PidIs(Pid),
    /// SIGUSR1 and SIGUSR2, which we catch, are SIG_DFL in it (clone3_clear_sighand.c).
    HandlersDefault,
    /// This signal, which we ignore, is still ignored in it (copy_sighand keeps SIG_IGN).
    StillIgnored(Signal),
}

impl ChildCheck {
    /// The child's side, under the rule for child code: 0 if it holds.
    fn in_child(self) -> i32 {
        let holds = match self {
            ChildCheck::Nothing => true,
            ChildCheck::PidIs(pid) => getpid() == pid,
            ChildCheck::HandlersDefault => [Signal::SIGUSR1, Signal::SIGUSR2]
                .into_iter()
                .all(|signal| matches!(disposition(signal), Ok(Disposition::Default))),
            ChildCheck::StillIgnored(signal) => {
                matches!(disposition(signal), Ok(Disposition::Ignored))
            }
        };
        i32::from(!holds)
    }
}

/// What a kernel may lack for a case; a row that needs it says so instead of passing or
/// failing.
#[derive(Clone, Copy)]
enum Needs {
    Nothing,
    /// CLONE_CLEAR_SIGHAND (5.5).
    ClearSighand,
    /// CLONE_INTO_CGROUP (5.7).
    IntoCgroup,
    /// A flag of Linux 7.1 (the cases expect what a kernel that knows it says).
    Flag71(Flags),
    /// A cgroup v1 hierarchy mounted here, to point CLONE_INTO_CGROUP at.
    CgroupV1,
}

/// What this kernel and machine offer, asked once before the cases.
struct Kernel {
    /// set_tid (5.5), the age of CLONE_CLEAR_SIGHAND too.
    set_tid: bool,
    /// CLONE_INTO_CGROUP (5.7).
    into_cgroup: bool,
    /// A directory of a cgroup v1 hierarchy.
    cgroup_v1: bool,
}

impl Kernel {
    fn ask(freed: Pid) -> Result<Kernel, Error> {
        let with_set_tid = CloneArgs::new(Signal::SIGCHLD).set_tid(&[freed]);
        let set_tid = match try_clone3(&with_set_tid.into())? {
            Ok(_) => true,
            Err(Errno::E2BIG) => false,
            Err(errno) => {
                return Err(Error::Failed(format!("clone3 with set_tid [{freed}]: {errno}")))
            }
        };
        // A kernel without CLONE_INTO_CGROUP refuses the flag (EINVAL) or the size (E2BIG)
        // before it looks at the descriptor.
        let into = Probe::from(CloneArgs::new(Signal::SIGCHLD)).cgroup_value(i32::MAX as u64);
        let into_cgroup = try_clone3(&into)? == Err(Errno::EBADF);
        Ok(Kernel { set_tid, into_cgroup, cgroup_v1: cgroup_v1_directory().is_some() })
    }

    /// Why this machine cannot show `row`, or `None` if it can.
    fn lacks(&self, row: &Case) -> Option<String> {
        if matches!(row.call, Call::Thread { .. }) && !HAND_BUILT_THREADS {
            return Some("a thread by hand is written for x86-64 and aarch64 only".into());
        }
        match row.needs {
            Needs::Nothing => None,
            Needs::ClearSighand => (!self.set_tid).then(|| "CLONE_CLEAR_SIGHAND (5.5)".into()),
            Needs::IntoCgroup => (!self.into_cgroup).then(|| "CLONE_INTO_CGROUP (5.7)".into()),
            // Asked apart, with the flags it must come with: PIDFD_AUTOKILL wants PIDFD and
            // AUTOREAP, and, without CAP_SYS_ADMIN, NNP.
            Needs::Flag71(flag) => {
                let with = if flag == Flags::PIDFD_AUTOKILL {
                    flag | Flags::PIDFD | Flags::AUTOREAP | Flags::NNP
                } else {
                    flag
                };
                match knows_flags(with) {
                    Ok(true) => None,
                    _ => Some(format!("{flag} (7.1)")),
                }
            }
            Needs::CgroupV1 => {
                (!self.cgroup_v1).then(|| "no cgroup v1 hierarchy is mounted".into())
            }
        }
    }
}

/// Makes one case: by us, or in the children its maker needs, which report what they saw in
/// their exit status.
fn made(row: &Case) -> Result<Seen, Error> {
    let maker = row.maker;
    if let Maker::Us = maker {
        return call(row);
    }
    let mut maker_child = fork_child(|| match become_maker(maker) {
        Ok(()) if matches!(maker, Maker::InitOfNewPidNamespace) => {
            // The first child after the unshare is pid 1 of the new namespace: it makes the
            // call, and this child passes its report on.
            match fork_child(|| report(call(row))).and_then(|mut init| init.reap()) {
                Ok(ended) => match ended.outcome {
                    Outcome::Exited(code) => code,
                    Outcome::Killed { .. } => SETUP_FAILED,
                },
                Err(_) => SETUP_FAILED,
            }
        }
        Ok(()) => report(call(row)),
        Err(_) => SETUP_FAILED,
    })?;
    match maker_child.reap()?.outcome {
        Outcome::Exited(SETUP_FAILED) => {
            Err(Error::Failed(format!("the child to make \"{}\" could not set up", row.input)))
        }
        Outcome::Exited(code) => Ok(reported(code)),
        other => Err(Error::Failed(format!("the child to make \"{}\" {other}", row.input))),
    }
}

/// A maker child's exit statuses beside an errno (every errno is below 134): what it saw.
const REPORTED_CHILD: i32 = 0;
const REPORTED_CHILD_NOT_AS_ASKED: i32 = 200;
const REPORTED_THREAD: i32 = 201;
const SETUP_FAILED: i32 = 255;

fn report(seen: Result<Seen, Error>) -> i32 {
    match seen {
        Ok(Seen::Child) => REPORTED_CHILD,
        Ok(Seen::ChildNotAsAsked) => REPORTED_CHILD_NOT_AS_ASKED,
        Ok(Seen::Thread) => REPORTED_THREAD,
        Ok(Seen::Refused(errno)) => errno as i32,
        Err(_) => SETUP_FAILED,
    }
}

fn reported(code: i32) -> Seen {
    match code {
        REPORTED_CHILD => Seen::Child,
        REPORTED_THREAD => Seen::Thread,
        REPORTED_CHILD_NOT_AS_ASKED => Seen::ChildNotAsAsked,
        errno => Seen::Refused(Errno::from_raw(errno)),
    }
}

/// Turns the calling child into the maker it is to be. Allocates nothing.
fn become_maker(maker: Maker) -> Result<(), Error> {
    let nobody = || -> Result<(), Error> {
        setgid(Gid::from_raw(65534)).map_err(|e| Error::sys("setgid", e))?;
        setuid(Uid::from_raw(65534)).map_err(|e| Error::sys("setuid", e))
    };
    match maker {
        Maker::Us => Ok(()),
        Maker::Nobody => nobody(),
        Maker::NobodyWithNoProcessesLeft => {
            setrlimit(Resource::RLIMIT_NPROC, 0, 0).map_err(|e| Error::sys("setrlimit", e))?;
            nobody()
        }
        Maker::NobodyKeepingCheckpointRestore => {
            become_keeping(65534, 65534, CAP_CHECKPOINT_RESTORE)
        }
        Maker::AfterUnsharePid | Maker::InitOfNewPidNamespace => {
            unshare(CloneFlags::CLONE_NEWPID).map_err(|e| Error::sys("unshare(CLONE_NEWPID)", e))
        }
    }
}

/// The case's call, in its maker: what it gave.
fn call(row: &Case) -> Result<Seen, Error> {
    match &row.call {
        Call::Clone3(probe) => {
            let check = row.check;
            match try_clone3_running(probe, move || check.in_child())? {
                Err(errno) => Ok(Seen::Refused(errno)),
                Ok(ended) => {
                    let pid_as_asked =
                        row.pid_asked.map_or(true, |pid| ended.status.pid() == Some(pid));
                    let checked = matches!(ended.status, WaitStatus::Exited(_, 0));
                    Ok(if pid_as_asked && checked { Seen::Child } else { Seen::ChildNotAsAsked })
                }
            }
        }
        Call::Thread { flags, into } => thread(*flags, *into),
    }
}

/// Whether threads by hand are written for this target.
const HAND_BUILT_THREADS: bool =
    cfg!(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu"));

/// glibc's thread flags, where threads by hand are written.
fn nptl_flags() -> Flags {
    #[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu"))]
    return NPTL_FLAGS;
    #[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu")))]
    return Flags::NONE;
}

/// A thread by hand with `flags`, joined if it is made.
// EXCEPTION to the child-code rule, where a maker child calls it (after unshare): a thread by
// hand allocates its state and maps its stacks. The child was forked from a single-threaded
// process, so no lock can be held, and it lives in no small memory cgroup.
#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu"))]
fn thread(flags: Flags, into: Option<&OwnedFd>) -> Result<Seen, Error> {
    match HandBuiltThread::start_into(flags, into) {
        Ok(mut thread) => {
            thread.join()?;
            Ok(Seen::Thread)
        }
        Err(Error::Sys { errno, .. }) => Ok(Seen::Refused(errno)),
        Err(e) => Err(e),
    }
}

#[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu")))]
fn thread(_: Flags, _: Option<&OwnedFd>) -> Result<Seen, Error> {
    Err(Error::cannot_run("threads by hand are written for x86-64 and aarch64 with glibc only"))
}

/// Handlers of ours (that do nothing) for `signals` while it lives: CLONE_CLEAR_SIGHAND is to
/// drop them in a child. SIG_DFL again when dropped.
struct CaughtWhileAlive(Vec<Signal>);

impl CaughtWhileAlive {
    fn catch(signals: impl IntoIterator<Item = Signal>) -> Result<CaughtWhileAlive, Error> {
        let caught = CaughtWhileAlive(signals.into_iter().collect());
        for &signal in &caught.0 {
            set_disposition(signal, Disposition::Caught)?;
        }
        Ok(caught)
    }
}

impl Drop for CaughtWhileAlive {
    fn drop(&mut self) {
        for &signal in &self.0 {
            let _ = set_disposition(signal, Disposition::Default);
        }
    }
}

/// The cgroups the CLONE_INTO_CGROUP cases clone into, opened O_PATH, leaked for the
/// program's life (they are closed at exit): a removed one, a "domain invalid" one, one that
/// hands a controller down, a directory that is no cgroup, and a cgroup v1 directory where
/// one is mounted.
struct Targets {
    empty_leaf: &'static OwnedFd,
    removed: &'static OwnedFd,
    domain_invalid: &'static OwnedFd,
    subtree_control_set: &'static OwnedFd,
    not_a_cgroup: &'static OwnedFd,
    cgroup_v1: Option<&'static OwnedFd>,
}

fn open_path(path: &Path) -> Result<&'static OwnedFd, Error> {
    let dir = fs::File::open(path)
        .map_err(|e| Error::io(&format!("failed to open {}", path.display()), e))?;
    Ok(Box::leak(Box::new(OwnedFd::from(dir))))
}

/// The first cgroup v1 hierarchy mounted here, from `/proc/self/mountinfo` (type `cgroup`).
fn cgroup_v1_directory() -> Option<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mount_point = left.split_whitespace().nth(4)?;
        (right.split_whitespace().next() == Some("cgroup")).then(|| PathBuf::from(mount_point))
    })
}

/// Sets up the cgroups under `base` and `busy` (removed again by [`remove_targets`]): the
/// threaded case turns `base` into a threaded domain, which may not hand memory down, so the
/// subtree_control case has a cgroup of its own.
fn targets(base: &Cgroup, busy: &Cgroup) -> Result<Targets, Error> {
    let dir = |name: &str| base.path().join(name);
    let mkdir = |path: &Path| {
        fs::create_dir(path)
            .map_err(|e| Error::io(&format!("failed to create {}", path.display()), e))
    };
    // Removed: opened, then its directory removed.
    mkdir(&dir("removed"))?;
    let removed = open_path(&dir("removed"))?;
    fs::remove_dir(dir("removed")).map_err(|e| Error::io("failed to remove removed", e))?;
    // A (domain) - B (threaded) - C: C is "domain invalid" until it is made threaded too.
    mkdir(&dir("threaded"))?;
    mkdir(&dir("threaded/invalid"))?;
    cgroup::write_file(&dir("threaded/cgroup.type"), "threaded")?;
    let domain_invalid = open_path(&dir("threaded/invalid"))?;
    // A cgroup that hands memory down to a child may hold no process itself; the child is an
    // empty leaf, which may.
    mkdir(&busy.path().join("child"))?;
    busy.write("cgroup.subtree_control", "+memory")?;
    let subtree_control_set = open_path(busy.path())?;
    let empty_leaf = open_path(&busy.path().join("child"))?;
    let not_a_cgroup = open_path(Path::new("/"))?;
    let cgroup_v1 = cgroup_v1_directory().map(|dir| open_path(&dir)).transpose()?;
    Ok(Targets {
        empty_leaf,
        removed,
        domain_invalid,
        subtree_control_set,
        not_a_cgroup,
        cgroup_v1,
    })
}

fn remove_targets(base: &Cgroup, busy: &Cgroup) {
    for sub in ["threaded/invalid", "threaded"] {
        let _ = fs::remove_dir(base.path().join(sub));
    }
    let _ = fs::remove_dir(busy.path().join("child"));
}

/// A pid that no process has now: one of a child that has just been reaped.
fn freed_pid() -> Result<Pid, Error> {
    let mut child = fork_child(|| 0)?;
    child.reap()?;
    Ok(child.pid())
}

/// `CLONE_ARGS_SIZE_VER0`: the first struct clone_args, before set_tid (64 bytes).
const SIZE_VER0: usize = 64;
/// `MAX_PID_NS_LEVEL`: how deep PID namespaces nest.
const MAX_PID_NS_LEVEL: u64 = 32;

const EINVAL: Expect = Expect::Fails(Errno::EINVAL);

fn sigchld() -> CloneArgs<'static> {
    CloneArgs::new(Signal::SIGCHLD)
}

fn tids(pids: &[i32]) -> Vec<Pid> {
    pids.iter().map(|&p| Pid::from_raw(p)).collect()
}

/// The cases, in the order of their sources.
fn cases(targets: &Targets, pid_max: i32, freed: Pid) -> Vec<Case> {
    let mut all = clone3_c_cases();
    all.extend(set_tid_cases(pid_max, freed));
    all.extend(nested_set_tid_cases(freed));
    all.extend(clear_sighand_cases());
    all.extend(cap_checkpoint_restore_cases(freed));
    all.extend(autoreap_and_empty_mntns_cases());
    all.extend(cgroup_cases(targets));
    all.extend(kernel_cases(targets));
    all
}

/// clone3.c: sizes of struct clone_args, exit signals, flags; and the probe of
/// clone3_selftests.h.
fn clone3_c_cases() -> Vec<Case> {
    use Expect::{Child, Fails};
    let exit_signal = CloneArgs::with_exit_signal;
    let (size, page) = (CloneArgs::SIZE, clone_cgroup::memory::page_size());
    let e2big = Fails(Errno::E2BIG);
    let newpid = || sigchld().flags(Flags::NEWPID);
    // The selftest passes a struct followed by two words, the second 1: a size that reaches it
    // gives E2BIG. Its "sizeof(struct clone_args) * 2" case passes sizeof + 16 all the same.
    let s = "clone3.c";
    vec![
        case(s, "simple: flags 0, size 88", sigchld(), Child),
        case(s, "CLONE_NEWPID", newpid(), Child),
        case(s, "size 64 (VER0)", sigchld().size(SIZE_VER0, 1, 1), Child),
        case(s, "size 56 (VER0 - 8)", sigchld().size(SIZE_VER0 - 8, 1, 1), EINVAL),
        case(s, "size 96 (sizeof + 8)", sigchld().size(size + 8, 1, 1), Child),
        case(s, "exit_signal 0xbadc0ded00000000", exit_signal(0xbadc0ded00000000), EINVAL),
        case(s, "exit_signal 0x80000000 (negative)", exit_signal(0x8000_0000), EINVAL),
        case(s, "exit_signal 0x100 (beyond CSIGNAL)", exit_signal(0x100), EINVAL),
        case(s, "exit_signal 0xf0 (beyond NSIG)", exit_signal(0xf0), EINVAL),
        case(s, "all 0, size 96", exit_signal(0).size(size + 8, 1, 1), Child),
        case(s, "all 0, size 104, a word not zero", exit_signal(0).size(size + 16, 1, 1), e2big),
        case(s, "all 0, \"sizeof * 2\": size 104", exit_signal(0).size(size + 16, 1, 1), e2big),
        case(s, "size a page + 8", sigchld().size(page + 8, 1, 1), e2big),
        case(s, "CLONE_NEWPID, size 64", newpid().size(SIZE_VER0, 1, 1), Child),
        case(s, "CLONE_NEWPID, size 56", newpid().size(SIZE_VER0 - 8, 1, 1), EINVAL),
        case(s, "CLONE_NEWPID, size 96", newpid().size(size + 8, 1, 1), Child),
        case(s, "CLONE_NEWPID, size a page + 8", newpid().size(page + 8, 1, 1), e2big),
        // Refused with EINVAL until "fork: allow CLONE_NEWTIME in clone3 flags" (6.3, taken
        // into the stable lines: every kernel the suite boots accepts it).
        case(s, "CLONE_NEWTIME", sigchld().flags(Flags::NEWTIME), Child),
        case(s, "SIGCHLD in flags (a CSIGNAL bit)", sigchld().flags(Flags(0x11)), EINVAL),
        // The selftests' probe of whether clone3 exists at all: a call the kernel must refuse.
        case("clone3_selftests.h", "exit_signal -1 (the probe)", exit_signal(u64::MAX), EINVAL),
    ]
}

/// A case whose child must get `pid` in its innermost namespace (it checks) and, where
/// `returned` is given, whose maker must get `returned` back from clone3.
fn with_pid(row: Case, pid: Pid, returned: Option<Pid>) -> Case {
    Case { check: ChildCheck::PidIs(pid), pid_asked: returned, ..row }
}

/// clone3_set_tid.c, up to its unshare of a PID namespace.
fn set_tid_cases(pid_max: i32, freed: Pid) -> Vec<Case> {
    use Expect::{Child, Fails};
    let newpid = || sigchld().flags(Flags::NEWPID);
    let (levels, zeros, ones) = (MAX_PID_NS_LEVEL, tids(&[0; 64]), tids(&[-1; 64]));
    let s = "clone3_set_tid.c";
    let mut all = Vec::new();
    for (fill, array) in [("0 TIDs", &zeros), ("TIDs all 1s", &ones)] {
        for n in [levels + 1, levels * 2, levels * 2 + 1, levels * 42, levels - 1] {
            let input = format!("set_tid_size {n}, {fill}");
            all.push(case(s, &input, sigchld().set_tid(array).set_tid_size(n), EINVAL));
        }
    }
    let one = Pid::from_raw(1);
    all.extend([
        case(s, "set_tid [0]", sigchld().set_tid(&tids(&[0])), EINVAL),
        case(s, "set_tid [-1]", sigchld().set_tid(&tids(&[-1])), EINVAL),
        case(s, "set_tid [-1, 0], size 2", sigchld().set_tid(&tids(&[-1, 0])), EINVAL),
        case(s, "set_tid [-1], CLONE_NEWPID", newpid().set_tid(&tids(&[-1])), EINVAL),
        case(s, "set_tid [1]: pid 1 is taken", sigchld().set_tid(&[one]), Fails(Errno::EEXIST)),
        with_pid(case(s, "set_tid [1], CLONE_NEWPID", newpid().set_tid(&[one]), Child), one, None),
        case(s, "set_tid [pid_max]", sigchld().set_tid(&tids(&[pid_max])), EINVAL),
        case(s, "set_tid [pid_max], CLONE_NEWPID", newpid().set_tid(&tids(&[pid_max])), EINVAL),
        with_pid(
            case(s, "set_tid [a freed pid]", sigchld().set_tid(&[freed]), Child),
            freed,
            Some(freed),
        ),
        case(s, "set_tid [a freed pid], CLONE_NEWPID", newpid().set_tid(&[freed]), EINVAL),
        with_pid(
            case(
                s,
                "set_tid [1, a freed pid], CLONE_NEWPID",
                newpid().set_tid(&[one, freed]),
                Child,
            ),
            one,
            Some(freed),
        ),
    ]);
    all
}

/// clone3_set_tid.c after its `unshare(CLONE_NEWPID)`: in the process that unshared, whose
/// children go into a namespace with no init yet, and in that namespace's init.
fn nested_set_tid_cases(freed: Pid) -> Vec<Case> {
    let s = "clone3_set_tid.c (new PID ns)";
    let newpid = || sigchld().flags(Flags::NEWPID);
    let made_by = |maker: Maker, row: Case| Case { maker, ..row };
    let (unshared, init) = (Maker::AfterUnsharePid, Maker::InitOfNewPidNamespace);
    let (one, two, fortytwo) = (Pid::from_raw(1), Pid::from_raw(2), Pid::from_raw(42));
    vec![
        // "There is no PID 1 in that namespace": alloc_pid refuses a pid other than 1 there.
        made_by(
            unshared,
            case(s, "after unshare: set_tid [a freed pid]", sigchld().set_tid(&[freed]), EINVAL),
        ),
        made_by(
            init,
            with_pid(
                case(s, "its init: set_tid [2]", sigchld().set_tid(&[two]), Expect::Child),
                two,
                Some(two),
            ),
        ),
        made_by(
            init,
            case(
                s,
                "its init: set_tid [1, -1, freed], NEWPID",
                newpid().set_tid(&[one, Pid::from_raw(-1), freed]),
                EINVAL,
            ),
        ),
        // One level more than there are namespaces: 4 against 3.
        made_by(
            init,
            case(
                s,
                "its init: set_tid [1, 42, freed, 0], size 4",
                newpid().set_tid(&[one, fortytwo, freed, Pid::from_raw(0)]),
                EINVAL,
            ),
        ),
        made_by(
            init,
            with_pid(
                case(
                    s,
                    "its init: set_tid [1, 42, freed], NEWPID",
                    newpid().set_tid(&[one, fortytwo, freed]),
                    Expect::Child,
                ),
                one,
                Some(fortytwo),
            ),
        ),
    ]
}

/// clone3_clear_sighand.c, and what copy_sighand does beside it: an ignored signal stays
/// ignored (SIGPIPE, which Rust's runtime ignores at start).
fn clear_sighand_cases() -> Vec<Case> {
    let s = "clone3_clear_sighand.c";
    let clear = || sigchld().flags(Flags::CLEAR_SIGHAND);
    let needs = Needs::ClearSighand;
    vec![
        Case {
            needs,
            check: ChildCheck::HandlersDefault,
            ..case(s, "CLONE_CLEAR_SIGHAND: handlers to SIG_DFL", clear(), Expect::Child)
        },
        Case {
            needs,
            ..case(
                s,
                "CLONE_CLEAR_SIGHAND | CLONE_SIGHAND",
                clear().flags(Flags::SIGHAND),
                Expect::FailsSomehow,
            )
        },
        Case {
            needs,
            check: ChildCheck::StillIgnored(Signal::SIGPIPE),
            ..case(
                "fork.c copy_sighand",
                "CLONE_CLEAR_SIGHAND: SIG_IGN stays",
                clear(),
                Expect::Child,
            )
        },
    ]
}

/// clone3_cap_checkpoint_restore.c: set_tid as uid 65534, refused without
/// CAP_CHECKPOINT_RESTORE (5.9) or CAP_SYS_ADMIN, accepted with the former alone.
fn cap_checkpoint_restore_cases(freed: Pid) -> Vec<Case> {
    let s = "clone3_cap_checkpoint_restore.c";
    let asked = || sigchld().set_tid(&[freed]);
    vec![
        Case {
            maker: Maker::Nobody,
            ..case(s, "set_tid [a freed pid], uid 65534", asked(), Expect::Fails(Errno::EPERM))
        },
        Case {
            maker: Maker::NobodyKeepingCheckpointRestore,
            ..with_pid(
                case(s, "the same, keeping CAP_CHECKPOINT_RESTORE", asked(), Expect::Child),
                freed,
                Some(freed),
            )
        },
    ]
}

/// pidfd/pidfd_autoreap_test.c's and filesystems/empty_mntns/clone3_empty_mntns_test.c's
/// refusals (Linux 7.1).
fn autoreap_and_empty_mntns_cases() -> Vec<Case> {
    let s = "pidfd_autoreap_test.c";
    let exit_0 = || CloneArgs::with_exit_signal(0);
    let (autoreap, autokill, nnp) = (Flags::AUTOREAP, Flags::PIDFD_AUTOKILL, Flags::NNP);
    let new = |flag: Flags, row: Case| Case { needs: Needs::Flag71(flag), ..row };
    let thread = |input: &str, flags: Flags| Case {
        call: Call::Thread { flags: nptl_flags() | flags, into: None },
        ..case(s, input, sigchld(), EINVAL)
    };
    let e = "clone3_empty_mntns_test.c";
    let empty = || sigchld().flags(Flags::EMPTY_MNTNS);
    vec![
        new(autoreap, case(s, "AUTOREAP, exit_signal SIGCHLD", sigchld().flags(autoreap), EINVAL)),
        new(
            autoreap,
            case(s, "AUTOREAP | PARENT", exit_0().flags(autoreap | Flags::PARENT), EINVAL),
        ),
        new(autoreap, thread("AUTOREAP | THREAD (a thread)", autoreap)),
        new(nnp, thread("NNP | THREAD (a thread)", nnp)),
        new(
            autokill,
            case(
                s,
                "PIDFD_AUTOKILL | AUTOREAP, no PIDFD",
                exit_0().flags(autoreap | autokill),
                EINVAL,
            ),
        ),
        new(
            autokill,
            case(
                s,
                "PIDFD_AUTOKILL | PIDFD, no AUTOREAP",
                sigchld().pidfd().flags(autokill),
                EINVAL,
            ),
        ),
        new(
            autokill,
            thread("PIDFD_AUTOKILL | THREAD (a thread)", Flags::PIDFD | autoreap | autokill),
        ),
        new(
            autokill,
            Case {
                maker: Maker::Nobody,
                ..case(
                    s,
                    "PIDFD_AUTOKILL, no NNP, uid 65534",
                    exit_0().pidfd().flags(autoreap | autokill),
                    Expect::Fails(Errno::EPERM),
                )
            },
        ),
        new(
            Flags::EMPTY_MNTNS,
            case(e, "EMPTY_MNTNS | CLONE_FS", empty().flags(Flags::FS), EINVAL),
        ),
        new(
            Flags::EMPTY_MNTNS,
            Case {
                maker: Maker::Nobody,
                ..case(e, "EMPTY_MNTNS, uid 65534", empty(), Expect::Fails(Errno::EPERM))
            },
        ),
    ]
}

/// cgroup/test_core.c's CLONE_INTO_CGROUP cases, and the cgroup code's own refusals.
fn cgroup_cases(targets: &Targets) -> Vec<Case> {
    use Expect::{Child, Fails, FailsSomehow};
    let into = |fd: &'static OwnedFd| sigchld().into_cgroup(fd);
    let (core, fork) = ("cgroup/test_core.c", "cgroup.c cgroup_css_set_fork");
    let mut rows = vec![
        case(core, "CLONE_INTO_CGROUP, an empty leaf", into(targets.empty_leaf), Child),
        case(core, "CLONE_INTO_CGROUP, a removed cgroup", into(targets.removed), FailsSomehow),
        case(
            core,
            "CLONE_INTO_CGROUP, a domain invalid one",
            into(targets.domain_invalid),
            Fails(Errno::EOPNOTSUPP),
        ),
        case(
            core,
            "CLONE_INTO_CGROUP, subtree_control set",
            into(targets.subtree_control_set),
            FailsSomehow,
        ),
        // The removed cgroup's directory is no cgroup online: the lookup of the descriptor
        // fails (css_tryget_online_from_dir) before the ENODEV of a dead cgroup is reached.
        case(
            "cgroup.c css_tryget_online_from_dir",
            "CLONE_INTO_CGROUP, a removed cgroup",
            into(targets.removed),
            Fails(Errno::ENOENT),
        ),
        case(
            fork,
            "CLONE_INTO_CGROUP, / (not a cgroup)",
            into(targets.not_a_cgroup),
            Fails(Errno::EBADF),
        ),
        case(
            fork,
            "CLONE_INTO_CGROUP, fd not open",
            Probe::from(sigchld()).cgroup_value(i32::MAX as u64),
            Fails(Errno::EBADF),
        ),
        Case {
            maker: Maker::Nobody,
            ..case(
                "cgroup.c cgroup_may_write",
                "CLONE_INTO_CGROUP, uid 65534",
                into(targets.empty_leaf),
                Fails(Errno::EACCES),
            )
        },
        // One of another domain than ours: a thread must stay in its process's domain.
        Case {
            call: Call::Thread { flags: nptl_flags(), into: Some(targets.empty_leaf) },
            ..case(
                "cgroup.c cgroup_attach_permissions",
                "CLONE_THREAD into another domain",
                sigchld(),
                Fails(Errno::EOPNOTSUPP),
            )
        },
        case(
            "fork.c copy_clone_args_from_user",
            "CLONE_INTO_CGROUP, size 80 (VER1)",
            into(targets.empty_leaf).size(80, 1, 1),
            EINVAL,
        ),
        case(
            "fork.c copy_clone_args_from_user",
            "CLONE_INTO_CGROUP, cgroup 2^32",
            Probe::from(sigchld()).cgroup_value(1 << 32),
            EINVAL,
        ),
    ];
    // A directory of a cgroup v1 hierarchy: cgroup_get_from_file takes the default (v2) one
    // only. Where none is mounted, the row says so.
    let v1 = match targets.cgroup_v1 {
        Some(dir) => Case {
            needs: Needs::CgroupV1,
            ..case(
                "cgroup.c cgroup_get_from_file",
                "CLONE_INTO_CGROUP, a cgroup v1 dir",
                into(dir),
                Fails(Errno::EBADF),
            )
        },
        None => Case {
            needs: Needs::CgroupV1,
            ..case(
                "cgroup.c cgroup_get_from_file",
                "CLONE_INTO_CGROUP, a cgroup v1 dir",
                sigchld(),
                Fails(Errno::EBADF),
            )
        },
    };
    rows.push(v1);
    rows.into_iter()
        .map(|row| match row.needs {
            Needs::Nothing => Case { needs: Needs::IntoCgroup, ..row },
            _ => row,
        })
        .collect()
}

/// The refusals of kernel/fork.c's clone3 path (and nsproxy.c's) that no selftest makes, each
/// labelled with the function that decides it.
fn kernel_cases(_: &Targets) -> Vec<Case> {
    let exit_0 = || CloneArgs::with_exit_signal(0);
    let page = clone_cgroup::memory::page_size() as u64;
    let args = "fork.c copy_clone_args_from_user";
    let (valid, stack, process) =
        ("fork.c clone3_args_valid", "fork.c clone3_stack_valid", "fork.c copy_process");
    let ipc_sem = Flags::NEWIPC | Flags::SYSVSEM;
    let thread = |input: &str, flags: Flags| Case {
        call: Call::Thread { flags, into: None },
        ..case(process, input, sigchld(), EINVAL)
    };
    let efault = Expect::Fails(Errno::EFAULT);
    vec![
        case(args, "set_tid_size 1, no set_tid", sigchld().set_tid_size(1), EINVAL),
        case(
            args,
            "set_tid given, set_tid_size 0",
            Probe::from(sigchld()).set_tid_raw(UNMAPPED, 0),
            EINVAL,
        ),
        case(
            args,
            "set_tid in memory that is not there",
            Probe::from(sigchld()).set_tid_raw(UNMAPPED, 1),
            efault,
        ),
        case(
            args,
            "the struct in memory that is not there",
            Probe::from(sigchld()).args_at(UNMAPPED),
            efault,
        ),
        case(valid, "an unknown flag, bit 38", sigchld().flags(Flags(1 << 38)), EINVAL),
        case(valid, "CLONE_DETACHED (clone ignores it)", sigchld().flags(Flags::DETACHED), EINVAL),
        case(
            valid,
            "CLONE_DETACHED | CLONE_PIDFD",
            sigchld().flags(Flags::DETACHED).pidfd(),
            EINVAL,
        ),
        case(valid, "CLONE_THREAD, exit_signal SIGCHLD", sigchld().flags(Flags::THREAD), EINVAL),
        case(valid, "CLONE_PARENT, exit_signal SIGCHLD", sigchld().flags(Flags::PARENT), EINVAL),
        case(stack, "stack_size without a stack", sigchld().stack(0, 4096), EINVAL),
        case(stack, "a stack without stack_size", sigchld().stack(page, 0), EINVAL),
        case(stack, "a stack in the kernel's half", sigchld().stack(KERNEL_HALF, page), EINVAL),
        case(process, "CLONE_NEWNS | CLONE_FS", sigchld().flags(Flags::NEWNS | Flags::FS), EINVAL),
        case(
            process,
            "CLONE_NEWUSER | CLONE_FS",
            sigchld().flags(Flags::NEWUSER | Flags::FS),
            EINVAL,
        ),
        case(
            process,
            "CLONE_THREAD, exit 0, no CLONE_SIGHAND",
            exit_0().flags(Flags::THREAD),
            EINVAL,
        ),
        case(process, "CLONE_SIGHAND without CLONE_VM", sigchld().flags(Flags::SIGHAND), EINVAL),
        thread("CLONE_THREAD | CLONE_NEWPID (a thread)", nptl_flags() | Flags::NEWPID),
        // Without CLONE_FS, whose check beside CLONE_NEWUSER would come first.
        thread(
            "CLONE_THREAD | CLONE_NEWUSER (a thread)",
            nptl_flags().without(Flags::FS) | Flags::NEWUSER,
        ),
        Case {
            maker: Maker::AfterUnsharePid,
            ..thread("CLONE_THREAD after unshare(NEWPID)", nptl_flags())
        },
        Case {
            maker: Maker::InitOfNewPidNamespace,
            ..case(
                process,
                "CLONE_PARENT from a PID ns init",
                exit_0().flags(Flags::PARENT),
                EINVAL,
            )
        },
        case(
            process,
            "CLONE_PIDFD, pidfd in memory not there",
            Probe::from(sigchld()).pidfd_at(UNMAPPED),
            efault,
        ),
        Case {
            maker: Maker::NobodyWithNoProcessesLeft,
            ..case(process, "uid 65534, RLIMIT_NPROC 0", sigchld(), Expect::Fails(Errno::EAGAIN))
        },
        case(
            "fork.c kernel_clone",
            "PIDFD, PARENT_SETTID at its word",
            Probe::from(sigchld()).parent_tid_at_pidfd(),
            EINVAL,
        ),
        case(
            "nsproxy.c copy_namespaces",
            "CLONE_NEWIPC | CLONE_SYSVSEM",
            sigchld().flags(ipc_sem),
            EINVAL,
        ),
        Case {
            maker: Maker::Nobody,
            ..case(
                "nsproxy.c copy_namespaces",
                "CLONE_NEWPID, uid 65534",
                sigchld().flags(Flags::NEWPID),
                Expect::Fails(Errno::EPERM),
            )
        },
    ]
}
