//! What the kernel tells a waiting parent, undecoded: `waitpid`'s status word and `waitid`'s
//! `siginfo_t` (`si_code`, `si_status`), for the lesson that shows every state change
//! (`wait_statuses`). nix decodes both into a `WaitStatus`; these keep the raw values. Also
//! `SA_NOCLDWAIT`, which nix's `signal` cannot set.

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitPidFlag;
use nix::unistd::Pid;

use crate::Error;

/// `waitpid(pid, &status, flags)`: the pid it reports on (0 under WNOHANG with nothing to
/// report) and the raw status word, or the errno. Allocates nothing.
pub fn waitpid_raw(pid: Pid, flags: WaitPidFlag) -> Result<(Pid, i32), Errno> {
    let mut status: libc::c_int = 0;
    // SAFETY: status is a valid int for the kernel to write.
    let r = unsafe { libc::waitpid(pid.as_raw(), &mut status, flags.bits()) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok((Pid::from_raw(r), status))
}

/// What `waitid` reports of a child: `si_code` (CLD_EXITED, CLD_KILLED, CLD_DUMPED,
/// CLD_STOPPED, CLD_CONTINUED) and `si_status` (the exit status, or the signal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildInfo {
    /// `si_code`.
    pub code: i32,
    /// `si_status`.
    pub status: i32,
}

impl ChildInfo {
    /// `si_code` by its name.
    pub fn code_name(&self) -> &'static str {
        match self.code {
            libc::CLD_EXITED => "CLD_EXITED",
            libc::CLD_KILLED => "CLD_KILLED",
            libc::CLD_DUMPED => "CLD_DUMPED",
            libc::CLD_STOPPED => "CLD_STOPPED",
            libc::CLD_CONTINUED => "CLD_CONTINUED",
            libc::CLD_TRAPPED => "CLD_TRAPPED",
            _ => "?",
        }
    }
}

/// `waitid(P_PID, pid, &info, flags)`: what it says of the child, `None` under WNOHANG with
/// nothing to report, or the errno.
pub fn waitid_info(pid: Pid, flags: WaitPidFlag) -> Result<Option<ChildInfo>, Errno> {
    // SAFETY: siginfo_t is plain data; zeroed is valid, and si_pid stays 0 if nothing is
    // reported (as waitid(2) says to check).
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: info is a valid siginfo_t for the kernel to fill.
    let r =
        unsafe { libc::waitid(libc::P_PID, pid.as_raw() as libc::id_t, &mut info, flags.bits()) };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: for SIGCHLD information the kernel filled si_pid and si_status.
    let (reported, status) = unsafe { (info.si_pid(), info.si_status()) };
    Ok((reported != 0).then_some(ChildInfo { code: info.si_code, status }))
}

/// SIGCHLD's disposition as the kernel reads it at a child's end: SIG_DFL or SIG_IGN, with or
/// without `SA_NOCLDWAIT`. With SIG_IGN, or with `SA_NOCLDWAIT`, the kernel reaps ended
/// children itself and a wait for them fails with ECHILD.
pub fn set_sigchld(ignored: bool, no_child_wait: bool) -> Result<(), Error> {
    // SAFETY: sigaction is plain data; zeroed is a valid value, filled in before use.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = if ignored { libc::SIG_IGN } else { libc::SIG_DFL };
    action.sa_flags = if no_child_wait { libc::SA_NOCLDWAIT } else { 0 };
    // SAFETY: installs no handler of ours, only SIG_DFL or SIG_IGN; old action not wanted.
    let r =
        unsafe { libc::sigaction(Signal::SIGCHLD as libc::c_int, &action, std::ptr::null_mut()) };
    if r != 0 {
        return Err(Error::sys("sigaction(SIGCHLD)", Errno::last()));
    }
    Ok(())
}
