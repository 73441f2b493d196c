//! A trace as a picture: one lane per process, drawn from its birth to its end in the colour
//! of the cgroup it is in; births, signals and moves between lanes; its end and the waits
//! that reap it; the story's steps as marks on the time axis above.
//!
//! Time runs left to right. A story waits, then acts at once: a 200 ms sleep beside a fork
//! that takes a tenth of a millisecond. So the axis is compressed where nothing happens: each
//! gap between two events takes room after its logarithm, and the scale marks the true
//! milliseconds where events are. The picture is plain SVG, with the events' words in
//! `<title>`s that a browser shows on hover.
//!
//! Where a lane's cgroup comes from: a child made without `CLONE_INTO_CGROUP` starts in its
//! parent's; a move (`cgroup_attach_task`) changes it, for the leader the event names and
//! every thread of its group. A child made with `CLONE_INTO_CGROUP` starts in the cgroup the
//! program's `(clone3)` line names; failing that, in the one its birth made populated
//! (`cgroup_notify_populated`, fired by the parent just before `task_newtask`); failing both,
//! the lane says it does not know.

use std::fmt::Write as _;

use nix::unistd::Pid;

use super::timeline::{signal_name, story_text, Process, Role, Timeline};
use super::{call_name, What};

/// `CLONE_INTO_CGROUP` and `CLONE_THREAD`, as `task_newtask` shows them.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
const CLONE_THREAD: u64 = 0x10000;

/// Where the lanes begin (the room left of it holds their names) and how wide they run.
const LEFT: f64 = 150.0;
const PLOT: f64 = 580.0;
/// The story's axis.
const TOP: f64 = 70.0;

/// Colours of named cgroups, in the order they appear.
const PALETTE: [&str; 6] = ["#1b7f3b", "#2a6fdb", "#8e44ad", "#d35400", "#00838f", "#6d4c41"];
const NO_CGROUP_OF_OURS: &str = "#4a4a4a";
/// Up to this many refused calls each get their errno written out; more, a tick each.
const LABELLED_REFUSALS: usize = 12;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The cgroup a lane is drawn in.
#[derive(Clone, Debug, PartialEq)]
enum Place {
    /// Where the program started: no cgroup of the story's.
    Start,
    /// A cgroup the trace names.
    Named(String),
    /// Born with `CLONE_INTO_CGROUP` into a cgroup the trace does not name.
    Unnamed,
}

/// The processes drawn, one lane each, and where each lane is.
struct Lanes {
    processes: Vec<Process>,
    height: f64,
}

impl Lanes {
    fn of(timeline: &Timeline) -> Lanes {
        let processes: Vec<Process> = timeline
            .processes()
            .into_iter()
            .filter(|p| matches!(p.role, Role::Parent | Role::Descendant(_) | Role::Thread))
            // init, where an orphan of ours told it of its end
            .chain(timeline.events.iter().enumerate().find_map(|(i, e)| match e.what {
                What::Signal { to, .. } if to.as_raw() == 1 => Some(timeline.process_at(to, i)),
                _ => None,
            }))
            .collect();
        let height = if processes.len() <= 12 { 32.0 } else { 20.0 };
        Lanes { processes, height }
    }

    /// The lane of the process `pid` names at event `at` (a pid given twice is two lanes).
    fn at(&self, timeline: &Timeline, pid: Pid, at: usize) -> Option<usize> {
        let born = timeline.birth_of(pid, at);
        self.processes.iter().position(|p| p.pid == pid && p.born == born)
    }

    fn y(&self, lane: usize) -> f64 {
        TOP + 36.0 + lane as f64 * self.height
    }

    fn bottom(&self) -> f64 {
        self.y(self.processes.len())
    }
}

/// Small labels placed so that none covers another: one that would is moved down a line.
struct Labels {
    /// The boxes taken: left, right, baseline.
    taken: Vec<(f64, f64, f64)>,
    /// The picture's right edge, which no label crosses.
    right_edge: f64,
}

impl Labels {
    /// Where a label of `text` (10 px type) goes, asked for at (`x`, `y`), left-aligned: moved
    /// left of `x` where it would cross the right edge, and down past the labels it would cover.
    fn place(&mut self, x: f64, y: f64, text: &str) -> (f64, f64) {
        let width = text.chars().count() as f64 * 6.3;
        let x = if x + width > self.right_edge { x - width - 16.0 } else { x };
        let mut y = y;
        while self
            .taken
            .iter()
            .any(|&(l, r, b)| x < r + 5.0 && l < x + width + 5.0 && (b - y).abs() < 11.0)
        {
            y += 11.0;
        }
        self.taken.push((x, x + width, y));
        (x, y)
    }
}

/// The x of each event: gaps compressed after their logarithm, scaled to the plot's width.
fn positions(timeline: &Timeline) -> Vec<f64> {
    let times: Vec<f64> = timeline.events.iter().map(|e| timeline.ms(e)).collect();
    let mut room = vec![0.0];
    for pair in times.windows(2) {
        let gap = (pair[1] - pair[0]).max(0.0);
        let last = *room.last().unwrap_or(&0.0);
        room.push(last + (1.0 + gap / 0.05).ln() + 0.4);
    }
    let total = room.last().copied().unwrap_or(0.0).max(1.0);
    room.iter().map(|r| LEFT + r / total * PLOT).collect()
}

/// For each lane, where its cgroup changes: (event index, place), the first at its birth.
fn places(timeline: &Timeline, lanes: &Lanes) -> Vec<Vec<(usize, Place)>> {
    let mut changes: Vec<Vec<(usize, Place)>> = vec![Vec::new(); lanes.processes.len()];
    let now = |changes: &Vec<Vec<(usize, Place)>>, lane: Option<usize>| {
        lane.and_then(|l| changes[l].last().map(|(_, place)| place.clone())).unwrap_or(Place::Start)
    };
    // The program's word on births into cgroups comes after the birth (clone3 must return
    // first), and a child may fork before it: read them all first.
    let mut born_in: Vec<Option<String>> = vec![None; lanes.processes.len()];
    for (i, event) in timeline.events.iter().enumerate() {
        if let What::BornIn { child, path } = &event.what {
            if let Some(lane) = lanes.at(timeline, *child, i) {
                born_in[lane] = Some(path.clone());
            }
        }
    }
    // A thread's lane, and the lane of its group's leader, who moves with all its threads.
    let mut leader_of: Vec<Option<usize>> = vec![None; lanes.processes.len()];
    for (i, event) in timeline.events.iter().enumerate() {
        match &event.what {
            What::NewTask { child, flags } => {
                let Some(lane) = lanes.at(timeline, *child, i) else { continue };
                if flags & CLONE_THREAD != 0 {
                    let maker = lanes.at(timeline, event.task, i);
                    leader_of[lane] = maker.map(|m| leader_of[m].unwrap_or(m));
                }
                let place = if flags & CLONE_INTO_CGROUP == 0 {
                    now(&changes, lanes.at(timeline, event.task, i))
                } else if let Some(path) = &born_in[lane] {
                    Place::Named(path.clone())
                } else {
                    // The parent's events just before the birth, if they say which cgroups
                    // the birth made populated: the cgroup first, then each ancestor it made
                    // populated with it (cgroup_update_populated walks up).
                    let populated = timeline.events[..i]
                        .iter()
                        .rev()
                        .filter(|e| e.task == event.task)
                        .map_while(|e| match &e.what {
                            What::Populated { path, populated: true } => Some(path.clone()),
                            _ => None,
                        })
                        .last();
                    populated.map_or(Place::Unnamed, Place::Named)
                };
                changes[lane].push((i, place));
            }
            What::Moved { pid, path } => {
                // A write to cgroup.procs moves the whole thread group; the event names its
                // leader. A process that had ended is not moved at all (a zombie stays).
                let Some(lane) = lanes.at(timeline, *pid, i) else { continue };
                if timeline.ended_before(i, *pid) {
                    continue;
                }
                for moved in 0..changes.len() {
                    if moved == lane || leader_of[moved] == Some(lane) {
                        changes[moved].push((i, Place::Named(path.clone())));
                    }
                }
            }
            _ => {}
        }
    }
    for change in &mut changes {
        if change.is_empty() {
            change.push((0, Place::Start)); // the program itself, or a birth not traced
        }
    }
    changes
}

/// The picture of `timeline`, as an SVG document; `title` heads it.
pub fn picture(timeline: &Timeline, title: &str) -> String {
    let lanes = Lanes::of(timeline);
    let x = positions(timeline);
    let places = places(timeline, &lanes);
    let mut named: Vec<String> = Vec::new();
    let mut unnamed_seen = false;
    for (_, place) in places.iter().flatten() {
        match place {
            Place::Named(path) if !named.contains(path) => named.push(path.clone()),
            Place::Unnamed => unnamed_seen = true,
            _ => {}
        }
    }
    let colour = |place: &Place| match place {
        Place::Named(path) => {
            let n = named.iter().position(|p| p == path).unwrap_or(0);
            PALETTE[n % PALETTE.len()]
        }
        _ => NO_CGROUP_OF_OURS,
    };
    let small = lanes.height < 30.0;
    let refusals =
        timeline.events.iter().filter(|e| matches!(e.what, What::Refused { .. })).count();
    let ended_moves = timeline
        .events
        .iter()
        .enumerate()
        .filter(
            |(i, e)| matches!(e.what, What::Moved { pid, .. } if timeline.ended_before(*i, pid)),
        )
        .count();
    let legend_rows = 3
        + usize::from(ended_moves > 0)
        + named.len()
        + usize::from(unnamed_seen)
        + usize::from(refusals > 0);
    let height = lanes.bottom() + 46.0 + legend_rows as f64 * 16.0 + 10.0;
    let width = LEFT + PLOT + 30.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        svg,
        r#"<text x="12" y="22" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let _ = writeln!(
        svg,
        r##"<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" fill="context-stroke"/></marker></defs>"##
    );

    // The story's steps, on the axis above the lanes; each mark's words on hover.
    let _ = writeln!(svg, r##"<text x="12" y="{}" fill="#333">story steps</text>"##, TOP + 4.0);
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{}" y2="{TOP}" stroke="#999"/>"##,
        LEFT + PLOT
    );
    let mut last_label = [f64::MIN; 2];
    let mut shown_steps: Vec<String> = Vec::new();
    for (i, event) in timeline.events.iter().enumerate() {
        let What::Story(line) = &event.what else { continue };
        let text = story_text(line);
        let step: String = text.chars().take_while(|c| c.is_ascii_digit()).collect();
        let _ = writeln!(
            svg,
            r##"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="#555"><title>{3}</title></line>"##,
            x[i],
            TOP - 6.0,
            TOP + 6.0,
            escape(&format!("{}: {text}", timeline.process_at(event.task, i)))
        );
        // A step's number once, at its first line; on a second row where the first is taken.
        let new_step = !step.is_empty() && shown_steps.last() != Some(&step);
        if new_step {
            let row = usize::from(x[i] - last_label[0] <= 12.0);
            if x[i] - last_label[row] > 12.0 {
                let _ = writeln!(
                    svg,
                    r#"<text x="{:.1}" y="{}" text-anchor="middle">{step}</text>"#,
                    x[i],
                    TOP - 10.0 - row as f64 * 13.0
                );
                last_label[row] = x[i];
            }
            shown_steps.push(step);
        }
    }

    // The lanes: a process from its birth to its end, in the colour of its cgroup.
    let ended_at = |pid: Pid| {
        timeline.events.iter().position(|e| e.task == pid && matches!(e.what, What::Exit { .. }))
    };
    for (lane, process) in lanes.processes.iter().enumerate() {
        let y = lanes.y(lane);
        let end = ended_at(process.pid).map_or(LEFT + PLOT, |i| x[i]);
        let _ = writeln!(
            svg,
            r#"<text x="12" y="{:.1}" font-size="{}">{}</text>"#,
            y + 4.0,
            if small { 11 } else { 12 },
            escape(&process.to_string())
        );
        let changes = &places[lane];
        for (n, (from, place)) in changes.iter().enumerate() {
            let start =
                if *from == 0 && n == 0 && process.role == Role::Parent { LEFT } else { x[*from] };
            let stop = changes.get(n + 1).map_or(end, |(next, _)| x[*next]).min(end);
            if stop <= start {
                continue;
            }
            let dash = if *place == Place::Unnamed { r#" stroke-dasharray="5,3""# } else { "" };
            let _ = writeln!(
                svg,
                r#"<line x1="{start:.1}" y1="{y:.1}" x2="{stop:.1}" y2="{y:.1}" stroke="{}" stroke-width="3"{dash}/>"#,
                colour(place)
            );
        }
    }

    // What happens between lanes and on them.
    let mut labelled: Vec<(usize, i32, f64)> = Vec::new(); // (lane, signal, x) last labelled
    let mut labels = Labels { taken: Vec::new(), right_edge: width - 6.0 };
    for (i, event) in timeline.events.iter().enumerate() {
        let Some(lane) = lanes.at(timeline, event.task, i) else { continue };
        let (ex, ey) = (x[i], lanes.y(lane));
        let title = escape(&format!(
            "{:.3} ms: {} {}",
            timeline.ms(event),
            timeline.process_at(event.task, i),
            timeline.words(i)
        ));
        match &event.what {
            What::NewTask { child, .. } => {
                let Some(to) = lanes.at(timeline, *child, i) else { continue };
                let _ = writeln!(
                    svg,
                    r##"<line x1="{ex:.1}" y1="{ey:.1}" x2="{ex:.1}" y2="{:.1}" stroke="#2a6fdb" stroke-width="1.2" marker-end="url(#arrow)"><title>{title}</title></line>"##,
                    lanes.y(to) - 4.0
                );
            }
            What::Moved { pid, path } => {
                let Some(to) = lanes.at(timeline, *pid, i) else { continue };
                // In the colour of the cgroup it went to; grey and dashed where it had ended
                // and nothing moved.
                let (stroke, dash) = if timeline.ended_before(i, *pid) {
                    ("#999999", r#" stroke-dasharray="2,2""#)
                } else {
                    (colour(&Place::Named(path.clone())), "")
                };
                let _ = writeln!(
                    svg,
                    r##"<circle cx="{ex:.1}" cy="{:.1}" r="4.5" fill="#ffffff" stroke="{stroke}" stroke-width="2"{dash}><title>{title}</title></circle>"##,
                    lanes.y(to)
                );
            }
            What::Exec { .. } => {
                let (lx, ly) = labels.place(ex - 8.0, ey - 10.0, "exec");
                let _ = writeln!(
                    svg,
                    r##"<text x="{lx:.1}" y="{ly:.1}" font-size="10">exec<title>{title}</title></text>"##
                );
            }
            What::Signal { signal, to, .. } => {
                let Some(target) = lanes.at(timeline, *to, i) else { continue };
                let chld = *signal == libc::SIGCHLD;
                let stroke = match *signal {
                    libc::SIGKILL => "#c62828",
                    libc::SIGCHLD => "#b0b0b0",
                    _ => "#e08a00",
                };
                let (y1, y2) = (ey, lanes.y(target));
                let own = target == lane;
                let path = if own {
                    // The kernel's signal to the task it runs in (the OOM killer's): a curl.
                    format!("M{ex:.1},{:.1} q8,-14 0,-4", y1 - 2.0)
                } else {
                    let toward = if y2 > y1 { -4.0 } else { 4.0 };
                    format!(
                        "M{ex:.1},{y1:.1} Q{:.1},{:.1} {ex:.1},{:.1}",
                        ex + 10.0,
                        (y1 + y2) / 2.0,
                        y2 + toward
                    )
                };
                let _ = writeln!(
                    svg,
                    r#"<path d="{path}" fill="none" stroke="{stroke}" stroke-width="{}" marker-end="url(#arrow)"><title>{title}</title></path>"#,
                    if chld { 1.0 } else { 1.5 }
                );
                // A label for the first of a run of the same signal from the same lane.
                let near =
                    labelled.iter().any(|&(l, s, lx)| l == lane && s == *signal && ex - lx < 60.0);
                if !chld && !near {
                    // Near the receiver's end of the arrow, so that it reads as the receiver's.
                    let label_y = if own {
                        y1 - 14.0
                    } else if y2 > y1 {
                        y2 - 8.0
                    } else {
                        y2 + 16.0
                    };
                    let name = signal_name(*signal);
                    let (lx, ly) = labels.place(ex + 12.0, label_y, &name);
                    let _ = writeln!(
                        svg,
                        r#"<text x="{lx:.1}" y="{ly:.1}" fill="{stroke}" font-size="10">{name}</text>"#
                    );
                    labelled.push((lane, *signal, ex));
                }
            }
            What::OomVictim { victim } => {
                let Some(v) = lanes.at(timeline, *victim, i) else { continue };
                let (lx, ly) = labels.place(ex - 10.0, lanes.y(v) + 13.0, "OOM");
                let _ = writeln!(
                    svg,
                    r##"<text x="{lx:.1}" y="{ly:.1}" fill="#c62828" font-size="10" font-weight="bold">OOM<title>{title}</title></text>"##
                );
            }
            What::Exit { .. } => {
                let _ = writeln!(
                    svg,
                    r##"<path d="M{0:.1},{1:.1} l7,7 M{0:.1},{2:.1} l7,-7" stroke="#111" stroke-width="2"><title>{title}</title></path>"##,
                    ex - 3.5,
                    ey - 3.5,
                    ey + 3.5
                );
            }
            What::Wait { .. } => {
                let _ = writeln!(
                    svg,
                    r##"<path d="M{ex:.1},{:.1} l4,4 l-4,4 l-4,-4 z" fill="#7b1fa2"><title>{title}</title></path>"##,
                    ey - 4.0
                );
            }
            What::Refused { syscall, errno } => {
                // A red tick at its moment; its errno beside it, where there are few enough
                // to name each (else on hover).
                let _ = writeln!(
                    svg,
                    r##"<line x1="{ex:.1}" y1="{:.1}" x2="{ex:.1}" y2="{:.1}" stroke="#c62828" stroke-width="2"><title>{title}</title></line>"##,
                    ey + 3.0,
                    ey + 12.0
                );
                if refusals <= LABELLED_REFUSALS {
                    let text = format!(
                        "{}: {:?}",
                        call_name(*syscall),
                        nix::errno::Errno::from_raw(*errno)
                    );
                    let (lx, ly) = labels.place(ex + 3.0, ey + 21.0, &text);
                    let _ = writeln!(
                        svg,
                        r##"<text x="{lx:.1}" y="{ly:.1}" fill="#c62828" font-size="10">{text}<title>{title}</title></text>"##
                    );
                }
            }
            _ => {}
        }
    }

    // The scale: the true milliseconds where events are, far enough apart to read.
    let axis = lanes.bottom() - lanes.height / 2.0 + 14.0;
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{axis}" x2="{}" y2="{axis}" stroke="#999"/>"##,
        LEFT + PLOT
    );
    let _ = writeln!(
        svg,
        r##"<text x="12" y="{:.1}" fill="#333" font-size="11">ms (gaps compressed)</text>"##,
        axis + 16.0
    );
    let mut last_tick = f64::MIN;
    for (i, event) in timeline.events.iter().enumerate() {
        if x[i] - last_tick < 56.0 {
            continue;
        }
        last_tick = x[i];
        let _ = writeln!(
            svg,
            r##"<line x1="{0:.1}" y1="{axis}" x2="{0:.1}" y2="{1}" stroke="#999"/><text x="{0:.1}" y="{2}" text-anchor="middle" fill="#333" font-size="11">{3:.1}</text>"##,
            x[i],
            axis + 5.0,
            axis + 17.0,
            timeline.ms(event)
        );
    }

    // The legend: what the marks mean, then each lane colour's cgroup.
    let mut row = axis + 40.0;
    let _ = writeln!(
        svg,
        r##"<text x="12" y="{row}" font-size="11" fill="#333">blue arrow: a birth · ○: a move into a cgroup, in its colour · ✕: an end · ◆: a wait</text>"##
    );
    row += 16.0;
    let _ = writeln!(
        svg,
        r##"<text x="12" y="{row}" font-size="11" fill="#333">arrows between lanes: signals (red SIGKILL, grey SIGCHLD, orange the others) · hover for the kernel's words</text>"##
    );
    if refusals > LABELLED_REFUSALS {
        row += 16.0;
        let _ = writeln!(
            svg,
            r##"<line x1="26" y1="{0}" x2="26" y2="{1}" stroke="#c62828" stroke-width="2"/><text x="48" y="{2}" font-size="11" fill="#333">a call that makes a process, refused ({refusals} in this run; hover for the errno)</text>"##,
            row - 12.0,
            row - 2.0,
            row
        );
    } else if let Some(first) = timeline.events.iter().find_map(|e| match e.what {
        What::Refused { syscall, errno } => {
            Some(format!("{}: {:?}", call_name(syscall), nix::errno::Errno::from_raw(errno)))
        }
        _ => None,
    }) {
        row += 16.0;
        let _ = writeln!(
            svg,
            r##"<line x1="26" y1="{0}" x2="26" y2="{1}" stroke="#c62828" stroke-width="2"/><text x="48" y="{2}" font-size="11" fill="#333"><tspan fill="#c62828">{first}</tspan>: a call that makes a process, refused, with its errno</text>"##,
            row - 12.0,
            row - 2.0,
            row
        );
    }
    if ended_moves > 0 {
        row += 16.0;
        let _ = writeln!(
            svg,
            r##"<circle cx="26" cy="{0}" r="4.5" fill="#ffffff" stroke="#999999" stroke-width="2" stroke-dasharray="2,2"/><text x="48" y="{1}" font-size="11" fill="#333">its pid written to a cgroup.procs after its end: nothing moved</text>"##,
            row - 4.0,
            row
        );
    }
    let mut key = |svg: &mut String, colour: &str, dash: &str, text: &str| {
        row += 16.0;
        let _ = writeln!(
            svg,
            r##"<line x1="12" y1="{0}" x2="40" y2="{0}" stroke="{colour}" stroke-width="3"{dash}/><text x="48" y="{1}" font-size="11" fill="#333">{2}</text>"##,
            row - 4.0,
            row,
            escape(text)
        );
    };
    key(
        &mut svg,
        NO_CGROUP_OF_OURS,
        "",
        "in the cgroup the program started in (none of the story's own)",
    );
    for path in &named {
        key(&mut svg, colour(&Place::Named(path.clone())), "", &format!("in cgroup {path}"));
    }
    if unnamed_seen {
        key(
            &mut svg,
            NO_CGROUP_OF_OURS,
            r#" stroke-dasharray="5,3""#,
            "born with CLONE_INTO_CGROUP into a cgroup this trace does not name",
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Event;
    use std::time::Duration;

    fn at(ms: u64, task: i32, what: What) -> Event {
        Event { at: Duration::from_millis(ms), task: Pid::from_raw(task), what }
    }

    #[test]
    fn a_lane_takes_the_cgroup_its_birth_made_populated_and_its_moves() {
        let (c, d, e) = (Pid::from_raw(11), Pid::from_raw(12), Pid::from_raw(13));
        let populated = What::Populated { path: "/a".into(), populated: true };
        let events = vec![
            at(0, 10, populated),
            at(1, 10, What::NewTask { child: c, flags: CLONE_INTO_CGROUP }),
            at(2, 10, What::NewTask { child: d, flags: CLONE_INTO_CGROUP }),
            at(3, 10, What::NewTask { child: e, flags: 0 }),
            at(4, 10, What::Moved { pid: e, path: "/b".into() }),
        ];
        let timeline = Timeline::new(events, Pid::from_raw(10));
        let lanes = Lanes::of(&timeline);
        let places = places(&timeline, &lanes);
        let lane = |pid| lanes.at(&timeline, pid, 9).unwrap();
        assert_eq!(places[lane(c)], vec![(1, Place::Named("/a".into()))]);
        assert_eq!(places[lane(d)], vec![(2, Place::Unnamed)]);
        assert_eq!(places[lane(e)], vec![(3, Place::Start), (4, Place::Named("/b".into()))]);
        let svg = picture(&timeline, "t");
        assert!(svg.contains("in cgroup /a") && svg.contains("in cgroup /b"), "{svg}");
        assert!(svg.contains("does not name"), "{svg}");
    }

    #[test]
    fn threads_move_with_their_leader_and_an_ended_process_is_not_moved() {
        let (leader, thread, zombie) = (Pid::from_raw(11), Pid::from_raw(12), Pid::from_raw(13));
        let events = vec![
            at(0, 10, What::NewTask { child: leader, flags: 0 }),
            at(1, 11, What::NewTask { child: thread, flags: CLONE_THREAD }),
            at(2, 10, What::NewTask { child: zombie, flags: 0 }),
            at(3, 13, What::Exit { group_dead: None }),
            at(4, 10, What::Moved { pid: leader, path: "/t".into() }),
            at(5, 10, What::Moved { pid: zombie, path: "/t".into() }),
        ];
        let timeline = Timeline::new(events, Pid::from_raw(10));
        let lanes = Lanes::of(&timeline);
        let places = places(&timeline, &lanes);
        let lane = |pid| lanes.at(&timeline, pid, 5).unwrap();
        assert_eq!(places[lane(thread)].last(), Some(&(4, Place::Named("/t".into()))));
        assert_eq!(places[lane(zombie)], vec![(2, Place::Start)]);
    }
}
