//! Starting children and reading how they ended, in four parts:
//!
//! - [`start`]: the ways to start a child ([`fork_child`], [`clone_child`], [`vfork_child`],
//!   [`clone_child_unchecked`]), all through the one door every child of this crate is
//!   created by, which `clone3` uses too; the boundary a child ends at ([`CHILD_PANICKED`]).
//! - [`child`]: the [`Child`] a parent holds, its waits (bounded, by pid or by pidfd), and
//!   how it ended ([`Ended`], [`Outcome`]).
//! - [`rseq`]: glibc's restartable-sequences area, which the kernel writes into a child's
//!   memory unless it is paused across the call that creates the child: a page that a child
//!   in a 4 KiB cgroup would pay for.
//! - [`say`]: a child's line of output, written without allocating ([`child_say!`](crate::child_say)).
//!
//! Every way to start a child follows the crate's rule for child code (see the crate
//! documentation): the child runs the closure it is given and ends through `_exit` with its
//! value; a panic is caught at that boundary and ends the child with [`CHILD_PANICKED`].

pub mod child;
pub mod rseq;
pub mod say;
pub mod start;

pub use child::{describe_status, Child, Ended, Outcome, Waited};
#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_env = "gnu"))]
pub use rseq::thread_pointer;
pub use say::ChildLine;
pub use start::{
    clone_child, clone_child_unchecked, die_with_parent, fork_child, thread_count, vfork_child,
    CHILD_PANICKED,
};

pub(crate) use child::reap;
pub(crate) use start::{child_trampoline, create, end_child_with, require_single_thread};
