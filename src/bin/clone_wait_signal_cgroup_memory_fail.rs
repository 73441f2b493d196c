//! clone_wait_signal_cgroup_memory_fail: the signal-synced placement, with a child that needs
//! 1 MiB.
//!
//! Usage: `cargo sudo-run --bin clone_wait_signal_cgroup_memory_fail -- [OPTIONS]` (see `--help`)
//!
//! The story of clone_wait_signal_cgroup_memory, told by the same file, with one thing
//! changed: after the move the child writes 1 MiB into a cgroup that allows 4 KiB. The OOM
//! killer ends it before it can print its step 6 or say "done". Expect
//! `waitpid: Signaled(Pid(N), SIGKILL, false)`, `done signal ... never came`, `oom_kill 1`,
//! `memory.peak: 4096 bytes`, exit status 0 (the kill is the claim).

use std::process::ExitCode;

use clone_cgroup::cli::{Claim, Scenario, MEMORY_OPTIONS_HELP};

// The story, shared. `pub`, so that what only the small child's `main` uses is not dead here.
#[path = "clone_wait_signal_cgroup_memory.rs"]
pub mod story;

const SCENARIO: Scenario = Scenario {
    name: "clone_wait_signal_cgroup_memory_fail",
    about:
        "A child waits, with SIGUSR1 blocked since before clone, until the parent has moved it\n\
            into a cgroup with memory.max=4096; it writes 1 MiB and the OOM killer ends it.",
    options: MEMORY_OPTIONS_HELP,
};

fn main() -> ExitCode {
    SCENARIO.main(|args| story::run(SCENARIO.name, Claim::KilledByKernel, args))
}
