//! A child's line of output: formatted into a buffer on its stack and written with one
//! `write(2)`, so that it allocates nothing, takes no lock, and never interleaves with the
//! parent's lines mid-line ([`child_say!`](crate::child_say)).

use std::fmt;

use nix::errno::Errno;

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
    /// of parent and child never interleave mid-line.
    pub fn emit(mut self) {
        if self.len == self.buf.len() {
            self.len -= 1;
        }
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
