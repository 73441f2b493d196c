//! `clone3` with its arguments exactly as given, for the lessons that show what the kernel
//! checks (`clone3_args`, and two rows of `clone_flags`): any size of `struct clone_args`,
//! words after it, and flags or fields the kernel refuses. The fork-like calls of
//! [`clone3`](crate::clone3) pass the struct as this crate knows it; a probe passes what an
//! older or a newer program would.

use nix::errno::Errno;

use crate::clone3::{started, CloneArgs, Flags, REFUSED};
use crate::process::{end_child_with, flush_stdout, require_single_thread, Ended};
use crate::Error;

/// `struct clone_args` followed by as many words again: what a newer program passes to an
/// older kernel, which accepts it only if the words it does not know are zero (else `E2BIG`).
#[repr(C)]
struct ArgsWithTail {
    args: libc::clone_args,
    tail: [u64; 11],
}

/// The arguments of one probing call: the struct, the size passed for it, the words after it.
#[derive(Clone, Debug)]
pub struct Probe<'a> {
    args: CloneArgs<'a>,
    size: usize,
    tail: [u64; 11],
}

impl<'a> From<CloneArgs<'a>> for Probe<'a> {
    fn from(args: CloneArgs<'a>) -> Probe<'a> {
        Probe { args, size: CloneArgs::SIZE, tail: [0; 11] }
    }
}

impl<'a> CloneArgs<'a> {
    /// These arguments passed as `size` bytes instead of [`SIZE`](Self::SIZE), the struct
    /// followed by zeros and `tail` in the word `tail_at`; a size up to a page is cut to the
    /// struct and its tail, 176 bytes (the kernel refuses larger ones unread).
    pub fn size(self, size: usize, tail_at: usize, tail: u64) -> Probe<'a> {
        let mut probe = Probe::from(self);
        probe.size = if size > crate::memory::page_size() {
            size
        } else {
            size.min(std::mem::size_of::<ArgsWithTail>())
        };
        probe.tail[tail_at.min(10)] = tail;
        probe
    }
}

/// One `clone3` with `probe` as it is: the errno, or how the child (which exits 0 at once)
/// ended. It refuses, itself, only what would make the call unsafe (`VM`, `SETTLS`, the TID
/// flags: memory shared or written through pointers, and a stack); every other combination,
/// valid or not, goes to the kernel.
pub fn try_clone3(probe: &Probe) -> Result<Result<Ended, Errno>, Error> {
    let args = &probe.args;
    let unsafe_flags = Flags(REFUSED.0 & !(Flags::THREAD.0 | Flags::SIGHAND.0 | Flags::VFORK.0));
    if args.flag_set().intersects(unsafe_flags) || args.has_stack() {
        return Err(Error::Failed(format!("try_clone3 refuses {}", args.flag_set())));
    }
    require_single_thread("clone3")?;
    flush_stdout();
    let mut pidfd: libc::c_int = -1;
    let mut filled = ArgsWithTail { args: args.fill(&mut pidfd), tail: probe.tail };
    // SAFETY: one thread (checked); no flag that shares memory or writes through a pointer, no
    // stack: the child is a copy of us, which ends at once in end_child_with (VFORK only
    // suspends us meanwhile). `filled` holds `size` bytes or more, unless the size is over a
    // page, which the kernel refuses before it reads anything.
    let ret =
        unsafe { libc::syscall(libc::SYS_clone3, &mut filled as *mut ArgsWithTail, probe.size) };
    if ret == 0 {
        end_child_with(|| 0);
    }
    match started(args, ret, Errno::last(), pidfd) {
        Ok(mut child) => Ok(Ok(child.reap()?)),
        Err(Error::Sys { errno, .. }) => Ok(Err(errno)),
        Err(e) => Err(e),
    }
}
