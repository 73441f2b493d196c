//! Step 3, the namespaces: a child made with a `CLONE_NEW*` flag, and one made without it,
//! compare the inode of their `/proc/self/ns/` link with ours. A new namespace has a new
//! inode. The rows are data: the flag and the name of its link.

use clone_cgroup::clone3::{CloneArgs, Flags};
use clone_cgroup::process::Outcome;
use clone_cgroup::Error;
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::stat::stat;

use super::{try_child, Row, Seen, Tried};

/// Each namespace flag, its C name, and its link under `/proc/self/ns/`.
static NAMESPACES: [(Flags, &str, &str); 8] = [
    (Flags::NEWNS, "CLONE_NEWNS", "mnt"),
    (Flags::NEWUTS, "CLONE_NEWUTS", "uts"),
    (Flags::NEWIPC, "CLONE_NEWIPC", "ipc"),
    (Flags::NEWNET, "CLONE_NEWNET", "net"),
    (Flags::NEWPID, "CLONE_NEWPID", "pid"),
    (Flags::NEWCGROUP, "CLONE_NEWCGROUP", "cgroup"),
    (Flags::NEWUSER, "CLONE_NEWUSER", "user"),
    (Flags::NEWTIME, "CLONE_NEWTIME", "time"),
];

pub fn rows() -> Vec<Row> {
    NAMESPACES
        .iter()
        .map(|&(flag, name, link)| Row {
            flag: name,
            shown_by: "the child's /proc/self/ns/ inode against ours",
            expect_with: "new",
            expect_without: "ours",
            show: Box::new(move |_| namespace(flag, link)),
        })
        .collect()
}

/// The namespace `name` of a child cloned with `flag`, then without it, against ours.
fn namespace(flag: Flags, name: &str) -> Result<Seen, Error> {
    let link = format!("/proc/self/ns/{name}");
    let ours = match stat(link.as_str()) {
        Ok(st) => st.st_ino,
        Err(e) => return Ok(Seen::NotShown(format!("{link}: {e} (no such namespace here)"))),
    };
    Ok(match namespace_seen(flag, &link, ours)? {
        Tried::Shown(with) => match namespace_seen(Flags::NONE, &link, ours)? {
            Tried::Shown(without) => Seen::Both(with, without),
            Tried::Refused(errno) => Seen::NotShown(format!("clone3 without it: {errno}")),
        },
        Tried::Refused(Errno::EPERM) => Seen::NotShown("EPERM: it needs root".into()),
        Tried::Refused(errno) => Seen::NotShown(format!("the kernel refused it: {}", errno.desc())),
    })
}

/// A clone3 child with `flags` compares the inode of `link` with `ours`: `new` or `ours`.
fn namespace_seen(flags: Flags, link: &str, ours: u64) -> Result<Tried, Error> {
    // The child's answer in its exit status: 0 another inode, 1 ours, 2 no link.
    let compare = || match stat(link) {
        Ok(st) if st.st_ino == ours => 1,
        Ok(_) => 0,
        Err(_) => 2,
    };
    try_child(CloneArgs::new(Signal::SIGCHLD).flags(flags), compare, |mut child| {
        Ok(match child.reap()?.outcome {
            Outcome::Exited(0) => "new".into(),
            Outcome::Exited(1) => "ours".into(),
            other => format!("child {other}"),
        })
    })
}
