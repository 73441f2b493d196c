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

/// The length in lines of each function in `source`, from its `fn` line to its closing brace,
/// with the name. Braces inside string and character literals and comments are not counted.
fn function_lengths(source: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = source.lines().collect();
    let mut lengths = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| *w == "fn") else { continue };
        let qualifiers = ["pub", "pub(crate)", "const", "unsafe", "async", "extern", "\"C\""];
        if !words[..at].iter().all(|w| qualifiers.contains(w)) || line.trim_end().ends_with(';') {
            continue;
        }
        let name = words.get(at + 1).map_or("", |w| w.split(['(', '<']).next().unwrap_or(""));
        let (mut depth, mut opened) = (0i32, false);
        for (end, line) in lines.iter().enumerate().skip(start) {
            for brace in code_braces(line) {
                depth += if brace == '{' { 1 } else { -1 };
                opened = true;
            }
            if opened && depth <= 0 {
                lengths.push((name.to_string(), end - start + 1));
                break;
            }
        }
    }
    lengths
}

/// The braces of one line of code, outside string and character literals and comments.
fn code_braces(line: &str) -> Vec<char> {
    let (mut braces, mut chars) = (Vec::new(), line.chars().peekable());
    let mut in_string = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_string => {
                chars.next();
            }
            '"' => in_string = !in_string,
            '/' if !in_string && chars.peek() == Some(&'/') => break,
            '\'' if !in_string => {
                // A character literal ('{', '\'') or a lifetime ('a): skip the literal only.
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with('\\') {
                    chars.nth(2);
                } else if rest.chars().nth(1) == Some('\'') {
                    chars.nth(1);
                }
            }
            '{' | '}' if !in_string => braces.push(c),
            _ => {}
        }
    }
    braces
}

/// The five stories a newcomer reads first: each function fits a screen and a half.
const CORE_STORIES: [&str; 5] = [
    "fork_waitpid",
    "clone_waitpid",
    "clone_waitpid_cgroup_memory",
    "clone_wait_signal_cgroup_memory",
    "clone3_into_cgroup_memory",
];

#[test]
fn every_function_of_a_story_can_be_read_at_a_glance() {
    let bins = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin");
    let mut functions = 0;
    for entry in fs::read_dir(&bins).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let source = fs::read_to_string(&path).unwrap();
        let most = if CORE_STORIES.contains(&name.as_str()) { 110 } else { 130 };
        for (function, lines) in function_lengths(&source) {
            functions += 1;
            assert!(lines <= most, "{name}.rs: fn {function} is {lines} lines, more than {most}");
        }
    }
    assert!(functions > 100, "only {functions} functions found: the reader above is broken");
}

#[test]
fn a_function_is_measured_from_fn_to_its_closing_brace() {
    let source =
        "fn a() {\n    let s = \"}{\"; // }\n    let c = '{';\n}\npub fn b<'x>(v: &'x str) {}\n";
    assert_eq!(function_lengths(source), [("a".to_string(), 4), ("b".to_string(), 1)]);
}

#[test]
fn binaries_share_code_only_through_the_library_and_their_twins() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files: Vec<_> = fs::read_dir(&src).unwrap().map(|e| e.unwrap().path()).collect();
    files.extend(fs::read_dir(src.join("bin")).unwrap().map(|e| e.unwrap().path()));
    for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "rs")) {
        let name = path.file_name().unwrap().to_string_lossy();
        let source = fs::read_to_string(path).unwrap();
        assert!(!source.contains("allow(dead_code)"), "{name}: #[allow(dead_code)]");
        if source.contains("#[path") {
            assert!(name.ends_with("_fail.rs"), "{name}: #[path] outside a _fail twin");
        }
    }
}

#[test]
fn no_two_library_modules_use_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut uses = std::collections::BTreeMap::new();
    for entry in fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().map_or(true, |e| e != "rs") {
            continue;
        }
        let module = path.file_stem().unwrap().to_string_lossy().into_owned();
        let source = fs::read_to_string(&path).unwrap();
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
        uses: &'a std::collections::BTreeMap<String, BTreeSet<String>>,
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

#[test]
fn the_library_where_a_story_reader_goes_stays_within_2500_lines() {
    // The modules the core stories use; the lesson-only ones and cli are counted apart.
    let core = ["lib", "process", "sync", "cgroup", "memory", "clone3"];
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lines: usize = core
        .iter()
        .map(|module| {
            let source = fs::read_to_string(src.join(format!("{module}.rs"))).unwrap();
            // Without the unit tests, which start at the module's #[cfg(test)].
            source.lines().take_while(|l| l.trim() != "#[cfg(test)]").count()
        })
        .sum();
    assert!(lines <= 2500, "the core modules hold {lines} lines");
    assert!(lines > 1000, "only {lines} lines counted: the count above is broken");
}
