//! The scenarios beyond the six: clone3 into a cgroup, pids.max, set_tid, process
//! accounting, and the clone flag table. Root-only ones are `#[ignore]`d and run in the VM.

mod common;
use common::*;

#[test]
fn clone_flags_are_shared_with_the_flag_and_private_without() {
    let run = run("clone_flags", &[]);
    assert_eq!(run.code, 0, "{run}");
    let summary = run.summary();
    assert_eq!(summary.verdict, Verdict::AsClaimed, "{run}");
    for flag in ["CLONE_FILES", "CLONE_FS", "CLONE_SIGHAND", "CLONE_VM"] {
        assert_eq!(summary.get(flag), Some("shared/private"), "{flag}: {run}");
    }
}

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn clone3_small_child_is_born_in_the_cgroup_and_survives() {
    let mount = require_cgroup2();
    let peaks = repeat_memory_scenario("clone3_into_cgroup_memory", 20, |run, summary| {
        survived(run, summary);
        assert!(run.stdout.contains("/cgroup says /clone-cgroup-"), "{run}");
        assert!(run.stdout.contains("waitid(P_PIDFD): Exited(Pid("), "{run}");
    });
    // Born in the cgroup, and still only the buffer's page is charged there.
    assert_eq!(
        peaks.keys().map(String::as_str).collect::<Vec<_>>(),
        expected_peaks(&mount, &["4096"])
    );
}

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn clone3_big_child_is_oom_killed() {
    repeat_memory_scenario("clone3_into_cgroup_memory_fail", 20, killed);
}

#[test]
#[ignore = "needs root and a cgroup v2 pids controller: scripts/vm.sh test runs it"]
fn pids_max_allows_exactly_n_tasks_and_counts_the_refusal() {
    require_cgroup2();
    for max in ["1", "4", "7"] {
        let run = run("cgroup_pids_max", &["--max", max]);
        assert_eq!(run.code, 0, "{run}");
        let summary = run.summary();
        assert_eq!(summary.get("peak"), Some(max), "{run}");
        assert_eq!(summary.get("manager_outcome"), Some(format!("exited:{max}").as_str()), "{run}");
        assert!(summary.get("events_max").unwrap().parse::<u64>().unwrap() >= 1, "{run}");
        assert!(run.stdout.contains("failed: EAGAIN"), "{run}");
        run.assert_nothing_left();
    }
}

#[test]
#[ignore = "needs root (CAP_SYS_ADMIN): scripts/vm.sh test runs it"]
fn set_tid_gives_the_chosen_pids_and_a_taken_pid_fails_with_eexist() {
    require_cgroup2();
    // No --pid: other tests create processes meanwhile, and the scenario looks for a free pid
    // again when the one it chose is taken before its clone3.
    let run = run("clone3_set_tid", &[]);
    assert_eq!(run.code, 0, "{run}");
    let summary = run.summary();
    let chosen = summary.get("chosen").unwrap().to_string();
    assert_eq!(summary.get("nspid"), Some(format!("{chosen},1").as_str()), "{run}");
    assert_eq!(summary.get("taken_pid_eexist"), Some("true"), "{run}");
    assert!(run.stdout.contains(&format!("NSpid: {chosen} 1")), "{run}");
    assert!(run.stdout.contains("child[1]: 3. getpid() = 1, getppid() = 0"), "{run}");
}

/// Accounting is one switch for the whole system: its tests take turns.
static ACCOUNTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
#[ignore = "needs root (CAP_SYS_PACCT): scripts/vm.sh test runs it"]
fn accounting_records_every_child_with_its_end_and_flags() {
    require_cgroup2();
    let _one_at_a_time = ACCOUNTING.lock().unwrap_or_else(|e| e.into_inner());
    let run = run("process_accounting", &[]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.summary().get("missing"), Some("none"), "{run}");
    let row = |command: &str| {
        run.stdout.lines().find(|l| l.trim_start().starts_with(command)).unwrap_or("").to_string()
    };
    assert!(row("acct-killed").contains("signal 9 (SIGKILL) AFORK|AXSIG"), "{run}");
    assert!(row("acct-exit3").contains("exit 3"), "{run}");
    assert!(row("true ").contains("exit 0             -"), "{run}");
}

#[test]
#[ignore = "needs root (CAP_SYS_PACCT): scripts/vm.sh test runs it"]
fn accounting_refuses_where_system_accounting_seems_on_unless_forced() {
    require_cgroup2();
    let _one_at_a_time = ACCOUNTING.lock().unwrap_or_else(|e| e.into_inner());
    let system_file = std::path::Path::new("/var/log/account/pacct");
    let made_here = !system_file.exists();
    if made_here {
        std::fs::create_dir_all(system_file.parent().unwrap()).unwrap();
        std::fs::write(system_file, b"").unwrap();
    }
    let refused = run("process_accounting", &[]);
    // Forced only where the file is ours: where system accounting may really be on, --force
    // would redirect it and leave it off, which a test must not do to a machine.
    let forced = made_here.then(|| run("process_accounting", &["--force"]));
    if made_here {
        std::fs::remove_file(system_file).unwrap();
    }
    assert_eq!(refused.code, 2, "{refused}");
    assert!(
        refused
            .stderr
            .contains("pass --force, then restart it with `accton /var/log/account/pacct`"),
        "{refused}"
    );
    match forced {
        Some(forced) => assert_eq!(forced.code, 0, "{forced}"),
        None => eprintln!("--force not run: {} existed before the test", system_file.display()),
    }
}
