//! clone3_args: the kernel's own checks of clone3's arguments, one row per case: the input,
//! the result the case expects, the result this kernel gives.
//!
//! Usage: `cargo sudo-run --bin clone3_args` (root: set_tid, CLONE_NEWPID and cgroups need it)
//!
//! The cases are every case of the kernel's clone3 selftests (tools/testing/selftests/clone3/:
//! clone3.c, clone3_set_tid.c up to its unshare of a PID namespace,
//! clone3_clear_sighand.c, clone3_cap_checkpoint_restore.c's refusal), the CLONE_INTO_CGROUP
//! cases of tools/testing/selftests/cgroup/test_core.c, and each refusal of the kernel's clone3
//! path that no selftest makes, labelled with the function it is in (kernel/fork.c unless
//! named: copy_clone_args_from_user, clone3_args_valid, clone3_stack_valid, copy_process,
//! kernel_clone; nsproxy.c's copy_namespaces; cgroup.c's cgroup_css_set_fork). Each goes
//! through the library's CloneArgs, or a clone3_probe where the case needs what CloneArgs would
//! not build; where a case expects success, the child exits 0 at once and is reaped. Two cases
//! run as uid 65534 (nobody), in a child of ours. Where a selftest checks only that the call
//! fails, the row expects "an error" and shows the errno. A kernel that lacks the feature a
//! case needs says so in the row instead of failing it. Expect every row to match and exit
//! status 0.

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
use nix::unistd::{geteuid, getpid, setgid, setuid, Gid, Pid, Uid};

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
    /// Made by a child of ours that has become uid and gid 65534 (nobody), without capabilities.
    as_nobody: bool,
}

fn case(
    source: &'static str,
    input: &str,
    args: impl Into<Probe<'static>>,
    expect: Expect,
) -> Case {
    let (args, needs) = (args.into(), Needs::Nothing);
    Case { source, input: input.to_string(), args, expect, needs, as_nobody: false }
}

/// The exit status of the child that makes an `as_nobody` case when it could not become nobody.
const NOT_NOBODY: i32 = 255;

/// One case: `try_clone3`, or for an `as_nobody` case the same in a child of ours that has
/// become uid 65534 and reports the result in its exit status (0 a child, else the errno).
fn try_case(row: &Case) -> Result<Result<Outcome, Errno>, Error> {
    if !row.as_nobody {
        return Ok(try_clone3(&row.args)?.map(|ended| ended.outcome));
    }
    let nobody = (Gid::from_raw(65534), Uid::from_raw(65534));
    let mut child = fork_child(|| {
        if setgid(nobody.0).is_err() || setuid(nobody.1).is_err() {
            return NOT_NOBODY;
        }
        match try_clone3(&row.args) {
            Ok(Ok(_)) => 0,
            Ok(Err(errno)) => errno as i32,
            Err(_) => NOT_NOBODY,
        }
    })?;
    match child.reap()?.outcome {
        Outcome::Exited(0) => Ok(Ok(Outcome::Exited(0))),
        Outcome::Exited(code) if code != NOT_NOBODY => Ok(Err(Errno::from_raw(code))),
        other => Err(Error::Failed(format!("the child made nobody {other}"))),
    }
}

/// The cgroups the CLONE_INTO_CGROUP cases clone into, opened O_PATH, leaked for the
/// program's life (they are closed at exit): a removed one, a "domain invalid" one, one that
/// hands a controller down, and a directory that is no cgroup.
struct Targets {
    empty_leaf: &'static OwnedFd,
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
    // A cgroup that hands memory down to a child may hold no process itself; the child is an
    // empty leaf, which may.
    mkdir(&busy.path().join("child"))?;
    busy.write("cgroup.subtree_control", "+memory")?;
    let subtree_control_set = open_path(busy.path())?;
    let empty_leaf = open_path(&busy.path().join("child"))?;
    let not_a_cgroup = open_path(Path::new("/"))?;
    Ok(Targets { empty_leaf, removed, domain_invalid, subtree_control_set, not_a_cgroup })
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
    let mut all = clone3_c_cases();
    all.extend(set_tid_cases(pid_max, freed));
    all.extend(cgroup_cases(targets));
    all.extend(kernel_cases());
    all
}

fn sigchld() -> CloneArgs<'static> {
    CloneArgs::new(Signal::SIGCHLD)
}

const EINVAL: Expect = Expect::Fails(Errno::EINVAL);

/// clone3.c: sizes of struct clone_args, exit signals, flags.
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
    ]
}

/// clone3_set_tid.c, up to its unshare of a PID namespace; clone3_clear_sighand.c; and
/// clone3_cap_checkpoint_restore.c's refusal: set_tid without CAP_CHECKPOINT_RESTORE (5.9) or
/// CAP_SYS_ADMIN.
fn set_tid_cases(pid_max: i32, freed: Pid) -> Vec<Case> {
    use Expect::{Child, Fails, FailsSomehow};
    let newpid = || sigchld().flags(Flags::NEWPID);
    let tids = |pids: &[i32]| pids.iter().map(|&p| Pid::from_raw(p)).collect::<Vec<_>>();
    let (levels, zeros, ones) = (MAX_PID_NS_LEVEL, tids(&[0; 64]), tids(&[-1; 64]));
    let s = "clone3_set_tid.c";
    let mut all = Vec::new();
    for (fill, array) in [("0 TIDs", &zeros), ("TIDs all 1s", &ones)] {
        for n in [levels + 1, levels * 2, levels * 2 + 1, levels * 42, levels - 1] {
            let input = format!("set_tid_size {n}, {fill}");
            all.push(case(s, &input, sigchld().set_tid(array).set_tid_size(n), EINVAL));
        }
    }
    let first_and_freed = [Pid::from_raw(1), freed];
    all.extend([
        case(s, "set_tid [0]", sigchld().set_tid(&tids(&[0])), EINVAL),
        case(s, "set_tid [-1]", sigchld().set_tid(&tids(&[-1])), EINVAL),
        case(s, "set_tid [-1, 0], size 2", sigchld().set_tid(&tids(&[-1, 0])), EINVAL),
        case(s, "set_tid [-1], CLONE_NEWPID", newpid().set_tid(&tids(&[-1])), EINVAL),
        case(
            s,
            "set_tid [1]: pid 1 is taken",
            sigchld().set_tid(&tids(&[1])),
            Fails(Errno::EEXIST),
        ),
        case(s, "set_tid [1], CLONE_NEWPID", newpid().set_tid(&tids(&[1])), Child),
        case(s, "set_tid [pid_max]", sigchld().set_tid(&tids(&[pid_max])), EINVAL),
        case(s, "set_tid [pid_max], CLONE_NEWPID", newpid().set_tid(&tids(&[pid_max])), EINVAL),
        case(s, "set_tid [a freed pid]", sigchld().set_tid(&[freed]), Child),
        case(s, "set_tid [a freed pid], CLONE_NEWPID", newpid().set_tid(&[freed]), EINVAL),
        case(
            s,
            "set_tid [1, a freed pid], CLONE_NEWPID",
            newpid().set_tid(&first_and_freed),
            Child,
        ),
    ]);
    let s = "clone3_clear_sighand.c";
    let clear = sigchld().flags(Flags::CLEAR_SIGHAND);
    all.extend([
        Case { needs: Needs::ClearSighand, ..case(s, "CLONE_CLEAR_SIGHAND", clear.clone(), Child) },
        case(s, "CLONE_CLEAR_SIGHAND | CLONE_SIGHAND", clear.flags(Flags::SIGHAND), FailsSomehow),
    ]);
    let s = "clone3_cap_checkpoint_restore.c";
    let eperm = Fails(Errno::EPERM);
    let row = case(s, "set_tid [a freed pid], uid 65534", sigchld().set_tid(&[freed]), eperm);
    all.push(Case { as_nobody: true, ..row });
    all
}

/// cgroup/test_core.c's CLONE_INTO_CGROUP cases, and the cgroup code's own refusals.
fn cgroup_cases(targets: &Targets) -> Vec<Case> {
    use Expect::{Child, Fails, FailsSomehow};
    let into = |fd: &'static OwnedFd| sigchld().into_cgroup(fd);
    let (core, fork) = ("cgroup/test_core.c", "cgroup.c cgroup_css_set_fork");
    let rows = [
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
        case(
            fork,
            "CLONE_INTO_CGROUP, / (not a cgroup)",
            into(targets.not_a_cgroup),
            Fails(Errno::EBADF),
        ),
        Case {
            as_nobody: true,
            ..case(
                "cgroup.c cgroup_may_write",
                "CLONE_INTO_CGROUP, uid 65534",
                into(targets.empty_leaf),
                Fails(Errno::EACCES),
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
    rows.into_iter().map(|row| Case { needs: Needs::IntoCgroup, ..row }).collect()
}

/// The refusals of kernel/fork.c's clone3 path (and nsproxy.c's) that no selftest makes, each
/// labelled with the function it is in.
fn kernel_cases() -> Vec<Case> {
    let exit_0 = || CloneArgs::with_exit_signal(0);
    let page = clone_cgroup::memory::page_size() as u64;
    let args = "fork.c copy_clone_args_from_user";
    let (valid, stack, process) =
        ("fork.c clone3_args_valid", "fork.c clone3_stack_valid", "fork.c copy_process");
    // The 7.1 flags' rows say EINVAL on older kernels too, for an unknown flag.
    let new = "fork.c copy_process (7.1)";
    let ipc_sem = Flags::NEWIPC | Flags::SYSVSEM;
    vec![
        case(args, "set_tid_size 1, no set_tid", sigchld().set_tid_size(1), EINVAL),
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
        case(new, "CLONE_AUTOREAP, exit_signal SIGCHLD", sigchld().flags(Flags::AUTOREAP), EINVAL),
        case(
            new,
            "PIDFD_AUTOKILL | AUTOREAP, no PIDFD",
            exit_0().flags(Flags::AUTOREAP | Flags::PIDFD_AUTOKILL),
            EINVAL,
        ),
        case(
            new,
            "PIDFD_AUTOKILL | PIDFD, no AUTOREAP",
            sigchld().pidfd().flags(Flags::PIDFD_AUTOKILL),
            EINVAL,
        ),
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
    ]
}

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
    let (base, notes) = cgroup::prepare("stage", "memory", None, None)?;
    let (busy, more) = cgroup::prepare("busy", "memory", None, None)?;
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
    // Whether this kernel knows set_tid (5.5): a set_tid of a free pid is accepted, or E2BIG.
    let takes_set_tid = match try_clone3(&CloneArgs::new(Signal::SIGCHLD).set_tid(&[freed]).into())?
    {
        Ok(_) => true,
        Err(Errno::E2BIG) => false,
        Err(errno) => return Err(Error::Failed(format!("clone3 with set_tid [{freed}]: {errno}"))),
    };

    // 2. Each case through CloneArgs, as it is; a child that is created exits 0 at once.
    let rows = match &targets {
        Ok(targets) => cases(targets, pid_max, freed),
        Err(e) => {
            remove_targets(&base, &busy);
            return Err(Error::Failed(format!("the cgroups of the CLONE_INTO_CGROUP cases: {e}")));
        }
    };
    println!("parent[{me}]: 2. {} cases:", rows.len());
    println!("    {:<33} {:<40} {:<14} {:<14}", "source", "input", "expected", "seen");
    let mut mismatched = Vec::new();
    let mut clone_failed = Ok(());
    for (i, row) in rows.iter().enumerate() {
        // The stage is removed below whatever happens here.
        let result = match try_case(row) {
            Ok(result) => result,
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
        // A field or flag this kernel does not know: too old, not wrong. E2BIG for the cgroup
        // field says so itself; CLONE_CLEAR_SIGHAND came with set_tid (5.5), whose absence says
        // so where the flag alone would only give EINVAL.
        let predates = match (row.needs, &result) {
            (Needs::ClearSighand, Err(Errno::EINVAL)) if !takes_set_tid => {
                Some("CLONE_CLEAR_SIGHAND (5.5)")
            }
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
        println!("    {:<33} {:<40} {expected:<14} {seen:<14} {verdict}", row.source, row.input);
    }

    // 3. Remove the stage.
    remove_targets(&base, &busy);
    for cgroup in [base, busy] {
        if let Some(path) = cgroup.remove()? {
            println!("parent[{me}]: 3. removed {}", path.display());
        }
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
