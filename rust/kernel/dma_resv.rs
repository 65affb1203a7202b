// SPDX-License-Identifier: GPL-2.0

//! DMA reservation objects.
//!
//! A reservation object holds the fences of the operations that use a
//! buffer, each with a usage (kernel, write, read, bookkeep), so that a new
//! user can wait for the earlier ones: this is implicit synchronisation.
//!
//! A job that uses several buffers locks their reservation objects together
//! with [`LockedResvs`] (one `ww_acquire_ctx`, with the wound/wait back-off
//! of `drm_exec`), reads the fences it must wait for under those locks,
//! reserves a fence slot in each ([`LockedResvs::reserve`]) and, once its own
//! fence exists, publishes it in all of them with [`FenceSlots::publish`],
//! which cannot fail, before the locks are dropped.
//!
//! C header: [`include/linux/dma-resv.h`](srctree/include/linux/dma-resv.h)

use crate::{
    bindings,
    dma_fence::Fence,
    error::to_result,
    prelude::*,
    sync::aref::ARef,
    types::{NotThreadSafe, Opaque},
};
use core::{marker::PhantomData, ops::Deref, ptr};

/// How a fence uses a buffer.
///
/// Usages are ordered as in C, the strongest first: `Kernel < Write < Read
/// < Bookkeep`. Asking for the fences of one usage returns those of the
/// stronger usages too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum Usage {
    /// Kernel memory management (moves, clears).
    Kernel = bindings::dma_resv_usage_DMA_RESV_USAGE_KERNEL,
    /// Implicit write.
    Write = bindings::dma_resv_usage_DMA_RESV_USAGE_WRITE,
    /// Implicit read.
    Read = bindings::dma_resv_usage_DMA_RESV_USAGE_READ,
    /// Bookkeeping only: never waited for implicitly.
    Bookkeep = bindings::dma_resv_usage_DMA_RESV_USAGE_BOOKKEEP,
}

impl Usage {
    /// The usage of a job that reads, or also writes, the buffer.
    pub fn rw(write: bool) -> Self {
        if write {
            Usage::Write
        } else {
            Usage::Read
        }
    }

    /// The fences a new user must wait for: a writer waits for readers and
    /// writers, a reader only for writers.
    pub fn wait_for(write: bool) -> Self {
        if write {
            Usage::Read
        } else {
            Usage::Write
        }
    }
}

/// A reservation object, borrowed from its owner (usually a GEM object).
///
/// # Invariants
///
/// A `Resv` is only reached through a reference (from [`Resv::from_raw`] or
/// an owner such as [`OwnedResv`]), and while that reference lives the
/// inner `struct dma_resv` is initialised (`dma_resv_init()`) and not yet
/// finalised (`dma_resv_fini()`).
#[repr(transparent)]
pub struct Resv(Opaque<bindings::dma_resv>);

// SAFETY: reservation objects are shared between threads; their state is
// protected by their ww_mutex and RCU.
unsafe impl Send for Resv {}
// SAFETY: see above.
unsafe impl Sync for Resv {}

impl Resv {
    /// Borrow a reservation object.
    ///
    /// # Safety
    ///
    /// `ptr` must point to an initialised `struct dma_resv` valid for `'a`.
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::dma_resv) -> &'a Self {
        // SAFETY: transparent wrapper. INVARIANT: the caller promises that
        // the object is initialised and stays valid for `'a`.
        unsafe { &*ptr.cast() }
    }

    /// The raw pointer.
    pub fn as_raw(&self) -> *mut bindings::dma_resv {
        self.0.get()
    }

    /// Whether the object is locked (by anyone).
    pub fn is_locked(&self) -> bool {
        // SAFETY: by the type invariants the object is valid.
        unsafe { bindings::dma_resv_is_locked(self.as_raw()) }
    }

    /// Lock the object, interruptibly (without a ww acquire context, so the
    /// caller must not hold another reservation lock).
    pub fn lock(&self) -> Result<ResvGuard<'_>> {
        // SAFETY: by the type invariants the object is valid; a null context locks it on its own.
        to_result(unsafe {
            bindings::dma_resv_lock_interruptible(self.as_raw(), core::ptr::null_mut())
        })?;
        // INVARIANT: this task holds the lock; nothing is reserved yet.
        Ok(ResvGuard {
            resv: self,
            reserved: 0,
            _not_send: NotThreadSafe,
        })
    }

    /// Whether every fence of `usage` (and of the stronger usages) has
    /// signalled. Never sleeps and never allocates: usable where waiting is
    /// not allowed, such as an MMU notifier that may not block.
    pub fn test_signaled(&self, usage: Usage) -> bool {
        // SAFETY: by the type invariants the object is valid; the call reads its fences under RCU.
        unsafe { bindings::dma_resv_test_signaled(self.as_raw(), usage as u32) }
    }

    /// Wait, uninterruptibly and without the lock, up to `timeout` for every
    /// fence of `usage` (and of the stronger usages): whether they all
    /// signalled. Does not allocate, so it may be called from reclaim (MMU
    /// notifiers), as long as no fence it waits for needs memory to signal.
    pub fn wait_timeout(&self, usage: Usage, timeout: crate::time::Delta) -> bool {
        let ms = u32::try_from(timeout.as_millis_ceil().max(0)).unwrap_or(u32::MAX);
        let jiffies = crate::time::msecs_to_jiffies(ms);
        // SAFETY: by the type invariants the object is valid; an uninterruptible wait returns the
        // time left (> 0) once all fences signalled, or 0 on timeout.
        let left =
            unsafe { bindings::dma_resv_wait_timeout(self.as_raw(), usage as u32, false, jiffies) };
        left > 0
    }

    /// References to the fences a user of the given `usage` must wait for,
    /// read without the lock (a snapshot: fences may be added right after).
    pub fn fences(&self, usage: Usage) -> Result<KVec<ARef<Fence>>> {
        let mut count: u32 = 0;
        let mut array: *mut *mut bindings::dma_fence = core::ptr::null_mut();
        // SAFETY: by the type invariants the object is valid; the call takes a reference to each
        // fence and returns them in a kmalloc'ed array.
        to_result(unsafe {
            bindings::dma_resv_get_fences(self.as_raw(), usage as u32, &mut count, &mut array)
        })?;
        let mut out = KVec::new();
        let mut result = Ok(());
        for i in 0..count as usize {
            // SAFETY: `array` holds `count` fence pointers, each with a
            // reference we now own.
            let fence = unsafe { Fence::from_raw_owned(*array.add(i)) };
            if let Some(f) = fence {
                if result.is_ok() {
                    result = out.push(f, GFP_KERNEL).map_err(Error::from);
                }
            }
        }
        // SAFETY: the array was allocated by `dma_resv_get_fences()`.
        unsafe { bindings::kfree(array.cast()) };
        result.map(|()| out)
    }
}

/// A reservation object that its owner initialises and frees, for objects
/// that are not part of a GEM object or a dma-buf (and for tests).
#[pin_data(PinnedDrop)]
pub struct OwnedResv {
    #[pin]
    resv: Opaque<bindings::dma_resv>,
}

// SAFETY: like `Resv`, the object is protected by its ww_mutex and RCU.
unsafe impl Send for OwnedResv {}
// SAFETY: see above.
unsafe impl Sync for OwnedResv {}

impl OwnedResv {
    /// A new, empty reservation object.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `dma_resv_init()` initialises the object in place; it
            // is pinned, as its ww_mutex requires.
            resv <- Opaque::ffi_init(|resv| unsafe { bindings::dma_resv_init(resv) }),
        })
    }
}

impl Deref for OwnedResv {
    type Target = Resv;

    fn deref(&self) -> &Resv {
        // SAFETY: the object was initialised by `new` and lives as long as
        // `self`.
        unsafe { Resv::from_raw(self.resv.get()) }
    }
}

#[pinned_drop]
impl PinnedDrop for OwnedResv {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: the object is initialised, and unlocked: a lock guard
        // borrows it, so none is left.
        unsafe { bindings::dma_resv_fini(self.resv.get()) };
    }
}

/// A locked reservation object.
///
/// # Invariants
///
/// `resv` is locked by the current task for the guard's life, and at least
/// `reserved` fence slots were reserved in it while it was.
pub struct ResvGuard<'a> {
    resv: &'a Resv,
    reserved: u32,
    _not_send: NotThreadSafe,
}

impl ResvGuard<'_> {
    /// Make room for `num` more fences (for [`Self::add_fence`]).
    ///
    /// The room lasts until the guard is dropped: with `CONFIG_DEBUG_MUTEXES`
    /// unlocking takes it back.
    pub fn reserve_fences(&mut self, num: u32) -> Result {
        // SAFETY: by the type invariants we hold the lock.
        to_result(unsafe { bindings::dma_resv_reserve_fences(self.resv.as_raw(), num) })?;
        // INVARIANT: there is room for `num` fences now, and there still is
        // for the `reserved` that were counted before, if more.
        self.reserved = self.reserved.max(num);
        Ok(())
    }

    /// Add a fence, in a slot reserved by [`Self::reserve_fences`] while this
    /// guard held the lock.
    ///
    /// Without one (a bug in the caller) it warns and does not add the
    /// fence. [`LockedResvs`] proves the reservation at compile time instead.
    pub fn add_fence(&mut self, fence: &Fence, usage: Usage) {
        if crate::warn_on!(self.reserved == 0) {
            return;
        }
        self.reserved -= 1;
        // SAFETY: by the type invariants we hold the lock and a slot is
        // reserved; the object takes its own fence reference.
        unsafe { bindings::dma_resv_add_fence(self.resv.as_raw(), fence.as_raw(), usage as u32) };
    }

    /// The fences that a user of the given `usage` must wait for, read under
    /// the lock.
    pub fn fences(&self, usage: Usage) -> ResvFences<'_> {
        // SAFETY: by the type invariants we hold the lock while the iterator
        // borrows the guard, and fences are only added through `&mut self`.
        unsafe { ResvFences::new(self.resv, usage) }
    }
}

impl Drop for ResvGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: by the type invariants we hold the lock.
        unsafe { bindings::dma_resv_unlock(self.resv.as_raw()) };
    }
}

/// The fences of a locked reservation object, of a usage and the stronger
/// ones (`dma_resv_for_each_fence()`).
///
/// From [`ResvGuard::fences`] or [`LockedResvs::fences`]. The fences are
/// borrowed for as long as the object stays locked and unchanged;
/// `ARef::from` takes a reference to keep one longer.
pub struct ResvFences<'s> {
    cursor: bindings::dma_resv_iter,
    started: bool,
    _locked: PhantomData<&'s Resv>,
}

impl<'s> ResvFences<'s> {
    /// # Safety
    ///
    /// `resv` must be locked by the current task, and no fence added to or
    /// removed from it, for `'s`.
    unsafe fn new(resv: &'s Resv, usage: Usage) -> Self {
        let mut cursor: bindings::dma_resv_iter = pin_init::zeroed();
        // SAFETY: `cursor` is a valid iterator to initialise; `resv` is valid.
        unsafe { bindings::dma_resv_iter_begin(&mut cursor, resv.as_raw(), usage as u32) };
        Self {
            cursor,
            started: false,
            _locked: PhantomData,
        }
    }
}

impl<'s> Iterator for ResvFences<'s> {
    type Item = &'s Fence;

    fn next(&mut self) -> Option<&'s Fence> {
        // SAFETY: the cursor was begun on an object that is locked by this
        // task (`new`'s precondition); after the last fence both calls keep
        // returning null.
        let fence = unsafe {
            if self.started {
                bindings::dma_resv_iter_next(&mut self.cursor)
            } else {
                self.started = true;
                bindings::dma_resv_iter_first(&mut self.cursor)
            }
        };
        if fence.is_null() {
            return None;
        }
        // SAFETY: the object holds a reference to each of its fences, and
        // keeps them while it is locked and unchanged, for `'s`.
        Some(unsafe { Fence::from_raw(fence) })
    }
}

/// The reservation objects of a list, all locked with one
/// `ww_acquire_ctx` (the way `drm_exec` locks them).
///
/// [`LockedResvs::lock`] takes the list: each object once (an object listed
/// twice, such as a buffer named twice or two GEM objects that share a
/// reservation object, is one object here) and, when it would deadlock with
/// another task locking an overlapping set, backs off (drops its locks,
/// waits for the contended object and starts again). Indices (`idx`) are
/// positions in the caller's list. Dropping the set unlocks everything.
///
/// # Examples
///
/// ```
/// use kernel::dma_fence::Fence;
/// use kernel::dma_resv::{LockedResvs, Resv, Usage};
/// use kernel::{prelude::*, sync::aref::ARef};
///
/// /// Lock the buffers, gather what the job waits for, publish its fence.
/// fn submit(
///     resvs: &[&Resv],
///     writes: &[bool],
///     job: impl FnOnce(KVec<ARef<Fence>>) -> Result<ARef<Fence>>,
/// ) -> Result {
///     let mut locked = LockedResvs::lock(resvs)?;
///     let mut deps = KVec::new();
///     for (i, write) in writes.iter().enumerate() {
///         for fence in locked.fences(i, Usage::wait_for(*write))? {
///             deps.push(ARef::from(fence), GFP_KERNEL)?;
///         }
///     }
///     let slots = locked.reserve()?;
///     let fence = job(deps)?;
///     slots.publish(&fence, |i| Usage::rw(writes.get(i) == Some(&true)));
///     Ok(())
/// }
/// ```
///
/// # Invariants
///
/// - `ctx` is an initialised acquire context of `reservation_ww_class`,
///   made by the current task and not finished, and `locked` are the objects
///   it holds, each once, locked by the current task.
/// - Every entry of `index` is a position in `locked`, and every position
///   in `locked` is in `index`.
/// - `usages` is at least as long as `locked`.
pub struct LockedResvs<'a> {
    ctx: Pin<KBox<Opaque<bindings::ww_acquire_ctx>>>,
    locked: KVec<&'a Resv>,
    index: KVec<usize>,
    usages: KVec<Option<Usage>>,
    _not_send: NotThreadSafe,
}

impl<'a> LockedResvs<'a> {
    /// Lock the reservation objects of `objs`, interruptibly.
    ///
    /// The calling task must hold no other reservation lock. Fails with
    /// `EINTR` when a signal is pending, or `ENOMEM`; then no object is
    /// left locked.
    pub fn lock(objs: &[&'a Resv]) -> Result<Self> {
        let n = objs.len();
        let locked = KVec::with_capacity(n, GFP_KERNEL)?;
        let index = KVec::with_capacity(n, GFP_KERNEL)?;
        let usages = KVec::from_elem(None, n, GFP_KERNEL)?;
        let ctx = KBox::pin_init(
            Opaque::ffi_init(|ctx: *mut bindings::ww_acquire_ctx| {
                // SAFETY: `ctx` is valid for writes and pinned (lockdep
                // tracks its address); the class is the one of every
                // reservation object.
                unsafe { bindings::ww_acquire_init(ctx, &raw mut bindings::reservation_ww_class) }
            }),
            GFP_KERNEL,
        )?;
        // INVARIANT: the context is initialised and holds no object yet; on
        // an error from here on, `drop` unlocks what it holds and finishes it.
        let mut set = Self {
            ctx,
            locked,
            index,
            usages,
            _not_send: NotThreadSafe,
        };
        set.lock_all(objs)?;
        // SAFETY: the context is initialised and every object is locked.
        unsafe { bindings::ww_acquire_done(set.ctx.get()) };
        Ok(set)
    }

    fn lock_all(&mut self, objs: &[&'a Resv]) -> Result {
        loop {
            // `locked` is empty, or holds the object that the back-off below
            // waited for.
            self.index.clear();
            let mut contended = None;
            for &obj in objs {
                // SAFETY: by `Resv`'s invariants the object is valid; the context is ours.
                let ret =
                    unsafe { bindings::dma_resv_lock_interruptible(obj.as_raw(), self.ctx.get()) };
                let pos = if ret == 0 {
                    self.locked.push(obj, GFP_KERNEL)?;
                    self.locked.len() - 1
                } else if ret == EALREADY.to_errno() {
                    // Locked through this context already: listed twice.
                    self.locked
                        .iter()
                        .position(|l| ptr::eq(*l, obj))
                        .ok_or(EINVAL)?
                } else if ret == EDEADLK.to_errno() {
                    contended = Some(obj);
                    break;
                } else {
                    return Err(Error::from_errno(ret));
                };
                self.index.push(pos, GFP_KERNEL)?;
            }
            let Some(obj) = contended else {
                return Ok(());
            };
            // An older context holds `obj`: drop every lock, wait for `obj`,
            // and start again with it held.
            self.unlock_all();
            // SAFETY: by `Resv`'s invariants the object is valid; it was the contended one; the
            // context is ours and holds no lock.
            to_result(unsafe {
                bindings::dma_resv_lock_slow_interruptible(obj.as_raw(), self.ctx.get())
            })?;
            self.locked.push(obj, GFP_KERNEL)?;
        }
    }

    fn unlock_all(&mut self) {
        while let Some(obj) = self.locked.pop() {
            // SAFETY: by the type invariants, we hold the lock.
            unsafe { bindings::dma_resv_unlock(obj.as_raw()) };
        }
    }

    /// The number of entries of the list that was locked.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the list that was locked was empty.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The number of distinct reservation objects locked.
    pub fn num_locked(&self) -> usize {
        self.locked.len()
    }

    /// The fences that a user of entry `idx` with the given `usage` must
    /// wait for, read under the locks; `EINVAL` if there is no entry `idx`.
    pub fn fences(&self, idx: usize, usage: Usage) -> Result<ResvFences<'_>> {
        let obj = self
            .index
            .get(idx)
            .and_then(|&pos| self.locked.get(pos))
            .ok_or(EINVAL)?;
        // SAFETY: by the type invariants the object is locked by this task,
        // until `self` is dropped, and fences are only added through
        // `&mut self`.
        Ok(unsafe { ResvFences::new(obj, usage) })
    }

    /// Reserve a fence slot in every object, for one [`FenceSlots::publish`].
    ///
    /// To publish another fence, reserve again.
    pub fn reserve(&mut self) -> Result<FenceSlots<'_, 'a>> {
        for obj in self.locked.iter() {
            // SAFETY: by the type invariants we hold the lock.
            to_result(unsafe { bindings::dma_resv_reserve_fences(obj.as_raw(), 1) })?;
        }
        // INVARIANT: every object has room for one more fence.
        Ok(FenceSlots { set: self })
    }
}

impl Drop for LockedResvs<'_> {
    fn drop(&mut self) {
        self.unlock_all();
        // SAFETY: the context is initialised, ours, and holds no lock.
        unsafe { bindings::ww_acquire_fini(self.ctx.get()) };
    }
}

/// A fence slot reserved in each object of a [`LockedResvs`], which stay
/// locked while it exists: the right to publish one fence.
///
/// # Invariants
///
/// Every object of `set` has room for one more fence.
pub struct FenceSlots<'s, 'a> {
    set: &'s mut LockedResvs<'a>,
}

impl FenceSlots<'_, '_> {
    /// Add `fence` to every object, with the usage `usage(idx)` of each entry
    /// `idx` of the locked list; an object listed several times gets the
    /// fence once, with the strongest of its entries' usages.
    ///
    /// Once it is in, others can wait for the fence: the code it depends on
    /// to signal is in a fence signalling critical section (see
    /// [`crate::dma_fence::SignallingSection`]). `fence` must not be a
    /// container (a `dma_fence_chain` or `dma_fence_array`): the fence core
    /// warns about those.
    pub fn publish(self, fence: &Fence, mut usage: impl FnMut(usize) -> Usage) {
        let set = self.set;
        set.usages.iter_mut().for_each(|u| *u = None);
        for (idx, &pos) in set.index.iter().enumerate() {
            let new = usage(idx);
            if let Some(u) = set.usages.get_mut(pos) {
                *u = Some(u.map_or(new, |old| old.min(new)));
            }
        }
        for (obj, u) in set.locked.iter().zip(set.usages.iter()) {
            if let Some(u) = u {
                // SAFETY: by the type invariants we hold the lock and a slot
                // is reserved; the object takes its own fence reference.
                unsafe { bindings::dma_resv_add_fence(obj.as_raw(), fence.as_raw(), *u as u32) };
            }
        }
    }
}

#[macros::kunit_tests(rust_dma_resv)]
mod tests {
    use super::*;
    use crate::dma_fence::{FenceContext, FenceTimeline, SignalFence};

    struct Test;

    impl FenceTimeline for Test {
        const DRIVER_NAME: &'static CStr = c"kunit";
        const TIMELINE_NAME: &'static CStr = c"rust_dma_resv";
    }

    fn new_resv() -> Result<Pin<KBox<OwnedResv>>> {
        KBox::pin_init(OwnedResv::new(), GFP_KERNEL)
    }

    fn new_fence() -> Result<SignalFence> {
        FenceContext::<Test>::new().fence(1, GFP_KERNEL)
    }

    /// Whether `fence` is among `fences`, and how many there are.
    fn find(fences: ResvFences<'_>, fence: &Fence) -> (bool, usize) {
        fences.fold((false, 0), |(found, n), f| {
            (found || ptr::eq(f, fence), n + 1)
        })
    }

    #[test]
    fn lock_same_resv_twice() -> Result {
        let a = new_resv()?;
        let set = LockedResvs::lock(&[&a, &a])?;
        assert_eq!(set.len(), 2);
        assert_eq!(set.num_locked(), 1);
        assert!(a.is_locked());
        drop(set);
        assert!(!a.is_locked());
        Ok(())
    }

    #[test]
    fn publish_write_read_back() -> Result {
        let (a, b) = (new_resv()?, new_resv()?);
        let job = new_fence()?;
        let mut set = LockedResvs::lock(&[&a, &b])?;
        assert_eq!(find(set.fences(0, Usage::Bookkeep)?, &job), (false, 0));
        set.reserve()?
            .publish(&job, |i| if i == 0 { Usage::Write } else { Usage::Read });
        // A reader of `a` waits for its writer; a reader of `b` does not
        // wait for another reader, a writer does.
        assert_eq!(
            find(set.fences(0, Usage::wait_for(false))?, &job),
            (true, 1)
        );
        assert_eq!(
            find(set.fences(1, Usage::wait_for(false))?, &job),
            (false, 0)
        );
        assert_eq!(find(set.fences(1, Usage::wait_for(true))?, &job), (true, 1));
        assert!(set.fences(2, Usage::Read).is_err());
        drop(set);
        // Still there once unlocked, until the fence signals.
        assert_eq!(a.fences(Usage::Write)?.len(), 1);
        job.signal();
        assert_eq!(a.fences(Usage::Write)?.len(), 0);
        Ok(())
    }

    #[test]
    fn slots_cover_every_object() -> Result {
        let objs = [new_resv()?, new_resv()?, new_resv()?, new_resv()?];
        let list: [&Resv; 5] = [&objs[0], &objs[1], &objs[2], &objs[3], &objs[0]];
        let (first, second) = (new_fence()?, new_fence()?);
        let mut set = LockedResvs::lock(&list)?;
        assert_eq!(set.num_locked(), 4);
        // Entry 0 reads `objs[0]`, entry 4 writes it: it gets the fence once,
        // as a write.
        set.reserve()?
            .publish(&first, |i| if i == 4 { Usage::Write } else { Usage::Read });
        set.reserve()?.publish(&second, |_| Usage::Bookkeep);
        for i in 0..list.len() {
            let (found, n) = find(set.fences(i, Usage::Read)?, &first);
            assert!(found);
            assert_eq!(n, 1);
            assert_eq!(find(set.fences(i, Usage::Bookkeep)?, &second), (true, 2));
        }
        assert_eq!(find(set.fences(0, Usage::Write)?, &first), (true, 1));
        assert_eq!(find(set.fences(1, Usage::Write)?, &first), (false, 0));
        Ok(())
    }

    #[test]
    fn test_and_wait_without_lock() -> Result {
        let a = new_resv()?;
        assert!(a.test_signaled(Usage::Bookkeep));
        let job = new_fence()?;
        LockedResvs::lock(&[&a])?
            .reserve()?
            .publish(&job, |_| Usage::Bookkeep);
        // A bookkeeping fence is not seen by an implicit reader or writer.
        assert!(a.test_signaled(Usage::Read));
        assert!(!a.test_signaled(Usage::Bookkeep));
        assert!(!a.wait_timeout(Usage::Bookkeep, crate::time::Delta::from_millis(1)));
        job.signal();
        assert!(a.test_signaled(Usage::Bookkeep));
        assert!(a.wait_timeout(Usage::Bookkeep, crate::time::Delta::from_millis(1)));
        Ok(())
    }

    #[test]
    fn drop_unlocks() -> Result {
        let (a, b) = (new_resv()?, new_resv()?);
        let set = LockedResvs::lock(&[&b, &a])?;
        assert!(a.is_locked() && b.is_locked());
        drop(set);
        assert!(!a.is_locked() && !b.is_locked());
        let guard = a.lock()?;
        assert!(a.is_locked());
        drop(guard);
        let set = LockedResvs::lock(&[&a, &b])?;
        assert_eq!(set.num_locked(), 2);
        Ok(())
    }

    #[test]
    fn empty_list() -> Result {
        let mut set = LockedResvs::lock(&[])?;
        assert!(set.is_empty());
        let fence = new_fence()?;
        set.reserve()?.publish(&fence, |_| Usage::Write);
        Ok(())
    }

    #[test]
    fn guard_adds_in_reserved_slot() -> Result {
        let a = new_resv()?;
        let job = new_fence()?;
        let mut guard = a.lock()?;
        guard.reserve_fences(1)?;
        guard.add_fence(&job, Usage::Write);
        assert_eq!(find(guard.fences(Usage::Write), &job), (true, 1));
        Ok(())
    }
}
