// SPDX-License-Identifier: GPL-2.0

//! Interval notifiers: learn when the CPU page tables of a range of a process's address space
//! change.
//!
//! A driver that gives a device access to user memory (a "userptr") without pinning it for good
//! registers an [`IntervalNotifier`] on the range. The memory-management code calls
//! [`IntervalNotifierOps::invalidate`] before it unmaps, migrates, write-protects (fork) or frees
//! the pages of the range, and the driver stops the device from using them.
//!
//! The usual pattern (see `Documentation/mm/hmm.rst`):
//!
//! 1. `seq = notifier.read_begin()`;
//! 2. look the pages up (for example with [`super::user_pages::UserPages::get`]);
//! 3. take the driver lock that the `invalidate` callback takes, and if
//!    `notifier.read_retry(seq)` start again; else publish the pages to the device.
//!
//! The callback takes the same lock and calls [`Invalidation::set_seq`] under it.
//!
//! C header: [`include/linux/mmu_notifier.h`](srctree/include/linux/mmu_notifier.h)

use crate::{bindings, error::to_result, mm::Mm, prelude::*, types::Opaque};

/// The callbacks of an [`IntervalNotifier`].
pub trait IntervalNotifierOps: Sized + Send + Sync {
    /// The CPU page tables of (part of) the range are about to change.
    ///
    /// Called with the notifier sequence advanced, so that a concurrent `read_retry` sees the
    /// change once [`Invalidation::set_seq`] was called. Return `false` only if
    /// `inv.blockable()` is false and the driver would have to sleep; the kernel then retries
    /// from a context that may.
    fn invalidate(notifier: &IntervalNotifier<Self>, inv: &Invalidation<'_>) -> bool;
}

/// One invalidation of an [`IntervalNotifier`].
pub struct Invalidation<'a> {
    notifier: *mut bindings::mmu_interval_notifier,
    range: &'a bindings::mmu_notifier_range,
    cur_seq: u64,
}

impl Invalidation<'_> {
    /// Start of the invalidated range of addresses.
    pub fn start(&self) -> usize {
        self.range.start
    }

    /// End (exclusive) of the invalidated range of addresses.
    pub fn end(&self) -> usize {
        self.range.end
    }

    /// Whether the callback may sleep.
    pub fn blockable(&self) -> bool {
        // SAFETY: `range` is the valid range passed to the callback.
        unsafe { bindings::mmu_notifier_range_blockable(self.range) }
    }

    /// Make `read_retry` of the sequence numbers taken before this invalidation return true.
    ///
    /// Must be called with the lock held that the driver takes around `read_retry`.
    pub fn set_seq(&self) {
        // SAFETY: `notifier` is the notifier the callback was called for.
        unsafe { bindings::mmu_interval_set_seq(self.notifier, self.cur_seq as usize) };
    }
}

/// An interval notifier on a range of a process's address space, with the driver data `T`.
///
/// # Invariants
///
/// `notifier` is registered (inserted) on its range for the whole life of the object; its
/// callbacks only run while it is.
#[pin_data(PinnedDrop)]
pub struct IntervalNotifier<T: IntervalNotifierOps> {
    #[pin]
    data: T,
    #[pin]
    notifier: Opaque<bindings::mmu_interval_notifier>,
}

// SAFETY: the notifier is only used through the thread-safe `mmu_interval_*` functions, and `T`
// is `Send + Sync`.
unsafe impl<T: IntervalNotifierOps> Send for IntervalNotifier<T> {}
// SAFETY: as above.
unsafe impl<T: IntervalNotifierOps> Sync for IntervalNotifier<T> {}

impl<T: IntervalNotifierOps> IntervalNotifier<T> {
    const OPS: bindings::mmu_interval_notifier_ops = bindings::mmu_interval_notifier_ops {
        invalidate: Some(Self::invalidate_callback),
        invalidate_start: None,
        invalidate_finish: None,
    };

    /// Register a notifier on `[start, start + length)` of `mm`, with the data `data`.
    ///
    /// The callback may run as soon as the notifier is registered, so `data` is initialised
    /// first.
    pub fn new(
        mm: &Mm,
        start: usize,
        length: usize,
        data: impl PinInit<T, Error>,
    ) -> impl PinInit<Self, Error> {
        let mm = mm.as_raw();
        try_pin_init!(Self {
            data <- data,
            // SAFETY: `slot` is valid, pinned memory for the notifier, which is zeroed first (the
            // C code expects it); `mm` is a valid `mm_struct` the caller holds, and `OPS` lives
            // for ever. On success the notifier is registered until `drop`.
            notifier <- unsafe {
                pin_init::pin_init_from_closure(
                    move |slot: *mut Opaque<bindings::mmu_interval_notifier>| {
                        let n = Opaque::cast_into(slot);
                        core::ptr::write_bytes(n, 0, 1);
                        to_result(bindings::mmu_interval_notifier_insert(
                            n,
                            mm,
                            start,
                            length,
                            &Self::OPS,
                        ))
                    },
                )
            },
        })
    }

    /// The driver data.
    pub fn data(&self) -> &T {
        &self.data
    }

    /// The `mm_struct` the notifier watches.
    pub fn mm(&self) -> &Mm {
        // SAFETY: the notifier is registered (type invariant), so its `mm` is set and grabbed
        // (`mmgrab`) until it is removed.
        unsafe { Mm::from_raw((*self.notifier.get()).mm) }
    }

    /// Start a read side critical section: the sequence number to check with
    /// [`Self::read_retry`]. Sleeps while an invalidation of the range is in progress.
    pub fn read_begin(&self) -> u64 {
        // SAFETY: the notifier is registered (type invariant).
        unsafe { bindings::mmu_interval_read_begin(self.notifier.get()) as u64 }
    }

    /// Whether the range was invalidated since `read_begin` returned `seq`.
    ///
    /// Only reliable with the driver lock held that the callback holds around
    /// [`Invalidation::set_seq`].
    pub fn read_retry(&self, seq: u64) -> bool {
        // SAFETY: the notifier is registered (type invariant).
        unsafe { bindings::mmu_interval_read_retry(self.notifier.get(), seq as usize) }
    }

    /// The `invalidate` operation of `OPS`.
    ///
    /// # Safety
    ///
    /// Called by the MMU notifier core only, on a notifier registered by [`Self::new`], with a
    /// valid range.
    unsafe extern "C" fn invalidate_callback(
        notifier: *mut bindings::mmu_interval_notifier,
        range: *const bindings::mmu_notifier_range,
        cur_seq: usize,
    ) -> bool {
        // SAFETY: `notifier` is the `notifier` field of an `IntervalNotifier<T>` (only `new`
        // registers `OPS`), which stays valid while it is registered.
        let this = unsafe { &*crate::container_of!(Opaque::cast_from(notifier), Self, notifier) };
        let inv = Invalidation {
            notifier,
            // SAFETY: the kernel passes a valid range for the duration of the callback.
            range: unsafe { &*range },
            cur_seq: cur_seq as u64,
        };
        T::invalidate(this, &inv)
    }
}

#[pinned_drop]
impl<T: IntervalNotifierOps> PinnedDrop for IntervalNotifier<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: the notifier is registered (type invariant). This waits for running callbacks,
        // after which none can start: `data` may go.
        unsafe { bindings::mmu_interval_notifier_remove(self.notifier.get()) };
    }
}
