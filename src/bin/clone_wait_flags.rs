//! clone_wait_flags: waiting for "clone children", whose exit signal is not SIGCHLD.
//!
//! Usage: `cargo run --bin clone_wait_flags` (no root needed)
//!
//! waitpid(2) calls a child that signals its end with anything but SIGCHLD (here SIGUSR1) a
//! clone child. By default waitpid does not see it: even once it has ended, `waitpid(pid, 0)`
//! fails with ECHILD. With `__WCLONE` it waits for clone children only (so an ordinary child
//! is ECHILD to it), with `__WALL` for both. And by default any thread of a process may reap
//! the children of its sibling threads; `__WNOTHREAD` restricts a thread to its own children.
//! Expect ECHILD, then the clone child reaped with __WCLONE, another with __WALL, ECHILD for
//! __WCLONE on an ordinary child, ECHILD for __WNOTHREAD in a sibling thread, which then reaps
//! it without the flag; exit status 0.

use std::process::ExitCode;
use std::time::Duration;

use clone_cgroup::cli::{no_options, Scenario, Summary, Verdict};
use clone_cgroup::memory::ChildStack;
use clone_cgroup::process::{clone_child, fork_child, Child, Waited};
use clone_cgroup::say;
use clone_cgroup::sync::SignalWatch;
use clone_cgroup::Error;
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, Pid};

const SCENARIO: Scenario = Scenario {
    name: "clone_wait_flags",
    about: "Clone children (exit signal other than SIGCHLD) and waitpid: invisible by default,\n\
            reaped with __WCLONE or __WALL; __WNOTHREAD keeps a thread to its own children.",
    options: "",
};

/// How long anything here may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What one `waitpid(pid, flags)` gave: the child's status, or the kernel's errno.
#[derive(Clone, Copy, PartialEq, Eq)]
struct WaitResult(Result<WaitStatus, Errno>);

impl WaitResult {
    fn waitpid(pid: Pid, flags: WaitPidFlag) -> WaitResult {
        WaitResult(waitpid(pid, Some(flags)))
    }

    /// It reaped a child that exited 0.
    fn reaped(&self) -> bool {
        matches!(self.0, Ok(WaitStatus::Exited(_, 0)))
    }

    /// It found no such child: ECHILD.
    fn no_child(&self) -> bool {
        self.0 == Err(Errno::ECHILD)
    }
}

/// As a word for the story and the summary: `exited:0`, or the errno.
impl std::fmt::Display for WaitResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Ok(WaitStatus::Exited(_, code)) => write!(f, "exited:{code}"),
            Ok(other) => write!(f, "{other:?}"),
            Err(errno) => write!(f, "{errno:?}"),
        }
    }
}

/// Waits until `child` has ended and returns its pid: `signal`, its exit signal, came from
/// it (SIGCHLD for an ordinary child). Then its end is certain before we look.
fn ended(watch: &SignalWatch, child: &mut Child, signal: Signal) -> Result<Pid, Error> {
    let pid = child.pid();
    match child.wait_for_signal(watch, signal, TIMEOUT)? {
        Waited::TimeUp => Err(Error::Failed(format!("child {pid} did not end within {TIMEOUT:?}"))),
        Waited::SignalCame | Waited::ChildEnded => Ok(pid),
    }
}

fn run(args: &[String]) -> Result<Summary, Error> {
    no_options(args)?;
    let me = getpid();
    // SIGUSR1, the clone children's exit signal, is blocked (SignalWatch blocks it), so that
    // it is taken as news of their end rather than killing us.
    let watch = SignalWatch::install()?;
    let mut stack = ChildStack::new(64 << 10)?;
    let mut exit_at_once = || 0;

    // 1. A clone child: clone() with SIGUSR1 as its exit signal. Once it has ended, plain
    //    waitpid does not see it.
    let mut child =
        clone_child(&mut exit_at_once, &mut stack, CloneFlags::empty(), Signal::SIGUSR1)?;
    let pid = ended(&watch, &mut child, Signal::SIGUSR1)?;
    let plain = WaitResult::waitpid(pid, WaitPidFlag::empty());
    say!("parent[{me}]: 1. clone child {pid} (exit signal SIGUSR1) has ended; waitpid(pid, 0): {plain}");

    // 2. __WCLONE: clone children only. It reaps this one.
    let wclone = WaitResult::waitpid(pid, WaitPidFlag::__WCLONE);
    say!("parent[{me}]: 2. waitpid(pid, __WCLONE): {wclone}");
    child.reaped_by_hand();

    // 3. __WALL: every child, whatever its exit signal.
    let mut child =
        clone_child(&mut exit_at_once, &mut stack, CloneFlags::empty(), Signal::SIGUSR1)?;
    let pid = ended(&watch, &mut child, Signal::SIGUSR1)?;
    let wall = WaitResult::waitpid(pid, WaitPidFlag::__WALL);
    say!("parent[{me}]: 3. another clone child {pid}; waitpid(pid, __WALL): {wall}");
    child.reaped_by_hand();

    // 4. An ordinary child (fork: SIGCHLD) is not a clone child: __WCLONE does not see it.
    let mut child = fork_child(|| 0)?;
    let pid = ended(&watch, &mut child, Signal::SIGCHLD)?;
    let wclone_ordinary = WaitResult::waitpid(pid, WaitPidFlag::__WCLONE);
    let plain_ordinary = WaitResult::waitpid(pid, WaitPidFlag::empty());
    say!(
        "parent[{me}]: 4. ordinary child {pid}; waitpid(pid, __WCLONE): {wclone_ordinary}; \
         waitpid(pid, 0): {plain_ordinary}"
    );
    child.reaped_by_hand();

    // 5. A child of this (main) thread, and a second thread that waits for it: with
    //    __WNOTHREAD it may not; without, it may, and reaps it.
    let mut child = fork_child(|| 0)?;
    let pid = ended(&watch, &mut child, Signal::SIGCHLD)?;
    let (wnothread, sibling) = std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            let not_its_own = WaitPidFlag::__WNOTHREAD | WaitPidFlag::WNOHANG;
            (WaitResult::waitpid(pid, not_its_own), WaitResult::waitpid(pid, WaitPidFlag::empty()))
        });
        thread.join().map_err(|_| Error::Failed("the second thread panicked".into()))
    })?;
    child.reaped_by_hand();
    say!(
        "parent[{me}]: 5. a second thread, for the main thread's child {pid}: \
         waitpid(pid, __WNOTHREAD): {wnothread}; waitpid(pid, 0): {sibling}"
    );

    let holds = plain.no_child()
        && wclone.reaped()
        && wall.reaped()
        && wclone_ordinary.no_child()
        && plain_ordinary.reaped()
        && wnothread.no_child()
        && sibling.reaped();
    if !holds {
        say!("parent[{me}]: NOT AS CLAIMED: waitpid(2) describes another result");
    }
    Ok(Summary::new(SCENARIO.name, Verdict::of(holds))
        .field("plain_on_clone_child", plain)
        .field("wclone", wclone)
        .field("wall", wall)
        .field("wclone_on_ordinary_child", wclone_ordinary)
        .field("wnothread_in_sibling_thread", wnothread)
        .field("sibling_thread", sibling))
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}
