//! `clone3(2)`: the extensible successor of `clone`, for what `clone` cannot do: start the
//! child inside a cgroup (`CLONE_INTO_CGROUP`), hand back a pidfd (`CLONE_PIDFD`), choose the
//! child's pid in each PID namespace (`set_tid`).
//!
//! nix has no `clone3`, so the raw system call is wrapped here once: [`CloneArgs`] builds the
//! kernel's `struct clone_args`, [`clone3_child`] runs a closure in a fork-like child, and
//! [`clone3_child_on_stack`] starts the child on a stack of its own (x86-64). A kernel
//! without `clone3` (before 5.3, `ENOSYS`) or without a field this crate sets (`E2BIG`,
//! `EINVAL` for `CLONE_INTO_CGROUP` before 5.7) gives an [`Error::CannotRun`] that says so.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;

use crate::memory::StackArea;
use crate::process::{Ended, Outcome, WaitFailure};
use crate::sync::INTERRUPTIONS;
use crate::Error;

/// `CLONE_PIDFD` (Linux 5.2): store a pidfd for the child in `clone_args.pidfd`.
pub const CLONE_PIDFD: u64 = 0x1000;
/// `CLONE_NEWPID`: the child starts a new PID namespace.
pub const CLONE_NEWPID: u64 = 0x2000_0000;
/// `CLONE_INTO_CGROUP` (Linux 5.7): start the child in the cgroup whose directory fd is in
/// `clone_args.cgroup`. It does not fit in a C `int`, which is why libc 0.2 deprecates its
/// constant; it is written out here.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The kernel's `struct clone_args` as of Linux 5.7 (`CLONE_ARGS_SIZE_VER2`, 88 bytes). Every
/// field is a 64-bit value; pointers travel as integers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct RawCloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// What a `clone3` child gets: a builder over `struct clone_args`.
///
/// ```no_run
/// # use clone_cgroup::clone3::CloneArgs;
/// # use nix::sys::signal::Signal;
/// # let cgroup_dir = std::fs::File::open("/sys/fs/cgroup/x").unwrap();
/// let args = CloneArgs::new(Signal::SIGCHLD).pidfd().into_cgroup(&cgroup_dir);
/// ```
#[derive(Debug)]
pub struct CloneArgs<'a> {
    flags: u64,
    exit_signal: Signal,
    cgroup: Option<BorrowedFd<'a>>,
    set_tid: Vec<libc::pid_t>,
}

impl<'a> CloneArgs<'a> {
    /// A child that sends `exit_signal` to its parent when it ends (SIGCHLD: an ordinary child).
    pub fn new(exit_signal: Signal) -> CloneArgs<'a> {
        CloneArgs {
            flags: 0,
            exit_signal,
            cgroup: None,
            set_tid: Vec::new(),
        }
    }

    /// `CLONE_PIDFD`: also return a pidfd, a file descriptor that refers to this child and no
    /// other, even after its pid is reused.
    pub fn pidfd(mut self) -> Self {
        self.flags |= CLONE_PIDFD;
        self
    }

    /// `CLONE_INTO_CGROUP`: the child is born in the cgroup whose directory `dir` is open.
    pub fn into_cgroup(mut self, dir: &'a impl AsFd) -> Self {
        self.flags |= CLONE_INTO_CGROUP;
        self.cgroup = Some(dir.as_fd());
        self
    }

    /// `CLONE_NEWPID`: the child is pid 1 of a new PID namespace.
    pub fn new_pid_namespace(mut self) -> Self {
        self.flags |= CLONE_NEWPID;
        self
    }

    /// `set_tid` (Linux 5.5): the pid the child must get in each PID namespace, innermost
    /// first. Needs CAP_SYS_ADMIN in the namespaces concerned; a taken pid fails with EEXIST.
    pub fn set_tid(mut self, pids: &[Pid]) -> Self {
        self.set_tid = pids.iter().map(|p| p.as_raw()).collect();
        self
    }

    /// Adds `clone(2)`-style flags (namespaces, or for [`clone3_child_on_stack`] only, the
    /// sharing ones such as `CLONE_VM`). [`clone3_child`] refuses the sharing flags.
    pub fn with_flags(mut self, flags: nix::sched::CloneFlags) -> Self {
        self.flags |= flags.bits() as u64;
        self
    }

    /// The raw flags, for printing.
    pub fn flags(&self) -> u64 {
        self.flags
    }

    fn raw(&self, pidfd_out: &mut libc::c_int) -> RawCloneArgs {
        RawCloneArgs {
            flags: self.flags,
            pidfd: if self.flags & CLONE_PIDFD != 0 {
                pidfd_out as *mut libc::c_int as u64
            } else {
                0
            },
            exit_signal: self.exit_signal as u64,
            set_tid: if self.set_tid.is_empty() {
                0
            } else {
                self.set_tid.as_ptr() as u64
            },
            set_tid_size: self.set_tid.len() as u64,
            cgroup: self.cgroup.map_or(0, |fd| fd.as_raw_fd() as u64),
            ..RawCloneArgs::default()
        }
    }
}

/// A child made by `clone3`: its pid and, with [`CloneArgs::pidfd`], its pidfd.
///
/// Dropped before it was waited for (an error path), the child is killed and reaped; the
/// pidfd is closed with it.
#[derive(Debug)]
pub struct Clone3Child {
    pid: Pid,
    pidfd: Option<OwnedFd>,
    reaped: bool,
}

impl Clone3Child {
    fn new(pid: Pid, pidfd: Option<OwnedFd>) -> Clone3Child {
        Clone3Child {
            pid,
            pidfd,
            reaped: false,
        }
    }

    /// The child's pid in the parent's PID namespace.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The pidfd, if `CLONE_PIDFD` was asked for.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|fd| fd.as_fd())
    }

    /// Gives up responsibility for the child without waiting for it: the caller reaps it.
    pub fn into_pid(mut self) -> Pid {
        self.reaped = true;
        self.pid
    }

    /// [`wait_pidfd`] for this child (or a plain bounded `waitpid` without a pidfd).
    pub fn wait(
        &mut self,
        watch: &crate::sync::SignalWatch,
        timeout: Duration,
    ) -> Result<Ended, WaitFailure> {
        let result = match &self.pidfd {
            Some(pidfd) => wait_pidfd(pidfd, self.pid, timeout),
            None => crate::process::wait_for(self.pid, watch, timeout, |_| {}),
        };
        if !matches!(result, Err(WaitFailure::Sys(_))) {
            self.reaped = true;
        }
        result
    }
}

impl Drop for Clone3Child {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        match &self.pidfd {
            Some(pidfd) => {
                let _ = pidfd_kill(pidfd);
                let _ = waitid(
                    Id::PIDFd(pidfd.as_fd()),
                    WaitPidFlag::WEXITED | WaitPidFlag::__WALL,
                );
            }
            None => {
                let _ = crate::process::kill_and_reap(self.pid);
            }
        }
    }
}

/// Turns the errors that mean "this kernel cannot" into [`Error::CannotRun`].
fn clone3_error(errno: Errno, args: &CloneArgs) -> Error {
    match errno {
        Errno::ENOSYS => Error::cannot_run("this kernel has no clone3 (it needs Linux 5.3)"),
        Errno::E2BIG => Error::cannot_run(
            "this kernel's clone3 does not know all of struct clone_args (set_tid needs 5.5, \
             CLONE_INTO_CGROUP 5.7)",
        ),
        Errno::EINVAL if args.flags & CLONE_INTO_CGROUP != 0 && args.set_tid.is_empty() => {
            Error::cannot_run(
                "clone3 refused CLONE_INTO_CGROUP (EINVAL): it needs Linux 5.7 and a cgroup v2 \
                 directory",
            )
        }
        e => Error::sys("clone3", e),
    }
}

/// `clone3` like `fork`: runs `child` in the new process, which then `_exit`s with its return
/// value; returns the child's pid (and pidfd) in the parent.
///
/// Safe for the same reason as [`fork_child`](crate::process::fork_child): it checks that
/// this process is single-threaded, and `CloneArgs` offers no flag that shares memory.
pub fn clone3_child(args: &CloneArgs, child: impl FnOnce() -> i32) -> Result<Clone3Child, Error> {
    if args.flags & crate::process::SHARING_FLAGS.bits() as u64 != 0 {
        return Err(Error::Failed(
            "clone3_child refuses sharing flags (CLONE_VM and the like): the child would run \
             on our stack; use clone3_child_on_stack"
                .into(),
        ));
    }
    crate::process::require_single_thread("clone3")?;
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let mut pidfd: libc::c_int = -1;
    let mut raw = args.raw(&mut pidfd);
    // SAFETY: raw is a valid clone_args of the size passed; its pointers (pidfd, set_tid) stay
    // alive for the call. Without a stack the child returns here on a copy of our stack, as
    // after fork, and never goes further than the closure and _exit.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut raw as *mut RawCloneArgs,
            std::mem::size_of::<RawCloneArgs>(),
        )
    };
    match pid {
        -1 => Err(clone3_error(Errno::last(), args)),
        0 => {
            let code = child();
            // SAFETY: _exit never returns and runs none of the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(Clone3Child::new(
            Pid::from_raw(pid as libc::pid_t),
            // SAFETY: with CLONE_PIDFD the kernel stored a new descriptor that we now own.
            (args.flags & CLONE_PIDFD != 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) }),
        )),
    }
}

/// glibc's restartable-sequences registration, paused for the span of a `clone3`.
///
/// Since 2.35 glibc registers an `rseq` area for every thread, and the kernel writes the
/// current CPU number into it whenever the thread returns to user space on a CPU it was not
/// on before. A forked child inherits the registration, and its first return to user space
/// (before it runs a single instruction) is such a write, on the page it shares copy-on-write
/// with its parent: on a machine with more than one CPU, where the child starts on another
/// CPU, that page is copied, and charged to the child's cgroup. Measured in the VM with two
/// CPUs: a clone3 child that needs one page was killed in 19 runs of 20 at memory.max=4096
/// until rseq was paused around `clone3`; then 20 of 20 survived. Without a registration the
/// child inherits none, and the parent registers again right after.
#[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
struct RseqPause {
    area: *mut libc::c_void,
    len: u32,
}

#[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
impl RseqPause {
    /// The signature glibc registers with on x86-64 (`RSEQ_SIG`).
    const SIGNATURE: u32 = 0x5305_3053;
    const FLAG_UNREGISTER: libc::c_int = 1;

    /// Unregisters this thread's rseq area, if glibc registered one.
    fn start() -> Option<RseqPause> {
        extern "C" {
            static __rseq_offset: isize;
            static __rseq_size: libc::c_uint;
        }
        // SAFETY: glibc (2.35+) defines both; they are written once, before main.
        let (offset, size) = unsafe { (__rseq_offset, __rseq_size) };
        if size == 0 {
            return None;
        }
        let thread_pointer: usize;
        // SAFETY: on x86-64 glibc keeps the thread pointer at fs:0; reading it has no effects.
        unsafe {
            std::arch::asm!("mov {}, fs:0", out(reg) thread_pointer, options(nostack, readonly))
        };
        let area = (thread_pointer as isize + offset) as *mut libc::c_void;
        // glibc registers 32 bytes (the original struct rseq) even where __rseq_size tells
        // the size of the features in use; the kernel wants the registered length back.
        for len in [size.max(32), size] {
            // SAFETY: unregistering our own thread's area; the kernel checks every argument.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_rseq,
                    area,
                    len,
                    Self::FLAG_UNREGISTER,
                    Self::SIGNATURE,
                )
            };
            if r == 0 {
                return Some(RseqPause { area, len });
            }
        }
        None
    }
}

#[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
impl Drop for RseqPause {
    fn drop(&mut self) {
        // SAFETY: registering the same area, length and signature glibc used.
        unsafe { libc::syscall(libc::SYS_rseq, self.area, self.len, 0, Self::SIGNATURE) };
    }
}

/// `clone3` with a stack of the child's own: the child starts in `child()` on `stack` and
/// `exit`s with its return value. x86-64 only: switching stacks at the system call needs a few
/// instructions of assembly, as in glibc's own `clone3` wrapper.
///
/// With [`Reservation::with_shared_stack`](crate::memory::Reservation::with_shared_stack) the
/// stack costs a child born in a cgroup nothing, and with glibc's rseq registration paused
/// across the call (see `RseqPause`) neither does the kernel's first write into its memory, so
/// that only what the child writes on purpose is charged there.
///
/// # Safety
/// The parent must be single-threaded or `child` async-signal-safe, and `child` must fit in
/// `stack`. `child` must not unwind (a panic aborts) and should write only its stack and
/// memory it was given: any other private page it writes is copied, and charged, in the
/// child.
#[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
pub unsafe fn clone3_child_on_stack<F: FnMut() -> i32>(
    args: &CloneArgs,
    stack: StackArea,
    child: &mut F,
) -> Result<Clone3Child, Error> {
    extern "C" fn trampoline<F: FnMut() -> i32>(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: arg is the &mut F given below; the child has its own copy of it.
        let child = unsafe { &mut *(arg as *mut F) };
        child()
    }

    let _ = std::io::Write::flush(&mut std::io::stdout());
    let mut pidfd: libc::c_int = -1;
    let mut raw = args.raw(&mut pidfd);
    raw.stack = stack.base as u64;
    raw.stack_size = stack.len as u64;
    let entry: extern "C" fn(*mut libc::c_void) -> libc::c_int = trampoline::<F>;
    // A CLONE_VM child starts without rseq anyway (the kernel drops the registration).
    let rseq = if args.flags & libc::CLONE_VM as u64 == 0 {
        RseqPause::start()
    } else {
        None
    };
    let ret: i64;
    // SAFETY: the kernel starts the child with rsp = stack + stack_size (16-byte aligned, as
    // `call` expects); the child calls entry(arg) there and leaves through exit_group, never
    // returning into this function. The parent returns from the syscall normally. syscall
    // clobbers rcx and r11; r12 and r13 survive it in both processes.
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
            in("rdi") &mut raw as *mut RawCloneArgs,
            in("rsi") std::mem::size_of::<RawCloneArgs>(),
            in("r12") child as *mut F as *mut libc::c_void,
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    drop(rseq);
    if ret < 0 {
        return Err(clone3_error(Errno::from_raw(-ret as i32), args));
    }
    Ok(Clone3Child::new(
        Pid::from_raw(ret as libc::pid_t),
        // SAFETY: with CLONE_PIDFD the kernel stored a new descriptor that we now own.
        (args.flags & CLONE_PIDFD != 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) }),
    ))
}

/// `clone3` with a stack of the child's own needs a few instructions of assembly, written
/// here for x86-64 only; elsewhere this says so.
///
/// # Safety
/// As for the x86-64 version.
#[cfg(not(all(target_arch = "x86_64", target_env = "gnu")))]
pub unsafe fn clone3_child_on_stack<F: FnMut() -> i32>(
    _args: &CloneArgs,
    _stack: StackArea,
    _child: &mut F,
) -> Result<Clone3Child, Error> {
    Err(Error::cannot_run(
        "clone3 with a stack of the child's own is implemented for x86-64 with glibc only",
    ))
}

/// Waits for the child behind `pidfd` to end, for at most `timeout`, then reaps it with
/// `waitid(P_PIDFD)`.
///
/// `poll` watches two descriptors: the pidfd, readable once the child has ended, and a
/// signalfd for SIGINT, SIGTERM and SIGHUP (which must be blocked, as
/// [`SignalWatch`](crate::sync::SignalWatch) does). `waitid(P_PIDFD)` can only reap this child,
/// so no other child's end is taken by mistake, and if something else reaped it first the
/// error (ECHILD) says so instead of a wrong status. An interruption or the deadline kills
/// the child through the pidfd (`pidfd_send_signal`), which cannot hit a reused pid.
pub fn wait_pidfd(pidfd: &OwnedFd, pid: Pid, timeout: Duration) -> Result<Ended, WaitFailure> {
    let mut interruptions = SigSet::empty();
    for signal in INTERRUPTIONS {
        interruptions.add(signal);
    }
    let signals = SignalFd::with_flags(
        &interruptions,
        SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
    )
    .map_err(|e| WaitFailure::Sys(Error::sys("signalfd", e)))?;
    let deadline = Instant::now() + timeout;
    let mut interrupted = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(0) => break,
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(WaitFailure::Sys(Error::sys("poll", e))),
        }
        if fds[0].any().unwrap_or(false) {
            break;
        }
        if let Ok(Some(info)) = signals.read_signal() {
            interrupted = Signal::try_from(info.ssi_signo as i32).ok();
            break;
        }
    }
    let exited = fds_ready(pidfd);
    if !exited {
        pidfd_kill(pidfd).map_err(WaitFailure::Sys)?;
    }
    let status = waitid(
        Id::PIDFd(pidfd.as_fd()),
        WaitPidFlag::WEXITED | WaitPidFlag::__WALL,
    )
    .map_err(|e| WaitFailure::Sys(Error::sys(&format!("waitid(P_PIDFD) for {pid}"), e)))?;
    let outcome = Outcome::from_status(status)
        .ok_or_else(|| WaitFailure::Sys(Error::Failed(format!("waitid returned {status:?}"))))?;
    let ended = Ended { status, outcome };
    match (exited, interrupted) {
        (true, _) => Ok(ended),
        (false, Some(signal)) => Err(WaitFailure::Interrupted(signal, ended)),
        (false, None) => Err(WaitFailure::TimedOut(ended)),
    }
}

/// Whether the pidfd is readable now, that is, whether its process has ended.
fn fds_ready(pidfd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// `pidfd_send_signal(pidfd, SIGKILL)`: kills exactly the process the pidfd refers to.
pub fn pidfd_kill(pidfd: &OwnedFd) -> Result<(), Error> {
    // SAFETY: a plain system call on a descriptor we own, with no pointers (info is NULL).
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    match r {
        0 => Ok(()),
        _ if Errno::last() == Errno::ESRCH => Ok(()),
        _ => Err(Error::sys("pidfd_send_signal(SIGKILL)", Errno::last())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_args_has_the_kernels_v2_layout() {
        assert_eq!(std::mem::size_of::<RawCloneArgs>(), 88);
        let mut pidfd = -1;
        let args = CloneArgs::new(Signal::SIGCHLD)
            .pidfd()
            .set_tid(&[Pid::from_raw(1), Pid::from_raw(4242)]);
        let raw = args.raw(&mut pidfd);
        assert_eq!(raw.flags, CLONE_PIDFD);
        assert_eq!(raw.exit_signal, libc::SIGCHLD as u64);
        assert_eq!(raw.set_tid_size, 2);
        assert_ne!(raw.pidfd, 0);
        assert_eq!(raw.cgroup, 0);
    }

    #[test]
    fn into_cgroup_sets_the_64_bit_flag_and_the_descriptor() {
        let dir = std::fs::File::open("/").unwrap();
        let mut pidfd = -1;
        let args = CloneArgs::new(Signal::SIGCHLD).into_cgroup(&dir);
        let raw = args.raw(&mut pidfd);
        assert_eq!(raw.flags, 0x2_0000_0000);
        assert_eq!(raw.cgroup, dir.as_raw_fd() as u64);
        assert_eq!(raw.pidfd, 0);
    }
}
