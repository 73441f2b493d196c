//! The [`Child`] a parent holds: its waits, bounded, by pid or by pidfd, and how it ended
//! ([`Ended`], [`Outcome`]). A child dropped before it was reaped is killed and reaped: no
//! orphan, no zombie.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::sync::{Received, SignalWatch, INTERRUPTIONS};
use crate::Error;

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
        crate::say!("parent[{me}]: got {got}; killed and reaped child {child}: {status:?}");
        return Error::Interrupted(signal);
    }
    crate::say!(
        "parent[{me}]: child {child} still running after {timeout:?}; killed it: {status:?}"
    );
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

    /// Gives the child up without waiting for it: it is no longer killed and reaped when
    /// dropped. Whoever holds the pid reaps it; or the kernel does, for a child that needs no
    /// wait (`CLONE_AUTOREAP`); or, once its parent has ended, whoever adopts it.
    pub fn release(mut self) -> Pid {
        self.reaped = true;
        self.pid
    }

    /// Records that the story has reaped this child itself, with a wait of its own that the
    /// lesson shows (`waitpid` with flags, `waitid`): nothing is left to do when it is dropped.
    pub fn reaped_by_hand(mut self) {
        self.reaped = true;
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn status_descriptions_name_the_macros() {
        let pid = Pid::from_raw(7);
        assert_eq!(
            describe_status(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            "WIFSIGNALED, WTERMSIG = 9 (SIGKILL), WCOREDUMP = false"
        );
    }
}
