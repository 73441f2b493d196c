//! The two ways a process ends, seen across `fork`: `exit` flushes the buffers it holds (Rust's
//! stdout, C's stdio) and runs the handlers registered with `atexit`; `_exit` does neither. For
//! the lesson that shows what a buffer does across fork (`fork_stdio`), which needs what the
//! rest of the crate avoids: a fork that does not flush first, C's `printf`, and `atexit`.

use std::ffi::CStr;

use nix::errno::Errno;
use nix::unistd::Pid;

use crate::Error;

/// How the child of [`fork_unflushed`] ends, at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// `std::process::exit(0)`: Rust flushes its stdout, then libc's `exit` flushes C's stdio
    /// and runs the `atexit` handlers.
    Exit,
    /// `_exit(0)`: the process ends with its buffers unwritten and no handler run.
    UnderscoreExit,
}

/// `fork` without flushing anything first (unlike every other way this crate starts a
/// child): the child, with a copy of every buffer, ends at once as `end` says. Returns the
/// child's pid in the parent, which waits for it.
///
/// Safe only as the crate's other forks are: it checks that this process has one thread.
pub fn fork_unflushed(end: End) -> Result<Pid, Error> {
    crate::process::require_single_thread("fork")?;
    // SAFETY: single-threaded (checked), so the child is a complete copy; it runs nothing of
    // ours but the end asked for.
    match unsafe { libc::fork() } {
        -1 => Err(Error::sys("fork", Errno::last())),
        0 => match end {
            End::Exit => std::process::exit(0),
            // SAFETY: _exit ends the process at once.
            End::UnderscoreExit => unsafe { libc::_exit(0) },
        },
        pid => Ok(Pid::from_raw(pid)),
    }
}

/// C's `printf("%s\n", line)`: into C stdio's buffer for stdout, which C flushes at each
/// newline only when stdout is a terminal, and otherwise when the buffer is full or at `exit`.
pub fn c_printf_line(line: &CStr) {
    // SAFETY: a valid format string whose one %s takes a valid NUL-terminated string.
    unsafe { libc::printf(c"%s\n".as_ptr(), line.as_ptr()) };
}

/// The marker [`at_exit_say`]'s handler writes.
pub const AT_EXIT_MARKER: &str = "atexit handler ran\n";

/// Registers, with `atexit`, a handler that writes [`AT_EXIT_MARKER`] to stdout with one
/// `write(2)`: it runs in every process that ends through `exit` after this call, a child of
/// `fork` included, and in none that ends through `_exit`.
pub fn at_exit_say() -> Result<(), Error> {
    extern "C" fn say() {
        let marker = AT_EXIT_MARKER.as_bytes();
        // SAFETY: writes a static buffer to stdout; nothing else.
        unsafe { libc::write(libc::STDOUT_FILENO, marker.as_ptr().cast(), marker.len()) };
    }
    // SAFETY: registers a handler that only makes one system call.
    match unsafe { libc::atexit(say) } {
        0 => Ok(()),
        _ => Err(Error::Failed("atexit refused the handler".into())),
    }
}
