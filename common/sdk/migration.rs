// SPDX-License-Identifier: GPL-2.0
//! Live migration for variants: implement [`Migration`] and add `migration: true` to
//! `module_vfio_pci_variant!`.
//!
//! The common module does the rest, as the uAPI (`include/uapi/linux/vfio.h`) specifies: it
//! sets the VFIO device's `mig_ops` (so the VFIO core answers `VFIO_DEVICE_FEATURE_MIGRATION`,
//! `_MIG_DEVICE_STATE` and `_MIG_DATA_SIZE`), walks the state machine arc by arc through the
//! VFIO core's `vfio_mig_get_next_state`, owns the data fds (read while saving, write while
//! resuming, `VFIO_MIG_GET_PRECOPY_INFO`, end of stream, `-ENODEV` once the session is over,
//! lifetime across state changes and close), frames the stream (magic, version, length,
//! CRC-32) and refuses a truncated or corrupted one before [`Migration::load`] sees it, and
//! returns the device to RUNNING at open, close and reset.
//!
//! What the variant supplies: how to stop and start its device, and its state as bytes.
//!
//! | offered        | how                                                  |
//! |----------------|------------------------------------------------------|
//! | STOP_COPY      | always (`stop`, `start`, `save`, `load`)             |
//! | P2P            | implement both `quiesce` and `unquiesce`             |
//! | PRE_COPY       | `const PRE_COPY: bool = true` (`save` runs twice)    |
//!
//! Locks: every method runs with the device's migration lock held (one at a time per
//! device, and never during open, close or reset of the device) and without the common
//! module's state mutex, so the [`Device`] methods (MMIO, config space) may be used.

use super::abi::{DeviceHandle, MigrationChange, MigrationOps};
use super::bindings;
use super::{Device, Variant};
use core::ffi::{c_int, c_void};
use core::pin::Pin;
use kernel::error::{code::*, Result};
use kernel::prelude::vtable;

/// Largest [`Migration::MAX_STATE`]: the stream is kept in kernel memory (`kmalloc`).
pub(crate) const MAX_STATE_LIMIT: usize = 64 * 1024;

/// A variant whose devices can be live-migrated. Mark the `impl` with `#[vtable]`.
#[vtable]
pub(crate) trait Migration: Variant {
    /// Most bytes [`Migration::save`] writes (at most [`MAX_STATE_LIMIT`]); also what user
    /// space reads as the STOP_COPY size estimate.
    const MAX_STATE: usize;

    /// Offer PRE_COPY: `save` is called once while the device still runs (RUNNING ->
    /// PRE_COPY) and again once it is stopped (-> STOP_COPY); the resuming side loads both,
    /// in order. Worth it when most of the state stays put while the device runs.
    const PRE_COPY: bool = false;

    /// Stop the device: from now on it must not change its own state, raise interrupts or
    /// do DMA (RUNNING_P2P -> STOP, or RUNNING -> STOP right after `quiesce`). An error
    /// fails the transition and the device stays where it was.
    fn stop(self: Pin<&Self>, dev: &Device) -> Result;

    /// Run again after [`Migration::stop`] (STOP -> RUNNING_P2P or RUNNING).
    fn start(self: Pin<&Self>, dev: &Device) -> Result;

    /// Optional (implementing it offers P2P, with `unquiesce`): stop initiating DMA to
    /// other devices, keep running otherwise (RUNNING -> RUNNING_P2P).
    fn quiesce(self: Pin<&Self>, _dev: &Device) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Optional: the reverse of [`Migration::quiesce`].
    fn unquiesce(self: Pin<&Self>, _dev: &Device) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Writes the device's state to `out`. Version your format (a first field): the
    /// resuming side may be another build of the variant.
    fn save(self: Pin<&Self>, dev: &Device, out: &mut StateWriter<'_>) -> Result;

    /// Loads a state one `save` wrote (possibly on another machine). The common module has
    /// checked the stream's framing and checksum; the content is the variant's to check:
    /// refuse (`EINVAL`) what its device cannot hold before changing the device. Any error
    /// puts the device in the ERROR state, which only a reset or a close leaves (the common
    /// module cannot tell a refusal from a half-done load).
    fn load(self: Pin<&Self>, dev: &Device, state: &mut StateReader<'_>) -> Result;
}

/// Where [`Migration::save`] writes: little-endian fields, `ENOSPC` past `MAX_STATE`.
pub(crate) struct StateWriter<'a> {
    out: &'a mut [u8],
    len: usize,
}

#[allow(dead_code)]
impl StateWriter<'_> {
    /// Appends `bytes`.
    pub(crate) fn put_bytes(&mut self, bytes: &[u8]) -> Result {
        let end = self.len.checked_add(bytes.len()).ok_or(ENOSPC)?;
        self.out
            .get_mut(self.len..end)
            .ok_or(ENOSPC)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    /// Appends a `u32`, little-endian.
    pub(crate) fn put_u32(&mut self, v: u32) -> Result {
        self.put_bytes(&v.to_le_bytes())
    }

    /// Appends a `u64`, little-endian.
    pub(crate) fn put_u64(&mut self, v: u64) -> Result {
        self.put_bytes(&v.to_le_bytes())
    }
}

/// What [`Migration::load`] reads: little-endian fields, `EINVAL` past the end.
pub(crate) struct StateReader<'a> {
    rest: &'a [u8],
}

#[allow(dead_code)]
impl StateReader<'_> {
    /// The next `N` bytes.
    pub(crate) fn bytes<const N: usize>(&mut self) -> Result<[u8; N]> {
        if self.rest.len() < N {
            return Err(EINVAL);
        }
        let (head, tail) = self.rest.split_at(N);
        self.rest = tail;
        let mut b = [0u8; N];
        b.copy_from_slice(head);
        Ok(b)
    }

    /// The next `u32`, little-endian.
    pub(crate) fn u32(&mut self) -> Result<u32> {
        self.bytes().map(u32::from_le_bytes)
    }

    /// The next `u64`, little-endian.
    pub(crate) fn u64(&mut self) -> Result<u64> {
        self.bytes().map(u64::from_le_bytes)
    }

    /// `EINVAL` unless everything was read (a state longer than this build expects).
    pub(crate) fn finish(&self) -> Result {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(EINVAL)
        }
    }
}

/// The [`MigrationOps`] of `T`, built at compile time into a `static` of the variant (see
/// `module_vfio_pci_variant!`). Misconfiguration fails the build.
pub(crate) const fn ops<T: Migration>() -> MigrationOps {
    assert!(
        T::HAS_QUIESCE == T::HAS_UNQUIESCE,
        "Migration: implement both quiesce and unquiesce (P2P), or neither"
    );
    assert!(
        T::MAX_STATE > 0 && T::MAX_STATE <= MAX_STATE_LIMIT,
        "Migration::MAX_STATE must be between 1 and MAX_STATE_LIMIT"
    );
    let mut flags = bindings::VFIO_MIGRATION_STOP_COPY as u64;
    if T::HAS_QUIESCE {
        flags |= bindings::VFIO_MIGRATION_P2P as u64;
    }
    if T::PRE_COPY {
        flags |= bindings::VFIO_MIGRATION_PRE_COPY as u64;
    }
    MigrationOps {
        flags,
        max_state: T::MAX_STATE,
        change: change::<T>,
        save: save::<T>,
        load: load::<T>,
    }
}

/// [`MigrationOps::change`] for `T`.
unsafe extern "C" fn change<T: Migration>(
    data: *mut c_void,
    dev: *mut DeviceHandle,
    change: MigrationChange,
) -> c_int {
    // SAFETY: the common module passes this device's live data and the handle of this call.
    let (this, dev) = unsafe { super::registration::hook_args::<T>(data, dev) };
    let r = match change {
        MigrationChange::Stop => T::stop(this, dev),
        MigrationChange::Start => T::start(this, dev),
        // Asked for only when offered (P2P), which needs both.
        MigrationChange::Quiesce if T::HAS_QUIESCE => T::quiesce(this, dev),
        MigrationChange::Unquiesce if T::HAS_UNQUIESCE => T::unquiesce(this, dev),
        MigrationChange::Quiesce | MigrationChange::Unquiesce => Ok(()),
    };
    kernel::error::from_result(|| r.map(|()| 0))
}

/// [`MigrationOps::save`] for `T`.
unsafe extern "C" fn save<T: Migration>(
    data: *mut c_void,
    dev: *mut DeviceHandle,
    out: *mut u8,
    max: usize,
) -> isize {
    // SAFETY: as in `change`.
    let (this, dev) = unsafe { super::registration::hook_args::<T>(data, dev) };
    // SAFETY: the common module passes a kernel buffer of `max` bytes, ours for the call.
    let out = unsafe { core::slice::from_raw_parts_mut(out, max) };
    let mut w = StateWriter { out, len: 0 };
    match T::save(this, dev, &mut w) {
        Ok(()) => w.len as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// [`MigrationOps::load`] for `T`.
unsafe extern "C" fn load<T: Migration>(
    data: *mut c_void,
    dev: *mut DeviceHandle,
    bytes: *const u8,
    len: usize,
) -> c_int {
    // SAFETY: as in `change`.
    let (this, dev) = unsafe { super::registration::hook_args::<T>(data, dev) };
    // SAFETY: the common module passes `len` readable bytes, unchanged for the call.
    let rest = unsafe { core::slice::from_raw_parts(bytes, len) };
    let mut r = StateReader { rest };
    kernel::error::from_result(|| T::load(this, dev, &mut r).map(|()| 0))
}

/// The `migration` field of a variant's [`super::abi::VariantOps`], from the optional
/// `migration:` line of `module_vfio_pci_variant!`.
#[doc(hidden)]
macro_rules! __vfio_variant_migration {
    ($type:ty) => {
        ::core::ptr::null()
    };
    ($type:ty, false) => {
        ::core::ptr::null()
    };
    ($type:ty, true) => {{
        static __VFIO_VARIANT_MIGRATION: $crate::sdk::abi::MigrationOps =
            $crate::sdk::migration::ops::<$type>();
        &__VFIO_VARIANT_MIGRATION
    }};
}
pub(crate) use __vfio_variant_migration;
