//! The command line shared by the binaries: options, `--help`, exit statuses, and the
//! one-line summary every run ends with.
//!
//! The summary is the last line on standard output, one `key=value` pair per field, values
//! without spaces, so tests and scripts can parse it:
//!
//! ```text
//! summary scenario=clone_waitpid_cgroup_memory_fail verdict=as-claimed claim=killed:SIGKILL outcome=killed:SIGKILL oom_kill=1 peak=4096
//! ```
//!
//! `verdict` is `as-claimed` (exit 0), `not-as-claimed` (exit 1), `cannot-run` (exit 2) or
//! `interrupted` (exit 128 + signal).

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::Error;

/// Exit status: the scenario ended as claimed.
pub const AS_CLAIMED: u8 = 0;
/// Exit status: it did not, or something failed unexpectedly.
pub const NOT_AS_CLAIMED: u8 = 1;
/// Exit status: it cannot run here, or the options are wrong.
pub const CANNOT_RUN: u8 = 2;

/// The exit statuses, as `--help` and the README print them.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0        the scenario ended as claimed (for a _fail scenario: the kernel killed the child)
  1        it did not; the output says what happened instead
  2        it cannot run here (the reason and the fix are printed), or bad options
  128+N    interrupted by signal N (SIGINT, SIGTERM, SIGHUP); child killed, cgroup removed";

/// What a binary says about itself in `--help` and in its summary line.
pub struct Scenario {
    /// The binary's name, e.g. `clone_waitpid_cgroup_memory`.
    pub name: &'static str,
    /// One sentence: what it shows and what to expect.
    pub about: &'static str,
    /// The options it takes, formatted for `--help` (empty for none).
    pub options: &'static str,
}

impl Scenario {
    /// The `--help` text.
    pub fn help(&self) -> String {
        let mut text = format!(
            "{}\n\n{}\n\nUsage: {} [OPTIONS]\n\nOptions:\n",
            self.name, self.about, self.name
        );
        text.push_str(self.options);
        text.push_str("  -h, --help           print this help\n\n");
        text.push_str(EXIT_STATUS_HELP);
        text.push('\n');
        text
    }

    /// Runs a scenario as a binary's `main`: `--help` first, then `run`; prints the summary
    /// line (or the error on standard error) and turns the result into the exit status.
    pub fn main(&self, run: impl FnOnce(&[String]) -> Result<Summary, Error>) -> ExitCode {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.iter().any(|a| a == "-h" || a == "--help") {
            print!("{}", self.help());
            return ExitCode::SUCCESS;
        }
        match run(&args) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::from(if summary.as_claimed() {
                    AS_CLAIMED
                } else {
                    NOT_AS_CLAIMED
                })
            }
            Err(error) => {
                eprintln!("{}: {error}", self.name);
                if let Error::Usage(_) = error {
                    eprintln!("Usage: {} [OPTIONS]; see --help", self.name);
                }
                let verdict = match error {
                    Error::CannotRun(_) | Error::Usage(_) => Verdict::CannotRun,
                    Error::Interrupted(_) => Verdict::Interrupted,
                    _ => Verdict::NotAsClaimed,
                };
                println!("{}", Summary::new(self.name, verdict));
                ExitCode::from(error.exit_code())
            }
        }
    }
}

/// How a run ended, relative to what the scenario claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The scenario ended as its README and `--help` claim.
    AsClaimed,
    /// It ended otherwise.
    NotAsClaimed,
    /// It could not run here.
    CannotRun,
    /// It was interrupted by a signal.
    Interrupted,
}

impl Verdict {
    /// [`Verdict::AsClaimed`] if the claim held, [`Verdict::NotAsClaimed`] otherwise.
    pub fn of(claim_held: bool) -> Verdict {
        if claim_held {
            Verdict::AsClaimed
        } else {
            Verdict::NotAsClaimed
        }
    }

    /// The token in the summary line.
    pub fn token(&self) -> &'static str {
        match self {
            Verdict::AsClaimed => "as-claimed",
            Verdict::NotAsClaimed => "not-as-claimed",
            Verdict::CannotRun => "cannot-run",
            Verdict::Interrupted => "interrupted",
        }
    }
}

/// The last line of every run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The binary's name.
    pub scenario: String,
    /// How it ended relative to its claim.
    pub verdict: Verdict,
    /// Further `key=value` fields, in order.
    pub fields: Vec<(String, String)>,
}

impl Summary {
    /// A summary with no fields yet.
    pub fn new(scenario: &str, verdict: Verdict) -> Summary {
        Summary {
            scenario: scenario.to_string(),
            verdict,
            fields: Vec::new(),
        }
    }

    /// Adds a field; spaces in the value become `_` to keep the line parseable.
    pub fn field(mut self, key: &str, value: impl fmt::Display) -> Summary {
        self.fields
            .push((key.to_string(), value.to_string().replace(' ', "_")));
        self
    }

    /// Whether the verdict is [`Verdict::AsClaimed`].
    pub fn as_claimed(&self) -> bool {
        self.verdict == Verdict::AsClaimed
    }

    /// Parses a summary line back, for tests and scripts. `None` if it is not one.
    pub fn parse(line: &str) -> Option<Summary> {
        let mut words = line.split_whitespace();
        if words.next()? != "summary" {
            return None;
        }
        let mut scenario = None;
        let mut verdict = None;
        let mut fields = Vec::new();
        for word in words {
            let (key, value) = word.split_once('=')?;
            match key {
                "scenario" => scenario = Some(value.to_string()),
                "verdict" => {
                    verdict = Some(match value {
                        "as-claimed" => Verdict::AsClaimed,
                        "not-as-claimed" => Verdict::NotAsClaimed,
                        "cannot-run" => Verdict::CannotRun,
                        "interrupted" => Verdict::Interrupted,
                        _ => return None,
                    })
                }
                _ => fields.push((key.to_string(), value.to_string())),
            }
        }
        Some(Summary {
            scenario: scenario?,
            verdict: verdict?,
            fields,
        })
    }

    /// The value of field `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "summary scenario={} verdict={}",
            self.scenario,
            self.verdict.token()
        )?;
        for (key, value) in &self.fields {
            write!(f, " {key}={value}")?;
        }
        Ok(())
    }
}

/// The options of the memory scenarios, as `--help` lists them.
pub const MEMORY_OPTIONS_HELP: &str =
    "      --limit BYTES    memory.max of the cgroup [default: 4096]
      --alloc BYTES    new memory the child writes after the move
                       [default: 3000; 1M for the _fail scenarios]
      --delay MS       delayed pair: how long the child sleeps before it writes; the
                       parent moves it at half [default: 200]
                       signal-synced pair: how long the parent keeps the ready child
                       waiting before it moves it [default: 0]
                       clone3 pair: unused (the child is born in the cgroup)
      --timeout SECS   give up on a child that has not ended by then [default: 30]
      --parent DIR     create the scenario's cgroup under this cgroup v2 directory
                       [default: the root of the cgroup2 mount]
      --cgroup DIR     use this existing cgroup instead of creating one; it is not removed
                       (scripts/make-foo-cgroup.sh makes the classic /sys/fs/cgroup/foo)
  BYTES take a K, M or G suffix (powers of 1024).
";

/// The options of the memory scenarios.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryOptions {
    /// `memory.max` in bytes.
    pub limit: u64,
    /// Bytes of new memory the child writes after it has been moved.
    pub alloc: u64,
    /// How long the child stays parked.
    pub delay: Duration,
    /// The bound on every wait for the child.
    pub timeout: Duration,
    /// Where to create the cgroup (default: the cgroup2 mount's root).
    pub parent: Option<PathBuf>,
    /// An existing cgroup to use instead.
    pub cgroup: Option<PathBuf>,
}

/// The largest `--limit` and `--alloc` accepted: beyond this the scenario teaches nothing
/// and a typo could ask the machine for all its memory.
pub const MAX_BYTES: u64 = 1 << 30;

impl MemoryOptions {
    /// The defaults, with the scenario's own allocation size and delay.
    pub fn defaults(alloc: u64, delay: Duration) -> MemoryOptions {
        MemoryOptions {
            limit: 4096,
            alloc,
            delay,
            timeout: Duration::from_secs(30),
            parent: None,
            cgroup: None,
        }
    }

    /// Parses `args` over the defaults. Every error is an [`Error::Usage`], raised before
    /// anything is created.
    pub fn parse(args: &[String], defaults: MemoryOptions) -> Result<MemoryOptions, Error> {
        let mut options = defaults;
        for_each_option(args, |name, value| {
            match name {
                "--limit" => options.limit = parse_bytes(name, &value()?)?,
                "--alloc" => options.alloc = parse_bytes(name, &value()?)?,
                "--delay" => {
                    options.delay = Duration::from_millis(parse_number(name, &value()?, 0, 60_000)?)
                }
                "--timeout" => {
                    options.timeout = Duration::from_secs(parse_number(name, &value()?, 1, 3600)?)
                }
                "--parent" => options.parent = Some(PathBuf::from(value()?)),
                "--cgroup" => options.cgroup = Some(PathBuf::from(value()?)),
                other => return Err(unknown_option(other)),
            }
            Ok(())
        })?;
        if options.limit < 4096 {
            return Err(Error::Usage(format!(
                "--limit {} is below one page (4096): the child could not run at all",
                options.limit
            )));
        }
        if options.parent.is_some() && options.cgroup.is_some() {
            return Err(Error::Usage(
                "--parent and --cgroup exclude each other".into(),
            ));
        }
        Ok(options)
    }
}

/// Walks `--name VALUE` and `--name=VALUE` options: calls `handle(name, value)`, where
/// `value()` takes the option's value (and fails with a usage error if there is none).
pub fn for_each_option(
    args: &[String],
    mut handle: impl FnMut(&str, &mut dyn FnMut() -> Result<String, Error>) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .ok_or_else(|| Error::Usage(format!("{name} needs a value")))
        };
        handle(name, &mut value)?;
    }
    Ok(())
}

/// The usage error for an option nobody takes.
pub fn unknown_option(name: &str) -> Error {
    Error::Usage(format!("unknown option {name:?}"))
}

/// Parses a byte count: digits with an optional K, M or G suffix (powers of 1024), from 1
/// up to [`MAX_BYTES`].
pub fn parse_bytes(option: &str, text: &str) -> Result<u64, Error> {
    let bad = |why: &str| Error::Usage(format!("{option} {text:?}: {why}"));
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let multiplier: u64 = match unit {
        "" => 1,
        "K" | "k" | "KiB" => 1 << 10,
        "M" | "m" | "MiB" => 1 << 20,
        "G" | "g" | "GiB" => 1 << 30,
        _ => {
            return Err(bad(
                "expected a whole number of bytes, optionally with K, M or G",
            ))
        }
    };
    if digits.is_empty() {
        return Err(bad(
            "expected a whole number of bytes, optionally with K, M or G",
        ));
    }
    let value = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| bad("too large"))?;
    if value == 0 {
        return Err(bad("must be at least 1"));
    }
    if value > MAX_BYTES {
        return Err(bad("more than 1G; these scenarios need bytes to kilobytes"));
    }
    Ok(value)
}

/// Parses a whole number within `min..=max`.
pub fn parse_number(option: &str, text: &str, min: u64, max: u64) -> Result<u64, Error> {
    match text.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Error::Usage(format!(
            "{option} {text:?}: expected a whole number from {min} to {max}"
        ))),
    }
}

/// Fails with a usage error if any argument is given: for binaries without options.
pub fn no_options(args: &[String]) -> Result<(), Error> {
    match args.first() {
        Some(arg) => Err(unknown_option(arg)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bytes_take_suffixes_and_refuse_nonsense() {
        assert_eq!(parse_bytes("--alloc", "3000").unwrap(), 3000);
        assert_eq!(parse_bytes("--alloc", "4K").unwrap(), 4096);
        assert_eq!(parse_bytes("--alloc", "1M").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("--alloc", "1GiB").unwrap(), 1 << 30);
        for bad in [
            "",
            "0",
            "-1",
            "abc",
            "1.5M",
            "4KB",
            "2G",
            "99999999999999999999",
            "1T",
        ] {
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
            &args(&[
                "--limit",
                "8K",
                "--alloc=2000",
                "--delay",
                "0",
                "--cgroup",
                "/sys/fs/cgroup/foo",
            ]),
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
    fn summary_lines_round_trip() {
        let summary = Summary::new("x", Verdict::AsClaimed)
            .field("outcome", "exited:0")
            .field("note", "two words");
        let line = summary.to_string();
        assert_eq!(
            line,
            "summary scenario=x verdict=as-claimed outcome=exited:0 note=two_words"
        );
        let parsed = Summary::parse(&line).unwrap();
        assert_eq!(parsed.get("outcome"), Some("exited:0"));
        assert_eq!(parsed.verdict, Verdict::AsClaimed);
        assert!(Summary::parse("parent[1]: hello").is_none());
    }

    #[test]
    fn help_lists_exit_statuses() {
        let scenario = Scenario {
            name: "demo",
            about: "shows a thing",
            options: MEMORY_OPTIONS_HELP,
        };
        let help = scenario.help();
        assert!(help.contains("Usage: demo [OPTIONS]"));
        assert!(help.contains("128+N"));
        assert!(help.contains("--limit BYTES"));
    }
}
