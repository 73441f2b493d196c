//! Starting children and reading how they ended: `fork`, `clone`, `vfork`, bounded waits.
//!
//! Every way to start a child here follows the crate's rule for child code (see the crate
//! documentation): the child runs the closure it is given and ends through `_exit` with its
//! value; a panic is caught at that boundary and ends the child with [`CHILD_PANICKED`].

use std::fmt;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::memory::ChildStack;
use crate::sync::{Received, SignalWatch, INTERRUPTIONS};
use crate::Error;

/// The exit status of a child whose code panicked: the panic was caught at the child's
/// boundary (the message is on standard error) and the child ended with `_exit(101)`, the
/// status Rust gives a program whose main thread panics. None of the parent's code ran.
pub const CHILD_PANICKED: i32 = 101;

/// Ends the calling child with the value of `body`, or with [`CHILD_PANICKED`] if it panics:
/// the boundary every child of this crate crosses. It never returns, so no frame of the
/// parent's is ever unwound or run in the child.
pub(crate) fn end_child_with(body: impl FnOnce() -> i32) -> ! {
    let code = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(code) => code,
        Err(payload) => {
            // Freeing the payload could run its destructor; the child is ending anyway.
            std::mem::forget(payload);
            CHILD_PANICKED
        }
    };
    // SAFETY: _exit ends the process at once, running no destructor and no atexit handler:
    // those are the parent's.
    unsafe { libc::_exit(code) }
}

/// How a child ended, decoded from its wait status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It called `_exit(code)` or returned from main: `WIFEXITED`, `WEXITSTATUS`.
    Exited(i32),
    /// A signal ended it: `WIFSIGNALED`, `WTERMSIG`, `WCOREDUMP`.
    Killed {
        /// The signal that ended the child.
        signal: Signal,
        /// Whether the kernel wrote a core dump.
        core_dumped: bool,
    },
}

impl Outcome {
    /// The outcome in a wait status, or `None` for one that is not an end (stopped,
    /// continued, still alive).
    pub fn from_status(status: WaitStatus) -> Option<Outcome> {
        match status {
            WaitStatus::Exited(_, code) => Some(Outcome::Exited(code)),
            WaitStatus::Signaled(_, signal, core_dumped) => {
                Some(Outcome::Killed { signal, core_dumped })
            }
            _ => None,
        }
    }

    /// A short token without spaces for summary lines: `exited:0`, `killed:SIGKILL`.
    pub fn token(&self) -> String {
        match self {
            Outcome::Exited(code) => format!("exited:{code}"),
            Outcome::Killed { signal, .. } => format!("killed:{}", signal.as_str()),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Exited(code) => write!(f, "exited with status {code}"),
            Outcome::Killed { signal, core_dumped } => {
                write!(f, "killed by {}", signal.as_str())?;
                if *core_dumped {
                    write!(f, " (core dumped)")?;
                }
                Ok(())
            }
        }
    }
}

/// A wait status as the `waitpid` man page's macros describe it, for teaching output.
pub fn describe_status(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("WIFEXITED, WEXITSTATUS = {code}"),
        WaitStatus::Signaled(_, signal, core) => format!(
            "WIFSIGNALED, WTERMSIG = {} ({}), WCOREDUMP = {core}",
            signal as i32,
            signal.as_str()
        ),
        other => format!("{other:?}"),
    }
}

/// Where a child on a stack of its own begins, with `arg` the `&mut F` it runs (alive for as
/// long as the child runs: the caller of `clone` or `clone3` vouches). It ends the child in
/// [`end_child_with`], so no panic unwinds through this `extern "C"` frame.
pub(crate) extern "C" fn child_trampoline<F: FnMut() -> i32>(
    arg: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: arg is the &mut F the caller passed with this function, alive for the child.
    let child = unsafe { &mut *(arg as *mut F) };
    end_child_with(child)
}

/// A child that has been reaped: its raw wait status and what it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ended {
    /// The status exactly as `waitpid` returned it, e.g. `Signaled(Pid(31887), SIGKILL, false)`.
    pub status: WaitStatus,
    /// The decoded end.
    pub outcome: Outcome,
}

impl Ended {
    fn from_status(status: WaitStatus) -> Option<Ended> {
        Outcome::from_status(status).map(|outcome| Ended { status, outcome })
    }
}

/// Reports a child that a bounded wait had to kill, at the deadline or because the run was
/// `interrupted`: says so on standard output (unnumbered) and returns the run's error,
/// failed or interrupted.
pub(crate) fn report_kill(
    child: Pid,
    ended: Ended,
    why: Option<Signal>,
    timeout: Duration,
) -> Error {
    let (me, status) = (nix::unistd::getpid(), ended.status);
    if let Some(signal) = why {
        let got = signal.as_str();
        println!("parent[{me}]: got {got}; killed and reaped child {child}: {status:?}");
        return Error::Interrupted(signal);
    }
    println!("parent[{me}]: child {child} still running after {timeout:?}; killed it: {status:?}");
    Error::Failed(format!("child did not end within {timeout:?}"))
}

/// Blocks until `child` has ended and reaps it: `waitpid` with `__WALL`, so that a clone
/// child whose exit signal is not SIGCHLD is reaped too. Allocates nothing.
pub(crate) fn reap(child: Pid) -> Result<Ended, Error> {
    loop {
        match waitpid(child, Some(WaitPidFlag::__WALL)) {
            Ok(status) => {
                if let Some(ended) = Ended::from_status(status) {
                    return Ok(ended);
                }
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("waitpid", e)),
        }
    }
}

/// Kills `child` with SIGKILL and reaps it: the end of every bounded wait. Allocates nothing.
pub(crate) fn kill_and_reap(child: Pid) -> Result<Ended, Error> {
    match kill(child, Signal::SIGKILL) {
        // ESRCH: it is already a zombie or gone; waitpid still reaps a zombie.
        Ok(()) | Err(Errno::ESRCH) => reap(child),
        Err(e) => Err(Error::sys("kill(SIGKILL)", e)),
    }
}

/// A child the parent is responsible for. If it is dropped before it was reaped (an error
/// path, an early return), it is killed with SIGKILL and reaped: no orphan, no zombie.
#[derive(Debug)]
pub struct Child {
    pid: Pid,
    pidfd: Option<OwnedFd>,
    reaped: bool,
}

impl Child {
    /// Takes responsibility for the child `pid`, which `pidfd` refers to if given.
    pub(crate) fn new(pid: Pid, pidfd: Option<OwnedFd>) -> Child {
        Child { pid, pidfd, reaped: false }
    }

    /// The child's pid in the parent's PID namespace.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Its pidfd, where it was started with one (`clone3` with `CLONE_PIDFD`).
    pub fn pidfd(&self) -> Option<&OwnedFd> {
        self.pidfd.as_ref()
    }

    /// Waits for the child to end, for at most `timeout`, and reaps it. With a pidfd: `poll` on
    /// it and on a signalfd of the interruptions, then `waitid(P_PIDFD)`. Without: `waitpid`
    /// at each SIGCHLD that `watch` takes (made before the child, so that none is lost); other
    /// watched signals go to `on_other`, those still pending at the child's end included. At
    /// the deadline or on SIGINT, SIGTERM or SIGHUP the
    /// child is killed and reaped, that is said (unnumbered), and the run's error returned.
    pub fn wait(
        &mut self,
        watch: &SignalWatch,
        timeout: Duration,
        on_other: impl FnMut(Received),
    ) -> Result<Ended, Error> {
        let result = match &self.pidfd {
            Some(pidfd) => wait_pidfd(pidfd, self.pid, timeout),
            None => wait_for(self.pid, watch, timeout, on_other),
        };
        if !matches!(result, Err(Error::Sys { .. })) {
            self.reaped = true;
        }
        result
    }

    /// Waits, until `timeout` has passed, for `signal` from this child (taken by `watch`, made
    /// before the child). A signal from anyone else is ignored. An interruption (SIGINT,
    /// SIGTERM, SIGHUP) kills and reaps the child, says so (unnumbered) and returns
    /// [`Error::Interrupted`]: the story leaves through `?`.
    pub fn wait_for_signal(
        &mut self,
        watch: &SignalWatch,
        signal: Signal,
        timeout: Duration,
    ) -> Result<Waited, Error> {
        self.wait_until(watch, Some(signal), Instant::now() + timeout)
    }

    /// Sleeps for `duration`, unless the child ends first; returns whether it is still
    /// running. An interruption ends the run as in [`wait_for_signal`](Self::wait_for_signal).
    pub fn still_running_after(
        &mut self,
        watch: &SignalWatch,
        duration: Duration,
    ) -> Result<bool, Error> {
        Ok(self.wait_until(watch, None, Instant::now() + duration)? == Waited::TimeUp)
    }

    /// The wait of both: for `signal` from the child, if any, its end, or the deadline.
    fn wait_until(
        &mut self,
        watch: &SignalWatch,
        signal: Option<Signal>,
        deadline: Instant,
    ) -> Result<Waited, Error> {
        loop {
            match watch.next(deadline)? {
                None => return Ok(Waited::TimeUp),
                Some(r) if r.is_interruption() => return Err(self.interrupted_by(r.signal)),
                Some(r) if Some(r.signal) == signal && r.sender == self.pid => {
                    return Ok(Waited::SignalCame)
                }
                Some(r) if r.signal == Signal::SIGCHLD && self.has_ended()? => {
                    return Ok(Waited::ChildEnded)
                }
                // A stray signal, or another child's end: not what we wait for.
                Some(_) => {}
            }
        }
    }

    /// Whether the child has ended (a zombie, not yet reaped): `waitid` with `WNOWAIT`, which
    /// looks without reaping.
    fn has_ended(&self) -> Result<bool, Error> {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::Pid(self.pid), flags | WaitPidFlag::__WALL) {
            Ok(WaitStatus::StillAlive) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) => Err(Error::sys("waitid(WNOWAIT)", e)),
        }
    }

    /// Blocks until the child has ended, without a bound, and reaps it: for a child that
    /// has ended already or cannot help ending soon (it was made to exit at once).
    pub fn reap(&mut self) -> Result<Ended, Error> {
        let ended = match &self.pidfd {
            Some(pidfd) => reap_pidfd(pidfd)?,
            None => reap(self.pid)?,
        };
        self.reaped = true;
        Ok(ended)
    }

    /// Gives up responsibility for the child without waiting for it: the caller reaps it.
    pub fn into_pid(mut self) -> Pid {
        self.reaped = true;
        self.pid
    }

    /// Kills the child with SIGKILL and reaps it now.
    pub fn kill_and_reap(&mut self) -> Result<Ended, Error> {
        let ended = match &self.pidfd {
            Some(pidfd) => {
                pidfd_kill(pidfd)?;
                reap_pidfd(pidfd)?
            }
            None => kill_and_reap(self.pid)?,
        };
        self.reaped = true;
        Ok(ended)
    }

    /// The end of a run interrupted by `signal` while the child runs: kills and reaps the
    /// child, says so (unnumbered), and returns the run's error.
    fn interrupted_by(&mut self, signal: Signal) -> Error {
        match self.kill_and_reap() {
            Ok(ended) => report_kill(self.pid, ended, Some(signal), Duration::ZERO),
            Err(e) => e,
        }
    }
}

/// How a parent's bounded wait on a running child ended, in the words of a story. (An
/// interruption is none of them: the wait ends the run with [`Error::Interrupted`].)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waited {
    /// The signal waited for came, from the child.
    SignalCame,
    /// The child ended first. It is not reaped yet: its wait status is still to be read.
    ChildEnded,
    /// The time ran out, with the child still running.
    TimeUp,
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.kill_and_reap();
        }
    }
}

/// `waitid(P_PIDFD, WEXITED)`: reaps the child behind `pidfd`, and no other.
pub(crate) fn reap_pidfd(pidfd: &OwnedFd) -> Result<Ended, Error> {
    let status = waitid(Id::PIDFd(pidfd.as_fd()), WaitPidFlag::WEXITED | WaitPidFlag::__WALL)
        .map_err(|e| Error::sys("waitid(P_PIDFD)", e))?;
    Ended::from_status(status).ok_or_else(|| Error::Failed(format!("waitid returned {status:?}")))
}

/// Waits for the child behind `pidfd` to end, for at most `timeout`, then reaps it with
/// `waitid(P_PIDFD)`, which can only take this child.
///
/// `poll` watches two descriptors: the pidfd, readable once the child has ended, and a
/// signalfd for SIGINT, SIGTERM and SIGHUP (which must be blocked, as
/// [`SignalWatch`](crate::sync::SignalWatch) does). An interruption or the deadline kills the
/// child through the pidfd (`pidfd_send_signal`), which cannot hit a reused pid.
pub(crate) fn wait_pidfd(pidfd: &OwnedFd, pid: Pid, timeout: Duration) -> Result<Ended, Error> {
    let mut interruptions = SigSet::empty();
    for signal in INTERRUPTIONS {
        interruptions.add(signal);
    }
    let signals =
        SignalFd::with_flags(&interruptions, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| Error::sys("signalfd", e))?;
    let deadline = Instant::now() + timeout;
    // Until the child has ended (the pidfd is readable), an interruption or the deadline.
    let interrupted = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(0) => break None,
            Ok(_) if fds[0].any().unwrap_or(false) => return reap_pidfd(pidfd),
            Ok(_) => {
                if let Ok(Some(info)) = signals.read_signal() {
                    break Signal::try_from(info.ssi_signo as i32).ok();
                }
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("poll", e)),
        }
    };
    pidfd_kill(pidfd)?;
    Err(report_kill(pid, reap_pidfd(pidfd)?, interrupted, timeout))
}

/// `pidfd_send_signal(pidfd, SIGKILL)`: kills exactly the process the pidfd refers to.
pub(crate) fn pidfd_kill(pidfd: &OwnedFd) -> Result<(), Error> {
    // SAFETY: a plain system call on a descriptor we own, with no pointers (info is NULL).
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    match r {
        0 => Ok(()),
        _ if Errno::last() == Errno::ESRCH => Ok(()),
        _ => Err(Error::sys("pidfd_send_signal(SIGKILL)", Errno::last())),
    }
}

/// The wait of [`Child::wait`] for a child without a pidfd.
fn wait_for(
    child: Pid,
    watch: &SignalWatch,
    timeout: Duration,
    mut on_other: impl FnMut(Received),
) -> Result<Ended, Error> {
    let deadline = Instant::now() + timeout;
    loop {
        let flags = WaitPidFlag::WNOHANG | WaitPidFlag::__WALL;
        let status = waitpid(child, Some(flags)).map_err(|e| Error::sys("waitpid", e))?;
        if let Some(ended) = Ended::from_status(status) {
            // What the child sent just before its end may still be pending: passed on too.
            while let Some(r) = watch.next(Instant::now())? {
                match r {
                    r if r.is_interruption() => return Err(Error::Interrupted(r.signal)),
                    r if r.signal == Signal::SIGCHLD => {}
                    r => on_other(r),
                }
            }
            return Ok(ended);
        }
        match watch.next(deadline)? {
            None => return Err(report_kill(child, kill_and_reap(child)?, None, timeout)),
            Some(r) if r.is_interruption() => {
                return Err(report_kill(child, kill_and_reap(child)?, Some(r.signal), timeout))
            }
            Some(r) if r.signal == Signal::SIGCHLD => {}
            Some(r) => on_other(r),
        }
    }
}

/// Flags that make the child share memory, signal handlers or thread identity with the
/// parent. [`clone_child`] refuses them; [`vfork_child`] and [`clone_child_unchecked`] take
/// (some of) them. (`CLONE_VFORK` alone is not one: it only suspends the parent.)
pub const SHARING_FLAGS: CloneFlags =
    CloneFlags::CLONE_VM.union(CloneFlags::CLONE_THREAD).union(CloneFlags::CLONE_SIGHAND);

/// How many threads this process has: the `Threads:` line of `/proc/self/status`, read into
/// a buffer on the stack, so that a child may ask too.
pub fn thread_count() -> Result<usize, Error> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    let status = open("/proc/self/status", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Error::sys("open(/proc/self/status)", e))?;
    let mut buf = [0u8; 4096];
    let n = nix::unistd::read(&status, &mut buf)
        .map_err(|e| Error::sys("read(/proc/self/status)", e))?;
    let text = &buf[..n];
    let at = text
        .windows(8)
        .position(|w| w == b"Threads:")
        .ok_or(Error::sys("parse(/proc/self/status)", Errno::EINVAL))?;
    Ok(text[at + 8..]
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take_while(|b| b.is_ascii_digit())
        .fold(0, |n, b| n * 10 + usize::from(b - b'0')))
}

/// Fails unless this process has exactly one thread: a single thread cannot be racing a
/// `fork` with a lock held. (Only a multithreaded process, never a child, gets the error.)
pub(crate) fn require_single_thread(call: &str) -> Result<(), Error> {
    match thread_count()? {
        1 => Ok(()),
        n => Err(Error::Failed(format!(
            "{call} from a process with {n} threads: the child could inherit a lock held by \
             another thread; use {call} only while single-threaded"
        ))),
    }
}

/// The pid of the process that flushes stdout before it creates children: the program's own,
/// recorded at its first child, before that child exists. Never written by a child: a page a
/// child writes is a page it pays for, and one is all a child in a 4 KiB cgroup has.
static STDOUT_FLUSHER: AtomicI32 = AtomicI32::new(0);

/// Anything buffered in our stdout would be copied into the child and printed twice, so the
/// program flushes before each child is created (TLPI 25.4). A child that creates children
/// does not: it never used stdout (the rule), so there is nothing to flush, and a flush would
/// take stdout's lock. A child knows itself by its pid, which is not the recorded one.
pub(crate) fn flush_stdout() {
    let me = nix::unistd::getpid().as_raw();
    let flusher = match STDOUT_FLUSHER.compare_exchange(0, me, Ordering::Relaxed, Ordering::Relaxed)
    {
        Ok(_) => me,
        Err(recorded) => recorded,
    };
    if flusher == me {
        let _ = std::io::stdout().flush();
    }
}

/// `fork(2)`: runs `child` in a copy of this process, which then ends with its return value
/// (see the crate's rule for child code); returns the child, to be waited for, in the parent.
///
/// Safe because it first checks that this process has one thread, so the child cannot
/// inherit a lock held by a thread it does not have. Allocates nothing, so a child may fork.
pub fn fork_child(child: impl FnOnce() -> i32) -> Result<Child, Error> {
    require_single_thread("fork")?;
    flush_stdout();
    // SAFETY: single-threaded (checked above), so the child is a complete copy; it never
    // returns into our frames but ends in end_child_with.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => end_child_with(child),
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(Child::new(child, None)),
        Err(e) => Err(Error::sys("fork", e)),
    }
}

/// `clone(2)` without shared memory: starts `child` in a new process on `stack`, with
/// `flags` (namespaces and the like) and the given exit signal (normally SIGCHLD, so that
/// `waitpid` sees an ordinary child). Returns the child in the parent.
///
/// Safe because it refuses [`SHARING_FLAGS`] (the child gets its own copy of memory, and the
/// guard page ends a stack overflow) and checks that this process has one thread.
pub fn clone_child<F: FnMut() -> i32>(
    child: &mut F,
    stack: &mut ChildStack,
    flags: CloneFlags,
    exit_signal: Signal,
) -> Result<Child, Error> {
    // from_bits: nix's CloneFlags lacks the TLS and TID flags, which only threads need.
    if flags.intersects(SHARING_FLAGS) || CloneFlags::from_bits(flags.bits()).is_none() {
        return Err(Error::Failed(format!(
            "clone_child refuses {:?}: use vfork_child or clone_child_unchecked",
            flags & SHARING_FLAGS
        )));
    }
    require_single_thread("clone")?;
    // SAFETY: no sharing flags and a single thread: the child owns a copy of everything.
    unsafe { clone_child_unchecked(child, stack, flags, exit_signal) }
}

/// `clone(2)` with `CLONE_VFORK` added to `flags`: the parent is suspended until the child
/// has ended (or exec'd), so `flags` may share memory (`CLONE_VM`), signal handlers
/// (`CLONE_SIGHAND`, which needs `CLONE_VM`), files or filesystem data, and the parent looks
/// only after the child is done: it has ended (or exec'd) when this returns the child.
///
/// Safe because this process is checked to have one thread: with it suspended, a `CLONE_VM`
/// child that writes our memory is like a function call on another stack. `CLONE_THREAD` and
/// flags nix does not know are refused.
pub fn vfork_child<F: FnMut() -> i32>(
    child: &mut F,
    stack: &mut ChildStack,
    flags: CloneFlags,
) -> Result<Child, Error> {
    if flags.contains(CloneFlags::CLONE_THREAD) || CloneFlags::from_bits(flags.bits()).is_none() {
        return Err(Error::Failed(format!("vfork_child refuses {flags:?}")));
    }
    require_single_thread("clone")?;
    // SAFETY: single thread, suspended by CLONE_VFORK until the child has ended, so `child`
    // and `stack` outlive it and nothing runs beside it.
    unsafe { clone_child_unchecked(child, stack, flags | CloneFlags::CLONE_VFORK, Signal::SIGCHLD) }
}

/// `clone(2)` with any flags: starts `child` on `stack`; see [`clone_child`].
///
/// This calls `libc::clone` rather than `nix::sched::clone`, which boxes the closure and
/// passes a pointer into its own stack frame: fine for a copied address space, dangling for a
/// `CLONE_VM` child once `nix::sched::clone` has returned.
///
/// # Safety
/// - If the calling process has other threads, `child` must keep the rule for child code
///   strictly: no allocation, no locks.
/// - With `CLONE_VM` the child runs in this memory: `child` and `stack` must outlive it (wait
///   for it before dropping them), and what both sides write needs `CLONE_VFORK` or other
///   synchronisation.
/// - `CLONE_THREAD`, `CLONE_SETTLS` and the TID flags make a thread that Rust's runtime does
///   not know about; don't.
pub unsafe fn clone_child_unchecked<F: FnMut() -> i32>(
    child: &mut F,
    stack: &mut ChildStack,
    flags: CloneFlags,
    exit_signal: Signal,
) -> Result<Child, Error> {
    flush_stdout();
    let combined = flags.bits() | exit_signal as libc::c_int;
    // A CLONE_VM child starts without rseq anyway (the kernel drops the registration).
    let rseq = if flags.contains(CloneFlags::CLONE_VM) { None } else { RseqPause::start() };
    // SAFETY: the trampoline matches clone's callback type; the stack top is inside a live
    // mapping; the caller guarantees the rest (see # Safety).
    let pid = unsafe {
        libc::clone(
            child_trampoline::<F>,
            stack.top(),
            combined,
            child as *mut F as *mut libc::c_void,
        )
    };
    let errno = Errno::last();
    drop(rseq);
    if pid == -1 {
        return Err(Error::sys("clone", errno));
    }
    Ok(Child::new(Pid::from_raw(pid), None))
}

/// glibc's restartable-sequences registration, paused for the span of a `clone` or `clone3`.
///
/// Since 2.35 glibc registers an `rseq` area for every thread, and the kernel writes the CPU
/// number into it when the thread returns to user space on another CPU. A forked child
/// inherits the registration, and such a write, on the page it shares copy-on-write with its
/// parent, copies that page: charged to the child's cgroup. Measured with two CPUs: a clone3
/// child that needs one page was killed in 19 runs of 20 at memory.max=4096 until rseq was
/// paused around `clone3`; then 20 of 20 survived. Children that are moved later start
/// without it too, so that no such write can come after their move.
pub(crate) struct RseqPause {
    area: *mut libc::c_void,
    len: u32,
}

impl RseqPause {
    /// The signature glibc registers with (`RSEQ_SIG`): the kernel checks it before each
    /// abort handler, so each architecture picks an instruction that traps if it is ever run.
    #[cfg(target_arch = "x86_64")]
    const SIGNATURE: u32 = 0x5305_3053; // the operand of ud1 0x53053053(%rip), %edi
    #[cfg(target_arch = "aarch64")]
    const SIGNATURE: u32 = 0xd428_bc00; // brk #0x45e0
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    const SIGNATURE: u32 = 0; // never used: start() pauses nothing there
    const FLAG_UNREGISTER: libc::c_int = 1;

    /// Unregisters this thread's rseq area, if glibc registered one (x86-64 and aarch64).
    #[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu")))]
    pub(crate) fn start() -> Option<RseqPause> {
        None
    }

    /// Unregisters this thread's rseq area, if glibc registered one. glibc keeps it at a fixed
    /// offset from the thread pointer, and tells the offset and the size.
    #[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu"))]
    pub(crate) fn start() -> Option<RseqPause> {
        extern "C" {
            static __rseq_offset: isize;
            static __rseq_size: libc::c_uint;
        }
        // SAFETY: glibc (2.35+) defines both; they are written once, before main.
        let (offset, size) = unsafe { (__rseq_offset, __rseq_size) };
        if size == 0 {
            return None;
        }
        let area = (thread_pointer() as isize + offset) as *mut libc::c_void;
        // glibc registers 32 bytes (the original struct rseq) even where __rseq_size tells
        // the size of the features in use; the kernel wants the registered length back.
        for len in [size.max(32), size] {
            // SAFETY: unregistering our own thread's area; the kernel checks every argument.
            let r = unsafe {
                libc::syscall(libc::SYS_rseq, area, len, Self::FLAG_UNREGISTER, Self::SIGNATURE)
            };
            if r == 0 {
                return Some(RseqPause { area, len });
            }
        }
        None
    }
}

/// The calling thread's thread pointer: where glibc finds the thread's own data, its
/// thread-local variables and its rseq area. Each architecture keeps it in its own place:
/// - x86-64: the base of the `fs` segment. Reading a base takes a system call or a recent
///   instruction, so glibc stores the pointer itself at `fs:0` (the `self` word of its
///   thread control block), and one load reads it.
/// - aarch64: the system register `TPIDR_EL0`, which user space reads with `mrs`.
#[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
pub fn thread_pointer() -> usize {
    let pointer: usize;
    // SAFETY: a load from fs:0, which glibc (and a hand-built thread's block) sets to the
    // pointer itself; no effect besides the read.
    unsafe { std::arch::asm!("mov {}, fs:0", out(reg) pointer, options(nostack, readonly)) };
    pointer
}

/// The calling thread's thread pointer; see the x86-64 version beside it.
#[cfg(all(target_arch = "aarch64", target_env = "gnu"))]
pub fn thread_pointer() -> usize {
    let pointer: usize;
    // SAFETY: reading a register that user space may read; no memory is touched.
    unsafe { std::arch::asm!("mrs {}, tpidr_el0", out(reg) pointer, options(nomem, nostack)) };
    pointer
}

impl Drop for RseqPause {
    fn drop(&mut self) {
        // SAFETY: registering the same area, length and signature glibc used.
        unsafe { libc::syscall(libc::SYS_rseq, self.area, self.len, 0, Self::SIGNATURE) };
    }
}

/// Arranges for the calling child to receive SIGKILL when its parent dies, without a race.
///
/// `PR_SET_PDEATHSIG` only covers a parent death that happens *after* the call, so the child
/// then compares `getppid()` with the parent it expects: if the parent already died, the
/// child was re-parented and exits at once. Allocates nothing. Not for a child in a new PID
/// namespace, where `getppid()` is 0.
pub fn die_with_parent(expected_parent: Pid) {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if nix::unistd::getppid() != expected_parent {
        // SAFETY: _exit ends the process at once, running none of the parent's destructors.
        unsafe { libc::_exit(1) };
    }
}

/// One line of child output, formatted without allocating and written with one `write(2)`.
///
/// A fixed 512-byte buffer; a longer line is cut. Use it through [`child_say!`](crate::child_say).
pub struct ChildLine {
    buf: [u8; 512],
    len: usize,
}

impl ChildLine {
    /// An empty line.
    pub const fn new() -> ChildLine {
        ChildLine { buf: [0; 512], len: 0 }
    }

    /// Appends a newline and writes the line to standard output in one `write(2)`, so lines
    /// of parent and child never interleave mid-line.
    pub fn emit(mut self) {
        if self.len == self.buf.len() {
            self.len -= 1;
        }
        self.buf[self.len] = b'\n';
        self.len += 1;
        let mut written = 0;
        while written < self.len {
            // SAFETY: the pointer and length lie within self.buf. (std::io::stdout() is not
            // used: its first use in a process allocates its buffer.)
            let n = unsafe {
                libc::write(
                    libc::STDOUT_FILENO,
                    self.buf[written..].as_ptr() as *const libc::c_void,
                    self.len - written,
                )
            };
            if n > 0 {
                written += n as usize;
            } else if n < 0 && Errno::last() == Errno::EINTR {
                continue;
            } else {
                return;
            }
        }
    }
}

impl Default for ChildLine {
    fn default() -> Self {
        ChildLine::new()
    }
}

impl fmt::Write for ChildLine {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// `println!` for the child side: formats into a [`ChildLine`] and writes it with `write(2)`.
///
/// Formatting integers and strings this way does not allocate, so it keeps the rule for child
/// code, where `println!` (which locks stdout's buffer) does not.
#[macro_export]
macro_rules! child_say {
    ($($arg:tt)*) => {{
        let mut line = $crate::process::ChildLine::new();
        let _ = ::core::fmt::Write::write_fmt(&mut line, format_args!($($arg)*));
        line.emit();
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    #[test]
    fn outcome_tokens_are_stable() {
        assert_eq!(Outcome::Exited(0).token(), "exited:0");
        let killed = Outcome::Killed { signal: Signal::SIGKILL, core_dumped: false };
        assert_eq!(killed.token(), "killed:SIGKILL");
        assert_eq!(killed.to_string(), "killed by SIGKILL");
    }

    #[test]
    fn outcome_from_status_ignores_non_ends() {
        let pid = Pid::from_raw(7);
        assert_eq!(Outcome::from_status(WaitStatus::Exited(pid, 3)), Some(Outcome::Exited(3)));
        assert_eq!(Outcome::from_status(WaitStatus::StillAlive), None);
        assert_eq!(Outcome::from_status(WaitStatus::Stopped(pid, Signal::SIGSTOP)), None);
    }

    #[test]
    fn child_line_cuts_long_lines_and_keeps_the_newline() {
        let mut line = ChildLine::new();
        for _ in 0..100 {
            write!(line, "0123456789").unwrap();
        }
        assert_eq!(line.len, 512);
    }

    #[test]
    fn status_descriptions_name_the_macros() {
        let pid = Pid::from_raw(7);
        assert_eq!(
            describe_status(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            "WIFSIGNALED, WTERMSIG = 9 (SIGKILL), WCOREDUMP = false"
        );
    }

    #[test]
    fn thread_count_sees_the_test_threads() {
        assert!(thread_count().unwrap() >= 1);
    }
}
