//! clone_waitpid: `clone()` with new namespaces; the child is PID 1 of its own PID namespace
//! and renames its own host, and the parent's hostname does not change.
//!
//! Usage: `cargo run --bin clone_waitpid` (as root, or as a user where unprivileged user
//! namespaces are allowed: then a new user namespace is added and gives the child its
//! privileges).
//!
//! Flags: CLONE_NEWUTS (hostname), CLONE_NEWPID (pids), CLONE_NEWNS (mounts), CLONE_NEWIPC
//! (System V IPC, POSIX queues), CLONE_NEWNET (network), plus CLONE_NEWUSER when not root. The
//! child prints `getpid() = 1` and `getppid() = 0` (its parent lives outside its PID
//! namespace), sets the hostname to `clone-child` and reads it back. The parent prints its
//! hostname before and after: unchanged. Then `waitpid: Exited(Pid(N), 0)`, exit status 0.
//! Where user namespaces are restricted, exit status 2 and the sysctl to look at.

use std::process::ExitCode;
use std::time::Duration;

use clone_cgroup::child_say;
use clone_cgroup::cli::{no_options, Scenario, Summary, Verdict};
use clone_cgroup::memory::ChildStack;
use clone_cgroup::process::{clone_child, describe_status, Outcome};
use clone_cgroup::say;
use clone_cgroup::sync::SignalWatch;
use clone_cgroup::Error;
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::utsname::uname;
use nix::unistd::{geteuid, gethostname, getpid, getppid, sethostname};

const SCENARIO: Scenario = Scenario {
    name: "clone_waitpid",
    about: "clone() with new UTS, PID, mount, IPC and network namespaces (and a user namespace\n\
            when not root): the child is PID 1 and renames its host; the parent's is unchanged.",
    options: "",
};

const CHILD_HOSTNAME: &str = "clone-child";
/// The child's exit status when its namespace gives it no privilege: BSD's EX_NOPERM.
const CHILD_NO_PERMISSION: i32 = 77;

const RESTRICTED_USERNS: &str = "unprivileged user namespaces are restricted here \
    (kernel.apparmor_restrict_unprivileged_userns=1, kernel.unprivileged_userns_clone=0 or \
    user.max_user_namespaces=0): run it with sudo, or relax that sysctl";

fn hostname() -> Result<String, Error> {
    let name = gethostname().map_err(|e| Error::sys("gethostname", e))?;
    Ok(name.to_string_lossy().into_owned())
}

fn run(args: &[String]) -> Result<Summary, Error> {
    no_options(args)?;
    let me = getpid();
    // 1. The hostname lives in the UTS namespace, which we share with the rest of the system.
    let before = hostname()?;
    say!("parent[{me}]: 1. my hostname is {before:?}");

    // 2. One new namespace per flag. Without root, CLONE_NEWUSER makes the child root of a new
    //    user namespace first, which is what allows the other five.
    let mut flags = CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET;
    if !geteuid().is_root() {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    let watch = SignalWatch::install()?;
    let mut stack = ChildStack::new(64 << 10)?;
    let mut body = || {
        // 3. The first process of a new PID namespace is its pid 1, and its parent is outside.
        let (pid, ppid) = (getpid(), getppid());
        child_say!(
            "child[{pid}]: 3. getpid() = {pid}, getppid() = {ppid}: PID 1 of a new PID namespace"
        );
        // 4. Our own UTS namespace: renaming the host here renames it for us alone.
        if let Err(e) = sethostname(CHILD_HOSTNAME) {
            child_say!("child[{pid}]: sethostname failed: {e}");
            return if e == Errno::EPERM { CHILD_NO_PERMISSION } else { 1 };
        }
        let uts = uname();
        let now = uts.as_ref().map(|u| u.nodename().to_str().unwrap_or("?")).unwrap_or("?");
        child_say!("child[{pid}]: 4. sethostname({CHILD_HOSTNAME:?}); uname() now says {now:?}");
        if pid.as_raw() == 1 && now == CHILD_HOSTNAME {
            0
        } else {
            1
        }
    };
    let mut child = match clone_child(&mut body, &mut stack, flags, Signal::SIGCHLD) {
        Ok(child) => child,
        Err(Error::Sys { errno: Errno::EPERM | Errno::ENOSPC | Errno::EUSERS, .. })
            if flags.contains(CloneFlags::CLONE_NEWUSER) =>
        {
            return Err(Error::cannot_run(RESTRICTED_USERNS));
        }
        Err(Error::Sys { errno: Errno::EPERM, .. }) => {
            return Err(Error::cannot_run(
                "clone with new namespaces needs CAP_SYS_ADMIN: run it with sudo",
            ));
        }
        Err(e) => return Err(e),
    };
    let pid = child.pid();
    say!("parent[{me}]: 2. clone({flags:?}) returned child {pid}");

    // 5. Bounded wait: the child ends at once, so 10 s means something went wrong.
    let timeout = Duration::from_secs(10);
    let ended = child.wait(&watch, timeout, |_| {})?;
    say!("parent[{me}]: 5. waitpid: {:?}", ended.status);
    say!("parent[{me}]:    {}", describe_status(ended.status));
    if ended.outcome == Outcome::Exited(CHILD_NO_PERMISSION) {
        return Err(Error::cannot_run(RESTRICTED_USERNS));
    }

    // 6. The parent's own UTS namespace was never touched.
    let after = hostname()?;
    say!("parent[{me}]: 6. my hostname is still {after:?}");

    let verdict = if ended.outcome == Outcome::Exited(0) && after == before {
        Verdict::AsClaimed
    } else {
        Verdict::NotAsClaimed
    };
    Ok(Summary::new(SCENARIO.name, verdict)
        .field("claim", "exited:0")
        .field("outcome", ended.outcome.token())
        .field("hostname_unchanged", after == before))
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}
