// SPDX-License-Identifier: GPL-2.0
//! A PCI function offered as a mediated device (mdev): the template for a vendor who mediates
//! a device instead of handing the whole function to a VFIO PCI driver.
//!
//! Bound to QEMU's `edu` (by `driver_override` only), this module does not make the function
//! a VFIO device. It registers it as an mdev parent with two types, of one instance in all.
//! Writing a UUID to a type's `create` makes an mdev; the SDK then calls `probe` below for it
//! and the common module registers the mdev as a VFIO device with the emulated IOMMU model.
//! Its config space, BAR access and interrupts are the common module's, served over the
//! parent function: nothing of that is written here.
//!
//! The mdev has no IOMMU domain of its own, so its user must never make the function DMA
//! (Documentation/samples/mdev_pci.md). The two types are the two ways to ensure that:
//! - `vfio-mdev-pci-edu`: the function never masters the bus. BAR0 passes through whole
//!   (mappable), INTx works, MSI never arrives (an MSI is a memory write by the function).
//! - `vfio-mdev-pci-edu-msi`: this module mediates edu's DMA engine (registers 0x80-0x9f of
//!   BAR0, a `BarWindow`: kept here, never written to the device, and a transfer is refused),
//!   so the common module may let the function master the bus while MSI is on. The price:
//!   BAR0's first page, which holds the DMA registers, is not mappable.

#![deny(unsafe_code)]

// The SDK is the one place allowed `unsafe`: it wraps the mdev core and the common module.
#[allow(unsafe_code)]
#[path = "../../common/sdk/mod.rs"]
mod sdk;

use kernel::{new_mutex, sync::Mutex};
use sdk::prelude::*;

/// edu's DMA registers in BAR0: source, destination, count and command, 8 bytes each.
const DMA_REGS: u64 = 0x80;
const DMA_REGS_LEN: usize = 0x20;
/// The command register, relative to `DMA_REGS`, and its "start the transfer" bit.
const DMA_CMD: usize = 0x18;
const DMA_CMD_START: u8 = 1 << 0;

/// The per-mdev state: what this module mediates.
#[pin_data]
struct MdevPci {
    /// The user's view of edu's DMA registers (used by `vfio-mdev-pci-edu-msi` devices only:
    /// the other type's BARs pass through whole).
    #[pin]
    dma_regs: Mutex<[u8; DMA_REGS_LEN]>,
}

#[vtable]
impl Variant for MdevPci {
    type IdInfo = ();

    // This one constant makes the variant mediated: bound functions become mdev parents with
    // these types (the mdev core allows one instance per function in all).
    const MEDIATED: &'static [MdevType] = &[
        MdevType {
            name: c"edu",
            description:
                c"the whole edu function, one user at a time; no DMA, so MSI never arrives",
            bus_master: MdevBusMaster::Never,
        },
        MdevType {
            name: c"edu-msi",
            description:
                c"edu with its DMA engine mediated (BAR0 page 0 not mappable); INTx and MSI",
            bus_master: MdevBusMaster::ForMsi,
        },
    ];

    // The mediated DMA registers of `edu-msi` devices: user reads and writes there come to
    // `bar_window_read`/`bar_window_write` below, and the page is never mapped.
    const BAR_WINDOWS: &'static [BarWindow] = &[BarWindow::new(0, DMA_REGS, DMA_REGS_LEN as u64)];

    // Runs when an mdev is created, with the parent function.
    fn probe(_parent: &PciFunction, _id: &'static ()) -> impl PinInit<Self, Error> {
        try_pin_init!(MdevPci {
            dma_regs <- new_mutex!([0u8; DMA_REGS_LEN]),
        })
    }

    // The user reads back what it wrote; the device's own registers are never touched.
    fn bar_window_read(
        self: Pin<&Self>,
        _dev: &Device,
        _bar: usize,
        pos: u64,
        buf: &mut [u8],
    ) -> Result<usize> {
        let at = usize::try_from(pos).map_err(|_| EINVAL)?;
        let regs = self.dma_regs.lock();
        buf.copy_from_slice(regs.get(at..at + buf.len()).ok_or(EINVAL)?);
        Ok(buf.len())
    }

    // Writes are kept, except one that would start a transfer: refused, since the device
    // would then write wherever the host's IOMMU domain for the function lets it.
    fn bar_window_write(
        self: Pin<&Self>,
        _dev: &Device,
        _bar: usize,
        pos: u64,
        buf: &[u8],
    ) -> Result<usize> {
        let at = usize::try_from(pos).map_err(|_| EINVAL)?;
        let end = at.checked_add(buf.len()).ok_or(EINVAL)?;
        let cmd = DMA_CMD.checked_sub(at).and_then(|i| buf.get(i));
        if cmd.is_some_and(|c| c & DMA_CMD_START != 0) {
            return Err(EPERM);
        }
        let mut regs = self.dma_regs.lock();
        regs.get_mut(at..end).ok_or(EINVAL)?.copy_from_slice(buf);
        Ok(buf.len())
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
