// SPDX-License-Identifier: GPL-2.0
//! [`DeviceMemoryMap`]: the kernel's mapping of a memory BAR's memory (device memory the CPU
//! reaches coherently, `abi::MemoryBar`), for user `read`/`write` of the region (user mmap
//! maps the frames directly, see `features/memory_bar.rs`).
//!
//! Lifetime: made at the first access of an open device, under the state mutex, kept in
//! `Inner::memory_maps` and dropped (unmapped) at close, as upstream `nvgrace-gpu` maps and
//! unmaps. An access copies without the state mutex: the device cannot be closed while a
//! `read`/`write` of it runs (the caller holds the file).

use core::ptr::NonNull;
use kernel::bindings;
use kernel::error::{code::*, Result};

/// A kernel mapping of `len` bytes of device memory: write-back (`memremap(MEMREMAP_WB)`) or
/// write-combined (`ioremap_wc`).
///
/// # Invariants
///
/// `addr` is the start of a live mapping of `len` bytes, made by `ioremap_wc` if
/// `write_combine` and by `memremap` otherwise, owned by this value.
pub(crate) struct DeviceMemoryMap {
    addr: NonNull<u8>,
    len: usize,
    write_combine: bool,
}

// SAFETY: the mapping is plain memory the kernel may access from any thread; copies in and out
// are not synchronised by us, as upstream's are not (concurrent user accesses race as they
// would on the device).
unsafe impl Send for DeviceMemoryMap {}
// SAFETY: as for `Send`.
unsafe impl Sync for DeviceMemoryMap {}

impl DeviceMemoryMap {
    /// Maps `len` bytes at `phys`; `ENOMEM` if the kernel cannot (upstream's answer).
    ///
    /// # Safety
    ///
    /// `phys..phys + len` is device memory no one else maps with a conflicting cache type
    /// (checked by the common module to be outside System RAM at registration).
    pub(crate) unsafe fn new(phys: u64, len: u64, write_combine: bool) -> Result<Self> {
        let size = usize::try_from(len).map_err(|_| ENOMEM)?;
        // SAFETY: the caller's contract; both functions validate the range and return NULL on
        // failure.
        let addr = unsafe {
            if write_combine {
                bindings::ioremap_wc(phys, size as _)
            } else {
                bindings::memremap(phys, size, bindings::MEMREMAP_WB as _)
            }
        };
        let addr = NonNull::new(addr.cast::<u8>()).ok_or(ENOMEM)?;
        Ok(Self {
            addr,
            len: size,
            write_combine,
        })
    }

    /// Copies `out.len()` bytes at `offset` into `out`; `EINVAL` outside the mapping.
    pub(crate) fn read(&self, offset: usize, out: &mut [u8]) -> Result {
        self.check(offset, out.len())?;
        // SAFETY: `offset + out.len() <= len` (checked), inside the live mapping (type
        // invariant); `out` is a kernel buffer that does not overlap it.
        unsafe {
            core::ptr::copy_nonoverlapping(
                self.addr.as_ptr().add(offset),
                out.as_mut_ptr(),
                out.len(),
            )
        };
        Ok(())
    }

    /// Copies `data` to `offset`; `EINVAL` outside the mapping.
    pub(crate) fn write(&self, offset: usize, data: &[u8]) -> Result {
        self.check(offset, data.len())?;
        // SAFETY: as in `read`.
        unsafe {
            core::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.addr.as_ptr().add(offset),
                data.len(),
            )
        };
        Ok(())
    }

    fn check(&self, offset: usize, count: usize) -> Result {
        match offset.checked_add(count) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(EINVAL),
        }
    }
}

impl Drop for DeviceMemoryMap {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and live (type invariant), unmapped once, by the function
        // matching the one that made it.
        unsafe {
            if self.write_combine {
                bindings::iounmap(self.addr.as_ptr().cast());
            } else {
                bindings::memunmap(self.addr.as_ptr().cast());
            }
        }
    }
}
