// SPDX-License-Identifier: GPL-2.0
//! Mediated variants: a variant whose [`Variant::MEDIATED`] is set does not make the functions
//! it binds VFIO devices; it registers each as an **mdev parent** with its types, and every
//! mdev created on it becomes a VFIO device of the common module
//! (`vfio_pci_common_mediated_register`: emulated IOMMU, served over the parent function,
//! bus mastering only as [`MdevBusMaster`] allows). See `Documentation/samples/mdev_pci.md`.
//!
//! The `mdev_driver` and the parent records live here, in the variant module, so that only a
//! module that mediates depends on the mdev core (`mdev.ko`), never `vfio_pci_common`.
//!
//! Lifetimes: the `mdev_driver` ([`MdevDriver`], a field of the pinned `Registration`) is
//! registered before the variant's `pci_driver` and unregistered after it. A [`Parent`] is
//! allocated at PCI probe and freed at PCI remove, after `mdev_unregister_parent` has removed
//! every mdev of it (each removal waits, in `vfio_pci_common_device_unregister`, for the
//! mdev's user to close it). The variant's per-device state (`Self`) is per mdev: made by
//! [`Variant::probe`] when the mdev is created, released when it is removed.

use super::abi::{DeviceHandle, VariantHandle};
use super::bindings;
use super::registration::Registration;
use super::Variant;
use core::ffi::c_void;
use core::ptr::{self, addr_of_mut};
use kernel::error::{code::*, to_result, Error};
use kernel::ffi::c_char;
use kernel::init::{self, PinInit};
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::types::{ForeignOwnable, Opaque};
use kernel::ThisModule;

// `pci_dev` holds opaque lock types bindgen cannot prove FFI-safe; we only pass pointers.
#[allow(improper_ctypes)]
extern "C" {
    fn vfio_pci_common_mediated_register(
        variant: *mut VariantHandle,
        pdev: *mut bindings::pci_dev,
        dev: *mut kernel::bindings::device,
        flags: u32,
        data: *mut c_void,
    ) -> *mut DeviceHandle;
    fn vfio_pci_common_device_unregister(device: *mut DeviceHandle);
}

/// One mdev type a mediated variant offers on each function it binds. One instance in all
/// per function, whatever the type: the function is not shared.
pub(crate) struct MdevType {
    /// The type's name: its sysfs directory is `<driver>-<name>` under the function's
    /// `mdev_supported_types`, and its `name` attribute reads this.
    pub(crate) name: &'static core::ffi::CStr,
    /// The type's `description` attribute (one line; say what the user gets and what not).
    pub(crate) description: &'static core::ffi::CStr,
    /// Whether the function may master the bus for this type's devices.
    pub(crate) bus_master: MdevBusMaster,
}

impl MdevType {
    /// How many types a mediated variant may offer.
    pub(crate) const MAX_TYPES: usize = 4;
}

/// Bus mastering of a mediated device's function. The mdev has no IOMMU domain of its own:
/// a DMA by the function would reach whatever the *host's* domain for the function maps, so
/// the user never controls bus mastering (COMMAND.MASTER is virtual for every mediated
/// device). What differs is whether MSI works, since an MSI is a memory write by the function.
// Named by mediated variants only.
#[allow(dead_code)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum MdevBusMaster {
    /// Never: the BARs pass through whole (readable, writable and mappable as for a bound
    /// function; [`Variant::BAR_WINDOWS`] do not apply), INTx works, and MSI/MSI-X can be
    /// enabled but no message is ever delivered.
    Never,
    /// While the user has MSI or MSI-X enabled, for the messages. The variant's
    /// [`Variant::BAR_WINDOWS`] apply to this type's devices and **must cover every register
    /// through which the user could make the function DMA** (the variant then emulates or
    /// refuses them): that is what makes bus mastering safe here. Window pages are not
    /// mappable.
    ForMsi,
}

/// The variant module's `mdev_driver` (registered only for a mediated variant).
///
/// # Invariants
///
/// If `unregister` is set, `drv` is a registered `mdev_driver` whose probe and remove are
/// [`mdev_probe::<T>`] and [`mdev_remove`], and whose `driver` is the `mdev` field of a pinned
/// `Registration<T>`.
#[repr(C)]
#[pin_data(PinnedDrop)]
pub(crate) struct MdevDriver {
    #[pin]
    drv: Opaque<bindings::mdev_driver>,
    /// `mdev_unregister_driver`, set only when registered: a variant that does not mediate
    /// then references no mdev core symbol (the branches that do are compiled out for it), so
    /// its module does not depend on `mdev.ko`.
    unregister: Option<unsafe extern "C" fn(*mut bindings::mdev_driver)>,
}

impl MdevDriver {
    /// Registers the `mdev_driver` of `T` if `T` is mediated; otherwise an unregistered
    /// placeholder. Must be initialised in place in the `mdev` field of `Registration<T>`.
    pub(crate) fn new<T: Variant>(
        module: &'static ThisModule,
        module_name: &'static CStr,
        name: *const c_char,
    ) -> impl PinInit<Self, Error> {
        // SAFETY: the closure initialises every field before returning `Ok`, registers the
        // driver only once it is fully written, and leaves nothing registered on `Err`.
        unsafe {
            init::pin_init_from_closure(move |slot: *mut Self| {
                let drv = Opaque::raw_get(addr_of_mut!((*slot).drv));
                ptr::write_bytes(drv, 0, 1);
                let mut unregister = None;
                if !T::MEDIATED.is_empty() {
                    (*drv).device_api = c"vfio-pci".as_ptr().cast();
                    // The mdev core counts instances per parent (all types together) from
                    // this: one user per function, and a second `create` fails with EUSERS.
                    (*drv).max_instances = 1;
                    (*drv).probe = Some(mdev_probe::<T>);
                    (*drv).remove = Some(mdev_remove);
                    (*drv).show_description = Some(show_description::<T>);
                    (*drv).driver.name = name;
                    (*drv).driver.owner = module.as_ptr();
                    (*drv).driver.mod_name = module_name.as_char_ptr();
                    to_result(bindings::mdev_register_driver(drv))?;
                    unregister = Some(bindings::mdev_unregister_driver as _);
                }
                ptr::write(addr_of_mut!((*slot).unregister), unregister);
                Ok(())
            })
        }
    }

    /// The registered `mdev_driver`.
    fn as_ptr(&self) -> *mut bindings::mdev_driver {
        self.drv.get()
    }
}

#[pinned_drop]
impl PinnedDrop for MdevDriver {
    fn drop(self: Pin<&mut Self>) {
        if let Some(unregister) = self.unregister {
            // SAFETY: registered by the type invariant; the `pci_driver` is gone by now
            // (`Registration`'s drop runs first), so no parent and no mdev is left.
            unsafe { unregister(self.drv.get()) };
        }
    }
}

/// One function registered as an mdev parent.
///
/// # Invariants
///
/// Heap-allocated at PCI probe, never moved; `parent` is registered with the mdev core
/// (with the first `n_types` of `mtypes` as its types, `mtypes[i]` made from the variant's
/// `MEDIATED[i]`) from then until PCI remove, which unregisters it before freeing. `pdev` is
/// bound to the variant's driver meanwhile. `info_index` indexes the variant's ID info table.
#[repr(C)]
struct Parent {
    /// First field: the mdev core's `mdev_type->parent` is cast back to `Self`.
    parent: Opaque<bindings::mdev_parent>,
    mtypes: [Opaque<bindings::mdev_type>; MdevType::MAX_TYPES],
    types: [*mut bindings::mdev_type; MdevType::MAX_TYPES],
    n_types: usize,
    pdev: *mut bindings::pci_dev,
    info_index: usize,
}

/// PCI probe of a mediated variant, after the strict ID check: registers `pdev` as an mdev
/// parent and keeps the record in its driver data.
///
/// # Safety
///
/// `pdev` is being probed by `reg`'s `pci_driver`; `info_index` indexes `reg`'s info table.
pub(super) unsafe fn register_parent<T: Variant>(
    reg: &Registration<T>,
    pdev: *mut bindings::pci_dev,
    info_index: usize,
) -> Result {
    let n_types = T::MEDIATED.len();
    if n_types == 0 || n_types > MdevType::MAX_TYPES {
        return Err(EINVAL);
    }
    let rec = KBox::new(
        Parent {
            parent: Opaque::uninit(),
            mtypes: [const { Opaque::uninit() }; MdevType::MAX_TYPES],
            types: [ptr::null_mut(); MdevType::MAX_TYPES],
            n_types,
            pdev,
            info_index,
        },
        GFP_KERNEL,
    )?;
    let rec = KBox::into_raw(rec);
    // SAFETY: `rec` is our fresh allocation; the mdev core initialises `parent` (memset) and
    // the kobjects of the types (zeroed here, as `static`s would be); `pdev` is being probed
    // (caller). On failure nothing was registered and the record is ours to free.
    unsafe {
        for (i, t) in T::MEDIATED.iter().enumerate() {
            let mtype = (*rec).mtypes[i].get();
            ptr::write_bytes(mtype, 0, 1);
            (*mtype).sysfs_name = t.name.as_ptr().cast();
            (*mtype).pretty_name = t.name.as_ptr().cast();
            (*rec).types[i] = mtype;
        }
        let ret = to_result(bindings::mdev_register_parent(
            (*rec).parent.get(),
            addr_of_mut!((*pdev).dev),
            reg.mdev.as_ptr(),
            (*rec).types.as_mut_ptr(),
            n_types as u32,
        ));
        if let Err(e) = ret {
            drop(KBox::from_raw(rec));
            return Err(e);
        }
        (*pdev).dev.driver_data = rec.cast();
    }
    Ok(())
}

/// PCI remove of a mediated variant: removes every mdev (each waits for its user to close
/// it), unregisters the parent and frees its record.
///
/// # Safety
///
/// `pdev` was probed successfully by [`register_parent`] and is being removed.
// Generic only so that it is compiled into mediated variants alone (see `MdevDriver`).
pub(super) unsafe fn unregister_parent<T: Variant>(pdev: *mut bindings::pci_dev) {
    // SAFETY: the record was stored by `register_parent` and is unregistered exactly once,
    // here; after `mdev_unregister_parent` the mdev core touches it no more (every mdev, the
    // only holder of references to the type, has been removed and released).
    unsafe {
        let rec = (*pdev).dev.driver_data.cast::<Parent>();
        bindings::mdev_unregister_parent((*rec).parent.get());
        (*pdev).dev.driver_data = ptr::null_mut();
        drop(KBox::from_raw(rec));
    }
}

/// `mdev_driver.probe`: an mdev was created on one of our parents: the variant's per-device
/// state, then the VFIO device in the common module.
unsafe extern "C" fn mdev_probe<T: Variant>(mdev: *mut bindings::mdev_device) -> i32 {
    // SAFETY: a live mdev bound to our `mdev_driver`, the `drv` of the `mdev` field of a
    // pinned `Registration<T>` (invariant of `MdevDriver`); its type's `parent` starts a live
    // `Parent` (registered until PCI remove, which first removes this mdev).
    let (reg, rec) = unsafe {
        let drv = (*mdev)
            .dev
            .driver
            .byte_sub(core::mem::offset_of!(bindings::mdev_driver, driver));
        let reg = drv
            .byte_sub(core::mem::offset_of!(Registration<T>, mdev))
            .cast::<Registration<T>>();
        (&*reg, &*(*(*mdev).type_).parent.cast::<Parent>())
    };
    // SAFETY: the mdev's type is one of its parent's, all in `rec.mtypes` (invariant).
    let mtype = unsafe { (*mdev).type_ };
    let Some(t) = (0..rec.n_types)
        .find(|&i| rec.mtypes[i].get() == mtype)
        .and_then(|i| T::MEDIATED.get(i))
    else {
        return ENODEV.to_errno();
    };
    let flags = match t.bus_master {
        MdevBusMaster::Never => 0,
        MdevBusMaster::ForMsi => super::abi::MEDIATED_DMA_WINDOWS,
    };
    // SAFETY: `rec.pdev` is bound to our driver while the parent is registered.
    let dev = super::PciFunction::get(unsafe { &*rec.pdev });
    let Some(info) = reg.info.get(rec.info_index) else {
        return ENODEV.to_errno();
    };
    let data = match KBox::pin_init(T::probe(&dev, info), GFP_KERNEL) {
        Ok(d) => d.into_foreign().cast_mut(),
        Err(e) => return e.to_errno(),
    };
    // SAFETY: the variant handle is live while the driver is registered; `rec.pdev` is bound
    // to us and the mdev outlives its registration (removed through `mdev_remove`, which
    // unregisters first); ownership of `data` passes to the common module.
    let handle = unsafe {
        vfio_pci_common_mediated_register(
            reg.variant.0,
            rec.pdev,
            addr_of_mut!((*mdev).dev),
            flags,
            data,
        )
    };
    match kernel::error::from_err_ptr(handle) {
        Ok(h) => {
            // SAFETY: the mdev is ours until remove.
            unsafe { (*mdev).dev.driver_data = h.cast() };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `mdev_driver.remove`: the mdev is being removed (through sysfs or by its parent's
/// removal): unregisters its VFIO device, waiting for user space to close it.
unsafe extern "C" fn mdev_remove(mdev: *mut bindings::mdev_device) {
    // SAFETY: `driver_data` was set by a successful `mdev_probe`; unregistered exactly once.
    unsafe {
        let handle = (*mdev).dev.driver_data.cast::<DeviceHandle>();
        vfio_pci_common_device_unregister(handle);
        (*mdev).dev.driver_data = ptr::null_mut();
    }
}

/// `mdev_driver.show_description`: the type's `description` attribute.
unsafe extern "C" fn show_description<T: Variant>(
    mtype: *mut bindings::mdev_type,
    buf: *mut c_char,
) -> isize {
    // SAFETY: the mdev core shows the attribute of a live type of one of our parents, whose
    // record starts with the `mdev_parent` (invariant of `Parent`).
    let rec = unsafe { &*(*mtype).parent.cast::<Parent>() };
    let Some(t) = (0..rec.n_types)
        .find(|&i| rec.mtypes[i].get() == mtype)
        .and_then(|i| T::MEDIATED.get(i))
    else {
        return 0;
    };
    let text = t.description.to_bytes();
    // sysfs hands out one page; keep room for the newline.
    let n = text.len().min(4095);
    // SAFETY: sysfs passes a buffer of `PAGE_SIZE` (4096) bytes; we write `n + 1 <= 4096`.
    unsafe {
        ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
        *buf.add(n) = b'\n' as c_char;
    }
    (n + 1) as isize
}
