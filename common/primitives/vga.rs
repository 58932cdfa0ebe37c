// SPDX-License-Identifier: GPL-2.0
//! The kernel's VGA machinery, over `vga_shims.c`: firmware framebuffer eviction (the aperture
//! helpers), the VGA arbiter (client registration, legacy decoding, the lock around legacy
//! accesses, [`VgaLock`]) and mappings of the legacy windows ([`LegacyMap`]). Knows nothing of
//! a VFIO device.

use crate::bindings;
use crate::logic::vga::Window;
use crate::primitives::pci_function::PciFunction;
use core::ffi::{c_int, c_uint, c_ulong, c_void};
use core::ptr::NonNull;
use kernel::error::{code::ENOMEM, to_result, Result};
use kernel::ffi::c_char;

/// The arbiter's `set_decode` callback: called with the device and whether it is the only VGA
/// device, under the arbiter's spinlock (it must not sleep); returns `VGA_RSRC_*` bits.
pub(crate) type SetDecode =
    unsafe extern "C" fn(pdev: *mut bindings::pci_dev, single_vga: bool) -> c_uint;

// `struct pci_dev` holds opaque lock types bindgen cannot prove FFI-safe; we only pass pointers.
#[allow(improper_ctypes)]
extern "C" {
    fn vfio_pci_common_vga_region_supported() -> bool;
    fn vfio_pci_common_aperture_remove(pdev: *mut bindings::pci_dev, name: *const c_char) -> c_int;
    fn vfio_pci_common_vga_client_register(
        pdev: *mut bindings::pci_dev,
        set_decode: Option<SetDecode>,
    ) -> c_int;
    fn vfio_pci_common_vga_client_unregister(pdev: *mut bindings::pci_dev);
    fn vfio_pci_common_vga_set_legacy_decoding(pdev: *mut bindings::pci_dev, decodes: c_uint);
    fn vfio_pci_common_vga_get_interruptible(pdev: *mut bindings::pci_dev, rsrc: c_uint) -> c_int;
    fn vfio_pci_common_vga_put(pdev: *mut bindings::pci_dev, rsrc: c_uint);
    fn vfio_pci_common_on_root_bus(pdev: *mut bindings::pci_dev) -> bool;
    fn vfio_pci_common_vga_other_below(pdev: *mut bindings::pci_dev) -> bool;
    fn vfio_pci_common_vga_map(ioport: bool, start: c_ulong, len: c_ulong) -> *mut c_void;
    fn vfio_pci_common_vga_unmap(ioport: bool, io: *mut c_void);
}

/// Whether this kernel offers the legacy VGA region (`CONFIG_VFIO_PCI_VGA`).
pub(crate) fn region_supported() -> bool {
    // SAFETY: no arguments; reads a configuration constant.
    unsafe { vfio_pci_common_vga_region_supported() }
}

/// Removes the firmware framebuffers whose memory lies in `pdev`'s BARs and, for the boot VGA
/// device, the VGA text console and legacy framebuffers (`aperture_remove_conflicting_pci_devices`).
/// `name` is the driver name the kernel log shows as the new owner.
pub(crate) fn remove_conflicting_framebuffers(pdev: &PciFunction, name: *const c_char) -> Result {
    // SAFETY: `pdev` is valid (type invariant); `name` is the caller's NUL-terminated static
    // driver name, only printed.
    to_result(unsafe { vfio_pci_common_aperture_remove(pdev.as_raw(), name) })
}

/// Registers `pdev` with the VGA arbiter with `set_decode` as its decode callback. The
/// callback may run until [`client_unregister`] returns.
pub(crate) fn client_register(pdev: &PciFunction, set_decode: SetDecode) -> Result {
    // SAFETY: `pdev` is valid; `set_decode` is a function of this module, which outlives every
    // device of ours (devices are unregistered before the module can go).
    to_result(unsafe { vfio_pci_common_vga_client_register(pdev.as_raw(), Some(set_decode)) })
}

/// Withdraws the decode callback; the arbiter calls it no more once this returns (both run
/// under the arbiter's lock).
pub(crate) fn client_unregister(pdev: &PciFunction) {
    // SAFETY: `pdev` is valid (type invariant).
    unsafe { vfio_pci_common_vga_client_unregister(pdev.as_raw()) }
}

/// Tells the arbiter which `VGA_RSRC_*` ranges `pdev` decodes.
pub(crate) fn set_legacy_decoding(pdev: &PciFunction, decodes: u32) {
    // SAFETY: `pdev` is valid (type invariant).
    unsafe { vfio_pci_common_vga_set_legacy_decoding(pdev.as_raw(), decodes) }
}

/// `pci_is_root_bus(pdev->bus)`.
pub(crate) fn on_root_bus(pdev: &PciFunction) -> bool {
    // SAFETY: `pdev` is valid (type invariant); reads the bus's parent pointer.
    unsafe { vfio_pci_common_on_root_bus(pdev.as_raw()) }
}

/// Whether another VGA device that is not on a root bus sits on `pdev`'s bus or a bus below
/// it, in the same domain. Does not sleep (the arbiter's callback calls it).
pub(crate) fn other_vga_below(pdev: &PciFunction) -> bool {
    // SAFETY: `pdev` is valid (type invariant); the shim walks the PCI device list with
    // counted references.
    unsafe { vfio_pci_common_vga_other_below(pdev.as_raw()) }
}

/// The arbiter's lock on legacy resources `rsrc` for `pdev` (`vga_get_interruptible`): the
/// arbiter has routed them to `pdev`, and nobody else gets them until [`Drop`] (`vga_put`).
pub(crate) struct VgaLock<'a> {
    pdev: &'a PciFunction,
    rsrc: c_uint,
}

impl<'a> VgaLock<'a> {
    /// Waits (interruptibly: `-EINTR` on a signal) until the arbiter can give `rsrc` to `pdev`.
    pub(crate) fn get(pdev: &'a PciFunction, rsrc: u32) -> Result<Self> {
        // SAFETY: `pdev` is valid (type invariant).
        to_result(unsafe { vfio_pci_common_vga_get_interruptible(pdev.as_raw(), rsrc) })?;
        Ok(Self { pdev, rsrc })
    }
}

impl Drop for VgaLock<'_> {
    fn drop(&mut self) {
        // SAFETY: we hold `rsrc` for `pdev` (taken in `get`).
        unsafe { vfio_pci_common_vga_put(self.pdev.as_raw(), self.rsrc) }
    }
}

/// A kernel mapping of one legacy VGA window: `ioremap` of the memory window, or an iomap
/// cookie for an I/O port window (usable with `ioread*`/`iowrite*` either way).
///
/// # Invariants
///
/// `io` maps `window` (made by `vfio_pci_common_vga_map` with `window.ioport`) until dropped.
pub(crate) struct LegacyMap {
    io: NonNull<c_void>,
    window: Window,
}

impl LegacyMap {
    /// Maps `window` (`-ENOMEM` when the kernel cannot).
    pub(crate) fn new(window: Window) -> Result<Self> {
        // SAFETY: maps fixed legacy addresses; the result is checked below.
        let io = unsafe {
            vfio_pci_common_vga_map(
                window.ioport,
                window.start as c_ulong,
                window.len as c_ulong,
            )
        };
        // INVARIANT: a non-NULL result is a mapping of `window`.
        NonNull::new(io).map(|io| Self { io, window }).ok_or(ENOMEM)
    }

    /// The mapping's address (the window's first byte).
    pub(crate) fn io(&self) -> *mut c_void {
        self.io.as_ptr()
    }
}

impl Drop for LegacyMap {
    fn drop(&mut self) {
        // SAFETY: `io` was made by `vfio_pci_common_vga_map` for this window kind (invariant).
        unsafe { vfio_pci_common_vga_unmap(self.window.ioport, self.io.as_ptr()) }
    }
}
