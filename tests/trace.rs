//! `--trace`: every lesson, traced, ends as it does untraced, and the kernel's record of it
//! holds the events the lesson names (the table in
//! [`every_lesson_traced_ends_as_untraced_and_its_trace_holds_its_events`]); nothing is left in
//! tracefs on any path, an interruption part-way included; and `--trace` is refused, before
//! the story, where it cannot work.
//!
//! A claim on an event this kernel does not trace (the trace says "this kernel has no ...")
//! is not checked: the gate is the event, never a version.

use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};

mod common;
use common::*;

/// One line of a run's timeline: `ms  process  event  what`.
#[derive(Debug)]
struct Row {
    process: String,
    event: String,
    what: String,
}

/// A traced run and its timeline.
struct Traced {
    run: Run,
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Traced {
    /// Runs `name --trace ARGS`; fails the test unless the trace was printed whole, before the
    /// summary line, and nothing was left behind.
    fn run(name: &str, args: &[&str]) -> Traced {
        let mut all = vec!["--trace"];
        all.extend_from_slice(args);
        let run = run(name, &all);
        run.assert_nothing_left();
        let lines: Vec<&str> = run.stdout.lines().collect();
        let start = lines.iter().position(|l| l.starts_with("--- the kernel's trace of this run"));
        let end = lines.iter().position(|l| *l == "--- end of the trace");
        let (Some(start), Some(end)) = (start, end) else {
            panic!("{name} printed no trace: {run}");
        };
        assert_eq!(end + 2, lines.len(), "the summary line must follow the trace: {run}");
        let mut notes = Vec::new();
        let mut rows = Vec::new();
        for line in &lines[start + 1..end] {
            if let Some(note) = line.trim_start().strip_prefix("note: ") {
                notes.push(note.to_string());
            } else if !line.trim_start().starts_with("ms ") {
                rows.push(parse_row(line).unwrap_or_else(|| panic!("unreadable row {line:?}")));
            }
        }
        Traced { run, rows, notes }
    }

    /// Whether this kernel traces `event` (the trace names each it lacks).
    fn has(&self, event: &str) -> bool {
        !self.notes.iter().any(|n| {
            n.starts_with("this kernel has no ") && n.ends_with(&format!(":{event} event"))
        })
    }

    /// The index of the first row matching `event` and words containing `what`, from `after`.
    fn find_from(&self, after: usize, event: &str, what: &str) -> Option<usize> {
        (after..self.rows.len()).find(|&i| {
            let row = &self.rows[i];
            row.event == event && row.what.contains(what)
        })
    }

    fn find(&self, event: &str, what: &str) -> Option<usize> {
        self.find_from(0, event, what)
    }

    /// Like [`find`](Self::find), or an error naming what was looked for.
    fn expect(&self, event: &str, what: &str) -> Result<usize, String> {
        self.find(event, what).ok_or_else(|| format!("no {event} saying {what:?}"))
    }

    /// The first row of `process` ("child 147") with `event`.
    fn of(&self, process: &str, event: &str) -> Option<usize> {
        self.rows.iter().position(|r| r.process == process && r.event == event)
    }

    /// The process a story line with `text` was written by.
    fn writer_of(&self, text: &str) -> Result<String, String> {
        let i = self.expect("(story)", text)?;
        Ok(self.rows[i].process.clone())
    }

    fn summary(&self) -> Summary {
        self.run.summary()
    }
}

/// `    12.345  child 147               sched_process_exit       ends`: columns two spaces or
/// more apart; the event one word.
fn parse_row(line: &str) -> Option<Row> {
    let line = line.trim_start();
    let (ms, rest) = line.split_once(' ')?;
    ms.parse::<f64>().ok()?;
    let rest = rest.trim_start();
    let (process, rest) = rest.split_once("  ")?;
    let rest = rest.trim_start();
    let (event, what) = rest.split_once(' ').unwrap_or((rest, ""));
    Some(Row {
        process: process.to_string(),
        event: event.to_string(),
        what: what.trim().to_string(),
    })
}

/// `child 147` for pid 147 in a row's words: the first role word before it.
fn pid_in(words: &str, after: &str) -> Option<String> {
    let rest = &words[words.find(after)? + after.len()..];
    rest.split(|c: char| !c.is_ascii_digit()).find(|w| !w.is_empty()).map(str::to_string)
}

/// The process, as the timeline names it, that `what` names right after `after`
/// ("makes child 147, with ..." → "child 147").
fn named_after(what: &str, after: &str) -> Option<String> {
    let rest = what[what.find(after)? + after.len()..].trim_start();
    let mut words = rest.split([' ', ',']);
    let role = words.next()?;
    let pid = words.next()?;
    pid.parse::<u32>().ok()?;
    Some(format!("{role} {pid}"))
}

type Claim = fn(&Traced) -> Result<(), String>;

/// A lesson, how it is run traced, and what its trace must hold, each claim named.
struct Lesson {
    scenario: &'static str,
    args: &'static [&'static str],
    claims: &'static [(&'static str, Claim)],
}

fn before(
    t: &Traced,
    first: Result<usize, String>,
    then: Result<usize, String>,
) -> Result<(), String> {
    let (a, b) = (first?, then?);
    if a < b {
        Ok(())
    } else {
        Err(format!("{:?} came after {:?}", t.rows[a], t.rows[b]))
    }
}

fn check(ok: bool, why: impl Fn() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(why())
    }
}

/// The child the parent made first: `child N` as the timeline names it.
fn first_child(t: &Traced) -> Result<String, String> {
    let i =
        t.expect("task_newtask", "makes ").or_else(|_| t.expect("sched_process_fork", "made "))?;
    let words = &t.rows[i].what;
    named_after(words, "makes ")
        .or_else(|| named_after(words, "made "))
        .ok_or(format!("no child in {words:?}"))
}

/// The child's exit, its SIGCHLD to the parent and the parent's wait, in that order, before
/// the story's line with `reaped`.
fn exit_told_then_reaped(t: &Traced, child: &str, reaped: &str) -> Result<(), String> {
    let exit = t.of(child, "sched_process_exit").ok_or(format!("no exit of {child}"))?;
    let told = (exit..t.rows.len())
        .find(|&i| t.rows[i].process == child && t.rows[i].what.starts_with("SIGCHLD to parent"))
        .ok_or(format!("no SIGCHLD from {child} to the parent after its exit"))?;
    before(t, Ok(told), t.expect("(story)", reaped))?;
    if t.has("sched_process_wait") {
        let waited = t.find("sched_process_wait", &format!("waits for {child}"));
        check(waited.is_some(), || format!("the parent never waited for {child}"))?;
    }
    Ok(())
}

/// `/clone-cgroup-PID-memory-max`, the scenario's cgroup, under the mount.
fn memory_cgroup(t: &Traced) -> String {
    format!("/clone-cgroup-{}-memory-max", t.run.pid)
}

/// The child moved into the memory cgroup by a write to cgroup.procs, before it wrote.
fn moved_into_the_cgroup(t: &Traced) -> Result<(), String> {
    let child = first_child(t)?;
    if !t.has("cgroup_attach_task") {
        return Ok(());
    }
    t.expect("cgroup_attach_task", &format!("moved {child} into {}", memory_cgroup(t))).map(|_| ())
}

/// The OOM killer chose the child, and the kernel (si_code SI_KERNEL) sent it SIGKILL.
fn killed_by_the_oom_killer(t: &Traced) -> Result<(), String> {
    let child = first_child(t)?;
    if t.has("mark_victim") {
        t.expect("mark_victim", &format!("the OOM killer chose {child}"))?;
    }
    t.expect("signal_generate", &format!("SIGKILL to {child}, from the kernel")).map(|_| ())
}

fn not_oom_killed(t: &Traced) -> Result<(), String> {
    check(t.find("mark_victim", "").is_none(), || "an OOM kill in a run that survived".into())
}

/// Born in its cgroup by clone3: the program's word on the birth, and no attach, ever.
fn born_in_the_cgroup_without_a_move(t: &Traced) -> Result<(), String> {
    let child = first_child(t)?;
    t.expect("(clone3)", &format!("{child} was born in {}", memory_cgroup(t)))?;
    check(t.find("cgroup_attach_task", &child).is_none(), || format!("{child} was moved"))
}

/// The delayed pair's claims hold where the bet was won; a lost bet (said so, as the
/// scenario's own tests check) shows no move before the child's end.
fn unless_the_bet_was_lost(t: &Traced, claim: Claim) -> Result<(), String> {
    if t.summary().get("bet") == Some("lost") {
        return Ok(());
    }
    claim(t)
}

/// A fork refused by a pids limit fires no event but the refused call's return.
fn a_fork_refused_with_eagain(t: &Traced) -> Result<(), String> {
    if !t.has("sys_exit") {
        return Ok(());
    }
    t.expect("sys_exit", "refused: EAGAIN").map(|_| ())
}

const LESSONS: &[Lesson] = &[
    Lesson {
        scenario: "fork_waitpid",
        args: &[],
        claims: &[("the child ends, its SIGCHLD goes to the parent, then waitpid reaps it", |t| {
            exit_told_then_reaped(t, &first_child(t)?, "5. waitpid")
        })],
    },
    Lesson {
        scenario: "clone_waitpid",
        args: &[],
        claims: &[
            ("the child is made with CLONE_NEWPID", |t| {
                t.expect("task_newtask", "CLONE_NEWPID").map(|_| ())
            }),
            ("the child that calls itself pid 1 has another pid in the trace's namespace", |t| {
                let writer = t.writer_of("PID 1 of a new PID namespace")?;
                check(writer == first_child(t)? && !writer.ends_with(" 1"), || writer.clone())
            }),
        ],
    },
    Lesson {
        scenario: "clone_waitpid_cgroup_memory",
        args: &[],
        claims: &[
            ("the child is moved into the cgroup by a write to cgroup.procs", |t| {
                unless_the_bet_was_lost(t, moved_into_the_cgroup)
            }),
            ("no OOM kill", not_oom_killed),
        ],
    },
    Lesson {
        scenario: "clone_waitpid_cgroup_memory_fail",
        args: &[],
        claims: &[
            ("the child is moved into the cgroup by a write to cgroup.procs", |t| {
                unless_the_bet_was_lost(t, moved_into_the_cgroup)
            }),
            ("the OOM killer chooses the child; the kernel sends it SIGKILL", |t| {
                unless_the_bet_was_lost(t, killed_by_the_oom_killer)
            }),
        ],
    },
    Lesson {
        scenario: "clone_wait_signal_cgroup_memory",
        args: &[],
        claims: &[
            ("ready (SIGUSR2) before the move, the move before go (SIGUSR1)", |t| {
                let child = first_child(t)?;
                before(
                    t,
                    t.expect("signal_generate", "SIGUSR2 to parent"),
                    t.expect("signal_generate", &format!("SIGUSR1 to {child}")),
                )?;
                if t.has("cgroup_attach_task") {
                    let moved = t.expect("cgroup_attach_task", &format!("moved {child}"));
                    before(t, moved, t.expect("signal_generate", &format!("SIGUSR1 to {child}")))?;
                }
                Ok(())
            }),
            ("no OOM kill", not_oom_killed),
        ],
    },
    Lesson {
        scenario: "clone_wait_signal_cgroup_memory_fail",
        args: &[],
        claims: &[
            (
                "the child is moved into the cgroup by a write to cgroup.procs",
                moved_into_the_cgroup,
            ),
            (
                "the OOM killer chooses the child; the kernel sends it SIGKILL",
                killed_by_the_oom_killer,
            ),
        ],
    },
    Lesson {
        scenario: "clone3_into_cgroup_memory",
        args: &[],
        claims: &[
            ("the child is born in the cgroup, never moved", born_in_the_cgroup_without_a_move),
            ("no OOM kill", not_oom_killed),
        ],
    },
    Lesson {
        scenario: "clone3_into_cgroup_memory_fail",
        args: &[],
        claims: &[
            ("the child is born in the cgroup, never moved", born_in_the_cgroup_without_a_move),
            (
                "the OOM killer chooses the child; the kernel sends it SIGKILL",
                killed_by_the_oom_killer,
            ),
        ],
    },
    Lesson {
        scenario: "cgroup_pids_max",
        args: &[],
        claims: &[(
            "the manager's fork past pids.max is refused: EAGAIN",
            a_fork_refused_with_eagain,
        )],
    },
    Lesson {
        scenario: "cgroup_pids_hierarchy",
        args: &[],
        claims: &[("a fork past a pids.max is refused: EAGAIN", a_fork_refused_with_eagain)],
    },
    Lesson {
        scenario: "clone3_set_tid",
        args: &[],
        claims: &[
            ("the child has the pid it asked for", |t| {
                let chosen = t.summary().get("chosen").unwrap_or("?").to_string();
                t.expect("task_newtask", &format!("makes child {chosen}")).map(|_| ())
            }),
            ("asking for a pid in use is refused: EEXIST", |t| {
                if !t.has("sys_exit") {
                    return Ok(());
                }
                t.expect("sys_exit", "clone3 refused: EEXIST").map(|_| ())
            }),
        ],
    },
    Lesson {
        scenario: "process_accounting",
        args: &[],
        claims: &[("every child made ends", every_child_ends)],
    },
    Lesson {
        scenario: "clone_flags",
        args: &[],
        claims: &[("every child made ends", every_child_ends)],
    },
    Lesson {
        scenario: "clone3_args",
        args: &[],
        claims: &[("every child made ends", every_child_ends)],
    },
    Lesson {
        scenario: "clone_wait_flags",
        args: &[],
        claims: &[("the clone child's end signals SIGUSR1, not SIGCHLD", |t| {
            let child = first_child(t)?;
            let i =
                t.find("signal_generate", "SIGUSR1 to parent").ok_or("no SIGUSR1 to the parent")?;
            check(t.rows[i].process == child, || format!("{:?}", t.rows[i]))
        })],
    },
    Lesson {
        scenario: "clone_thread",
        args: &[],
        claims: &[
            ("the kernel makes a thread (CLONE_THREAD)", |t| {
                t.expect("task_newtask", "makes thread").map(|_| ())
            }),
            ("a thread's end sends no signal", |t| {
                let thread = t.rows.iter().find(|r| r.process.starts_with("thread "));
                let sent = t
                    .rows
                    .iter()
                    .any(|r| r.process.starts_with("thread ") && r.event == "signal_generate");
                check(thread.is_some() && !sent, || "a thread signalled, or no thread".into())
            }),
        ],
    },
    Lesson {
        scenario: "fork_exec_attributes",
        args: &[],
        claims: &[("the second child execs this program", |t| {
            t.expect("sched_process_exec", "execs a new program: fork_exec_attributes").map(|_| ())
        })],
    },
    Lesson {
        scenario: "wait_statuses",
        args: &[],
        claims: &[("SIGTERM, SIGSTOP, SIGCONT and SIGUSR1 go to the children", |t| {
            for signal in
                ["SIGTERM to child", "SIGSTOP to child", "SIGCONT to child", "SIGUSR1 to child"]
            {
                t.expect("signal_generate", signal)?;
            }
            Ok(())
        })],
    },
    Lesson {
        scenario: "zombie_orphan",
        args: &[],
        claims: &[
            ("the first two children end long before the waits that reap them", |t| {
                let first = first_child(t)?;
                before(
                    t,
                    t.of(&first, "sched_process_exit").ok_or("no exit".to_string()),
                    t.expect("(story)", "2. children"),
                )?;
                before(t, t.expect("(story)", "2. children"), t.expect("(story)", "4. waitpid"))
            }),
            ("the third child, past pids.max, is refused: EAGAIN", a_fork_refused_with_eagain),
            ("an orphan's end is told to its new parent: us as subreaper, else init", |t| {
                let subreaped = t.expect("(story)", "5. subreaper")?;
                let adopted = t.expect("(story)", "6. no subreaper")?;
                let to_us = (0..subreaped).any(|i| {
                    t.rows[i].process.starts_with("grandchild")
                        && t.rows[i].what.starts_with("SIGCHLD to parent")
                });
                let to_init = (subreaped..adopted).any(|i| {
                    t.rows[i].process.starts_with("grandchild")
                        && t.rows[i].what.starts_with("SIGCHLD to init 1")
                });
                check(to_us && to_init, || format!("to us {to_us}, to init {to_init}"))
            }),
        ],
    },
    Lesson {
        scenario: "cgroup_kill",
        args: &[],
        claims: &[("cgroup.kill: SIGKILL generated for every member of the killed cgroups", |t| {
            if t.summary().get("kill") != Some("offered") {
                return Ok(());
            }
            for role in ["freeze-kill", "forkbomb"] {
                let members = members_of(t, &format!("/clone-cgroup-{}-{role}", t.run.pid));
                check(members.len() >= 2, || format!("{role}: members {members:?}"))?;
                for member in &members {
                    // Sent by the writer of cgroup.kill, the parent: not the kernel's own.
                    let sent = t.rows.iter().any(|r| {
                        r.process.starts_with("parent ")
                            && r.event == "signal_generate"
                            && r.what.starts_with(&format!("SIGKILL to {member}"))
                            && !r.what.contains("from the kernel")
                    });
                    check(sent, || format!("no SIGKILL from the parent to {member}"))?;
                }
            }
            Ok(())
        })],
    },
    Lesson {
        scenario: "fork_stdio",
        args: &[],
        claims: &[("every child made ends", every_child_ends)],
    },
];

/// Every process born in `cgroup` (the program's word on clone3's births), and every
/// descendant they made (a fork's child starts in its parent's cgroup).
fn members_of(t: &Traced, cgroup: &str) -> Vec<String> {
    let mut members: Vec<String> = t
        .rows
        .iter()
        .filter(|r| r.event == "(clone3)" && r.what.ends_with(&format!("was born in {cgroup}")))
        .filter_map(|r| r.what.split(" was born").next().map(str::to_string))
        .collect();
    for row in &t.rows {
        if row.event == "task_newtask" && members.contains(&row.process) {
            if let Some(child) = named_after(&row.what, "makes ") {
                members.push(child);
            }
        }
    }
    members
}

/// Every process made (not a thread) ends within the trace.
fn every_child_ends(t: &Traced) -> Result<(), String> {
    let made: Vec<String> = t
        .rows
        .iter()
        .filter(|r| r.event == "task_newtask" || r.event == "sched_process_fork")
        .filter_map(|r| named_after(&r.what, "makes ").or_else(|| named_after(&r.what, "made ")))
        .collect();
    check(!made.is_empty(), || "no child made".into())?;
    // A pid given twice: the kernel's pid filter may drop its later process when the earlier
    // one is freed (the trace says so in a note), so its end is not claimed.
    let pid = |name: &String| name.rsplit(' ').next().unwrap_or("").to_string();
    let given_twice = |child: &String| made.iter().filter(|m| pid(m) == pid(child)).count() > 1;
    for child in made.iter().filter(|c| !given_twice(c)) {
        check(t.of(child, "sched_process_exit").is_some(), || format!("{child} never ended"))?;
    }
    Ok(())
}

/// The delayed pair bets on timing: its traced runs are proven with its other claims, on an
/// otherwise idle machine (the VM runs the tests named `delayed_*` alone, after the rest).
const DELAYED_PAIR: [&str; 2] = ["clone_waitpid_cgroup_memory", "clone_waitpid_cgroup_memory_fail"];

/// Runs `lesson` traced and judges it: it ends as claimed (or, for the delayed pair, lost
/// its bet and said so), its trace lost nothing, holds only the run's own processes, and
/// holds every event the lesson names. Returns the claims that failed, and the run's bet.
fn judge(lesson: &Lesson) -> (Vec<String>, Option<String>) {
    let traced = Traced::run(lesson.scenario, lesson.args);
    let summary = traced.summary();
    let lost_bet = lost_its_bet_and_said_so(&traced.run, &summary);
    if !lost_bet {
        assert_eq!(summary.verdict, Verdict::AsClaimed, "{}", traced.run);
    }
    assert!(!traced.notes.iter().any(|n| n.contains("buffer filled")), "{}", traced.run);
    for row in &traced.rows {
        // Only the run's own processes: a pid filter that follows forks.
        let ours =
            ["parent ", "child ", "grandchild ", "great-grandchild ", "descendant ", "thread "];
        let named = !row.process.starts_with("process ") && !row.process.starts_with("init ");
        assert!(
            ours.iter().any(|o| row.process.starts_with(o)) || named,
            "{row:?}\n{}",
            traced.run
        );
    }
    let failures = lesson
        .claims
        .iter()
        .filter_map(|(claim, holds)| holds(&traced).err().map(|why| (claim, why)))
        .map(|(claim, why)| format!("{}: {claim}: {why}\n{}", lesson.scenario, traced.run))
        .collect();
    (failures, summary.get("bet").map(str::to_string))
}

#[test]
#[ignore = "needs root, cgroup v2 and tracefs: scripts/vm.sh test runs it"]
fn every_lesson_traced_ends_as_untraced_and_its_trace_holds_its_events() {
    require_cgroup2();
    let mut listed: Vec<String> = scenarios();
    let mut tabled: Vec<String> = LESSONS.iter().map(|l| l.scenario.to_string()).collect();
    listed.sort();
    tabled.sort();
    assert_eq!(listed, tabled, "the table must hold every scenario of scenarios.txt, once");
    // Four at a time, the longest first: every lesson is written to run beside others, and
    // each traced run has a tracefs instance of its own.
    const LONGEST: [&str; 4] =
        ["cgroup_kill", "clone3_args", "clone_flags", "cgroup_pids_hierarchy"];
    let mut lessons: Vec<&Lesson> =
        LESSONS.iter().filter(|l| !DELAYED_PAIR.contains(&l.scenario)).collect();
    lessons.sort_by_key(|l| LONGEST.iter().position(|n| *n == l.scenario).unwrap_or(LONGEST.len()));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(lesson) = lessons.get(i) else { break };
                let (failed, _) = judge(lesson);
                failures.lock().unwrap().extend(failed);
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
#[ignore = "needs root, cgroup v2 and tracefs: scripts/vm.sh test runs it"]
fn delayed_pair_traced_ends_as_untraced_its_bet_included() {
    require_cgroup2();
    for name in DELAYED_PAIR {
        let lesson = LESSONS.iter().find(|l| l.scenario == name).unwrap();
        // A run may lose its bet and say so, as untraced; one of three must win it, or the
        // lesson was never shown traced.
        let mut bets = Vec::new();
        for _ in 0..3 {
            let (failures, bet) = judge(lesson);
            assert!(failures.is_empty(), "{}", failures.join("\n\n"));
            let won = bet.as_deref() == Some("won");
            bets.push(bet.unwrap_or_default());
            if won {
                break;
            }
        }
        assert_eq!(bets.last().map(String::as_str), Some("won"), "{name}: bets {bets:?}");
    }
}

fn scenarios() -> Vec<String> {
    include_str!("../scripts/scenarios.txt")
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
#[ignore = "needs root, cgroup v2 and tracefs: scripts/vm.sh test runs it"]
fn a_traced_run_interrupted_part_way_removes_its_instance() {
    require_cgroup2();
    let mut running =
        Running::start("clone_waitpid_cgroup_memory", &["--trace", "--delay", "6000"]);
    let child = running.child_pid();
    running.line_with("warmed up");
    kill(running.pid(), Signal::SIGINT).unwrap();
    let run = running.finish();
    assert_eq!(run.code, 130, "{run}");
    assert_eq!(run.summary().verdict, Verdict::Interrupted, "{run}");
    assert!(
        !run.stdout.contains("--- the kernel's trace"),
        "an interrupted run shows no trace: {run}"
    );
    assert!(!exists(child), "{run}");
    run.assert_nothing_left();
}

/// A story that leaves SIGTERM at its default action (fork_waitpid) still removes its
/// instance as SIGTERM ends it: caught part-way, blocked writing its first line into a full
/// pipe.
#[test]
#[ignore = "needs root, cgroup v2 and tracefs: scripts/vm.sh test runs it"]
fn sigterm_to_a_story_with_default_signals_removes_its_instance_as_it_ends_it() {
    require_cgroup2();
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    fill(&write_end);
    let mut child = Command::new(bin("fork_waitpid"))
        .arg("--trace")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let instance = format!("{}{pid}", clone_cgroup::trace::INSTANCE_PREFIX);
    // Blocked in its first write to stdout, the story's first line: the instance is made,
    // the handler installed, and no child exists yet.
    let writing = format!("{} 0x1 ", libc::SYS_write);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(format!("/proc/{pid}/syscall"))
        .unwrap_or_default()
        .starts_with(&writing)
    {
        if Instant::now() > deadline {
            let _ = kill(pid, Signal::SIGKILL);
            panic!("fork_waitpid --trace never wrote its first line");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(clone_cgroup::trace::instances().contains(&instance), "no instance {instance}");
    kill(pid, Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = kill(pid, Signal::SIGKILL);
            panic!("SIGTERM did not end fork_waitpid --trace within 30 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    drop(read_end);
    use std::os::unix::process::ExitStatusExt;
    let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    assert_eq!(code, 128 + Signal::SIGTERM as i32, "{status:?}");
    let left = left_behind(pid);
    assert!(left.is_empty(), "left {left:?}");
}

/// Fills a pipe, so that the next write to it blocks.
fn fill(write_end: &OwnedFd) {
    let flags = nix::fcntl::fcntl(write_end, nix::fcntl::FcntlArg::F_GETFL).unwrap();
    let nonblocking = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(write_end, nix::fcntl::FcntlArg::F_SETFL(nonblocking)).unwrap();
    let block = [b'x'; 4096];
    while nix::unistd::write(write_end, &block).is_ok() {}
    let blocking = nix::fcntl::OFlag::from_bits_truncate(flags);
    nix::fcntl::fcntl(write_end, nix::fcntl::FcntlArg::F_SETFL(blocking)).unwrap();
}

#[test]
fn trace_svg_into_a_file_that_cannot_be_written_is_refused_before_the_story() {
    let run = run("fork_waitpid", &["--trace-svg", "/nonexistent-dir/picture.svg"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains("--trace-svg /nonexistent-dir/picture.svg: cannot write it"),
        "{run}"
    );
    assert!(!run.stdout.contains("1. calling fork()"), "{run}");
    // A value that starts with '-' is an option, as for every option: no file named --help.
    let option = common::run("fork_waitpid", &["--trace-svg", "--help"]);
    assert_eq!(option.code, 2, "{option}");
    assert!(option.stderr.contains("--trace-svg needs a file"), "{option}");
}

#[test]
fn trace_is_in_every_programs_help() {
    for name in scenarios() {
        let run = run(&name, &["--help"]);
        assert!(
            run.stdout.contains("--trace ") && run.stdout.contains("--trace-svg FILE"),
            "{run}"
        );
    }
}

#[test]
fn a_row_of_the_timeline_reads_back_into_its_columns() {
    let row =
        parse_row("    12.345  child 147               sched_process_exit       ends").unwrap();
    assert_eq!(
        (row.process.as_str(), row.event.as_str(), row.what.as_str()),
        ("child 147", "sched_process_exit", "ends")
    );
    let story =
        parse_row("     0.000  parent 146              (story)                     WIFEXITED")
            .unwrap();
    assert_eq!((story.event.as_str(), story.what.as_str()), ("(story)", "WIFEXITED"));
    assert_eq!(
        named_after("makes child 147, with CLONE_PIDFD", "makes "),
        Some("child 147".into())
    );
    assert_eq!(pid_in("SIGKILL to child 147, from the kernel", "to child "), Some("147".into()));
}

#[test]
fn the_vm_keeps_every_traced_event_enabled_so_that_no_run_patches_the_kernel() {
    let vm = include_str!("../scripts/vm.sh");
    for (system, event) in clone_cgroup::trace::EVENTS {
        assert!(
            vm.contains(&format!("{system}/{event}")),
            "scripts/vm.sh does not keep {system}/{event} on"
        );
    }
}
