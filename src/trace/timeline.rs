//! A trace as a timeline in words: the story's lines and the kernel's events in one order,
//! each process named by its role in the story.
//!
//! ```text
//!        ms  process            event                   what
//!     0.000  parent 146         (story)                 2. clone() returned child 147
//!     0.412  parent 146         sched_process_fork      made child 147
//!   101.230  parent 146         cgroup_attach_task      moved child 147 into /clone-cgroup-146-memory-max
//!   203.871  child 147          signal_generate         SIGKILL to child 147, from the kernel
//!   203.874  child 147          mark_victim             the OOM killer chose child 147
//! ```
//!
//! Times are milliseconds from the first event. A process is named by what it is to the
//! program: `parent` (the program itself), `child`, `grandchild`, `great-grandchild` after
//! the generations of forks the trace saw, `thread` for a `CLONE_THREAD` task, `init` for pid 1,
//! `process N` for any other; with its pid.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::{call_name, Event, What};

/// `CLONE_THREAD` and `CLONE_PARENT`, as `task_newtask` shows them.
const CLONE_THREAD: u64 = 0x10000;
const CLONE_PARENT: u64 = 0x8000;

/// What a process is to the program, for the timeline's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The program itself.
    Parent,
    /// Made by the parent (generation 1), by a child (2), ...
    Descendant(u32),
    /// A thread (`CLONE_THREAD`) of one of ours.
    Thread,
    /// Pid 1, where orphans go.
    Init,
    /// Any other process.
    Other,
}

/// A process of the timeline: its pid, its role, and the name the story gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    /// Its pid, in the first PID namespace.
    pub pid: Pid,
    /// What it is to the program.
    pub role: Role,
    /// What its own lines of the story call it (`manager` for `manager[129]: ...`), where
    /// it wrote any.
    pub name: Option<String>,
    /// The index of the event that made it, in the timeline; `None` for the program itself
    /// and any process the trace did not see born. A pid freed and given again names two
    /// processes, told apart by their births.
    pub born: Option<usize>,
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pid = self.pid;
        if let Some(name) = &self.name {
            return write!(f, "{name} {pid}");
        }
        match self.role {
            Role::Parent => write!(f, "parent {pid}"),
            Role::Descendant(1) => write!(f, "child {pid}"),
            Role::Descendant(2) => write!(f, "grandchild {pid}"),
            Role::Descendant(3) => write!(f, "great-grandchild {pid}"),
            Role::Descendant(n) => write!(f, "descendant {pid} ({n} generations down)"),
            Role::Thread => write!(f, "thread {pid}"),
            Role::Init => write!(f, "init {pid}"),
            Role::Other => write!(f, "process {pid}"),
        }
    }
}

/// The events of a trace with everyone in it named.
pub struct Timeline {
    /// The trace's events, in its order.
    pub events: Vec<Event>,
    /// Each pid's births, in order: the event's index and the role of the process made.
    births: BTreeMap<Pid, Vec<(usize, Role)>>,
    /// The names the story's lines give their writers, by pid and birth.
    names: BTreeMap<(Pid, Option<usize>), String>,
    parent: Pid,
    /// The time of the first event: the timeline's zero.
    start: Duration,
}

impl Timeline {
    /// The timeline of `events`, the program being `parent`.
    pub fn new(events: Vec<Event>, parent: Pid) -> Timeline {
        let mut timeline = Timeline {
            events,
            births: BTreeMap::new(),
            names: BTreeMap::new(),
            parent,
            start: Duration::ZERO,
        };
        timeline.start = timeline.events.first().map_or(Duration::ZERO, |e| e.at);
        // Births, in one pass: task_newtask makes a process; sched_process_fork (which follows
        // it, and which a kernel without task_newtask still has) only where no birth of that
        // pid is already alive.
        let mut alive: BTreeMap<Pid, bool> = BTreeMap::new();
        for i in 0..timeline.events.len() {
            let event = &timeline.events[i];
            let (child, flags) = match event.what {
                What::NewTask { child, flags } => (child, Some(flags)),
                What::Forked { child } if !alive.get(&child).copied().unwrap_or(false) => {
                    (child, None)
                }
                What::Exit { .. } => {
                    alive.insert(event.task, false);
                    continue;
                }
                _ => continue,
            };
            let maker = timeline.process_at(event.task, i).role;
            let role = match (maker, flags) {
                (_, Some(flags)) if flags & CLONE_THREAD != 0 => Role::Thread,
                // CLONE_PARENT: a sibling of its maker, its maker's parent's child.
                (Role::Parent, Some(flags)) if flags & CLONE_PARENT != 0 => Role::Other,
                (Role::Descendant(n), Some(flags)) if flags & CLONE_PARENT != 0 => {
                    Role::Descendant(n)
                }
                (Role::Parent | Role::Thread, _) => Role::Descendant(1),
                (Role::Descendant(n), _) => Role::Descendant(n + 1),
                _ => Role::Other,
            };
            timeline.births.entry(child).or_default().push((i, role));
            alive.insert(child, true);
        }
        // "manager[129]: 3. ..." names its writer; the number in brackets is the pid the
        // writer sees, which in a new PID namespace is not the trace's.
        for i in 0..timeline.events.len() {
            let event = &timeline.events[i];
            if let What::Story(line) = &event.what {
                if let Some(name) = story_writer(line) {
                    let key = (event.task, timeline.birth_of(event.task, i));
                    timeline.names.entry(key).or_insert_with(|| name.to_string());
                }
            }
        }
        timeline
    }

    /// What a reader of this timeline should know beside its events: pids given to more than
    /// one process, whose later process the trace may have lost.
    pub fn notes(&self) -> Vec<String> {
        let reused: Vec<String> = self
            .births
            .iter()
            .filter(|(_, births)| births.len() > 1)
            .map(|(pid, _)| pid.to_string())
            .collect();
        if reused.is_empty() {
            return Vec::new();
        }
        vec![format!(
            "pid {} went to more than one process in this run: the trace forgets a pid when the \
             task that had it is freed (sched_process_free, an RCU grace period after its reaping), \
             which can come after the pid's next process was born; that process's later events \
             may be missing",
            reused.join(", ")
        )]
    }

    /// The birth of the process `pid` names at event `at`: the last before it (or the first,
    /// for an event before any, the process's own birth events included).
    pub fn birth_of(&self, pid: Pid, at: usize) -> Option<usize> {
        let births = self.births.get(&pid)?;
        births.iter().rev().find(|(i, _)| *i <= at).or(births.first()).map(|(i, _)| *i)
    }

    /// The process `pid` names at event `at`, with its role.
    pub fn process_at(&self, pid: Pid, at: usize) -> Process {
        let born = self.birth_of(pid, at);
        let role = match born {
            Some(i) => self.births[&pid].iter().find(|(b, _)| *b == i).map_or(Role::Other, |r| r.1),
            None if pid == self.parent => Role::Parent,
            None if pid.as_raw() == 1 => Role::Init,
            None => Role::Other,
        };
        Process { pid, role, name: self.names.get(&(pid, born)).cloned(), born }
    }

    /// The processes of the story (those it made, and itself), in the order they appear.
    pub fn processes(&self) -> Vec<Process> {
        let mut seen: Vec<Process> = Vec::new();
        for (i, event) in self.events.iter().enumerate() {
            let mut found = vec![self.process_at(event.task, i)];
            if let What::Forked { child } | What::NewTask { child, .. } = event.what {
                found.push(self.process_at(child, i));
            }
            for process in found {
                if !seen.iter().any(|p| p.pid == process.pid && p.born == process.born) {
                    seen.push(process);
                }
            }
        }
        seen
    }

    /// Milliseconds from the first event.
    pub fn ms(&self, event: &Event) -> f64 {
        event.at.saturating_sub(self.start).as_secs_f64() * 1000.0
    }

    /// The kernel's name of an event; `(story)` for a line of the story, `(clone3)` for the
    /// program's word on a birth into a cgroup. One word each: a line of the timeline is its
    /// columns, each two spaces or more from the next.
    pub fn kind(event: &Event) -> &str {
        match &event.what {
            What::Story(_) => "(story)",
            What::BornIn { .. } => "(clone3)",
            What::NewTask { .. } => "task_newtask",
            What::Forked { .. } => "sched_process_fork",
            What::Exec { .. } => "sched_process_exec",
            What::Exit { .. } => "sched_process_exit",
            What::Wait { .. } => "sched_process_wait",
            What::Signal { .. } => "signal_generate",
            What::Delivered { .. } => "signal_deliver",
            What::OomVictim { .. } => "mark_victim",
            What::CgroupMade { .. } => "cgroup_mkdir",
            What::CgroupRemoved { .. } => "cgroup_rmdir",
            What::Moved { .. } => "cgroup_attach_task",
            What::Freeze { frozen: true, .. } => "cgroup_freeze",
            What::Freeze { frozen: false, .. } => "cgroup_unfreeze",
            What::FrozenNow { .. } => "cgroup_notify_frozen",
            What::Populated { .. } => "cgroup_notify_populated",
            What::Refused { .. } => "sys_exit",
            What::Other { event, .. } => event,
        }
    }

    /// What event `i` says, in words, its processes named.
    pub fn words(&self, i: usize) -> String {
        let event = &self.events[i];
        let process = |pid: Pid| self.process_at(pid, i);
        match &event.what {
            What::Story(line) => story_text(line).to_string(),
            What::NewTask { child, flags } => {
                format!("makes {}{}", process(*child), flag_words(*flags))
            }
            What::BornIn { child, path } => format!("{} was born in {path}", process(*child)),
            What::Forked { child } => format!("made {}", process(*child)),
            What::Exec { filename } => {
                // The file's name, not the folders it lies in: they say where the program was
                // built, not what the kernel did.
                let name = filename.rsplit('/').next().unwrap_or(filename);
                format!("execs a new program: {name}")
            }
            What::Exit { group_dead: Some(false) } => "ends (its thread group lives on)".into(),
            What::Exit { .. } => "ends".into(),
            What::Wait { pid: Some(pid) } => format!("waits for {}", process(*pid)),
            What::Wait { pid: None } => "waits for any child".into(),
            What::Signal { signal, to, code, result } => {
                let from = match *code {
                    128 => ", from the kernel",
                    _ => "",
                };
                // The kernel's TRACE_SIGNAL_* results (include/trace/events/signal.h). Not
                // queued (1) is prepare_signal's answer: the process is dying already
                // (SIGNAL_GROUP_EXIT: "drop the signal"), or the signal is ignored (SIG_IGN,
                // or a default of ignoring it, unblocked). SIGKILL cannot be ignored.
                let dying = *signal == libc::SIGKILL || self.dying_before(i, *to);
                let became = match (*result, *signal) {
                    (0, _) => "",
                    (1, _) if dying => " (not queued: it is dying already)",
                    (1, libc::SIGCONT) => " (it continues as it is sent; nothing is queued)",
                    (1, libc::SIGCHLD | libc::SIGURG | libc::SIGWINCH) => {
                        " (not queued: ignored, as its default action is)"
                    }
                    (1, _) => " (not queued: ignored, or it is dying already)",
                    (2, _) => " (one is pending already: this one merges with it)",
                    (3, _) => " (not queued: the queue is full)",
                    (4, _) => " (queued without its information)",
                    _ => " (not queued)",
                };
                format!("{} to {}{from}{became}", signal_name(*signal), process(*to))
            }
            What::Delivered { signal } => format!("takes {}", signal_name(*signal)),
            What::OomVictim { victim } => {
                format!("the OOM killer chose {}", process(*victim))
            }
            What::CgroupMade { path } => format!("made cgroup {path}"),
            What::CgroupRemoved { path } => format!("removed cgroup {path}"),
            // cgroup_attach_task fires once the write to cgroup.procs is done, for the group's
            // leader, even where the migration skipped it for having ended (PF_EXITING).
            What::Moved { pid, path } if self.ended_before(i, *pid) => {
                format!(
                    "wrote {}'s pid to {path}'s cgroup.procs, but it had ended: nothing moved",
                    process(*pid)
                )
            }
            What::Moved { pid, path } => format!("moved {} into {path}", process(*pid)),
            What::Freeze { path, frozen } => {
                format!("{} {path}", if *frozen { "freezes" } else { "thaws" })
            }
            What::FrozenNow { path, frozen } => {
                format!("{path} is {}", if *frozen { "frozen" } else { "thawed" })
            }
            What::Populated { path, populated: true } => {
                format!("{path} is populated: it holds a process")
            }
            What::Populated { path, populated: false } => {
                format!("{path} is empty: it holds no process")
            }
            What::Refused { syscall, errno } => {
                format!("{} refused: {:?}", call_name(*syscall), Errno::from_raw(*errno))
            }
            What::Other { fields, .. } => fields.clone(),
        }
    }

    /// Whether `pid`, as event `at` names it, was seen to end before it.
    pub fn ended_before(&self, at: usize, pid: Pid) -> bool {
        let born = self.birth_of(pid, at).unwrap_or(0);
        self.events[born..at].iter().any(|e| e.task == pid && matches!(e.what, What::Exit { .. }))
    }

    /// Whether `pid`, as event `at` names it, was seen to end, or to be sent SIGKILL, before.
    fn dying_before(&self, at: usize, pid: Pid) -> bool {
        let born = self.birth_of(pid, at).unwrap_or(0);
        self.events[born..at].iter().any(|e| match e.what {
            What::Exit { .. } => e.task == pid,
            What::Signal { signal: libc::SIGKILL, to, .. } => to == pid,
            _ => false,
        })
    }

    /// The timeline in words, one line an event, headed by what it is: the milliseconds, the
    /// process, the event and its words, two spaces or more apart.
    pub fn lines(&self) -> Vec<String> {
        let mut lines =
            vec![format!("{:>10}  {:<22}  {:<23}  {}", "ms", "process", "event", "what")];
        for (i, event) in self.events.iter().enumerate() {
            lines.push(format!(
                "{:>10.3}  {:<22}  {:<23}  {}",
                self.ms(event),
                self.process_at(event.task, i).to_string(),
                Timeline::kind(event),
                self.words(i)
            ));
        }
        lines
    }
}

/// A new task's clone flags in words: `, with CLONE_PIDFD | CLONE_INTO_CGROUP`. (The signal
/// its end sends its parent is not among them: the kernel keeps it apart, in
/// `kernel_clone_args.exit_signal`, and the event does not show it.)
fn flag_words(flags: u64) -> String {
    match flags {
        0 => String::new(),
        flags => format!(", with {}", crate::flags::Flags(flags)),
    }
}

/// The name a story's line gives its writer: `manager` for `manager[129]: 3. ...`.
pub fn story_writer(line: &str) -> Option<&str> {
    let (who, _) = line.split_once("]: ")?;
    let (name, pid) = who.split_once('[')?;
    let plain =
        |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    (plain(name) && pid.bytes().all(|b| b.is_ascii_digit())).then_some(name)
}

/// A story's line without its `parent[146]: ` prefix: the timeline names the process itself.
pub fn story_text(line: &str) -> &str {
    match line.split_once("]: ") {
        Some((who, text)) if !who.contains(' ') => text,
        _ => line,
    }
}

/// `SIGKILL` for 9; the number for a signal without a name here (a real-time one).
pub fn signal_name(number: i32) -> String {
    Signal::try_from(number).map_or_else(|_| format!("signal {number}"), |s| s.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64, task: i32, what: What) -> Event {
        Event { at: Duration::from_millis(1000 + ms), task: Pid::from_raw(task), what }
    }

    #[test]
    fn roles_follow_the_forks_and_words_name_them() {
        let (p, c, g) = (Pid::from_raw(10), Pid::from_raw(11), Pid::from_raw(12));
        let events = vec![
            at(0, 10, What::Story("parent[10]: 1. go".into())),
            at(0, 12, What::Story("manager[1]: 3. in a new PID namespace".into())),
            at(1, 10, What::NewTask { child: c, flags: 0x1000 }),
            at(2, 11, What::NewTask { child: g, flags: 0x11 }),
            at(3, 12, What::Signal { signal: 9, to: g, code: 128, result: 0 }),
            at(4, 11, What::Refused { syscall: libc::SYS_clone3, errno: libc::EAGAIN }),
        ];
        let timeline = Timeline::new(events, p);
        assert_eq!(timeline.process_at(c, 9).to_string(), "child 11");
        assert!(timeline.lines()[3].ends_with("makes child 11, with CLONE_PIDFD"));
        assert_eq!(timeline.process_at(g, 9).to_string(), "manager 12");
        assert_eq!(timeline.process_at(Pid::from_raw(1), 0).to_string(), "init 1");
        let lines = timeline.lines();
        assert!(lines[1].contains("parent 10") && lines[1].ends_with("1. go"), "{lines:?}");
        assert!(lines[5].ends_with("SIGKILL to manager 12, from the kernel"), "{lines:?}");
        assert!(lines[6].ends_with("clone3 refused: EAGAIN"), "{lines:?}");
        assert!(lines[6].trim_start().starts_with("4.000"), "{lines:?}");
    }

    #[test]
    fn a_pid_given_twice_is_two_processes_and_clone_parent_makes_a_sibling() {
        let (p, c, g) = (Pid::from_raw(10), Pid::from_raw(11), Pid::from_raw(12));
        let events = vec![
            at(0, 10, What::NewTask { child: c, flags: 0 }),
            at(1, 11, What::NewTask { child: g, flags: CLONE_PARENT }),
            at(2, 11, What::Exit { group_dead: None }),
            at(3, 10, What::Moved { pid: c, path: "/x".into() }),
            at(4, 12, What::NewTask { child: c, flags: 0 }),
            at(5, 11, What::Exit { group_dead: None }),
        ];
        let timeline = Timeline::new(events, p);
        assert_eq!(timeline.process_at(g, 1).role, Role::Descendant(1), "CLONE_PARENT: a sibling");
        assert_eq!(timeline.process_at(c, 2).born, Some(0));
        assert_eq!(timeline.process_at(c, 5).born, Some(4));
        assert_eq!(timeline.process_at(c, 5).role, Role::Descendant(2));
        assert_eq!(timeline.processes().len(), 4, "{:?}", timeline.processes());
        assert!(timeline.notes()[0].starts_with("pid 11 went to more than one process"));
        let lines = timeline.lines();
        assert!(
            lines[4].ends_with(
                "wrote child 11's pid to /x's cgroup.procs, but it had ended: nothing moved"
            ),
            "{lines:?}"
        );
        assert!(lines[5].ends_with("makes grandchild 11"), "{lines:?}");
    }
}
