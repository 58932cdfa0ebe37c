// SPDX-License-Identifier: GPL-2.0
//! The virtual config space of one device and how user accesses to it are answered: upstream
//! `vfio_config_do_rw` and the read/write handlers of `vfio_pci_config.c`, generic over the
//! physical device ([`ConfigDevice`]).
//!
//! Owns: the virtual image (`vconfig`), the per-byte owner map (`pci_config_map`), BAR sizing
//! state and the choice of MSI table. Never: touches a bit the permission tables (`perm`) do not
//! make writable, or indexes outside its arrays whatever the device or user supplies. The image
//! is built by `init` (in `config_init`).
//!
//! The state is plain data that is valid when all bytes are zero (an uninitialised space has
//! `cfg_size` 0, so every access fails with `EFAULT`): the kernel allocates it zeroed on the
//! heap, once per device, and calls `init` in place at every open, like upstream's `vdev`.

use super::errno::{Errno, EFAULT, EINVAL};
use super::overlay::{self, Overlay, OverlayInit, MAX_OVERLAYS};
use super::pci_regs::{self as r, ext_cap_id};
use super::perm::{self, MsiLayout, PermBits, ReadKind, WriteKind};

/// Owner-map value: no capability, raw access (`PCI_CAP_ID_INVALID`).
pub const MAP_INVALID: u8 = 0xff;
/// Owner-map value: fully virtual bytes (`PCI_CAP_ID_INVALID_VIRT`).
pub const MAP_INVALID_VIRT: u8 = 0xfe;
/// Owner-map value of the standard header (`PCI_CAP_ID_BASIC`).
pub const MAP_BASIC: u8 = 0;

/// The largest config space.
const SPACE: usize = r::CFG_SPACE_EXP_SIZE as usize;

/// One BAR or ROM resource as the host assigned it (`pdev->resource[i]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resource {
    /// `pci_resource_start`; 0 means unassigned, which user space sees as unimplemented.
    pub start: u64,
    /// `pci_resource_len`.
    pub len: u64,
    /// `IORESOURCE_IO`.
    pub io: bool,
    /// `IORESOURCE_PREFETCH`.
    pub prefetch: bool,
    /// `IORESOURCE_MEM_64`.
    pub mem64: bool,
}

/// What the emulator needs to know about the device that does not change while it is open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `pdev->cfg_size`: 256 or 4096.
    pub cfg_size: u16,
    /// `pdev->is_virtfn`: an SR-IOV VF (vendor/device come from `vendor`/`device`, no INTx pin,
    /// BARs never restored).
    pub is_virtfn: bool,
    /// `pdev->vendor`.
    pub vendor: u16,
    /// `pdev->device`.
    pub device: u16,
    /// `pdev->no_command_memory`: the device has no memory-enable bit; it is emulated.
    pub no_command_memory: bool,
    /// The device may not master the bus (a mediated device with no IOMMU domain of its own):
    /// COMMAND's bus-master bit is virtual, so the function never gets it.
    pub no_dma: bool,
    /// `vdev->nointx`: INTx is masked for good (also hides the pin, and BAR restore re-sets
    /// INTx disable).
    pub nointx: bool,
    /// The pin is hidden for another reason: `!CONFIG_VFIO_PCI_INTX` or
    /// `pdev->irq == IRQ_NOTCONNECTED`.
    pub hide_intx_pin: bool,
    /// `pdev->pcie_flags_reg` (PCIe capability version and type), 0 if not PCIe.
    pub pcie_flags: u16,
    /// The six standard BARs.
    pub bars: [Resource; r::STD_NUM_BARS],
    /// The expansion ROM.
    pub rom: Resource,
    /// `IORESOURCE_ROM_SHADOW` on the ROM resource (a shadow copy of 128 KiB exists).
    pub rom_shadow: bool,
}

/// Conditions upstream logs (`pci_dbg`/`pci_warn`/`pci_info`); the kernel may print them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A standard capability is hidden from user space.
    HidingCap {
        /// Capability ID.
        id: u8,
        /// Its offset.
        pos: u16,
    },
    /// An extended capability is hidden from user space.
    HidingEcap {
        /// Capability ID.
        id: u16,
        /// Its offset.
        pos: u16,
    },
    /// A variable-length capability whose length rule upstream does not know.
    UnknownLength {
        /// Capability ID.
        id: u16,
        /// Its offset.
        pos: u16,
        /// Extended capability.
        extended: bool,
    },
    /// Two capabilities claim the same byte; the later one wins.
    Conflict {
        /// The byte.
        pos: u16,
        /// The previous owner.
        was: u8,
        /// The new owner.
        now: u16,
        /// In extended space.
        extended: bool,
    },
    /// A VF reports an INTx pin, which the SR-IOV spec forbids.
    BogusVfIntxPin(u8),
    /// The device lost its BARs (reset behind our back); they are being restored.
    BarRestore,
}

/// The physical device behind a [`ConfigSpace`]: config accessors and the side effects
/// upstream's handlers trigger. Errors are returned as they come (upstream returns them to
/// user space as is).
pub trait ConfigDevice {
    /// `pci_user_read_config_{byte,word,dword}`: `size` is 1, 2 or 4; the value is
    /// zero-extended.
    fn read(&mut self, off: u16, size: u8) -> Result<u32, Errno>;
    /// `pci_user_write_config_{byte,word,dword}`.
    fn write(&mut self, off: u16, size: u8, val: u32) -> Result<(), Errno>;
    /// `pci_read_config_*`, used while building the image (no user-access checks), with
    /// PCIBIOS errors already converted to errnos.
    fn read_init(&mut self, off: u16, size: u8) -> Result<u32, Errno> {
        self.read(off, size)
    }
    /// Take `memory_lock` for writing, first zapping user mappings of BARs if `zap`
    /// (`vfio_pci_zap_and_down_write_memory_lock` or `down_write`).
    fn lock_memory(&mut self, zap: bool);
    /// Release `memory_lock`.
    fn unlock_memory(&mut self);
    /// A user-triggered function reset (PCIe or AF FLR): zap, lock memory,
    /// `pci_try_reset_function`, unlock. Upstream ignores its result.
    fn reset_function(&mut self);
    /// A user write of PMCSR: `vfio_lock_and_set_power_state` with D0..D3hot (0..=3).
    fn set_power_state(&mut self, state: u8);
    /// The virtual INTx-disable bit was set: `vfio_pci_intx_mask`.
    fn intx_mask(&mut self);
    /// The virtual INTx-disable bit was cleared: `vfio_pci_intx_unmask`.
    fn intx_unmask(&mut self);
    /// `vdev->irq_type == VFIO_PCI_MSI_IRQ_INDEX`: MSI is enabled through the ioctl.
    fn msi_active(&self) -> bool;
    /// `vdev->msi_qmax`: log2 of the MSI vectors the host allocated.
    fn msi_qmax(&self) -> u8;
    /// `pcie_get_mps`: the device's max payload size in bytes.
    fn pcie_mps(&mut self) -> u32;
    /// `pcie_set_readrq` (result ignored, like upstream).
    fn pcie_set_readrq(&mut self, bytes: u32);
    /// `pci_read_vpd(addr, 4)`: the bytes read (unread bytes 0), or the error.
    fn vpd_read(&mut self, addr: u16) -> Result<[u8; 4], Errno>;
    /// `pci_write_vpd(addr, 4)`: the number of bytes written, or the error.
    fn vpd_write(&mut self, addr: u16, data: [u8; 4]) -> Result<usize, Errno>;
    /// Something upstream would log.
    fn notice(&mut self, _what: Notice) {}
    /// A user read of a variant overlay: `val` is its virtual value (`count` bytes at `pos`);
    /// the result is what user space sees.
    fn overlay_read(&mut self, _pos: u16, _count: usize, val: u32) -> u32 {
        val
    }
    /// A user write changed a variant overlay to `val` (`count` bytes at `pos`).
    fn overlay_write(&mut self, _pos: u16, _count: usize, _val: u32) {}
}

/// The virtual config space of one device.
pub struct ConfigSpace {
    /// The virtual image (`vdev->vconfig`), little-endian as on the bus.
    pub(super) vconfig: [u8; SPACE],
    /// Per-byte owner: capability ID, [`MAP_BASIC`], [`MAP_INVALID`] or [`MAP_INVALID_VIRT`].
    pub(super) map: [u8; SPACE],
    /// The device facts given to `init`.
    pub(super) info: DeviceInfo,
    /// Size of the space user space may access; 0 until `init` succeeds.
    pub(super) cfg_size: u16,
    /// Bytes of `vconfig` and `map` from here on are as `init` leaves them (0 and
    /// [`MAP_INVALID`]), so the next `init` clears only below here and below its own bound
    /// (`config_init`); [`SPACE`] (everything) until the first `init`.
    pub(super) init_clean_from: u16,
    /// BARs and ROM as found at `init`, restored after a reset behind our back.
    pub(super) rbar: [u32; 7],
    /// The virtual BARs need re-sizing before the next read.
    pub(super) bardirty: bool,
    /// The device has extended capabilities (kept across opens, like upstream's bit).
    pub(super) extended_caps: bool,
    /// Which MSI table this device uses (0: none yet).
    pub(super) msi_layout: MsiLayout,
    /// The virtual INTx-disable bit as last acted on (`vdev->virq_disabled`); the interrupt
    /// code reads it when it enables INTx.
    pub virq_disabled: bool,
    /// Variant overlays of the current open, `n_overlays` used.
    pub(super) overlays: [Overlay; MAX_OVERLAYS],
    /// How many of `overlays` are in use.
    pub(super) n_overlays: u8,
    /// The dwords whose image changed since the lock-free read table was last brought up to
    /// date lie in `fast_dirty.0..=fast_dirty.1` (empty when `.0 > .1`; see `config_fast`).
    pub(super) fast_dirty: (u16, u16),
    /// The bytes in which `default_write` stored virtual bits since that update:
    /// `fast_vstore.0..=fast_vstore.1` (see `config_fast`, virtual writes).
    pub(super) fast_vstore: (u16, u16),
    /// The owner map or the overlays changed: the table must be built again.
    pub(super) fast_rebuild: bool,
    /// `bardirty` changed: the BAR and ROM entries of the table must be rebuilt (they are
    /// lock-free only while the BARs need no sizing).
    pub(super) fast_bars_stale: bool,
}

/// The widest naturally aligned access (4, 2 or 1 bytes) at `pos` of at most `n` bytes
/// (upstream `vfio_pci_config_rw`'s width rule).
#[inline]
pub(super) fn access_width(pos: u64, n: usize) -> usize {
    if n >= 4 && pos % 4 == 0 {
        4
    } else if n >= 2 && pos % 2 == 0 {
        2
    } else {
        1
    }
}

/// The low `count` (1 to 4) bytes of a `u32`.
pub(super) fn size_mask(count: usize) -> u32 {
    if count >= 4 {
        u32::MAX
    } else {
        (1u32 << (8 * count)) - 1
    }
}

#[inline]
pub(super) fn is_bar(offset: u16) -> bool {
    (r::BASE_ADDRESS_0..r::BASE_ADDRESS_5 + 4).contains(&offset)
        || (r::ROM_ADDRESS..r::ROM_ADDRESS + 4).contains(&offset)
}

impl ConfigSpace {
    /// An empty, uninitialised space (no device, size 0): what host tests start from, and what
    /// the kernel copies into every new device's allocation (not an all-zero byte pattern:
    /// `fast_dirty` starts empty, and no layout rule makes zero bytes a valid enum).
    pub const fn zeroed() -> Self {
        Self {
            vconfig: [0; SPACE],
            map: [0; SPACE],
            info: DeviceInfo {
                cfg_size: 0,
                is_virtfn: false,
                vendor: 0,
                device: 0,
                no_command_memory: false,
                no_dma: false,
                nointx: false,
                hide_intx_pin: false,
                pcie_flags: 0,
                bars: [Resource {
                    start: 0,
                    len: 0,
                    io: false,
                    prefetch: false,
                    mem64: false,
                }; r::STD_NUM_BARS],
                rom: Resource {
                    start: 0,
                    len: 0,
                    io: false,
                    prefetch: false,
                    mem64: false,
                },
                rom_shadow: false,
            },
            cfg_size: 0,
            init_clean_from: SPACE as u16,
            rbar: [0; 7],
            bardirty: false,
            extended_caps: false,
            msi_layout: 0,
            virq_disabled: false,
            overlays: [Overlay {
                offset: 0,
                size: 0,
                writable: 0,
                init: OverlayInit::Device,
            }; MAX_OVERLAYS],
            n_overlays: 0,
            fast_dirty: (u16::MAX, 0),
            fast_vstore: (u16::MAX, 0),
            fast_rebuild: false,
            fast_bars_stale: false,
        }
    }

    /// Adds a variant overlay (after `init`, at every open): from now on user space reads its
    /// virtual value and writes only its writable bits, and the device sees neither.
    /// `-EINVAL` for a bad shape, an overlap with another overlay or too many overlays.
    pub fn add_overlay<D: ConfigDevice>(&mut self, dev: &mut D, o: &Overlay) -> Result<(), Errno> {
        o.validate(self.cfg_size)?;
        if self.n_overlays as usize >= MAX_OVERLAYS {
            return Err(EINVAL);
        }
        if (o.offset..o.offset + o.size as u16).any(|p| self.overlay_at(p).is_some()) {
            return Err(EINVAL);
        }
        let value = match o.init {
            OverlayInit::Device => dev.read_init(o.offset, o.size)?,
            OverlayInit::Value(v) => v,
        };
        let bytes = value.to_le_bytes();
        self.virtualize(o.offset, bytes.get(..o.size as usize).ok_or(EINVAL)?)?;
        if let Some(slot) = self.overlays.get_mut(self.n_overlays as usize) {
            *slot = *o;
            self.n_overlays += 1;
        }
        Ok(())
    }

    /// The overlay owning byte `pos`, if any.
    fn overlay_at(&self, pos: u16) -> Option<&Overlay> {
        self.overlays
            .get(..self.n_overlays as usize)
            .unwrap_or(&[])
            .iter()
            .find(|o| o.contains(pos))
    }

    /// The writable mask of `count` bytes at `pos` in virtual bytes: an overlay's own bits,
    /// all bits of other virtual bytes.
    fn virt_write_mask(&self, pos: u16, count: usize) -> u32 {
        let mut mask = 0u32;
        for i in 0..count.min(4) {
            let p = pos + i as u16;
            let m = match self.overlay_at(p) {
                Some(o) => o.writable_byte(p),
                None => 0xff,
            };
            mask |= (m as u32) << (8 * i);
        }
        mask
    }

    pub(super) fn touches_overlay(&self, pos: u16, count: usize) -> bool {
        self.n_overlays > 0 && (0..count as u16).any(|i| self.overlay_at(pos + i).is_some())
    }

    /// Size of the accessible space (0 before a successful `init`).
    pub fn cfg_size(&self) -> u16 {
        self.cfg_size
    }

    /// The virtual image (`vconfig`), `cfg_size` bytes.
    pub fn vconfig(&self) -> &[u8] {
        self.vconfig.get(..self.cfg_size as usize).unwrap_or(&[])
    }

    /// The owner of each byte (`pci_config_map`), `cfg_size` bytes.
    pub fn owner_map(&self) -> &[u8] {
        self.map.get(..self.cfg_size as usize).unwrap_or(&[])
    }

    /// The virtual interrupt pin (0: no INTx), as `vfio_pci_get_irq_count` reads it.
    pub fn interrupt_pin(&self) -> u8 {
        self.vbyte(r::INTERRUPT_PIN)
    }

    /// The virtual COMMAND register.
    #[inline]
    pub fn command(&self) -> u16 {
        self.vget(r::COMMAND, 2) as u16
    }

    /// `__vfio_pci_memory_enabled`: BARs may be accessed (`below_d3hot`: the device's current
    /// power state is below D3hot).
    pub fn memory_enabled(&self, below_d3hot: bool) -> bool {
        below_d3hot && (self.info.no_command_memory || self.command() & r::COMMAND_MEMORY != 0)
    }

    /// Make `bytes` at `off` fully virtual (read and written in the image only), the way the
    /// IGD variant virtualizes its OpRegion address (`PCI_CAP_ID_INVALID_VIRT`). For variant
    /// overlays; `EINVAL` if the range leaves config space.
    pub fn virtualize(&mut self, off: u16, bytes: &[u8]) -> Result<(), Errno> {
        let start = off as usize;
        let end = start.checked_add(bytes.len()).ok_or(EINVAL)?;
        if end > self.cfg_size as usize {
            return Err(EINVAL);
        }
        let image = self.vconfig.get_mut(start..end).ok_or(EINVAL)?;
        image.copy_from_slice(bytes);
        self.fast_rebuild = true;
        self.map
            .get_mut(start..end)
            .ok_or(EINVAL)?
            .fill(MAP_INVALID_VIRT);
        Ok(())
    }

    pub(super) fn vbyte(&self, pos: u16) -> u8 {
        self.vconfig.get(pos as usize).copied().unwrap_or(0)
    }

    pub(super) fn mbyte(&self, pos: u16) -> u8 {
        self.map.get(pos as usize).copied().unwrap_or(MAP_INVALID)
    }

    /// `count` (≤ 4) image bytes at `pos`, little-endian; bytes past the array read 0.
    #[inline]
    pub(super) fn vget(&self, pos: u16, count: usize) -> u32 {
        if let Some(v) = perm::le_at(&self.vconfig, pos as usize, count) {
            return v;
        }
        let mut v = 0u32;
        for i in 0..count.min(4) {
            let b = self.vconfig.get(pos as usize + i).copied().unwrap_or(0);
            v |= (b as u32) << (8 * i);
        }
        v
    }

    /// Stores the low `count` (≤ 4) bytes of `val` at `pos`; bytes past the array are dropped.
    #[inline]
    pub(super) fn vset(&mut self, pos: u16, count: usize, val: u32) {
        self.mark_fast_dirty(pos, count);
        if perm::set_le_at(&mut self.vconfig, pos as usize, count, val) {
            return;
        }
        for i in 0..count.min(4) {
            if let Some(b) = self.vconfig.get_mut(pos as usize + i) {
                *b = (val >> (8 * i)) as u8;
            }
        }
    }

    /// `vfio_find_cap_start`: the first byte of the run of `pos`'s owner that contains `pos`,
    /// not looking below the header (standard space) or below 256 (extended space). The
    /// header's bytes start at 0.
    fn find_cap_start(&self, pos: u16) -> u16 {
        let cap = self.mbyte(pos);
        if cap == MAP_BASIC {
            return 0;
        }
        let base = if pos >= r::CFG_SPACE_SIZE {
            r::CFG_SPACE_SIZE
        } else {
            r::STD_HEADER_SIZEOF
        };
        let mut p = pos;
        while p > base && self.mbyte(p - 1) == cap {
            p -= 1;
        }
        p
    }

    /// `vfio_pci_cap_remaining_dword`: bytes from `pos` to the end of its dword or of its
    /// owner's run, whichever is first.
    ///
    /// On every config access, so done on the dword's four owner bytes at once: the run is the
    /// number of low-order bytes, from `pos` up, equal to `pos`'s owner.
    #[inline]
    fn remaining_in_dword(&self, pos: u16) -> usize {
        let p = pos as usize;
        let base = p & !3;
        let k = p - base;
        let Some(&[b0, b1, b2, b3]) = self.map.get(base..base + 4) else {
            return 1;
        };
        let owners = u32::from_le_bytes([b0, b1, b2, b3]) >> (8 * k);
        let cap = owners & 0xff;
        // Zero bytes where the owner equals `pos`'s; the shifted-in top bytes also read as
        // equal, hence the cap at the end of the dword.
        let differ = owners ^ (cap * 0x0101_0101);
        let run = if differ == 0 {
            4
        } else {
            (differ.trailing_zeros() / 8) as usize
        };
        run.min(4 - k)
    }

    /// [`Self::remaining_in_dword`] for the spec tests.
    #[cfg(test)]
    pub(super) fn remaining_in_dword_for_tests(&self, pos: u16) -> usize {
        self.remaining_in_dword(pos)
    }

    /// The size of the next access of a request of `remaining` bytes at `pos`, or the error
    /// that ends the request. Like upstream: `EFAULT` unless the whole remaining request fits
    /// in config space; then the widest naturally aligned 4/2/1 access that stays inside one
    /// owner's run.
    #[inline]
    pub fn next_access(&self, pos: u64, remaining: usize) -> Result<usize, Errno> {
        let cfg = self.cfg_size as u64;
        let end = pos.checked_add(remaining as u64).ok_or(EFAULT)?;
        if pos >= cfg || end > cfg {
            return Err(EFAULT);
        }
        // In range now, so `pos` < cfg_size ≤ 4096; the width rule is `config_rw`'s.
        Ok(access_width(
            pos,
            remaining.min(self.remaining_in_dword(pos as u16)),
        ))
    }

    /// The table that owns `pos` and the start of its capability (upstream's dispatch in
    /// `vfio_config_do_rw`).
    #[inline]
    pub(super) fn perm_at(&self, pos: u16) -> (&'static PermBits, u16) {
        let id = self.mbyte(pos);
        if id == MAP_INVALID {
            (&perm::UNASSIGNED, pos)
        } else if id == MAP_INVALID_VIRT {
            (&perm::VIRT, pos)
        } else if pos >= r::CFG_SPACE_SIZE {
            // An ID beyond the known ones can only be the placeholder of a hidden first
            // extended capability: read-only, header virtualized.
            let p = if id as u16 > ext_cap_id::MAX {
                &perm::DIRECT_RO
            } else {
                perm::ecap_perms(id)
            };
            (p, self.find_cap_start(pos))
        } else if id == MAP_BASIC && self.info.no_dma {
            (&perm::BASIC_NO_DMA, 0)
        } else {
            let start = if id > MAP_BASIC {
                self.find_cap_start(pos)
            } else {
                0
            };
            (perm::cap_perms(id, self.msi_layout), start)
        }
    }

    /// Reads the next chunk of a user read of `remaining` bytes at `pos`: returns its size
    /// (1, 2 or 4) and its value (little-endian bytes in the low end).
    pub fn read<D: ConfigDevice>(
        &mut self,
        dev: &mut D,
        pos: u64,
        remaining: usize,
    ) -> Result<(usize, u32), Errno> {
        let count = self.next_access(pos, remaining)?;
        let pos = pos as u16;
        let (perm, start) = self.perm_at(pos);
        let offset = pos.wrapping_sub(start);
        let val = match perm.read {
            ReadKind::Default => self.default_read(dev, perm, pos, count, offset)?,
            ReadKind::Basic => self.basic_read(dev, perm, pos, count, offset)?,
            ReadKind::Msi => self.msi_read(dev, perm, pos, count, offset)?,
            ReadKind::Direct => self.direct_read(dev, pos, count, offset)?,
            ReadKind::Raw => dev.read(pos, count as u8)? & size_mask(count),
            ReadKind::Virt if self.touches_overlay(pos, count) => {
                dev.overlay_read(pos, count, self.vget(pos, count)) & size_mask(count)
            }
            ReadKind::Virt => self.vget(pos, count),
        };
        Ok((count, val))
    }

    /// The next chunk of a user write of `remaining` bytes at `pos`: its size, and whether its
    /// owner takes the written bytes (else the write is accepted and dropped, and upstream does
    /// not even read the user's buffer). Lets the caller copy from user space before taking
    /// any lock; depends only on the owner map, which changes only at `init`.
    pub fn write_plan(&self, pos: u64, remaining: usize) -> Result<(usize, bool), Errno> {
        let count = self.next_access(pos, remaining)?;
        let (perm, _) = self.perm_at(pos as u16);
        Ok((count, perm.write_fn.is_some()))
    }

    /// Writes the next chunk of a user write of `remaining` bytes at `pos` and returns its
    /// size. `fetch(size)` supplies the chunk's bytes (little-endian in the low end); like
    /// upstream's `copy_from_user`, it is only called when the owner accepts writes, so a
    /// write to read-only bytes succeeds without touching the user buffer.
    pub fn write<D, F>(
        &mut self,
        dev: &mut D,
        pos: u64,
        remaining: usize,
        fetch: F,
    ) -> Result<usize, Errno>
    where
        D: ConfigDevice,
        F: FnOnce(usize) -> Result<u32, Errno>,
    {
        let count = self.next_access(pos, remaining)?;
        let pos = pos as u16;
        let (perm, start) = self.perm_at(pos);
        let Some(kind) = perm.write_fn else {
            return Ok(count);
        };
        let val = fetch(count)? & size_mask(count);
        let offset = pos.wrapping_sub(start);
        match kind {
            WriteKind::Default => self.default_write(dev, perm, pos, count, offset, val)?,
            WriteKind::Basic => self.basic_write(dev, perm, pos, count, offset, val)?,
            WriteKind::Pm => self.pm_write(dev, perm, pos, count, offset, val)?,
            WriteKind::Vpd => self.vpd_write(dev, perm, pos, count, offset, val)?,
            WriteKind::Exp => self.exp_write(dev, perm, pos, count, offset, val)?,
            WriteKind::Af => self.af_write(dev, perm, pos, count, offset, val)?,
            WriteKind::Msi => self.msi_write(dev, perm, pos, count, offset, val)?,
            WriteKind::Raw => dev.write(pos, count as u8, val)?,
            WriteKind::Virt if self.touches_overlay(pos, count) => {
                let new =
                    overlay::merge(self.vget(pos, count), val, self.virt_write_mask(pos, count));
                self.vset(pos, count, new);
                dev.overlay_write(pos, count, new);
            }
            WriteKind::Virt => self.vset(pos, count, val),
        }
        Ok(count)
    }

    /// A whole user read or write (`vfio_pci_config_rw` on an in-kernel buffer): `pos` is the
    /// offset inside the config region. Stops at the first error and returns it, even after
    /// some bytes were transferred, like upstream.
    pub fn rw<D: ConfigDevice>(
        &mut self,
        dev: &mut D,
        pos: u64,
        buf: &mut [u8],
        is_write: bool,
    ) -> Result<usize, Errno> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = pos.checked_add(done as u64).ok_or(EFAULT)?;
            let left = buf.len() - done;
            let n = if is_write {
                let chunk = buf.get(done..).ok_or(EFAULT)?;
                self.write(dev, at, left, |n| {
                    let mut v = 0u32;
                    for (i, b) in chunk.iter().take(n).enumerate() {
                        v |= (*b as u32) << (8 * i);
                    }
                    Ok(v)
                })?
            } else {
                let (n, v) = self.read(dev, at, left)?;
                for (i, b) in buf.iter_mut().skip(done).take(n).enumerate() {
                    *b = (v >> (8 * i)) as u8;
                }
                n
            };
            done += n;
        }
        Ok(done)
    }

    // ---- read handlers ----

    /// `vfio_default_config_read`.
    fn default_read<D: ConfigDevice>(
        &mut self,
        dev: &mut D,
        perm: &PermBits,
        pos: u16,
        count: usize,
        offset: u16,
    ) -> Result<u32, Errno> {
        let mut val = self.vget(pos, count);
        let virt = perm.virt_bits(offset as usize, count);
        if virt != size_mask(count) {
            let phys = dev.read(pos, count as u8)? & size_mask(count);
            val = (phys & !virt) | (val & virt);
        }
        Ok(val)
    }

    /// `vfio_basic_config_read`.
    fn basic_read<D: ConfigDevice>(
        &mut self,
        dev: &mut D,
        perm: &PermBits,
        pos: u16,
        count: usize,
        offset: u16,
    ) -> Result<u32, Errno> {
        if is_bar(offset) {
            self.bar_fixup();
        }
        let mut val = self.default_read(dev, perm, pos, count, offset)?;
        if offset == r::COMMAND && self.info.no_command_memory {
            val |= (self.command() & r::COMMAND_MEMORY) as u32;
        }
        Ok(val)
    }

    /// `vfio_msi_config_read`. Upstream refreshes the queue-size field at the capability's
    /// *start* rather than at its message control (`&vconfig[start]`, not
    /// `start + PCI_MSI_FLAGS`), which rewrites bits 1..3 of the image's ID byte; the ID is
    /// never read from the image, so this is invisible. We do the same.
    fn msi_read<D: ConfigDevice>(
        &mut self,
        dev: &mut D,
        perm: &PermBits,
        pos: u16,
        count: usize,
        offset: u16,
    ) -> Result<u32, Errno> {
        if offset <= r::MSI_FLAGS && offset as usize + count >= r::MSI_FLAGS as usize {
            let start = self.find_cap_start(pos);
            let mut flags = self.vget(start, 2) as u16;
            flags &= !r::MSI_FLAGS_QMASK;
            flags |= (dev.msi_qmax() as u16) << 1;
            self.vset(start, 2, flags as u32);
        }
        self.default_read(dev, perm, pos, count, offset)
    }

    /// `vfio_direct_config_read`: from the device, but capability IDs and next pointers
    /// (the whole header dword in extended space) from the image.
    fn direct_read<D: ConfigDevice>(
        &mut self,
        dev: &mut D,
        pos: u16,
        count: usize,
        offset: u16,
    ) -> Result<u32, Errno> {
        let mut val = dev.read(pos, count as u8)? & size_mask(count);
        if pos >= r::CFG_SPACE_SIZE {
            if offset < 4 {
                val = self.vget(pos, count);
            }
        } else if pos >= r::STD_HEADER_SIZEOF {
            if offset == r::CAP_LIST_ID && count > 1 {
                let n = count.min(r::CAP_FLAGS as usize);
                let m = size_mask(n);
                val = (val & !m) | (self.vget(pos, n) & m);
            } else if offset == r::CAP_LIST_NEXT {
                val = (val & !0xff) | self.vbyte(pos) as u32;
            }
        }
        Ok(val)
    }

    /// `vfio_bar_fixup`: size the virtual BARs against the host's resources, once per change.
    fn bar_fixup(&mut self) {
        if !self.bardirty {
            return;
        }
        let mut i = 0usize;
        while i < r::STD_NUM_BARS {
            let vbar = r::BASE_ADDRESS_0 + 4 * i as u16;
            let res = self.info.bars.get(i).copied().unwrap_or_default();
            if res.start == 0 {
                // Not mapped by the host: unimplemented for user space.
                self.vset(vbar, 4, 0);
                i += 1;
                continue;
            }
            let mask = !res.len.wrapping_sub(1);
            let flags = if res.io {
                r::BASE_ADDRESS_SPACE_IO
            } else {
                (if res.prefetch {
                    r::BASE_ADDRESS_MEM_PREFETCH
                } else {
                    0
                }) | (if res.mem64 {
                    r::BASE_ADDRESS_MEM_TYPE_64
                } else {
                    0
                })
            };
            let v = (self.vget(vbar, 4) & mask as u32) | flags;
            self.vset(vbar, 4, v);
            // Upstream tests the resulting value, not the resource flags: a 4-byte I/O BAR
            // whose user-written bit 2 survived the mask is taken for a 64-bit BAR, too.
            if v & r::BASE_ADDRESS_MEM_TYPE_64 != 0 {
                let hi = vbar + 4;
                let h = self.vget(hi, 4) & (mask >> 32) as u32;
                self.vset(hi, 4, h);
                i += 1;
            }
            i += 1;
        }
        let rom = self.info.rom;
        let v = self.vget(r::ROM_ADDRESS, 4);
        let v = if rom.start != 0 {
            v & (!rom.len.wrapping_sub(1) as u32 | r::ROM_ADDRESS_ENABLE)
        } else if self.info.rom_shadow {
            v & (!(0x20000u32 - 1) | r::ROM_ADDRESS_ENABLE)
        } else {
            0
        };
        self.vset(r::ROM_ADDRESS, 4, v);
        self.set_bardirty(false);
    }

    /// Puts the registers of the 64-bit BAR pair `bar`, `bar + 1` back to 0 (upstream
    /// `nvgrace-gpu` for its memory BARs at open and at `VFIO_DEVICE_RESET`); the next read
    /// sizes them again.
    pub fn clear_bar_pair(&mut self, bar: usize) {
        for i in [bar, bar + 1] {
            if i < r::STD_NUM_BARS {
                self.vset(r::BASE_ADDRESS_0 + 4 * i as u16, 4, 0);
            }
        }
        self.set_bardirty(true);
    }

    /// Sets `bardirty`, and marks the table's BAR entries stale when it changes.
    #[inline]
    pub(super) fn set_bardirty(&mut self, dirty: bool) {
        if self.bardirty != dirty {
            self.bardirty = dirty;
            self.fast_bars_stale = true;
        }
    }

    // ---- write handlers ----

    /// `vfio_default_config_write`.
    #[inline]
    fn default_write<D: ConfigDevice>(
        &mut self,
        dev: &mut D,
        perm: &PermBits,
        pos: u16,
        count: usize,
        offset: u16,
        val: u32,
    ) -> Result<(), Errno> {
        self.default_write_with(dev, perm, pos, count, offset, val, None)
    }

    /// `vfio_default_config_write`, with the device's current value of the chunk when the
    /// caller has just read it (`phys`), so the read-modify-write reads it only once.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn default_write_with<D: ConfigDevice>(
        &mut self,
        dev: &mut D,
        perm: &PermBits,
        pos: u16,
        count: usize,
        offset: u16,
        val: u32,
        phys: Option<u32>,
    ) -> Result<(), Errno> {
        let write = perm.write_bits(offset as usize, count);
        if write == 0 {
            return Ok(());
        }
        let virt = perm.virt_bits(offset as usize, count);
        if write & virt != 0 {
            let mut v = self.vget(pos, count);
            v &= !(write & virt);
            v |= val & (write & virt);
            self.vset(pos, count, v);
            self.mark_virt_store(pos, count);
        }
        if write & !virt != 0 {
            let mut phys = match phys {
                Some(v) => v,
                None => dev.read(pos, count as u8)?,
            } & size_mask(count);
            phys &= !(write & !virt);
            phys |= val & (write & !virt);
            dev.write(pos, count as u8, phys)?;
        }
        Ok(())
    }

    /// `vfio_need_bar_restore`: a BAR we saw at `init` no longer reads back the same.
    fn need_bar_restore<D: ConfigDevice>(&self, dev: &mut D) -> bool {
        for (i, &rbar) in self.rbar.iter().take(r::STD_NUM_BARS).enumerate() {
            if rbar != 0 {
                match dev.read(r::BASE_ADDRESS_0 + 4 * i as u16, 4) {
                    Ok(bar) if bar == rbar => {}
                    _ => return true,
                }
            }
        }
        false
    }

    /// `vfio_bar_restore`: put back the BARs and ROM of `init` after a reset behind our back.
    fn bar_restore<D: ConfigDevice>(&self, dev: &mut D) {
        if self.info.is_virtfn {
            return;
        }
        dev.notice(Notice::BarRestore);
        for (i, &rbar) in self.rbar.iter().take(r::STD_NUM_BARS).enumerate() {
            let _ = dev.write(r::BASE_ADDRESS_0 + 4 * i as u16, 4, rbar);
        }
        let _ = dev.write(r::ROM_ADDRESS, 4, self.rbar[6]);
        if self.info.nointx {
            // A failed read leaves the all-ones error response in upstream's variable.
            let cmd = dev.read(r::COMMAND, 2).unwrap_or(0xffff) as u16;
            let _ = dev.write(r::COMMAND, 2, (cmd | r::COMMAND_INTX_DISABLE) as u32);
        }
    }

    /// `vfio_basic_config_write`.
    fn basic_write<D: ConfigDevice>(
        &mut self,
        dev: &mut D,
        perm: &PermBits,
        pos: u16,
        count: usize,
        offset: u16,
        val: u32,
    ) -> Result<(), Errno> {
        let new_cmd = val as u16;
        // Upstream reads COMMAND here and again for `vfio_default_config_write`'s
        // read-modify-write: one read does for both when nothing else touches the device in
        // between. So the BARs are compared first (upstream compares them between the two
        // reads), and COMMAND's read is as close to its write as upstream's second one.
        let mut phys_now = None;
        if offset == r::COMMAND {
            let bars_lost = self.need_bar_restore(dev);
            let phys_cmd = dev.read(r::COMMAND, 2)? as u16;
            let virt_cmd = self.command();
            let phys_io = phys_cmd & r::COMMAND_IO != 0;
            let virt_io = virt_cmd & r::COMMAND_IO != 0;
            let new_io = new_cmd & r::COMMAND_IO != 0;
            let phys_mem = phys_cmd & r::COMMAND_MEMORY != 0;
            let virt_mem = virt_cmd & r::COMMAND_MEMORY != 0;
            let new_mem = new_cmd & r::COMMAND_MEMORY != 0;

            dev.lock_memory(!new_mem);
            // Enabling what we believe is enabled but the device shows disabled means the
            // device was reset behind our back: restore its BARs before they decode.
            if (new_mem && virt_mem && !phys_mem && !self.info.no_command_memory)
                || (new_io && virt_io && !phys_io)
                || bars_lost
            {
                self.bar_restore(dev);
            } else if count == 2 && new_mem {
                // Turning memory decode off zaps the user's mappings first (time in which
                // the host may change COMMAND, as its INTx masking does): read again then.
                phys_now = Some(phys_cmd as u32);
            }
        }

        if let Err(e) = self.default_write_with(dev, perm, pos, count, offset, val, phys_now) {
            if offset == r::COMMAND {
                dev.unlock_memory();
            }
            return Err(e);
        }

        if offset == r::COMMAND {
            // Remember the enables we were asked for, for the test above next time.
            let mask = r::COMMAND_MEMORY | r::COMMAND_IO;
            let cmd = (self.command() & !mask) | (new_cmd & mask);
            self.vset(r::COMMAND, 2, cmd as u32);
            dev.unlock_memory();
        }

        if offset == r::COMMAND || offset == r::COMMAND + 1 {
            let virt_intx_disable = self.command() & r::COMMAND_INTX_DISABLE != 0;
            if virt_intx_disable && !self.virq_disabled {
                self.virq_disabled = true;
                dev.intx_mask();
            } else if !virt_intx_disable && self.virq_disabled {
                self.virq_disabled = false;
                dev.intx_unmask();
            }
        }

        if is_bar(offset) {
            self.set_bardirty(true);
        }
        Ok(())
    }

    /// `vfio_pm_config_write`: PMCSR's power state is trapped and applied by the host.
    fn pm_write<D: ConfigDevice>(
        &mut self,
        dev: &mut D,
        perm: &PermBits,
        pos: u16,
        count: usize,
        offset: u16,
        val: u32,
    ) -> Result<(), Errno> {
        self.default_write(dev, perm, pos, count, offset, val)?;
        if offset == r::PM_CTRL {
            dev.set_power_state((val & r::PM_CTRL_STATE_MASK) as u8);
        }
        Ok(())
    }

    /// `vfio_vpd_config_write`: writing the flag byte of the address starts a VPD transfer
    /// through the host; its completion toggles the flag.
    fn vpd_write<D: ConfigDevice>(
        &mut self,
        dev: &mut D,
        perm: &PermBits,
        pos: u16,
        count: usize,
        offset: u16,
        val: u32,
    ) -> Result<(), Errno> {
        self.default_write(dev, perm, pos, count, offset, val)?;
        if offset > r::VPD_ADDR + 1 || offset as usize + count <= (r::VPD_ADDR + 1) as usize {
            return Ok(());
        }
        let start = pos.wrapping_sub(offset);
        let paddr = start + r::VPD_ADDR;
        let pdata = start + r::VPD_DATA;
        let mut addr = self.vget(paddr, 2) as u16;
        if addr & r::VPD_ADDR_F != 0 {
            let data = self.vget(pdata, 4).to_le_bytes();
            if dev.vpd_write(addr & !r::VPD_ADDR_F, data) != Ok(4) {
                return Ok(());
            }
        } else {
            match dev.vpd_read(addr) {
                Ok(data) => self.vset(pdata, 4, u32::from_le_bytes(data)),
                Err(_) => return Ok(()),
            }
        }
        // A failure above leaves the flag alone, so the driver times out.
        addr ^= r::VPD_ADDR_F;
        self.vset(paddr, 2, addr as u32);
        Ok(())
    }

    /// `vfio_exp_config_write`: DEVCTL FLR becomes a function reset (the bit always reads 0);
    /// a new MRRS goes to the device, but never below its MPS.
    fn exp_write<D: ConfigDevice>(
        &mut self,
        dev: &mut D,
        perm: &PermBits,
        pos: u16,
        count: usize,
        offset: u16,
        val: u32,
    ) -> Result<(), Errno> {
        let start = pos.wrapping_sub(offset);
        let ctrl = start + r::EXP_DEVCTL;
        let readrq = self.vget(ctrl, 2) as u16 & r::EXP_DEVCTL_READRQ;

        self.default_write(dev, perm, pos, count, offset, val)?;

        let c = self.vget(ctrl, 2) as u16;
        if c & r::EXP_DEVCTL_BCR_FLR != 0 {
            self.vset(ctrl, 2, (c & !r::EXP_DEVCTL_BCR_FLR) as u32);
            if let Ok(cap) = dev.read(start + r::EXP_DEVCAP, 4) {
                if cap & r::EXP_DEVCAP_FLR != 0 {
                    dev.reset_function();
                }
            }
        }

        let c = self.vget(ctrl, 2) as u16;
        if readrq != c & r::EXP_DEVCTL_READRQ {
            let rq = 128u32 << ((c & r::EXP_DEVCTL_READRQ) >> 12);
            let rq = rq.max(dev.pcie_mps());
            dev.pcie_set_readrq(rq);
        }
        Ok(())
    }

    /// `vfio_af_config_write`: AF FLR becomes a function reset if the device has AF FLR and TP.
    fn af_write<D: ConfigDevice>(
        &mut self,
        dev: &mut D,
        perm: &PermBits,
        pos: u16,
        count: usize,
        offset: u16,
        val: u32,
    ) -> Result<(), Errno> {
        self.default_write(dev, perm, pos, count, offset, val)?;
        let start = pos.wrapping_sub(offset);
        let ctrl = start + r::AF_CTRL;
        let c = self.vbyte(ctrl);
        if c & r::AF_CTRL_FLR != 0 {
            self.vset(ctrl, 1, (c & !r::AF_CTRL_FLR) as u32);
            if let Ok(cap) = dev.read(start + r::AF_CAP, 1) {
                let cap = cap as u8;
                if cap & r::AF_CAP_FLR != 0 && cap & r::AF_CAP_TP != 0 {
                    dev.reset_function();
                }
            }
        }
        Ok(())
    }

    /// `vfio_msi_config_write`: enable only if the host enabled MSI, queue size at most what
    /// the host allocated, and the result goes to the device.
    fn msi_write<D: ConfigDevice>(
        &mut self,
        dev: &mut D,
        perm: &PermBits,
        pos: u16,
        count: usize,
        offset: u16,
        val: u32,
    ) -> Result<(), Errno> {
        self.default_write(dev, perm, pos, count, offset, val)?;
        if offset <= r::MSI_FLAGS && offset as usize + count >= r::MSI_FLAGS as usize {
            let start = self.find_cap_start(pos);
            let pflags = start + r::MSI_FLAGS;
            let mut flags = self.vget(pflags, 2) as u16;
            if !dev.msi_active() {
                flags &= !r::MSI_FLAGS_ENABLE;
            }
            let qmax = dev.msi_qmax() as u16;
            if (flags & r::MSI_FLAGS_QSIZE) >> 4 > qmax {
                flags &= !r::MSI_FLAGS_QSIZE;
                flags |= qmax << 4;
            }
            self.vset(pflags, 2, flags as u32);
            dev.write(pflags, 2, flags as u32)?;
        }
        Ok(())
    }
}
