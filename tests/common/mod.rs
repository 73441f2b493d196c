//! What the integration tests share: running a binary, reading its summary, finding
//! cgroups this program left behind.
#![allow(dead_code)] // each test file uses a different part

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use clone_cgroup::cgroup::{own_name_pid, Cgroup2Mount};
use clone_cgroup::cli::{Summary, Verdict};

pub const NEEDS_CGROUP2: &str =
    "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it";

pub const MEMORY_SCENARIOS: [&str; 6] = [
    "clone_waitpid_cgroup_memory",
    "clone_waitpid_cgroup_memory_fail",
    "clone_wait_signal_cgroup_memory",
    "clone_wait_signal_cgroup_memory_fail",
    "clone3_into_cgroup_memory",
    "clone3_into_cgroup_memory_fail",
];

/// The other binaries that need root, and the words of their refusal without it.
pub const OTHER_ROOT_ONLY: [(&str, &str); 3] = [
    ("cgroup_pids_max", "needs root to create cgroups"),
    (
        "clone3_set_tid",
        "set_tid needs CAP_SYS_ADMIN: run it with sudo",
    ),
    (
        "process_accounting",
        "acct needs CAP_SYS_PACCT: run it with sudo",
    ),
];

/// One finished run of a binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn summary(&self) -> Summary {
        let last = self.stdout.lines().last().unwrap_or("");
        Summary::parse(last)
            .unwrap_or_else(|| panic!("last line is not a summary: {last:?}\n{self}"))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn bin(name: &str) -> PathBuf {
    let path = match name {
        "fork_waitpid" => env!("CARGO_BIN_EXE_fork_waitpid"),
        "clone_waitpid" => env!("CARGO_BIN_EXE_clone_waitpid"),
        "clone_waitpid_cgroup_memory" => env!("CARGO_BIN_EXE_clone_waitpid_cgroup_memory"),
        "clone_waitpid_cgroup_memory_fail" => {
            env!("CARGO_BIN_EXE_clone_waitpid_cgroup_memory_fail")
        }
        "clone_wait_signal_cgroup_memory" => env!("CARGO_BIN_EXE_clone_wait_signal_cgroup_memory"),
        "clone_wait_signal_cgroup_memory_fail" => {
            env!("CARGO_BIN_EXE_clone_wait_signal_cgroup_memory_fail")
        }
        "clone3_into_cgroup_memory" => env!("CARGO_BIN_EXE_clone3_into_cgroup_memory"),
        "clone3_into_cgroup_memory_fail" => env!("CARGO_BIN_EXE_clone3_into_cgroup_memory_fail"),
        "cgroup_pids_max" => env!("CARGO_BIN_EXE_cgroup_pids_max"),
        "clone3_set_tid" => env!("CARGO_BIN_EXE_clone3_set_tid"),
        "process_accounting" => env!("CARGO_BIN_EXE_process_accounting"),
        "clone_flags" => env!("CARGO_BIN_EXE_clone_flags"),
        "spawn_bench" => env!("CARGO_BIN_EXE_spawn_bench"),
        "cgroup_race" => env!("CARGO_BIN_EXE_cgroup_race"),
        other => panic!("no binary {other}"),
    };
    PathBuf::from(path)
}

pub fn finish(output: std::process::Output) -> Run {
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub fn run(name: &str, args: &[&str]) -> Run {
    run_command(Command::new(bin(name)).args(args))
}

pub fn run_command(command: &mut Command) -> Run {
    finish(
        command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}")),
    )
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The cgroup2 mount, if the memory controller is available there.
pub fn memory_capable_mount() -> Option<Cgroup2Mount> {
    let mount = Cgroup2Mount::find().ok()?;
    mount.require_controller("memory").ok()?;
    Some(mount)
}

/// The mount for a test that must run as root with cgroup v2: fails loudly elsewhere.
pub fn require_cgroup2() -> Cgroup2Mount {
    assert!(is_root(), "{NEEDS_CGROUP2}");
    memory_capable_mount().expect(NEEDS_CGROUP2)
}

/// Cgroups this program created anywhere under `root`, found by their name.
pub fn own_cgroups(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                if own_name_pid(&entry.file_name()).is_some() {
                    found.push(entry.path());
                }
                dirs.push(entry.path());
            }
        }
    }
    found
}

/// Processes that run one of this crate's binaries, zombies included: what a run must not
/// leave behind.
pub fn leftover_processes() -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let comm = stat
            .split_once('(')
            .and_then(|(_, r)| r.rsplit_once(')'))
            .map(|(c, _)| c)
            .unwrap_or("");
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.trim_start().chars().next())
            .unwrap_or('?');
        let ours = ["fork_waitpid", "clone_waitpid", "clone_wait_sign"]
            .iter()
            .any(|p| comm.starts_with(p));
        if ours {
            found.push(format!("{pid} ({comm}) state {state}"));
        }
    }
    found
}

/// A binary running in the background whose output lines can be awaited.
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Running {
    pub fn start(name: &str, args: &[&str]) -> Running {
        Running::spawn(Command::new(bin(name)).args(args))
    }

    /// Starts it as the leader of a process group of its own, as a shell starts a foreground
    /// job, so that a signal can go to the whole group, as Ctrl-C sends it.
    pub fn start_as_group(name: &str, args: &[&str]) -> Running {
        use std::os::unix::process::CommandExt;
        Running::spawn(Command::new(bin(name)).args(args).process_group(0))
    }

    fn spawn(command: &mut Command) -> Running {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// Waits (at most 20 s) for a line containing `text` and returns it.
    pub fn line_with(&mut self, text: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no line with {text:?} ({e}); saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The child pid the parent announced ("clone() returned child N").
    pub fn child_pid(&mut self) -> nix::unistd::Pid {
        let line = self.line_with("returned child ");
        let pid = line.rsplit(' ').next().unwrap().parse().unwrap();
        nix::unistd::Pid::from_raw(pid)
    }

    /// Waits for the end and collects the rest of the output.
    pub fn finish(mut self) -> Run {
        let status = self.child.wait().expect("wait");
        let mut stderr = String::new();
        use std::io::Read;
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let mut stdout = self.seen.join("\n");
        if !stdout.is_empty() {
            stdout.push('\n');
        }
        for line in self.lines.iter() {
            stdout.push_str(&line);
            stdout.push('\n');
        }
        use std::os::unix::process::ExitStatusExt;
        Run {
            code: status.code().unwrap_or(128 + status.signal().unwrap_or(0)),
            stdout,
            stderr,
        }
    }
}

/// Whether process `pid` exists (a zombie counts).
pub fn exists(pid: nix::unistd::Pid) -> bool {
    nix::sys::signal::kill(pid, None).is_ok()
}

/// Runs a memory scenario `times` times and checks every run against its claim; returns how
/// often each memory.peak was seen.
pub fn repeat_memory_scenario(
    name: &str,
    times: usize,
    check: impl Fn(&Run, &Summary),
) -> BTreeMap<String, usize> {
    let mount = require_cgroup2();
    let mut peaks = BTreeMap::new();
    for i in 0..times {
        let run = run(name, &[]);
        assert_eq!(run.code, 0, "{name} run {i}: {run}");
        let summary = run.summary();
        assert_eq!(summary.verdict, Verdict::AsClaimed, "{name} run {i}: {run}");
        check(&run, &summary);
        *peaks
            .entry(summary.get("peak").unwrap_or("?").to_string())
            .or_default() += 1;
        assert_eq!(
            own_cgroups(&mount.path),
            Vec::<PathBuf>::new(),
            "{name} run {i} left a cgroup"
        );
    }
    eprintln!("{name}: {times} runs as claimed; memory.peak seen: {peaks:?}");
    peaks
}

/// The small child's claim: it exited 0, the OOM killer did nothing, it wrote one page.
pub fn survived(run: &Run, summary: &Summary) {
    assert_eq!(summary.get("outcome"), Some("exited:0"), "{run}");
    assert_eq!(summary.get("oom_kill"), Some("0"), "{run}");
    assert!(
        run.stdout.contains("wrote 3000 bytes (1 new page)"),
        "{run}"
    );
}

/// The big child's claim: SIGKILL from the OOM killer before its last line.
pub fn killed(run: &Run, summary: &Summary) {
    assert_eq!(summary.get("outcome"), Some("killed:SIGKILL"), "{run}");
    let oom_kill: u64 = summary.get("oom_kill").unwrap().parse().unwrap();
    assert!(oom_kill >= 1, "{run}");
    assert!(run.stdout.contains(", SIGKILL, false)"), "{run}");
    assert!(
        !run.stdout.contains("wrote 1048576 bytes"),
        "the child finished: {run}"
    );
}
