// SPDX-License-Identifier: GPL-2.0
//! The `ioctl` op: one `VFIO_DEVICE_*` command to the feature that answers it. Device
//! features (`VFIO_DEVICE_FEATURE`) come through their own op (`vfio_ops.rs`).

use crate::features::{device_info, hot_reset, interrupts, ioeventfd, reset};
use crate::logic::uapi;
use crate::state::DeviceState;
use core::ffi::c_int;
use kernel::error::{
    code::{EINVAL, ENOTTY},
    Error, Result,
};

/// Dispatches one ioctl, the variant's hook first; unknown commands get `-ENOTTY` like
/// upstream.
pub(crate) fn ioctl(dev: &DeviceState, cmd: u32, arg: usize) -> Result<i64> {
    if let Some(hook) = dev.variant_ops().ioctl {
        let mut ret = 0i64;
        // SAFETY: the variant data is live while the device is registered; the handle is
        // this device's; `ret` is a live local.
        let r = unsafe { hook(dev.variant_data(), dev.handle(), cmd, arg, &mut ret) };
        if let Some(answer) = variant_answer(r, ret) {
            return answer;
        }
    }
    match cmd {
        uapi::VFIO_DEVICE_GET_INFO => device_info::get_info(dev, arg).map(|_| 0),
        uapi::VFIO_DEVICE_GET_REGION_INFO => device_info::get_region_info(dev, arg).map(|_| 0),
        ioeventfd::CMD => ioeventfd::ioctl(dev, arg).map(|_| 0),
        uapi::VFIO_DEVICE_RESET => reset::ioctl(dev).map(|_| 0),
        uapi::VFIO_DEVICE_GET_IRQ_INFO => interrupts::get_irq_info(dev, arg),
        uapi::VFIO_DEVICE_SET_IRQS => interrupts::set_irqs(dev, arg),
        // A mediated device's group holds no other device, and a bus reset would hit the
        // host's functions: no hot reset (the mdev samples upstream do not offer it either).
        crate::logic::lifecycle::VFIO_DEVICE_GET_PCI_HOT_RESET_INFO
        | crate::logic::lifecycle::VFIO_DEVICE_PCI_HOT_RESET
            if dev.mediated =>
        {
            Err(ENOTTY)
        }
        crate::logic::lifecycle::VFIO_DEVICE_GET_PCI_HOT_RESET_INFO => {
            hot_reset::get_info(dev, arg).map(|_| 0)
        }
        crate::logic::lifecycle::VFIO_DEVICE_PCI_HOT_RESET => {
            hot_reset::hot_reset(dev, arg).map(|_| 0)
        }
        _ => Err(ENOTTY),
    }
}

/// What a variant's `ioctl` or `device_feature` hook decided: `None` to fall through to the
/// common handling.
pub(crate) fn variant_answer(r: c_int, ret: i64) -> Option<Result<i64>> {
    match r {
        crate::abi::FALL_THROUGH => None,
        crate::abi::HANDLED => Some(Ok(ret)),
        e if e < 0 => Some(Err(Error::from_errno(e))),
        _ => Some(Err(EINVAL)),
    }
}
