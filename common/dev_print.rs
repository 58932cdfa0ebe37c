// SPDX-License-Identifier: GPL-2.0
//! [`dev_print`]: one line about a device, formatted by Rust and printed through
//! `_dev_printk` (`%pA` hands the `core::fmt::Arguments` to the kernel's Rust printing hook),
//! prefixed like `dev_info` and friends. The 6.12 `kernel` crate has no `dev_*!` macros.
//!
//! Compiled into `vfio_pci_common` and, through the SDK, into every variant, so this is the
//! one place that knows how.

/// A `KERN_*` level.
#[allow(dead_code)]
#[derive(Clone, Copy)]
pub(crate) enum Level {
    Warning,
    Notice,
    Info,
}

impl Level {
    /// `KERN_WARNING`, `KERN_NOTICE`, `KERN_INFO`: `KERN_SOH` and the level digit.
    fn prefix(self) -> &'static core::ffi::CStr {
        match self {
            Level::Warning => c"\x014",
            Level::Notice => c"\x015",
            Level::Info => c"\x016",
        }
    }
}

/// Prints `args` (which should end in a newline) about `dev` at `level`.
///
/// # Safety
///
/// `dev` points to a live `struct device`.
pub(crate) unsafe fn dev_print(
    dev: *const kernel::bindings::device,
    level: Level,
    args: core::fmt::Arguments<'_>,
) {
    // SAFETY: `dev` is live (the caller's contract); the level and format are NUL-terminated
    // statics; `%pA` reads the `Arguments` through the pointer to a local that outlives the call.
    unsafe {
        kernel::bindings::_dev_printk(
            level.prefix().as_ptr().cast(),
            dev,
            c"%pA".as_ptr().cast(),
            core::ptr::from_ref(&args).cast::<core::ffi::c_void>(),
        )
    };
}
