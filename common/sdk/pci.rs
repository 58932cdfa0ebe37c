// SPDX-License-Identifier: GPL-2.0
//! [`PciFunction`]: a counted reference to a PCI function: the variant's own device (handed to
//! `probe`; clone it to keep it) or another one on the platform (IGD reads its host bridge and LPC bridge), with read-only config access
//! and dev_* printing.
//!
//! Variants never write another device's config space through this: the type offers reads only.

use super::bindings;
use super::dev_print::{dev_print, Level};
use core::ptr::{self, NonNull};
use kernel::error::{code::*, Result};

/// `PCI_DEVFN(slot, func)`.
#[allow(dead_code)]
pub(crate) const fn devfn(slot: u8, func: u8) -> u8 {
    ((slot & 0x1f) << 3) | (func & 0x07)
}

/// A reference to a `struct pci_dev`, dropped with `pci_dev_put`.
///
/// # Invariants
///
/// `ptr` is a valid `struct pci_dev` on which this value holds one reference
/// (`pci_dev_get` or the reference `pci_get_domain_bus_and_slot` returns).
pub(crate) struct PciFunction {
    ptr: NonNull<bindings::pci_dev>,
}

// SAFETY: a counted `pci_dev` may be used and put from any thread; config accessors lock
// inside the PCI core, and the fields we read (IDs, class, cfg_size) do not change while the
// reference is held.
unsafe impl Send for PciFunction {}
// SAFETY: as for `Send`: `&PciFunction` only allows reads and locking PCI core calls.
unsafe impl Sync for PciFunction {}

#[allow(dead_code)]
impl PciFunction {
    /// Takes a new reference on `pdev` (the variant's own device, from `probe`).
    pub(super) fn get(pdev: &bindings::pci_dev) -> Self {
        let p = ptr::from_ref(pdev).cast_mut();
        // SAFETY: `pdev` is a valid device (a live reference); `pci_dev_get` takes a reference
        // and returns its argument.
        unsafe { bindings::pci_dev_get(p) };
        // INVARIANT: we now hold the reference `pci_dev_get` took on `p`, which is not NULL.
        Self {
            ptr: NonNull::from(pdev),
        }
    }

    /// The function at `domain:bus:devfn`, if the PCI core knows one
    /// (`pci_get_domain_bus_and_slot`).
    pub(crate) fn lookup(domain: u32, bus: u8, devfn: u8) -> Option<Self> {
        // SAFETY: a plain lookup; it returns a counted reference or NULL.
        let p = unsafe {
            bindings::pci_get_domain_bus_and_slot(domain as i32, bus.into(), devfn.into())
        };
        // INVARIANT: a non-NULL result carries the reference the lookup took.
        NonNull::new(p).map(|ptr| Self { ptr })
    }

    fn raw(&self) -> &bindings::pci_dev {
        // SAFETY: valid while we hold our reference (type invariant).
        unsafe { self.ptr.as_ref() }
    }

    /// Subsystem vendor ID.
    pub(crate) fn subsystem_vendor_id(&self) -> u16 {
        self.raw().subsystem_vendor
    }

    /// Subsystem device ID.
    pub(crate) fn subsystem_device_id(&self) -> u16 {
        self.raw().subsystem_device
    }

    /// Revision ID.
    pub(crate) fn revision(&self) -> u8 {
        self.raw().revision
    }

    /// Physical start and length of BAR `bar` (0..=5; 0 and 0 when absent).
    pub(crate) fn bar(&self, bar: usize) -> (u64, u64) {
        match self.raw().resource.get(bar) {
            Some(r) if r.end != 0 => (r.start, r.end - r.start + 1),
            _ => (0, 0),
        }
    }

    /// Vendor ID.
    pub(crate) fn vendor_id(&self) -> u16 {
        self.raw().vendor
    }

    /// Device ID.
    pub(crate) fn device_id(&self) -> u16 {
        self.raw().device
    }

    /// 24-bit class code (class, subclass, programming interface).
    pub(crate) fn class(&self) -> u32 {
        self.raw().class
    }

    /// Size of its config space (256 or 4096).
    pub(crate) fn cfg_size(&self) -> u64 {
        self.raw().cfg_size.max(0) as u64
    }

    /// Reads a config dword the way a driver does (`pci_read_config_dword`): no waiting for a
    /// blocked config space. A failed read is `EIO`.
    pub(crate) fn read_config_dword(&self, offset: u16) -> Result<u32> {
        let mut v = 0u32;
        // SAFETY: valid device (type invariant); `v` is a live local.
        let r =
            unsafe { bindings::pci_read_config_dword(self.ptr.as_ptr(), offset.into(), &mut v) };
        if r != 0 {
            return Err(EIO);
        }
        Ok(v)
    }

    /// The offset of the designated vendor-specific extended capability (DVSEC) `id` of
    /// `vendor` (`pci_find_dvsec_capability`), if the function has one.
    pub(crate) fn find_dvsec(&self, vendor: u16, id: u16) -> Option<u16> {
        // SAFETY: valid device (type invariant).
        let pos = unsafe { bindings::pci_find_dvsec_capability(self.ptr.as_ptr(), vendor, id) };
        (pos != 0).then_some(pos)
    }

    /// A 64-bit firmware property of the function (`device_property_read_u64`: ACPI `_DSD`,
    /// device tree or a software node): `EINVAL` when absent, as the kernel answers.
    pub(crate) fn property_u64(&self, name: &core::ffi::CStr) -> Result<u64> {
        let mut v = 0u64;
        // SAFETY: valid device (type invariant); `name` is NUL-terminated; one u64 is read
        // into a live local.
        let r = unsafe {
            bindings::device_property_read_u64_array(
                core::ptr::addr_of_mut!((*self.ptr.as_ptr()).dev),
                name.as_ptr().cast(),
                &mut v,
                1,
            )
        };
        kernel::error::to_result(r)?;
        Ok(v)
    }

    /// Reads `size` (1, 2 or 4) config bytes at `offset` as user space does through sysfs
    /// (`pci_user_read_config_*`: waits while config access is blocked, e.g. during a reset).
    pub(crate) fn user_read_config(&self, offset: u16, size: usize) -> Result<u32> {
        let p = self.ptr.as_ptr();
        let off = i32::from(offset);
        let r = match size {
            1 => {
                let mut v = 0u8;
                // SAFETY: valid device (type invariant); the out-pointer is a live local.
                let r = unsafe { bindings::pci_user_read_config_byte(p, off, &mut v) };
                (r, u32::from(v))
            }
            2 => {
                let mut v = 0u16;
                // SAFETY: valid device (type invariant); the out-pointer is a live local.
                let r = unsafe { bindings::pci_user_read_config_word(p, off, &mut v) };
                (r, u32::from(v))
            }
            4 => {
                let mut v = 0u32;
                // SAFETY: valid device (type invariant); the out-pointer is a live local.
                let r = unsafe { bindings::pci_user_read_config_dword(p, off, &mut v) };
                (r, v)
            }
            _ => return Err(EINVAL),
        };
        kernel::error::to_result(r.0)?;
        Ok(r.1)
    }

    /// Prints one line about this function at info level (`dev_info`).
    pub(crate) fn info(&self, args: core::fmt::Arguments<'_>) {
        // SAFETY: valid device (type invariant).
        unsafe { dev_print(self.device(), Level::Info, args) };
    }

    /// Prints one line about this function at warning level (`dev_warn`).
    pub(crate) fn warn(&self, args: core::fmt::Arguments<'_>) {
        // SAFETY: valid device (type invariant).
        unsafe { dev_print(self.device(), Level::Warning, args) };
    }

    fn device(&self) -> *mut kernel::bindings::device {
        // SAFETY: valid device (type invariant); taking a field address reads nothing.
        unsafe { ptr::addr_of_mut!((*self.ptr.as_ptr()).dev) }
    }
}

/// Another counted reference to the same function (for per-device state that needs the
/// device after `probe`: config reads at open, printing).
impl Clone for PciFunction {
    fn clone(&self) -> Self {
        Self::get(self.raw())
    }
}

impl Drop for PciFunction {
    fn drop(&mut self) {
        // SAFETY: we hold one reference (type invariant) and give it back exactly once.
        unsafe { bindings::pci_dev_put(self.ptr.as_ptr()) };
    }
}
