//! fork_stdio: what a buffer does across fork: a partial line printed once by the program is
//! written twice, by parent and child, unless the child ends with `_exit` or the buffer is
//! flushed first; and where Rust's stdout and C's stdio differ.
//!
//! Usage: `cargo run --bin fork_stdio` (no root needed)
//!
//! Each case runs in a process of its own (a "stage") whose stdout is a pipe, as when output
//! goes to a file: the stage prints, forks without flushing, and its child ends at once with
//! `exit` or `_exit`; then the stage ends with `exit` too. We count what came out of the pipe.
//! A partial line left in Rust's stdout buffer is written twice when both end with `exit`
//! (each flushes its own copy), once when the child ends with `_exit`, once when flushed
//! before the fork, which is why this crate flushes before every fork. A whole line is written
//! once: Rust's stdout is line-buffered even into a pipe. C's stdio is not: a whole line from
//! `printf` into a pipe waits in a full buffer and is written twice (The Linux Programming
//! Interface's fork_stdio_buf.c, run with its output redirected to a file). And a handler
//! registered with `atexit` runs in a child that ends with `exit`, not in one that ends with
//! `_exit`. Expect 2, 1, 1, 1, 2, then 2 and 1 handler runs, and exit status 0.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::process::ExitCode;

use clone_cgroup::cli::{no_options, Scenario, Summary, Verdict};
use clone_cgroup::fork_exit::{at_exit_say, c_printf_line, fork_unflushed, End, AT_EXIT_MARKER};
use clone_cgroup::process::fork_child;
use clone_cgroup::say;
use clone_cgroup::sync::SignalWatch;
use clone_cgroup::Error;
use nix::sys::wait::waitpid;
use nix::unistd::{dup2_stdout, getpid, pipe, Pid};

const SCENARIO: Scenario = Scenario {
    name: "fork_stdio",
    about: "What a buffer does across fork: a partial line printed twice unless the child\n\
            ends with _exit or stdout is flushed first; Rust's stdout and C's stdio; atexit.",
    options: "",
};

const PARTIAL: &str = "a partial line; ";
const FULL: &str = "a whole line";
const FROM_C: &std::ffi::CStr = c"a whole line from printf";

/// Waits for the stage's child, which ends at once.
fn wait(child: Pid) -> Result<(), Error> {
    waitpid(child, None).map(drop).map_err(|e| Error::sys("waitpid", e))
}

/// Runs `case` in a stage, a child of ours whose stdout is a pipe and which ends with `exit`
/// once `case` is done; returns what the stage and its own child wrote into the pipe.
fn staged(case: fn() -> Result<(), Error>) -> Result<String, Error> {
    let (read_end, write_end) = pipe().map_err(|e| Error::sys("pipe", e))?;
    let mut stage = fork_child(|| {
        // EXCEPTION to the child-code rule: this child is the lesson's subject, a program that
        // prints with stdout's buffer and ends with exit. It runs alone in a process of its
        // own, and no cgroup limits it.
        if dup2_stdout(&write_end).is_err() {
            return 1;
        }
        let code = i32::from(case().is_err());
        std::process::exit(code)
    })?;
    drop(write_end);
    let mut written = String::new();
    File::from(read_end)
        .read_to_string(&mut written)
        .map_err(|e| Error::io("failed to read the stage's output", e))?;
    stage.reap()?;
    Ok(written)
}

fn run(args: &[String]) -> Result<Summary, Error> {
    no_options(args)?;
    let me = getpid();
    let watch = SignalWatch::interruptions_only()?;
    let times = |output: &str, what: &str| output.matches(what.trim_end()).count();

    // 1. A partial line in Rust's stdout buffer, then fork; both end with exit, and each
    //    flushes its own copy of the buffer.
    let both = staged(|| {
        print!("{PARTIAL}");
        wait(fork_unflushed(End::Exit)?)
    })?;
    let twice = times(&both, PARTIAL);
    say!("parent[{me}]: 1. print! without a newline, fork, both exit: written {twice} times");

    // 2. The same, but the child ends with _exit: its copy is never written.
    let underscore = staged(|| {
        print!("{PARTIAL}");
        wait(fork_unflushed(End::UnderscoreExit)?)
    })?;
    let once = times(&underscore, PARTIAL);
    say!("parent[{me}]: 2. the same, the child ends with _exit: written {once} time(s)");

    // 3. The same, flushed before the fork: nothing is left to copy.
    let flushed = staged(|| {
        print!("{PARTIAL}");
        let _ = std::io::stdout().flush();
        wait(fork_unflushed(End::Exit)?)
    })?;
    let flushed = times(&flushed, PARTIAL);
    say!("parent[{me}]: 3. the same, stdout flushed before fork: written {flushed} time(s)");
    watch.stop_if_interrupted()?;

    // 4. A whole line: Rust's stdout writes it at its newline, into a pipe too.
    let rust = staged(|| {
        say!("{FULL}");
        wait(fork_unflushed(End::Exit)?)
    })?;
    let rust = times(&rust, FULL);
    say!("parent[{me}]: 4. println! of a whole line, fork, both exit: written {rust} time(s)");

    // 5. A whole line from C's printf: into a pipe, C's stdio buffers fully, and each process
    //    flushes its copy at exit.
    let c = staged(|| {
        c_printf_line(FROM_C);
        wait(fork_unflushed(End::Exit)?)
    })?;
    let c = times(&c, FROM_C.to_str().unwrap_or_default());
    say!("parent[{me}]: 5. C's printf of a whole line, fork, both exit: written {c} times");

    // 6. An atexit handler runs in a child that ends with exit, not in one that ends with
    //    _exit (and in the stage itself, which ends with exit).
    let with_exit = staged(|| {
        at_exit_say()?;
        wait(fork_unflushed(End::Exit)?)
    })?;
    let with_underscore = staged(|| {
        at_exit_say()?;
        wait(fork_unflushed(End::UnderscoreExit)?)
    })?;
    let (ran_exit, ran_underscore) =
        (times(&with_exit, AT_EXIT_MARKER), times(&with_underscore, AT_EXIT_MARKER));
    say!(
        "parent[{me}]: 6. atexit handler, fork: it ran {ran_exit} times when the child ended \
         with exit, {ran_underscore} time(s) with _exit"
    );

    let counts = [twice, once, flushed, rust, c, ran_exit, ran_underscore];
    let holds = counts == [2, 1, 1, 1, 2, 2, 1];
    if !holds {
        say!("parent[{me}]: NOT AS CLAIMED: expected 2, 1, 1, 1, 2, 2, 1; saw {counts:?}");
    }
    Ok(Summary::new(SCENARIO.name, Verdict::of(holds))
        .field("partial_both_exit", twice)
        .field("partial_child_underscore", once)
        .field("partial_flushed", flushed)
        .field("rust_whole_line", rust)
        .field("c_whole_line", c)
        .field("atexit_exit", ran_exit)
        .field("atexit_underscore", ran_underscore))
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}
