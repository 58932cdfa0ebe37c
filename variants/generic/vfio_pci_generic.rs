// SPDX-License-Identifier: GPL-2.0
//! `vfio-pci-generic`: hands any PCI function to user space through VFIO, but only the
//! functions an administrator names: its single ID entry matches every device and, like every
//! SDK entry, is override-only, so the driver binds solely through `driver_override`.
//!
//! It is written against the public SDK only; if it needs something, the SDK must offer it.

#![deny(unsafe_code)]

#[allow(unsafe_code)]
#[path = "../../common/sdk/mod.rs"]
mod sdk;

use sdk::prelude::*;

/// Per-device state: what the device was when we took it, for the log and for later hooks.
#[pin_data]
struct GenericDevice {
    vendor: u16,
    device: u16,
}

#[vtable]
impl Variant for GenericDevice {
    type IdInfo = ();

    fn probe(dev: &PciFunction, _id: &'static ()) -> impl PinInit<Self, Error> {
        try_pin_init!(GenericDevice {
            vendor: dev.vendor_id(),
            device: dev.device_id()
        })
    }
}

sdk::module_vfio_pci_variant! {
    type: GenericDevice,
    name: "vfio_pci_generic",
    driver: "vfio-pci-generic",
    author: "vfio-pci-rs developers",
    description: "VFIO PCI driver for any device, bound only through driver_override",
    license: "GPL",
    ids: [(PciId::any(), ())],
}
