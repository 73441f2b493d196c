//! cgroup_race: how often the delayed placement loses its bet on timing, beside the
//! signal-synced and clone3 placements, which do not bet; and what a move into a cgroup costs.
//!
//! Usage: `cargo build --release --bins && cargo sudo-run --release --bin cgroup_race -- [OPTIONS]`
//!
//! It runs the memory scenarios many times in a memory.max=4096 cgroup: the delayed pair at
//! each delay (default 0, 1, 2, 5, 10, 20, 50 and 100 ms; the parent moves the child at half
//! the delay), and the signal-synced and clone3 pairs, R times each (default 20). Each run is
//! the scenario's own binary, built beside this one (`cargo build --release --bins` builds
//! them all), telling its own story. For every row it prints how often the run ended as claimed (the small child
//! survived inside the limit; the big child was killed by the OOM killer) and the median time
//! from clone to the child being inside the cgroup.
//!
//! Where the kernel offers it (6.0 and later), the signal-synced pair runs once more with the
//! cgroup2 mount remounted with `favordynmods`, and the mount is put back afterwards: a write
//! to `cgroup.procs` write-locks a rwsem whose default, percpu mode waits for an RCU grace
//! period; favordynmods trades that for slower forks. Expect the delayed pair to miss at small
//! delays and the other rows never to. Exit status 0 when the signal-synced and clone3
//! placements matched every time.
//!
//! SIGINT, SIGTERM or SIGHUP, to this program alone or to its whole process group (Ctrl-C),
//! stops it within the run under way: that run cleans up its own cgroup, the mount options are
//! put back, and it ends with a `verdict=interrupted` summary and exit status 128 + the signal.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output, Stdio};
use std::time::{Duration, Instant};

use clone_cgroup::cgroup::Cgroup2Mount;
use clone_cgroup::cli::{
    for_each_option, parse_number, unknown_option, Scenario, Summary, Verdict,
};
use clone_cgroup::say;
use clone_cgroup::sync::{send, SignalWatch};
use clone_cgroup::Error;
use nix::mount::{mount, MsFlags};
use nix::unistd::Pid;

const SCENARIO: Scenario = Scenario {
    name: "cgroup_race",
    about:
        "Runs the delayed placement at delays from 0 to 100 ms, and the signal-synced and clone3\n\
            placements, many times each; prints how often each ended as claimed, and the cost\n\
            of a move, with and without the favordynmods mount option.",
    options: "      --runs R         runs per placement, delay and child [default: 20]
      --delays LIST    delays in ms for the delayed pair [default: 0,1,2,5,10,20,50,100]
      --rows LIST      which rows to measure, of delayed, signal-synced, favordynmods
                       and clone3 [default: all four]
      --parent DIR     create the runs' cgroups under this cgroup v2 directory
                       [default: the root of the cgroup2 mount]
",
};

/// The rows `--rows` may name, in the order they are measured.
const ROWS: [&str; 4] = ["delayed", "signal-synced", "favordynmods", "clone3"];

/// The stories measured: each placement's binary; its `_fail` twin runs the big child.
const DELAYED: &str = "clone_waitpid_cgroup_memory";
const SIGNAL_SYNCED: &str = "clone_wait_signal_cgroup_memory";
const CLONE3: &str = "clone3_into_cgroup_memory";

/// The binary `name`, built beside this one (cargo puts every binary of the crate in one
/// directory).
fn sibling(name: &str) -> Result<PathBuf, Error> {
    let me = std::env::current_exe().map_err(|e| Error::io("failed to find this program", e))?;
    let path = me.with_file_name(name);
    if path.is_file() {
        Ok(path)
    } else {
        let dir = path.parent().unwrap_or(Path::new("."));
        Err(Error::cannot_run(format!(
            "{name} is not built in {}: build every binary first, `cargo build --bins` (add \
             --release for a release build)",
            dir.display()
        )))
    }
}

/// The result of R runs of one placement with one set of options.
struct Tally {
    matched: usize,
    runs: usize,
    /// Microseconds from clone to inside the cgroup, over the runs where it was moved.
    times: Vec<u64>,
}

/// Runs the binary `story` `runs` times with `args`. A run that cannot run at all stops
/// everything, with its reason; so does an interruption (see [`run_once`]).
fn tally(watch: &SignalWatch, story: &str, args: &[&str], runs: usize) -> Result<Tally, Error> {
    let path = sibling(story)?;
    let mut tally = Tally { matched: 0, runs, times: Vec::with_capacity(runs) };
    for _ in 0..runs {
        let output = run_once(watch, &path, args)?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last = stdout.lines().last().unwrap_or("");
        let field = |key: &str| {
            last.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        let said = stderr.lines().next().unwrap_or("");
        match field("verdict") {
            Some("as-claimed") => tally.matched += 1,
            Some("not-as-claimed") => {}
            Some("cannot-run") => {
                let why = said.split_once(": cannot run here: ").map_or(said, |(_, why)| why);
                return Err(Error::cannot_run(why.to_string()));
            }
            // A signal that reached the run but not this program: someone else's.
            Some("interrupted") => {
                return Err(Error::Failed(format!("{story} was stopped: {said}")))
            }
            _ => {
                return Err(Error::Failed(format!(
                    "{story} printed no summary ({}): {last}",
                    output.status
                )))
            }
        }
        if let Some(us) = field("clone_to_cgroup_us").and_then(|v| v.parse().ok()) {
            tally.times.push(us);
        }
    }
    tally.times.sort_unstable();
    Ok(tally)
}

/// One run of the story at `path`, with `args`, to its end, with its output.
///
/// The interruptions are blocked in this program (`watch`), so they wait until this loop takes
/// them. One that comes meanwhile is passed on to the run, unless it reached the run already (Ctrl-C
/// goes to the whole process group): the run then cleans up its own child and cgroup and
/// exits, and the interruption ends this program too. The run's output stays in its pipes
/// until it has ended; a run prints a few lines, far less than a pipe holds (64 KiB).
fn run_once(watch: &SignalWatch, path: &Path, args: &[&str]) -> Result<Output, Error> {
    let failed = |e| Error::io(&format!("failed to run {}", path.display()), e);
    // Its signal mask starts empty (std resets it): the run blocks what it needs itself.
    let mut run = Command::new(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(failed)?;
    let pid = Pid::from_raw(run.id() as i32);
    let mut interrupted = None;
    // SIGCHLD is watched too: it ends the wait as soon as the run has ended.
    while run.try_wait().map_err(failed)?.is_none() {
        match watch.next(Instant::now() + Duration::from_millis(100))? {
            Some(r) if r.is_interruption() && interrupted.is_none() => {
                interrupted = Some(r.signal);
                // Gone already, if it had not yet blocked the signal: nothing to clean up then.
                let _ = send(pid, r.signal);
            }
            _ => {}
        }
    }
    let output = run.wait_with_output().map_err(failed)?;
    match interrupted.or(watch.pending_interruption()?) {
        Some(signal) => {
            // What the run said of its own cleanup (a cgroup it could not remove) is ours to
            // pass on; its "interrupted" line is not.
            let stderr = String::from_utf8_lossy(&output.stderr);
            for line in stderr.lines().filter(|l| !l.contains(": interrupted by ")) {
                eprintln!("cgroup_race: {}: {line}", path.display());
            }
            Err(Error::Interrupted(signal))
        }
        None => Ok(output),
    }
}

/// The median time of both children's runs, or that none was moved.
fn median(small: &Tally, big: &Tally) -> String {
    let mut all: Vec<u64> = small.times.iter().chain(&big.times).copied().collect();
    all.sort_unstable();
    match all.get(all.len() / 2) {
        Some(&us) => format!("{:.2} ms", us as f64 / 1000.0),
        None => "never moved".to_string(),
    }
}

/// The cgroup2 mount's options (`/proc/self/mounts`), for a remount that changes one and back.
fn mount_options(mount: &Cgroup2Mount) -> Result<String, Error> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")
        .map_err(|e| Error::io("failed to read /proc/self/mounts", e))?;
    let path = mount.path.to_string_lossy();
    mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[1] == path && f[2] == "cgroup2")
        // Only cgroup2's own options: the VFS ones (rw, relatime, ...) are not mount data,
        // and a kernel refuses them there.
        .map(|f| f[3].split(',').filter(|o| kernel_knows(o)).collect::<Vec<_>>().join(","))
        .ok_or_else(|| Error::Failed(format!("{path} is not in /proc/self/mounts")))
}

/// Whether `option` is a cgroup2 mount option this kernel lists in /sys/kernel/cgroup/features.
fn kernel_knows(option: &str) -> bool {
    let features = std::fs::read_to_string("/sys/kernel/cgroup/features").unwrap_or_default();
    features.lines().any(|line| line.trim() == option)
}

/// `mount -o remount,OPTIONS none PATH`.
fn remount(mount_point: &Path, options: &str) -> nix::Result<()> {
    mount(None::<&str>, mount_point, None::<&str>, MsFlags::MS_REMOUNT, Some(options))
}

/// The cgroup2 mount, remounted with `favordynmods` until [`put_back`](Self::put_back) or drop
/// (an error, an interruption) remounts it with the options it had.
struct Favordynmods {
    path: PathBuf,
    options: String,
    put_back: bool,
}

impl Favordynmods {
    fn remount(mount: &Cgroup2Mount) -> Result<Favordynmods, Error> {
        let options = mount_options(mount)?;
        let with = if options.is_empty() {
            "favordynmods".into()
        } else {
            format!("{options},favordynmods")
        };
        remount(&mount.path, &with)
            .map_err(|e| Error::sys("mount(MS_REMOUNT, favordynmods)", e))?;
        Ok(Favordynmods { path: mount.path.clone(), options, put_back: false })
    }

    fn put_back(mut self) -> Result<(), Error> {
        self.put_back = true;
        remount(&self.path, &self.options).map_err(|e| Error::sys("mount(MS_REMOUNT) back", e))
    }
}

impl Drop for Favordynmods {
    fn drop(&mut self) {
        if !self.put_back {
            if let Err(e) = remount(&self.path, &self.options) {
                eprintln!(
                    "cgroup_race: could not put back the options of {} ({e}): run `mount -o \
                     remount,{} none {}`",
                    self.path.display(),
                    self.options,
                    self.path.display()
                );
            }
        }
    }
}

fn run(args: &[String]) -> Result<Summary, Error> {
    let (mut runs, mut delays) = (20usize, vec![0u64, 1, 2, 5, 10, 20, 50, 100]);
    let mut rows_asked: Vec<String> = ROWS.map(String::from).to_vec();
    let mut parent = None;
    for_each_option(args, |name, opt| {
        match name {
            "--runs" => runs = parse_number(name, &opt.value()?, 1, 100_000)? as usize,
            "--delays" => {
                delays = opt
                    .value()?
                    .split(',')
                    .map(|d| parse_number(name, d.trim(), 0, 10_000))
                    .collect::<Result<_, _>>()?
            }
            "--rows" => {
                rows_asked = opt.value()?.split(',').map(|r| r.trim().to_string()).collect();
                if let Some(bad) = rows_asked.iter().find(|r| !ROWS.contains(&r.as_str())) {
                    return Err(Error::Usage(format!(
                        "--rows: {bad:?} is not a row; the rows are {}",
                        ROWS.join(", ")
                    )));
                }
            }
            "--parent" => parent = Some(opt.value()?),
            other => return Err(unknown_option(other)),
        }
        Ok(())
    })?;
    let asked = |row: &str| rows_asked.iter().any(|r| r == row);
    // Every run gets the same --parent, and checks it as the scenario itself would.
    let parent_args: Vec<&str> = match &parent {
        Some(dir) => vec!["--parent", dir.as_str()],
        None => Vec::new(),
    };
    // From here on, SIGINT, SIGTERM and SIGHUP wait until a run has ended (see run_once).
    let watch = SignalWatch::install()?;
    // The first run refuses, with the scenario's own reason, where this machine cannot run
    // them; nothing is printed before it.
    let first = tally(&watch, CLONE3, &parent_args, 1)?;

    say!("cgroup_race: {runs} runs per row and child, memory.max = 4096");
    say!("");
    say!(
        "{:<28} {:>8}  {:>16}  {:>16}  {:>20}",
        "placement",
        "delay",
        "small as claimed",
        "big as claimed",
        "clone to in cgroup"
    );
    let row = |placement: &str, delay: &str, small: &Tally, big: &Tally, time: String| {
        let (s, b) =
            (format!("{}/{}", small.matched, small.runs), format!("{}/{}", big.matched, big.runs));
        say!("{placement:<28} {delay:>8}  {s:>16}  {b:>16}  {time:>20}");
    };
    // Both children of a placement, `runs` times each.
    let pair = |story: &str, args: &[&str]| -> Result<(Tally, Tally), Error> {
        let args = [args, &parent_args].concat();
        let small = tally(&watch, story, &args, runs)?;
        Ok((small, tally(&watch, &format!("{story}_fail"), &args, runs)?))
    };
    let mut rows = 0;
    for &delay in delays.iter().filter(|_| asked("delayed")) {
        let delay_arg = delay.to_string();
        let (small, big) = pair(DELAYED, &["--delay", delay_arg.as_str()])?;
        row("delayed", &format!("{delay} ms"), &small, &big, median(&small, &big));
        rows += 1;
    }
    let mut synced_all_matched = first.matched == 1;
    if asked("signal-synced") {
        let (small, big) = pair(SIGNAL_SYNCED, &[])?;
        synced_all_matched &= small.matched == runs && big.matched == runs;
        row("signal-synced", "-", &small, &big, median(&small, &big));
        rows += 1;
    }

    // The same with favordynmods, where the kernel has it. The mount is put back after the
    // row, and by the guard's drop if an error or an interruption ends the row early.
    let favordynmods = if !asked("favordynmods") {
        "not-asked"
    } else if kernel_knows("favordynmods") {
        let remounted = Favordynmods::remount(&Cgroup2Mount::find()?)?;
        let (small, big) = pair(SIGNAL_SYNCED, &[])?;
        remounted.put_back()?;
        synced_all_matched &= small.matched == runs && big.matched == runs;
        row("favordynmods, signal-synced", "-", &small, &big, median(&small, &big));
        "measured"
    } else {
        say!("{:<28} {:>8}  not offered by this kernel", "favordynmods", "-");
        "not-offered"
    };
    if asked("clone3") {
        let (small, big) = pair(CLONE3, &[])?;
        synced_all_matched &= small.matched == runs && big.matched == runs;
        row("clone3", "-", &small, &big, "0 (born there)".into());
        rows += 1;
    }
    say!("");
    say!("delayed: the child sleeps DELAY after its warm-up and the parent moves it at DELAY/2;");
    say!(
        "clone to in cgroup: the median time from just before clone to the move having been made."
    );
    Ok(Summary::new(SCENARIO.name, Verdict::of(synced_all_matched))
        .field("runs", runs)
        .field("rows", rows)
        .field("favordynmods", favordynmods))
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}
