//! cgroup_pids_max: a cgroup with pids.max = N; a child inside it forks until fork fails.
//!
//! Usage: `cargo sudo-run --bin cgroup_pids_max -- [--max N]` (default 4)
//!
//! clone3 starts a "manager" child directly inside a new cgroup whose pids.max is N. The
//! manager forks children that wait, one after another, until fork fails with EAGAIN: the
//! pids controller refuses the (N+1)th task. The manager then signals the parent, which reads
//! pids.current (N) and cgroup.procs (N pids) while all of them still exist, and tells the
//! manager to end them. The manager's exit status is the number of tasks it saw at the peak.
//! Expect `fork #N failed: EAGAIN`, `pids.current = N`, `pids.events: max 1`, exit status 0.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clone_cgroup::cgroup;
use clone_cgroup::child_say;
use clone_cgroup::cli::{
    for_each_option, parse_number, unknown_option, Scenario, Summary, Verdict,
};
use clone_cgroup::clone3::{clone3_child, CloneArgs};
use clone_cgroup::process::{die_with_parent, fork_child, Child, Outcome, Waited};
use clone_cgroup::say;
use clone_cgroup::sync::{self, SignalWatch, CHILD_TO_PARENT, PARENT_TO_CHILD};
use clone_cgroup::Error;
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::{getpid, Pid};

const SCENARIO: Scenario = Scenario {
    name: "cgroup_pids_max",
    about: "A cgroup with pids.max=N; a child inside it forks until fork fails with EAGAIN:\n\
            exactly N tasks exist at the peak, and pids.events counts the refusal.",
    options: "      --max N          pids.max of the cgroup, 1 to 64 [default: 4]
      --timeout SECS   bound on every wait [default: 30]
      --parent DIR     create the cgroup under this cgroup v2 directory
",
};

/// The manager's exit status when fork failed with something other than EAGAIN.
const UNEXPECTED_FORK_ERROR: i32 = 99;

/// The largest `--max`: the manager's list of children is allocated for this many.
const MAX_TASKS: usize = 64;

/// The manager's side of the story (steps 3 and 5), under the rule for child code: it forks
/// until the kernel says no, tells `parent`, and when told ends its children. `children` was
/// allocated by the parent with room for [`MAX_TASKS`]; the manager stops before a push
/// would allocate. Its exit status is the number of tasks it saw in the cgroup.
fn manager(parent: Pid, mut children: Vec<Child>, deadline: Instant) -> i32 {
    die_with_parent(parent);
    let me = getpid();
    // 3. Fork until the kernel says no. Each child just waits to be killed.
    let mut failure = None;
    while failure.is_none() && children.len() < children.capacity() {
        let forked = fork_child(|| {
            die_with_parent(me);
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            0
        });
        match forked {
            Ok(child) => {
                let pid = child.pid();
                children.push(child);
                child_say!(
                    "manager[{me}]: 3. fork #{} -> {pid}; tasks in the cgroup: {}",
                    children.len(),
                    children.len() + 1
                );
            }
            Err(Error::Sys { errno, .. }) => failure = Some(errno),
            Err(other) => {
                child_say!("manager[{me}]: 3. fork_child refused to fork: {other}");
                return UNEXPECTED_FORK_ERROR;
            }
        }
    }
    let Some(failure) = failure else {
        child_say!("manager[{me}]: 3. {} forks and no refusal; giving up", children.len());
        return UNEXPECTED_FORK_ERROR;
    };
    child_say!(
        "manager[{me}]: 3. fork #{} failed: {failure:?} ({}); SIGUSR2 to {parent}: full",
        children.len() + 1,
        failure.desc()
    );
    // 5. Hold everyone until the parent has counted, then end them.
    let _ = sync::send(parent, CHILD_TO_PARENT);
    sync::wait_for(PARENT_TO_CHILD, deadline.saturating_duration_since(Instant::now()));
    child_say!("manager[{me}]: 5. told to go on: killing its {} children", children.len());
    let tasks = children.len() as i32 + 1;
    // Each Child dropped is killed and reaped; clear() keeps the buffer, so nothing is freed.
    children.clear();
    if failure == Errno::EAGAIN {
        tasks
    } else {
        UNEXPECTED_FORK_ERROR
    }
}

fn run(args: &[String]) -> Result<Summary, Error> {
    let (mut max, mut timeout, mut parent) = (4, Duration::from_secs(30), None::<PathBuf>);
    for_each_option(args, |name, opt| {
        match name {
            "--max" => max = parse_number(name, &opt.value()?, 1, MAX_TASKS as u64)? as usize,
            "--timeout" => {
                timeout = Duration::from_secs(parse_number(name, &opt.value()?, 1, 3600)?)
            }
            "--parent" => parent = Some(PathBuf::from(opt.value()?)),
            other => return Err(unknown_option(other)),
        }
        Ok(())
    })?;
    let me = getpid();

    // 1. A cgroup with the pids controller and pids.max = N.
    let watch = SignalWatch::install()?;
    let (cgroup, notes) = cgroup::prepare("pids-max", "pids", parent.as_deref(), None)?;
    for note in notes {
        say!("parent[{me}]: 1. {note}");
    }
    cgroup.write("pids.max", &max.to_string())?;
    say!("parent[{me}]: 1. pids.max = {}", cgroup.read("pids.max")?.trim());

    // 2. The manager is born inside the cgroup (clone3 with CLONE_INTO_CGROUP): it is task 1
    //    of N. Its list of children is allocated here, before it exists: a child allocates
    //    nothing.
    let dir = cgroup.open_path()?;
    let deadline = Instant::now() + timeout;
    let children = Vec::with_capacity(MAX_TASKS);
    let manager = move || manager(me, children, deadline);
    let args = CloneArgs::new(Signal::SIGCHLD).pidfd().into_cgroup(&dir);
    let mut child = clone3_child(&args, manager)?;
    let pid = child.pid();
    say!("parent[{me}]: 2. clone3(CLONE_INTO_CGROUP | CLONE_PIDFD) returned manager {pid}");

    // 4. At the peak: count the tasks as the kernel sees them, then let the manager go on.
    let mut counted = None;
    if child.wait_for_signal(&watch, CHILD_TO_PARENT, timeout)? == Waited::SignalCame {
        let current = cgroup.read_counter("pids.current")? as usize;
        let procs = cgroup.processes()?;
        say!(
            "parent[{me}]: 4. got SIGUSR2: pids.current = {current}; cgroup.procs lists {} \
             pids: {procs:?}",
            procs.len()
        );
        sync::send(pid, PARENT_TO_CHILD)?;
        counted = Some((current, procs.len()));
    } else {
        say!("parent[{me}]: 4. the manager never reported a full cgroup");
    }

    // 6. The manager's end, and the kernel's count of refused forks.
    let ended = child.wait(&watch, timeout, |_| {})?;
    say!("parent[{me}]: 6. waitid(P_PIDFD): {:?}", ended.status);
    let events = cgroup.read("pids.events")?;
    let refused = cgroup.read_keyed("pids.events", "max")?.unwrap_or(0);
    say!("parent[{me}]: 6. pids.events: {}", events.trim().replace('\n', ", "));

    // 7. Remove the cgroup: every process in it has been reaped, so rmdir finds it empty.
    if let Some(path) = cgroup.remove()? {
        say!("parent[{me}]: 7. removed {}", path.display());
    }

    let peak_reported = match ended.outcome {
        Outcome::Exited(code) => code as usize,
        Outcome::Killed { .. } => 0,
    };
    let holds = counted == Some((max, max)) && peak_reported == max && refused >= 1;
    if !holds {
        say!(
            "parent[{me}]: NOT AS CLAIMED: expected {max} tasks at the peak, a manager that \
             saw EAGAIN, and pids.events max >= 1"
        );
    }
    Ok(Summary::new(SCENARIO.name, Verdict::of(holds))
        .field("pids_max", max)
        .field("peak", counted.map_or(0, |c| c.0))
        .field("manager_outcome", ended.outcome.token())
        .field("events_max", refused))
}

fn main() -> ExitCode {
    SCENARIO.main(run)
}
