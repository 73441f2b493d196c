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
//! parent's; a move (`cgroup_attach_task`) changes it. A child made with it starts in the
//! cgroup its parent named, which no event names; the trace shows it only where the birth
//! made that cgroup populated (`cgroup_notify_populated`, fired by the parent just before
//! `task_newtask`). Elsewhere the lane says it does not know.

use std::fmt::Write as _;

use nix::unistd::Pid;

use super::timeline::{signal_name, story_text, Process, Role, Timeline};
use super::{call_name, What};

/// `CLONE_INTO_CGROUP`, as `task_newtask` shows it.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Where the lanes begin (the room left of it holds their names) and how wide they run.
const LEFT: f64 = 170.0;
const PLOT: f64 = 780.0;
/// The story's axis.
const TOP: f64 = 70.0;

/// Colours of named cgroups, in the order they appear.
const PALETTE: [&str; 6] = ["#1b7f3b", "#2a6fdb", "#8e44ad", "#d35400", "#00838f", "#6d4c41"];
const NO_CGROUP_OF_OURS: &str = "#4a4a4a";

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
            .collect();
        let height = if processes.len() <= 12 { 32.0 } else { 20.0 };
        Lanes { processes, height }
    }

    fn of_pid(&self, pid: Pid) -> Option<usize> {
        self.processes.iter().position(|p| p.pid == pid)
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
        let width = text.chars().count() as f64 * 5.8;
        let x = if x + width > self.right_edge { x - width - 16.0 } else { x };
        let mut y = y;
        while self
            .taken
            .iter()
            .any(|&(l, r, b)| x < r + 3.0 && l < x + width + 3.0 && (b - y).abs() < 11.0)
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
    for (i, event) in timeline.events.iter().enumerate() {
        match &event.what {
            What::NewTask { child, flags } => {
                let Some(lane) = lanes.of_pid(*child) else { continue };
                let place = if flags & CLONE_INTO_CGROUP == 0 {
                    now(&changes, lanes.of_pid(event.task))
                } else {
                    // The parent's event just before the birth, if it says which cgroup the
                    // birth made populated.
                    let before = timeline.events[..i].iter().rev().find(|e| e.task == event.task);
                    match before.map(|e| &e.what) {
                        Some(What::Populated { path, populated: true }) => {
                            Place::Named(path.clone())
                        }
                        _ => Place::Unnamed,
                    }
                };
                changes[lane].push((i, place));
            }
            What::Moved { pid, path } => {
                if let Some(lane) = lanes.of_pid(*pid) {
                    changes[lane].push((i, Place::Named(path.clone())));
                }
            }
            What::BornIn { child, path } => {
                // The program's word for a birth the events left unnamed.
                let lane = lanes.of_pid(*child);
                if let Some(birth) = lane.and_then(|l| changes[l].first_mut()) {
                    if birth.1 == Place::Unnamed {
                        birth.1 = Place::Named(path.clone());
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
    let legend_rows = 1 + named.len() + usize::from(unnamed_seen);
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
        r#"<text x="12" y="22" font-size="15" font-weight="bold">{}</text>"#,
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
    let mut last_label = f64::MIN;
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
            escape(&format!("{}: {text}", timeline.process(event.task)))
        );
        if !step.is_empty() && x[i] - last_label > 14.0 {
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{step}</text>"#,
                x[i],
                TOP - 10.0
            );
            last_label = x[i];
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
            let stop = changes.get(n + 1).map_or(end, |(next, _)| x[*next]);
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
        let Some(lane) = lanes.of_pid(event.task) else { continue };
        let (ex, ey) = (x[i], lanes.y(lane));
        let title = escape(&format!(
            "{:.3} ms: {} {}",
            timeline.ms(event),
            timeline.process(event.task),
            timeline.words(event)
        ));
        match &event.what {
            What::NewTask { child, .. } => {
                let Some(to) = lanes.of_pid(*child) else { continue };
                let _ = writeln!(
                    svg,
                    r##"<line x1="{ex:.1}" y1="{ey:.1}" x2="{ex:.1}" y2="{:.1}" stroke="#2a6fdb" stroke-width="1.2" marker-end="url(#arrow)"><title>{title}</title></line>"##,
                    lanes.y(to) - 4.0
                );
            }
            What::Moved { pid, .. } => {
                let Some(to) = lanes.of_pid(*pid) else { continue };
                let _ = writeln!(
                    svg,
                    r##"<circle cx="{ex:.1}" cy="{:.1}" r="4.5" fill="#ffffff" stroke="#1b7f3b" stroke-width="2"><title>{title}</title></circle>"##,
                    lanes.y(to)
                );
            }
            What::Exec { .. } => {
                let (lx, ly) = labels.place(ex - 8.0, ey - 7.0, "exec");
                let _ = writeln!(
                    svg,
                    r##"<text x="{lx:.1}" y="{ly:.1}" font-size="10">exec<title>{title}</title></text>"##
                );
            }
            What::Signal { signal, to, .. } => {
                let Some(target) = lanes.of_pid(*to) else { continue };
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
                    let label_y = if own { y1 - 14.0 } else { (y1 + y2) / 2.0 + 4.0 };
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
                let Some(v) = lanes.of_pid(*victim) else { continue };
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
                let text =
                    format!("{}: {:?}", call_name(*syscall), nix::errno::Errno::from_raw(*errno));
                let (lx, ly) = labels.place(ex - 20.0, ey + 13.0, &text);
                let _ = writeln!(
                    svg,
                    r##"<text x="{lx:.1}" y="{ly:.1}" fill="#c62828" font-size="10">{text}<title>{title}</title></text>"##
                );
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
        r##"<text x="12" y="{:.1}" fill="#333">ms (gaps compressed)</text>"##,
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
        r##"<text x="12" y="{row}" font-size="11" fill="#333">blue arrow: a birth · ○: moved into a cgroup · arrows: signals (red SIGKILL, grey SIGCHLD) · ✕: an end · ◆: a wait · hover for the kernel's words</text>"##
    );
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
    for path in &named {
        key(&mut svg, colour(&Place::Named(path.clone())), "", &format!("in cgroup {path}"));
    }
    if unnamed_seen {
        key(
            &mut svg,
            NO_CGROUP_OF_OURS,
            r#" stroke-dasharray="5,3""#,
            "born with CLONE_INTO_CGROUP into a cgroup this trace does not name (only the birth \
             that makes a cgroup populated names it)",
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
        let lane = |pid| lanes.of_pid(pid).unwrap();
        assert_eq!(places[lane(c)], vec![(1, Place::Named("/a".into()))]);
        assert_eq!(places[lane(d)], vec![(2, Place::Unnamed)]);
        assert_eq!(places[lane(e)], vec![(3, Place::Start), (4, Place::Named("/b".into()))]);
        let svg = picture(&timeline, "t");
        assert!(svg.contains("in cgroup /a") && svg.contains("in cgroup /b"), "{svg}");
        assert!(svg.contains("does not name"), "{svg}");
    }
}
