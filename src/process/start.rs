//! Starting a child: `fork`, `clone`, `vfork` (as `clone` with `CLONE_VFORK`), and the one door
//! every child of this crate goes through, `create`, which `clone3` uses too: stdout flushed,
//! rseq paused, the system call, its errno.
//!
//! A child runs the closure it is given and ends through `_exit` with its value, never by
//! returning into its parent's frames (`end_child_with`); a panic is caught at that
//! boundary and ends it with [`CHILD_PANICKED`].

use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::child::Child;
use super::rseq::RseqPause;
use crate::flags::Flags;
use crate::memory::ChildStack;
use crate::Error;

/// The exit status of a child whose code panicked: the panic was caught at the child's
/// boundary (the message is on standard error) and the child ended with `_exit(101)`, the
/// status Rust gives a program whose main thread panics. None of the parent's code ran.
pub const CHILD_PANICKED: i32 = 101;

/// Ends the calling child with the value of `body`, or with [`CHILD_PANICKED`] if it panics:
/// the boundary every child of this crate crosses. It never returns, so no frame of the
/// parent's is ever unwound or run in the child.
pub(crate) fn end_child_with(body: impl FnOnce() -> i32) -> ! {
    let code = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(code) => code,
        Err(payload) => {
            // Freeing the payload could run its destructor; the child is ending anyway.
            std::mem::forget(payload);
            CHILD_PANICKED
        }
    };
    // SAFETY: _exit ends the process at once, running no destructor and no atexit handler:
    // those are the parent's.
    unsafe { libc::_exit(code) }
}

/// Where a child on a stack of its own begins, with `arg` the `&mut F` it runs (alive for as
/// long as the child runs: the caller of `clone` or `clone3` vouches). It ends the child in
/// [`end_child_with`], so no panic unwinds through this `extern "C"` frame.
pub(crate) extern "C" fn child_trampoline<F: FnMut() -> i32>(
    arg: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: arg is the &mut F the caller passed with this function, alive for the child.
    let child = unsafe { &mut *(arg as *mut F) };
    end_child_with(child)
}

/// The one door every child of this crate is created by, around the system call that makes
/// it (`fork`, `clone` or `clone3`):
/// 1. stdout is flushed, so that nothing buffered is copied into the child and printed twice
///    (TLPI 25.4), but only in the program's own process (see [`flush_stdout`]);
/// 2. glibc's rseq registration is paused across the call, unless the child shares our memory
///    (`shares_memory`: `CLONE_VM`), which starts it without one anyway: see
///    [`rseq`](super::rseq), the reason a child born in a 4 KiB cgroup survives;
/// 3. `system_call` makes the child: in the parent it returns the child's pid, or the errno
///    of its failure, read at once; a child that returns from the call on our stack (`fork`,
///    `clone3` without a stack) never comes back here: `system_call` ends it through
///    [`end_child_with`];
/// 4. the registration is put back, and a failure becomes `Error::Sys` named `call`.
///
/// Allocates nothing, on any path: a child may create children through it.
pub(crate) fn create(
    call: &'static str,
    shares_memory: bool,
    system_call: impl FnOnce() -> Result<libc::pid_t, Errno>,
) -> Result<Pid, Error> {
    flush_stdout();
    let paused = if shares_memory { None } else { RseqPause::start() };
    let result = system_call();
    drop(paused);
    result.map(Pid::from_raw).map_err(|errno| Error::sys(call, errno))
}

/// The pid of the process that flushes stdout before it creates children: the program's own,
/// recorded at its first child, before that child exists. Never written by a child: a page a
/// child writes is a page it pays for, and one is all a child in a 4 KiB cgroup has.
static STDOUT_FLUSHER: AtomicI32 = AtomicI32::new(0);

/// Flushes stdout, in the program's own process only. A child that creates children does not:
/// it never used stdout (the rule for child code), so it has nothing to flush, and a flush
/// would take stdout's lock. A child knows itself by its pid, which is not the recorded one.
fn flush_stdout() {
    let me = nix::unistd::getpid().as_raw();
    let flusher = match STDOUT_FLUSHER.compare_exchange(0, me, Ordering::Relaxed, Ordering::Relaxed)
    {
        Ok(_) => me,
        Err(recorded) => recorded,
    };
    if flusher == me {
        let _ = std::io::stdout().flush();
    }
}

/// `fork(2)`: runs `child` in a copy of this process, which then ends with its return value
/// (see the crate's rule for child code); returns the child, to be waited for, in the parent.
///
/// Safe because it first checks that this process has one thread, so the child cannot
/// inherit a lock held by a thread it does not have. Allocates nothing, so a child may fork.
pub fn fork_child(child: impl FnOnce() -> i32) -> Result<Child, Error> {
    require_single_thread("fork")?;
    let pid = create("fork", false, || {
        // SAFETY: single-threaded (checked above), so the child is a complete copy; it never
        // returns into our frames but ends in end_child_with.
        match unsafe { libc::fork() } {
            -1 => Err(Errno::last()),
            0 => end_child_with(child),
            pid => Ok(pid),
        }
    })?;
    Ok(Child::new(pid, None))
}

/// Whether nix knows every bit of `flags`. It lacks `CLONE_SETTLS` and the TID flags, which
/// only threads need, and the bits of the exit signal, which are passed apart.
fn known_to_nix(flags: CloneFlags) -> bool {
    CloneFlags::from_bits(flags.bits()).is_some()
}

/// `clone(2)` without shared memory: starts `child` in a new process on `stack`, with
/// `flags` (namespaces and the like) and the given exit signal (normally SIGCHLD, so that
/// `waitpid` sees an ordinary child). Returns the child in the parent.
///
/// Safe because it refuses [`Flags::SHARED_OR_WRITTEN`] (the child gets its own copy of
/// memory, and the guard page ends a stack overflow) and checks that this process has one
/// thread.
pub fn clone_child<F: FnMut() -> i32>(
    child: &mut F,
    stack: &mut ChildStack,
    flags: CloneFlags,
    exit_signal: Signal,
) -> Result<Child, Error> {
    if Flags::from(flags).intersects(Flags::SHARED_OR_WRITTEN) || !known_to_nix(flags) {
        return Err(Error::Unexpected(
            "clone_child refuses the flags of Flags::SHARED_OR_WRITTEN: use vfork_child or \
             clone_child_unchecked",
        ));
    }
    require_single_thread("clone")?;
    // SAFETY: no sharing flags and a single thread: the child owns a copy of everything.
    unsafe { clone_child_unchecked(child, stack, flags, exit_signal) }
}

/// `clone(2)` with `CLONE_VFORK` added to `flags`: the parent is suspended until the child
/// has ended (or exec'd), so `flags` may share memory (`CLONE_VM`), signal handlers
/// (`CLONE_SIGHAND`, which needs `CLONE_VM`), files or filesystem data, and the parent looks
/// only after the child is done: it has ended (or exec'd) when this returns the child.
///
/// Safe because this process is checked to have one thread: with it suspended, a `CLONE_VM`
/// child that writes our memory is like a function call on another stack. The rest of
/// [`Flags::SHARED_OR_WRITTEN`] (`CLONE_THREAD`, `CLONE_SETTLS`, the TID flags) is refused.
pub fn vfork_child<F: FnMut() -> i32>(
    child: &mut F,
    stack: &mut ChildStack,
    flags: CloneFlags,
) -> Result<Child, Error> {
    let allowed_here = Flags::VM | Flags::SIGHAND;
    if Flags::from(flags).intersects(Flags::SHARED_OR_WRITTEN.without(allowed_here))
        || !known_to_nix(flags)
    {
        return Err(Error::Unexpected(
            "vfork_child refuses CLONE_THREAD, CLONE_SETTLS and the TID flags",
        ));
    }
    require_single_thread("clone")?;
    // SAFETY: single thread, suspended by CLONE_VFORK until the child has ended, so `child`
    // and `stack` outlive it and nothing runs beside it.
    unsafe { clone_child_unchecked(child, stack, flags | CloneFlags::CLONE_VFORK, Signal::SIGCHLD) }
}

/// `clone(2)` with any flags: starts `child` on `stack`; see [`clone_child`].
///
/// This calls `libc::clone` rather than `nix::sched::clone`, which boxes the closure and
/// passes a pointer into its own stack frame: fine for a copied address space, dangling for a
/// `CLONE_VM` child once `nix::sched::clone` has returned.
///
/// # Safety
/// - If the calling process has other threads, `child` must keep the rule for child code
///   strictly: no allocation, no locks.
/// - With `CLONE_VM` the child runs in this memory: `child` and `stack` must outlive it (wait
///   for it before dropping them), and what both sides write needs `CLONE_VFORK` or other
///   synchronisation.
/// - `CLONE_THREAD`, `CLONE_SETTLS` and the TID flags make a thread that Rust's runtime does
///   not know about; don't.
pub unsafe fn clone_child_unchecked<F: FnMut() -> i32>(
    child: &mut F,
    stack: &mut ChildStack,
    flags: CloneFlags,
    exit_signal: Signal,
) -> Result<Child, Error> {
    let combined = flags.bits() | exit_signal as libc::c_int;
    let top = stack.top();
    let pid = create("clone", flags.contains(CloneFlags::CLONE_VM), || {
        // SAFETY: the trampoline matches clone's callback type; the stack top is inside a live
        // mapping; the caller guarantees the rest (see # Safety).
        let pid = unsafe {
            libc::clone(child_trampoline::<F>, top, combined, child as *mut F as *mut libc::c_void)
        };
        if pid == -1 {
            Err(Errno::last())
        } else {
            Ok(pid)
        }
    })?;
    Ok(Child::new(pid, None))
}

/// How many threads this process has, in one `stat(2)` of `/proc/self/task`: procfs gives
/// that directory 2 links and one more per live thread (`proc_task_getattr` in
/// fs/proc/base.c). Allocates nothing, so that a child may ask too; and costs far less than
/// reading `/proc/self/status` for its `Threads:` line, which the kernel writes out whole
/// (measured: 2.5 against 15 microseconds, a few percent of a `fork`).
pub fn thread_count() -> Result<usize, Error> {
    let task = nix::sys::stat::stat("/proc/self/task")
        .map_err(|e| Error::sys("stat(/proc/self/task)", e))?;
    match (task.st_nlink as usize).checked_sub(2) {
        Some(threads) if threads >= 1 => Ok(threads),
        _ => Err(Error::Unexpected("/proc/self/task counts no thread of its own")),
    }
}

/// Fails unless this process has exactly one thread: a single thread cannot be racing a
/// `fork` with a lock held. (Only a multithreaded process, never a child, gets the error.)
pub(crate) fn require_single_thread(call: &str) -> Result<(), Error> {
    match thread_count()? {
        1 => Ok(()),
        n => Err(Error::Failed(format!(
            "{call} from a process with {n} threads: the child could inherit a lock held by \
             another thread; use {call} only while single-threaded"
        ))),
    }
}

/// Arranges for the calling child to receive SIGKILL when its parent dies, without a race.
///
/// `PR_SET_PDEATHSIG` only covers a parent death that happens *after* the call, so the child
/// then compares `getppid()` with the parent it expects: if the parent already died, the
/// child was re-parented and exits at once. Allocates nothing. Not for a child in a new PID
/// namespace, where `getppid()` is 0.
pub fn die_with_parent(expected_parent: Pid) {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if nix::unistd::getppid() != expected_parent {
        // SAFETY: _exit ends the process at once, running none of the parent's destructors.
        unsafe { libc::_exit(1) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_count_sees_a_second_thread() {
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let second = std::thread::spawn(move || wait.recv());
        assert!(thread_count().unwrap() >= 2);
        go.send(()).unwrap();
        second.join().unwrap().unwrap();
    }
}
