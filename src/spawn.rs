//! Process creation prepared in advance, so that a child only makes system calls: an `execve`
//! whose arguments are ready ([`PreparedExec`]), and the seven ways `spawn_bench` times.
//!
//! Everything a child needs (its stack, the program to exec and its argument vector) is set
//! up in [`Spawner::new`]; [`Spawner::spawn_and_reap`] then allocates nothing and formats
//! nothing: it creates the child, which exits (or execs a program that exits) at once, and
//! reaps it.

use std::ffi::CString;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::clone3::{clone3_child_on_stack, CloneArgs};
use crate::memory::ChildStack;
use crate::process::{clone_child_unchecked, fork_child, require_single_thread};
use crate::Error;

/// How a [`Spawner`] creates its children.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// `fork()`: page tables copied (copy-on-write), so it costs more as the parent grows.
    Fork,
    /// `clone()` with these flags, on a stack of the child's own; with `CLONE_VM` they must
    /// include `CLONE_VFORK` (that is what `vfork()` does, and calling `vfork()` itself is
    /// not sound in Rust: the child would run on our frames).
    Clone(CloneFlags),
    /// `clone3()` with these flags, on a stack of the child's own (the same rule).
    Clone3(CloneFlags),
    /// `posix_spawn()` of the program (glibc builds it on `clone(CLONE_VM | CLONE_VFORK)`).
    PosixSpawn,
}

/// An `execve` of a program with its arguments and an empty environment, built before the
/// child exists, so that the child's exec allocates nothing (nix's `execv` builds its argument
/// vector on the heap).
pub struct PreparedExec {
    program: CString,
    _args: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: [*const libc::c_char; 1],
}

impl PreparedExec {
    /// Prepares the exec of `program` with `args` (its `argv[0]` is `program`).
    pub fn new(program: &str, args: &[&str]) -> Result<PreparedExec, Error> {
        let c_string = |text: &str| {
            CString::new(text).map_err(|_| Error::Usage(format!("{text:?}: a NUL byte")))
        };
        let program = c_string(program)?;
        let args = args.iter().map(|a| c_string(a)).collect::<Result<Vec<_>, _>>()?;
        // The pointers point into the CStrings' own heap buffers, which do not move.
        let mut argv: Vec<*const libc::c_char> = vec![program.as_ptr()];
        argv.extend(args.iter().map(|a| a.as_ptr()));
        argv.push(std::ptr::null());
        Ok(PreparedExec { program, _args: args, argv, envp: [std::ptr::null()] })
    }

    /// `execve(2)`: replaces the calling process's program; returns only on failure, with the
    /// error. Allocates nothing.
    pub fn exec(&self) -> Errno {
        // SAFETY: program, argv and envp are NUL-terminated and live as long as self.
        unsafe { libc::execve(self.program.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr()) };
        Errno::last()
    }
}

/// One way to create a process, ready to create children again and again.
pub struct Spawner {
    how: How,
    execs: bool,
    stack: ChildStack,
    exec: PreparedExec,
}

impl Spawner {
    /// Prepares `how`; each child then execs `program` (it should exit at once, like
    /// `/bin/true`) if `execs`, or exits 0. Fails if this process has more than one thread,
    /// or if `how` shares memory without `CLONE_VFORK`.
    pub fn new(how: How, execs: bool, program: &str) -> Result<Spawner, Error> {
        require_single_thread("spawn")?;
        if let How::Clone(flags) | How::Clone3(flags) = how {
            if flags.contains(CloneFlags::CLONE_VM) && !flags.contains(CloneFlags::CLONE_VFORK) {
                return Err(Error::Failed(format!(
                    "Spawner refuses {flags:?} without CLONE_VFORK"
                )));
            }
        }
        let (stack, exec) = (ChildStack::new(64 << 10)?, PreparedExec::new(program, &[])?);
        Ok(Spawner { how, execs: execs || how == How::PosixSpawn, stack, exec })
    }

    /// Creates one child, which execs the program or exits at once, and reaps it.
    pub fn spawn_and_reap(&mut self) -> Result<(), Error> {
        // The child only execs or ends, with data prepared before, through end_child_with.
        let mut child = child_body(&self.exec, self.execs);
        let mut started = match self.how {
            How::Fork => fork_child(child)?,
            // SAFETY: single-threaded, and flags with CLONE_VM include CLONE_VFORK (both
            // checked in new): we are suspended until the child has exited or exec'd, so the
            // closure and the stack outlive its use of them.
            How::Clone(flags) => unsafe {
                clone_child_unchecked(&mut child, &mut self.stack, flags, Signal::SIGCHLD)?
            },
            How::Clone3(flags) => {
                let args = CloneArgs::new(Signal::SIGCHLD).flags(flags);
                // SAFETY: as for clone, just above.
                unsafe { clone3_child_on_stack(&args, self.stack.area(), &mut child)? }
            }
            How::PosixSpawn => {
                let mut pid: libc::pid_t = 0;
                let exec = &self.exec;
                // SAFETY: program, argv and envp are NUL-terminated and live in self; no file
                // actions or attributes.
                let r = unsafe {
                    libc::posix_spawn(
                        &mut pid,
                        exec.program.as_ptr(),
                        std::ptr::null(),
                        std::ptr::null(),
                        exec.argv.as_ptr() as *const *mut libc::c_char,
                        exec.envp.as_ptr() as *const *mut libc::c_char,
                    )
                };
                if r != 0 {
                    return Err(Error::sys("posix_spawn", Errno::from_raw(r)));
                }
                return waitpid(Pid::from_raw(pid), None)
                    .map(drop)
                    .map_err(|e| Error::sys("waitpid", e));
            }
        };
        started.reap().map(drop)
    }
}

/// What every child here does: exec the program (status 127 if that fails), or exit 0.
fn child_body(exec: &PreparedExec, execs: bool) -> impl FnMut() -> i32 + '_ {
    move || {
        if execs {
            exec.exec();
            return 127;
        }
        0
    }
}
