//! Every memory scenario, many times in one boot: outcomes tallied, none unexpected, nothing
//! left behind. STRESS_RUNS sets the count (default 200). Needs root and cgroup v2: runs in
//! the VM.

use std::collections::BTreeMap;
use std::time::Instant;

use clone_cgroup::cli::Verdict;

mod common;
use common::*;

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn every_memory_scenario_many_times_in_one_boot() {
    let mount = require_cgroup2();
    let runs: usize = std::env::var("STRESS_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let mut unexpected = Vec::new();
    for name in MEMORY_SCENARIOS {
        let started = Instant::now();
        let mut tally: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..runs {
            let run = run(name, &[]);
            let summary = run.summary();
            let key = format!(
                "{} outcome={} oom_kill={} peak={}",
                summary.verdict.token(),
                summary.get("outcome").unwrap_or("?"),
                summary.get("oom_kill").unwrap_or("?"),
                summary.get("peak").unwrap_or("?")
            );
            *tally.entry(key).or_default() += 1;
            if run.code != 0 || summary.verdict != Verdict::AsClaimed {
                unexpected.push(format!("{name} run {i}: {run}"));
            }
            let left = own_cgroups(&mount.path);
            if !left.is_empty() {
                unexpected.push(format!("{name} run {i} left {left:?}"));
            }
        }
        eprintln!("stress {name}: {runs} runs in {:.1?}", started.elapsed());
        for (outcome, count) in &tally {
            eprintln!("stress {name}:   {count:>4} x {outcome}");
        }
    }
    let leftovers = leftover_processes();
    eprintln!(
        "stress: cgroups left {:?}, processes left {leftovers:?}",
        own_cgroups(&mount.path)
    );
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(
        unexpected.is_empty(),
        "{} unexpected:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}
