// SPDX-License-Identifier: GPL-2.0
//! [`PciFunction`]: the common module's view of one PCI function. The only place that reads
//! `struct pci_dev` or calls the PCI core.

use crate::bindings;
use crate::dev_print::{dev_print, Level};
use core::ptr::NonNull;
use kernel::error::{to_result, Result};

/// A PCI function bound to one of our variant drivers.
///
/// # Invariants
///
/// `ptr` points to a valid `struct pci_dev` for the whole life of this value: the driver core
/// keeps a bound device alive from `probe` until `remove` returns, and every `PciFunction` is owned
/// by a device registration that ends inside `remove`.
pub(crate) struct PciFunction {
    ptr: NonNull<bindings::pci_dev>,
}

// SAFETY: the PCI core serialises config accesses internally (`pci_lock`, the user config
// access lock), and the fields we read are fixed while the device is bound.
unsafe impl Send for PciFunction {}
// SAFETY: as for `Send`; `&PciFunction` only allows reads and PCI core calls that lock internally.
unsafe impl Sync for PciFunction {}

/// Prints one line about `pdev` at notice level, prefixed like `dev_notice`.
pub(crate) fn dev_notice(pdev: &PciFunction, args: core::fmt::Arguments<'_>) {
    // SAFETY: the device is valid (type invariant of `PciFunction`).
    unsafe { dev_print(pdev.as_device(), Level::Notice, args) };
}

/// Prints one line about `pdev` at warning level, prefixed like `dev_warn`.
pub(crate) fn dev_warn(pdev: &PciFunction, args: core::fmt::Arguments<'_>) {
    // SAFETY: as in `dev_notice`.
    unsafe { dev_print(pdev.as_device(), Level::Warning, args) };
}

impl PciFunction {
    /// # Safety
    ///
    /// `ptr` must be a valid `struct pci_dev` that stays bound to our driver for the life of the
    /// returned value.
    pub(crate) unsafe fn from_raw(ptr: NonNull<bindings::pci_dev>) -> Self {
        // INVARIANT: the caller guarantees validity for our lifetime.
        Self { ptr }
    }

    /// The raw pointer, for the VFIO core calls in `abi_exports.rs`.
    pub(crate) fn as_raw(&self) -> *mut bindings::pci_dev {
        self.ptr.as_ptr()
    }

    /// `&pdev->dev`.
    pub(crate) fn as_device(&self) -> *mut kernel::bindings::device {
        // SAFETY: `ptr` is valid by the type invariant; taking a field address reads nothing.
        unsafe { core::ptr::addr_of_mut!((*self.ptr.as_ptr()).dev) }
    }

    fn raw(&self) -> &bindings::pci_dev {
        // SAFETY: valid by the type invariant; the fields we read through this reference
        // (IDs, cfg_size, resources, reset methods) do not change while the device is bound.
        unsafe { self.ptr.as_ref() }
    }

    /// Size of config space: 256 for conventional PCI, 4096 for PCIe/PCI-X 2.0 with ECAM.
    pub(crate) fn cfg_size(&self) -> u64 {
        self.raw().cfg_size.max(0) as u64
    }

    /// Length of resource `bar` (BARs 0..=5, ROM 6), 0 when unimplemented.
    pub(crate) fn resource_len(&self, bar: usize) -> u64 {
        match self.raw().resource.get(bar) {
            // Like `pci_resource_len`: an unassigned resource has `end == 0`.
            Some(r) if r.end != 0 => r.end.wrapping_sub(r.start).wrapping_add(1),
            _ => 0,
        }
    }

    /// Reads `size` (1, 2 or 4) bytes of config space at `offset` the way `sysfs` does
    /// (`pci_user_read_config_*`: blocked while the device is in reset or being accessed by
    /// the host driver), returning the value.
    pub(crate) fn read_config(&self, offset: u64, size: usize) -> Result<u32> {
        let dev = self.as_raw();
        let off = offset as i32;
        let mut v32: u32 = 0;
        let mut v16: u16 = 0;
        let mut v8: u8 = 0;
        // SAFETY: `dev` is valid by the type invariant; the out-pointers are live locals;
        // `offset` was bounds-checked against `cfg_size` by the caller (the PCI core also checks).
        let ret = unsafe {
            match size {
                4 => bindings::pci_user_read_config_dword(dev, off, &mut v32),
                2 => bindings::pci_user_read_config_word(dev, off, &mut v16),
                _ => bindings::pci_user_read_config_byte(dev, off, &mut v8),
            }
        };
        config_result(ret)?;
        Ok(match size {
            4 => v32,
            2 => v16.into(),
            _ => v8.into(),
        })
    }

    /// `pci_enable_device`: wakes the function to D0 and enables its resources.
    pub(crate) fn enable(&self) -> Result {
        // SAFETY: valid device (type invariant); the PCI core refcounts enables.
        to_result(unsafe { bindings::pci_enable_device(self.as_raw()) })
    }

    /// `pci_disable_device`: balances one [`PciFunction::enable`].
    pub(crate) fn disable(&self) {
        // SAFETY: valid device; only called after a successful `enable` (see `open_close.rs`).
        unsafe { bindings::pci_disable_device(self.as_raw()) }
    }

    /// `pci_set_master`: lets the function initiate memory writes (DMA, MSI messages).
    pub(crate) fn set_master(&self) {
        // SAFETY: valid device (type invariant).
        unsafe { bindings::pci_set_master(self.as_raw()) }
    }

    /// `pci_clear_master`: stops the function from initiating DMA.
    pub(crate) fn clear_master(&self) {
        // SAFETY: valid device (type invariant).
        unsafe { bindings::pci_clear_master(self.as_raw()) }
    }

    /// `pci_try_reset_function`: a function reset that gives up (`-EAGAIN`) instead of waiting
    /// for the device lock.
    pub(crate) fn try_reset_function(&self) -> Result {
        // SAFETY: valid device (type invariant).
        to_result(unsafe { bindings::pci_try_reset_function(self.as_raw()) })
    }

    /// Saves config space into the device and takes a copy of it ([`SavedState`]).
    pub(crate) fn save_state(&self) -> Option<SavedState> {
        let dev = self.as_raw();
        // SAFETY: valid device; `pci_store_saved_state` returns an allocation we own or null.
        let p = unsafe {
            bindings::pci_save_state(dev);
            bindings::pci_store_saved_state(dev)
        };
        NonNull::new(p).map(|p| SavedState { p })
    }

    /// `pci_save_state` alone: the current config space becomes what `restore_state` writes.
    pub(crate) fn save_current_state(&self) {
        // SAFETY: valid device (type invariant).
        unsafe { bindings::pci_save_state(self.as_raw()) };
    }

    /// Loads `saved` into the device's save area and frees it; `Err` if that failed (the
    /// caller then decides whether resetting with the current state is better than nothing).
    pub(crate) fn load_saved_state(&self, saved: SavedState) -> Result {
        let mut p = saved.p.as_ptr();
        core::mem::forget(saved);
        // SAFETY: valid device; ownership of `p` passes to the PCI core, which frees it and
        // nulls our pointer.
        to_result(unsafe { bindings::pci_load_and_free_saved_state(self.as_raw(), &mut p) })
    }

    /// Writes the device's save area back to its config space.
    pub(crate) fn restore_state(&self) {
        // SAFETY: valid device (type invariant).
        unsafe { bindings::pci_restore_state(self.as_raw()) }
    }

    /// Writes a config word as the host (not through user-space permission checks).
    pub(crate) fn write_config_word(&self, offset: i32, val: u16) -> Result {
        // SAFETY: valid device; the PCI core bounds-checks `offset`.
        to_result(unsafe { bindings::pci_write_config_word(self.as_raw(), offset, val) })
    }
}

impl PciFunction {
    /// Reads `size` (1, 2 or 4) bytes of config space at `offset` as the host
    /// (`pci_read_config_*`: no user-access blocking; on x86 without the PCI core's lock), as
    /// upstream's `vfio_config_init` reads the device to build the image.
    pub(crate) fn read_config_host(&self, offset: u64, size: usize) -> Result<u32> {
        let dev = self.as_raw();
        let off = offset as i32;
        let mut v32: u32 = 0;
        let mut v16: u16 = 0;
        let mut v8: u8 = 0;
        // SAFETY: `dev` is valid by the type invariant; the out-pointers are live locals; the
        // PCI core bounds-checks `offset`.
        let ret = unsafe {
            match size {
                4 => bindings::pci_read_config_dword(dev, off, &mut v32),
                2 => bindings::pci_read_config_word(dev, off, &mut v16),
                _ => bindings::pci_read_config_byte(dev, off, &mut v8),
            }
        };
        if ret != 0 {
            return Err(pcibios_err_to_errno(ret));
        }
        Ok(match size {
            4 => v32,
            2 => v16.into(),
            _ => v8.into(),
        })
    }
}

/// `pcibios_err_to_errno` (a static inline in `linux/pci.h`): the PCI core's `PCIBIOS_*`
/// result of `pci_{read,write}_config_*` as an errno.
fn pcibios_err_to_errno(err: core::ffi::c_int) -> kernel::error::Error {
    use kernel::error::code::*;
    match err as u32 {
        bindings::PCIBIOS_FUNC_NOT_SUPPORTED => ENOENT,
        bindings::PCIBIOS_BAD_VENDOR_ID => ENOTTY,
        bindings::PCIBIOS_DEVICE_NOT_FOUND => ENODEV,
        bindings::PCIBIOS_BAD_REGISTER_NUMBER => EFAULT,
        bindings::PCIBIOS_SET_FAILED => EIO,
        bindings::PCIBIOS_BUFFER_TOO_SMALL => ENOSPC,
        _ if err < 0 => kernel::error::Error::from_errno(err),
        _ => ERANGE,
    }
}

/// `to_result` of a config accessor, with the common success inline: these run on every
/// emulated config access, and the kernel crate's `to_result` is an out-of-line call.
#[inline(always)]
fn config_result(ret: core::ffi::c_int) -> Result {
    if ret == 0 {
        Ok(())
    } else {
        to_result(ret)
    }
}

impl PciFunction {
    /// Writes `size` (1, 2 or 4) bytes of config space at `offset` the way `sysfs` does
    /// (`pci_user_write_config_*`).
    pub(crate) fn write_config(&self, offset: u64, size: usize, val: u32) -> Result {
        let dev = self.as_raw();
        let off = offset as i32;
        // SAFETY: valid device (type invariant); the PCI core bounds-checks `offset`.
        let ret = unsafe {
            match size {
                4 => bindings::pci_user_write_config_dword(dev, off, val),
                2 => bindings::pci_user_write_config_word(dev, off, val as u16),
                _ => bindings::pci_user_write_config_byte(dev, off, val as u8),
            }
        };
        config_result(ret)
    }

    /// The function has no memory-enable bit in COMMAND (`pdev->no_command_memory`, SR-IOV
    /// VFs): its memory decode follows the PF.
    pub(crate) fn no_command_memory(&self) -> bool {
        self.raw().no_command_memory() != 0
    }

    /// Offset of the PM capability (`pdev->pm_cap`), 0 if none.
    pub(crate) fn pm_cap(&self) -> u8 {
        self.raw().pm_cap
    }

    /// The current power state (`pdev->current_state`: 0 = D0 .. 3 = D3hot, 4 = D3cold).
    pub(crate) fn current_state(&self) -> i32 {
        self.raw().current_state
    }

    /// `pci_set_power_state`.
    pub(crate) fn set_power_state(&self, state: i32) -> Result {
        // SAFETY: valid device (type invariant).
        to_result(unsafe { bindings::pci_set_power_state(self.as_raw(), state) })
    }

    /// `pci_num_vf`: enabled SR-IOV VFs of this PF.
    pub(crate) fn num_vf(&self) -> i32 {
        // SAFETY: valid device (type invariant).
        unsafe { bindings::pci_num_vf(self.as_raw()) }
    }

    /// `pcie_get_mps`.
    pub(crate) fn pcie_mps(&self) -> u32 {
        // SAFETY: valid device (type invariant).
        unsafe { bindings::pcie_get_mps(self.as_raw()) }.max(0) as u32
    }

    /// `pcie_set_readrq`.
    pub(crate) fn pcie_set_readrq(&self, bytes: u32) -> Result {
        // SAFETY: valid device (type invariant).
        to_result(unsafe { bindings::pcie_set_readrq(self.as_raw(), bytes as i32) })
    }

    /// `pci_read_vpd` of up to `buf.len()` bytes at `addr`; the number read.
    pub(crate) fn read_vpd(&self, addr: u16, buf: &mut [u8]) -> Result<usize> {
        // SAFETY: valid device; `buf` is a live buffer of the given length.
        let n = unsafe {
            bindings::pci_read_vpd(
                self.as_raw(),
                addr.into(),
                buf.len(),
                buf.as_mut_ptr().cast(),
            )
        };
        if n < 0 {
            Err(kernel::error::Error::from_errno(n as i32))
        } else {
            Ok(n as usize)
        }
    }

    /// `pci_write_vpd` of `buf` at `addr`; the number written.
    pub(crate) fn write_vpd(&self, addr: u16, buf: &[u8]) -> Result<usize> {
        // SAFETY: valid device; `buf` is a live buffer of the given length.
        let n = unsafe {
            bindings::pci_write_vpd(self.as_raw(), addr.into(), buf.len(), buf.as_ptr().cast())
        };
        if n < 0 {
            Err(kernel::error::Error::from_errno(n as i32))
        } else {
            Ok(n as usize)
        }
    }

    /// The facts the config-space emulator needs, read from `struct pci_dev`.
    pub(crate) fn config_info(&self) -> crate::logic::config_space::DeviceInfo {
        use crate::logic::config_space::{DeviceInfo, Resource};
        const IORESOURCE_IO: u64 = 0x100;
        const IORESOURCE_PREFETCH: u64 = 0x2000;
        const IORESOURCE_MEM_64: u64 = 0x10_0000;
        const IORESOURCE_ROM_SHADOW: u64 = 1 << 1;
        const IRQ_NOTCONNECTED: u32 = 1 << 31;
        const ROM: usize = 6;
        let raw = self.raw();
        let resource = |i: usize| -> Resource {
            let len = self.resource_len(i);
            match raw.resource.get(i) {
                Some(r) => {
                    let flags = r.flags as u64;
                    Resource {
                        start: if len == 0 { 0 } else { r.start },
                        len,
                        io: flags & IORESOURCE_IO != 0,
                        prefetch: flags & IORESOURCE_PREFETCH != 0,
                        mem64: flags & IORESOURCE_MEM_64 != 0,
                    }
                }
                None => Resource::default(),
            }
        };
        let mut bars = [Resource::default(); 6];
        for (i, b) in bars.iter_mut().enumerate() {
            *b = resource(i);
        }
        DeviceInfo {
            cfg_size: self.cfg_size() as u16,
            is_virtfn: raw.is_virtfn() != 0,
            vendor: raw.vendor,
            device: raw.device,
            no_command_memory: raw.no_command_memory() != 0,
            no_dma: false,
            nointx: false,
            hide_intx_pin: raw.irq == IRQ_NOTCONNECTED,
            pcie_flags: raw.pcie_flags_reg,
            bars,
            rom: resource(ROM),
            rom_shadow: raw
                .resource
                .get(ROM)
                .is_some_and(|r| r.flags as u64 & IORESOURCE_ROM_SHADOW != 0),
        }
    }
}

impl PciFunction {
    /// BAR `bar` (0..=6, 6 = ROM) as the host assigned it.
    pub(crate) fn bar_resource(&self, bar: usize) -> crate::logic::bar_rw::BarResource {
        const IORESOURCE_MEM: u64 = 0x200;
        let len = self.resource_len(bar);
        match self.raw().resource.get(bar) {
            Some(r) if len != 0 => crate::logic::bar_rw::BarResource {
                start: r.start,
                len,
                mem: r.flags as u64 & IORESOURCE_MEM != 0,
            },
            _ => crate::logic::bar_rw::BarResource::default(),
        }
    }

    /// The ROM is a shadow copy in RAM (`IORESOURCE_ROM_SHADOW`).
    pub(crate) fn rom_is_shadow(&self) -> bool {
        self.raw()
            .resource
            .get(6)
            .is_some_and(|r| r.flags as u64 & (1 << 1) != 0)
    }

    /// BAR `bar`'s parent resource, start, end and flags, for reserving the rest of its page.
    pub(crate) fn resource_parent(
        &self,
        bar: usize,
    ) -> Option<(
        *mut kernel::bindings::resource,
        u64,
        u64,
        kernel::ffi::c_ulong,
    )> {
        let r = self.raw().resource.get(bar)?;
        (!r.parent.is_null()).then_some((r.parent, r.start, r.end, r.flags))
    }

    /// The MSI-X table: (BAR, offset, size in bytes), from the MSI-X capability.
    pub(crate) fn msix_table(&self) -> Option<(usize, u64, u64)> {
        const PCI_MSIX_FLAGS: u64 = 2;
        const PCI_MSIX_TABLE: u64 = 4;
        let pos = self.raw().msix_cap;
        if pos == 0 {
            return None;
        }
        let flags = self.read_config(u64::from(pos) + PCI_MSIX_FLAGS, 2).ok()?;
        let table = self.read_config(u64::from(pos) + PCI_MSIX_TABLE, 4).ok()?;
        Some((
            (table & 0x7) as usize,
            u64::from(table & !0x7),
            (u64::from(flags & 0x7ff) + 1) * 16,
        ))
    }

    /// Maps the expansion ROM (`pci_map_rom`) for the life of the returned value.
    pub(crate) fn map_rom(&self) -> Option<RomMap<'_>> {
        let mut size = 0usize;
        // SAFETY: valid device; `size` is a live local.
        let io = unsafe { bindings::pci_map_rom(self.as_raw(), &mut size) };
        NonNull::new(io).map(|io| RomMap {
            pdev: self,
            io: io.as_ptr(),
            size: size as u64,
        })
    }

    /// Turns physical memory decode on if it is off and returns the COMMAND value to put
    /// back (upstream `vfio_pci_memory_lock_and_enable`; the caller holds the state mutex).
    pub(crate) fn enable_memory_decode(&self) -> u16 {
        const PCI_COMMAND_MEMORY: u32 = 0x2;
        let cmd = self.read_config(4, 2).unwrap_or(0);
        if cmd & PCI_COMMAND_MEMORY == 0 {
            let _ = self.write_config_word(4, (cmd | PCI_COMMAND_MEMORY) as u16);
        }
        cmd as u16
    }
}

/// A mapped expansion ROM (see [`PciFunction::map_rom`]); unmapped on drop.
pub(crate) struct RomMap<'a> {
    pdev: &'a PciFunction,
    /// The mapping.
    pub(crate) io: *mut core::ffi::c_void,
    /// Size of the ROM image (may be less than the BAR).
    pub(crate) size: u64,
}

impl Drop for RomMap<'_> {
    fn drop(&mut self) {
        // SAFETY: `io` came from `pci_map_rom` on this device.
        unsafe { bindings::pci_unmap_rom(self.pdev.as_raw(), self.io) };
    }
}

/// A copy of a function's config space taken by [`PciFunction::save_state`].
///
/// # Invariants
///
/// `p` is an allocation from `pci_store_saved_state`, owned by this value.
pub(crate) struct SavedState {
    p: NonNull<bindings::pci_saved_state>,
}

// SAFETY: the saved state is plain memory owned by us; nothing ties it to a thread.
unsafe impl Send for SavedState {}

impl Drop for SavedState {
    fn drop(&mut self) {
        // SAFETY: we own the allocation (type invariant); the saved state is a single kmalloc
        // (see `pci_store_saved_state`).
        unsafe { kernel::bindings::kfree(self.p.as_ptr().cast()) };
    }
}

/// Interrupt-related access (`features/interrupts.rs` is the only user).
impl PciFunction {
    /// The legacy interrupt line (`pdev->irq`): 0 or `IRQ_NOTCONNECTED` when there is none.
    pub(crate) fn irq(&self) -> u32 {
        self.raw().irq
    }

    /// Offset of the MSI capability (`pdev->msi_cap`), 0 if none.
    pub(crate) fn msi_cap(&self) -> u8 {
        self.raw().msi_cap
    }

    /// Offset of the MSI-X capability (`pdev->msix_cap`), 0 if none.
    pub(crate) fn msix_cap(&self) -> u8 {
        self.raw().msix_cap
    }

    /// `pci_is_pcie`.
    pub(crate) fn is_pcie(&self) -> bool {
        self.raw().pcie_cap != 0
    }

    /// `(vendor, device)` of the function.
    pub(crate) fn ids(&self) -> (u16, u16) {
        (self.raw().vendor, self.raw().device)
    }

    /// The 24-bit class code (base class, sub-class, programming interface).
    pub(crate) fn class(&self) -> u32 {
        self.raw().class
    }

    /// `pci_intx_mask_supported`: COMMAND.INTX_DISABLE works and STATUS.INTERRUPT is reliable.
    pub(crate) fn intx_mask_supported(&self) -> bool {
        extern "C" {
            fn vfio_pci_common_intx_mask_supported(pdev: *mut core::ffi::c_void) -> bool;
        }
        // SAFETY: valid device (type invariant); the helper reads one bit field.
        unsafe { vfio_pci_common_intx_mask_supported(self.as_raw().cast()) }
    }

    /// `pci_read_config_word` as the host; 0xffff if the read fails (like upstream, which
    /// uses whatever the read left).
    pub(crate) fn read_config_word(&self, offset: i32) -> u16 {
        let mut v: u16 = 0xffff;
        // SAFETY: valid device; `v` is a live local; the PCI core bounds-checks `offset`.
        unsafe { bindings::pci_read_config_word(self.as_raw(), offset, &mut v) };
        v
    }

    /// `pci_intx`: sets or clears COMMAND.INTX_DISABLE (`enable` clears it). Takes no sleeping
    /// lock: callable with interrupts off.
    pub(crate) fn intx(&self, enable: bool) {
        // SAFETY: valid device (type invariant).
        unsafe { bindings::pci_intx(self.as_raw(), enable.into()) }
    }

    /// `pci_check_and_mask_intx`: masks INTx if the function is asserting it; whether it was.
    /// Safe in hard-IRQ context (it takes the PCI core's `pci_lock` spinlock).
    pub(crate) fn check_and_mask_intx(&self) -> bool {
        // SAFETY: valid device (type invariant).
        unsafe { bindings::pci_check_and_mask_intx(self.as_raw()) }
    }

    /// `pci_check_and_unmask_intx`: unmasks INTx unless an interrupt is pending; whether it
    /// unmasked. Safe with interrupts off.
    pub(crate) fn check_and_unmask_intx(&self) -> bool {
        // SAFETY: valid device (type invariant).
        unsafe { bindings::pci_check_and_unmask_intx(self.as_raw()) }
    }

    /// `pci_alloc_irq_vectors(pdev, 1, nvec, MSI or MSI-X)`: the number allocated or a negative
    /// errno, as is (upstream passes a short count back to user space).
    pub(crate) fn alloc_irq_vectors(&self, nvec: u32, msix: bool) -> i32 {
        let flag = if msix {
            bindings::PCI_IRQ_MSIX
        } else {
            bindings::PCI_IRQ_MSI
        };
        // SAFETY: valid device (type invariant); no vectors are allocated (the caller's mode is
        // none).
        unsafe { bindings::pci_alloc_irq_vectors(self.as_raw(), 1, nvec, flag) }
    }

    /// `pci_free_irq_vectors`: disables MSI/MSI-X and frees every vector (none may still have
    /// a handler).
    pub(crate) fn free_irq_vectors(&self) {
        // SAFETY: valid device (type invariant).
        unsafe { bindings::pci_free_irq_vectors(self.as_raw()) }
    }

    /// `pci_irq_vector`: the Linux interrupt of vector `nr`, or a negative errno if it is not
    /// allocated.
    pub(crate) fn irq_vector(&self, nr: u32) -> i32 {
        // SAFETY: valid device (type invariant).
        unsafe { bindings::pci_irq_vector(self.as_raw(), nr) }
    }

    /// `pci_msix_can_alloc_dyn`: vectors can be added while MSI-X is enabled.
    pub(crate) fn msix_can_alloc_dyn(&self) -> bool {
        // SAFETY: valid device (type invariant).
        unsafe { bindings::pci_msix_can_alloc_dyn(self.as_raw()) }
    }

    /// `pci_msix_alloc_irq_at(pdev, index, NULL)`: the new vector's Linux interrupt or a
    /// negative errno.
    pub(crate) fn msix_alloc_irq_at(&self, index: u32) -> i32 {
        // SAFETY: valid device with MSI-X enabled (the caller's mode is MSI-X); no affinity.
        let map =
            unsafe { bindings::pci_msix_alloc_irq_at(self.as_raw(), index, core::ptr::null()) };
        if map.index < 0 {
            map.index
        } else {
            map.virq
        }
    }
}

// Shims (`dev_set_shims.c`, `pm_shims.c`, `pci_shims.c`) that take a `struct pci_dev`.
#[allow(improper_ctypes)]
extern "C" {
    fn vfio_pci_common_reset_scope(pdev: *mut bindings::pci_dev) -> core::ffi::c_int;
    fn vfio_pci_common_count_devs(
        pdev: *mut bindings::pci_dev,
        slot: bool,
        count: *mut u32,
    ) -> core::ffi::c_int;
    fn vfio_pci_common_reset_if_unlocked(pdev: *mut bindings::pci_dev) -> core::ffi::c_int;
    fn vfio_pci_common_pm_get(pdev: *mut bindings::pci_dev) -> core::ffi::c_int;
    fn vfio_pci_common_pm_put(pdev: *mut bindings::pci_dev);
    fn vfio_pci_common_pm_probe(pdev: *mut bindings::pci_dev, idle_d3: bool);
    fn vfio_pci_common_pm_remove(pdev: *mut bindings::pci_dev, idle_d3: bool);
    fn vfio_pci_common_pci_name(pdev: *mut bindings::pci_dev) -> *const core::ffi::c_char;
}

/// Lifecycle: resets, power management, SR-IOV.
impl PciFunction {
    /// `pdev->hdr_type`: 0 for a normal function, 1 for a bridge, 2 for CardBus.
    pub(crate) fn hdr_type(&self) -> u8 {
        self.raw().hdr_type
    }

    /// An SR-IOV physical function (`pdev->is_physfn`).
    pub(crate) fn is_physfn(&self) -> bool {
        self.raw().is_physfn() != 0
    }

    /// An SR-IOV virtual function (`pdev->is_virtfn`).
    pub(crate) fn is_virtfn(&self) -> bool {
        self.raw().is_virtfn() != 0
    }

    /// `pci_name`: the device's `DDDD:BB:DD.F` name.
    pub(crate) fn name(&self) -> &kernel::str::CStr {
        // SAFETY: valid device; the name is a NUL-terminated string owned by the device,
        // which outlives `self` (type invariant).
        unsafe { kernel::str::CStr::from_char_ptr(vfio_pci_common_pci_name(self.as_raw()).cast()) }
    }

    /// Which reset a hot reset of this function would be: `Ok(true)` a slot reset,
    /// `Ok(false)` a bus reset, `ENODEV` neither (upstream probes in this order).
    pub(crate) fn reset_scope(&self) -> Result<bool> {
        // SAFETY: valid device (type invariant).
        let r = unsafe { vfio_pci_common_reset_scope(self.as_raw()) };
        to_result(r.min(0)).map(|()| r == 1)
    }

    /// How many functions a slot (`slot`) or bus reset of this function affects.
    pub(crate) fn count_reset_devs(&self, slot: bool) -> Result<u32> {
        let mut n = 0;
        // SAFETY: valid device; `n` is a live local.
        to_result(unsafe { vfio_pci_common_count_devs(self.as_raw(), slot, &mut n) })?;
        Ok(n)
    }

    /// A function reset at close: the upstream bridge's and the device's locks taken here if
    /// free, without the save/restore around it (the caller restores its own saved state).
    /// Whether the reset happened.
    pub(crate) fn reset_if_unlocked(&self) -> bool {
        // SAFETY: valid device (type invariant); the helper releases what it locks.
        unsafe { vfio_pci_common_reset_if_unlocked(self.as_raw()) == 0 }
    }

    /// `pci_reset_bus` of the slot or bus this function is on (every function there is saved,
    /// reset and restored by the PCI core).
    pub(crate) fn reset_bus(&self) -> Result {
        // SAFETY: valid device (type invariant).
        to_result(unsafe { bindings::pci_reset_bus(self.as_raw()) })
    }

    /// `pm_runtime_resume_and_get`: wakes the function and holds it awake.
    pub(crate) fn pm_get(&self) -> Result {
        // SAFETY: valid device (type invariant).
        to_result(unsafe { vfio_pci_common_pm_get(self.as_raw()) })
    }

    /// `pm_runtime_put`: balances one [`PciFunction::pm_get`].
    pub(crate) fn pm_put(&self) {
        // SAFETY: valid device; called only after a successful `pm_get`.
        unsafe { vfio_pci_common_pm_put(self.as_raw()) }
    }

    /// At registration: allow runtime PM, and let the idle device suspend unless
    /// `disable_idle_d3`.
    pub(crate) fn pm_probe(&self, idle_d3: bool) {
        // SAFETY: valid device (type invariant).
        unsafe { vfio_pci_common_pm_probe(self.as_raw(), idle_d3) }
    }

    /// Undoes [`PciFunction::pm_probe`] at unregistration.
    pub(crate) fn pm_remove(&self, idle_d3: bool) {
        // SAFETY: valid device (type invariant).
        unsafe { vfio_pci_common_pm_remove(self.as_raw(), idle_d3) }
    }

    /// `pci_enable_sriov`.
    pub(crate) fn enable_sriov(&self, nr: i32) -> Result {
        // SAFETY: valid device; the caller holds the device lock (sriov_configure).
        to_result(unsafe { bindings::pci_enable_sriov(self.as_raw(), nr) })
    }

    /// `pci_disable_sriov`: removes the VFs (unbinding their drivers first).
    pub(crate) fn disable_sriov(&self) {
        // SAFETY: valid device; the caller holds the device lock.
        unsafe { bindings::pci_disable_sriov(self.as_raw()) }
    }
}
