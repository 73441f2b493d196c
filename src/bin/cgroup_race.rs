//! cgroup_race: how often the delayed placement loses its bet on timing, beside the
//! signal-synced and clone3 placements, which do not bet; and what a move into a cgroup costs.
//!
//! Usage: `sudo cargo run --release --bin cgroup_race -- [--runs R] [--delays MS,MS,...]`
//!
//! It runs the memory scenarios many times in a memory.max=4096 cgroup: the delayed pair at
//! each delay (default 0, 1, 2, 5, 10, 20, 50 and 100 ms; the parent moves the child at half
//! the delay), and the signal-synced and clone3 pairs, R times each (default 20). Each run is
//! a process of its own: this program, started again with `--run PLACEMENT`, telling the
//! scenario's own story (the story files are part of this program), so it needs no other
//! binary. For every row it prints how often the run ended as claimed (the small child
//! survived inside the limit; the big child was killed by the OOM killer) and the median time
//! from clone to the child being inside the cgroup.
//!
//! Where the kernel offers it (6.0 and later), the signal-synced pair runs once more with the
//! cgroup2 mount remounted with `favordynmods`, and the mount is put back afterwards: a write
//! to `cgroup.procs` write-locks a rwsem whose default, percpu mode waits for an RCU grace
//! period; favordynmods trades that for slower forks. Expect the delayed pair to miss at small
//! delays and the other rows never to. Exit status 0 when the signal-synced and clone3
//! placements matched every time.

// The three stories are programs of their own, each with its own copy of the shared
// command line; holding them all, this one loads that file more than once.
#![allow(clippy::duplicate_mod)]

use std::path::Path;
use std::process::{Command, ExitCode};

#[path = "shared/cli.rs"]
#[allow(dead_code)] // each binary uses a part of the shared command line
mod cli;

use cli::{for_each_option, parse_number, unknown_option, Scenario, Summary, Verdict};
use clone_cgroup::cgroup::Cgroup2Mount;
use clone_cgroup::Error;
use nix::mount::{mount, MsFlags};

// The three stories, told here in processes of their own (`--run`).
#[allow(dead_code)]
#[path = "clone3_into_cgroup_memory.rs"]
mod clone3;
#[allow(dead_code)]
#[path = "clone_waitpid_cgroup_memory.rs"]
mod delayed;
#[allow(dead_code)]
#[path = "clone_wait_signal_cgroup_memory.rs"]
mod signal_synced;

const SCENARIO: Scenario = Scenario {
    name: "cgroup_race",
    about:
        "Runs the delayed placement at delays from 0 to 100 ms, and the signal-synced and clone3\n\
            placements, many times each; prints how often each ended as claimed, and the cost\n\
            of a move, with and without the favordynmods mount option.",
    options: "      --runs R         runs per placement, delay and child [default: 20]
      --delays LIST    delays in ms for the delayed pair [default: 0,1,2,5,10,20,50,100]
",
};

/// One run of a placement, for `--run PLACEMENT`: `delayed`, `signal` or `clone3`, with
/// `_fail` for the big child. Prints the story's transcript and summary line, as its own
/// binary would.
fn run_one(placement: &str, args: &[String]) -> ExitCode {
    let fail = placement.ends_with("_fail");
    let result = match placement.trim_end_matches("_fail") {
        "delayed" => {
            use delayed::cli::Claim;
            let claim = if fail { Claim::KilledByKernel } else { Claim::Survives };
            delayed::run(placement, claim, args).map(|summary| summary.to_string())
        }
        "signal" => {
            use signal_synced::cli::Claim;
            let claim = if fail { Claim::KilledByKernel } else { Claim::Survives };
            signal_synced::run(placement, claim, args).map(|summary| summary.to_string())
        }
        "clone3" => {
            use clone3::cli::Claim;
            let claim = if fail { Claim::KilledByKernel } else { Claim::Survives };
            clone3::run(placement, claim, args).map(|summary| summary.to_string())
        }
        other => Err(Error::Usage(format!("--run {other:?}: not a placement"))),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{placement}: {e}");
            println!("summary scenario={placement} verdict=cannot-run");
            ExitCode::from(cli::exit_code(&e))
        }
    }
}

/// The result of R runs of one placement with one set of options.
struct Tally {
    matched: usize,
    runs: usize,
    /// Microseconds from clone to inside the cgroup, over the runs where it was moved.
    times: Vec<u64>,
}

/// Runs `placement` (this program with `--run`) `runs` times with `args`. A run that cannot
/// run at all stops everything, with its reason.
fn tally(placement: &str, args: &[&str], runs: usize) -> Result<Tally, Error> {
    let me = std::env::current_exe().map_err(|e| Error::io("failed to find this program", e))?;
    let mut tally = Tally { matched: 0, runs, times: Vec::with_capacity(runs) };
    for _ in 0..runs {
        let output =
            Command::new(&me).arg("--run").arg(placement).args(args).output().map_err(|e| {
                Error::io(&format!("failed to run {} --run {placement}", me.display()), e)
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last = stdout.lines().last().unwrap_or("");
        let field = |key: &str| {
            last.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        };
        match field("verdict") {
            Some("as-claimed") => tally.matched += 1,
            Some("not-as-claimed") => {}
            Some("cannot-run") => {
                let why = String::from_utf8_lossy(&output.stderr);
                let why = why.lines().next().unwrap_or("").split_once(": cannot run here: ");
                return Err(Error::cannot_run(why.map_or("", |(_, why)| why).to_string()));
            }
            _ => {
                return Err(Error::Failed(format!("--run {placement} printed no summary: {last}")))
            }
        }
        if let Some(us) = field("clone_to_cgroup_us").and_then(|v| v.parse().ok()) {
            tally.times.push(us);
        }
    }
    tally.times.sort_unstable();
    Ok(tally)
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

fn run(args: &[String]) -> Result<Summary, Error> {
    let (mut runs, mut delays) = (20usize, vec![0u64, 1, 2, 5, 10, 20, 50, 100]);
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
            other => return Err(unknown_option(other)),
        }
        Ok(())
    })?;
    // The first run refuses, with the scenario's own reason, where this machine cannot run
    // them; nothing is printed before it.
    let first = tally("clone3", &[], 1)?;

    println!("cgroup_race: {runs} runs per row and child, memory.max = 4096");
    println!();
    let header = ("placement", "delay", "small as claimed", "big as claimed", "clone to in cgroup");
    println!(
        "{:<28} {:>8}  {:>16}  {:>16}  {:>20}",
        header.0, header.1, header.2, header.3, header.4
    );
    let row = |placement: &str, delay: &str, small: &Tally, big: &Tally, time: String| {
        let (s, b) =
            (format!("{}/{}", small.matched, small.runs), format!("{}/{}", big.matched, big.runs));
        println!("{placement:<28} {delay:>8}  {s:>16}  {b:>16}  {time:>20}");
    };
    let mut rows = 0;
    for &delay in &delays {
        let delay_arg = delay.to_string();
        let args = ["--delay", delay_arg.as_str()];
        let small = tally("delayed", &args, runs)?;
        let big = tally("delayed_fail", &args, runs)?;
        row("delayed", &format!("{delay} ms"), &small, &big, median(&small, &big));
        rows += 1;
    }
    let mut synced_all_matched = first.matched == 1;
    let (small, big) = (tally("signal", &[], runs)?, tally("signal_fail", &[], runs)?);
    synced_all_matched &= small.matched == runs && big.matched == runs;
    row("signal-synced", "-", &small, &big, median(&small, &big));

    // The same with favordynmods, where the kernel has it; the mount is put back after.
    let mount = Cgroup2Mount::find()?;
    let options = mount_options(&mount)?;
    let with =
        if options.is_empty() { "favordynmods".into() } else { format!("{options},favordynmods") };
    let favordynmods = match kernel_knows("favordynmods").then(|| remount(&mount.path, &with)) {
        Some(Err(errno)) => return Err(Error::sys("mount(MS_REMOUNT, favordynmods)", errno)),
        Some(Ok(())) => {
            let measured = (tally("signal", &[], runs), tally("signal_fail", &[], runs));
            remount(&mount.path, &options).map_err(|e| Error::sys("mount(MS_REMOUNT) back", e))?;
            let (small, big) = (measured.0?, measured.1?);
            synced_all_matched &= small.matched == runs && big.matched == runs;
            row("favordynmods, signal-synced", "-", &small, &big, median(&small, &big));
            "measured"
        }
        None => {
            println!("{:<28} {:>8}  not offered by this kernel", "favordynmods", "-");
            "not-offered"
        }
    };
    let (small, big) = (tally("clone3", &[], runs)?, tally("clone3_fail", &[], runs)?);
    synced_all_matched &= small.matched == runs && big.matched == runs;
    row("clone3", "-", &small, &big, "0 (born there)".into());
    rows += 2;
    println!();
    println!(
        "delayed: the child sleeps DELAY after its warm-up and the parent moves it at DELAY/2;"
    );
    println!(
        "clone to in cgroup: the median time from clone returning to the move having been made."
    );
    Ok(Summary::new(SCENARIO.name, Verdict::of(synced_all_matched))
        .field("runs", runs)
        .field("rows", rows)
        .field("favordynmods", favordynmods))
}

fn main() -> ExitCode {
    // `--run PLACEMENT ...`: one run, as this program starts it for every row.
    let args: Vec<String> =
        std::env::args_os().skip(1).filter_map(|a| a.into_string().ok()).collect();
    if args.len() >= 2 && args[0] == "--run" {
        return run_one(&args[1], &args[2..]);
    }
    SCENARIO.main(run)
}
