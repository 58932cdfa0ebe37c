// SPDX-License-Identifier: GPL-2.0
//! [`PciId`]: one entry of a variant's ID table.
//!
//! Every entry built here is *override-only* (`PCI_ID_F_VFIO_DRIVER_OVERRIDE`): the PCI core
//! never binds a variant on its own, only when user space names it in `driver_override`, and
//! modpost publishes the entry as a `vfio_pci:` alias instead of a `pci:` one. There is no
//! constructor for any other kind of entry.

use super::bindings::{pci_device_id, PCI_ID_F_VFIO_DRIVER_OVERRIDE};

/// `PCI_ANY_ID`.
const ANY: u32 = !0;

/// A match rule for PCI functions: vendor, device, subsystem vendor and device (each exact or
/// any) and a class code under a mask.
#[derive(Clone, Copy)]
pub(crate) struct PciId {
    vendor: u32,
    device: u32,
    subvendor: u32,
    subdevice: u32,
    class: u32,
    class_mask: u32,
}

#[allow(dead_code)]
impl PciId {
    /// Matches every PCI function (only the generic driver should use this).
    pub(crate) const fn any() -> Self {
        Self {
            vendor: ANY,
            device: ANY,
            subvendor: ANY,
            subdevice: ANY,
            class: 0,
            class_mask: 0,
        }
    }

    /// Matches one vendor:device pair, any subsystem and class.
    pub(crate) const fn vendor_device(vendor: u16, device: u16) -> Self {
        Self {
            vendor: vendor as u32,
            device: device as u32,
            ..Self::any()
        }
    }

    /// Matches every device of one vendor.
    pub(crate) const fn vendor(vendor: u16) -> Self {
        Self {
            vendor: vendor as u32,
            ..Self::any()
        }
    }

    /// Narrows the match to one subsystem vendor:device pair.
    pub(crate) const fn subsystem(self, subvendor: u16, subdevice: u16) -> Self {
        Self {
            subvendor: subvendor as u32,
            subdevice: subdevice as u32,
            ..self
        }
    }

    /// Narrows the match to functions whose 24-bit class code equals `class` under `mask`
    /// (e.g. `class(0x030000, 0xff0000)` for every display controller).
    pub(crate) const fn class(self, class: u32, mask: u32) -> Self {
        Self {
            class: class & 0xff_ffff,
            class_mask: mask & 0xff_ffff,
            ..self
        }
    }

    /// The kernel's form of this entry, with `driver_data` = its index in the table.
    const fn raw(&self, index: usize) -> pci_device_id {
        pci_device_id {
            vendor: self.vendor,
            device: self.device,
            subvendor: self.subvendor,
            subdevice: self.subdevice,
            class: self.class,
            class_mask: self.class_mask,
            driver_data: index as _,
            override_only: PCI_ID_F_VFIO_DRIVER_OVERRIDE as u32,
        }
    }

    /// Builds the zero-terminated table (`M` must be `N + 1`), at compile time.
    pub(crate) const fn table<const N: usize, const M: usize>(ids: &[PciId]) -> [pci_device_id; M] {
        assert!(
            ids.len() == N && M == N + 1,
            "the ID table size is N entries plus a terminator"
        );
        let zero = pci_device_id {
            vendor: 0,
            device: 0,
            subvendor: 0,
            subdevice: 0,
            class: 0,
            class_mask: 0,
            driver_data: 0,
            override_only: 0,
        };
        let mut out = [zero; M];
        let mut i = 0;
        while i < N {
            // An entry with vendor, subvendor and class_mask all 0 would read as the end of
            // the table: refuse to build one.
            let e = ids[i].raw(i);
            assert!(
                e.vendor != 0 || e.subvendor != 0 || e.class_mask != 0,
                "an ID entry must match on vendor, subsystem vendor or class"
            );
            out[i] = e;
            i += 1;
        }
        out
    }
}
