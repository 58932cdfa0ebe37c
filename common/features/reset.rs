// SPDX-License-Identifier: GPL-2.0
//! `VFIO_DEVICE_RESET` (upstream `vfio_pci_ioctl_reset`): a function reset with every user
//! mapping of the BARs zapped and memory access blocked (the state mutex, our memory lock, is
//! held across it), from D0, with the variant told before and after.

use crate::state::DeviceState;
use kernel::error::{code::EINVAL, Result};

/// The ioctl.
pub(crate) fn ioctl(dev: &DeviceState) -> Result {
    if !dev.inner.lock().reset_works {
        return Err(EINVAL);
    }
    let notify = dev.variant_ops().reset_notify;
    if let Some(hook) = notify {
        // SAFETY: the variant data is live while the device is registered.
        unsafe { hook(dev.variant_data(), dev.handle(), false, 0) };
    }
    let ret = {
        let mut guard = dev.inner.lock();
        let inner = &mut *guard;
        crate::features::bar::zap(dev);
        // A PM reset fails outside D0, and a device without NoSoftRst would come back without
        // the state we keep for it.
        let _ = crate::features::power::set_power_state(
            &dev.pdev,
            &mut inner.pm,
            0,
            dev.sriov.active(),
        );
        dev.pdev.try_reset_function()
    };
    if ret.is_ok() {
        // The uAPI: VFIO_DEVICE_RESET returns a migrating device to RUNNING.
        crate::features::migration::reset(dev);
    }
    if let Some(hook) = notify {
        let code = match &ret {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        };
        // SAFETY: as above.
        unsafe { hook(dev.variant_data(), dev.handle(), true, code) };
    }
    ret
}
