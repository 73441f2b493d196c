//! One line of a trace, as the kernel writes it in an instance's `trace` file, read into what
//! it says.
//!
//! With the options [`Trace`](super::Trace) sets (no `irq-info`, no `record-tgid`), a line is
//!
//! ```text
//!   clone_waitpid_c-147     [001]   104.623870: sched_process_exit: comm=clone_waitpid_c pid=147 prio=120
//! ```
//!
//! the task's command name and pid, the CPU, the time in seconds (`mono`: the monotonic
//! clock), the event's name and its fields, each event's own format (`events/SYS/EVENT/format`
//! in tracefs). The command name may hold spaces and dashes: a line is read from the right of
//! it, at the `[CPU]` field. Fields are read by their names in the order the format gives
//! them, so that a value with spaces (a command name) stays whole; a field a kernel added later
//! (`group_dead` in 6.16's `sched_process_exit`) is read where it is there.

use std::time::Duration;

use nix::unistd::Pid;

/// One event of the trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// When, on the trace's clock (`mono`: CLOCK_MONOTONIC).
    pub at: Duration,
    /// The task it happened in (its pid as the kernel knows it, in the first PID namespace).
    pub task: Pid,
    /// What happened.
    pub what: What,
}

/// What an event says, for the events a story is traced with. The fields are the event's own,
/// as its format in tracefs names them.
#[derive(Clone, Debug, PartialEq)]
pub enum What {
    /// A line of the story, written to `trace_marker` (`tracing_mark_write`).
    Story(String),
    /// Not the kernel's event but the program's line beside it (see
    /// [`mark_born_in`](crate::process::say)): clone3 returned `child`, born with
    /// `CLONE_INTO_CGROUP` in the cgroup whose directory its descriptor named, which no event
    /// says.
    BornIn {
        /// The child.
        child: Pid,
        /// Its cgroup: the descriptor's path, made relative to the cgroup2 mount by
        /// [`Trace::finish`](super::Trace::finish), as the cgroup events give paths.
        path: String,
    },
    /// `task_newtask`: the task made a new one.
    NewTask {
        /// The new task.
        child: Pid,
        /// Its `clone` flags, 64 bits as clone3 takes them (`CLONE_THREAD` makes a thread).
        flags: u64,
    },
    /// `sched_process_fork`: the task's new child exists.
    Forked {
        /// The new child.
        child: Pid,
    },
    /// `sched_process_exec`: the task runs a new program.
    Exec {
        /// The program's file.
        filename: String,
    },
    /// `sched_process_exit`: the task ends.
    Exit {
        /// Whether it is the last of its thread group: 6.16 and later say so.
        group_dead: Option<bool>,
    },
    /// `sched_process_wait`: the task waits for a child.
    Wait {
        /// The child waited for, or any (`None`).
        pid: Option<Pid>,
    },
    /// `signal_generate`: the task sends a signal.
    Signal {
        /// The signal's number.
        signal: i32,
        /// Where it goes.
        to: Pid,
        /// Its `si_code`: 128, `SI_KERNEL`, for the kernel's own (as the OOM killer's).
        code: i32,
        /// What became of it: 0 delivered, 1 ignored, 2 already pending, 3 the queue full,
        /// 4 sent without its information.
        result: i32,
    },
    /// `signal_deliver`: the task takes a signal (its handler, or its default action, runs).
    Delivered {
        /// The signal's number.
        signal: i32,
    },
    /// `mark_victim`: the OOM killer chose a victim.
    OomVictim {
        /// The process it will kill.
        victim: Pid,
    },
    /// `cgroup_mkdir`: a cgroup made.
    CgroupMade {
        /// Its path in the hierarchy.
        path: String,
    },
    /// `cgroup_rmdir`: a cgroup removed.
    CgroupRemoved {
        /// Its path in the hierarchy.
        path: String,
    },
    /// `cgroup_attach_task`: a process moved by a write to `cgroup.procs` (a child born in
    /// its cgroup with `CLONE_INTO_CGROUP` is never attached).
    Moved {
        /// The process moved.
        pid: Pid,
        /// The cgroup it is in now.
        path: String,
    },
    /// `cgroup_freeze` and `cgroup_unfreeze`: `cgroup.freeze` written.
    Freeze {
        /// The cgroup.
        path: String,
        /// 1 written (freeze) or 0 (thaw).
        frozen: bool,
    },
    /// `cgroup_notify_frozen`: `cgroup.events` frozen changed.
    FrozenNow {
        /// The cgroup.
        path: String,
        /// Its new value.
        frozen: bool,
    },
    /// `cgroup_notify_populated`: `cgroup.events` populated changed: the cgroup now holds
    /// processes, or none.
    Populated {
        /// The cgroup.
        path: String,
        /// Its new value.
        populated: bool,
    },
    /// `raw_syscalls:sys_exit` of a call that makes a process, refused (the trace is filtered
    /// to these).
    Refused {
        /// The system call's number.
        syscall: i64,
        /// Its errno.
        errno: i32,
    },
    /// Any other event.
    Other {
        /// Its name.
        event: String,
        /// Its fields, as written.
        fields: String,
    },
}

/// Reads one line of an instance's `trace` file; `None` for a header line (`#`), a line about
/// lost events (`CPU:`), or one it cannot read.
pub fn parse_line(line: &str) -> Option<Event> {
    if line.starts_with('#') || line.trim_start().starts_with("CPU:") {
        return None;
    }
    // "  comm-pid  [cpu]  seconds: event: fields": the first "[digits]" after a "-digits".
    let (task_part, after_cpu) = split_at_cpu(line)?;
    let (_, pid) = task_part.trim().rsplit_once('-')?;
    let task = Pid::from_raw(pid.parse().ok()?);
    let (seconds, rest) = after_cpu.trim_start().split_once(": ")?;
    let at = parse_seconds(seconds)?;
    let (event, fields) = rest.split_once(": ").unwrap_or((rest, ""));
    Some(Event { at, task, what: what(event.trim(), fields.trim_end()) })
}

/// Splits a line at its `[CPU]` field: what comes before (the command name and pid) and after.
fn split_at_cpu(line: &str) -> Option<(&str, &str)> {
    let mut from = 0;
    while let Some(open) = line[from..].find('[').map(|i| from + i) {
        let close = open + line[open..].find(']')?;
        let inside = &line[open + 1..close];
        let before = line[..open].trim_end();
        let after_dash = before.rsplit_once('-').map(|(_, pid)| pid);
        let pid_before =
            after_dash.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !inside.is_empty() && inside.bytes().all(|b| b.is_ascii_digit()) && pid_before {
            return Some((&line[..open], &line[close + 1..]));
        }
        from = close;
    }
    None
}

/// `104.623870` (seconds and microseconds) as a duration.
fn parse_seconds(text: &str) -> Option<Duration> {
    let (seconds, fraction) = text.trim().split_once('.')?;
    let micros: u64 = format!("{fraction:0<6}")[..6].parse().ok()?;
    Some(Duration::from_secs(seconds.parse().ok()?) + Duration::from_micros(micros))
}

/// The values of `names` in `fields` (`name=value name=value ...`), where `names` are all of
/// the event's printed names, in the order of its format: a value runs up to the next name,
/// so that one with spaces (a command name) stays whole. A name missing from the line (a
/// field an older kernel lacks) leaves its value empty.
fn values<'a, const N: usize>(fields: &'a str, names: [&str; N]) -> [&'a str; N] {
    // Where each name's value starts, and where its " name=" begins, searched in order.
    let mut spans: [Option<(usize, usize)>; N] = [None; N];
    let mut from = 0;
    for (i, name) in names.iter().enumerate() {
        let found = if from == 0 && fields.starts_with(&format!("{name}=")) {
            Some(0)
        } else {
            fields[from..].find(&format!(" {name}=")).map(|at| from + at + 1)
        };
        if let Some(at) = found {
            spans[i] = Some((at, at + name.len() + 1));
            from = at + name.len() + 1;
        }
    }
    let mut found = [""; N];
    for i in 0..N {
        let Some((_, value)) = spans[i] else { continue };
        let end = spans[i + 1..].iter().flatten().map(|(at, _)| at - 1).next();
        found[i] = fields[value..end.unwrap_or(fields.len())].trim();
    }
    found
}

fn pid(text: &str) -> Pid {
    Pid::from_raw(text.parse().unwrap_or(0))
}

fn number(text: &str) -> i32 {
    text.parse().unwrap_or(0)
}

/// What the fields of `event` say.
fn what(event: &str, fields: &str) -> What {
    match event {
        "tracing_mark_write" => {
            let born = fields.strip_prefix(crate::process::say::BORN_IN_PREFIX);
            match born.and_then(|rest| rest.split_once(" born in ")) {
                Some((child, path)) => What::BornIn { child: pid(child), path: path.to_string() },
                None => What::Story(fields.to_string()),
            }
        }
        "task_newtask" => {
            let [child, _, flags, _] =
                values(fields, ["pid", "comm", "clone_flags", "oom_score_adj"]);
            let flags = u64::from_str_radix(flags, 16).unwrap_or(0);
            What::NewTask { child: pid(child), flags }
        }
        "sched_process_fork" => {
            let [_, _, _, child] = values(fields, ["comm", "pid", "child_comm", "child_pid"]);
            What::Forked { child: pid(child) }
        }
        "sched_process_exec" => {
            let [filename, _, _] = values(fields, ["filename", "pid", "old_pid"]);
            What::Exec { filename: filename.to_string() }
        }
        "sched_process_exit" => {
            let [_, _, _, group_dead] = values(fields, ["comm", "pid", "prio", "group_dead"]);
            let group_dead = match group_dead {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            };
            What::Exit { group_dead }
        }
        "sched_process_wait" => {
            let [_, waited, _] = values(fields, ["comm", "pid", "prio"]);
            let waited = pid(waited);
            What::Wait { pid: (waited.as_raw() > 0).then_some(waited) }
        }
        "signal_generate" => {
            let [sig, _, code, _, to, _, result] =
                values(fields, ["sig", "errno", "code", "comm", "pid", "grp", "res"]);
            What::Signal {
                signal: number(sig),
                to: pid(to),
                code: number(code),
                result: number(result),
            }
        }
        "signal_deliver" => {
            let [sig, ..] = values(fields, ["sig", "errno", "code", "sa_handler", "sa_flags"]);
            What::Delivered { signal: number(sig) }
        }
        "mark_victim" => {
            // The short form of 5.10 ("pid=N") and the long one of later kernels alike: the
            // pid comes first.
            let victim =
                fields.strip_prefix("pid=").and_then(|rest| rest.split_whitespace().next());
            What::OomVictim { victim: pid(victim.unwrap_or("0")) }
        }
        "cgroup_mkdir" | "cgroup_rmdir" | "cgroup_freeze" | "cgroup_unfreeze" => {
            let path = values(fields, ["root", "id", "level", "path"])[3].to_string();
            match event {
                "cgroup_mkdir" => What::CgroupMade { path },
                "cgroup_rmdir" => What::CgroupRemoved { path },
                _ => What::Freeze { path, frozen: event == "cgroup_freeze" },
            }
        }
        "cgroup_notify_frozen" | "cgroup_notify_populated" => {
            let [_, _, _, path, val] = values(fields, ["root", "id", "level", "path", "val"]);
            let (path, on) = (path.to_string(), val == "1");
            match event {
                "cgroup_notify_frozen" => What::FrozenNow { path, frozen: on },
                _ => What::Populated { path, populated: on },
            }
        }
        "cgroup_attach_task" => {
            let [_, _, _, path, moved, _] =
                values(fields, ["dst_root", "dst_id", "dst_level", "dst_path", "pid", "comm"]);
            What::Moved { pid: pid(moved), path: path.to_string() }
        }
        "sys_exit" => {
            // "NR 435 = -11": the call's number and what it returned.
            let (nr, ret) = fields.trim_start_matches("NR ").split_once(" = ").unwrap_or(("", ""));
            let ret: i64 = ret.trim().parse().unwrap_or(0);
            What::Refused { syscall: nr.trim().parse().unwrap_or(-1), errno: (-ret) as i32 }
        }
        _ => What::Other { event: event.to_string(), fields: fields.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Event {
        parse_line(text).unwrap_or_else(|| panic!("not read: {text}"))
    }

    #[test]
    fn a_line_is_read_from_its_cpu_field_whatever_the_command_name_holds() {
        let e = line("  my prog-name-2-147     [001]   104.623870: sched_process_exit: comm=my prog-name-2 pid=147 prio=120");
        assert_eq!(e.task, Pid::from_raw(147));
        assert_eq!(e.at, Duration::from_micros(104_623_870));
        assert_eq!(e.what, What::Exit { group_dead: None });
        let newer =
            line(" x-9 [000] 1.5: sched_process_exit: comm=x pid=9 prio=120 group_dead=true");
        assert_eq!(newer.what, What::Exit { group_dead: Some(true) });
        assert_eq!(newer.at, Duration::from_millis(1500));
    }

    #[test]
    fn markers_signals_and_the_oom_killer_read_as_they_are_meant() {
        let marker = line("   fork_waitpid-150     [000]     5.000100: tracing_mark_write: parent[150]: 1. calling fork()");
        assert_eq!(marker.what, What::Story("parent[150]: 1. calling fork()".into()));
        let born = line(
            "  p-150 [000] 5.1: tracing_mark_write: clone3: child 151 born in /sys/fs/cgroup/a b",
        );
        assert_eq!(
            born.what,
            What::BornIn { child: Pid::from_raw(151), path: "/sys/fs/cgroup/a b".into() }
        );
        let kill = line("  c-147 [001] 2.000001: signal_generate: sig=9 errno=0 code=128 comm=c d pid=147 grp=1 res=0");
        assert_eq!(
            kill.what,
            What::Signal { signal: 9, to: Pid::from_raw(147), code: 128, result: 0 }
        );
        let old = line("  c-147 [001] 2.0: mark_victim: pid=147");
        let new = line("  c-147 [001] 2.0: mark_victim: pid=147 comm=c total-vm=4968kB anon-rss=0kB file-rss:0kB shmem-rss:464kB uid=0 pgtables=44kB oom_score_adj=0");
        assert_eq!(old.what, What::OomVictim { victim: Pid::from_raw(147) });
        assert_eq!(new.what, old.what);
    }

    #[test]
    fn cgroups_forks_and_refusals_read_as_they_are_meant() {
        let moved = line("  p-146 [000] 3.0: cgroup_attach_task: dst_root=0 dst_id=42 dst_level=1 dst_path=/clone-cgroup-146-memory-max pid=147 comm=c");
        assert_eq!(
            moved.what,
            What::Moved { pid: Pid::from_raw(147), path: "/clone-cgroup-146-memory-max".into() }
        );
        let made = line(
            "  p-146 [000] 3.0: cgroup_mkdir: root=0 id=42 level=1 path=/clone-cgroup-146-zombies",
        );
        assert_eq!(made.what, What::CgroupMade { path: "/clone-cgroup-146-zombies".into() });
        let new = line(
            "  p-146 [000] 3.0: task_newtask: pid=147 comm=p clone_flags=200000011 oom_score_adj=0",
        );
        assert_eq!(new.what, What::NewTask { child: Pid::from_raw(147), flags: 0x2_0000_0011 });
        let refused = line("  p-146 [000] 3.0: sys_exit: NR 435 = -11");
        assert_eq!(refused.what, What::Refused { syscall: 435, errno: 11 });
        let wait = line("  p-146 [000] 3.0: sched_process_wait: comm=p pid=0 prio=120");
        assert_eq!(wait.what, What::Wait { pid: None });
        let real = line("            init-1       [001]      4.679235: task_newtask: pid=114 comm=init clone_flags=1200000 oom_score_adj=0");
        assert_eq!(real.what, What::NewTask { child: Pid::from_raw(114), flags: 0x120_0000 });
        let fork = line("  p q-146 [000] 3.0: sched_process_fork: comm=p q pid=146 child_comm=p q child_pid=147");
        assert_eq!(fork.what, What::Forked { child: Pid::from_raw(147) });
        assert_eq!(parse_line("# tracer: nop"), None);
        assert_eq!(parse_line("CPU:1 [LOST EVENTS]"), None);
    }
}
