//! clone_flags: what each clone flag shares between parent and child, shown by a child that
//! changes the shared thing while the parent watches whether the change reaches it.
//!
//! Usage: `cargo run --bin clone_flags` (no root needed)
//!
//! Each row runs a child twice, with the flag and without it. The child changes one thing:
//! - CLONE_FILES (the descriptor table): it closes a descriptor the parent opened;
//! - CLONE_FS (umask, cwd, root): it sets its umask to 077;
//! - CLONE_SIGHAND (the signal handler table; the kernel requires CLONE_VM with it): it sets
//!   SIGUSR1 to SIG_IGN;
//! - CLONE_VM (the memory): it writes 2 into a variable that holds 1.
//!
//! Every run adds CLONE_VFORK, so the parent looks only after the child has ended, then puts
//! its own state back. Expect every row to read "shared" with the flag and "private" without,
//! and exit status 0. The original demonstration of this is demo_clone in The Linux
//! Programming Interface (chapter 28).

#[path = "shared/cli.rs"]
#[allow(dead_code)] // each binary uses a part of the shared command line
mod cli;

use std::fs::File;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};

use cli::{no_options, Scenario, Summary, Verdict};
use clone_cgroup::process::{vfork_child, ChildStack, Outcome};
use clone_cgroup::sync::{is_ignored, set_ignored};
use clone_cgroup::Error;
use nix::fcntl::{fcntl, FcntlArg};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::stat::{umask, Mode};
use nix::unistd::{close, getpid};

const SCENARIO: Scenario = Scenario {
    name: "clone_flags",
    about: "For CLONE_FILES, CLONE_FS, CLONE_SIGHAND and CLONE_VM: a child changes what the flag\n\
            shares, and the parent shows whether the change reached it, with and without the flag.",
    options: "",
};

/// The variable the CLONE_VM child writes. An atomic, so that the write is visible and well
/// defined in a program that (with CLONE_VM) two processes run.
static SHARED_VARIABLE: AtomicU32 = AtomicU32::new(1);

/// One row of the table: the flag, what the child does, and how the parent sets up, looks
/// and restores.
struct Row {
    flag: &'static str,
    with: CloneFlags,
    without: CloneFlags,
    child_does: &'static str,
}

const ROWS: [Row; 4] = [
    Row {
        flag: "CLONE_FILES",
        with: CloneFlags::CLONE_FILES,
        without: CloneFlags::empty(),
        child_does: "closes a descriptor the parent opened",
    },
    Row {
        flag: "CLONE_FS",
        with: CloneFlags::CLONE_FS,
        without: CloneFlags::empty(),
        child_does: "sets its umask to 077",
    },
    Row {
        flag: "CLONE_SIGHAND",
        with: CloneFlags::CLONE_SIGHAND.union(CloneFlags::CLONE_VM),
        without: CloneFlags::CLONE_VM,
        child_does: "sets SIGUSR1 to SIG_IGN",
    },
    Row {
        flag: "CLONE_VM",
        with: CloneFlags::CLONE_VM,
        without: CloneFlags::empty(),
        child_does: "writes 2 into a variable holding 1",
    },
];

/// Runs the row's child with `flags` and returns whether its change reached the parent.
fn reached_parent(row: &Row, flags: CloneFlags) -> Result<bool, Error> {
    let mut stack = ChildStack::new(64 << 10)?;
    let devnull = File::open("/dev/null").map_err(|e| Error::io("failed to open /dev/null", e))?;
    let fd = devnull.as_raw_fd();
    let old_umask = umask(Mode::from_bits_truncate(0o022));
    set_ignored(Signal::SIGUSR1, false)?;
    SHARED_VARIABLE.store(1, Ordering::SeqCst);

    let mut child = || -> i32 {
        let ok = match row.flag {
            "CLONE_FILES" => close(fd).is_ok(),
            "CLONE_FS" => {
                umask(Mode::from_bits_truncate(0o077));
                true
            }
            "CLONE_SIGHAND" => set_ignored(Signal::SIGUSR1, true).is_ok(),
            _ => {
                SHARED_VARIABLE.store(2, Ordering::SeqCst);
                true
            }
        };
        if ok {
            0
        } else {
            1
        }
    };
    let ended = vfork_child(&mut child, &mut stack, flags)?;
    if ended.outcome != Outcome::Exited(0) {
        return Err(Error::Failed(format!("the {} child {}", row.flag, ended.outcome)));
    }

    // Look, then put everything back.
    let reached = match row.flag {
        "CLONE_FILES" => fcntl(&devnull, FcntlArg::F_GETFD).is_err(),
        "CLONE_FS" => umask(Mode::from_bits_truncate(0o022)).bits() == 0o077,
        "CLONE_SIGHAND" => is_ignored(Signal::SIGUSR1)?,
        _ => SHARED_VARIABLE.load(Ordering::SeqCst) == 2,
    };
    if reached && row.flag == "CLONE_FILES" {
        // The child closed our descriptor: do not close it a second time.
        let _ = devnull.into_raw_fd();
    }
    umask(old_umask);
    set_ignored(Signal::SIGUSR1, false)?;
    Ok(reached)
}

fn word(shared: bool) -> &'static str {
    if shared {
        "shared"
    } else {
        "private"
    }
}

fn run(args: &[String]) -> Result<Summary, Error> {
    no_options(args)?;
    let me = getpid();
    println!(
        "parent[{me}]: each child runs with CLONE_VFORK added; the parent looks after it ends"
    );
    println!();
    println!("{:<15} {:<38} {:<15} without", "flag", "the child", "with the flag");
    let mut as_claimed = true;
    let mut summary = Summary::new(SCENARIO.name, Verdict::AsClaimed);
    for row in &ROWS {
        let with = reached_parent(row, row.with)?;
        let without = reached_parent(row, row.without)?;
        println!("{:<15} {:<38} {:<15} {}", row.flag, row.child_does, word(with), word(without));
        as_claimed &= with && !without;
        summary = summary.field(row.flag, format!("{}/{}", word(with), word(without)));
    }
    println!();
    if !as_claimed {
        summary.verdict = Verdict::NotAsClaimed;
        println!(
            "parent[{me}]: NOT AS CLAIMED: a row is not shared with the flag and private without"
        );
    }
    Ok(summary)
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}
