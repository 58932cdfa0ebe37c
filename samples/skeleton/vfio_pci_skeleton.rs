// SPDX-License-Identifier: GPL-2.0
//! The smallest complete VFIO PCI variant: a unit struct and an ID table. Copy it to start a
//! new variant; everything not written here is the common behaviour of `vfio_pci_common`.

#![deny(unsafe_code)]

#[allow(unsafe_code)]
#[path = "../../common/sdk/mod.rs"]
mod sdk;

use sdk::prelude::*;

/// Needs no per-device state.
struct Skeleton;

#[vtable]
impl Variant for Skeleton {
    type IdInfo = ();

    fn probe(_dev: &PciFunction, _id: &'static ()) -> impl PinInit<Self, Error> {
        Skeleton
    }
}

sdk::module_vfio_pci_variant! {
    type: Skeleton,
    name: "vfio_pci_skeleton",
    driver: "vfio-pci-skeleton",
    author: "vfio-pci-rs developers",
    description: "Skeleton VFIO PCI variant for QEMU's edu device",
    license: "GPL",
    ids: [(PciId::vendor_device(0x1234, 0x11e8), ())],
}
