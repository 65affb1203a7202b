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
//! A driver is told when any fence signals, without polling, through a
//! [`FenceCallback`] embedded in an [`Arc`]-allocated object (see
//! [`Fence::add_callback`]); [`SignallingSection`] annotates the code that
//! a fence's signalling depends on, for lockdep.
//!
//! C header: [`include/linux/dma-fence.h`](srctree/include/linux/dma-fence.h)

use crate::{
    alloc::Flags,
    bindings,
    error::to_result,
    prelude::*,
    sync::{
        aref::{ARef, AlwaysRefCounted},
        atomic::{Acquire, Atomic, Release},
        Arc,
    },
    time::Jiffies,
    types::{NotThreadSafe, Opaque},
};
use core::{
    marker::PhantomData,
    ptr::{self, NonNull},
};

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

    /// Call `T::signalled` once, when the fence signals.
    ///
    /// The registration keeps one reference to `obj` (given to
    /// [`FenceCallbackHandler::signalled`], or back by
    /// [`Fence::remove_callback`]) and one to the fence, so neither is freed
    /// while the callback is pending. A fence that never signals keeps `obj`
    /// forever: every fence must signal eventually.
    ///
    /// On error the callback is not registered and `obj` is given back:
    /// [`AddCallbackError::Signalled`] when the fence has already signalled
    /// (the caller goes on as the callback would have), and
    /// [`AddCallbackError::Busy`] when the object's [`FenceCallback`] is
    /// registered already (on this or another fence): one [`FenceCallback`]
    /// is on at most one fence at a time.
    ///
    /// A driver module must remove or see run all its pending callbacks
    /// before it is unloaded: the fence calls the module's code.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::dma_fence::{
    ///     impl_has_fence_callback, AddCallbackError, Fence, FenceCallback, FenceCallbackHandler,
    /// };
    /// use kernel::{prelude::*, sync::Arc};
    ///
    /// #[pin_data]
    /// struct Waiter {
    ///     #[pin]
    ///     cb: FenceCallback,
    /// }
    ///
    /// impl_has_fence_callback! {
    ///     impl HasFenceCallback for Waiter { self.cb }
    /// }
    ///
    /// impl FenceCallbackHandler for Waiter {
    ///     fn signalled(_this: Arc<Self>) {
    ///         // Atomic context, the fence's lock held: only queue work here.
    ///         pr_info!("dependency signalled\n");
    ///     }
    /// }
    ///
    /// fn wait_for(fence: &Fence) -> Result {
    ///     let waiter = Arc::pin_init(
    ///         pin_init!(Waiter { cb <- FenceCallback::new() }),
    ///         GFP_KERNEL,
    ///     )?;
    ///     match fence.add_callback(waiter) {
    ///         Ok(()) => Ok(()),
    ///         // Already signalled: nothing to wait for.
    ///         Err(AddCallbackError::Signalled(_waiter)) => Ok(()),
    ///         Err(AddCallbackError::Busy(_)) => Err(EBUSY),
    ///     }
    /// }
    /// ```
    pub fn add_callback<T, const ID: u64>(&self, obj: Arc<T>) -> Result<(), AddCallbackError<T>>
    where
        T: FenceCallbackHandler<ID>,
    {
        let ptr = Arc::into_raw(obj).cast_mut();
        // SAFETY: `ptr` points to a valid `T`, kept alive by the reference
        // that `into_raw` gave us.
        let slot = unsafe { &*T::raw_get_fence_callback(ptr) };
        // Claim the slot for this fence. Acquire: if the slot was released
        // by a callback or a removal, their writes to it happen before ours.
        if slot
            .fence
            .cmpxchg(ptr::null_mut(), self.as_raw(), Acquire)
            .is_err()
        {
            // SAFETY: gives back the reference taken by `into_raw` above.
            return Err(AddCallbackError::Busy(unsafe { Arc::from_raw(ptr) }));
        }
        // INVARIANT: the registration owns a reference to the fence (and,
        // from here on, the one to `obj` that `into_raw` gave us).
        let _ = ARef::into_raw(ARef::from(self));
        // SAFETY: the fence is valid; the slot's `dma_fence_cb` is on no
        // list (the slot was unclaimed) and does not move (it is in an
        // `Arc`, pinned, and kept alive by the registration's reference);
        // `signalled_fn::<T, ID>` expects a `dma_fence_cb` of a
        // `FenceCallback` in a `T` through `HasFenceCallback<ID>`.
        let ret = unsafe {
            bindings::dma_fence_add_callback(
                self.as_raw(),
                slot.cb.get(),
                Some(signalled_fn::<T, ID>),
            )
        };
        if ret == 0 {
            return Ok(());
        }
        // Not added (`-ENOENT`: the fence has signalled). Release the slot
        // under the fence's lock, where `remove_callback` reads it.
        {
            let _guard = self.lock_irqsave();
            slot.fence.store(ptr::null_mut(), Release);
        }
        // SAFETY: gives back the fence reference taken above.
        drop(unsafe { ARef::from_raw(NonNull::from(self)) });
        // SAFETY: gives back the reference taken by `into_raw` above.
        Err(AddCallbackError::Signalled(unsafe { Arc::from_raw(ptr) }))
    }

    /// Remove `obj`'s pending callback from this fence.
    ///
    /// Returns the registration's reference to `obj` when the callback was
    /// pending on this fence: it is removed and will not run. `None` means
    /// that it was not pending on this fence: it has run to completion
    /// already (the fence core calls it with the fence's lock held, which
    /// this function takes, so it is not running either), or it was never
    /// added to this fence, or an [`Fence::add_callback`] on another thread
    /// has not returned yet.
    ///
    /// Work that `signalled` queued may still be running or pending.
    pub fn remove_callback<T, const ID: u64>(&self, obj: &Arc<T>) -> Option<Arc<T>>
    where
        T: FenceCallbackHandler<ID>,
    {
        let ptr = Arc::as_ptr(obj).cast_mut();
        // SAFETY: `ptr` points to a valid `T`, kept alive by `obj`.
        let slot = unsafe { &*T::raw_get_fence_callback(ptr) };
        let removed = {
            let _guard = self.lock_irqsave();
            // By the invariants of `FenceCallback`, a slot that points to
            // this fence only stops doing so under this fence's lock, which
            // we hold: the test and the removal below see the same state.
            if slot.fence.load(Acquire) != self.as_raw() {
                false
            } else {
                // SAFETY: the slot's `dma_fence_cb` is valid.
                let node = unsafe { &raw mut (*slot.cb.get()).node };
                // SAFETY: the slot is registered on this fence, whose lock
                // we hold: its node is either on this fence's callback list
                // or an empty list head that `dma_fence_add_callback()` has
                // not put on the list yet (it needs the lock we hold).
                if unsafe { bindings::list_empty(node) } != 0 {
                    false
                } else {
                    // SAFETY: the node is on this fence's callback list and we
                    // hold its lock: this is `dma_fence_remove_callback()`,
                    // with the test above under the same lock.
                    unsafe { bindings::list_del_init(node) };
                    slot.fence.store(ptr::null_mut(), Release);
                    true
                }
            }
        };
        if !removed {
            return None;
        }
        // SAFETY: the registration owned a reference to this fence, which
        // we now drop (the caller's `&self` keeps the fence alive).
        drop(unsafe { ARef::from_raw(NonNull::from(self)) });
        // SAFETY: the registration owned a reference to `obj`, made by
        // `Arc::into_raw` in `add_callback`; it is now ours.
        Some(unsafe { Arc::from_raw(ptr) })
    }

    /// Lock the fence's spinlock, IRQs disabled, until the guard is dropped.
    fn lock_irqsave(&self) -> FenceLockGuard<'_> {
        // SAFETY: by the type invariants the fence is valid.
        let flags = unsafe { bindings::dma_fence_lock_irqsave(self.as_raw()) };
        FenceLockGuard {
            fence: self,
            flags,
            _not_send: NotThreadSafe,
        }
    }
}

/// The fence's spinlock, held with IRQs disabled.
struct FenceLockGuard<'a> {
    fence: &'a Fence,
    flags: c_ulong,
    _not_send: NotThreadSafe,
}

impl Drop for FenceLockGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: we hold the lock, taken by `Fence::lock_irqsave` on this
        // CPU with these flags.
        unsafe { bindings::dma_fence_unlock_irqrestore(self.fence.as_raw(), self.flags) };
    }
}

/// A fence callback slot, for [`Fence::add_callback`].
///
/// A driver embeds it in a struct that it allocates with [`Arc`] (pinned,
/// initialised by [`FenceCallback::new`]), declares where it is with
/// [`impl_has_fence_callback!`] and says what to do with
/// [`FenceCallbackHandler`]. One slot is registered on at most one fence at a
/// time ([`Fence::add_callback`] refuses a registered slot); a struct with
/// several slots (each with its own `ID`) can wait for several fences at
/// once.
///
/// Wraps the kernel's C `struct dma_fence_cb`.
///
/// # Invariants
///
/// - `fence` is null or points to a fence on which the slot is registered:
///   the registration owns a reference to that fence and one to the
///   [`Arc`] that contains the slot, and `cb` is on the fence's callback
///   list or being put there by [`Fence::add_callback`].
/// - `fence` changes from non-null to null only with that fence's lock
///   held, once `cb` is off its list and re-initialised (or was never put
///   on it), and from null to non-null only by [`Fence::add_callback`].
/// - While `fence` is null, `cb.node` is an empty list head that nothing
///   else accesses.
#[pin_data]
pub struct FenceCallback {
    #[pin]
    cb: Opaque<bindings::dma_fence_cb>,
    fence: Atomic<*mut bindings::dma_fence>,
}

// SAFETY: the slot is only accessed through atomics and by the fence core
// under the lock of the fence it is registered on; it may be used from any
// thread.
unsafe impl Send for FenceCallback {}
// SAFETY: see above.
unsafe impl Sync for FenceCallback {}

impl FenceCallback {
    /// A new, unregistered callback slot.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            cb <- Opaque::ffi_init(|cb: *mut bindings::dma_fence_cb| {
                // SAFETY: `cb` is valid for writes and pinned: the list head
                // may point to itself. INVARIANT: an empty list head.
                unsafe {
                    bindings::INIT_LIST_HEAD(&raw mut (*cb).node);
                    (*cb).func = None;
                }
            }),
            fence: Atomic::new(ptr::null_mut()),
        })
    }
}

/// Declares that a type contains a [`FenceCallback`].
///
/// Implement it with [`impl_has_fence_callback!`]; `ID` tells the slots of a
/// type with several apart.
///
/// # Safety
///
/// [`raw_get_fence_callback`] and [`fence_callback_container_of`] must
/// return valid pointers and be inverses of each other:
/// `fence_callback_container_of(raw_get_fence_callback(ptr)) == ptr` for any
/// `ptr: *mut Self`, and `raw_get_fence_callback(fence_callback_container_of(ptr)) == ptr`
/// for any pointer to the slot of a `Self`.
///
/// [`raw_get_fence_callback`]: HasFenceCallback::raw_get_fence_callback
/// [`fence_callback_container_of`]: HasFenceCallback::fence_callback_container_of
pub unsafe trait HasFenceCallback<const ID: u64 = 0> {
    /// The [`FenceCallback`] field of `*ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid `Self`.
    unsafe fn raw_get_fence_callback(ptr: *mut Self) -> *mut FenceCallback;

    /// The `Self` whose [`FenceCallback`] field `ptr` points to.
    ///
    /// # Safety
    ///
    /// `ptr` must point to the [`FenceCallback`] field of a `Self`.
    unsafe fn fence_callback_container_of(ptr: *mut FenceCallback) -> *mut Self;
}

/// Implements [`HasFenceCallback`] for a type from the name of its
/// [`FenceCallback`] field.
///
/// # Examples
///
/// ```
/// use kernel::dma_fence::{impl_has_fence_callback, FenceCallback};
///
/// struct Job {
///     deps: FenceCallback,
///     done: FenceCallback,
/// }
///
/// impl_has_fence_callback! {
///     impl HasFenceCallback for Job { self.deps }
///     impl HasFenceCallback<1> for Job { self.done }
/// }
/// ```
#[macro_export]
macro_rules! impl_has_fence_callback {
    ($(impl$({$($generics:tt)*})?
       HasFenceCallback$(<$id:tt>)?
       for $self:ty
       { self.$field:ident }
    )*) => {$(
        // SAFETY: `raw_get_fence_callback` only compiles if the field is a
        // `FenceCallback`, and `container_of!` is its inverse.
        unsafe impl$(<$($generics)+>)? $crate::dma_fence::HasFenceCallback$(<$id>)? for $self {
            #[inline]
            unsafe fn raw_get_fence_callback(
                ptr: *mut Self,
            ) -> *mut $crate::dma_fence::FenceCallback {
                // SAFETY: the caller promises that `ptr` points to a `Self`.
                unsafe { ::core::ptr::addr_of_mut!((*ptr).$field) }
            }

            #[inline]
            unsafe fn fence_callback_container_of(
                ptr: *mut $crate::dma_fence::FenceCallback,
            ) -> *mut Self {
                // SAFETY: the caller promises that `ptr` points to the field
                // of a `Self`.
                unsafe { $crate::container_of!(ptr, Self, $field) }
            }
        }
    )*};
}
pub use impl_has_fence_callback;

/// What a driver does when a fence it added a callback to signals.
pub trait FenceCallbackHandler<const ID: u64 = 0>:
    HasFenceCallback<ID> + Send + Sync + 'static
{
    /// Called once when the fence signals, with the registration's
    /// reference to the object.
    ///
    /// It runs in the signaller's context: atomic, possibly in an interrupt
    /// handler with IRQs off, with the fence's spinlock held. It must not
    /// sleep, allocate with `GFP_KERNEL`, signal fences, call
    /// [`Fence::add_callback`] or [`Fence::remove_callback`], or ask a fence
    /// for its status (those take a fence lock); it should only queue work
    /// that does the rest (the work may read the fence's
    /// [`status`](Fence::status)). If it drops the last reference to
    /// `this`, `Self`'s destructor runs here too, under the same rules.
    fn signalled(this: Arc<Self>);
}

/// The `dma_fence_func_t` of a [`FenceCallback`] added through `T`.
///
/// # Safety
///
/// Called by the fence core only: `_fence` is signalling, its lock held,
/// and `cb` is the `dma_fence_cb` of a [`FenceCallback`] in a `T` (through
/// `HasFenceCallback<ID>`) that [`Fence::add_callback`] registered on it.
unsafe extern "C" fn signalled_fn<T: FenceCallbackHandler<ID>, const ID: u64>(
    _fence: *mut bindings::dma_fence,
    cb: *mut bindings::dma_fence_cb,
) {
    // SAFETY: `cb` is the `cb` field of a `FenceCallback` (a transparent
    // `Opaque`), valid while the registration holds its `Arc`.
    let slot = unsafe {
        crate::container_of!(
            cb.cast::<Opaque<bindings::dma_fence_cb>>(),
            FenceCallback,
            cb
        )
    };
    // SAFETY: `slot` is in a `T` (the caller's promise).
    let obj = unsafe { T::fence_callback_container_of(slot) };
    // The fence core has taken `cb` off the list and re-initialised it, and
    // we hold the fence's lock. INVARIANT: release the slot; from here on
    // another `add_callback` may use it (Release: after our accesses).
    // SAFETY: `slot` is valid (see above).
    let registered = unsafe { (*slot).fence.xchg(ptr::null_mut(), Release) };
    if let Some(registered) = NonNull::new(registered) {
        // SAFETY: the registration's reference to the fence, now ours. The
        // signaller keeps the fence valid for the whole signalling (as in
        // C, where drm_sched drops its dependency's reference in its
        // callback), so this is not the last.
        drop(unsafe { ARef::<Fence>::from_raw(registered.cast()) });
    }
    // SAFETY: the registration's reference to `obj`, made by
    // `Arc::into_raw` in `add_callback`, is now ours.
    let obj = unsafe { Arc::from_raw(obj) };
    T::signalled(obj);
}

/// Why [`Fence::add_callback`] did not register a callback; holds the object
/// it was given.
pub enum AddCallbackError<T> {
    /// The fence has signalled already (`ENOENT`): the callback will not run.
    Signalled(Arc<T>),
    /// The object's [`FenceCallback`] is registered on a fence already
    /// (`EBUSY`).
    Busy(Arc<T>),
}

impl<T> AddCallbackError<T> {
    /// The object that was not registered.
    pub fn into_inner(self) -> Arc<T> {
        match self {
            Self::Signalled(obj) | Self::Busy(obj) => obj,
        }
    }
}

impl<T> From<AddCallbackError<T>> for Error {
    fn from(err: AddCallbackError<T>) -> Error {
        match err {
            AddCallbackError::Signalled(_) => ENOENT,
            AddCallbackError::Busy(_) => EBUSY,
        }
    }
}

/// A fence signalling critical section, which ends when the guard is
/// dropped.
///
/// Annotate with it all the code that a published fence's signalling
/// depends on, from the moment the fence is visible to others (added to a
/// reservation object or a sync object, returned to user space) to
/// `dma_fence_signal()`: job submission after publication, the job's
/// completion handler, the timeout and reset paths. Others may wait for the
/// fence while holding reservation locks, in shrinkers or in MMU notifiers,
/// so code inside the section must not take a reservation lock, allocate
/// memory with `GFP_KERNEL` (or `GFP_NOFS`/`GFP_NOIO`: only `GFP_ATOMIC`
/// or `GFP_NOWAIT`, which may fail), wait for a fence, or take a lock that
/// is held elsewhere around any of these. With `CONFIG_LOCKDEP` lockdep
/// checks all of this (the section is a lockdep map, primed at boot with
/// those dependencies); without it the guard costs nothing.
///
/// Sections nest, in process and interrupt context. The guard stays on the
/// task that made it.
///
/// # Examples
///
/// ```
/// use kernel::dma_fence::{SignalFence, SignallingSection};
///
/// fn job_done(fence: SignalFence) {
///     let _section = SignallingSection::begin();
///     fence.signal();
/// }
/// ```
#[must_use = "the section ends when the guard is dropped"]
pub struct SignallingSection {
    cookie: bool,
    _not_send: NotThreadSafe,
}

impl SignallingSection {
    /// Begin a section (`dma_fence_begin_signalling()`).
    pub fn begin() -> Self {
        Self {
            // SAFETY: may be called from any context.
            cookie: unsafe { bindings::dma_fence_begin_signalling() },
            _not_send: NotThreadSafe,
        }
    }
}

impl Drop for SignallingSection {
    fn drop(&mut self) {
        // SAFETY: the cookie comes from `dma_fence_begin_signalling()` on
        // this task (the guard is not `Send`).
        unsafe { bindings::dma_fence_end_signalling(self.cookie) };
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

    /// The `get_driver_name` operation.
    ///
    /// # Safety
    ///
    /// Called by the fence core only, on a fence of this context.
    unsafe extern "C" fn driver_name(_fence: *mut bindings::dma_fence) -> *const c_char {
        T::DRIVER_NAME.as_char_ptr()
    }

    /// The `get_timeline_name` operation.
    ///
    /// # Safety
    ///
    /// Called by the fence core only, on a fence of this context.
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
        // INVARIANT: a new fence of this context, whose ops cannot signal it
        // and which no one else can signal yet.
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
///
/// # Invariants
///
/// The fence was made by [`FenceContext::fence`] and this object is its
/// only signaller: its ops have no `signaled` or `enable_signaling`
/// callback, and no other code is handed the right to signal it. So it
/// stays unsignalled until [`SignalFence::signal`],
/// [`SignalFence::signal_error`] or the drop, which are the only places
/// that signal it and run at most once between them (the first two
/// consume the object, whose drop then finds the fence signalled).
pub struct SignalFence(ARef<Fence>);

impl SignalFence {
    /// A new reference to the fence, for waiters.
    pub fn fence(&self) -> ARef<Fence> {
        self.0.clone()
    }

    /// Signal the fence.
    pub fn signal(self) {
        // SAFETY: the fence is valid (an `ARef`); signalling may happen in
        // any context.
        unsafe { bindings::dma_fence_signal(self.0.as_raw()) };
    }

    /// Signal the fence with an error, which waiters see as its status.
    pub fn signal_error(self, err: Error) {
        // SAFETY: by the type invariants we are the fence's only signaller,
        // so it is not signalled yet, and `err` is a valid negative errno.
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
        // SAFETY: the fence is valid (an `ARef`) and, by the type
        // invariants, we are its only signaller, so it cannot become
        // signalled between the test and the signal.
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

    use crate::sync::atomic::Relaxed;

    /// Counts its callbacks.
    #[pin_data]
    struct Waiter {
        #[pin]
        cb: FenceCallback,
        calls: Atomic<i32>,
    }

    impl_has_fence_callback! {
        impl HasFenceCallback for Waiter { self.cb }
    }

    impl FenceCallbackHandler for Waiter {
        fn signalled(this: Arc<Self>) {
            this.calls.add(1, Relaxed);
        }
    }

    impl Waiter {
        fn new() -> Result<Arc<Self>> {
            Arc::pin_init(
                pin_init!(Self {
                    cb <- FenceCallback::new(),
                    calls: Atomic::new(0),
                }),
                GFP_KERNEL,
            )
        }

        fn calls(&self) -> i32 {
            self.calls.load(Relaxed)
        }
    }

    /// Two callback slots, counted apart.
    #[pin_data]
    struct Pair {
        #[pin]
        first: FenceCallback,
        #[pin]
        second: FenceCallback,
        calls: [Atomic<i32>; 2],
    }

    impl_has_fence_callback! {
        impl HasFenceCallback<0> for Pair { self.first }
        impl HasFenceCallback<1> for Pair { self.second }
    }

    impl FenceCallbackHandler<0> for Pair {
        fn signalled(this: Arc<Self>) {
            this.calls[0].add(1, Relaxed);
        }
    }

    impl FenceCallbackHandler<1> for Pair {
        fn signalled(this: Arc<Self>) {
            this.calls[1].add(1, Relaxed);
        }
    }

    /// Whether `obj` is the last reference (no registration holds one).
    fn unique<T>(obj: Arc<T>) -> bool {
        Arc::into_unique_or_drop(obj).is_some()
    }

    #[test]
    fn callback_runs_on_signal() -> Result {
        let ctx = FenceContext::<Test>::new();
        let signaller = ctx.fence(1, GFP_KERNEL)?;
        let fence = signaller.fence();
        let w = Waiter::new()?;
        assert!(fence.add_callback(w.clone()).is_ok());
        assert_eq!(w.calls(), 0);
        signaller.signal_error(EIO);
        assert_eq!(w.calls(), 1);
        // It ran to completion: nothing left to remove.
        assert!(fence.remove_callback(&w).is_none());
        assert!(unique(w));
        Ok(())
    }

    #[test]
    fn callback_after_signal_is_refused() -> Result {
        let ctx = FenceContext::<Test>::new();
        let signaller = ctx.fence(1, GFP_KERNEL)?;
        let fence = signaller.fence();
        signaller.signal();
        let w = Waiter::new()?;
        let err = fence.add_callback(w.clone()).err();
        assert!(matches!(err, Some(AddCallbackError::Signalled(_))));
        drop(err);
        assert_eq!(w.calls(), 0);
        assert!(unique(w));
        Ok(())
    }

    #[test]
    fn remove_pending_callback() -> Result {
        let ctx = FenceContext::<Test>::new();
        let signaller = ctx.fence(1, GFP_KERNEL)?;
        let fence = signaller.fence();
        let w = Waiter::new()?;
        assert!(fence.add_callback(w.clone()).is_ok());
        let reg = fence.remove_callback(&w);
        assert!(reg.is_some());
        drop(reg);
        assert!(fence.remove_callback(&w).is_none());
        signaller.signal();
        assert_eq!(w.calls(), 0);
        assert!(unique(w));
        Ok(())
    }

    #[test]
    fn one_fence_per_slot() -> Result {
        let ctx = FenceContext::<Test>::new();
        let s1 = ctx.fence(1, GFP_KERNEL)?;
        let s2 = ctx.fence(2, GFP_KERNEL)?;
        let (f1, f2) = (s1.fence(), s2.fence());
        let w = Waiter::new()?;
        assert!(f1.add_callback(w.clone()).is_ok());
        let err = f2.add_callback(w.clone()).err();
        assert!(matches!(err, Some(AddCallbackError::Busy(_))));
        drop(err);
        // Not registered on `f2`: nothing to remove there.
        assert!(f2.remove_callback(&w).is_none());
        s1.signal();
        assert_eq!(w.calls(), 1);
        // Free again once it has run: it may wait for the next fence.
        assert!(f2.add_callback(w.clone()).is_ok());
        // Dropping an unsignalled `SignalFence` signals it (cancelled).
        drop(s2);
        assert_eq!(w.calls(), 2);
        assert_eq!(f2.status(), Err(ECANCELED));
        assert!(unique(w));
        Ok(())
    }

    #[test]
    fn two_slots_two_fences() -> Result {
        let ctx = FenceContext::<Test>::new();
        let s1 = ctx.fence(1, GFP_KERNEL)?;
        let s2 = ctx.fence(2, GFP_KERNEL)?;
        let p = Arc::pin_init(
            pin_init!(Pair {
                first <- FenceCallback::new(),
                second <- FenceCallback::new(),
                calls: [Atomic::new(0), Atomic::new(0)],
            }),
            GFP_KERNEL,
        )?;
        assert!(s1.add_callback::<_, 0>(p.clone()).is_ok());
        assert!(s2.add_callback::<_, 1>(p.clone()).is_ok());
        s2.signal();
        assert_eq!((p.calls[0].load(Relaxed), p.calls[1].load(Relaxed)), (0, 1));
        s1.signal();
        assert_eq!((p.calls[0].load(Relaxed), p.calls[1].load(Relaxed)), (1, 1));
        assert!(unique(p));
        Ok(())
    }

    #[test]
    fn signalling_sections_nest() -> Result {
        let ctx = FenceContext::<Test>::new();
        let signaller = ctx.fence(1, GFP_KERNEL)?;
        let fence = signaller.fence();
        let outer = SignallingSection::begin();
        let inner = SignallingSection::begin();
        signaller.signal();
        drop(inner);
        drop(outer);
        assert_eq!(fence.status(), Ok(true));
        Ok(())
    }
}
