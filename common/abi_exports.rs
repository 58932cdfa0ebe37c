// SPDX-License-Identifier: GPL-2.0
//! The exported C ABI functions (declared for variants in `abi.rs`, exported by
//! `abi_exports.c`): variant registration, device registration and removal, and the PCI
//! driver callbacks every variant forwards (`sriov_configure`, `error_detected`). Memory and
//! lifetimes of what they create are in `state.rs`.

use crate::abi::{DeviceHandle, VariantHandle, VariantOps, ABI_VERSION};
use crate::bindings;
use crate::primitives::pci_function::PciFunction;
use crate::state::{DeviceState, RegisteredVariant, VariantData, VfioPciDevice};
use core::ffi::{c_int, c_uint, c_void};
use core::mem::size_of;
use core::ptr::{addr_of_mut, NonNull};
use core::sync::atomic::AtomicBool;
use kernel::error::{code::*, from_err_ptr, from_result, to_result, Error, Result};
use kernel::new_mutex;
use kernel::prelude::*;

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
pub(crate) unsafe extern "C" fn vfio_pci_common_variant_register(
    ops: *const VariantOps,
) -> *mut VariantHandle {
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
    if o.name.is_null() || !bar_windows_valid(o) {
        return EINVAL.into_err_ptr();
    }
    let vfio_ops = crate::vfio_ops::table(o.name);
    let vfio_ops_mediated = crate::vfio_ops::table_mediated(o.name);
    // INVARIANT: `ops` is valid until unregister, by the caller's guarantee.
    match KBox::new(
        RegisteredVariant {
            ops,
            vfio_ops,
            vfio_ops_mediated,
        },
        GFP_KERNEL,
    ) {
        Ok(b) => KBox::into_raw(b).cast(),
        Err(_) => ENOMEM.into_err_ptr(),
    }
}

/// The SDK checks a variant's BAR windows at compile time; a variant built otherwise gets the
/// same rules here: with their hook, at most one per BAR, each non-empty and inside 64 bits.
fn bar_windows_valid(o: &VariantOps) -> bool {
    if o.n_bar_windows == 0 {
        return true;
    }
    if o.bar_windows.is_null() || o.bar_window_rw.is_none() || o.n_bar_windows > 6 {
        return false;
    }
    // SAFETY: the caller of register vouches for the ops and the tables they point to.
    let t = unsafe { core::slice::from_raw_parts(o.bar_windows, o.n_bar_windows) };
    t.iter().enumerate().all(|(i, w)| {
        w.bar < 6
            && w.len != 0
            && w.flags & !crate::abi::BAR_WINDOW_EMULATED_BAR == 0
            && (w.flags == 0 || w.offset == 0)
            && w.offset.checked_add(w.len).is_some()
            && t.iter().skip(i + 1).all(|x| x.bar != w.bar)
    })
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
    // SAFETY: the caller guarantees this is our `KBox<RegisteredVariant>` and that it is unused now.
    drop(unsafe { KBox::from_raw(variant.cast::<RegisteredVariant>()) });
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
    let (Some(variant), Some(pdev)) = (
        NonNull::new(variant.cast::<RegisteredVariant>()),
        NonNull::new(pdev),
    ) else {
        return EINVAL.into_err_ptr();
    };
    // SAFETY: the caller guarantees the pointers; see the function's safety section.
    match unsafe { register_device(variant, pdev, None, data) } {
        Ok(d) => d.cast(),
        Err(e) => e.into_err_ptr(),
    }
}

/// See [`crate::abi`]: a mediated device (an mdev) over the PCI function `pdev`.
///
/// # Safety
///
/// `variant` must be a live variant handle, `pdev` a device bound to that variant's driver
/// until the returned handle is unregistered, `dev` a live device the caller keeps until then
/// (the VFIO device's parent), and `data` owned by the caller (ownership passes to us, also on
/// failure).
#[no_mangle]
pub(crate) unsafe extern "C" fn vfio_pci_common_mediated_register(
    variant: *mut VariantHandle,
    pdev: *mut bindings::pci_dev,
    dev: *mut kernel::bindings::device,
    flags: u32,
    data: *mut c_void,
) -> *mut DeviceHandle {
    let (Some(variant), Some(pdev), Some(dev)) = (
        NonNull::new(variant.cast::<RegisteredVariant>()),
        NonNull::new(pdev),
        NonNull::new(dev),
    ) else {
        return EINVAL.into_err_ptr();
    };
    // SAFETY: the caller guarantees the pointers; see the function's safety section.
    match unsafe { register_device(variant, pdev, Some((dev, flags)), data) } {
        Ok(d) => d.cast(),
        Err(e) => e.into_err_ptr(),
    }
}

/// Registers the VFIO device of `pdev` (`mediated` `None`), or of the child device of
/// `mediated` served over `pdev` with its `abi::MEDIATED_*` flags (see
/// [`DeviceState::mediated`]).
///
/// # Safety
///
/// As for [`vfio_pci_common_device_register`] and [`vfio_pci_common_mediated_register`].
unsafe fn register_device(
    variant: NonNull<RegisteredVariant>,
    pdev: NonNull<bindings::pci_dev>,
    mediated: Option<(NonNull<kernel::bindings::device>, u32)>,
    data: *mut c_void,
) -> Result<*mut VfioPciDevice> {
    let mediated_flags = mediated.map(|(_, f)| f);
    if mediated_flags.is_some_and(|f| f & !crate::abi::MEDIATED_DMA_WINDOWS != 0) {
        drop(VariantData { variant, data });
        return Err(EINVAL);
    }
    let mediated = mediated.map(|(d, _)| d);
    // Without the flag a mediated device's BARs pass through whole and it never masters the
    // bus; with it the variant's windows mediate its DMA and MSI may use bus mastering.
    let dma_windows = mediated_flags.map_or(true, |f| f & crate::abi::MEDIATED_DMA_WINDOWS != 0);
    let msi_bus_master = mediated.is_some() && dma_windows;
    // SAFETY: `pdev` is bound to the variant's driver for the life of this registration.
    let pci = unsafe { PciFunction::from_raw(pdev) };
    // Bridges and CardBus functions are not for user space (upstream: -EINVAL).
    if pci.hdr_type() & 0x7f != 0 {
        drop(VariantData { variant, data });
        return Err(EINVAL);
    }
    // A PF whose VFs already exist: we could neither capture nor track them, and disabling
    // SR-IOV here could block on a VF user. Let the administrator sort it out (upstream).
    if mediated.is_none() && pci.num_vf() > 0 {
        crate::primitives::pci_function::dev_warn(
            &pci,
            format_args!("Cannot bind to PF with SR-IOV enabled\n"),
        );
        drop(VariantData { variant, data });
        return Err(EBUSY);
    }
    // Allocated before the VFIO device, so no failure path has a half-built device.
    let inner = match crate::state::Inner::new(crate::features::power::needs_pm_restore(&pci)) {
        Ok(i) => i,
        Err(e) => {
            drop(VariantData { variant, data });
            return Err(e);
        }
    };
    // SAFETY: `variant` is live (caller) and its ops outlive its devices (invariant of
    // `RegisteredVariant`).
    let ops = unsafe { variant.as_ref().ops.as_ref() };
    let memory_bars = match crate::features::memory_bar::described(ops, data) {
        Ok(m) => m,
        Err(e) => {
            crate::primitives::pci_function::dev_warn(
                &pci,
                format_args!("the variant's memory BARs are refused ({})\n", e.to_errno()),
            );
            drop(VariantData { variant, data });
            return Err(e);
        }
    };
    let disable_idle_d3 = crate::primitives::params::disable_idle_d3();
    let sriov = crate::state::Sriov::new(&pci);
    // SAFETY: `variant` is live (caller); its ops live as long as the variant, which
    // outlives all its devices (invariant of `RegisteredVariant`). The size covers our whole
    // struct; `mediated` is live (caller).
    let vdev = from_err_ptr(unsafe {
        let variant = &*variant.as_ptr();
        match mediated {
            None => bindings::_vfio_alloc_device(
                size_of::<VfioPciDevice>(),
                pci.as_device(),
                &variant.vfio_ops,
            ),
            Some(dev) => bindings::_vfio_alloc_device(
                size_of::<VfioPciDevice>(),
                dev.as_ptr(),
                &variant.vfio_ops_mediated,
            ),
        }
    });
    let vdev = match vdev {
        Ok(v) => v,
        Err(e) => {
            // Ownership of `data` passed to us: release it.
            drop(VariantData { variant, data });
            return Err(e);
        }
    };
    let cdev = vdev.cast::<VfioPciDevice>();
    let init = pin_init!(DeviceState {
        pdev: pci,
        mediated: mediated.is_some(),
        bar_windows_apply: dma_windows,
        msi_bus_master,
        memory_bars,
        variant_data: VariantData { variant, data },
        inner <- crate::primitives::state_mutex::StateMutex::new(inner),
        ioeventfds <- new_mutex!(crate::state::IoEventFds::default(), "vfio_pci_common::ioeventfds"),
        irq_gate <- new_mutex!(crate::state::IrqState::default(), "vfio_pci_common::irq_gate"),
        irq <- crate::state::IrqShared::new(),
        needs_reset: AtomicBool::new(false),
        own_resets: core::sync::atomic::AtomicU32::new(0),
        disable_idle_d3,
        sriov <- sriov,
        cfg_fast <- kernel::init::zeroed(),
        bar_io <- kernel::init::zeroed(),
        memory_gate: crate::logic::memory_gate::MemoryGate::new(),
        migration <- new_mutex!(crate::state::MigrationState::default(), "vfio_pci_common::migration"),
    });
    // SAFETY: `_vfio_alloc_device` returned a zeroed allocation of `size_of::<VfioPciDevice>()`
    // bytes with `vdev` initialised; `state` is memory we own that stays put until `release`,
    // initialised once here (infallibly) before anything can call `release`.
    let Ok(()) = unsafe { init.__pinned_init(addr_of_mut!((*cdev).state)) };
    // SAFETY: the state is initialised and stays so until the final put.
    let state = unsafe { &(*cdev).state };
    if mediated.is_some() {
        // SAFETY: `vdev` is a fully initialised, unregistered VFIO device. Its dev_set is
        // its own (the VFIO core's default), and the parent's driver owns the function's
        // SR-IOV, VGA decoding and power, so none of them is registered for it.
        let ret = to_result(unsafe { bindings::vfio_register_emulated_iommu_dev(vdev) });
        if let Err(e) = ret {
            // SAFETY: as on the failure path below; no set was joined.
            unsafe {
                release_variant_data(cdev);
                put_vfio_device(vdev);
            }
            return Err(e);
        }
        return Ok(cdev);
    }
    // The dev_set (see `hot_reset.rs`): joined now that the state a member must have exists.
    // SAFETY: `vdev` is initialised and not registered; `pdev` is its device.
    let mut ret = to_result(unsafe { vfio_pci_common_assign_dev_set(vdev, pdev.as_ptr()) });
    if ret.is_ok() {
        // SAFETY: `variant` is live (caller) and its ops name is a static string.
        ret =
            crate::features::sriov::register(state, unsafe { variant.as_ref().ops.as_ref().name });
    }
    let mut vga_registered = false;
    if ret.is_ok() {
        // Framebuffers off the device, and the VGA arbiter told (VGA-class devices only).
        // SAFETY: as above.
        ret = crate::features::vga::register(&state.pdev, unsafe {
            variant.as_ref().ops.as_ref().name
        });
        vga_registered = ret.is_ok();
    }
    if ret.is_ok() {
        // The VFIO core answers the migration features from `mig_ops`, read at registration.
        // SAFETY: `vdev` is not registered yet; the variant's ops outlive its devices.
        ret = unsafe {
            crate::features::migration::register(vdev, variant.as_ref().ops.as_ref().migration)
        };
    }
    if ret.is_ok() {
        // pci-core leaves a released device in an unknown power state from which only D0 is
        // allowed; go there before runtime PM may take the idle device to D3hot.
        let _ = crate::features::power::set_power_state(
            &state.pdev,
            &mut state.inner.lock().pm,
            0,
            false,
        );
        state.pdev.pm_probe(!disable_idle_d3);
        // SAFETY: `vdev` is a fully initialised, unregistered VFIO device.
        ret = to_result(unsafe { bindings::vfio_register_group_dev(vdev) });
        if ret.is_err() {
            state.pdev.pm_remove(!disable_idle_d3);
        }
    }
    if let Err(e) = ret {
        if vga_registered {
            crate::features::vga::unregister(&state.pdev);
        }
        crate::features::sriov::unregister(state);
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
    fn vfio_pci_common_assign_dev_set(
        vdev: *mut bindings::vfio_device,
        pdev: *mut bindings::pci_dev,
    ) -> c_int;
}

/// Hands the variant data back, with the device's dev_set lock held if it has a set (hook
/// callers in `hot_reset.rs` read the data pointer under that lock).
///
/// # Safety
///
/// `cdev` is a live device whose state is initialised.
unsafe fn release_variant_data(cdev: *mut VfioPciDevice) {
    // SAFETY: the caller's guarantee.
    unsafe {
        let vdev = addr_of_mut!((*cdev).vdev);
        if (*vdev).dev_set.is_null() {
            (*cdev).state.variant_data.release();
        } else {
            let _set = crate::primitives::dev_set::SetLock::new(vdev);
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
    let cdev = device.cast::<VfioPciDevice>();
    if cdev.is_null() {
        return;
    }
    // SAFETY: `cdev` is a registered device (caller). `vfio_unregister_group_dev` waits until
    // user space has closed every fd of it, so no op runs after it returns; then the variant
    // data goes back to the variant while its module is loaded, and our reference is dropped.
    unsafe {
        let vdev = addr_of_mut!((*cdev).vdev);
        let state = &(*cdev).state;
        if state.mediated {
            // Nothing but the VFIO device was registered for it (see `register_device`).
            bindings::vfio_unregister_group_dev(vdev);
            release_variant_data(cdev);
            put_vfio_device(vdev);
            return;
        }
        // VFs go first (their drivers unbind), as upstream's unregister does.
        let _ = crate::features::sriov::configure(state, 0);
        bindings::vfio_unregister_group_dev(vdev);
        crate::features::sriov::unregister(state);
        crate::features::vga::unregister(&state.pdev);
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
pub(crate) unsafe extern "C" fn vfio_pci_common_sriov_configure(
    device: *mut DeviceHandle,
    nr: c_int,
) -> c_int {
    let cdev = device.cast::<VfioPciDevice>();
    if cdev.is_null() {
        return ENODEV.to_errno();
    }
    // SAFETY: a registered device (caller): its state is initialised and alive.
    let dev = unsafe { &(*cdev).state };
    from_result(|| crate::features::sriov::configure(dev, nr))
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
    let cdev = device.cast::<VfioPciDevice>();
    if !cdev.is_null() {
        // SAFETY: a registered device (caller): its state is initialised and alive.
        let dev = unsafe { &(*cdev).state };
        crate::primitives::pci_function::dev_notice(
            &dev.pdev,
            format_args!("PCI error detected; the user owns recovery\n"),
        );
        crate::features::interrupts::error_detected(dev);
    }
    PCI_ERS_RESULT_CAN_RECOVER
}

/// The device behind a hook's handle.
///
/// # Safety
///
/// `device` is the handle the common module passed to a variant hook that is still running
/// (so the device is registered and its state alive).
unsafe fn hook_device<'a>(device: *mut DeviceHandle) -> Result<&'a DeviceState> {
    let cdev = device.cast::<VfioPciDevice>();
    if cdev.is_null() {
        return Err(ENODEV);
    }
    // SAFETY: the caller's guarantee.
    Ok(unsafe { &(*cdev).state })
}

/// See [`crate::abi`] and `features::device_context::mmio`.
///
/// # Safety
///
/// `device` as for [`hook_device`]; `value` valid for reads and writes.
#[no_mangle]
pub(crate) unsafe extern "C" fn vfio_pci_common_mmio(
    device: *mut DeviceHandle,
    bar: u32,
    offset: u64,
    size: u32,
    flags: u32,
    value: *mut u64,
) -> c_int {
    from_result(|| {
        // SAFETY: the caller's guarantee.
        let dev = unsafe { hook_device(device) }?;
        let write = flags & crate::abi::ACCESS_WRITE != 0;
        // SAFETY: `value` is valid (caller).
        let input = write.then(|| unsafe { *value });
        let v =
            crate::features::device_context::mmio(dev, bar as usize, offset, size as usize, input)?;
        if !write {
            // SAFETY: as above.
            unsafe { *value = v };
        }
        Ok(0)
    })
}

/// See [`crate::abi`] and `features::device_context::config_emulated` / `config_raw`.
///
/// # Safety
///
/// As for [`vfio_pci_common_mmio`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vfio_pci_common_config(
    device: *mut DeviceHandle,
    offset: u16,
    size: u32,
    flags: u32,
    value: *mut u32,
) -> c_int {
    use crate::features::device_context::{config_emulated, config_raw};
    from_result(|| {
        // SAFETY: the caller's guarantee.
        let dev = unsafe { hook_device(device) }?;
        let write = flags & crate::abi::ACCESS_WRITE != 0;
        // SAFETY: `value` is valid (caller).
        let input = write.then(|| unsafe { *value });
        let access = if flags & crate::abi::ACCESS_RAW != 0 {
            config_raw
        } else {
            config_emulated
        };
        let v = access(dev, offset, size as usize, input)?;
        if !write {
            // SAFETY: as above.
            unsafe { *value = v };
        }
        Ok(0)
    })
}

/// See [`crate::abi`] and `features::device_context::set_overlay`.
///
/// # Safety
///
/// `device` as for [`hook_device`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vfio_pci_common_set_overlay(
    device: *mut DeviceHandle,
    offset: u16,
    value: u32,
) -> c_int {
    from_result(|| {
        // SAFETY: the caller's guarantee.
        let dev = unsafe { hook_device(device) }?;
        crate::features::device_context::set_overlay(dev, offset, value).map(|()| 0)
    })
}

/// See [`crate::abi`] and `features::device_context::hide_capability`.
///
/// # Safety
///
/// `device` as for [`hook_device`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vfio_pci_common_hide_cap(
    device: *mut DeviceHandle,
    id: u16,
    extended: bool,
) -> c_int {
    from_result(|| {
        // SAFETY: the caller's guarantee.
        let dev = unsafe { hook_device(device) }?;
        crate::features::device_context::hide_capability(dev, id, extended).map(|()| 0)
    })
}

/// See [`crate::abi`]: the PCI core's `reset_prepare` (`done` false) and `reset_done` error
/// handlers of every variant, for a reset someone else does to the device (sysfs `reset`,
/// another kernel user): passed on to the variant's `reset_notify`. Resets this module does
/// are not passed on (the variant hears of them through its reset hooks, and our locks may
/// be held).
///
/// # Safety
///
/// `device` must be a registered device handle.
#[no_mangle]
pub(crate) unsafe extern "C" fn vfio_pci_common_reset_handler(
    device: *mut DeviceHandle,
    done: bool,
) {
    let cdev = device.cast::<VfioPciDevice>();
    if cdev.is_null() {
        return;
    }
    // SAFETY: a registered device (caller): its state is initialised and alive.
    let dev = unsafe { &(*cdev).state };
    if dev.own_resets.load(core::sync::atomic::Ordering::Relaxed) != 0 {
        return;
    }
    if done {
        // As upstream variants' `reset_done`: a reset device migrates from RUNNING again. The
        // PCI core holds the device lock, which no migration path takes (order in `state.rs`).
        crate::features::migration::reset(dev);
    }
    let (Some(hook), data) = (dev.variant_ops().reset_notify, dev.variant_data()) else {
        return;
    };
    if data.is_null() {
        return;
    }
    // SAFETY: the variant data is live while the device is registered (the PCI core calls
    // error handlers only for a bound device); the handle is this device's.
    unsafe { hook(data, device, done, 0) };
}

/// Keeps the ABI's function types and ours from drifting apart.
const _: () = {
    let _: extern "C" fn() -> u32 = vfio_pci_common_abi_version;
    let _: unsafe extern "C" fn(*const VariantOps) -> *mut VariantHandle =
        vfio_pci_common_variant_register;
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
