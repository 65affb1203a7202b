// SPDX-License-Identifier: MIT
//! Unit tests of the engine's bookkeeping (no device needed).

use super::place::SCRATCH_RW;
use super::userptr::{Region, UBinding};
use super::*;

#[test]
fn skip_disables_operations() {
    let names = op_names();
    assert_eq!(names.len(), OPS.len());
    assert!(names.contains(&"vmbind".to_string()));
    assert!(names.contains(&"vmstate".to_string()));
    assert!(names.contains(&"asyncbind".to_string()));
    assert!(names.contains(&"primeimport".to_string()));
    let all = weights(&[]).unwrap();
    assert!(all.iter().all(|&w| w > 0));
    let w = weights(&["vmbind".into(), "submit".into()]).unwrap();
    for (i, n) in names.iter().enumerate() {
        let skipped = n == "vmbind" || n == "submit";
        assert_eq!(w[i] == 0, skipped, "{n}");
    }
    assert!(weights(&["nosuchop".into()]).is_err());
    assert!(weights(&names).is_err());
}

#[test]
fn pools_track_bindings_and_signals() {
    let mut p = Pools::default();
    p.add_bound(1, 0x10000, 0x4000);
    p.add_bound(1, 0x20000, 0x1000);
    p.add_bound(2, 0x10000, 0x1000);
    // A MAP over an old range replaces it.
    p.add_bound(1, 0x12000, 0x1000);
    assert_eq!(p.bound_in(1), vec![(0x20000, 0x1000), (0x12000, 0x1000)]);
    p.remove_bound(1, 0x0, u64::MAX);
    assert!(p.bound_in(1).is_empty());
    assert_eq!(p.bound_in(2).len(), 1);
    for i in 0..(MAX_BOUND as u64 + 5) {
        p.add_bound(3, 0x10000 + i * 0x1000, 0x1000);
    }
    assert_eq!(p.bound.len(), MAX_BOUND);

    p.syncs.push(SyncInfo {
        handle: 7,
        fenced: false,
        point: 2,
    });
    p.signalled(&[
        SyncOp {
            flags: SIGNAL | uapi::DRM_FERRITE_SYNC_TIMELINE,
            handle: 7,
            point: 5,
        },
        SyncOp {
            flags: 0,
            handle: 7,
            point: 9,
        },
    ]);
    assert_eq!(
        p.syncs[0],
        SyncInfo {
            handle: 7,
            fenced: true,
            point: 5
        }
    );
}

fn test_file(dev: usize) -> Arc<FileCtx> {
    let null = std::fs::File::open("/dev/null").unwrap();
    Arc::new(FileCtx {
        fd: null.into(),
        range: VaRange {
            start: 0x1_0000,
            end: (1 << 48) - (1 << 32),
        },
        dev,
        async_ok: true,
        null_ok: true,
        pools: Mutex::default(),
    })
}

#[test]
fn kernel_views_of_sync_arrays() {
    let w = SyncOp {
        flags: 0,
        handle: 5,
        point: 0,
    };
    let sig = SyncOp {
        flags: SIGNAL,
        handle: 6,
        point: 0,
    };
    let arr = |count, stride| Arr {
        arr: drm_ferrite_obj_array {
            count,
            stride,
            array: 0,
        },
        layout: Layout {
            stride,
            nonzero_tail: false,
        },
        bad: false,
    };
    let v = kernel_view(&[sig, w], &arr(2, 16)).unwrap();
    assert!(waits_for_fence(Some(&v)));
    assert!(!waits_for_fence(
        kernel_view(&[sig], &arr(1, 16)).as_deref()
    ));
    assert!(!waits_for_fence(
        kernel_view(&[sig, w], &arr(1, 16)).as_deref()
    ));
    // A count past the elements: the kernel reads what follows.
    assert!(kernel_view(&[sig], &arr(0x1_0000, 16)).is_none());
    assert!(waits_for_fence(None));
    // A stride of 4: the kernel sees the flags, and handle 0, which no
    // sync object has; of 0: a WAIT, of handle 0 too.
    assert!(!waits_for_fence(
        kernel_view(&[sig, w], &arr(2, 4)).as_deref()
    ));
    assert!(!waits_for_fence(kernel_view(&[sig], &arr(1, 0)).as_deref()));
    let v = kernel_view(&[sig], &arr(1, 0)).unwrap();
    assert_eq!((v[0].flags, v[0].handle), (0, 0));
}

#[test]
fn userptr_bindings_follow_vms_and_files() {
    let (a, b, c) = (test_file(0), test_file(0), test_file(1));
    let bind = |f: &Arc<FileCtx>, vm| UBinding {
        file: Arc::downgrade(f),
        dev: f.dev,
        vm,
        va: 0x7f00_0000_0000,
        size: 2 * page(),
        readonly: true,
    };
    // The process VM of a device is one for all its files.
    assert!(bind(&a, PVM).in_vm(&b, PVM));
    assert!(!bind(&a, PVM).in_vm(&c, PVM));
    // An explicit VM is its file's.
    assert!(bind(&a, 1).in_vm(&a, 1));
    assert!(!bind(&a, 1).in_vm(&b, 1));
    assert!(!bind(&a, 1).in_vm(&a, 2));
    assert!(bind(&a, 1).overlaps(0x7f00_0000_1000, page()));
    assert!(!bind(&a, 1).overlaps(0x7f00_0000_2000, page()));
    let region = |mapped, bindings| Region {
        kind: MemKind::ZeroPage,
        va: 0x7f00_0000_0000,
        size: 2 * page(),
        file_off: 0,
        prot: libc::PROT_READ,
        mapped,
        lost_writable: false,
        bindings,
        owner: 0,
    };
    let mut u = UserMem::default();
    u.regions
        .push(region(true, vec![bind(&a, PVM), bind(&c, 3)]));
    u.regions.push(region(false, vec![bind(&c, PVM)]));
    u.regions.push(region(false, vec![bind(&a, 1)]));
    drop(c);
    u.prune();
    // The bindings through the closed file are forgotten, and with
    // them the munmapped region bound only through it.
    assert_eq!(u.regions.len(), 2);
    assert_eq!(u.regions[0].bindings.len(), 1);
    assert_eq!(u.owned_by(0), 2);
    // Not unmapped by the drop: the addresses are not ours.
    u.regions.clear();
}

#[test]
fn userptr_regions_under_mm_ops() {
    let shared: &'static Shared = Box::leak(Box::new(Shared {
        calls: AtomicU64::new(0),
        findings: AtomicU64::new(0),
    }));
    let budget = Budget {
        shared,
        limit: u64::MAX,
        deadline: Instant::now() + std::time::Duration::from_secs(3600),
    };
    let opts = RunOpts {
        trace: false,
        weights: weights(&[]).unwrap(),
        replay_extra: String::new(),
        inject_pending: false,
    };
    let file = Arc::into_inner(test_file(0)).unwrap();
    let env = Env::new(Vec::new(), vec![file], budget, &opts);
    let mut w = Worker::new(&env, 7, "test".into());
    let (mut made, mut files) = (0, 0);
    for i in 0..3000 {
        w.rng = Rng::new(crate::rng::step_seed(7, i));
        if w.rng.chance(1, 3) {
            if let Some(mut r) = w.new_region() {
                made += 1;
                files += u32::from(r.kind.is_file());
                // As if a writable binding had been forgotten (no
                // device here): the region is then never munmapped.
                r.lost_writable = w.rng.chance(1, 20);
                w.put_region(r);
            }
        } else {
            w.op_userptr_mm();
        }
        if i % 100 == 0 {
            w.check_zero_page("a test step");
        }
        let u = env.user();
        assert!(u.owned_by(w.pid) <= gen::MAX_USER_REGIONS);
        assert_eq!(u.out, 0);
    }
    assert_eq!(w.stats.findings, 0);
    assert!(
        made > 60 && files > 10,
        "{made} regions, {files} of the file"
    );
    // The file is sealed: what was written stays.
    let fd = env.user().file.as_ref().unwrap().0.as_raw_fd();
    assert_eq!(user_file_diff(fd, 0, gen::USER_FILE_SIZE), None);
    // SAFETY: a write attempt from a local buffer.
    let r = unsafe { libc::pwrite(fd, [1u8].as_ptr().cast(), 1, 0) };
    assert_eq!(r, -1);
    drop(w);
    drop(env);
    assert_eq!(shared.findings.load(Relaxed), 0);
}

#[test]
fn scratch_layout() {
    let mut s = Scratch::new();
    let a = s.alloc(100).unwrap() as u64;
    let b = s.alloc(8).unwrap() as u64;
    assert_eq!(b, a + 104);
    assert!(s.alloc(SCRATCH_RW).is_none());
    assert_eq!(s.guard(), s.rw_end());
    assert_eq!(s.read_only(), s.rw_end() + page());
    // The read/write area is writable up to its end.
    // SAFETY: the last byte of the read/write area.
    unsafe { ((s.rw_end() - 1) as *mut u8).write(1) };
    s.reset();
    assert_eq!(s.alloc(1).unwrap() as u64, a);
}
