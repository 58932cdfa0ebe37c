// SPDX-License-Identifier: GPL-2.0
//! What interrupt handling needs from the kernel beyond the `kernel` crate: [`IrqSpinLock`], a
//! spinlock taken with local interrupts off (for data shared with a hard-IRQ handler), and
//! [`IrqName`], the name an interrupt is requested with.

use crate::bindings;
use crate::primitives::pci_function::PciFunction;
use core::cell::UnsafeCell;
use core::ffi::{c_int, c_void};
use core::ptr::NonNull;
use kernel::error::{code::ENOMEM, Result};
use kernel::ffi::c_char;
use kernel::prelude::*;
use kernel::types::Opaque;

// The shims in irq_shims.c. Pointers to structures containing a spinlock are passed as
// `void *`: on a UP kernel `arch_spinlock_t` is an empty struct, which Rust calls FFI-unsafe.
extern "C" {
    fn vfio_pci_common_spin_lock_init(lock: *mut c_void);
    fn vfio_pci_common_spin_lock_irqsave(lock: *mut c_void) -> usize;
    fn vfio_pci_common_spin_unlock_irqrestore(lock: *mut c_void, flags: usize);
    fn vfio_pci_common_irq_name(
        pdev: *mut c_void,
        kind: *const c_char,
        vector: c_int,
    ) -> *mut c_char;
}

/// A `kasprintf`ed interrupt name, which must outlive the interrupt it names.
pub(crate) struct IrqName(NonNull<c_char>);

// SAFETY: plain kmalloc memory owned by us.
unsafe impl Send for IrqName {}

impl IrqName {
    /// `vfio-<kind>(<bdf>)`, or with `[vector]` after the kind when `vector >= 0`.
    pub(crate) fn new(
        pdev: &PciFunction,
        kind: &'static core::ffi::CStr,
        vector: i32,
    ) -> Result<Self> {
        // SAFETY: valid device; `kind` is a NUL-terminated static string; the result is a new
        // allocation or null.
        let p =
            unsafe { vfio_pci_common_irq_name(pdev.as_raw().cast(), kind.as_ptr().cast(), vector) };
        NonNull::new(p).map(Self).ok_or(ENOMEM)
    }
}

impl IrqName {
    /// The NUL-terminated name, valid while `self` lives.
    pub(crate) fn as_ptr(&self) -> *const c_char {
        self.0.as_ptr()
    }
}

impl Drop for IrqName {
    fn drop(&mut self) {
        // SAFETY: our allocation from kasprintf.
        unsafe { kernel::bindings::kfree(self.0.as_ptr().cast()) }
    }
}

/// A spinlock taken with local interrupts disabled (`spin_lock_irqsave`), for data shared with
/// a hard-IRQ handler. The 6.12 `kernel` crate's `SpinLock` does not disable interrupts.
#[pin_data]
pub(crate) struct IrqSpinLock<T> {
    #[pin]
    lock: Opaque<bindings::spinlock_t>,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reached through the lock.
unsafe impl<T: Send> Send for IrqSpinLock<T> {}
// SAFETY: as for `Send`: `&IrqSpinLock` gives access only under the lock.
unsafe impl<T: Send> Sync for IrqSpinLock<T> {}

impl<T> IrqSpinLock<T> {
    pub(crate) fn new(data: T) -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `p` is the lock's memory, not yet in use.
            lock <- Opaque::ffi_init(|p: *mut bindings::spinlock_t| unsafe { vfio_pci_common_spin_lock_init(p.cast()) }),
            data: UnsafeCell::new(data),
        })
    }

    pub(crate) fn lock(&self) -> IrqSpinGuard<'_, T> {
        // SAFETY: the lock was initialised by `new` and lives as long as `self`.
        let flags = unsafe { vfio_pci_common_spin_lock_irqsave(self.lock.get().cast()) };
        IrqSpinGuard { lock: self, flags }
    }
}

/// The lock held; dropping it unlocks and restores the interrupt state.
pub(crate) struct IrqSpinGuard<'a, T> {
    lock: &'a IrqSpinLock<T>,
    flags: usize,
}

impl<T> core::ops::Deref for IrqSpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: we hold the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> core::ops::DerefMut for IrqSpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: we hold the lock, exclusively.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for IrqSpinGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: we took the lock with these flags in `lock`, on this CPU.
        unsafe { vfio_pci_common_spin_unlock_irqrestore(self.lock.lock.get().cast(), self.flags) }
    }
}
