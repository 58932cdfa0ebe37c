// SPDX-License-Identifier: GPL-2.0
//! The versioned C ABI between `vfio_pci_common` and the variant modules.
//!
//! Rust on 6.12 cannot export Rust items from one out-of-tree module to another, so the common
//! module exports `extern "C"` functions (listed in `abi_exports.c`) and these `#[repr(C)]` types.
//! This file is compiled into both sides (the common module and, through the SDK, every
//! variant), so the two always agree on the layout for one build; `abi_version` catches a
//! variant built against another version of this file.
//!
//! Lifetimes: a [`VariantOps`] is a `static` in the variant module and outlives every handle
//! made from it; a variant handle lives from module init to module exit; a device handle from
//! a successful probe to remove. The variant's per-device data is owned by the common device
//! from `vfio_pci_common_device_register` on and released exactly once, through
//! [`VariantOps::release`], when the device is unregistered (or registration fails).

// Compiled into both sides, each of which uses only its half.
#![allow(dead_code)]

use core::ffi::{c_int, c_void};
use kernel::ffi::c_char;

/// Bumped on any incompatible change of the types or functions in this file.
pub(crate) const ABI_VERSION: u32 = 5;

/// What a variant tells the common module about itself (one `static` per variant driver).
#[repr(C)]
pub(crate) struct VariantOps {
    /// Must be [`ABI_VERSION`] of the variant's build; refused otherwise.
    pub(crate) abi_version: u32,
    /// NUL-terminated driver name; also the VFIO device ops name (so SR-IOV VF capture and
    /// `driver_override` agree).
    pub(crate) name: *const c_char,
    /// Drops the variant's per-device data (the pointer given at device registration).
    pub(crate) release: Option<unsafe extern "C" fn(data: *mut c_void)>,
    /// Optional: called when user space first opens the device, after the common module has
    /// done its part; an error fails the open. `None` means the common behaviour only. The
    /// only time `vfio_pci_common_hide_cap` works. Runs under the dev_set lock, without the
    /// state mutex.
    pub(crate) open_device:
        Option<unsafe extern "C" fn(data: *mut c_void, dev: *mut DeviceHandle) -> c_int>,
    /// Optional: called when user space last closes the device, before the common module
    /// does its part (same locks as `open_device`).
    pub(crate) close_device:
        Option<unsafe extern "C" fn(data: *mut c_void, dev: *mut DeviceHandle)>,
    /// The variant's virtual config registers (`n_overlays` entries, a `static`), added on
    /// top of the emulated config space at every open.
    pub(crate) overlays: *const ConfigOverlay,
    /// Number of entries at `overlays`.
    pub(crate) n_overlays: usize,
    /// Optional: what user space reads from an overlay, given its virtual value. Runs under
    /// the device's state lock: it must not call back into the common module.
    pub(crate) config_read:
        Option<unsafe extern "C" fn(data: *mut c_void, pos: u16, count: u32, val: u32) -> u32>,
    /// Optional: a user write changed an overlay to `val`. Same rules as `config_read`.
    pub(crate) config_write:
        Option<unsafe extern "C" fn(data: *mut c_void, pos: u16, count: u32, val: u32)>,
    /// Optional: the device-specific regions of this open (at most `max`, written to `out`);
    /// returns how many, or a negative errno to fail the open. Called at every open, after
    /// `open_device`, with the dev_set lock and the device's state lock held: it must not call
    /// back into the common module.
    pub(crate) regions:
        Option<unsafe extern "C" fn(data: *mut c_void, out: *mut RegionDesc, max: u32) -> c_int>,
    /// Optional (required with `regions`): a read or write of `count` bytes at `pos` of
    /// device-specific region `index` (0-based among the variant's regions), to or from the
    /// kernel buffer `buf`. `pos` and `count` are already inside the region, and writes only
    /// reach writable regions. Returns the bytes done or a negative errno. Runs without the
    /// common module's locks held.
    pub(crate) region_rw: Option<
        unsafe extern "C" fn(
            data: *mut c_void,
            dev: *mut DeviceHandle,
            index: u32,
            pos: u64,
            buf: *mut u8,
            count: usize,
            is_write: bool,
        ) -> isize,
    >,
    /// Optional: called before (`done` false) and after (`done` true, with the reset's result
    /// in `ret`) a reset user space asked for (`VFIO_DEVICE_RESET`). Runs without the common
    /// module's locks held.
    pub(crate) reset_notify: Option<
        unsafe extern "C" fn(data: *mut c_void, dev: *mut DeviceHandle, done: bool, ret: c_int),
    >,
    /// Optional: what page `page` of device-specific region `index` maps to, for regions
    /// flagged `VFIO_REGION_INFO_FLAG_MMAP`, written to `*target`; called from the fault
    /// handler of a user mapping (process context, no common-module lock held). Returns 0 or
    /// a negative errno (the fault then raises SIGBUS). The common module checks a BAR target
    /// against the device's BAR, maps the page only while memory decode is on, and revokes it
    /// whenever it revokes BAR mappings.
    pub(crate) region_mmap: Option<
        unsafe extern "C" fn(
            data: *mut c_void,
            dev: *mut DeviceHandle,
            index: u32,
            page: u64,
            target: *mut MmapTarget,
        ) -> c_int,
    >,
    /// Optional: called before (`done` false) and after (`done` true, with the result in
    /// `ret`) a slot or bus reset that resets this device: `VFIO_DEVICE_PCI_HOT_RESET` from
    /// user space (on this device or another one of its dev_set) or the reset the common
    /// module does when the last device of a dev_set that needs one closes. Runs with the
    /// dev_set's lock held (no device of the set can be opened or closed meanwhile) and
    /// without the common module's per-device locks.
    pub(crate) bus_reset_notify: Option<
        unsafe extern "C" fn(data: *mut c_void, dev: *mut DeviceHandle, done: bool, ret: c_int),
    >,
    /// Optional: sees every `ioctl` on the device fd first (no lock of ours held). Returns
    /// [`HANDLED`] with the ioctl's result in `*ret`, [`FALL_THROUGH`] for the common handling,
    /// or a negative errno (returned to user space).
    pub(crate) ioctl: Option<
        unsafe extern "C" fn(
            data: *mut c_void,
            dev: *mut DeviceHandle,
            cmd: u32,
            arg: usize,
            ret: *mut i64,
        ) -> c_int,
    >,
    /// Optional: sees every `VFIO_DEVICE_FEATURE` first (`flags` and the user pointer `arg`
    /// to the `argsz` bytes after the header, as the VFIO core's `device_feature` op gets
    /// them); same return convention as `ioctl`.
    pub(crate) device_feature: Option<
        unsafe extern "C" fn(
            data: *mut c_void,
            dev: *mut DeviceHandle,
            flags: u32,
            arg: usize,
            argsz: usize,
            ret: *mut i64,
        ) -> c_int,
    >,
    /// Optional: replaces the function reset of `VFIO_DEVICE_RESET` (which is then offered,
    /// `VFIO_DEVICE_FLAGS_RESET`, even if the device has no function reset). Called after
    /// user mappings of the BARs were revoked and the device put in D0, without our locks;
    /// returns 0 or a negative errno.
    pub(crate) reset:
        Option<unsafe extern "C" fn(data: *mut c_void, dev: *mut DeviceHandle) -> c_int>,
    /// The variant's BAR windows (`n_bar_windows` entries, a `static`, at most one per BAR):
    /// read/write inside a window goes to `bar_window_rw`, mmap of a page holding part of it
    /// is refused, and `GET_REGION_INFO` gives the BAR a sparse-mmap capability around it.
    pub(crate) bar_windows: *const BarWindow,
    /// Number of entries at `bar_windows`.
    pub(crate) n_bar_windows: usize,
    /// Required with `bar_windows`: a read or write of `count` bytes at `pos` inside the
    /// window of BAR `bar` (`pos` relative to the window's start, `pos + count` inside it), to
    /// or from the kernel buffer `buf`. Returns the bytes done or a negative errno. Runs
    /// without our locks.
    pub(crate) bar_window_rw: Option<
        unsafe extern "C" fn(
            data: *mut c_void,
            dev: *mut DeviceHandle,
            bar: u32,
            pos: u64,
            buf: *mut u8,
            count: usize,
            is_write: bool,
        ) -> isize,
    >,
    /// Optional (null: the device does not migrate): the variant's live migration, a
    /// `static` of the variant. The common module then sets the VFIO device's `mig_ops`, so
    /// the VFIO core answers `VFIO_DEVICE_FEATURE_MIGRATION` and `_MIG_DEVICE_STATE`.
    pub(crate) migration: *const MigrationOps,
    /// Optional (ABI 5): the device's memory BARs ([`MemoryBar`]), asked once, right after
    /// the variant's probe: writes at most `max` entries to `out` and returns how many, or a
    /// negative errno (the registration then fails). Runs without our locks.
    pub(crate) memory_bars:
        Option<unsafe extern "C" fn(data: *mut c_void, out: *mut MemoryBar, max: usize) -> c_int>,
}

/// [`MemoryBar::flags`]: map the memory write-combined (uncached), not write-back.
pub(crate) const MEMORY_BAR_WRITE_COMBINE: u32 = 1 << 0;

/// Device memory the CPU reaches coherently at a physical address firmware describes
/// (NVLink-C2C, CXL type 2), shown to user space as an emulated 64-bit prefetchable memory
/// BAR: BAR `bar` and `bar + 1` (config-space sizing by the next power of two of `len`,
/// registers 0 at open and at `VFIO_DEVICE_RESET`), region `bar` of that size readable,
/// writable and mappable (the first `len` bytes; reads past them return `0xff`, writes are
/// dropped), never an ioeventfd target. The common module refuses a range that touches
/// System RAM.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct MemoryBar {
    /// 0, 2 or 4: the lower BAR of the 64-bit pair.
    pub(crate) bar: u32,
    /// [`MEMORY_BAR_WRITE_COMBINE`] or 0.
    pub(crate) flags: u32,
    /// Physical address of the memory (need not be page-aligned; a mapping starts at its
    /// page, as upstream `nvgrace-gpu` maps it).
    pub(crate) phys: u64,
    /// Bytes of memory.
    pub(crate) len: u64,
    /// The BAR's size, a power of two of at least `len`; 0 for the next power of two of
    /// `len`.
    pub(crate) size: u64,
}

#[allow(dead_code)]
impl MemoryBar {
    /// `len` bytes of write-back (cached) memory at `phys` as BARs `bar` and `bar + 1`.
    pub(crate) const fn cached(bar: u32, phys: u64, len: u64) -> Self {
        Self {
            bar,
            flags: 0,
            phys,
            len,
            size: 0,
        }
    }

    /// The same, mapped write-combined (uncached).
    pub(crate) const fn write_combined(bar: u32, phys: u64, len: u64) -> Self {
        Self {
            bar,
            flags: MEMORY_BAR_WRITE_COMBINE,
            phys,
            len,
            size: 0,
        }
    }

    /// The same with a BAR of `size` bytes (a power of two of at least `len`) instead of the
    /// next power of two of `len`.
    pub(crate) const fn with_bar_size(self, size: u64) -> Self {
        Self { size, ..self }
    }
}

/// [`MmapTarget::kind`]: page-aligned offset `value` of BAR `bar` of the device.
pub(crate) const MMAP_TARGET_BAR: u32 = 1;
/// [`MmapTarget::kind`]: page frame `value`, vouched for by the variant (`unsafe`).
pub(crate) const MMAP_TARGET_PFN: u32 = 2;

/// What one page of a mappable device-specific region is (see `VariantOps::region_mmap`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct MmapTarget {
    /// [`MMAP_TARGET_BAR`] or [`MMAP_TARGET_PFN`]; anything else is refused (SIGBUS).
    pub(crate) kind: u32,
    /// The BAR, for [`MMAP_TARGET_BAR`].
    pub(crate) bar: u32,
    /// The offset in the BAR, or the page frame number.
    pub(crate) value: u64,
}

/// `VariantOps::ioctl` / `device_feature`: the variant answered; the result is in `*ret`.
pub(crate) const HANDLED: c_int = 1;
/// `VariantOps::ioctl` / `device_feature`: the common module answers.
pub(crate) const FALL_THROUGH: c_int = 0;

/// [`BarWindow::flags`]: the window is the whole BAR, whose size is the window's, whatever
/// the hardware has there (an emulated BAR): `GET_REGION_INFO` reports `len` bytes,
/// readable and writable, not mappable.
pub(crate) const BAR_WINDOW_EMULATED_BAR: u32 = 1 << 0;

/// `vfio_pci_common_mediated_register`'s `flags`: the variant's BAR windows apply to this
/// mediated device and cover every register through which its user could start DMA, so the
/// function may master the bus while the user has MSI or MSI-X enabled (an MSI is a memory
/// write by the function). Without it a mediated device gets no windows (its BARs pass
/// through whole) and the function never masters the bus.
pub(crate) const MEDIATED_DMA_WINDOWS: u32 = 1 << 0;

/// A window of a BAR that a variant emulates (see [`VariantOps::bar_windows`]).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct BarWindow {
    /// 0 to 5.
    pub(crate) bar: u32,
    /// [`BAR_WINDOW_EMULATED_BAR`] or 0.
    pub(crate) flags: u32,
    /// Offset of the window in the BAR.
    pub(crate) offset: u64,
    /// Length in bytes.
    pub(crate) len: u64,
}

#[allow(dead_code)]
impl BarWindow {
    /// `len` bytes at `offset` of BAR `bar`.
    pub(crate) const fn new(bar: u32, offset: u64, len: u64) -> Self {
        Self {
            bar,
            flags: 0,
            offset,
            len,
        }
    }

    /// All of BAR `bar`, `size` bytes, emulated (see [`BAR_WINDOW_EMULATED_BAR`]).
    pub(crate) const fn emulated_bar(bar: u32, size: u64) -> Self {
        Self {
            bar,
            flags: BAR_WINDOW_EMULATED_BAR,
            offset: 0,
            len: size,
        }
    }
}

/// What one migration callback is asked to do (`MigrationOps::change`).
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum MigrationChange {
    /// Stop initiating peer-to-peer DMA (RUNNING -> RUNNING_P2P).
    Quiesce = 0,
    /// Initiate peer-to-peer DMA again (RUNNING_P2P -> RUNNING).
    Unquiesce = 1,
    /// Stop changing the device's state (-> STOP).
    Stop = 2,
    /// Run again (STOP ->).
    Start = 3,
}

/// A variant's live migration. The common module owns the state machine (arcs from
/// `vfio_mig_get_next_state`), the data fds and the stream's framing; the variant only stops,
/// starts, saves and loads its device.
///
/// Every callback runs with the device's migration lock held (so never two at once for one
/// device) and without the common module's other locks: they may use the device (MMIO,
/// config space) through the common module.
#[repr(C)]
pub(crate) struct MigrationOps {
    /// `VFIO_MIGRATION_*`: `STOP_COPY` always, `P2P` and `PRE_COPY` if offered.
    pub(crate) flags: u64,
    /// Most bytes one `save` writes; what `load` accepts; the STOP_COPY size estimate.
    pub(crate) max_state: usize,
    /// A change of the device's run state (a [`MigrationChange`]); 0 or a negative errno
    /// (then the arc fails and the state does not change).
    pub(crate) change: unsafe extern "C" fn(
        data: *mut c_void,
        device: *mut DeviceHandle,
        change: MigrationChange,
    ) -> c_int,
    /// Writes the device's state to `out` (room for `max_state` bytes); returns the bytes
    /// written or a negative errno.
    pub(crate) save: unsafe extern "C" fn(
        data: *mut c_void,
        device: *mut DeviceHandle,
        out: *mut u8,
        max: usize,
    ) -> isize,
    /// Loads `len` bytes one `save` wrote (the framing is checked already; the content is
    /// not: the variant checks what it reads); 0 or a negative errno.
    pub(crate) load: unsafe extern "C" fn(
        data: *mut c_void,
        device: *mut DeviceHandle,
        bytes: *const u8,
        len: usize,
    ) -> c_int,
}

// SAFETY: immutable after construction; holds only function pointers.
unsafe impl Sync for MigrationOps {}

/// Most device-specific regions a variant can add.
pub(crate) const MAX_REGIONS: usize = 8;
/// Most extra capabilities of one device-specific region.
pub(crate) const MAX_REGION_CAPS: usize = 2;
/// Largest body of one extra capability.
pub(crate) const MAX_REGION_CAP_BODY: usize = 32;

/// One extra `GET_REGION_INFO` capability of a device-specific region (after the type one).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct RegionCapDesc {
    /// `vfio_info_cap_header.id`.
    pub(crate) id: u16,
    /// `vfio_info_cap_header.version`.
    pub(crate) version: u16,
    /// Bytes of `body` used.
    pub(crate) len: u16,
    pub(crate) _pad: u16,
    /// What follows the header.
    pub(crate) body: [u8; MAX_REGION_CAP_BODY],
}

/// A device-specific region (index 9 and up), as `GET_REGION_INFO` describes it.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct RegionDesc {
    /// `vfio_region_info_cap_type.type` (e.g. `VFIO_REGION_TYPE_PCI_VENDOR_TYPE | vendor`).
    pub(crate) type_: u32,
    /// `vfio_region_info_cap_type.subtype`.
    pub(crate) subtype: u32,
    /// Size in bytes.
    pub(crate) size: u64,
    /// `VFIO_REGION_INFO_FLAG_READ` / `_WRITE` / `_MMAP` (mappable through
    /// [`VariantOps::region_mmap`]; a mapping may not be readable or writable unless the
    /// region is).
    pub(crate) flags: u32,
    /// Entries of `caps` used.
    pub(crate) n_caps: u32,
    /// Extra capabilities.
    pub(crate) caps: [RegionCapDesc; MAX_REGION_CAPS],
}

impl RegionDesc {
    /// A region with no extra capability.
    pub(crate) const fn new(type_: u32, subtype: u32, size: u64, flags: u32) -> Self {
        Self {
            type_,
            subtype,
            size,
            flags,
            n_caps: 0,
            caps: [RegionCapDesc {
                id: 0,
                version: 0,
                len: 0,
                _pad: 0,
                body: [0; MAX_REGION_CAP_BODY],
            }; MAX_REGION_CAPS],
        }
    }
}

/// A virtual config register of a variant: 1 to 4 bytes at `offset` inside one dword; user
/// space reads its virtual value and changes only its `writable` bits; the device sees neither.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct ConfigOverlay {
    /// Offset in config space.
    pub(crate) offset: u16,
    /// 1 to 4.
    pub(crate) size: u8,
    /// 1: the first value is the device's own bytes at open; 0: it is `value`.
    pub(crate) from_device: u8,
    /// Bits user space may change.
    pub(crate) writable: u32,
    /// The first value when `from_device` is 0.
    pub(crate) value: u32,
}

#[allow(dead_code)]
impl ConfigOverlay {
    /// An overlay that starts with the device's own value at every open (IGD's ASLS).
    pub(crate) const fn from_device(offset: u16, size: u8, writable: u32) -> Self {
        Self {
            offset,
            size,
            from_device: 1,
            writable,
            value: 0,
        }
    }

    /// An overlay that starts with `value` at every open.
    pub(crate) const fn value(offset: u16, size: u8, value: u32, writable: u32) -> Self {
        Self {
            offset,
            size,
            from_device: 0,
            writable,
            value,
        }
    }
}

// SAFETY: `VariantOps` is immutable after construction and only holds pointers to static data
// (the name, the overlay table) and function pointers, all valid from any thread.
unsafe impl Sync for VariantOps {}

/// Opaque handle to a registered variant (owned by the common module).
#[repr(C)]
pub(crate) struct VariantHandle {
    _private: [u8; 0],
}

/// Opaque handle to a registered device (owned by the common module).
#[repr(C)]
pub(crate) struct DeviceHandle {
    _private: [u8; 0],
}

// The functions, implemented in `abi_exports.rs` and declared for variants in
// `sdk/registration.rs`:
// - `u32 vfio_pci_common_abi_version(void)`;
// - `VariantHandle *vfio_pci_common_variant_register(const VariantOps *)`: a handle or an
//   `ERR_PTR` (`-EINVAL` on an ABI mismatch, with a message naming both versions);
// - `void vfio_pci_common_variant_unregister(VariantHandle *)`: after all its devices are gone;
// - `DeviceHandle *vfio_pci_common_device_register(VariantHandle *, struct pci_dev *, void *data)`:
//   creates and registers the VFIO device (group and cdev) and takes ownership of `data`, also
//   on failure (then already released);
// - `DeviceHandle *vfio_pci_common_mediated_register(VariantHandle *, struct pci_dev *parent,
//   struct device *dev, u32 flags, void *data)` (ABI 4): the same for a VFIO device whose
//   `struct device` is `dev`, a child of `parent` that the caller keeps alive until
//   unregister (an mdev): registered with the emulated IOMMU model, served over `parent`'s
//   config space, BARs and interrupts, with no hot reset, SR-IOV, VGA, migration or runtime
//   PM of its own (the parent's driver owns the function); `flags` is 0 (the whole BARs,
//   the function never masters the bus) or [`MEDIATED_DMA_WINDOWS`], any other bit
//   `-EINVAL`; unregistered with `vfio_pci_common_device_unregister`;
// - `void vfio_pci_common_device_unregister(DeviceHandle *)`: waits until user space has
//   closed the device, releases the variant data, drops the common module's reference;
// - `unsigned int vfio_pci_common_error_detected(DeviceHandle *, unsigned int state)`: the PCI
//   error handler (AER) of every variant; returns a `pci_ers_result_t`;
// - `int vfio_pci_common_sriov_configure(DeviceHandle *, int nr_virtfn)`: the `sriov_configure`
//   of every variant (called by the PCI core with the PF's device lock held);
// - `const struct dev_pm_ops *vfio_pci_common_pm_ops(void)`: the PM ops of every variant's
//   `pci_driver` (runtime PM for idle D3; in `primitives/pm_shims.c`);
// - `void vfio_pci_common_reset_handler(DeviceHandle *, bool done)`: the `reset_prepare` /
//   `reset_done` PCI error handlers of every variant (a reset done by someone else);
// - `bool vfio_pci_common_bound_by_override(struct pci_dev *)`: whether the device's
//   `driver_override` names the driver probing it (in `primitives/pci_shims.c`).
//
// The device context (`sdk::Device`, `features/device_context.rs`): the `DeviceHandle` a
// hook receives is valid for that hook's call; none of these may be called from a hook that
// runs under the state mutex (`config_read`, `config_write`, `regions`). Each returns 0 or a
// negative errno:
// - `int vfio_pci_common_mmio(DeviceHandle *, u32 bar, u64 offset, u32 size, u32 flags,
//   u64 *value)`: one 1/2/4/8-byte access of a memory BAR (`flags` & `ACCESS_WRITE`), under
//   the state mutex, with the device open, in D0 and its real memory decode on;
// - `int vfio_pci_common_config(DeviceHandle *, u16 offset, u32 size, u32 flags,
//   u32 *value)`: a config access, emulated (as user space) or `ACCESS_RAW` (the device);
// - `int vfio_pci_common_set_overlay(DeviceHandle *, u16 offset, u32 value)`;
// - `int vfio_pci_common_hide_cap(DeviceHandle *, u16 id, bool extended)`: only during
//   `open_device`.

/// `flags` bit of `vfio_pci_common_mmio` / `vfio_pci_common_config`: a write of `*value`.
pub(crate) const ACCESS_WRITE: u32 = 1 << 0;
/// `flags` bit of `vfio_pci_common_config`: the device's own register, not the emulation.
pub(crate) const ACCESS_RAW: u32 = 1 << 1;
