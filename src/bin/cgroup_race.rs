//! cgroup_race: how often the delayed placement loses its bet on timing, beside the
//! signal-synced and clone3 placements, which do not bet.
//!
//! Usage: `sudo cargo run --release --bin cgroup_race -- [--runs R] [--delays MS,MS,...]`
//!
//! It runs the memory scenario binaries (built next to it) many times in a memory.max=4096
//! cgroup: the delayed pair at each delay (default 0, 1, 2, 5, 10, 20, 50 and 100 ms; the
//! parent moves the child at half the delay), and the signal-synced and clone3 pairs, R times
//! each (default 20). For every placement and delay it prints how often the outcome matched
//! the claim (the small child survived; the big child was killed by the OOM killer) and the
//! median time from clone to the child being inside the cgroup. Expect the delayed pair to
//! miss at small delays, both ways (a small child moved before its warm-up is killed; a big
//! child moved after its writes survives), and the other two never to miss. Exit status 0
//! when the signal-synced and clone3 placements matched every time.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clone_cgroup::cli::{
    for_each_option, parse_number, unknown_option, Scenario, Summary, Verdict,
};
use clone_cgroup::Error;

const SCENARIO: Scenario = Scenario {
    name: "cgroup_race",
    about:
        "Runs the delayed placement at delays from 0 to 100 ms, and the signal-synced and clone3\n\
            placements, many times each; prints how often each outcome matched its claim.",
    options: "      --runs R         runs per placement, delay and child [default: 20]
      --delays LIST    delays in ms for the delayed pair [default: 0,1,2,5,10,20,50,100]
",
};

/// The result of R runs of one binary with one set of options.
struct Tally {
    matched: usize,
    runs: usize,
    /// Median microseconds from clone to inside the cgroup, over runs where it was moved.
    median_us: Option<u64>,
}

/// Runs `binary` `runs` times with `args`; a run that cannot run at all stops everything.
fn tally(dir: &Path, binary: &str, args: &[String], runs: usize) -> Result<Tally, Error> {
    let mut matched = 0;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let output = Command::new(dir.join(binary))
            .args(args)
            .output()
            .map_err(|e| Error::io(&format!("failed to run {binary}"), e))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let summary = stdout
            .lines()
            .last()
            .and_then(Summary::parse)
            .ok_or_else(|| {
                Error::Failed(format!(
                    "{binary} printed no summary: {}",
                    String::from_utf8_lossy(&output.stderr)
                ))
            })?;
        match summary.verdict {
            Verdict::AsClaimed => matched += 1,
            Verdict::NotAsClaimed => {}
            Verdict::CannotRun => {
                let why = String::from_utf8_lossy(&output.stderr);
                return Err(Error::cannot_run(
                    why.trim()
                        .trim_start_matches(&format!("{binary}: cannot run here: "))
                        .to_string(),
                ));
            }
            Verdict::Interrupted => return Err(Error::Failed(format!("{binary} was interrupted"))),
        }
        if let Some(us) = summary
            .get("clone_to_cgroup_us")
            .and_then(|v| v.parse().ok())
        {
            times.push(us);
        }
    }
    times.sort_unstable();
    Ok(Tally {
        matched,
        runs,
        median_us: times.get(times.len() / 2).copied(),
    })
}

fn cell(t: &Tally) -> String {
    format!("{}/{}", t.matched, t.runs)
}

fn time(small: &Tally, big: &Tally) -> String {
    let mut all: Vec<u64> = small.median_us.into_iter().chain(big.median_us).collect();
    all.sort_unstable();
    match all.first() {
        Some(&us) => format!("{:.2} ms", us as f64 / 1000.0),
        None => "never moved".to_string(),
    }
}

fn run(args: &[String]) -> Result<Summary, Error> {
    let (mut runs, mut delays) = (20usize, vec![0u64, 1, 2, 5, 10, 20, 50, 100]);
    for_each_option(args, |name, value| {
        match name {
            "--runs" => runs = parse_number(name, &value()?, 1, 100_000)? as usize,
            "--delays" => {
                delays = value()?
                    .split(',')
                    .map(|d| parse_number(name, d.trim(), 0, 10_000))
                    .collect::<Result<_, _>>()?
            }
            other => return Err(unknown_option(other)),
        }
        Ok(())
    })?;
    let dir: PathBuf = std::env::current_exe()
        .map_err(|e| Error::io("failed to find this program", e))?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    for binary in [
        "clone_waitpid_cgroup_memory",
        "clone3_into_cgroup_memory_fail",
    ] {
        if !dir.join(binary).exists() {
            return Err(Error::cannot_run(format!(
                "{binary} is not next to this program: build every binary (cargo build --release)"
            )));
        }
    }

    println!("cgroup_race: {runs} runs per row and child, memory.max = 4096");
    println!();
    println!(
        "{:<15} {:>8}  {:>15}  {:>15}  {:>22}",
        "placement", "delay", "small survived", "big killed", "clone to in cgroup"
    );
    let mut synced_all_matched = true;
    let mut rows = 0;
    for &delay in &delays {
        let args = vec!["--delay".to_string(), delay.to_string()];
        let small = tally(&dir, "clone_waitpid_cgroup_memory", &args, runs)?;
        let big = tally(&dir, "clone_waitpid_cgroup_memory_fail", &args, runs)?;
        println!(
            "{:<15} {:>5} ms  {:>15}  {:>15}  {:>22}",
            "delayed",
            delay,
            cell(&small),
            cell(&big),
            time(&small, &big)
        );
        rows += 1;
    }
    for (placement, binary) in [
        ("signal-synced", "clone_wait_signal_cgroup_memory"),
        ("clone3", "clone3_into_cgroup_memory"),
    ] {
        let small = tally(&dir, binary, &[], runs)?;
        let big = tally(&dir, &format!("{binary}_fail"), &[], runs)?;
        synced_all_matched &= small.matched == runs && big.matched == runs;
        let when = if placement == "clone3" {
            "0 (born there)".to_string()
        } else {
            time(&small, &big)
        };
        println!(
            "{:<15} {:>8}  {:>15}  {:>15}  {:>22}",
            placement,
            "-",
            cell(&small),
            cell(&big),
            when
        );
        rows += 1;
    }
    println!();
    println!(
        "delayed: the child sleeps DELAY after its warm-up and the parent moves it at DELAY/2;"
    );
    println!(
        "clone to in cgroup: the median time from clone returning to the move having been made."
    );
    Ok(Summary::new(SCENARIO.name, Verdict::of(synced_all_matched))
        .field("runs", runs)
        .field("rows", rows))
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}
