//! Creating children (fork, clone) and reading how they ended (waitpid).
//!
//! The parent side is ordinary Rust. The child side is not: between `fork`/`clone` and `_exit`
//! a child of a multithreaded parent may only call async-signal-safe functions, because another
//! thread may have held the allocator's or stdout's lock at the moment of the copy. So child
//! code in this crate formats into a fixed buffer and calls `write(2)` itself
//! ([`ChildLine`], [`child_say!`](crate::child_say)), never `println!` or anything that allocates.

use std::fmt;
use std::io::Write as _;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::sync::{Received, SignalWatch};
use crate::Error;

/// How a child ended, decoded from its wait status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It called `_exit(code)` or returned from main: `WIFEXITED`, `WEXITSTATUS`.
    Exited(i32),
    /// A signal ended it: `WIFSIGNALED`, `WTERMSIG`, `WCOREDUMP`.
    Killed {
        /// The signal that ended the child.
        signal: Signal,
        /// Whether the kernel wrote a core dump.
        core_dumped: bool,
    },
}

impl Outcome {
    /// The outcome in a wait status, or `None` for statuses that are not an end (stopped,
    /// continued, still alive).
    pub fn from_status(status: WaitStatus) -> Option<Outcome> {
        match status {
            WaitStatus::Exited(_, code) => Some(Outcome::Exited(code)),
            WaitStatus::Signaled(_, signal, core_dumped) => Some(Outcome::Killed {
                signal,
                core_dumped,
            }),
            _ => None,
        }
    }

    /// A short token without spaces for summary lines: `exited:0`, `killed:SIGKILL`.
    pub fn token(&self) -> String {
        match self {
            Outcome::Exited(code) => format!("exited:{code}"),
            Outcome::Killed { signal, .. } => format!("killed:{}", signal.as_str()),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Exited(code) => write!(f, "exited with status {code}"),
            Outcome::Killed {
                signal,
                core_dumped,
            } => {
                write!(f, "killed by {}", signal.as_str())?;
                if *core_dumped {
                    write!(f, " (core dumped)")?;
                }
                Ok(())
            }
        }
    }
}

/// A child that has been reaped: its raw wait status and what it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ended {
    /// The status exactly as `waitpid` returned it, e.g. `Signaled(Pid(31887), SIGKILL, false)`.
    pub status: WaitStatus,
    /// The decoded end.
    pub outcome: Outcome,
}

/// Why a bounded wait for a child stopped without the child ending by itself.
#[derive(Debug)]
pub enum WaitFailure {
    /// The child was still alive at the deadline; it has been killed and reaped.
    TimedOut(Ended),
    /// The parent received SIGINT, SIGTERM or SIGHUP; the child has been killed and reaped.
    Interrupted(Signal, Ended),
    /// A system call failed.
    Sys(Error),
}

impl WaitFailure {
    /// The failure as an [`Error`]: a timeout is a failed run, an interruption an interrupted one.
    pub fn into_error(self) -> Error {
        match self {
            WaitFailure::TimedOut(ended) => Error::Failed(format!(
                "child still running at the deadline; killed: {:?}",
                ended.status
            )),
            WaitFailure::Interrupted(signal, _) => Error::Interrupted(signal),
            WaitFailure::Sys(e) => e,
        }
    }
}

/// Waits for `child` to end, for at most `timeout`.
///
/// `watch` must have been created before the child, so that a SIGCHLD sent before this call is
/// pending rather than lost: each SIGCHLD wakes the loop, and `waitpid(WNOHANG)` then tells
/// whether *this* child ended. An interrupting signal, or the deadline, kills the child with
/// SIGKILL and reaps it, so no zombie and no orphan is left. Other watched signals that arrive
/// meanwhile are handed to `on_other` (the signal-synced scenarios use it to see the child's
/// "done" signal).
pub fn wait_for(
    child: Pid,
    watch: &SignalWatch,
    timeout: Duration,
    mut on_other: impl FnMut(Received),
) -> Result<Ended, WaitFailure> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(ended) = try_reap(child).map_err(WaitFailure::Sys)? {
            return Ok(ended);
        }
        match watch.next(deadline).map_err(WaitFailure::Sys)? {
            None => return Err(WaitFailure::TimedOut(kill_and_reap(child)?)),
            Some(received) if received.is_interruption() => {
                return Err(WaitFailure::Interrupted(
                    received.signal,
                    kill_and_reap(child)?,
                ));
            }
            Some(received) if received.signal == Signal::SIGCHLD => {}
            Some(received) => on_other(received),
        }
    }
}

/// A child the parent is responsible for: if it is dropped before it was reaped (an error
/// path, an early return), it is killed with SIGKILL and reaped, so no orphan or zombie is left.
#[derive(Debug)]
pub struct Child {
    pid: Pid,
    reaped: bool,
}

impl Child {
    /// Takes responsibility for the child `pid`.
    pub fn adopt(pid: Pid) -> Child {
        Child { pid, reaped: false }
    }

    /// The child's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Records that the child was reaped some other way (by [`kill_and_reap`]).
    pub fn mark_reaped(&mut self) {
        self.reaped = true;
    }

    /// [`wait_for`] this child; afterwards it is reaped whatever the result.
    pub fn wait(
        &mut self,
        watch: &SignalWatch,
        timeout: Duration,
        on_other: impl FnMut(Received),
    ) -> Result<Ended, WaitFailure> {
        let result = wait_for(self.pid, watch, timeout, on_other);
        if !matches!(result, Err(WaitFailure::Sys(_))) {
            self.reaped = true;
        }
        result
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = kill_and_reap(self.pid);
        }
    }
}

/// Reaps `child` if it has ended; `None` while it is still running.
pub fn try_reap(child: Pid) -> Result<Option<Ended>, Error> {
    // __WALL: also reap clone children whose exit signal is not SIGCHLD.
    let flags = WaitPidFlag::WNOHANG | WaitPidFlag::__WALL;
    let status = waitpid(child, Some(flags)).map_err(|e| Error::sys("waitpid", e))?;
    Ok(Outcome::from_status(status).map(|outcome| Ended { status, outcome }))
}

/// Kills `child` with SIGKILL and reaps it: the cleanup path of every bounded wait.
pub fn kill_and_reap(child: Pid) -> Result<Ended, WaitFailure> {
    match kill(child, Signal::SIGKILL) {
        // ESRCH: it is already a zombie or gone; waitpid below still reaps a zombie.
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => return Err(WaitFailure::Sys(Error::sys("kill(SIGKILL)", e))),
    }
    reap(child).map_err(WaitFailure::Sys)
}

/// Blocks until `child` has ended and reaps it (`waitpid` with `__WALL`, so clone children
/// whose exit signal is not SIGCHLD are reaped too).
pub fn reap(child: Pid) -> Result<Ended, Error> {
    loop {
        match waitpid(child, Some(WaitPidFlag::__WALL)) {
            Ok(status) => {
                if let Some(outcome) = Outcome::from_status(status) {
                    return Ok(Ended { status, outcome });
                }
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("waitpid", e)),
        }
    }
}

/// A stack for a `clone` child: an anonymous mapping with a guard page below it.
///
/// `clone` without `CLONE_VM` gives the child a copy-on-write copy of the whole address space,
/// so the child runs on its copy of this mapping; the parent's copy is never touched, which
/// also means none of its pages is charged to anyone until the child first writes it.
pub struct ChildStack {
    base: NonNull<libc::c_void>,
    len: usize,
}

impl ChildStack {
    /// Maps `size` bytes (rounded up to pages) of stack plus one inaccessible guard page, so an
    /// overflow faults instead of silently writing over other memory.
    pub fn new(size: usize) -> Result<ChildStack, Error> {
        let page = page_size();
        let len = size.div_ceil(page) * page + page;
        // SAFETY: no MAP_FIXED, so nothing is replaced.
        let base = unsafe {
            crate::memory::map_anonymous(
                std::ptr::null_mut(),
                len,
                libc::MAP_PRIVATE | libc::MAP_STACK,
                "child stack",
            )?
        };
        // The guard page is the lowest page of our own mapping (stacks grow down).
        let stack = ChildStack { base, len };
        // SAFETY: mprotect of the first page of a mapping we own.
        if unsafe { libc::mprotect(base.as_ptr(), page, libc::PROT_NONE) } != 0 {
            return Err(Error::sys("mprotect(guard page)", Errno::last()));
        }
        Ok(stack)
    }

    /// The usable stack (above the guard page), as `clone3` takes it.
    pub fn area(&mut self) -> crate::memory::StackArea {
        let page = page_size();
        crate::memory::StackArea {
            base: (self.base.as_ptr() as usize + page) as *mut u8,
            len: self.len - page,
        }
    }

    /// The highest address of the stack, 16-byte aligned: where a downward stack starts.
    fn top(&self) -> *mut libc::c_void {
        let top = self.base.as_ptr() as usize + self.len;
        (top & !15) as *mut libc::c_void
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: base/len describe exactly the mapping made in new(), unmapped once.
        unsafe { libc::munmap(self.base.as_ptr(), self.len) };
    }
}

/// Flags that make the child share memory, signal handlers or thread identity with the
/// parent. [`clone_child`] refuses them; [`clone_child_unchecked`] takes them.
pub const SHARING_FLAGS: CloneFlags = CloneFlags::CLONE_VM
    .union(CloneFlags::CLONE_VFORK)
    .union(CloneFlags::CLONE_THREAD)
    .union(CloneFlags::CLONE_SIGHAND);

/// How many threads this process has, from `/proc/self/status`.
pub fn thread_count() -> Result<usize, Error> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| Error::io("failed to read /proc/self/status", e))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| Error::Failed("/proc/self/status has no Threads: line".into()))
}

/// Fails unless this process has exactly one thread. A single thread cannot be racing a
/// `fork`: no lock can be held by a thread that the child will not have.
pub(crate) fn require_single_thread(call: &str) -> Result<(), Error> {
    match thread_count()? {
        1 => Ok(()),
        n => Err(Error::Failed(format!(
            "{call} from a process with {n} threads: the child could inherit a lock held by \
             another thread; use {call} only while single-threaded"
        ))),
    }
}

/// `fork(2)`: runs `child` in a copy of this process, which then `_exit`s with its return
/// value; returns the child's pid in the parent.
///
/// Safe because it first checks that this process is single-threaded, so the child cannot
/// inherit a lock held by a thread it does not have; `child` may then use anything.
pub fn fork_child(child: impl FnOnce() -> i32) -> Result<Pid, Error> {
    require_single_thread("fork")?;
    // Anything buffered in our stdout would be copied into the child and printed twice.
    let _ = std::io::stdout().flush();
    // SAFETY: single-threaded (checked above), so the child is a complete copy; it never
    // returns into our code but leaves through _exit.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let code = child();
            // SAFETY: _exit never returns and runs no atexit handlers or destructors, which
            // belong to the parent.
            unsafe { libc::_exit(code) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(child),
        Err(e) => Err(Error::sys("fork", e)),
    }
}

/// `clone(2)` without shared memory: starts `child` in a new process on `stack`, with
/// `flags` (namespaces and the like) and the given exit signal (normally SIGCHLD, so that
/// `waitpid` sees an ordinary child). Returns the child's pid in the parent; the child runs
/// `child()` and `_exit`s with its return value.
///
/// Safe because it refuses [`SHARING_FLAGS`] (the child gets its own copy of memory and a
/// guard page ends a stack overflow) and checks that this process is single-threaded.
pub fn clone_child<F>(
    child: &mut F,
    stack: &mut ChildStack,
    flags: CloneFlags,
    exit_signal: Signal,
) -> Result<Pid, Error>
where
    F: FnMut() -> i32,
{
    // from_bits: nix's CloneFlags lacks the TLS and TID flags, which only threads need.
    if flags.intersects(SHARING_FLAGS) || CloneFlags::from_bits(flags.bits()).is_none() {
        return Err(Error::Failed(format!(
            "clone_child refuses {:?}: use clone_child_unchecked",
            flags & SHARING_FLAGS
        )));
    }
    require_single_thread("clone")?;
    // SAFETY: no sharing flags and a single thread: the child owns a copy of everything.
    unsafe { clone_child_unchecked(child, stack, flags, exit_signal) }
}

/// `clone(2)` with `CLONE_VFORK` added to `flags`: the parent is suspended until the child has
/// ended, so `flags` may share memory (`CLONE_VM`), signal handlers (`CLONE_SIGHAND`, which
/// needs `CLONE_VM`), files or filesystem data, and the parent looks only after the child is
/// done. The child is reaped before this returns; the result is how it ended.
///
/// Safe because this process is checked to be single-threaded: with the only thread
/// suspended, a `CLONE_VM` child that writes our memory is like a function call on another
/// stack. `CLONE_THREAD` and flags nix does not know are refused.
pub fn vfork_child<F>(
    child: &mut F,
    stack: &mut ChildStack,
    flags: CloneFlags,
) -> Result<Ended, Error>
where
    F: FnMut() -> i32,
{
    if flags.contains(CloneFlags::CLONE_THREAD) || CloneFlags::from_bits(flags.bits()).is_none() {
        return Err(Error::Failed(format!("vfork_child refuses {flags:?}")));
    }
    require_single_thread("clone")?;
    // SAFETY: single thread, suspended by CLONE_VFORK until the child has ended, so `child`
    // and `stack` outlive it and nothing runs beside it.
    let pid = unsafe {
        clone_child_unchecked(
            child,
            stack,
            flags | CloneFlags::CLONE_VFORK,
            Signal::SIGCHLD,
        )?
    };
    reap(pid)
}

/// `clone(2)` with any flags: starts `child` on `stack`; see [`clone_child`].
///
/// This calls `libc::clone` directly rather than `nix::sched::clone`, which boxes the closure
/// and passes a pointer into its own stack frame: fine for a copied address space, but
/// dangling for a `CLONE_VM` child once `nix::sched::clone` has returned.
///
/// # Safety
/// - If the calling process has other threads, `child` must be async-signal-safe: no
///   allocation, no locks, no `println!`.
/// - With `CLONE_VM` the child runs in this memory: `child` and `stack` must outlive it (wait
///   for it before dropping them), and what both sides write needs `CLONE_VFORK` or other
///   synchronisation.
/// - `CLONE_THREAD`, `CLONE_SETTLS` and the TID flags make a thread that Rust's runtime does
///   not know about; don't.
pub unsafe fn clone_child_unchecked<F>(
    child: &mut F,
    stack: &mut ChildStack,
    flags: CloneFlags,
    exit_signal: Signal,
) -> Result<Pid, Error>
where
    F: FnMut() -> i32,
{
    extern "C" fn trampoline<F: FnMut() -> i32>(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: arg is the &mut F passed to clone below, alive for the child (see # Safety).
        let child = unsafe { &mut *(arg as *mut F) };
        let code = child();
        // SAFETY: _exit is async-signal-safe and never returns.
        unsafe { libc::_exit(code) }
    }

    // Anything buffered in our stdout would be copied into the child and printed twice.
    let _ = std::io::stdout().flush();
    let combined = flags.bits() | exit_signal as libc::c_int;
    // SAFETY: the trampoline matches clone's callback type; the stack top is inside a live
    // mapping; the caller guarantees the rest (see # Safety).
    let pid = unsafe {
        libc::clone(
            trampoline::<F>,
            stack.top(),
            combined,
            child as *mut F as *mut libc::c_void,
        )
    };
    if pid == -1 {
        return Err(Error::sys("clone", Errno::last()));
    }
    Ok(Pid::from_raw(pid))
}

/// Arranges for the calling child to receive SIGKILL when its parent dies, without a race.
///
/// `PR_SET_PDEATHSIG` only covers a parent death that happens *after* the call, so the child
/// then compares `getppid()` with the parent it expects: if the parent already died, the
/// child was re-parented and exits at once. Async-signal-safe.
///
/// Not for children in a new PID namespace, where `getppid()` is always 0.
pub fn die_with_parent(expected_parent: Pid) {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if nix::unistd::getppid() != expected_parent {
        // SAFETY: _exit is async-signal-safe and ends the process without running the
        // parent's destructors or atexit handlers, which are not the child's to run.
        unsafe { libc::_exit(1) };
    }
}

/// The state letter of process `pid` from `/proc/PID/stat`: `R` running, `S` sleeping,
/// `Z` zombie, and so on; `None` if it is gone.
pub fn state_of(pid: Pid) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "1234 (comm) S ...": comm may contain spaces and parentheses, so split at the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// The system's page size: the unit in which memory is charged.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as usize
    } else {
        4096
    }
}

/// One line of child output, formatted without allocating and written with one `write(2)`.
///
/// A fixed 512-byte buffer; a longer line is cut. Use it through [`child_say!`](crate::child_say).
pub struct ChildLine {
    buf: [u8; 512],
    len: usize,
}

impl ChildLine {
    /// An empty line.
    pub const fn new() -> ChildLine {
        ChildLine {
            buf: [0; 512],
            len: 0,
        }
    }

    /// Appends a newline and writes the line to standard output in one `write(2)`, so lines
    /// of parent and child never interleave mid-line.
    pub fn emit(mut self) {
        if self.len == self.buf.len() {
            self.len -= 1;
        }
        self.buf[self.len] = b'\n';
        self.len += 1;
        let mut written = 0;
        while written < self.len {
            // SAFETY: the pointer and length lie within self.buf.
            let n = unsafe {
                libc::write(
                    libc::STDOUT_FILENO,
                    self.buf[written..].as_ptr() as *const libc::c_void,
                    self.len - written,
                )
            };
            if n > 0 {
                written += n as usize;
            } else if n < 0 && Errno::last() == Errno::EINTR {
                continue;
            } else {
                return;
            }
        }
    }
}

impl Default for ChildLine {
    fn default() -> Self {
        ChildLine::new()
    }
}

impl fmt::Write for ChildLine {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// `println!` for the child side: formats into a [`ChildLine`] and writes it with `write(2)`.
///
/// Formatting integers and strings this way does not allocate, so it is safe after `fork` or
/// `clone` where `println!` (which locks stdout) is not.
#[macro_export]
macro_rules! child_say {
    ($($arg:tt)*) => {{
        let mut line = $crate::process::ChildLine::new();
        let _ = ::core::fmt::Write::write_fmt(&mut line, format_args!($($arg)*));
        line.emit();
    }};
}

/// A wait status as the `waitpid` man page's macros would describe it, for teaching output.
pub fn describe_status(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("WIFEXITED, WEXITSTATUS = {code}"),
        WaitStatus::Signaled(_, signal, core) => {
            format!(
                "WIFSIGNALED, WTERMSIG = {} ({}), WCOREDUMP = {core}",
                signal as i32,
                signal.as_str()
            )
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    #[test]
    fn outcome_tokens_are_stable() {
        assert_eq!(Outcome::Exited(0).token(), "exited:0");
        let killed = Outcome::Killed {
            signal: Signal::SIGKILL,
            core_dumped: false,
        };
        assert_eq!(killed.token(), "killed:SIGKILL");
        assert_eq!(killed.to_string(), "killed by SIGKILL");
    }

    #[test]
    fn outcome_from_status_ignores_non_ends() {
        let pid = Pid::from_raw(7);
        assert_eq!(
            Outcome::from_status(WaitStatus::Exited(pid, 3)),
            Some(Outcome::Exited(3))
        );
        assert_eq!(Outcome::from_status(WaitStatus::StillAlive), None);
        assert_eq!(
            Outcome::from_status(WaitStatus::Stopped(pid, Signal::SIGSTOP)),
            None
        );
    }

    #[test]
    fn child_line_cuts_long_lines_and_keeps_the_newline() {
        let mut line = ChildLine::new();
        for _ in 0..100 {
            write!(line, "0123456789").unwrap();
        }
        assert_eq!(line.len, 512);
    }

    #[test]
    fn status_descriptions_name_the_macros() {
        let pid = Pid::from_raw(7);
        assert_eq!(
            describe_status(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            "WIFSIGNALED, WTERMSIG = 9 (SIGKILL), WCOREDUMP = false"
        );
    }
}
