//! Every `CLONE_*` flag by its C name and value, 64 bits wide as `clone3` takes them, and the
//! one list of the flags a child of this crate may only be given where its start makes them
//! safe ([`Flags::SHARED_OR_WRITTEN`]).
//!
//! `clone(2)` takes its flags in an `int`, and nix's `CloneFlags` with them: the newest flags
//! (`CLONE_CLEAR_SIGHAND`, `CLONE_INTO_CGROUP`, those of 7.1) do not fit there, which is why
//! libc deprecates its `CLONE_INTO_CGROUP`. [`Flags`] holds all of them.

use std::fmt;
use std::ops::BitOr;

/// A set of `CLONE_*` flags, as `clone_args.flags` takes them (64 bits: the newest do not fit
/// in the `int` of `clone(2)`, which is why libc deprecates its `CLONE_INTO_CGROUP`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u64);

macro_rules! clone_flags {
    ($($name:ident = $value:expr, $doc:literal;)*) => {
        impl Flags {
            $(#[doc = concat!("`CLONE_", stringify!($name), "`: ", $doc)]
            pub const $name: Flags = Flags($value);)*
            /// Every flag with its C name, in the order of `<linux/sched.h>`.
            pub const ALL: &'static [(Flags, &'static str)] =
                &[$((Flags::$name, concat!("CLONE_", stringify!($name))),)*];
        }
    };
}

clone_flags! {
    NEWTIME = 0x80, "a new time namespace (`unshare` 5.6; `clone3` 6.3, in stable lines too).";
    VM = 0x100, "share the address space.";
    FS = 0x200, "share the root, the working directory and the umask.";
    FILES = 0x400, "share the file descriptor table.";
    SIGHAND = 0x800, "share the table of signal handlers (needs `VM`).";
    PIDFD = 0x1000, "return a pidfd for the child in `clone_args.pidfd` (5.2).";
    PTRACE = 0x2000, "if the parent is traced, trace the child too.";
    VFORK = 0x4000, "suspend the parent until the child exits or execs.";
    PARENT = 0x8000, "the child's parent is the caller's parent, not the caller.";
    THREAD = 0x10000, "the same pid, a tid of its own, no exit signal; needs `SIGHAND`.";
    NEWNS = 0x20000, "a new mount namespace.";
    SYSVSEM = 0x40000, "share System V semaphore undo values.";
    SETTLS = 0x80000, "the child's thread pointer is `clone_args.tls`.";
    PARENT_SETTID = 0x100000, "store the child's tid at `clone_args.parent_tid`, in the parent.";
    CHILD_CLEARTID = 0x200000, "at the child's end, zero `clone_args.child_tid` and wake its futex.";
    DETACHED = 0x400000, "no effect since 2.6.0; `clone` ignores it but beside `PIDFD` (EINVAL), `clone3` refuses it.";
    UNTRACED = 0x800000, "a tracer cannot force `PTRACE` onto the child.";
    CHILD_SETTID = 0x1000000, "store the child's tid at `clone_args.child_tid`, in the child.";
    NEWCGROUP = 0x2000000, "a new cgroup namespace.";
    NEWUTS = 0x4000000, "a new UTS namespace (hostname, domain name).";
    NEWIPC = 0x8000000, "a new IPC namespace.";
    NEWUSER = 0x10000000, "a new user namespace.";
    NEWPID = 0x20000000, "a new PID namespace, the child its pid 1.";
    NEWNET = 0x40000000, "a new network namespace.";
    IO = 0x80000000, "share the I/O context.";
    CLEAR_SIGHAND = 0x1_0000_0000, "reset every caught signal to its default (5.5; no `SIGHAND`).";
    INTO_CGROUP = 0x2_0000_0000, "start the child in the cgroup of fd `clone_args.cgroup` (5.7).";
    AUTOREAP = 0x4_0000_0000, "reap the child at its end, no zombie, no wait (7.1; exit signal 0).";
    NNP = 0x8_0000_0000, "set `no_new_privs` in the child, as `prctl` would (7.1; no `THREAD`).";
    PIDFD_AUTOKILL = 0x10_0000_0000, "SIGKILL the child when its pidfd closes (7.1; `PIDFD`, `AUTOREAP`).";
    EMPTY_MNTNS = 0x20_0000_0000, "a new mount namespace holding its root alone (7.1; implies `NEWNS`).";
}

impl Flags {
    /// No flag.
    pub const NONE: Flags = Flags(0);

    /// The flags that make a child share its parent's memory, signal handlers or thread
    /// identity, or have the kernel write a tid or take a thread pointer at addresses it is
    /// handed: `VM`, `SIGHAND`, `THREAD`, `SETTLS` and the three TID flags. A child that runs
    /// on a copy of its parent (`fork_child`, `clone_child`, `clone3_child`) is refused them
    /// all; `vfork_child` takes `VM` and `SIGHAND`, because its parent is suspended while the
    /// child runs; only the hand-built thread takes the rest.
    pub const SHARED_OR_WRITTEN: Flags = Flags(
        Flags::VM.0
            | Flags::SIGHAND.0
            | Flags::THREAD.0
            | Flags::SETTLS.0
            | Flags::PARENT_SETTID.0
            | Flags::CHILD_SETTID.0
            | Flags::CHILD_CLEARTID.0,
    );

    /// Whether every flag of `other` is set here.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set here.
    pub fn intersects(self, other: Flags) -> bool {
        self.0 & other.0 != 0
    }

    /// The flags set both here and in `other`.
    pub fn and(self, other: Flags) -> Flags {
        Flags(self.0 & other.0)
    }

    /// These flags without those of `other`.
    pub fn without(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

impl From<nix::sched::CloneFlags> for Flags {
    fn from(flags: nix::sched::CloneFlags) -> Flags {
        Flags(flags.bits() as u32 as u64)
    }
}

/// `CLONE_PIDFD | CLONE_INTO_CGROUP`, or `0x...` for bits without a name.
impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        let mut first = true;
        for (flag, name) in Flags::ALL {
            if rest & flag.0 != 0 {
                write!(f, "{}{name}", if first { "" } else { " | " })?;
                rest &= !flag.0;
                first = false;
            }
        }
        if rest != 0 || first {
            write!(f, "{}{rest:#x}", if first { "" } else { " | " })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_print_their_c_names() {
        assert_eq!(Flags::ALL.len(), 31);
        assert_eq!(
            (Flags::PIDFD | Flags::INTO_CGROUP).to_string(),
            "CLONE_PIDFD | CLONE_INTO_CGROUP"
        );
        assert_eq!(Flags(0x40_0000_0000).to_string(), "0x4000000000");
        assert_eq!(Flags::NONE.to_string(), "0x0");
        assert_eq!(Flags::from(nix::sched::CloneFlags::CLONE_NEWPID), Flags::NEWPID);
    }

    #[test]
    fn the_shared_or_written_flags_are_the_ones_a_copy_cannot_take() {
        let copy_safe = Flags::VFORK | Flags::FILES | Flags::FS | Flags::NEWPID | Flags::PIDFD;
        assert!(!copy_safe.intersects(Flags::SHARED_OR_WRITTEN));
        assert_eq!(Flags::SHARED_OR_WRITTEN.without(Flags::VM | Flags::SIGHAND).0.count_ones(), 5);
    }
}
