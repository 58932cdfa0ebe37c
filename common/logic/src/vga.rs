// SPDX-License-Identifier: GPL-2.0
//! The legacy VGA region (index 8) and the VGA arbiter's decode answer, as upstream
//! `vfio_pci_vga_rw` and `vfio_pci_set_decode` decide them.
//!
//! The region is a 0xc0000-byte window on the legacy VGA address space: file offsets are the
//! bus addresses themselves. Three windows inside it are backed (the VGA memory at
//! 0xa0000-0xbffff, the monochrome registers at I/O ports 0x3b0-0x3bb and the colour ones at
//! 0x3c0-0x3df); every other offset is refused. An access is clipped at the end of the window
//! it starts in, so it never touches two windows.

use super::errno::{Errno, EINVAL};

/// The region's size in `VFIO_DEVICE_GET_REGION_INFO` (everything below 0xc0000).
pub const REGION_SIZE: u64 = 0xc0000;

/// `VGA_RSRC_LEGACY_IO`: the legacy I/O ports.
pub const RSRC_LEGACY_IO: u32 = 0x01;
/// `VGA_RSRC_LEGACY_MEM`: the legacy memory window.
pub const RSRC_LEGACY_MEM: u32 = 0x02;
/// `VGA_RSRC_NORMAL_IO`: the device's own I/O BARs.
pub const RSRC_NORMAL_IO: u32 = 0x04;
/// `VGA_RSRC_NORMAL_MEM`: the device's own memory BARs.
pub const RSRC_NORMAL_MEM: u32 = 0x08;
/// Everything a VGA device can decode.
pub const RSRC_ALL: u32 = RSRC_NORMAL_IO | RSRC_NORMAL_MEM | RSRC_LEGACY_IO | RSRC_LEGACY_MEM;

/// `PCI_CLASS_DISPLAY_VGA`: the class (base and sub-class) of devices that decode legacy VGA.
pub const CLASS_DISPLAY_VGA: u32 = 0x0300;

/// Whether a device of PCI class `class` (the 24-bit class code) is a VGA device.
pub const fn is_vga_class(class: u32) -> bool {
    class >> 8 == CLASS_DISPLAY_VGA
}

/// One backed window of the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Bus address (memory) or port number (I/O) of the window's first byte.
    pub start: u64,
    /// Length of the window in bytes.
    pub len: u64,
    /// An I/O port window (else memory).
    pub ioport: bool,
}

impl Window {
    /// The arbiter resource an access to this window must hold.
    pub const fn rsrc(&self) -> u32 {
        if self.ioport {
            RSRC_LEGACY_IO
        } else {
            RSRC_LEGACY_MEM
        }
    }
}

/// The VGA memory window.
pub const MEM: Window = Window {
    start: 0xa0000,
    len: 0x20000,
    ioport: false,
};
/// The monochrome-mode register ports.
pub const IO_MONO: Window = Window {
    start: 0x3b0,
    len: 0xc,
    ioport: true,
};
/// The colour-mode (and shared) register ports.
pub const IO_COLOUR: Window = Window {
    start: 0x3c0,
    len: 0x20,
    ioport: true,
};

/// One access to the region, planned: the window, the offset inside it and the byte count
/// (the request's, clipped at the window's end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// The window the access starts in.
    pub window: Window,
    /// Offset inside the window.
    pub off: u64,
    /// Bytes to transfer.
    pub count: usize,
}

/// Plans a `read`/`write` of `count` bytes at offset `pos` of the region: `-EINVAL` outside
/// the three windows (including at or past [`REGION_SIZE`]).
pub fn plan(pos: u64, count: usize) -> Result<Access, Errno> {
    let window = [MEM, IO_MONO, IO_COLOUR]
        .into_iter()
        .find(|w| pos >= w.start && pos - w.start < w.len)
        .ok_or(EINVAL)?;
    let off = pos - window.start;
    let count = (count as u64).min(window.len - off) as usize;
    Ok(Access { window, off, count })
}

/// What a VGA device we drive tells the arbiter it decodes (upstream `vfio_pci_set_decode`).
///
/// It gives up the legacy ranges only when user space cannot reach them (`vga_disabled`, or
/// no VGA region in this kernel) and that is safe to route away at a bridge: it is not the
/// only VGA device, not on a root bus (no bridge to route at), and no other VGA device sits
/// on a bus below the same bridge (`other_vga_below`, asked last: it walks the PCI devices).
pub fn decodes(
    single_vga: bool,
    vga_disabled: bool,
    on_root_bus: bool,
    other_vga_below: impl FnOnce() -> bool,
) -> u32 {
    if single_vga || !vga_disabled || on_root_bus || other_vga_below() {
        RSRC_ALL
    } else {
        RSRC_NORMAL_IO | RSRC_NORMAL_MEM
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_windows_are_accepted_from_their_first_to_their_last_byte() {
        for w in [MEM, IO_MONO, IO_COLOUR] {
            assert_eq!(
                plan(w.start, 1),
                Ok(Access {
                    window: w,
                    off: 0,
                    count: 1
                })
            );
            assert_eq!(
                plan(w.start + w.len - 1, 1),
                Ok(Access {
                    window: w,
                    off: w.len - 1,
                    count: 1
                })
            );
        }
    }

    #[test]
    fn offsets_outside_the_windows_are_einval() {
        for pos in [
            0,
            0x3af,
            0x3bc,
            0x3bf,
            0x3e0,
            0x9ffff,
            0xc0000,
            0xc0001,
            1 << 39,
            u64::MAX,
        ] {
            assert_eq!(plan(pos, 1), Err(EINVAL), "pos {pos:#x}");
        }
    }

    #[test]
    fn accesses_are_clipped_at_the_end_of_their_window() {
        assert_eq!(plan(0xbfffc, 8).map(|a| a.count), Ok(4));
        assert_eq!(plan(0x3b8, 8).map(|a| a.count), Ok(4));
        assert_eq!(plan(0x3dc, 64).map(|a| a.count), Ok(4));
        assert_eq!(plan(0xa0000, usize::MAX).map(|a| a.count), Ok(0x20000));
        assert_eq!(plan(0x3c0, 0).map(|a| a.count), Ok(0));
    }

    #[test]
    fn io_windows_lock_legacy_io_and_memory_legacy_mem() {
        assert_eq!(IO_MONO.rsrc(), RSRC_LEGACY_IO);
        assert_eq!(IO_COLOUR.rsrc(), RSRC_LEGACY_IO);
        assert_eq!(MEM.rsrc(), RSRC_LEGACY_MEM);
    }

    #[test]
    fn legacy_decoding_is_given_up_only_when_disabled_alone_behind_a_bridge() {
        let never = || -> bool { panic!("not asked") };
        assert_eq!(decodes(true, true, false, never), RSRC_ALL);
        assert_eq!(decodes(false, false, false, never), RSRC_ALL);
        assert_eq!(decodes(false, true, true, never), RSRC_ALL);
        assert_eq!(decodes(false, true, false, || true), RSRC_ALL);
        assert_eq!(
            decodes(false, true, false, || false),
            RSRC_NORMAL_IO | RSRC_NORMAL_MEM
        );
    }

    #[test]
    fn vga_class_is_base_3_sub_0_any_prog_if() {
        assert!(is_vga_class(0x030000));
        assert!(is_vga_class(0x030001));
        assert!(!is_vga_class(0x038000));
        assert!(!is_vga_class(0x030200));
        assert!(!is_vga_class(0x000100));
    }
}
