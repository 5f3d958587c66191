//! The programs' global allocator, and how long it keeps memory that was freed.
//!
//! Tensor ops allocate and free buffers of many megabytes each. mimalloc keeps them for
//! reuse, but by default hands free memory back to the OS after a second, so the
//! next step of a training run or a burst of requests faults every page in again and
//! the kernel zeroes it (a DINOv2-S fine-tune step at batch 8 spent 11 % of its time
//! there). [`keep_freed_memory`] turns that off: a process holds the memory of its
//! busiest moment.
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: sv_cli::alloc::Allocator = sv_cli::alloc::Allocator;
//!
//! fn main() {
//!     sv_cli::alloc::keep_freed_memory();
//! }
//! ```

/// The global allocator of the three programs and the benches.
pub use mimalloc::MiMalloc as Allocator;

/// `mi_option_purge_delay`: its position in `mi_option_e` of the mimalloc v3 that
/// libmimalloc-sys builds (`include/mimalloc.h`).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never give freed memory back to the OS, unless `MIMALLOC_PURGE_DELAY` is set in the
/// environment (mimalloc then follows it: milliseconds, `-1` never). Call it first thing
/// in `main`, before other threads start.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one option of the allocator linked in by `Allocator`; called
        // before the program starts other threads.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str =
        "alloc::tests::position_15_is_the_purge_delay_mimalloc_reads_from_its_environment";

    #[test]
    fn position_15_is_the_purge_delay_mimalloc_reads_from_its_environment() {
        // SAFETY: reads one option.
        let read = || unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        if let Some(set) = std::env::var_os("MIMALLOC_PURGE_DELAY") {
            // The child below: mimalloc read the variable into position 15, and
            // `keep_freed_memory` leaves it as it is.
            assert_eq!(set, "1234");
            keep_freed_memory();
            assert_eq!(read(), 1234);
            return;
        }
        assert_eq!(read(), 1000, "mimalloc's default purge delay, in ms");
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--test-threads", "1"])
            .env("MIMALLOC_PURGE_DELAY", "1234")
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&child.stdout);
        assert!(child.status.success() && out.contains("1 passed"), "{out}");
        keep_freed_memory();
        assert_eq!(read(), -1);
    }
}
