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

/// `CLONE_THREAD`, as `task_newtask` shows it.
const CLONE_THREAD: u64 = 0x10000;

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
    roles: BTreeMap<Pid, Role>,
    /// The names the story's lines give their writers.
    names: BTreeMap<Pid, String>,
    /// The time of the first event: the timeline's zero.
    start: Duration,
}

impl Timeline {
    /// The timeline of `events`, the program being `parent`.
    pub fn new(events: Vec<Event>, parent: Pid) -> Timeline {
        let mut roles = BTreeMap::from([(parent, Role::Parent)]);
        for event in &events {
            if let What::NewTask { child, flags } = event.what {
                let role = if flags & CLONE_THREAD != 0 {
                    Role::Thread
                } else {
                    match roles.get(&event.task) {
                        Some(Role::Parent) => Role::Descendant(1),
                        Some(Role::Descendant(n)) => Role::Descendant(n + 1),
                        Some(Role::Thread) => Role::Descendant(1),
                        _ => Role::Other,
                    }
                };
                roles.entry(child).or_insert(role);
            }
        }
        // A kernel without task_newtask still has sched_process_fork.
        for event in &events {
            if let What::Forked { child } = event.what {
                let role = match roles.get(&event.task) {
                    Some(Role::Parent) => Role::Descendant(1),
                    Some(Role::Descendant(n)) => Role::Descendant(n + 1),
                    _ => Role::Other,
                };
                roles.entry(child).or_insert(role);
            }
        }
        // "manager[129]: 3. ..." names its writer; the number in brackets is the pid the
        // writer sees, which in a new PID namespace is not the trace's.
        let mut names = BTreeMap::new();
        for event in &events {
            if let What::Story(line) = &event.what {
                if let Some(name) = story_writer(line) {
                    names.entry(event.task).or_insert_with(|| name.to_string());
                }
            }
        }
        let start = events.first().map_or(Duration::ZERO, |e| e.at);
        Timeline { events, roles, names, start }
    }

    /// `pid` with its role.
    pub fn process(&self, pid: Pid) -> Process {
        let role = match self.roles.get(&pid) {
            Some(role) => *role,
            None if pid.as_raw() == 1 => Role::Init,
            None => Role::Other,
        };
        Process { pid, role, name: self.names.get(&pid).cloned() }
    }

    /// The processes of the story (those it made, and itself), in the order they appear.
    pub fn processes(&self) -> Vec<Process> {
        let mut seen: Vec<Pid> = Vec::new();
        for event in &self.events {
            if !seen.contains(&event.task) {
                seen.push(event.task);
            }
            if let What::Forked { child } | What::NewTask { child, .. } = event.what {
                if !seen.contains(&child) {
                    seen.push(child);
                }
            }
        }
        seen.into_iter().map(|pid| self.process(pid)).collect()
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

    /// What an event says, in words, its processes named.
    pub fn words(&self, event: &Event) -> String {
        match &event.what {
            What::Story(line) => story_text(line).to_string(),
            What::NewTask { child, flags } => {
                format!("makes {}{}", self.process(*child), flag_words(*flags))
            }
            What::BornIn { child, path } => format!("{} was born in {path}", self.process(*child)),
            What::Forked { child } => format!("made {}", self.process(*child)),
            What::Exec { filename } => {
                // The file's name, not the folders it lies in: they say where the program was
                // built, not what the kernel did.
                let name = filename.rsplit('/').next().unwrap_or(filename);
                format!("execs a new program: {name}")
            }
            What::Exit { group_dead: Some(false) } => "ends (its thread group lives on)".into(),
            What::Exit { .. } => "ends".into(),
            What::Wait { pid: Some(pid) } => format!("waits for {}", self.process(*pid)),
            What::Wait { pid: None } => "waits for any child".into(),
            What::Signal { signal, to, code, result } => {
                let from = match *code {
                    128 => ", from the kernel",
                    _ => "",
                };
                // The kernel's TRACE_SIGNAL_* results (include/trace/events/signal.h).
                let became = match (*result, *signal) {
                    (0, _) => "",
                    (1, libc::SIGCONT) => " (it continues as it is sent; nothing is queued)",
                    (1, _) => " (not queued: its action is to ignore it)",
                    (2, _) => " (one is pending already: the two are one)",
                    (3, _) => " (not queued: the queue is full)",
                    (4, _) => " (queued without its information)",
                    _ => " (not queued)",
                };
                format!("{} to {}{from}{became}", signal_name(*signal), self.process(*to))
            }
            What::Delivered { signal } => format!("takes {}", signal_name(*signal)),
            What::OomVictim { victim } => {
                format!("the OOM killer chose {}", self.process(*victim))
            }
            What::CgroupMade { path } => format!("made cgroup {path}"),
            What::CgroupRemoved { path } => format!("removed cgroup {path}"),
            What::Moved { pid, path } => format!("moved {} into {path}", self.process(*pid)),
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

    /// The timeline in words, one line an event, headed by what it is: the milliseconds, the
    /// process, the event and its words, two spaces or more apart.
    pub fn lines(&self) -> Vec<String> {
        let mut lines =
            vec![format!("{:>10}  {:<22}  {:<23}  {}", "ms", "process", "event", "what")];
        for event in &self.events {
            lines.push(format!(
                "{:>10.3}  {:<22}  {:<23}  {}",
                self.ms(event),
                self.process(event.task).to_string(),
                Timeline::kind(event),
                self.words(event)
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
        assert_eq!(timeline.process(c).to_string(), "child 11");
        assert!(timeline.lines()[3].ends_with("makes child 11, with CLONE_PIDFD"));
        assert_eq!(timeline.process(g).to_string(), "manager 12");
        assert_eq!(timeline.process(Pid::from_raw(1)).to_string(), "init 1");
        let lines = timeline.lines();
        assert!(lines[1].contains("parent 10") && lines[1].ends_with("1. go"), "{lines:?}");
        assert!(lines[5].ends_with("SIGKILL to manager 12, from the kernel"), "{lines:?}");
        assert!(lines[6].ends_with("clone3 refused: EAGAIN"), "{lines:?}");
        assert!(lines[6].trim_start().starts_with("4.000"), "{lines:?}");
    }
}
