//! Step 1, what a child shares: each row's child changes one thing its parent has and ends;
//! then the parent looks whether the change reached it. Each child adds CLONE_VFORK, so the
//! parent looks only once the child has ended.

use std::fs::File;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::sync::atomic::{AtomicU32, Ordering};

use clone_cgroup::attributes::{
    disposition, io_priority, set_disposition, set_io_priority, Disposition, SysvSemaphore,
};
use clone_cgroup::memory::ChildStack;
use clone_cgroup::process::{vfork_child, Outcome};
use clone_cgroup::Error;
use nix::fcntl::{fcntl, FcntlArg};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::stat::{umask, Mode};
use nix::unistd::close;

use super::{Row, Seen};

/// One thing a child may share: the flag, what the child changes, and how the parent looks.
struct Shared {
    flag: &'static str,
    shown_by: &'static str,
    /// The flags of the child with it and without it (CLONE_SIGHAND needs CLONE_VM in both).
    with: CloneFlags,
    without: CloneFlags,
    /// What the child does; false if it could not.
    change: fn(&Before) -> bool,
    /// Whether the change reached the parent.
    reached: fn(&Before) -> Result<bool, Error>,
}

const NONE: CloneFlags = CloneFlags::empty();
const VM: CloneFlags = CloneFlags::CLONE_VM;

static SHARED: [Shared; 6] = [
    Shared {
        flag: "CLONE_FILES",
        shown_by: "child closes a descriptor we opened",
        with: CloneFlags::CLONE_FILES,
        without: NONE,
        change: |before| close(before.devnull.as_raw_fd()).is_ok(),
        reached: |before| Ok(fcntl(&before.devnull, FcntlArg::F_GETFD).is_err()),
    },
    Shared {
        flag: "CLONE_FS",
        shown_by: "child sets its umask to 077",
        with: CloneFlags::CLONE_FS,
        without: NONE,
        change: |_| {
            umask(Mode::from_bits_truncate(0o077));
            true
        },
        reached: |_| Ok(umask(Mode::from_bits_truncate(0o022)).bits() == 0o077),
    },
    Shared {
        flag: "CLONE_SIGHAND",
        shown_by: "child ignores SIGUSR1 (needs CLONE_VM)",
        with: CloneFlags::CLONE_SIGHAND.union(VM),
        without: VM,
        change: |_| set_disposition(Signal::SIGUSR1, Disposition::Ignored).is_ok(),
        reached: |_| Ok(disposition(Signal::SIGUSR1)? == Disposition::Ignored),
    },
    Shared {
        flag: "CLONE_VM",
        shown_by: "child writes 2 into a variable holding 1",
        with: VM,
        without: NONE,
        change: |_| {
            SHARED_VARIABLE.store(2, Ordering::SeqCst);
            true
        },
        reached: |_| Ok(SHARED_VARIABLE.load(Ordering::SeqCst) == 2),
    },
    Shared {
        flag: "CLONE_SYSVSEM",
        shown_by: "child ups a semaphore with SEM_UNDO",
        with: CloneFlags::CLONE_SYSVSEM,
        without: NONE,
        change: |before| before.semaphore.up_with_undo().is_ok(),
        // A shared undo list is applied when its last user ends, and we still run.
        reached: |before| Ok(before.semaphore.value()? == 1),
    },
    Shared {
        flag: "CLONE_IO",
        shown_by: "child sets its I/O priority",
        with: CloneFlags::CLONE_IO,
        without: NONE,
        change: |_| set_io_priority(7).is_ok(),
        reached: |before| Ok(io_priority()? != before.io_priority),
    },
];

pub fn rows() -> Vec<Row> {
    SHARED
        .iter()
        .map(|shared| Row {
            flag: shared.flag,
            shown_by: shared.shown_by,
            expect_with: "shared",
            expect_without: "private",
            show: Box::new(move |_| {
                let word = |shared: bool| if shared { "shared" } else { "private" }.to_string();
                let with = word(reached_parent(shared.with, shared)?);
                Ok(Seen::Both(with, word(reached_parent(shared.without, shared)?)))
            }),
        })
        .collect()
}

/// The variable the CLONE_VM child writes. An atomic, so that the write is visible and well
/// defined in a program that (with CLONE_VM) two processes run.
static SHARED_VARIABLE: AtomicU32 = AtomicU32::new(1);

/// What the parent holds before each sharing child: what the child may change.
struct Before {
    /// /dev/null, open, whose descriptor the CLONE_FILES child closes.
    devnull: File,
    semaphore: SysvSemaphore,
    /// Our I/O priority, set (setting it creates our I/O context, which CLONE_IO shares).
    io_priority: i32,
}

/// One child of a row, with `flags`: whether its change reached us. Puts our state back.
fn reached_parent(flags: CloneFlags, shared: &Shared) -> Result<bool, Error> {
    let mut stack = ChildStack::new(64 << 10)?;
    let devnull = File::open("/dev/null").map_err(|e| Error::io("failed to open /dev/null", e))?;
    let old_umask = umask(Mode::from_bits_truncate(0o022));
    set_disposition(Signal::SIGUSR1, Disposition::Default)?;
    SHARED_VARIABLE.store(1, Ordering::SeqCst);
    set_io_priority(4)?;
    let before = Before { devnull, semaphore: SysvSemaphore::new()?, io_priority: io_priority()? };
    let mut child = || i32::from(!(shared.change)(&before));
    let ended = vfork_child(&mut child, &mut stack, flags)?.reap()?;
    let seen = match ended.outcome {
        Outcome::Exited(0) => (shared.reached)(&before),
        other => Err(Error::Failed(format!("the child with {flags:?} {other}"))),
    };
    // Closed already where the CLONE_FILES child closed it for both of us: not twice.
    if fcntl(&before.devnull, FcntlArg::F_GETFD).is_err() {
        let _ = before.devnull.into_raw_fd();
    }
    umask(old_umask);
    set_disposition(Signal::SIGUSR1, Disposition::Default)?;
    seen
}
