//! Step 5, the child's birth and end as Linux 7.1 lets a parent ask for them: a child no
//! wait finds (CLONE_AUTOREAP), a child killed when its pidfd closes (CLONE_PIDFD_AUTOKILL),
//! no_new_privs from birth (CLONE_NNP), a mount namespace holding its root alone
//! (CLONE_EMPTY_MNTNS). Where the kernel refuses a flag with EINVAL, it is asked apart whether
//! it knows the flag at all ([`knows_flags`]): only then does the row say it lacks it.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use clone_cgroup::clone3::{CloneArgs, Flags};
use clone_cgroup::clone3_probe::knows_flags;
use clone_cgroup::procfs::{self, Stat};
use clone_cgroup::sync::{self, await_go};
use clone_cgroup::Error;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::unistd::{getpid, Pid};

use super::{try_child, while_waiting, Row, Seen, Tried};

pub fn rows() -> Vec<Row> {
    vec![
        Row {
            flag: "CLONE_AUTOREAP",
            shown_by: "waitid(P_PIDFD) once the child has ended",
            expect_with: "ECHILD",
            expect_without: "exited 0",
            show: Box::new(|_| autoreap_row()),
        },
        Row {
            flag: "CLONE_PIDFD_AUTOKILL",
            shown_by: "the waiting child, once its pidfd is closed",
            expect_with: "gone",
            expect_without: "running",
            show: Box::new(|_| autokill_row()),
        },
        Row {
            flag: "CLONE_NNP",
            shown_by: "NoNewPrivs in the child's /proc/PID/status",
            expect_with: "1",
            expect_without: "0",
            show: Box::new(|_| nnp_row()),
        },
        Row {
            flag: "CLONE_EMPTY_MNTNS",
            shown_by: "mounts in the child's /proc/PID/mountinfo",
            expect_with: "1: its root",
            expect_without: "a copy of ours",
            show: Box::new(|_| empty_mntns_row()),
        },
    ]
}

/// What a row says where the kernel does not know its flag.
const LACKS_7_1: &str = "this kernel lacks it (Linux 7.1 brings it)";

/// Both sides of a row whose `look` runs a child with `flags` (`true`) and one without.
fn both(flags: Flags, look: impl Fn(bool) -> Result<Tried, Error>) -> Result<Seen, Error> {
    Ok(match look(true)? {
        Tried::Shown(with) => match look(false)? {
            Tried::Shown(without) => Seen::Both(with, without),
            Tried::Refused(errno) => Seen::NotShown(format!("without it: {}", errno.desc())),
        },
        Tried::Refused(Errno::EINVAL) if !knows_flags(flags)? => Seen::NotShown(LACKS_7_1.into()),
        Tried::Refused(Errno::EPERM) => Seen::NotShown("EPERM: it needs root".into()),
        Tried::Refused(errno) => Seen::NotShown(format!("the kernel refused it: {}", errno.desc())),
    })
}

/// Waits, at most 10 s, until the pidfd says its process has ended.
fn ended(pidfd: Option<&OwnedFd>) -> Result<(), Error> {
    let pidfd = pidfd.ok_or_else(|| Error::Failed("no pidfd".into()))?;
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(10_000u16)) {
        Ok(1) => Ok(()),
        Ok(_) => Err(Error::Failed("the child did not end within 10 s".into())),
        Err(e) => Err(Error::sys("poll(pidfd)", e)),
    }
}

fn autoreap_row() -> Result<Seen, Error> {
    // Exit signal 0, as CLONE_AUTOREAP wants; a pidfd to see the end by.
    both(Flags::AUTOREAP, |autoreap| {
        let flags = if autoreap { Flags::AUTOREAP | Flags::PIDFD } else { Flags::PIDFD };
        try_child(
            CloneArgs::with_exit_signal(0).flags(flags),
            || 0,
            |mut child| {
                ended(child.pidfd())?;
                let seen = match child.reap() {
                    Ok(ended) => ended.outcome.to_string().replace("with status ", ""),
                    Err(Error::Sys { errno, .. }) => format!("{errno:?}"),
                    Err(e) => return Err(e),
                };
                // Reaped by us, or by the kernel: nothing left to kill.
                child.release();
                Ok(seen)
            },
        )
    })
}

fn autokill_row() -> Result<Seen, Error> {
    // PIDFD_AUTOKILL wants PIDFD and AUTOREAP; with NNP it needs no CAP_SYS_ADMIN.
    let base = Flags::PIDFD | Flags::AUTOREAP | Flags::NNP;
    both(base | Flags::PIDFD_AUTOKILL, |autokill| {
        let flags = if autokill { base | Flags::PIDFD_AUTOKILL } else { base };
        try_child(CloneArgs::with_exit_signal(0).flags(flags), await_go, |child| {
            // Giving the child up closes its pidfd. The kernel reaps it when it ends, so
            // whether /proc still has it tells whether it runs; it waits to be told otherwise.
            let pid = child.release();
            let deadline = Instant::now() + Duration::from_secs(1);
            while Stat::of(pid).is_some() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if Stat::of(pid).is_some() {
                sync::send(pid, sync::PARENT_TO_CHILD)?;
                return Ok("running".into());
            }
            Ok("gone".into())
        })
    })
}

/// The value of `NoNewPrivs` in `/proc/PID/status`.
fn no_new_privs(pid: Pid) -> String {
    procfs::status_field(pid, "NoNewPrivs").unwrap_or_else(|| "?".into())
}

fn nnp_row() -> Result<Seen, Error> {
    if no_new_privs(getpid()) != "0" {
        return Ok(Seen::NotShown("this process has no_new_privs itself".into()));
    }
    both(Flags::NNP, |nnp| {
        let flags = if nnp { Flags::NNP } else { Flags::NONE };
        try_child(CloneArgs::new(Signal::SIGCHLD).flags(flags), await_go, |child| {
            while_waiting(child, no_new_privs)
        })
    })
}

fn empty_mntns_row() -> Result<Seen, Error> {
    let mounts = |pid: Pid| {
        let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
        text.lines().count()
    };
    let ours = mounts(getpid());
    both(Flags::EMPTY_MNTNS, |empty| {
        let flags = if empty { Flags::EMPTY_MNTNS } else { Flags::NEWNS };
        try_child(CloneArgs::new(Signal::SIGCHLD).flags(flags), await_go, |child| {
            while_waiting(child, |pid| match mounts(pid) {
                1 => "1: its root".into(),
                n if n == ours => "a copy of ours".into(),
                n => format!("{n} mounts"),
            })
        })
    })
}
