//! BSD process accounting: `acct(2)` and the kernel's `acct_v3` records.
//!
//! While accounting is on, the kernel appends one 64-byte record to the accounting file for
//! every process that ends, whoever it was: its command name, pids, uid, how it ended, flags
//! such as "forked but never exec'd" (AFORK) and "killed by a signal" (AXSIG), times, and
//! memory. Times and sizes are `comp_t`: a 13-bit mantissa and a 3-bit base-8 exponent.

use std::ffi::CString;
use std::fmt;
use std::path::Path;

use nix::errno::Errno;

use crate::Error;

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
        file.chunks_exact(RECORD_SIZE)
            .filter_map(Record::parse)
            .collect()
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
        let names: Vec<&str> = [
            (AFORK, "AFORK"),
            (ASU, "ASU"),
            (ACORE, "ACORE"),
            (AXSIG, "AXSIG"),
        ]
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

/// `acct(path)`: turns accounting on, writing to `path` (an existing regular file).
pub fn turn_on(path: &Path) -> Result<(), Error> {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Failed(format!("{} contains a NUL byte", path.display())))?;
    // SAFETY: c_path is a valid NUL-terminated string for the duration of the call.
    if unsafe { libc::acct(c_path.as_ptr()) } == 0 {
        return Ok(());
    }
    match Errno::last() {
        Errno::ENOSYS => Err(Error::cannot_run(
            "this kernel has no process accounting (CONFIG_BSD_PROCESS_ACCT)",
        )),
        Errno::EPERM => Err(Error::cannot_run(
            "acct needs CAP_SYS_PACCT: run it with sudo",
        )),
        e => Err(Error::sys(&format!("acct({})", path.display()), e)),
    }
}

/// `acct(NULL)`: turns accounting off.
pub fn turn_off() -> Result<(), Error> {
    // SAFETY: a NULL path is acct's documented way to turn accounting off.
    if unsafe { libc::acct(std::ptr::null()) } == 0 {
        Ok(())
    } else {
        Err(Error::sys("acct(NULL)", Errno::last()))
    }
}

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
        file.extend(record(
            AFORK | AXSIG,
            9,
            121,
            100,
            30.0,
            (1 << 13) | 500,
            "acct-killed",
        ));
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
        let bytes: Vec<u8> = CAPTURED
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
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
            assert_eq!(
                (got.0.as_str(), got.1, got.2, got.3.as_str(), got.4.as_str()),
                want
            );
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
