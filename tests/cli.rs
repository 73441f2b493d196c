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
