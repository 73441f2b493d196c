//! `clone3(2)`, the extensible successor of `clone`: every field of `struct clone_args`, every
//! `CLONE_*` flag, and what only `clone3` can do: start the child inside a cgroup
//! (`CLONE_INTO_CGROUP`), hand back a pidfd (`CLONE_PIDFD`), choose its pid (`set_tid`).
//!
//! nix has no `clone3`, so the system call is wrapped here once: [`CloneArgs`] builds the
//! kernel's `struct clone_args` (libc's `clone_args`), [`clone3_child`] runs a closure in a
//! fork-like child, and [`clone3_child_on_stack`] starts the child on a stack of its own
//! (x86-64 and aarch64). A failed call keeps its errno: `Error::Sys { context: "clone3", errno }`;
//! [`not_offered`] tells which errnos mean "this kernel predates the feature".

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

pub use crate::flags::Flags;
use crate::memory::StackArea;
use crate::process::{child_trampoline, create, end_child_with, require_single_thread, Child};
use crate::Error;

/// The arguments of one `clone3` call: a builder over `struct clone_args`.
///
/// ```no_run
/// # use clone_cgroup::clone3::{CloneArgs, Flags};
/// # use nix::sys::signal::Signal;
/// # let cgroup_dir = std::fs::File::open("/sys/fs/cgroup/x").unwrap();
/// let args = CloneArgs::new(Signal::SIGCHLD).flags(Flags::PIDFD).into_cgroup(&cgroup_dir);
/// ```
#[derive(Clone, Debug)]
pub struct CloneArgs<'a> {
    raw: libc::clone_args,
    set_tid: Vec<libc::pid_t>,
    cgroup: Option<BorrowedFd<'a>>,
}

impl<'a> CloneArgs<'a> {
    /// The size of `struct clone_args` this crate knows: `CLONE_ARGS_SIZE_VER2`, 88 bytes.
    pub const SIZE: usize = std::mem::size_of::<libc::clone_args>();

    /// A child that sends `exit_signal` to its parent when it ends (SIGCHLD: an ordinary child).
    pub fn new(exit_signal: Signal) -> CloneArgs<'a> {
        CloneArgs::with_exit_signal(exit_signal as u64)
    }

    /// Any value for `exit_signal`, valid or not (0: the parent gets no signal at the child's end).
    pub fn with_exit_signal(exit_signal: u64) -> CloneArgs<'a> {
        // SAFETY: clone_args is plain integers; all zero is the kernel's "nothing asked for".
        let mut raw: libc::clone_args = unsafe { std::mem::zeroed() };
        raw.exit_signal = exit_signal;
        CloneArgs { raw, set_tid: Vec::new(), cgroup: None }
    }

    /// Adds `flags` to `clone_args.flags`: [`Flags`], or nix's `CloneFlags` for the older ones.
    pub fn flags(mut self, flags: impl Into<Flags>) -> Self {
        self.raw.flags |= flags.into().0;
        self
    }

    /// `CLONE_PIDFD`: also return a pidfd, which refers to this child and no other, even after
    /// its pid is reused.
    pub fn pidfd(self) -> Self {
        self.flags(Flags::PIDFD)
    }

    /// `CLONE_INTO_CGROUP`: the child is born in the cgroup whose directory `dir` is (best
    /// opened with `O_PATH`: [`Cgroup::open_path`](crate::cgroup::Cgroup::open_path)).
    pub fn into_cgroup(mut self, dir: &'a impl AsFd) -> Self {
        self.cgroup = Some(dir.as_fd());
        self.flags(Flags::INTO_CGROUP)
    }

    /// `set_tid` (5.5): the pid the child must get in each PID namespace, innermost first.
    /// Needs CAP_SYS_ADMIN, or (5.9) CAP_CHECKPOINT_RESTORE, in the namespaces concerned; a
    /// taken pid fails with EEXIST.
    pub fn set_tid(mut self, pids: &[Pid]) -> Self {
        self.set_tid = pids.iter().map(|p| p.as_raw()).collect();
        self
    }

    /// `set_tid_size` as given, whatever `set_tid` holds: for showing what the kernel checks.
    pub fn set_tid_size(mut self, size: u64) -> Self {
        self.raw.set_tid_size = size;
        self
    }

    /// `child_tid` and `parent_tid`: where `CHILD_SETTID`, `CHILD_CLEARTID` and
    /// `PARENT_SETTID` write (the caller keeps them alive for as long as the kernel may).
    pub fn tids(mut self, child_tid: *mut libc::pid_t, parent_tid: *mut libc::pid_t) -> Self {
        self.raw.child_tid = child_tid as u64;
        self.raw.parent_tid = parent_tid as u64;
        self
    }

    /// `tls`: the child's thread pointer, with `SETTLS`.
    pub fn tls(mut self, tls: u64) -> Self {
        self.raw.tls = tls;
        self
    }

    /// `stack` and `stack_size`, as given: for showing what the kernel checks. To run a child
    /// on a stack, use [`clone3_child_on_stack`].
    pub fn stack(mut self, base: u64, size: u64) -> Self {
        self.raw.stack = base;
        self.raw.stack_size = size;
        self
    }

    /// The flags asked for so far, as `clone_args.flags` will hold them.
    pub fn flag_set(&self) -> Flags {
        Flags(self.raw.flags)
    }

    /// The struct as given, before its pointers are filled in.
    pub(crate) fn raw(&self) -> &libc::clone_args {
        &self.raw
    }

    /// Where the run is traced, writes to the trace where a child born with
    /// `CLONE_INTO_CGROUP` was born (see [`mark_born_in`](crate::process::say)), after clone3
    /// returned it. Allocates nothing.
    pub(crate) fn mark_birth(&self, child: Pid) {
        if let Some(fd) = self.cgroup.filter(|_| self.flag_set().contains(Flags::INTO_CGROUP)) {
            crate::process::say::mark_born_in(child.as_raw(), fd.as_raw_fd());
        }
    }

    /// The struct as the kernel will read it, with its pointers filled in.
    pub(crate) fn fill(&self, pidfd_out: &mut libc::c_int) -> libc::clone_args {
        let mut args = self.raw;
        if self.flag_set().contains(Flags::PIDFD) {
            args.pidfd = pidfd_out as *mut libc::c_int as u64;
        }
        if !self.set_tid.is_empty() {
            args.set_tid = self.set_tid.as_ptr() as u64;
            if args.set_tid_size == 0 {
                args.set_tid_size = self.set_tid.len() as u64;
            }
        }
        if let Some(fd) = self.cgroup {
            args.cgroup = fd.as_raw_fd() as u64;
        }
        args
    }
}

/// What the kernel refusing `clone3` with `errno` means where the reason is its age, or
/// `None`: no `clone3` at all (ENOSYS, before 5.3), or a larger `struct clone_args` than it
/// knows (E2BIG: `set_tid` needs 5.5, `cgroup` 5.7).
pub fn not_offered(errno: Errno) -> Option<&'static str> {
    match errno {
        Errno::ENOSYS => Some("this kernel has no clone3 (it needs Linux 5.3)"),
        Errno::E2BIG => Some(
            "this kernel's clone3 does not know all of struct clone_args (set_tid needs 5.5, \
             CLONE_INTO_CGROUP 5.7)",
        ),
        _ => None,
    }
}

/// The child a successful call made: its pid and, with `CLONE_PIDFD`, the descriptor the
/// kernel stored in `pidfd`, which is ours from now on.
pub(crate) fn child_of(args: &CloneArgs, pid: Pid, pidfd: libc::c_int) -> Child {
    // SAFETY: with CLONE_PIDFD the kernel stored a new descriptor that nothing else owns.
    let pidfd =
        args.flag_set().contains(Flags::PIDFD).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    Child::new(pid, pidfd)
}

/// What `syscall(SYS_clone3, ..)` returned, as the child's pid or the errno of a failure.
pub(crate) fn pid_or_errno(ret: libc::c_long) -> Result<libc::pid_t, Errno> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret as libc::pid_t)
    }
}

/// `clone3` like `fork`: runs `child` in the new process, which then ends with its return
/// value (see the crate's rule for child code); returns the child in the parent.
///
/// Safe for the same reason as [`fork_child`](crate::process::fork_child): it checks that this
/// process has one thread, and refuses a stack and [`Flags::SHARED_OR_WRITTEN`], the flags
/// that share memory or handlers or write through pointers.
pub fn clone3_child(args: &CloneArgs, child: impl FnOnce() -> i32) -> Result<Child, Error> {
    if args.flag_set().intersects(Flags::SHARED_OR_WRITTEN) || args.raw.stack != 0 {
        return Err(Error::Unexpected(
            "clone3_child refuses a stack and the flags of Flags::SHARED_OR_WRITTEN: use \
             clone3_child_on_stack or clone3_child_unchecked",
        ));
    }
    require_single_thread("clone3")?;
    // SAFETY: no sharing flags and a single thread, as checked above.
    unsafe { clone3_child_unchecked(args, child) }
}

/// [`clone3_child`] with any flags: for showing what the kernel accepts and refuses.
///
/// # Safety
/// The process must have one thread, and the flags must not let the child share our stack
/// (`VM` without a stack of its own): only flags the kernel refuses may include them.
pub unsafe fn clone3_child_unchecked(
    args: &CloneArgs,
    child: impl FnOnce() -> i32,
) -> Result<Child, Error> {
    let mut pidfd: libc::c_int = -1;
    let mut filled = args.fill(&mut pidfd);
    let pid = create("clone3", args.flag_set().contains(Flags::VM), || {
        // SAFETY: filled is a clone_args of the size passed, with pointers (pidfd, set_tid)
        // alive for the call. Without a stack the child returns here on a copy of our stack,
        // as after fork, and goes no further than end_child_with.
        let ret = unsafe {
            libc::syscall(libc::SYS_clone3, &mut filled as *mut libc::clone_args, CloneArgs::SIZE)
        };
        if ret == 0 {
            end_child_with(child);
        }
        pid_or_errno(ret)
    })?;
    args.mark_birth(pid);
    Ok(child_of(args, pid, pidfd))
}

/// `clone3` with a stack of the child's own: the child starts in `child()` on `stack` and
/// ends with its return value (a panic ends it with
/// [`CHILD_PANICKED`](crate::process::CHILD_PANICKED)). x86-64 and aarch64, with glibc:
/// switching stacks at the system call needs a few instructions of assembly, one version for
/// each, as in glibc's own `clone3` wrappers.
///
/// With [`Reservation::with_shared_stack`](crate::memory::Reservation::with_shared_stack) the
/// stack costs a child born in a cgroup nothing, and with glibc's rseq registration paused
/// across the call neither does the kernel's first write into its memory: only what the child
/// writes on purpose is charged there.
///
/// # Safety
/// The process must have one thread (or `child` keep the rule for child code strictly), and
/// `child` must fit in `stack`. `child` should write only its stack and memory it was given:
/// any other private page it writes is copied, and charged, in the child. With `VM` the
/// caller must keep `child` and `stack` alive until the child has ended (`VFORK` does).
#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu"))]
pub unsafe fn clone3_child_on_stack<F: FnMut() -> i32>(
    args: &CloneArgs,
    stack: StackArea,
    child: &mut F,
) -> Result<Child, Error> {
    let mut pidfd: libc::c_int = -1;
    let pid = create("clone3", args.flag_set().contains(Flags::VM), || {
        // SAFETY: the trampoline never returns in the child (it ends in _exit), and `child` is
        // alive for the child (see # Safety); the rest is the caller's.
        let ret = unsafe {
            let arg = child as *mut F as *mut libc::c_void;
            clone3_on_stack(args, stack, &mut pidfd, child_trampoline::<F>, arg)
        };
        // This call reports a failure as -errno, not through errno.
        if ret < 0 {
            Err(Errno::from_raw(-ret as i32))
        } else {
            Ok(ret as libc::pid_t)
        }
    })?;
    args.mark_birth(pid);
    Ok(child_of(args, pid, pidfd))
}

/// The `clone3` system call with `args` on `stack`, the child starting in `entry(arg)`:
/// the child's tid, or `-errno`.
///
/// The system call returns twice, in two tasks, on two stacks: 0 in the child, whose stack
/// pointer the kernel has set to the end of `stack`, and the child's tid in the parent. The
/// child must not return into the parent's frames (they are on another stack, or in memory
/// it shares), so right after the call it clears the frame pointer and calls `entry(arg)`
/// from values held in registers, never from memory. Each architecture does this in its own
/// instructions, side by side below, the same steps as glibc's `clone3.S` for each:
///
/// | step | x86-64 | aarch64 |
/// |---|---|---|
/// | the call | `syscall`, number in `rax` | `svc #0`, number in `x8` |
/// | arguments | `rdi`, `rsi` | `x0`, `x1` |
/// | what the call clobbers | `rcx`, `r11` | nothing but `x0` |
/// | registers kept for the child | `r12` (arg), `r13` (entry) | `x10` (arg), `x11` (entry) |
/// | no frame to return to | `xor ebp, ebp` | `mov x29, xzr`, `mov x30, xzr` |
/// | a backstop `exit_group` | number 231 | number 94 |
///
/// # Safety
/// `entry` must never return (it ends its task with `_exit` or `exit`; `exit_group` after it
/// is a backstop) and may run only what is safe on `stack` with the sharing `args` asks for;
/// `arg` and `stack` must stay valid for as long as the child runs.
#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu"))]
pub(crate) unsafe fn clone3_on_stack(
    args: &CloneArgs,
    stack: StackArea,
    pidfd: &mut libc::c_int,
    entry: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
) -> libc::c_long {
    let mut filled = args.clone().stack(stack.base as u64, stack.len as u64).fill(pidfd);
    let ret: libc::c_long;
    // SAFETY: the kernel starts the child with its stack pointer at stack + stack_size (16-byte
    // aligned, as a call expects on both architectures); the child calls entry(arg) there,
    // which never returns (see # Safety). The parent returns from the call normally, with
    // only the registers named here changed.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "mov edi, eax",
            "mov eax, 231", // exit_group
            "syscall",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") &mut filled as *mut libc::clone_args,
            in("rsi") CloneArgs::SIZE,
            in("r12") arg,
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    // SAFETY: as above. x29 and x30 are written in the child only, which never comes back.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        std::arch::asm!(
            "svc #0",
            "cbnz x0, 2f",
            "mov x29, xzr",
            "mov x30, xzr",
            "mov x0, x10",
            "blr x11",
            "mov x8, #94", // exit_group
            "svc #0",
            "brk #0",
            "2:",
            inlateout("x0") &mut filled as *mut libc::clone_args => ret,
            in("x1") CloneArgs::SIZE,
            in("x8") libc::SYS_clone3,
            in("x10") arg,
            in("x11") entry,
            options(nostack),
        );
    }
    ret
}

/// `clone3` with a stack of the child's own needs a few instructions of assembly, written
/// here for x86-64 and aarch64 with glibc; elsewhere this says so.
///
/// # Safety
/// As for the version beside it.
#[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu")))]
pub unsafe fn clone3_child_on_stack<F: FnMut() -> i32>(
    _args: &CloneArgs,
    _stack: StackArea,
    _child: &mut F,
) -> Result<Child, Error> {
    Err(Error::cannot_run(
        "clone3 with a stack of the child's own is implemented for x86-64 and aarch64 with \
         glibc only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_args_has_the_kernels_v2_layout() {
        assert_eq!(CloneArgs::SIZE, 88);
        let mut pidfd = -1;
        let args = CloneArgs::new(Signal::SIGCHLD)
            .pidfd()
            .set_tid(&[Pid::from_raw(1), Pid::from_raw(4242)]);
        let filled = args.fill(&mut pidfd);
        assert_eq!(filled.flags, 0x1000);
        assert_eq!(filled.exit_signal, libc::SIGCHLD as u64);
        assert_eq!(filled.set_tid_size, 2);
        assert_ne!(filled.pidfd, 0);
        assert_eq!(filled.cgroup, 0);
    }

    #[test]
    fn into_cgroup_sets_the_64_bit_flag_and_the_descriptor() {
        let dir = std::fs::File::open("/").unwrap();
        let mut pidfd = -1;
        let args = CloneArgs::new(Signal::SIGCHLD).into_cgroup(&dir);
        let filled = args.fill(&mut pidfd);
        assert_eq!(filled.flags, 0x2_0000_0000);
        assert_eq!(filled.cgroup, dir.as_raw_fd() as u64);
        assert_eq!(filled.pidfd, 0);
    }
}
