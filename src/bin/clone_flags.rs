//! clone_flags: every clone flag whose effect a program can see, each run with the flag and
//! without it on the running kernel.
//!
//! Usage: `cargo sudo-run --bin clone_flags` (root: the namespace rows and CLONE_INTO_CGROUP
//! need it; without root those rows say so)
//!
//! 1. What a child shares (CLONE_FILES, FS, SIGHAND, VM, SYSVSEM, IO): the child changes the
//!    shared thing and ends, then the parent looks whether the change reached it. These
//!    children add CLONE_VFORK, so the parent looks only once the child has ended.
//! 2. What makes a thread (CLONE_PARENT_SETTID, CHILD_SETTID, CHILD_CLEARTID, SETTLS, THREAD):
//!    a thread built by hand with glibc's flags, minus or plus the one shown (see
//!    `clone_thread`).
//! 3. The namespaces (CLONE_NEWNS, NEWUTS, NEWIPC, NEWNET, NEWPID, NEWCGROUP, NEWUSER,
//!    NEWTIME): the child compares the inode of its /proc/self/ns/ link with the parent's.
//! 4. The child's place (CLONE_PARENT, VFORK, PIDFD, INTO_CGROUP, CLEAR_SIGHAND, DETACHED):
//!    whose child it is, whether the parent waits, what clone3 returns, where the child is
//!    born, what it keeps of our handlers, what the kernel does with an obsolete flag.
//! 5. The child's birth and end as Linux 7.1 lets a parent ask for them (CLONE_AUTOREAP,
//!    PIDFD_AUTOKILL, NNP, EMPTY_MNTNS): a child no wait finds, a child killed when its pidfd
//!    closes, no_new_privs from birth, a mount namespace holding its root alone. On an older
//!    kernel each row says it lacks the flag.
//! 6. CLONE_PTRACE and CLONE_UNTRACED concern a traced parent: not shown here.
//!
//! Expect every shown row as the table says ("as expected") and exit status 0; a row this
//! machine cannot show says why instead. The idea of the first rows is demo_clone in The Linux
//! Programming Interface (chapter 28).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use clone_cgroup::attributes::{
    disposition, io_priority, set_disposition, set_io_priority, Disposition, SysvSemaphore,
};
use clone_cgroup::cgroup;
use clone_cgroup::cli::{no_options, Scenario, Summary, Verdict};
use clone_cgroup::clone3::{clone3_child, CloneArgs, Flags};
use clone_cgroup::clone3_probe::{knows_flags, try_clone3};
use clone_cgroup::memory::ChildStack;
use clone_cgroup::process::{clone_child, fork_child, vfork_child, Child, Outcome};
use clone_cgroup::procfs;
use clone_cgroup::sync::{await_go, send, SignalWatch};
use clone_cgroup::Error;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::stat::{stat, umask, Mode};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{close, getpid, Pid};

const SCENARIO: Scenario = Scenario {
    name: "clone_flags",
    about: "Every clone flag whose effect a program can see, with and without it: what is\n\
            shared, what makes a thread, the namespaces, whose child it is and where it starts.",
    options: "",
};

/// One row: the flag, what shows its effect, what to expect with it and without it, and the
/// code that shows it.
struct Row {
    flag: &'static str,
    shown_by: &'static str,
    expect_with: &'static str,
    expect_without: &'static str,
    /// Runs the row; what it did to the machine (a cgroup created) goes into the notes, for
    /// the story to say.
    show: fn(&mut Vec<String>) -> Result<Seen, Error>,
}

/// What a row saw: with and without the flag, or why this machine cannot show it.
enum Seen {
    Both(String, String),
    NotShown(String),
}

/// The table, built as the steps go.
#[derive(Default)]
struct Table {
    shown: usize,
    not_shown: Vec<&'static str>,
    differ: Vec<&'static str>,
}

impl Table {
    /// Runs `row` and prints its line; returns what it did to the machine.
    fn show(&mut self, row: &Row) -> Result<Vec<String>, Error> {
        let mut notes = Vec::new();
        let seen = (row.show)(&mut notes)?;
        self.print(row, seen);
        Ok(notes)
    }

    fn print(&mut self, row: &Row, seen: Seen) {
        let flag = row.flag;
        match seen {
            Seen::Both(with, without) => {
                self.shown += 1;
                let expected = with == row.expect_with && without == row.expect_without;
                if !expected {
                    self.differ.push(flag);
                }
                println!(
                    "    {flag:<21} {:<46} {with:<18} {without:<18} {}",
                    row.shown_by,
                    if expected { "as expected" } else { "UNEXPECTED" }
                );
                if !expected {
                    println!(
                        "    {:<68} expected {} / {}",
                        "", row.expect_with, row.expect_without
                    );
                }
            }
            Seen::NotShown(why) => {
                self.not_shown.push(flag);
                println!("    {flag:<21} {:<46} not shown: {why}", row.shown_by);
            }
        }
    }
}

fn header() {
    println!("    {:<21} {:<46} {:<18} {:<18}", "flag", "shown by", "with", "without");
}

// ---- 1. What a child shares ----

/// The variable the CLONE_VM child writes. An atomic, so that the write is visible and well
/// defined in a program that (with CLONE_VM) two processes run.
static SHARED_VARIABLE: AtomicU32 = AtomicU32::new(1);

const SHARING: [Row; 6] = [
    Row {
        flag: "CLONE_FILES",
        shown_by: "child closes a descriptor we opened",
        expect_with: "shared",
        expect_without: "private",
        show: |_| {
            let (with, without) = (CloneFlags::CLONE_FILES, CloneFlags::empty());
            let set = |s: &Before| close(s.devnull.as_raw_fd()).is_ok();
            let look = |s: &Before| Ok(fcntl(&s.devnull, FcntlArg::F_GETFD).is_err());
            shared(with, without, set, look)
        },
    },
    Row {
        flag: "CLONE_FS",
        shown_by: "child sets its umask to 077",
        expect_with: "shared",
        expect_without: "private",
        show: |_| {
            let set = |_: &Before| {
                umask(Mode::from_bits_truncate(0o077));
                true
            };
            let look = |_: &Before| Ok(umask(Mode::from_bits_truncate(0o022)).bits() == 0o077);
            shared(CloneFlags::CLONE_FS, CloneFlags::empty(), set, look)
        },
    },
    Row {
        flag: "CLONE_SIGHAND",
        shown_by: "child ignores SIGUSR1 (needs CLONE_VM)",
        expect_with: "shared",
        expect_without: "private",
        show: |_| {
            let set = |_: &Before| set_disposition(Signal::SIGUSR1, Disposition::Ignored).is_ok();
            let look = |_: &Before| Ok(disposition(Signal::SIGUSR1)? == Disposition::Ignored);
            let vm = CloneFlags::CLONE_VM;
            shared(CloneFlags::CLONE_SIGHAND | vm, vm, set, look)
        },
    },
    Row {
        flag: "CLONE_VM",
        shown_by: "child writes 2 into a variable holding 1",
        expect_with: "shared",
        expect_without: "private",
        show: |_| {
            let set = |_: &Before| {
                SHARED_VARIABLE.store(2, Ordering::SeqCst);
                true
            };
            let look = |_: &Before| Ok(SHARED_VARIABLE.load(Ordering::SeqCst) == 2);
            shared(CloneFlags::CLONE_VM, CloneFlags::empty(), set, look)
        },
    },
    Row {
        flag: "CLONE_SYSVSEM",
        shown_by: "child ups a semaphore with SEM_UNDO",
        expect_with: "shared",
        expect_without: "private",
        show: |_| {
            let set = |s: &Before| s.semaphore.up_with_undo().is_ok();
            // A shared undo list is applied when its last user ends, and we still run.
            let look = |s: &Before| Ok(s.semaphore.value()? == 1);
            shared(CloneFlags::CLONE_SYSVSEM, CloneFlags::empty(), set, look)
        },
    },
    Row {
        flag: "CLONE_IO",
        shown_by: "child sets its I/O priority",
        expect_with: "shared",
        expect_without: "private",
        show: |_| {
            let set = |_: &Before| set_io_priority(7).is_ok();
            let look = |s: &Before| Ok(io_priority()? != s.io_priority);
            shared(CloneFlags::CLONE_IO, CloneFlags::empty(), set, look)
        },
    },
];

/// What the parent holds before each sharing child: what the child may change.
struct Before {
    /// /dev/null, open, whose descriptor the CLONE_FILES child closes.
    devnull: File,
    semaphore: SysvSemaphore,
    /// Our I/O priority, set (setting it creates our I/O context, which CLONE_IO shares).
    io_priority: i32,
}

/// The row's child changes something with `change` and ends; `reached` then tells whether
/// the change reached the parent. Done with the flag (`with`) and without (`without`), each
/// child with CLONE_VFORK added, so that the parent looks only once the child has ended.
fn shared(
    with: CloneFlags,
    without: CloneFlags,
    change: fn(&Before) -> bool,
    reached: fn(&Before) -> Result<bool, Error>,
) -> Result<Seen, Error> {
    let word = |shared: bool| if shared { "shared" } else { "private" }.to_string();
    let with = word(reached_parent(with, change, reached)?);
    Ok(Seen::Both(with, word(reached_parent(without, change, reached)?)))
}

/// One child of [`shared`], with `flags`; puts the parent's state back.
fn reached_parent(
    flags: CloneFlags,
    change: fn(&Before) -> bool,
    reached: fn(&Before) -> Result<bool, Error>,
) -> Result<bool, Error> {
    let mut stack = ChildStack::new(64 << 10)?;
    let devnull = File::open("/dev/null").map_err(|e| Error::io("failed to open /dev/null", e))?;
    let old_umask = umask(Mode::from_bits_truncate(0o022));
    set_disposition(Signal::SIGUSR1, Disposition::Default)?;
    SHARED_VARIABLE.store(1, Ordering::SeqCst);
    set_io_priority(4)?;
    let before = Before { devnull, semaphore: SysvSemaphore::new()?, io_priority: io_priority()? };
    let mut child = || i32::from(!change(&before));
    let ended = vfork_child(&mut child, &mut stack, flags)?.reap()?;
    let seen = match ended.outcome {
        Outcome::Exited(0) => reached(&before),
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

// ---- 2. What makes a thread ----

const THREAD: [Row; 5] = [
    Row {
        flag: "CLONE_PARENT_SETTID",
        shown_by: "the tid word when clone3 has returned",
        expect_with: "the tid",
        expect_without: "not written",
        show: |_| thread_row(Flags::PARENT_SETTID, |t| t.word(t.at_return)),
    },
    Row {
        flag: "CLONE_CHILD_SETTID",
        shown_by: "the tid word as the thread starts",
        expect_with: "the tid",
        expect_without: "not written",
        show: |_| thread_row(Flags::CHILD_SETTID, |t| t.word(t.at_start)),
    },
    Row {
        flag: "CLONE_CHILD_CLEARTID",
        shown_by: "the tid word once the thread has ended",
        expect_with: "0",
        expect_without: "the tid",
        show: |_| thread_row(Flags::CHILD_CLEARTID, |t| t.word(t.after_join)),
    },
    Row {
        flag: "CLONE_SETTLS",
        shown_by: "the thread's thread pointer",
        expect_with: "its own",
        expect_without: "ours",
        show: |_| {
            thread_row(Flags::SETTLS, |t| {
                if t.thread_pointer == t.our_thread_pointer { "ours" } else { "its own" }.into()
            })
        },
    },
    Row {
        flag: "CLONE_THREAD",
        shown_by: "getpid() in the new task",
        expect_with: "our pid",
        expect_without: "its own pid",
        show: |_| {
            thread_row(Flags::THREAD, |t| {
                if t.pid == t.our_pid { "our pid" } else { "its own pid" }.into()
            })
        },
    },
];

/// What one hand-built thread showed, for a row to read its part of.
struct ThreadSeen {
    tid: libc::pid_t,
    /// The tid word as the thread saw it when it started, when clone3 had returned, and
    /// once the thread had been joined.
    at_start: libc::pid_t,
    at_return: libc::pid_t,
    after_join: libc::pid_t,
    thread_pointer: usize,
    our_thread_pointer: usize,
    pid: Pid,
    our_pid: Pid,
}

impl ThreadSeen {
    /// A tid word in the table's words.
    fn word(&self, word: libc::pid_t) -> String {
        match word {
            w if w == self.tid => "the tid".into(),
            #[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu"))]
            clone_cgroup::thread::NOT_WRITTEN => "not written".into(),
            w => w.to_string(),
        }
    }
}

/// A thread built by hand with glibc's flags plus `flag`, then minus it; `read` says what
/// each showed.
#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu"))]
fn thread_row(flag: Flags, read: fn(&ThreadSeen) -> String) -> Result<Seen, Error> {
    use clone_cgroup::process::thread_pointer;
    use clone_cgroup::thread::{HandBuiltThread, NPTL_FLAGS};

    // CHILD_SETTID writes the same word as PARENT_SETTID: shown without the latter.
    let base = if flag == Flags::CHILD_SETTID {
        Flags(NPTL_FLAGS.0 & !Flags::PARENT_SETTID.0)
    } else {
        NPTL_FLAGS
    };
    let look = |flags: Flags| -> Result<String, Error> {
        let mut thread = HandBuiltThread::start(flags)?;
        let (seen, at_return) = (thread.seen_by_thread(), thread.tid_word());
        thread.join()?;
        Ok(read(&ThreadSeen {
            tid: thread.tid().as_raw(),
            at_start: seen.tid_word,
            at_return,
            after_join: thread.tid_word(),
            thread_pointer: seen.thread_pointer,
            our_thread_pointer: thread_pointer(),
            pid: seen.pid,
            our_pid: getpid(),
        }))
    };
    Ok(Seen::Both(look(Flags(base.0 | flag.0))?, look(Flags(base.0 & !flag.0))?))
}

#[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu")))]
fn thread_row(_: Flags, _: fn(&ThreadSeen) -> String) -> Result<Seen, Error> {
    Ok(Seen::NotShown("threads by hand are written for x86-64 and aarch64 with glibc only".into()))
}

// ---- 3. The namespaces ----

const NAMESPACES: [Row; 8] = [
    namespace_row("CLONE_NEWNS", |_| namespace(Flags::NEWNS, "mnt")),
    namespace_row("CLONE_NEWUTS", |_| namespace(Flags::NEWUTS, "uts")),
    namespace_row("CLONE_NEWIPC", |_| namespace(Flags::NEWIPC, "ipc")),
    namespace_row("CLONE_NEWNET", |_| namespace(Flags::NEWNET, "net")),
    namespace_row("CLONE_NEWPID", |_| namespace(Flags::NEWPID, "pid")),
    namespace_row("CLONE_NEWCGROUP", |_| namespace(Flags::NEWCGROUP, "cgroup")),
    namespace_row("CLONE_NEWUSER", |_| namespace(Flags::NEWUSER, "user")),
    namespace_row("CLONE_NEWTIME", |_| namespace(Flags::NEWTIME, "time")),
];

const fn namespace_row(
    flag: &'static str,
    show: fn(&mut Vec<String>) -> Result<Seen, Error>,
) -> Row {
    Row {
        flag,
        shown_by: "the child's /proc/self/ns/ inode against ours",
        expect_with: "new",
        expect_without: "ours",
        show,
    }
}

/// The namespace `name` of a child cloned with `flag`, then without it, against ours.
fn namespace(flag: Flags, name: &str) -> Result<Seen, Error> {
    let link = format!("/proc/self/ns/{name}");
    let ours = match stat(link.as_str()) {
        Ok(st) => st.st_ino,
        Err(e) => return Ok(Seen::NotShown(format!("{link}: {e} (no such namespace here)"))),
    };
    Ok(match namespace_seen(flag, &link, ours)? {
        Ok(with) => match namespace_seen(Flags::NONE, &link, ours)? {
            Ok(without) => Seen::Both(with, without),
            Err(errno) => Seen::NotShown(format!("clone3 without it: {errno}")),
        },
        Err(Errno::EPERM) => Seen::NotShown("EPERM: it needs root".into()),
        Err(errno) => Seen::NotShown(format!("the kernel refused it: {}", errno.desc())),
    })
}

/// A clone3 child with `flags` compares the inode of `/proc/self/ns/<name>` with `ours`.
fn namespace_seen(flags: Flags, link: &str, ours: u64) -> Result<Result<String, Errno>, Error> {
    let mut child =
        match clone3_child(&CloneArgs::new(Signal::SIGCHLD).flags(flags), || match stat(link) {
            Ok(st) if st.st_ino == ours => 1,
            Ok(_) => 0,
            Err(_) => 2,
        }) {
            Ok(child) => child,
            Err(Error::Sys { errno, .. }) => return Ok(Err(errno)),
            Err(e) => return Err(e),
        };
    Ok(Ok(match child.reap()?.outcome {
        Outcome::Exited(0) => "new".into(),
        Outcome::Exited(1) => "ours".into(),
        other => format!("child {other}"),
    }))
}

// ---- 4. The child's place ----

const PLACE: [Row; 6] = [
    Row {
        flag: "CLONE_PARENT",
        shown_by: "whose child a child's child is",
        expect_with: "its grandparent's",
        expect_without: "its parent's",
        show: |_| parent_row(),
    },
    Row {
        flag: "CLONE_VFORK",
        shown_by: "when the parent goes on (child: 200 ms)",
        expect_with: "after the child",
        expect_without: "at once",
        show: |_| vfork_row(),
    },
    Row {
        flag: "CLONE_PIDFD",
        shown_by: "what clone3 returns besides the pid",
        expect_with: "a pidfd for it",
        expect_without: "nothing",
        show: |_| pidfd_row(),
    },
    Row {
        flag: "CLONE_INTO_CGROUP",
        shown_by: "the child's cgroup as it starts",
        expect_with: "the one given",
        expect_without: "ours",
        show: into_cgroup_row,
    },
    Row {
        flag: "CLONE_CLEAR_SIGHAND",
        shown_by: "the child's SIGUSR2, which we catch",
        expect_with: "default",
        expect_without: "caught",
        show: |_| clear_sighand_row(),
    },
    Row {
        flag: "CLONE_DETACHED",
        shown_by: "clone3 (clone(2) ignores it)",
        expect_with: "EINVAL",
        expect_without: "child",
        show: |_| detached_row(),
    },
];

/// Runs `look` on a child that waits for SIGUSR1, then lets it end and reaps it.
fn while_waiting(mut child: Child, look: impl FnOnce(Pid) -> String) -> Result<String, Error> {
    let seen = look(child.pid());
    send(child.pid(), Signal::SIGUSR1)?;
    child.reap()?;
    Ok(seen)
}

fn parent_row() -> Result<Seen, Error> {
    let look = |flags: Flags| -> Result<String, Error> {
        // Our child starts a child of its own, and tells by its exit status whether that
        // one is its child (0: it reaped it) or not (1: ECHILD).
        // EXCEPTION to the child-code rule: clone3_child is a parent's function, whose
        // refusal of sharing flags formats a message; with these flags that path is never
        // taken, and the rest of it (a thread count read into a stack buffer, clone3)
        // allocates nothing.
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
    let seen = (|| {
        let dir = target.open_path()?;
        let look = |args: CloneArgs| -> Result<String, Error> {
            let child = clone3_child(&args, await_go)?;
            let ours = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            while_waiting(child, |pid| {
                let theirs =
                    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
                let name = target.path().file_name().map(|n| n.to_string_lossy().into_owned());
                match theirs.trim().rsplit('/').next() {
                    Some(last) if Some(last.to_string()) == name => "the one given".into(),
                    _ if theirs == ours => "ours".into(),
                    _ => theirs.trim().to_string(),
                }
            })
        };
        Ok::<_, Error>(Seen::Both(
            look(CloneArgs::new(Signal::SIGCHLD).into_cgroup(&dir))?,
            look(CloneArgs::new(Signal::SIGCHLD))?,
        ))
    })();
    notes.extend(prepared);
    if let Some(path) = target.remove()? {
        notes.push(format!("removed {}", path.display()));
    }
    seen
}

fn clear_sighand_row() -> Result<Seen, Error> {
    set_disposition(Signal::SIGUSR2, Disposition::Caught)?;
    let look = |flags: Flags| -> Result<Result<String, Errno>, Error> {
        let args = CloneArgs::new(Signal::SIGCHLD).flags(flags);
        let mut child = match clone3_child(&args, || match disposition(Signal::SIGUSR2) {
            Ok(Disposition::Default) => 0,
            Ok(Disposition::Caught) => 1,
            _ => 2,
        }) {
            Ok(child) => child,
            Err(Error::Sys { errno, .. }) => return Ok(Err(errno)),
            Err(e) => return Err(e),
        };
        Ok(Ok(match child.reap()?.outcome {
            Outcome::Exited(0) => "default".into(),
            Outcome::Exited(1) => "caught".into(),
            other => format!("child {other}"),
        }))
    };
    let seen = match (look(Flags::CLEAR_SIGHAND)?, look(Flags::NONE)?) {
        (Ok(with), Ok(without)) => Seen::Both(with, without),
        (Err(errno), _) => Seen::NotShown(format!("the kernel refused it: {}", errno.desc())),
        (_, Err(errno)) => Seen::NotShown(format!("clone3: {}", errno.desc())),
    };
    set_disposition(Signal::SIGUSR2, Disposition::Default)?;
    Ok(seen)
}

fn detached_row() -> Result<Seen, Error> {
    let word = |tried: Result<_, Errno>| match tried {
        Ok(_) => "child".to_string(),
        Err(errno) => format!("{errno:?}"),
    };
    // clone(2) still takes it, as a flag it ignores; clone3 refuses it.
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

// ---- 5. Birth and end, as 7.1 lets a parent ask ----

const SINCE_7_1: [Row; 4] = [
    Row {
        flag: "CLONE_AUTOREAP",
        shown_by: "waitid(P_PIDFD) once the child has ended",
        expect_with: "ECHILD",
        expect_without: "exited 0",
        show: |_| autoreap_row(),
    },
    Row {
        flag: "CLONE_PIDFD_AUTOKILL",
        shown_by: "the waiting child, once its pidfd is closed",
        expect_with: "gone",
        expect_without: "running",
        show: |_| autokill_row(),
    },
    Row {
        flag: "CLONE_NNP",
        shown_by: "NoNewPrivs in the child's /proc/PID/status",
        expect_with: "1",
        expect_without: "0",
        show: |_| nnp_row(),
    },
    Row {
        flag: "CLONE_EMPTY_MNTNS",
        shown_by: "mounts in the child's /proc/PID/mountinfo",
        expect_with: "1: its root",
        expect_without: "a copy of ours",
        show: |_| empty_mntns_row(),
    },
];

/// What a row says where the kernel does not know its flag.
const LACKS_7_1: &str = "this kernel lacks it (Linux 7.1 brings it)";

/// A clone3 child with `args` that runs `body`, or the kernel's errno.
fn started(args: CloneArgs, body: fn() -> i32) -> Result<Result<Child, Errno>, Error> {
    match clone3_child(&args, body) {
        Ok(child) => Ok(Ok(child)),
        Err(Error::Sys { errno, .. }) => Ok(Err(errno)),
        Err(e) => Err(e),
    }
}

/// Both sides of a row whose `look` runs a child with `flags` and one without. Where the first
/// gets EINVAL, the kernel is asked apart whether it knows the flags at all
/// ([`knows_flags`]): only then does the row say that it lacks them.
fn both(
    flags: Flags,
    look: impl Fn(bool) -> Result<Result<String, Errno>, Error>,
) -> Result<Seen, Error> {
    Ok(match look(true)? {
        Ok(with) => match look(false)? {
            Ok(without) => Seen::Both(with, without),
            Err(errno) => Seen::NotShown(format!("without it: {}", errno.desc())),
        },
        Err(Errno::EINVAL) if !knows_flags(flags)? => Seen::NotShown(LACKS_7_1.into()),
        Err(Errno::EPERM) => Seen::NotShown("EPERM: it needs root".into()),
        Err(errno) => Seen::NotShown(format!("the kernel refused it: {}", errno.desc())),
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
        let mut child = match started(CloneArgs::with_exit_signal(0).flags(flags), || 0)? {
            Ok(child) => child,
            Err(errno) => return Ok(Err(errno)),
        };
        ended(child.pidfd())?;
        let seen = match child.reap() {
            Ok(ended) => ended.outcome.to_string().replace("with status ", ""),
            Err(Error::Sys { errno, .. }) => format!("{errno:?}"),
            Err(e) => return Err(e),
        };
        // Reaped by us, or by the kernel: nothing left to kill.
        child.release();
        Ok(Ok(seen))
    })
}

fn autokill_row() -> Result<Seen, Error> {
    // PIDFD_AUTOKILL wants PIDFD and AUTOREAP; with NNP it needs no CAP_SYS_ADMIN.
    let base = Flags::PIDFD | Flags::AUTOREAP | Flags::NNP;
    both(base | Flags::PIDFD_AUTOKILL, |autokill| {
        let flags = if autokill { base | Flags::PIDFD_AUTOKILL } else { base };
        let child = match started(CloneArgs::with_exit_signal(0).flags(flags), await_go)? {
            Ok(child) => child,
            Err(errno) => return Ok(Err(errno)),
        };
        let pid = child.pid();
        // Giving the child up closes its pidfd. It is reaped by the kernel when it ends, so
        // its /proc entry tells whether it runs; it waits for a SIGUSR1 otherwise.
        child.release();
        let entry = format!("/proc/{pid}");
        let deadline = Instant::now() + Duration::from_secs(1);
        while Path::new(&entry).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if Path::new(&entry).exists() {
            send(pid, Signal::SIGUSR1)?;
            return Ok(Ok("running".into()));
        }
        Ok(Ok("gone".into()))
    })
}

/// The value of `key` in `/proc/PID/status`.
fn status_field(pid: Pid, key: &str) -> String {
    procfs::status_field(pid, key).unwrap_or_else(|| "?".into())
}

fn nnp_row() -> Result<Seen, Error> {
    if status_field(getpid(), "NoNewPrivs") != "0" {
        return Ok(Seen::NotShown("this process has no_new_privs itself".into()));
    }
    both(Flags::NNP, |nnp| {
        let flags = if nnp { Flags::NNP } else { Flags::NONE };
        match started(CloneArgs::new(Signal::SIGCHLD).flags(flags), await_go)? {
            Ok(child) => while_waiting(child, |pid| status_field(pid, "NoNewPrivs")).map(Ok),
            Err(errno) => Ok(Err(errno)),
        }
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
        let child = match started(CloneArgs::new(Signal::SIGCHLD).flags(flags), await_go)? {
            Ok(child) => child,
            Err(errno) => return Ok(Err(errno)),
        };
        let seen = while_waiting(child, |pid| match mounts(pid) {
            1 => "1: its root".into(),
            n if n == ours => "a copy of ours".into(),
            n => format!("{n} mounts"),
        })?;
        Ok(Ok(seen))
    })
}

// ---- 6. Tracing ----

const TRACING: [Row; 2] = [tracing_row("CLONE_PTRACE"), tracing_row("CLONE_UNTRACED")];

const fn tracing_row(flag: &'static str) -> Row {
    Row {
        flag,
        shown_by: "a tracer",
        expect_with: "",
        expect_without: "",
        show: |_| Ok(Seen::NotShown("it concerns a traced parent; none is traced here".into())),
    }
}

fn run(args: &[String]) -> Result<Summary, Error> {
    no_options(args)?;
    let me = getpid();
    if let Err(errno) = try_clone3(&CloneArgs::new(Signal::SIGCHLD).into())? {
        let why = clone_cgroup::clone3::not_offered(errno).unwrap_or("clone3 fails here");
        return Err(Error::cannot_run(why));
    }
    // SIGINT, SIGTERM and SIGHUP wait, blocked, for the end of a step: no row is left half
    // done (a SysV semaphore, a cgroup), and the run then stops with 128 + the signal.
    let watch = SignalWatch::interruptions_only()?;
    // SIGUSR1 blocked, for the children that wait for it (they inherit the mask).
    let mut old_mask = SigSet::empty();
    sigprocmask(
        SigmaskHow::SIG_BLOCK,
        Some(&SigSet::from_iter([Signal::SIGUSR1])),
        Some(&mut old_mask),
    )
    .map_err(|e| Error::sys("sigprocmask", e))?;
    let mut table = Table::default();

    // 1. What a child shares: it changes the thing, and we look once it has ended.
    println!("parent[{me}]: 1. what a child shares (each child runs with CLONE_VFORK added)");
    header();
    for row in &SHARING {
        table.show(row)?;
    }

    watch.stop_if_interrupted()?;

    // 2. What makes a thread: glibc's flags, with and without the one shown.
    println!("parent[{me}]: 2. what makes a thread (glibc's pthread_create flags, one changed)");
    for row in &THREAD {
        table.show(row)?;
    }

    watch.stop_if_interrupted()?;

    // 3. The namespaces: a new one has a new inode.
    println!("parent[{me}]: 3. the namespaces");
    for row in &NAMESPACES {
        table.show(row)?;
    }

    watch.stop_if_interrupted()?;

    // 4. The child's place: its parent, when we go on, what we get back, where it starts.
    println!("parent[{me}]: 4. the child's place");
    for row in &PLACE {
        for note in table.show(row)? {
            println!("parent[{me}]: 4. {note}");
        }
    }

    watch.stop_if_interrupted()?;

    // 5. Birth and end as Linux 7.1 lets a parent ask for them; older kernels lack the flags.
    println!("parent[{me}]: 5. birth and end (Linux 7.1)");
    for row in &SINCE_7_1 {
        table.show(row)?;
    }

    watch.stop_if_interrupted()?;

    // 6. The flags for a traced parent, which this program is not.
    println!("parent[{me}]: 6. tracing");
    for row in &TRACING {
        table.show(row)?;
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None)
        .map_err(|e| Error::sys("sigprocmask", e))?;

    let rows = table.shown + table.not_shown.len();
    let holds = table.differ.is_empty();
    if !holds {
        println!(
            "parent[{me}]: NOT AS CLAIMED: {} rows differ: {:?}",
            table.differ.len(),
            table.differ
        );
    }
    let list = |flags: &[&str]| {
        if flags.is_empty() {
            "none".to_string()
        } else {
            flags.iter().map(|f| f.trim_start_matches("CLONE_")).collect::<Vec<_>>().join(",")
        }
    };
    Ok(Summary::new(SCENARIO.name, Verdict::of(holds))
        .field("rows", rows)
        .field("shown", table.shown)
        .field("as_expected", table.shown - table.differ.len())
        .field("differ", list(&table.differ))
        .field("not_shown", list(&table.not_shown)))
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}
