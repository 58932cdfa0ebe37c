// SPDX-License-Identifier: GPL-2.0
//! How a `read`/`write` of a BAR or the ROM through the device fd is bounded and cut into
//! device accesses (upstream `vfio_pci_bar_rw` and `vfio_pci_core_do_io_rw`), and which BARs
//! may be mapped (`vfio_pci_probe_mmaps`, `vfio_pci_core_mmap`).

use super::errno::{Errno, EINVAL};

/// One step of an I/O request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoStep {
    /// A device access of 1, 2, 4 or 8 bytes at the current offset.
    Access(usize),
    /// `n` bytes inside the excluded range (the MSI-X table, or ROM space past the ROM image):
    /// reads give 0xff, writes are dropped.
    Excluded(usize),
}

/// The widest access a request may use (`enum vfio_pci_io_width`).
pub const MAX_WIDTH_BAR: usize = 8;
/// The ROM is read 4 bytes at a time at most: some devices fault on qword ROM reads.
pub const MAX_WIDTH_ROM: usize = 4;

/// The number of bytes a request of `count` at `pos` in a region of `end` bytes may touch:
/// `-EINVAL` at or past the end, else clipped to the end (upstream returns a short count).
pub fn clip(pos: u64, count: usize, end: u64) -> Result<usize, Errno> {
    if pos >= end {
        return Err(EINVAL);
    }
    Ok((count as u64).min(end - pos) as usize)
}

/// The next step of an I/O request at `off` with `count` bytes left, excluding
/// `[x_start, x_end)` (empty when equal). `count` must be non-zero.
pub fn next_step(off: u64, count: usize, x_start: u64, x_end: u64, max_width: usize) -> IoStep {
    let fillable = if off < x_start {
        (count as u64).min(x_start - off) as usize
    } else if off >= x_end {
        count
    } else {
        0
    };
    for w in [8usize, 4, 2] {
        if w <= max_width && fillable >= w && off % w as u64 == 0 {
            return IoStep::Access(w);
        }
    }
    if fillable > 0 {
        IoStep::Access(1)
    } else {
        IoStep::Excluded((count as u64).min(x_end - off) as usize)
    }
}

/// A BAR's resource as the host assigned it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BarResource {
    /// Physical start.
    pub start: u64,
    /// Length (0: unimplemented).
    pub len: u64,
    /// Memory (not I/O) space.
    pub mem: bool,
}

/// Whether upstream lets user space mmap this BAR, and whether it first reserves the rest of
/// the page (`vfio_pci_probe_mmaps`): memory BARs of at least a page, or page-aligned smaller
/// ones whose page remainder can be reserved.
pub fn mmap_kind(r: &BarResource, page_size: u64) -> MmapKind {
    if !r.mem || r.len == 0 {
        MmapKind::No
    } else if r.len >= page_size {
        MmapKind::Yes
    } else if r.start % page_size == 0 {
        MmapKind::ReserveRemainder
    } else {
        MmapKind::No
    }
}

/// See [`mmap_kind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmapKind {
    /// Not mappable.
    No,
    /// Mappable as is.
    Yes,
    /// Mappable once the rest of its page is reserved (sub-page BAR at a page start).
    ReserveRemainder,
}

/// Checks an mmap request of `len` bytes at page `pgoff` inside a BAR of `bar_len` bytes
/// (rounded up to pages, as upstream does): `-EINVAL` when it does not fit.
pub fn mmap_fits(pgoff: u64, len: u64, bar_len: u64, page_size: u64) -> Result<(), Errno> {
    let phys_len = bar_len.div_ceil(page_size).saturating_mul(page_size);
    let start = pgoff.checked_mul(page_size).ok_or(EINVAL)?;
    let end = start.checked_add(len).ok_or(EINVAL)?;
    if end > phys_len {
        return Err(EINVAL);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    fn plan(off: u64, count: usize, xs: u64, xe: u64, w: usize) -> Vec<IoStep> {
        let mut v = Vec::new();
        let (mut off, mut left) = (off, count);
        while left > 0 {
            let s = next_step(off, left, xs, xe, w);
            let n = match s {
                IoStep::Access(n) | IoStep::Excluded(n) => n,
            };
            assert!(n > 0 && n <= left);
            v.push(s);
            off += n as u64;
            left -= n;
        }
        v
    }

    #[test]
    fn aligned_qword_is_one_access() {
        assert_eq!(plan(0, 8, 0, 0, 8), [IoStep::Access(8)]);
    }

    #[test]
    fn rom_never_uses_qwords() {
        assert_eq!(plan(0, 8, 0, 0, 4), [IoStep::Access(4), IoStep::Access(4)]);
    }

    #[test]
    fn unaligned_requests_split_like_upstream() {
        assert_eq!(
            plan(1, 7, 0, 0, 8),
            [IoStep::Access(1), IoStep::Access(2), IoStep::Access(4)]
        );
        assert_eq!(plan(6, 4, 0, 0, 8), [IoStep::Access(2), IoStep::Access(2)]);
    }

    #[test]
    fn excluded_range_is_skipped_in_one_step() {
        // MSI-X table at 0x2000..0x2040.
        assert_eq!(
            plan(0x1ffc, 0x48, 0x2000, 0x2040, 8),
            [IoStep::Access(4), IoStep::Excluded(0x40), IoStep::Access(4)]
        );
    }

    #[test]
    fn requests_past_the_end_fail_or_clip() {
        assert_eq!(clip(0x1000, 4, 0x1000), Err(EINVAL));
        assert_eq!(clip(0xffe, 4, 0x1000), Ok(2));
        assert_eq!(clip(0, 4, 0x1000), Ok(4));
    }

    #[test]
    fn mmap_rules_follow_upstream() {
        let page = 4096;
        let big = BarResource {
            start: 0xfe00_0000,
            len: 0x10_0000,
            mem: true,
        };
        assert_eq!(mmap_kind(&big, page), MmapKind::Yes);
        let io = BarResource {
            start: 0xc000,
            len: 0x100,
            mem: false,
        };
        assert_eq!(mmap_kind(&io, page), MmapKind::No);
        let small_aligned = BarResource {
            start: 0xfe10_0000,
            len: 0x100,
            mem: true,
        };
        assert_eq!(mmap_kind(&small_aligned, page), MmapKind::ReserveRemainder);
        let small_unaligned = BarResource {
            start: 0xfe10_0100,
            len: 0x100,
            mem: true,
        };
        assert_eq!(mmap_kind(&small_unaligned, page), MmapKind::No);
        assert_eq!(mmap_fits(0, 4096, 0x100, page), Ok(()));
        assert_eq!(mmap_fits(0, 8192, 0x1000, page), Err(EINVAL));
        assert_eq!(mmap_fits(u64::MAX / 2, 4096, 0x1000, page), Err(EINVAL));
    }
}

/// Why a variant's own MMIO access (`Device::read32` and friends) is refused before it
/// reaches the device. The kernel side adds the run-time checks (open, decode on, D0).
///
/// `size` is 1, 2, 4 or 8; the access must be naturally aligned and lie inside a memory BAR
/// of `bar_len` bytes: `-EINVAL` otherwise (an I/O BAR or an unimplemented one included).
pub fn check_mmio(r: &BarResource, offset: u64, size: usize) -> Result<(), Errno> {
    let size = size as u64;
    if !matches!(size, 1 | 2 | 4 | 8) || offset % size != 0 || !r.mem {
        return Err(EINVAL);
    }
    match offset.checked_add(size) {
        Some(end) if end <= r.len => Ok(()),
        _ => Err(EINVAL),
    }
}

#[cfg(test)]
mod mmio_tests {
    use super::*;

    const MEM_4K: BarResource = BarResource {
        start: 0xfe00_0000,
        len: 4096,
        mem: true,
    };

    #[test]
    fn every_width_naturally_aligned_inside_the_bar_is_allowed() {
        for size in [1usize, 2, 4, 8] {
            assert_eq!(check_mmio(&MEM_4K, 0, size), Ok(()));
            assert_eq!(check_mmio(&MEM_4K, 4096 - size as u64, size), Ok(()));
        }
    }

    #[test]
    fn misaligned_access_is_refused() {
        assert_eq!(check_mmio(&MEM_4K, 2, 4), Err(EINVAL));
        assert_eq!(check_mmio(&MEM_4K, 4, 8), Err(EINVAL));
        assert_eq!(check_mmio(&MEM_4K, 1, 2), Err(EINVAL));
    }

    #[test]
    fn access_past_the_end_is_refused() {
        assert_eq!(check_mmio(&MEM_4K, 4096, 1), Err(EINVAL));
        assert_eq!(check_mmio(&MEM_4K, 4092, 8), Err(EINVAL));
        assert_eq!(check_mmio(&MEM_4K, u64::MAX - 7, 8), Err(EINVAL));
    }

    #[test]
    fn odd_sizes_are_refused() {
        for size in [0usize, 3, 5, 16] {
            assert_eq!(check_mmio(&MEM_4K, 0, size), Err(EINVAL));
        }
    }

    #[test]
    fn io_and_unimplemented_bars_are_refused() {
        let io = BarResource { mem: false, ..MEM_4K };
        assert_eq!(check_mmio(&io, 0, 4), Err(EINVAL));
        assert_eq!(check_mmio(&BarResource::default(), 0, 1), Err(EINVAL));
    }
}

/// A window of a BAR a variant emulates (`Variant::BAR_WINDOWS`): accesses inside it go to the
/// variant, the rest of the BAR to the device, and user space may mmap only around it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// Offset in the BAR.
    pub offset: u64,
    /// Length in bytes (non-zero).
    pub len: u64,
}

impl Window {
    fn end(&self) -> u64 {
        self.offset.saturating_add(self.len)
    }

    /// The first piece of an access of `count` bytes at `pos`: its length and whether it lies
    /// inside the window (so an access never straddles the window's edges).
    pub fn step(&self, pos: u64, count: usize) -> (usize, bool) {
        let count64 = count as u64;
        if pos < self.offset {
            ((self.offset - pos).min(count64) as usize, false)
        } else if pos < self.end() {
            ((self.end() - pos).min(count64) as usize, true)
        } else {
            (count, false)
        }
    }

    /// The window rounded out to whole pages: the part of the BAR user space may not map.
    fn pages(&self, page: u64) -> (u64, u64) {
        let start = self.offset & !(page - 1);
        let end = self.end().saturating_add(page - 1) & !(page - 1);
        (start, end)
    }

    /// The mappable areas of a BAR of `bar_len` bytes around the window, as the sparse-mmap
    /// capability lists them: (offset, size) pairs, empty ones left out.
    pub fn areas_around(&self, bar_len: u64, page: u64) -> ([(u64, u64); 2], usize) {
        let (start, end) = self.pages(page);
        let mut areas = [(0u64, 0u64); 2];
        let mut n = 0;
        for (a, b) in [(0, start.min(bar_len)), (end.min(bar_len), bar_len)] {
            if b > a {
                if let Some(slot) = areas.get_mut(n) {
                    *slot = (a, b - a);
                    n += 1;
                }
            }
        }
        (areas, n)
    }

    /// Whether a mapping of `len` bytes at page `pgoff` of the BAR would cover a page of the
    /// window.
    pub fn mmap_overlaps(&self, pgoff: u64, len: u64, page: u64) -> bool {
        let (start, end) = self.pages(page);
        let Some(a) = pgoff.checked_mul(page) else {
            return true;
        };
        let b = a.saturating_add(len);
        a < end && b > start
    }
}

#[cfg(test)]
mod window_tests {
    use super::*;

    const W: Window = Window {
        offset: 0x2000,
        len: 0x100,
    };

    #[test]
    fn an_access_is_cut_at_the_window_edges() {
        assert_eq!(W.step(0x1ff0, 0x20), (0x10, false));
        assert_eq!(W.step(0x2000, 0x200), (0x100, true));
        assert_eq!(W.step(0x20f8, 8), (8, true));
        assert_eq!(W.step(0x2100, 8), (8, false));
    }

    #[test]
    fn areas_leave_out_the_windows_pages() {
        assert_eq!(W.areas_around(0x10_0000, 4096), ([(0, 0x2000), (0x3000, 0xf_d000)], 2));
        let first = Window { offset: 0, len: 8 };
        assert_eq!(first.areas_around(0x4000, 4096).1, 1);
        assert_eq!(first.areas_around(0x4000, 4096).0[0], (0x1000, 0x3000));
        let whole = Window { offset: 0, len: 0x4000 };
        assert_eq!(whole.areas_around(0x4000, 4096).1, 0);
    }

    #[test]
    fn only_mappings_over_the_windows_pages_overlap() {
        assert!(W.mmap_overlaps(0, 0x10_0000, 4096));
        assert!(W.mmap_overlaps(2, 4096, 4096));
        assert!(!W.mmap_overlaps(0, 0x2000, 4096));
        assert!(!W.mmap_overlaps(3, 4096, 4096));
        assert!(W.mmap_overlaps(u64::MAX, 4096, 4096));
    }
}
