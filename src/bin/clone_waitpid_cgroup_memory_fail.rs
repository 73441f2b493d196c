//! clone_waitpid_cgroup_memory_fail: the delayed placement, with a child that needs 1 MiB.
//!
//! As clone_waitpid_cgroup_memory, but after the move the child writes 1 MiB (256 pages)
//! into a cgroup that allows one. The kernel reclaims what it can, finds nothing, and the OOM
//! killer ends the child. Expect `waitpid: Signaled(Pid(N), SIGKILL, false)`, memory.events
//! with `oom_kill 1`, memory.peak 4096, no "wrote" line from the child, exit status 0 (the
//! kill is the claim).
//!
//! The steps are in `clone_cgroup::scenarios::delayed`. Run it with `sudo` on a cgroup v2 host.

use std::process::ExitCode;

use clone_cgroup::cli::{Scenario, MEMORY_OPTIONS_HELP};
use clone_cgroup::scenarios::{delayed, Claim};

const SCENARIO: Scenario = Scenario {
    name: "clone_waitpid_cgroup_memory_fail",
    about: "A child parks in a sleep; the parent moves it into a cgroup with memory.max=4096;\n\
            the child then writes 1 MiB and the kernel's OOM killer ends it with SIGKILL.",
    options: MEMORY_OPTIONS_HELP,
};

fn main() -> ExitCode {
    SCENARIO.main(|args| delayed(SCENARIO.name, Claim::KilledByKernel, args))
}
