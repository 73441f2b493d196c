//! A thread built by hand: `clone3` with the flags glibc's `pthread_create` uses, joined the
//! way glibc joins, on a futex the kernel clears when the thread ends.
//!
//! The thread shares everything with its creator (memory, descriptors, handlers, the pid) but
//! its stack and, with `CLONE_SETTLS`, its thread pointer. glibc and Rust find a thread's
//! thread-local variables (`errno`, `thread_local!`) through that pointer, so a thread made
//! without `CLONE_SETTLS` would read and write its creator's. A real thread library gives the
//! new thread a copy of the program's TLS template; this one gives it a zeroed block, enough
//! for code that touches no thread-local: the body here is fixed, and uses only atomics and
//! raw system calls (no libc, which would write `errno` on failure). It reports who it is,
//! waits to be released, and ends with `exit`, which ends one thread: `_exit` is `exit_group`
//! and would end the whole process.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
use nix::unistd::Pid;

use crate::clone3::CloneArgs;
use crate::flags::Flags;
use crate::memory::{ChildStack, StackArea};
use crate::process::thread_pointer;
use crate::Error;

/// The flags glibc's `pthread_create` passes to `clone3`, which these threads use.
pub const NPTL_FLAGS: Flags = Flags(
    Flags::VM.0
        | Flags::FS.0
        | Flags::FILES.0
        | Flags::SIGHAND.0
        | Flags::THREAD.0
        | Flags::SYSVSEM.0
        | Flags::SETTLS.0
        | Flags::PARENT_SETTID.0
        | Flags::CHILD_CLEARTID.0,
);

/// What the thread saw of itself, written by the thread before it waits to be released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeenByThread {
    /// `getpid()` in the thread: the thread group's id.
    pub pid: Pid,
    /// `gettid()` in the thread.
    pub tid: Pid,
    /// Its thread pointer (`fs` on x86-64, `TPIDR_EL0` on aarch64), where its thread-local
    /// variables are found.
    pub thread_pointer: usize,
    /// The tid word when it first looked: what `CHILD_SETTID` wrote, or [`NOT_WRITTEN`].
    pub tid_word: libc::pid_t,
}

/// What the tid word holds until the kernel writes it.
pub const NOT_WRITTEN: libc::pid_t = -1;

/// The words the thread and its creator share.
#[derive(Default)]
struct Shared {
    /// The tid word, as glibc has one (`pd->tid`): `PARENT_SETTID` writes the tid here before
    /// `clone3` returns, `CHILD_SETTID` before the thread runs; `CHILD_CLEARTID` zeroes it and
    /// wakes a futex on it once the thread has ended.
    tid_word: AtomicU32,
    tid_word_seen: AtomicU32,
    started: AtomicU32,
    release: AtomicU32,
    pid: AtomicU32,
    tid: AtomicU32,
    thread_pointer: AtomicUsize,
}

/// What the running thread uses: freed only once it has ended, leaked if it never does.
struct InUse {
    shared: Box<Shared>,
    _stack: ChildStack,
    _tls_block: Option<ChildStack>,
}

/// A thread made with `clone3` and [`NPTL_FLAGS`], or other flags to show what each does.
/// Dropping it releases and joins it.
pub struct HandBuiltThread {
    in_use: Option<InUse>,
    tid: Pid,
    flags: Flags,
    joined: bool,
}

/// Room for the static TLS below the thread pointer (a few KiB in practice).
const TLS_BLOCK: usize = 64 << 10;

impl HandBuiltThread {
    /// Starts a thread with `flags`: VM at least; SETTLS to give it a thread pointer of its
    /// own, on a zeroed block; without THREAD it is a process of its own that shares our
    /// memory, a clone child (exit signal 0) that [`join`](Self::join) reaps. It reports who
    /// it is, then waits for `join`. Every signal is blocked in it, so no handler runs there.
    pub fn start(flags: Flags) -> Result<HandBuiltThread, Error> {
        HandBuiltThread::start_into(flags, None)
    }

    /// [`start`](Self::start), born in the cgroup whose directory `cgroup` is, where given
    /// (`CLONE_INTO_CGROUP`). `flags` may hold `CLONE_PIDFD`: the descriptor the kernel
    /// returns is kept open for the program's life, so that closing it can never end
    /// anything (`CLONE_PIDFD_AUTOKILL` would kill the whole thread group).
    pub fn start_into(
        flags: Flags,
        cgroup: Option<&std::os::fd::OwnedFd>,
    ) -> Result<HandBuiltThread, Error> {
        if !flags.contains(Flags::VM) || flags.contains(Flags::VFORK) {
            return Err(Error::Failed(format!("a hand-built thread needs CLONE_VM, not {flags}")));
        }
        let shared = Box::<Shared>::default();
        shared.tid_word.store(NOT_WRITTEN as u32, Ordering::SeqCst);
        let mut stack = ChildStack::new(64 << 10)?;
        let mut tls_block =
            if flags.contains(Flags::SETTLS) { Some(ChildStack::new(TLS_BLOCK)?) } else { None };
        let tid_word = shared.tid_word.as_ptr() as *mut libc::pid_t;
        let mut args = CloneArgs::with_exit_signal(0).flags(flags).tids(tid_word, tid_word);
        if let Some(block) = tls_block.as_mut().map(ChildStack::area) {
            args = args.tls(thread_pointer_in(block) as u64);
        }
        if let Some(dir) = cgroup {
            args = args.into_cgroup(dir);
        }

        // Blocked here, every signal stays blocked in the thread, which inherits the mask.
        let mut old_mask = SigSet::empty();
        pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), Some(&mut old_mask))
            .map_err(|e| Error::sys("pthread_sigmask", e))?;
        let mut pidfd = -1;
        let arg = &*shared as *const Shared as *mut libc::c_void;
        // SAFETY: thread_main never returns (it ends with exit) and touches only `shared`,
        // through atomics, and its own stack; both stay alive until the kernel has cleared
        // the tid word (InUse is leaked if that never happens).
        let ret = unsafe {
            crate::clone3::clone3_on_stack(&args, stack.area(), &mut pidfd, thread_main, arg)
        };
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
        if ret < 0 {
            return Err(Error::sys("clone3", Errno::from_raw((-ret) as i32)));
        }
        // Kept open on purpose (see above): a descriptor number, left to the program's end.
        let _ = pidfd;
        let thread = HandBuiltThread {
            in_use: Some(InUse { shared, _stack: stack, _tls_block: tls_block }),
            tid: Pid::from_raw(ret as libc::pid_t),
            flags,
            joined: false,
        };
        wait_while(&thread.shared().started, 0)?;
        Ok(thread)
    }

    fn shared(&self) -> &Shared {
        &self.in_use.as_ref().expect("in use until dropped").shared
    }

    /// The thread's tid, as `clone3` returned it: its name in `/proc/self/task`, and the value
    /// the kernel writes into the tid word.
    pub fn tid(&self) -> Pid {
        self.tid
    }

    /// The tid word now: [`NOT_WRITTEN`], or the tid (`PARENT_SETTID`, `CHILD_SETTID`) until
    /// the thread has ended, then 0 (`CHILD_CLEARTID`).
    pub fn tid_word(&self) -> libc::pid_t {
        self.shared().tid_word.load(Ordering::SeqCst) as libc::pid_t
    }

    /// The address of the tid word: the futex that [`join`](Self::join) sleeps on.
    pub fn tid_word_address(&self) -> usize {
        self.shared().tid_word.as_ptr() as usize
    }

    /// What the thread reported of itself.
    pub fn seen_by_thread(&self) -> SeenByThread {
        let shared = self.shared();
        SeenByThread {
            pid: Pid::from_raw(shared.pid.load(Ordering::SeqCst) as libc::pid_t),
            tid: Pid::from_raw(shared.tid.load(Ordering::SeqCst) as libc::pid_t),
            thread_pointer: shared.thread_pointer.load(Ordering::SeqCst),
            tid_word: shared.tid_word_seen.load(Ordering::SeqCst) as libc::pid_t,
        }
    }

    /// Releases the thread and waits (at most 10 s) until it has ended and its stack is
    /// free: as `pthread_join` does, asleep in `futex(FUTEX_WAIT)` on the tid word until the
    /// kernel clears it and wakes the futex, then until its /proc/self/task entry is gone;
    /// without `THREAD`, by reaping it. Returns how many times it called `FUTEX_WAIT` on the
    /// tid word: 0 if the thread had ended before the join looked.
    pub fn join(&mut self) -> Result<u32, Error> {
        let mut futex_waits = 0;
        let shared = self.shared();
        shared.release.store(1, Ordering::SeqCst);
        futex(&shared.release, libc::FUTEX_WAKE, 1, None);
        if !self.flags.contains(Flags::THREAD) {
            crate::process::reap(self.tid)?;
        } else {
            while self.flags.contains(Flags::CHILD_CLEARTID) {
                match shared.tid_word.load(Ordering::SeqCst) {
                    0 => break,
                    word => futex_waits += wait_while(&shared.tid_word, word)?,
                }
            }
            // The word is cleared as the thread ends, a moment before it leaves the thread
            // group; once it has, this process has one thread again (fork needs that).
            let entry = format!("/proc/self/task/{}", self.tid);
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::path::Path::new(&entry).exists() {
                if Instant::now() > deadline {
                    return Err(Error::Failed(format!("thread {} did not end in 10 s", self.tid)));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.joined = true;
        Ok(futex_waits)
    }
}

impl Drop for HandBuiltThread {
    fn drop(&mut self) {
        if !self.joined && self.join().is_err() {
            // It still runs on its stack: leak what it uses rather than free it under it.
            std::mem::forget(self.in_use.take());
        }
    }
}

/// Waits, at most 10 s, until `word` no longer holds `value`; returns how many times it
/// called `FUTEX_WAIT`.
fn wait_while(word: &AtomicU32, value: u32) -> Result<u32, Error> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut waits = 0;
    while word.load(Ordering::SeqCst) == value {
        waits += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Failed("a hand-built thread did not answer in 10 s".into()));
        }
        futex(word, libc::FUTEX_WAIT, value, Some(left.min(Duration::from_millis(100))));
    }
    Ok(waits)
}

/// `futex(word, op, value, timeout)`; its result does not matter to the loops that call it.
fn futex(word: &AtomicU32, op: libc::c_int, value: u32, timeout: Option<Duration>) {
    let timeout = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let timeout_ptr = timeout.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: the word is ours and alive; the timeout, when given, lives across the call.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), op, value, timeout_ptr) };
}

/// Where a hand-built thread's thread pointer points in its zeroed TLS block, laid out as the
/// architecture's TLS rules expect; nothing here reads the variables, but what reads the
/// header finds one.
/// - x86-64 ("variant II"): the variables lie *below* the pointer, which points at a header
///   whose first word (and third, `self`) hold the pointer itself, since code reads it from
///   `fs:0`: near the top of the block.
/// - aarch64 ("variant I"): the pointer points at a 16-byte header (the dtv pointer and a
///   reserved word, both 0 here), and the variables lie *above* it: at the bottom.
#[cfg(target_arch = "x86_64")]
fn thread_pointer_in(block: StackArea) -> usize {
    let pointer = (block.base as usize + block.len - 64) & !63;
    // SAFETY: pointer..pointer + 24 lies inside the block, which nothing else uses yet.
    unsafe {
        std::ptr::write(pointer as *mut usize, pointer);
        std::ptr::write((pointer + 16) as *mut usize, pointer);
    }
    pointer
}

/// Where a hand-built thread's thread pointer points; see the x86-64 version beside it.
#[cfg(target_arch = "aarch64")]
fn thread_pointer_in(block: StackArea) -> usize {
    block.base as usize
}

/// The thread's code, which touches no thread-local: report, wait for the release, end this
/// thread alone.
extern "C" fn thread_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: arg is the Shared that start() passed, alive until the tid word is cleared.
    let shared = unsafe { &*(arg as *const Shared) };
    shared.pid.store(raw_syscall(libc::SYS_getpid, 0, 0, 0) as u32, Ordering::SeqCst);
    shared.tid.store(raw_syscall(libc::SYS_gettid, 0, 0, 0) as u32, Ordering::SeqCst);
    shared.thread_pointer.store(thread_pointer(), Ordering::SeqCst);
    shared.tid_word_seen.store(shared.tid_word.load(Ordering::SeqCst), Ordering::SeqCst);
    shared.started.store(1, Ordering::SeqCst);
    raw_syscall(libc::SYS_futex, shared.started.as_ptr() as usize, libc::FUTEX_WAKE as usize, 1);
    while shared.release.load(Ordering::SeqCst) == 0 {
        raw_syscall(
            libc::SYS_futex,
            shared.release.as_ptr() as usize,
            libc::FUTEX_WAIT as usize,
            0,
        );
    }
    exit_this_thread()
}

/// `exit(0)`, the system call that ends the calling thread alone (libc's `_exit` ends them
/// all, with `exit_group`). The number and the instruction differ between architectures.
fn exit_this_thread() -> ! {
    // SAFETY: exit ends this thread only; nothing of ours runs after it.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::asm!("syscall", in("rax") libc::SYS_exit, in("rdi") 0, options(noreturn, nostack))
    }
    // SAFETY: as above.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        std::arch::asm!("svc #0", in("x8") libc::SYS_exit, in("x0") 0, options(noreturn, nostack))
    }
}

/// A system call without libc, which would write errno (a thread-local) on failure. Each
/// architecture has its own instruction and registers: x86-64 `syscall` with the number in
/// `rax`, the arguments in `rdi`, `rsi`, `rdx`, `r10`, and `rcx`, `r11` clobbered; aarch64
/// `svc #0` with the number in `x8`, the arguments in `x0` to `x3`, and nothing clobbered but
/// the result in `x0`.
fn raw_syscall(number: libc::c_long, a: usize, b: usize, c: usize) -> isize {
    let ret: isize;
    // SAFETY: the calls made here (getpid, gettid, futex on our own words) touch no memory of
    // ours but the futex word.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") number as isize => ret,
            in("rdi") a, in("rsi") b, in("rdx") c, in("r10") 0usize,
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        )
    };
    // SAFETY: as above.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        std::arch::asm!(
            "svc #0",
            inlateout("x0") a as isize => ret,
            in("x1") b, in("x2") c, in("x3") 0usize, in("x8") number,
            options(nostack),
        )
    };
    ret
}
