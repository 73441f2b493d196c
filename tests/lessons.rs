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

/// A run the book shows, as `scripts/capture.sh` wrote it: the command, then the output.
struct Transcript {
    file: String,
    /// The binary it ran (the first word after `$ sudo `).
    binary: String,
    /// The steps it printed.
    steps: BTreeSet<u32>,
    /// The keys of its summary line, `None` without one.
    summary_keys: Option<BTreeSet<String>>,
    /// Whether its summary says `verdict=as-claimed`.
    as_claimed: bool,
    /// Whether it ran `--help`, which prints no story and no summary.
    help: bool,
    /// The file its trace went to, for a run with `--trace`.
    trace: Option<String>,
}

fn transcripts() -> Vec<Transcript> {
    let runs = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/runs");
    let mut all = Vec::new();
    for entry in fs::read_dir(&runs).unwrap() {
        let path = entry.unwrap().path();
        let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
        // A trace (LABEL.trace.txt) belongs to its run's transcript, checked with it.
        if path.extension().map_or(true, |e| e != "txt") || file_name.ends_with(".trace.txt") {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        let file = file_name;
        let command = text.lines().find_map(|l| l.strip_prefix("$ sudo ")).unwrap_or("");
        // `sh -c "ulimit -H -c 0; exec wait_statuses"`: the program is the last command's.
        let last = command.rsplit(';').next().unwrap_or("");
        let mut words = last.split_whitespace().map(|w| w.trim_matches('"'));
        let binary = words.find(|w| *w != "exec").unwrap_or("").to_string();
        let steps = text
            .lines()
            .filter_map(|line| {
                let rest = &line[line.find("]: ")? + 3..];
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                (!digits.is_empty() && rest[digits.len()..].starts_with(". "))
                    .then(|| digits.parse().unwrap())
            })
            .collect();
        let summary_keys = text.lines().find_map(|l| l.strip_prefix("summary ")).map(|s| {
            s.split_whitespace()
                .filter_map(|w| w.split_once('='))
                .map(|(k, _)| k.to_string())
                .collect()
        });
        let help = command.split_whitespace().any(|w| w == "--help");
        let trace = text.lines().find_map(|l| {
            let rest = l.strip_prefix("[the kernel's trace of this run, ")?;
            Some(rest.split(" is in ").nth(1)?.trim_end_matches(']').to_string())
        });
        let as_claimed =
            text.lines().any(|l| l.starts_with("summary ") && l.contains(" verdict=as-claimed"));
        all.push(Transcript { file, binary, steps, summary_keys, as_claimed, help, trace });
    }
    all
}

/// The source of binary `name` as its story is told: a `_fail` twin's is its sibling's.
fn story_source(name: &str) -> Option<String> {
    let bins = units(&src().join("bin"));
    bins.get(name.strip_suffix("_fail").unwrap_or(name)).cloned()
}

/// The keys a binary's summary has, read from its source: each `.field("KEY"`, and those
/// every memory scenario adds (`Claim::summary`), and the two every summary starts with.
fn summary_keys_in(source: &str) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = ["scenario", "verdict"].map(String::from).into();
    for piece in source.split(".field(\"").skip(1) {
        keys.insert(piece.split('"').next().unwrap().to_string());
    }
    if source.contains(".summary(scenario") {
        let cli = fs::read_to_string(src().join("cli.rs")).unwrap();
        let claim = &cli[cli.find("pub fn summary(").unwrap()..];
        keys.extend(summary_keys_in(claim));
    }
    keys
}

#[test]
fn every_transcript_in_the_book_is_in_step_with_its_program() {
    let transcripts = transcripts();
    assert!(transcripts.len() >= 25, "only {} transcripts", transcripts.len());
    for run in transcripts {
        let name = &run.file;
        // An example of the library (cgroup_limit) is no story: its steps are its own.
        let Some(source) = story_source(&run.binary) else {
            let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
            assert!(
                example.join(format!("{}.rs", run.binary)).exists(),
                "{name}: no program {}",
                run.binary
            );
            continue;
        };
        if run.help {
            continue; // --help prints no story and no summary
        }
        let steps = printed_steps(&source);
        // Every step it shows is one the program prints, and it ran to the program's last.
        assert!(
            run.steps.is_subset(&steps),
            "{name}: steps {:?} not all in {:?}",
            run.steps,
            steps
        );
        let keys = run.summary_keys.unwrap_or_else(|| panic!("{name}: no summary line"));
        // A run stopped by an error (a refused option, shown on purpose) has a summary of its
        // scenario and verdict alone, and stops where the error came.
        let stopped_by_an_error = keys.len() == 2 && !run.as_claimed;
        if stopped_by_an_error {
            continue;
        }
        if let Some(last) = steps.last() {
            assert!(run.steps.contains(last), "{name}: never reached step {last}");
        }
        assert_eq!(keys, summary_keys_in(&source), "{name}: the summary's keys");
        if let Some(trace) = &run.trace {
            // The trace and the picture capture.sh took apart from the transcript.
            let runs = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/runs");
            let text = fs::read_to_string(runs.join(trace)).unwrap_or_default();
            assert!(text.starts_with("--- the kernel's trace of this run"), "{name}: no {trace}");
            assert!(text.trim_end().ends_with("--- end of the trace"), "{name}: {trace} cut short");
            let picture = trace.replace(".trace.txt", ".svg");
            let svg = fs::read_to_string(runs.join(&picture)).unwrap_or_default();
            assert!(
                svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
                "{name}: no {picture}"
            );
        }
    }
}

#[test]
fn every_lesson_has_its_chapter_and_every_chapter_is_in_the_book() {
    let book = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src");
    let summary = fs::read_to_string(book.join("SUMMARY.md")).unwrap();
    let scenarios =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/scenarios.txt"))
            .unwrap();
    let measurements = ["spawn_bench", "cgroup_race"];
    for lesson in scenarios.lines().chain(measurements).filter(|l| !l.is_empty()) {
        // A _fail twin shares its sibling's chapter.
        let chapter = format!("{}.md", lesson.strip_suffix("_fail").unwrap_or(lesson));
        assert!(book.join(&chapter).exists(), "{lesson}: no chapter {chapter}");
        assert!(summary.contains(&format!("({chapter})")), "{chapter} is not in SUMMARY.md");
        let text = fs::read_to_string(book.join(&chapter)).unwrap();
        assert!(text.contains("{{#include runs/"), "{chapter} shows no real run");
        if !measurements.contains(&lesson) {
            // A lesson's chapter shows the kernel's record of its run, in words and drawn.
            for shown in [format!("runs/{lesson}.trace.txt"), format!("runs/{lesson}.svg")] {
                assert!(text.contains(&shown), "{chapter} does not show {shown}");
            }
        }
    }
}
