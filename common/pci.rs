// SPDX-License-Identifier: GPL-2.0
//! [`PciDev`]: the common module's view of one PCI function. The only place that reads
//! `struct pci_dev` or calls the PCI core.

use crate::bindings;
use core::ptr::NonNull;
use kernel::error::{to_result, Result};

/// A PCI function bound to one of our variant drivers.
///
/// # Invariants
///
/// `ptr` points to a valid `struct pci_dev` for the whole life of this value: the driver core
/// keeps a bound device alive from `probe` until `remove` returns, and every `PciDev` is owned
/// by a device registration that ends inside `remove`.
pub(crate) struct PciDev {
    ptr: NonNull<bindings::pci_dev>,
}

// SAFETY: the PCI core serialises config accesses internally (`pci_lock`, the user config
// access lock), and the fields we read are fixed while the device is bound.
unsafe impl Send for PciDev {}
// SAFETY: as for `Send`; `&PciDev` only allows reads and PCI core calls that lock internally.
unsafe impl Sync for PciDev {}

impl PciDev {
    /// # Safety
    ///
    /// `ptr` must be a valid `struct pci_dev` that stays bound to our driver for the life of the
    /// returned value.
    pub(crate) unsafe fn from_raw(ptr: NonNull<bindings::pci_dev>) -> Self {
        // INVARIANT: the caller guarantees validity for our lifetime.
        Self { ptr }
    }

    /// The raw pointer, for the VFIO core calls in `device.rs`.
    pub(crate) fn as_raw(&self) -> *mut bindings::pci_dev {
        self.ptr.as_ptr()
    }

    /// `&pdev->dev`.
    pub(crate) fn as_device(&self) -> *mut kernel::bindings::device {
        // SAFETY: `ptr` is valid by the type invariant; taking a field address reads nothing.
        unsafe { core::ptr::addr_of_mut!((*self.ptr.as_ptr()).dev) }
    }

    fn raw(&self) -> &bindings::pci_dev {
        // SAFETY: valid by the type invariant; the fields we read through this reference
        // (IDs, cfg_size, resources, reset methods) do not change while the device is bound.
        unsafe { self.ptr.as_ref() }
    }

    /// Size of config space: 256 for conventional PCI, 4096 for PCIe/PCI-X 2.0 with ECAM.
    pub(crate) fn cfg_size(&self) -> u64 {
        self.raw().cfg_size.max(0) as u64
    }

    /// Length of resource `bar` (BARs 0..=5, ROM 6), 0 when unimplemented.
    pub(crate) fn resource_len(&self, bar: usize) -> u64 {
        match self.raw().resource.get(bar) {
            // Like `pci_resource_len`: an unassigned resource has `end == 0`.
            Some(r) if r.end != 0 => r.end.wrapping_sub(r.start).wrapping_add(1),
            _ => 0,
        }
    }

    /// Whether the PCI core knows a way to reset this function (`pci_reset_supported`).
    pub(crate) fn reset_supported(&self) -> bool {
        self.raw().reset_methods[0] != 0
    }

    /// Reads `size` (1, 2 or 4) bytes of config space at `offset` the way `sysfs` does
    /// (`pci_user_read_config_*`: blocked while the device is in reset or being accessed by
    /// the host driver), returning the value.
    pub(crate) fn read_config(&self, offset: u64, size: usize) -> Result<u32> {
        let dev = self.as_raw();
        let off = offset as i32;
        let mut v32: u32 = 0;
        let mut v16: u16 = 0;
        let mut v8: u8 = 0;
        // SAFETY: `dev` is valid by the type invariant; the out-pointers are live locals;
        // `offset` was bounds-checked against `cfg_size` by the caller (the PCI core also checks).
        let ret = unsafe {
            match size {
                4 => bindings::pci_user_read_config_dword(dev, off, &mut v32),
                2 => bindings::pci_user_read_config_word(dev, off, &mut v16),
                _ => bindings::pci_user_read_config_byte(dev, off, &mut v8),
            }
        };
        to_result(ret)?;
        Ok(match size {
            4 => v32,
            2 => v16.into(),
            _ => v8.into(),
        })
    }
}
