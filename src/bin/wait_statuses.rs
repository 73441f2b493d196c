//! wait_statuses: every change of state a parent can learn of its child, as `waitpid`'s raw
//! status word and as `waitid`'s `si_code` and `si_status`.
//!
//! Usage: `cargo run --bin wait_statuses` (no root needed)
//!
//! Five children, each ending or changing in one way: an exit with status 77, a kill by
//! SIGTERM, a core dump (SIGQUIT, with the child's own RLIMIT_CORE raised, in a directory of
//! its own that is removed afterwards), a stop (SIGSTOP, seen with WUNTRACED) and a continue
//! (SIGCONT, seen with WCONTINUED). For each, `waitid` with `WNOWAIT` looks first, which
//! takes nothing (an ended child stays a zombie, state Z), then `waitpid` takes the change
//! and its raw status word, which the `W*` macros decode. `si_status` is an exit status for
//! CLD_EXITED and a signal number for the others: the signal is named beside its number, and
//! the exit status is 77, a number no signal has. Then SIGCHLD set to SIG_IGN, and
//! SA_NOCLDWAIT: the kernel reaps the children itself and `waitpid` finds none (ECHILD).
//! Where `core_pattern` sends cores elsewhere (to a program, or to a fixed directory), the
//! dump is not made and the row says why. Expect `0x4d00`, `0x000f`, `0x0083`, `0x137f`,
//! `0xffff`, ECHILD twice, exit status 0.
//! The lessons of The Linux Programming Interface's child_status.c, beside the kernel's words.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clone_cgroup::attributes::{set_disposition, Disposition};
use clone_cgroup::cli::{no_options, Scenario, Summary, Verdict};
use clone_cgroup::process::fork_child;
use clone_cgroup::procfs;
use clone_cgroup::say;
use clone_cgroup::sync::{await_go, send, SignalWatch};
use clone_cgroup::wait_raw::{set_sigchld, waitid_info, waitpid_raw, ChildInfo};
use clone_cgroup::Error;
use nix::errno::Errno;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::WaitPidFlag;
use nix::unistd::{chdir, getpid, Pid};

const SCENARIO: Scenario = Scenario {
    name: "wait_statuses",
    about: "Every change of state a parent can learn: exit, kill, core dump, stop, continue,\n\
            each as waitpid's raw status and waitid's si_code; then SIG_IGN and SA_NOCLDWAIT.",
    options: "",
};

/// A child that waits to be told to end ([`await_go`]), with every signal but SIGUSR1
/// unblocked in it, so that SIGTERM's default action can end it.
fn waiting() -> i32 {
    // Its default action back, should whoever started us have had it ignored.
    let _ = set_disposition(Signal::SIGTERM, Disposition::Default);
    let usr1 = SigSet::from_iter([Signal::SIGUSR1]);
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&usr1), None);
    await_go()
}

/// The status of the first child's exit: no signal has this number (Linux has 64), so it
/// cannot be taken for a signal's in `si_status` or in the status word.
const EXIT_STATUS: i32 = 77;

/// What the W* macros of waitpid(2) say of a raw status word, signals by name.
fn decoded(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("WIFEXITED, WEXITSTATUS = {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        let signal = signal_number(libc::WTERMSIG(status));
        format!("WIFSIGNALED, WTERMSIG = {signal}, WCOREDUMP = {}", libc::WCOREDUMP(status))
    } else if libc::WIFSTOPPED(status) {
        format!("WIFSTOPPED, WSTOPSIG = {}", signal_number(libc::WSTOPSIG(status)))
    } else if libc::WIFCONTINUED(status) {
        "WIFCONTINUED".to_string()
    } else {
        "?".to_string()
    }
}

/// A signal number with its name: `15 (SIGTERM)`.
fn signal_number(number: i32) -> String {
    match Signal::try_from(number) {
        Ok(signal) => format!("{number} ({})", signal.as_str()),
        Err(_) => number.to_string(),
    }
}

/// One change of a child's state, as its parent learns it.
struct Change {
    /// What `waitid(..., WNOWAIT)` reported while only looking: `si_code` and `si_status`.
    looked: ChildInfo,
    /// The child's state in `/proc` meanwhile: `Z` for an ended child, a zombie, since the
    /// look took nothing.
    state: String,
    /// `waitpid`'s raw status word, when it took the change.
    word: i32,
}

impl Change {
    /// Whether the kernel reported it with `si_code` `code` and the status word `word`.
    fn is(&self, code: i32, word: i32) -> bool {
        self.looked.code == code && self.word == word
    }

    /// `si_code` and `si_status`, the latter named as the signal it is for every code but
    /// CLD_EXITED: `CLD_DUMPED 3 (SIGQUIT)`.
    fn looked(&self) -> String {
        let status = match self.looked.code {
            libc::CLD_EXITED => self.looked.status.to_string(),
            _ => signal_number(self.looked.status),
        };
        format!("{} {status}", self.looked.code_name())
    }

    /// The raw word and what the W* macros make of it: `0x4d00: WIFEXITED, WEXITSTATUS = 77`.
    fn word(&self) -> String {
        format!("{:#06x}: {}", self.word, decoded(self.word))
    }
}

/// What `waitid` says of the child's change when it only looks (`flags | WNOWAIT`, which
/// takes nothing), the child's state in /proc in between, then what `waitpid` says when it
/// takes the change (`take`): the raw status word.
fn look_then_take(pid: Pid, flags: WaitPidFlag, take: WaitPidFlag) -> Result<Change, Error> {
    let looked = waitid_info(pid, flags | WaitPidFlag::WNOWAIT)
        .map_err(|e| Error::sys("waitid(WNOWAIT)", e))?
        .ok_or_else(|| Error::Failed(format!("waitid reported nothing of {pid}")))?;
    let state = procfs::state_word(pid);
    let (_, word) = waitpid_raw(pid, take).map_err(|e| Error::sys("waitpid", e))?;
    Ok(Change { looked, state, word })
}

/// A child that raises its own RLIMIT_CORE to the hard limit, moves into `dir` and sends
/// itself SIGQUIT, whose default action dumps core there: what the waits say. SIGQUIT gets
/// its default action back first: a shell starts a background job with it ignored, and an
/// ignored disposition survives fork and exec.
fn dump_core(dir: &Path) -> Result<Change, Error> {
    let child = fork_child(|| {
        let (_, hard) = getrlimit(Resource::RLIMIT_CORE).unwrap_or((0, 0));
        if setrlimit(Resource::RLIMIT_CORE, hard, hard).is_err()
            || chdir(dir).is_err()
            || set_disposition(Signal::SIGQUIT, Disposition::Default).is_err()
        {
            return 1;
        }
        let _ = send(getpid(), Signal::SIGQUIT);
        1
    })?;
    let change = look_then_take(child.pid(), WaitPidFlag::WEXITED, WaitPidFlag::empty())?;
    child.reaped_by_hand();
    Ok(change)
}

/// Where this machine's cores go, if a child of ours can dump one that we can remove: a
/// `core_pattern` relative to the dumping process's directory. Otherwise why not.
fn core_dump_allowed() -> Result<(), String> {
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    let pattern = pattern.trim();
    let (_, hard) = getrlimit(Resource::RLIMIT_CORE).map_err(|e| format!("getrlimit: {e}"))?;
    if let Some(program) = pattern.strip_prefix('|') {
        let program = program.split_whitespace().next().unwrap_or(program);
        Err(format!("core_pattern pipes cores to {program}, which would keep one"))
    } else if pattern.starts_with('/') {
        Err(format!("core_pattern writes cores to {pattern}, outside a directory of ours"))
    } else if hard == 0 {
        Err("the hard RLIMIT_CORE is 0: no process of ours may dump".to_string())
    } else {
        Ok(())
    }
}

/// SIGCHLD's disposition, set back to SIG_DFL (no SA_NOCLDWAIT) when dropped.
struct SigchldPutBack;

impl Drop for SigchldPutBack {
    fn drop(&mut self) {
        let _ = set_sigchld(false, false);
    }
}

/// A directory for the dumping child's core, removed with what it holds when dropped.
struct CoreDir(PathBuf);

impl Drop for CoreDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(args: &[String]) -> Result<Summary, Error> {
    no_options(args)?;
    let me = getpid();
    // SIGUSR1 (which ends a waiting child) and the interruptions blocked before any fork: the
    // children inherit SIGUSR1 blocked, so it cannot come before they wait for it.
    let watch = SignalWatch::install()?;
    // SIGCHLD at its default, whatever we were started with, until the end.
    let _put_back = set_sigchld(false, false).map(|()| SigchldPutBack)?;
    let (exited, no_flags) = (WaitPidFlag::WEXITED, WaitPidFlag::empty());

    // 1. An exit: the child's _exit(77). Looked at first without taking it (WNOWAIT): a zombie.
    let child = fork_child(|| EXIT_STATUS)?;
    let exit = look_then_take(child.pid(), exited, no_flags)?;
    child.reaped_by_hand();
    say!(
        "parent[{me}]: 1. exit {EXIT_STATUS}: waitid(WEXITED | WNOWAIT): {} (state {}: not \
         taken yet); waitpid: {}",
        exit.looked(),
        exit.state,
        exit.word()
    );

    // 2. A kill: SIGTERM from us, whose default action ends the child.
    let child = fork_child(waiting)?;
    send(child.pid(), Signal::SIGTERM)?;
    let kill = look_then_take(child.pid(), exited, no_flags)?;
    child.reaped_by_hand();
    say!(
        "parent[{me}]: 2. SIGTERM: waitid(WEXITED | WNOWAIT): {} (state {}); waitpid: {}",
        kill.looked(),
        kill.state,
        kill.word()
    );
    watch.stop_if_interrupted()?;

    // 3. A core dump: SIGQUIT, whose default action dumps core, in a child that raised its own
    //    RLIMIT_CORE and works in a directory of ours (the core lands there, and goes with it).
    let dumped = match core_dump_allowed() {
        Ok(()) => {
            let dir = CoreDir(std::env::temp_dir().join(format!("clone-cgroup-core-{me}")));
            std::fs::create_dir(&dir.0)
                .map_err(|e| Error::io(&format!("failed to create {}", dir.0.display()), e))?;
            let dump = dump_core(&dir.0)?;
            let cores = std::fs::read_dir(&dir.0).map(|d| d.count()).unwrap_or(0);
            say!(
                "parent[{me}]: 3. SIGQUIT, RLIMIT_CORE raised: waitid(WEXITED | WNOWAIT): {}; \
                 waitpid: {}; {cores} core file(s), removed",
                dump.looked(),
                dump.word()
            );
            Some(dump)
        }
        Err(why) => {
            say!("parent[{me}]: 3. no core dump here: {why}");
            None
        }
    };

    // 4. A stop: SIGSTOP, reported only to a wait that asks (WUNTRACED; waitid's WSTOPPED).
    let child = fork_child(waiting)?;
    let pid = child.pid();
    send(pid, Signal::SIGSTOP)?;
    let stop = look_then_take(pid, WaitPidFlag::WSTOPPED, WaitPidFlag::WUNTRACED)?;
    say!(
        "parent[{me}]: 4. SIGSTOP: waitid(WSTOPPED | WNOWAIT): {} (state {}); \
         waitpid(WUNTRACED): {}",
        stop.looked(),
        stop.state,
        stop.word()
    );

    // 5. A continue: SIGCONT, reported only to a wait that asks (WCONTINUED). Then the child
    //    is told to end, and does.
    send(pid, Signal::SIGCONT)?;
    let resumed = look_then_take(pid, WaitPidFlag::WCONTINUED, WaitPidFlag::WCONTINUED)?;
    say!(
        "parent[{me}]: 5. SIGCONT: waitid(WCONTINUED | WNOWAIT): {}; waitpid(WCONTINUED): {}",
        resumed.looked(),
        resumed.word()
    );
    send(pid, Signal::SIGUSR1)?;
    let (_, end) = waitpid_raw(pid, no_flags).map_err(|e| Error::sys("waitpid", e))?;
    child.reaped_by_hand();
    say!("parent[{me}]:    then SIGUSR1, and it exits: waitpid: {end:#06x}: {}", decoded(end));
    watch.stop_if_interrupted()?;

    // 6. SIGCHLD ignored, then SA_NOCLDWAIT: the kernel reaps the child itself, and waitpid,
    //    which blocks until the child has ended, finds no child then.
    let mut echild = Vec::new();
    for (name, ignored, no_child_wait) in
        [("SIGCHLD set to SIG_IGN", true, false), ("SA_NOCLDWAIT", false, true)]
    {
        set_sigchld(ignored, no_child_wait)?;
        let child = fork_child(|| 0)?;
        let result = waitpid_raw(child.pid(), no_flags);
        child.release(); // reaped by the kernel, or just now
        set_sigchld(false, false)?;
        let said = match result {
            Err(errno) => format!("{errno:?}: the kernel reaped it"),
            Ok((_, status)) => format!("{status:#06x}: {}", decoded(status)),
        };
        say!("parent[{me}]: 6. {name}: waitpid: {said}");
        echild.push(result == Err(Errno::ECHILD));
    }

    // Judged against what the kernel encodes (waitpid(2), and <bits/waitstatus.h>'s layout:
    // the exit status in the high byte, the signal in the low seven bits, 0x80 for a core,
    // 0x7f for a stop, 0xffff for a continue).
    let holds = exit.is(libc::CLD_EXITED, EXIT_STATUS << 8)
        && kill.is(libc::CLD_KILLED, Signal::SIGTERM as i32)
        && dumped.as_ref().map_or(true, |d| d.is(libc::CLD_DUMPED, 0x80 | Signal::SIGQUIT as i32))
        && stop.is(libc::CLD_STOPPED, (Signal::SIGSTOP as i32) << 8 | 0x7f)
        && resumed.is(libc::CLD_CONTINUED, 0xffff)
        && end == 0
        && echild == [true, true];
    if !holds {
        say!("parent[{me}]: NOT AS CLAIMED: a wait reported another status");
    }
    let hex = |status: i32| format!("{status:#06x}");
    Ok(Summary::new(SCENARIO.name, Verdict::of(holds))
        .field("exited", hex(exit.word))
        .field("killed", hex(kill.word))
        .field("dumped", dumped.map_or("not-shown".into(), |d| hex(d.word)))
        .field("stopped", hex(stop.word))
        .field("continued", hex(resumed.word))
        .field("sig_ign", if echild[0] { "ECHILD" } else { "reaped" })
        .field("sa_nocldwait", if echild[1] { "ECHILD" } else { "reaped" }))
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}
