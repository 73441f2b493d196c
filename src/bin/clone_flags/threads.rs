//! Step 2, what makes a thread: a thread built by hand with the flags glibc's
//! `pthread_create` uses, once with the flag of the row and once without it (see
//! `clone_thread`); the row reads one thing of what each showed.

use clone_cgroup::clone3::Flags;
use clone_cgroup::Error;
use nix::unistd::Pid;

use super::{Row, Seen};

/// One row: its flag, what shows it, what to expect, and what it reads of a thread.
struct ThreadRow {
    flag: Flags,
    name: &'static str,
    shown_by: &'static str,
    expect_with: &'static str,
    expect_without: &'static str,
    read: fn(&ThreadSeen) -> String,
}

static THREAD_ROWS: [ThreadRow; 5] = [
    ThreadRow {
        flag: Flags::PARENT_SETTID,
        name: "CLONE_PARENT_SETTID",
        shown_by: "the tid word when clone3 has returned",
        expect_with: "the tid",
        expect_without: "not written",
        read: |t| t.word(t.at_return),
    },
    ThreadRow {
        flag: Flags::CHILD_SETTID,
        name: "CLONE_CHILD_SETTID",
        shown_by: "the tid word as the thread starts",
        expect_with: "the tid",
        expect_without: "not written",
        read: |t| t.word(t.at_start),
    },
    ThreadRow {
        flag: Flags::CHILD_CLEARTID,
        name: "CLONE_CHILD_CLEARTID",
        shown_by: "the tid word once the thread has ended",
        expect_with: "0",
        expect_without: "the tid",
        read: |t| t.word(t.after_join),
    },
    ThreadRow {
        flag: Flags::SETTLS,
        name: "CLONE_SETTLS",
        shown_by: "the thread's thread pointer",
        expect_with: "its own",
        expect_without: "ours",
        read: |t| if t.thread_pointer == t.our_thread_pointer { "ours" } else { "its own" }.into(),
    },
    ThreadRow {
        flag: Flags::THREAD,
        name: "CLONE_THREAD",
        shown_by: "getpid() in the new task",
        expect_with: "our pid",
        expect_without: "its own pid",
        read: |t| if t.pid == t.our_pid { "our pid" } else { "its own pid" }.into(),
    },
];

pub fn rows() -> Vec<Row> {
    THREAD_ROWS
        .iter()
        .map(|row| Row {
            flag: row.name,
            shown_by: row.shown_by,
            expect_with: row.expect_with,
            expect_without: row.expect_without,
            show: Box::new(move |_| thread_row(row.flag, row.read)),
        })
        .collect()
}

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
    use nix::unistd::getpid;

    // CHILD_SETTID writes the same word as PARENT_SETTID: shown without the latter.
    let base = if flag == Flags::CHILD_SETTID {
        NPTL_FLAGS.without(Flags::PARENT_SETTID)
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
    Ok(Seen::Both(look(base | flag)?, look(base.without(flag))?))
}

#[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu")))]
fn thread_row(_: Flags, _: fn(&ThreadSeen) -> String) -> Result<Seen, Error> {
    Ok(Seen::NotShown("threads by hand are written for x86-64 and aarch64 with glibc only".into()))
}
