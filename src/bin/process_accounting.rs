//! process_accounting: acct(2) records every process's end; read back what the kernel wrote.
//!
//! Usage: `cargo sudo-run --bin process_accounting -- [--keep] [--force]`
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

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clone_cgroup::cli::{for_each_option, unknown_option, Scenario, Summary, Verdict};
use clone_cgroup::process::{fork_child, Child, Ended, Waited};
use clone_cgroup::say;
use clone_cgroup::spawn::PreparedExec;
use clone_cgroup::sync::{self, SignalWatch, CHILD_TO_PARENT};
use clone_cgroup::Error;
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{acct, geteuid, getpid, Pid};
use record::{Record, AFORK, AXSIG, TABLE_HEADER};

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

/// How long any one child may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// One child of the demonstration: its command name and what its record must show.
struct Expected {
    command: &'static str,
    end: &'static str,
    flags: u8,
}

const EXPECTED: [Expected; 4] = [
    Expected { command: "true", end: "exit 0", flags: 0 },
    Expected { command: "acct-exit0", end: "exit 0", flags: AFORK },
    Expected { command: "acct-exit3", end: "exit 3", flags: AFORK },
    Expected { command: "acct-killed", end: "signal 9 (SIGKILL)", flags: AFORK | AXSIG },
];

/// The directory of the accounting file, removed on every path unless `--keep` says otherwise.
struct ScratchDir {
    path: PathBuf,
    keep: bool,
}

impl ScratchDir {
    /// Removes the directory now, saying why where it cannot.
    fn remove(&mut self) -> Result<(), Error> {
        self.keep = true; // nothing left for the guard to do
        std::fs::remove_dir_all(&self.path)
            .map_err(|e| Error::io(&format!("failed to remove {}", self.path.display()), e))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Waits, bounded, for `child` to end and reaps it: its pid and its end.
fn end_of(watch: &SignalWatch, mut child: Child) -> Result<(Pid, Ended), Error> {
    Ok((child.pid(), child.wait(watch, TIMEOUT, |_| {})?))
}

/// Gives the calling child its own command name, so that its record can be told apart.
fn name_myself(name: &CStr) {
    let _ = nix::sys::prctl::set_name(name);
}

/// `acct(path)`: accounting on, into `path`; the refusals a user can act on, named.
fn accounting_on(path: &Path) -> Result<(), Error> {
    match acct::enable(path) {
        Ok(()) => Ok(()),
        Err(Errno::ENOSYS) => Err(Error::cannot_run(
            "this kernel has no process accounting (CONFIG_BSD_PROCESS_ACCT)",
        )),
        Err(Errno::EPERM) => Err(Error::cannot_run("acct needs CAP_SYS_PACCT: run it with sudo")),
        Err(e) => Err(Error::sys("acct", e)),
    }
}

/// `--keep` and `--force`, as given.
fn parse_options(args: &[String]) -> Result<(bool, bool), Error> {
    let (mut keep, mut force) = (false, false);
    for_each_option(args, |name, opt| {
        match name {
            "--keep" => {
                opt.flag()?;
                keep = true;
            }
            "--force" => {
                opt.flag()?;
                force = true;
            }
            other => return Err(unknown_option(other)),
        }
        Ok(())
    })?;
    Ok((keep, force))
}

/// Refuses where this run cannot work or would disturb the machine's own accounting (unless
/// `force`); returns the `true` program the first child executes.
fn refuse_unless_safe(force: bool) -> Result<&'static str, Error> {
    if !geteuid().is_root() {
        return Err(Error::cannot_run("acct needs CAP_SYS_PACCT: run it with sudo"));
    }
    if let Some(file) = SYSTEM_ACCOUNTING_FILES.iter().find(|f| Path::new(f).exists()) {
        if !force {
            return Err(Error::cannot_run(format!(
                "{file} exists, so system accounting may be on; this run would redirect it: \
                 pass --force, then restart it with `accton {file}`"
            )));
        }
    }
    ["/bin/true", "/usr/bin/true"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| Error::cannot_run("no /bin/true or /usr/bin/true to exec"))
}

fn run(args: &[String]) -> Result<Summary, Error> {
    let (keep, force) = parse_options(args)?;
    let true_path = refuse_unless_safe(force)?;
    // The exec's arguments, built now: the child allocates nothing.
    let exec_true = PreparedExec::new(true_path, &[])?;
    let me = getpid();

    // 1. A fresh, empty accounting file, and accounting on.
    let dir = std::env::temp_dir().join(format!("clone-cgroup-acct-{me}"));
    std::fs::create_dir(&dir)
        .map_err(|e| Error::io(&format!("failed to create {}", dir.display()), e))?;
    let mut scratch = ScratchDir { path: dir.clone(), keep: false };
    let file: PathBuf = dir.join("pacct");
    std::fs::write(&file, b"")
        .map_err(|e| Error::io(&format!("failed to create {}", file.display()), e))?;
    let watch = SignalWatch::install()?;
    accounting_on(&file)?;
    say!("parent[{me}]: 1. acct({}): accounting is on", file.display());

    // 2. The children. Each is reaped before the next starts; the records are written at exit.
    let children = (|| -> Result<(), Error> {
        // exec replaces the program: the record shows "true" and no AFORK.
        let exec = fork_child(|| {
            exec_true.exec();
            127
        })?;
        let (pid, ended) = end_of(&watch, exec)?;
        say!("parent[{me}]: 2. fork + exec {true_path}: child {pid}: {:?}", ended.status);
        for (name, code) in [(c"acct-exit0", 0), (c"acct-exit3", 3)] {
            let child = fork_child(|| {
                name_myself(name);
                code
            })?;
            let (pid, ended) = end_of(&watch, child)?;
            say!("parent[{me}]: 2. fork, _exit({code}): child {pid}: {:?}", ended.status);
        }
        // Killed only once it carries its name (it says so with SIGUSR2), or its record would
        // show ours.
        watch.stop_if_interrupted()?;
        let deadline = Instant::now() + TIMEOUT;
        let mut child = fork_child(|| {
            name_myself(c"acct-killed");
            let _ = sync::send(me, CHILD_TO_PARENT);
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            0
        })?;
        let pid = child.pid();
        if child.wait_for_signal(&watch, CHILD_TO_PARENT, TIMEOUT)? != Waited::SignalCame {
            return Err(Error::Failed(format!("child {pid} never said it had its name")));
        }
        kill(pid, Signal::SIGKILL).map_err(|e| Error::sys("kill", e))?;
        let ended = child.wait(&watch, TIMEOUT, |_| {})?;
        say!(
            "parent[{me}]: 2. fork, then SIGKILL from the parent: child {pid}: {:?}",
            ended.status
        );
        Ok(())
    })();

    // 3. Accounting off, whatever happened above: it is system-wide.
    let off = acct::disable().map_err(|e| Error::sys("acct(NULL)", e));
    say!("parent[{me}]: 3. acct(NULL): accounting is off");
    children?;
    off?;

    // 4. The records: 64 bytes each, every process that ended meanwhile; ours have us as ppid.
    let bytes = std::fs::read(&file)
        .map_err(|e| Error::io(&format!("failed to read {}", file.display()), e))?;
    let records = Record::parse_all(&bytes);
    let ours: Vec<&Record> = records.iter().filter(|r| r.ppid == me.as_raw() as u32).collect();
    say!(
        "parent[{me}]: 4. {} bytes, {} records, {} of them our children's:",
        bytes.len(),
        records.len(),
        ours.len()
    );
    say!("    {TABLE_HEADER}");
    for record in &ours {
        say!("    {record}");
    }
    if let Some(own) = records.iter().find(|r| r.pid == me.as_raw() as u32) {
        // acct(NULL) writes a record for its caller as it closes the file.
        say!("    and our own, written by acct(NULL):\n    {own}");
    }

    // 5. Keep the file if asked; otherwise remove its directory (the guard removes it on
    //    every other path too).
    if keep {
        scratch.keep = true;
        say!("parent[{me}]: 5. kept {} (--keep)", file.display());
    } else {
        scratch.remove()?;
        say!("parent[{me}]: 5. removed {} and its directory", file.display());
    }

    // Each child appears once, with the end and the flags it must have.
    let missing: Vec<&str> = EXPECTED
        .iter()
        .filter(|expected| {
            !ours.iter().any(|r| {
                r.command == expected.command
                    && r.end() == expected.end
                    && r.flags & (AFORK | AXSIG) == expected.flags
            })
        })
        .map(|expected| expected.command)
        .collect();
    if !missing.is_empty() {
        say!("parent[{me}]: NOT AS CLAIMED: no matching record for {missing:?}");
    }
    Ok(Summary::new(SCENARIO.name, Verdict::of(missing.is_empty()))
        .field("records", records.len())
        .field("children", ours.len())
        .field("missing", if missing.is_empty() { "none".into() } else { missing.join(",") }))
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}

/// BSD process accounting's record: the kernel's 64-byte `struct acct_v3`.
///
/// While accounting is on, the kernel appends one record to the accounting file for every
/// process that ends, whoever it was: its command name, pids, uid, how it ended, flags such
/// as "forked but never exec'd" (AFORK) and "killed by a signal" (AXSIG), times, and memory.
/// Times and sizes are `comp_t`: a 13-bit mantissa and a 3-bit base-8 exponent.
mod record {
    use std::fmt;

    /// The size of one `struct acct_v3` record.
    pub const RECORD_SIZE: usize = 64;
    /// `ac_version` of a v3 record written on a little-endian machine.
    pub const VERSION_3: u8 = 3;

    /// Flag: the process forked but never called exec.
    pub const AFORK: u8 = 0x01;
    /// Flag: the process used superuser privileges.
    pub const ASU: u8 = 0x02;
    /// Flag: the process dumped core.
    pub const ACORE: u8 = 0x08;
    /// Flag: the process was killed by a signal.
    pub const AXSIG: u8 = 0x10;

    /// Decodes a `comp_t`: value = mantissa (13 bits) << (3 * exponent (3 bits)).
    pub fn decode_comp_t(raw: u16) -> u64 {
        u64::from(raw & 0x1fff) << (3 * u32::from(raw >> 13))
    }

    /// One `struct acct_v3`, decoded.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Record {
        /// AFORK, ASU, ACORE, AXSIG.
        pub flags: u8,
        /// 3 for this layout.
        pub version: u8,
        /// How the process ended, encoded like a wait status: `code << 8`, or the signal.
        pub exit_code: u32,
        /// Real user id.
        pub uid: u32,
        /// Real group id.
        pub gid: u32,
        /// Process id, in the namespace of the accounting file's opener.
        pub pid: u32,
        /// Parent's pid.
        pub ppid: u32,
        /// Start time, seconds since the epoch.
        pub begin: u32,
        /// Elapsed time in ticks of 1/100 s (an IEEE-754 float in v3).
        pub elapsed_ticks: f32,
        /// User CPU time in ticks of 1/100 s.
        pub user_ticks: u64,
        /// System CPU time in ticks of 1/100 s.
        pub system_ticks: u64,
        /// Memory: the process's virtual size at exit in KiB.
        pub memory_kib: u64,
        /// Minor page faults.
        pub minor_faults: u64,
        /// The command name (at most 16 bytes).
        pub command: String,
    }

    impl Record {
        /// Decodes one 64-byte record; `None` if it is not a little-endian v3 record.
        pub fn parse(bytes: &[u8]) -> Option<Record> {
            if bytes.len() != RECORD_SIZE || bytes[1] != VERSION_3 {
                return None;
            }
            let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
            let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
            let comm = &bytes[48..64];
            let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
            Some(Record {
                flags: bytes[0],
                version: bytes[1],
                exit_code: u32_at(4),
                uid: u32_at(8),
                gid: u32_at(12),
                pid: u32_at(16),
                ppid: u32_at(20),
                begin: u32_at(24),
                elapsed_ticks: f32::from_bits(u32_at(28)),
                user_ticks: decode_comp_t(u16_at(32)),
                system_ticks: decode_comp_t(u16_at(34)),
                memory_kib: decode_comp_t(u16_at(36)),
                minor_faults: decode_comp_t(u16_at(42)),
                command: String::from_utf8_lossy(&comm[..end]).into_owned(),
            })
        }

        /// Every whole record in the contents of an accounting file.
        pub fn parse_all(file: &[u8]) -> Vec<Record> {
            file.chunks_exact(RECORD_SIZE).filter_map(Record::parse).collect()
        }

        /// How it ended, in words: `exit 3` or `signal 9 (SIGKILL)`.
        pub fn end(&self) -> String {
            let signal = self.exit_code & 0x7f;
            if signal == 0 {
                format!("exit {}", (self.exit_code >> 8) & 0xff)
            } else {
                let name = nix::sys::signal::Signal::try_from(signal as i32)
                    .map(|s| s.as_str())
                    .unwrap_or("?");
                format!("signal {signal} ({name})")
            }
        }

        /// The flags as their names, `AFORK|AXSIG`, or `-`.
        pub fn flag_names(&self) -> String {
            let names: Vec<&str> =
                [(AFORK, "AFORK"), (ASU, "ASU"), (ACORE, "ACORE"), (AXSIG, "AXSIG")]
                    .iter()
                    .filter(|(bit, _)| self.flags & bit != 0)
                    .map(|(_, name)| *name)
                    .collect();
            if names.is_empty() {
                "-".to_string()
            } else {
                names.join("|")
            }
        }
    }

    impl fmt::Display for Record {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                f,
                "{:<16} {:>6} {:>6} {:>4}  {:<18} {:<12} {:>7.0} ms {:>7} KiB",
                self.command,
                self.pid,
                self.ppid,
                self.uid,
                self.end(),
                self.flag_names(),
                self.elapsed_ticks * 10.0,
                self.memory_kib
            )
        }
    }

    /// The header line matching [`Record`]'s `Display`.
    pub const TABLE_HEADER: &str =
        "command             pid   ppid  uid  end                flags        elapsed      memory";

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Builds a record the way the kernel lays it out.
        #[allow(clippy::too_many_arguments)]
        fn record(
            flags: u8,
            exit_code: u32,
            pid: u32,
            ppid: u32,
            etime: f32,
            mem: u16,
            comm: &str,
        ) -> Vec<u8> {
            let mut r = vec![0u8; RECORD_SIZE];
            r[0] = flags;
            r[1] = VERSION_3;
            r[4..8].copy_from_slice(&exit_code.to_le_bytes());
            r[16..20].copy_from_slice(&pid.to_le_bytes());
            r[20..24].copy_from_slice(&ppid.to_le_bytes());
            r[28..32].copy_from_slice(&etime.to_bits().to_le_bytes());
            r[36..38].copy_from_slice(&mem.to_le_bytes());
            r[48..48 + comm.len()].copy_from_slice(comm.as_bytes());
            r
        }

        #[test]
        fn comp_t_has_a_13_bit_mantissa_and_a_base_8_exponent() {
            assert_eq!(decode_comp_t(0), 0);
            assert_eq!(decode_comp_t(5000), 5000);
            assert_eq!(decode_comp_t(0x1fff), 8191);
            // exponent 1: mantissa * 8
            assert_eq!(decode_comp_t((1 << 13) | 1000), 8000);
            // exponent 7: mantissa * 8^7
            assert_eq!(decode_comp_t(0xffff), 8191 << 21);
        }

        #[test]
        fn parses_exit_codes_flags_and_names() {
            let mut file = record(AFORK, 3 << 8, 120, 100, 1.5, 2000, "acct-exit3");
            file.extend(record(AFORK | AXSIG, 9, 121, 100, 30.0, (1 << 13) | 500, "acct-killed"));
            file.extend(record(0, 0, 122, 100, 2.0, 100, "true"));
            file.extend([0u8; 10]); // a torn tail is not a record
            let records = Record::parse_all(&file);
            assert_eq!(records.len(), 3);
            assert_eq!(records[0].end(), "exit 3");
            assert_eq!(records[0].flag_names(), "AFORK");
            assert_eq!(records[0].command, "acct-exit3");
            assert_eq!(records[1].end(), "signal 9 (SIGKILL)");
            assert_eq!(records[1].flag_names(), "AFORK|AXSIG");
            assert_eq!(records[1].memory_kib, 4000);
            assert_eq!(records[1].elapsed_ticks, 30.0);
            assert_eq!(records[2].flag_names(), "-");
            assert_eq!(records[2].end(), "exit 0");
        }

        /// Five records as Debian's 6.1 kernel wrote them in the VM (process_accounting --keep):
        /// its four children (exec'd `true`, exit 0, exit 3, SIGKILL) and, last, the parent, for
        /// which acct(NULL) writes a record as it closes the file.
        const CAPTURED: &str = "
            00 03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 5c 00 00 00 5b 00 00 00 f8 11 09 6b 00 00 00 00
            00 00 00 00 d4 08 00 00 00 00 33 00 00 00 00 00 74 72 75 65 00 00 00 00 00 00 00 00 00 00 00 00
            01 03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 5d 00 00 00 5b 00 00 00 f8 11 09 6b 00 00 00 00
            00 00 00 00 c8 06 00 00 00 00 08 00 00 00 00 00 61 63 63 74 2d 65 78 69 74 30 00 00 00 00 00 00
            01 03 00 00 00 03 00 00 00 00 00 00 00 00 00 00 5e 00 00 00 5b 00 00 00 f8 11 09 6b 00 00 00 00
            00 00 00 00 c8 06 00 00 00 00 08 00 00 00 00 00 61 63 63 74 2d 65 78 69 74 33 00 00 00 00 00 00
            11 03 00 00 09 00 00 00 00 00 00 00 00 00 00 00 5f 00 00 00 5b 00 00 00 f8 11 09 6b 00 00 00 00
            00 00 00 00 c8 06 00 00 00 00 0b 00 00 00 00 00 61 63 63 74 2d 6b 69 6c 6c 65 64 00 00 00 00 00
            00 03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 5b 00 00 00 01 00 00 00 f8 11 09 6b 00 00 80 40
            00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 70 72 6f 63 65 73 73 5f 61 63 63 6f 75 6e 74 00";

        #[test]
        fn parses_records_captured_from_a_real_kernel() {
            let bytes: Vec<u8> =
                CAPTURED.split_whitespace().map(|h| u8::from_str_radix(h, 16).unwrap()).collect();
            assert_eq!(bytes.len(), 5 * RECORD_SIZE);
            let records = Record::parse_all(&bytes);
            let summary: Vec<(String, u32, u32, String, String)> = records
                .iter()
                .map(|r| (r.command.clone(), r.pid, r.ppid, r.end(), r.flag_names()))
                .collect();
            let expected = [
                ("true", 92, 91, "exit 0", "-"),
                ("acct-exit0", 93, 91, "exit 0", "AFORK"),
                ("acct-exit3", 94, 91, "exit 3", "AFORK"),
                ("acct-killed", 95, 91, "signal 9 (SIGKILL)", "AFORK|AXSIG"),
                ("process_account", 91, 1, "exit 0", "-"),
            ];
            for (got, want) in summary.iter().zip(expected) {
                assert_eq!((got.0.as_str(), got.1, got.2, got.3.as_str(), got.4.as_str()), want);
            }
            // 0x08d4 = 2260 KiB: exec'd busybox; 0x06c8 = 1736 KiB: the forked copies of us.
            assert_eq!(records[0].memory_kib, 2260);
            assert_eq!(records[1].memory_kib, 1736);
            // ac_etime is an IEEE-754 float in ticks: 0x40800000 = 4.0 ticks = 40 ms.
            assert_eq!(records[4].elapsed_ticks, 4.0);
            assert_eq!(records[0].begin, 0x6b0911f8);
        }

        #[test]
        fn refuses_other_versions() {
            let mut r = record(0, 0, 1, 0, 0.0, 0, "x");
            r[1] = 2;
            assert!(Record::parse(&r).is_none());
            assert!(Record::parse(&r[..63]).is_none());
        }
    }
}
