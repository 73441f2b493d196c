//! The story's lines: the parent's ([`say!`](crate::say)) and a child's
//! ([`child_say!`](crate::child_say)), each printed and, where the run is traced
//! (`--trace`), also written to the trace's marker, so that the kernel's record holds the
//! story's steps among its events, in one order, by one clock.
//!
//! A child's line is formatted into a buffer on its stack and written with one `write(2)`
//! to each: it allocates nothing, takes no lock, and never interleaves with the parent's
//! lines mid-line.

use std::fmt;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::errno::Errno;

/// The descriptor of the trace's `trace_marker`, or -1 when the run is not traced. Set by
/// the parent once, before its first child exists, and only read afterwards: a child reads
/// it and writes its lines there too, and never writes the static itself.
static TRACE_MARKER: AtomicI32 = AtomicI32::new(-1);

/// From now on every line of the story is also written to `fd`, a trace's `trace_marker`
/// (`-1`: no more). Called before the first child exists; the descriptor is inherited by
/// every child, which writes its lines there with one `write(2)`.
pub(crate) fn mark_lines_to(fd: libc::c_int) {
    TRACE_MARKER.store(fd, Ordering::Relaxed);
}

/// Stops writing lines to the marker and hands its descriptor back, for a signal handler to
/// close: allocates nothing, takes no lock.
pub(crate) fn take_marker() -> libc::c_int {
    TRACE_MARKER.swap(-1, Ordering::Relaxed)
}

/// The most a marker line holds: the kernel cuts longer writes to `trace_marker` (1 KiB
/// before 6.8), and a line cut in the middle of a character would not read back as text.
const MARKER_MAX: usize = 1000;

/// Writes `line` to the trace's marker, if the run is traced: one `write(2)`, which the
/// kernel records as one event. Allocates nothing.
pub fn mark(line: &[u8]) {
    let fd = TRACE_MARKER.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    let mut len = line.len().min(MARKER_MAX);
    while len > 0 && len < line.len() && (line[len] & 0xc0) == 0x80 {
        len -= 1; // not inside a UTF-8 character
    }
    // SAFETY: the pointer and length lie within `line`. A failure (the trace stopped) loses
    // the marker, not the story: the line was printed.
    unsafe { libc::write(fd, line.as_ptr() as *const libc::c_void, len) };
}

/// The marker line that says where a child born with `CLONE_INTO_CGROUP` was born, which no
/// trace event says: `clone3: child 147 born in /sys/fs/cgroup/clone-cgroup-146-forkbomb`,
/// the path the kernel gives the descriptor clone3 took (`/proc/self/fd/N`). Written only
/// where the run is traced, after clone3 returned the child: the kernel's success is its proof.
/// Allocates nothing: a child may make children so.
pub(crate) fn mark_born_in(child: libc::pid_t, cgroup: libc::c_int) {
    if TRACE_MARKER.load(Ordering::Relaxed) < 0 {
        return;
    }
    let mut link = ChildLine::new();
    let _ = fmt::Write::write_fmt(&mut link, format_args!("/proc/self/fd/{cgroup}\0"));
    let mut target = [0u8; 400];
    // SAFETY: link holds a NUL-terminated path; readlink writes at most target.len() bytes.
    let n = unsafe {
        libc::readlink(link.buf.as_ptr().cast(), target.as_mut_ptr().cast(), target.len())
    };
    if n <= 0 {
        return;
    }
    let mut line = ChildLine::new();
    let _ = fmt::Write::write_fmt(&mut line, format_args!("{BORN_IN_PREFIX}{child} born in "));
    let path = &target[..n as usize];
    let room = path.len().min(line.buf.len() - line.len);
    line.buf[line.len..line.len + room].copy_from_slice(&path[..room]);
    line.len += room;
    mark(&line.buf[..line.len]);
}

/// How a line of the program's word on a birth into a cgroup begins (see `mark_born_in`).
pub const BORN_IN_PREFIX: &str = "clone3: child ";

/// Prints a line of the parent's story, as `println!` does, and writes it to the trace's
/// marker too where the run is traced. Parent code only: it allocates.
pub fn say_line(line: &str) {
    println!("{line}");
    for one in line.lines().filter(|one| !one.trim().is_empty()) {
        mark(one.as_bytes()); // one event a line: the trace's file holds one a line
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
        ChildLine { buf: [0; 512], len: 0 }
    }

    /// Appends a newline and writes the line to standard output in one `write(2)`, so lines
    /// of parent and child never interleave mid-line; and to the trace's marker, where the run
    /// is traced.
    pub fn emit(mut self) {
        if self.len == self.buf.len() {
            self.len -= 1;
        }
        mark(&self.buf[..self.len]);
        self.buf[self.len] = b'\n';
        self.len += 1;
        let mut written = 0;
        while written < self.len {
            // SAFETY: the pointer and length lie within self.buf. (std::io::stdout() is not
            // used: its first use in a process allocates its buffer.)
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
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// `println!` for the parent's story: prints the line and, where the run is traced, writes it
/// to the trace's marker, so that the kernel's record holds the story's steps in their place.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        $crate::process::say::say_line(&format!($($arg)*));
    }};
}

/// `println!` for the child side: formats into a [`ChildLine`] and writes it with `write(2)`.
///
/// Formatting integers and strings this way does not allocate, so it keeps the rule for child
/// code, where `println!` (which locks stdout's buffer) does not.
#[macro_export]
macro_rules! child_say {
    ($($arg:tt)*) => {{
        let mut line = $crate::process::ChildLine::new();
        let _ = ::core::fmt::Write::write_fmt(&mut line, format_args!($($arg)*));
        line.emit();
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    #[test]
    fn child_line_cuts_long_lines_and_keeps_the_newline() {
        let mut line = ChildLine::new();
        for _ in 0..100 {
            write!(line, "0123456789").unwrap();
        }
        assert_eq!(line.len, 512);
    }
}
