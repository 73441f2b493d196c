//! The shape every lesson promises: each step a binary prints (`parent[..]: N. ...` or
//! `child[..]: N. ...`) has its `// N.` comment in the same file, and the steps run 1..n
//! without a gap. Read from the sources, so it needs neither root nor a cgroup.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// The step numbers printed in `source`: a string literal containing `]: N. `.
fn printed_steps(source: &str) -> BTreeSet<u32> {
    let mut steps = BTreeSet::new();
    for line in source.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(at) = rest.find("]: ") {
            rest = &rest[at + 3..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if !digits.is_empty() && rest[digits.len()..].starts_with(". ") {
                steps.insert(digits.parse().unwrap());
            }
        }
    }
    steps
}

/// The step numbers of the `// N.` comments in `source`.
fn commented_steps(source: &str) -> BTreeSet<u32> {
    source
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("// "))
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            (!digits.is_empty() && rest[digits.len()..].starts_with(". "))
                .then(|| digits.parse().unwrap())
        })
        .collect()
}

#[test]
fn every_printed_step_has_its_comment_and_none_is_missing() {
    let bins = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin");
    let mut with_steps = 0;
    for entry in fs::read_dir(&bins).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let source = fs::read_to_string(&path).unwrap();
        let (printed, commented) = (printed_steps(&source), commented_steps(&source));
        if printed.is_empty() && commented.is_empty() {
            continue; // a _fail twin (its story is its sibling's file) or a measurement
        }
        with_steps += 1;
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(printed, commented, "{name}: printed steps vs // N. comments");
        let expected: BTreeSet<u32> = (1..=*commented.last().unwrap()).collect();
        assert_eq!(commented, expected, "{name}: steps must run 1..n without a gap");
    }
    assert!(with_steps >= 14, "only {with_steps} binaries print steps");
}

#[test]
fn the_step_readers_see_what_they_should() {
    let source = "    // 1. Block.\n    println!(\"parent[{me}]: 1. blocked\");\n\
                  // 2. not a step: a comment line\n    child_say!(\"child[{pid}]: 2. go\");";
    assert_eq!(printed_steps(source), BTreeSet::from([1, 2]));
    assert_eq!(commented_steps(source), BTreeSet::from([1, 2]));
}
