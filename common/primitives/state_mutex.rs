// SPDX-License-Identifier: GPL-2.0
//! [`StateMutex`]: the kernel `struct mutex` that guards a device's [`crate::state::Inner`]
//! (upstream's memory lock), with the one operation the 6.12 `kernel` crate's `Mutex` lacks:
//! taking it as one of several members of a dev_set under the dev_set's lock
//! ([`StateMutex::lock_in_set`]).
//!
//! Hot reset holds every member's state mutex at once (so no member's BARs are touched while
//! the bus is in reset). All of them are of one lockdep class; taking a second one would be
//! reported as recursive locking unless lockdep is told that the dev_set lock, held around
//! all of them, serialises these nested acquisitions: `mutex_lock_nest_lock`, exactly its
//! purpose. Every other path takes one state mutex at a time with [`StateMutex::lock`].

use core::cell::UnsafeCell;
use core::ffi::c_void;
use kernel::prelude::*;
use kernel::types::Opaque;

// The shims in state_mutex_shims.c (`struct mutex` and `struct vfio_device` are passed as `void *`: on
// a UP kernel the spinlock in a mutex, and `dev_archdata` in a device, are empty structs, which
// Rust calls FFI-unsafe).
extern "C" {
    fn vfio_pci_common_state_mutex_init(m: *mut c_void);
    fn vfio_pci_common_mutex_lock(m: *mut c_void);
    fn vfio_pci_common_mutex_lock_in_set(m: *mut c_void, vdev: *mut c_void);
    fn vfio_pci_common_mutex_unlock(m: *mut c_void);
}

/// See the module documentation.
///
/// # Invariants
///
/// `raw` is an initialised `struct mutex` for the whole life of the value; `data` is only
/// reached through a [`StateGuard`], which exists only while `raw` is held by its task.
#[pin_data]
pub(crate) struct StateMutex<T> {
    #[pin]
    raw: Opaque<kernel::bindings::mutex>,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reached with the mutex held (type invariant).
unsafe impl<T: Send> Send for StateMutex<T> {}
// SAFETY: as for `Send`: a shared `StateMutex` gives access to the data only under the mutex.
unsafe impl<T: Send> Sync for StateMutex<T> {}

impl<T> StateMutex<T> {
    pub(crate) fn new(data: T) -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `p` is the mutex's memory, pinned and not yet in use; the helper's
            // `mutex_init` gives every state mutex the one lockdep class of its call site.
            raw <- Opaque::ffi_init(|p: *mut kernel::bindings::mutex| unsafe {
                vfio_pci_common_state_mutex_init(p.cast())
            }),
            data: UnsafeCell::new(data),
        })
    }

    /// Takes the mutex (sleeping).
    pub(crate) fn lock(&self) -> StateGuard<'_, T> {
        // SAFETY: `raw` is initialised (type invariant); the guard unlocks it.
        unsafe { vfio_pci_common_mutex_lock(self.raw.get().cast()) };
        StateGuard { m: self }
    }

    /// Takes the mutex of one member of a dev_set while the caller holds that dev_set's lock
    /// (the lockdep nest lock: see the module documentation).
    ///
    /// # Safety
    ///
    /// `vdev` is a live VFIO device whose dev_set lock the calling task holds, for as long
    /// as the returned guard lives.
    pub(crate) unsafe fn lock_in_set(
        &self,
        vdev: *mut crate::bindings::vfio_device,
    ) -> StateGuard<'_, T> {
        // SAFETY: `raw` is initialised; `vdev`'s dev_set lock is held (caller).
        unsafe { vfio_pci_common_mutex_lock_in_set(self.raw.get().cast(), vdev.cast()) };
        StateGuard { m: self }
    }
}

/// The state mutex held; dropping it unlocks.
pub(crate) struct StateGuard<'a, T> {
    m: &'a StateMutex<T>,
}

impl<T> core::ops::Deref for StateGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: we hold the mutex (type invariant of `StateMutex`).
        unsafe { &*self.m.data.get() }
    }
}

impl<T> core::ops::DerefMut for StateGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: we hold the mutex, so no other reference to the data exists.
        unsafe { &mut *self.m.data.get() }
    }
}

impl<T> Drop for StateGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this task took the mutex when it made the guard.
        unsafe { vfio_pci_common_mutex_unlock(self.m.raw.get().cast()) };
    }
}
