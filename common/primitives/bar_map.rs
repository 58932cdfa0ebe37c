// SPDX-License-Identifier: GPL-2.0
//! BAR mappings in the kernel: [`BarMap`] (a BAR's region requested and `pci_iomap`ped), a
//! [`PageReservation`] after a sub-page BAR, and the sized MMIO accessors [`ioread`] and
//! [`iowrite`].

use crate::bindings;
use crate::primitives::pci_function::PciFunction;
use core::ffi::{c_int, c_void};
use core::ptr::NonNull;
use kernel::error::{code::ENOMEM, to_result, Result};
use kernel::prelude::*;

/// `PAGE_SIZE` on x86_64.
pub(crate) const PAGE_SIZE: u64 = 4096;

// The shims in bar_shims.c.
extern "C" {
    fn vfio_pci_common_ioread64(addr: *mut c_void) -> u64;
    fn vfio_pci_common_iowrite64(val: u64, addr: *mut c_void);
}

/// A BAR claimed for user access: its region requested from the PCI core and mapped.
///
/// # Invariants
///
/// `io` is the `pci_iomap` of BAR `bar` of `pdev`, whose region we requested; both are
/// released on drop. `pdev` outlives this value (it lives in the open state of that device).
pub(crate) struct BarMap {
    pdev: NonNull<bindings::pci_dev>,
    bar: usize,
    io: NonNull<c_void>,
}

// SAFETY: the mapping is an address usable from any thread; release needs only the device.
unsafe impl Send for BarMap {}

impl BarMap {
    /// `vfio_pci_core_setup_barmap`: request the region (named `name` in /proc/iomem) and map it.
    pub(crate) fn new(pdev: &PciFunction, bar: usize, name: &'static CStr) -> Result<Self> {
        let dev = pdev.as_raw();
        // SAFETY: valid device; `name` is a static string the PCI core keeps a pointer to.
        to_result(unsafe {
            bindings::pci_request_selected_regions(dev, 1 << bar, name.as_char_ptr())
        })?;
        // SAFETY: the region is ours now; `max` 0 maps the whole BAR.
        let io = unsafe { bindings::pci_iomap(dev.cast(), bar as c_int, 0) };
        match (NonNull::new(io), NonNull::new(dev)) {
            // INVARIANT: mapped and requested just above.
            (Some(io), Some(pdev)) => Ok(Self { pdev, bar, io }),
            _ => {
                // SAFETY: undoing the request above.
                unsafe { bindings::pci_release_selected_regions(dev, 1 << bar) };
                Err(ENOMEM)
            }
        }
    }

    /// The mapped BAR's kernel address.
    pub(crate) fn io(&self) -> *mut c_void {
        self.io.as_ptr()
    }
}

impl Drop for BarMap {
    fn drop(&mut self) {
        // SAFETY: by the type invariant we mapped and requested these; the device is alive.
        unsafe {
            bindings::pci_iounmap(self.pdev.as_ptr().cast(), self.io.as_ptr());
            bindings::pci_release_selected_regions(self.pdev.as_ptr(), 1 << self.bar);
        }
    }
}

/// A reservation of the rest of the page after a sub-page BAR, so nothing else is put there
/// while user space may map the whole page.
///
/// # Invariants
///
/// `res` is a heap `struct resource` successfully added with `request_resource`.
pub(crate) struct PageReservation {
    res: KBox<bindings::resource>,
}

// SAFETY: the resource is only touched through the resource tree's own locking.
unsafe impl Send for PageReservation {}

impl Drop for PageReservation {
    fn drop(&mut self) {
        // SAFETY: added by `request_resource` (type invariant), so it can be released.
        unsafe { kernel::bindings::release_resource(&mut *self.res) };
    }
}

/// Reserves the page remainder after sub-page BAR `bar` (upstream's dummy resource).
pub(crate) fn reserve_rest_of_page(pdev: &PciFunction, bar: usize) -> Option<PageReservation> {
    let (parent, start, end, flags) = pdev.resource_parent(bar)?;
    let mut res = KBox::new(bindings::resource::default(), GFP_KERNEL).ok()?;
    res.name = c"vfio sub-page reserved".as_ptr().cast();
    res.start = end + 1;
    res.end = start + PAGE_SIZE - 1;
    res.flags = flags;
    // SAFETY: `parent` is the live parent resource of the BAR; `res` is a heap resource that
    // stays put until released in `PageReservation::drop`.
    let ret = unsafe { kernel::bindings::request_resource(parent, &mut *res) };
    // INVARIANT: added successfully. Lazily: a reservation made on failure would release a
    // resource that is in no tree when dropped.
    (ret == 0).then(|| PageReservation { res })
}

/// # Safety
///
/// `addr` must be `n` bytes of a live iomap, `n`-aligned, `n` in 1, 2, 4, 8.
pub(crate) unsafe fn ioread(addr: *mut c_void, n: usize) -> u64 {
    // SAFETY: the caller's contract.
    unsafe {
        match n {
            8 => vfio_pci_common_ioread64(addr),
            4 => kernel::bindings::ioread32(addr).into(),
            2 => kernel::bindings::ioread16(addr).into(),
            _ => kernel::bindings::ioread8(addr).into(),
        }
    }
}

/// # Safety
///
/// As for [`ioread`].
pub(crate) unsafe fn iowrite(addr: *mut c_void, n: usize, v: u64) {
    // SAFETY: the caller's contract.
    unsafe {
        match n {
            8 => vfio_pci_common_iowrite64(v, addr),
            4 => kernel::bindings::iowrite32(v as u32, addr),
            2 => kernel::bindings::iowrite16(v as u16, addr),
            _ => kernel::bindings::iowrite8(v as u8, addr),
        }
    }
}
