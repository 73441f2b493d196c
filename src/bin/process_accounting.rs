//! process_accounting: acct(2) records every process's end; read back what the kernel wrote.
//!
//! Usage: `sudo cargo run --bin process_accounting -- [--keep] [--force]`
//!
//! The parent turns accounting on into a fresh file, starts four children and waits for
//! each: one that execs `true`, one that exits 0 and one that exits 3 without exec, and one
//! that is killed with SIGKILL. It turns accounting off, reads the file's 64-byte acct_v3
//! records, and prints the ones of its children: command, pid, ppid, uid, how it ended, flags
//! (AFORK: forked but never exec'd; AXSIG: killed by a signal), elapsed time and memory.
//! Expect four rows, `true` without flags, `acct-exit3` with `exit 3`, `acct-killed` with
//! `signal 9 (SIGKILL)` and `AFORK|AXSIG`; exit status 0.
//!
//! Accounting is system-wide: while it is on, every process that ends is recorded. On a
//! machine that already runs accounting (psacct, acct), this program would redirect it, so it
//! refuses unless given --force; restart that accounting afterwards (`accton FILE`).

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clone_cgroup::acct::{self, Record, AFORK, AXSIG, TABLE_HEADER};
use clone_cgroup::cli::{for_each_option, unknown_option, Scenario, Summary, Verdict};
use clone_cgroup::process::{fork_child, wait_for, WaitFailure};
use clone_cgroup::sync::{wait_signal, SignalWatch};
use clone_cgroup::Error;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::unistd::{geteuid, getpid, Pid};

const SCENARIO: Scenario = Scenario {
    name: "process_accounting",
    about: "acct(2) into a fresh file; children that exec, exit 0, exit 3, and are killed;\n\
            then the kernel's acct_v3 records of them, parsed and printed.",
    options: "      --keep           keep the accounting file (its path is printed)
      --force          run even where system accounting seems to be in use
",
};

/// Where accounting packages keep the system's accounting file.
const SYSTEM_ACCOUNTING_FILES: [&str; 2] = ["/var/log/account/pacct", "/var/account/pacct"];

/// One child of the demonstration: its command name and what its record must show.
struct Expected {
    command: &'static str,
    end: &'static str,
    flags: u8,
}

const EXPECTED: [Expected; 4] = [
    Expected {
        command: "true",
        end: "exit 0",
        flags: 0,
    },
    Expected {
        command: "acct-exit0",
        end: "exit 0",
        flags: AFORK,
    },
    Expected {
        command: "acct-exit3",
        end: "exit 3",
        flags: AFORK,
    },
    Expected {
        command: "acct-killed",
        end: "signal 9 (SIGKILL)",
        flags: AFORK | AXSIG,
    },
];

/// The directory of the accounting file, removed on every path unless `--keep` says otherwise.
struct ScratchDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Runs one child to its end and says how it ended.
fn reap(me: Pid, watch: &SignalWatch, child: Pid, what: &str) -> Result<(), Error> {
    let ended =
        wait_for(child, watch, Duration::from_secs(10), |_| {}).map_err(WaitFailure::into_error)?;
    println!("parent[{me}]: 2. {what}: child {child}: {:?}", ended.status);
    Ok(())
}

/// Gives the calling child its own command name, so that its record can be told apart.
fn name_myself(name: &CStr) {
    let _ = nix::sys::prctl::set_name(name);
}

fn run(args: &[String]) -> Result<Summary, Error> {
    let (mut keep, mut force) = (false, false);
    for_each_option(args, |name, _| {
        match name {
            "--keep" => keep = true,
            "--force" => force = true,
            other => return Err(unknown_option(other)),
        }
        Ok(())
    })?;
    if !geteuid().is_root() {
        return Err(Error::cannot_run(
            "acct needs CAP_SYS_PACCT: run it with sudo",
        ));
    }
    if let Some(file) = SYSTEM_ACCOUNTING_FILES
        .iter()
        .find(|f| Path::new(f).exists())
    {
        if !force {
            return Err(Error::cannot_run(format!(
                "{file} exists, so system accounting may be on; this run would redirect it: \
                 pass --force, then restart it with `accton {file}`"
            )));
        }
    }
    let true_path = ["/bin/true", "/usr/bin/true"]
        .iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| Error::cannot_run("no /bin/true or /usr/bin/true to exec"))?;
    let true_c = CString::new(*true_path).expect("no NUL in a constant path");
    let me = getpid();

    // 1. A fresh, empty accounting file, and accounting on.
    let dir = std::env::temp_dir().join(format!("clone-cgroup-acct-{me}"));
    std::fs::create_dir(&dir)
        .map_err(|e| Error::io(&format!("failed to create {}", dir.display()), e))?;
    let mut scratch = ScratchDir {
        path: dir.clone(),
        keep: false,
    };
    let file: PathBuf = dir.join("pacct");
    std::fs::write(&file, b"")
        .map_err(|e| Error::io(&format!("failed to create {}", file.display()), e))?;
    let watch = SignalWatch::install()?;
    acct::turn_on(&file)?;
    println!(
        "parent[{me}]: 1. acct({}): accounting is on",
        file.display()
    );

    // 2. The children. Each is reaped before the next starts; the records are written at exit.
    let children = (|| -> Result<(), Error> {
        let exec_true = fork_child(|| {
            // exec replaces the program: the record shows "true" and no AFORK.
            let _ = nix::unistd::execv(&true_c, &[&true_c]);
            127
        })?;
        reap(me, &watch, exec_true, &format!("fork + exec {true_path}"))?;
        let exit0 = fork_child(|| {
            name_myself(c"acct-exit0");
            0
        })?;
        reap(me, &watch, exit0, "fork, _exit(0)")?;
        let exit3 = fork_child(|| {
            name_myself(c"acct-exit3");
            3
        })?;
        reap(me, &watch, exit3, "fork, _exit(3)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let killed = fork_child(|| {
            name_myself(c"acct-killed");
            let _ = wait_signal(&SigSet::empty(), deadline);
            0
        })?;
        // Kill it only once it carries its name, or its record would show ours.
        let comm = format!("/proc/{killed}/comm");
        while std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() != "acct-killed")
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        kill(killed, Signal::SIGKILL).map_err(|e| Error::sys("kill", e))?;
        reap(me, &watch, killed, "fork, then SIGKILL from the parent")
    })();

    // 3. Accounting off, whatever happened above: it is system-wide.
    let off = acct::turn_off();
    println!("parent[{me}]: 3. acct(NULL): accounting is off");
    children?;
    off?;

    // 4. The records: 64 bytes each, every process that ended meanwhile; ours have us as ppid.
    let bytes = std::fs::read(&file)
        .map_err(|e| Error::io(&format!("failed to read {}", file.display()), e))?;
    let records = Record::parse_all(&bytes);
    let ours: Vec<&Record> = records
        .iter()
        .filter(|r| r.ppid == me.as_raw() as u32)
        .collect();
    println!(
        "parent[{me}]: 4. {} bytes, {} records, {} of them our children's:",
        bytes.len(),
        records.len(),
        ours.len()
    );
    println!("    {TABLE_HEADER}");
    for record in &ours {
        println!("    {record}");
    }
    if let Some(own) = records.iter().find(|r| r.pid == me.as_raw() as u32) {
        // acct(NULL) writes a record for its caller as it closes the file.
        println!("    and our own, written by acct(NULL):\n    {own}");
    }
    if keep {
        scratch.keep = true;
        println!("parent[{me}]: 5. kept {}", file.display());
    }

    // Each child appears once, with the end and the flags it must have.
    let mut missing = Vec::new();
    for expected in &EXPECTED {
        let found = ours.iter().any(|r| {
            r.command == expected.command
                && r.end() == expected.end
                && r.flags & (AFORK | AXSIG) == expected.flags
        });
        if !found {
            missing.push(expected.command);
        }
    }
    if !missing.is_empty() {
        println!("parent[{me}]: NOT AS CLAIMED: no matching record for {missing:?}");
    }
    Ok(Summary::new(
        SCENARIO.name,
        if missing.is_empty() {
            Verdict::AsClaimed
        } else {
            Verdict::NotAsClaimed
        },
    )
    .field("records", records.len())
    .field("children", ours.len())
    .field(
        "missing",
        if missing.is_empty() {
            "none".to_string()
        } else {
            missing.join(",")
        },
    ))
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}
