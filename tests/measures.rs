//! The two measuring binaries run, on tiny inputs, and print well-formed tables. Their
//! numbers are not checked: speed belongs to benchmarks, not tests.

mod common;
use common::*;

/// The table rows of a run: lines whose first word is one of `names`.
fn rows<'a>(run: &'a Run, names: &[&str]) -> Vec<Vec<&'a str>> {
    run.stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.first().is_some_and(|first| names.contains(first)))
        .collect()
}

#[test]
fn spawn_bench_prints_one_row_per_method_and_size() {
    let run = run("spawn_bench", &["-n", "3", "--sizes", "1,2"]);
    assert_eq!(run.code, 0, "{run}");
    let methods = ["fork", "vfork", "clone", "clone3", "fork+exec", "vfork+exec", "posix_spawn"];
    let table = rows(&run, &methods);
    assert_eq!(table.len(), 14, "{run}");
    for row in &table {
        // method, size, "MB", seconds, rate, µs, ratio, TLPI
        assert_eq!(row.len(), 8, "{row:?}");
        assert!(row[1] == "1" || row[1] == "2", "{row:?}");
        // A coarse clock (a VM without a stable TSC) may time 3 children as 0 s.
        for number in [row[3], row[4], row[5]] {
            assert!(number.parse::<f64>().is_ok_and(|n| n >= 0.0), "{row:?}");
        }
    }
    assert_eq!(table[0][6], "1.00", "fork is the reference: {run}");
    assert_eq!(run.summary().get("rows"), Some("14"));
}

#[test]
fn spawn_bench_stops_on_sigterm_after_its_row_with_128_plus_the_signal() {
    let mut running = Running::start("spawn_bench", &["-n", "2000", "--sizes", "1"]);
    // The header is printed once SIGTERM is blocked: the signal then waits for the first row
    // to end.
    running.line_with("TLPI /s");
    nix::sys::signal::kill(running.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let run = running.finish();
    assert_eq!(run.code, 128 + 15, "{run}");
    assert_eq!(run.summary().verdict, Verdict::Interrupted, "{run}");
    run.assert_nothing_left();
}

#[test]
fn spawn_bench_refuses_bad_options() {
    let run = run("spawn_bench", &["-n", "0"]);
    assert_eq!(run.code, 2, "{run}");
    let run = common::run("spawn_bench", &["--program", "/nonexistent"]);
    assert_eq!(run.code, 2, "{run}");
}

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn cgroup_race_prints_a_row_per_delay_and_placement() {
    let mount = require_cgroup2();
    let run = run("cgroup_race", &["--runs", "2", "--delays", "0,50"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.summary().verdict, Verdict::AsClaimed);
    let table = rows(&run, &["delayed", "signal-synced", "clone3"]);
    assert_eq!(table.len(), 4, "{run}");
    for row in &table {
        assert!(row.iter().any(|w| w.contains('/')), "{row:?}");
    }
    assert!(table[2].contains(&"2/2") && table[3].contains(&"2/2"), "{run}");
    // Where the kernel has favordynmods, the signal-synced pair ran with it too, every time
    // as claimed; where not, the row says so.
    let favordynmods = rows(&run, &["favordynmods,", "favordynmods"]);
    assert_eq!(favordynmods.len(), 1, "{run}");
    match run.summary().get("favordynmods") {
        Some("measured") => assert!(favordynmods[0].contains(&"2/2"), "{run}"),
        Some("not-offered") => assert!(run.stdout.contains("not offered by this kernel"), "{run}"),
        other => panic!("favordynmods={other:?}: {run}"),
    }
    // Its runs are processes of its group; their cgroups carry their own pids.
    run.assert_nothing_left();
    assert_eq!(stale_cgroups(&mount), Vec::<std::path::PathBuf>::new());
}
