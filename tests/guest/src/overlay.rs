// SPDX-License-Identifier: GPL-2.0
//! Checks of the SDK's config overlay API through the test-only variant
//! `vfio-pci-test-overlay` (tests/variants/overlay) bound to edu:
//! - `config-overlay-read-edu`: 0xfc reads the device's value taken at open, 0xf8 reads its
//!   fixed value through the variant's read hook;
//! - `config-overlay-write-edu`: writes change only the writable bits, reach the variant's
//!   write hook, and never the device (its real config space, read through sysfs, is as
//!   before).
//! - `device-region-info-edu`: GET_INFO counts the variant's two regions; GET_REGION_INFO of
//!   index 9 and 10 gives their sizes, flags and capability chains (type, subtype, the extra
//!   capability of the read-only one) byte for byte;
//! - `device-region-rw-edu`: the scratch region keeps what is written, the read-only region
//!   reads its pattern and refuses writes, accesses past the end and mmap are refused; the
//!   mappable region (a page of edu's BAR0, an `MmapTarget::bar`) refuses a writable mapping
//!   (the region is read-only), maps read-only, and is revoked (SIGBUS) while memory decode
//!   is off, back after.

use crate::{s, vfio, Suite};
use pcibind::Bdf;
use std::os::unix::fs::FileExt;

const DRIVER: &str = "vfio-pci-test-overlay";
const CONFIG: u64 = vfio::CONFIG_BASE as u64;

fn rd(f: &std::fs::File, off: u64, n: usize) -> Result<u32, String> {
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b[..n], CONFIG + off)
        .map_err(|e| format!("read {off:#x}: {e}"))?;
    Ok(u32::from_le_bytes(b))
}

fn wr(f: &std::fs::File, off: u64, n: usize, v: u32) -> Result<(), String> {
    f.write_all_at(&v.to_le_bytes()[..n], CONFIG + off)
        .map_err(|e| format!("write {off:#x}: {e}"))
}

/// The device's real config dword at `off`, as the host sees it.
fn host_dword(bdf: &Bdf, off: usize) -> Result<u32, String> {
    let cfg = std::fs::read(format!("/sys/bus/pci/devices/{bdf}/config")).map_err(s)?;
    let b = cfg.get(off..off + 4).ok_or("short sysfs config")?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl Suite {
    pub(crate) fn overlay_checks(&mut self) {
        let Some(edu) = self.device_labelled("edu") else {
            return;
        };
        if !self.sys.driver_loaded(DRIVER) {
            self.r.check("config-overlay-driver", || {
                Err(format!("{DRIVER} is not registered"))
            });
            return;
        }
        let _ = self.sys.unbind(&edu);
        let mut dev = None;
        let before = host_dword(&edu, 0xf8).and_then(|a| Ok((a, host_dword(&edu, 0xfc)?)));
        let bind = self.bind_and_open(&edu, DRIVER);
        let mut before_ok = (0u32, 0u32);
        self.r.check("config-overlay-bind-edu", || {
            before_ok = before?;
            dev = Some(bind?);
            Ok(())
        });
        let before = before_ok;
        if let Some(d) = dev.as_ref() {
            let f = &d.file;
            self.r.check("config-overlay-read-edu", || {
                let asls = rd(f, 0xfc, 4)?;
                if asls != before.1 {
                    return Err(format!(
                        "0xfc reads {asls:#x}, the device had {:#x} at open",
                        before.1
                    ));
                }
                let v = rd(f, 0xf8, 2)?;
                if v != 0x0000 {
                    return Err(format!(
                        "0xf8 reads {v:#06x}; expected 0x0000 (low byte 0x00, no writes yet)"
                    ));
                }
                Ok(())
            });
            self.r.check("config-overlay-write-edu", || {
                wr(f, 0xfc, 4, 0xffff_ffff)?;
                let asls = rd(f, 0xfc, 4)?;
                let want = 0xffff_0000 | (before.1 & 0xffff);
                if asls != want {
                    return Err(format!(
                        "0xfc reads {asls:#x} after writing all ones; expected {want:#x}"
                    ));
                }
                wr(f, 0xf8, 2, 0x1234)?;
                let v = rd(f, 0xf8, 2)?;
                // Low byte writable (0x34); the read hook puts the write count (2) on top.
                if v != 0x0234 {
                    return Err(format!(
                        "0xf8 reads {v:#06x} after writing 0x1234; expected 0x0234"
                    ));
                }
                let after = (host_dword(&edu, 0xf8)?, host_dword(&edu, 0xfc)?);
                if after != before {
                    return Err(format!(
                        "the device's own config changed: {before:x?} -> {after:x?}"
                    ));
                }
                Ok(())
            });
        }
        if let Some(d) = dev.as_ref() {
            let f = &d.file;
            self.r
                .check("device-region-info-edu", || region_info_checks(f));
            self.r.check("device-region-rw-edu", || region_rw_checks(f));
        }
        drop(dev);
        let _ = self.sys.unbind(&edu);
    }
}

/// `VFIO_DEVICE_GET_REGION_INFO` with a 128-byte buffer pre-filled with 0xa5.
fn region_info_raw(f: &std::fs::File, index: u32) -> Result<[u8; 128], String> {
    use std::os::fd::AsRawFd;
    let mut b = [0xa5u8; 128];
    b[0..4].copy_from_slice(&128u32.to_ne_bytes());
    b[8..12].copy_from_slice(&index.to_ne_bytes());
    // SAFETY: a valid fd and a 128-byte buffer, larger than `argsz` says.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), 0x3b6c, b.as_mut_ptr()) };
    if r < 0 {
        return Err(format!(
            "GET_REGION_INFO({index}): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(b)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | (u64::from(u32_at(b, at + 4)) << 32)
}

fn region_info_checks(f: &std::fs::File) -> Result<(), String> {
    let info = vfio::device_info(f, 24).map_err(|e| format!("GET_INFO: {e}"))?;
    if info.num_regions != 12 {
        return Err(format!("num_regions {} (expected 9 + 3)", info.num_regions));
    }
    // Index 9: 64 bytes, READ | WRITE | CAPS, one type capability (id 2) at 32.
    let b = region_info_raw(f, 9)?;
    let (flags, cap, size, off) = (
        u32_at(&b, 4),
        u32_at(&b, 12),
        u64_at(&b, 16),
        u64_at(&b, 24),
    );
    if (flags, cap, size, off) != (0b1011, 32, 64, 9 << 40) {
        return Err(format!(
            "region 9: flags {flags:#x} cap_offset {cap} size {size} offset {off:#x}"
        ));
    }
    let t = &b[32..48];
    let want: Vec<u8> = [2u16.to_ne_bytes(), 1u16.to_ne_bytes()]
        .concat()
        .into_iter()
        .chain(0u32.to_ne_bytes())
        .chain(0x8000_1234u32.to_ne_bytes())
        .chain(1u32.to_ne_bytes())
        .collect();
    if t != &want[..] {
        return Err(format!(
            "region 9 type capability {t:02x?}, expected {want:02x?}"
        ));
    }
    // Index 10: read-only, type capability then the variant's own (id 0x7e57, "vfio-rs!").
    let b = region_info_raw(f, 10)?;
    let (flags, size) = (u32_at(&b, 4), u64_at(&b, 16));
    if (flags, size) != (0b1001, 16) {
        return Err(format!("region 10: flags {flags:#x} size {size}"));
    }
    let next = u32_at(&b, 32 + 4) as usize;
    if next != 48
        || u32_at(&b, 48) != 0x0001_7e57
        || &b[56..64] != b"vfio-rs!"
        || u32_at(&b, 52) != 0
    {
        return Err(format!("region 10 capability chain {:02x?}", &b[32..64]));
    }
    // Index 11: one page, READ | MMAP | CAPS.
    let b = region_info_raw(f, 11)?;
    let (flags, size) = (u32_at(&b, 4), u64_at(&b, 16));
    if (flags, size) != (0b1101, 4096) {
        return Err(format!("region 11: flags {flags:#x} size {size}"));
    }
    // Index 12 does not exist.
    if region_info_raw(f, 12).is_ok() {
        return Err("region 12 answered".into());
    }
    Ok(())
}

fn region_rw_checks(f: &std::fs::File) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    let scratch = 9u64 << 40;
    let ro = 10u64 << 40;
    f.write_all_at(b"0123456789abcdef", scratch + 8)
        .map_err(|e| format!("write scratch: {e}"))?;
    let mut back = [0u8; 24];
    f.read_exact_at(&mut back, scratch)
        .map_err(|e| format!("read scratch: {e}"))?;
    if &back[8..24] != b"0123456789abcdef" || back[..8] != [0; 8] {
        return Err(format!("scratch reads {back:02x?}"));
    }
    let mut p = [0u8; 16];
    f.read_exact_at(&mut p, ro)
        .map_err(|e| format!("read ro: {e}"))?;
    if &p != b"vfio-rs region!\0" {
        return Err(format!("read-only region reads {p:02x?}"));
    }
    let einval = |r: std::io::Result<usize>, what: &str| -> Result<(), String> {
        match r {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
            other => Err(format!("{what}: expected EINVAL, got {other:?}")),
        }
    };
    einval(f.write_at(b"x", ro), "write to the read-only region")?;
    einval(
        f.read_at(&mut [0u8; 4], scratch + 64),
        "read at the end of the scratch region",
    )?;
    // A read crossing the end is cut short.
    let n = f
        .read_at(&mut [0u8; 8], scratch + 60)
        .map_err(|e| e.to_string())?;
    if n != 4 {
        return Err(format!(
            "read across the end returned {n} bytes, expected 4"
        ));
    }
    let map = |off: u64, len: usize| vfio::Mapping::new(f, off as i64, len, libc::MAP_SHARED);
    if map(scratch, 4096).is_ok() {
        return Err("mmap of a region not flagged MMAP succeeded".into());
    }
    // The mappable region (index 11) shows edu's BAR0 page 0: its ident register equals a read
    // of BAR0 through the fd (memory decode on first).
    let mut cmd = [0u8; 2];
    f.read_exact_at(&mut cmd, CONFIG + 4)
        .map_err(|e| format!("read COMMAND: {e}"))?;
    let on = (u16::from_le_bytes(cmd) | 0x2).to_le_bytes();
    f.write_all_at(&on, CONFIG + 4)
        .map_err(|e| format!("write COMMAND: {e}"))?;
    let mut ident = [0u8; 4];
    f.read_exact_at(&mut ident, 0)
        .map_err(|e| format!("read BAR0: {e}"))?;
    let mapped = vfio::region_offset(11) as u64;
    // The region is READ | MMAP: a writable mapping is refused, a read-only one allowed.
    match map(mapped, 4096) {
        Err(e) if e == libc::EINVAL => {}
        other => {
            return Err(format!(
                "writable mmap of a read-only region: {:?}, expected EINVAL",
                other.map(|_| ())
            ))
        }
    }
    let map_ro = |off: u64, len: usize| {
        vfio::Mapping::with_prot(f, off as i64, len, libc::PROT_READ, libc::MAP_SHARED)
    };
    let m = map_ro(mapped, 4096).map_err(|e| format!("mmap of the mappable region: errno {e}"))?;
    let seen = m.read32(0);
    if seen != u32::from_le_bytes(ident) {
        return Err(format!(
            "mapped region reads {seen:#x}, BAR0 ident is {:#x}",
            u32::from_le_bytes(ident)
        ));
    }
    if map_ro(mapped, 8192).is_ok() {
        return Err("mmap larger than the region succeeded".into());
    }
    // Memory decode off revokes the region's mapping like a BAR's: a child touching the page
    // now dies of SIGBUS; decode back on, the page faults in again.
    let off = (u16::from_le_bytes(cmd) & !0x2).to_le_bytes();
    f.write_all_at(&off, CONFIG + 4)
        .map_err(|e| format!("write COMMAND: {e}"))?;
    let end = vfio::in_child(|| i32::from(m.read32(0) == 0));
    f.write_all_at(&on, CONFIG + 4)
        .map_err(|e| format!("write COMMAND: {e}"))?;
    if !matches!(end, vfio::ChildEnd::Signal(libc::SIGBUS)) {
        return Err(format!(
            "touching the region's mapping with decode off: {end:?}, expected SIGBUS"
        ));
    }
    if m.read32(0) != u32::from_le_bytes(ident) {
        return Err("the region's page did not come back with decode on".into());
    }
    Ok(())
}
