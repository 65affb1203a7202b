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

    /// The C notifier, for the functions that take it (such as `hmm_range_fault()`).
    pub fn as_raw(&self) -> *mut bindings::mmu_interval_notifier {
        self.notifier.get()
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

#[macros::kunit_tests(rust_mm_interval_notifier)]
mod tests {
    use super::*;
    use crate::{
        mm::user_pages::test_support::{self, unmap, PROT_READ, PROT_WRITE},
        page::PAGE_SIZE,
        sync::{new_spinlock, Arc, SpinLock},
    };

    /// Map `npages` pages of anonymous, writable memory into the test's address space.
    fn map(npages: usize) -> Result<usize> {
        test_support::map(npages, PROT_READ | PROT_WRITE)
    }

    /// What a notifier's callback saw.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    struct Seen {
        calls: usize,
        start: usize,
        end: usize,
        blockable: bool,
    }

    /// Notifier data: what the callback saw, shared with the test, which looks at it after the
    /// notifier is gone too. The lock is the driver lock of the pattern in the module's
    /// documentation.
    struct Recorder {
        seen: Arc<SpinLock<Seen>>,
    }

    impl IntervalNotifierOps for Recorder {
        fn invalidate(notifier: &IntervalNotifier<Self>, inv: &Invalidation<'_>) -> bool {
            let mut seen = notifier.data().seen.lock();
            seen.calls += 1;
            seen.start = inv.start();
            seen.end = inv.end();
            seen.blockable = inv.blockable();
            inv.set_seq();
            true
        }
    }

    type Notifier = Pin<KBox<IntervalNotifier<Recorder>>>;

    /// A notifier on `[start, start + len)` of `mm`, and what it sees.
    fn watch(mm: &Mm, start: usize, len: usize) -> Result<(Notifier, Arc<SpinLock<Seen>>)> {
        let seen = Arc::pin_init(new_spinlock!(Seen::default()), GFP_KERNEL)?;
        let data = Ok::<_, Error>(Recorder { seen: seen.clone() });
        let notifier = KBox::pin_init(IntervalNotifier::new(mm, start, len, data), GFP_KERNEL)?;
        Ok((notifier, seen))
    }

    /// Whether `notifier` must retry a read side section that began with `seq`, asked with the
    /// lock held that its callback holds.
    fn must_retry(notifier: &IntervalNotifier<Recorder>, seq: u64) -> bool {
        let _guard = notifier.data().seen.lock();
        notifier.read_retry(seq)
    }

    #[test]
    fn unmap_calls_the_notifier_of_the_range() -> Result {
        let (a, b) = (map(4)?, map(4)?);
        let task = crate::current!();
        let mm = task.mm().ok_or(EINVAL)?;
        let (na, seen_a) = watch(mm, a, 4 * PAGE_SIZE)?;
        let (nb, seen_b) = watch(mm, b, 4 * PAGE_SIZE)?;
        assert_eq!(na.mm().as_raw(), mm.as_raw());
        let (seq_a, seq_b) = (na.read_begin(), nb.read_begin());
        assert!(!must_retry(&na, seq_a));
        // The second and third pages of `a` go: `a`'s notifier is told, with their range.
        unmap(a + PAGE_SIZE, 2 * PAGE_SIZE)?;
        assert_eq!(
            *seen_a.lock(),
            Seen {
                calls: 1,
                start: a + PAGE_SIZE,
                end: a + 3 * PAGE_SIZE,
                blockable: true,
            }
        );
        assert!(must_retry(&na, seq_a));
        // A read side section that begins after the invalidation need not retry.
        let seq = na.read_begin();
        assert!(!must_retry(&na, seq));
        // `b` was not touched.
        assert_eq!(*seen_b.lock(), Seen::default());
        assert!(!must_retry(&nb, seq_b));
        Ok(())
    }

    #[test]
    fn unmap_past_the_range_is_not_seen() -> Result {
        let a = map(4)?;
        let task = crate::current!();
        let mm = task.mm().ok_or(EINVAL)?;
        // A notifier on the middle two pages: the pages either side are not its business.
        let (n, seen) = watch(mm, a + PAGE_SIZE, 2 * PAGE_SIZE)?;
        let seq = n.read_begin();
        unmap(a, PAGE_SIZE)?;
        unmap(a + 3 * PAGE_SIZE, PAGE_SIZE)?;
        assert_eq!(seen.lock().calls, 0);
        assert!(!must_retry(&n, seq));
        // An unmap that covers it and more is seen whole.
        unmap(a, 4 * PAGE_SIZE)?;
        assert_eq!(
            *seen.lock(),
            Seen {
                calls: 1,
                start: a,
                end: a + 4 * PAGE_SIZE,
                blockable: true,
            }
        );
        assert!(must_retry(&n, seq));
        Ok(())
    }

    #[test]
    fn dropped_notifier_is_not_called() -> Result {
        let a = map(2)?;
        let task = crate::current!();
        let mm = task.mm().ok_or(EINVAL)?;
        let (n, seen) = watch(mm, a, 2 * PAGE_SIZE)?;
        unmap(a, PAGE_SIZE)?;
        assert_eq!(seen.lock().calls, 1);
        drop(n);
        unmap(a + PAGE_SIZE, PAGE_SIZE)?;
        assert_eq!(seen.lock().calls, 1);
        Ok(())
    }
}
