// SPDX-License-Identifier: GPL-2.0
//! [`Device`]: the device context a variant's hooks receive, the one way a variant touches
//! its own device while it is open: MMIO on its BARs, config space (emulated and raw),
//! overlay values, and capability hiding at open.
//!
//! Locks and when each method may be called: every method except the raw config accessors
//! takes the common module's state mutex (upstream's memory lock, also held by BAR
//! read/write, mmap faults and zaps, and by every emulated config access), so a method called
//! from a hook that already runs under it would deadlock. The hooks that get a `&Device` are
//! exactly those that run without it (`open`, `close`, `reset_prepare`/`reset_done`,
//! `bus_reset_prepare`/`bus_reset_done`, `region_read`/`region_write`); the overlay hooks
//! (`config_read`/`config_write`) and `regions` run under it and get no `Device`. The methods
//! sleep: never call them from atomic context.
//!
//! Errors (what each errno means, for every method):
//! - `EINVAL`: bad arguments (not a memory BAR, a misaligned or out-of-range access, a size
//!   other than 1/2/4 for config, no overlay at that offset);
//! - `ENODEV`: the device is not open (MMIO, emulated config, overlays);
//! - `EIO`: MMIO while the device is not in D0 or memory decode is off in the device's real
//!   COMMAND register (user space controls decode; a variant must expect this at any time);
//! - `EPERM`: `hide_capability`/`hide_ext_capability` outside `open`;
//! - `ENOENT`: no such capability to hide;
//! - `EFAULT`: an emulated config access outside config space (as for user space).

use super::abi::{DeviceHandle, ACCESS_RAW, ACCESS_WRITE};
use core::marker::PhantomData;
use kernel::error::{to_result, Result};

#[allow(improper_ctypes)]
extern "C" {
    fn vfio_pci_common_mmio(
        dev: *mut DeviceHandle,
        bar: u32,
        offset: u64,
        size: u32,
        flags: u32,
        value: *mut u64,
    ) -> core::ffi::c_int;
    fn vfio_pci_common_config(
        dev: *mut DeviceHandle,
        offset: u16,
        size: u32,
        flags: u32,
        value: *mut u32,
    ) -> core::ffi::c_int;
    fn vfio_pci_common_set_overlay(
        dev: *mut DeviceHandle,
        offset: u16,
        value: u32,
    ) -> core::ffi::c_int;
    fn vfio_pci_common_hide_cap(
        dev: *mut DeviceHandle,
        id: u16,
        extended: bool,
    ) -> core::ffi::c_int;
}

/// The device a hook runs for. See the module documentation for locks and errors.
///
/// Only ever seen as `&Device`, lent for one hook call: it cannot be kept past the hook, nor
/// sent to another thread (it is neither `Send` nor `Sync`).
///
/// # Invariants
///
/// The address of a `Device` is the live [`DeviceHandle`] the common module passed to the
/// running hook; the reference is never handed out beyond that hook's call.
#[repr(C)]
pub(crate) struct Device {
    _handle: DeviceHandle,
    _not_send_sync: PhantomData<*mut u8>,
}

#[allow(dead_code)]
impl Device {
    /// # Safety
    ///
    /// `handle` is the device handle the common module passed to the hook being run, and the
    /// returned reference does not outlive that hook call.
    pub(super) unsafe fn from_handle<'a>(handle: *mut DeviceHandle) -> &'a Device {
        // SAFETY: `Device` is a zero-sized `repr(C)` wrapper of `DeviceHandle`, so any non-null,
        // aligned address is a valid reference; the caller vouches for the handle.
        // INVARIANT: the caller's contract.
        unsafe { &*handle.cast::<Device>() }
    }

    fn handle(&self) -> *mut DeviceHandle {
        core::ptr::from_ref(self).cast_mut().cast()
    }

    fn mmio(&self, bar: usize, offset: u64, size: u32, write: Option<u64>) -> Result<u64> {
        let bar = u32::try_from(bar).map_err(|_| kernel::error::code::EINVAL)?;
        let mut v = write.unwrap_or(0);
        let flags = if write.is_some() { ACCESS_WRITE } else { 0 };
        // SAFETY: the handle is live for this hook call (type invariant); `v` is a live local.
        to_result(unsafe {
            vfio_pci_common_mmio(self.handle(), bar, offset, size, flags, &mut v)
        })?;
        Ok(v)
    }

    /// Reads the byte at `offset` of memory BAR `bar`.
    pub(crate) fn read8(&self, bar: usize, offset: u64) -> Result<u8> {
        Ok(self.mmio(bar, offset, 1, None)? as u8)
    }

    /// Reads the naturally aligned 16 bits at `offset` of memory BAR `bar`.
    pub(crate) fn read16(&self, bar: usize, offset: u64) -> Result<u16> {
        Ok(self.mmio(bar, offset, 2, None)? as u16)
    }

    /// Reads the naturally aligned 32 bits at `offset` of memory BAR `bar`.
    pub(crate) fn read32(&self, bar: usize, offset: u64) -> Result<u32> {
        Ok(self.mmio(bar, offset, 4, None)? as u32)
    }

    /// Reads the naturally aligned 64 bits at `offset` of memory BAR `bar`.
    pub(crate) fn read64(&self, bar: usize, offset: u64) -> Result<u64> {
        self.mmio(bar, offset, 8, None)
    }

    /// Writes the byte at `offset` of memory BAR `bar`.
    pub(crate) fn write8(&self, bar: usize, offset: u64, value: u8) -> Result {
        self.mmio(bar, offset, 1, Some(value.into())).map(|_| ())
    }

    /// Writes the naturally aligned 16 bits at `offset` of memory BAR `bar`.
    pub(crate) fn write16(&self, bar: usize, offset: u64, value: u16) -> Result {
        self.mmio(bar, offset, 2, Some(value.into())).map(|_| ())
    }

    /// Writes the naturally aligned 32 bits at `offset` of memory BAR `bar`.
    pub(crate) fn write32(&self, bar: usize, offset: u64, value: u32) -> Result {
        self.mmio(bar, offset, 4, Some(value.into())).map(|_| ())
    }

    /// Writes the naturally aligned 64 bits at `offset` of memory BAR `bar`.
    pub(crate) fn write64(&self, bar: usize, offset: u64, value: u64) -> Result {
        self.mmio(bar, offset, 8, Some(value)).map(|_| ())
    }

    fn config(&self, offset: u16, size: usize, flags: u32, value: u32) -> Result<u32> {
        let size = u32::try_from(size).map_err(|_| kernel::error::code::EINVAL)?;
        let mut v = value;
        // SAFETY: the handle is live for this hook call (type invariant); `v` is a live local.
        to_result(unsafe { vfio_pci_common_config(self.handle(), offset, size, flags, &mut v) })?;
        Ok(v)
    }

    /// Reads `size` (1, 2 or 4) bytes of config space at `offset` as user space would: the
    /// virtual values of the emulated config space, overlays included.
    pub(crate) fn config_read(&self, offset: u16, size: usize) -> Result<u32> {
        self.config(offset, size, 0, 0)
    }

    /// Writes `size` bytes of config space at `offset` as user space would: through the
    /// emulator's permissions and side effects (a COMMAND write turning memory decode off
    /// revokes user mappings, and so on).
    pub(crate) fn config_write(&self, offset: u16, size: usize, value: u32) -> Result {
        self.config(offset, size, ACCESS_WRITE, value).map(|_| ())
    }

    /// Reads the device's own config register (`size` 1, 2 or 4, naturally aligned), not what
    /// user space sees. Takes none of the common module's locks.
    pub(crate) fn raw_config_read(&self, offset: u16, size: usize) -> Result<u32> {
        self.config(offset, size, ACCESS_RAW, 0)
    }

    /// Writes the device's own config register, bypassing the emulation: the virtual config
    /// space does not learn about it, so do not use it on registers the emulator virtualizes
    /// (COMMAND, BARs, MSI/MSI-X control, power state).
    pub(crate) fn raw_config_write(&self, offset: u16, size: usize, value: u32) -> Result {
        self.config(offset, size, ACCESS_RAW | ACCESS_WRITE, value)
            .map(|_| ())
    }

    /// Sets the virtual value of the variant's overlay starting at `offset` (one of
    /// `Variant::CONFIG_OVERLAYS`), for this open: user space reads it from now on.
    pub(crate) fn set_overlay(&self, offset: u16, value: u32) -> Result {
        // SAFETY: the handle is live for this hook call (type invariant).
        to_result(unsafe { vfio_pci_common_set_overlay(self.handle(), offset, value) })
    }

    /// Hides every standard capability with ID `cap_id` from user space for this open (it
    /// is unlinked from the virtual list). Only inside `Variant::open`: `EPERM` elsewhere.
    pub(crate) fn hide_capability(&self, cap_id: u8) -> Result {
        // SAFETY: the handle is live for this hook call (type invariant).
        to_result(unsafe { vfio_pci_common_hide_cap(self.handle(), cap_id.into(), false) })
    }

    /// Hides every extended capability with ID `ext_cap_id`, as [`Device::hide_capability`].
    pub(crate) fn hide_ext_capability(&self, ext_cap_id: u16) -> Result {
        // SAFETY: the handle is live for this hook call (type invariant).
        to_result(unsafe { vfio_pci_common_hide_cap(self.handle(), ext_cap_id, true) })
    }
}
