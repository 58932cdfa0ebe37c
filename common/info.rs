// SPDX-License-Identifier: GPL-2.0
//! The device ioctls: `VFIO_DEVICE_GET_INFO` and `VFIO_DEVICE_GET_REGION_INFO`, answered the
//! way upstream `vfio_pci_core.c` answers them, with argument decoding in `logic::uapi`; the
//! interrupt ioctls (`GET_IRQ_INFO`, `SET_IRQS`) are dispatched to `crate::intrs`.

use crate::device::DeviceState;
use crate::logic::{errno::Errno, region, uapi};
use kernel::error::{code::*, Error, Result};
use kernel::uaccess::UserSlice;

fn errno(e: Errno) -> Error {
    Error::from_errno(-e.0)
}

/// Dispatches one ioctl; unknown commands get `-ENOTTY` like upstream.
pub(crate) fn ioctl(dev: &DeviceState, cmd: u32, arg: usize) -> Result<i64> {
    match cmd {
        uapi::VFIO_DEVICE_GET_INFO => get_info(dev, arg).map(|_| 0),
        uapi::VFIO_DEVICE_GET_REGION_INFO => get_region_info(dev, arg).map(|_| 0),
        uapi::VFIO_DEVICE_GET_IRQ_INFO => crate::intrs::get_irq_info(dev, arg),
        uapi::VFIO_DEVICE_SET_IRQS => crate::intrs::set_irqs(dev, arg),
        _ => Err(ENOTTY),
    }
}

fn get_info(dev: &DeviceState, arg: usize) -> Result {
    let mut raw = [0u8; uapi::DeviceInfo::MINSZ];
    UserSlice::new(arg, raw.len()).reader().read_slice(&mut raw)?;
    let mut info = uapi::DeviceInfo::from_user(&raw).map_err(errno)?;
    info.flags = uapi::DEVICE_FLAGS_PCI;
    if dev.inner.lock().reset_works {
        info.flags |= uapi::DEVICE_FLAGS_RESET;
    }
    info.num_regions = region::NUM_REGIONS;
    info.num_irqs = region::NUM_IRQS;
    let len = info.reply_len();
    UserSlice::new(arg, len).writer().write_slice(&info.to_bytes()[..len])
}

fn get_region_info(dev: &DeviceState, arg: usize) -> Result {
    let mut raw = [0u8; uapi::RegionInfo::MINSZ];
    UserSlice::new(arg, raw.len()).reader().read_slice(&mut raw)?;
    let mut info = uapi::RegionInfo::from_user(&raw).map_err(errno)?;
    let pdev = &dev.pdev;
    match info.index {
        region::index::CONFIG => {
            info.offset = region::index_to_offset(info.index);
            info.size = pdev.cfg_size();
            info.flags = uapi::REGION_FLAG_READ | uapi::REGION_FLAG_WRITE;
        }
        i @ region::index::BAR0..=region::index::BAR5 => {
            info.offset = region::index_to_offset(i);
            info.size = pdev.resource_len(i as usize);
            info.flags = if info.size == 0 {
                0
            } else {
                uapi::REGION_FLAG_READ | uapi::REGION_FLAG_WRITE
            };
        }
        region::index::ROM => {
            // The ROM is reported with the regions work (it needs pci_map_rom with memory
            // decode enabled); until then it reads as absent.
            info.offset = region::index_to_offset(info.index);
            info.size = 0;
            info.flags = 0;
        }
        // No VGA support: upstream answers -EINVAL when the device has no VGA ranges.
        _ => return Err(EINVAL),
    }
    UserSlice::new(arg, raw.len()).writer().write_slice(&info.to_bytes())
}
