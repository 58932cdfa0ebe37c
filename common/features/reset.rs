// SPDX-License-Identifier: GPL-2.0
//! `VFIO_DEVICE_RESET` (upstream `vfio_pci_ioctl_reset`): a function reset with every user
//! mapping of the BARs zapped and memory access blocked (the state mutex, our memory lock, is
//! held across it, and the memory gate closed until after it), from D0, with the variant told
//! before and after. A variant's `reset` hook replaces the function reset; it runs after the
//! zap without the state mutex (its device context takes it per access), so user accesses
//! through read/write may interleave with it, unlike with the function reset; ioeventfd
//! writes go to the virqfd thread until it is done (the gate stays closed).

use crate::state::DeviceState;
use kernel::error::{code::EINVAL, to_result, Result};

/// The ioctl.
pub(crate) fn ioctl(dev: &DeviceState) -> Result {
    let variant_reset = dev.variant_ops().reset;
    {
        let mut inner = dev.inner.lock();
        // Memory BAR registers go back to 0 whether or not the reset can be done, as
        // upstream `nvgrace-gpu` clears them before asking the core.
        if dev.memory_bars.iter().any(Option::is_some) {
            for m in dev.memory_bars.iter().flatten() {
                inner.config.clear_bar_pair(m.bar as usize);
            }
            inner.config.sync_fast_reads(&dev.cfg_fast);
        }
        if !inner.reset_works && variant_reset.is_none() {
            return Err(EINVAL);
        }
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
        match variant_reset {
            // The variant's reset uses the device context, which takes the state mutex:
            // called after it is dropped below.
            Some(_) => Ok(()),
            None => dev.own_reset(|| dev.pdev.try_reset_function()),
        }
    };
    let ret = match variant_reset {
        // SAFETY: the variant data is live while the device is registered; the handle is
        // this device's.
        Some(hook) => to_result(unsafe { hook(dev.variant_data(), dev.handle()) }),
        None => ret,
    };
    // The zap closed the memory gate; after the variant's reset too, which runs without the
    // state mutex.
    crate::features::bar::unblock_memory(dev, &dev.inner.lock());
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
