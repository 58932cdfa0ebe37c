// SPDX-License-Identifier: GPL-2.0
//! [`SetLock`]: the lock of a VFIO dev_set (the devices that share a reset), which the VFIO
//! core also holds around open and close.

use crate::bindings;

#[allow(improper_ctypes)]
extern "C" {
    fn vfio_pci_common_dev_set_lock(vdev: *mut bindings::vfio_device);
    fn vfio_pci_common_dev_set_unlock(vdev: *mut bindings::vfio_device);
}

/// The dev_set lock of a device, held for the life of the value.
pub(crate) struct SetLock(*mut bindings::vfio_device);

impl SetLock {
    /// Locks the set of `vdev`, a registered device or one being registered or unregistered
    /// (its `dev_set` is assigned until its final put).
    pub(crate) fn new(vdev: *mut bindings::vfio_device) -> Self {
        // SAFETY: a registered device's `dev_set` is set for its whole life.
        unsafe { vfio_pci_common_dev_set_lock(vdev) };
        Self(vdev)
    }
}

impl Drop for SetLock {
    fn drop(&mut self) {
        // SAFETY: locked in `new`.
        unsafe { vfio_pci_common_dev_set_unlock(self.0) };
    }
}
