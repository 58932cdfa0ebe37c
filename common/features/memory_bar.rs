// SPDX-License-Identifier: GPL-2.0
//! Memory BARs (`abi::MemoryBar`): device memory the CPU reaches coherently at a physical
//! address firmware describes, shown to user space as emulated 64-bit prefetchable BARs, as
//! upstream `nvgrace-gpu` shows a Grace Hopper GPU's memory (its usemem and resmem).
//!
//! What each part does and where: the variant describes the memory once, after its probe
//! ([`described`], checked here and in `logic::memory_bar`); config-space sizing is the
//! virtual config space's (`open_close.rs` gives it the BAR's size and clears the registers,
//! `ioctl.rs` clears them again at `VFIO_DEVICE_RESET`); region info is in
//! `device_info.rs`; user `read`/`write` ([`rw`]) and `mmap` ([`mmap`]) are here.
//!
//! Locking: the descriptions are fixed at registration. The kernel mapping used by
//! `read`/`write` is made under the state mutex and used without it (see
//! `primitives/memory_map.rs`). User mappings are made at `mmap` with `remap_pfn_range` and
//! no fault handler, as upstream's: the zap of the BAR regions on reset and memory-decode off
//! revokes them, and touching them afterwards is `SIGBUS` until user space maps again, as
//! upstream.

use crate::abi::{MemoryBar as AbiMemoryBar, VariantOps, MEMORY_BAR_WRITE_COMBINE};
use crate::bindings;
use crate::logic::memory_bar::{self, MemoryBar, MAX_MEMORY_BARS};
use crate::primitives::memory_map::DeviceMemoryMap;
use crate::state::DeviceState;
use core::ffi::c_void;
use kernel::error::{code::*, Error, Result};
use kernel::uaccess::UserSlice;

// `vm_area_struct` holds lock types bindgen cannot prove FFI-safe; we only pass the pointer.
#[allow(improper_ctypes)]
extern "C" {
    fn vfio_pci_common_remap_memory(
        vma: *mut bindings::vm_area_struct,
        pfn: u64,
        write_combine: bool,
    ) -> core::ffi::c_int;
}

/// The memory BARs the variant describes for its device `data`, checked: their shape
/// (`logic::memory_bar::check`), and that no byte of them is System RAM (which the kernel
/// owns: a variant, or firmware, pointing there would hand user space the kernel's memory).
pub(crate) fn described(ops: &VariantOps, data: *mut c_void) -> Result<[Option<MemoryBar>; 6]> {
    let Some(hook) = ops.memory_bars else {
        return Ok([None; 6]);
    };
    let mut raw = [AbiMemoryBar::default(); MAX_MEMORY_BARS];
    // SAFETY: `data` is the variant's live device data (caller); `raw` has room for
    // `MAX_MEMORY_BARS` entries.
    let n = unsafe { hook(data, raw.as_mut_ptr(), raw.len()) };
    let n = usize::try_from(n).map_err(|_| Error::from_errno(n))?;
    let mut shapes = [(0u32, false, 0u64, 0u64, 0u64); MAX_MEMORY_BARS];
    for (s, b) in shapes.iter_mut().zip(raw.iter()).take(n) {
        if b.flags & !MEMORY_BAR_WRITE_COMBINE != 0 {
            return Err(EINVAL);
        }
        *s = (
            b.bar,
            b.flags & MEMORY_BAR_WRITE_COMBINE != 0,
            b.phys,
            b.len,
            b.size,
        );
    }
    let bars = memory_bar::check(shapes.get(..n).ok_or(EINVAL)?).map_err(errno)?;
    for m in bars.iter().flatten() {
        // SAFETY: a query of the resource tree, for a range checked not to wrap.
        let r = unsafe {
            kernel::bindings::region_intersects(
                m.phys,
                m.len as usize,
                kernel::bindings::IORESOURCE_SYSTEM_RAM as _,
                kernel::bindings::IORES_DESC_NONE as _,
            )
        };
        if r != kernel::bindings::REGION_DISJOINT as i32 {
            return Err(EINVAL);
        }
    }
    Ok(bars)
}

/// `read`/`write` of `count` bytes at `pos` of memory BAR `m` (upstream
/// `nvgrace_gpu_read_mem`/`_write_mem`): clipped to the BAR's size, the memory part copied,
/// the rest read as `0xff` and dropped on write. Memory decode does not matter: the memory
/// is not behind the function's BARs.
pub(crate) fn rw(
    dev: &DeviceState,
    m: &MemoryBar,
    buf: usize,
    count: usize,
    pos: u64,
    is_write: bool,
) -> Result<usize> {
    let (count, in_memory) = m.span(pos, count).map_err(errno)?;
    let mut bounce = [0u8; CHUNK];
    let mut done = 0usize;
    if in_memory != 0 {
        let map = mapping(dev, m)?;
        while done < in_memory {
            let n = (in_memory - done).min(CHUNK);
            let chunk = bounce.get_mut(..n).ok_or(EINVAL)?;
            let at = usize::try_from(pos).map_err(|_| EINVAL)? + done;
            if is_write {
                UserSlice::new(buf + done, n).reader().read_slice(chunk)?;
                map.write(at, chunk)?;
            } else {
                map.read(at, chunk)?;
                UserSlice::new(buf + done, n).writer().write_slice(chunk)?;
            }
            done += n;
        }
    }
    if !is_write {
        bounce.fill(0xff);
        while done < count {
            let n = (count - done).min(CHUNK);
            UserSlice::new(buf + done, n)
                .writer()
                .write_slice(bounce.get(..n).ok_or(EINVAL)?)?;
            done += n;
        }
    }
    Ok(count)
}

/// `PAGE_SHIFT` on x86_64.
const PAGE_SHIFT: u32 = 12;

/// Bytes copied at once through the kernel stack.
const CHUNK: usize = 256;

/// The kernel's mapping of `m`'s memory, made on first use (`ENOMEM` if the kernel cannot
/// map it, as upstream).
fn mapping<'a>(dev: &'a DeviceState, m: &MemoryBar) -> Result<&'a DeviceMemoryMap> {
    let mut inner = dev.inner.lock();
    let slot = inner.memory_maps.get_mut(m.bar as usize).ok_or(EINVAL)?;
    if slot.is_none() {
        // SAFETY: `m` was checked at registration to lie outside System RAM; it is device
        // memory the variant vouches for, mapped by nobody else in the kernel.
        *slot = Some(unsafe { DeviceMemoryMap::new(m.phys, m.len, m.write_combine)? });
    }
    let map = slot.as_ref().ok_or(EINVAL)?;
    // SAFETY: the mapping stays in `memory_maps` until the device is closed, which cannot
    // happen while a `read`/`write` of the device (our caller) runs: the caller's file keeps
    // it open. So it outlives the state mutex guard and our caller's use of it.
    Ok(unsafe { &*core::ptr::from_ref(map) })
}

/// `mmap` of memory BAR `m` (upstream `nvgrace_gpu_mmap`): `len` bytes from page `pgoff` of
/// the region, inside the memory, mapped now to its frames, write-combined if `m` is.
pub(crate) fn mmap(
    m: &MemoryBar,
    vma: *mut bindings::vm_area_struct,
    pgoff: u64,
    len: u64,
) -> Result {
    let pfn = m.mmap_pfn(pgoff, len, PAGE_SHIFT).map_err(errno)?;
    // SAFETY: `vma` is being set up by the mmap call that invoked us; the frames are the
    // variant's device memory, checked at registration to be outside System RAM, and
    // `pgoff + len` stays inside it (`mmap_pfn`).
    kernel::error::to_result(unsafe { vfio_pci_common_remap_memory(vma, pfn, m.write_combine) })
}

fn errno(e: crate::logic::errno::Errno) -> Error {
    Error::from_errno(-e.0)
}
