//! The kernel's own record of a run: a tracefs instance of the run's own, the events that
//! tell a process's life (its birth, its cgroups, its signals, its end and its reaping), the
//! story's lines among them, and the two ways to show it ([`timeline`], [`svg`]).
//!
//! What `--trace` does, step by step ([`Trace::start`], [`Trace::finish`]):
//! 1. It refuses where tracing cannot work, before the story starts: not root (tracefs is
//!    root's), no tracefs mounted, or a tracefs left empty by a kernel locked down for
//!    confidentiality.
//! 2. It makes an instance, `instances/clone-cgroup-PID`: a ring buffer of the run's own,
//!    with options of its own, which leaves the global buffer and any other tracer alone (an
//!    instance left by a run that died is removed first, as a stale cgroup is).
//! 3. It sets the instance's clock to `mono`, the same on every CPU, so that one order holds
//!    across CPUs; turns off the `irq-info` and `record-tgid` columns, so that lines read the
//!    same on every kernel; keeps the oldest events when the buffer fills (`overwrite` 0),
//!    since a story's start matters more than its end, and counts what it lost.
//! 4. It traces this process only (`set_event_pid`), and every process it makes, as it makes
//!    them (`options/event-fork`): a busy machine's other processes never appear. An event is
//!    recorded when the task it happens in is one of ours; so the kernel's own tasks (the OOM
//!    reaper, the RCU callback that frees a task: `sched_process_free`) are never seen, and the
//!    events they fire are not enabled. One event is kept though only half of it is sure:
//!    `cgroup_notify_populated` says a cgroup now holds a process in the task that put it
//!    there (a fork, a move); its other half, "now empty", fires where the last process
//!    leaves, which on recent kernels (7.2 in this project's runs) is whatever task the CPU
//!    switches to after the dying one: a pid filter keeps it or drops it by chance.
//! 5. It enables the events of [`EVENTS`] that this kernel has, each one of its own; one it
//!    lacks is said once, and the run goes on. The refused calls that make a process are
//!    `raw_syscalls:sys_exit` filtered to them (a fork refused by `pids.max` fires no other
//!    event: it fails before the new task is traced).
//! 6. From then on every line of the story goes to the instance's `trace_marker` too: the
//!    parent's through [`say!`](crate::say), a child's through [`child_say!`](crate::child_say),
//!    one `write(2)` each, so that the story's steps sit among the kernel's events by one clock.
//! 7. After the story it stops the instance, reads its `trace` file and its lost-event counts,
//!    and removes it: on every path, an error, a panic and an interruption included (drop).

pub mod event;
pub mod svg;
pub mod timeline;

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::statfs::{statfs, TRACEFS_MAGIC};
use nix::unistd::Pid;

use crate::process::say;
use crate::Error;
pub use event::{Event, What};

/// Where tracefs is mounted: its own mount point since 4.1, and under debugfs on old systems.
const TRACEFS_MOUNTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The prefix of this program's instances: `clone-cgroup-PID`.
pub const INSTANCE_PREFIX: &str = "clone-cgroup-";

/// The events a story is traced with, by subsystem and name, in the order of a process's life.
pub const EVENTS: [(&str, &str); 16] = [
    ("task", "task_newtask"),
    ("sched", "sched_process_fork"),
    ("sched", "sched_process_exec"),
    ("cgroup", "cgroup_mkdir"),
    ("cgroup", "cgroup_attach_task"),
    ("cgroup", "cgroup_notify_populated"),
    ("cgroup", "cgroup_freeze"),
    ("cgroup", "cgroup_unfreeze"),
    ("cgroup", "cgroup_notify_frozen"),
    ("signal", "signal_generate"),
    ("signal", "signal_deliver"),
    ("oom", "mark_victim"),
    ("raw_syscalls", "sys_exit"),
    ("sched", "sched_process_exit"),
    ("sched", "sched_process_wait"),
    ("cgroup", "cgroup_rmdir"),
];

/// The system calls that make a process, whose refusals the trace keeps.
fn process_calls() -> Vec<i64> {
    let calls = [libc::SYS_clone, libc::SYS_clone3];
    // aarch64 has no fork or vfork system call: its fork is a clone.
    #[cfg(target_arch = "x86_64")]
    let calls = [calls[0], calls[1], libc::SYS_fork, libc::SYS_vfork];
    calls.to_vec()
}

/// The name of system call `number`, among those that make a process.
pub fn call_name(number: i64) -> String {
    match number {
        n if n == libc::SYS_clone => "clone".into(),
        n if n == libc::SYS_clone3 => "clone3".into(),
        #[cfg(target_arch = "x86_64")]
        n if n == libc::SYS_fork => "fork".into(),
        #[cfg(target_arch = "x86_64")]
        n if n == libc::SYS_vfork => "vfork".into(),
        n => format!("system call {n}"),
    }
}

/// A run's tracefs instance, from [`start`](Trace::start) to [`finish`](Trace::finish); removed
/// when dropped, on every path.
pub struct Trace {
    /// `instances/clone-cgroup-PID`.
    dir: PathBuf,
    /// Its `trace_marker`, which the story's lines are written to.
    marker: Option<File>,
    /// Events this kernel lacks, with what the trace says of each.
    lacks: Vec<String>,
    /// Instances of dead runs removed on the way.
    notes: Vec<String>,
    removed: bool,
}

/// What a finished trace holds.
pub struct Record {
    /// The instance's name.
    pub instance: String,
    /// Its events, in the trace's order (by time, across CPUs).
    pub events: Vec<Event>,
    /// What the trace says beside them: events this kernel lacks, events not enabled, stale
    /// instances removed, events lost.
    pub notes: Vec<String>,
}

impl Trace {
    /// Refuses where tracing cannot work (see the module's steps 1 to 6), or makes this run's
    /// instance and starts recording. Call it before the first child exists.
    pub fn start() -> Result<Trace, Error> {
        if !nix::unistd::geteuid().is_root() {
            return Err(Error::cannot_run(
                "--trace needs root: tracefs belongs to root (run it with sudo)",
            ));
        }
        let tracefs = find_tracefs()?;
        let instances = tracefs.join("instances");
        if !instances.is_dir() {
            return Err(Error::cannot_run(format!(
                "tracefs at {} is empty: this kernel is locked down ({}), which keeps tracing \
                 from everyone; --trace needs a kernel booted without lockdown=confidentiality",
                tracefs.display(),
                fs::read_to_string("/sys/kernel/security/lockdown")
                    .map(|l| format!("/sys/kernel/security/lockdown: {}", l.trim()))
                    .unwrap_or_else(|_| "lockdown=confidentiality".into())
            )));
        }
        let notes = remove_stale(&instances);
        let dir = instances.join(format!("{INSTANCE_PREFIX}{}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => {}
            // Ours by name, left by an earlier run with our pid: stale.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                remove_instance(&dir)?;
                fs::create_dir(&dir).map_err(|e| io_error("create", &dir, e))?;
            }
            Err(e) => return Err(io_error("create", &dir, e)),
        }
        let mut trace = Trace { dir, marker: None, lacks: Vec::new(), notes, removed: false };
        trace.set_up()?;
        Ok(trace)
    }

    /// Steps 3 to 6 of the module's documentation.
    fn set_up(&mut self) -> Result<(), Error> {
        // The clock first: changing it empties the buffer.
        let clocks = fs::read_to_string(self.dir.join("trace_clock")).unwrap_or_default();
        let clock = if clocks.split_whitespace().any(|c| c.trim_matches(['[', ']']) == "mono") {
            "mono"
        } else {
            "global"
        };
        self.write("trace_clock", clock)?;
        for (option, value) in [
            ("event-fork", "1"),
            ("irq-info", "0"),
            ("record-tgid", "0"),
            ("markers", "1"),
            ("overwrite", "0"),
            ("latency-format", "0"),
            ("context-info", "1"),
        ] {
            let file = format!("options/{option}");
            if self.dir.join(&file).exists() {
                self.write(&file, value)?;
            }
        }
        self.write("buffer_size_kb", "2048")?;
        self.write("set_event_pid", &std::process::id().to_string())?;
        for (system, name) in EVENTS {
            let event = self.dir.join("events").join(system).join(name);
            if !event.join("enable").exists() {
                self.lacks.push(format!("this kernel has no {system}:{name} event"));
                continue;
            }
            if (system, name) == ("raw_syscalls", "sys_exit") {
                let calls: Vec<String> =
                    process_calls().iter().map(|nr| format!("id == {nr}")).collect();
                let filter = format!("({}) && ret < 0", calls.join(" || "));
                self.write(&format!("events/{system}/{name}/filter"), &filter)?;
            }
            self.write(&format!("events/{system}/{name}/enable"), "1")?;
        }
        self.write("tracing_on", "1")?;
        self.remove_on_interruption()?;
        let marker_path = self.dir.join("trace_marker");
        let marker = OpenOptions::new()
            .write(true)
            .open(&marker_path)
            .map_err(|e| io_error("open", &marker_path, e))?;
        say::mark_lines_to(marker.as_raw_fd());
        self.marker = Some(marker);
        Ok(())
    }

    /// Makes SIGINT, SIGTERM and SIGHUP remove the instance before they end the program as
    /// their default action does (exit 128 + N), for the stories that leave them at their
    /// default: a story that blocks them and takes them itself is not changed, and ends
    /// through its own clean-up, which drops the trace.
    fn remove_on_interruption(&self) -> Result<(), Error> {
        let c_path = |path: &Path| {
            CString::new(path.as_os_str().as_bytes())
                .map_err(|_| Error::Failed(format!("{} holds a NUL byte", path.display())))
        };
        let removal = Removal {
            owner: std::process::id() as libc::pid_t,
            path: c_path(&self.dir)?,
            tracing_on: c_path(&self.dir.join("tracing_on"))?,
        };
        let _ = ON_INTERRUPTION.set(removal);
        for signal in crate::sync::INTERRUPTIONS {
            // SAFETY: the handler makes only async-signal-safe calls (getpid, open, write,
            // close, rmdir, nanosleep, signal, raise) on data set before it was installed.
            unsafe {
                nix::sys::signal::signal(
                    signal,
                    nix::sys::signal::SigHandler::Handler(remove_then_die),
                )
            }
            .map_err(|e| Error::sys("signal", e))?;
        }
        Ok(())
    }

    /// The instance's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops recording, reads what was recorded and removes the instance.
    pub fn finish(mut self) -> Result<Record, Error> {
        self.stop_marking();
        self.write("tracing_on", "0")?;
        let text = fs::read_to_string(self.dir.join("trace"))
            .map_err(|e| io_error("read", &self.dir.join("trace"), e))?;
        let mut events: Vec<Event> = text.lines().filter_map(event::parse_line).collect();
        // The program's word on births into cgroups names a directory; the cgroup events name
        // a cgroup by its path in the hierarchy.
        if let Ok(mount) = crate::cgroup::Cgroup2Mount::find() {
            for event in &mut events {
                if let What::BornIn { path, .. } = &mut event.what {
                    if let Ok(inside) = Path::new(path.as_str()).strip_prefix(&mount.path) {
                        *path = format!("/{}", inside.display());
                    }
                }
            }
        }
        let mut notes = std::mem::take(&mut self.notes);
        notes.append(&mut self.lacks);
        if let Some(tick) = coarse_tick(&events) {
            notes.push(format!(
                "this kernel's clock moves in steps of {tick:.1} ms (its clocksource is not \
                 fine-grained): events within one step are in the order of their CPUs, not of \
                 their times"
            ));
        }
        let lost = self.lost_events();
        if lost > 0 {
            notes.push(format!(
                "the buffer filled: {lost} events were not recorded, the last ones of the run"
            ));
        }
        let instance = self.dir.file_name().map(|n| n.to_string_lossy().into_owned());
        remove_instance(&self.dir)?;
        self.removed = true;
        Ok(Record { instance: instance.unwrap_or_default(), events, notes })
    }

    /// Events the buffer could not hold: `dropped events` (with overwrite off) and `overrun`,
    /// summed over the CPUs' `per_cpu/cpuN/stats`.
    fn lost_events(&self) -> u64 {
        let Ok(cpus) = fs::read_dir(self.dir.join("per_cpu")) else { return 0 };
        let mut lost = 0;
        for cpu in cpus.flatten() {
            let stats = fs::read_to_string(cpu.path().join("stats")).unwrap_or_default();
            for line in stats.lines() {
                if let Some(("overrun" | "dropped events", n)) = line.split_once(": ") {
                    lost += n.trim().parse::<u64>().unwrap_or(0);
                }
            }
        }
        lost
    }

    /// No more lines to the marker, whose descriptor is closed: an open descriptor keeps the
    /// instance from being removed.
    fn stop_marking(&mut self) {
        say::mark_lines_to(-1);
        self.marker = None;
    }

    fn write(&self, file: &str, value: &str) -> Result<(), Error> {
        let path = self.dir.join(file);
        let fail = |e| Error::Io {
            context: format!("failed to write {value:?} to {}", path.display()),
            source: e,
        };
        let mut opened = OpenOptions::new().write(true).truncate(true).open(&path).map_err(fail)?;
        opened.write_all(value.as_bytes()).map_err(fail)
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        self.stop_marking();
        if let Err(e) = remove_instance(&self.dir) {
            eprintln!("warning: {e}");
        }
    }
}

/// What the interruption handler needs to remove the instance, set before it is installed.
struct Removal {
    /// The program's pid: a child that inherited the handler removes nothing.
    owner: libc::pid_t,
    /// The instance's directory.
    path: CString,
    /// Its `tracing_on`, opened by the handler (a descriptor kept open would keep the
    /// instance from being removed).
    tracing_on: CString,
}

static ON_INTERRUPTION: OnceLock<Removal> = OnceLock::new();

/// SIGINT, SIGTERM or SIGHUP in a traced run that left them at their default action: the
/// instance is removed (its marker closed, tracing stopped, `rmdir` retried for half a second
/// while a child still holds the marker it inherited), then the signal ends the program as it
/// would have. In a child, which inherits the handler across `fork`, it only does the latter.
extern "C" fn remove_then_die(signal: libc::c_int) {
    // SAFETY: only async-signal-safe calls, on strings set before the handler was
    // installed; the handler ends the process.
    unsafe {
        if let Some(removal) = ON_INTERRUPTION.get().filter(|r| r.owner == libc::getpid()) {
            let marker = say::take_marker();
            if marker >= 0 {
                libc::close(marker);
            }
            let tracing_on = libc::open(removal.tracing_on.as_ptr(), libc::O_WRONLY);
            if tracing_on >= 0 {
                libc::write(tracing_on, b"0".as_ptr().cast(), 1);
                libc::close(tracing_on);
            }
            let pause = libc::timespec { tv_sec: 0, tv_nsec: 10_000_000 };
            for _ in 0..50 {
                if libc::rmdir(removal.path.as_ptr()) == 0 || Errno::last() != Errno::EBUSY {
                    break;
                }
                libc::nanosleep(&pause, std::ptr::null_mut());
            }
        }
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

fn io_error(what: &str, path: &Path, e: io::Error) -> Error {
    Error::io(&format!("failed to {what} {}", path.display()), e)
}

/// The step of a clock that moves in whole milliseconds or more (jiffies), where the
/// events show one: no two of at least 20 events less than a millisecond apart but the same.
fn coarse_tick(events: &[Event]) -> Option<f64> {
    let gaps = events.windows(2).map(|pair| pair[1].at.saturating_sub(pair[0].at));
    let smallest = gaps.filter(|gap| !gap.is_zero()).min()?;
    (events.len() >= 20 && smallest >= Duration::from_millis(1))
        .then_some(smallest.as_secs_f64() * 1000.0)
}

/// The tracefs mount: its own mount point, or the one under debugfs.
fn find_tracefs() -> Result<PathBuf, Error> {
    for mount in TRACEFS_MOUNTS {
        if statfs(mount).is_ok_and(|fs| fs.filesystem_type() == TRACEFS_MAGIC) {
            return Ok(PathBuf::from(mount));
        }
    }
    Err(Error::cannot_run(
        "no tracefs is mounted: mount it with `mount -t tracefs nodev /sys/kernel/tracing`",
    ))
}

/// Removes an instance: tracing stopped, then `rmdir`, retried for a second while a
/// descriptor of it is still open somewhere (a child that has not yet closed the marker it
/// inherited closes it as it ends).
fn remove_instance(dir: &Path) -> Result<(), Error> {
    let _ = fs::write(dir.join("tracing_on"), "0");
    let mut last = None;
    for _ in 0..100 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(Errno::EBUSY as i32) => {
                last = Some(e);
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(io_error("remove the tracefs instance", dir, e)),
        }
    }
    Err(io_error(
        "remove the tracefs instance",
        dir,
        last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EBUSY)),
    ))
}

/// Removes the instances of runs that no longer exist (killed with SIGKILL, which no clean-up
/// survives); returns a note on each.
fn remove_stale(instances: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(instances) else { return Vec::new() };
    let mut notes = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(INSTANCE_PREFIX).and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        // kill(pid, 0) sends nothing; ESRCH means no such process.
        if nix::sys::signal::kill(Pid::from_raw(pid), None) != Err(Errno::ESRCH) {
            continue;
        }
        match remove_instance(&entry.path()) {
            Ok(()) => notes.push(format!(
                "removed the tracefs instance {name}, left by a run that no longer exists"
            )),
            Err(e) => notes.push(format!("{e}")),
        }
    }
    notes
}

/// The instances of this program that exist now, by name: for tests and leftovers.
pub fn instances() -> Vec<String> {
    let Ok(tracefs) = find_tracefs() else { return Vec::new() };
    let Ok(entries) = fs::read_dir(tracefs.join("instances")) else { return Vec::new() };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(INSTANCE_PREFIX))
        .collect()
}
