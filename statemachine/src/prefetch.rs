//! Cache hints: [`prefetch`] asks the processor to start loading memory that code a little
//! later will read, so that its cache misses overlap with the work in between instead of
//! stalling it (see [`crate::StateMachine::apply_batch`]).

/// Asks the processor to bring the cache line holding the first byte of `value` into the
/// cache, without waiting for it. Changes nothing observable; a no-op off x86_64.
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    prefetch_address((value as *const T).cast());
}

/// [`prefetch`] of every line the value at `value` spans (a record may straddle two). The
/// pointer is not read through: it may be dangling, and costs nothing then.
#[inline(always)]
pub(crate) fn prefetch_all<T>(value: *const T) {
    let first: *const u8 = value.cast();
    prefetch_address(first);
    let last = first.wrapping_add(std::mem::size_of::<T>().saturating_sub(1));
    if (last as usize) / 64 != (first as usize) / 64 {
        prefetch_address(last);
    }
}

#[inline(always)]
#[allow(unsafe_code)] // the workspace's one `unsafe` block: see the SAFETY comment below
fn prefetch_address(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing into the program, never faults (the
    // address is not even required to be mapped), and SSE, which provides it, is part of
    // every x86_64 processor.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}
