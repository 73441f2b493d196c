//! clone_wait_signal_cgroup_memory_fail: the signal-synced placement, with a child that needs
//! 1 MiB.
//!
//! As clone_wait_signal_cgroup_memory, but after SIGUSR1 the child writes 1 MiB into a cgroup
//! that allows one page, and the OOM killer ends it before it can say "done". Expect
//! `waitpid: Signaled(Pid(N), SIGKILL, false)`, `done signal ... never came`, `oom_kill 1`,
//! exit status 0 (the kill is the claim).
//!
//! The steps are in `clone_cgroup::scenarios::signal_synced`. Run it with `sudo` on a cgroup
//! v2 host.

use std::process::ExitCode;

use clone_cgroup::cli::{Scenario, MEMORY_OPTIONS_HELP};
use clone_cgroup::scenarios::{signal_synced, Claim};

const SCENARIO: Scenario = Scenario {
    name: "clone_wait_signal_cgroup_memory_fail",
    about:
        "A child waits, with SIGUSR1 blocked since before clone, until the parent has moved it\n\
            into a cgroup with memory.max=4096; it writes 1 MiB and the OOM killer ends it.",
    options: MEMORY_OPTIONS_HELP,
};

fn main() -> ExitCode {
    SCENARIO.main(|args| signal_synced(SCENARIO.name, Claim::KilledByKernel, args))
}
