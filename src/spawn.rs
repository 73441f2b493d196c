//! Ways to create a process, prepared once so that creating one costs only the system calls:
//! what `spawn_bench` measures.
//!
//! Everything a child needs (its stack, the program to exec and its argument vector) is set
//! up in [`Spawner::new`]; [`Spawner::spawn_and_reap`] then allocates nothing and formats
//! nothing: it creates the child, which exits (or execs a program that exits) at once, and
//! reaps it.

use std::ffi::CString;
use std::fmt;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::clone3::{clone3_child_on_stack, CloneArgs};
use crate::process::{clone_child_unchecked, require_single_thread, ChildStack};
use crate::Error;

/// The flags of the fast `clone` in The Linux Programming Interface's table 28-3: share memory,
/// filesystem data, signal handlers and descriptors, and suspend the parent until the child
/// exits or execs.
pub const TLPI_CLONE_FLAGS: CloneFlags = CloneFlags::CLONE_VM
    .union(CloneFlags::CLONE_VFORK)
    .union(CloneFlags::CLONE_FS)
    .union(CloneFlags::CLONE_SIGHAND)
    .union(CloneFlags::CLONE_FILES);

/// A way to create a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `fork()`: copy the page tables (copy-on-write), so its cost grows with the parent.
    Fork,
    /// `clone(CLONE_VM | CLONE_VFORK)`: what `vfork()` does, on a stack of the child's own
    /// (calling `vfork()` itself is not sound in Rust: the child would run on our frames).
    Vfork,
    /// `clone()` with [`TLPI_CLONE_FLAGS`].
    Clone,
    /// `clone3()` with the same flags.
    Clone3,
    /// `fork()`, then `execve()` of a small program in the child.
    ForkExec,
    /// `clone(CLONE_VM | CLONE_VFORK)`, then `execve()`.
    VforkExec,
    /// `posix_spawn()` of the small program (glibc builds it on `clone(CLONE_VM | CLONE_VFORK)`).
    PosixSpawn,
}

impl Method {
    /// All methods, in the order of the table.
    pub const ALL: [Method; 7] = [
        Method::Fork,
        Method::Vfork,
        Method::Clone,
        Method::Clone3,
        Method::ForkExec,
        Method::VforkExec,
        Method::PosixSpawn,
    ];

    /// Whether the child runs another program.
    pub fn execs(&self) -> bool {
        matches!(
            self,
            Method::ForkExec | Method::VforkExec | Method::PosixSpawn
        )
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Fork => "fork",
            Method::Vfork => "vfork",
            Method::Clone => "clone",
            Method::Clone3 => "clone3",
            Method::ForkExec => "fork+exec",
            Method::VforkExec => "vfork+exec",
            Method::PosixSpawn => "posix_spawn",
        })
    }
}

/// One method, ready to create children again and again.
pub struct Spawner {
    method: Method,
    stack: ChildStack,
    program: CString,
    argv: [*const libc::c_char; 2],
    envp: [*const libc::c_char; 1],
}

impl Spawner {
    /// Prepares `method`; `program` is what the exec methods run (it should exit at once,
    /// like `/bin/true`). Fails if this process has more than one thread.
    pub fn new(method: Method, program: &str) -> Result<Spawner, Error> {
        require_single_thread("spawn")?;
        let program = CString::new(program)
            .map_err(|_| Error::Usage("a program path with a NUL byte".into()))?;
        let mut spawner = Spawner {
            method,
            stack: ChildStack::new(64 << 10)?,
            program,
            argv: [std::ptr::null(); 2],
            envp: [std::ptr::null()],
        };
        spawner.argv[0] = spawner.program.as_ptr();
        Ok(spawner)
    }

    /// Creates one child, which exits at once with status 0, and reaps it.
    pub fn spawn_and_reap(&mut self) -> Result<(), Error> {
        let pid = match self.method {
            Method::Fork | Method::ForkExec => self.fork()?,
            Method::Vfork | Method::VforkExec => {
                self.clone_on_stack(CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK)?
            }
            Method::Clone => self.clone_on_stack(TLPI_CLONE_FLAGS)?,
            Method::Clone3 => {
                let args = CloneArgs::new(Signal::SIGCHLD).with_flags(TLPI_CLONE_FLAGS);
                let mut exit_now = || 0;
                // SAFETY: single-threaded (checked in new); CLONE_VFORK suspends us until the
                // child has exited, so the closure and the stack outlive it.
                unsafe { clone3_child_on_stack(&args, self.stack.area(), &mut exit_now)? }
                    .into_pid()
            }
            Method::PosixSpawn => {
                let mut pid: libc::pid_t = 0;
                // SAFETY: program, argv and envp are NUL-terminated and live in self; no file
                // actions or attributes.
                let r = unsafe {
                    libc::posix_spawn(
                        &mut pid,
                        self.program.as_ptr(),
                        std::ptr::null(),
                        std::ptr::null(),
                        self.argv.as_ptr() as *const *mut libc::c_char,
                        self.envp.as_ptr() as *const *mut libc::c_char,
                    )
                };
                if r != 0 {
                    return Err(Error::sys("posix_spawn", Errno::from_raw(r)));
                }
                Pid::from_raw(pid)
            }
        };
        match waitpid(pid, None) {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::sys("waitpid", e)),
        }
    }

    fn exec_or_exit(
        program: *const libc::c_char,
        argv: *const *const libc::c_char,
        envp: *const *const libc::c_char,
        execs: bool,
    ) -> i32 {
        if execs {
            // SAFETY: pointers to NUL-terminated data that outlives the child (see callers).
            unsafe { libc::execve(program, argv, envp) };
            return 127;
        }
        0
    }

    fn fork(&mut self) -> Result<Pid, Error> {
        let (program, argv, envp, execs) = (
            self.program.as_ptr(),
            self.argv.as_ptr(),
            self.envp.as_ptr(),
            self.method.execs(),
        );
        // SAFETY: single-threaded (checked in new); the child only execs or _exits, both
        // async-signal-safe, with data prepared before the fork.
        match unsafe { libc::fork() } {
            -1 => Err(Error::sys("fork", Errno::last())),
            0 => unsafe { libc::_exit(Spawner::exec_or_exit(program, argv, envp, execs)) },
            pid => Ok(Pid::from_raw(pid)),
        }
    }

    fn clone_on_stack(&mut self, flags: CloneFlags) -> Result<Pid, Error> {
        let (program, argv, envp, execs) = (
            self.program.as_ptr(),
            self.argv.as_ptr(),
            self.envp.as_ptr(),
            self.method.execs(),
        );
        let mut child = || Spawner::exec_or_exit(program, argv, envp, execs);
        // SAFETY: single-threaded (checked in new), and every flag set includes CLONE_VFORK:
        // we are suspended until the child has exited or exec'd, so the closure and the stack
        // outlive its use of them.
        unsafe { clone_child_unchecked(&mut child, &mut self.stack, flags, Signal::SIGCHLD) }
    }
}
