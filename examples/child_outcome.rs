//! Start a child, wait for it with a deadline, and read how it ended: the library's
//! `process` module on its own, with no cgroup and no root.
//!
//! Run: `cargo run --example child_outcome`

use std::time::Duration;

use clone_cgroup::child_say;
use clone_cgroup::process::{describe_status, fork_child, Outcome};
use clone_cgroup::sync::SignalWatch;
use nix::unistd::getpid;

fn main() -> Result<(), clone_cgroup::Error> {
    // Blocked before the child exists, so that its SIGCHLD cannot be missed.
    let watch = SignalWatch::install()?;
    // The child keeps the rule for child code: child_say! formats on the stack and writes once.
    // A Child kills and reaps on drop, should anything below fail.
    let mut child = fork_child(|| {
        child_say!("child[{}]: exiting with status 7", getpid());
        7
    })?;
    let ended = child.wait(&watch, Duration::from_secs(5), |_| {})?;
    println!(
        "parent: {:?}, that is {}: {}",
        ended.status,
        describe_status(ended.status),
        ended.outcome
    );
    assert_eq!(ended.outcome, Outcome::Exited(7));
    Ok(())
}
