//! clone_waitpid_cgroup_memory_fail: the delayed placement, with a child that needs 1 MiB.
//!
//! Usage: `cargo sudo-run --bin clone_waitpid_cgroup_memory_fail -- [OPTIONS]` (see `--help`)
//!
//! The story of clone_waitpid_cgroup_memory, told by the same file, with one thing changed:
//! after the move the child writes 1 MiB (256 pages) into a cgroup that allows one. The
//! kernel reclaims what it can, finds nothing, and the OOM killer ends the child, which never
//! prints its step 6. Expect `waitpid: Signaled(Pid(N), SIGKILL, false)`, memory.events with
//! `oom_kill 1`, memory.peak 4096, exit status 0 (the kill is the claim; a SIGKILL that the
//! OOM killer did not count is not).

use std::process::ExitCode;

use clone_cgroup::cli::{Claim, Scenario, MEMORY_OPTIONS_HELP};

// The story, shared. `pub`, so that what only the small child's `main` uses is not dead here.
#[path = "clone_waitpid_cgroup_memory.rs"]
pub mod story;

const SCENARIO: Scenario = Scenario {
    name: "clone_waitpid_cgroup_memory_fail",
    about: "A child parks in a sleep; the parent moves it into a cgroup with memory.max=4096;\n\
            the child then writes 1 MiB and the kernel's OOM killer ends it with SIGKILL.",
    options: MEMORY_OPTIONS_HELP,
};

fn main() -> ExitCode {
    SCENARIO.main(|args| story::run(SCENARIO.name, Claim::KilledByKernel, args))
}
