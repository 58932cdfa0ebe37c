// SPDX-License-Identifier: GPL-2.0
//! Test-only variant for QEMU's edu device that exercises the config overlay and the
//! device-specific region APIs of the SDK. Config overlays:
//! - 0xfc, 4 bytes, starts with the device's value, upper half writable (IGD's ASLS shape);
//! - 0xf8, 2 bytes, starts at 0xab00, low byte writable; its read hook replaces the high
//!   byte with the number of overlay writes seen by the write hook.
//!
//! Regions (indexes 9 and 10): a 64-byte read-write scratch region (vendor type 0x1234,
//! subtype 1) backed by memory, and a 16-byte read-only region (subtype 2) holding a fixed
//! pattern, carrying an extra capability (id 0x7e57, version 1, body "vfio-rs!"); index 11,
//! one page (subtype 3), mappable only: its page is page 0 of edu's BAR0 (reads through the fd
//! give zeros).
//!
//! The guest checks `config-overlay-*` and `device-region-*` bind it to edu and compare what
//! user space sees with what this file defines. It is never shipped: it lives under `tests/`.

#![deny(unsafe_code)]

#[allow(unsafe_code)]
#[path = "../../../common/sdk/mod.rs"]
mod sdk;

use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{new_mutex, sync::Mutex};
use sdk::prelude::*;

/// The read-only region's contents.
const PATTERN: [u8; 16] = *b"vfio-rs region!\0";

#[pin_data]
struct OverlayTest {
    writes: AtomicU32,
    #[pin]
    scratch: Mutex<[u8; 64]>,
}

#[vtable]
impl Variant for OverlayTest {
    type IdInfo = ();

    const CONFIG_OVERLAYS: &'static [ConfigOverlay] = &[
        ConfigOverlay::from_device(0xfc, 4, 0xffff_0000),
        ConfigOverlay::value(0xf8, 2, 0xab00, 0x00ff),
    ];

    fn probe(_dev: &PciFunction, _id: &'static ()) -> impl PinInit<Self, Error> {
        try_pin_init!(OverlayTest {
            writes: AtomicU32::new(0),
            scratch <- new_mutex!([0u8; 64]),
        })
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

    fn regions(self: Pin<&Self>, regions: &mut Regions<'_>) -> Result {
        let vendor = sdk::REGION_TYPE_PCI_VENDOR | 0x1234;
        regions.add(vendor, 1, 64, sdk::REGION_READ | sdk::REGION_WRITE)?;
        let ro = regions.add(vendor, 2, PATTERN.len() as u64, sdk::REGION_READ)?;
        regions.add_capability(ro, 0x7e57, 1, b"vfio-rs!")?;
        regions.add(vendor, 3, 4096, sdk::REGION_READ | sdk::REGION_MMAP)?;
        Ok(())
    }

    fn region_mmap(self: Pin<&Self>, _dev: &Device, index: usize, page: u64) -> Result<MmapTarget> {
        match (index, page) {
            (2, 0) => Ok(MmapTarget::bar(0, 0)),
            _ => Err(EINVAL),
        }
    }

    fn region_read(
        self: Pin<&Self>,
        _dev: &Device,
        index: usize,
        pos: u64,
        buf: &mut [u8],
    ) -> Result<usize> {
        let pos = pos as usize;
        match index {
            0 => buf.copy_from_slice(
                self.scratch
                    .lock()
                    .get(pos..pos + buf.len())
                    .ok_or(EINVAL)?,
            ),
            1 => buf.copy_from_slice(PATTERN.get(pos..pos + buf.len()).ok_or(EINVAL)?),
            _ => buf.fill(0),
        }
        Ok(buf.len())
    }

    fn region_write(
        self: Pin<&Self>,
        _dev: &Device,
        index: usize,
        pos: u64,
        buf: &[u8],
    ) -> Result<usize> {
        let pos = pos as usize;
        if index != 0 {
            return Err(EINVAL);
        }
        let mut scratch = self.scratch.lock();
        scratch
            .get_mut(pos..pos + buf.len())
            .ok_or(EINVAL)?
            .copy_from_slice(buf);
        Ok(buf.len())
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
