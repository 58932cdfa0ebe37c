// SPDX-License-Identifier: GPL-2.0
//! `VFIO_DEVICE_GET_INFO` and `VFIO_DEVICE_GET_REGION_INFO`, answered the way upstream
//! `vfio_pci_core.c` answers them, with argument decoding in `logic::uapi`.

use crate::logic::{errno::Errno, region, region_info, uapi};
use crate::primitives::bar_map::PAGE_SIZE;
use crate::state::DeviceState;
use kernel::error::{code::*, Error, Result};
use kernel::uaccess::UserSlice;

fn errno(e: Errno) -> Error {
    Error::from_errno(-e.0)
}

pub(crate) fn get_info(dev: &DeviceState, arg: usize) -> Result {
    let mut raw = [0u8; uapi::DeviceInfo::MINSZ];
    UserSlice::new(arg, raw.len())
        .reader()
        .read_slice(&mut raw)?;
    let mut info = uapi::DeviceInfo::from_user(&raw).map_err(errno)?;
    info.flags = uapi::DEVICE_FLAGS_PCI;
    if dev.inner.lock().reset_works || dev.variant_ops().reset.is_some() {
        info.flags |= uapi::DEVICE_FLAGS_RESET;
    }
    info.num_regions = region::NUM_REGIONS + dev.inner.lock().n_regions as u32;
    info.num_irqs = region::NUM_IRQS;
    let len = info.reply_len();
    UserSlice::new(arg, len)
        .writer()
        .write_slice(&info.to_bytes()[..len])
}

pub(crate) fn get_region_info(dev: &DeviceState, arg: usize) -> Result {
    let mut raw = [0u8; uapi::RegionInfo::MINSZ];
    UserSlice::new(arg, raw.len())
        .reader()
        .read_slice(&mut raw)?;
    let mut info = uapi::RegionInfo::from_user(&raw).map_err(errno)?;
    let pdev = &dev.pdev;
    let mut caps = region_info::Caps::default();
    match info.index {
        region::index::CONFIG => {
            info.offset = region::index_to_offset(info.index);
            info.size = pdev.cfg_size();
            info.flags = uapi::REGION_FLAG_READ | uapi::REGION_FLAG_WRITE;
        }
        // A memory BAR (upstream `nvgrace_gpu_ioctl_get_region_info`): the power-of-two size,
        // mappable where there is memory.
        i @ region::index::BAR0..=region::index::BAR5 if dev.memory_bar(i as usize).is_some() => {
            let len = dev.memory_bar(i as usize).map_or(0, |m| m.len);
            info.offset = region::index_to_offset(i);
            info.size = dev.memory_bar(i as usize).map_or(0, |m| m.size);
            info.flags = uapi::REGION_FLAG_READ | uapi::REGION_FLAG_WRITE | uapi::REGION_FLAG_MMAP;
            let area = [(0, len)];
            let (body, n) = region_info::sparse_mmap_body(&area);
            caps.add(
                region_info::CAP_SPARSE_MMAP,
                1,
                body.get(..n).unwrap_or(&[]),
            );
        }
        i @ region::index::BAR0..=region::index::BAR5
            if dev.emulated_bar_size(i as usize).is_some() =>
        {
            info.offset = region::index_to_offset(i);
            info.size = dev.emulated_bar_size(i as usize).unwrap_or(0);
            info.flags = uapi::REGION_FLAG_READ | uapi::REGION_FLAG_WRITE;
        }
        i @ region::index::BAR0..=region::index::BAR5 => {
            let bar = i as usize;
            info.offset = region::index_to_offset(i);
            info.size = pdev.resource_len(bar);
            info.flags = 0;
            if info.size != 0 {
                info.flags = uapi::REGION_FLAG_READ | uapi::REGION_FLAG_WRITE;
                let inner = dev.inner.lock();
                if inner.bars.mmap_ok.get(bar).copied().unwrap_or(false) {
                    info.flags |= uapi::REGION_FLAG_MMAP;
                    if let Some(w) = dev.bar_window(bar) {
                        let (areas, n) = w.areas_around(info.size, PAGE_SIZE);
                        let (body, len) =
                            region_info::sparse_mmap_body(areas.get(..n).unwrap_or(&[]));
                        caps.add(
                            region_info::CAP_SPARSE_MMAP,
                            1,
                            body.get(..len).unwrap_or(&[]),
                        );
                    }
                    if inner.bars.msix.is_some_and(|(b, _, _)| b == bar) {
                        caps.add(region_info::CAP_MSIX_MAPPABLE, 1, &[]);
                    }
                }
            }
        }
        region::index::ROM => {
            info.offset = region::index_to_offset(info.index);
            info.flags = 0;
            // The BAR's size, not the ROM image's; shadow ROMs look like option ROMs.
            info.size = pdev.resource_len(6);
            if info.size == 0 && pdev.rom_is_shadow() {
                info.size = 0x20000;
            }
            if info.size != 0 {
                // Is it really there? pci_map_rom() needs memory decode on; the state mutex
                // is the memory lock while we flip it.
                let _inner = dev.inner.lock();
                let cmd = pdev.enable_memory_decode();
                if pdev.map_rom().is_some() {
                    info.flags = uapi::REGION_FLAG_READ;
                } else {
                    info.size = 0;
                }
                let _ = pdev.write_config_word(4, cmd);
            }
        }
        region::index::VGA => {
            if !crate::features::vga::has_region(pdev) {
                return Err(EINVAL);
            }
            info.offset = region::index_to_offset(info.index);
            info.size = crate::logic::vga::REGION_SIZE;
            info.flags = uapi::REGION_FLAG_READ | uapi::REGION_FLAG_WRITE;
        }
        i => {
            let inner = dev.inner.lock();
            let r = (i as usize)
                .checked_sub(region::NUM_REGIONS as usize)
                .and_then(|n| inner.region(n))
                .ok_or(EINVAL)?;
            info.offset = region::index_to_offset(i);
            info.size = r.size;
            info.flags = r.flags;
            let mut ty = [0u8; 8];
            ty[..4].copy_from_slice(&r.type_.to_ne_bytes());
            ty[4..].copy_from_slice(&r.subtype.to_ne_bytes());
            caps.add(region_info::CAP_TYPE, 1, &ty);
            for c in r.caps.iter().take(r.n_caps as usize) {
                caps.add(c.id, c.version, c.body.get(..c.len as usize).unwrap_or(&[]));
            }
        }
    }
    if let Some(bytes) = caps.finish(&mut info) {
        UserSlice::new(arg + raw.len(), bytes.len())
            .writer()
            .write_slice(bytes)?;
    }
    UserSlice::new(arg, raw.len())
        .writer()
        .write_slice(&info.to_bytes())
}
