// SPDX-License-Identifier: GPL-2.0
//! Config reads without the device lock.
//!
//! Upstream `vfio_config_do_rw` reads the virtual image (`vdev->vconfig`) and the device with
//! no lock at all. Our emulator runs under the device state mutex, which on the path user
//! space uses most (a QEMU guest's config reads) costs a lock/unlock pair and the emulator's
//! dispatch per 1-4 byte access. Most reads need neither: their value is the device's bits
//! merged with the image's virtual bits under a fixed mask. [`FastReads`] is a per-device
//! table holding, for each such dword, that mask and the image bits under it in one atomic
//! word, so a reader sees a whole entry or none; every other dword is marked for the locked
//! emulator.
//!
//! Which dwords qualify (all four bytes):
//! - one owner and one table instance (the access split of `next_access` is then just the
//!   alignment rule, and the table's masks compose byte by byte);
//! - read by `Default`, `Basic` (not `COMMAND` of a device without memory decode control,
//!   whose read merges a bit; the BARs and ROM only while they need no sizing, as their next
//!   read after a write sizes them), `Msi` (its queue-size refresh writes the image's
//!   capability ID byte, which is read from the device: invisible), `Raw` (all device),
//!   `Virt` (all image) or `Direct` (device, but the capability header from the image; in
//!   standard space a 1-byte read of the ID byte is the device's, which the entry flags with
//!   [`BYTE0_FROM_DEVICE`]);
//! - no variant overlay (its read hook runs under the mutex).
//!
//! Writes: upstream takes no lock for a config write either (except around `COMMAND`). The
//! same table holds, per dword, the mask of bits a user write handles without the emulator,
//! when the dword has one owner and table instance as above, is written by `Default` or
//! `Basic` (not `COMMAND`, the BARs or the ROM, which have side effects) and has no overlay.
//! Two kinds of dwords qualify ([`FastReads::write_chunk`]); every other write takes the
//! emulator:
//! - *device writes*: no virtual bit in the dword (so the image never changes). The write is
//!   the device read-modify-write of `vfio_default_config_write`.
//! - *virtual writes* (flagged in `virt_writes`): every writable bit of the dword is virtual
//!   and read from the image (`INTERRUPT_LINE`). The write only stores into the image, which
//!   `vfio_default_config_write` does with no lock at all; here it is a compare-and-swap of the
//!   dword's entry. While the table is published, the entry is where those bits live: the
//!   emulator's image catches up in `sync_fast_reads` and [`ConfigSpace::absorb_fast_writes`]
//!   (its own stores to them, through `default_write`, are recorded byte by byte in
//!   `fast_vstore` and win over the table's at the next sync: both are linearised there).
//!
//! The masks change only with the owner map and overlays, that is in `publish_fast_reads`.
//!
//! The table is built under the mutex after `init` ([`ConfigSpace::publish_fast_reads`]).
//! Every later change of the image goes through `vset`, which widens a range of changed
//! dwords; [`ConfigSpace::sync_fast_reads`], called under the mutex after every emulated
//! access, stores the new image bits of that range. A change of the owner map or the overlays
//! (`virtualize`) makes it build the whole table again, a change of `bardirty` the BAR and ROM
//! entries. The property harness of `fake` reads
//! every chunk both ways and checks after random access sequences that no entry went stale.
//!
//! # Invariants
//!
//! While `limit` is non-zero, every entry below `limit / 4` that is not [`LOCKED`] holds
//! `mask << 32 | (image & mask)` (plus [`BYTE0_FROM_DEVICE`] where that applies) for a dword
//! whose reads are exactly `(device & !mask) | (image & mask)` (a 1-byte read at its first byte
//! is the device's when flagged), with the image as of the last `sync_fast_reads` or
//! `publish_fast_reads`, except the bits of a virtual-write dword's write mask: there the
//! entry is newer than the image (lock-free user writes). The mask changes only when an entry
//! is rebuilt with `fast_entry` (all of them in `publish_fast_reads`, the BAR and ROM ones in
//! `sync_fast_reads`); a virtual-write dword is never a BAR or the ROM, so its entry is never
//! [`LOCKED`] and its write mask lies inside its read mask.

use super::config_space::{access_width, is_bar, size_mask, ConfigSpace};
use super::errno::Errno;
use super::pci_regs as r;
use super::perm::{PermBits, ReadKind, WriteKind};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

const DWORDS: usize = r::CFG_SPACE_EXP_SIZE as usize / 4;

/// The entry of a dword only the locked emulator may read. No real entry has image bits
/// outside its mask, so this one (mask 0, image all ones) cannot be confused with one.
pub const LOCKED: u64 = 0xffff_ffff;

/// Set in the image half of the entry of a standard capability's header dword read by
/// `Direct`: its mask is `0x0000ffff` (ID and next pointer from the image), but a 1-byte read
/// of the ID byte alone is the device's (upstream `vfio_direct_config_read` copies the image
/// only for reads of 2 bytes or more there). Outside the mask, so never part of a value.
pub const BYTE0_FROM_DEVICE: u64 = 1 << 31;

/// Whether `entry` carries [`BYTE0_FROM_DEVICE`]: the bit is set and outside the mask (where it
/// is inside, it is an image bit).
#[inline(always)]
fn is_flagged(entry: u64) -> bool {
    entry & (BYTE0_FROM_DEVICE | BYTE0_FROM_DEVICE << 32) == BYTE0_FROM_DEVICE
}

/// The bits of dword `index` whose bytes lie in the byte range `first..=last` (empty when
/// `first > last`).
#[inline]
fn byte_mask(index: usize, (first, last): (u16, u16)) -> u32 {
    let base = index * 4;
    (0..4)
        .filter(|i| (first as usize..=last as usize).contains(&(base + i)))
        .fold(0, |m, i| m | 0xff << (8 * i))
}

/// Where a dword of one owner gets its permissions ([`ConfigSpace::dword_owner`]).
#[derive(Clone, Copy)]
struct DwordOwner {
    base: u16,
    perm: &'static PermBits,
    start: u16,
}

/// The dwords of the BARs and the ROM register.
const BAR_DWORDS: [usize; 7] = [4, 5, 6, 7, 8, 9, 12];

/// The lock-free read table of one device. All zero is the valid empty table (nothing
/// published), so the kernel can place it in zeroed memory.
pub struct FastReads {
    /// Per dword: `mask << 32 | image`, or [`LOCKED`].
    entries: [AtomicU64; DWORDS],
    /// Per dword: the bits a write handles without the emulator (0: the emulator's).
    writes: [AtomicU32; DWORDS],
    /// One bit per dword: its `writes` bits are virtual (stored in the entry), not device bits.
    virt_writes: [AtomicU32; DWORDS / 32],
    /// The config size the entries were built for; 0 while nothing is published.
    limit: AtomicU32,
}

impl Default for FastReads {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`FastReads::read_chunk`] found for the next chunk of a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastChunk {
    /// Answered without the lock: the chunk's size and value (bytes in bus order, low end).
    Done(usize, u32),
    /// The locked emulator must answer this chunk (and decides its size and errors).
    Locked,
}

impl FastReads {
    /// An empty table.
    pub const fn new() -> Self {
        Self {
            entries: [const { AtomicU64::new(0) }; DWORDS],
            writes: [const { AtomicU32::new(0) }; DWORDS],
            virt_writes: [const { AtomicU32::new(0) }; DWORDS / 32],
            limit: AtomicU32::new(0),
        }
    }

    /// Withdraws the table: every read takes the locked path until the next publish.
    pub fn clear(&self) {
        self.limit.store(0, Ordering::Release);
    }

    /// The next chunk of a user read of `remaining` bytes at `pos`, if the table can answer
    /// it: the same size and value the emulator would give, reading the device through
    /// `device(pos, size)` (`pci_user_read_config_*`) when the dword is not fully virtual.
    /// A device read error is returned as is, as the emulator would.
    #[inline]
    pub fn read_chunk<F>(&self, pos: u64, remaining: usize, device: F) -> Result<FastChunk, Errno>
    where
        F: FnOnce(u16, u8) -> Result<u32, Errno>,
    {
        let limit = self.limit.load(Ordering::Acquire) as u64;
        // The whole request must fit (else the emulator fails it before any access).
        if pos >= limit || remaining as u64 > limit - pos {
            return Ok(FastChunk::Locked);
        }
        let Some(entry) = self.entries.get((pos / 4) as usize) else {
            return Ok(FastChunk::Locked);
        };
        let entry = entry.load(Ordering::Relaxed);
        if entry == LOCKED {
            return Ok(FastChunk::Locked);
        }
        // One owner run per dword: `next_access` reduces to the alignment rule.
        let k = (pos % 4) as usize;
        let size = access_width(pos, remaining.min(4 - k));
        let shift = 8 * k as u32;
        let smask = size_mask(size);
        let full = if k == 0 && size == 1 && is_flagged(entry) {
            0
        } else {
            (entry >> 32) as u32
        };
        let mask = (full >> shift) & smask;
        let image = (entry as u32 >> shift) & mask;
        if mask == smask {
            return Ok(FastChunk::Done(size, image));
        }
        let phys = device(pos as u16, size as u8)? & smask;
        Ok(FastChunk::Done(size, (phys & !mask) | image))
    }

    /// Whether dword `index`'s write mask is of virtual bits (see the module documentation).
    #[inline(always)]
    pub fn is_virt_write(&self, index: usize) -> bool {
        self.virt_writes
            .get(index / 32)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (index % 32)) != 0)
    }

    /// The next chunk of a user write of `remaining` bytes at `pos` whose bytes are `val`
    /// (little-endian, chunk in the low end), if the table can do it: the chunk's size, after
    /// the device read-modify-write the emulator would have done (`device_read`,
    /// `device_write`: `pci_user_{read,write}_config_*`), or after storing the chunk's bits in
    /// the entry of a virtual-write dword. A device error is returned as is.
    #[inline]
    pub fn write_chunk<R, W>(
        &self,
        pos: u64,
        remaining: usize,
        val: u32,
        device_read: R,
        device_write: W,
    ) -> Result<FastChunk, Errno>
    where
        R: FnOnce(u16, u8) -> Result<u32, Errno>,
        W: FnOnce(u16, u8, u32) -> Result<(), Errno>,
    {
        let limit = self.limit.load(Ordering::Acquire) as u64;
        if pos >= limit || remaining as u64 > limit - pos {
            return Ok(FastChunk::Locked);
        }
        let index = (pos / 4) as usize;
        let Some(w) = self.writes.get(index) else {
            return Ok(FastChunk::Locked);
        };
        let k = (pos % 4) as usize;
        let size = access_width(pos, remaining.min(4 - k));
        let smask = size_mask(size);
        let shift = 8 * k as u32;
        let m = (w.load(Ordering::Relaxed) >> shift) & smask;
        // Nothing writable in the chunk: the emulator accepts it without reading the user's
        // bytes, which this path has already read.
        if m == 0 {
            return Ok(FastChunk::Locked);
        }
        if self.is_virt_write(index) {
            let Some(entry) = self.entries.get(index) else {
                return Ok(FastChunk::Locked);
            };
            let bits = u64::from(m << shift);
            let new = u64::from((val & m) << shift);
            // Only the chunk's writable bits change: racing writers of other bytes of the
            // dword keep theirs (upstream copies just the written bytes into the image).
            let stored = entry.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                (old != LOCKED).then_some((old & !bits) | new)
            });
            return Ok(match stored {
                Ok(_) => FastChunk::Done(size, 0),
                Err(_) => FastChunk::Locked,
            });
        }
        let phys = device_read(pos as u16, size as u8)? & smask;
        device_write(pos as u16, size as u8, (phys & !m) | (val & m))?;
        Ok(FastChunk::Done(size, 0))
    }

    /// The write mask of dword `index` (for tests and the staleness check).
    pub fn write_mask(&self, index: usize) -> Option<u32> {
        self.writes.get(index).map(|e| e.load(Ordering::Relaxed))
    }

    /// The entry of dword `index` (for tests and the staleness check).
    pub fn entry(&self, index: usize) -> Option<u64> {
        self.entries.get(index).map(|e| e.load(Ordering::Relaxed))
    }

    /// The published config size (0: none).
    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Acquire)
    }
}

impl ConfigSpace {
    /// Builds `fast` from the current image, owner map and overlays; called under the
    /// device mutex after `init` and the overlays of an open.
    ///
    /// A table published before (a rebuild after an owner-map change) first gives its
    /// lock-free virtual writes to the image. A rebuild must not run while user space can
    /// write: a writer that found the table published before it was withdrawn here could
    /// store after that hand-over (lost), or pair a dword's old write mask with its new
    /// virtual-write flag and write virtual bits to the device. No rebuild does today: the
    /// owner map and overlays change only in `init` and `add_overlay`, at open, before the
    /// first publish (the VFIO core calls `open_device` for the first fd only). A rebuild
    /// while open would need the two masks in one atomic word.
    pub fn publish_fast_reads(&mut self, fast: &FastReads) {
        if fast.limit.swap(0, Ordering::AcqRel) != 0 {
            self.absorb_table(fast);
        }
        for word in fast.virt_writes.iter() {
            word.store(0, Ordering::Relaxed);
        }
        // Entries and write masks past the config size are never looked at (`limit`).
        let used = self.cfg_size as usize / 4;
        for (i, (e, w)) in fast
            .entries
            .iter()
            .zip(fast.writes.iter())
            .enumerate()
            .take(used)
        {
            let owner = self.dword_owner(i);
            let entry = self.fast_entry_of(owner);
            e.store(entry, Ordering::Relaxed);
            let (mask, virt) = self.fast_write_masks(owner, entry);
            w.store(mask, Ordering::Relaxed);
            if virt {
                if let Some(word) = fast.virt_writes.get(i / 32) {
                    word.fetch_or(1 << (i % 32), Ordering::Relaxed);
                }
            }
        }
        self.fast_dirty = (u16::MAX, 0);
        self.fast_vstore = (u16::MAX, 0);
        self.fast_rebuild = false;
        self.fast_bars_stale = false;
        fast.limit.store(self.cfg_size as u32, Ordering::Release);
    }

    /// Brings `fast` up to date with the image after an emulated access; called under the
    /// device mutex, before it is released.
    #[inline]
    pub fn sync_fast_reads(&mut self, fast: &FastReads) {
        if self.fast_rebuild {
            self.publish_fast_reads(fast);
            return;
        }
        if self.fast_bars_stale {
            self.fast_bars_stale = false;
            for i in BAR_DWORDS {
                if let Some(e) = fast.entries.get(i) {
                    e.store(self.fast_entry(i), Ordering::Relaxed);
                }
            }
        }
        let (first, last) = core::mem::replace(&mut self.fast_dirty, (u16::MAX, 0));
        let vstore = core::mem::replace(&mut self.fast_vstore, (u16::MAX, 0));
        for index in first as usize..=last as usize {
            let Some(entry) = fast.entries.get(index) else {
                break;
            };
            let old = entry.load(Ordering::Relaxed);
            if old == LOCKED {
                continue;
            }
            let mask = (old >> 32) as u32;
            let image = self.vget((index * 4) as u16, 4) & mask;
            let flag = if is_flagged(old) {
                BYTE0_FROM_DEVICE
            } else {
                0
            };
            let rebuilt = ((mask as u64) << 32) | image as u64 | flag;
            if !fast.is_virt_write(index) {
                entry.store(rebuilt, Ordering::Relaxed);
                continue;
            }
            // The entry's virtual write bits are newer than the image, except in the bytes
            // the emulator stored since the last sync (`default_write`): those are its.
            let writable = fast
                .writes
                .get(index)
                .map_or(0, |w| w.load(Ordering::Relaxed));
            let keep = u64::from(writable & !byte_mask(index, vstore));
            let Ok(prev) = entry.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
                (cur != LOCKED).then_some((rebuilt & !keep) | (cur & keep))
            }) else {
                continue;
            };
            self.absorb_dword(index, keep as u32, prev as u32);
        }
    }

    /// Gives every lock-free virtual write of a published `fast` to the image: call before
    /// the emulator reads the image of a virtual-write dword (an access through the variant
    /// SDK, which goes to the emulator whatever the dword).
    pub fn absorb_fast_writes(&mut self, fast: &FastReads) {
        if fast.limit.load(Ordering::Acquire) != 0 {
            self.absorb_table(fast);
        }
    }

    fn absorb_table(&mut self, fast: &FastReads) {
        for (w, word) in fast.virt_writes.iter().enumerate() {
            let mut bits = word.load(Ordering::Relaxed);
            while bits != 0 {
                let index = w * 32 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let (Some(entry), Some(writable)) =
                    (fast.entries.get(index), fast.writes.get(index))
                else {
                    continue;
                };
                let entry = entry.load(Ordering::Relaxed);
                if entry != LOCKED {
                    self.absorb_dword(index, writable.load(Ordering::Relaxed), entry as u32);
                }
            }
        }
    }

    /// Copies the `bits` of dword `index` from `image` (an entry's image half) to the image,
    /// without marking the dword changed (the table has them already).
    fn absorb_dword(&mut self, index: usize, bits: u32, image: u32) {
        if bits == 0 {
            return;
        }
        let pos = index * 4;
        let cur = self.vget(pos as u16, 4);
        let _ = super::perm::set_le_at(&mut self.vconfig, pos, 4, (cur & !bits) | (image & bits));
    }

    /// Records that the emulator stored virtual bits in the `count` (1 to 4) bytes at `pos`.
    #[inline(always)]
    pub(super) fn mark_virt_store(&mut self, pos: u16, count: usize) {
        let last = pos.wrapping_add(count as u16).wrapping_sub(1);
        if pos < self.fast_vstore.0 {
            self.fast_vstore.0 = pos;
        }
        if last > self.fast_vstore.1 {
            self.fast_vstore.1 = last;
        }
    }

    /// Marks the dwords of `count` (1 to 4) bytes at `pos` as changed in the image.
    #[inline(always)]
    pub(super) fn mark_fast_dirty(&mut self, pos: u16, count: usize) {
        let first = pos >> 2;
        let last = pos.wrapping_add(count as u16).wrapping_sub(1) >> 2;
        if first < self.fast_dirty.0 {
            self.fast_dirty.0 = first;
        }
        if last > self.fast_dirty.1 {
            self.fast_dirty.1 = last;
        }
    }

    /// The permissions of dword `index` and the start of its capability, if its four bytes
    /// are in config space, have one owner and no overlay; else `None` (the emulator's).
    /// One owner for the four bytes is one table instance: `perm_at` of each byte gives the
    /// same table and capability start (the walk back to the start from any of them crosses
    /// the dword's first byte; the property harness checks it).
    fn dword_owner(&self, index: usize) -> Option<DwordOwner> {
        let base = index * 4;
        if base + 4 > self.cfg_size as usize {
            return None;
        }
        let &[m0, m1, m2, m3] = self.map.get(base..base + 4)? else {
            return None;
        };
        if m0 != m1 || m0 != m2 || m0 != m3 {
            return None;
        }
        let base = base as u16;
        if self.touches_overlay(base, 4) {
            return None;
        }
        let (perm, start) = self.perm_at(base);
        Some(DwordOwner { base, perm, start })
    }

    /// The permissions and offset in them of a dword of one owner (`o`) if a write there has
    /// no effect but `vfio_default_config_write`'s: written by `Default` or `Basic` but not at
    /// `COMMAND`, a BAR or the ROM.
    fn plain_write_perm(&self, o: DwordOwner) -> Option<(&'static PermBits, usize)> {
        let DwordOwner { base, perm, start } = o;
        if !matches!(perm.write_fn, Some(WriteKind::Default | WriteKind::Basic)) {
            return None;
        }
        let offset = base.wrapping_sub(start);
        if perm.write_fn == Some(WriteKind::Basic)
            && ((offset..offset + 4).any(|o| o == r::COMMAND || o == r::COMMAND + 1)
                || (0..4).any(|i| is_bar(offset + i)))
        {
            return None;
        }
        Some((perm, offset as usize))
    }

    /// The write mask dword `index` would have in [`FastReads`] now, given its read `entry`
    /// ([`Self::fast_entry`]), and whether it is a virtual-write one (see the module
    /// documentation). Non-zero only where a write is a plain device read-modify-write (no
    /// virtual bit in the dword) or only stores bits into the image that reads take from it.
    fn fast_write_masks(&self, owner: Option<DwordOwner>, entry: u64) -> (u32, bool) {
        let Some((perm, offset)) = owner.and_then(|o| self.plain_write_perm(o)) else {
            return (0, false);
        };
        let write = perm.write_bits(offset, 4);
        let virt = perm.virt_bits(offset, 4);
        if virt == 0 {
            return (write, false);
        }
        if write == 0
            || write & !virt != 0
            || entry == LOCKED
            || is_flagged(entry)
            || (entry >> 32) as u32 & write != write
        {
            return (0, false);
        }
        (write, true)
    }

    /// The device write mask dword `index` would have in [`FastReads`] now.
    pub fn fast_write_mask(&self, index: usize) -> u32 {
        let owner = self.dword_owner(index);
        match self.fast_write_masks(owner, self.fast_entry_of(owner)) {
            (mask, false) => mask,
            _ => 0,
        }
    }

    /// The virtual write mask dword `index` would have in [`FastReads`] now.
    pub fn fast_virt_write_mask(&self, index: usize) -> u32 {
        let owner = self.dword_owner(index);
        match self.fast_write_masks(owner, self.fast_entry_of(owner)) {
            (mask, true) => mask,
            _ => 0,
        }
    }

    /// The [`FastReads`] entry dword `index` would have now.
    pub fn fast_entry(&self, index: usize) -> u64 {
        self.fast_entry_of(self.dword_owner(index))
    }

    /// [`Self::fast_entry`] of a dword's owner ([`Self::dword_owner`]).
    fn fast_entry_of(&self, owner: Option<DwordOwner>) -> u64 {
        let Some(DwordOwner { base, perm, start }) = owner else {
            return LOCKED;
        };
        match perm.read {
            ReadKind::Raw => return 0,
            ReadKind::Virt => return (u64::from(u32::MAX) << 32) | u64::from(self.vget(base, 4)),
            ReadKind::Default | ReadKind::Basic | ReadKind::Msi | ReadKind::Direct => {}
        }
        let offset = base.wrapping_sub(start);
        if perm.read == ReadKind::Direct {
            // `direct_read`: the device, with the capability header from the image.
            return if base >= r::CFG_SPACE_SIZE {
                if offset < 4 {
                    (u64::from(u32::MAX) << 32) | u64::from(self.vget(base, 4))
                } else {
                    0
                }
            } else if base < r::STD_HEADER_SIZEOF {
                LOCKED
            } else if offset == 0 {
                let mask = size_mask(r::CAP_FLAGS as usize);
                ((mask as u64) << 32) | u64::from(self.vget(base, 4) & mask) | BYTE0_FROM_DEVICE
            } else {
                0
            };
        }
        if perm.read == ReadKind::Basic
            && ((self.bardirty && (0..4).any(|i| is_bar(offset + i)))
                || ((self.info.no_command_memory || self.info.no_dma)
                    && (offset..offset + 4).contains(&r::COMMAND)))
        {
            return LOCKED;
        }
        let virt = perm.virt_bits(offset as usize, 4);
        ((virt as u64) << 32) | (self.vget(base, 4) & virt) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_space::DeviceInfo;
    use crate::fake::FakeDevice;
    use std::boxed::Box;

    /// A plain endpoint (vendor 8086, device 1234) with one MSI capability at 0x40 and a PM
    /// capability at 0x50, opened.
    fn open() -> (Box<ConfigSpace>, FakeDevice) {
        let mut hw = [0u8; 4096];
        hw[0..4].copy_from_slice(&[0x86, 0x80, 0x34, 0x12]);
        hw[8..12].copy_from_slice(&0x0280_0001u32.to_le_bytes());
        hw[6] = 0x10;
        hw[0x34] = 0x40;
        hw[0x40..0x44].copy_from_slice(&[0x05, 0x50, 0x00, 0x00]);
        hw[0x50..0x54].copy_from_slice(&[0x01, 0x00, 0x03, 0x00]);
        let mut dev = FakeDevice::new(&hw);
        dev.allowed = [0xff; 4096];
        let mut cs = Box::new(ConfigSpace::zeroed());
        let info = DeviceInfo {
            cfg_size: 256,
            ..DeviceInfo::default()
        };
        assert_eq!(cs.init(&mut dev, &info), Ok(()));
        (cs, dev)
    }

    fn no_device(_: u16, _: u8) -> Result<u32, Errno> {
        panic!("device read on a fully virtual dword")
    }

    #[test]
    fn only_plain_device_writes_bypass_the_emulator() {
        let (mut cs, mut dev) = open();
        let t = FastReads::new();
        cs.publish_fast_reads(&t);
        let write = |t: &FastReads, dev: &mut FakeDevice, pos: u64, n: usize, val: u32| {
            let hw = &mut dev.hw;
            let mut out = None;
            let r = t.write_chunk(
                pos,
                n,
                val,
                |p, size| {
                    Ok((0..size as usize)
                        .fold(0, |v, i| v | (hw[p as usize + i] as u32) << (8 * i)))
                },
                |p, size, v| {
                    out = Some((p, size, v));
                    Ok(())
                },
            );
            (r, out)
        };
        // CACHE_LINE_SIZE, LATENCY_TIMER and BIST are written through; HEADER_TYPE is read-only.
        assert_eq!(
            write(&t, &mut dev, 0x0c, 1, 0x10),
            (Ok(FastChunk::Done(1, 0)), Some((0x0c, 1, 0x10)))
        );
        assert_eq!(
            write(&t, &mut dev, 0x0e, 1, 0xff),
            (Ok(FastChunk::Locked), None)
        );
        // INTERRUPT_LINE is virtual: stored in the entry, no device access (the dword's other
        // bytes are read-only).
        assert_eq!(
            write(&t, &mut dev, 0x3c, 4, 0xffff_ff5a),
            (Ok(FastChunk::Done(4, 0)), None)
        );
        assert_eq!(
            t.read_chunk(0x3c, 1, no_device),
            Ok(FastChunk::Done(1, 0x5a))
        );
        // INTERRUPT_PIN, MIN_GNT and MAX_LAT are read-only.
        assert_eq!(write(&t, &mut dev, 0x3d, 1, 0xff).0, Ok(FastChunk::Locked));
        // COMMAND, a BAR and the IDs go to the emulator.
        for pos in [0x04, 0x10, 0x00] {
            assert_eq!(
                write(&t, &mut dev, pos, 1, 0xff).0,
                Ok(FastChunk::Locked),
                "{pos:#x}"
            );
        }
        // Withdrawn at close.
        t.clear();
        assert_eq!(write(&t, &mut dev, 0x0c, 1, 0x10).0, Ok(FastChunk::Locked));
    }

    #[test]
    fn empty_table_answers_nothing() {
        let t = FastReads::new();
        assert_eq!(t.read_chunk(0, 4, no_device), Ok(FastChunk::Locked));
    }

    #[test]
    fn locked_entry_is_not_a_real_entry() {
        let (mask, image) = ((LOCKED >> 32) as u32, LOCKED as u32);
        assert_ne!(image & !mask, 0);
    }

    #[test]
    fn ids_come_from_the_image_and_side_effects_stay_locked() {
        let (mut cs, _dev) = open();
        let t = FastReads::new();
        cs.publish_fast_reads(&t);
        assert_eq!(
            t.read_chunk(0, 4, no_device),
            Ok(FastChunk::Done(4, 0x1234_8086))
        );
        assert_eq!(
            t.read_chunk(2, 2, no_device),
            Ok(FastChunk::Done(2, 0x1234))
        );
        assert_eq!(t.read_chunk(1, 3, no_device), Ok(FastChunk::Done(1, 0x80)));
        // BARs and ROM (sizing on read).
        for pos in [r::BASE_ADDRESS_0, r::BASE_ADDRESS_5, r::ROM_ADDRESS] {
            assert_eq!(
                t.read_chunk(pos as u64, 4, no_device),
                Ok(FastChunk::Locked),
                "{pos:#x}"
            );
        }
        // A request that runs past the end is the emulator's to refuse.
        assert_eq!(t.read_chunk(252, 8, no_device), Ok(FastChunk::Locked));
        t.clear();
        assert_eq!(t.read_chunk(0, 4, no_device), Ok(FastChunk::Locked));
    }

    #[test]
    fn device_bits_are_read_with_the_chunk_width_and_errors_pass_through() {
        let (mut cs, _dev) = open();
        let t = FastReads::new();
        cs.publish_fast_reads(&t);
        let got = t.read_chunk(9, 3, |pos, size| {
            assert_eq!((pos, size), (9, 1));
            Ok(0xffff_ff00)
        });
        assert_eq!(got, Ok(FastChunk::Done(1, 0)));
        let got = t.read_chunk(8, 4, |_, _| Err(crate::errno::EIO));
        assert_eq!(got, Err(crate::errno::EIO));
        // PM capability header: next and PMC's PME bits (hidden) from the image, the ID and
        // the rest of PMC from the device.
        let got = t.read_chunk(0x50, 4, |_, _| Ok(0xabcd_ffff));
        assert_eq!(got, Ok(FastChunk::Done(4, 0x03cd_00ff)));
    }

    #[test]
    fn writes_reach_the_table_at_the_next_sync() {
        let (mut cs, mut dev) = open();
        let t = FastReads::new();
        cs.publish_fast_reads(&t);
        let line = r::INTERRUPT_LINE as u64;
        let mut b = [0x5a];
        assert_eq!(cs.rw(&mut dev, line, &mut b, true), Ok(1));
        cs.sync_fast_reads(&t);
        let got = t.read_chunk(line, 1, |_, _| Ok(0));
        assert_eq!(got, Ok(FastChunk::Done(1, 0x5a)));
        // A new overlay changes the owner map: the table is built again.
        let o = crate::overlay::Overlay {
            offset: 0x2c,
            size: 2,
            writable: 0,
            init: crate::overlay::OverlayInit::Value(0x1234),
        };
        assert_ne!(t.entry(0x2c / 4), Some(LOCKED));
        assert_eq!(cs.add_overlay(&mut dev, &o), Ok(()));
        cs.sync_fast_reads(&t);
        assert_eq!(t.entry(0x2c / 4), Some(LOCKED));
    }

    /// A lock-free write of a virtual byte.
    fn write_virt(t: &FastReads, pos: u64, val: u8) {
        let got = t.write_chunk(pos, 1, val.into(), no_device, |_, _, _| {
            panic!("device write on a virtual write")
        });
        assert_eq!(got, Ok(FastChunk::Done(1, 0)));
    }

    #[test]
    fn virtual_writes_survive_syncs_and_reach_the_image() {
        let (mut cs, mut dev) = open();
        let t = FastReads::new();
        cs.publish_fast_reads(&t);
        let line = r::INTERRUPT_LINE as u64;
        assert!(t.is_virt_write(line as usize / 4));
        assert!(!t.is_virt_write(0x0c / 4));
        write_virt(&t, line, 0x11);
        // An emulated access that dirties the dword (an SDK write of the read-only pin)
        // keeps the lock-free value.
        let mut pin = [0x7];
        assert_eq!(cs.rw(&mut dev, line + 1, &mut pin, true), Ok(1));
        cs.mark_fast_dirty(line as u16, 4);
        cs.sync_fast_reads(&t);
        assert_eq!(
            t.read_chunk(line, 1, no_device),
            Ok(FastChunk::Done(1, 0x11))
        );
        assert_eq!(
            cs.vbyte(line as u16),
            0x11,
            "sync gives the value to the image"
        );
        // The emulator's own store wins over an older lock-free one...
        write_virt(&t, line, 0x22);
        let mut b = [0x33];
        assert_eq!(cs.rw(&mut dev, line, &mut b, true), Ok(1));
        cs.sync_fast_reads(&t);
        assert_eq!(
            t.read_chunk(line, 1, no_device),
            Ok(FastChunk::Done(1, 0x33))
        );
        // ... and the image learns later ones when asked.
        write_virt(&t, line, 0x44);
        assert_eq!(cs.vbyte(line as u16), 0x33);
        cs.absorb_fast_writes(&t);
        assert_eq!(cs.vbyte(line as u16), 0x44);
        // A rebuild keeps them too.
        write_virt(&t, line, 0x55);
        cs.publish_fast_reads(&t);
        assert_eq!(
            t.read_chunk(line, 1, no_device),
            Ok(FastChunk::Done(1, 0x55))
        );
        // Closed: the emulator's again.
        t.clear();
        let got = t.write_chunk(line, 1, 0x66, no_device, |_, _, _| Ok(()));
        assert_eq!(got, Ok(FastChunk::Locked));
    }

    #[test]
    fn racing_virtual_writes_and_syncs_lose_nothing() {
        use std::sync::{Arc, Mutex};
        let (mut cs, _dev) = open();
        let t = Arc::new(FastReads::new());
        cs.publish_fast_reads(&t);
        let cs = Arc::new(Mutex::new((cs, _dev)));
        let line = r::INTERRUPT_LINE as u64;
        const ROUNDS: u32 = 20_000;
        // Writers of INTERRUPT_LINE race a mutex holder that keeps dirtying and syncing the
        // dword (as any emulated access near it would) and writing the read-only pin.
        let writer = {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                for i in 0..ROUNDS {
                    write_virt(&t, line, i as u8);
                }
            })
        };
        let syncer = {
            let t = Arc::clone(&t);
            let cs = Arc::clone(&cs);
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let mut g = cs.lock().unwrap();
                    let (cs, dev) = &mut *g;
                    let mut pin = [0u8];
                    let _ = cs.rw(dev, line + 1, &mut pin, true);
                    cs.mark_fast_dirty(line as u16, 4);
                    cs.sync_fast_reads(&t);
                }
            })
        };
        writer.join().unwrap();
        syncer.join().unwrap();
        let last = (ROUNDS - 1) as u8;
        assert_eq!(
            t.read_chunk(line, 1, no_device),
            Ok(FastChunk::Done(1, last as u32))
        );
        let mut g = cs.lock().unwrap();
        g.0.absorb_fast_writes(&t);
        assert_eq!(g.0.vbyte(line as u16), last);
    }

    #[test]
    fn overlay_dwords_stay_locked() {
        let (mut cs, mut dev) = open();
        let o = crate::overlay::Overlay {
            offset: 0x2c,
            size: 2,
            writable: 0,
            init: crate::overlay::OverlayInit::Value(0x1234),
        };
        assert_eq!(cs.add_overlay(&mut dev, &o), Ok(()));
        let t = FastReads::new();
        cs.publish_fast_reads(&t);
        assert_eq!(t.entry(0x2c / 4), Some(LOCKED));
        assert_ne!(t.entry(0), Some(LOCKED));
    }
}
