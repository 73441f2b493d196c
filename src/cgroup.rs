//! One cgroup v2 directory: refuse where it cannot work, create, enable a controller, write a
//! limit, move a process in, read the kernel's counters, remove.
//!
//! Every write goes through [`write_file`], which never creates a file (a cgroup's files
//! exist or the kernel does not offer them) and whose error names the path, the data and the
//! OS error: `failed to write "4096" to /sys/fs/cgroup/x/memory.max: Invalid argument`.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
use nix::unistd::Pid;

use crate::Error;

/// The prefix that marks a cgroup as one of this program's: `clone-cgroup-<pid>-<role>`, the
/// pid of the run that made it, and what the cgroup is for in its story (`memory-max`,
/// `zombies`, `forkbomb`).
pub const NAME_PREFIX: &str = "clone-cgroup-";

/// The cgroup2 filesystem this process sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cgroup2Mount {
    /// Where it is mounted, e.g. `/sys/fs/cgroup` (or `/sys/fs/cgroup/unified` on a hybrid host).
    pub path: PathBuf,
}

impl Cgroup2Mount {
    /// Finds the cgroup2 mount in `/proc/self/mountinfo` and checks it with `statfs`.
    ///
    /// The error says what was found instead: no cgroup2 at all is a host with only cgroup v1.
    pub fn find() -> Result<Cgroup2Mount, Error> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| Error::io("read /proc/self/mountinfo", e))?;
        let path = cgroup2_mount_points(&mountinfo)
            .into_iter()
            .find(|p| is_cgroup2(p))
            .ok_or_else(|| {
                Error::cannot_run(
                    "no cgroup2 filesystem is mounted (only cgroup v1): mount one with \
                     `mount -t cgroup2 none /sys/fs/cgroup`, boot with \
                     systemd.unified_cgroup_hierarchy=1, or run the scenarios in the VM \
                     (scripts/demo.sh)",
                )
            })?;
        Ok(Cgroup2Mount { path })
    }

    /// Fails with a "cannot run" error unless `controller` is offered at the root of this
    /// mount (listed in its `cgroup.controllers`).
    pub fn require_controller(&self, controller: &str) -> Result<(), Error> {
        let file = self.path.join("cgroup.controllers");
        let offered = read_file(&file)?;
        if has_word(&offered, controller) {
            return Ok(());
        }
        let fix = if self.path.ends_with("unified") {
            "this host binds it to cgroup v1 (a hybrid hierarchy); boot with \
             systemd.unified_cgroup_hierarchy=1 or run the scenarios in the VM (scripts/demo.sh)"
                .to_string()
        } else if disabled_by(&fs::read_to_string("/proc/cmdline").unwrap_or_default(), controller)
        {
            // Raspberry Pi OS's firmware puts cgroup_disable=memory on the command line.
            format!(
                "the kernel was booted with cgroup_disable={controller}; add \
                 cgroup_enable={controller} to its command line (on a Raspberry Pi, to \
                 /boot/firmware/cmdline.txt) and reboot"
            )
        } else {
            "it is bound to a cgroup v1 hierarchy or missing from the kernel (CONFIG_MEMCG / \
             CONFIG_CGROUP_PIDS)"
                .to_string()
        };
        Err(Error::cannot_run(format!(
            "cgroup2 is mounted at {} but the {controller} controller is not available there \
             ({} lists \"{}\"): {fix}",
            self.path.display(),
            file.display(),
            offered.trim(),
        )))
    }

    /// Resolves `path` and checks that it is a directory of this cgroup2 mount.
    ///
    /// Symlinks and `..` are resolved first, so a path that only *looks* like it is under the
    /// mount is refused. Nothing is written.
    pub fn resolve_dir(&self, path: &Path) -> Result<PathBuf, Error> {
        let real = fs::canonicalize(path)
            .map_err(|e| Error::cannot_run(format!("cgroup directory {}: {e}", path.display())))?;
        if !real.starts_with(&self.path)
            || !is_cgroup2(&real)
            || !real.join("cgroup.procs").is_file()
        {
            return Err(Error::cannot_run(format!(
                "{} is not a cgroup v2 directory under the cgroup2 mount {}",
                path.display(),
                self.path.display()
            )));
        }
        Ok(real)
    }
}

/// Whether the kernel command line `cmdline` (`/proc/cmdline`) disables `controller`: the
/// last of `cgroup_disable=` and `cgroup_enable=` that names it wins.
fn disabled_by(cmdline: &str, controller: &str) -> bool {
    let last = cmdline.split_whitespace().rev().find_map(|word| {
        let (key, list) = word.split_once('=')?;
        let named = list.split(',').any(|c| c == controller);
        (named && (key == "cgroup_disable" || key == "cgroup_enable")).then_some(key)
    });
    last == Some("cgroup_disable")
}

/// Mount points of `cgroup2` filesystems in the text of `/proc/self/mountinfo`.
pub fn cgroup2_mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            // "36 25 0:31 / /sys/fs/cgroup rw,... shared:9 - cgroup2 cgroup2 rw,..."
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let mount_point = left.split_whitespace().nth(4)?;
            (fstype == "cgroup2").then(|| PathBuf::from(unescape_mountinfo(mount_point)))
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\040`-style octal.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4);
        if bytes[i] == b'\\' && octal.is_some_and(|o| o.iter().all(|b| (b'0'..=b'7').contains(b))) {
            let value = octal.unwrap().iter().fold(0u8, |v, b| v.wrapping_mul(8) + (b - b'0'));
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_cgroup2(path: &Path) -> bool {
    statfs(path).map(|fs| fs.filesystem_type() == CGROUP2_SUPER_MAGIC).unwrap_or(false)
}

fn has_word(list: &str, word: &str) -> bool {
    list.split_whitespace().any(|w| w == word)
}

/// Writes `data` to an existing cgroup file in one `write(2)`.
///
/// The kernel acts on each write as one command, so the data goes out in a single call; the
/// file is never created.
pub fn write_file(path: &Path, data: &str) -> Result<(), Error> {
    let fail = |e: io::Error| Error::Io {
        context: format!("failed to write {data:?} to {}", path.display()),
        source: e,
    };
    let mut file = OpenOptions::new().write(true).open(path).map_err(fail)?;
    let n = file.write(data.as_bytes()).map_err(fail)?;
    if n != data.len() {
        return Err(fail(io::Error::new(io::ErrorKind::WriteZero, "short write")));
    }
    Ok(())
}

/// Reads a whole cgroup file; the error names it.
pub fn read_file(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path)
        .map_err(|e| Error::io(&format!("failed to read {}", path.display()), e))
}

/// Parses a "flat keyed" cgroup file (`memory.events`, `pids.events`): `key value` per line.
pub fn parse_flat_keyed(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(' ')?;
            Some((key.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The counters of `memory.events` that tell whether the limit bit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryEvents {
    /// Times usage hit memory.max and the kernel had to reclaim.
    pub max: u64,
    /// Times reclaim failed and the cgroup was out of memory.
    pub oom: u64,
    /// Processes the OOM killer killed in this cgroup.
    pub oom_kill: u64,
}

impl MemoryEvents {
    /// What was counted since `before`: a reused cgroup's counters keep counting across runs.
    pub fn since(self, before: MemoryEvents) -> MemoryEvents {
        MemoryEvents {
            max: self.max.saturating_sub(before.max),
            oom: self.oom.saturating_sub(before.oom),
            oom_kill: self.oom_kill.saturating_sub(before.oom_kill),
        }
    }

    /// Reads the three counters out of the text of `memory.events`.
    pub fn parse(text: &str) -> MemoryEvents {
        let mut events = MemoryEvents::default();
        for (key, value) in parse_flat_keyed(text) {
            match key.as_str() {
                "max" => events.max = value,
                "oom" => events.oom = value,
                "oom_kill" => events.oom_kill = value,
                _ => {}
            }
        }
        events
    }
}

impl std::fmt::Display for MemoryEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "max {} oom {} oom_kill {}", self.max, self.oom, self.oom_kill)
    }
}

/// What the parent of a memory scenario saw once its child had ended: the kernel's evidence.
#[derive(Clone, Debug)]
pub struct MemoryEvidence {
    /// How the child ended.
    pub ended: crate::process::Ended,
    /// What `memory.events` counted during this run.
    pub events: MemoryEvents,
    /// `memory.peak`, where the kernel has it.
    pub peak: Option<u64>,
    /// [`Cgroup::still_charged`] after the end.
    pub still_charged: String,
}

impl MemoryEvidence {
    /// `4096 bytes`, or where the kernel has no `memory.peak`, that it has none.
    pub fn peak_text(&self) -> String {
        match self.peak {
            Some(peak) => format!("{peak} bytes"),
            None => "not offered by this kernel (before 5.19)".to_string(),
        }
    }
}

/// A cgroup v2 directory. One this program created is removed when dropped; one given by the
/// user (`--cgroup`) never is.
#[derive(Debug)]
pub struct Cgroup {
    path: PathBuf,
    owned: bool,
}

impl Cgroup {
    /// Creates a new cgroup named `clone-cgroup-<our pid>-<role>` under `parent` (with `-2`,
    /// `-3`, ... after it where that name is taken).
    ///
    /// `mkdir` fails with EEXIST rather than reuse a directory, so an existing cgroup (someone
    /// else's, or a stale one of ours) is never adopted: the next name is tried instead.
    pub fn create_unique(parent: &Path, role: &str) -> Result<Cgroup, Error> {
        let pid = std::process::id();
        for n in 1..100 {
            let name = match n {
                1 => format!("{NAME_PREFIX}{pid}-{role}"),
                n => format!("{NAME_PREFIX}{pid}-{role}-{n}"),
            };
            let path = parent.join(name);
            match fs::create_dir(&path) {
                Ok(()) => return Ok(Cgroup { path, owned: true }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::io(
                        &format!("failed to create cgroup {}", path.display()),
                        e,
                    ))
                }
            }
        }
        Err(Error::cannot_run(format!(
            "99 cgroups named {NAME_PREFIX}{pid}-{role}* already exist under {}",
            parent.display()
        )))
    }

    /// Uses an existing cgroup directory, already checked with [`Cgroup2Mount::resolve_dir`].
    /// It is left in place at the end.
    pub fn existing(path: PathBuf) -> Cgroup {
        Cgroup { path, owned: false }
    }

    /// The cgroup's directory, under the cgroup2 mount: where its interface files are.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `value` to the cgroup's file `name`, in one `write(2)` ([`write_file`]): the
    /// kernel takes each write as one command.
    pub fn write(&self, name: &str, value: &str) -> Result<(), Error> {
        write_file(&self.path.join(name), value)
    }

    /// Reads the cgroup's file `name` whole; the error names the file.
    pub fn read(&self, name: &str) -> Result<String, Error> {
        read_file(&self.path.join(name))
    }

    /// The number a single-value file holds (`pids.current`, `memory.current`); the error names
    /// the file and what it held instead.
    pub fn read_counter(&self, name: &str) -> Result<u64, Error> {
        let text = self.read(name)?;
        text.trim().parse().map_err(|_| {
            Error::Failed(format!(
                "{} holds {text:?}, not a number",
                self.path.join(name).display()
            ))
        })
    }

    /// The value of `key` in the flat-keyed file `name` (`memory.events`, `pids.events`,
    /// `cgroup.events`: a `key value` per line), or `None` where this kernel does not count it.
    pub fn read_keyed(&self, name: &str, key: &str) -> Result<Option<u64>, Error> {
        let pairs = parse_flat_keyed(&self.read(name)?);
        Ok(pairs.into_iter().find(|(k, _)| k == key).map(|(_, value)| value))
    }

    /// Whether the cgroup has a file `name` (interface files appear only for enabled
    /// controllers, and some only on newer kernels or with swap accounting).
    pub fn has_file(&self, name: &str) -> bool {
        self.path.join(name).exists()
    }

    /// Moves a process into this cgroup by writing its pid to `cgroup.procs`.
    ///
    /// Only memory charged from now on lands here: pages the process touched before the move
    /// stay charged to its old cgroup.
    pub fn add_process(&self, pid: Pid) -> Result<(), Error> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// The pids listed in `cgroup.procs`.
    pub fn processes(&self) -> Result<Vec<Pid>, Error> {
        Ok(self
            .read("cgroup.procs")?
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .map(Pid::from_raw)
            .collect())
    }

    /// `memory.events`: how often the limit was hit, OOM happened, and processes were killed.
    pub fn memory_events(&self) -> Result<MemoryEvents, Error> {
        Ok(MemoryEvents::parse(&self.read("memory.events")?))
    }

    /// Sets `memory.max` to `limit` bytes and, where swap is accounted, `memory.swap.max` to 0:
    /// with swap the kernel would push the child's pages out instead of killing it. Returns
    /// what the files hold now, read back: `memory.max = 4096`, and `, memory.swap.max = 0`
    /// where it wrote that too.
    pub fn limit_memory(&self, limit: u64) -> Result<String, Error> {
        self.write("memory.max", &limit.to_string())?;
        let mut limits = format!("memory.max = {}", self.read("memory.max")?.trim());
        if self.has_file("memory.swap.max") {
            self.write("memory.swap.max", "0")?;
            limits += &format!(", memory.swap.max = {}", self.read("memory.swap.max")?.trim());
        }
        Ok(limits)
    }

    /// What is still charged to the cgroup, as `memory.current` and the non-zero counters
    /// of `memory.stat`. Read after a child's end it shows what outlived the child (kernel
    /// objects, buffers): its own pages are freed by then.
    pub fn still_charged(&self) -> Result<String, Error> {
        let stat: Vec<String> = parse_flat_keyed(&self.read("memory.stat")?)
            .into_iter()
            .filter(|(_, value)| *value != 0)
            .map(|(key, value)| format!("{key} {value}"))
            .collect();
        let stat = if stat.is_empty() { "every counter 0".to_string() } else { stat.join(", ") };
        Ok(format!("memory.current {}; memory.stat: {stat}", self.read("memory.current")?.trim()))
    }

    /// The cgroup's directory opened with `O_PATH | O_DIRECTORY | O_CLOEXEC`, as `clone3`'s
    /// `CLONE_INTO_CGROUP` takes it: a handle on the directory, not an open file, which a
    /// child never inherits through `exec`.
    pub fn open_path(&self) -> Result<std::os::fd::OwnedFd, Error> {
        use std::os::unix::fs::OpenOptionsExt;
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(&self.path)
            .map(std::os::fd::OwnedFd::from)
            .map_err(|e| Error::io(&format!("failed to open {}", self.path.display()), e))
    }

    /// Reads the kernel's evidence of a run whose child has `ended`: `memory.events` since
    /// `before` (a reused cgroup counts on across runs), `memory.peak`, what is still charged.
    pub fn memory_evidence(
        &self,
        ended: crate::process::Ended,
        before: MemoryEvents,
    ) -> Result<MemoryEvidence, Error> {
        Ok(MemoryEvidence {
            ended,
            events: self.memory_events()?.since(before),
            peak: self.memory_peak()?,
            still_charged: self.still_charged()?,
        })
    }

    /// `memory.peak` in bytes, or `None` on kernels before 5.19 that lack the file.
    pub fn memory_peak(&self) -> Result<Option<u64>, Error> {
        if !self.has_file("memory.peak") {
            return Ok(None);
        }
        self.read_counter("memory.peak").map(Some)
    }

    /// Removes the cgroup now if this program created it (reap its processes first), and
    /// returns its path then; `None` for a cgroup it did not create, which it leaves as it
    /// found it. The error says why it could not.
    pub fn remove(mut self) -> Result<Option<PathBuf>, Error> {
        let owned = self.owned;
        let result = self.remove_dir();
        self.owned = false;
        result?;
        Ok(owned.then(|| self.path.clone()))
    }

    /// `rmdir`, as the kernel's cgroup selftests do it (`cg_destroy`): a cgroup that still
    /// holds processes gets `cgroup.kill` (where the kernel has it, from 5.14; otherwise
    /// SIGKILL to each process it lists) and the `rmdir` is retried. A just-reaped child can
    /// keep the cgroup busy for a moment too; the retries end after a second.
    fn remove_dir(&self) -> Result<(), Error> {
        if !self.owned {
            return Ok(());
        }
        let mut last = None;
        for _ in 0..100 {
            match fs::remove_dir(&self.path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    last = Some(e);
                    self.kill_all();
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => {
                    last = Some(e);
                    break;
                }
            }
        }
        Err(Error::io(
            &format!("failed to remove cgroup {}", self.path.display()),
            last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EBUSY)),
        ))
    }

    /// SIGKILL to every process in the cgroup: `cgroup.kill` where the kernel offers it,
    /// otherwise one `kill` per pid that `cgroup.procs` lists. Only ever used on a cgroup
    /// this program created, on the way to removing it.
    fn kill_all(&self) {
        if self.has_file("cgroup.kill") && self.write("cgroup.kill", "1").is_ok() {
            return;
        }
        for pid in self.processes().unwrap_or_default() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // The error paths end here; the normal path calls remove() and reports its result.
        if let Err(e) = self.remove_dir() {
            eprintln!("warning: {e}");
        }
    }
}

/// Makes `controller` available to the children of `parent` by writing `+controller` to its
/// `cgroup.subtree_control`, unless it already is. Returns whether it wrote.
///
/// The no-internal-process rule: a cgroup other than the root may not both hold processes and
/// hand a controller down to children, so the write fails with EBUSY when `parent` has
/// processes of its own. The error then says so and suggests another parent.
pub fn enable_controller(parent: &Path, controller: &str) -> Result<bool, Error> {
    let subtree_control = parent.join("cgroup.subtree_control");
    if has_word(&read_file(&subtree_control)?, controller) {
        return Ok(false);
    }
    let offered = read_file(&parent.join("cgroup.controllers"))?;
    if !has_word(&offered, controller) {
        // Controllers flow down: a cgroup offers only what its own parent enabled for it.
        let above = parent.parent().unwrap_or(parent).join("cgroup.subtree_control");
        return Err(Error::cannot_run(format!(
            "the {controller} controller is not available in {} (its cgroup.controllers lists \
             \"{}\"); fix: echo +{controller} > {}",
            parent.display(),
            offered.trim(),
            above.display(),
        )));
    }
    let change = format!("+{controller}");
    match write_file(&subtree_control, &change) {
        Ok(()) => Ok(true),
        Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EBUSY) => {
            Err(Error::cannot_run(format!(
                "cannot write {change:?} to {}: EBUSY, the no-internal-process rule: {} holds \
                 processes, so it may not hand controllers to child cgroups; pass --parent with \
                 a cgroup that has no processes of its own (for example a new, empty one)",
                subtree_control.display(),
                parent.display()
            )))
        }
        Err(e) => Err(Error::cannot_run(format!(
            "the {controller} controller is not enabled in {} and enabling it failed ({e}); \
             fix: echo {change} > {}",
            subtree_control.display(),
            subtree_control.display()
        ))),
    }
}

/// Finds cgroups under `parent` that a run of this program created and left behind (its
/// creator, the pid in the name, no longer exists: it was killed with SIGKILL, say), removes
/// the empty ones, and returns a note on each. Cgroups of runs still alive are left alone.
fn remove_stale(parent: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = own_name_pid(&entry.file_name()) else {
            continue;
        };
        // kill(pid, 0) sends nothing; ESRCH means no such process.
        if nix::sys::signal::kill(pid, None) != Err(nix::errno::Errno::ESRCH) {
            continue;
        }
        let path = entry.path();
        let left = format!("{} was left behind by a run that no longer exists", path.display());
        let procs = read_file(&path.join("cgroup.procs")).unwrap_or_default();
        if !procs.trim().is_empty() {
            let pids = procs.split_whitespace().collect::<Vec<_>>().join(" ");
            notes.push(format!("{left}; kept: still holds processes {pids}"));
            continue;
        }
        match fs::remove_dir(&path) {
            Ok(()) => notes.push(format!(
                "removed {}, left behind by a run that no longer exists",
                path.display()
            )),
            // Its creator removed it itself, and ended, between the listing and the kill:
            // not stale, only gone.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => notes.push(format!("{left}; kept: {e}")),
        }
    }
    notes
}

/// Checks that this machine can run a scenario that needs `controller`, refusing before any
/// write, and returns its cgroup with notes on what was done (for the story to print as its
/// step 1): `existing` if given (checked to be an empty cgroup v2 directory; kept at the end),
/// otherwise a new one named for its `role` under `parent` (default: the cgroup2 mount's
/// root), after removing what killed runs left there and enabling the controller there if
/// needed.
pub fn prepare(
    role: &str,
    controller: &str,
    parent: Option<&Path>,
    existing: Option<&Path>,
) -> Result<(Cgroup, Vec<String>), Error> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::cannot_run(
            "needs root to create cgroups and move processes: run it with sudo",
        ));
    }
    let mount = Cgroup2Mount::find()?;
    mount.require_controller(controller)?;
    let mut notes = Vec::new();
    let cgroup = match existing {
        Some(dir) => {
            let cgroup = Cgroup::existing(mount.resolve_dir(dir)?);
            let others = cgroup.processes()?;
            if !others.is_empty() {
                let first: Vec<String> = others.iter().take(5).map(|p| p.to_string()).collect();
                return Err(Error::cannot_run(format!(
                    "{} already holds {} processes ({}{}): its limits would hit them too; \
                     use an empty cgroup",
                    cgroup.path().display(),
                    others.len(),
                    first.join(" "),
                    if others.len() > 5 { " ..." } else { "" }
                )));
            }
            notes.push(format!(
                "using the existing cgroup {} (it will be kept)",
                cgroup.path().display()
            ));
            cgroup
        }
        None => {
            let parent = mount.resolve_dir(parent.unwrap_or(&mount.path))?;
            // A run killed with SIGKILL cannot clean up after itself; the next run does.
            notes.extend(remove_stale(&parent));
            if enable_controller(&parent, controller)? {
                notes.push(format!(
                    "enabled the {controller} controller: wrote \"+{controller}\" to {}",
                    parent.join("cgroup.subtree_control").display()
                ));
            }
            let cgroup = Cgroup::create_unique(&parent, role)?;
            notes.push(format!("created cgroup {}", cgroup.path().display()));
            cgroup
        }
    };
    let file = format!("{controller}.max");
    if !cgroup.has_file(&file) {
        return Err(Error::cannot_run(format!(
            "{} has no {file}: enable the controller for it with `echo +{controller} > {}`",
            cgroup.path().display(),
            cgroup
                .path()
                .parent()
                .unwrap_or(cgroup.path())
                .join("cgroup.subtree_control")
                .display()
        )));
    }
    Ok((cgroup, notes))
}

/// Whether a directory name is one this program creates, and the pid it was made by.
pub fn own_name_pid(name: &OsStr) -> Option<Pid> {
    let rest = name.to_str()?.strip_prefix(NAME_PREFIX)?;
    let (pid, role) = rest.split_once('-')?;
    let role_word = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if role.is_empty() || !role.chars().all(role_word) {
        return None;
    }
    pid.parse().ok().map(Pid::from_raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_controller_disabled_on_the_command_line_is_told_apart() {
        let pi = "console=tty1 cgroup_disable=memory root=/dev/mmcblk0p2";
        assert!(disabled_by(pi, "memory"));
        assert!(!disabled_by(pi, "pids"));
        assert!(!disabled_by(&format!("{pi} cgroup_enable=memory cgroup_memory=1"), "memory"));
        assert!(disabled_by("cgroup_disable=pids,memory", "memory"));
        assert!(!disabled_by("quiet", "memory"));
    }

    #[test]
    fn finds_cgroup2_mounts_on_hybrid_and_unified_hosts() {
        let hybrid = "\
25 30 0:23 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
30 25 0:28 / /sys/fs/cgroup/memory rw shared:14 - cgroup cgroup rw,memory
";
        assert_eq!(cgroup2_mount_points(hybrid), vec![PathBuf::from("/sys/fs/cgroup/unified")]);
        let v1_only = "30 25 0:28 / /sys/fs/cgroup/memory rw shared:14 - cgroup cgroup rw,memory\n";
        assert!(cgroup2_mount_points(v1_only).is_empty());
        let escaped = "26 25 0:24 / /mnt/my\\040cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mount_points(escaped), vec![PathBuf::from("/mnt/my cgroup")]);
    }

    #[test]
    fn parses_memory_events() {
        let text = "low 0\nhigh 0\nmax 35\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(MemoryEvents::parse(text), MemoryEvents { max: 35, oom: 1, oom_kill: 1 });
        assert_eq!(MemoryEvents::parse(text).to_string(), "max 35 oom 1 oom_kill 1");
        assert_eq!(MemoryEvents::parse(""), MemoryEvents::default());
    }

    #[test]
    fn flat_keyed_skips_malformed_lines() {
        assert_eq!(
            parse_flat_keyed("max 3\ngarbage\nx notanumber\n"),
            vec![("max".to_string(), 3)]
        );
    }

    #[test]
    fn unique_names_never_reuse_an_existing_directory() {
        let dir = std::env::temp_dir().join(format!("clone-cgroup-unique-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let taken = dir.join(format!("{NAME_PREFIX}{}-zombies", std::process::id()));
        fs::create_dir(&taken).unwrap();
        fs::write(taken.join("marker"), "someone else's").unwrap();
        let fresh = Cgroup::create_unique(&dir, "zombies").unwrap();
        assert_eq!(
            fresh.path(),
            dir.join(format!("{NAME_PREFIX}{}-zombies-2", std::process::id()))
        );
        fresh.remove().unwrap();
        assert!(taken.join("marker").exists(), "the existing directory was touched");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_cgroups_of_dead_runs_are_removed_and_live_ones_kept() {
        let dir = std::env::temp_dir().join(format!("clone-cgroup-stale-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        // pid_max is at most 2^22, so this pid cannot exist.
        let dead = dir.join(format!("{NAME_PREFIX}99999999-0"));
        let alive = dir.join(format!("{NAME_PREFIX}{}-0", std::process::id()));
        let busy = dir.join(format!("{NAME_PREFIX}99999998-0"));
        for d in [&dead, &alive, &busy] {
            fs::create_dir(d).unwrap();
        }
        fs::write(busy.join("cgroup.procs"), "1234\n").unwrap();
        let mut report = remove_stale(&dir);
        report.sort();
        let left = "was left behind by a run that no longer exists";
        assert_eq!(
            report,
            vec![
                format!("{} {left}; kept: still holds processes 1234", busy.display()),
                format!("removed {}, left behind by a run that no longer exists", dead.display()),
            ]
        );
        assert!(alive.exists() && busy.exists() && !dead.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn recognises_own_cgroup_names() {
        assert_eq!(own_name_pid(OsStr::new("clone-cgroup-812-0")), Some(Pid::from_raw(812)));
        let role = OsStr::new("clone-cgroup-812-killed-once-2");
        assert_eq!(own_name_pid(role), Some(Pid::from_raw(812)));
        assert_eq!(own_name_pid(OsStr::new("clone-cgroup-812")), None);
        assert_eq!(own_name_pid(OsStr::new("clone-cgroup-812-Other")), None);
        assert_eq!(own_name_pid(OsStr::new("foo")), None);
    }

    #[test]
    fn writes_never_create_files_and_errors_name_path_and_data() {
        let dir = std::env::temp_dir().join(format!("clone-cgroup-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("memory.max");
        let err = write_file(&missing, "4096").unwrap_err().to_string();
        assert!(!missing.exists());
        assert!(err.contains("\"4096\"") && err.contains("memory.max"), "{err}");
        fs::write(&missing, "").unwrap();
        write_file(&missing, "4096").unwrap();
        assert_eq!(fs::read_to_string(&missing).unwrap(), "4096");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn enabling_reports_an_unoffered_controller_without_writing() {
        let dir = std::env::temp_dir().join(format!("clone-cgroup-enable-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("cgroup.subtree_control"), "").unwrap();
        fs::write(dir.join("cgroup.controllers"), "cpu io\n").unwrap();
        let err = enable_controller(&dir, "memory").unwrap_err();
        assert!(matches!(err, Error::CannotRun(_)), "{err}");
        assert_eq!(fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap(), "");
        fs::write(dir.join("cgroup.controllers"), "cpu memory\n").unwrap();
        assert!(enable_controller(&dir, "memory").unwrap());
        assert_eq!(fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap(), "+memory");
        fs::remove_dir_all(&dir).unwrap();
    }
}
