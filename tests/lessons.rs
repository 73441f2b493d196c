//! The shape every lesson promises, read from the sources (so it needs neither root nor a
//! cgroup): each step a binary prints (`parent[..]: N. ...` or `child[..]: N. ...`) has its
//! `// N.` comment in the same lesson, and the steps run 1..n without a gap; binaries share
//! code only through the library (and a `_fail` twin through its sibling's file); and the
//! library's modules use one another without a cycle, so that it reads from the bottom up.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The units of `dir` with their sources: each `NAME.rs` file, and each folder `NAME/` with
/// the text of all its `.rs` files (a binary or a module split into files of its own).
fn units(dir: &Path) -> BTreeMap<String, String> {
    let mut units = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let mut files: Vec<PathBuf> =
                fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()).collect();
            files.retain(|f| f.extension().is_some_and(|e| e == "rs"));
            files.sort();
            let text: Vec<String> = files.iter().map(|f| fs::read_to_string(f).unwrap()).collect();
            if !text.is_empty() {
                units.insert(name, text.join("\n"));
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            units.insert(name, fs::read_to_string(&path).unwrap());
        }
    }
    units
}

/// The library's modules: the units of `src/` but the binaries' folder.
fn library_modules() -> BTreeMap<String, String> {
    let mut modules = units(&src());
    modules.remove("bin");
    modules
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

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
    let mut with_steps = 0;
    for (name, source) in units(&src().join("bin")) {
        let (printed, commented) = (printed_steps(&source), commented_steps(&source));
        if printed.is_empty() && commented.is_empty() {
            continue; // a _fail twin (its story is its sibling's file) or a measurement
        }
        with_steps += 1;
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

#[test]
fn binaries_share_code_only_through_the_library_and_their_twins() {
    let mut all = library_modules();
    all.extend(units(&src().join("bin")));
    for (name, source) in all {
        assert!(!source.contains("allow(dead_code)"), "{name}: #[allow(dead_code)]");
        if source.contains("#[path") {
            assert!(name.ends_with("_fail"), "{name}: #[path] outside a _fail twin");
        }
    }
}

#[test]
fn the_library_reads_from_the_bottom_up_without_a_cycle_of_modules() {
    let mut uses = BTreeMap::new();
    for (module, source) in library_modules() {
        let used: BTreeSet<String> = source
            .split("crate::")
            .skip(1)
            .map(|rest| rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_'))
            .map(String::from_iter)
            .filter(|used| !used.is_empty() && *used != module)
            .collect();
        uses.insert(module, used);
    }
    // Depth first from every module: a module met again on the way is a cycle.
    fn visit<'a>(
        module: &'a str,
        uses: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
    ) {
        assert!(!path.contains(&module), "a cycle of modules: {path:?} -> {module}");
        path.push(module);
        for used in uses.get(module).into_iter().flatten() {
            visit(used, uses, path);
        }
        path.pop();
    }
    for module in uses.keys() {
        visit(module, &uses, &mut Vec::new());
    }
    assert!(uses["process"].contains("sync") && !uses["sync"].contains("process"));
}
