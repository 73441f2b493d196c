//! What the integration tests share: running a binary, reading its summary, finding what a
//! run left behind.
//!
//! Tests run side by side (several test threads, several test executables at once in the
//! VM), so a test never asserts on the whole machine ("no cgroup of ours anywhere") but on
//! its own runs: each run leads a process group of its own, which its children inherit, and
//! the cgroups it makes carry its pid in their name.
#![allow(dead_code)] // each test file uses a different part

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use clone_cgroup::cgroup::{own_name_pid, Cgroup2Mount};
use nix::unistd::Pid;

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
pub const OTHER_ROOT_ONLY: [(&str, &str); 7] = [
    ("cgroup_pids_max", "needs root to create cgroups"),
    ("cgroup_kill", "needs root to create cgroups"),
    ("zombie_orphan", "needs root to create cgroups"),
    ("cgroup_pids_hierarchy", "needs root to create cgroups"),
    ("clone3_args", "need root: run it with sudo"),
    ("clone3_set_tid", "set_tid needs CAP_SYS_ADMIN: run it with sudo"),
    ("process_accounting", "acct needs CAP_SYS_PACCT: run it with sudo"),
];

/// A run's verdict, as its summary line names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    AsClaimed,
    NotAsClaimed,
    CannotRun,
    BadUsage,
    Interrupted,
}

impl Verdict {
    pub fn token(&self) -> &'static str {
        match self {
            Verdict::AsClaimed => "as-claimed",
            Verdict::NotAsClaimed => "not-as-claimed",
            Verdict::CannotRun => "cannot-run",
            Verdict::BadUsage => "bad-usage",
            Verdict::Interrupted => "interrupted",
        }
    }
}

/// The last line of a run, `summary scenario=NAME verdict=WORD key=value ...`, read back the
/// way a script around the binaries would.
#[derive(Clone, Debug)]
pub struct Summary {
    pub scenario: String,
    pub verdict: Verdict,
    fields: Vec<(String, String)>,
}

impl Summary {
    pub fn parse(line: &str) -> Option<Summary> {
        let mut words = line.split_whitespace();
        if words.next()? != "summary" {
            return None;
        }
        let (mut scenario, mut verdict, mut fields) = (None, None, Vec::new());
        for word in words {
            let (key, value) = word.split_once('=')?;
            match key {
                "scenario" => scenario = Some(value.to_string()),
                "verdict" => {
                    verdict = [
                        Verdict::AsClaimed,
                        Verdict::NotAsClaimed,
                        Verdict::CannotRun,
                        Verdict::BadUsage,
                        Verdict::Interrupted,
                    ]
                    .into_iter()
                    .find(|v| v.token() == value)
                }
                _ => fields.push((key.to_string(), value.to_string())),
            }
        }
        Some(Summary { scenario: scenario?, verdict: verdict?, fields })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// One finished run of a binary.
pub struct Run {
    /// Its pid, which is also the id of its process group.
    pub pid: Pid,
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

    /// Fails the test if the run left a cgroup or a process behind (see [`left_behind`]).
    pub fn assert_nothing_left(&self) {
        let left = left_behind(self.pid);
        assert!(left.is_empty(), "the run left {left:?} behind:\n{self}");
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {}, exit {}\n--- stdout\n{}--- stderr\n{}",
            self.pid, self.code, self.stdout, self.stderr
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
        "clone3_args" => env!("CARGO_BIN_EXE_clone3_args"),
        "clone_wait_flags" => env!("CARGO_BIN_EXE_clone_wait_flags"),
        "clone_thread" => env!("CARGO_BIN_EXE_clone_thread"),
        "fork_exec_attributes" => env!("CARGO_BIN_EXE_fork_exec_attributes"),
        "cgroup_pids_hierarchy" => env!("CARGO_BIN_EXE_cgroup_pids_hierarchy"),
        "wait_statuses" => env!("CARGO_BIN_EXE_wait_statuses"),
        "zombie_orphan" => env!("CARGO_BIN_EXE_zombie_orphan"),
        "cgroup_kill" => env!("CARGO_BIN_EXE_cgroup_kill"),
        "fork_stdio" => env!("CARGO_BIN_EXE_fork_stdio"),
        "spawn_bench" => env!("CARGO_BIN_EXE_spawn_bench"),
        "cgroup_race" => env!("CARGO_BIN_EXE_cgroup_race"),
        other => panic!("no binary {other}"),
    };
    PathBuf::from(path)
}

/// The exit status as a shell shows it: the code, or 128 + the signal that ended it.
fn shell_code(status: ExitStatus) -> i32 {
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

pub fn run(name: &str, args: &[&str]) -> Run {
    run_command(Command::new(bin(name)).args(args))
}

/// Runs `command` to its end as the leader of a new process group, with its output captured.
pub fn run_command(command: &mut Command) -> Run {
    try_run_command(command).unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// [`run_command`], with the error of a command that could not be started.
pub fn try_run_command(command: &mut Command) -> std::io::Result<Run> {
    let child = command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = Pid::from_raw(child.id() as i32);
    let output = child.wait_with_output()?;
    Ok(Run {
        pid,
        code: shell_code(output.status),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Runs `name` `times` times, `jobs` runs at once, and returns the runs in order; each is
/// checked to have left nothing behind. Runs of a scenario are independent (each makes a
/// cgroup of its own name), so this also shows that they do not disturb each other.
pub fn run_many(name: &str, args: &[&str], times: usize, jobs: usize) -> Vec<Run> {
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::with_capacity(times));
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, times.max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= times {
                    break;
                }
                let run = run(name, args);
                let left = left_behind(run.pid);
                assert!(left.is_empty(), "{name} run {i} left {left:?}: {run}");
                done.lock().unwrap().push((i, run));
            });
        }
    });
    let mut runs = done.into_inner().unwrap();
    runs.sort_by_key(|(i, _)| *i);
    runs.into_iter().map(|(_, run)| run).collect()
}

/// How many runs of one scenario a test starts at once: TEST_JOBS, or 4.
pub fn test_jobs() -> usize {
    std::env::var("TEST_JOBS").ok().and_then(|n| n.parse().ok()).unwrap_or(4)
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

/// What the run with pid `pid` left behind: cgroups anywhere under the cgroup2 mount whose
/// name carries its pid (`clone-cgroup-PID-N`), its tracefs instance (`clone-cgroup-PID`), and
/// processes still in its process group, zombies included.
pub fn left_behind(pid: Pid) -> Vec<String> {
    let instance = format!("{}{pid}", clone_cgroup::trace::INSTANCE_PREFIX);
    let mut left: Vec<String> = Cgroup2Mount::find()
        .map(|mount| own_cgroups(&mount.path))
        .unwrap_or_default()
        .into_iter()
        .filter(|dir| dir.file_name().and_then(own_name_pid) == Some(pid))
        .map(|dir| dir.display().to_string())
        .collect();
    if clone_cgroup::trace::instances().contains(&instance) {
        left.push(format!("tracefs instance {instance}"));
    }
    // Signal 0 delivers nothing; it fails with ESRCH once the group has no member left.
    if nix::sys::signal::killpg(pid, None).is_ok() {
        left.push(format!("processes in group {pid}"));
    }
    left
}

/// Cgroups of this program's name pattern directly under the cgroup2 mount whose creator no
/// longer exists: what runs that could not clean up left there.
pub fn stale_cgroups(mount: &Cgroup2Mount) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(&mount.path) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| own_name_pid(&e.file_name()).is_some_and(|pid| !exists(pid)))
        // A run removes its cgroup before it ends: one that did so, and ended, between the
        // listing and the look at its pid, left nothing. Seen once in about 40 boots.
        .filter(|e| e.path().is_dir())
        .map(|e| e.path())
        .collect()
}

/// A binary running in the background whose output lines can be awaited.
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Running {
    /// Starts it as the leader of a process group of its own, as a shell starts a foreground
    /// job: a signal can go to the whole group, as Ctrl-C sends it, and what the run leaves
    /// behind can be found (see [`left_behind`]).
    pub fn start(name: &str, args: &[&str]) -> Running {
        let mut command = Command::new(bin(name));
        let mut child = command
            .args(args)
            .process_group(0)
            .stdin(Stdio::null())
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
        Running { child, lines, seen: Vec::new() }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// The first line containing `text`, among those seen so far or, waiting at most 30 s for
    /// it, those to come. Parent and child print in whatever order the scheduler lets them.
    pub fn line_with(&mut self, text: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(text)) {
            return line.clone();
        }
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(e) => panic!("no line with {text:?} ({e}); saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// The child pid the parent announced ("clone() returned child N").
    pub fn child_pid(&mut self) -> Pid {
        let line = self.line_with("returned child ");
        let pid = line.rsplit(' ').next().unwrap().parse().unwrap();
        Pid::from_raw(pid)
    }

    /// Waits for the end and collects the rest of the output.
    pub fn finish(mut self) -> Run {
        let pid = self.pid();
        let status = self.child.wait().expect("wait");
        let mut stderr = String::new();
        use std::io::Read;
        self.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        let mut stdout = self.seen.join("\n");
        if !stdout.is_empty() {
            stdout.push('\n');
        }
        for line in self.lines.iter() {
            stdout.push_str(&line);
            stdout.push('\n');
        }
        Run { pid, code: shell_code(status), stdout, stderr }
    }
}

/// Whether process `pid` exists (a zombie counts).
pub fn exists(pid: Pid) -> bool {
    nix::sys::signal::kill(pid, None).is_ok()
}

/// Whether `run`, of the delayed pair, lost its bet on timing and said so as documented: exit
/// status 1, `verdict=not-as-claimed bet=lost`, and the reason on a step-8 line. The kernel's
/// evidence must agree with a lost bet: nothing charged in the cgroup after the move (no OOM
/// kill, and memory.peak 0 where the kernel has it), unless the child was moved at the wrong
/// moment of its run (not asleep). Fails the test on a lost bet that is not said so.
pub fn lost_its_bet_and_said_so(run: &Run, summary: &Summary) -> bool {
    if summary.get("bet") != Some("lost") {
        return false;
    }
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(summary.verdict, Verdict::NotAsClaimed, "{run}");
    let why = run.stdout.lines().find(|l| l.contains("8. the delay lost its bet: "));
    let why = why.unwrap_or_else(|| panic!("a lost bet without its reason: {run}"));
    if !why.contains("not asleep") && !why.contains("never limited") {
        assert_eq!(summary.get("oom_kill"), Some("0"), "{run}");
        assert!(matches!(summary.get("peak"), Some("0" | "none")), "{run}");
    }
    true
}

/// Runs a memory scenario `times` times, [`test_jobs`] at once, and checks every run against
/// its claim (`check`); returns how often each memory.peak was seen. A run of the delayed pair
/// may instead have lost its bet and said so (see [`lost_its_bet_and_said_so`]): the delay is a
/// bet on timing by design, and a busy machine can make it lose. At least one run must have
/// ended as claimed, or the lesson was never shown.
pub fn repeat_memory_scenario(
    name: &str,
    times: usize,
    check: impl Fn(&Run, &Summary),
) -> BTreeMap<String, usize> {
    require_cgroup2();
    let (mut peaks, mut lost) = (BTreeMap::new(), 0);
    for (i, run) in run_many(name, &[], times, test_jobs()).iter().enumerate() {
        let summary = run.summary();
        if lost_its_bet_and_said_so(run, &summary) {
            lost += 1;
            continue;
        }
        assert_eq!(run.code, 0, "{name} run {i}: {run}");
        assert_eq!(summary.verdict, Verdict::AsClaimed, "{name} run {i}: {run}");
        if summary.get("bet") == Some("won") {
            assert!(run.stdout.contains("8. the delay won its bet: "), "{name} run {i}: {run}");
        }
        check(run, &summary);
        *peaks.entry(summary.get("peak").unwrap_or("?").to_string()).or_default() += 1;
    }
    eprintln!(
        "{name}: {} runs as claimed, {lost} lost the bet and said so; memory.peak seen: {peaks:?}",
        times - lost
    );
    assert!(lost < times, "{name}: all {times} runs lost the bet: the lesson was never shown");
    peaks
}

/// What this kernel's memory controller shows, seen the way a scenario sees it: in a cgroup
/// below the root, which alone lacks these files.
struct MemoryFiles {
    /// `memory.peak` (Linux 5.19 and later).
    peak: bool,
    /// `oom_group_kill` in `memory.events`.
    oom_group_kill: bool,
}

fn memory_files(mount: &Cgroup2Mount) -> &'static MemoryFiles {
    static FILES: std::sync::OnceLock<MemoryFiles> = std::sync::OnceLock::new();
    FILES.get_or_init(|| {
        let probe = mount.path.join(format!("memory-files-probe-{}", std::process::id()));
        let _ = clone_cgroup::cgroup::enable_controller(&mount.path, "memory");
        fs::create_dir(&probe).expect("create a probe cgroup");
        let files = MemoryFiles {
            peak: probe.join("memory.peak").exists(),
            oom_group_kill: fs::read_to_string(probe.join("memory.events"))
                .is_ok_and(|events| events.contains("oom_group_kill")),
        };
        fs::remove_dir(&probe).expect("remove the probe cgroup");
        files
    })
}

/// Whether this kernel's memory controller has `memory.peak`.
pub fn kernel_has_memory_peak(mount: &Cgroup2Mount) -> bool {
    memory_files(mount).peak
}

/// Whether this kernel's `memory.events` counts `oom_group_kill`.
pub fn kernel_counts_oom_group_kill(mount: &Cgroup2Mount) -> bool {
    memory_files(mount).oom_group_kill
}

/// The peaks a claim may show: the given ones where the kernel has memory.peak, `none`
/// (and the scenario saying so) where it has not.
pub fn expected_peaks<'a>(mount: &Cgroup2Mount, with_peak: &[&'a str]) -> Vec<&'a str> {
    if kernel_has_memory_peak(mount) {
        with_peak.to_vec()
    } else {
        vec!["none"]
    }
}

/// The small child's claim: it exited 0, the OOM killer did nothing, it wrote one page.
pub fn survived(run: &Run, summary: &Summary) {
    assert_eq!(summary.get("outcome"), Some("exited:0"), "{run}");
    assert_eq!(summary.get("oom_kill"), Some("0"), "{run}");
    assert!(run.stdout.contains("wrote 3000 bytes (1 new page)"), "{run}");
    peak_reported(run, summary);
}

/// The big child's claim: SIGKILL from the OOM killer before its last line.
pub fn killed(run: &Run, summary: &Summary) {
    assert_eq!(summary.get("outcome"), Some("killed:SIGKILL"), "{run}");
    let oom_kill: u64 = summary.get("oom_kill").unwrap().parse().unwrap();
    assert!(oom_kill >= 1, "{run}");
    assert!(run.stdout.contains(", SIGKILL, false)"), "{run}");
    assert!(!run.stdout.contains("wrote 1048576 bytes"), "the child finished: {run}");
    peak_reported(run, summary);
}

/// memory.peak is reported as a number, or as missing in the words the book promises.
fn peak_reported(run: &Run, summary: &Summary) {
    match summary.get("peak") {
        Some("none") => {
            assert!(run.stdout.contains("memory.peak: not offered by this kernel"), "{run}")
        }
        Some(peak) => assert!(peak.parse::<u64>().is_ok(), "{run}"),
        None => panic!("no peak in the summary: {run}"),
    }
}

/// A lock shared by every test executable (a file in /tmp, locked with `flock`): taken
/// exclusively by a test that changes the machine's limit on user namespaces
/// (`user.max_user_namespaces`, for a moment), and shared by the runs that create user
/// namespaces and would fail meanwhile (ENOSPC). The test executables run at once in the VM.
pub fn user_namespaces_lock(exclusive: bool) -> nix::fcntl::Flock<fs::File> {
    let path = std::env::temp_dir().join("clone-cgroup-tests-user-namespaces.lock");
    let file = fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
    let how = if exclusive {
        nix::fcntl::FlockArg::LockExclusive
    } else {
        nix::fcntl::FlockArg::LockShared
    };
    nix::fcntl::Flock::lock(file, how).map_err(|(_, e)| e).expect("flock")
}
