// SPDX-License-Identifier: GPL-2.0
//! `vfio-pci-nvlink`: GPUs whose memory the CPU reaches coherently over NVLink (NVIDIA Grace
//! Hopper, NVLink-C2C), with that memory shown to user space as emulated 64-bit BARs, as
//! upstream `nvgrace-gpu` shows it (`Documentation/variants/nvlink.md`).
//!
//! Firmware describes the memory (ACPI `_DSD` properties `nvidia,gpu-mem-base-pa` and
//! `nvidia,gpu-mem-size`). It becomes the "usable" memory, cached, as BARs 4/5. A GPU whose
//! DVSEC does not report MIG with cached reserved memory needs a non-cached region for MIG:
//! its last part (1 GiB, usable memory rounded down to 512 MiB blocks) is carved out as the
//! "reserved" memory, write-combined, as BARs 2/3. Without the description the GPU is a plain
//! VFIO PCI device, as under upstream. The common module serves the memory BARs
//! (`Variant::memory_bars`); this file only reads the description and lays the memory out.
//!
//! Written against the public SDK only, without `unsafe`.

#![deny(unsafe_code)]

#[allow(unsafe_code)]
#[path = "../../common/sdk/mod.rs"]
mod sdk;

use sdk::prelude::*;

const NVIDIA: u16 = 0x10de;
/// The reserved (non-cached) memory: BARs 2/3; the usable (cached) memory: BARs 4/5.
const RESMEM_BAR: u32 = 2;
const USEMEM_BAR: u32 = 4;
/// Reserved memory carved out for MIG on GPUs with the hardware bug.
const RESMEM_SIZE: u64 = 1 << 30;
/// The usable memory is a whole number of these (an ABI between GPU firmware and VFIO).
const MEMBLK_SIZE: u64 = 512 << 20;
/// NVIDIA's DVSEC with the capability bitmap, its offset, and "MIG supported with cached
/// reserved memory" (the hardware fix).
const GPU_CAP_DVSEC: u16 = 3;
const DVSEC_BITMAP_OFFSET: u16 = 0xa;
const MIG_SUPPORTED_WITH_CACHED_RESMEM: u32 = 1 << 0;
/// `VFIO_DEVICE_IOEVENTFD`, which upstream refuses on a GPU with memory BARs.
const VFIO_DEVICE_IOEVENTFD: u32 = 0x3b74;

/// Per-device state: the memory layout (usable, reserved), or none for a GPU without the
/// description.
#[pin_data]
struct NvLink {
    memory: (Option<MemoryBar>, Option<MemoryBar>),
}

/// The firmware's description `(base, size)`, if it is there and the size is not 0 (the
/// C2C link is down); otherwise upstream falls back to the plain driver, and so do we.
fn memory_description(dev: &PciFunction) -> Option<(u64, u64)> {
    let base = dev.property_u64(c"nvidia,gpu-mem-base-pa").ok()?;
    let size = dev.property_u64(c"nvidia,gpu-mem-size").ok()?;
    (size != 0).then_some((base, size))
}

/// Whether the GPU has the MIG hardware bug: no DVSEC saying it is fixed.
fn has_mig_hw_bug(dev: &PciFunction) -> bool {
    let Some(pos) = dev.find_dvsec(NVIDIA, GPU_CAP_DVSEC) else {
        return true;
    };
    // The bitmap is the upper half of the dword that starts with the DVSEC ID.
    let dword = dev.read_config_dword(pos + DVSEC_BITMAP_OFFSET - 2);
    dword.map_or(true, |d| (d >> 16) & MIG_SUPPORTED_WITH_CACHED_RESMEM == 0)
}

/// Splits `size` bytes at `base` as upstream does: all usable memory, or with the MIG bug
/// the usable part rounded down to `MEMBLK_SIZE` blocks after 1 GiB is set aside, the rest
/// reserved. `EOVERFLOW` or `EINVAL` (no usable block left) fail the probe, as upstream.
///
/// The usable BAR is sized before the rounding down, as upstream sizes it: with the carve-out
/// the BAR may be twice the memory (the sparse-mmap area shows the memory).
fn layout(base: u64, size: u64, mig_hw_bug: bool) -> Result<(MemoryBar, Option<MemoryBar>)> {
    let usable = size
        .checked_sub(if mig_hw_bug { RESMEM_SIZE } else { 0 })
        .ok_or_else(sdk::eoverflow)?;
    let bar_size = usable
        .checked_next_power_of_two()
        .ok_or_else(sdk::eoverflow)?;
    if !mig_hw_bug {
        return Ok((MemoryBar::cached(USEMEM_BAR, base, usable), None));
    }
    let usable = usable - usable % MEMBLK_SIZE;
    if usable == 0 {
        return Err(EINVAL);
    }
    let reserved_base = base.checked_add(usable).ok_or_else(sdk::eoverflow)?;
    let reserved = MemoryBar::write_combined(RESMEM_BAR, reserved_base, size - usable);
    let usable = MemoryBar::cached(USEMEM_BAR, base, usable).with_bar_size(bar_size);
    Ok((usable, Some(reserved)))
}

#[vtable]
impl Variant for NvLink {
    type IdInfo = ();

    fn probe(dev: &PciFunction, _id: &'static ()) -> impl PinInit<Self, Error> {
        let memory = match memory_description(dev) {
            Some((base, size)) => layout(base, size, has_mig_hw_bug(dev)).map(Some),
            None => Ok(None),
        };
        let memory = memory.inspect_err(|e| {
            dev.warn(format_args!(
                "cannot lay out the GPU memory ({})\n",
                e.to_errno()
            ))
        });
        let memory = memory.map(|m| m.map_or((None, None), |(u, r)| (Some(u), r)));
        try_pin_init!(NvLink { memory: memory? })
    }

    fn memory_bars(self: Pin<&Self>) -> [Option<MemoryBar>; 3] {
        [self.memory.0, self.memory.1, None]
    }

    fn ioctl(self: Pin<&Self>, _dev: &Device, cmd: u32, _arg: usize) -> Result<Handled> {
        // Upstream refuses every ioeventfd of a GPU with memory BARs, not only those into them.
        if cmd == VFIO_DEVICE_IOEVENTFD && self.memory.0.is_some() {
            return Err(ENOTTY);
        }
        Ok(Handled::FallThrough)
    }
}

sdk::module_vfio_pci_variant! {
    type: NvLink,
    name: "vfio_pci_nvlink",
    driver: "vfio-pci-nvlink",
    author: "vfio-pci-rs developers",
    description: "VFIO PCI variant for NVLink-attached GPUs: coherent GPU memory as emulated BARs",
    license: "GPL",
    ids: [
        // GH200 120GB
        (PciId::vendor_device(0x10de, 0x2342), ()),
        // GH200 480GB
        (PciId::vendor_device(0x10de, 0x2345), ()),
    ],
}
