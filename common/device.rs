// SPDX-License-Identifier: GPL-2.0
//! The VFIO device the common module registers for each bound PCI function, the one
//! `vfio_device_ops` table per variant, and the exported ABI functions that create them.
//!
//! Memory and lifetimes:
//! - A [`Variant`] is a `KBox` made by `vfio_pci_common_variant_register` (module init of the
//!   variant) and freed by `..._variant_unregister` (module exit). It holds the variant's
//!   `vfio_device_ops`, so it must outlive every device of that variant: the PCI core removes
//!   all devices when the variant unregisters its `pci_driver`, before module exit continues.
//! - A [`CommonDevice`] is allocated by the VFIO core (`_vfio_alloc_device`) with our state
//!   after the embedded `struct vfio_device`; the VFIO core frees it after calling our
//!   `release`, which drops that state. Variant data is released earlier, in
//!   `vfio_pci_common_device_unregister`, while the variant module is certainly loaded.
//! - Locking: the mutable per-device state is in [`crate::state::Inner`] behind the state
//!   mutex (upstream's memory lock and most of what upstream keeps unlocked), except the
//!   interrupt state, behind the interrupt gate (upstream's `igate`), and the ioeventfd list,
//!   behind its own mutex; the VFIO core additionally serialises open/close (`dev_set->lock`).
//!   Lock order: `dev_set->lock` → ioeventfd list → interrupt gate → state mutex → spinlocks.
//!   Nothing waits, with the state mutex held, for work that takes it: in particular the
//!   VFIO core's virqfd clean-up workqueue, whose ioeventfd shutdowns wait for writes that take
//!   the state mutex, is flushed only without it (`intrs.rs`, `ioeventfd.rs`). Which variant
//!   hooks run under which lock is in `Documentation/architecture.md`.

use crate::abi::{DeviceHandle, VariantHandle, VariantOps, ABI_VERSION};
use crate::bindings;
use crate::pci::PciDev;
use core::ffi::{c_int, c_uint, c_void};
use kernel::ffi::{c_char, c_long, c_ulong};
use core::mem::size_of;
use core::ptr::{self, addr_of_mut, NonNull};
use core::sync::atomic::AtomicBool;
use kernel::error::{code::*, from_err_ptr, from_result, to_result, Error, Result};
use kernel::prelude::*;
use kernel::{new_mutex, sync::Mutex};

/// A registered variant driver.
///
/// # Invariants
///
/// `ops` points to the variant's static [`VariantOps`], valid until the variant unregisters,
/// which happens after all its devices are gone.
pub(crate) struct Variant {
    ops: NonNull<VariantOps>,
    vfio_ops: bindings::vfio_device_ops,
}

/// Per-device state of the common module, placed by the VFIO core right after `vdev`.
#[repr(C)]
pub(crate) struct CommonDevice {
    /// Must stay first: the VFIO core allocates, refcounts and frees us through it.
    vdev: bindings::vfio_device,
    state: DeviceState,
}

/// The Rust part of [`CommonDevice`].
///
/// Locking: see the module documentation.
#[pin_data]
pub(crate) struct DeviceState {
    pub(crate) pdev: PciDev,
    variant_data: VariantData,
    /// Everything that changes while the device is bound.
    #[pin]
    pub(crate) inner: crate::state_lock::StateMutex<crate::state::Inner>,
    /// The ioeventfds of the open device; never locked with `inner` or `irq_gate` held (see
    /// `ioeventfd.rs`).
    #[pin]
    pub(crate) ioeventfds: Mutex<crate::ioeventfd::IoEventFds>,
    /// The interrupt gate (upstream `igate`): the interrupt state of `crate::intrs`. Taken
    /// before `inner` when both are needed; held, without `inner`, across the virqfd flushes
    /// of INTx teardown.
    #[pin]
    pub(crate) irq_gate: Mutex<crate::intrs::IrqState>,
    /// What interrupt handlers may touch (see `crate::intrs`); its address is their `dev_id`,
    /// stable because the VFIO core's allocation never moves.
    #[pin]
    pub(crate) irq: crate::intrs::IrqShared,
    /// Closed without a function reset: a slot or bus reset of its dev_set is due when the
    /// set is idle (upstream `needs_reset`).
    pub(crate) needs_reset: AtomicBool,
    /// The `disable_idle_d3` parameter as it was at registration (upstream keeps it per
    /// device, so a change affects devices bound later).
    pub(crate) disable_idle_d3: bool,
    /// SR-IOV: VF token, VF capture, the PF of a VF.
    #[pin]
    pub(crate) sriov: crate::sriov::Sriov,
    /// Config dwords user space may read without `inner` (see `logic::config_fast`):
    /// published under `inner` at open, withdrawn at close.
    pub(crate) cfg_fast: crate::logic::config_fast::FastReads,
}

// SAFETY: `FastReads` is atomics only, and all zero is its empty table (documented there).
unsafe impl kernel::init::Zeroable for crate::logic::config_fast::FastReads {}

/// The variant's per-device data, handed back to the variant exactly once.
pub(crate) struct VariantData {
    variant: NonNull<Variant>,
    /// Null once released.
    data: *mut c_void,
}

impl VariantData {
    /// Hands the variant data back to its owner exactly once.
    fn release(&mut self) {
        let data = core::mem::replace(&mut self.data, ptr::null_mut());
        if data.is_null() {
            return;
        }
        // SAFETY: `variant` is valid while any of its devices exists (type invariant of
        // `Variant`), and `ops` is valid by its invariant.
        let release = unsafe { self.variant.as_ref().ops.as_ref().release };
        if let Some(release) = release {
            // SAFETY: `data` was given to us by this variant with ownership; we null our copy
            // above, so this is the one and only release.
            unsafe { release(data) };
        }
    }
}

impl DeviceState {
    /// The variant's ops table.
    pub(crate) fn variant_ops(&self) -> &VariantOps {
        // SAFETY: `variant` outlives its devices and `ops` is valid until the variant
        // unregisters (type invariant of `Variant`).
        unsafe { self.variant_data.variant.as_ref().ops.as_ref() }
    }

    /// The `struct vfio_device` this state belongs to.
    pub(crate) fn vfio_device(&self) -> *mut bindings::vfio_device {
        let state = core::ptr::from_ref(self).cast::<u8>();
        // SAFETY: a `DeviceState` only ever exists as the `state` field of a `CommonDevice`
        // (see `register_device`), so stepping back by the field offset stays inside it.
        let cdev = unsafe { state.sub(core::mem::offset_of!(CommonDevice, state)) };
        cdev.cast::<CommonDevice>().cast_mut().cast::<bindings::vfio_device>()
    }

    /// The variant's data pointer for its hooks (valid until the device is unregistered).
    pub(crate) fn variant_data(&self) -> *mut c_void {
        self.variant_data.data
    }
}

impl Drop for VariantData {
    fn drop(&mut self) {
        self.release();
    }
}

impl CommonDevice {
    /// # Safety
    ///
    /// `vdev` must be the `vdev` field of a live [`CommonDevice`] whose `state` is initialised
    /// (true for every device the VFIO core passes to our ops after registration, and for
    /// every member of one of our dev_sets).
    pub(crate) unsafe fn from_vdev<'a>(vdev: *mut bindings::vfio_device) -> &'a DeviceState {
        // SAFETY: `vdev` is the first field of the `repr(C)` `CommonDevice`, so the pointers
        // are equal; the caller guarantees `state` is initialised and alive.
        unsafe { &(*vdev.cast::<CommonDevice>()).state }
    }
}

// ---- vfio_device_ops callbacks -------------------------------------------------------------

unsafe extern "C" fn release(vdev: *mut bindings::vfio_device) {
    // SAFETY: the VFIO core calls `release` once, on the last reference, before freeing the
    // allocation; `state` was written right after allocation, before any failure path.
    unsafe { ptr::drop_in_place(addr_of_mut!((*vdev.cast::<CommonDevice>()).state)) };
}

unsafe extern "C" fn open_device(vdev: *mut bindings::vfio_device) -> c_int {
    // SAFETY: the VFIO core only calls ops on registered devices.
    let dev = unsafe { CommonDevice::from_vdev(vdev) };
    from_result(|| crate::lifecycle::open(dev).map(|()| 0))
}

unsafe extern "C" fn close_device(vdev: *mut bindings::vfio_device) {
    // SAFETY: the VFIO core only calls ops on registered devices.
    let dev = unsafe { CommonDevice::from_vdev(vdev) };
    crate::lifecycle::close(dev);
}

unsafe extern "C" fn read(
    vdev: *mut bindings::vfio_device,
    buf: *mut c_char,
    count: usize,
    ppos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: forwarding our caller's guarantees.
    unsafe { rw_op(vdev, buf as usize, count, ppos, false) }
}

unsafe extern "C" fn write(
    vdev: *mut bindings::vfio_device,
    buf: *const c_char,
    count: usize,
    ppos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: forwarding our caller's guarantees.
    unsafe { rw_op(vdev, buf as usize, count, ppos, true) }
}

/// The body of the `read` and `write` ops: the access, then the file position moves on.
///
/// # Safety
///
/// `vdev` is a registered device of ours and `ppos` the file position the VFS passes in.
unsafe fn rw_op(vdev: *mut bindings::vfio_device, buf: usize, count: usize, ppos: *mut bindings::loff_t, is_write: bool) -> isize {
    // SAFETY: the VFIO core only calls ops on registered devices.
    let dev = unsafe { CommonDevice::from_vdev(vdev) };
    from_result(|| {
        // SAFETY: `ppos` is valid for this call (the caller's contract).
        let pos = unsafe { &mut *ppos };
        let done = region_rw(dev, buf, count, *pos, is_write)?;
        *pos += done as bindings::loff_t;
        Ok(done as isize)
    })
}

/// `read`/`write` on the device fd: dispatches on the region index encoded in the offset
/// (upstream `vfio_pci_rw`).
fn region_rw(dev: &DeviceState, buf: usize, count: usize, pos: i64, is_write: bool) -> Result<usize> {
    use crate::logic::region;
    if count == 0 {
        return Ok(0);
    }
    let (index, offset) = region::split_offset(pos as u64);
    match index {
        region::index::CONFIG if is_write => crate::config::write(dev, buf, count, offset),
        region::index::CONFIG => crate::config::read(dev, buf, count, offset),
        region::index::ROM if is_write => Err(EINVAL),
        i @ region::index::BAR0..=region::index::ROM => {
            crate::bar::rw(dev, i as usize, buf, count, offset, is_write)
        }
        // No VGA support (upstream: -EINVAL without VGA).
        region::index::VGA => Err(EINVAL),
        i => crate::regions::rw(dev, (i - region::NUM_REGIONS) as usize, buf, count, offset, is_write),
    }
}

unsafe extern "C" fn mmap(vdev: *mut bindings::vfio_device, vma: *mut bindings::vm_area_struct) -> c_int {
    // SAFETY: the VFIO core only calls ops on registered devices.
    let dev = unsafe { CommonDevice::from_vdev(vdev) };
    from_result(|| crate::bar::mmap(dev, vma).map(|()| 0))
}

unsafe extern "C" fn request(vdev: *mut bindings::vfio_device, count: c_uint) {
    // SAFETY: the VFIO core only calls ops on registered devices (`request` from inside
    // `vfio_unregister_group_dev`, before it returns).
    let dev = unsafe { CommonDevice::from_vdev(vdev) };
    crate::intrs::request(dev, count);
}

unsafe extern "C" fn match_name(vdev: *mut bindings::vfio_device, buf: *mut c_char) -> c_int {
    // SAFETY: the VFIO core only calls ops on registered devices.
    let dev = unsafe { CommonDevice::from_vdev(vdev) };
    // SAFETY: the VFIO core passes the NUL-terminated name user space gave
    // (`VFIO_GROUP_GET_DEVICE_FD`), copied into kernel memory, valid for this call.
    let buf = unsafe { kernel::str::CStr::from_char_ptr(buf) };
    from_result(|| crate::sriov::match_name(dev, buf.as_bytes()).map(c_int::from))
}

unsafe extern "C" fn device_feature(vdev: *mut bindings::vfio_device, flags: u32, arg: *mut c_void, argsz: usize) -> c_int {
    // SAFETY: the VFIO core only calls ops on registered devices.
    let dev = unsafe { CommonDevice::from_vdev(vdev) };
    from_result(|| crate::sriov::device_feature(dev, flags, arg as usize, argsz))
}

unsafe extern "C" fn ioctl(vdev: *mut bindings::vfio_device, cmd: c_uint, arg: c_ulong) -> c_long {
    // SAFETY: the VFIO core only calls ops on registered devices.
    let dev = unsafe { CommonDevice::from_vdev(vdev) };
    from_result(|| crate::info::ioctl(dev, cmd, arg as usize).map(|v| v as c_long))
}

// ---- exported ABI ---------------------------------------------------------------------------

/// See [`crate::abi`].
#[no_mangle]
pub(crate) extern "C" fn vfio_pci_common_abi_version() -> u32 {
    ABI_VERSION
}

/// See [`crate::abi`].
///
/// # Safety
///
/// `ops` must point to a [`VariantOps`] that stays valid until the matching unregister.
#[no_mangle]
pub(crate) unsafe extern "C" fn vfio_pci_common_variant_register(ops: *const VariantOps) -> *mut VariantHandle {
    let Some(ops) = NonNull::new(ops.cast_mut()) else {
        return EINVAL.into_err_ptr();
    };
    // SAFETY: the caller guarantees `ops` is valid.
    let o = unsafe { ops.as_ref() };
    if o.abi_version != ABI_VERSION {
        pr_err!(
            "a variant built for ABI version {} cannot use this vfio_pci_common (ABI version {}); \
             rebuild the variant against this tree\n",
            o.abi_version,
            ABI_VERSION
        );
        return EINVAL.into_err_ptr();
    }
    if o.name.is_null() {
        return EINVAL.into_err_ptr();
    }
    let vfio_ops = bindings::vfio_device_ops {
        name: o.name.cast_mut(),
        release: Some(release),
        open_device: Some(open_device),
        close_device: Some(close_device),
        read: Some(read),
        write: Some(write),
        ioctl: Some(ioctl),
        mmap: Some(mmap),
        request: Some(request),
        match_: Some(match_name),
        device_feature: Some(device_feature),
        bind_iommufd: Some(bindings::vfio_iommufd_physical_bind),
        unbind_iommufd: Some(bindings::vfio_iommufd_physical_unbind),
        attach_ioas: Some(bindings::vfio_iommufd_physical_attach_ioas),
        detach_ioas: Some(bindings::vfio_iommufd_physical_detach_ioas),
        ..Default::default()
    };
    // INVARIANT: `ops` is valid until unregister, by the caller's guarantee.
    match KBox::new(Variant { ops, vfio_ops }, GFP_KERNEL) {
        Ok(b) => KBox::into_raw(b).cast(),
        Err(_) => ENOMEM.into_err_ptr(),
    }
}

/// See [`crate::abi`].
///
/// # Safety
///
/// `variant` must come from `vfio_pci_common_variant_register` and have no devices left.
#[no_mangle]
pub(crate) unsafe extern "C" fn vfio_pci_common_variant_unregister(variant: *mut VariantHandle) {
    if variant.is_null() {
        return;
    }
    // SAFETY: the caller guarantees this is our `KBox<Variant>` and that it is unused now.
    drop(unsafe { KBox::from_raw(variant.cast::<Variant>()) });
}

/// See [`crate::abi`].
///
/// # Safety
///
/// `variant` must be a live variant handle, `pdev` a device being probed by that variant's
/// driver, and `data` owned by the caller (ownership passes to us, also on failure).
#[no_mangle]
pub(crate) unsafe extern "C" fn vfio_pci_common_device_register(
    variant: *mut VariantHandle,
    pdev: *mut bindings::pci_dev,
    data: *mut c_void,
) -> *mut DeviceHandle {
    let (Some(variant), Some(pdev)) = (NonNull::new(variant.cast::<Variant>()), NonNull::new(pdev)) else {
        return EINVAL.into_err_ptr();
    };
    // SAFETY: the caller guarantees the pointers; see the function's safety section.
    match unsafe { register_device(variant, pdev, data) } {
        Ok(d) => d.cast(),
        Err(e) => e.into_err_ptr(),
    }
}

/// # Safety
///
/// As for [`vfio_pci_common_device_register`].
unsafe fn register_device(
    variant: NonNull<Variant>,
    pdev: NonNull<bindings::pci_dev>,
    data: *mut c_void,
) -> Result<*mut CommonDevice> {
    // SAFETY: `pdev` is bound to the variant's driver for the life of this registration.
    let pci = unsafe { PciDev::from_raw(pdev) };
    // Bridges and CardBus functions are not for user space (upstream: -EINVAL).
    if pci.hdr_type() & 0x7f != 0 {
        drop(VariantData { variant, data });
        return Err(EINVAL);
    }
    // A PF whose VFs already exist: we could neither capture nor track them, and disabling
    // SR-IOV here could block on a VF user. Let the administrator sort it out (upstream).
    if pci.num_vf() > 0 {
        crate::pci::dev_warn(&pci, format_args!("Cannot bind to PF with SR-IOV enabled\n"));
        drop(VariantData { variant, data });
        return Err(EBUSY);
    }
    // Allocated before the VFIO device, so no failure path has a half-built device.
    let inner = match crate::state::Inner::new(&pci) {
        Ok(i) => i,
        Err(e) => {
            drop(VariantData { variant, data });
            return Err(e);
        }
    };
    let disable_idle_d3 = crate::params::disable_idle_d3();
    let sriov = crate::sriov::Sriov::new(&pci);
    // SAFETY: `variant` is live (caller); `vfio_ops` lives as long as the variant, which
    // outlives all its devices (invariant of `Variant`). The size covers our whole struct.
    let vdev = from_err_ptr(unsafe {
        bindings::_vfio_alloc_device(
            size_of::<CommonDevice>(),
            pci.as_device(),
            &(*variant.as_ptr()).vfio_ops,
        )
    });
    let vdev = match vdev {
        Ok(v) => v,
        Err(e) => {
            // Ownership of `data` passed to us: release it.
            drop(VariantData { variant, data });
            return Err(e);
        }
    };
    let cdev = vdev.cast::<CommonDevice>();
    let init = pin_init!(DeviceState {
        pdev: pci,
        variant_data: VariantData { variant, data },
        inner <- crate::state_lock::StateMutex::new(inner),
        ioeventfds <- new_mutex!(crate::ioeventfd::IoEventFds::default(), "vfio_pci_common::ioeventfds"),
        irq_gate <- new_mutex!(crate::intrs::IrqState::default(), "vfio_pci_common::irq_gate"),
        irq <- crate::intrs::IrqShared::new(),
        needs_reset: AtomicBool::new(false),
        disable_idle_d3,
        sriov <- sriov,
        cfg_fast <- kernel::init::zeroed(),
    });
    // SAFETY: `_vfio_alloc_device` returned a zeroed allocation of `size_of::<CommonDevice>()`
    // bytes with `vdev` initialised; `state` is memory we own that stays put until `release`,
    // initialised once here (infallibly) before anything can call `release`.
    let Ok(()) = unsafe { init.__pinned_init(addr_of_mut!((*cdev).state)) };
    // SAFETY: the state is initialised and stays so until the final put.
    let state = unsafe { &(*cdev).state };
    // The dev_set (see `hot_reset.rs`): joined now that the state a member must have exists.
    // SAFETY: `vdev` is initialised and not registered; `pdev` is its device.
    let mut ret = to_result(unsafe { vfio_pci_common_assign_dev_set(vdev, pdev.as_ptr()) });
    if ret.is_ok() {
        // SAFETY: `variant` is live (caller) and its ops name is a static string.
        ret = crate::sriov::register(state, unsafe { variant.as_ref().ops.as_ref().name });
    }
    if ret.is_ok() {
        // pci-core leaves a released device in an unknown power state from which only D0 is
        // allowed; go there before runtime PM may take the idle device to D3hot.
        let _ = crate::state::set_power_state(&state.pdev, &mut state.inner.lock().pm, 0, false);
        state.pdev.pm_probe(!disable_idle_d3);
        // SAFETY: `vdev` is a fully initialised, unregistered VFIO device.
        ret = to_result(unsafe { bindings::vfio_register_group_dev(vdev) });
        if ret.is_err() {
            state.pdev.pm_remove(!disable_idle_d3);
        }
    }
    if let Err(e) = ret {
        crate::sriov::unregister(state);
        // SAFETY: the state is initialised; release the variant data now (with the set's
        // lock, if it joined one, as `hot_reset.rs` expects), then drop our only reference,
        // which frees the allocation (and leaves the set) through the VFIO core's release.
        unsafe {
            release_variant_data(cdev);
            put_vfio_device(vdev);
        }
        return Err(e);
    }
    Ok(cdev)
}

// The structs hold opaque lock types bindgen cannot prove FFI-safe; we only pass pointers.
#[allow(improper_ctypes)]
extern "C" {
    fn vfio_pci_common_assign_dev_set(vdev: *mut bindings::vfio_device, pdev: *mut bindings::pci_dev) -> c_int;
}

/// Hands the variant data back, with the device's dev_set lock held if it has a set (hook
/// callers in `hot_reset.rs` read the data pointer under that lock).
///
/// # Safety
///
/// `cdev` is a live device whose state is initialised.
unsafe fn release_variant_data(cdev: *mut CommonDevice) {
    // SAFETY: the caller's guarantee.
    unsafe {
        let vdev = addr_of_mut!((*cdev).vdev);
        if (*vdev).dev_set.is_null() {
            (*cdev).state.variant_data.release();
        } else {
            let _set = crate::hot_reset::SetLock::new(vdev);
            (*cdev).state.variant_data.release();
        }
    }
}

/// `vfio_put_device` is a static inline around `put_device(&vdev->device)`.
///
/// # Safety
///
/// The caller must own a reference to `vdev`.
unsafe fn put_vfio_device(vdev: *mut bindings::vfio_device) {
    // SAFETY: the caller owns a reference; `device` is the embedded refcounted `struct device`.
    unsafe { kernel::bindings::put_device(addr_of_mut!((*vdev).device)) };
}

/// See [`crate::abi`].
///
/// # Safety
///
/// `device` must come from a successful `vfio_pci_common_device_register` and not have been
/// unregistered yet.
#[no_mangle]
pub(crate) unsafe extern "C" fn vfio_pci_common_device_unregister(device: *mut DeviceHandle) {
    let cdev = device.cast::<CommonDevice>();
    if cdev.is_null() {
        return;
    }
    // SAFETY: `cdev` is a registered device (caller). `vfio_unregister_group_dev` waits until
    // user space has closed every fd of it, so no op runs after it returns; then the variant
    // data goes back to the variant while its module is loaded, and our reference is dropped.
    unsafe {
        let vdev = addr_of_mut!((*cdev).vdev);
        let state = &(*cdev).state;
        // VFs go first (their drivers unbind), as upstream's unregister does.
        let _ = crate::sriov::configure(state, 0);
        bindings::vfio_unregister_group_dev(vdev);
        crate::sriov::unregister(state);
        state.pdev.pm_remove(!state.disable_idle_d3);
        release_variant_data(cdev);
        put_vfio_device(vdev);
    }
}

/// See [`crate::abi`]: the `sriov_configure` of every variant (PCI core, PF device lock held).
///
/// # Safety
///
/// `device` must be a registered device handle.
#[no_mangle]
pub(crate) unsafe extern "C" fn vfio_pci_common_sriov_configure(device: *mut DeviceHandle, nr: c_int) -> c_int {
    let cdev = device.cast::<CommonDevice>();
    if cdev.is_null() {
        return ENODEV.to_errno();
    }
    // SAFETY: a registered device (caller): its state is initialised and alive.
    let dev = unsafe { &(*cdev).state };
    from_result(|| crate::sriov::configure(dev, nr))
}

/// `pci_ers_result_t` value meaning "the driver can recover" (`PCI_ERS_RESULT_CAN_RECOVER`).
const PCI_ERS_RESULT_CAN_RECOVER: c_uint = 2;

/// See [`crate::abi`]: the AER `error_detected` handler of every variant. Like upstream, it
/// only tells user space (through the ERR eventfd, if one is set) and lets the recovery go on;
/// the device stays with the user, who owns its recovery.
///
/// # Safety
///
/// `device` must be a registered device handle.
#[no_mangle]
pub(crate) unsafe extern "C" fn vfio_pci_common_error_detected(
    device: *mut DeviceHandle,
    _state: c_uint,
) -> c_uint {
    let cdev = device.cast::<CommonDevice>();
    if !cdev.is_null() {
        // SAFETY: a registered device (caller): its state is initialised and alive.
        let dev = unsafe { &(*cdev).state };
        crate::pci::dev_notice(&dev.pdev, format_args!("PCI error detected; the user owns recovery\n"));
        crate::intrs::error_detected(dev);
    }
    PCI_ERS_RESULT_CAN_RECOVER
}

/// Keeps the ABI's function types and ours from drifting apart.
const _: () = {
    let _: extern "C" fn() -> u32 = vfio_pci_common_abi_version;
    let _: unsafe extern "C" fn(*const VariantOps) -> *mut VariantHandle = vfio_pci_common_variant_register;
};

/// Errors as `ERR_PTR` values for the ABI.
trait IntoErrPtr {
    fn into_err_ptr<T>(self) -> *mut T;
}

impl IntoErrPtr for Error {
    fn into_err_ptr<T>(self) -> *mut T {
        self.to_errno() as isize as *mut T
    }
}
