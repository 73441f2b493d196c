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
//! Each family of rows is a file of this folder: `sharing.rs`, `threads.rs`,
//! `namespaces.rs`, `placement.rs`, `since_7_1.rs`; this file holds the story and the table.
//! Expect every shown row as the table says ("as expected") and exit status 0; a row this
//! machine cannot show says why instead. The idea of the first rows is demo_clone in The Linux
//! Programming Interface (chapter 28).

mod namespaces;
mod placement;
mod sharing;
mod since_7_1;
mod threads;

use std::process::ExitCode;

use clone_cgroup::cli::{no_options, Scenario, Summary, Verdict};
use clone_cgroup::clone3::{clone3_child, not_offered, CloneArgs};
use clone_cgroup::clone3_probe::try_clone3;
use clone_cgroup::process::Child;
use clone_cgroup::say;
use clone_cgroup::sync::{self, SignalWatch};
use clone_cgroup::Error;
use nix::errno::Errno;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::unistd::{getpid, Pid};

const SCENARIO: Scenario = Scenario {
    name: "clone_flags",
    about: "Every clone flag whose effect a program can see, with and without it: what is\n\
            shared, what makes a thread, the namespaces, whose child it is and where it starts.",
    options: "",
};

fn main() -> ExitCode {
    SCENARIO.main(run)
}

fn run(args: &[String]) -> Result<Summary, Error> {
    no_options(args)?;
    let me = getpid();
    if let Err(errno) = try_clone3(&CloneArgs::new(Signal::SIGCHLD).into())? {
        return Err(Error::cannot_run(not_offered(errno).unwrap_or("clone3 fails here")));
    }
    // SIGINT, SIGTERM and SIGHUP wait, blocked, for the end of a step: no row is left half
    // done (a SysV semaphore, a cgroup), and the run then stops with 128 + the signal.
    let watch = SignalWatch::interruptions_only()?;
    // SIGUSR1 blocked, for the children that wait for it (they inherit the mask).
    let _sigusr1 = BlockedWhileAlive::block(Signal::SIGUSR1)?;
    let mut table = Table::default();

    // 1. What a child shares: it changes the thing, and we look once it has ended.
    say!("parent[{me}]: 1. what a child shares (each child runs with CLONE_VFORK added)");
    table.header();
    table.show_all(&sharing::rows())?;
    watch.stop_if_interrupted()?;

    // 2. What makes a thread: glibc's flags, with and without the one shown.
    say!("parent[{me}]: 2. what makes a thread (glibc's pthread_create flags, one changed)");
    table.show_all(&threads::rows())?;
    watch.stop_if_interrupted()?;

    // 3. The namespaces: a new one has a new inode.
    say!("parent[{me}]: 3. the namespaces");
    table.show_all(&namespaces::rows())?;
    watch.stop_if_interrupted()?;

    // 4. The child's place: its parent, when we go on, what we get back, where it starts.
    //    The cgroup made for CLONE_INTO_CGROUP is said too.
    say!("parent[{me}]: 4. the child's place");
    for note in table.show_all(&placement::rows())? {
        say!("parent[{me}]: 4. {note}");
    }
    watch.stop_if_interrupted()?;

    // 5. Birth and end as Linux 7.1 lets a parent ask for them; older kernels lack the flags.
    say!("parent[{me}]: 5. birth and end (Linux 7.1)");
    table.show_all(&since_7_1::rows())?;
    watch.stop_if_interrupted()?;

    // 6. The flags for a traced parent, which this program is not.
    say!("parent[{me}]: 6. tracing");
    table.show_all(&tracing_rows())?;

    let holds = table.differ.is_empty();
    if !holds {
        let (n, differ) = (table.differ.len(), &table.differ);
        say!("parent[{me}]: NOT AS CLAIMED: {n} rows differ: {differ:?}");
    }
    Ok(Summary::new(SCENARIO.name, Verdict::of(holds))
        .field("rows", table.shown + table.not_shown.len())
        .field("shown", table.shown)
        .field("as_expected", table.shown - table.differ.len())
        .field("differ", short_names(&table.differ))
        .field("not_shown", short_names(&table.not_shown)))
}

/// One row: the flag, what shows its effect, what to expect with it and without it, and the
/// code that shows it.
pub struct Row {
    pub flag: &'static str,
    pub shown_by: &'static str,
    pub expect_with: &'static str,
    pub expect_without: &'static str,
    pub show: Show,
}

/// A row's code: runs the row. What it did to the machine (a cgroup created and removed) goes
/// into the notes, for the story to say.
pub type Show = Box<dyn Fn(&mut Vec<String>) -> Result<Seen, Error>>;

/// What a row saw: with and without the flag, or why this machine cannot show it.
pub enum Seen {
    Both(String, String),
    NotShown(String),
}

/// What one child of a row showed: the words of its cell, or the kernel's refusal of the
/// call that would have made it.
pub enum Tried {
    Shown(String),
    Refused(Errno),
}

/// The table, built as the steps go.
#[derive(Default)]
struct Table {
    shown: usize,
    not_shown: Vec<&'static str>,
    differ: Vec<&'static str>,
}

impl Table {
    fn header(&self) {
        say!("    {:<21} {:<46} {:<18} {:<18}", "flag", "shown by", "with", "without");
    }

    /// Runs each row and prints its line; returns what they did to the machine.
    fn show_all(&mut self, rows: &[Row]) -> Result<Vec<String>, Error> {
        let mut notes = Vec::new();
        for row in rows {
            let seen = (row.show)(&mut notes)?;
            self.print(row, seen);
        }
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
                let verdict = if expected { "as expected" } else { "UNEXPECTED" };
                say!("    {flag:<21} {:<46} {with:<18} {without:<18} {verdict}", row.shown_by);
                if !expected {
                    let (with, without) = (row.expect_with, row.expect_without);
                    say!("    {:<68} expected {with} / {without}", "");
                }
            }
            Seen::NotShown(why) => {
                self.not_shown.push(flag);
                say!("    {flag:<21} {:<46} not shown: {why}", row.shown_by);
            }
        }
    }
}

/// `FILES,VM` for `["CLONE_FILES", "CLONE_VM"]`; `none` for none.
fn short_names(flags: &[&str]) -> String {
    if flags.is_empty() {
        return "none".to_string();
    }
    flags.iter().map(|f| f.trim_start_matches("CLONE_")).collect::<Vec<_>>().join(",")
}

/// `signal` blocked in this thread (and the children made meanwhile) until dropped.
struct BlockedWhileAlive {
    previous: SigSet,
}

impl BlockedWhileAlive {
    fn block(signal: Signal) -> Result<BlockedWhileAlive, Error> {
        let mut previous = SigSet::empty();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::from_iter([signal])), Some(&mut previous))
            .map_err(|e| Error::sys("sigprocmask", e))?;
        Ok(BlockedWhileAlive { previous })
    }
}

impl Drop for BlockedWhileAlive {
    fn drop(&mut self) {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.previous), None);
    }
}

/// A clone3 child with `args`, running `body`, whose cell `look` reads; the kernel's refusal
/// of the call as [`Tried::Refused`].
pub fn try_child(
    args: CloneArgs,
    body: impl FnOnce() -> i32,
    look: impl FnOnce(Child) -> Result<String, Error>,
) -> Result<Tried, Error> {
    match clone3_child(&args, body) {
        Ok(child) => look(child).map(Tried::Shown),
        Err(Error::Sys { errno, .. }) => Ok(Tried::Refused(errno)),
        Err(e) => Err(e),
    }
}

/// Runs `look` on a child that waits to be told to go (`sync::await_go`), then tells it,
/// and reaps it.
pub fn while_waiting(mut child: Child, look: impl FnOnce(Pid) -> String) -> Result<String, Error> {
    let seen = look(child.pid());
    sync::send(child.pid(), sync::PARENT_TO_CHILD)?;
    child.reap()?;
    Ok(seen)
}

/// Step 6: the flags that concern a traced parent, which this program is not.
fn tracing_rows() -> Vec<Row> {
    ["CLONE_PTRACE", "CLONE_UNTRACED"]
        .into_iter()
        .map(|flag| Row {
            flag,
            shown_by: "a tracer",
            expect_with: "",
            expect_without: "",
            show: Box::new(|_| {
                Ok(Seen::NotShown("it concerns a traced parent; none is traced here".into()))
            }),
        })
        .collect()
}
