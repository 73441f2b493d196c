//! `clone3` with its arguments exactly as given, for the lessons that show what the kernel
//! checks (`clone3_args`, and two rows of `clone_flags`): any size of `struct clone_args`,
//! words after it, and flags or fields the kernel refuses. The fork-like calls of
//! [`clone3`](crate::clone3) pass the struct as this crate knows it; a probe passes what an
//! older or a newer program would.

use nix::errno::Errno;

use crate::clone3::{child_of, pid_or_errno, CloneArgs};
use crate::flags::Flags;
use crate::process::{create, end_child_with, reap, require_single_thread, Ended};
use crate::Error;

/// `struct clone_args` followed by as many words again: what a newer program passes to an
/// older kernel, which accepts it only if the words it does not know are zero (else `E2BIG`).
#[repr(C)]
struct ArgsWithTail {
    args: libc::clone_args,
    tail: [u64; 11],
}

/// The arguments of one probing call: the struct, the size passed for it, the words after it,
/// and fields set to values [`CloneArgs`] would not build.
#[derive(Clone, Debug)]
pub struct Probe<'a> {
    args: CloneArgs<'a>,
    size: usize,
    tail: [u64; 11],
    cgroup: Option<u64>,
    parent_tid_at_pidfd: bool,
}

impl<'a> From<CloneArgs<'a>> for Probe<'a> {
    fn from(args: CloneArgs<'a>) -> Probe<'a> {
        let (size, tail) = (CloneArgs::SIZE, [0; 11]);
        Probe { args, size, tail, cgroup: None, parent_tid_at_pidfd: false }
    }
}

impl<'a> Probe<'a> {
    /// `CLONE_INTO_CGROUP` with `clone_args.cgroup` = `value`, which need not be a descriptor.
    pub fn cgroup_value(mut self, value: u64) -> Self {
        self.args = self.args.flags(Flags::INTO_CGROUP);
        self.cgroup = Some(value);
        self
    }

    /// `CLONE_PIDFD | CLONE_PARENT_SETTID`, both pointing at the same word.
    pub fn parent_tid_at_pidfd(mut self) -> Self {
        self.args = self.args.flags(Flags::PIDFD | Flags::PARENT_SETTID);
        self.parent_tid_at_pidfd = true;
        self
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
/// flags: memory shared or written through pointers, and a stack to run on); every other
/// combination, valid or not, goes to the kernel.
pub fn try_clone3(probe: &Probe) -> Result<Result<Ended, Errno>, Error> {
    let args = &probe.args;
    // THREAD and SIGHAND the kernel refuses without VM, before anything runs: it may say so.
    let mut unsafe_flags = Flags::SHARED_OR_WRITTEN.without(Flags::THREAD | Flags::SIGHAND);
    if probe.parent_tid_at_pidfd {
        // The kernel would write the tid into our own pidfd word: nothing else.
        unsafe_flags = unsafe_flags.without(Flags::PARENT_SETTID);
    }
    // A stack without a size the kernel refuses before anything runs on it.
    let runnable_stack = args.raw().stack != 0 && args.raw().stack_size != 0;
    if args.flag_set().intersects(unsafe_flags) || runnable_stack {
        return Err(Error::Failed(format!("try_clone3 refuses {}", args.flag_set())));
    }
    require_single_thread("clone3")?;
    let mut pidfd: libc::c_int = -1;
    let mut filled = ArgsWithTail { args: args.fill(&mut pidfd), tail: probe.tail };
    if let Some(value) = probe.cgroup {
        filled.args.cgroup = value;
    }
    if probe.parent_tid_at_pidfd {
        filled.args.parent_tid = filled.args.pidfd;
    }
    let created = create("clone3", false, || {
        // SAFETY: one thread (checked); no flag that shares memory or writes through a pointer
        // but into our own pidfd word, no stack to run on: the child is a copy of us, which
        // ends at once in end_child_with (VFORK only suspends us meanwhile). `filled` holds
        // `size` bytes or more, unless the size is over a page, which the kernel refuses
        // before it reads anything.
        let ret = unsafe {
            libc::syscall(libc::SYS_clone3, &mut filled as *mut ArgsWithTail, probe.size)
        };
        if ret == 0 {
            end_child_with(|| 0);
        }
        pid_or_errno(ret)
    });
    match created {
        // Accepted after all: the pidfd word holds the tid, not a descriptor of ours.
        Ok(pid) if probe.parent_tid_at_pidfd => Ok(Ok(reap(pid)?)),
        Ok(pid) => Ok(Ok(child_of(args, pid, pidfd).reap()?)),
        Err(Error::Sys { errno, .. }) => Ok(Err(errno)),
        Err(e) => Err(e),
    }
}

/// Whether this kernel knows `flags`, asked without creating a process: `clone3` with them,
/// exit signal 0, and `CLONE_INTO_CGROUP` on descriptor `i32::MAX`, which no process can have
/// open (`fs.nr_open` is at most 2^30). A kernel that knows the flags gets as far as the
/// cgroup (late in copy_process: what it copied is undone) and answers EBADF; one that does
/// not refuses them first, with EINVAL (as it refuses `CLONE_INTO_CGROUP` itself before 5.7).
/// `flags` must be a valid combination. Safe from any thread, since no child can come of it.
pub fn knows_flags(flags: Flags) -> Result<bool, Error> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs::with_exit_signal(0).flags(flags).fill(&mut pidfd);
    args.flags |= Flags::INTO_CGROUP.0;
    args.cgroup = i32::MAX as u64;
    // SAFETY: the cgroup descriptor cannot be open, so the kernel fails the call before the
    // new task ever runs (cgroup_css_set_fork, in copy_process); pidfd points to our word.
    let ret = unsafe {
        libc::syscall(libc::SYS_clone3, &mut args as *mut libc::clone_args, CloneArgs::SIZE)
    };
    if ret == 0 {
        // SAFETY: a child after all, which must not run our code: it ends at once.
        unsafe { libc::_exit(0) };
    }
    match (ret, Errno::last()) {
        (-1, Errno::EBADF) => Ok(true),
        (-1, Errno::EINVAL) => Ok(false),
        (-1, errno) => Err(Error::sys("clone3(CLONE_INTO_CGROUP, fd i32::MAX)", errno)),
        _ => Err(Error::Failed(format!("clone3 into descriptor {} made child {ret}", i32::MAX))),
    }
}
