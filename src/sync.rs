//! The parent/child handshake: signals that are blocked first, then waited for.
//!
//! The classic lost wake-up: a child installs a handler and calls `pause()`, but the signal
//! came before `pause()` began, and the child sleeps forever. The cure: block the signals
//! *before* `clone` (the child inherits the mask), so that an early one stays pending, and
//! take it with `sigtimedwait`, which gives up at a deadline. Blocked, a signal also reaches
//! the init process of a PID namespace, which drops those it has no handler for.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

use crate::Error;

/// The child tells the parent it is parked and ready to be moved (and, later, that it is done).
pub const CHILD_TO_PARENT: Signal = Signal::SIGUSR2;
/// The parent tells the child it has been moved into the cgroup.
pub const PARENT_TO_CHILD: Signal = Signal::SIGUSR1;

/// Signals that end a run early: the parent cleans up and exits with 128 + the signal.
pub const INTERRUPTIONS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// One signal taken by [`SignalWatch::next`], with the sender the kernel recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Which signal.
    pub signal: Signal,
    /// `si_pid`: the process that sent it (for SIGCHLD, the child that changed state).
    pub sender: Pid,
}

impl Received {
    /// SIGINT, SIGTERM or SIGHUP: the user wants the run to stop.
    pub fn is_interruption(&self) -> bool {
        INTERRUPTIONS.contains(&self.signal)
    }
}

/// A set of blocked signals that the parent waits for with `sigtimedwait`.
///
/// Create it before creating the child. It blocks SIGCHLD, SIGUSR1, SIGUSR2 and the
/// interruptions (SIGINT, SIGTERM, SIGHUP); dropping it restores the previous mask.
pub struct SignalWatch {
    watched: SigSet,
    previous: SigSet,
}

impl SignalWatch {
    /// Blocks the watched signals in the calling thread (and so in children created later).
    pub fn install() -> Result<SignalWatch, Error> {
        SignalWatch::block([Signal::SIGCHLD, PARENT_TO_CHILD, CHILD_TO_PARENT].into_iter())
    }

    /// Blocks the interruptions only, for a program that waits for its children by other
    /// means, uses SIGUSR1 and SIGUSR2 for its own ends, and looks for an interruption between
    /// its steps ([`stop_if_interrupted`](Self::stop_if_interrupted)).
    pub fn interruptions_only() -> Result<SignalWatch, Error> {
        SignalWatch::block(std::iter::empty())
    }

    /// Blocks `signals` and the interruptions.
    fn block(signals: impl Iterator<Item = Signal>) -> Result<SignalWatch, Error> {
        let mut watched = SigSet::empty();
        for signal in signals.chain(INTERRUPTIONS) {
            watched.add(signal);
        }
        let mut previous = SigSet::empty();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&watched), Some(&mut previous))
            .map_err(|e| Error::sys("sigprocmask(SIG_BLOCK)", e))?;
        Ok(SignalWatch { watched, previous })
    }

    /// Takes the next watched signal, or `None` once `deadline` has passed.
    pub fn next(&self, deadline: Instant) -> Result<Option<Received>, Error> {
        wait_signal(&self.watched, deadline)
    }

    /// Takes every signal already pending and returns the first interruption among them, if
    /// any: the check between steps that do not wait (a Ctrl-C during setup stays pending
    /// until asked for, because it is blocked).
    pub fn pending_interruption(&self) -> Result<Option<Signal>, Error> {
        let mut first = None;
        while let Some(r) = self.next(Instant::now())? {
            if r.is_interruption() && first.is_none() {
                first = Some(r.signal);
            }
        }
        Ok(first)
    }

    /// [`Error::Interrupted`] if an interruption is pending: `watch.stop_if_interrupted()?`
    /// between steps.
    pub fn stop_if_interrupted(&self) -> Result<(), Error> {
        match self.pending_interruption()? {
            Some(signal) => Err(Error::Interrupted(signal)),
            None => Ok(()),
        }
    }
}

impl Drop for SignalWatch {
    /// Restores the previous mask. An interruption that came after the last look would then
    /// end the process by its default action, before it could say so: it is taken first, and
    /// kept for [`late_interruption`].
    fn drop(&mut self) {
        if let Ok(Some(signal)) = self.pending_interruption() {
            LATE_INTERRUPTION.store(signal as i32, Ordering::Relaxed);
        }
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.previous), None);
    }
}

/// The interruption a dropped [`SignalWatch`] found pending; 0 for none.
static LATE_INTERRUPTION: AtomicI32 = AtomicI32::new(0);

/// An interruption that came after a [`SignalWatch`]'s last look, taken when it was dropped:
/// the run ended anyway, but the user asked it to stop, and its summary should say so.
pub fn late_interruption() -> Option<Signal> {
    Signal::try_from(LATE_INTERRUPTION.swap(0, Ordering::Relaxed)).ok()
}

/// `sigtimedwait(2)` until `deadline`: the next signal of `set` that is pending or arrives,
/// or `None` at the deadline. The signals of `set` must be blocked. Allocates nothing, on any
/// path: the child side uses it too.
pub fn wait_signal(set: &SigSet, deadline: Instant) -> Result<Option<Received>, Error> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = libc::timespec {
            tv_sec: left.as_secs() as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        };
        // SAFETY: siginfo_t is plain data; zeroed is a valid value to be overwritten.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: set, info and timeout are valid for the duration of the call.
        let n = unsafe { libc::sigtimedwait(set.as_ref(), &mut info, &timeout) };
        if n > 0 {
            let signal = Signal::try_from(n).map_err(|e| Error::sys("sigtimedwait", e))?;
            // SAFETY: for the signals waited on here the kernel fills si_pid.
            let sender = Pid::from_raw(unsafe { info.si_pid() });
            return Ok(Some(Received { signal, sender }));
        }
        match Errno::last() {
            Errno::EAGAIN => return Ok(None),
            Errno::EINTR => continue,
            e => return Err(Error::sys("sigtimedwait", e)),
        }
    }
}

/// How long a child waits for word from its parent before it gives up and ends: far longer
/// than any lesson keeps a child waiting, short enough that a child whose parent is gone does
/// not linger.
pub const CHILD_PATIENCE: Duration = Duration::from_secs(30);

/// The child's side of "wait until told": takes `signal`, which must be blocked (the child
/// inherited the mask, so a signal sent before the child got here is pending, not lost), and
/// returns whether it came within `within`. Allocates nothing, on any path.
pub fn wait_for(signal: Signal, within: Duration) -> bool {
    let set = SigSet::from_iter([signal]);
    matches!(wait_signal(&set, Instant::now() + within), Ok(Some(_)))
}

/// The body of a child that only waits to be told to end: it waits, at most
/// [`CHILD_PATIENCE`], for [`PARENT_TO_CHILD`] (SIGUSR1, blocked since before the child was
/// born), then exits: 0 if told, 1 if not.
pub fn await_go() -> i32 {
    i32::from(!wait_for(PARENT_TO_CHILD, CHILD_PATIENCE))
}

/// Sends `signal` to `to`: `kill(2)`. Allocates nothing, on any path.
pub fn send(to: Pid, signal: Signal) -> Result<(), Error> {
    kill(to, signal).map_err(|e| Error::sys("kill", e))
}
