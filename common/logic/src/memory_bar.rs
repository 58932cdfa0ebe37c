// SPDX-License-Identifier: GPL-2.0
//! Memory BARs: device memory the CPU reaches coherently, shown to user space as emulated
//! 64-bit prefetchable BARs (upstream `nvgrace-gpu`'s usemem and resmem). The checks of the
//! variant's description and of every user access, as upstream makes them.

use super::errno::{Errno, EINVAL, EOVERFLOW};

/// The most memory BARs a device has (BARs 0, 2 and 4, each with the next as its upper half).
pub const MAX_MEMORY_BARS: usize = 3;

/// A variant's description of one memory BAR, checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryBar {
    /// The lower BAR of the pair: 0, 2 or 4.
    pub bar: u32,
    /// Mapped write-combined (uncached) rather than write-back.
    pub write_combine: bool,
    /// Physical address of the memory.
    pub phys: u64,
    /// Bytes of memory.
    pub len: u64,
    /// The BAR's size: `len` rounded up to a power of two (what sizing and region info show).
    pub size: u64,
}

/// Checks a variant's memory BARs (`(bar, write_combine, phys, len, size)`, `size` 0 for the
/// next power of two of `len`) and returns them by BAR index: each in BAR 0, 2 or 4, at most
/// one per pair, non-empty, not wrapping the physical address space, and with a power-of-two
/// size of at least `len` that fits 64 bits.
pub fn check(bars: &[(u32, bool, u64, u64, u64)]) -> Result<[Option<MemoryBar>; 6], Errno> {
    let mut out = [None; 6];
    if bars.len() > MAX_MEMORY_BARS {
        return Err(EINVAL);
    }
    for &(bar, write_combine, phys, len, size) in bars {
        let slot = out.get_mut(bar as usize).ok_or(EINVAL)?;
        if bar % 2 != 0 || slot.is_some() || len == 0 || phys.checked_add(len).is_none() {
            return Err(EINVAL);
        }
        let size = match size {
            0 => len.checked_next_power_of_two().ok_or(EINVAL)?,
            s if s.is_power_of_two() && s >= len => s,
            _ => return Err(EINVAL),
        };
        *slot = Some(MemoryBar {
            bar,
            write_combine,
            phys,
            len,
            size,
        });
    }
    Ok(out)
}

impl MemoryBar {
    /// A read or write of `count` bytes at `offset` of the region: `EINVAL` at or past the
    /// BAR's size, else `(count, in_memory)`: the request clipped to the BAR's size (a short
    /// count), of which the first `in_memory` bytes are memory; the rest read `0xff` and
    /// drop writes. For write-combined memory a request that starts in the memory stops at
    /// its end (a short count), as upstream's I/O path for it does.
    pub fn span(&self, offset: u64, count: usize) -> Result<(usize, usize), Errno> {
        if offset >= self.size {
            return Err(EINVAL);
        }
        let count = (count as u64).min(self.size - offset);
        let in_memory = if offset >= self.len {
            0
        } else {
            count.min(self.len - offset)
        };
        let count = if self.write_combine && in_memory != 0 {
            in_memory
        } else {
            count
        };
        Ok((count as usize, in_memory as usize))
    }

    /// The first page frame of a mapping of `len` bytes at page `pgoff` of the region:
    /// `EOVERFLOW` when the numbers wrap, `EINVAL` past the memory (the rest of the BAR is
    /// not mappable). The frames start at the memory's page, as upstream maps them, also
    /// when `phys` is not page-aligned.
    pub fn mmap_pfn(&self, pgoff: u64, len: u64, page_shift: u32) -> Result<u64, Errno> {
        let start_pfn = (self.phys >> page_shift)
            .checked_add(pgoff)
            .ok_or(EOVERFLOW)?;
        let end = pgoff
            .checked_mul(1u64 << page_shift)
            .and_then(|o| o.checked_add(len))
            .ok_or(EOVERFLOW)?;
        if end > self.len {
            return Err(EINVAL);
        }
        Ok(start_pfn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(phys: u64, len: u64) -> MemoryBar {
        check(&[(4, false, phys, len, 0)]).unwrap()[4].unwrap()
    }

    #[test]
    fn checks_the_description() {
        let ok = check(&[(4, false, 0x1000, 3 << 20, 0), (2, true, 0x40_0000, 1, 0)]).unwrap();
        assert_eq!(ok[4].unwrap().size, 4 << 20);
        assert_eq!(ok[2].unwrap().size, 1);
        assert!(ok[2].unwrap().write_combine);
        let sized = check(&[(4, false, 0, 512 << 20, 1 << 30)]).unwrap();
        assert_eq!(sized[4].unwrap().size, 1 << 30);
        for bad in [
            &[(1, false, 0, 1, 0)][..],
            &[(6, false, 0, 1, 0)],
            &[(4, false, 0, 0, 0)],
            &[(4, false, u64::MAX, 2, 0)],
            &[(4, false, 0, (1 << 63) + 1, 0)],
            &[(4, false, 0, 3 << 20, 2 << 20)],
            &[(4, false, 0, 3 << 20, 6 << 20)],
            &[(4, false, 0, 1, 0), (4, false, 8, 1, 0)],
            &[
                (0, false, 0, 1, 0),
                (2, false, 0, 1, 0),
                (4, false, 0, 1, 0),
                (0, false, 0, 1, 0),
            ],
        ] {
            assert_eq!(check(bad), Err(EINVAL), "{bad:?}");
        }
    }

    #[test]
    fn span_clips_to_the_bar_and_fills_past_the_memory() {
        let b = bar(0, 3 << 20);
        assert_eq!(b.span(0, 8), Ok((8, 8)));
        assert_eq!(b.span((3 << 20) - 4, 8), Ok((8, 4)));
        assert_eq!(b.span(3 << 20, 8), Ok((8, 0)));
        assert_eq!(b.span((4 << 20) - 2, 8), Ok((2, 0)));
        assert_eq!(b.span(4 << 20, 1), Err(EINVAL));
        assert_eq!(b.span(u64::MAX, 1), Err(EINVAL));
        let wc = check(&[(2, true, 0, 3 << 20, 0)]).unwrap()[2].unwrap();
        assert_eq!(wc.span((3 << 20) - 4, 8), Ok((4, 4)));
        assert_eq!(wc.span(3 << 20, 8), Ok((8, 0)));
    }

    #[test]
    fn mmap_stays_inside_the_memory() {
        let b = bar(0x1fc0_0800, 1 << 20);
        assert_eq!(b.mmap_pfn(0, 1 << 20, 12), Ok(0x1fc00));
        assert_eq!(b.mmap_pfn(255, 4096, 12), Ok(0x1fc00 + 255));
        assert_eq!(b.mmap_pfn(256, 4096, 12), Err(EINVAL));
        assert_eq!(b.mmap_pfn(0, (1 << 20) + 4096, 12), Err(EINVAL));
        assert_eq!(b.mmap_pfn(u64::MAX, 4096, 12), Err(EOVERFLOW));
        assert_eq!(b.mmap_pfn(1 << 60, 4096, 12), Err(EOVERFLOW));
    }
}
