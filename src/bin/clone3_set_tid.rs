//! clone3_set_tid: choose a child's pid in every PID namespace it lives in.
//!
//! Usage: `sudo cargo run --bin clone3_set_tid -- [--pid N]` (default: the first free pid
//! from 4242)
//!
//! clone3 with CLONE_NEWPID and `set_tid = [1, N]` asks for pid 1 in the child's new PID
//! namespace (the innermost comes first) and pid N in ours: what the old clone2 proposal
//! wanted, as checkpoint/restore tools need it. The parent reads `NSpid` in /proc/N/status,
//! the child's pid in each namespace from ours inward: `N 1`. Then it asks for a pid that is
//! taken (its own) and shows the kernel's EEXIST. Expect `NSpid: N 1`, `EEXIST`, exit 0.
//! Needs CAP_SYS_ADMIN (root) and Linux 5.5.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clone_cgroup::child_say;
use clone_cgroup::cli::{
    for_each_option, parse_number, unknown_option, Scenario, Summary, Verdict,
};
use clone_cgroup::clone3::{clone3_child, CloneArgs};
use clone_cgroup::process::{state_of, Outcome};
use clone_cgroup::sync::{self, wait_signal, SignalWatch, PARENT_TO_CHILD};
use clone_cgroup::Error;
use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::{geteuid, getpid, getppid, Pid};

const SCENARIO: Scenario = Scenario {
    name: "clone3_set_tid",
    about: "clone3 with CLONE_NEWPID and set_tid: the child gets pid 1 in its new namespace and a\n\
            chosen pid in ours (NSpid shows both); a taken pid fails with EEXIST.",
    options: "      --pid N          the pid to ask for in this namespace [default: first free from 4242]\n",
};

/// The `NSpid:` line of /proc/PID/status: the pid in each namespace, outermost first.
fn nspid(pid: Pid) -> Result<Vec<i32>, Error> {
    let file = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&file)
        .map_err(|e| Error::io(&format!("failed to read {file}"), e))?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default())
}

fn run(args: &[String]) -> Result<Summary, Error> {
    let mut wanted = None;
    for_each_option(args, |name, value| {
        match name {
            "--pid" => wanted = Some(parse_number(name, &value()?, 2, 4_194_304)? as i32),
            other => return Err(unknown_option(other)),
        }
        Ok(())
    })?;
    if !geteuid().is_root() {
        return Err(Error::cannot_run(
            "set_tid needs CAP_SYS_ADMIN: run it with sudo",
        ));
    }
    let me = getpid();
    // 1. A pid nobody has: /proc/N does not exist.
    let free_from = |first: i32| {
        (first..)
            .find(|p| !Path::new(&format!("/proc/{p}")).exists())
            .unwrap()
    };
    let mut chosen = Pid::from_raw(wanted.unwrap_or_else(|| free_from(4242)));
    println!("parent[{me}]: 1. asking for pid 1 in a new PID namespace and pid {chosen} in ours");

    // 2. clone3(CLONE_NEWPID, set_tid = [1, N]). The child waits, SIGUSR1 blocked (it is the
    //    init of its namespace: unblocked, a signal it has no handler for would be dropped).
    let watch = SignalWatch::install()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut go = SigSet::empty();
    go.add(PARENT_TO_CHILD);
    let mut attempts = 0;
    let mut child = loop {
        let args = CloneArgs::new(Signal::SIGCHLD)
            .pidfd()
            .new_pid_namespace()
            .set_tid(&[Pid::from_raw(1), chosen]);
        let started = clone3_child(&args, || {
            child_say!(
                "child[{}]: 3. getpid() = {}, getppid() = {}",
                getpid(),
                getpid(),
                getppid()
            );
            match wait_signal(&go, deadline) {
                Ok(Some(_)) => 0,
                _ => 1,
            }
        });
        match started {
            Ok(child) => break child,
            // A process born since the look in /proc took the pid: look again, unless the
            // user chose it.
            Err(Error::Sys {
                errno: Errno::EEXIST,
                ..
            }) if wanted.is_none() && attempts < 10 => {
                attempts += 1;
                let next = Pid::from_raw(free_from(chosen.as_raw() + 1));
                println!(
                    "parent[{me}]: 2. pid {chosen} was taken meanwhile (EEXIST); asking for {next}"
                );
                chosen = next;
            }
            Err(Error::Sys {
                errno: Errno::EEXIST,
                ..
            }) => {
                return Err(Error::cannot_run(format!(
                    "pid {chosen} is taken; choose another with --pid"
                )))
            }
            Err(e) => return Err(e),
        }
    };
    let pid = child.pid();
    println!("parent[{me}]: 2. clone3 returned {pid}");

    // 4. Once the child sleeps in sigtimedwait (its line is out), read the kernel's own record:
    //    NSpid lists the pid in each namespace, ours first.
    while state_of(pid) == Some('R') && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let levels = nspid(pid)?;
    println!(
        "parent[{me}]: 4. /proc/{pid}/status NSpid: {}",
        levels
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    sync::send(pid, PARENT_TO_CHILD)?;
    let ended = child
        .wait(&watch, Duration::from_secs(30))
        .map_err(|f| f.into_error())?;
    println!("parent[{me}]: 5. waitid(P_PIDFD): {:?}", ended.status);

    // 6. Ask for a pid that is taken: our own.
    let taken = CloneArgs::new(Signal::SIGCHLD)
        .new_pid_namespace()
        .set_tid(&[Pid::from_raw(1), me]);
    let eexist = match clone3_child(&taken, || 0) {
        Err(Error::Sys {
            errno: Errno::EEXIST,
            ..
        }) => {
            println!("parent[{me}]: 6. clone3(set_tid = [1, {me}]) failed: EEXIST: pid {me} is taken here (it is ours)");
            true
        }
        Err(e) => {
            println!(
                "parent[{me}]: 6. clone3(set_tid = [1, {me}]) failed, but not with EEXIST: {e}"
            );
            false
        }
        Ok(mut unexpected) => {
            let _ = unexpected.wait(&watch, Duration::from_secs(5));
            println!("parent[{me}]: 6. clone3(set_tid = [1, {me}]) succeeded, which it must not");
            false
        }
    };

    let holds = pid == chosen
        && levels == [chosen.as_raw(), 1]
        && ended.outcome == Outcome::Exited(0)
        && eexist;
    Ok(Summary::new(SCENARIO.name, Verdict::of(holds))
        .field("chosen", chosen)
        .field(
            "nspid",
            levels
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(","),
        )
        .field("outcome", ended.outcome.token())
        .field("taken_pid_eexist", eexist))
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}
