//! The scenarios beyond the six: clone3 into a cgroup, pids.max, set_tid, process
//! accounting, the clone flag table, a thread by hand, waiting for clone children, what fork
//! and exec keep, clone3's argument checks and the pids controller's hierarchy. Root-only
//! ones are `#[ignore]`d and run in the VM.

mod common;
use clone_cgroup::clone3::Flags;
use clone_cgroup::clone3_probe::knows_flags;
use common::*;

#[test]
fn clone_flags_show_each_flag_they_can_here_as_expected() {
    let _user_namespaces = user_namespaces_lock(false);
    let run = run("clone_flags", &[]);
    assert_eq!(run.code, 0, "{run}");
    let summary = run.summary();
    assert_eq!(summary.verdict, Verdict::AsClaimed, "{run}");
    assert_eq!(summary.get("rows"), Some("31"), "{run}");
    assert_eq!(summary.get("differ"), Some("none"), "{run}");
    assert_eq!(summary.get("as_expected"), summary.get("shown"), "{run}");
    // The sharing and thread rows need neither root nor a recent kernel.
    for flag in ["CLONE_FILES", "CLONE_VM", "CLONE_SYSVSEM", "CLONE_IO", "CLONE_SETTLS"] {
        let row = run.stdout.lines().find(|l| l.trim_start().starts_with(flag)).unwrap_or("");
        assert!(row.ends_with("as expected"), "{flag}: {run}");
    }
}

#[test]
#[ignore = "needs root and a cgroup v2 pids controller: scripts/vm.sh test runs it"]
fn clone_flags_show_all_but_the_tracing_rows_as_root_on_cgroup_v2() {
    require_cgroup2();
    let _user_namespaces = user_namespaces_lock(false);
    let run = run("clone_flags", &[]);
    assert_eq!(run.code, 0, "{run}");
    let summary = run.summary();
    // The flags of 7.1, shown live where the kernel knows them: asked here on its own.
    let since_7_1 = ["CLONE_AUTOREAP", "CLONE_PIDFD_AUTOKILL", "CLONE_NNP", "CLONE_EMPTY_MNTNS"];
    let knows_7_1 = knows_flags(Flags::AUTOREAP).expect("ask the kernel about CLONE_AUTOREAP");
    let (shown, not_shown) = if knows_7_1 {
        ("29", "PTRACE,UNTRACED")
    } else {
        ("25", "AUTOREAP,PIDFD_AUTOKILL,NNP,EMPTY_MNTNS,PTRACE,UNTRACED")
    };
    assert_eq!(summary.get("shown"), Some(shown), "{run}");
    assert_eq!(summary.get("as_expected"), Some(shown), "{run}");
    assert_eq!(summary.get("not_shown"), Some(not_shown), "{run}");
    for flag in since_7_1 {
        let row = run.stdout.lines().find(|l| l.trim_start().starts_with(flag)).unwrap_or("");
        let said = if knows_7_1 { "as expected" } else { "this kernel lacks it (Linux 7.1" };
        assert!(row.contains(said), "{flag}: {run}");
    }
    run.assert_nothing_left();
}

#[test]
fn every_change_of_state_reaches_the_waiting_parent_as_the_kernel_encodes_it() {
    let run = run("wait_statuses", &[]);
    assert_eq!(run.code, 0, "{run}");
    let summary = run.summary();
    assert_eq!(summary.verdict, Verdict::AsClaimed, "{run}");
    // waitpid's raw words, as the kernel wrote them: exit 77, SIGTERM, SIGSTOP, SIGCONT.
    for (key, word) in
        [("exited", "0x4d00"), ("killed", "0x000f"), ("stopped", "0x137f"), ("continued", "0xffff")]
    {
        assert_eq!(summary.get(key), Some(word), "{key}: {run}");
    }
    // A dump where core_pattern lets a child of ours make one we can remove.
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    let dumps_here = !pattern.starts_with('|') && !pattern.starts_with('/');
    let dumped = if dumps_here { "0x0083" } else { "not-shown" };
    assert_eq!(summary.get("dumped"), Some(dumped), "{run}");
    for line in [
        "WNOWAIT): CLD_EXITED 77 (state Z",
        "CLD_KILLED 15 (SIGTERM)",
        "CLD_STOPPED 19 (SIGSTOP) (state T)",
    ] {
        assert!(run.stdout.contains(line), "{line}: {run}");
    }
    assert_eq!(summary.get("sig_ign"), Some("ECHILD"), "{run}");
    assert_eq!(summary.get("sa_nocldwait"), Some("ECHILD"), "{run}");
    let core_dir = std::env::temp_dir().join(format!("clone-cgroup-core-{}", run.pid));
    assert!(!core_dir.exists(), "{} was left behind", core_dir.display());
    run.assert_nothing_left();
}

#[test]
#[ignore = "needs root and a cgroup v2 pids controller: scripts/vm.sh test runs it"]
fn zombies_fill_a_pids_limit_until_waited_for_and_orphans_are_adopted() {
    require_cgroup2();
    let run = run("zombie_orphan", &[]);
    assert_eq!(run.code, 0, "{run}");
    let summary = run.summary();
    // What the kernel said: /proc states, pids.current, clone3's errno, pids.events.
    for (key, value) in [
        ("zombie_states", "Z,Z"),
        ("pids_current", "2"),
        ("third_child", "EAGAIN"),
        ("events_max", "1"),
        ("after_one_wait", "1"),
        ("adopted_by_subreaper", "true"),
        ("our_wait_without", "ECHILD"),
    ] {
        assert_eq!(summary.get(key), Some(value), "{key}: {run}");
    }
    // When init reaps the second orphan is init's affair (a shell as init, in the VM, reaps
    // when it next waits): not checked here.
    run.assert_nothing_left();
}

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn a_whole_cgroup_is_frozen_killed_and_oom_killed_at_once() {
    let mount = require_cgroup2();
    let run = run("cgroup_kill", &[]);
    assert_eq!(run.code, 0, "{run}");
    let summary = run.summary();
    // cgroup.events said frozen 1, then 0; no wait reported a stop (no signal was sent).
    for (key, value) in [("frozen", "true"), ("thawed", "true"), ("stops_reported", "0")] {
        assert_eq!(summary.get(key), Some(value), "{key}: {run}");
    }
    // cgroup.kill (5.14) where the kernel has it: a cgroup below the root shows the file.
    let has_kill = std::fs::read_dir(&mount.path)
        .unwrap()
        .flatten()
        .any(|entry| entry.path().join("cgroup.kill").exists());
    if has_kill {
        assert_eq!(summary.get("killed_simple"), Some("10"), "{run}");
        let reaped: usize = summary.get("forkbomb_reaped").unwrap().parse().unwrap();
        assert!(reaped >= 10, "{run}");
        assert_eq!(summary.get("forkbomb_killed"), Some(reaped.to_string().as_str()), "{run}");
        // A child born into a cgroup killed once: it lives, or (the kernel bug of the stable
        // lines between "cgroup: fix race between fork and cgroup.kill" and its fix) it is
        // killed wherever its parent's cgroup and its own were killed a different number of
        // times. Any other pattern is neither.
        let born = summary.get("born_into_killed");
        assert!(matches!(born, Some("lives" | "killed-where-counts-differ")), "{run}");
    } else {
        assert_eq!(summary.get("kill"), Some("not-offered"), "{run}");
        assert_eq!(summary.get("born_into_killed"), Some("not-shown"), "{run}");
    }
    // memory.events oom_kill, as mm/oom_kill.c guarantees it: at least the hog alone, then at
    // least the hog and each member of its group; the bystanders spared, then killed.
    let counted = |key: &str| summary.get(key).and_then(|v| v.parse::<u64>().ok()).unwrap();
    assert!(counted("oom_kill_alone") >= 1, "{run}");
    assert_eq!(summary.get("bystanders_killed_alone"), Some("0"), "{run}");
    assert!(counted("oom_kill_group") >= 3, "{run}");
    assert_eq!(summary.get("bystanders_killed_group"), Some("2"), "{run}");
    // memory.events oom_group_kill, where the kernel counts it: no group kill, then one.
    let group_kills = if kernel_counts_oom_group_kill(&mount) { "0,1" } else { "not-counted" };
    assert_eq!(summary.get("oom_group_kill"), Some(group_kills), "{run}");
    run.assert_nothing_left();
}

#[test]
fn a_buffer_is_written_once_per_process_that_exits_with_it() {
    let run = run("fork_stdio", &[]);
    assert_eq!(run.code, 0, "{run}");
    let summary = run.summary();
    // Counted in what came out of the pipes: the kernel's record of what was written.
    for (key, times) in [
        ("partial_both_exit", "2"),
        ("partial_child_underscore", "1"),
        ("partial_flushed", "1"),
        ("rust_whole_line", "1"),
        ("c_whole_line", "2"),
        ("atexit_exit", "2"),
        ("atexit_underscore", "1"),
    ] {
        assert_eq!(summary.get(key), Some(times), "{key}: {run}");
    }
    run.assert_nothing_left();
}

#[test]
fn a_thread_by_hand_shares_the_pid_and_is_joined_on_the_cleared_tid() {
    let run = run("clone_thread", &[]);
    assert_eq!(run.code, 0, "{run}");
    let summary = run.summary();
    assert_eq!(summary.verdict, Verdict::AsClaimed, "{run}");
    for (key, value) in [
        ("same_pid", "yes"),
        ("own_tid", "yes"),
        ("parent_settid", "yes"),
        ("in_task_list", "yes"),
        ("waitpid", "ECHILD"),
        ("tid_word_after", "0"),
        ("sigchld", "none"),
        ("settls_pointer", "own"),
        ("no_settls_pointer", "ours"),
    ] {
        assert_eq!(summary.get(key), Some(value), "{key}: {run}");
    }
    // The join names the futex it slept on, or says that it had no need to.
    assert!(
        run.stdout.contains("FUTEX_WAIT) on the tid word at 0x")
            || run.stdout.contains("before join looked: no FUTEX_WAIT needed"),
        "{run}"
    );
}

#[test]
fn clone_children_are_waited_for_with_wclone_or_wall_only() {
    let run = run("clone_wait_flags", &[]);
    assert_eq!(run.code, 0, "{run}");
    let summary = run.summary();
    for (key, value) in [
        ("plain_on_clone_child", "ECHILD"),
        ("wclone", "exited:0"),
        ("wall", "exited:0"),
        ("wclone_on_ordinary_child", "ECHILD"),
        ("wnothread_in_sibling_thread", "ECHILD"),
        ("sibling_thread", "exited:0"),
    ] {
        assert_eq!(summary.get(key), Some(value), "{key}: {run}");
    }
}

#[test]
fn fork_and_exec_keep_what_the_book_says() {
    let run = run("fork_exec_attributes", &[]);
    assert_eq!(run.code, 0, "{run}");
    let summary = run.summary();
    assert_eq!(summary.get("attributes"), Some("18"), "{run}");
    assert_eq!(summary.get("as_in_the_book"), Some("18"), "{run}");
    assert_eq!(summary.get("differ"), Some("none"), "{run}");
    assert!(run.stdout.contains("execve: open -> closed"), "{run}");
}

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn clone3_arguments_are_checked_as_the_kernel_selftests_expect() {
    require_cgroup2();
    let run = run("clone3_args", &[]);
    assert_eq!(run.code, 0, "{run}");
    let summary = run.summary();
    let count = |key: &str| -> usize { summary.get(key).unwrap().parse().unwrap() };
    let cases = count("cases");
    assert!(cases >= 90, "{run}");
    assert_eq!(count("as_expected") + count("not_offered"), cases, "{run}");
    assert_eq!(summary.get("mismatched"), Some("none"), "{run}");
    // Every case of the selftests it names, and the kernel's own refusals, by function.
    let rows =
        |source: &str| run.stdout.lines().filter(|l| l.trim_start().starts_with(source)).count();
    for (source, at_least) in [
        ("clone3.c ", 19),
        ("clone3_selftests.h ", 1),
        ("clone3_set_tid.c ", 26),
        ("clone3_clear_sighand.c ", 2),
        ("clone3_cap_checkpoint_restore.c ", 2),
        ("pidfd_autoreap_test.c ", 8),
        ("clone3_empty_mntns_test.c ", 2),
        ("cgroup/test_core.c ", 4),
        ("cgroup.c ", 6),
        ("fork.c ", 18),
        ("nsproxy.c ", 2),
    ] {
        assert!(rows(source) >= at_least, "{source}: {run}");
    }
    for errno in ["EPERM", "EACCES", "EFAULT", "EAGAIN", "ENOENT", "EOPNOTSUPP"] {
        assert!(
            run.stdout.lines().any(|l| l.contains(errno) && l.ends_with("as expected")),
            "{errno}: {run}"
        );
    }
    // A row is left unshown only for what the kernel or the machine lacks: a flag of 7.1 where
    // the kernel does not know it (asked here on its own), a cgroup v1 hierarchy where none is
    // mounted.
    let knows_7_1 = knows_flags(Flags::AUTOREAP).expect("ask the kernel about CLONE_AUTOREAP");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let has_v1 =
        mountinfo.lines().any(|l| l.split(" - ").nth(1).is_some_and(|r| r.starts_with("cgroup ")));
    for line in run.stdout.lines().filter(|l| l.contains("not offered by this kernel")) {
        let lacks_7_1 = line.contains("(7.1)") && !knows_7_1;
        let lacks_v1 = line.contains("no cgroup v1 hierarchy") && !has_v1;
        assert!(lacks_7_1 || lacks_v1, "{line}: {run}");
    }
    run.assert_nothing_left();
}

#[test]
#[ignore = "needs root and a cgroup v2 pids controller: scripts/vm.sh test runs it"]
fn a_parent_pids_limit_binds_its_children_and_moves_are_not_refused() {
    require_cgroup2();
    let run = run("cgroup_pids_hierarchy", &[]);
    assert_eq!(run.code, 0, "{run}");
    let summary = run.summary();
    assert_eq!(summary.get("bound_by_parent"), Some("2"), "{run}");
    assert_eq!(summary.get("moved_in_current"), Some("4"), "{run}");
    assert_eq!(summary.get("manager_outcome"), Some("exited:0"), "{run}");
    assert_eq!(summary.get("threads_counted"), Some("3"), "{run}");
    // Where the kernel has pids.events.local, pids.events counts in the cgroup whose limit
    // refused; before, in the cgroup where the fork was tried.
    let counted = |key: &str| summary.get(key).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    match summary.get("parent_events_local_max") {
        Some("none") => assert!(counted("child_events_max") >= 2, "{run}"),
        _ => assert!(counted("parent_events_max") >= 2, "{run}"),
    }
    run.assert_nothing_left();
}

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn clone3_small_child_is_born_in_the_cgroup_and_survives() {
    let mount = require_cgroup2();
    let peaks = repeat_memory_scenario("clone3_into_cgroup_memory", 10, |run, summary| {
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
    repeat_memory_scenario("clone3_into_cgroup_memory_fail", 10, killed);
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
