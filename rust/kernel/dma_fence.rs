// SPDX-License-Identifier: GPL-2.0

//! DMA fences.
//!
//! A DMA fence is a point in time at which an asynchronous operation (usually
//! a GPU job) completes: it starts unsignalled, is signalled exactly once,
//! optionally with an error, and is reference-counted so that other drivers,
//! sync objects and reservation objects can wait for it.
//!
//! [`Fence`] is any fence, of any driver. A driver that creates fences uses a
//! [`FenceContext`] (one per timeline, whose fences signal in seqno order) to
//! make [`SignalFence`]s: the unique right to signal one fence. Dropping a
//! [`SignalFence`] that was never signalled signals it with `-ECANCELED`, so
//! a fence can never be left pending.
//!
//! Driver fences use the fence's inline lock and no `release` or `wait`
//! callback: once signalled they no longer reference the driver's code, and
//! the fence core frees them with `kfree_rcu()`.
//!
//! C header: [`include/linux/dma-fence.h`](srctree/include/linux/dma-fence.h)

use crate::{
    alloc::Flags,
    bindings,
    error::to_result,
    prelude::*,
    sync::aref::{ARef, AlwaysRefCounted},
    time::Jiffies,
    types::Opaque,
};
use core::{marker::PhantomData, ptr::NonNull};

/// A reference-counted DMA fence.
///
/// # Invariants
///
/// The inner `struct dma_fence` is initialised and its reference count is
/// non-zero while a `&Fence` exists.
#[repr(transparent)]
pub struct Fence(Opaque<bindings::dma_fence>);

// SAFETY: DMA fences may be used and released from any thread.
unsafe impl Send for Fence {}
// SAFETY: all operations on a shared fence are synchronised by the fence
// core (its lock, atomic flags and RCU).
unsafe impl Sync for Fence {}

// SAFETY: the reference count is the fence's `refcount`, managed by
// `dma_fence_get()` and `dma_fence_put()`.
unsafe impl AlwaysRefCounted for Fence {
    fn inc_ref(&self) {
        // SAFETY: by the type invariants the fence is valid.
        unsafe { bindings::dma_fence_get(self.as_raw()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller gives up one reference to a valid fence.
        unsafe { bindings::dma_fence_put(obj.as_ptr().cast()) };
    }
}

impl Fence {
    /// Borrow a fence from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to an initialised fence whose reference count stays
    /// non-zero for `'a`.
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::dma_fence) -> &'a Self {
        // SAFETY: `Fence` is a transparent wrapper; the caller guarantees
        // validity for `'a`.
        unsafe { &*ptr.cast() }
    }

    /// Take ownership of one reference to a fence; `None` for a null pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must be null or point to an initialised fence, and the caller
    /// must own one reference, which is transferred to the returned value.
    pub unsafe fn from_raw_owned(ptr: *mut bindings::dma_fence) -> Option<ARef<Self>> {
        // SAFETY: the caller transfers one reference of a valid fence.
        NonNull::new(ptr).map(|p| unsafe { ARef::from_raw(p.cast()) })
    }

    /// The raw `struct dma_fence` pointer.
    pub fn as_raw(&self) -> *mut bindings::dma_fence {
        self.0.get()
    }

    /// The fence context (timeline) this fence belongs to.
    pub fn context(&self) -> u64 {
        // SAFETY: `context` is set by `dma_fence_init()` and never changes.
        unsafe { (*self.as_raw()).context }
    }

    /// The sequence number of this fence on its timeline.
    pub fn seqno(&self) -> u64 {
        // SAFETY: `seqno` is set by `dma_fence_init()` and never changes.
        unsafe { (*self.as_raw()).seqno }
    }

    /// Whether the fence has signalled (this may signal it, if its driver
    /// can tell that it has completed).
    pub fn is_signaled(&self) -> bool {
        // SAFETY: by the type invariants the fence is valid.
        unsafe { bindings::dma_fence_is_signaled(self.as_raw()) }
    }

    /// The completion status: `Ok(false)` while pending, `Ok(true)` when
    /// signalled without error, and the error it was signalled with.
    pub fn status(&self) -> Result<bool> {
        // SAFETY: by the type invariants the fence is valid.
        let ret = unsafe { bindings::dma_fence_get_status(self.as_raw()) };
        to_result(ret.min(0))?;
        Ok(ret > 0)
    }

    /// Wait for the fence to signal, for at most `timeout` jiffies (forever
    /// with `None`). Returns whether it signalled; an interruptible wait
    /// returns `ERESTARTSYS` when a signal is pending.
    pub fn wait(&self, interruptible: bool, timeout: Option<Jiffies>) -> Result<bool> {
        // MAX_SCHEDULE_TIMEOUT is LONG_MAX: wait forever.
        let timeout = match timeout {
            Some(t) => isize::try_from(t).unwrap_or(isize::MAX),
            None => isize::MAX,
        };
        // SAFETY: by the type invariants the fence is valid; we may sleep.
        let ret =
            unsafe { bindings::dma_fence_wait_timeout(self.as_raw(), interruptible, timeout) };
        if ret < 0 {
            return Err(Error::from_errno(ret as i32));
        }
        Ok(ret > 0 || self.is_signaled())
    }
}

/// Names that a driver's fences report (in debugfs, sync_file info and
/// tracepoints).
pub trait FenceTimeline: 'static {
    /// Name of the driver.
    const DRIVER_NAME: &'static CStr;
    /// Name of the timeline.
    const TIMELINE_NAME: &'static CStr;
}

/// A fence context: a timeline whose fences signal in seqno order.
pub struct FenceContext<T: FenceTimeline> {
    context: u64,
    _timeline: PhantomData<T>,
}

impl<T: FenceTimeline> FenceContext<T> {
    const OPS: bindings::dma_fence_ops = bindings::dma_fence_ops {
        get_driver_name: Some(Self::driver_name),
        get_timeline_name: Some(Self::timeline_name),
        enable_signaling: None,
        signaled: None,
        wait: None,
        release: None,
        set_deadline: None,
    };

    unsafe extern "C" fn driver_name(_fence: *mut bindings::dma_fence) -> *const c_char {
        T::DRIVER_NAME.as_char_ptr()
    }

    unsafe extern "C" fn timeline_name(_fence: *mut bindings::dma_fence) -> *const c_char {
        T::TIMELINE_NAME.as_char_ptr()
    }

    /// Allocate a new fence context.
    pub fn new() -> Self {
        Self {
            // SAFETY: `dma_fence_context_alloc()` may be called from any context.
            context: unsafe { bindings::dma_fence_context_alloc(1) },
            _timeline: PhantomData,
        }
    }

    /// The context number.
    pub fn context(&self) -> u64 {
        self.context
    }

    /// Create an unsignalled fence with sequence number `seqno` on this
    /// timeline. The caller must signal the fences of a context in seqno
    /// order.
    pub fn fence(&self, seqno: u64, flags: Flags) -> Result<SignalFence> {
        let mem = KBox::<Opaque<bindings::dma_fence>>::new_uninit(flags | __GFP_ZERO)?;
        let ptr: *mut bindings::dma_fence = KBox::into_raw(mem).cast();
        // SAFETY: `ptr` is a zeroed allocation of a `struct dma_fence` made
        // with kmalloc, which the fence core frees with `kfree_rcu()` when the
        // last reference goes (no `release` callback). The ops table is
        // static and a null lock selects the fence's inline lock.
        unsafe {
            bindings::dma_fence_init(ptr, &Self::OPS, core::ptr::null_mut(), self.context, seqno)
        };
        // SAFETY: `dma_fence_init()` set the reference count to one, which
        // we own.
        let fence = unsafe { Fence::from_raw_owned(ptr) }.ok_or(ENOMEM)?;
        Ok(SignalFence(fence))
    }
}

impl<T: FenceTimeline> Default for FenceContext<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The right to signal one fence.
///
/// Dropping it unsignalled signals the fence with `-ECANCELED`.
pub struct SignalFence(ARef<Fence>);

impl SignalFence {
    /// A new reference to the fence, for waiters.
    pub fn fence(&self) -> ARef<Fence> {
        self.0.clone()
    }

    /// Signal the fence.
    pub fn signal(self) {
        // SAFETY: the fence is valid; signalling may happen in any context.
        unsafe { bindings::dma_fence_signal(self.0.as_raw()) };
    }

    /// Signal the fence with an error, which waiters see as its status.
    pub fn signal_error(self, err: Error) {
        // SAFETY: we are the fence's only signaller, so it is not signalled
        // yet, and `err` is a valid negative errno.
        unsafe {
            bindings::dma_fence_set_error(self.0.as_raw(), err.to_errno());
            bindings::dma_fence_signal(self.0.as_raw());
        }
    }
}

impl core::ops::Deref for SignalFence {
    type Target = Fence;

    fn deref(&self) -> &Fence {
        &self.0
    }
}

impl Drop for SignalFence {
    fn drop(&mut self) {
        let raw = self.0.as_raw();
        // SAFETY: the fence is valid, and we are its only signaller, so it
        // cannot become signalled between the test and the signal.
        unsafe {
            if !bindings::dma_fence_test_signaled_flag(raw) {
                // Never signalled: the operation was cancelled.
                bindings::dma_fence_set_error(raw, ECANCELED.to_errno());
                bindings::dma_fence_signal(raw);
            }
        }
    }
}

#[macros::kunit_tests(rust_dma_fence)]
mod tests {
    use super::*;

    struct Test;

    impl FenceTimeline for Test {
        const DRIVER_NAME: &'static CStr = c"kunit";
        const TIMELINE_NAME: &'static CStr = c"rust_dma_fence";
    }

    #[test]
    fn signal_ok() -> Result {
        let ctx = FenceContext::<Test>::new();
        let signaller = ctx.fence(1, GFP_KERNEL)?;
        let fence = signaller.fence();
        assert_eq!(fence.status(), Ok(false));
        assert!(!fence.is_signaled());
        assert_eq!(fence.context(), ctx.context());
        assert_eq!(fence.seqno(), 1);
        signaller.signal();
        assert_eq!(fence.status(), Ok(true));
        assert_eq!(fence.wait(false, Some(0)), Ok(true));
        Ok(())
    }

    #[test]
    fn signal_error() -> Result {
        let ctx = FenceContext::<Test>::new();
        let signaller = ctx.fence(7, GFP_KERNEL)?;
        let fence = signaller.fence();
        signaller.signal_error(EIO);
        assert_eq!(fence.status(), Err(EIO));
        Ok(())
    }

    #[test]
    fn drop_cancels() -> Result {
        let ctx = FenceContext::<Test>::new();
        let fence = ctx.fence(2, GFP_KERNEL)?.fence();
        assert_eq!(fence.status(), Err(ECANCELED));
        Ok(())
    }

    #[test]
    fn wait_times_out() -> Result {
        let ctx = FenceContext::<Test>::new();
        let signaller = ctx.fence(3, GFP_KERNEL)?;
        assert_eq!(signaller.fence().wait(false, Some(1)), Ok(false));
        Ok(())
    }
}
