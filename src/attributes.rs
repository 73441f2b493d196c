//! What a process has besides its memory, which `fork` copies, `execve` keeps or resets, and
//! the clone flags share: signal dispositions, the alternate signal stack, the nice value, the
//! I/O priority, and the undo values of a System V semaphore. Each is one system call, read or
//! set for the calling process; the readers allocate nothing, so a child may ask.

use nix::errno::Errno;
use nix::sys::signal::{SigHandler, Signal};

use crate::Error;

/// What a process does with a signal: its disposition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// SIG_DFL: the default action.
    Default,
    /// SIG_IGN.
    Ignored,
    /// A handler of the program's.
    Caught,
}

/// The disposition of `signal` in this process, read with `sigaction` without changing it.
pub fn disposition(signal: Signal) -> Result<Disposition, Error> {
    // SAFETY: struct sigaction is plain data, and zeroed is a valid value to overwrite; with a
    // NULL new action, sigaction only reads the current one into `old`.
    let (r, old) = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        (libc::sigaction(signal as libc::c_int, std::ptr::null(), &mut old), old)
    };
    if r != 0 {
        return Err(Error::sys("sigaction", Errno::last()));
    }
    Ok(match old.sa_sigaction {
        libc::SIG_DFL => Disposition::Default,
        libc::SIG_IGN => Disposition::Ignored,
        _ => Disposition::Caught,
    })
}

/// Sets the disposition of `signal`: SIG_DFL, SIG_IGN, or a handler that does nothing (which
/// `execve` resets to the default, while an ignored signal stays ignored).
pub fn set_disposition(signal: Signal, disposition: Disposition) -> Result<(), Error> {
    extern "C" fn nothing(_: libc::c_int) {}
    let handler = match disposition {
        Disposition::Default => SigHandler::SigDfl,
        Disposition::Ignored => SigHandler::SigIgn,
        Disposition::Caught => SigHandler::Handler(nothing),
    };
    // SAFETY: the only handler installed does nothing at all, so it is safe in signal context.
    unsafe { nix::sys::signal::signal(signal, handler) }
        .map(drop)
        .map_err(|e| Error::sys("signal", e))
}

/// The alternate signal stack of the calling thread (`sigaltstack`): its address, if one is set.
pub fn alternate_stack() -> Result<Option<usize>, Error> {
    // SAFETY: stack_t is plain data, and zeroed is a valid value to overwrite; with a NULL
    // new stack, sigaltstack only reads the current one.
    let (r, current) = unsafe {
        let mut current: libc::stack_t = std::mem::zeroed();
        (libc::sigaltstack(std::ptr::null(), &mut current), current)
    };
    if r != 0 {
        return Err(Error::sys("sigaltstack", Errno::last()));
    }
    Ok((current.ss_flags & libc::SS_DISABLE == 0).then_some(current.ss_sp as usize))
}

/// A System V semaphore of our own (one, starting at 0), removed when dropped: what
/// `CLONE_SYSVSEM` is about. Its undo values (`SEM_UNDO`) are kept per process, or per group
/// of processes that share them, and applied when the last of the group ends.
pub struct SysvSemaphore {
    id: libc::c_int,
}

impl SysvSemaphore {
    /// `semget(IPC_PRIVATE, 1, 0600)`.
    pub fn new() -> Result<SysvSemaphore, Error> {
        // SAFETY: a plain system call with no pointers.
        match unsafe { libc::semget(libc::IPC_PRIVATE, 1, libc::IPC_CREAT | 0o600) } {
            -1 => Err(Error::sys("semget", Errno::last())),
            id => Ok(SysvSemaphore { id }),
        }
    }

    /// `semop(+1, SEM_UNDO)`: adds one, and an undo of -1 for when the caller's undo list
    /// goes.
    pub fn up_with_undo(&self) -> Result<(), Error> {
        let mut operation =
            libc::sembuf { sem_num: 0, sem_op: 1, sem_flg: libc::SEM_UNDO as libc::c_short };
        // SAFETY: one sembuf, alive for the call.
        match unsafe { libc::semop(self.id, &mut operation, 1) } {
            0 => Ok(()),
            _ => Err(Error::sys("semop", Errno::last())),
        }
    }

    /// Its value: `semctl(GETVAL)`.
    pub fn value(&self) -> Result<i32, Error> {
        // SAFETY: GETVAL takes no fourth argument.
        match unsafe { libc::semctl(self.id, 0, libc::GETVAL) } {
            -1 => Err(Error::sys("semctl(GETVAL)", Errno::last())),
            value => Ok(value),
        }
    }
}

impl Drop for SysvSemaphore {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID takes no fourth argument.
        unsafe { libc::semctl(self.id, 0, libc::IPC_RMID) };
    }
}

/// `setpriority(PRIO_PROCESS, 0, nice)`: the calling process's nice value.
pub fn set_nice(nice: i32) -> Result<(), Error> {
    // SAFETY: a plain system call on the calling process, with no pointers.
    match unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } {
        0 => Ok(()),
        _ => Err(Error::sys("setpriority", Errno::last())),
    }
}

/// The calling process's I/O priority, `ioprio_get(IOPRIO_WHO_PROCESS, 0)`: class << 13 | data.
/// It lives in the I/O context that `CLONE_IO` shares.
pub fn io_priority() -> Result<i32, Error> {
    // SAFETY: a plain system call with no pointers.
    match unsafe { libc::syscall(libc::SYS_ioprio_get, 1, 0) } {
        -1 => Err(Error::sys("ioprio_get", Errno::last())),
        value => Ok(value as i32),
    }
}

/// Sets the calling process's I/O priority to best effort, level `level` (0 to 7): the call
/// creates the process's I/O context if it has none.
pub fn set_io_priority(level: i32) -> Result<(), Error> {
    const BEST_EFFORT: i32 = 2 << 13;
    // SAFETY: a plain system call with no pointers.
    match unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, BEST_EFFORT | level) } {
        0 => Ok(()),
        _ => Err(Error::sys("ioprio_set", Errno::last())),
    }
}

/// `CAP_CHECKPOINT_RESTORE` (5.9): enough, without `CAP_SYS_ADMIN`, to choose a child's pid
/// with `clone3`'s `set_tid`.
pub const CAP_CHECKPOINT_RESTORE: u32 = 40;

/// Becomes `uid` and `gid` (from root), keeping the capability `capability` alone, as
/// `clone3_cap_checkpoint_restore.c` does: `prctl(PR_SET_KEEPCAPS)` so that `setuid` keeps the
/// permitted set (it clears the effective one), `setgid`, `setuid`, then `capset` with
/// `capability` alone, permitted and effective. Allocates nothing: a child calls it.
pub fn become_keeping(uid: u32, gid: u32, capability: u32) -> Result<(), Error> {
    /// `struct __user_cap_header_struct`, `_LINUX_CAPABILITY_VERSION_3`: two words of each set.
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    nix::sys::prctl::set_keepcaps(true).map_err(|e| Error::sys("prctl(PR_SET_KEEPCAPS)", e))?;
    nix::unistd::setgid(nix::unistd::Gid::from_raw(gid)).map_err(|e| Error::sys("setgid", e))?;
    nix::unistd::setuid(nix::unistd::Uid::from_raw(uid)).map_err(|e| Error::sys("setuid", e))?;
    let header = Header { version: 0x2008_0522, pid: 0 };
    let mut data = [Data { effective: 0, permitted: 0, inheritable: 0 }; 2];
    let (word, bit) = ((capability / 32) as usize, 1 << (capability % 32));
    data[word].effective = bit;
    data[word].permitted = bit;
    // SAFETY: a header and two data words, as capset(2) reads them for version 3; nothing is
    // written back.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
        return Err(Error::sys("capset", Errno::last()));
    }
    Ok(())
}
