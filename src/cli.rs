//! The command line every binary shares: options, `--help`, `--version`, exit statuses, what
//! a memory scenario claims, and the one-line summary each run ends with.
//!
//! It is the binaries' plumbing, not a mechanism: a reader following a story can skip it.
//!
//! The summary is the last line on standard output, one `key=value` pair per field, values
//! without spaces, so tests and scripts can parse it:
//!
//! ```text
//! summary scenario=clone_waitpid_cgroup_memory_fail verdict=as-claimed claim=killed:SIGKILL outcome=killed:SIGKILL oom_kill=1 peak=4096
//! ```
//!
//! `verdict` is `as-claimed` (exit 0), `not-as-claimed` (exit 1), `cannot-run` or
//! `bad-usage` (exit 2), or `interrupted` (exit 128 + signal).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::cgroup::{self, Cgroup, MemoryEvents, MemoryEvidence};
use crate::process::Outcome;
use crate::sync;
use crate::trace::timeline::Timeline;
use crate::trace::{svg, Trace, What};
use crate::Error;
use nix::sys::signal::Signal;

/// The exit statuses, as `--help` prints them and the book's options chapter lists them.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0        the scenario ended as claimed (for a _fail scenario: the kernel killed the child)
  1        it did not; the output says what happened instead
  2        it cannot run here (the reason and the fix are printed), or bad options
  128+N    interrupted by signal N (SIGINT, SIGTERM, SIGHUP); child killed, cgroup removed";

/// The exit status of a run that ended with `error` (see [`EXIT_STATUS_HELP`]).
pub fn exit_code(error: &Error) -> u8 {
    match error {
        Error::CannotRun(_) | Error::Usage(_) => 2,
        Error::Sys { .. } | Error::Io { .. } | Error::Failed(_) | Error::Unexpected(_) => 1,
        Error::Interrupted(signal) => 128 + *signal as u8,
    }
}

/// What a binary says about itself in `--help` and in its summary line.
pub struct Scenario {
    /// The binary's name, e.g. `clone_waitpid_cgroup_memory`.
    pub name: &'static str,
    /// One sentence: what it shows and what to expect.
    pub about: &'static str,
    /// The options it takes, formatted for `--help` (empty for none): `--name VALUE` (a
    /// value's placeholder in capitals) or `--name` alone.
    pub options: &'static str,
}

impl Scenario {
    /// The `--help` text.
    pub fn help(&self) -> String {
        let (name, version) = (self.name, env!("CARGO_PKG_VERSION"));
        let every_binary =
            "  -h, --help           print this help\n  -V, --version        print the version\n";
        format!(
            "{name} {version}\n\n{}\n\nUsage: {name} [OPTIONS]\n\nOptions:\n{}{TRACE_OPTIONS_HELP}{every_binary}\n\
             {EXIT_STATUS_HELP}\n",
            self.about, self.options
        )
    }

    /// Whether option `name` takes a value, as its line in [`options`](Self::options) (or in
    /// the options every binary has) says.
    fn takes_value(&self, name: &str) -> bool {
        self.options.lines().chain(TRACE_OPTIONS_HELP.lines()).any(|line| {
            let mut words = line.split_whitespace().map(|w| w.trim_end_matches(','));
            let names: Vec<&str> = words.by_ref().take_while(|w| w.starts_with('-')).collect();
            let placeholder = line.split_whitespace().nth(names.len());
            names.contains(&name)
                && placeholder.is_some_and(|w| w.chars().all(|c| c.is_ascii_uppercase()))
        })
    }

    /// `--help` or `--version`, where an option may stand (not as another option's value):
    /// the text to print instead of running.
    fn asked_for(&self, args: &[String]) -> Option<String> {
        let mut words = args.iter();
        while let Some(word) = words.next() {
            match word.as_str() {
                "-h" | "--help" => return Some(self.help()),
                "-V" | "--version" => {
                    return Some(format!("{} {}\n", self.name, env!("CARGO_PKG_VERSION")))
                }
                name if self.takes_value(name) => drop(words.next()),
                _ => {}
            }
        }
        None
    }

    /// Runs a scenario as a binary's `main`: the arguments (UTF-8, or a usage error), then
    /// `--help`, `--version` or `run`; prints the summary line (and an error on standard
    /// error) and turns the result into the exit status.
    pub fn main(&self, run: impl FnOnce(&[String]) -> Result<Summary, Error>) -> ExitCode {
        let args: Result<Vec<String>, Error> = std::env::args_os()
            .skip(1)
            .map(|arg| {
                arg.into_string()
                    .map_err(|arg| Error::Usage(format!("argument {arg:?} is not valid UTF-8")))
            })
            .collect();
        let result = args.and_then(|args| match self.asked_for(&args) {
            Some(text) => {
                print!("{text}");
                Ok(None)
            }
            None => {
                let (request, args) = TraceRequest::take(&args)?;
                let tracing = request.start()?;
                let ran = run(&args);
                if let Some(tracing) = tracing {
                    tracing.show(self.name, &ran)?;
                }
                ran.map(Some)
            }
        });
        match result {
            Ok(None) => ExitCode::SUCCESS,
            // Asked to stop after its last look for an interruption: stopped, and says so.
            Ok(Some(summary)) => match sync::late_interruption() {
                Some(signal) => report_error(self.name, &Error::Interrupted(signal)),
                None => {
                    println!("{summary}");
                    ExitCode::from(if summary.verdict == Verdict::AsClaimed { 0 } else { 1 })
                }
            },
            Err(error) => report_error(self.name, &error),
        }
    }
}

/// The options of `--trace`, which every binary takes, as `--help` lists them.
pub const TRACE_OPTIONS_HELP: &str =
    "      --trace          after the story, print the kernel's own record of it: its
                       processes' births, cgroups, signals, ends and waits, in one
                       timeline with the story's steps (root; tracefs)
      --trace-svg FILE the same timeline as a picture, written to FILE (implies --trace)
";

/// What the options `--trace` and `--trace-svg FILE` ask for.
struct TraceRequest {
    wanted: bool,
    svg: Option<PathBuf>,
}

/// A traced run: its trace, and where its picture goes.
struct Tracing {
    trace: Trace,
    svg: Option<PathBuf>,
}

impl TraceRequest {
    /// Takes `--trace` and `--trace-svg FILE` out of `args`: the rest is the scenario's own.
    fn take(args: &[String]) -> Result<(TraceRequest, Vec<String>), Error> {
        let mut request = TraceRequest { wanted: false, svg: None };
        let mut rest = Vec::new();
        let mut words = args.iter();
        while let Some(word) = words.next() {
            match word.split_once('=') {
                _ if word == "--trace" => request.wanted = true,
                Some(("--trace-svg", file)) => request.svg = Some(PathBuf::from(file)),
                _ if word == "--trace-svg" => match words.next() {
                    // As for every option's value: one that starts with '-' is an option.
                    Some(file) if !file.starts_with('-') => request.svg = Some(PathBuf::from(file)),
                    _ => return Err(Error::Usage("--trace-svg needs a file".into())),
                },
                _ => rest.push(word.clone()),
            }
        }
        request.wanted |= request.svg.is_some();
        Ok((request, rest))
    }

    /// Starts the trace, where one is asked for: refused (exit 2) before the story where it
    /// cannot work, or where the picture cannot be written. SIGINT, SIGTERM and SIGHUP wait,
    /// blocked, until the instance is made, so that none can come between its making and the
    /// guard that removes it.
    fn start(self) -> Result<Option<Tracing>, Error> {
        if !self.wanted {
            return Ok(None);
        }
        if let Some(file) = &self.svg {
            // Checked, not made: a run refused later leaves no empty file behind.
            let dir = match file.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            let (path, mode) = if file.exists() {
                (file.as_path(), nix::unistd::AccessFlags::W_OK)
            } else {
                (dir, nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK)
            };
            nix::unistd::access(path, mode).map_err(|e| {
                Error::Usage(format!(
                    "--trace-svg {}: cannot write it: {}",
                    file.display(),
                    e.desc()
                ))
            })?;
        }
        let watch = sync::SignalWatch::interruptions_only()?;
        let trace = Trace::start()?;
        watch.stop_if_interrupted()?;
        Ok(Some(Tracing { trace, svg: self.svg }))
    }
}

impl Tracing {
    /// After the story: its timeline, before the summary line (which stays last), and its
    /// picture; nothing for a run that was interrupted or could not run (the instance goes
    /// all the same).
    fn show(self, name: &str, ran: &Result<Summary, Error>) -> Result<(), Error> {
        if matches!(ran, Err(Error::Interrupted(_) | Error::CannotRun(_) | Error::Usage(_))) {
            return Ok(());
        }
        let record = self.trace.finish()?;
        let timeline = Timeline::new(record.events, nix::unistd::getpid());
        let stories = timeline.events.iter().filter(|e| matches!(e.what, What::Story(_))).count();
        println!(
            "--- the kernel's trace of this run (tracefs instance {}): {} events, {stories} of \
             them the story's lines",
            record.instance,
            timeline.events.len()
        );
        for note in record.notes.iter().chain(&timeline.notes()) {
            println!("    note: {note}");
        }
        for line in timeline.lines() {
            println!("{line}");
        }
        println!("--- end of the trace");
        if let Some(file) = &self.svg {
            let release = nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default();
            let title = format!("{name}, Linux {release}");
            std::fs::write(file, svg::picture(&timeline, &title))
                .map_err(|e| Error::io(&format!("failed to write {}", file.display()), e))?;
        }
        Ok(())
    }
}

/// Ends a run of `name` that failed with `error`: the error on standard error (with the usage
/// hint for bad usage), the summary line with the verdict the error means, and its exit status.
pub fn report_error(name: &str, error: &Error) -> ExitCode {
    eprintln!("{name}: {error}");
    let verdict = match error {
        Error::Usage(_) => {
            eprintln!("Usage: {name} [OPTIONS]; see --help");
            Verdict::BadUsage
        }
        Error::CannotRun(_) => Verdict::CannotRun,
        Error::Interrupted(_) => Verdict::Interrupted,
        _ => Verdict::NotAsClaimed,
    };
    println!("{}", Summary::new(name, verdict));
    ExitCode::from(exit_code(error))
}

/// How a run ended, relative to what the scenario claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The scenario ended as its chapter and `--help` claim.
    AsClaimed,
    /// It ended otherwise.
    NotAsClaimed,
    /// It could not run here.
    CannotRun,
    /// The command line was wrong.
    BadUsage,
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

    /// The word in the summary line.
    pub fn token(&self) -> &'static str {
        match self {
            Verdict::AsClaimed => "as-claimed",
            Verdict::NotAsClaimed => "not-as-claimed",
            Verdict::CannotRun => "cannot-run",
            Verdict::BadUsage => "bad-usage",
            Verdict::Interrupted => "interrupted",
        }
    }
}

/// The last line of every run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    scenario: String,
    /// How it ended relative to its claim.
    pub verdict: Verdict,
    fields: Vec<(String, String)>,
}

impl Summary {
    /// A summary with no fields yet.
    pub fn new(scenario: &str, verdict: Verdict) -> Summary {
        Summary { scenario: scenario.to_string(), verdict, fields: Vec::new() }
    }

    /// Adds a field; spaces in the value become `_` to keep the line parseable.
    pub fn field(mut self, key: &str, value: impl fmt::Display) -> Summary {
        self.fields.push((key.to_string(), value.to_string().replace(' ', "_")));
        self
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "summary scenario={} verdict={}", self.scenario, self.verdict.token())?;
        for (key, value) in &self.fields {
            write!(f, " {key}={value}")?;
        }
        Ok(())
    }
}

/// One option of a command line, as [`for_each_option`] hands it out.
pub struct Opt<'a, 'b> {
    name: &'a str,
    inline: Option<&'a str>,
    rest: &'b mut std::slice::Iter<'a, String>,
}

impl Opt<'_, '_> {
    /// The option's value: after `=`, or the next argument. A next argument that starts
    /// with `-` is another option, not this one's value, unless a digit follows the `-`: a
    /// negative number is a value, refused then by the option's own check with its reason.
    pub fn value(&mut self) -> Result<String, Error> {
        if let Some(value) = self.inline {
            return Ok(value.to_string());
        }
        let is_value = |next: &String| match next.strip_prefix('-') {
            Some(rest) => rest.starts_with(|c: char| c.is_ascii_digit()),
            None => true,
        };
        match self.rest.as_slice().first() {
            Some(next) if is_value(next) => Ok(self.rest.next().cloned().unwrap_or_default()),
            _ => Err(Error::Usage(format!("{} needs a value", self.name))),
        }
    }

    /// For an option without a value: refuses `--name=VALUE`.
    pub fn flag(&self) -> Result<(), Error> {
        match self.inline {
            None => Ok(()),
            Some(value) => {
                Err(Error::Usage(format!("{} takes no value (got {value:?})", self.name)))
            }
        }
    }
}

/// Walks `--name VALUE`, `--name=VALUE` and `--flag` options: calls `handle(name, option)`.
pub fn for_each_option(
    args: &[String],
    mut handle: impl FnMut(&str, &mut Opt) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value)),
            _ => (arg.as_str(), None),
        };
        handle(name, &mut Opt { name, inline, rest: &mut rest })?;
    }
    Ok(())
}

/// The usage error for an option nobody takes.
pub fn unknown_option(name: &str) -> Error {
    Error::Usage(format!("unknown option {name:?}"))
}

/// Fails with a usage error if any argument is given: for binaries without options.
pub fn no_options(args: &[String]) -> Result<(), Error> {
    match args.first() {
        Some(arg) => Err(unknown_option(arg)),
        None => Ok(()),
    }
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

/// The largest `--limit` and `--alloc` accepted: beyond this the scenario teaches nothing
/// and a typo could ask the machine for all its memory.
pub const MAX_BYTES: u64 = 1 << 30;

/// Parses a byte count: digits with an optional K, M or G suffix (powers of 1024), from 1
/// up to [`MAX_BYTES`].
pub fn parse_bytes(option: &str, text: &str) -> Result<u64, Error> {
    let bad = |why: &str| Error::Usage(format!("{option} {text:?}: {why}"));
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let multiplier: u64 = match unit {
        "" => 1,
        "K" | "k" | "KiB" => 1 << 10,
        "M" | "m" | "MiB" => 1 << 20,
        "G" | "g" | "GiB" => 1 << 30,
        _ => 0,
    };
    if digits.is_empty() || multiplier == 0 {
        return Err(bad("expected a whole number of bytes, optionally with K, M or G"));
    }
    let value = digits.parse::<u64>().ok().and_then(|n| n.checked_mul(multiplier));
    match value.ok_or_else(|| bad("too large"))? {
        0 => Err(bad("must be at least 1")),
        value if value > MAX_BYTES => {
            Err(bad("more than 1G; these scenarios need bytes to kilobytes"))
        }
        value => Ok(value),
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

impl MemoryOptions {
    /// The defaults, with the scenario's own allocation size and delay.
    pub fn defaults(alloc: u64, delay: Duration) -> MemoryOptions {
        let timeout = Duration::from_secs(30);
        MemoryOptions { limit: 4096, alloc, delay, timeout, parent: None, cgroup: None }
    }

    /// Parses `args` over the defaults. Every error is an [`Error::Usage`], raised before
    /// anything is created, but one: on a kernel whose pages are larger than 4 KiB, the
    /// default limit cannot hold a page, and the run cannot go as the lesson says.
    pub fn parse(args: &[String], defaults: MemoryOptions) -> Result<MemoryOptions, Error> {
        let mut o = defaults;
        for_each_option(args, |name, opt| {
            match name {
                "--limit" => o.limit = parse_bytes(name, &opt.value()?)?,
                "--alloc" => o.alloc = parse_bytes(name, &opt.value()?)?,
                "--delay" => {
                    o.delay = Duration::from_millis(parse_number(name, &opt.value()?, 0, 60_000)?)
                }
                "--timeout" => {
                    o.timeout = Duration::from_secs(parse_number(name, &opt.value()?, 1, 3600)?)
                }
                "--parent" => o.parent = Some(PathBuf::from(opt.value()?)),
                "--cgroup" => o.cgroup = Some(PathBuf::from(opt.value()?)),
                other => return Err(unknown_option(other)),
            }
            Ok(())
        })?;
        // Pages of 16 or 64 KiB (some arm64 kernels) hold more than the default limit.
        let page = crate::memory::page_size() as u64;
        if o.limit < page && o.limit == 4096 && page > 4096 {
            return Err(Error::cannot_run(format!(
                "this kernel's pages are {page} bytes, and memory.max 4096 holds less than one: \
                 pass --limit {page}, the lesson's one page then being {page} bytes"
            )));
        }
        if o.limit < page {
            return Err(Error::Usage(format!(
                "--limit {} is below one page ({page}): the child could not run at all",
                o.limit
            )));
        }
        if o.parent.is_some() && o.cgroup.is_some() {
            return Err(Error::Usage("--parent and --cgroup exclude each other".into()));
        }
        Ok(o)
    }
}

/// The cgroup of a memory scenario's run, ready for its child (see
/// [`MemoryOptions::limited_cgroup`]).
pub struct LimitedCgroup {
    /// The cgroup: created under `--parent` (or given by `--cgroup`), its limit set.
    pub cgroup: Cgroup,
    /// What was done to get it, for the story to print as its step 1: stale cgroups removed,
    /// the controller enabled, the cgroup created, and the limits as the files hold them now.
    pub notes: Vec<String>,
    /// Its `memory.events` before the child: a reused cgroup (`--cgroup`) counts on across
    /// runs, so a run reports what changed.
    pub events_before: MemoryEvents,
}

impl MemoryOptions {
    /// The cgroup of a memory scenario: [`cgroup::prepare`] refuses where the scenario cannot
    /// run and creates it (or takes `--cgroup`), then `memory.max` is set to `--limit`, with
    /// no swap ([`Cgroup::limit_memory`]).
    pub fn limited_cgroup(&self) -> Result<LimitedCgroup, Error> {
        let (cgroup, mut notes) = cgroup::prepare(
            "memory-max",
            "memory",
            self.parent.as_deref(),
            self.cgroup.as_deref(),
        )?;
        notes.push(cgroup.limit_memory(self.limit)?);
        let events_before = cgroup.memory_events()?;
        Ok(LimitedCgroup { cgroup, notes, events_before })
    }
}

/// What a memory scenario claims will happen to its child, and whether a run bore it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The child writes less than the limit and exits 0.
    Survives,
    /// The child writes far more; the kernel's OOM killer ends it with SIGKILL.
    KilledByKernel,
}

impl Claim {
    /// The options' defaults for this claim and a placement's delay: the child writes 3000
    /// bytes, one 4 KiB page, or 1 MiB, 256 pages.
    pub fn defaults(&self, delay: Duration) -> MemoryOptions {
        let alloc = match self {
            Claim::Survives => 3000,
            Claim::KilledByKernel => 1 << 20,
        };
        MemoryOptions::defaults(alloc, delay)
    }

    /// The outcome token the claim expects.
    pub fn token(&self) -> &'static str {
        match self {
            Claim::Survives => "exited:0",
            Claim::KilledByKernel => "killed:SIGKILL",
        }
    }

    /// Whether a child's end and its cgroup's new events bear the claim out: for the big
    /// child, a SIGKILL that the OOM killer counted (someone else's `kill -9` is not it).
    pub fn holds(&self, outcome: Outcome, events: MemoryEvents) -> bool {
        let sigkill = matches!(outcome, Outcome::Killed { signal: Signal::SIGKILL, .. });
        match self {
            Claim::Survives => outcome == Outcome::Exited(0),
            Claim::KilledByKernel => sigkill && events.oom_kill >= 1,
        }
    }

    /// What the claim expects, in the words of a NOT AS CLAIMED line.
    fn expectation(&self) -> &'static str {
        match self {
            Claim::Survives => "the child to exit 0",
            Claim::KilledByKernel => {
                "the OOM killer to end the child (SIGKILL, oom_kill 1 or more)"
            }
        }
    }

    /// The summary of a memory scenario's run, with the fields every memory scenario reports.
    /// Its verdict: the claim held ([`holds`](Self::holds)), and the placement did what the
    /// lesson needs of it; `placement_failed` says why not, where it did not (a lost bet, a
    /// "done" signal that never came). A run that did not go as claimed says so first, in
    /// words: what was expected and what happened, or why the run does not show the lesson.
    pub fn summary(
        &self,
        scenario: &str,
        options: &MemoryOptions,
        evidence: &MemoryEvidence,
        placement_failed: Option<&str>,
    ) -> Summary {
        let outcome = evidence.ended.outcome;
        let me = nix::unistd::getpid();
        let ended_as_claimed = self.holds(outcome, evidence.events);
        if !ended_as_claimed {
            let oom_kill = evidence.events.oom_kill;
            crate::say!(
                "parent[{me}]: NOT AS CLAIMED: expected {}; the child {outcome} (memory.events \
                 oom_kill {oom_kill})",
                self.expectation()
            );
            crate::say!(
                "parent[{me}]:    still charged after the child's end: {}",
                evidence.still_charged
            );
        } else if let Some(why) = placement_failed {
            crate::say!(
                "parent[{me}]: NOT AS CLAIMED: the child {outcome}, as claimed, but this run does \
                 not show the lesson: {why}"
            );
        }
        let holds = ended_as_claimed && placement_failed.is_none();
        Summary::new(scenario, Verdict::of(holds))
            .field("claim", self.token())
            .field("outcome", outcome.token())
            .field("oom_kill", evidence.events.oom_kill)
            .field("peak", evidence.peak.map_or("none".into(), |p| p.to_string()))
            .field("limit", options.limit)
            .field("alloc", options.alloc)
    }
}
