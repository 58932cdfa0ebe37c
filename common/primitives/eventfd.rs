// SPDX-License-Identifier: GPL-2.0
//! [`EventFd`]: an owned reference to an eventfd context, the way VFIO hands interrupts and
//! notifications to user space.

use crate::bindings;
use core::ptr::NonNull;
use kernel::error::{code::EINVAL, from_err_ptr, Result};

/// A reference to an eventfd context, owned (`eventfd_ctx_fdget` ... `eventfd_ctx_put`).
pub(crate) struct EventFd(NonNull<bindings::eventfd_ctx>);

// SAFETY: an eventfd context is refcounted and signalling it is safe from any context and
// thread (`eventfd_signal` takes its own wait-queue lock with interrupts off).
unsafe impl Send for EventFd {}
// SAFETY: as for `Send`; `&EventFd` only signals.
unsafe impl Sync for EventFd {}

impl EventFd {
    /// The eventfd behind user file descriptor `fd` (`EBADF`, `EINVAL` as upstream gets them).
    pub(crate) fn from_fd(fd: i32) -> Result<Self> {
        // SAFETY: `eventfd_ctx_fdget` checks the descriptor itself and returns a new reference
        // or an `ERR_PTR`.
        let p = from_err_ptr(unsafe { bindings::eventfd_ctx_fdget(fd) })?;
        NonNull::new(p).map(Self).ok_or(EINVAL)
    }

    /// `eventfd_signal`.
    pub(crate) fn signal(&self) {
        // SAFETY: we hold a reference, so the context is alive.
        unsafe { signal_raw(self.0.as_ptr()) }
    }

    /// The context, for C APIs that take it (`request_irq`'s `dev_id`, `free_irq`).
    pub(crate) fn as_ptr(&self) -> *mut bindings::eventfd_ctx {
        self.0.as_ptr()
    }

    pub(crate) fn into_raw(self) -> *mut bindings::eventfd_ctx {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }

    /// # Safety
    ///
    /// `p` is null or a reference made by [`EventFd::into_raw`] that nobody else will release.
    pub(crate) unsafe fn from_raw(p: *mut bindings::eventfd_ctx) -> Option<Self> {
        NonNull::new(p).map(Self)
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: we own this reference.
        unsafe { bindings::eventfd_ctx_put(self.0.as_ptr()) }
    }
}

/// `eventfd_signal` (a static inline around `eventfd_signal_mask(ctx, 0)`).
///
/// # Safety
///
/// `ctx` must be a live eventfd context.
pub(crate) unsafe fn signal_raw(ctx: *mut bindings::eventfd_ctx) {
    // SAFETY: the caller guarantees `ctx`.
    unsafe { bindings::eventfd_signal_mask(ctx, 0) }
}
