// SPDX-License-Identifier: GPL-2.0
//! Variant overlays: virtual registers a variant adds on top of the emulated config space (the
//! way upstream's IGD support virtualizes ASLS). An overlay is 1 to 4 bytes inside one dword;
//! user space reads its virtual value and writes only its writable bits; the device never sees
//! either. The variant may watch or rewrite the values through `ConfigDevice` hooks.

use super::errno::{Errno, EINVAL};

/// The most overlays one device can have.
pub const MAX_OVERLAYS: usize = 8;

/// Where an overlay's first value comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OverlayInit {
    /// The device's own bytes when the space is built (the IGD ASLS case).
    #[default]
    Device,
    /// A fixed value (little-endian in the low bytes).
    Value(u32),
}

/// One virtual register of a variant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overlay {
    /// Offset in config space.
    pub offset: u16,
    /// 1 to 4 bytes, not crossing a dword boundary.
    pub size: u8,
    /// Bits user space may change (of the `size` bytes, little-endian).
    pub writable: u32,
    /// The value at every open.
    pub init: OverlayInit,
}

impl Overlay {
    /// Checks the shape against a config space of `cfg_size` bytes.
    pub fn validate(&self, cfg_size: u16) -> Result<(), Errno> {
        let end = self.offset as u32 + self.size as u32;
        if !(1..=4).contains(&self.size)
            || end > cfg_size as u32
            || self.offset / 4 != ((end - 1) / 4) as u16
        {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Whether byte `pos` belongs to this overlay.
    pub fn contains(&self, pos: u16) -> bool {
        pos >= self.offset && (pos as u32) < self.offset as u32 + self.size as u32
    }

    /// The writable mask of byte `pos` (0 outside the overlay).
    pub fn writable_byte(&self, pos: u16) -> u8 {
        if self.contains(pos) {
            (self.writable >> (8 * (pos - self.offset))) as u8
        } else {
            0
        }
    }
}

/// `old` with the bits of `new` that `mask` allows.
pub const fn merge(old: u32, new: u32, mask: u32) -> u32 {
    (old & !mask) | (new & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_may_not_cross_a_dword() {
        let o = Overlay {
            offset: 0xfe,
            size: 4,
            ..Overlay::default()
        };
        assert_eq!(o.validate(256), Err(EINVAL));
        let o = Overlay {
            offset: 0xfc,
            size: 4,
            ..Overlay::default()
        };
        assert_eq!(o.validate(256), Ok(()));
    }

    #[test]
    fn overlay_must_fit_config_space_and_have_a_size() {
        assert_eq!(
            Overlay {
                offset: 0x100,
                size: 1,
                ..Overlay::default()
            }
            .validate(256),
            Err(EINVAL)
        );
        assert_eq!(
            Overlay {
                offset: 0x10,
                size: 0,
                ..Overlay::default()
            }
            .validate(256),
            Err(EINVAL)
        );
        assert_eq!(
            Overlay {
                offset: 0x10,
                size: 5,
                ..Overlay::default()
            }
            .validate(256),
            Err(EINVAL)
        );
    }

    #[test]
    fn writable_bits_are_per_byte() {
        let o = Overlay {
            offset: 0xfc,
            size: 4,
            writable: 0xffff_0000,
            ..Overlay::default()
        };
        assert_eq!(o.writable_byte(0xfc), 0);
        assert_eq!(o.writable_byte(0xfe), 0xff);
        assert_eq!(o.writable_byte(0xfb), 0);
        assert_eq!(merge(0x1234_5678, 0xffff_ffff, 0xffff_0000), 0xffff_5678);
    }
}
