// SPDX-License-Identifier: GPL-2.0
//! BAR and ROM access from user space: `read`/`write` through the device fd (upstream
//! `vfio_pci_bar_rw`) and `mmap` of memory BARs with a fault handler (upstream
//! `vfio_pci_core_mmap` and `vfio_pci_mmap_huge_fault`, order 0 only).
//!
//! Memory safety and locking:
//! - The device state mutex (`DeviceState::inner`) is also upstream's `memory_lock`: every
//!   access to a memory BAR, every fault, and every change of memory decode (COMMAND writes,
//!   resets, power state) happens under it, so no access or new mapping sees memory decode off.
//!   Turning decode off zaps all user mappings while the mutex is held; faults then wait for it
//!   and find decode off (SIGBUS) or back on (the page is mapped again).
//! - Copies to and from user space never happen with the mutex held: a user buffer may itself be
//!   a mapping of a BAR, whose fault takes the mutex.
//! - [`BarMap`]s (requested region + `pci_iomap`) are made on first use and live until close;
//!   mappings hold the device fd open, so no fault runs after close.

use crate::bindings;
use crate::logic::bar_rw::{self, IoStep, MmapKind};
use crate::logic::region;
use crate::primitives::bar_map::{ioread, iowrite, reserve_rest_of_page, BarMap, PAGE_SIZE};
use crate::primitives::pci_function::PciFunction;
use crate::state::BarState;
use crate::state::DeviceState;
use core::ffi::c_void;
use kernel::error::{code::*, Error, Result};
use kernel::prelude::*;
use kernel::uaccess::UserSlice;

const PAGE_SHIFT: u32 = 12;
/// `PCI_ROM_RESOURCE`.
const ROM: usize = 6;
/// Size a shadow ROM is reported with.
const SHADOW_ROM_SIZE: u64 = 0x20000;
/// `VM_FAULT_SIGBUS`.
const VM_FAULT_SIGBUS: u32 = 0x2;

// The vma, fault and VFIO structs hold opaque lock types bindgen cannot prove FFI-safe; we only
// pass pointers to them.
#[allow(improper_ctypes)]
extern "C" {
    fn vfio_pci_common_vma_get(vma: *mut bindings::vm_area_struct, out: *mut VmaInfo);
    fn vfio_pci_common_vma_prepare(
        vma: *mut bindings::vm_area_struct,
        ops: *const bindings::vm_operations_struct,
        private: *mut c_void,
    );
    fn vfio_pci_common_vmf_vma(
        vmf: *mut bindings::vm_fault,
        address: *mut usize,
    ) -> *mut bindings::vm_area_struct;
    fn vfio_pci_common_zap(vdev: *mut bindings::vfio_device, start: i64, len: i64);
}

/// `struct vfio_pci_common_vma` of `primitives/bar_shims.c`.
#[repr(C)]
#[derive(Default)]
struct VmaInfo {
    start: usize,
    end: usize,
    pgoff: usize,
    shared: bool,
    readable: bool,
    writable: bool,
}

impl BarState {
    /// Probes which BARs are mappable and where the MSI-X table is (at open; upstream
    /// `vfio_pci_probe_mmaps` and the MSI-X part of `vfio_pci_core_enable`).
    pub(crate) fn open(pdev: &PciFunction) -> Self {
        let mut st = Self::default();
        for bar in 0..6 {
            let r = pdev.bar_resource(bar);
            st.mmap_ok[bar] = match bar_rw::mmap_kind(&r, PAGE_SIZE) {
                MmapKind::No => false,
                MmapKind::Yes => true,
                MmapKind::ReserveRemainder => match reserve_rest_of_page(pdev, bar) {
                    Some(res) => st.reserved.push(res, GFP_KERNEL).is_ok(),
                    None => false,
                },
            };
        }
        st.msix = pdev.msix_table();
        st
    }

    /// The mapping of `bar` for in-kernel writers (ioeventfd), claiming it first if needed.
    pub(crate) fn claim(&mut self, pdev: &PciFunction, bar: usize) -> Result<*mut c_void> {
        self.map(pdev, bar, kernel::c_str!("vfio"))
    }

    /// The claimed mapping of `bar`, claiming it first if needed.
    fn map(&mut self, pdev: &PciFunction, bar: usize, name: &'static CStr) -> Result<*mut c_void> {
        let slot = self.maps.get_mut(bar).ok_or(EINVAL)?;
        if slot.is_none() {
            *slot = Some(BarMap::new(pdev, bar, name)?);
        }
        slot.as_ref().map(BarMap::io).ok_or(EINVAL)
    }
}

/// `read`/`write` of BAR `bar` (0..=5) or the ROM (6) at `pos` inside the region.
pub(crate) fn rw(
    dev: &DeviceState,
    bar: usize,
    buf: usize,
    count: usize,
    pos: u64,
    is_write: bool,
) -> Result<usize> {
    let pdev = &dev.pdev;
    if let Some(m) = dev.memory_bar(bar) {
        return crate::features::memory_bar::rw(dev, m, buf, count, pos, is_write);
    }
    if let Some(size) = dev.emulated_bar_size(bar) {
        let count = bar_rw::clip(pos, count, size).map_err(|e| Error::from_errno(-e.0))?;
        let whole = bar_rw::Window {
            offset: 0,
            len: size,
        };
        return rw_around_window(dev, bar, whole, buf, count, pos, is_write);
    }
    let r = pdev.bar_resource(bar);
    let end = if r.start != 0 {
        r.len
    } else if bar == ROM && pdev.rom_is_shadow() {
        SHADOW_ROM_SIZE
    } else {
        return Err(EINVAL);
    };
    let count = bar_rw::clip(pos, count, end).map_err(|e| Error::from_errno(-e.0))?;
    if bar == ROM {
        return rom_read(dev, buf, count, pos, end);
    }
    if let Some(w) = dev.bar_window(bar) {
        return rw_around_window(dev, bar, w, buf, count, pos, is_write);
    }
    device_rw(dev, bar, r.mem, buf, count, pos, is_write)
}

/// `read`/`write` of a BAR with a variant window: cut at the window's edges, the pieces inside
/// to the variant, the others to the device. Stops at the first error, returning the bytes
/// done before it if any (as a short count).
fn rw_around_window(
    dev: &DeviceState,
    bar: usize,
    w: bar_rw::Window,
    buf: usize,
    count: usize,
    pos: u64,
    is_write: bool,
) -> Result<usize> {
    let mem = dev.pdev.bar_resource(bar).mem;
    let mut done = 0usize;
    while done < count {
        let at = pos + done as u64;
        let (n, inside) = w.step(at, count - done);
        let piece = if inside {
            window_rw(dev, bar, at - w.offset, buf + done, n, is_write)
        } else {
            device_rw(dev, bar, mem, buf + done, n, at, is_write)
        };
        match piece {
            Ok(0) => break,
            Ok(k) => done += k,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// The variant's part of a windowed BAR: through a kernel bounce buffer, so the variant never
/// sees a user pointer and no lock of ours is held across the user copy.
fn window_rw(
    dev: &DeviceState,
    bar: usize,
    pos: u64,
    buf: usize,
    count: usize,
    is_write: bool,
) -> Result<usize> {
    let Some(hook) = dev.variant_ops().bar_window_rw else {
        return Err(EINVAL);
    };
    let count = count.min(WINDOW_CHUNK);
    let mut bounce = [0u8; WINDOW_CHUNK];
    let chunk = bounce.get_mut(..count).ok_or(EINVAL)?;
    if is_write {
        UserSlice::new(buf, count).reader().read_slice(chunk)?;
    }
    // SAFETY: the variant data is live while the device is registered; the handle is this
    // device's; `chunk` is a kernel buffer of `count` bytes inside the window (`Window::step`).
    let ret = unsafe {
        hook(
            dev.variant_data(),
            dev.handle(),
            bar as u32,
            pos,
            chunk.as_mut_ptr(),
            count,
            is_write,
        )
    };
    if ret < 0 {
        return Err(Error::from_errno(ret as i32));
    }
    let got = (ret as usize).min(count);
    if !is_write {
        UserSlice::new(buf, got)
            .writer()
            .write_slice(chunk.get(..got).ok_or(EINVAL)?)?;
    }
    Ok(got)
}

/// Largest piece of a window access handed to the variant at once.
const WINDOW_CHUNK: usize = 64;

/// `read`/`write` of `count` bytes at `pos` of BAR `bar` on the device itself.
fn device_rw(
    dev: &DeviceState,
    bar: usize,
    mem: bool,
    buf: usize,
    count: usize,
    pos: u64,
    is_write: bool,
) -> Result<usize> {
    let pdev = &dev.pdev;
    // After the first access the mapping is found without the state mutex; the access
    // itself takes it (memory decode check).
    let (io, (x_start, x_end)) = match dev.bar_io.get(bar) {
        Some(x) => x,
        None => {
            let mut inner = dev.inner.lock();
            let io = inner.bars.map(pdev, bar, kernel::c_str!("vfio"))?;
            let x = match inner.bars.msix {
                Some((b, off, size)) if b == bar => (off, off + size),
                _ => (0, 0),
            };
            dev.bar_io.publish(bar, io, x);
            (io, x)
        }
    };
    do_io_rw(
        dev,
        mem,
        io,
        buf,
        pos,
        count,
        (x_start, x_end),
        is_write,
        bar_rw::MAX_WIDTH_BAR,
    )
}

/// The ROM, read-only, mapped for the duration of the read (upstream maps it with
/// `pci_map_rom` each time; reads past the ROM image inside the BAR give 0xff).
fn rom_read(dev: &DeviceState, buf: usize, count: usize, pos: u64, end: u64) -> Result<usize> {
    let rom = dev.pdev.map_rom().ok_or(ENOMEM)?;
    let r = do_io_rw(
        dev,
        true,
        rom.io,
        buf,
        pos,
        count,
        (rom.size, end),
        false,
        bar_rw::MAX_WIDTH_ROM,
    );
    drop(rom);
    r
}

/// The access loop (upstream `vfio_pci_core_do_io_rw`) over `count` bytes at `pos` of the
/// mapping `io`, which the caller has clipped to the mapping's length. `test_mem`: a memory
/// BAR, whose accesses need memory decode on (checked under the state mutex, per access).
/// Also used by `features::vga` for the legacy VGA windows.
#[allow(clippy::too_many_arguments)]
pub(crate) fn do_io_rw(
    dev: &DeviceState,
    test_mem: bool,
    io: *mut c_void,
    buf: usize,
    pos: u64,
    count: usize,
    (x_start, x_end): (u64, u64),
    is_write: bool,
    max_width: usize,
) -> Result<usize> {
    let (mut reader, mut writer) = UserSlice::new(buf, count).reader_writer();
    let mut done = 0usize;
    while done < count {
        let off = pos + done as u64;
        match bar_rw::next_step(off, count - done, x_start, x_end, max_width) {
            IoStep::Access(n) => {
                // SAFETY: `off + n <= pos + count`, inside the mapping `io` (clipped by the
                // caller to the BAR's or the VGA window's length).
                let addr = unsafe { io.cast::<u8>().add(off as usize) }.cast::<c_void>();
                // Typed user copies (one call each): this is the hot path of BAR access.
                if is_write {
                    let v = match n {
                        8 => u64::from_le(reader.read::<u64>()?),
                        4 => u32::from_le(reader.read::<u32>()?).into(),
                        2 => u16::from_le(reader.read::<u16>()?).into(),
                        _ => reader.read::<u8>()?.into(),
                    };
                    io_access(dev, test_mem, || {
                        // SAFETY: `addr` is inside the mapped BAR and `n`-aligned.
                        unsafe { iowrite(addr, n, v) };
                        0
                    })?;
                } else {
                    // SAFETY: as above.
                    let v = io_access(dev, test_mem, || unsafe { ioread(addr, n) })?;
                    match n {
                        8 => writer.write(&v.to_le())?,
                        4 => writer.write(&(v as u32).to_le())?,
                        2 => writer.write(&(v as u16).to_le())?,
                        _ => writer.write(&(v as u8))?,
                    }
                }
                done += n;
            }
            IoStep::Excluded(n) => {
                if is_write {
                    reader.skip(n)?;
                } else {
                    for _ in 0..n {
                        writer.write_slice(&[0xff])?;
                    }
                }
                done += n;
            }
        }
    }
    Ok(done)
}

/// One device access, under the state mutex with memory decode checked for memory BARs
/// (`-EIO` when off, like upstream).
fn io_access(dev: &DeviceState, test_mem: bool, f: impl FnOnce() -> u64) -> Result<u64> {
    if !test_mem {
        return Ok(f());
    }
    let inner = dev.inner.lock();
    if !inner.memory_enabled(&dev.pdev) {
        return Err(EIO);
    }
    Ok(f())
}

// ---- mmap ------------------------------------------------------------------------------------

static MMAP_OPS: bindings::vm_operations_struct = bindings::vm_operations_struct {
    fault: Some(fault),
    ..zeroed_vm_ops()
};

const fn zeroed_vm_ops() -> bindings::vm_operations_struct {
    // SAFETY: `vm_operations_struct` is a table of optional function pointers (and plain data);
    // all-zero is "no callbacks", its C default.
    unsafe { core::mem::zeroed() }
}

/// The `mmap` op: memory BARs only, shared mappings only; nothing is mapped until a fault
/// (except a variant's memory BARs, `features/memory_bar.rs`).
pub(crate) fn mmap(dev: &DeviceState, vma: *mut bindings::vm_area_struct) -> Result {
    let mut v = VmaInfo::default();
    // SAFETY: `vma` is the vma being set up by the mmap call that invoked us.
    unsafe { vfio_pci_common_vma_get(vma, &mut v) };
    let index = (v.pgoff as u64 >> (region::OFFSET_SHIFT - PAGE_SHIFT)) as u32;
    // A memory BAR is mapped as upstream `nvgrace-gpu` maps it, before (and without) the
    // checks of the other regions: a private mapping is allowed.
    if let Some(m) = dev.memory_bar(index as usize) {
        let pgoff = v.pgoff as u64 & ((1u64 << (region::OFFSET_SHIFT - PAGE_SHIFT)) - 1);
        let len = v.end.checked_sub(v.start).ok_or(EINVAL)? as u64;
        return crate::features::memory_bar::mmap(m, vma, pgoff, len);
    }
    let n_regions = dev.inner.lock().n_regions as u32;
    if index >= region::NUM_REGIONS + n_regions || v.end < v.start || !v.shared {
        return Err(EINVAL);
    }
    let pgoff = v.pgoff as u64 & ((1u64 << (region::OFFSET_SHIFT - PAGE_SHIFT)) - 1);
    if index >= region::NUM_REGIONS {
        return mmap_device_region(dev, vma, (index - region::NUM_REGIONS) as usize, pgoff, &v);
    }
    if index >= region::index::ROM {
        return Err(EINVAL);
    }
    let bar = index as usize;
    if dev.emulated_bar_size(bar).is_some() {
        return Err(EINVAL);
    }
    {
        let mut inner = dev.inner.lock();
        if !inner.bars.mmap_ok.get(bar).copied().unwrap_or(false) {
            return Err(EINVAL);
        }
        let len = dev.pdev.bar_resource(bar).len;
        bar_rw::mmap_fits(pgoff, (v.end - v.start) as u64, len, PAGE_SIZE)
            .map_err(|e| Error::from_errno(-e.0))?;
        // The variant's window is emulated: its pages are never the device's to map.
        if dev
            .bar_window(bar)
            .is_some_and(|w| w.mmap_overlaps(pgoff, (v.end - v.start) as u64, PAGE_SIZE))
        {
            return Err(EINVAL);
        }
        // The mapping does not use the iomap, but claiming the region is what keeps other
        // drivers off the BAR.
        inner.bars.map(&dev.pdev, bar, kernel::c_str!("vfio-pci"))?;
    }
    // SAFETY: as above; the device state outlives every mapping (a mapping holds the device fd
    // open, and the state lives until the device is unregistered, after the last close).
    unsafe {
        vfio_pci_common_vma_prepare(vma, &MMAP_OPS, core::ptr::from_ref(dev).cast_mut().cast())
    };
    Ok(())
}

/// Where a fault on one of our mappings is: the vma, the faulting address, the device, the
/// region index and the page inside the region.
struct FaultAt<'a> {
    vma: *mut bindings::vm_area_struct,
    address: usize,
    dev: &'a DeviceState,
    index: u64,
    page: u64,
}

/// # Safety
///
/// `vmf` is the fault the MM core passes to the fault handler of a vma set up by [`mmap`] or
/// `mmap_device_region`.
unsafe fn fault_at<'a>(vmf: *mut bindings::vm_fault) -> FaultAt<'a> {
    let mut address = 0usize;
    // SAFETY: a valid fault for one of our vmas (the caller's contract).
    let vma = unsafe { vfio_pci_common_vmf_vma(vmf, &mut address) };
    let mut v = VmaInfo::default();
    // SAFETY: `vma` is valid during the fault.
    unsafe { vfio_pci_common_vma_get(vma, &mut v) };
    // SAFETY: `vm_private_data` was set to the device state when the vma was set up; the
    // state outlives every mapping (a mapping holds the device fd open).
    let dev = unsafe { &*(*vma).vm_private_data.cast::<DeviceState>() };
    let index = v.pgoff as u64 >> (region::OFFSET_SHIFT - PAGE_SHIFT);
    let pgoff = v.pgoff as u64 & ((1u64 << (region::OFFSET_SHIFT - PAGE_SHIFT)) - 1);
    let page = pgoff + ((address.wrapping_sub(v.start) as u64) >> PAGE_SHIFT);
    FaultAt {
        vma,
        address,
        dev,
        index,
        page,
    }
}

impl FaultAt<'_> {
    /// Maps frame `pfn` at the faulting address (`vmf_insert_pfn`).
    ///
    /// # Safety
    ///
    /// `pfn` is a frame user space may have mapped: a page of the device's BAR or one a
    /// variant vouched for (`MmapTarget`).
    unsafe fn insert(&self, pfn: u64) -> bindings::vm_fault_t {
        // SAFETY: `vma` is one of our VM_PFNMAP vmas, valid during the fault (`fault_at`); the
        // caller vouches for the frame.
        unsafe { bindings::vmf_insert_pfn(self.vma, self.address as _, pfn as _) }
    }
}

/// The fault handler: maps the page if memory decode is on, else SIGBUS.
unsafe extern "C" fn fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
    // SAFETY: the MM core calls us for a vma `mmap` set up.
    let at = unsafe { fault_at(vmf) };
    let dev = at.dev;
    let pfn = (dev.pdev.bar_resource(at.index as usize).start >> PAGE_SHIFT) + at.page;
    let inner = dev.inner.lock();
    if !inner.memory_enabled(&dev.pdev) {
        return VM_FAULT_SIGBUS;
    }
    // SAFETY: `pfn` lies in the BAR (checked at mmap: the vma fits the BAR's pages).
    unsafe { at.insert(pfn) }
}

static REGION_MMAP_OPS: bindings::vm_operations_struct = bindings::vm_operations_struct {
    fault: Some(region_fault),
    ..zeroed_vm_ops()
};

/// mmap of a device-specific region the variant flagged mappable; its pages come from the
/// variant's `region_mmap` hook at fault time.
fn mmap_device_region(
    dev: &DeviceState,
    vma: *mut bindings::vm_area_struct,
    n: usize,
    pgoff: u64,
    v: &VmaInfo,
) -> Result {
    use crate::logic::uapi::{REGION_FLAG_MMAP, REGION_FLAG_READ, REGION_FLAG_WRITE};
    let desc = *dev.inner.lock().region(n).ok_or(EINVAL)?;
    if desc.flags & REGION_FLAG_MMAP == 0 || dev.variant_ops().region_mmap.is_none() {
        return Err(EINVAL);
    }
    // As upstream's region mmap ops: a mapping may not do what the region's flags forbid.
    if (v.readable && desc.flags & REGION_FLAG_READ == 0)
        || (v.writable && desc.flags & REGION_FLAG_WRITE == 0)
    {
        return Err(EINVAL);
    }
    bar_rw::mmap_fits(pgoff, (v.end - v.start) as u64, desc.size, PAGE_SIZE)
        .map_err(|e| Error::from_errno(-e.0))?;
    // SAFETY: as in `mmap`: the state outlives every mapping of the device fd.
    unsafe {
        vfio_pci_common_vma_prepare(
            vma,
            &REGION_MMAP_OPS,
            core::ptr::from_ref(dev).cast_mut().cast(),
        )
    };
    Ok(())
}

/// Fault handler of device-specific region mappings: asks the variant what the page is, then
/// maps it like a BAR page (memory decode on and the device above D3hot, under the state
/// mutex; SIGBUS otherwise), so `zap` revokes these mappings exactly when it revokes the BARs'.
unsafe extern "C" fn region_fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
    // SAFETY: the MM core calls us for a vma `mmap_device_region` set up.
    let at = unsafe { fault_at(vmf) };
    let dev = at.dev;
    let index = at.index as u32;
    let Some(hook) = dev.variant_ops().region_mmap else {
        return VM_FAULT_SIGBUS;
    };
    let mut target = crate::abi::MmapTarget::default();
    // SAFETY: the variant data is live while a mapping exists (the device is registered); the
    // handle is this device's; `target` is a live local. No lock of ours is held: the variant
    // may use its device context.
    let ret = unsafe {
        hook(
            dev.variant_data(),
            dev.handle(),
            index.wrapping_sub(region::NUM_REGIONS),
            at.page,
            &mut target,
        )
    };
    if ret != 0 {
        return VM_FAULT_SIGBUS;
    }
    let mut inner = dev.inner.lock();
    if !inner.memory_enabled(&dev.pdev) {
        return VM_FAULT_SIGBUS;
    }
    let Some(pfn) = target_pfn(dev, &mut inner.bars, &target) else {
        return VM_FAULT_SIGBUS;
    };
    // SAFETY: `pfn` is a page of one of the device's memory BARs (checked by `target_pfn`) or a
    // frame the variant vouched for through `MmapTarget`'s unsafe constructor.
    unsafe { at.insert(pfn) }
}

/// The frame a variant's mmap target names: a page inside one of the device's memory BARs
/// that user space could map directly (`mmap_ok`: a sub-page BAR only with the rest of its
/// page reserved; the BAR claimed, as for a BAR mapping), or the frame its unsafe constructor
/// vouched for. `None` for anything else. Under the state mutex.
fn target_pfn(dev: &DeviceState, bars: &mut BarState, t: &crate::abi::MmapTarget) -> Option<u64> {
    match t.kind {
        crate::abi::MMAP_TARGET_BAR => {
            let bar = usize::try_from(t.bar).ok().filter(|&b| b < 6)?;
            let r = dev.pdev.bar_resource(bar);
            let inside = r.mem && t.value % PAGE_SIZE == 0 && t.value < r.len;
            if !inside || !bars.mmap_ok.get(bar).copied().unwrap_or(false) {
                return None;
            }
            bars.map(&dev.pdev, bar, kernel::c_str!("vfio-pci")).ok()?;
            Some((r.start + t.value) >> PAGE_SHIFT)
        }
        crate::abi::MMAP_TARGET_PFN => Some(t.value),
        _ => None,
    }
}

/// Drops every user mapping of the BARs and of the variant's device-specific regions; they
/// fault in again when allowed (upstream `vfio_pci_zap_bars`, which variants with mappable
/// regions extend the same way), and blocks the ioeventfd wake-up's writes
/// ([`block_memory`]): upstream's `vfio_pci_zap_and_down_write_memory_lock`. Called with the
/// state mutex held, before the change; [`unblock_memory`] after it.
pub(crate) fn zap(dev: &DeviceState) {
    block_memory(dev);
    let start = region::index_to_offset(region::index::BAR0) as i64;
    let end = region::NUM_REGIONS + crate::abi::MAX_REGIONS as u32;
    let len = region::index_to_offset(end) as i64 - start;
    // SAFETY: the device is registered (we are called from its ops).
    unsafe { vfio_pci_common_zap(dev.vfio_device(), start, len) };
}

/// Rounds [`block_memory`] spins before it sleeps between looks: far more than one MMIO
/// write takes, even under TCG, so only a preempted writer (see `logic::memory_gate`) is
/// waited for by sleeping.
const GATE_SPINS: u32 = 1 << 16;

/// Closes the memory gate and waits until no ioeventfd wake-up is writing the device's
/// memory: for the wake-up, what upstream's `down_write(&vdev->memory_lock)` is. Called with
/// the state mutex held (so in process context), before memory decode goes off, the device
/// is reset or changes power state, or the BAR mappings go. Writes signalled while the gate
/// is closed go to the virqfd thread, which takes the state mutex and checks memory decode.
pub(crate) fn block_memory(dev: &DeviceState) {
    dev.memory_gate.close(|rounds| {
        if rounds < GATE_SPINS {
            core::hint::spin_loop();
        } else {
            // SAFETY: `msleep` only sleeps; the state mutex holder is in process context.
            unsafe { kernel::bindings::msleep(1) };
        }
    });
}

/// Opens the memory gate again if the device is open with memory decode on (upstream's
/// `up_write` of the memory lock, as the wake-up sees it); leaves it closed otherwise. Called
/// with the state mutex held (`inner` is its data), after a change [`block_memory`] guarded,
/// and after emulated config writes (which may turn decode on).
pub(crate) fn unblock_memory(dev: &DeviceState, inner: &crate::state::Inner) {
    if !dev.memory_gate.is_open() && inner.enabled && inner.memory_enabled(&dev.pdev) {
        dev.memory_gate.open();
    }
}
