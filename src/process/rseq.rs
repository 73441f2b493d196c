//! glibc's restartable-sequences area, and why a child of this crate is created with it
//! paused.
//!
//! Since 2.35, glibc registers an `rseq` area for every thread (rseq(2): a small struct at a
//! fixed offset from the thread pointer), and the kernel writes the number of the CPU the
//! thread runs on into it when the thread comes back to user space after it was preempted or
//! moved to another CPU (kernel/rseq.c). A child created by `fork` or `clone` without
//! `CLONE_VM` inherits the registration (`rseq_fork` in include/linux/rseq.h), so the
//! kernel's first such write lands in the child's copy of its parent's memory: a page shared
//! copy-on-write, which the write copies. The copy is a new page, charged to the child's
//! cgroup.
//!
//! In a cgroup with `memory.max` = 4096 that page is the one page a child has. Measured with
//! two CPUs: a `clone3` child born in such a cgroup, which writes one page on purpose, was
//! OOM-killed in 19 runs of 20 until rseq was paused around `clone3`; then 20 of 20 survived.
//! So the one door every child of this crate goes through ([`start`](super::start)) pauses
//! the registration across every call that makes a child that does not share our memory
//! (`RseqPause`): the child starts without one, for
//! its whole life, and the kernel writes nothing into it; the parent's is put back when the
//! call returns. A `CLONE_VM` child is started without one by the kernel itself.
//!
//! What a child loses: glibc's `sched_getcpu` reads the CPU number from the area, which in
//! the child stays the parent's last. None of this crate's children asks.

/// This thread's rseq registration, undone for the span of a call that creates a child (see
/// the module's documentation) and put back when dropped.
pub(crate) struct RseqPause {
    area: *mut libc::c_void,
    len: u32,
}

impl RseqPause {
    /// The signature glibc registers with (`RSEQ_SIG`): the kernel checks it before each
    /// abort handler, so each architecture picks an instruction that traps if it is ever run.
    #[cfg(target_arch = "x86_64")]
    const SIGNATURE: u32 = 0x5305_3053; // the operand of ud1 0x53053053(%rip), %edi
    #[cfg(target_arch = "aarch64")]
    const SIGNATURE: u32 = 0xd428_bc00; // brk #0x45e0
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    const SIGNATURE: u32 = 0; // never used: start() pauses nothing there
    const FLAG_UNREGISTER: libc::c_int = 1;

    /// Unregisters this thread's rseq area, if glibc registered one (x86-64 and aarch64).
    #[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu")))]
    pub(crate) fn start() -> Option<RseqPause> {
        None
    }

    /// Unregisters this thread's rseq area, if glibc registered one. glibc keeps it at a fixed
    /// offset from the thread pointer, and tells the offset and the size.
    #[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu"))]
    pub(crate) fn start() -> Option<RseqPause> {
        extern "C" {
            static __rseq_offset: isize;
            static __rseq_size: libc::c_uint;
        }
        // SAFETY: glibc (2.35+) defines both; they are written once, before main.
        let (offset, size) = unsafe { (__rseq_offset, __rseq_size) };
        if size == 0 {
            return None;
        }
        let area = (thread_pointer() as isize + offset) as *mut libc::c_void;
        // glibc registers 32 bytes (the original struct rseq) even where __rseq_size tells
        // the size of the features in use; the kernel wants the registered length back.
        for len in [size.max(32), size] {
            // SAFETY: unregistering our own thread's area; the kernel checks every argument.
            let r = unsafe {
                libc::syscall(libc::SYS_rseq, area, len, Self::FLAG_UNREGISTER, Self::SIGNATURE)
            };
            if r == 0 {
                return Some(RseqPause { area, len });
            }
        }
        None
    }
}

/// The calling thread's thread pointer: where glibc finds the thread's own data, its
/// thread-local variables and its rseq area. Each architecture keeps it in its own place:
/// - x86-64: the base of the `fs` segment. Reading a base takes a system call or a recent
///   instruction, so glibc stores the pointer itself at `fs:0` (the `self` word of its
///   thread control block), and one load reads it.
/// - aarch64: the system register `TPIDR_EL0`, which user space reads with `mrs`.
#[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
pub fn thread_pointer() -> usize {
    let pointer: usize;
    // SAFETY: a load from fs:0, which glibc (and a hand-built thread's block) sets to the
    // pointer itself; no effect besides the read.
    unsafe { std::arch::asm!("mov {}, fs:0", out(reg) pointer, options(nostack, readonly)) };
    pointer
}

/// The calling thread's thread pointer; see the x86-64 version beside it.
#[cfg(all(target_arch = "aarch64", target_env = "gnu"))]
pub fn thread_pointer() -> usize {
    let pointer: usize;
    // SAFETY: reading a register that user space may read; no memory is touched.
    unsafe { std::arch::asm!("mrs {}, tpidr_el0", out(reg) pointer, options(nomem, nostack)) };
    pointer
}

impl Drop for RseqPause {
    fn drop(&mut self) {
        // SAFETY: registering the same area, length and signature glibc used.
        unsafe { libc::syscall(libc::SYS_rseq, self.area, self.len, 0, Self::SIGNATURE) };
    }
}
