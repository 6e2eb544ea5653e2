//! The allocator's settings that decide how much memory the collector keeps resident.
//!
//! The `collector` binary runs on mimalloc (v3, linked statically by the `mimalloc` crate,
//! built with its `no_thp` feature so that it never asks for transparent huge pages: with
//! them an idle collector was 55 MiB resident, 43 MiB of it huge pages of which a few KiB
//! were used; without, 13 MiB). mimalloc returns freed memory to the OS (`MADV_DONTNEED`)
//! only `purge_delay` ms after it became free, 1,000 ms by default: under ingest that
//! delay alone kept ~25 MiB of freed sled I/O buffers and node copies resident. The
//! delay is `allocator_purge_delay_ms` in the configuration (README, Benchmarks: "Where
//! the memory goes"). A `MIMALLOC_PURGE_DELAY` set in the environment wins over it.
//!
//! Invariant: this module only changes mimalloc's option table (never memory it handed
//! out), and only an option whose index is checked against mimalloc's own default, so a
//! different mimalloc version with another numbering is left alone (and logged).

use std::ffi::{c_int, c_long};

// The functions below are mimalloc's: link its library into every binary that uses this
// crate (its test binaries too), not only into the `collector` binary that makes it the
// global allocator.
use mimalloc as _;

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (v2 and v3 alike).
const MI_OPTION_PURGE_DELAY: c_int = 15;
/// mimalloc v3's default purge delay, ms: how the index above is recognised.
const V3_DEFAULT_PURGE_DELAY_MS: c_long = 1000;

extern "C" {
    fn mi_option_get(option: c_int) -> c_long;
    fn mi_option_set(option: c_int, value: c_long);
}

/// What [`set_purge_delay`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purge {
    /// The delay is now the configured one.
    Set(u64),
    /// `MIMALLOC_PURGE_DELAY` is set: the environment's value stays.
    FromEnvironment,
    /// The option at the expected index did not hold mimalloc v3's default: not touched.
    Unrecognised(i64),
}

/// Sets mimalloc's purge delay (ms) unless the environment sets it.
pub fn set_purge_delay(ms: u64) -> Purge {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return Purge::FromEnvironment;
    }
    // SAFETY: both functions only read or write an entry of mimalloc's static option table
    // (thread-safe in mimalloc; the index is within `_mi_option_last`); no memory handed
    // out by the allocator is touched.
    let current = unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) };
    if current != V3_DEFAULT_PURGE_DELAY_MS && current != ms as c_long {
        return Purge::Unrecognised(current as i64);
    }
    let value = c_long::try_from(ms).unwrap_or(c_long::MAX);
    // SAFETY: as above.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, value) };
    Purge::Set(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_index_is_mimallocs_and_takes_the_setting() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads mimalloc's option table only.
        let before = unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert!(
            before == V3_DEFAULT_PURGE_DELAY_MS || before == 10,
            "index {MI_OPTION_PURGE_DELAY} held {before}: mimalloc's numbering changed"
        );
        assert_eq!(set_purge_delay(10), Purge::Set(10));
        // SAFETY: as above.
        assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, 10);
    }
}
