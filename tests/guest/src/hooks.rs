// SPDX-License-Identifier: GPL-2.0
//! Checks of the SDK's hooks and device context through the test-only variant
//! `vfio-pci-hooktest` (tests/variants/hooktest) bound to edu, in every IOMMU mode:
//! - `hooks-private-ioctl-edu`: the variant's own ioctl answers (and counts exactly once per
//!   call from 4 threads at once), a bad query is `EINVAL`, an unknown command still reaches
//!   the common module (`ENOTTY`);
//! - `hooks-intercepted-ioctl-edu`: `GET_INFO` and `VFIO_DEVICE_FEATURE` are seen by the
//!   variant and still answered by the common module (GET_INFO offers reset: the hook);
//! - `hooks-bar-window-edu`: BAR0's region info has a sparse-mmap capability around the
//!   window's page; reads and writes inside the window reach the variant (its magic, its
//!   scratch, edu's registers through the device context), outside it the device, and an
//!   access across the edge is split; mmap of the window's page is refused, around it allowed;
//! - `hooks-emulated-bar-edu`: BAR2, which edu lacks, is the variant's 4 KiB: region info
//!   READ | WRITE of that size, reads see writes, the end is enforced, mmap refused;
//! - `hooks-mmio-decode-off-edu`: with memory decode off, the variant's MMIO fails with `EIO`
//!   while its own scratch bytes still answer;
//! - `hooks-reset-edu`: the variant's reset ran at open; `VFIO_DEVICE_RESET` (edu has no
//!   function reset) runs it, clearing its scratch, with `reset_prepare` and a successful
//!   `reset_done` once each;
//! - `hooks-device-context-edu`: MSI hidden at open (absent from the virtual list, present on
//!   the device), hiding outside open is `EPERM`, emulated and raw config reads through the
//!   device context agree with the fd and sysfs, a run-time overlay value is what user space
//!   reads;
//! - `hooks-concurrent-edu`: 4 threads at once mix window writes and reads, device reads
//!   outside the window and private ioctls, each seeing only its own values.

use crate::{s, vfio, Suite};
use pcibind::Bdf;
use std::fs::File;
use std::os::unix::fs::FileExt;

const DRIVER: &str = "vfio-pci-hooktest";
/// The variant's private ioctl and its queries (see the variant).
const PRIVATE: u64 = 0x3bc8;
const SET_OVERLAY: u64 = 0x3bc9;
const Q_COUNT: u64 = 0;
const Q_GET_INFO: u64 = 1;
const Q_FEATURES: u64 = 2;
const Q_RESETS: u64 = 3;
const Q_HIDE: u64 = 4;
const Q_CAPS: u64 = 5;
const Q_NOTICES: u64 = 6;
/// The window: BAR0 0x1000..0x1100; its first dword reads "hook".
const WINDOW: u64 = 0x1000;
const MAGIC: u32 = 0x6b6f_6f68;
/// edu's ident register (BAR0 0x00).
const EDU_IDENT: u32 = 0x0100_00ed;
const CONFIG: u64 = vfio::CONFIG_BASE as u64;

fn rd32(f: &File, off: u64) -> Result<u32, String> {
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, off)
        .map_err(|e| format!("read {off:#x}: {e}"))?;
    Ok(u32::from_le_bytes(b))
}

fn wr32(f: &File, off: u64, v: u32) -> Result<(), String> {
    f.write_all_at(&v.to_le_bytes(), off)
        .map_err(|e| format!("write {off:#x}: {e}"))
}

fn query(f: &File, q: u64) -> Result<i32, String> {
    vfio::ioctl_plain(f, PRIVATE, q).map_err(|e| format!("private query {q}: errno {e}"))
}

fn memory_decode(f: &File, on: bool) -> Result<(), String> {
    let mut cmd = [0u8; 2];
    f.read_exact_at(&mut cmd, CONFIG + 4).map_err(s)?;
    let c = u16::from_le_bytes(cmd);
    let c = if on { c | 2 } else { c & !2 };
    f.write_all_at(&c.to_le_bytes(), CONFIG + 4).map_err(s)
}

/// The capability IDs on a standard list, read with `byte(offset)`.
fn cap_ids(byte: impl Fn(u64) -> Result<u8, String>) -> Result<Vec<u8>, String> {
    let mut ids = Vec::new();
    let mut pos = byte(0x34)? as u64;
    while pos != 0 && ids.len() < 48 {
        ids.push(byte(pos)?);
        pos = byte(pos + 1)? as u64;
    }
    Ok(ids)
}

impl Suite {
    pub(crate) fn hooks_checks(&mut self) {
        let Some(edu) = self.device_labelled("edu") else {
            return;
        };
        if !self.sys.driver_loaded(DRIVER) {
            self.r.check("hooks-driver", || {
                Err(format!("{DRIVER} is not registered"))
            });
            return;
        }
        let _ = self.sys.unbind(&edu);
        let mut dev = None;
        let bind = self.bind_and_open(&edu, DRIVER);
        self.r.check("hooks-bind-edu", || {
            dev = Some(bind?);
            Ok(())
        });
        if let Some(d) = dev.as_ref() {
            let f = &d.file;
            self.r.check("hooks-private-ioctl-edu", || private_ioctl(f));
            self.r
                .check("hooks-intercepted-ioctl-edu", || intercepted_ioctl(f));
            self.r.check("hooks-bar-window-edu", || bar_window(f));
            self.r.check("hooks-emulated-bar-edu", || emulated_bar(f));
            self.r
                .check("hooks-mmio-decode-off-edu", || mmio_decode_off(f));
            self.r.check("hooks-reset-edu", || reset(f));
            self.r
                .check("hooks-device-context-edu", || device_context(f, &edu));
            self.r.check("hooks-concurrent-edu", || concurrent(f));
        }
        drop(dev);
        let _ = self.sys.unbind(&edu);
    }
}

fn private_ioctl(f: &File) -> Result<(), String> {
    let first = query(f, Q_COUNT)?;
    let mut seen: Vec<i32> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|_| sc.spawn(|| (0..200).map(|_| query(f, Q_COUNT)).collect::<Vec<_>>()))
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect::<Result<Vec<_>, _>>()
    })?;
    seen.sort_unstable();
    let want: Vec<i32> = (first + 1..=first + 800).collect();
    if seen != want {
        return Err(format!(
            "800 concurrent calls after {first} returned {} values, not each of {}..={} once",
            seen.len(),
            first + 1,
            first + 800
        ));
    }
    match vfio::ioctl_plain(f, PRIVATE, 99) {
        Err(e) if e == libc::EINVAL => {}
        other => return Err(format!("bad query: {other:?}, expected EINVAL")),
    }
    match vfio::ioctl_plain(f, 0x3bca, 0) {
        Err(e) if e == libc::ENOTTY => Ok(()),
        other => Err(format!("unknown ioctl: {other:?}, expected ENOTTY")),
    }
}

fn intercepted_ioctl(f: &File) -> Result<(), String> {
    let before = query(f, Q_GET_INFO)?;
    let info = vfio::device_info(f, 24).map_err(|e| format!("GET_INFO: {e}"))?;
    if query(f, Q_GET_INFO)? != before + 1 {
        return Err("GET_INFO was not seen by the variant".into());
    }
    if info.num_regions != 9 || info.flags & vfio::VFIO_DEVICE_FLAGS_RESET == 0 {
        return Err(format!(
            "GET_INFO: {} regions, flags {:#x} (expected 9, reset offered)",
            info.num_regions, info.flags
        ));
    }
    let before = query(f, Q_FEATURES)?;
    // PROBE of feature 0x7fff: nobody offers it; the common module's answer stands.
    let r = vfio::feature(f, 0x7fff | (1 << 18), &[]);
    if r == 0 || query(f, Q_FEATURES)? != before + 1 {
        return Err(format!(
            "feature probe: {r} (expected an error), seen by the variant: {}",
            query(f, Q_FEATURES)? - before
        ));
    }
    Ok(())
}

fn bar_window(f: &File) -> Result<(), String> {
    // GET_REGION_INFO of BAR0: MMAP | CAPS, a sparse-mmap capability (id 1) with the areas
    // before and after the window's page.
    let b = vfio::region_info_raw(f, 0, 256).map_err(|e| format!("region info: errno {e}"))?;
    let u32_at = |at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let u64_at = |at: usize| u64::from(u32_at(at)) | (u64::from(u32_at(at + 4)) << 32);
    let (flags, cap, size) = (u32_at(4), u32_at(12) as usize, u64_at(16));
    if flags & (vfio::REGION_FLAG_MMAP | vfio::REGION_FLAG_CAPS)
        != vfio::REGION_FLAG_MMAP | vfio::REGION_FLAG_CAPS
        || cap == 0
    {
        return Err(format!("BAR0 flags {flags:#x} cap_offset {cap}"));
    }
    let areas = (u32_at(cap + 8), u64_at(cap + 16), u64_at(cap + 24));
    let second = (u64_at(cap + 32), u64_at(cap + 40));
    if u32_at(cap) & 0xffff != 1 || areas != (2, 0, 0x1000) || second != (0x2000, size - 0x2000) {
        return Err(format!(
            "sparse capability {:02x?}",
            &b[cap..(cap + 48).min(b.len())]
        ));
    }
    memory_decode(f, true)?;
    if rd32(f, WINDOW)? != MAGIC {
        return Err("the window's first dword is not the variant's magic".into());
    }
    wr32(f, WINDOW, 0)?;
    if rd32(f, WINDOW)? != MAGIC {
        return Err("the magic dword took a write".into());
    }
    f.write_all_at(b"scratch!", WINDOW + 0x20).map_err(s)?;
    let mut back = [0u8; 8];
    f.read_exact_at(&mut back, WINDOW + 0x20).map_err(s)?;
    if &back != b"scratch!" {
        return Err(format!("window scratch reads {back:02x?}"));
    }
    let ident = rd32(f, 0)?;
    if ident != EDU_IDENT || rd32(f, WINDOW + 0x10)? != ident {
        return Err(format!(
            "edu ident {ident:#x}; through the variant's MMIO {:#x}",
            rd32(f, WINDOW + 0x10)?
        ));
    }
    wr32(f, WINDOW + 0x14, 0x1234_5678)?;
    let (via_variant, direct) = (rd32(f, WINDOW + 0x18)?, rd32(f, 4)?);
    if via_variant != !0x1234_5678 || direct != via_variant {
        return Err(format!(
            "liveness written through the variant reads {via_variant:#x} (variant), \
             {direct:#x} (device)"
        ));
    }
    // Across the window's start: 8 device bytes, then the magic and 0 scratch bytes.
    let mut dev_part = [0u8; 8];
    f.read_exact_at(&mut dev_part, WINDOW - 8).map_err(s)?;
    let mut across = [0u8; 16];
    f.read_exact_at(&mut across, WINDOW - 8).map_err(s)?;
    let mut want = dev_part.to_vec();
    want.extend_from_slice(&MAGIC.to_le_bytes());
    want.extend_from_slice(&[0; 4]);
    if across[..] != want[..] {
        return Err(format!(
            "read across the edge {across:02x?}, expected {want:02x?}"
        ));
    }
    let map = |off: i64, len: usize| vfio::Mapping::new(f, off, len, libc::MAP_SHARED);
    if map(0, size as usize).is_ok() {
        return Err("mmap of the whole BAR (window included) succeeded".into());
    }
    if map(WINDOW as i64, 4096).is_ok() {
        return Err("mmap of the window's page succeeded".into());
    }
    let page0 = map(0, 4096).map_err(|e| format!("mmap of page 0: errno {e}"))?;
    if page0.read32(0) != EDU_IDENT {
        return Err(format!("page 0 mapped reads {:#x}", page0.read32(0)));
    }
    map(0x2000, 0x2000).map_err(|e| format!("mmap after the window: errno {e}"))?;
    Ok(())
}

fn emulated_bar(f: &File) -> Result<(), String> {
    let bar2 = vfio::region_offset(2) as u64;
    let b = vfio::region_info_raw(f, 2, 32).map_err(|e| format!("region info: errno {e}"))?;
    let flags = u32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
    let size = u64::from_ne_bytes([b[16], b[17], b[18], b[19], b[20], b[21], b[22], b[23]]);
    if (flags, size) != (0b11, 0x1000) {
        return Err(format!(
            "BAR2: flags {flags:#x} size {size:#x}; expected READ|WRITE, 4 KiB"
        ));
    }
    f.write_all_at(b"emulated", bar2 + 0x800).map_err(s)?;
    let mut back = [0u8; 8];
    f.read_exact_at(&mut back, bar2 + 0x800).map_err(s)?;
    if &back != b"emulated" {
        return Err(format!("BAR2 reads back {back:02x?}"));
    }
    match f.read_at(&mut back, bar2 + 0x1000) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
        other => {
            return Err(format!(
                "read past the emulated BAR: {other:?}, expected EINVAL"
            ))
        }
    }
    // Across the end: cut short, like a real BAR.
    let n = f.read_at(&mut [0u8; 8], bar2 + 0xffc).map_err(s)?;
    if n != 4 {
        return Err(format!(
            "read across the end returned {n} bytes, expected 4"
        ));
    }
    if vfio::Mapping::new(f, bar2 as i64, 4096, libc::MAP_SHARED).is_ok() {
        return Err("mmap of the emulated BAR succeeded".into());
    }
    Ok(())
}

fn mmio_decode_off(f: &File) -> Result<(), String> {
    memory_decode(f, false)?;
    let mut b = [0u8; 4];
    let r = f.read_exact_at(&mut b, WINDOW + 0x10);
    let scratch = rd32(f, WINDOW + 0x20);
    memory_decode(f, true)?;
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EIO) => {}
        other => return Err(format!("MMIO with decode off: {other:?}, expected EIO")),
    }
    scratch.map(|_| ())
}

fn reset(f: &File) -> Result<(), String> {
    let before = query(f, Q_RESETS)?;
    let notices = query(f, Q_NOTICES)?;
    if before < 1 {
        return Err("the variant's reset did not run at open".into());
    }
    wr32(f, WINDOW + 0x40, 0xdead_beef)?;
    let r = vfio::reset(f);
    if r != 0 {
        return Err(format!("VFIO_DEVICE_RESET: errno {r}"));
    }
    let after = rd32(f, WINDOW + 0x40)?;
    let notices_after = query(f, Q_NOTICES)?;
    if notices_after != notices + 0x1_0001 {
        return Err(format!(
            "reset_prepare/reset_done seen {notices:#x} -> {notices_after:#x}: not once each"
        ));
    }
    if after != 0 || query(f, Q_RESETS)? != before + 1 {
        return Err(format!(
            "after reset the scratch reads {after:#x}, resets {} -> {}",
            before,
            query(f, Q_RESETS)?
        ));
    }
    Ok(())
}

fn device_context(f: &File, edu: &Bdf) -> Result<(), String> {
    let sysfs = std::fs::read(format!("/sys/bus/pci/devices/{edu}/config")).map_err(s)?;
    let host = cap_ids(|o| sysfs.get(o as usize).copied().ok_or("short sysfs".into()))?;
    let user = cap_ids(|o| {
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, CONFIG + o).map_err(s)?;
        Ok(b[0])
    })?;
    if !host.contains(&0x05) || user.contains(&0x05) {
        return Err(format!(
            "capabilities: device {host:02x?}, user space {user:02x?}"
        ));
    }
    match vfio::ioctl_plain(f, PRIVATE, Q_HIDE) {
        Err(e) if e == libc::EPERM => {}
        other => return Err(format!("hiding outside open: {other:?}, expected EPERM")),
    }
    let ptrs = query(f, Q_CAPS)?;
    let mut user34 = [0u8; 1];
    f.read_exact_at(&mut user34, CONFIG + 0x34).map_err(s)?;
    if (ptrs >> 8) as u8 != user34[0] || ptrs as u8 != sysfs[0x34] {
        return Err(format!(
            "capability pointer through the device context {ptrs:#x}; user {:#x}, device {:#x}",
            user34[0], sysfs[0x34]
        ));
    }
    vfio::ioctl_plain(f, SET_OVERLAY, 0x1234_5678).map_err(|e| format!("set overlay: {e}"))?;
    let v = rd32(f, CONFIG + 0xf0)?;
    if v != 0x1234_5678 {
        return Err(format!(
            "overlay reads {v:#x} after set_overlay(0x12345678)"
        ));
    }
    Ok(())
}

fn concurrent(f: &File) -> Result<(), String> {
    memory_decode(f, true)?;
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4u64)
            .map(|t| {
                sc.spawn(move || -> Result<(), String> {
                    let mine = WINDOW + 0x80 + 4 * t;
                    for i in 0..300u32 {
                        let v = (t as u32) << 24 | i;
                        wr32(f, mine, v)?;
                        let back = rd32(f, mine)?;
                        if back != v {
                            return Err(format!("thread {t}: wrote {v:#x}, read {back:#x}"));
                        }
                        if rd32(f, 0)? != EDU_IDENT || rd32(f, WINDOW + 0x10)? != EDU_IDENT {
                            return Err(format!("thread {t}: ident changed"));
                        }
                        query(f, Q_COUNT)?;
                    }
                    Ok(())
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect::<Result<Vec<_>, _>>()
            .map(|_| ())
    })
}
