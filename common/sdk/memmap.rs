// SPDX-License-Identifier: GPL-2.0
//! [`MemMap`]: a read-only, cached (`MEMREMAP_WB`) mapping of memory outside the kernel's own,
//! such as firmware tables a device points to (IGD's OpRegion at the address in ASLS).
//!
//! Reads are volatile: firmware or the device may change the memory at any time, so the Rust
//! compiler must not assume it holds still. The mapping is never written through.

use super::bindings;
use core::ffi::c_void;
use core::ptr::NonNull;
use kernel::error::{code::*, Result};

/// A `memremap(phys, len, MEMREMAP_WB)` mapping, unmapped on drop.
///
/// # Invariants
///
/// `addr` is the start of a live `memremap` mapping of `len` bytes, owned by this value.
pub(crate) struct MemMap {
    addr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory, only ever read (volatile) through `&self`, and may be
// unmapped from any thread.
unsafe impl Send for MemMap {}
// SAFETY: as for `Send`: shared access only reads.
unsafe impl Sync for MemMap {}

#[allow(dead_code)]
impl MemMap {
    /// Maps `len` bytes of firmware memory at physical address `phys` (ACPI tables, reserved
    /// ranges: IGD's OpRegion), write-back cached. `EPERM` if any of it is System RAM, which
    /// a variant must never be able to read out to user space; `ENOMEM` when the kernel
    /// cannot map it (as upstream treats a failed `memremap`), `EINVAL` for an empty range.
    pub(crate) fn firmware(phys: u64, len: usize) -> Result<Self> {
        if len == 0 {
            return Err(EINVAL);
        }
        // SAFETY: a plain query of the resource tree.
        let ram = unsafe {
            bindings::region_intersects(
                phys,
                len,
                bindings::IORESOURCE_SYSTEM_RAM as _,
                bindings::IORES_DESC_NONE as _,
            )
        };
        if ram != bindings::REGION_DISJOINT as i32 {
            return Err(EPERM);
        }
        // SAFETY: `phys..phys + len` is not System RAM (checked above), so mapping it reads
        // nothing the kernel owns.
        unsafe { Self::new(phys, len) }
    }

    /// Maps `len` bytes at physical address `phys`, whatever they are.
    ///
    /// # Safety
    ///
    /// The range must be memory whose contents may reach this device's user (the variant
    /// will read it and may hand it out): never memory of the kernel, of other devices or of
    /// other users. [`MemMap::firmware`] is the safe form for firmware tables.
    pub(crate) unsafe fn new(phys: u64, len: usize) -> Result<Self> {
        if len == 0 {
            return Err(EINVAL);
        }
        // SAFETY: `memremap` validates the range itself and returns NULL on failure; nothing
        // is accessed yet; what is mapped is the caller's responsibility.
        let p = unsafe { bindings::memremap(phys, len, bindings::MEMREMAP_WB as _) };
        let addr = NonNull::new(p.cast::<u8>()).ok_or(ENOMEM)?;
        // INVARIANT: a non-NULL result is a mapping of `len` bytes that we own.
        Ok(Self { addr, len })
    }

    /// Size of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Copies `buf.len()` bytes from `offset`; `EFAULT` when that is not inside the mapping.
    pub(crate) fn read(&self, offset: usize, buf: &mut [u8]) -> Result {
        let end = offset.checked_add(buf.len()).ok_or(EFAULT)?;
        if end > self.len {
            return Err(EFAULT);
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `offset + i < end <= len`, so the byte is inside the live mapping (type
            // invariant); a volatile byte read has no alignment needs.
            *b = unsafe { self.addr.as_ptr().add(offset + i).read_volatile() };
        }
        Ok(())
    }

    /// The little-endian `N`-byte value at `offset` (e.g. a `u32` field as `[u8; 4]`).
    pub(crate) fn read_array<const N: usize>(&self, offset: usize) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.read(offset, &mut b)?;
        Ok(b)
    }
}

impl Drop for MemMap {
    fn drop(&mut self) {
        // SAFETY: we own the mapping (type invariant) and unmap it exactly once.
        unsafe { bindings::memunmap(self.addr.as_ptr().cast::<c_void>()) };
    }
}
