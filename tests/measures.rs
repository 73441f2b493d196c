//! The two measuring binaries run, on tiny inputs, and print well-formed tables. Their
//! numbers are not checked: speed belongs to benchmarks, not tests.

use std::sync::Mutex;

use clone_cgroup::cgroup::enable_controller;
use nix::sys::signal::{kill, killpg, Signal};

mod common;
use common::*;

/// cgroup_race remounts the cgroup2 mount and puts it back: two runs at once would each put
/// back what the other set. Its tests take this lock.
static REMOUNTS: Mutex<()> = Mutex::new(());

/// The options of the cgroup2 mount, as /proc/self/mounts lists them.
fn cgroup2_mount_options() -> String {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounts.lines().find(|l| l.split_whitespace().nth(2) == Some("cgroup2")).unwrap();
    line.split_whitespace().nth(3).unwrap().to_string()
}

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

/// A row of ten million children would take minutes: a run that ends at all was stopped in
/// the middle of its first row. Once to the program alone, once to its process group (Ctrl-C).
#[test]
fn spawn_bench_stops_within_a_row_on_an_interruption_with_128_plus_the_signal() {
    for (signal, to_group) in [(Signal::SIGTERM, false), (Signal::SIGINT, true)] {
        let mut running = Running::start("spawn_bench", &["-n", "10000000", "--sizes", "1"]);
        // The header is printed once the interruptions are blocked: from then on they wait
        // for the loop to look for them.
        running.line_with("TLPI /s");
        let pid = running.pid();
        if to_group { killpg(pid, signal) } else { kill(pid, signal) }.unwrap();
        let run = running.finish();
        assert_eq!(run.code, 128 + signal as i32, "{run}");
        assert_eq!(run.summary().verdict, Verdict::Interrupted, "{run}");
        assert!(rows(&run, &["fork"]).is_empty(), "the row was finished: {run}");
        run.assert_nothing_left();
    }
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
    let _alone = REMOUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let options = cgroup2_mount_options();
    let run = run("cgroup_race", &["--runs", "1", "--delays", "0,50"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.summary().verdict, Verdict::AsClaimed);
    let table = rows(&run, &["delayed", "signal-synced", "clone3"]);
    assert_eq!(table.len(), 4, "{run}");
    for row in &table {
        assert!(row.iter().any(|w| w.contains('/')), "{row:?}");
    }
    assert!(table[2].contains(&"1/1") && table[3].contains(&"1/1"), "{run}");
    // Where the kernel has favordynmods, the signal-synced pair ran with it too, every time
    // as claimed; where not, the row says so.
    let favordynmods = rows(&run, &["favordynmods,", "favordynmods"]);
    assert_eq!(favordynmods.len(), 1, "{run}");
    match run.summary().get("favordynmods") {
        Some("measured") => assert!(favordynmods[0].contains(&"1/1"), "{run}"),
        Some("not-offered") => assert!(run.stdout.contains("not offered by this kernel"), "{run}"),
        other => panic!("favordynmods={other:?}: {run}"),
    }
    // Its runs are processes of its group; their cgroups carry their own pids.
    run.assert_nothing_left();
    assert_eq!(stale_cgroups(&mount), Vec::<std::path::PathBuf>::new());
    assert_eq!(cgroup2_mount_options(), options, "the mount was not put back");
}

/// Interrupts cgroup_race with `signal` (to its process group, as Ctrl-C does, or to it
/// alone) once `ready` says it is in the phase to test; checks that it ends with 128 +
/// the signal and a `verdict=interrupted` summary, with the mount's options as they were and
/// no cgroup or process left.
fn interrupt_cgroup_race(args: &[&str], ready: impl Fn() -> bool, signal: Signal, to_group: bool) {
    let mount = require_cgroup2();
    let _alone = REMOUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let options = cgroup2_mount_options();
    // A parent of its own for the runs' cgroups, which no other test's run touches: what is
    // left in it afterwards was left by this run. The root hands the memory controller down.
    enable_controller(&mount.path, "memory").unwrap();
    let parent = mount.path.join(format!("race-interrupted-{}", std::process::id()));
    std::fs::create_dir(&parent).unwrap();
    let args = [args, &["--parent", parent.to_str().unwrap()]].concat();
    let mut running = Running::start("cgroup_race", &args);
    // Its table's header comes once the interruptions are blocked and the first run is done.
    running.line_with("clone to in cgroup");
    let waited = std::time::Instant::now();
    while !ready() {
        assert!(waited.elapsed().as_secs() < 120, "the phase never came: {:?}", running.seen);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let pid = running.pid();
    if to_group { killpg(pid, signal) } else { kill(pid, signal) }.unwrap();
    let run = running.finish();
    let left = own_cgroups(&parent);
    let _ = std::fs::remove_dir(&parent);
    assert_eq!(run.code, 128 + signal as i32, "{run}");
    assert_eq!(run.summary().verdict, Verdict::Interrupted, "{run}");
    assert!(run.stderr.contains(&format!("interrupted by {}", signal.as_str())), "{run}");
    assert!(!run.stderr.contains("cannot run here"), "{run}");
    assert!(!run.stderr.contains("--run"), "a run said something of its cleanup: {run}");
    assert_eq!(cgroup2_mount_options(), options, "the mount was not put back: {run}");
    assert_eq!(left, Vec::<std::path::PathBuf>::new(), "{run}");
    run.assert_nothing_left();
}

/// Whether the kernel offers the favordynmods mount option (6.0 and later).
fn favordynmods_offered() -> bool {
    let features = std::fs::read_to_string("/sys/kernel/cgroup/features").unwrap_or_default();
    features.lines().any(|l| l.trim() == "favordynmods")
}

/// The phase that changes the machine: the mount carries favordynmods (where the kernel
/// has it; elsewhere the signal-synced row, the same runs without the remount).
fn while_the_mount_is_changed(signal: Signal, to_group: bool) {
    if favordynmods_offered() {
        let args = ["--rows", "favordynmods", "--runs", "100000"];
        interrupt_cgroup_race(
            &args,
            || cgroup2_mount_options().contains("favordynmods"),
            signal,
            to_group,
        );
    } else {
        let args = ["--rows", "signal-synced", "--runs", "100000"];
        interrupt_cgroup_race(&args, || true, signal, to_group);
    }
}

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn cgroup_race_sigterm_to_its_group_with_favordynmods_puts_the_mount_back() {
    while_the_mount_is_changed(Signal::SIGTERM, true);
}

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn cgroup_race_sighup_to_it_alone_with_favordynmods_puts_the_mount_back() {
    while_the_mount_is_changed(Signal::SIGHUP, false);
}

/// Ctrl-C in a delayed row: the run under way gets it too, and must not be taken for one
/// that cannot run here.
#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn cgroup_race_ctrl_c_while_it_measures_delays_is_an_interruption() {
    let args = ["--rows", "delayed", "--delays", "20", "--runs", "100000"];
    interrupt_cgroup_race(&args, || true, Signal::SIGINT, true);
    let args = ["--rows", "delayed", "--delays", "20", "--runs", "100000"];
    interrupt_cgroup_race(&args, || true, Signal::SIGINT, false);
}
