//! `clone3(2)`, the extensible successor of `clone`: every field of `struct clone_args`, every
//! `CLONE_*` flag, and what only `clone3` can do: start the child inside a cgroup
//! (`CLONE_INTO_CGROUP`), hand back a pidfd (`CLONE_PIDFD`), choose its pid (`set_tid`).
//!
//! nix has no `clone3`, so the system call is wrapped here once: [`CloneArgs`] builds the
//! kernel's `struct clone_args` (libc's `clone_args`), [`clone3_child`] runs a closure in a
//! fork-like child, and [`clone3_child_on_stack`] starts the child on a stack of its own
//! (x86-64 and aarch64). A failed call keeps its errno: `Error::Sys { context: "clone3", errno }`;
//! [`not_offered`] tells which errnos mean "this kernel predates the feature".

use std::fmt;
use std::ops::BitOr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::memory::StackArea;
use crate::process::{
    child_trampoline, end_child_with, flush_stdout, require_single_thread, Child, RseqPause,
};
use crate::Error;

/// A set of `CLONE_*` flags, as `clone_args.flags` takes them (64 bits: the newest do not fit
/// in the `int` of `clone(2)`, which is why libc deprecates its `CLONE_INTO_CGROUP`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u64);

macro_rules! clone_flags {
    ($($name:ident = $value:expr, $doc:literal;)*) => {
        impl Flags {
            $(#[doc = concat!("`CLONE_", stringify!($name), "`: ", $doc)]
            pub const $name: Flags = Flags($value);)*
            /// Every flag with its C name, in the order of `<linux/sched.h>`.
            pub const ALL: &'static [(Flags, &'static str)] =
                &[$((Flags::$name, concat!("CLONE_", stringify!($name))),)*];
        }
    };
}

clone_flags! {
    NEWTIME = 0x80, "a new time namespace (`unshare` 5.6; `clone3` 6.3, in stable lines too).";
    VM = 0x100, "share the address space.";
    FS = 0x200, "share the root, the working directory and the umask.";
    FILES = 0x400, "share the file descriptor table.";
    SIGHAND = 0x800, "share the table of signal handlers (needs `VM`).";
    PIDFD = 0x1000, "return a pidfd for the child in `clone_args.pidfd` (5.2).";
    PTRACE = 0x2000, "if the parent is traced, trace the child too.";
    VFORK = 0x4000, "suspend the parent until the child exits or execs.";
    PARENT = 0x8000, "the child's parent is the caller's parent, not the caller.";
    THREAD = 0x10000, "the same pid, a tid of its own, no exit signal; needs `SIGHAND`.";
    NEWNS = 0x20000, "a new mount namespace.";
    SYSVSEM = 0x40000, "share System V semaphore undo values.";
    SETTLS = 0x80000, "the child's thread pointer is `clone_args.tls`.";
    PARENT_SETTID = 0x100000, "store the child's tid at `clone_args.parent_tid`, in the parent.";
    CHILD_CLEARTID = 0x200000, "at the child's end, zero `clone_args.child_tid` and wake its futex.";
    DETACHED = 0x400000, "obsolete, ignored by `clone`; `clone3` refuses it.";
    UNTRACED = 0x800000, "a tracer cannot force `PTRACE` onto the child.";
    CHILD_SETTID = 0x1000000, "store the child's tid at `clone_args.child_tid`, in the child.";
    NEWCGROUP = 0x2000000, "a new cgroup namespace.";
    NEWUTS = 0x4000000, "a new UTS namespace (hostname, domain name).";
    NEWIPC = 0x8000000, "a new IPC namespace.";
    NEWUSER = 0x10000000, "a new user namespace.";
    NEWPID = 0x20000000, "a new PID namespace, the child its pid 1.";
    NEWNET = 0x40000000, "a new network namespace.";
    IO = 0x80000000, "share the I/O context.";
    CLEAR_SIGHAND = 0x1_0000_0000, "reset every caught signal to its default (5.5; no `SIGHAND`).";
    INTO_CGROUP = 0x2_0000_0000, "start the child in the cgroup of fd `clone_args.cgroup` (5.7).";
    AUTOREAP = 0x4_0000_0000, "reap the child at its end, no zombie, no wait (7.1; exit signal 0).";
    NNP = 0x8_0000_0000, "set `no_new_privs` in the child, as `prctl` would (7.1; no `THREAD`).";
    PIDFD_AUTOKILL = 0x10_0000_0000, "SIGKILL the child when its pidfd closes (7.1; `PIDFD`, `AUTOREAP`).";
    EMPTY_MNTNS = 0x20_0000_0000, "a new mount namespace holding its root alone (7.1; implies `NEWNS`).";
}

impl Flags {
    /// No flag.
    pub const NONE: Flags = Flags(0);

    /// Whether every flag of `other` is set here.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set here.
    pub fn intersects(self, other: Flags) -> bool {
        self.0 & other.0 != 0
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

impl From<nix::sched::CloneFlags> for Flags {
    fn from(flags: nix::sched::CloneFlags) -> Flags {
        Flags(flags.bits() as u32 as u64)
    }
}

/// `CLONE_PIDFD | CLONE_INTO_CGROUP`, or `0x...` for bits without a name.
impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        let mut first = true;
        for (flag, name) in Flags::ALL {
            if rest & flag.0 != 0 {
                write!(f, "{}{name}", if first { "" } else { " | " })?;
                rest &= !flag.0;
                first = false;
            }
        }
        if rest != 0 || first {
            write!(f, "{}{rest:#x}", if first { "" } else { " | " })?;
        }
        Ok(())
    }
}

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

    /// Adds `flags`.
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

    /// The flags asked for.
    pub fn flag_set(&self) -> Flags {
        Flags(self.raw.flags)
    }

    /// The struct as given, before its pointers are filled in.
    pub(crate) fn raw(&self) -> &libc::clone_args {
        &self.raw
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

/// Turns a finished call into its child: the pid and, with `CLONE_PIDFD`, the pidfd.
pub(crate) fn started(
    args: &CloneArgs,
    ret: libc::c_long,
    errno: Errno,
    pidfd: libc::c_int,
) -> Result<Child, Error> {
    if ret < 0 {
        return Err(Error::sys("clone3", errno));
    }
    Ok(Child::new(
        Pid::from_raw(ret as libc::pid_t),
        // SAFETY: with CLONE_PIDFD the kernel stored a new descriptor that we now own.
        args.flag_set().contains(Flags::PIDFD).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) }),
    ))
}

/// Flags a fork-like child must not have: sharing memory, handlers or thread identity, or
/// having the kernel write a tid or take a thread pointer at addresses we were handed.
pub(crate) const REFUSED: Flags = Flags(
    Flags::THREAD.0
        | Flags::VFORK.0
        | Flags::SIGHAND.0
        | Flags::VM.0
        | Flags::SETTLS.0
        | Flags::PARENT_SETTID.0
        | Flags::CHILD_CLEARTID.0
        | Flags::CHILD_SETTID.0,
);

/// `clone3` like `fork`: runs `child` in the new process, which then ends with its return
/// value (see the crate's rule for child code); returns the child in the parent.
///
/// Safe for the same reason as [`fork_child`](crate::process::fork_child): it checks that this
/// process has one thread, and refuses a stack and the flags that share memory or handlers
/// or write through pointers (`VM`, `SIGHAND`, `THREAD`, `VFORK`, `SETTLS`, the TID flags).
pub fn clone3_child(args: &CloneArgs, child: impl FnOnce() -> i32) -> Result<Child, Error> {
    let refused = Flags(args.flag_set().0 & REFUSED.0);
    if refused != Flags::NONE || args.raw.stack != 0 {
        return Err(Error::Failed(format!(
            "clone3_child refuses {refused} and a stack: use clone3_child_on_stack or \
             clone3_child_unchecked"
        )));
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
    flush_stdout();
    let mut pidfd: libc::c_int = -1;
    let mut filled = args.fill(&mut pidfd);
    let rseq = if args.flag_set().contains(Flags::VM) { None } else { RseqPause::start() };
    // SAFETY: filled is a clone_args of the size passed, with pointers (pidfd, set_tid) alive
    // for the call. Without a stack the child returns here on a copy of our stack, as after
    // fork, and goes no further than end_child_with.
    let ret = unsafe {
        libc::syscall(libc::SYS_clone3, &mut filled as *mut libc::clone_args, CloneArgs::SIZE)
    };
    if ret == 0 {
        end_child_with(child);
    }
    let errno = Errno::last();
    drop(rseq);
    started(args, ret, errno, pidfd)
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
    flush_stdout();
    let mut pidfd: libc::c_int = -1;
    // A CLONE_VM child starts without rseq anyway (the kernel drops the registration).
    let rseq = if args.flag_set().contains(Flags::VM) { None } else { RseqPause::start() };
    // SAFETY: the trampoline never returns in the child (it ends in _exit), and `child` is
    // alive for the child (see # Safety); the rest is the caller's.
    let ret = unsafe {
        let arg = child as *mut F as *mut libc::c_void;
        clone3_on_stack(args, stack, &mut pidfd, child_trampoline::<F>, arg)
    };
    drop(rseq);
    started(args, ret, Errno::from_raw((-ret) as i32), pidfd)
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

    #[test]
    fn flags_print_their_c_names() {
        assert_eq!(Flags::ALL.len(), 31);
        assert_eq!(
            (Flags::PIDFD | Flags::INTO_CGROUP).to_string(),
            "CLONE_PIDFD | CLONE_INTO_CGROUP"
        );
        assert_eq!(Flags(0x40_0000_0000).to_string(), "0x4000000000");
        assert_eq!(Flags::NONE.to_string(), "0x0");
        assert_eq!(Flags::from(nix::sched::CloneFlags::CLONE_NEWPID), Flags::NEWPID);
    }
}
