//! Runs the scenario binaries and checks what they claim: exit status, summary line, and for
//! the cgroup scenarios the kernel's own counters as the binaries report them.
//!
//! Tests that need root and a cgroup v2 memory controller are `#[ignore]`d on an ordinary
//! `cargo test`; `scripts/vm.sh test` runs them as root in a VM with a pure cgroup v2
//! hierarchy, and they fail loudly (not skip) if that environment is missing.

use std::fs;
use std::process::Command;

use clone_cgroup::cgroup::Cgroup2Mount;

mod common;
use common::*;

#[test]
fn fork_waitpid_child_exits_with_42_and_the_parent_decodes_it() {
    let run = run("fork_waitpid", &[]);
    assert_eq!(run.code, 0, "{run}");
    let summary = run.summary();
    assert_eq!(summary.verdict, Verdict::AsClaimed);
    assert_eq!(summary.get("outcome"), Some("exited:42"));
    let child = summary.get("child").unwrap();
    assert!(run.stdout.contains(&format!("waitpid: Exited(Pid({child}), 42)")), "{run}");
    assert!(run.stdout.contains("WIFEXITED, WEXITSTATUS = 42"), "{run}");
    // The child names the parent's pid as its parent.
    let parent = run.stdout.lines().next().unwrap().split(['[', ']']).nth(1).unwrap().to_string();
    assert!(
        run.stdout.contains(&format!("child[{child}]: 2. I am the child; getppid() = {parent}")),
        "{run}"
    );
}

#[test]
fn clone_waitpid_child_is_pid_1_and_renames_only_its_own_host() {
    let run = run("clone_waitpid", &[]);
    if run.code == 2 && !is_root() {
        // Without root, a new user namespace is needed, and some hosts restrict it.
        assert!(run.stderr.contains("user namespaces are restricted"), "{run}");
        assert_eq!(run.summary().verdict, Verdict::CannotRun);
        return;
    }
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.summary().verdict, Verdict::AsClaimed);
    assert_eq!(run.summary().get("hostname_unchanged"), Some("true"));
    assert!(run.stdout.contains("getpid() = 1, getppid() = 0"), "{run}");
    assert!(run.stdout.contains("uname() now says \"clone-child\""), "{run}");
}

/// On a host that cannot run the cgroup scenarios (this one: hybrid, memory on cgroup v1),
/// each refuses with exit 2 and the reason, and creates nothing. Where the host could run
/// them, a --cgroup outside the cgroup2 mount is refused instead, again writing nothing.
#[test]
fn cgroup_scenarios_refuse_with_exit_2_and_the_reason_where_they_cannot_run() {
    let capable = is_root() && memory_capable_mount().is_some();
    for name in MEMORY_SCENARIOS {
        let run = if capable { run(name, &["--cgroup", "/proc"]) } else { run(name, &[]) };
        assert_eq!(run.code, 2, "{name}: {run}");
        assert_eq!(run.summary().verdict, Verdict::CannotRun, "{name}");
        let reason = run.stderr.lines().next().unwrap_or("");
        assert!(reason.starts_with(&format!("{name}: cannot run here: ")), "{reason}");
        let expected = if capable {
            "is not a cgroup v2 directory"
        } else if !is_root() {
            "needs root"
        } else if Cgroup2Mount::find().is_err() {
            "no cgroup2 filesystem is mounted"
        } else {
            "the memory controller is not available"
        };
        assert!(reason.contains(expected), "{name}: expected {expected:?} in {reason:?}");
        assert_eq!(run.stderr.lines().count(), 1, "one line: {run}");
        run.assert_nothing_left();
    }
}

#[test]
fn every_binary_has_help_with_the_exit_statuses() {
    let others = [
        "fork_waitpid",
        "clone_waitpid",
        "clone_flags",
        "clone_thread",
        "clone_wait_flags",
        "fork_exec_attributes",
        "spawn_bench",
        "cgroup_race",
    ];
    let root_only = OTHER_ROOT_ONLY.map(|(name, _)| name);
    for name in others.into_iter().chain(MEMORY_SCENARIOS).chain(root_only) {
        let run = run(name, &["--help"]);
        assert_eq!(run.code, 0, "{name}: {run}");
        assert!(run.stdout.contains(&format!("Usage: {name}")), "{name}");
        assert!(run.stdout.contains("2        it cannot run here"), "{name}");
        let version = common::run(name, &["--version"]);
        assert_eq!(version.code, 0, "{name}: {version}");
        assert_eq!(version.stdout, format!("{name} {}\n", env!("CARGO_PKG_VERSION")));
    }
}

/// Every binary, as a user might mistype it: a non-UTF-8 argument, an option where a value
/// should be, a flag given a value. Each is a usage error: exit status 2, its own verdict word.
#[test]
fn bad_usage_is_exit_2_and_says_so() {
    use std::os::unix::ffi::OsStrExt;
    let not_utf8 = std::ffi::OsStr::from_bytes(b"--limit=\xff");
    let names = [
        "fork_waitpid",
        "clone_flags",
        "clone_thread",
        "fork_exec_attributes",
        "spawn_bench",
        "cgroup_race",
    ];
    for name in names.into_iter().chain(MEMORY_SCENARIOS) {
        let run = run_command(Command::new(bin(name)).arg(not_utf8));
        assert_eq!(run.code, 2, "{name}: {run}");
        assert_eq!(run.summary().verdict, Verdict::BadUsage, "{name}: {run}");
        assert!(run.stderr.contains("is not valid UTF-8"), "{name}: {run}");
    }
    let value_is_an_option = run("clone_waitpid_cgroup_memory", &["--parent", "-h"]);
    assert_eq!(value_is_an_option.code, 2, "{value_is_an_option}");
    assert!(value_is_an_option.stderr.contains("--parent needs a value"), "{value_is_an_option}");
    let flag_with_a_value = run("process_accounting", &["--keep=yes"]);
    assert_eq!(flag_with_a_value.code, 2, "{flag_with_a_value}");
    assert!(flag_with_a_value.stderr.contains("--keep takes no value"), "{flag_with_a_value}");
}

#[test]
fn bad_options_exit_2_before_anything_runs() {
    for args in [&["--alloc", "0"][..], &["--limit", "lots"], &["--delay", "-1"], &["--bogus"]] {
        let run = run("clone_waitpid_cgroup_memory", args);
        assert_eq!(run.code, 2, "{args:?}: {run}");
        assert!(run.stderr.contains("Usage:"), "{args:?}: {run}");
        assert!(!run.stdout.contains("parent["), "{args:?} started: {run}");
    }
    let run = run("fork_waitpid", &["--bogus"]);
    assert_eq!(run.code, 2, "{run}");
    // A negative number is a value (refused for what it is), not another option.
    for (option, value) in [("--limit", "-1"), ("--delay", "-5")] {
        let run = common::run("clone_waitpid_cgroup_memory", &[option, value]);
        assert_eq!(run.code, 2, "{run}");
        let expected = format!("{option} \"{value}\": expected a whole number");
        assert!(run.stderr.contains(&expected), "expected {expected:?}: {run}");
    }
    // The clone3 pair's buffer shares a page table with the child's stack: too large a one is
    // refused while parsing, before any cgroup exists.
    let run = common::run("clone3_into_cgroup_memory_fail", &["--alloc", "2M"]);
    assert_eq!(run.code, 2, "{run}");
    assert_eq!(run.summary().verdict, Verdict::BadUsage, "{run}");
    assert!(
        run.stderr.contains("--alloc 2097152: the clone3 pair's child writes at most"),
        "{run}"
    );
    assert!(!run.stdout.contains("parent["), "it started: {run}");
}

/// The delayed pair bets on timing, so a run may lose (and must say so); every run that won
/// must bear the claim out. See [`repeat_memory_scenario`].
#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn delayed_small_child_survives_4096_whenever_the_bet_is_won() {
    let mount = require_cgroup2();
    let peaks = repeat_memory_scenario("clone_waitpid_cgroup_memory", 20, survived);
    // Exactly one page was charged after the move: the buffer's.
    assert_eq!(
        peaks.keys().map(String::as_str).collect::<Vec<_>>(),
        expected_peaks(&mount, &["4096"])
    );
}

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn delayed_big_child_is_oom_killed_whenever_the_bet_is_won() {
    repeat_memory_scenario("clone_waitpid_cgroup_memory_fail", 20, killed);
}

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn signal_synced_small_child_survives_and_says_done_every_time() {
    let mount = require_cgroup2();
    let allowed = expected_peaks(&mount, &["4096", "8192"]);
    let peaks = repeat_memory_scenario("clone_wait_signal_cgroup_memory", 10, |run, summary| {
        survived(run, summary);
        assert_eq!(summary.get("done_signal"), Some("true"), "{run}");
    });
    // The buffer's page, plus at most one forced page for the queued "done" signal.
    assert!(peaks.keys().all(|p| allowed.contains(&p.as_str())), "{peaks:?}");
}

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn signal_synced_big_child_is_oom_killed_every_time() {
    repeat_memory_scenario("clone_wait_signal_cgroup_memory_fail", 10, |run, summary| {
        killed(run, summary);
        assert_eq!(summary.get("done_signal"), Some("false"), "{run}");
    });
}

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn an_existing_cgroup_is_used_and_kept() {
    let mount = require_cgroup2();
    // Made the way the original README told people to, by the script that does it.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/make-foo-cgroup.sh");
    let shell = if std::path::Path::new("/bin/bash").exists() { "/bin/bash" } else { "sh" };
    let made = run_command(Command::new(shell).args([script, "foo-clone-cgroup-test"]));
    assert_eq!(made.code, 0, "{made}");
    let foo = mount.path.join("foo-clone-cgroup-test");
    assert!(foo.join("memory.max").exists(), "{made}");
    let runs = [
        run("clone3_into_cgroup_memory", &["--cgroup", foo.to_str().unwrap()]),
        run("clone_wait_signal_cgroup_memory_fail", &["--cgroup", foo.to_str().unwrap()]),
    ];
    let kept = foo.is_dir();
    fs::remove_dir(&foo).expect("rmdir test cgroup");
    for run in &runs {
        assert_eq!(run.code, 0, "{run}");
        assert!(run.stdout.contains("using the existing cgroup"), "{run}");
        assert!(!run.stdout.contains("removed"), "{run}");
    }
    // A reused cgroup's memory.events keep counting; the scenario reports this run's share.
    assert_eq!(runs[1].summary().get("oom_kill"), Some("1"), "{}", runs[1]);
    assert!(kept, "the user's cgroup was removed");
}
