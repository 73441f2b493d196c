//! clone_waitpid_cgroup_memory: the delayed placement, with a child that needs less than 4 KiB.
//!
//! The parent creates a cgroup with memory.max = 4096 and clones a child. The child warms up
//! (first output, stack, the page tables of a 3000-byte buffer), then sleeps 200 ms; half-way
//! through, the parent moves it into the cgroup. The child wakes and writes its 3000 bytes:
//! one new page, which fits. Expect `waitpid: Exited(Pid(N), 0)`, `memory.events: max 0 oom 0
//! oom_kill 0`, `memory.peak: 4096 bytes`, exit status 0.
//!
//! The steps are in `clone_cgroup::scenarios::delayed`. Run it with `sudo` on a cgroup v2 host.
//! The delay is a bet on timing; clone_wait_signal_cgroup_memory removes the bet.

use std::process::ExitCode;

use clone_cgroup::cli::{Scenario, MEMORY_OPTIONS_HELP};
use clone_cgroup::scenarios::{delayed, Claim};

const SCENARIO: Scenario = Scenario {
    name: "clone_waitpid_cgroup_memory",
    about: "A child parks in a sleep; the parent moves it into a cgroup with memory.max=4096;\n\
            the child then writes 3000 bytes of new memory and exits 0.",
    options: MEMORY_OPTIONS_HELP,
};

fn main() -> ExitCode {
    SCENARIO.main(|args| delayed(SCENARIO.name, Claim::Survives, args))
}
