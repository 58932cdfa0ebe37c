// SPDX-License-Identifier: GPL-2.0
//! The capability chain of `VFIO_DEVICE_GET_REGION_INFO` (`struct vfio_info_cap_header`
//! entries after the 32-byte `vfio_region_info`), built the way upstream's
//! `vfio_info_add_capability` + `vfio_info_cap_shift` build it, and the rules for returning it.

use super::uapi::RegionInfo;

/// `VFIO_REGION_INFO_CAP_TYPE`.
pub const CAP_TYPE: u16 = 2;
/// `VFIO_REGION_INFO_CAP_SPARSE_MMAP`: only the listed areas of the region may be mapped.
pub const CAP_SPARSE_MMAP: u16 = 1;
/// `VFIO_REGION_INFO_CAP_MSIX_MAPPABLE`.
pub const CAP_MSIX_MAPPABLE: u16 = 3;
/// `VFIO_REGION_INFO_FLAG_CAPS`.
pub const FLAG_CAPS: u32 = 1 << 3;

/// Room for the capabilities this driver emits (type + MSI-X mappable + a variant's own).
pub const MAX_CAPS_LEN: usize = 128;

/// A capability chain under construction.
pub struct Caps {
    buf: [u8; MAX_CAPS_LEN],
    len: usize,
    /// Offset of the last header, whose `next` the next capability fills in.
    last: Option<usize>,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            buf: [0; MAX_CAPS_LEN],
            len: 0,
            last: None,
        }
    }
}

impl Caps {
    /// Appends a capability: a header with `id`, `version` and a zero `next`, then `body`.
    /// Offsets are relative to the start of the chain until [`Caps::finish`]. Returns `false`
    /// (and adds nothing) when it does not fit.
    pub fn add(&mut self, id: u16, version: u16, body: &[u8]) -> bool {
        // Upstream aligns each capability to 8 bytes.
        let at = self.len.div_ceil(8) * 8;
        let end = at + 8 + body.len();
        if end > MAX_CAPS_LEN {
            return false;
        }
        if let Some(prev) = self.last {
            self.put_u32(prev + 4, at as u32);
        }
        self.put_u16(at, id);
        self.put_u16(at + 2, version);
        self.put_u32(at + 4, 0);
        if let Some(dst) = self.buf.get_mut(at + 8..end) {
            dst.copy_from_slice(body);
        }
        self.len = end;
        self.last = Some(at);
        true
    }

    fn put_u16(&mut self, at: usize, v: u16) {
        if let Some(d) = self.buf.get_mut(at..at + 2) {
            d.copy_from_slice(&v.to_ne_bytes());
        }
    }

    fn put_u32(&mut self, at: usize, v: u32) {
        if let Some(d) = self.buf.get_mut(at..at + 4) {
            d.copy_from_slice(&v.to_ne_bytes());
        }
    }

    fn get_u32(&self, at: usize) -> u32 {
        let mut w = [0u8; 4];
        if let Some(s) = self.buf.get(at..at + 4) {
            w.copy_from_slice(s);
        }
        u32::from_ne_bytes(w)
    }

    /// Total length of the chain.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no capability was added.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Finishes the reply: with capabilities, sets `FLAG_CAPS` and either asks for a bigger
    /// buffer (`argsz` = what is needed, `cap_offset` 0) or shifts the chain's `next` offsets
    /// to be relative to the start of `info` and returns the bytes to copy after it.
    pub fn finish(&mut self, info: &mut RegionInfo) -> Option<&[u8]> {
        if self.is_empty() {
            return None;
        }
        info.flags |= FLAG_CAPS;
        let size = RegionInfo::MINSZ;
        if (info.argsz as usize) < size + self.len {
            info.argsz = (size + self.len) as u32;
            info.cap_offset = 0;
            return None;
        }
        // vfio_info_cap_shift: every non-zero `next` moves by the header size.
        let mut at = 0usize;
        loop {
            let next = self.get_u32(at + 4) as usize;
            if next == 0 || next >= self.len {
                break;
            }
            self.put_u32(at + 4, (next + size) as u32);
            at = next;
        }
        info.cap_offset = size as u32;
        self.buf.get(..self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msix_mappable_is_a_bare_header() {
        let mut c = Caps::default();
        assert!(c.add(CAP_MSIX_MAPPABLE, 1, &[]));
        let mut info = RegionInfo {
            argsz: 40,
            ..RegionInfo::default()
        };
        let bytes = c.finish(&mut info).map(|b| b.to_vec());
        assert_eq!(bytes.as_deref(), Some(&[3, 0, 1, 0, 0, 0, 0, 0][..]));
        assert_eq!((info.flags & FLAG_CAPS, info.cap_offset), (FLAG_CAPS, 32));
    }

    #[test]
    fn too_small_a_buffer_gets_the_needed_size() {
        let mut c = Caps::default();
        c.add(CAP_TYPE, 1, &[0u8; 8]);
        let mut info = RegionInfo {
            argsz: 32,
            cap_offset: 0x55,
            ..RegionInfo::default()
        };
        assert!(c.finish(&mut info).is_none());
        assert_eq!(
            (info.argsz, info.cap_offset, info.flags),
            (48, 0, FLAG_CAPS)
        );
    }

    #[test]
    fn chained_capabilities_point_past_the_info_header() {
        let mut c = Caps::default();
        c.add(CAP_TYPE, 1, &[1, 0, 0, 0, 2, 0, 0, 0]);
        c.add(CAP_MSIX_MAPPABLE, 1, &[]);
        let mut info = RegionInfo {
            argsz: 64,
            ..RegionInfo::default()
        };
        let b = c.finish(&mut info).map(|b| b.to_vec()).unwrap_or_default();
        assert_eq!(b.len(), 24);
        assert_eq!(u32::from_ne_bytes([b[4], b[5], b[6], b[7]]), 32 + 16);
        assert_eq!(u32::from_ne_bytes([b[20], b[21], b[22], b[23]]), 0);
    }
}

/// The body of a sparse-mmap capability (`vfio_region_info_cap_sparse_mmap` after its
/// header) listing `areas` as (offset, size): `nr_areas`, a reserved word, then the areas.
/// Returns the buffer and the bytes of it used.
pub fn sparse_mmap_body(areas: &[(u64, u64)]) -> ([u8; 8 + 16 * 2], usize) {
    let mut body = [0u8; 8 + 16 * 2];
    let n = areas.len().min(2);
    if let Some(nr) = body.get_mut(..4) {
        nr.copy_from_slice(&(n as u32).to_ne_bytes());
    }
    for (i, (off, size)) in areas.iter().take(n).enumerate() {
        let at = 8 + 16 * i;
        if let Some(b) = body.get_mut(at..at + 8) {
            b.copy_from_slice(&off.to_ne_bytes());
        }
        if let Some(b) = body.get_mut(at + 8..at + 16) {
            b.copy_from_slice(&size.to_ne_bytes());
        }
    }
    (body, 8 + 16 * n)
}

#[cfg(test)]
mod sparse_tests {
    use super::*;

    #[test]
    fn sparse_body_is_the_uapi_layout() {
        let (b, len) = sparse_mmap_body(&[(0, 0x2000), (0x3000, 0x1000)]);
        assert_eq!(len, 40);
        assert_eq!(&b[..4], &2u32.to_ne_bytes());
        assert_eq!(&b[8..16], &0u64.to_ne_bytes());
        assert_eq!(&b[16..24], &0x2000u64.to_ne_bytes());
        assert_eq!(&b[24..32], &0x3000u64.to_ne_bytes());
        assert_eq!(&b[32..40], &0x1000u64.to_ne_bytes());
    }

    #[test]
    fn no_area_is_an_empty_list() {
        assert_eq!(sparse_mmap_body(&[]).1, 8);
    }
}
