//! clone3_into_cgroup_memory_fail: clone3 with CLONE_INTO_CGROUP and CLONE_PIDFD, with a child
//! that needs 1 MiB.
//!
//! Usage: `cargo sudo-run --bin clone3_into_cgroup_memory_fail -- [OPTIONS]` (see `--help`;
//! Linux 5.7 or later, x86-64 or aarch64)
//!
//! The story of clone3_into_cgroup_memory, told by the same file, with one thing changed: the
//! child, born in the 4 KiB cgroup, writes 1 MiB, and the OOM killer ends it before its step
//! 4. Expect `waitid(P_PIDFD): Signaled(Pid(N), SIGKILL, false)`, `oom_kill 1`, exit status 0
//! (the kill is the claim).

use std::process::ExitCode;

use clone_cgroup::cli::{Claim, Scenario, MEMORY_OPTIONS_HELP};

// The story, shared. `pub`, so that what only the small child's `main` uses is not dead here.
#[path = "clone3_into_cgroup_memory.rs"]
pub mod story;

const SCENARIO: Scenario = Scenario {
    name: "clone3_into_cgroup_memory_fail",
    about: "clone3 starts the child inside a cgroup with memory.max=4096 (CLONE_INTO_CGROUP);\n\
            the child writes 1 MiB and the OOM killer ends it; the parent waits on its pidfd.",
    options: MEMORY_OPTIONS_HELP,
};

fn main() -> ExitCode {
    SCENARIO.main(|args| story::run(SCENARIO.name, Claim::KilledByKernel, args))
}
