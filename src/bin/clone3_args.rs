//! clone3_args: the argument checks of the kernel's own clone3 selftests, one row per case:
//! the input, the result the selftest expects, the result this kernel gives.
//!
//! Usage: `cargo sudo-run --bin clone3_args` (root: set_tid, CLONE_NEWPID and cgroups need it)
//!
//! The cases come from tools/testing/selftests/clone3/clone3.c (sizes of struct clone_args,
//! exit signals), clone3_set_tid.c (set_tid arrays), clone3_clear_sighand.c, and the
//! CLONE_INTO_CGROUP cases of tools/testing/selftests/cgroup/test_core.c (a removed cgroup, a
//! "domain invalid" one, one whose subtree_control is set), plus flags the kernel refuses and
//! a descriptor that is not a cgroup. Each goes through the library's CloneArgs, unchanged:
//! where a case expects success, the child exits 0 at once and is reaped. A kernel that
//! predates a feature the case needs says so in the row instead of failing it. Expect every
//! row to match and exit status 0.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::ExitCode;

use clone_cgroup::cgroup::{self, Cgroup};
use clone_cgroup::cli::{no_options, Scenario, Summary, Verdict};
use clone_cgroup::clone3::{not_offered, CloneArgs, Flags};
use clone_cgroup::clone3_probe::{try_clone3, Probe};
use clone_cgroup::process::{fork_child, Outcome};
use clone_cgroup::sync::SignalWatch;
use clone_cgroup::Error;
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::{geteuid, getpid, Pid};

const SCENARIO: Scenario = Scenario {
    name: "clone3_args",
    about: "The argument checks of the kernel's clone3 selftests, through CloneArgs: each case's\n\
            input, the result the selftest expects, and the result this kernel gives.",
    options: "",
};

/// `CLONE_ARGS_SIZE_VER0`: the first struct clone_args, before set_tid (64 bytes).
const SIZE_VER0: usize = 64;
/// `MAX_PID_NS_LEVEL`: how deep PID namespaces nest.
const MAX_PID_NS_LEVEL: u64 = 32;

/// What a case expects: a child that exits 0, this errno, or (where the selftest checks no
/// more) any failure.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    Child,
    Fails(Errno),
    FailsSomehow,
}

/// What a kernel may lack for a case; a row that needs it says so instead of failing.
#[derive(Clone, Copy)]
enum Needs {
    Nothing,
    ClearSighand,
    IntoCgroup,
}

/// One row: where it comes from, what it passes, what it expects.
struct Case {
    source: &'static str,
    input: String,
    args: Probe<'static>,
    expect: Expect,
    needs: Needs,
}

fn case(
    source: &'static str,
    input: &str,
    args: impl Into<Probe<'static>>,
    expect: Expect,
) -> Case {
    Case { source, input: input.to_string(), args: args.into(), expect, needs: Needs::Nothing }
}

/// The cgroups the CLONE_INTO_CGROUP cases clone into, opened O_PATH, leaked for the
/// program's life (they are closed at exit): a removed one, a "domain invalid" one, one that
/// hands a controller down, and a directory that is no cgroup.
struct Targets {
    removed: &'static OwnedFd,
    domain_invalid: &'static OwnedFd,
    subtree_control_set: &'static OwnedFd,
    not_a_cgroup: &'static OwnedFd,
}

fn open_path(path: &Path) -> Result<&'static OwnedFd, Error> {
    let dir = fs::File::open(path)
        .map_err(|e| Error::io(&format!("failed to open {}", path.display()), e))?;
    Ok(Box::leak(Box::new(OwnedFd::from(dir))))
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
    // A cgroup that hands memory down to a child may hold no process itself.
    mkdir(&busy.path().join("child"))?;
    busy.write("cgroup.subtree_control", "+memory")?;
    let subtree_control_set = open_path(busy.path())?;
    let not_a_cgroup = open_path(Path::new("/"))?;
    Ok(Targets { removed, domain_invalid, subtree_control_set, not_a_cgroup })
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

/// The cases, in the order of their sources.
fn cases(targets: &Targets, pid_max: i32, freed: Pid) -> Vec<Case> {
    use Expect::{Child, Fails};
    let sigchld = || CloneArgs::new(Signal::SIGCHLD);
    let exit_signal = CloneArgs::with_exit_signal;
    let size = CloneArgs::SIZE;
    let page = clone_cgroup::memory::page_size();
    let einval = Fails(Errno::EINVAL);
    let e2big = Fails(Errno::E2BIG);
    let newpid = || sigchld().flags(Flags::NEWPID);
    let tids = |pids: &[i32]| pids.iter().map(|&p| Pid::from_raw(p)).collect::<Vec<_>>();
    let s = "clone3.c";
    let mut all = vec![
        case(s, "flags 0, size 88", sigchld(), Child),
        case(s, "CLONE_NEWPID", newpid(), Child),
        case(s, "size 64 (VER0)", sigchld().size(SIZE_VER0, 0, 0), Child),
        case(s, "size 56 (VER0 - 8)", sigchld().size(SIZE_VER0 - 8, 0, 0), einval),
        case(s, "size 96, zero tail", sigchld().size(size + 8, 0, 0), Child),
        case(s, "exit_signal 0xbadc0ded00000000", exit_signal(0xbadc0ded00000000), einval),
        case(s, "exit_signal 0x80000000 (negative)", exit_signal(0x8000_0000), einval),
        case(s, "exit_signal 0x100 (beyond CSIGNAL)", exit_signal(0x100), einval),
        case(s, "exit_signal 0xf0 (beyond NSIG)", exit_signal(0xf0), einval),
        case(s, "flags 0, exit_signal 0, size 96", exit_signal(0).size(size + 8, 0, 0), Child),
        case(s, "size 104, tail not zero", exit_signal(0).size(size + 16, 1, 1), e2big),
        case(s, "size 176, tail not zero", exit_signal(0).size(size * 2, 1, 1), e2big),
        case(s, "size a page + 8", sigchld().size(page + 8, 0, 0), e2big),
        case(s, "CLONE_NEWPID, size 64", newpid().size(SIZE_VER0, 0, 0), Child),
        case(s, "CLONE_NEWPID, size 56", newpid().size(SIZE_VER0 - 8, 0, 0), einval),
        case(s, "CLONE_NEWPID, size 96", newpid().size(size + 8, 0, 0), Child),
        case(s, "CLONE_NEWPID, size a page + 8", newpid().size(page + 8, 0, 0), e2big),
    ];
    let s = "clone3_set_tid.c";
    let levels = MAX_PID_NS_LEVEL;
    all.extend([
        case(
            s,
            "set_tid_size 33 (> MAX_PID_NS_LEVEL)",
            sigchld().set_tid(&tids(&[0])).set_tid_size(levels + 1),
            einval,
        ),
        case(s, "set_tid_size 64", sigchld().set_tid(&tids(&[0])).set_tid_size(levels * 2), einval),
        case(s, "set_tid [0]", sigchld().set_tid(&tids(&[0])), einval),
        case(s, "set_tid [-1]", sigchld().set_tid(&tids(&[-1])), einval),
        case(
            s,
            "set_tid [-1, 0], size 2, one namespace",
            sigchld().set_tid(&tids(&[-1, 0])),
            einval,
        ),
        case(
            s,
            "set_tid [1]: pid 1 is taken",
            sigchld().set_tid(&tids(&[1])),
            Fails(Errno::EEXIST),
        ),
        case(s, "set_tid [1], CLONE_NEWPID", newpid().set_tid(&tids(&[1])), Child),
        case(s, "set_tid [pid_max]", sigchld().set_tid(&tids(&[pid_max])), einval),
        case(s, "set_tid [a freed pid]", sigchld().set_tid(&[freed]), Child),
        case(s, "set_tid [a freed pid], CLONE_NEWPID", newpid().set_tid(&[freed]), einval),
    ]);
    let s = "clone3_clear_sighand.c";
    let clear = sigchld().flags(Flags::CLEAR_SIGHAND);
    all.extend([
        Case { needs: Needs::ClearSighand, ..case(s, "CLONE_CLEAR_SIGHAND", clear.clone(), Child) },
        case(s, "CLONE_CLEAR_SIGHAND | CLONE_SIGHAND", clear.flags(Flags::SIGHAND), einval),
    ]);
    let s = "kernel/fork.c";
    all.extend([
        case(s, "CLONE_DETACHED (clone ignores it)", sigchld().flags(Flags::DETACHED), einval),
        case(s, "CLONE_SIGHAND without CLONE_VM", sigchld().flags(Flags::SIGHAND), einval),
        case(s, "CLONE_THREAD without CLONE_SIGHAND", sigchld().flags(Flags::THREAD), einval),
        case(s, "stack_size without a stack", sigchld().stack(0, 4096), einval),
    ]);
    let s = "cgroup/test_core.c";
    let into = |fd: &'static OwnedFd| sigchld().into_cgroup(fd);
    for (input, fd, expect) in [
        ("CLONE_INTO_CGROUP, a removed cgroup", targets.removed, Expect::FailsSomehow),
        (
            "CLONE_INTO_CGROUP, a domain invalid cgroup",
            targets.domain_invalid,
            Fails(Errno::EOPNOTSUPP),
        ),
        (
            "CLONE_INTO_CGROUP, subtree_control set",
            targets.subtree_control_set,
            Fails(Errno::EBUSY),
        ),
        ("CLONE_INTO_CGROUP, / (not a cgroup)", targets.not_a_cgroup, Fails(Errno::EBADF)),
    ] {
        all.push(Case { needs: Needs::IntoCgroup, ..case(s, input, into(fd), expect) });
    }
    all
}

/// What the kernel did, as the table shows it: `child exited 0` or the errno's name.
fn shown(result: &Result<Outcome, Errno>) -> String {
    match result {
        Ok(Outcome::Exited(0)) => "child".to_string(),
        Ok(outcome) => format!("child {outcome}"),
        Err(errno) => format!("{errno:?}"),
    }
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

    // SIGINT, SIGTERM and SIGHUP wait, blocked, until the stage is removed (a run takes well
    // under a second); the run then ends with 128 + the signal.
    let _watch = SignalWatch::interruptions_only()?;

    // 1. The stage: a cgroup of our own with the targets of the CLONE_INTO_CGROUP cases, a pid
    //    that has just been freed, and the largest pid.
    let (base, notes) = cgroup::prepare("memory", None, None)?;
    let (busy, more) = cgroup::prepare("memory", None, None)?;
    for note in notes.into_iter().chain(more) {
        println!("parent[{me}]: 1. {note}");
    }
    let targets = targets(&base, &busy);
    let pid_max = fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    let freed = freed_pid()?;
    println!("parent[{me}]: 1. pid_max {pid_max}; pid {freed} has just been freed");

    // 2. Each case through CloneArgs, as it is; a child that is created exits 0 at once.
    let rows = match &targets {
        Ok(targets) => cases(targets, pid_max, freed),
        Err(e) => {
            remove_targets(&base, &busy);
            return Err(Error::Failed(format!("the cgroups of the CLONE_INTO_CGROUP cases: {e}")));
        }
    };
    println!("parent[{me}]: 2. {} cases:", rows.len());
    println!("    {:<23} {:<43} {:<14} {:<14}", "source", "input", "expected", "seen");
    let mut mismatched = Vec::new();
    let mut clone_failed = Ok(());
    for (i, row) in rows.iter().enumerate() {
        // The stage is removed below whatever happens here.
        let result = match try_clone3(&row.args) {
            Ok(result) => result.map(|ended| ended.outcome),
            Err(e) => {
                clone_failed = Err(e);
                break;
            }
        };
        let expected = match row.expect {
            Expect::Child => "child".to_string(),
            Expect::Fails(errno) => format!("{errno:?}"),
            Expect::FailsSomehow => "an error".to_string(),
        };
        let seen = shown(&result);
        let matched = seen == expected || (row.expect == Expect::FailsSomehow && result.is_err());
        // E2BIG or EINVAL for a field or flag this kernel does not know: too old, not wrong.
        let predates = match (row.needs, &result) {
            (Needs::ClearSighand, Err(Errno::EINVAL)) => Some("CLONE_CLEAR_SIGHAND (5.5)"),
            (Needs::IntoCgroup, Err(Errno::E2BIG)) => Some("CLONE_INTO_CGROUP (5.7)"),
            _ => None,
        };
        let verdict = match predates {
            Some(feature) => format!("not offered by this kernel: {feature}"),
            None if matched => "as expected".to_string(),
            None => {
                mismatched.push(i + 1);
                "NOT AS EXPECTED".to_string()
            }
        };
        println!("    {:<23} {:<43} {expected:<14} {seen:<14} {verdict}", row.source, row.input);
    }

    // 3. Remove the stage.
    remove_targets(&base, &busy);
    for cgroup in [base, busy] {
        let path = cgroup.path().to_path_buf();
        cgroup.remove()?;
        println!("parent[{me}]: 3. removed {}", path.display());
    }
    clone_failed?;
    if !mismatched.is_empty() {
        println!("parent[{me}]: NOT AS CLAIMED: rows {mismatched:?} differ from the selftests");
    }
    Ok(Summary::new(SCENARIO.name, Verdict::of(mismatched.is_empty()))
        .field("cases", rows.len())
        .field("as_expected", rows.len() - mismatched.len())
        .field(
            "mismatched",
            if mismatched.is_empty() {
                "none".to_string()
            } else {
                mismatched.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",")
            },
        ))
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}
