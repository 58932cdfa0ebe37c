// SPDX-License-Identifier: GPL-2.0
//! Error numbers, as the positive values of `errno.h`, so logic results convert to the
//! kernel's `Error` in one place and compare in host tests without a kernel.

/// A positive errno value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

/// Operation not permitted.
pub const EPERM: Errno = Errno(1);
/// No such entry (a capability a variant asked to hide is not there).
pub const ENOENT: Errno = Errno(2);
/// I/O error.
pub const EIO: Errno = Errno(5);
/// Bad address (also upstream's answer to an out-of-range config access).
pub const EFAULT: Errno = Errno(14);
/// Invalid argument.
pub const EINVAL: Errno = Errno(22);
/// Inappropriate ioctl for device.
pub const ENOTTY: Errno = Errno(25);
/// Permission denied.
pub const EACCES: Errno = Errno(13);
/// Device or resource busy.
pub const EBUSY: Errno = Errno(16);
/// No such device.
pub const ENODEV: Errno = Errno(19);
/// No space left on device (upstream's "the array is too small").
pub const ENOSPC: Errno = Errno(28);
/// Value too large for defined data type (upstream's answer to a mapping whose offsets
/// overflow).
pub const EOVERFLOW: Errno = Errno(75);
