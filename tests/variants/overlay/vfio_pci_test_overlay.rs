// SPDX-License-Identifier: GPL-2.0
//! Test-only variant for QEMU's edu device that exercises the config overlay API of the SDK:
//! - 0xfc, 4 bytes, starts with the device's value, upper half writable (IGD's ASLS shape);
//! - 0xf8, 2 bytes, starts at 0xab00, low byte writable; its read hook replaces the high
//!   byte with the number of overlay writes seen by the write hook.
//!
//! The guest checks `config-overlay-*` bind it to edu and compare what user space sees with
//! the device's real config space in sysfs. It is never shipped: it lives under `tests/`.

#[path = "../../../common/sdk/mod.rs"]
mod sdk;

use core::sync::atomic::{AtomicU32, Ordering};
use sdk::prelude::*;

#[pin_data]
struct OverlayTest {
    writes: AtomicU32,
}

#[vtable]
impl Variant for OverlayTest {
    type IdInfo = ();

    const CONFIG_OVERLAYS: &'static [ConfigOverlay] = &[
        ConfigOverlay::from_device(0xfc, 4, 0xffff_0000),
        ConfigOverlay::value(0xf8, 2, 0xab00, 0x00ff),
    ];

    fn probe(_dev: &PciDevice<'_>, _id: &'static ()) -> impl PinInit<Self, Error> {
        try_pin_init!(OverlayTest { writes: AtomicU32::new(0) })
    }

    fn config_read(self: Pin<&Self>, offset: u16, _size: usize, value: u32) -> u32 {
        if offset == 0xf8 {
            (value & 0xff) | ((self.writes.load(Ordering::Relaxed) & 0xff) << 8)
        } else {
            value
        }
    }

    fn config_write(self: Pin<&Self>, _offset: u16, _size: usize, _value: u32) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
}

sdk::module_vfio_pci_variant! {
    type: OverlayTest,
    name: "vfio_pci_test_overlay",
    driver: "vfio-pci-test-overlay",
    author: "vfio-pci-rs developers",
    description: "Test variant exercising config overlays (tests only)",
    license: "GPL",
    ids: [(PciId::vendor_device(0x1234, 0x11e8), ())],
}
