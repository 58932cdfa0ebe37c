// SPDX-License-Identifier: GPL-2.0
//! How VFIO PCI lays its regions out in the device fd's file offsets: region `index` starts at
//! `index << 40` (upstream's `VFIO_PCI_OFFSET_SHIFT`), which leaves 1 TiB per region.

/// Bits of the file offset that address inside one region.
pub const OFFSET_SHIFT: u32 = 40;
/// Mask of the in-region part of a file offset.
pub const OFFSET_MASK: u64 = (1 << OFFSET_SHIFT) - 1;

/// The fixed region indexes of a VFIO PCI device (`VFIO_PCI_*_REGION_INDEX`).
pub mod index {
    /// First BAR; BARs 0..=5 are indexes 0..=5.
    pub const BAR0: u32 = 0;
    /// Last BAR.
    pub const BAR5: u32 = 5;
    /// Expansion ROM.
    pub const ROM: u32 = 6;
    /// Configuration space.
    pub const CONFIG: u32 = 7;
    /// Legacy VGA ranges.
    pub const VGA: u32 = 8;
}

/// Number of fixed regions (`VFIO_PCI_NUM_REGIONS`); device-specific regions follow them.
pub const NUM_REGIONS: u32 = 9;
/// Number of interrupt indexes (`VFIO_PCI_NUM_IRQS`: INTx, MSI, MSI-X, ERR, REQ).
pub const NUM_IRQS: u32 = 5;

/// The file offset at which region `index` starts.
pub const fn index_to_offset(index: u32) -> u64 {
    (index as u64) << OFFSET_SHIFT
}

/// Splits a file offset into (region index, offset inside the region). The index has at most
/// 24 bits, so it always fits in `u32`.
pub const fn split_offset(pos: u64) -> (u32, u64) {
    ((pos >> OFFSET_SHIFT) as u32, pos & OFFSET_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_region_starts_at_7_tib() {
        assert_eq!(index_to_offset(index::CONFIG), 0x700_0000_0000);
        assert_eq!(split_offset(0x700_0000_0004), (index::CONFIG, 4));
    }

    #[test]
    fn huge_offsets_map_to_no_region() {
        assert_eq!(split_offset(u64::MAX).0, 0xff_ffff);
        assert!(split_offset(u64::MAX).0 >= NUM_REGIONS);
        assert_eq!(split_offset(u64::MAX).1, OFFSET_MASK);
    }

    #[test]
    fn every_fixed_region_round_trips() {
        for i in 0..NUM_REGIONS {
            assert_eq!(split_offset(index_to_offset(i) + 123), (i, 123));
        }
    }
}
