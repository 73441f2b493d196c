//! clone3_into_cgroup_memory_fail: clone3 with CLONE_INTO_CGROUP and CLONE_PIDFD, with a child that
//! needs 1 MiB.
//!
//! The child is born inside a new cgroup with memory.max = 4096: no delay, no handshake,
//! nothing to race. It runs on a stack the parent already paid for and writes
//! 1 MiB; the OOM killer ends it. Expect
//! `waitid(P_PIDFD): Signaled(Pid(N), SIGKILL, false)`, `oom_kill 1`, exit status 0 (the kill is
//! the claim).
//! The parent polls the child's pidfd and reaps it with waitid(P_PIDFD).
//!
//! The steps are in `clone_cgroup::scenarios::clone3_into_cgroup`. Run it with `sudo` on a
//! cgroup v2 host with Linux 5.7 or later (x86-64).

use std::process::ExitCode;

use clone_cgroup::cli::{Scenario, MEMORY_OPTIONS_HELP};
use clone_cgroup::scenarios::{clone3_into_cgroup, Claim};

const SCENARIO: Scenario = Scenario {
    name: "clone3_into_cgroup_memory_fail",
    about: "clone3 starts the child inside a cgroup with memory.max=4096 (CLONE_INTO_CGROUP);\n\
            the child writes 1 MiB and the OOM killer ends it; the parent waits on its pidfd.",
    options: MEMORY_OPTIONS_HELP,
};

fn main() -> ExitCode {
    SCENARIO.main(|args| clone3_into_cgroup(SCENARIO.name, Claim::KilledByKernel, args))
}
