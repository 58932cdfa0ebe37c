// SPDX-License-Identifier: GPL-2.0
//! A PCI function offered as a mediated device (mdev): the template for a vendor who mediates
//! a device instead of handing the whole function to a VFIO PCI driver.
//!
//! Bound to QEMU's `edu` (by `driver_override` only), this module does not make the function
//! a VFIO device. It registers it as an mdev parent with one type, `vfio-mdev-pci-edu`, of
//! one instance. Writing a UUID to the type's `create` makes an mdev; the SDK then calls
//! `probe` below for it and the common module registers the mdev as a VFIO device with the
//! emulated IOMMU model. Its config space, BAR access and interrupts are the common module's,
//! served over the parent function: nothing of that is written here.
//!
//! What the user gets, and what not (Documentation/samples/mdev_pci.md): no DMA (the mdev
//! has no IOMMU domain of its own, so bus mastering stays off in the function, whatever the
//! user writes to COMMAND) and no hot reset.

#![deny(unsafe_code)]

// The SDK is the one place allowed `unsafe`: it wraps the mdev core and the common module.
#[allow(unsafe_code)]
#[path = "../../common/sdk/mod.rs"]
mod sdk;

use sdk::prelude::*;

/// The per-mdev state: none needed; a vendor keeps here what it mediates (a filtered
/// register window, a share of the device).
struct MdevPci;

#[vtable]
impl Variant for MdevPci {
    type IdInfo = ();

    // This one constant makes the variant mediated: bound functions become mdev parents.
    const MEDIATED: Option<MdevType> = Some(MdevType {
        name: c"edu",
        description: c"the whole edu function, one user at a time, without DMA",
    });

    // Runs when an mdev is created, with the parent function.
    fn probe(_parent: &PciFunction, _id: &'static ()) -> impl PinInit<Self, Error> {
        MdevPci
    }
}

sdk::module_vfio_pci_variant! {
    type: MdevPci,
    name: "vfio_mdev_pci",
    driver: "vfio-mdev-pci",
    author: "vfio-pci-rs developers",
    description: "Sample: a PCI function (QEMU edu) offered as a mediated VFIO device",
    license: "GPL",
    ids: [(PciId::vendor_device(0x1234, 0x11e8), ())],
}
