//! clone_wait_signal_cgroup_memory: the signal-synced placement, with a child that needs less
//! than 4 KiB.
//!
//! The parent blocks SIGUSR1, SIGUSR2 and SIGCHLD, creates a cgroup with memory.max = 4096 and
//! clones a child, which inherits the blocked mask. The child warms up, sends SIGUSR2
//! ("ready") and waits in sigtimedwait for SIGUSR1. The parent moves it and sends SIGUSR1; the
//! child writes 3000 bytes (one new page) and sends SIGUSR2 again ("done"). Because the
//! signals are blocked before clone, none can be lost, whoever runs first. Expect
//! `waitpid: Exited(Pid(N), 0)`, `done signal ... arrived`, `oom_kill 0`, exit status 0, and
//! `memory.peak: 8192 bytes`: the "done" signal is queued from inside the cgroup, and the
//! kernel charges its queue entry there, past the limit, because it may not refuse it.
//!
//! The steps are in `clone_cgroup::scenarios::signal_synced`. Run it with `sudo` on a cgroup
//! v2 host.

use std::process::ExitCode;

use clone_cgroup::cli::{Scenario, MEMORY_OPTIONS_HELP};
use clone_cgroup::scenarios::{signal_synced, Claim};

const SCENARIO: Scenario = Scenario {
    name: "clone_wait_signal_cgroup_memory",
    about:
        "A child waits, with SIGUSR1 blocked since before clone, until the parent has moved it\n\
            into a cgroup with memory.max=4096; it writes 3000 bytes and signals that it is done.",
    options: MEMORY_OPTIONS_HELP,
};

fn main() -> ExitCode {
    SCENARIO.main(|args| signal_synced(SCENARIO.name, Claim::Survives, args))
}
