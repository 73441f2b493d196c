//! clone_thread: a thread built by hand with `clone3` and the flags glibc's `pthread_create`
//! uses, then joined the way `pthread_join` joins: on a futex the kernel clears.
//!
//! Usage: `cargo run --bin clone_thread` (no root needed; x86-64 or aarch64, glibc)
//!
//! The flags: CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND, CLONE_THREAD, CLONE_SYSVSEM (share
//! everything), CLONE_SETTLS (a thread pointer of its own), CLONE_PARENT_SETTID and
//! CLONE_CHILD_CLEARTID (one word: the kernel writes the tid there before `clone3` returns and
//! zeroes it, waking a futex, when the thread ends). The new task has our pid and a tid of its
//! own, is listed in /proc/self/task, is no child of ours (`waitpid` on it: ECHILD) and sends
//! no signal when it ends (exit_signal 0). Without CLONE_SETTLS its thread pointer is ours:
//! `errno` and every thread-local variable would be shared with the main thread, which is why
//! the thread's code here touches none (it uses atomics and raw system calls only; see the
//! library's `thread` module). Expect every step as described and exit status 0.

use std::process::ExitCode;
use std::time::Instant;

use clone_cgroup::cli::{no_options, Scenario, Summary, Verdict};
use clone_cgroup::clone3::Flags;
use clone_cgroup::say;
use clone_cgroup::sync::wait_signal;
use clone_cgroup::Error;
use nix::errno::Errno;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::getpid;

const SCENARIO: Scenario = Scenario {
    name: "clone_thread",
    about: "A thread built by hand with clone3 and NPTL's flags: our pid, its own tid, no exit\n\
            signal, not waitable; joined on the futex the kernel clears at its end.",
    options: "",
};

/// The tids listed in /proc/self/task.
fn task_list() -> Result<Vec<i32>, Error> {
    let entries = std::fs::read_dir("/proc/self/task")
        .map_err(|e| Error::io("failed to read /proc/self/task", e))?;
    let mut tids: Vec<i32> =
        entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    tids.sort();
    Ok(tids)
}

#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu"))]
fn run(args: &[String]) -> Result<Summary, Error> {
    use clone_cgroup::process::thread_pointer;
    use clone_cgroup::thread::{HandBuiltThread, NPTL_FLAGS};

    no_options(args)?;
    let me = getpid();
    let ours = thread_pointer();
    // SIGCHLD blocked, so that one sent at the thread's end would wait here to be seen.
    let sigchld = SigSet::from_iter([Signal::SIGCHLD]);
    let mut old_mask = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&sigchld), Some(&mut old_mask))
        .map_err(|e| Error::sys("sigprocmask", e))?;

    // 1. clone3 with NPTL's flags; PARENT_SETTID has written the tid before clone3 returned.
    let mut thread = HandBuiltThread::start(NPTL_FLAGS)?;
    let tid = thread.tid();
    let word_at_start = thread.tid_word();
    say!("parent[{me}]: 1. clone3({NPTL_FLAGS}) returned tid {tid}; the tid word holds {word_at_start}");

    // 2. What the thread saw of itself.
    let seen = thread.seen_by_thread();
    say!(
        "parent[{me}]: 2. the thread saw getpid() = {}, gettid() = {}, thread pointer {:#x} (ours: {ours:#x})",
        seen.pid, seen.tid, seen.thread_pointer
    );

    // 3. It is a task of this process, not a child: waitpid does not know it.
    let tasks_while_running = task_list()?;
    let waited = waitpid(tid, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG));
    let waited_said = match waited {
        Err(errno) => format!("{errno:?}"),
        Ok(status) => format!("{status:?}"),
    };
    say!("parent[{me}]: 3. /proc/self/task lists {tasks_while_running:?}; waitpid({tid}, __WALL): {waited_said}");

    // 4. Join: release it, then sleep in futex(FUTEX_WAIT) on the tid word until the kernel
    //    zeroes the word and wakes the futex (CLONE_CHILD_CLEARTID), as pthread_join does.
    let futex = thread.tid_word_address();
    let futex_waits = thread.join()?;
    let word_after = thread.tid_word();
    // join has waited until the thread also left /proc/self/task.
    let tasks_after = task_list()?;
    let sigchld_sent = wait_signal(&sigchld, Instant::now())?.is_some();
    match futex_waits {
        0 => say!(
            "parent[{me}]: 4. joined: the kernel had zeroed the tid word at {futex:#x}, the \
             futex, before join looked: no FUTEX_WAIT needed"
        ),
        n => say!(
            "parent[{me}]: 4. joined: slept in futex(FUTEX_WAIT) on the tid word at {futex:#x} \
             ({n} call(s)) until the kernel zeroed it and woke the futex"
        ),
    }
    say!(
        "parent[{me}]:    the tid word went {word_at_start} -> {word_after}; /proc/self/task lists {tasks_after:?}; SIGCHLD {}",
        if sigchld_sent { "pending" } else { "never sent" }
    );
    drop(thread);

    // 5. The same without CLONE_SETTLS: the thread pointer is ours.
    let mut bare = HandBuiltThread::start(Flags(NPTL_FLAGS.0 & !Flags::SETTLS.0))?;
    let bare_pointer = bare.seen_by_thread().thread_pointer;
    bare.join()?;
    say!(
        "parent[{me}]: 5. without CLONE_SETTLS the thread's pointer is {bare_pointer:#x}: {}",
        if bare_pointer == ours {
            "ours, so errno and every thread_local! would be shared with this thread"
        } else {
            "not ours"
        }
    );
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None)
        .map_err(|e| Error::sys("sigprocmask", e))?;

    let holds = word_at_start == tid.as_raw()
        && seen.pid == me
        && seen.tid == tid
        && tid != me
        && seen.thread_pointer != ours
        && tasks_while_running.contains(&tid.as_raw())
        && waited == Err(Errno::ECHILD)
        && word_after == 0
        && !tasks_after.contains(&tid.as_raw())
        && !sigchld_sent
        && bare_pointer == ours;
    if !holds {
        say!("parent[{me}]: NOT AS CLAIMED: a step above did not go as described");
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    Ok(Summary::new(SCENARIO.name, Verdict::of(holds))
        .field("same_pid", yes_no(seen.pid == me))
        .field("own_tid", yes_no(seen.tid == tid && tid != me))
        .field("parent_settid", yes_no(word_at_start == tid.as_raw()))
        .field("in_task_list", yes_no(tasks_while_running.contains(&tid.as_raw())))
        .field("waitpid", waited_said)
        .field("tid_word_after", word_after)
        .field("sigchld", if sigchld_sent { "sent" } else { "none" })
        .field("settls_pointer", if seen.thread_pointer != ours { "own" } else { "ours" })
        .field("no_settls_pointer", if bare_pointer == ours { "ours" } else { "own" }))
}

#[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu")))]
fn run(_: &[String]) -> Result<Summary, Error> {
    Err(Error::cannot_run("a thread by hand is written for x86-64 and aarch64 with glibc only"))
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}
