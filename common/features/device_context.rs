// SPDX-License-Identifier: GPL-2.0
//! What a variant's hooks may do to their own device through the SDK's device context
//! (`sdk::Device`): MMIO on its BARs, config reads and writes (emulated or raw), overlay values
//! and capability hiding. The C ABI wrappers are in `abi_exports.rs`.
//!
//! Locking: MMIO, emulated config access, overlay values and capability hiding take the state
//! mutex (upstream's memory lock), so none of them may be called from a hook that runs under
//! it (the overlay hooks and `regions`); raw config access takes no lock of ours. Nothing here
//! copies to or from user space.
//!
//! Never: touches a BAR while the device is closed, outside D0 or with memory decode off in
//! the device's own COMMAND register (a variant's access must not depend on what user space
//! put in the virtual one), nor outside the BAR.

use crate::logic::bar_rw;
use crate::logic::errno::Errno;
use crate::logic::pci_regs;
use crate::primitives::bar_map::{ioread, iowrite};
use crate::state::DeviceState;
use core::ffi::c_void;
use kernel::error::{code::*, Error, Result};

fn from_errno(e: Errno) -> Error {
    Error::from_errno(-e.0)
}

/// One MMIO access of `size` bytes at `offset` of BAR `bar`: a read when `write` is `None`.
///
/// `-EINVAL`: not a memory BAR of the device, `offset` not naturally aligned or the access
/// not inside the BAR. `-ENODEV`: the device is not open. `-EIO`: the device is not in D0 or
/// its memory decode is off. Errors of claiming the BAR (`-EBUSY`, `-ENOMEM`) as they come.
pub(crate) fn mmio(
    dev: &DeviceState,
    bar: usize,
    offset: u64,
    size: usize,
    write: Option<u64>,
) -> Result<u64> {
    if bar >= pci_regs::STD_NUM_BARS {
        return Err(EINVAL);
    }
    let pdev = &dev.pdev;
    bar_rw::check_mmio(&pdev.bar_resource(bar), offset, size).map_err(from_errno)?;
    let mut inner = dev.inner.lock();
    if !inner.enabled {
        return Err(ENODEV);
    }
    let decode = pdev.no_command_memory()
        || pdev.read_config_word(pci_regs::COMMAND.into()) & pci_regs::COMMAND_MEMORY != 0;
    if pdev.current_state() != 0 || !decode {
        return Err(EIO);
    }
    let io = inner.bars.claim(pdev, bar)?;
    // SAFETY: `io` maps the whole BAR (claimed above, kept until close, which needs the state
    // mutex we hold) and `offset` is `size`-aligned with `offset + size` inside the BAR
    // (`check_mmio`).
    let addr = unsafe { io.cast::<u8>().add(offset as usize) }.cast::<c_void>();
    Ok(match write {
        // SAFETY: as above.
        Some(v) => unsafe {
            iowrite(addr, size, v);
            0
        },
        // SAFETY: as above.
        None => unsafe { ioread(addr, size) },
    })
}

/// A config access as user space would make it (through the emulator, overlays and all):
/// `size` (1, 2 or 4) bytes at `offset`, a read when `write` is `None`. `-ENODEV` while
/// closed; otherwise the emulator's errors (`-EFAULT` outside config space, as for user space).
pub(crate) fn config_emulated(
    dev: &DeviceState,
    offset: u16,
    size: usize,
    write: Option<u32>,
) -> Result<u32> {
    if !matches!(size, 1 | 2 | 4) {
        return Err(EINVAL);
    }
    let mut bytes = write.unwrap_or(0).to_le_bytes();
    let buf = bytes.get_mut(..size).ok_or(EINVAL)?;
    let mut guard = dev.inner.lock();
    let inner = &mut *guard;
    if !inner.enabled {
        return Err(ENODEV);
    }
    // The emulator reads the image: give it the user's lock-free virtual writes first.
    inner.config.absorb_fast_writes(&dev.cfg_fast);
    let mut host = crate::features::config::HostConfig::new(dev, &mut inner.pm);
    let done = inner
        .config
        .rw(&mut host, offset.into(), buf, write.is_some());
    inner.config.sync_fast_reads(&dev.cfg_fast);
    crate::features::bar::unblock_memory(dev, inner);
    done.map_err(from_errno)?;
    Ok(u32::from_le_bytes(bytes))
}

/// A config access straight to the device (`pci_user_{read,write}_config_*`), bypassing the
/// emulator: `size` (1, 2 or 4) naturally aligned bytes inside the device's config space.
/// `-EINVAL` otherwise.
pub(crate) fn config_raw(
    dev: &DeviceState,
    offset: u16,
    size: usize,
    write: Option<u32>,
) -> Result<u32> {
    let end = offset as u64 + size as u64;
    if !matches!(size, 1 | 2 | 4) || offset as usize % size != 0 || end > dev.pdev.cfg_size() {
        return Err(EINVAL);
    }
    match write {
        Some(v) => dev.pdev.write_config(offset.into(), size, v).map(|()| 0),
        None => dev.pdev.read_config(offset.into(), size),
    }
}

/// Sets the virtual value of the variant overlay at `offset`. `-ENODEV` while closed,
/// `-EINVAL` if no overlay of this open starts at `offset`.
pub(crate) fn set_overlay(dev: &DeviceState, offset: u16, value: u32) -> Result {
    let mut guard = dev.inner.lock();
    let inner = &mut *guard;
    if !inner.enabled {
        return Err(ENODEV);
    }
    let r = inner.config.set_overlay(offset, value);
    inner.config.sync_fast_reads(&dev.cfg_fast);
    r.map_err(from_errno)
}

/// Hides a standard (`extended` false) or extended capability from user space for this open.
/// Only while the variant's `open` hook runs (`-EPERM` otherwise: user space may already have
/// walked the list); `-ENOENT` if the device has no such capability.
pub(crate) fn hide_capability(dev: &DeviceState, id: u16, extended: bool) -> Result {
    let mut guard = dev.inner.lock();
    let inner = &mut *guard;
    if !inner.opening {
        return Err(EPERM);
    }
    let r = if extended {
        inner.config.hide_ext_cap(id)
    } else {
        u8::try_from(id)
            .map_err(|_| crate::logic::errno::EINVAL)
            .and_then(|id| inner.config.hide_cap(id))
    };
    inner.config.sync_fast_reads(&dev.cfg_fast);
    r.map_err(from_errno)
}
