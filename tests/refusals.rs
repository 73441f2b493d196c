//! Clear refusals: each environment a scenario cannot run in gives exit status 2, one line
//! naming the reason and the fix, and writes nothing.
//!
//! The kernel-dependent cases are `#[ignore]`d and run as root in the VM (scripts/vm.sh test).

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use clone_cgroup::cgroup::enable_controller;

mod common;
use common::*;

/// Asserts the run refused with exit status 2, one line on stderr containing `reason`.
fn assert_refused(run: &Run, reason: &str) {
    assert_eq!(run.code, 2, "{run}");
    assert_eq!(run.summary().verdict, Verdict::CannotRun, "{run}");
    assert_eq!(run.stderr.lines().count(), 1, "not one line: {run}");
    assert!(run.stderr.contains("cannot run here: "), "{run}");
    assert!(run.stderr.contains(reason), "expected {reason:?}: {run}");
    assert!(!run.stdout.contains("created cgroup"), "{run}");
    run.assert_nothing_left();
    // Shown by --show-output: the refusal table as measured.
    eprintln!("refusal: exit {}: {}", run.code, run.stderr.trim());
}

/// The uid of "nobody", for running a binary without privileges.
const NOBODY: u32 = 65534;

/// Runs a binary as "nobody" (when we are root; otherwise as we are). The binary is copied to
/// a world-readable directory first: the build directory may sit in a home that "nobody"
/// cannot enter.
fn run_as_nobody(name: &str, args: &[&str]) -> Run {
    if !is_root() {
        return run(name, args);
    }
    let dir =
        std::env::temp_dir().join(format!("clone-cgroup-nobody-{}-{name}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.join(name);
    fs::copy(bin(name), &copy).unwrap();
    // ETXTBSY: another test thread forked while the copy was open for writing; its child
    // holds the descriptor until it execs, which takes a moment (longer on a busy machine:
    // up to 5 s are allowed).
    let mut tries = 0;
    let run = loop {
        let mut command = Command::new(&copy);
        command.args(args).current_dir(&dir).uid(NOBODY).gid(NOBODY);
        match try_run_command(&mut command) {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 500 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => {
                break result.unwrap_or_else(|e| panic!("cannot run {}: {e}", copy.display()))
            }
        }
    };
    fs::remove_dir_all(&dir).unwrap();
    run
}

#[test]
fn cgroup_scenarios_refuse_a_user_without_root() {
    for name in MEMORY_SCENARIOS {
        assert_refused(
            &run_as_nobody(name, &[]),
            "needs root to create cgroups and move processes: run it with sudo",
        );
    }
}

#[test]
fn the_other_root_only_scenarios_refuse_a_user_without_root() {
    for (name, reason) in OTHER_ROOT_ONLY {
        assert_refused(&run_as_nobody(name, &[]), reason);
    }
}

#[test]
fn trace_refuses_a_user_without_root_before_the_story() {
    let run = run_as_nobody("fork_waitpid", &["--trace"]);
    assert_refused(&run, "--trace needs root: tracefs belongs to root (run it with sudo)");
    assert!(!run.stdout.contains("calling fork"), "{run}");
}

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn trace_refuses_a_machine_without_tracefs_and_names_the_mount() {
    require_cgroup2();
    let mut command = Command::new(bin("fork_waitpid"));
    command.arg("--trace");
    // SAFETY: between fork and exec, only system calls: a mount namespace of the command's
    // own, where tracefs is not mounted (where it was, it is detached; where not, EINVAL).
    unsafe {
        command.pre_exec(|| {
            use nix::mount::{mount, umount2, MntFlags, MsFlags};
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )?;
            for path in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing", "/sys/kernel/debug"] {
                let _ = umount2(path, MntFlags::MNT_DETACH);
            }
            Ok(())
        });
    }
    let run = run_command(&mut command);
    assert_refused(
        &run,
        "no tracefs is mounted: mount it with `mount -t tracefs nodev /sys/kernel/tracing`",
    );
    assert!(!run.stdout.contains("calling fork"), "{run}");
}

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn clone_waitpid_names_the_sysctls_when_user_namespaces_are_restricted() {
    require_cgroup2();
    // Runs that create user namespaces wait: the limit is machine-wide.
    let _alone = user_namespaces_lock(true);
    let limit = Path::new("/proc/sys/user/max_user_namespaces");
    let saved = fs::read_to_string(limit).unwrap();
    fs::write(limit, "0").unwrap();
    let run = run_as_nobody("clone_waitpid", &[]);
    fs::write(limit, saved.trim()).unwrap();
    assert_refused(&run, "user.max_user_namespaces");
    assert!(run.stderr.contains("kernel.apparmor_restrict_unprivileged_userns"), "{run}");
}

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn no_cgroup2_mount_is_named_as_such() {
    require_cgroup2();
    // A private mount namespace without the cgroup2 mount; the VM's own stays as it is.
    let script =
        format!("umount /sys/fs/cgroup && exec {}", bin("clone_waitpid_cgroup_memory").display());
    let run = run_command(Command::new("unshare").args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ]));
    assert_refused(&run, "no cgroup2 filesystem is mounted");
}

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn bad_cgroup_and_parent_paths_are_refused_before_any_write() {
    let mount = require_cgroup2();
    // Tests running meanwhile enable these two in the root; enabled first, the root's
    // subtree_control can change under this test only by a write of the runs below.
    enable_controller(&mount.path, "memory").unwrap();
    let _ = enable_controller(&mount.path, "pids");
    let root_control = fs::read_to_string(mount.path.join("cgroup.subtree_control")).unwrap();
    let link = std::env::temp_dir().join("clone-cgroup-link-to-proc");
    let _ = fs::remove_file(&link);
    symlink("/proc", &link).unwrap();
    let dotdot = format!("{}/../../../tmp", mount.path.display());
    let cases: [(&str, &str, &str); 7] = [
        ("--cgroup", "/nonexistent/cgroup", "No such file or directory"),
        ("--cgroup", "/tmp", "is not a cgroup v2 directory"),
        ("--cgroup", &dotdot, "is not a cgroup v2 directory"),
        ("--cgroup", link.to_str().unwrap(), "is not a cgroup v2 directory"),
        ("--cgroup", mount.path.to_str().unwrap(), "already holds"),
        ("--parent", "/tmp", "is not a cgroup v2 directory"),
        ("--parent", &dotdot, "is not a cgroup v2 directory"),
    ];
    for (option, path, reason) in cases {
        let run = run("clone_waitpid_cgroup_memory", &[option, path]);
        assert_refused(&run, reason);
    }
    fs::remove_file(&link).unwrap();
    assert_eq!(
        fs::read_to_string(mount.path.join("cgroup.subtree_control")).unwrap(),
        root_control
    );
}

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn a_parent_without_the_controller_gets_it_or_the_exact_fix() {
    let mount = require_cgroup2();
    enable_controller(&mount.path, "memory").unwrap();
    // The parent is offered memory but has not enabled it for its children: the run does.
    let parent = mount.path.join("refusal-parent");
    fs::create_dir(&parent).unwrap();
    let run = run_with_parent(&parent);
    let control = parent.join("cgroup.subtree_control");
    let enabled = fs::read_to_string(&control).unwrap();
    // One level further down, memory is not even offered: the run names the write that fixes it.
    let nested = parent.join("nested");
    fs::write(&control, "-memory").unwrap();
    fs::create_dir(&nested).unwrap();
    let refused = run_with_parent(&nested);
    fs::remove_dir(&nested).unwrap();
    fs::remove_dir(&parent).unwrap();

    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains(&format!("wrote \"+memory\" to {}", control.display())), "{run}");
    assert!(enabled.contains("memory"), "{enabled:?}");
    assert_refused(&refused, &format!("fix: echo +memory > {}", control.display()));
}

/// A run of the signal-synced placement, which does not bet on timing as the delayed one does
/// (other tests, running meanwhile, could make it lose).
fn run_with_parent(parent: &Path) -> Run {
    run("clone_wait_signal_cgroup_memory", &["--parent", parent.to_str().unwrap()])
}

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn a_parent_with_processes_is_refused_with_the_no_internal_process_rule() {
    let mount = require_cgroup2();
    enable_controller(&mount.path, "memory").unwrap();
    let parent = mount.path.join("busy-parent");
    fs::create_dir(&parent).unwrap();
    let mut sleeper = Command::new("sleep").arg("30").stdout(Stdio::null()).spawn().unwrap();
    fs::write(parent.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
    let run = run_with_parent(&parent);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    fs::remove_dir(&parent).unwrap();
    assert_refused(&run, "EBUSY, the no-internal-process rule");
    assert!(run.stderr.contains("--parent"), "{run}");
}

#[test]
#[ignore = "needs root and a cgroup v2 memory controller: scripts/vm.sh test runs it"]
fn a_cgroup_that_looks_like_ours_but_belongs_to_a_live_process_is_left_alone() {
    let mount = require_cgroup2();
    // Pid 1 is alive, so this is not a stale leftover: never removed, never reused.
    let theirs = mount.path.join("clone-cgroup-1-0");
    fs::create_dir(&theirs).unwrap();
    let run = run("clone_wait_signal_cgroup_memory", &[]);
    let still_there = theirs.is_dir();
    fs::remove_dir(&theirs).unwrap();
    assert_eq!(run.code, 0, "{run}");
    assert!(still_there, "{run}");
    assert!(!run.stdout.contains("clone-cgroup-1-0"), "{run}");
}

#[test]
fn cgroup_race_without_the_stories_built_beside_it_says_how_to_build_them() {
    // cgroup_race alone in a directory: the binaries it runs are not beside it. A hard link,
    // not a copy: a copy is a file open for writing, which a child forked meanwhile by another
    // test's thread holds until it execs, and exec of a file open for writing fails (ETXTBSY).
    // Beside the binary's own directory, so the link stays on the same filesystem.
    let built = bin("cgroup_race");
    let dir = built.parent().unwrap().join(format!("race-alone-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let alone = dir.join("cgroup_race");
    fs::hard_link(&built, &alone).unwrap();
    let run = run_command(&mut Command::new(&alone));
    fs::remove_dir_all(&dir).unwrap();
    assert_refused(&run, "clone3_into_cgroup_memory is not built in");
    assert!(run.stderr.contains("cargo build --bins"), "{run}");
}
