//! Teaching programs, and the small library behind them, that show on a real kernel how Linux
//! creates processes (`fork`, `clone`, `clone3`), how a parent reads their ends (`waitpid`, wait
//! statuses, signals, pidfds), and how cgroup v2 limits them (`memory.max`, `pids.max`).
//!
//! Each scenario is a binary (`cargo run --bin NAME`); this library holds what two of them
//! would otherwise repeat. Read it in this order:
//!
//! # 1. Creating a child and reading its end
//! [`process`]: [`clone_child`](process::clone_child) on a [`ChildStack`](process::ChildStack),
//! the async-signal-safe [`child_say!`] for the child's output, and
//! [`wait_for`](process::wait_for), a bounded `waitpid` that returns an
//! [`Outcome`](process::Outcome): exited with a code, or killed by a signal.
//!
//! # 2. Telling each other when: blocked signals
//! [`sync`]: block the signals first, so none is lost, then wait with `sigtimedwait` and a
//! deadline. [`SignalWatch`](sync::SignalWatch) is the parent's side.
//!
//! # 3. A cgroup v2 directory
//! [`cgroup`]: find the cgroup2 mount, refuse clearly where it cannot work (hybrid hosts, a
//! missing controller, the no-internal-process rule), create a uniquely named cgroup, enable
//! the memory controller, write limits, move a process in, read `memory.events` and
//! `memory.peak`, and remove the cgroup on every path.
//!
//! # 4. Memory that is charged when touched
//! [`memory`]: reserve address space now, pay for pages when they are first written. This is
//! what makes "a child that needs less than 4 KiB" exact.
//!
//! # 5. The memory scenarios
//! [`scenarios`]: the delayed, the signal-synced and the clone3 placement, each as numbered
//! steps, run by the six `clone*_cgroup_memory*` binaries; [`cli`] parses their options and
//! prints the one-line summary every binary ends with.
//!
//! # 6. clone3
//! [`clone3`]: the raw system call wrapped once: a [`CloneArgs`](clone3::CloneArgs) builder,
//! `CLONE_INTO_CGROUP`, `CLONE_PIDFD`, `set_tid`, a child on a stack of its own, and waiting
//! on a pidfd.
//!
//! # 7. Accounting and measuring
//! [`acct`]: `acct(2)` and the kernel's 64-byte `acct_v3` record. [`spawn`]: seven ways to
//! create a process, prepared once so that `spawn_bench` measures only the system calls.
//!
//! # Exit statuses (all binaries)
//! - 0: the scenario ended as claimed (for a `_fail` scenario: the kernel killed the child);
//! - 1: it did not, or something failed unexpectedly (the output says what happened instead);
//! - 2: it cannot run here (one line names the reason and the fix), or the options are wrong;
//! - 128 + N: interrupted by signal N (SIGINT, SIGTERM, SIGHUP) after cleaning up.
#![deny(missing_docs)]

use std::fmt;
use std::io;

use nix::errno::Errno;
use nix::sys::signal::Signal;

pub mod acct;
pub mod cgroup;
pub mod cli;
pub mod clone3;
pub mod memory;
pub mod process;
pub mod scenarios;
pub mod spawn;
pub mod sync;

/// Everything that can stop a scenario, each mapped to one exit status.
#[derive(Debug)]
pub enum Error {
    /// This environment cannot run the scenario; the text names the reason and the fix.
    CannotRun(String),
    /// The command line is wrong; the text says how.
    Usage(String),
    /// A system call failed.
    Sys {
        /// What was being done, e.g. `clone`.
        context: String,
        /// The error number.
        errno: Errno,
    },
    /// A file operation failed.
    Io {
        /// What was being done, naming the path (and the data, for writes).
        context: String,
        /// The OS error.
        source: io::Error,
    },
    /// Something did not behave as the scenario expects.
    Failed(String),
    /// SIGINT, SIGTERM or SIGHUP arrived; the child was killed and everything cleaned up.
    Interrupted(Signal),
}

impl Error {
    /// A failed system call.
    pub fn sys(context: &str, errno: Errno) -> Error {
        Error::Sys {
            context: context.to_string(),
            errno,
        }
    }

    /// A failed file operation.
    pub fn io(context: &str, source: io::Error) -> Error {
        Error::Io {
            context: context.to_string(),
            source,
        }
    }

    /// An environment that cannot run the scenario.
    pub fn cannot_run(reason: impl Into<String>) -> Error {
        Error::CannotRun(reason.into())
    }

    /// The exit status for this error (see the crate documentation).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::CannotRun(_) | Error::Usage(_) => cli::CANNOT_RUN,
            Error::Sys { .. } | Error::Io { .. } | Error::Failed(_) => cli::NOT_AS_CLAIMED,
            Error::Interrupted(signal) => 128 + *signal as u8,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::CannotRun(reason) => write!(f, "cannot run here: {reason}"),
            Error::Usage(reason) => write!(f, "{reason}"),
            Error::Sys { context, errno } => {
                write!(f, "{context} failed: {} ({})", errno.desc(), *errno as i32)
            }
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Failed(what) => write!(f, "{what}"),
            Error::Interrupted(signal) => {
                write!(
                    f,
                    "interrupted by {}; child killed and reaped, cgroup removed",
                    signal.as_str()
                )
            }
        }
    }
}

impl std::error::Error for Error {}
