//! fork_exec_attributes: what a forked child keeps of its parent, and what a program keeps of
//! itself across `execve`, measured attribute by attribute beside what The Linux Programming
//! Interface says (its table 28-4 and the text around it).
//!
//! Usage: `cargo run --bin fork_exec_attributes` (no root needed)
//!
//! The parent gives itself 18 attributes: a descriptor, one with FD_CLOEXEC, SIGUSR1 caught,
//! SIGUSR2 ignored, SIGWINCH and SIGPWR blocked, SIGPWR pending, an alarm, a umask, a working
//! directory, a lower descriptor limit, a nice value, an environment variable, a shared
//! mapping, the alternate signal stack Rust installed, a process name and a parent-death
//! signal. A forked child records what it sees. A second forked child first gives itself back
//! the three that fork does not pass on (the pending signal, the alarm, the parent-death
//! signal), so that what follows measures `execve` alone, then executes this same program with
//! an empty environment, which records what it sees.
//!
//! Each row compares a view with the process before it: the fork child with its parent
//! ("inherited" or not), the exec'd program with the process that called `execve`
//! ("preserved" or not). A row that disagrees with the book is reported, not hidden. Expect
//! all 18 to agree; exit status 0.

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::ExitCode;

use clone_cgroup::attributes::{alternate_stack, set_disposition, set_nice, Disposition};
use clone_cgroup::cli::{no_options, Scenario, Summary, Verdict};
use clone_cgroup::memory::Reservation;
use clone_cgroup::process::{fork_child, Outcome};
use clone_cgroup::procfs::Stat;
use clone_cgroup::say;
use clone_cgroup::spawn::PreparedExec;
use clone_cgroup::Error;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::prctl;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{alarm, getpid};

const SCENARIO: Scenario = Scenario {
    name: "fork_exec_attributes",
    about: "What a forked child keeps of its parent and a program keeps of itself across execve,\n\
            18 attributes measured beside The Linux Programming Interface's table 28-4.",
    options: "",
};

/// The hidden mode in which this program, exec'd by the demonstration, records its view.
const REPORT: &str = "--report";

/// The environment variable the parent sets.
const MARK: &str = "CLONE_CGROUP_ATTRIBUTE";

/// Each attribute, and what the book says of it: is it inherited by a fork child, is it
/// preserved by `execve`.
const BOOK: [(&str, bool, bool); 18] = [
    ("process ID", false, true),
    ("parent process ID", false, true),
    ("descriptor", true, true),
    ("descriptor with FD_CLOEXEC", true, false),
    ("SIGUSR1 caught", true, false),
    ("SIGUSR2 ignored", true, true),
    ("signal mask", true, true),
    ("pending signals", false, true),
    ("alarm", false, true),
    ("umask", true, true),
    ("working directory", true, true),
    ("RLIMIT_NOFILE", true, true),
    ("nice value", true, true),
    ("environment (execve: empty)", true, false),
    ("shared memory mapping", true, false),
    ("alternate signal stack", true, false),
    ("process name", true, false),
    ("parent-death signal", false, true),
];

/// Where the views are recorded, and what they look for.
struct Probe {
    mapping: usize,
    descriptor: i32,
    cloexec_descriptor: i32,
}

impl Probe {
    fn to_args(&self) -> [String; 3] {
        [self.mapping, self.descriptor as usize, self.cloexec_descriptor as usize]
            .map(|n| n.to_string())
    }

    fn from_args(args: &[String]) -> Probe {
        let number = |i: usize| args.get(i).and_then(|a| a.parse::<usize>().ok()).unwrap_or(0);
        Probe {
            mapping: number(0),
            descriptor: number(1) as i32,
            cloexec_descriptor: number(2) as i32,
        }
    }

    /// Every attribute's value, as the calling process sees it. Allocates: it reads files.
    fn view(&self) -> BTreeMap<String, String> {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            let line = status.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':'));
            line.unwrap_or("?").trim().to_string()
        };
        let mask = |name: &str| u64::from_str_radix(&field(name), 16).unwrap_or(0);
        let has = |name: &str, signal: Signal| mask(name) & (1 << (signal as u64 - 1)) != 0;
        let open = |fd: i32| {
            if Path::new(&format!("/proc/self/fd/{fd}")).exists() {
                "open"
            } else {
                "closed"
            }
        };
        let nice = Stat::of(getpid()).map_or("?".into(), |stat| stat.nice.to_string());
        let mapped = fs::read_to_string("/proc/self/maps").unwrap_or_default().lines().any(|l| {
            let range = l.split_whitespace().next().and_then(|r| r.split_once('-'));
            let parse = |hex| usize::from_str_radix(hex, 16).unwrap_or(0);
            range.is_some_and(|(start, end)| (parse(start)..parse(end)).contains(&self.mapping))
        });
        let creation_mask = umask(Mode::empty());
        umask(creation_mask);
        // Reading the alarm cancels it; set it again for what follows.
        let alarm_left = alarm::cancel();
        if let Some(seconds) = alarm_left {
            alarm::set(seconds);
        }
        let views = [
            ("process ID", field("Pid")),
            ("parent process ID", field("PPid")),
            ("descriptor", open(self.descriptor).into()),
            ("descriptor with FD_CLOEXEC", open(self.cloexec_descriptor).into()),
            (
                "SIGUSR1 caught",
                if has("SigCgt", Signal::SIGUSR1) { "caught" } else { "not caught" }.into(),
            ),
            (
                "SIGUSR2 ignored",
                if has("SigIgn", Signal::SIGUSR2) { "ignored" } else { "not ignored" }.into(),
            ),
            ("signal mask", format!("{:#x}", mask("SigBlk"))),
            ("pending signals", format!("{:#x}", mask("SigPnd") | mask("ShdPnd"))),
            ("alarm", if alarm_left.is_some() { "set" } else { "none" }.into()),
            ("umask", format!("{:04o}", creation_mask.bits())),
            (
                "working directory",
                std::env::current_dir().map_or("?".into(), |d| d.display().to_string()),
            ),
            (
                "RLIMIT_NOFILE",
                getrlimit(Resource::RLIMIT_NOFILE).map_or("?".into(), |(soft, _)| soft.to_string()),
            ),
            ("nice value", nice),
            ("environment (execve: empty)", std::env::var(MARK).unwrap_or_else(|_| "unset".into())),
            ("shared memory mapping", if mapped { "mapped" } else { "not mapped" }.into()),
            (
                "alternate signal stack",
                alternate_stack().ok().flatten().map_or("none".into(), |a| format!("{a:#x}")),
            ),
            ("process name", field("Name")),
            (
                "parent-death signal",
                prctl::get_pdeathsig().ok().flatten().map_or("none".into(), |s| s.as_str().into()),
            ),
        ];
        views.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}

fn record(view: &BTreeMap<String, String>, file: &Path) -> i32 {
    let text: String = view.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    i32::from(fs::write(file, text).is_err())
}

fn read_record(file: &Path) -> BTreeMap<String, String> {
    let text = fs::read_to_string(file).unwrap_or_default();
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect()
}

/// Gives the calling process the three attributes fork does not pass on. Allocates nothing,
/// as the child-code rule asks.
fn set_unforked_attributes() -> Result<(), Error> {
    kill(getpid(), Signal::SIGPWR).map_err(|e| Error::sys("kill", e))?;
    alarm::set(600);
    prctl::set_pdeathsig(Signal::SIGTERM).map_err(|e| Error::sys("prctl", e))
}

fn run(args: &[String]) -> Result<Summary, Error> {
    no_options(args)?;
    let me = getpid();
    let scratch = std::env::temp_dir().join(format!("clone-cgroup-attributes-{me}"));
    fs::create_dir(&scratch).map_err(|e| Error::io("failed to create a scratch directory", e))?;
    let back_to = std::env::current_dir()
        .map_err(|e| Error::io("failed to read the working directory", e))?;
    let result = demonstrate(&scratch);
    // The alarm would kill us, the parent-death signal outlive the run; the working
    // directory is about to go.
    alarm::cancel();
    let _ = prctl::set_pdeathsig(None);
    let _ = std::env::set_current_dir(back_to);
    let _ = fs::remove_dir_all(&scratch);
    result
}

fn demonstrate(scratch: &Path) -> Result<Summary, Error> {
    let me = getpid();
    let exe = std::env::current_exe().map_err(|e| Error::io("failed to find this program", e))?;

    // 1. The parent gives itself the 18 attributes.
    let failed_open = |e| Error::io("failed to open /dev/null", e);
    let descriptor: OwnedFd = fs::File::open("/dev/null").map_err(failed_open)?.into();
    let cloexec_descriptor: OwnedFd = fs::File::open("/dev/null").map_err(failed_open)?.into();
    // Rust opens every file with O_CLOEXEC; the plain descriptor drops it.
    fcntl(&descriptor, FcntlArg::F_SETFD(FdFlag::empty())).map_err(|e| Error::sys("fcntl", e))?;
    set_disposition(Signal::SIGUSR1, Disposition::Caught)?;
    set_disposition(Signal::SIGUSR2, Disposition::Ignored)?;
    let blocked = SigSet::from_iter([Signal::SIGWINCH, Signal::SIGPWR]);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&blocked), None)
        .map_err(|e| Error::sys("sigprocmask", e))?;
    umask(Mode::from_bits_truncate(0o027));
    std::env::set_current_dir(scratch).map_err(|e| Error::io("failed to change directory", e))?;
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| Error::sys("getrlimit", e))?;
    setrlimit(Resource::RLIMIT_NOFILE, 512.min(hard), hard)
        .map_err(|e| Error::sys("setrlimit", e))?;
    set_nice(3)?;
    std::env::set_var(MARK, "set-by-the-parent");
    let mapping = Reservation::with_shared_stack(4096, 4096)?;
    let probe = Probe {
        mapping: mapping.shared_stack().map_or(0, |s| s.base as usize),
        descriptor: descriptor.as_raw_fd(),
        cloexec_descriptor: cloexec_descriptor.as_raw_fd(),
    };
    prctl::set_name(c"attributes-demo").map_err(|e| Error::sys("prctl", e))?;
    set_unforked_attributes()?;
    let parent = probe.view();
    say!(
        "parent[{me}]: 1. gave itself 18 attributes (name {}, umask {}, nice {}, {} blocked)",
        parent["process name"],
        parent["umask"],
        parent["nice value"],
        parent["signal mask"]
    );

    // 2. A forked child records what it sees.
    let fork_file = scratch.join("fork");
    // EXCEPTION to the child-code rule: this child reads /proc and formats, which allocates.
    // The parent has one thread, so the heap is consistent in the copy; no cgroup limits the
    // child, and it ends at once.
    let mut forked = fork_child(|| record(&probe.view(), &fork_file))?;
    let (fork_pid, forked) = (forked.pid(), forked.reap()?);
    say!("parent[{me}]: 2. fork: child {fork_pid} recorded what it sees, and {}", forked.outcome);

    // 3. Another forked child takes back what fork did not pass on, then executes this
    //    program, which records what it sees after the execve.
    let exec_file = scratch.join("exec");
    let probe_args = probe.to_args();
    let mut exec_args: Vec<&str> = vec![REPORT];
    exec_args.extend(probe_args.iter().map(String::as_str));
    let exec_file_text = exec_file.to_string_lossy();
    exec_args.push(&exec_file_text);
    let exec = PreparedExec::new(&exe.to_string_lossy(), &exec_args)?;
    let mut execed = fork_child(|| match set_unforked_attributes() {
        Ok(()) => {
            exec.exec();
            127
        }
        Err(_) => 126,
    })?;
    let (exec_pid, execed) = (execed.pid(), execed.reap()?);
    say!("parent[{me}]: 3. fork, then execve of this program: child {exec_pid} recorded what it sees, and {}", execed.outcome);

    // 4. Each view beside the process before it, and beside the book.
    let (fork_view, exec_view) = (read_record(&fork_file), read_record(&exec_file));
    // The process that called execve was child exec_pid, forked from us, with our attributes.
    let mut before_exec = parent.clone();
    before_exec.insert("process ID".into(), exec_pid.to_string());
    before_exec.insert("parent process ID".into(), me.to_string());
    // "inherited / not": what the book says, then what was seen.
    let words = |book: bool, seen: bool, kept: &str| {
        format!("{} / {}", if book { kept } else { "not" }, if seen { kept } else { "not" })
    };
    let mut differ = Vec::new();
    say!(
        "parent[{me}]: 4. {:<28} {:<28} {:<28}",
        "attribute",
        "fork: book / seen",
        "execve: book / seen"
    );
    for (name, book_fork, book_exec) in BOOK {
        let seen =
            |view: &BTreeMap<String, String>| view.get(name).cloned().unwrap_or_else(|| "?".into());
        let fork_kept = seen(&fork_view) == parent[name];
        let exec_kept = seen(&exec_view) == before_exec[name];
        let agrees = fork_kept == book_fork && exec_kept == book_exec;
        if !agrees {
            differ.push(name.replace(' ', "-"));
        }
        let fork_words = words(book_fork, fork_kept, "inherited");
        let exec_words = words(book_exec, exec_kept, "preserved");
        say!(
            "    {name:<28} {fork_words:<28} {exec_words:<28}{}",
            if agrees { "" } else { "  DIFFERS FROM THE BOOK" }
        );
        let mut changes = Vec::new();
        if !fork_kept {
            changes.push(format!("fork: {} -> {}", parent[name], seen(&fork_view)));
        }
        if !exec_kept {
            changes.push(format!("execve: {} -> {}", before_exec[name], seen(&exec_view)));
        }
        if !changes.is_empty() {
            say!("    {:<28} {}", "", changes.join("; "));
        }
    }
    drop(mapping);

    let recorded = forked.outcome == Outcome::Exited(0) && execed.outcome == Outcome::Exited(0);
    let holds = recorded && differ.is_empty();
    if !recorded {
        say!("parent[{me}]: NOT AS CLAIMED: a child could not record its view");
    } else if !holds {
        say!(
            "parent[{me}]: NOT AS CLAIMED: {} of {} rows differ from the book",
            differ.len(),
            BOOK.len()
        );
    }
    Ok(Summary::new(SCENARIO.name, Verdict::of(holds))
        .field("attributes", BOOK.len())
        .field("as_in_the_book", BOOK.len() - differ.len())
        .field("differ", if differ.is_empty() { "none".into() } else { differ.join(",") }))
}

/// The exec'd program's part: `--report MAPPING DESCRIPTOR CLOEXEC_DESCRIPTOR FILE`.
fn report(args: &[String]) -> ExitCode {
    // The alarm it inherited would end it; it has been read once the view is taken.
    let view = Probe::from_args(args).view();
    alarm::cancel();
    match args.get(3) {
        Some(file) if record(&view, Path::new(file)) == 0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|first| first == REPORT) {
        let rest: Vec<String> =
            std::env::args_os().skip(2).map(|a| a.to_string_lossy().into()).collect();
        return report(&rest);
    }
    SCENARIO.main(run)
}
