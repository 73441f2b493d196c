//! Memory that is paid for when touched: a child reserves now, pays before its move, and
//! after the move pays only for what it writes on purpose.
//!
//! A cgroup is charged for a page when a process first writes it, not when it maps it; the
//! page tables that map it are charged too. Nothing here allocates, on any path: children
//! call it. The stacks that `clone` children run on are here too: a stack is memory a child
//! pays for as it touches it.

use std::ptr::NonNull;

use nix::errno::Errno;

use crate::Error;

/// `mmap(2)` of `len` bytes of anonymous, readable and writable memory with `flags`
/// (MAP_ANONYMOUS is added), at `at` if `flags` has MAP_FIXED.
///
/// # Safety
/// With MAP_FIXED, `[at, at + len)` must be memory the caller owns and no longer uses: the
/// new mapping replaces whatever was there. Without it, `at` is only a hint.
pub(crate) unsafe fn map_anonymous(
    at: *mut libc::c_void,
    len: usize,
    flags: libc::c_int,
) -> Result<NonNull<libc::c_void>, Errno> {
    // SAFETY: an anonymous mapping aliases nothing the program holds, except under MAP_FIXED,
    // which the caller vouches for; the result is checked.
    let mapped = unsafe {
        libc::mmap(at, len, libc::PROT_READ | libc::PROT_WRITE, flags | libc::MAP_ANONYMOUS, -1, 0)
    };
    if mapped == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    // SAFETY: mmap succeeded, so the pointer is not null.
    Ok(unsafe { NonNull::new_unchecked(mapped) })
}

/// Makes the page at `at` (page-aligned, inside a mapping of the crate's own) inaccessible:
/// a stack that grows down onto it faults instead of writing over what lies below.
pub(crate) fn guard_page(at: *mut u8) -> Result<(), Error> {
    // SAFETY: mprotect changes only the access rights of one page of our own mapping, which
    // nothing refers to.
    if unsafe { libc::mprotect(at as *mut libc::c_void, page_size(), libc::PROT_NONE) } != 0 {
        return Err(Error::sys("mprotect(guard page)", Errno::last()));
    }
    Ok(())
}

/// One page table maps this much memory: 512 pages of 4 KiB, on x86-64 and on arm64 with
/// 4 KiB pages (as Debian's kernels have them; with larger pages the memory scenarios refuse).
const PAGE_TABLE_SPAN: usize = 2 << 20;

/// A private anonymous mapping whose buffer pages cost nothing until written.
///
/// Layout, inside one 2 MiB-aligned span so that writing its first page builds every page
/// table the rest needs: a page-table page, the buffer, and with
/// [`with_shared_stack`](Self::with_shared_stack) a guard page and a stack.
pub struct Reservation {
    mapping: NonNull<libc::c_void>,
    mapping_len: usize,
    window: *mut u8,
    capacity: usize,
    stack_len: usize,
}

/// A stack for a child, as [`Reservation::shared_stack`] hands it out: the lowest address and
/// the length, as `clone3` takes them.
#[derive(Clone, Copy, Debug)]
pub struct StackArea {
    /// Lowest address.
    pub base: *mut u8,
    /// Length in bytes, a multiple of the page size.
    pub len: usize,
}

/// The largest buffer [`Reservation::with_shared_stack`] takes beside a stack of
/// `stack_bytes`: what one page table's span leaves after its own page, the guard page and
/// the stack.
pub fn largest_buffer_beside_stack(stack_bytes: usize) -> usize {
    let page = page_size();
    PAGE_TABLE_SPAN - 2 * page - stack_bytes.div_ceil(page) * page
}

impl Reservation {
    /// Reserves room for `bytes` of buffer. Costs address space, not memory.
    pub fn new(bytes: usize) -> Result<Reservation, Error> {
        Reservation::with_shared_stack(bytes, 0)
    }

    /// Reserves room for `bytes` of buffer and, after a guard page in the same 2 MiB span,
    /// `stack_bytes` of stack that a `clone3` child can run on without being charged for it.
    ///
    /// The stack is a *shared* mapping that is written here, by the caller: a child writes the
    /// very pages its parent already paid for, instead of copying them on write (a copy is a
    /// new page, charged to the child's cgroup). Its page tables are the buffer's, which
    /// [`build_page_tables`](Self::build_page_tables) creates and `fork` copies. The guard page
    /// between buffer and stack turns a stack overflow into a fault, not a write into the buffer.
    pub fn with_shared_stack(bytes: usize, stack_bytes: usize) -> Result<Reservation, Error> {
        let page = page_size();
        let capacity = bytes.div_ceil(page).max(1) * page;
        let stack_len = stack_bytes.div_ceil(page) * page;
        let guard_len = if stack_len > 0 { page } else { 0 };
        let window_len = page + capacity + guard_len + stack_len;
        if stack_len > 0 && window_len > PAGE_TABLE_SPAN {
            // See largest_buffer_beside_stack. A static context: nothing here allocates.
            return Err(Error::Unexpected(
                "a buffer and a stack that do not fit in one page table's 2 MiB span",
            ));
        }
        let mapping_len = window_len + PAGE_TABLE_SPAN;
        // MAP_NORESERVE: this is a reservation of addresses, not a promise of memory.
        // SAFETY: no MAP_FIXED, so nothing is replaced.
        let mapping = unsafe {
            map_anonymous(
                std::ptr::null_mut(),
                mapping_len,
                libc::MAP_PRIVATE | libc::MAP_NORESERVE,
            )
        }
        .map_err(|e| Error::sys("mmap(reservation)", e))?;
        let window = (mapping.as_ptr() as usize).next_multiple_of(PAGE_TABLE_SPAN) as *mut u8;
        // SAFETY: [window, window + window_len) lies inside the mapping: window is at most
        // PAGE_TABLE_SPAN - 1 bytes past its start, and the mapping has that much slack.
        // No transparent huge pages: the first write must fault in one 4 KiB page, not 2 MiB.
        unsafe { libc::madvise(window as *mut libc::c_void, window_len, libc::MADV_NOHUGEPAGE) };
        let reservation = Reservation { mapping, mapping_len, window, capacity, stack_len };
        if let Some(stack) = reservation.shared_stack() {
            // SAFETY: the guard page is the page just below the stack, inside the window.
            guard_page(unsafe { stack.base.sub(page) })?;
            // SAFETY: the stack lies at the end of the window, inside our own, still unused
            // mapping; MAP_FIXED replaces exactly that part of it with a shared mapping.
            unsafe {
                map_anonymous(
                    stack.base as *mut libc::c_void,
                    stack.len,
                    libc::MAP_SHARED | libc::MAP_FIXED,
                )
            }
            .map_err(|e| Error::sys("mmap(shared stack)", e))?;
            for offset in (0..stack.len).step_by(page) {
                // SAFETY: offset < stack.len, inside the shared stack.
                unsafe { std::ptr::write_volatile(stack.base.add(offset), 0) };
            }
        }
        Ok(reservation)
    }

    /// The shared stack made by [`with_shared_stack`](Self::with_shared_stack), if any.
    pub fn shared_stack(&self) -> Option<StackArea> {
        (self.stack_len > 0).then(|| StackArea {
            // SAFETY: the stack follows the page-table page, the buffer and the guard page.
            base: unsafe { self.window.add(2 * page_size() + self.capacity) },
            len: self.stack_len,
        })
    }

    /// Writes the page before the buffer, so that the page tables exist before a move.
    /// Charges one page (and the tables) to the cgroup the process is in now.
    pub fn build_page_tables(&mut self) {
        // SAFETY: window is the first byte of the reserved window, writable and ours.
        unsafe { std::ptr::write_volatile(self.window, 1) };
    }

    /// Writes `bytes` bytes of the buffer (at most its capacity); returns how many pages that
    /// first touched. Each is one page charged to the current cgroup; past the cgroup's
    /// limit, that charge is what the OOM killer answers.
    pub fn touch(&mut self, bytes: usize) -> usize {
        let bytes = bytes.min(self.capacity);
        // SAFETY: the buffer starts one page into the window and holds `capacity` bytes.
        let buffer = unsafe { self.window.add(page_size()) };
        for i in 0..bytes {
            // SAFETY: i < bytes <= capacity, inside the buffer. Volatile, so the compiler
            // cannot drop the writes that are the point of this function.
            unsafe { std::ptr::write_volatile(buffer.add(i), i as u8) };
        }
        bytes.div_ceil(page_size())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // SAFETY: mapping/mapping_len describe exactly the mapping made in new().
        unsafe { libc::munmap(self.mapping.as_ptr(), self.mapping_len) };
    }
}

/// The system's page size: the unit in which memory is charged. Children call it, so it
/// writes nothing: `libc::sysconf` is called directly, because nix's `sysconf` first clears
/// `errno`, a write to the thread's TLS page. In a child born in a 4 KiB cgroup that write is
/// a page copied and charged: measured, the clone3 small child then needed 8192 bytes and was
/// OOM-killed in 4 runs of 5.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE cannot fail on Linux.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// A stack for a `clone` child: an anonymous mapping with an inaccessible guard page below
/// it, so that an overflow faults instead of writing over other memory.
///
/// Without `CLONE_VM` the child runs on its copy of this mapping; the parent's copy is never
/// touched, so none of its pages is charged to anyone until the child first writes it.
pub struct ChildStack {
    base: NonNull<libc::c_void>,
    len: usize,
}

impl ChildStack {
    /// Maps `size` bytes (rounded up to pages) of stack plus the guard page.
    pub fn new(size: usize) -> Result<ChildStack, Error> {
        let page = page_size();
        let len = size.div_ceil(page) * page + page;
        // SAFETY: no MAP_FIXED, so nothing is replaced.
        let base = unsafe {
            map_anonymous(std::ptr::null_mut(), len, libc::MAP_PRIVATE | libc::MAP_STACK)
        }
        .map_err(|e| Error::sys("mmap(child stack)", e))?;
        let stack = ChildStack { base, len };
        guard_page(base.as_ptr() as *mut u8)?;
        Ok(stack)
    }

    /// The usable stack (above the guard page), as `clone3` takes it.
    pub fn area(&mut self) -> StackArea {
        let page = page_size();
        StackArea { base: (self.base.as_ptr() as usize + page) as *mut u8, len: self.len - page }
    }

    /// The highest address of the stack, 16-byte aligned: where a downward stack starts.
    pub(crate) fn top(&self) -> *mut libc::c_void {
        let top = self.base.as_ptr() as usize + self.len;
        (top & !15) as *mut libc::c_void
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: base/len describe exactly the mapping made in new(), unmapped once.
        unsafe { libc::munmap(self.base.as_ptr(), self.len) };
    }
}

/// How much stack a child touches before a move; [`MOVED_CHILD_STACK_SIZE`] leaves room below it.
pub const STACK_WARM_UP: usize = 64 << 10;

/// The stack of a child that is moved into a cgroup (the delayed and signal-synced pairs): it
/// touches the first [`STACK_WARM_UP`] bytes before the move, and the rest leaves room.
pub const MOVED_CHILD_STACK_SIZE: usize = 256 << 10;

/// The exit status of a memory lesson's child whose own part failed (it could not reserve its
/// buffer, or was never told to go on; it says why): BSD's `EX_SOFTWARE`.
pub const CHILD_SETUP_FAILED: i32 = 70;

/// What a memory scenario's child does first, before its move: everything that costs memory.
/// It writes [`STACK_WARM_UP`] bytes of stack below the caller (so that the stack pages used
/// later are its own already), reserves `bytes` of buffer and builds its page tables. Only
/// the buffer's own pages are left to pay for.
pub fn warm_up(bytes: usize) -> Result<Reservation, Error> {
    touch_stack();
    let mut buffer = Reservation::new(bytes)?;
    buffer.build_page_tables();
    Ok(buffer)
}

#[inline(never)]
fn touch_stack() {
    let mut probe = [0u8; STACK_WARM_UP];
    for i in (0..probe.len()).step_by(page_size()) {
        // SAFETY: i is inside probe; volatile keeps the write.
        unsafe { std::ptr::write_volatile(&mut probe[i], 1) };
    }
    std::hint::black_box(&probe);
}

/// "page" or "pages", for child output (without allocating).
pub fn pages_word(n: usize) -> &'static str {
    if n == 1 {
        "page"
    } else {
        "pages"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_buffer_beside_a_stack_fits_and_one_byte_more_does_not() {
        let largest = largest_buffer_beside_stack(64 << 10);
        assert!(Reservation::with_shared_stack(largest, 64 << 10).is_ok());
        assert!(Reservation::with_shared_stack(largest + 1, 64 << 10).is_err());
        // The book's figure for the clone3 pair (`--alloc` at most 1976K), with 4 KiB pages:
        // 2 MiB less the page-table page, the guard page and the 64 KiB stack.
        if page_size() == 4096 {
            assert_eq!(largest, 1976 << 10);
        }
    }

    #[test]
    fn reservation_rounds_to_pages_and_touches_what_is_asked() {
        let page = page_size();
        let mut r = Reservation::new(3000).unwrap();
        assert_eq!(r.capacity, page);
        r.build_page_tables();
        assert_eq!(r.touch(3000), 1);
        let mut big = Reservation::new(1 << 20).unwrap();
        assert_eq!(big.touch(1 << 20), (1 << 20) / page);
        assert_eq!(big.touch(usize::MAX), (1 << 20) / page);
    }

    #[test]
    fn a_shared_stack_follows_the_buffer_and_a_guard_page_in_the_same_span() {
        let r = Reservation::with_shared_stack(1 << 20, 32 << 10).unwrap();
        let stack = r.shared_stack().unwrap();
        assert_eq!(stack.len, 32 << 10);
        assert_eq!(stack.base as usize, r.window as usize + 2 * page_size() + (1 << 20));
        let end = stack.base as usize + stack.len - 1;
        assert_eq!(r.window as usize / PAGE_TABLE_SPAN, end / PAGE_TABLE_SPAN);
        assert!(Reservation::with_shared_stack(2 << 20, 32 << 10).is_err());
        assert!(Reservation::new(3000).unwrap().shared_stack().is_none());
    }

    #[test]
    fn the_window_lies_inside_one_page_table_span() {
        let r = Reservation::new(100 << 10).unwrap();
        let start = r.window as usize;
        let end = start + page_size() + r.capacity - 1;
        assert_eq!(start / PAGE_TABLE_SPAN, end / PAGE_TABLE_SPAN);
    }
}
