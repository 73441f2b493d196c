//! fork_waitpid: `fork()` makes a copy of this process; the parent waits for it with
//! `waitpid()` and decodes how it ended.
//!
//! Usage: `cargo run --bin fork_waitpid`
//!
//! The child reports its pid and its parent's pid (the parent's own pid: fork copies the
//! caller, and the caller is the parent) and exits with status 42. The parent first waits
//! for that exit *without* reaping it (`waitid` with `WNOWAIT`), to show what an ended but
//! unreaped child is: a zombie, state `Z` in /proc. Then `waitpid` reaps it, prints the raw
//! status as nix shows it, `Exited(Pid(N), 42)`, and what the `W*` macros of waitpid(2) say
//! about it; the zombie is gone. Exit status 0 when the child's status is 42.

use std::process::ExitCode;

use clone_cgroup::child_say;
use clone_cgroup::cli::{no_options, Scenario, Summary, Verdict};
use clone_cgroup::process::{describe_status, fork_child, Outcome};
use clone_cgroup::procfs;
use clone_cgroup::say;
use clone_cgroup::Error;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag};
use nix::unistd::{getpid, getppid};

const SCENARIO: Scenario = Scenario {
    name: "fork_waitpid",
    about: "fork(); the child reports its pid and parent pid and exits 42;\n\
            the parent waits with waitpid() and decodes the status.",
    options: "",
};

/// The status the child exits with: anything from 0 to 255 would do; 42 shows that the
/// number really travels from the child's _exit to the parent's waitpid.
const CHILD_STATUS: i32 = 42;

fn run(args: &[String]) -> Result<Summary, Error> {
    no_options(args)?;
    let me = getpid();

    // 1. fork(): from here on two processes run this program. fork_child runs the closure in
    //    the child only, ends the child with its value, and returns the child here: this
    //    lesson takes its pid and waits for it by hand (`release`: the library will not).
    say!("parent[{me}]: 1. calling fork()");
    let child = fork_child(|| {
        // 2. The child: a copy of the parent, with a pid of its own; its parent is us.
        child_say!("child[{}]: 2. I am the child; getppid() = {}", getpid(), getppid());
        // 3. Its end: the status travels to whoever waits for it.
        child_say!("child[{}]: 3. exiting with status {CHILD_STATUS}", getpid());
        CHILD_STATUS
    })?
    .release();
    // 2. The parent's side of the same fork(): the child's pid.
    say!("parent[{me}]: 2. fork() returned {child} to the parent");

    // 4. Wait for the child's end but leave it unreaped (WNOWAIT): it has exited, yet its pid
    //    and status are kept for us, a zombie, until we collect them.
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
    waitid(Id::Pid(child), flags).map_err(|e| Error::sys("waitid(WNOWAIT)", e))?;
    let zombie = procfs::state_word(child);
    say!("parent[{me}]: 4. the child has ended; unreaped, /proc/{child}/stat says state {zombie}");

    // 5. waitpid() reaps it: its status comes back to us and its pid is freed. Without this
    //    call it would stay a zombie until we exit.
    let status = waitpid(child, None).map_err(|e| Error::sys("waitpid", e))?;
    say!("parent[{me}]: 5. waitpid: {status:?}");
    say!("parent[{me}]:    {}", describe_status(status));

    // 6. Reaped, the zombie is gone from /proc.
    let gone = procfs::Stat::of(child).is_none();
    say!("parent[{me}]: 6. /proc/{child} {}", if gone { "is gone" } else { "still exists" });

    let outcome = Outcome::from_status(status)
        .ok_or_else(|| Error::Failed(format!("waitpid returned {status:?}, not an end")))?;
    let holds = outcome == Outcome::Exited(CHILD_STATUS) && zombie == "Z" && gone;
    if !holds {
        say!(
            "parent[{me}]: NOT AS CLAIMED: expected exit status {CHILD_STATUS}, a zombie before \
             waitpid and none after"
        );
    }
    Ok(Summary::new(SCENARIO.name, Verdict::of(holds))
        .field("claim", Outcome::Exited(CHILD_STATUS).token())
        .field("outcome", outcome.token())
        .field("child", child)
        .field("zombie", zombie == "Z"))
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}
