//! spawn_bench: how fast a process is born, by method and by the size of its parent.
//!
//! Usage: `cargo run --release --bin spawn_bench -- [-n N] [--sizes MB,...] [--methods M,...] [--program PATH]`
//!
//! For each parent size (memory the parent has touched, default 2, 12 and 100 MB) and each
//! method (fork, vfork, clone, clone3, fork+exec, vfork+exec, posix_spawn), the parent creates
//! N children one after another (default 2000); each exits at once (or execs PATH, default
//! /bin/true, which does) and is reaped before the next. The loop allocates and formats
//! nothing. The table gives the rate, the cost of one process, the ratio to fork at the same
//! size, and the rate The Linux Programming Interface measured (table 28-3: Linux 2.6.27,
//! x86-32, parents of 1.70 and 11.70 MB) where it has one.
//!
//! Expect fork to slow down as the parent grows (it copies page tables) and the CLONE_VM
//! methods not to. A benchmark, not a test: its numbers depend on the machine. SIGINT,
//! SIGTERM or SIGHUP stops it within a few children, in the middle of a row (every child is
//! reaped before the next is made), with its summary line and exit status 128 + the signal.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clone_cgroup::cli::{
    for_each_option, parse_number, unknown_option, Scenario, Summary, Verdict,
};
use clone_cgroup::say;
use clone_cgroup::spawn::{How, Spawner};
use clone_cgroup::sync::SignalWatch;
use clone_cgroup::Error;
use nix::sched::CloneFlags;

const SCENARIO: Scenario = Scenario {
    name: "spawn_bench",
    about: "Rates of process creation by fork, vfork, clone, clone3, fork+exec, vfork+exec and\n\
            posix_spawn, at several parent sizes, beside The Linux Programming Interface's table 28-3.",
    options: "  -n, --count N        children per method and size [default: 2000]
      --sizes LIST     parent sizes in MB, comma-separated [default: 2,12,100]
      --program PATH   what the exec methods run [default: /bin/true]
      --methods LIST   the methods to time, comma-separated [default: all seven:
                       fork,vfork,clone,clone3,fork+exec,vfork+exec,posix_spawn]
",
};

/// The flags of the fast `clone` in The Linux Programming Interface's table 28-3: share
/// memory, filesystem data, signal handlers and descriptors, and suspend the parent until the
/// child exits or execs.
const TLPI_CLONE_FLAGS: CloneFlags = CloneFlags::CLONE_VM
    .union(CloneFlags::CLONE_VFORK)
    .union(CloneFlags::CLONE_FS)
    .union(CloneFlags::CLONE_SIGHAND)
    .union(CloneFlags::CLONE_FILES);

/// `vfork()`'s flags: `clone(CLONE_VM | CLONE_VFORK)` on a stack of the child's own.
const VFORK_FLAGS: CloneFlags = CloneFlags::CLONE_VM.union(CloneFlags::CLONE_VFORK);

/// A way to create a process: a row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Fork,
    Vfork,
    Clone,
    Clone3,
    ForkExec,
    VforkExec,
    PosixSpawn,
}

impl Method {
    const ALL: [Method; 7] = [
        Method::Fork,
        Method::Vfork,
        Method::Clone,
        Method::Clone3,
        Method::ForkExec,
        Method::VforkExec,
        Method::PosixSpawn,
    ];

    /// Its name in the table.
    fn name(self) -> &'static str {
        match self {
            Method::Fork => "fork",
            Method::Vfork => "vfork",
            Method::Clone => "clone",
            Method::Clone3 => "clone3",
            Method::ForkExec => "fork+exec",
            Method::VforkExec => "vfork+exec",
            Method::PosixSpawn => "posix_spawn",
        }
    }

    /// How the library creates the child.
    fn how(self) -> How {
        match self {
            Method::Fork | Method::ForkExec => How::Fork,
            Method::Vfork | Method::VforkExec => How::Clone(VFORK_FLAGS),
            Method::Clone => How::Clone(TLPI_CLONE_FLAGS),
            Method::Clone3 => How::Clone3(TLPI_CLONE_FLAGS),
            Method::PosixSpawn => How::PosixSpawn,
        }
    }

    /// Whether the child execs the program (else it exits at once).
    fn execs(self) -> bool {
        matches!(self, Method::ForkExec | Method::VforkExec | Method::PosixSpawn)
    }
}

/// The rate (processes per second) in TLPI's table 28-3 for a method, at a parent of about
/// `size_mb`; `None` where the book has no figure.
fn tlpi_rate(method: Method, size_mb: u64) -> Option<u32> {
    match (method, size_mb) {
        (Method::Fork, 2) => Some(4_544),
        (Method::Fork, 12) => Some(1_276),
        (Method::Vfork, _) => Some(28_900),
        (Method::Clone, _) => Some(34_300),
        (Method::ForkExec, 2) => Some(764),
        (Method::ForkExec, 12) => Some(435),
        (Method::VforkExec, _) => Some(965),
        _ => None,
    }
}

/// Memory the parent has touched: `mb` megabytes, every page written.
fn touched(mb: u64) -> Vec<u8> {
    let mut memory = vec![0u8; (mb as usize) << 20];
    for page in memory.chunks_mut(4096) {
        page[0] = 1;
    }
    std::hint::black_box(memory)
}

fn run(args: &[String]) -> Result<Summary, Error> {
    let (mut count, mut sizes, mut program) =
        (2000u64, vec![2u64, 12, 100], "/bin/true".to_string());
    let mut methods = Method::ALL.to_vec();
    for_each_option(args, |name, opt| {
        match name {
            "-n" | "--count" => count = parse_number(name, &opt.value()?, 1, 10_000_000)?,
            "--sizes" => {
                sizes = opt
                    .value()?
                    .split(',')
                    .map(|s| parse_number(name, s.trim(), 0, 16_384))
                    .collect::<Result<_, _>>()?
            }
            "--program" => program = opt.value()?,
            "--methods" => {
                methods = opt
                    .value()?
                    .split(',')
                    .map(|name| {
                        let found = Method::ALL.into_iter().find(|m| m.name() == name.trim());
                        found.ok_or_else(|| {
                            let known: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
                            Error::Usage(format!(
                                "--methods: {name:?} is not one of {}",
                                known.join(", ")
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?
            }
            other => return Err(unknown_option(other)),
        }
        Ok(())
    })?;
    if !std::path::Path::new(&program).exists() {
        return Err(Error::cannot_run(format!("{program} does not exist: pass --program")));
    }

    // SIGINT, SIGTERM and SIGHUP wait, blocked, until the loop looks for them: then the run
    // stops with 128 + the signal. A child created meanwhile inherits the mask; each is
    // reaped at once, so none is left when the run stops.
    let watch = SignalWatch::install()?;
    say!("spawn_bench: {count} children per row; exec methods run {program}");
    say!("");
    say!(
        "{:<12} {:>8} {:>10} {:>12} {:>12} {:>9} {:>12}",
        "method",
        "parent",
        "seconds",
        "per second",
        "µs each",
        "vs fork",
        "TLPI /s"
    );
    let started = Instant::now();
    let mut rows = 0;
    for &size in &sizes {
        let memory = touched(size);
        let mut fork_rate = None;
        for &method in &methods {
            // Ctrl-C stays pending, blocked, until it is looked for: here and every 64 children.
            watch.stop_if_interrupted()?;
            let name = method.name();
            let mut spawner = Spawner::new(method.how(), method.execs(), &program)?;
            // A few first, so that page cache, allocator and CPU caches are warm.
            for _ in 0..count.min(20) {
                spawner.spawn_and_reap()?;
            }
            let start = Instant::now();
            for i in 0..count {
                // An interruption is looked for every 64 children: a row of 200,000 would
                // otherwise hold it for half a minute. One sigtimedwait that finds nothing
                // costs well under 1% of 64 children, and allocates nothing.
                if i % 64 == 63 {
                    watch.stop_if_interrupted()?;
                }
                spawner.spawn_and_reap()?;
            }
            let elapsed = start.elapsed().max(Duration::from_nanos(1));
            let rate = count as f64 / elapsed.as_secs_f64();
            if method == Method::Fork {
                fork_rate = Some(rate);
            }
            let ratio = fork_rate.map_or("-".to_string(), |f| format!("{:.2}", rate / f));
            let tlpi = tlpi_rate(method, size).map_or("-".to_string(), |r| r.to_string());
            say!(
                "{:<12} {:>5} MB {:>10.4} {:>12.0} {:>12.1} {:>9} {:>12}",
                name,
                size,
                elapsed.as_secs_f64(),
                rate,
                1e6 / rate,
                ratio,
                tlpi
            );
            rows += 1;
        }
        drop(memory);
    }
    say!("");
    say!("TLPI /s: The Linux Programming Interface, table 28-3, at parents of 1.70 and 11.70 MB,");
    say!(
        "beside rows of 2 and 12 MB; its vfork, clone and vfork+exec rates hardly depend on size,"
    );
    say!("so they stand beside every size.");
    Ok(Summary::new(SCENARIO.name, Verdict::AsClaimed)
        .field("rows", rows)
        .field("count", count)
        .field("seconds", format!("{:.1}", started.elapsed().as_secs_f64())))
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}
