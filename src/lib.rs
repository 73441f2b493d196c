//! Teaching programs, and the small library behind them, that show on a real kernel how Linux
//! creates processes (`fork`, `clone`, `clone3`), how a parent reads their ends (`waitpid`, wait
//! statuses, signals, pidfds), how processes die, and how cgroup v2 limits them (`memory.max`,
//! `pids.max`). The course that teaches with them is a book, in the repository's `book/`.
//!
//! # The scenarios
//! Each is a binary whose file is the lesson: a doc comment that says what it shows and what
//! to expect, then the story in numbered steps, each a `// N.` comment matching the `N.` it
//! prints. Run one with `cargo run --bin NAME` (the cgroup ones as root).
//!
//! | binary | what it shows |
//! |---|---|
//! | [`fork_waitpid`](../fork_waitpid/index.html) | `fork`; the parent waits and decodes the status |
//! | [`clone_waitpid`](../clone_waitpid/index.html) | `clone` into new namespaces: the child is PID 1 |
//! | [`clone_waitpid_cgroup_memory`](../clone_waitpid_cgroup_memory/index.html), [`_fail`](../clone_waitpid_cgroup_memory_fail/index.html) | a child moved into a 4 KiB cgroup while it sleeps: survives, or is OOM-killed |
//! | [`clone_wait_signal_cgroup_memory`](../clone_wait_signal_cgroup_memory/index.html), [`_fail`](../clone_wait_signal_cgroup_memory_fail/index.html) | the same, moved while it waits for a signal: no timing left to chance |
//! | [`clone3_into_cgroup_memory`](../clone3_into_cgroup_memory/index.html), [`_fail`](../clone3_into_cgroup_memory_fail/index.html) | `clone3` with `CLONE_INTO_CGROUP`: born in the cgroup |
//! | [`cgroup_pids_max`](../cgroup_pids_max/index.html) | `pids.max`: fork fails with EAGAIN |
//! | [`clone3_set_tid`](../clone3_set_tid/index.html) | `set_tid`: a chosen pid in every PID namespace |
//! | [`process_accounting`](../process_accounting/index.html) | `acct(2)` and the kernel's records of ended processes |
//! | [`clone_flags`](../clone_flags/index.html) | every clone flag a program can see, with and without it |
//! | [`clone3_args`](../clone3_args/index.html) | the kernel selftests' checks of `clone3`'s arguments |
//! | [`clone_wait_flags`](../clone_wait_flags/index.html) | clone children and `__WCLONE`, `__WALL`, `__WNOTHREAD` |
//! | [`clone_thread`](../clone_thread/index.html) | a thread built by hand, joined on the futex the kernel clears |
//! | [`fork_exec_attributes`](../fork_exec_attributes/index.html) | what fork and exec keep, beside the book |
//! | [`cgroup_pids_hierarchy`](../cgroup_pids_hierarchy/index.html) | the pids controller's rules in a hierarchy |
//! | [`zombie_orphan`](../zombie_orphan/index.html) | zombies fill a pids limit until waited for; orphans are adopted |
//! | [`cgroup_kill`](../cgroup_kill/index.html) | a whole cgroup frozen, killed, and taken by the OOM killer as a group |
//! | [`fork_stdio`](../fork_stdio/index.html) | a buffer across fork: twice with `exit`, once with `_exit` or a flush; Rust and C |
//! | [`wait_statuses`](../wait_statuses/index.html) | every change of state, as `waitpid`'s raw word and `waitid`'s `si_code` |
//! | [`spawn_bench`](../spawn_bench/index.html), [`cgroup_race`](../cgroup_race/index.html) | measurements: how fast a process is born; what a move into a cgroup costs |
//!
//! # The library, in reading order
//! It holds the mechanisms the scenarios share, named for what they ask of the kernel. The
//! six core scenarios and the `clone3` pair need only the first seven modules, listed from
//! the bottom up: each uses only modules listed before it.
//! 1. [`sync`]: the parent/child handshake with signals blocked before `clone`.
//! 2. [`flags`]: every `CLONE_*` flag, 64 bits wide, and the one list of those that make a
//!    child share with its parent ([`Flags::SHARED_OR_WRITTEN`](flags::Flags::SHARED_OR_WRITTEN)).
//! 3. [`memory`]: memory that is paid for when touched, so a child pays before its move; the
//!    [`ChildStack`](memory::ChildStack) a `clone` child runs on.
//! 4. [`procfs`]: what `/proc/PID` tells of a process: its state, its parent, its cgroup.
//! 5. [`process`]: start a child ([`fork_child`](process::fork_child),
//!    [`clone_child`](process::clone_child), [`vfork_child`](process::vfork_child)), all
//!    through one door that `clone3` uses too; each way returns a
//!    [`Child`](process::Child), which waits, bounded, for a signal from it, for a while, or
//!    for its [`Outcome`](process::Outcome), by pid or by pidfd, and is killed and reaped if
//!    it is dropped first; why glibc's [`rseq`](process::rseq) area is paused while a child
//!    is created; [`child_say!`] for a child's output.
//! 6. [`cgroup`]: one cgroup v2 directory: refuse where it cannot work, create, enable a
//!    controller, write a limit, move a process in, read the kernel's counters, remove.
//! 7. [`clone3`]: the `clone3` system call: `CLONE_INTO_CGROUP`, `CLONE_PIDFD`, `set_tid`.
//!
//! The lessons around them add six, each a set of system calls that needs `unsafe`:
//! 8. [`spawn`]: process creation prepared in advance, so that a child only makes system calls.
//! 9. [`attributes`]: dispositions, nice, I/O priority, semaphore undo: what fork and exec keep.
//! 10. `thread` (x86-64 and aarch64, glibc): a thread built by hand, touching no thread-local.
//! 11. [`clone3_probe`]: `clone3` with its arguments as given, to show what the kernel checks.
//! 12. [`wait_raw`]: `waitpid`'s raw status word and `waitid`'s `si_code` and `si_status`.
//! 13. [`fork_exit`]: a fork that does not flush first, C's `printf`, `atexit`.
//!
//! One shows what the kernel saw:
//! 14. [`trace`]: `--trace`, the kernel's own record of a run from its tracepoints (a tracefs
//!     instance of the run's own), with the story's lines among its events: the parent's
//!     written by [`say!`], a child's by [`child_say!`]; as a timeline in words and as a
//!     picture.
//!
//! And one that is not a mechanism at all: [`cli`], the command line every binary shares
//! (options, `--help`, `--trace`, exit statuses, what a memory scenario claims, the summary
//! line each run ends with), which uses [`sync`], [`memory`], [`process`], [`cgroup`] and
//! [`trace`]. A reader of a story can skip it.
//!
//! # The rule for code in a child
//! From its creation to its end, a child runs only what is safe in a signal handler: system
//! calls, [`child_say!`] (a line formatted into a buffer on the stack and written with one
//! `write(2)`), and memory it was given before it was created. It never allocates, never takes
//! a lock and never uses `std::io::stdout`. Three reasons, one rule: after `fork` of a
//! multithreaded process the child may inherit a lock held by a thread it does not have; a
//! `CLONE_VM` child shares the parent's allocator; and in a cgroup with `memory.max=4096`
//! every allocation after the move is a page the child pays for, when one page is all it has.
//!
//! The rule holds for everything a child calls:
//! - The library's functions that children call allocate on no path, errors included
//!   ([`Error::Sys`] carries a static context).
//! - A child that creates children keeps it too. The library flushes stdout before it
//!   creates a child, so that nothing buffered is printed twice, but only in the program's
//!   own process: a child never used stdout, so it has nothing to flush, and a flush would
//!   take stdout's lock. A child's list of its own children is allocated by the parent, and
//!   the child stops before a push would grow it.
//! - A child ends through `_exit` with the value its closure returns, never by returning into
//!   the parent's frames, so no destructor of the parent runs in the child.
//! - A panic is the one end that breaks the rule, by its nature: Rust's panic hook formats the
//!   message and writes it to standard error, which allocates and takes stderr's lock, and
//!   unwinding allocates its payload. The child is ending then, and it has no other thread
//!   that could hold those locks; the panic is caught at the child's boundary, which ends it
//!   with exit status [`CHILD_PANICKED`](process::CHILD_PANICKED) (101).
//!
//! Where a program breaks the rule on purpose, the line says so:
//! `// EXCEPTION to the child-code rule: ...`.
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

pub mod attributes;
pub mod cgroup;
pub mod cli;
pub mod clone3;
pub mod clone3_probe;
pub mod flags;
pub mod fork_exit;
pub mod memory;
pub mod process;
pub mod procfs;
pub mod spawn;
pub mod sync;
#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu"))]
pub mod thread;
pub mod trace;
pub mod wait_raw;

/// Everything that can stop a scenario, each mapped to one exit status.
#[derive(Debug)]
pub enum Error {
    /// This environment cannot run the scenario; the text names the reason and the fix.
    CannotRun(String),
    /// The command line is wrong; the text says how.
    Usage(String),
    /// A system call failed. Building one allocates nothing, so child code may return it.
    Sys {
        /// What was being done, e.g. `clone`.
        context: &'static str,
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
    /// Something the kernel or the system gave back is not what it must be. A static text:
    /// building one allocates nothing, so child code may return it.
    Unexpected(&'static str),
    /// SIGINT, SIGTERM or SIGHUP arrived; the child was killed and everything cleaned up.
    Interrupted(Signal),
}

impl Error {
    /// A failed system call, named by `context`. Allocates nothing: a child may return it.
    pub fn sys(context: &'static str, errno: Errno) -> Error {
        Error::Sys { context, errno }
    }

    /// A failed file operation; `context` names the path, and the data of a write.
    pub fn io(context: &str, source: io::Error) -> Error {
        Error::Io { context: context.to_string(), source }
    }

    /// An environment that cannot run the scenario; `reason` says why and names the fix, in
    /// one line (exit status 2).
    pub fn cannot_run(reason: impl Into<String>) -> Error {
        Error::CannotRun(reason.into())
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
            Error::Unexpected(what) => write!(f, "{what}"),
            Error::Interrupted(signal) => {
                write!(f, "interrupted by {}; nothing was left behind", signal.as_str())
            }
        }
    }
}

impl std::error::Error for Error {}
