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
    /// `set_tid` and `set_tid_size` exactly as given.
    set_tid: Option<(u64, u64)>,
    /// `pidfd` exactly as given.
    pidfd_at: Option<u64>,
    /// The address passed for the struct instead of the struct's own.
    args_at: Option<u64>,
}

impl<'a> From<CloneArgs<'a>> for Probe<'a> {
    fn from(args: CloneArgs<'a>) -> Probe<'a> {
        let (size, tail) = (CloneArgs::SIZE, [0; 11]);
        Probe {
            args,
            size,
            tail,
            cgroup: None,
            parent_tid_at_pidfd: false,
            set_tid: None,
            pidfd_at: None,
            args_at: None,
        }
    }
}

/// The first address of the upper half of the 64-bit address space, the kernel's on x86-64
/// and aarch64 alike: no user pointer lies there, and `access_ok` refuses it.
pub const KERNEL_HALF: u64 = 1 << 63;

/// An address no process maps: the first page, which Linux keeps unmapped
/// (`vm.mmap_min_addr`), so that a read there faults.
pub const UNMAPPED: u64 = 8;

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

    /// `set_tid` = `pointer` and `set_tid_size` = `size`, whatever they hold: a pointer with a
    /// size of 0, or a pointer to memory that is not there.
    pub fn set_tid_raw(mut self, pointer: u64, size: u64) -> Self {
        self.set_tid = Some((pointer, size));
        self
    }

    /// `CLONE_PIDFD` with `clone_args.pidfd` = `address`, where the kernel is to store the
    /// descriptor: [`UNMAPPED`] to see it refuse to.
    pub fn pidfd_at(mut self, address: u64) -> Self {
        self.args = self.args.flags(Flags::PIDFD);
        self.pidfd_at = Some(address);
        self
    }

    /// The struct passed at `address` instead of its own: [`UNMAPPED`], to see the kernel
    /// fail to read it.
    pub fn args_at(mut self, address: u64) -> Self {
        self.args_at = Some(address);
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
/// flags: memory shared or written through pointers, and a stack to run on, unless the stack
/// lies in the kernel's half, where nothing could run); every other combination, valid or
/// not, goes to the kernel.
pub fn try_clone3(probe: &Probe) -> Result<Result<Ended, Errno>, Error> {
    try_clone3_running(probe, || 0)
}

/// [`try_clone3`] with a child of its own: `child` runs in the new process, which ends with
/// its value, under the crate's rule for child code. A child that checks what it was given
/// (its pid, its handlers) says so in its exit status.
pub fn try_clone3_running(
    probe: &Probe,
    child: impl FnOnce() -> i32,
) -> Result<Result<Ended, Errno>, Error> {
    let args = &probe.args;
    // THREAD and SIGHAND the kernel refuses without VM, before anything runs: it may say so.
    let mut unsafe_flags = Flags::SHARED_OR_WRITTEN.without(Flags::THREAD | Flags::SIGHAND);
    if probe.parent_tid_at_pidfd {
        // The kernel would write the tid into our own pidfd word: nothing else.
        unsafe_flags = unsafe_flags.without(Flags::PARENT_SETTID);
    }
    // A stack without a size the kernel refuses before anything runs on it, as it does one in
    // its own half of the address space (clone3_stack_valid: access_ok).
    let raw = args.raw();
    let runnable_stack = raw.stack != 0 && raw.stack_size != 0 && raw.stack < KERNEL_HALF;
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
    if let Some((pointer, size)) = probe.set_tid {
        (filled.args.set_tid, filled.args.set_tid_size) = (pointer, size);
    }
    if let Some(address) = probe.pidfd_at {
        filled.args.pidfd = address;
    }
    let at = probe.args_at.unwrap_or(&mut filled as *mut ArgsWithTail as u64);
    let created = create("clone3", false, || {
        // SAFETY: one thread (checked); no flag that shares memory or writes through a pointer
        // but into our own pidfd word (or into memory that is not there, which the kernel
        // refuses), no stack to run on: the child is a copy of us, which ends in
        // end_child_with (VFORK only suspends us meanwhile). `at` is `filled`, which holds
        // `size` bytes or more unless the size is over a page (refused before anything is
        // read), or an address the caller chose for the kernel to fail to read.
        let ret = unsafe { libc::syscall(libc::SYS_clone3, at, probe.size) };
        if ret == 0 {
            end_child_with(child);
        }
        pid_or_errno(ret)
    });
    if let Ok(pid) = &created {
        if Flags(filled.args.flags).contains(Flags::INTO_CGROUP) {
            crate::process::say::mark_born_in(pid.as_raw(), filled.args.cgroup as libc::c_int);
        }
    }
    match created {
        // Accepted after all: the pidfd word holds the tid, or lies elsewhere; no descriptor
        // of ours to take.
        Ok(pid) if probe.parent_tid_at_pidfd || probe.pidfd_at.is_some() => Ok(Ok(reap(pid)?)),
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
