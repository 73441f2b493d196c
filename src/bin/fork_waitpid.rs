//! fork_waitpid: `fork()` makes a copy of this process; the parent waits for it with
//! `waitpid()` and decodes how it ended.
//!
//! Usage: `cargo run --bin fork_waitpid`
//!
//! The child reports its pid and its parent's pid (the parent's own pid: fork copies the
//! caller, and the caller is the parent) and exits with status 42. The parent blocks in
//! `waitpid` until then, prints the raw status as nix shows it, `Exited(Pid(N), 42)`, and what
//! the `W*` macros of waitpid(2) say about it. Exit status 0 when the child's status is 42.

use std::process::ExitCode;

use clone_cgroup::child_say;
use clone_cgroup::cli::{no_options, Scenario, Summary, Verdict};
use clone_cgroup::process::{describe_status, fork_child, Outcome};
use clone_cgroup::Error;
use nix::sys::wait::waitpid;
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

    // 1. fork(): from here on two processes run this code; fork_child runs the closure in
    //    the child only and returns the child's pid in the parent.
    println!("parent[{me}]: 1. calling fork()");
    let child = fork_child(|| {
        // 2. The child: a copy of the parent, with a pid of its own.
        child_say!(
            "child[{}]: 2. I am the child; getppid() = {}",
            getpid(),
            getppid()
        );
        child_say!("child[{}]: 3. exiting with status {CHILD_STATUS}", getpid());
        CHILD_STATUS
    })?;
    println!("parent[{me}]: 2. fork() returned {child} to the parent");

    // 4. waitpid() with no options blocks until the child ends, then reaps it: without this
    //    call it would stay a zombie until we exit.
    let status = waitpid(child, None).map_err(|e| Error::sys("waitpid", e))?;
    println!("parent[{me}]: 4. waitpid: {status:?}");
    println!("parent[{me}]:    {}", describe_status(status));

    let outcome = Outcome::from_status(status)
        .ok_or_else(|| Error::Failed(format!("waitpid returned {status:?}, not an end")))?;
    let verdict = if outcome == Outcome::Exited(CHILD_STATUS) {
        Verdict::AsClaimed
    } else {
        Verdict::NotAsClaimed
    };
    Ok(Summary::new(SCENARIO.name, verdict)
        .field("claim", Outcome::Exited(CHILD_STATUS).token())
        .field("outcome", outcome.token())
        .field("child", child))
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}
