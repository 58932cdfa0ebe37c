// SPDX-License-Identifier: GPL-2.0
//! The VFIO device ioctls' argument structures as bytes, and upstream's rules for them.
//!
//! The kernel copies exactly the bytes upstream copies (`minsz` in, `min(argsz, sizeof)` or
//! `minsz` out) and decodes them here, so argument checking is host-tested and the kernel side
//! never builds a struct from user memory by casting.

use super::errno::{Errno, EINVAL};

/// `_IO(VFIO_TYPE, VFIO_BASE + n)`: VFIO ioctls carry no size or direction bits.
pub const fn vfio_ioctl(n: u32) -> u32 {
    ((b';' as u32) << 8) | (100 + n)
}

/// `VFIO_DEVICE_GET_INFO`.
pub const VFIO_DEVICE_GET_INFO: u32 = vfio_ioctl(7);
/// `VFIO_DEVICE_GET_REGION_INFO`.
pub const VFIO_DEVICE_GET_REGION_INFO: u32 = vfio_ioctl(8);
/// `VFIO_DEVICE_GET_IRQ_INFO`.
pub const VFIO_DEVICE_GET_IRQ_INFO: u32 = vfio_ioctl(9);
/// `VFIO_DEVICE_SET_IRQS`.
pub const VFIO_DEVICE_SET_IRQS: u32 = vfio_ioctl(10);
/// `VFIO_DEVICE_RESET`.
pub const VFIO_DEVICE_RESET: u32 = vfio_ioctl(11);

/// `VFIO_DEVICE_FLAGS_RESET`.
pub const DEVICE_FLAGS_RESET: u32 = 1 << 0;
/// `VFIO_DEVICE_FLAGS_PCI`.
pub const DEVICE_FLAGS_PCI: u32 = 1 << 1;
/// `VFIO_REGION_INFO_FLAG_READ`.
pub const REGION_FLAG_READ: u32 = 1 << 0;
/// `VFIO_REGION_INFO_FLAG_WRITE`.
pub const REGION_FLAG_WRITE: u32 = 1 << 1;
/// `VFIO_REGION_INFO_FLAG_MMAP`.
pub const REGION_FLAG_MMAP: u32 = 1 << 2;

/// The native-endian `u32` at byte `at` of a uAPI argument; bytes past the end read as 0 (never
/// a panic, whatever the offset).
pub fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = at.checked_add(4).and_then(|end| b.get(at..end)) {
        w.copy_from_slice(s);
    }
    u32::from_ne_bytes(w)
}

/// The native-endian `u64` at byte `at`, like [`u32_at`].
pub fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(s) = at.checked_add(8).and_then(|end| b.get(at..end)) {
        w.copy_from_slice(s);
    }
    u64::from_ne_bytes(w)
}

/// `struct vfio_device_info` (24 bytes: argsz, flags, num_regions, num_irqs, cap_offset, pad).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Size of the user's buffer, echoed back.
    pub argsz: u32,
    /// `VFIO_DEVICE_FLAGS_*`.
    pub flags: u32,
    /// Fixed plus device-specific regions.
    pub num_regions: u32,
    /// Interrupt indexes.
    pub num_irqs: u32,
    /// Offset of the first capability, 0 for none.
    pub cap_offset: u32,
}

impl DeviceInfo {
    /// Bytes upstream reads from user space: up to and including `num_irqs`.
    pub const MINSZ: usize = 16;
    /// `sizeof(struct vfio_device_info)`.
    pub const SIZE: usize = 24;

    /// Decodes the `MINSZ` bytes read from user space; `-EINVAL` when `argsz` is too small.
    pub fn from_user(b: &[u8; Self::MINSZ]) -> Result<Self, Errno> {
        let argsz = u32_at(b, 0);
        if (argsz as usize) < Self::MINSZ {
            return Err(EINVAL);
        }
        Ok(Self {
            argsz,
            ..Self::default()
        })
    }

    /// How many bytes go back to user space: `min(argsz, sizeof)`.
    pub fn reply_len(&self) -> usize {
        (self.argsz as usize).min(Self::SIZE)
    }

    /// The structure as user space sees it.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        for (i, v) in [
            self.argsz,
            self.flags,
            self.num_regions,
            self.num_irqs,
            self.cap_offset,
        ]
        .iter()
        .enumerate()
        {
            b[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        b
    }
}

/// `struct vfio_region_info` (32 bytes: argsz, flags, index, cap_offset, size, offset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegionInfo {
    /// Size of the user's buffer, echoed back.
    pub argsz: u32,
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
    /// The region asked about.
    pub index: u32,
    /// Upstream only writes this when it adds capabilities; otherwise the user's value stays.
    pub cap_offset: u32,
    /// Region size in bytes.
    pub size: u64,
    /// File offset of the region in the device fd.
    pub offset: u64,
}

impl RegionInfo {
    /// Bytes upstream reads from and writes to user space: up to and including `offset`.
    pub const MINSZ: usize = 32;

    /// Decodes the bytes read from user space; `-EINVAL` when `argsz` is too small.
    pub fn from_user(b: &[u8; Self::MINSZ]) -> Result<Self, Errno> {
        let info = Self {
            argsz: u32_at(b, 0),
            flags: u32_at(b, 4),
            index: u32_at(b, 8),
            cap_offset: u32_at(b, 12),
            size: u64_at(b, 16),
            offset: u64_at(b, 24),
        };
        if (info.argsz as usize) < Self::MINSZ {
            return Err(EINVAL);
        }
        Ok(info)
    }

    /// The structure as user space sees it.
    pub fn to_bytes(&self) -> [u8; Self::MINSZ] {
        let mut b = [0u8; Self::MINSZ];
        b[0..4].copy_from_slice(&self.argsz.to_ne_bytes());
        b[4..8].copy_from_slice(&self.flags.to_ne_bytes());
        b[8..12].copy_from_slice(&self.index.to_ne_bytes());
        b[12..16].copy_from_slice(&self.cap_offset.to_ne_bytes());
        b[16..24].copy_from_slice(&self.size.to_ne_bytes());
        b[24..32].copy_from_slice(&self.offset.to_ne_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_uapi_header() {
        assert_eq!(VFIO_DEVICE_GET_INFO, 0x3b6b);
        assert_eq!(VFIO_DEVICE_GET_REGION_INFO, 0x3b6c);
        assert_eq!(VFIO_DEVICE_SET_IRQS, 0x3b6e);
    }

    #[test]
    fn device_info_rejects_short_argsz() {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&15u32.to_ne_bytes());
        assert_eq!(DeviceInfo::from_user(&b), Err(EINVAL));
        b[0..4].copy_from_slice(&16u32.to_ne_bytes());
        assert_eq!(DeviceInfo::from_user(&b).map(|i| i.reply_len()), Ok(16));
    }

    #[test]
    fn device_info_reply_is_capped_at_its_size() {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&4096u32.to_ne_bytes());
        let i = DeviceInfo::from_user(&b).unwrap_or_default();
        assert_eq!(i.reply_len(), 24);
    }

    #[test]
    fn region_info_round_trips_and_keeps_user_fields() {
        let r = RegionInfo {
            argsz: 32,
            flags: 3,
            index: 7,
            cap_offset: 0xdead,
            size: 256,
            offset: 7 << 40,
        };
        assert_eq!(RegionInfo::from_user(&r.to_bytes()), Ok(r));
    }

    #[test]
    fn region_info_rejects_short_argsz() {
        let r = RegionInfo {
            argsz: 31,
            ..RegionInfo::default()
        };
        assert_eq!(RegionInfo::from_user(&r.to_bytes()), Err(EINVAL));
    }
}

/// `VFIO_DEVICE_IOEVENTFD`.
pub const VFIO_DEVICE_IOEVENTFD: u32 = vfio_ioctl(16);
/// `VFIO_DEVICE_IOEVENTFD_SIZE_MASK`: the access size, one of 1, 2, 4, 8 bytes.
pub const IOEVENTFD_SIZE_MASK: u32 = 0xf;
/// Most ioeventfds one device may have (`VFIO_PCI_IOEVENTFD_MAX`).
pub const IOEVENTFD_MAX: usize = 1000;

/// `struct vfio_device_ioeventfd`, checked as upstream `vfio_pci_ioctl_ioeventfd` checks it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoEventFd {
    /// Region offset (`index << 40 | offset`).
    pub offset: u64,
    /// The value to write.
    pub data: u64,
    /// Access size in bytes.
    pub count: usize,
    /// The eventfd, or -1 to remove a matching one.
    pub fd: i32,
}

impl IoEventFd {
    /// Bytes read from user space: up to and including `fd`.
    pub const MINSZ: usize = 28;

    /// Decodes and checks the user's argument (`-EINVAL` for a short `argsz`, unknown flags, a
    /// size that is not one power of two, or an fd below -1).
    pub fn from_user(b: &[u8; Self::MINSZ]) -> Result<Self, Errno> {
        let argsz = u32_at(b, 0);
        let flags = u32_at(b, 4);
        if (argsz as usize) < Self::MINSZ || flags & !IOEVENTFD_SIZE_MASK != 0 {
            return Err(EINVAL);
        }
        let count = flags & IOEVENTFD_SIZE_MASK;
        let fd = u32_at(b, 24) as i32;
        if count.count_ones() != 1 || fd < -1 {
            return Err(EINVAL);
        }
        Ok(Self {
            offset: u64_at(b, 8),
            data: u64_at(b, 16),
            count: count as usize,
            fd,
        })
    }

    /// Checks the target (upstream `vfio_pci_ioeventfd`): a BAR, inside it, and not touching
    /// the MSI-X table (`msix`: (BAR, offset, size)). Returns (BAR, offset inside it).
    pub fn target(
        &self,
        bar_len: impl Fn(usize) -> u64,
        msix: Option<(usize, u64, u64)>,
    ) -> Result<(usize, u64), Errno> {
        let (index, pos) = super::region::split_offset(self.offset);
        if index > super::region::index::BAR5 {
            return Err(EINVAL);
        }
        let bar = index as usize;
        let end = pos.checked_add(self.count as u64).ok_or(EINVAL)?;
        if end > bar_len(bar) {
            return Err(EINVAL);
        }
        if let Some((mbar, moff, msize)) = msix {
            if mbar == bar && !(end <= moff || pos >= moff + msize) {
                return Err(EINVAL);
            }
        }
        Ok((bar, pos))
    }
}

#[cfg(test)]
mod ioeventfd_tests {
    use super::*;

    fn raw(argsz: u32, flags: u32, offset: u64, data: u64, fd: i32) -> [u8; 28] {
        let mut b = [0u8; 28];
        b[0..4].copy_from_slice(&argsz.to_ne_bytes());
        b[4..8].copy_from_slice(&flags.to_ne_bytes());
        b[8..16].copy_from_slice(&offset.to_ne_bytes());
        b[16..24].copy_from_slice(&data.to_ne_bytes());
        b[24..28].copy_from_slice(&fd.to_ne_bytes());
        b
    }

    #[test]
    fn ioeventfd_arguments_are_checked_like_upstream() {
        assert_eq!(IoEventFd::from_user(&raw(27, 4, 0, 0, 3)), Err(EINVAL));
        assert_eq!(IoEventFd::from_user(&raw(32, 0x14, 0, 0, 3)), Err(EINVAL));
        assert_eq!(IoEventFd::from_user(&raw(32, 3, 0, 0, 3)), Err(EINVAL));
        assert_eq!(IoEventFd::from_user(&raw(32, 0, 0, 0, 3)), Err(EINVAL));
        assert_eq!(IoEventFd::from_user(&raw(32, 4, 0, 0, -2)), Err(EINVAL));
        let ok = IoEventFd::from_user(&raw(32, 8, 0x10, 7, -1));
        assert_eq!(
            ok,
            Ok(IoEventFd {
                offset: 0x10,
                data: 7,
                count: 8,
                fd: -1
            })
        );
    }

    #[test]
    fn ioeventfd_targets_only_bars_outside_the_msix_table() {
        let e = |offset: u64, count: usize| IoEventFd {
            offset,
            data: 0,
            count,
            fd: 3,
        };
        let len = |_bar: usize| 0x4000u64;
        let msix = Some((0usize, 0x2000u64, 0x100u64));
        assert_eq!(e(0x10, 4).target(len, msix), Ok((0, 0x10)));
        assert_eq!(e(0x1ffe, 4).target(len, msix), Err(EINVAL));
        assert_eq!(e(0x2100, 4).target(len, msix), Ok((0, 0x2100)));
        assert_eq!(e(0x3ffc, 8).target(len, msix), Err(EINVAL));
        assert_eq!(e(6 << 40, 4).target(len, msix), Err(EINVAL));
        assert_eq!(e((1 << 40) | 0x2000, 4).target(len, msix), Ok((1, 0x2000)));
    }

    /// Upstream 6.12 derives a signed index from these and oopses (found by the guest fuzzer,
    /// `Documentation/reliability.md`); the index is unsigned here, so they are just invalid.
    #[test]
    fn ioeventfd_offsets_with_the_top_bits_set_are_invalid() {
        let e = |offset: u64| IoEventFd {
            offset,
            data: 0,
            count: 4,
            fd: 3,
        };
        let len = |_bar: usize| u64::MAX;
        for off in [
            1 << 63,
            u64::MAX - 3,
            (1 << 63) | 0x10,
            0xffff_ff00_0000_0000,
        ] {
            assert_eq!(e(off).target(len, None), Err(EINVAL), "{off:#x}");
        }
    }
}
