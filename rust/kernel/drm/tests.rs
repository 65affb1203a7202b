// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the DRM abstractions that need a registered device and an open file: sync
//! objects, the GEM handle lookup, the GEM export hook and fdinfo.
//!
//! Each test registers a DRM device of a fake driver on a faux device and opens a file on its
//! primary node with `mock_drm_getfile()`, as a client opens the device node: the file goes
//! through the driver's `open` callback and the DRM core's, and is closed (with its handles)
//! before the device is unregistered.

use crate::{
    bindings, device,
    dma_fence::{Fence, FenceContext, FenceTimeline},
    drm::{
        self,
        gem::{self, shmem, BaseObject},
    },
    error::{from_err_ptr, to_result},
    faux,
    mm::user_pages::test_support::{device_fill, device_sees, enable_dma},
    page::PAGE_SIZE,
    prelude::*,
    str::CString,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
    },
};
use core::{
    fmt::Write,
    ptr::{null_mut, NonNull},
};

/// The fake driver.
struct KunitDriver;

/// The fake driver's device data.
#[pin_data]
struct KunitData {
    /// Whether the device imports dma-bufs of other devices.
    imports: bool,
}

/// A client of the fake driver: its fdinfo has one engine key and the memory keys.
struct KunitFile;

/// A GEM object of the fake driver, which refuses to be exported unless `exportable`.
#[pin_data]
struct KunitObject {
    exportable: bool,
}

impl drm::file::DriverFile for KunitFile {
    type Driver = KunitDriver;

    fn open(_dev: &drm::Device<KunitDriver>) -> Result<Pin<KBox<Self>>> {
        Ok(KBox::new(Self, GFP_KERNEL)?.into())
    }

    fn show_fdinfo(&self, _file: &drm::File<Self>, printer: &mut drm::Printer<'_>) {
        // `Printer` never fails a write.
        let _ = writeln!(printer, "drm-engine-kunit:\t42 ns");
        printer.memory_stats();
    }
}

impl gem::DriverObject for KunitObject {
    type Driver = KunitDriver;
    type Args = bool;

    fn new(
        _dev: &drm::Device<KunitDriver>,
        _size: usize,
        exportable: bool,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(KunitObject { exportable })
    }

    fn import_args(
        dev: &drm::Device<KunitDriver>,
        size: usize,
        sgt: &crate::scatterlist::SGTable,
    ) -> Result<bool> {
        if !dev.imports {
            return Err(EPERM);
        }
        // The exporter's table covers the object.
        let len: u64 = sgt.iter().map(|e| e.dma_len()).sum();
        if len != size as u64 {
            return Err(EINVAL);
        }
        Ok(true)
    }

    fn may_export(obj: &shmem::Object<Self>) -> Result {
        if obj.exportable {
            Ok(())
        } else {
            Err(EPERM)
        }
    }
}

#[vtable]
impl drm::Driver for KunitDriver {
    type Data = KunitData;
    type RegistrationData<'a> = ();
    type File = KunitFile;
    type Object = shmem::Object<KunitObject>;
    type ParentDevice<Ctx: device::DeviceContext> = faux::Device<Ctx>;

    const INFO: drm::DriverInfo = drm::DriverInfo {
        major: 0,
        minor: 0,
        patchlevel: 0,
        name: c"rust_drm_kunit",
        desc: c"KUnit tests of the Rust DRM abstractions",
    };
    const IOCTLS: &'static [drm::ioctl::DrmIoctlDescriptor] = &[];
    // No render node: a test device takes no minor a real GPU's render node could want.
    const FEAT_SYNCOBJ: bool = true;
    const FEAT_SYNCOBJ_TIMELINE: bool = true;
}

type Device = drm::Device<KunitDriver>;
type File = drm::File<KunitFile>;
type Object = shmem::Object<KunitObject>;

/// A `struct file` of the device's primary node, from `mock_drm_getfile()`.
///
/// # Invariants
///
/// The pointer is a file of ours (one reference), whose private data is its open
/// `struct drm_file` of the fake driver.
struct MockFile(NonNull<bindings::file>);

impl MockFile {
    fn open(drm: &Device) -> Result<Self> {
        // SAFETY: `drm` is a valid DRM device, whose primary minor exists from its allocation on
        // (`drm_dev_alloc()`); `O_RDWR` is a valid open mode.
        let file = from_err_ptr(unsafe {
            bindings::mock_drm_getfile((*drm.as_raw()).primary, bindings::O_RDWR)
        })?;
        // INVARIANT: `mock_drm_getfile()` returned a new file, whose private data is the
        // `struct drm_file` it opened.
        Ok(Self(NonNull::new(file).ok_or(ENOMEM)?))
    }

    fn as_raw(&self) -> *mut bindings::file {
        self.0.as_ptr()
    }

    fn drm_file(&self) -> &File {
        // SAFETY: by the type invariants the private data is an open `struct drm_file` of the
        // fake driver, which stays open until `drop` closes the file.
        unsafe { drm::File::from_raw((*self.as_raw()).private_data.cast()) }
    }
}

impl Drop for MockFile {
    fn drop(&mut self) {
        // Closed now, not by a deferred `fput()`: the test's device is unregistered next, and the
        // test's objects are freed with their handles. KUnit runs tests on a kernel thread, where
        // a synchronous close is allowed.
        // SAFETY: we own the reference (type invariant), given back once.
        unsafe { bindings::__fput_sync(self.as_raw()) };
    }
}

/// How a test's device is set up.
struct Setup {
    /// The faux device's name (unique among the devices a test has at once), to which
    /// [`with_device`] adds a number of its own.
    name: &'static CStr,
    /// Give the faux device a 64-bit DMA mask (`kernel::mm::user_pages::test_support`).
    dma: bool,
    /// Back the device's objects with a huge-page tmpfs mount (`huge=within_size`).
    huge: bool,
    /// Import dma-bufs of other devices (the default of `import_args()` refuses).
    imports: bool,
}

const PLAIN: Setup = Setup {
    name: c"rust_drm_kunit",
    dma: false,
    huge: false,
    imports: false,
};

/// How many test devices were made: a number for each one's name. A test whose assertion fails
/// ends its thread without dropping anything, so its device stays registered; with a name of
/// its own, it does not make the next test that sets up the same device fail too.
static DEVICES: Atomic<u32> = Atomic::new(0);

/// Run `f` with a registered DRM device of the fake driver set up as `setup` says, its parent
/// (bound) device, and a file opened on it.
fn with_device(
    setup: Setup,
    f: impl FnOnce(&Device, &device::Device<device::Bound>, &MockFile) -> Result,
) -> Result {
    let base = setup.name.to_str().map_err(|_| EINVAL)?;
    let name = CString::try_from_fmt(fmt!("{}.{}", base, DEVICES.fetch_add(1, Relaxed)))?;
    let faux = faux::Registration::new(&name, None)?;
    let parent: &device::Device<device::Bound> = faux.as_ref().as_ref();
    if setup.dma {
        // SAFETY: the device is ours, new, and has done no DMA.
        unsafe { enable_dma(parent) };
    }
    let unregistered = drm::UnregisteredDevice::<KunitDriver>::new(
        faux.as_ref(),
        try_pin_init!(KunitData {
            imports: setup.imports,
        }),
    )?;
    if setup.huge {
        unregistered.huge_mnt_create(c"within_size")?;
    }
    // SAFETY: the registration is dropped at the end of this function, never forgotten.
    let registration = unsafe { drm::Registration::new::<Error>(parent, unregistered, Ok(()), 0)? };
    let drm = registration.device();
    let file = MockFile::open(drm)?;
    let result = f(drm, parent, &file);
    drop(file);
    result
}

/// Run `f` with a registered DRM device of the fake driver and a file opened on it.
fn with_file(f: impl FnOnce(&Device, &MockFile) -> Result) -> Result {
    with_device(PLAIN, |drm, _, file| f(drm, file))
}

/// A new shmem object of `size` bytes with a handle in `file`.
fn new_object(
    drm: &Device,
    file: &File,
    size: usize,
    exportable: bool,
) -> Result<(ARef<Object>, u32)> {
    let obj = Object::new(drm, size, shmem::ObjectConfig::default(), exportable)?;
    let handle = obj.create_handle(file)?;
    Ok((obj, handle))
}

/// A dma-buf reference, put when dropped.
///
/// # Invariants
///
/// The pointer is a dma-buf on which we own one reference.
struct DmaBuf(NonNull<bindings::dma_buf>);

impl Drop for DmaBuf {
    fn drop(&mut self) {
        // SAFETY: we own the reference (type invariant), given back once.
        unsafe { bindings::dma_buf_put(self.0.as_ptr()) };
    }
}

/// Export the object of `handle` as the DRM core does for `DRM_IOCTL_PRIME_HANDLE_TO_FD`,
/// without making a file descriptor.
fn export(drm: &Device, file: &File, handle: u32) -> Result<DmaBuf> {
    // SAFETY: `drm` is registered and `file` an open file of it.
    let buf = from_err_ptr(unsafe {
        bindings::drm_gem_prime_handle_to_dmabuf(drm.as_raw(), file.as_raw(), handle, 0)
    })?;
    // INVARIANT: `drm_gem_prime_handle_to_dmabuf()` returned a new reference.
    Ok(DmaBuf(NonNull::new(buf).ok_or(ENOMEM)?))
}

struct Timeline;

impl FenceTimeline for Timeline {
    const DRIVER_NAME: &'static CStr = c"rust_drm_kunit";
    const TIMELINE_NAME: &'static CStr = c"rust_drm_kunit";
}

fn same(a: &Fence, b: &Fence) -> bool {
    a.as_raw() == b.as_raw()
}

#[macros::kunit_tests(rust_drm_syncobj)]
mod syncobj_tests {
    use super::*;
    use crate::drm::syncobj::{find_fence, ChainNode, SyncObj};

    /// A new sync object with a handle in `file`, with a signalled fence if `signalled`.
    fn new_syncobj(file: &File, signalled: bool) -> Result<u32> {
        let flags = if signalled {
            bindings::DRM_SYNCOBJ_CREATE_SIGNALED
        } else {
            0
        };
        let mut obj = null_mut();
        // SAFETY: `obj` is valid for writes; a NULL fence with these flags is allowed.
        to_result(unsafe { bindings::drm_syncobj_create(&mut obj, flags, null_mut()) })?;
        let mut handle = 0;
        let raw = file.as_raw();
        // SAFETY: `raw` is an open file; `obj` a sync object of ours, and the handle takes a
        // reference of its own.
        let r = to_result(unsafe { bindings::drm_syncobj_get_handle(raw, obj, &mut handle) });
        // SAFETY: our reference from `drm_syncobj_create()`, given back once.
        unsafe { bindings::drm_syncobj_put(obj) };
        r.map(|()| handle)
    }

    #[test]
    fn lookup_finds_handles() -> Result {
        with_file(|_drm, file| {
            let file = file.drm_file();
            let a = new_syncobj(file, false)?;
            let b = new_syncobj(file, false)?;
            assert_ne!(a, b);
            assert!(SyncObj::lookup(file, a).is_ok());
            assert!(SyncObj::lookup(file, b).is_ok());
            assert_eq!(SyncObj::lookup(file, 0).err(), Some(ENOENT));
            assert_eq!(SyncObj::lookup(file, b + 100).err(), Some(ENOENT));
            assert_eq!(find_fence(file, b + 100, 0).err(), Some(ENOENT));
            Ok(())
        })
    }

    #[test]
    fn binary_fence_is_replaced() -> Result {
        with_file(|_drm, file| {
            let file = file.drm_file();
            let h = new_syncobj(file, false)?;
            let obj = SyncObj::lookup(file, h)?;
            assert!(obj.fence().is_none());
            // No fence (yet): `find_fence()` fails as the DRM core does without
            // DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT.
            assert_eq!(find_fence(file, h, 0).err(), Some(EINVAL));

            let ctx = FenceContext::<Timeline>::new();
            let job = ctx.fence(1, GFP_KERNEL)?;
            obj.replace_fence(Some(&job));
            let current = obj.fence().ok_or(EINVAL)?;
            assert!(same(&current, &job));
            let found = find_fence(file, h, 0)?;
            assert!(same(&found, &job));
            assert!(!found.is_signaled());
            job.signal();
            assert!(found.is_signaled());

            // A second lookup is the same object.
            obj.replace_fence(None);
            assert!(SyncObj::lookup(file, h)?.fence().is_none());

            // Created signalled: a signalled (stub) fence.
            let s = new_syncobj(file, true)?;
            assert!(find_fence(file, s, 0)?.is_signaled());
            Ok(())
        })
    }

    #[test]
    fn timeline_points_follow_their_fences() -> Result {
        with_file(|_drm, file| {
            let file = file.drm_file();
            let h = new_syncobj(file, false)?;
            let obj = SyncObj::lookup(file, h)?;
            let ctx = FenceContext::<Timeline>::new();
            let first = ctx.fence(1, GFP_KERNEL)?;
            let second = ctx.fence(2, GFP_KERNEL)?;
            obj.add_point(ChainNode::new()?, &first, 1);
            obj.add_point(ChainNode::new()?, &second, 2);
            // Unused nodes are freed.
            drop(ChainNode::new()?);

            let p1 = find_fence(file, h, 1)?;
            let p2 = find_fence(file, h, 2)?;
            assert!(!p1.is_signaled());
            assert!(!p2.is_signaled());
            // A point not yet added.
            assert_eq!(find_fence(file, h, 3).err(), Some(EINVAL));

            first.signal();
            assert!(p1.is_signaled());
            assert!(find_fence(file, h, 1)?.is_signaled());
            assert!(!p2.is_signaled());

            second.signal_error(EIO);
            assert!(p2.is_signaled());
            // The sync object's fence is its last point.
            assert!(obj.fence().ok_or(EINVAL)?.is_signaled());
            Ok(())
        })
    }
}

#[macros::kunit_tests(rust_drm_gem_handles)]
mod gem_tests {
    use super::*;

    #[test]
    fn lookup_handles_in_order() -> Result {
        with_file(|drm, file| {
            let file = file.drm_file();
            let mut objs = KVec::new();
            for i in 0..3 {
                objs.push(
                    new_object(drm, file, (i + 1) * PAGE_SIZE, true)?,
                    GFP_KERNEL,
                )?;
            }
            let handles = [objs[2].1, objs[0].1, objs[1].1, objs[2].1];
            let mut seen = KVec::new();
            Object::lookup_handles(file, handles, |h, obj| {
                // Under the table's spinlock: no allocation that sleeps.
                seen.push((h, obj.size()), GFP_ATOMIC)?;
                Ok(())
            })?;
            assert_eq!(seen.len(), 4);
            for (i, &(h, size)) in seen.iter().enumerate() {
                assert_eq!(h, handles[i]);
                let (obj, _) = objs.iter().find(|(_, oh)| *oh == h).ok_or(EINVAL)?;
                assert_eq!(size, obj.size());
            }
            // The closure borrows the objects; a reference it takes keeps one.
            let mut kept = None;
            Object::lookup_handles(file, [objs[1].1], |_, obj| {
                kept = Some(ARef::from(obj));
                Ok(())
            })?;
            let kept = kept.ok_or(EINVAL)?;
            assert_eq!(kept.size(), 2 * PAGE_SIZE);
            assert!(core::ptr::eq(&*kept, &*objs[1].0));
            // No handles, no calls.
            Object::lookup_handles(file, [], |_, _| Err(EINVAL))?;
            Ok(())
        })
    }

    #[test]
    fn lookup_handles_stops_at_the_first_failure() -> Result {
        with_file(|drm, file| {
            let file = file.drm_file();
            let (_a, ha) = new_object(drm, file, PAGE_SIZE, true)?;
            let (_b, hb) = new_object(drm, file, PAGE_SIZE, true)?;
            let mut calls = 0;
            let r = Object::lookup_handles(file, [ha, hb + 100, hb], |_, _| {
                calls += 1;
                Ok(())
            });
            assert_eq!(r, Err(ENOENT));
            assert_eq!(calls, 1);

            calls = 0;
            let r = Object::lookup_handles(file, [ha, hb, ha], |h, _| {
                calls += 1;
                if h == hb {
                    Err(EBUSY)
                } else {
                    Ok(())
                }
            });
            assert_eq!(r, Err(EBUSY));
            assert_eq!(calls, 2);

            // A deleted handle names nothing.
            // SAFETY: `file` is an open file of the device, `hb` a handle in it.
            to_result(unsafe { bindings::drm_gem_handle_delete(file.as_raw(), hb) })?;
            assert_eq!(
                Object::lookup_handles(file, [hb], |_, _| Ok(())),
                Err(ENOENT)
            );
            assert!(Object::lookup_handle(file, hb).is_err());
            Object::lookup_handles(file, [ha], |_, _| Ok(()))?;
            Ok(())
        })
    }

    #[test]
    fn may_export_refuses_and_allows() -> Result {
        with_file(|drm, file| {
            let file = file.drm_file();
            let (_private, hp) = new_object(drm, file, PAGE_SIZE, false)?;
            let (_shared, hs) = new_object(drm, file, PAGE_SIZE, true)?;
            assert_eq!(export(drm, file, hp).err(), Some(EPERM));
            // Asked again on every attempt until an export succeeds.
            assert_eq!(export(drm, file, hp).err(), Some(EPERM));
            let buf = export(drm, file, hs)?;
            // A second export reuses the object's dma-buf.
            let again = export(drm, file, hs)?;
            assert_eq!(buf.0, again.0);
            drop(again);
            drop(buf);
            assert_eq!(export(drm, file, hs + 100).err(), Some(ENOENT));
            Ok(())
        })
    }
}

#[macros::kunit_tests(rust_drm_fdinfo)]
mod fdinfo_tests {
    use super::*;

    /// What `/proc/<pid>/fdinfo/<fd>` shows for `file`, through its `show_fdinfo` file
    /// operation.
    fn fdinfo(file: &MockFile) -> Result<KVec<u8>> {
        let mut buf = KVec::from_elem(0u8, 4096, GFP_KERNEL)?;
        // SAFETY: all-zero is a valid, empty `struct seq_file`: `seq_printf()` needs only `buf`,
        // `size` and `count`.
        let mut seq: bindings::seq_file = unsafe { core::mem::zeroed() };
        seq.buf = buf.as_mut_ptr().cast();
        seq.size = buf.len();
        // SAFETY: `file` is an open file; its operations are the driver's.
        let show = unsafe { (*(*file.as_raw()).f_op).show_fdinfo }.ok_or(EINVAL)?;
        // SAFETY: `seq` has room for `size` bytes at `buf`; `file` is open.
        unsafe { show(&mut seq, file.as_raw()) };
        // An overflow sets `count` to `size`.
        assert!(seq.count < seq.size);
        buf.truncate(seq.count);
        Ok(buf)
    }

    fn has_line(text: &[u8], line: &[u8]) -> bool {
        text.split(|&b| b == b'\n').any(|l| l == line)
    }

    /// The fdinfo line of a memory `key` of `bytes` (a multiple of 1 KiB, under 1 MiB), as the
    /// DRM core prints it.
    fn kib_line(key: &str, bytes: usize) -> Result<CString> {
        CString::try_from_fmt(fmt!("{}:\t{} KiB", key, bytes / 1024))
    }

    #[test]
    fn fdinfo_has_core_driver_and_memory_keys() -> Result {
        with_file(|drm, file| {
            let f = file.drm_file();
            let text = fdinfo(file)?;
            assert!(has_line(&text, b"drm-driver:\trust_drm_kunit"));
            assert!(text.windows(15).any(|w| w == b"drm-client-id:\t"));
            assert!(has_line(&text, b"drm-engine-kunit:\t42 ns"));
            assert!(has_line(&text, b"drm-total-memory:\t0"));

            // Three CPU pages in two objects: 12 KiB with 4 KiB pages, 48 KiB with 16 KiB.
            let total = kib_line("drm-total-memory", 3 * PAGE_SIZE)?;
            let resident = kib_line("drm-resident-memory", 2 * PAGE_SIZE)?;
            let (big, _) = new_object(drm, f, 2 * PAGE_SIZE, true)?;
            let (_small, _) = new_object(drm, f, PAGE_SIZE, true)?;
            let text = fdinfo(file)?;
            assert!(has_line(&text, total.to_bytes()));
            assert!(has_line(&text, b"drm-shared-memory:\t0"));
            // Neither has pages yet: no object reports residency.
            assert!(!text.windows(20).any(|w| w == b"drm-resident-memory:"));

            // A kernel mapping gets the pages of the bigger one, which is then resident.
            let map = big.vmap::<{ 2 * PAGE_SIZE }>()?;
            let text = fdinfo(file)?;
            assert!(has_line(&text, total.to_bytes()));
            assert!(has_line(&text, resident.to_bytes()));
            drop(map);
            Ok(())
        })
    }
}

#[macros::kunit_tests(rust_drm_gem_prime)]
mod prime_tests {
    use super::*;
    use crate::{dma::DataDirection, drm::gem::IntoGEMObject, io::Io};

    const SIZE: usize = 4 * PAGE_SIZE;

    /// The mount of the shmem file behind `obj`.
    fn mount_of(obj: &Object) -> *mut bindings::vfsmount {
        // SAFETY: a shmem object has its shmem file from creation on; `f_path` is the member of
        // the union that is read.
        unsafe { (*(*obj.as_raw()).filp).__bindgen_anon_1.f_path.mnt }
    }

    /// `r`, with a line saying which step failed if it did.
    fn step<T>(what: &str, r: Result<T>) -> Result<T> {
        r.inspect_err(|e| pr_err!("rust_drm_gem_prime: {} failed: {:?}\n", what, e))
    }

    #[test]
    fn huge_mount_backs_the_objects() -> Result {
        let huge = Setup {
            huge: true,
            ..PLAIN
        };
        with_device(huge, |drm, _, file| {
            // SAFETY: `drm` is a valid device; the mount is set before registration.
            let mnt = unsafe { (*drm.as_raw()).huge_mnt };
            assert!(!mnt.is_null());
            let (obj, _) = new_object(drm, file.drm_file(), 2 * 1024 * 1024, true)?;
            assert_eq!(mount_of(&obj), mnt);
            Ok(())
        })?;
        with_file(|drm, file| {
            // SAFETY: as above.
            assert!(unsafe { (*drm.as_raw()).huge_mnt }.is_null());
            let (obj, _) = new_object(drm, file.drm_file(), 2 * 1024 * 1024, true)?;
            assert!(!mount_of(&obj).is_null());
            Ok(())
        })
    }

    #[test]
    fn import_from_another_device() -> Result {
        let exporter = Setup {
            name: c"rust_drm_kunit_exporter",
            dma: true,
            ..PLAIN
        };
        let importer = Setup {
            name: c"rust_drm_kunit_importer",
            dma: true,
            imports: true,
            ..PLAIN
        };
        let refuser = Setup {
            name: c"rust_drm_kunit_refuser",
            dma: true,
            ..PLAIN
        };
        with_device(exporter, |a, a_parent, a_file| {
            let (obj, handle) = step("object", new_object(a, a_file.drm_file(), SIZE, true))?;
            let buf = step("export", export(a, a_file.drm_file(), handle))?;
            // A driver that refuses imports: its `import_args()` error is the import's.
            with_device(refuser, |c, _, _| {
                // SAFETY: `c` is a registered device, `buf` a dma-buf of ours.
                let raw = unsafe { bindings::drm_gem_prime_import(c.as_raw(), buf.0.as_ptr()) };
                assert_eq!(from_err_ptr(raw).err(), Some(EPERM));
                Ok(())
            })?;
            with_device(importer, |b, b_parent, _| {
                // SAFETY: `b` is a registered device, `buf` a dma-buf of ours.
                let raw = unsafe { bindings::drm_gem_prime_import(b.as_raw(), buf.0.as_ptr()) };
                let raw = step("import", from_err_ptr(raw))?;
                // SAFETY: `raw` is an object of `b`'s driver, made by its import callback, of
                // which we own the reference `drm_gem_prime_import()` returned.
                let imported: ARef<Object> = unsafe {
                    let obj = Object::from_raw(raw);
                    let r = ARef::from(obj);
                    bindings::drm_gem_object_put(raw);
                    r
                };
                assert!(imported.is_imported());
                assert!(!obj.is_imported());
                assert_eq!(imported.size(), SIZE);
                // The attachment's table, mapped by the exporter for `b`.
                let sgt = step("sg_table", imported.sg_table(b_parent))?;
                let len: u64 = sgt.iter().map(|e| e.dma_len()).sum();
                assert_eq!(len, SIZE as u64);
                // Not for another device.
                assert_eq!(imported.sg_table(a_parent).err(), Some(EINVAL));
                Ok(())
            })
        })
    }

    #[test]
    fn cpu_access_syncs_the_exporters_mapping() -> Result {
        let setup = Setup { dma: true, ..PLAIN };
        with_device(setup, |drm, parent, file| {
            let (obj, handle) = new_object(drm, file.drm_file(), SIZE, true)?;
            let map = obj.vmap::<SIZE>()?;
            let sgt = obj.sg_table(parent)?;
            let buf = export(drm, file.drm_file(), handle)?;
            // The device writes; DMA_BUF_IOCTL_SYNC's START gives the pages to the CPU.
            device_fill(sgt, 0xd5);
            // SAFETY: `buf` is a dma-buf of ours.
            to_result(unsafe {
                bindings::dma_buf_begin_cpu_access(buf.0.as_ptr(), DataDirection::FromDevice.into())
            })?;
            for i in 0..SIZE {
                assert_eq!(map.try_read8(i)?, 0xd5);
            }
            // The CPU writes; END gives the pages back to the device.
            for i in 0..SIZE {
                map.try_write8(0x6e, i)?;
            }
            // SAFETY: as above.
            to_result(unsafe {
                bindings::dma_buf_end_cpu_access(buf.0.as_ptr(), DataDirection::ToDevice.into())
            })?;
            assert!(device_sees(sgt, 0x6e));
            Ok(())
        })
    }
}
