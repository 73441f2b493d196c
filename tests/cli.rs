//! The command line the binaries share (`clone_cgroup::cli`).

use std::path::PathBuf;
use std::time::Duration;

use clone_cgroup::Error;

mod common;

use clone_cgroup::cli::{
    self, for_each_option, parse_bytes, MemoryOptions, Scenario, MEMORY_OPTIONS_HELP,
};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn bytes_take_suffixes_and_refuse_nonsense() {
    assert_eq!(parse_bytes("--alloc", "3000").unwrap(), 3000);
    assert_eq!(parse_bytes("--alloc", "4K").unwrap(), 4096);
    assert_eq!(parse_bytes("--alloc", "1M").unwrap(), 1 << 20);
    assert_eq!(parse_bytes("--alloc", "1GiB").unwrap(), 1 << 30);
    for bad in ["", "0", "-1", "abc", "1.5M", "4KB", "2G", "99999999999999999999", "1T"] {
        assert!(
            matches!(parse_bytes("--alloc", bad), Err(Error::Usage(_))),
            "{bad:?} was accepted"
        );
    }
}

#[test]
fn memory_options_have_documented_defaults() {
    let defaults = MemoryOptions::defaults(3000, Duration::from_millis(200));
    let options = MemoryOptions::parse(&[], defaults.clone()).unwrap();
    assert_eq!(options, defaults);
    assert_eq!(options.limit, 4096);
    assert!(MEMORY_OPTIONS_HELP.contains("[default: 4096]"));
    assert!(MEMORY_OPTIONS_HELP.contains("[default: 200]"));
}

#[test]
fn memory_options_parse_both_spellings() {
    let options = MemoryOptions::parse(
        &args(&["--limit", "8K", "--alloc=2000", "--delay", "0", "--cgroup", "/sys/fs/cgroup/foo"]),
        MemoryOptions::defaults(3000, Duration::ZERO),
    )
    .unwrap();
    assert_eq!(options.limit, 8192);
    assert_eq!(options.alloc, 2000);
    assert_eq!(options.delay, Duration::ZERO);
    assert_eq!(options.cgroup, Some(PathBuf::from("/sys/fs/cgroup/foo")));
}

#[test]
fn memory_options_refuse_bad_values() {
    for bad in [
        &["--limit"][..],
        &["--limit", "100"],
        &["--delay", "-5"],
        &["--delay", "600000"],
        &["--timeout", "0"],
        &["--bogus"],
        &["--parent", "/a", "--cgroup", "/b"],
        // An option where a value should be is not taken for the value.
        &["--parent", "-h"],
        &["--parent", "--cgroup"],
    ] {
        assert!(
            matches!(
                MemoryOptions::parse(&args(bad), MemoryOptions::defaults(3000, Duration::ZERO)),
                Err(Error::Usage(_))
            ),
            "{bad:?} was accepted"
        );
    }
}

#[test]
fn a_flag_refuses_a_value() {
    let parse = |list: &[&str]| {
        let mut keep = false;
        for_each_option(&args(list), |name, opt| {
            assert_eq!(name, "--keep");
            opt.flag()?;
            keep = true;
            Ok(())
        })
        .map(|()| keep)
    };
    assert!(parse(&["--keep"]).unwrap());
    assert!(matches!(parse(&["--keep=yes"]), Err(Error::Usage(_))));
}

#[test]
fn summary_lines_are_parseable() {
    let line = cli::Summary::new("x", cli::Verdict::AsClaimed)
        .field("outcome", "exited:0")
        .field("note", "two words")
        .to_string();
    assert_eq!(line, "summary scenario=x verdict=as-claimed outcome=exited:0 note=two_words");
    let parsed = common::Summary::parse(&line).unwrap();
    assert_eq!(parsed.get("outcome"), Some("exited:0"));
    assert_eq!(parsed.verdict, common::Verdict::AsClaimed);
    assert!(common::Summary::parse("parent[1]: hello").is_none());
}

#[test]
fn help_lists_options_version_and_exit_statuses() {
    let scenario = Scenario { name: "demo", about: "shows a thing", options: MEMORY_OPTIONS_HELP };
    let help = scenario.help();
    assert!(help.contains("Usage: demo [OPTIONS]"));
    assert!(help.contains("128+N"));
    assert!(help.contains("--limit BYTES"));
    assert!(help.contains("-V, --version"));
    assert!(help.starts_with(&format!("demo {}", env!("CARGO_PKG_VERSION"))));
}

/// The shell line behind `cargo sudo-run`, as .cargo/config.toml hands it to cargo as the
/// runner: `sh -c LINE sudo-run BINARY ARGS...`.
fn sudo_run_line() -> String {
    // Compiled in: the VM that runs the tests has no source tree.
    let config = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/.cargo/config.toml"));
    let start = config.find("'if [").expect("the runner's shell line") + 1;
    let end = start + config[start..].find("', \"sudo-run\"").expect("its end");
    config[start..end].to_string()
}

/// Runs the `cargo sudo-run` line on `/bin/echo ran`, as `uid` where given, with a PATH that
/// has `id` and no `sudo`: what a machine without sudo gives it.
fn run_sudo_run_line(uid: Option<u32>) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let bin = std::env::temp_dir().join(format!("clone-cgroup-sudo-run-{}", std::process::id()));
    std::fs::create_dir_all(&bin).unwrap();
    let id = ["/usr/bin/id", "/bin/id"].into_iter().find(|p| std::path::Path::new(p).exists());
    let _ = std::os::unix::fs::symlink(id.expect("id(1)"), bin.join("id"));
    let mut command = std::process::Command::new("/bin/sh");
    command.args(["-c", &sudo_run_line(), "sudo-run", "/bin/echo", "ran"]).env("PATH", &bin);
    if let Some(uid) = uid {
        command.uid(uid).gid(uid);
    }
    let output = command.output().unwrap();
    std::fs::remove_dir_all(&bin).unwrap();
    output
}

#[test]
fn cargo_sudo_run_runs_as_root_without_sudo_and_says_what_to_do_elsewhere() {
    let refused = |output: &std::process::Output| {
        let stderr = String::from_utf8_lossy(&output.stderr);
        output.status.code() == Some(2)
            && stderr.lines().count() == 1
            && stderr.contains("install sudo, or run cargo as root")
    };
    if nix::unistd::geteuid().is_root() {
        let as_root = run_sudo_run_line(None);
        assert_eq!(String::from_utf8_lossy(&as_root.stdout), "ran\n", "{as_root:?}");
        assert!(refused(&run_sudo_run_line(Some(65534))));
    } else {
        assert!(refused(&run_sudo_run_line(None)));
    }
}
