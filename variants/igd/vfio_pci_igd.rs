// SPDX-License-Identifier: GPL-2.0
//! `vfio-pci-igd`: Intel integrated graphics (IGD) for VFIO, as upstream `vfio_pci_igd.c`
//! (Linux 6.12) offers it inside `vfio-pci`.
//!
//! A guest driver for IGD needs, besides the PCI function itself:
//! - the **OpRegion**: firmware tables (ACPI IGD OpRegion, with the Video BIOS Table, VBT) in
//!   system memory, whose physical address the firmware put in the ASLS register (config
//!   0xfc). We expose it read-only as a device-specific region
//!   (`VFIO_REGION_TYPE_PCI_VENDOR_TYPE | 0x8086`, subtype 1). From OpRegion 2.0 on, a VBT
//!   larger than mailbox 4 lives outside the 8 KiB OpRegion (RVDA/RVDS: absolute address in
//!   2.0, relative to the OpRegion in 2.1+); like upstream we show it right after the 8 KiB,
//!   and patch the view so it reads as 2.1 with RVDA = 8 KiB.
//! - read-only views of the **host bridge** (00:00.0, subtype 2) and **LPC bridge** (00:1f.0,
//!   subtype 3) config spaces, whose IDs and registers the driver checks.
//!
//! ASLS is virtualized: user space reads the value upstream puts there and its writes stay
//! in the virtual config space, never reaching the device.
//!
//! Everything is set up at every open, as upstream does, so a device whose firmware changes
//! ASLS between opens is seen as it is now. Upstream's outcomes are kept: no OpRegion (ASLS 0 or
//! all ones) means no IGD regions at all; no host or LPC bridge means that region and the ones
//! after it are missing; a bad OpRegion, or a bridge at those addresses that is not Intel's,
//! fails the open. Each time a feature is off, one line in the kernel log says which.

#![deny(unsafe_code)]

#[allow(unsafe_code)]
#[path = "../../common/sdk/mod.rs"]
mod sdk;

use kernel::{new_mutex, sync::Mutex};
use sdk::prelude::*;
use sdk::{devfn, MemMap, PciFunction};

/// `PCI_VENDOR_ID_INTEL`.
const INTEL: u16 = 0x8086;
/// Config offset of ASLS, the OpRegion's physical address.
const ASLS: u16 = 0xfc;
/// The OpRegion's signature, at offset 0.
const SIGNATURE: &[u8; 16] = b"IntelGraphicsMem";
/// The OpRegion proper: header and mailboxes 1-5.
const OPREGION_SIZE: u32 = 8 * 1024;
/// Offset of the OpRegion size field (in KiB, u32).
const OFF_SIZE: usize = 16;
/// Offset of the OpRegion version (u16, e.g. 0x0201 for 2.1).
const OFF_VERSION: usize = 0x16;
/// Offset of RVDA (u64): where the extended VBT is.
const OFF_RVDA: usize = 0x3ba;
/// Offset of RVDS (u32): the extended VBT's size.
const OFF_RVDS: usize = 0x3c2;

/// `VFIO_REGION_SUBTYPE_INTEL_IGD_OPREGION`.
const SUBTYPE_OPREGION: u32 = 1;
/// `VFIO_REGION_SUBTYPE_INTEL_IGD_HOST_CFG`.
const SUBTYPE_HOST_CFG: u32 = 2;
/// `VFIO_REGION_SUBTYPE_INTEL_IGD_LPC_CFG`.
const SUBTYPE_LPC_CFG: u32 = 3;
/// `PCI_CLASS_BRIDGE_HOST << 8`.
const CLASS_HOST_BRIDGE: u32 = 0x06_00_00;
/// `PCI_CLASS_BRIDGE_ISA << 8`.
const CLASS_ISA_BRIDGE: u32 = 0x06_01_00;

/// The OpRegion of one open, mapped, and the extended VBT if there is one.
struct OpRegion {
    /// The 8 KiB OpRegion.
    map: MemMap,
    /// The extended VBT (RVDS bytes), shown at 8 KiB.
    vbt: Option<MemMap>,
    /// The region's size: the header's size (KiB) plus RVDS, in 32 bits as upstream.
    size: u32,
}

impl OpRegion {
    /// Maps and checks the OpRegion at `asls`. Returns it with the value upstream leaves in the
    /// virtual ASLS: the OpRegion's address, or with an extended VBT, the VBT's address.
    /// Errors are upstream's: `ENOMEM` when a mapping fails, `EINVAL` for a bad header.
    fn map(asls: u32) -> Result<(Self, u32), Missing> {
        let map = MemMap::firmware(asls.into(), OPREGION_SIZE as usize)
            .map_err(|e| Missing::Fail(e, "cannot map the OpRegion"))?;
        // Reads inside the 8 KiB mapping; they cannot fail, but say so if they did.
        let unreadable = |e| Missing::Fail(e, "cannot read the OpRegion header");
        let sig: [u8; 16] = map.read_array(0).map_err(unreadable)?;
        if &sig != SIGNATURE {
            return Err(Missing::Fail(
                EINVAL,
                "no IntelGraphicsMem signature at ASLS",
            ));
        }
        let kib = u32::from_le_bytes(map.read_array(OFF_SIZE).map_err(unreadable)?);
        if kib == 0 {
            return Err(Missing::Fail(EINVAL, "the OpRegion's size is 0"));
        }
        let mut size = kib.wrapping_mul(1024);
        let version = u16::from_le_bytes(map.read_array(OFF_VERSION).map_err(unreadable)?);
        let mut addr = asls;
        let mut vbt = None;
        if version >= 0x0200 {
            let rvda = u64::from_le_bytes(map.read_array(OFF_RVDA).map_err(unreadable)?);
            let rvds = u32::from_le_bytes(map.read_array(OFF_RVDS).map_err(unreadable)?);
            if rvda != 0 && rvds != 0 {
                size = size.wrapping_add(rvds);
                // 2.0: absolute address; 2.1+: relative to the OpRegion. Upstream keeps
                // addresses in 32 bits.
                addr = if version == 0x0200 {
                    rvda as u32
                } else {
                    addr.wrapping_add(rvda as u32)
                };
                let m = MemMap::firmware(addr.into(), rvds as usize)
                    .map_err(|e| Missing::Fail(e, "cannot map the extended VBT"))?;
                vbt = Some(m);
            }
        }
        Ok((Self { map, vbt, size }, addr))
    }

    /// Fills `buf` from `pos` of the region: the OpRegion with version and RVDA patched, then
    /// the extended VBT. Bytes that exist neither in the OpRegion nor in the VBT are `EFAULT`.
    fn read(&self, pos: usize, buf: &mut [u8]) -> Result {
        let version = u16::from_le_bytes(self.map.read_array(OFF_VERSION)?);
        // A 2.0 OpRegion whose VBT we moved right behind it reads as 2.1, so RVDA is relative.
        let version = if version == 0x0200 && self.vbt.is_some() {
            0x0201u16
        } else {
            version
        };
        let rvda = if self.vbt.is_some() {
            u64::from(OPREGION_SIZE)
        } else {
            0
        };
        let mut at = 0;
        while at < buf.len() {
            let p = pos + at;
            // The next run of bytes that come from one place.
            let (src, end): (&dyn Fn(&mut [u8]) -> Result, usize) =
                if (OFF_VERSION..OFF_VERSION + 2).contains(&p) {
                    (
                        &|b: &mut [u8]| patched(&version.to_le_bytes(), p - OFF_VERSION, b),
                        OFF_VERSION + 2,
                    )
                } else if (OFF_RVDA..OFF_RVDA + 8).contains(&p) {
                    (
                        &|b: &mut [u8]| patched(&rvda.to_le_bytes(), p - OFF_RVDA, b),
                        OFF_RVDA + 8,
                    )
                } else if p < OPREGION_SIZE as usize {
                    let end = if p < OFF_VERSION {
                        OFF_VERSION
                    } else if p < OFF_RVDA {
                        OFF_RVDA
                    } else {
                        OPREGION_SIZE as usize
                    };
                    (&|b: &mut [u8]| self.map.read(p, b), end)
                } else {
                    let vbt = self.vbt.as_ref().ok_or(EFAULT)?;
                    (
                        &|b: &mut [u8]| vbt.read(p - OPREGION_SIZE as usize, b),
                        usize::MAX,
                    )
                };
            let n = (end - p).min(buf.len() - at);
            src(buf.get_mut(at..at + n).ok_or(EINVAL)?)?;
            at += n;
        }
        Ok(())
    }
}

/// Copies `buf.len()` bytes of `value` from `from` (a patched field, little-endian).
fn patched(value: &[u8], from: usize, buf: &mut [u8]) -> Result {
    buf.copy_from_slice(value.get(from..from + buf.len()).ok_or(EINVAL)?);
    Ok(())
}

/// What one open exposes, in region order.
#[derive(Default)]
struct Exposed {
    opregion: Option<OpRegion>,
    host: Option<PciFunction>,
    lpc: Option<PciFunction>,
}

/// One device-specific region of an open.
enum Region<'a> {
    OpRegion(&'a OpRegion),
    Bridge(&'a PciFunction),
}

impl Exposed {
    /// The `index`-th region (0-based, in the order declared).
    fn region(&self, index: usize) -> Option<Region<'_>> {
        let op = self.opregion.as_ref().map(Region::OpRegion);
        let host = self.host.as_ref().map(Region::Bridge);
        let lpc = self.lpc.as_ref().map(Region::Bridge);
        [op, host, lpc].into_iter().flatten().nth(index)
    }
}

/// Why an open exposes less than everything (upstream's `-ENODEV`), or fails (other errors).
enum Missing {
    /// Feature off; the open goes on without it and the ones after it.
    Off(&'static str),
    /// The open fails with this error.
    Fail(Error, &'static str),
}

/// The Intel bridge at `00:<slot>.0` of domain 0 with class `class`, as upstream requires.
fn bridge(
    slot: u8,
    class: u32,
    absent: &'static str,
    foreign: &'static str,
) -> Result<PciFunction, Missing> {
    let b = PciFunction::lookup(0, 0, devfn(slot, 0)).ok_or(Missing::Off(absent))?;
    if b.vendor_id() != INTEL || b.class() != class {
        return Err(Missing::Fail(EINVAL, foreign));
    }
    Ok(b)
}

#[pin_data]
struct Igd {
    /// The IGD function itself.
    dev: PciFunction,
    /// What the current open exposes (empty while closed).
    #[pin]
    exposed: Mutex<Exposed>,
}

impl Igd {
    /// Upstream's `vfio_pci_igd_init`: the OpRegion, then the host bridge, then the LPC bridge.
    /// The virtual ASLS is the common module's overlay: it starts as the device's value, and
    /// becomes the address upstream shows once the OpRegion is mapped.
    fn setup(&self, dev: &Device, ex: &mut Exposed) -> Result<(), Missing> {
        let asls = dev
            .raw_config_read(ASLS, 4)
            .map_err(|e| Missing::Fail(e, "cannot read ASLS"))?;
        if asls == 0 || asls == !0 {
            return Err(Missing::Off("no OpRegion (ASLS is 0 or all ones): OpRegion, host bridge and LPC bridge regions off"));
        }
        let (op, virt) = OpRegion::map(asls)?;
        dev.set_overlay(ASLS, virt)
            .map_err(|e| Missing::Fail(e, "cannot set the virtual ASLS"))?;
        ex.opregion = Some(op);
        ex.host = Some(bridge(
            0x00,
            CLASS_HOST_BRIDGE,
            "no host bridge at 0000:00:00.0: host bridge and LPC bridge config regions off",
            "0000:00:00.0 is not an Intel host bridge",
        )?);
        ex.lpc = Some(bridge(
            0x1f,
            CLASS_ISA_BRIDGE,
            "no LPC bridge at 0000:00:1f.0: LPC bridge config region off",
            "0000:00:1f.0 is not an Intel ISA/LPC bridge",
        )?);
        Ok(())
    }
}

#[vtable]
impl Variant for Igd {
    type IdInfo = ();

    /// ASLS: virtual at every open, starting from the device's value, all bits writable by
    /// user space (upstream's `vconfig`); `setup` moves it to the OpRegion's address.
    const CONFIG_OVERLAYS: &'static [ConfigOverlay] =
        &[ConfigOverlay::from_device(ASLS, 4, 0xffff_ffff)];

    fn probe(dev: &PciFunction, _id: &'static ()) -> impl PinInit<Self, Error> {
        try_pin_init!(Igd {
            dev: dev.clone(),
            exposed <- new_mutex!(Exposed::default()),
        })
    }

    fn open(self: Pin<&Self>, dev: &Device) -> Result {
        let mut ex = Exposed::default();
        match self.setup(dev, &mut ex) {
            Ok(()) => {}
            Err(Missing::Off(what)) => self.dev.info(format_args!("vfio-pci-igd: {what}\n")),
            Err(Missing::Fail(e, why)) => {
                self.dev
                    .warn(format_args!("Failed to setup Intel IGD regions: {why}\n"));
                return Err(e);
            }
        }
        *self.exposed.lock() = ex;
        Ok(())
    }

    fn close(self: Pin<&Self>, _dev: &Device) {
        *self.exposed.lock() = Exposed::default();
    }

    fn regions(self: Pin<&Self>, regions: &mut Regions<'_>) -> Result {
        let ex = self.exposed.lock();
        let intel = sdk::REGION_TYPE_PCI_VENDOR | u32::from(INTEL);
        if let Some(op) = &ex.opregion {
            regions.add(intel, SUBTYPE_OPREGION, op.size.into(), sdk::REGION_READ)?;
        }
        if let Some(h) = &ex.host {
            regions.add(intel, SUBTYPE_HOST_CFG, h.cfg_size(), sdk::REGION_READ)?;
        }
        if let Some(l) = &ex.lpc {
            regions.add(intel, SUBTYPE_LPC_CFG, l.cfg_size(), sdk::REGION_READ)?;
        }
        Ok(())
    }

    fn region_read(
        self: Pin<&Self>,
        _dev: &Device,
        index: usize,
        pos: u64,
        buf: &mut [u8],
    ) -> Result<usize> {
        let ex = self.exposed.lock();
        let pos = usize::try_from(pos).map_err(|_| EINVAL)?;
        match ex.region(index).ok_or(EINVAL)? {
            Region::OpRegion(op) => op.read(pos, buf)?,
            Region::Bridge(b) => read_config(b, pos, buf)?,
        }
        Ok(buf.len())
    }
}

/// Reads `buf.len()` config bytes of `b` from `pos` in naturally aligned pieces, in upstream's
/// order: a leading byte, a leading word, dwords, then words and bytes.
fn read_config(b: &PciFunction, mut pos: usize, buf: &mut [u8]) -> Result {
    let mut left = buf.len();
    let mut at = 0;
    let mut piece = |pos: usize, at: usize, n: usize| -> Result {
        let off = u16::try_from(pos).map_err(|_| EINVAL)?;
        let v = b.user_read_config(off, n)?;
        buf.get_mut(at..at + n)
            .ok_or(EINVAL)?
            .copy_from_slice(&v.to_le_bytes()[..n]);
        Ok(())
    };
    if pos & 1 != 0 && left > 0 {
        piece(pos, at, 1)?;
        (pos, at, left) = (pos + 1, at + 1, left - 1);
    }
    if pos & 3 != 0 && left > 2 {
        piece(pos, at, 2)?;
        (pos, at, left) = (pos + 2, at + 2, left - 2);
    }
    while left > 3 {
        piece(pos, at, 4)?;
        (pos, at, left) = (pos + 4, at + 4, left - 4);
    }
    while left >= 2 {
        piece(pos, at, 2)?;
        (pos, at, left) = (pos + 2, at + 2, left - 2);
    }
    while left > 0 {
        piece(pos, at, 1)?;
        (pos, at, left) = (pos + 1, at + 1, left - 1);
    }
    Ok(())
}

sdk::module_vfio_pci_variant! {
    type: Igd,
    name: "vfio_pci_igd",
    driver: "vfio-pci-igd",
    author: "vfio-pci-rs developers",
    description: "VFIO PCI variant for Intel integrated graphics (OpRegion, host and LPC bridge regions)",
    license: "GPL",
    // Upstream 6.12 sets up IGD support for Intel VGA-class functions (`vfio_pci_is_vga`:
    // class 0x0300, any programming interface).
    ids: [(PciId::vendor(INTEL).class(0x03_00_00, 0xff_ff_00), ())],
}
