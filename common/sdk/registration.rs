// SPDX-License-Identifier: GPL-2.0
//! [`Registration`]: a variant's `pci_driver` and its registration with `vfio_pci_common`, and
//! the probe/remove trampolines that enforce the strict ID check.

use super::abi::{DeviceHandle, MemoryBar, VariantHandle, VariantOps, ABI_VERSION};
use super::bindings;
use super::{Device, Variant};
use core::ffi::{c_int, c_void};
use core::marker::PhantomData;
use core::pin::Pin;
use core::ptr;
use kernel::error::{code::*, Error};
use kernel::init::{self, PinInit};
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::types::{ForeignOwnable, Opaque};

// `pci_dev` holds opaque lock types bindgen cannot prove FFI-safe; we only pass pointers.
#[allow(improper_ctypes)]
extern "C" {
    fn vfio_pci_common_abi_version() -> u32;
    fn vfio_pci_common_variant_register(ops: *const VariantOps) -> *mut VariantHandle;
    fn vfio_pci_common_variant_unregister(variant: *mut VariantHandle);
    fn vfio_pci_common_device_register(
        variant: *mut VariantHandle,
        pdev: *mut bindings::pci_dev,
        data: *mut c_void,
    ) -> *mut DeviceHandle;
    fn vfio_pci_common_device_unregister(device: *mut DeviceHandle);
    fn vfio_pci_common_error_detected(device: *mut DeviceHandle, state: u32) -> u32;
    fn vfio_pci_common_reset_handler(device: *mut DeviceHandle, done: bool);
    fn vfio_pci_common_bound_by_override(pdev: *mut bindings::pci_dev) -> bool;
    fn vfio_pci_common_sriov_configure(device: *mut DeviceHandle, nr: c_int) -> c_int;
    fn vfio_pci_common_pm_ops() -> *const kernel::bindings::dev_pm_ops;
}

/// The PCI error handlers of every variant: all of them end in the common module.
static ERROR_HANDLERS: bindings::pci_error_handlers = bindings::pci_error_handlers {
    error_detected: Some(error_detected),
    mmio_enabled: None,
    slot_reset: None,
    reset_prepare: Some(reset_prepare),
    reset_done: Some(reset_done),
    resume: None,
    cor_error_detected: None,
};

/// The variant handle from `vfio_pci_common`, unregistered on drop.
///
/// # Invariants
///
/// `0` is a live handle returned by `vfio_pci_common_variant_register`.
pub(super) struct RegisteredVariantHandle(pub(super) *mut VariantHandle);

impl Drop for RegisteredVariantHandle {
    fn drop(&mut self) {
        // SAFETY: the handle is live by the type invariant; we drop it only after the
        // `pci_driver` was unregistered (field order of `Registration`), so no device is left.
        unsafe { vfio_pci_common_variant_unregister(self.0) };
    }
}

/// A registered variant driver. Lives in the module's state from init to exit.
///
/// # Invariants
///
/// `driver` is a registered `pci_driver` whose probe and remove are `probe::<T>` and
/// `remove::<T>`, its `id_table` is `table`, and `variant` outlives the registration. For a
/// mediated `T`, `mdev` is registered from before `driver` until after it.
#[repr(C)]
#[pin_data(PinnedDrop)]
pub(crate) struct Registration<T: Variant> {
    /// First field: the trampolines get from the `pci_driver` to `Self` by a cast.
    #[pin]
    driver: Opaque<bindings::pci_driver>,
    pub(super) info: &'static [T::IdInfo],
    table: &'static [bindings::pci_device_id],
    /// The `mdev_driver` of a mediated variant (`sdk/mdev.rs`); dropped (unregistered) after
    /// the `pci_driver`, before the variant handle.
    #[pin]
    pub(super) mdev: super::mdev::MdevDriver,
    pub(super) variant: RegisteredVariantHandle,
    _t: PhantomData<T>,
}

// SAFETY: the `pci_driver` is only touched by the driver core under its own locking; the other
// fields are immutable after registration and `T::IdInfo: Sync`.
unsafe impl<T: Variant> Sync for Registration<T> {}
// SAFETY: as for `Sync`; the module state may be dropped on another thread than it was made.
unsafe impl<T: Variant> Send for Registration<T> {}

impl<T: Variant> Registration<T> {
    /// The [`VariantOps`] of `T`, built at compile time into a `static` of the variant.
    pub(crate) const fn ops(driver: &'static CStr) -> VariantOps {
        // Evaluated for the variant's `static` ops table: a failed check is a build error.
        super::checks::overlays(T::CONFIG_OVERLAYS);
        super::checks::region_hooks(
            T::HAS_REGIONS,
            T::HAS_REGION_READ,
            T::HAS_REGION_WRITE,
            T::HAS_REGION_MMAP,
        );
        super::checks::bar_windows(
            T::BAR_WINDOWS,
            T::HAS_BAR_WINDOW_READ && T::HAS_BAR_WINDOW_WRITE,
        );
        super::checks::mediated(T::MEDIATED, !T::BAR_WINDOWS.is_empty());
        VariantOps {
            abi_version: ABI_VERSION,
            name: driver.as_char_ptr(),
            release: Some(release_data::<T>),
            open_device: if T::HAS_OPEN {
                Some(open_device::<T>)
            } else {
                None
            },
            close_device: if T::HAS_CLOSE {
                Some(close_device::<T>)
            } else {
                None
            },
            overlays: T::CONFIG_OVERLAYS.as_ptr(),
            n_overlays: T::CONFIG_OVERLAYS.len(),
            config_read: if T::HAS_CONFIG_READ {
                Some(config_read::<T>)
            } else {
                None
            },
            config_write: if T::HAS_CONFIG_WRITE {
                Some(config_write::<T>)
            } else {
                None
            },
            regions: if T::HAS_REGIONS {
                Some(regions::<T>)
            } else {
                None
            },
            region_rw: if T::HAS_REGION_READ || T::HAS_REGION_WRITE {
                Some(region_rw::<T>)
            } else {
                None
            },
            reset_notify: if T::HAS_RESET_PREPARE || T::HAS_RESET_DONE {
                Some(reset_notify::<T>)
            } else {
                None
            },
            region_mmap: if T::HAS_REGION_MMAP {
                Some(region_mmap::<T>)
            } else {
                None
            },
            bus_reset_notify: if T::HAS_BUS_RESET_PREPARE || T::HAS_BUS_RESET_DONE {
                Some(bus_reset_notify::<T>)
            } else {
                None
            },
            ioctl: if T::HAS_IOCTL { Some(ioctl::<T>) } else { None },
            device_feature: if T::HAS_DEVICE_FEATURE {
                Some(device_feature::<T>)
            } else {
                None
            },
            reset: if T::HAS_RESET { Some(reset::<T>) } else { None },
            bar_windows: T::BAR_WINDOWS.as_ptr(),
            n_bar_windows: T::BAR_WINDOWS.len(),
            bar_window_rw: if T::HAS_BAR_WINDOW_READ && T::HAS_BAR_WINDOW_WRITE {
                Some(bar_window_rw::<T>)
            } else {
                None
            },
            // Set by `module_vfio_pci_variant!`'s `migration: true` (`sdk/migration.rs`).
            migration: core::ptr::null(),
            memory_bars: if T::HAS_MEMORY_BARS {
                Some(memory_bars::<T>)
            } else {
                None
            },
        }
    }

    /// Registers the variant with `vfio_pci_common`, then its `pci_driver`.
    pub(crate) fn new(
        module: &'static ThisModule,
        module_name: &'static CStr,
        ops: &'static VariantOps,
        table: &'static [bindings::pci_device_id],
        info: &'static [T::IdInfo],
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            info,
            table,
            variant: {
                // SAFETY: a plain call; the common module is loaded (we link against it).
                let common = unsafe { vfio_pci_common_abi_version() };
                if common != ABI_VERSION {
                    pr_err!(
                        "{} was built for vfio_pci_common ABI {} but the loaded one has ABI {}\n",
                        module_name,
                        ABI_VERSION,
                        common
                    );
                    return Err(EINVAL);
                }
                // SAFETY: `ops` is a `static`, so valid until after unregister.
                let h = unsafe { vfio_pci_common_variant_register(ops) };
                let h = kernel::error::from_err_ptr(h)?;
                // INVARIANT: `h` is a live handle.
                RegisteredVariantHandle(h)
            },
            _t: PhantomData,
            // Before the `pci_driver`, whose probe registers parents with it.
            mdev <- super::mdev::MdevDriver::new::<T>(module, module_name, ops.name),
            // Last: once registered, probe can run and read the fields above, which are
            // initialised by now and never move (the whole value is pinned).
            // SAFETY: the closure fully initialises the `pci_driver` before registering it and
            // reports failure to register as an error, so `Self` exists only when registered.
            driver <- unsafe {
                init::pin_init_from_closure(move |slot: *mut Opaque<bindings::pci_driver>| {
                    let drv = Opaque::raw_get(slot);
                    ptr::write(drv, bindings::pci_driver::default());
                    (*drv).name = ops.name;
                    (*drv).id_table = table.as_ptr();
                    (*drv).probe = Some(probe::<T>);
                    (*drv).remove = Some(remove::<T>);
                    // A mediated variant's function is no VFIO device: its driver data is
                    // the mdev parent, and error handling, SR-IOV and idle D3 stay the PCI
                    // core's defaults; its DMA stays the kernel's (the mdevs never master).
                    if T::MEDIATED.is_empty() {
                        (*drv).err_handler = &ERROR_HANDLERS;
                        (*drv).sriov_configure = Some(sriov_configure);
                        // Runtime PM of idle devices (idle D3), handled by the common module.
                        (*drv).driver.pm = vfio_pci_common_pm_ops();
                        (*drv).driver_managed_dma = true;
                    }
                    kernel::error::to_result(bindings::__pci_register_driver(
                        drv,
                        module.as_ptr(),
                        module_name.as_char_ptr(),
                    ))
                })
            },
        })
    }
}

#[pinned_drop]
impl<T: Variant> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: registered by the type invariant; this removes (and so unregisters from the
        // common module) every device bound to the driver before returning.
        unsafe { bindings::pci_unregister_driver(self.driver.get()) };
    }
}

/// `pci_driver.probe`: the strict ID check, then the variant's probe, then registration with
/// the common module.
unsafe extern "C" fn probe<T: Variant>(
    pdev: *mut bindings::pci_dev,
    _id: *const bindings::pci_device_id,
) -> c_int {
    // SAFETY: the driver core calls probe with a valid device whose `dev.driver` is the
    // `driver` field of our `pci_driver` (`to_pci_driver`), which is the first field of our
    // pinned `repr(C)` `Registration<T>`, alive while the driver is registered.
    let reg = unsafe {
        let drv = (*pdev).dev.driver;
        let pci_drv = drv.byte_sub(core::mem::offset_of!(bindings::pci_driver, driver));
        &*pci_drv.cast::<Registration<T>>()
    };
    // SAFETY: `pdev` is valid for the duration of probe.
    let dev = super::PciFunction::get(unsafe { &*pdev });

    // SAFETY: `name` is the static C string from `Registration::ops`.
    let driver = unsafe { CStr::from_char_ptr((*reg.driver.get()).name) };

    // Only an explicit `driver_override` naming us may bind us. Our table entries are
    // override-only, but IDs added through `new_id` are not, and would bind without one.
    // SAFETY: `pdev` is valid and being probed (`dev.driver` is set).
    let overridden = unsafe { vfio_pci_common_bound_by_override(pdev) };
    if !overridden {
        dev.info(format_args!(
            "{driver}: not bound through driver_override; refusing it\n"
        ));
        return ENODEV.to_errno();
    }

    // With driver_override naming us, the PCI core probes us even for a device outside our
    // table (with a dummy any-ID): refuse such devices here, for every variant.
    // SAFETY: `table` is zero-terminated (built by `PciId::table`), `pdev` is valid.
    let matched = unsafe { bindings::pci_match_id(reg.table.as_ptr(), pdev) };
    if matched.is_null() {
        dev.info(format_args!(
            "{}: device [{:04x}:{:04x}] subsystem [{:04x}:{:04x}] class {:06x} is not in this \
                 driver's ID table; refusing it\n",
            driver,
            dev.vendor_id(),
            dev.device_id(),
            dev.subsystem_vendor_id(),
            dev.subsystem_device_id(),
            dev.class()
        ));
        return ENODEV.to_errno();
    }
    // SAFETY: `matched` points into `table`.
    let index = unsafe { (*matched).driver_data } as usize;
    let Some(info) = reg.info.get(index) else {
        return ENODEV.to_errno();
    };
    if !T::MEDIATED.is_empty() {
        // SAFETY: `pdev` is being probed by `reg`'s driver; `index` indexes its info table.
        return match unsafe { super::mdev::register_parent(reg, pdev, index) } {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        };
    }

    let data = match KBox::pin_init(T::probe(&dev, info), GFP_KERNEL) {
        Ok(d) => d,
        Err(e) => return e.to_errno(),
    };
    let data = data.into_foreign().cast_mut();
    // SAFETY: the handle is live while the driver is registered; `pdev` is being probed by
    // this variant's driver; ownership of `data` passes to the common module.
    let handle = unsafe { vfio_pci_common_device_register(reg.variant.0, pdev, data) };
    let handle = match kernel::error::from_err_ptr(handle) {
        Ok(h) => h,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: `dev_set_drvdata` is a static inline storing to `dev.driver_data`; the device
    // is ours until remove.
    unsafe { (*pdev).dev.driver_data = handle.cast() };
    0
}

/// `pci_driver.remove`: unregisters the device (waiting for user space to close it).
unsafe extern "C" fn remove<T: Variant>(pdev: *mut bindings::pci_dev) {
    if !T::MEDIATED.is_empty() {
        // SAFETY: probed successfully by `probe::<T>`, which registered the parent.
        unsafe { super::mdev::unregister_parent::<T>(pdev) };
        return;
    }
    // SAFETY: `driver_data` was set by a successful `probe::<T>` of this device.
    let handle = unsafe { (*pdev).dev.driver_data.cast::<DeviceHandle>() };
    // SAFETY: `handle` is a registered device; it is unregistered exactly once, here.
    unsafe {
        vfio_pci_common_device_unregister(handle);
        (*pdev).dev.driver_data = ptr::null_mut();
    }
}

/// `pci_error_handlers.error_detected`: handled by the common module for every variant.
unsafe extern "C" fn error_detected(
    pdev: *mut bindings::pci_dev,
    state: bindings::pci_channel_state_t,
) -> bindings::pci_ers_result_t {
    // SAFETY: the PCI core calls error handlers only for a bound device, whose `driver_data`
    // our probe set to its device handle.
    unsafe {
        let handle = (*pdev).dev.driver_data.cast::<DeviceHandle>();
        vfio_pci_common_error_detected(handle, state as u32) as bindings::pci_ers_result_t
    }
}

/// `pci_error_handlers.reset_prepare`: a reset of the device by someone else (the common
/// module passes it on to `Variant::reset_prepare`).
unsafe extern "C" fn reset_prepare(pdev: *mut bindings::pci_dev) {
    // SAFETY: the PCI core calls error handlers only for a bound device, whose `driver_data`
    // our probe set to its device handle.
    unsafe { vfio_pci_common_reset_handler((*pdev).dev.driver_data.cast(), false) }
}

/// `pci_error_handlers.reset_done`: the end of that reset (`Variant::reset_done`).
unsafe extern "C" fn reset_done(pdev: *mut bindings::pci_dev) {
    // SAFETY: as in `reset_prepare`.
    unsafe { vfio_pci_common_reset_handler((*pdev).dev.driver_data.cast(), true) }
}

/// `pci_driver.sriov_configure`: handled by the common module for every variant (the PCI core
/// calls it for a bound PF, with its device lock held).
unsafe extern "C" fn sriov_configure(pdev: *mut bindings::pci_dev, nr: c_int) -> c_int {
    // SAFETY: called only for a bound device, whose `driver_data` our probe set.
    unsafe {
        let handle = (*pdev).dev.driver_data.cast::<DeviceHandle>();
        vfio_pci_common_sriov_configure(handle, nr)
    }
}

/// [`VariantOps::open_device`] for a `T` that implements [`Variant::open`].
unsafe extern "C" fn open_device<T: Variant>(data: *mut c_void, dev: *mut DeviceHandle) -> c_int {
    // SAFETY: `data` is the live `Pin<KBox<T>>` of this device (the common module passes it
    // only between registration and release).
    let this = unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow(data) };
    // SAFETY: `dev` is this hook call's device handle; the reference ends with the call.
    let dev = unsafe { Device::from_handle(dev) };
    kernel::error::from_result(|| T::open(this, dev).map(|()| 0))
}

/// [`VariantOps::close_device`] for a `T` that implements [`Variant::close`].
unsafe extern "C" fn close_device<T: Variant>(data: *mut c_void, dev: *mut DeviceHandle) {
    // SAFETY: as in `open_device`.
    let (this, dev) = unsafe { hook_args::<T>(data, dev) };
    T::close(this, dev);
}

/// [`VariantOps::config_read`] for a `T` that implements [`Variant::config_read`].
unsafe extern "C" fn config_read<T: Variant>(
    data: *mut c_void,
    pos: u16,
    count: u32,
    val: u32,
) -> u32 {
    // SAFETY: as in `open_device`.
    let this = unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow(data) };
    T::config_read(this, pos, count as usize, val)
}

/// [`VariantOps::config_write`] for a `T` that implements [`Variant::config_write`].
unsafe extern "C" fn config_write<T: Variant>(data: *mut c_void, pos: u16, count: u32, val: u32) {
    // SAFETY: as in `open_device`.
    let this = unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow(data) };
    T::config_write(this, pos, count as usize, val);
}

/// [`VariantOps::regions`] for a `T` that implements [`Variant::regions`].
unsafe extern "C" fn regions<T: Variant>(
    data: *mut c_void,
    out: *mut super::abi::RegionDesc,
    max: u32,
) -> c_int {
    // SAFETY: as in `open_device`.
    let this = unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow(data) };
    // SAFETY: the common module passes room for `max` descriptors, exclusively ours for the
    // duration of the call.
    let out = unsafe { core::slice::from_raw_parts_mut(out, max as usize) };
    let mut r = super::Regions { out, n: 0 };
    match T::regions(this, &mut r) {
        Ok(()) => r.n as c_int,
        Err(e) => e.to_errno(),
    }
}

/// [`VariantOps::region_rw`] for a `T` with [`Variant::region_read`] / `region_write`.
unsafe extern "C" fn region_rw<T: Variant>(
    data: *mut c_void,
    dev: *mut DeviceHandle,
    index: u32,
    pos: u64,
    buf: *mut u8,
    count: usize,
    is_write: bool,
) -> isize {
    // SAFETY: as in `open_device`.
    let (this, dev) = unsafe { hook_args::<T>(data, dev) };
    // SAFETY: the common module passes a kernel buffer of `count` bytes, ours for the call.
    let buf = unsafe { core::slice::from_raw_parts_mut(buf, count) };
    let r = match (is_write, T::HAS_REGION_READ, T::HAS_REGION_WRITE) {
        (false, true, _) => T::region_read(this, dev, index as usize, pos, buf),
        (true, _, true) => T::region_write(this, dev, index as usize, pos, buf),
        _ => Err(EINVAL),
    };
    bytes_or_errno(r)
}

/// [`VariantOps::reset_notify`] for a `T` with `reset_prepare` / `reset_done`.
unsafe extern "C" fn reset_notify<T: Variant>(
    data: *mut c_void,
    dev: *mut DeviceHandle,
    done: bool,
    ret: c_int,
) {
    // SAFETY: as in `open_device`.
    let (this, dev) = unsafe { hook_args::<T>(data, dev) };
    match (done, T::HAS_RESET_PREPARE, T::HAS_RESET_DONE) {
        (false, true, _) => T::reset_prepare(this, dev),
        (true, _, true) => T::reset_done(this, dev, kernel::error::to_result(ret)),
        _ => {}
    }
}

/// [`VariantOps::region_mmap`] for a `T` that implements [`Variant::region_mmap`].
unsafe extern "C" fn region_mmap<T: Variant>(
    data: *mut c_void,
    dev: *mut DeviceHandle,
    index: u32,
    page: u64,
    target: *mut super::abi::MmapTarget,
) -> c_int {
    // SAFETY: as in `open_device`.
    let (this, dev) = unsafe { hook_args::<T>(data, dev) };
    match T::region_mmap(this, dev, index as usize, page) {
        Ok(t) => {
            // SAFETY: the common module passes a valid out-pointer for this call.
            unsafe { *target = t.0 };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// [`VariantOps::bus_reset_notify`] for a `T` with `bus_reset_prepare` / `bus_reset_done`.
unsafe extern "C" fn bus_reset_notify<T: Variant>(
    data: *mut c_void,
    dev: *mut DeviceHandle,
    done: bool,
    ret: c_int,
) {
    // SAFETY: as in `open_device`.
    let (this, dev) = unsafe { hook_args::<T>(data, dev) };
    match (done, T::HAS_BUS_RESET_PREPARE, T::HAS_BUS_RESET_DONE) {
        (false, true, _) => T::bus_reset_prepare(this, dev),
        (true, _, true) => T::bus_reset_done(this, dev, kernel::error::to_result(ret)),
        _ => {}
    }
}

/// A [`super::Handled`] in the ABI's convention (`HANDLED` with `*ret`, `FALL_THROUGH`, or
/// a negative errno).
fn handled(r: Result<super::Handled>, ret: *mut i64) -> c_int {
    match r {
        Ok(super::Handled::Done(v)) => {
            // SAFETY: the common module passes a valid out-pointer for the call.
            unsafe { *ret = v };
            super::abi::HANDLED
        }
        Ok(super::Handled::FallThrough) => super::abi::FALL_THROUGH,
        Err(e) => e.to_errno(),
    }
}

/// [`VariantOps::ioctl`] for a `T` that implements [`Variant::ioctl`].
unsafe extern "C" fn ioctl<T: Variant>(
    data: *mut c_void,
    dev: *mut DeviceHandle,
    cmd: u32,
    arg: usize,
    ret: *mut i64,
) -> c_int {
    // SAFETY: as in `open_device`.
    let (this, dev) = unsafe { hook_args::<T>(data, dev) };
    handled(T::ioctl(this, dev, cmd, arg), ret)
}

/// [`VariantOps::device_feature`] for a `T` that implements [`Variant::device_feature`].
unsafe extern "C" fn device_feature<T: Variant>(
    data: *mut c_void,
    dev: *mut DeviceHandle,
    flags: u32,
    arg: usize,
    argsz: usize,
    ret: *mut i64,
) -> c_int {
    // SAFETY: as in `open_device`.
    let (this, dev) = unsafe { hook_args::<T>(data, dev) };
    handled(T::device_feature(this, dev, flags, arg, argsz), ret)
}

/// [`VariantOps::reset`] for a `T` that implements [`Variant::reset`].
unsafe extern "C" fn reset<T: Variant>(data: *mut c_void, dev: *mut DeviceHandle) -> c_int {
    // SAFETY: as in `open_device`.
    let (this, dev) = unsafe { hook_args::<T>(data, dev) };
    kernel::error::from_result(|| T::reset(this, dev).map(|()| 0))
}

/// [`VariantOps::memory_bars`] for a `T` that implements [`Variant::memory_bars`].
unsafe extern "C" fn memory_bars<T: Variant>(
    data: *mut c_void,
    out: *mut MemoryBar,
    max: usize,
) -> c_int {
    // SAFETY: as in `config_read`.
    let this = unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow(data) };
    let mut n = 0usize;
    for bar in T::memory_bars(this).into_iter().flatten() {
        if n == max {
            return EINVAL.to_errno();
        }
        // SAFETY: the common module passes room for `max` entries; `n < max`.
        unsafe { out.add(n).write(bar) };
        n += 1;
    }
    n as c_int
}

/// [`VariantOps::bar_window_rw`] for a `T` with `bar_window_read` and `bar_window_write`.
unsafe extern "C" fn bar_window_rw<T: Variant>(
    data: *mut c_void,
    dev: *mut DeviceHandle,
    bar: u32,
    pos: u64,
    buf: *mut u8,
    count: usize,
    is_write: bool,
) -> isize {
    // SAFETY: as in `open_device`.
    let (this, dev) = unsafe { hook_args::<T>(data, dev) };
    // SAFETY: the common module passes a kernel buffer of `count` bytes, ours for the call.
    let buf = unsafe { core::slice::from_raw_parts_mut(buf, count) };
    let r = if is_write {
        T::bar_window_write(this, dev, bar as usize, pos, buf)
    } else {
        T::bar_window_read(this, dev, bar as usize, pos, buf)
    };
    bytes_or_errno(r)
}

/// A hook's byte count or error as the ABI's `isize`.
fn bytes_or_errno(r: Result<usize>) -> isize {
    match r {
        Ok(n) => n as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// The per-device state and the device context of a hook call.
///
/// # Safety
///
/// `data` is the live `Pin<KBox<T>>` of the device (the common module passes it only between
/// registration and release) and `dev` the device handle of the running hook; neither
/// reference outlives the hook call.
pub(super) unsafe fn hook_args<'a, T: Variant>(
    data: *mut c_void,
    dev: *mut DeviceHandle,
) -> (Pin<&'a T>, &'a Device) {
    // SAFETY: the caller's contract.
    unsafe {
        (
            <Pin<KBox<T>> as ForeignOwnable>::borrow(data),
            Device::from_handle(dev),
        )
    }
}

/// [`VariantOps::release`] for `T`: drops the per-device state made in `probe::<T>`.
unsafe extern "C" fn release_data<T: Variant>(data: *mut c_void) {
    // SAFETY: `data` came from `Pin<KBox<T>>::into_foreign` in `probe::<T>` and the common
    // module hands it back exactly once.
    drop(unsafe { <Pin<KBox<T>> as ForeignOwnable>::from_foreign(data) });
}
