//! clone3_set_tid: choose a child's pid in every PID namespace it lives in.
//!
//! Usage: `cargo sudo-run --bin clone3_set_tid -- [--pid N]` (default: the first free pid
//! from 4242)
//!
//! clone3 with CLONE_NEWPID and `set_tid = [1, N]` asks for pid 1 in the child's new PID
//! namespace (the innermost comes first) and pid N in ours: what the old clone2 proposal
//! wanted, as checkpoint/restore tools need it. The child says "ready" through a pipe and
//! waits for "go"; meanwhile the parent reads `NSpid` in /proc/N/status, the child's pid in
//! each namespace from ours inward: `N 1`. Then it asks for a pid that is taken (its own) and
//! shows the kernel's EEXIST. Expect `NSpid: N 1`, `EEXIST`, exit status 0. Needs Linux 5.5
//! and CAP_SYS_ADMIN (root), or since 5.9 CAP_CHECKPOINT_RESTORE.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clone_cgroup::child_say;
use clone_cgroup::cli::{
    for_each_option, parse_number, unknown_option, Scenario, Summary, Verdict,
};
use clone_cgroup::clone3::{clone3_child, not_offered, CloneArgs, Flags};
use clone_cgroup::process::Outcome;
use clone_cgroup::procfs;
use clone_cgroup::say;
use clone_cgroup::sync::SignalWatch;
use clone_cgroup::Error;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::unistd::{geteuid, getpid, getppid, Pid};
use nix::unistd::{pipe2, read, write};

const SCENARIO: Scenario = Scenario {
    name: "clone3_set_tid",
    about: "clone3 with CLONE_NEWPID and set_tid: the child gets pid 1 in its new namespace and a\n\
            chosen pid in ours (NSpid shows both); a taken pid fails with EEXIST.",
    options: "      --pid N          the pid to ask for in this namespace [default: first free from 4242]\n",
};

/// How long either side waits for the other.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The first pid from `first` on that no process has (`/proc/N` does not exist).
fn free_pid_from(first: i32) -> Pid {
    Pid::from_raw((first..).find(|p| !Path::new(&format!("/proc/{p}")).exists()).unwrap_or(first))
}

fn run(args: &[String]) -> Result<Summary, Error> {
    let mut wanted = None;
    for_each_option(args, |name, opt| {
        match name {
            "--pid" => wanted = Some(parse_number(name, &opt.value()?, 2, 4_194_304)? as i32),
            other => return Err(unknown_option(other)),
        }
        Ok(())
    })?;
    if !geteuid().is_root() {
        return Err(Error::cannot_run("set_tid needs CAP_SYS_ADMIN: run it with sudo"));
    }
    let me = getpid();
    let watch = SignalWatch::install()?;

    // 1. A pid nobody has: /proc/N does not exist.
    let mut chosen = wanted.map_or_else(|| free_pid_from(4242), Pid::from_raw);
    say!("parent[{me}]: 1. asking for pid 1 in a new PID namespace and pid {chosen} in ours");

    // 2. clone3(CLONE_NEWPID, set_tid = [1, N]). The child says "ready" through one pipe and
    //    waits for "go" on another, so that it is still alive while we look at it.
    let handshake = ReadyGo::new()?;
    let body = || {
        // 3. The first process of its namespace: pid 1, its parent outside.
        child_say!("child[{}]: 3. getpid() = {}, getppid() = {}", getpid(), getpid(), getppid());
        let go = handshake.ready().and_then(|()| handshake.wait_go(Instant::now() + TIMEOUT));
        if matches!(go, Ok(true)) {
            0
        } else {
            1
        }
    };
    let mut attempts = 0;
    let mut child = loop {
        let args = CloneArgs::new(Signal::SIGCHLD)
            .pidfd()
            .flags(Flags::NEWPID)
            .set_tid(&[Pid::from_raw(1), chosen]);
        match clone3_child(&args, body) {
            Ok(child) => break child,
            Err(Error::Sys { errno, .. }) if not_offered(errno).is_some() => {
                return Err(Error::cannot_run(not_offered(errno).unwrap_or_default()))
            }
            // A process born since the look in /proc took the pid: look again, unless the
            // user chose it.
            Err(Error::Sys { errno: Errno::EEXIST, .. }) if wanted.is_none() && attempts < 10 => {
                attempts += 1;
                let next = free_pid_from(chosen.as_raw() + 1);
                say!(
                    "parent[{me}]: 2. pid {chosen} was taken meanwhile (EEXIST); asking for {next}"
                );
                chosen = next;
            }
            Err(Error::Sys { errno: Errno::EEXIST, .. }) => {
                return Err(Error::cannot_run(format!(
                    "pid {chosen} is taken; choose another with --pid"
                )))
            }
            Err(e) => return Err(e),
        }
    };
    let pid = child.pid();
    say!("parent[{me}]: 2. clone3 returned {pid}");

    // 4. Once the child is ready, read the kernel's own record: NSpid lists its pid in each
    //    namespace, ours first. Then let it go.
    if !handshake.wait_ready(Instant::now() + TIMEOUT)? {
        return Err(Error::Failed(format!("child {pid} never said ready within {TIMEOUT:?}")));
    }
    let levels = procfs::namespace_pids(pid).unwrap_or_default();
    let shown: Vec<String> = levels.iter().map(|p| p.to_string()).collect();
    say!("parent[{me}]: 4. /proc/{pid}/status NSpid: {}", shown.join(" "));
    handshake.go()?;

    // 5. Reap it through its pidfd.
    let ended = child.wait(&watch, TIMEOUT, |_| {})?;
    say!("parent[{me}]: 5. waitid(P_PIDFD): {:?}", ended.status);

    // 6. Ask for a pid that is taken: our own.
    let taken =
        CloneArgs::new(Signal::SIGCHLD).flags(Flags::NEWPID).set_tid(&[Pid::from_raw(1), me]);
    let eexist = match clone3_child(&taken, || 0) {
        Err(Error::Sys { errno: Errno::EEXIST, .. }) => {
            say!("parent[{me}]: 6. clone3(set_tid = [1, {me}]) failed: EEXIST: pid {me} is taken here (it is ours)");
            true
        }
        Err(e) => {
            say!("parent[{me}]: 6. clone3(set_tid = [1, {me}]) failed, but not with EEXIST: {e}");
            false
        }
        Ok(mut unexpected) => {
            let _ = unexpected.wait(&watch, TIMEOUT, |_| {});
            say!("parent[{me}]: 6. clone3(set_tid = [1, {me}]) succeeded, which it must not");
            false
        }
    };

    let holds = pid == chosen
        && levels == [chosen, Pid::from_raw(1)]
        && ended.outcome == Outcome::Exited(0)
        && eexist;
    Ok(Summary::new(SCENARIO.name, Verdict::of(holds))
        .field("chosen", chosen)
        .field("nspid", shown.join(","))
        .field("outcome", ended.outcome.token())
        .field("taken_pid_eexist", eexist))
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}

/// A ready/go handshake over two pipes, as the kernel's own `clone3_set_tid` selftest does it: the
/// child writes a byte to say "ready" and waits for one that says "go". Nothing is blocked and
/// no handler is needed, so it suits a child that is PID 1 of a new PID namespace too. Both
/// sides wait with `poll` and a deadline; nothing allocates, so the child may use it.
pub struct ReadyGo {
    ready: (OwnedFd, OwnedFd),
    go: (OwnedFd, OwnedFd),
}

impl ReadyGo {
    /// Two pipes, closed on exec. Make them before the child, which inherits them.
    pub fn new() -> Result<ReadyGo, Error> {
        let pipe = || pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe2", e));
        Ok(ReadyGo { ready: pipe()?, go: pipe()? })
    }

    /// The child: "ready".
    pub fn ready(&self) -> Result<(), Error> {
        write(&self.ready.1, b"r").map(drop).map_err(|e| Error::sys("write", e))
    }

    /// The parent: waits for "ready" until `deadline`; `false` if it did not come.
    pub fn wait_ready(&self, deadline: Instant) -> Result<bool, Error> {
        wait_byte(&self.ready.0, deadline)
    }

    /// The parent: "go".
    pub fn go(&self) -> Result<(), Error> {
        write(&self.go.1, b"g").map(drop).map_err(|e| Error::sys("write", e))
    }

    /// The child: waits for "go" until `deadline`; `false` if it did not come.
    pub fn wait_go(&self, deadline: Instant) -> Result<bool, Error> {
        wait_byte(&self.go.0, deadline)
    }
}

/// Waits until `deadline` for one byte on `fd` and takes it.
fn wait_byte(fd: &OwnedFd, deadline: Instant) -> Result<bool, Error> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX);
        match poll(&mut [PollFd::new(fd.as_fd(), PollFlags::POLLIN)], ms) {
            Ok(0) => return Ok(false),
            Ok(_) => {
                let n = read(fd, &mut [0u8; 1]).map_err(|e| Error::sys("read", e))?;
                return Ok(n == 1);
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("poll", e)),
        }
    }
}
