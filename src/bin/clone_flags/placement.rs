//! Step 4, the child's place: whose child it is (CLONE_PARENT), when its parent goes on
//! (CLONE_VFORK), what the parent gets back (CLONE_PIDFD), where it is born
//! (CLONE_INTO_CGROUP), what it keeps of its parent's handlers (CLONE_CLEAR_SIGHAND), and
//! what the kernel does with an obsolete flag (CLONE_DETACHED).

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use clone_cgroup::attributes::{disposition, set_disposition, Disposition};
use clone_cgroup::cgroup;
use clone_cgroup::clone3::{clone3_child, CloneArgs, Flags};
use clone_cgroup::clone3_probe::try_clone3;
use clone_cgroup::memory::ChildStack;
use clone_cgroup::process::{clone_child, fork_child, vfork_child, Outcome};
use clone_cgroup::procfs;
use clone_cgroup::sync::await_go;
use clone_cgroup::Error;
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, Pid};

use super::{try_child, while_waiting, Row, Seen, Tried};

pub fn rows() -> Vec<Row> {
    vec![
        Row {
            flag: "CLONE_PARENT",
            shown_by: "whose child a child's child is",
            expect_with: "its grandparent's",
            expect_without: "its parent's",
            show: Box::new(|_| parent_row()),
        },
        Row {
            flag: "CLONE_VFORK",
            shown_by: "when the parent goes on (child: 200 ms)",
            expect_with: "after the child",
            expect_without: "at once",
            show: Box::new(|_| vfork_row()),
        },
        Row {
            flag: "CLONE_PIDFD",
            shown_by: "what clone3 returns besides the pid",
            expect_with: "a pidfd for it",
            expect_without: "nothing",
            show: Box::new(|_| pidfd_row()),
        },
        Row {
            flag: "CLONE_INTO_CGROUP",
            shown_by: "the child's cgroup as it starts",
            expect_with: "the one given",
            expect_without: "ours",
            show: Box::new(into_cgroup_row),
        },
        Row {
            flag: "CLONE_CLEAR_SIGHAND",
            shown_by: "the child's SIGUSR2, which we catch",
            expect_with: "default",
            expect_without: "caught",
            show: Box::new(|_| clear_sighand_row()),
        },
        Row {
            flag: "CLONE_DETACHED",
            shown_by: "clone3 (clone(2) ignores it)",
            expect_with: "EINVAL",
            expect_without: "child",
            show: Box::new(|_| detached_row()),
        },
    ]
}

fn parent_row() -> Result<Seen, Error> {
    let look = |flags: Flags| -> Result<String, Error> {
        // Our child starts a child of its own, and tells by its exit status whether that
        // one is its child (0: it reaped it) or not (1: ECHILD).
        let mut middle = fork_child(|| {
            // clone3 wants exit signal 0 with CLONE_PARENT: the child takes its parent's.
            let exit_signal = if flags == Flags::PARENT { 0 } else { Signal::SIGCHLD as u64 };
            let args = CloneArgs::with_exit_signal(exit_signal).flags(flags);
            let Ok(grandchild) = clone3_child(&args, || 0) else {
                return 3;
            };
            match waitpid(grandchild.release(), Some(WaitPidFlag::__WALL)) {
                Ok(_) => 0,
                Err(Errno::ECHILD) => 1,
                Err(_) => 2,
            }
        })?;
        let said = middle.reap()?.outcome;
        // With CLONE_PARENT the grandchild is ours to reap.
        let ours = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(..)) => true,
            Err(Errno::ECHILD) => false,
            other => return Err(Error::Failed(format!("waitpid(-1): {other:?}"))),
        };
        Ok(match (said, ours) {
            (Outcome::Exited(1), true) => "its grandparent's".into(),
            (Outcome::Exited(0), false) => "its parent's".into(),
            other => format!("{other:?}"),
        })
    };
    Ok(Seen::Both(look(Flags::PARENT)?, look(Flags::NONE)?))
}

fn vfork_row() -> Result<Seen, Error> {
    let mut stack = ChildStack::new(64 << 10)?;
    let mut sleeper = || {
        std::thread::sleep(Duration::from_millis(200));
        0
    };
    let started = Instant::now();
    let mut child =
        clone_child(&mut sleeper, &mut stack, CloneFlags::CLONE_VFORK, Signal::SIGCHLD)?;
    let suspended = started.elapsed();
    child.reap()?;
    let with = if suspended >= Duration::from_millis(200) {
        "after the child".to_string()
    } else {
        format!("after {suspended:?}")
    };
    // Without it: the child cannot end before our signal, so if clone returns, it was at once.
    let mut waiter = await_go;
    let child = clone_child(&mut waiter, &mut stack, CloneFlags::empty(), Signal::SIGCHLD)?;
    let without = while_waiting(child, |pid| {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => "at once",
            _ => "after the child",
        }
        .into()
    })?;
    Ok(Seen::Both(with, without))
}

fn pidfd_row() -> Result<Seen, Error> {
    let look = |args: CloneArgs| -> Result<String, Error> {
        let mut child = clone3_child(&args, || 0)?;
        let pid = child.pid();
        let seen = match child.pidfd() {
            Some(pidfd) => {
                // The kernel names the process a pidfd refers to in its fdinfo (5.3).
                let info = format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd());
                let text = std::fs::read_to_string(info).unwrap_or_default();
                let line = text.lines().find_map(|l| l.strip_prefix("Pid:")).map(str::trim);
                if line == Some(pid.to_string().as_str()) {
                    "a pidfd for it".to_string()
                } else {
                    format!("a pidfd ({line:?})")
                }
            }
            None => "nothing".into(),
        };
        child.reap()?;
        Ok(seen)
    };
    Ok(Seen::Both(
        look(CloneArgs::new(Signal::SIGCHLD).pidfd())?,
        look(CloneArgs::new(Signal::SIGCHLD))?,
    ))
}

/// The row; what was done to the cgroup tree for it (created, enabled, removed) goes into
/// `notes`.
fn into_cgroup_row(notes: &mut Vec<String>) -> Result<Seen, Error> {
    let (target, prepared) = match cgroup::prepare("into-cgroup", "pids", None, None) {
        Ok(prepared) => prepared,
        Err(Error::CannotRun(why)) => {
            let why = why.split(" (").next().unwrap_or_default();
            return Ok(Seen::NotShown(format!("it needs root and cgroup v2: {why}")));
        }
        Err(e) => return Err(e),
    };
    notes.extend(prepared);
    let seen = (|| {
        let dir = target.open_path()?;
        let ours = procfs::cgroup_of(getpid());
        let target_name = target.path().file_name().map(|n| n.to_string_lossy().into_owned());
        let look = |args: CloneArgs| -> Result<String, Error> {
            let child = clone3_child(&args, await_go)?;
            while_waiting(child, |pid| {
                let theirs = procfs::cgroup_of(pid);
                let last = theirs.as_deref().and_then(|path| path.rsplit('/').next());
                match theirs.as_deref() {
                    _ if last.is_some() && last == target_name.as_deref() => "the one given".into(),
                    _ if theirs == ours => "ours".into(),
                    Some(path) => path.to_string(),
                    None => procfs::GONE.into(),
                }
            })
        };
        Ok::<_, Error>(Seen::Both(
            look(CloneArgs::new(Signal::SIGCHLD).into_cgroup(&dir))?,
            look(CloneArgs::new(Signal::SIGCHLD))?,
        ))
    })();
    if let Some(path) = target.remove()? {
        notes.push(format!("removed {}", path.display()));
    }
    seen
}

fn clear_sighand_row() -> Result<Seen, Error> {
    set_disposition(Signal::SIGUSR2, Disposition::Caught)?;
    let look = |flags: Flags| {
        // The child's answer in its exit status: 0 SIG_DFL, 1 still our handler.
        let answer = || match disposition(Signal::SIGUSR2) {
            Ok(Disposition::Default) => 0,
            Ok(Disposition::Caught) => 1,
            _ => 2,
        };
        try_child(CloneArgs::new(Signal::SIGCHLD).flags(flags), answer, |mut child| {
            Ok(match child.reap()?.outcome {
                Outcome::Exited(0) => "default".into(),
                Outcome::Exited(1) => "caught".into(),
                other => format!("child {other}"),
            })
        })
    };
    let seen = match (look(Flags::CLEAR_SIGHAND)?, look(Flags::NONE)?) {
        (Tried::Shown(with), Tried::Shown(without)) => Seen::Both(with, without),
        (Tried::Refused(errno), _) => {
            Seen::NotShown(format!("the kernel refused it: {}", errno.desc()))
        }
        (_, Tried::Refused(errno)) => Seen::NotShown(format!("clone3: {}", errno.desc())),
    };
    set_disposition(Signal::SIGUSR2, Disposition::Default)?;
    Ok(seen)
}

/// CLONE_DETACHED has had no effect since 2.6.0 (clone(2)). `clone` still takes it, as a flag
/// it ignores (but beside CLONE_PIDFD, which copy_process refuses with it); `clone3` refuses
/// it outright (clone3_args_valid), keeping the bit free for a later use.
fn detached_row() -> Result<Seen, Error> {
    let word = |tried: Result<_, Errno>| match tried {
        Ok(_) => "child".to_string(),
        Err(errno) => format!("{errno:?}"),
    };
    let mut stack = ChildStack::new(64 << 10)?;
    #[allow(deprecated)] // nix marks it obsolete, which is what this row shows
    let ignored = vfork_child(&mut || 0, &mut stack, CloneFlags::CLONE_DETACHED)?.reap()?;
    if ignored.outcome != Outcome::Exited(0) {
        return Err(Error::Failed(format!("clone(CLONE_DETACHED): the child {}", ignored.outcome)));
    }
    Ok(Seen::Both(
        word(try_clone3(&CloneArgs::new(Signal::SIGCHLD).flags(Flags::DETACHED).into())?),
        word(try_clone3(&CloneArgs::new(Signal::SIGCHLD).into())?),
    ))
}
