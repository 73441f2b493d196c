//! Every memory scenario, many times in one boot and many at once: outcomes tallied, none
//! unexpected, nothing left behind by any run. STRESS_RUNS sets the runs per scenario (default
//! 100), STRESS_JOBS how many run at the same time (default 8). Needs root and cgroup v2: runs
//! in the VM.

use std::collections::BTreeMap;
use std::time::Instant;

mod common;
use common::*;

fn from_env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

/// The kernel's own report of an OOM kill in `run`, from its log: which cgroup, what it
/// held at the kill (the memory.stat lines). Empty where the log cannot be read.
fn kernel_log_of(run: &Run) -> String {
    let Ok(log) = std::process::Command::new("dmesg").output() else {
        return String::new();
    };
    let log = String::from_utf8_lossy(&log.stdout);
    let cgroup = format!("clone-cgroup-{}-", run.pid);
    let lines: Vec<&str> = log.lines().collect();
    match lines.iter().position(|l| l.contains(&cgroup)) {
        Some(first) => format!(
            "--- kernel log\n{}\n",
            lines[first.saturating_sub(5)..(first + 60).min(lines.len())].join("\n")
        ),
        None => String::new(),
    }
}

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn every_memory_scenario_many_times_in_one_boot() {
    let mount = require_cgroup2();
    let runs = from_env("STRESS_RUNS", 100);
    let jobs = from_env("STRESS_JOBS", 8);
    // STRESS_SCENARIOS narrows the run to some scenarios, when chasing a rare outcome.
    let only = std::env::var("STRESS_SCENARIOS").unwrap_or_default();
    let mut unexpected = Vec::new();
    for name in
        MEMORY_SCENARIOS.into_iter().filter(|n| only.is_empty() || only.split(',').any(|o| o == *n))
    {
        let started = Instant::now();
        let mut lost_bets = 0;
        let mut tally: BTreeMap<String, usize> = BTreeMap::new();
        // run_many checks that no run left a cgroup or a process behind.
        for (i, run) in run_many(name, &[], runs, jobs).iter().enumerate() {
            let summary = run.summary();
            let key = format!(
                "{} outcome={} oom_kill={} peak={}",
                summary.verdict.token(),
                summary.get("outcome").unwrap_or("?"),
                summary.get("oom_kill").unwrap_or("?"),
                summary.get("peak").unwrap_or("?")
            ) + &summary.get("bet").map_or(String::new(), |bet| format!(" bet={bet}"));
            *tally.entry(key).or_default() += 1;
            // The delayed pair may lose its bet on timing when eight runs share the CPUs; it
            // must say so (lost_its_bet_and_said_so fails the test on a run that does not).
            if lost_its_bet_and_said_so(run, &summary) {
                lost_bets += 1;
            } else if run.code != 0 || summary.verdict != Verdict::AsClaimed {
                unexpected.push(format!("{name} run {i}: {run}{}", kernel_log_of(run)));
            }
        }
        eprintln!("stress {name}: {runs} runs, {jobs} at a time, in {:.1?}", started.elapsed());
        if lost_bets == runs {
            unexpected.push(format!("{name}: all {runs} runs lost the bet on timing"));
        }
        for (outcome, count) in &tally {
            eprintln!("stress {name}:   {count:>4} x {outcome}");
        }
    }
    assert_eq!(stale_cgroups(&mount), Vec::<std::path::PathBuf>::new());
    assert!(unexpected.is_empty(), "{} unexpected:\n{}", unexpected.len(), unexpected.join("\n"));
}
