// SPDX-License-Identifier: GPL-2.0
//! VGA-class devices (PCI class 0x0300): what registration does for them and the legacy VGA
//! region (index 8), as upstream `vfio_pci_vga_init`/`_uninit`, `vfio_pci_set_decode` and
//! `vfio_pci_vga_rw` do.
//!
//! - At registration the firmware framebuffers on the device (and, for the boot VGA device,
//!   the VGA text console) are removed, and the device joins the VGA arbiter with
//!   [`set_decode`] as its decode callback; at removal it leaves the arbiter, declared as
//!   decoding everything again. Nothing of this happens for other classes.
//! - The region exists when the kernel has `CONFIG_VFIO_PCI_VGA`, the device is VGA-class and
//!   `disable_vga` is off. Each `read`/`write` maps the window it starts in, takes the
//!   arbiter's lock on that window's resource (legacy memory or legacy I/O) for the access and
//!   releases it after; the offsets and clipping are `logic::vga::plan`. No mmap.
//!
//! No device state is kept: every input (class, parameter, kernel configuration) is fixed
//! while the device is bound, so "has the region" is computed where it is needed.

use crate::bindings;
use crate::logic::{bar_rw, vga};
use crate::primitives::params;
use crate::primitives::pci_function::PciFunction;
use crate::primitives::vga::{self as arbiter, LegacyMap, VgaLock};
use crate::state::DeviceState;
use core::ffi::c_uint;
use core::ptr::NonNull;
use kernel::error::{code::EINVAL, Error, Result};
use kernel::ffi::c_char;

/// Whether `pdev` is a VGA device (upstream `vfio_pci_is_vga`).
fn is_vga(pdev: &PciFunction) -> bool {
    vga::is_vga_class(pdev.class())
}

/// Whether user space is kept off the legacy ranges: `disable_vga`, or no VGA region in this
/// kernel (upstream `vfio_vga_disabled`).
fn vga_disabled() -> bool {
    !arbiter::region_supported() || params::disable_vga()
}

/// Whether the device offers the legacy VGA region (upstream `has_vga`).
pub(crate) fn has_region(pdev: &PciFunction) -> bool {
    !vga_disabled() && is_vga(pdev)
}

/// What `pdev` tells the arbiter it decodes.
fn decodes(pdev: &PciFunction, single_vga: bool) -> u32 {
    vga::decodes(
        single_vga,
        vga_disabled(),
        arbiter::on_root_bus(pdev),
        || arbiter::other_vga_below(pdev),
    )
}

/// The arbiter's decode callback (runs under the arbiter's spinlock; nothing here sleeps).
unsafe extern "C" fn set_decode(pdev: *mut bindings::pci_dev, single_vga: bool) -> c_uint {
    let Some(ptr) = NonNull::new(pdev) else {
        return vga::RSRC_ALL;
    };
    // SAFETY: the arbiter calls this only for a device registered with it (in `register`),
    // until `unregister` withdraws it; the device is bound to our driver all that time.
    let pdev = unsafe { PciFunction::from_raw(ptr) };
    decodes(&pdev, single_vga)
}

/// Registration of a VGA device (upstream `vfio_pci_vga_init`); `name` is the driver name,
/// shown in the kernel log as the framebuffers' new owner. Nothing for other classes.
pub(crate) fn register(pdev: &PciFunction, name: *const c_char) -> Result {
    if !is_vga(pdev) {
        return Ok(());
    }
    arbiter::remove_conflicting_framebuffers(pdev, name)?;
    arbiter::client_register(pdev, set_decode)?;
    arbiter::set_legacy_decoding(pdev, decodes(pdev, false));
    Ok(())
}

/// Removal (upstream `vfio_pci_vga_uninit`): out of the arbiter, decoding everything.
pub(crate) fn unregister(pdev: &PciFunction) {
    if !is_vga(pdev) {
        return;
    }
    arbiter::client_unregister(pdev);
    arbiter::set_legacy_decoding(pdev, vga::RSRC_ALL);
}

/// `read`/`write` of `count` bytes at `pos` of the VGA region.
pub(crate) fn rw(
    dev: &DeviceState,
    buf: usize,
    count: usize,
    pos: u64,
    is_write: bool,
) -> Result<usize> {
    if !has_region(&dev.pdev) {
        return Err(EINVAL);
    }
    let access = vga::plan(pos, count).map_err(|e| Error::from_errno(-e.0))?;
    let map = LegacyMap::new(access.window)?;
    let lock = VgaLock::get(&dev.pdev, access.window.rsrc())?;
    // Legacy VGA ranges are not BARs: no memory-decode check, as upstream.
    let done = crate::features::bar::do_io_rw(
        dev,
        false,
        map.io(),
        buf,
        access.off,
        access.count,
        (0, 0),
        is_write,
        bar_rw::MAX_WIDTH_BAR,
    );
    drop(lock);
    drop(map);
    done
}
