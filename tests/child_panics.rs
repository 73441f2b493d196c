//! A panicking child never runs its parent's code: every way the library starts a child
//! (fork, clone, vfork, clone3, clone3 on a stack of its own) stops the panic at the child's
//! boundary, where the child ends with exit status CHILD_PANICKED (101).
//!
//! The proof: a guard lives in this `main`, whose `Drop` writes the pid of the process that
//! drops it into a pipe. Were a child's panic to unwind into `main`, the child would drop the
//! guard and write its pid. At the end only one pid may be in the pipe: ours.
//!
//! `harness = false` (see Cargo.toml): `fork` needs a process with one thread, and the test
//! harness runs tests on threads of its own. It prints a libtest-like result line.

use std::io::Read;
use std::os::fd::OwnedFd;

use clone_cgroup::clone3::{clone3_child, clone3_child_on_stack, CloneArgs, Flags};
use clone_cgroup::memory::ChildStack;
use clone_cgroup::process::{clone_child, fork_child, vfork_child, Child, Outcome, CHILD_PANICKED};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::{getpid, pipe};

/// Writes the pid of whoever drops it into the pipe.
struct ParentGuard(OwnedFd);

impl Drop for ParentGuard {
    fn drop(&mut self) {
        let pid = getpid().as_raw().to_le_bytes();
        let _ = nix::unistd::write(&self.0, &pid);
    }
}

fn main() {
    // `--list` (the VM's runner asks every test executable): nothing to list by name.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let (read_end, write_end) = pipe().expect("pipe");
    let guard = ParentGuard(write_end);
    // The children's panic messages would only be noise here.
    std::panic::set_hook(Box::new(|_| {}));

    let mut stack = ChildStack::new(256 << 10).expect("a child stack");
    let mut panics = || -> i32 { panic!("a child's panic") };
    // Every way returns a Child: the same reap reads each one's end.
    let ways: Vec<(&str, Child)> = vec![
        ("fork_child", fork_child(|| panic!("a child's panic")).expect("fork")),
        (
            "clone_child",
            clone_child(&mut panics, &mut stack, CloneFlags::empty(), Signal::SIGCHLD)
                .expect("clone"),
        ),
        (
            "vfork_child (CLONE_VM)",
            vfork_child(&mut panics, &mut stack, CloneFlags::CLONE_VM).expect("vfork"),
        ),
        (
            "clone3_child",
            clone3_child(&CloneArgs::new(Signal::SIGCHLD), || panic!("x")).expect("clone3"),
        ),
        ("clone3_child_on_stack (CLONE_VM | CLONE_VFORK)", {
            let args = CloneArgs::new(Signal::SIGCHLD).flags(Flags::VM | Flags::VFORK);
            // SAFETY: one thread; CLONE_VFORK keeps us suspended until the child has ended, so
            // the closure and the stack outlive it.
            unsafe { clone3_child_on_stack(&args, stack.area(), &mut panics) }
                .expect("clone3 on a stack")
        }),
    ];
    let ways: Vec<(&str, Outcome)> = ways
        .into_iter()
        .map(|(way, mut child)| (way, child.reap().expect("reap").outcome))
        .collect();
    let _ = std::panic::take_hook();

    drop(guard);
    let mut written = Vec::new();
    std::fs::File::from(read_end).read_to_end(&mut written).expect("read the pipe");
    let droppers: Vec<i32> =
        written.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();

    let mut failed = 0;
    for (way, outcome) in &ways {
        let ok = *outcome == Outcome::Exited(CHILD_PANICKED);
        println!(
            "test {way}: a panicking child {outcome} ... {}",
            if ok { "ok" } else { "FAILED" }
        );
        failed += usize::from(!ok);
    }
    let only_ours = droppers == [getpid().as_raw()];
    println!(
        "test the parent's guard was dropped by {droppers:?}, ours is {} ... {}",
        getpid(),
        if only_ours { "ok" } else { "FAILED" }
    );
    failed += usize::from(!only_ours);
    let passed = ways.len() + 1 - failed;
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    std::process::exit(i32::from(failed > 0));
}
