//! What `/proc/PID` tells of one process, as the lessons read it: its state and its parent
//! (`stat`), a line of `status`, its cgroup.
//!
//! A process that has been reaped has no `/proc` entry any more: each reader says so with
//! `None`, and a story prints it as [`GONE`]. Parent code only: these allocate.

use std::fs;

use nix::unistd::Pid;

/// How a story prints the state of a process that has no `/proc` entry (it was reaped).
pub const GONE: &str = "gone";

/// The fields of `/proc/PID/stat` the lessons read (proc(5) numbers them from 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// Field 3: `R` running, `S` sleeping, `D` waiting on a disk, `T` stopped, `Z` a zombie
    /// (ended, not yet reaped), ...
    pub state: char,
    /// Field 4: the parent's pid, as this process's PID namespace sees it.
    pub parent: Pid,
    /// Field 19: the nice value, -20 (most favoured) to 19.
    pub nice: i32,
}

impl Stat {
    /// `/proc/PID/stat` of `pid`, or `None` once it has no entry (reaped, or never ours to see).
    pub fn of(pid: Pid) -> Option<Stat> {
        Stat::parse(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// Parses the text of a `stat` file: `1234 (comm) Z 1 ...`. The command name (field 2) may
    /// hold spaces and parentheses, so the fields after it are counted from its last `)`.
    pub fn parse(text: &str) -> Option<Stat> {
        let after_name: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
        let field = |n: usize| after_name.get(n - 3).copied();
        Some(Stat {
            state: field(3)?.chars().next()?,
            parent: Pid::from_raw(field(4)?.parse().ok()?),
            nice: field(19)?.parse().ok()?,
        })
    }
}

/// The state letter of `pid` as a story prints it: `Z`, `S`, ..., or [`GONE`].
pub fn state_word(pid: Pid) -> String {
    Stat::of(pid).map_or(GONE.to_string(), |stat| stat.state.to_string())
}

/// The value of the line `key:` of `/proc/PID/status` (`NoNewPrivs`, `NSpid`, `Threads`), or
/// `None` where the process is gone or the kernel has no such line.
pub fn status_field(pid: Pid, key: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let value = status.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))?;
    Some(value.trim().to_string())
}

/// The `NSpid:` line of `/proc/PID/status`: the pid of `pid` in each PID namespace it is in,
/// the reader's first and its own innermost last. Empty before 4.1, which lacks the line;
/// `None` where the process is gone.
pub fn namespace_pids(pid: Pid) -> Option<Vec<Pid>> {
    let Some(line) = status_field(pid, "NSpid") else {
        return Stat::of(pid).map(|_| Vec::new());
    };
    Some(line.split_whitespace().filter_map(|p| p.parse().ok()).map(Pid::from_raw).collect())
}

/// The cgroup v2 of `pid`, as `/proc/PID/cgroup` names it (the path of its `0::` line,
/// relative to the cgroup2 mount), or `None` where the process is gone.
pub fn cgroup_of(pid: Pid) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|line| line.strip_prefix("0::")).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let text = "42 (a (b) c) Z 7 42 42 0 -1 4194308 0 0 0 0 0 0 0 0 20 5 1 0 9 0 0";
        let stat = Stat::parse(text).unwrap();
        assert_eq!(stat, Stat { state: 'Z', parent: Pid::from_raw(7), nice: 5 });
        assert_eq!(Stat::parse("42 (truncated"), None);
    }

    #[test]
    fn our_own_entry_reads_and_a_pid_that_cannot_exist_is_gone() {
        let me = nix::unistd::getpid();
        assert_eq!(Stat::of(me).map(|s| s.parent), Some(nix::unistd::getppid()));
        assert_eq!(status_field(me, "Pid"), Some(me.to_string()));
        // pid_max is at most 2^22.
        assert_eq!(state_word(Pid::from_raw(99_999_999)), GONE);
    }
}
