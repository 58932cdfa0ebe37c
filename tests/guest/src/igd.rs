// SPDX-License-Identifier: GPL-2.0
//! Checks of `vfio-pci-igd` on the fake IGD of the `vfio_test_fakepci` fixture
//! (`0001:00:02.0`, 8086:3e92, ASLS at 0x0800_0000 in RAM reserved with `memmap=`), against
//! upstream C `vfio-pci` (built with `CONFIG_VFIO_PCI_IGD`) on the same device in the same boot.
//!
//! For each OpRegion layout the test writes into the reserved RAM (through `/dev/mem`), each
//! driver in turn binds the device, opens it through its (noiommu) group and answers the same
//! questions: `GET_INFO`, `GET_REGION_INFO` of every index, the contents of every
//! device-specific region (whole, and again in 7-byte pieces), a read past the end and a write
//! to each, and ASLS through the config region before and after user writes. Checks:
//! - `igd-fixture`: the fake device is there, as the fixture describes it, with no driver;
//! - `igd-<layout>-open-<driver>`: the open succeeds, or fails with upstream's error;
//! - `igd-<layout>-regions-<driver>`: the regions (9: OpRegion, 10: host bridge config,
//!   11: LPC bridge config), their sizes and flags and type capability, as upstream defines them,
//!   and the legacy VGA region (8: 0xc0000 bytes, READ|WRITE) every VGA-class device has;
//! - `igd-<layout>-opregion-<driver>`: the OpRegion region equals the bytes placed in memory,
//!   with upstream's patches (version 2.0 with an extended VBT reads 2.1, RVDA reads 8 KiB or 0,
//!   the extended VBT follows the 8 KiB), and piecewise reads equal the whole read;
//! - `igd-<layout>-host-cfg-<driver>`, `igd-<layout>-lpc-cfg-<driver>`: the bridge regions
//!   equal the bridges' config spaces as sysfs shows them;
//! - `igd-<layout>-asls-<driver>`: ASLS reads upstream's virtual value, user writes change what
//!   user space reads back but never the device's register (sysfs);
//! - `igd-<layout>-differential-vfio-pci-igd`: every answer above equals upstream's, byte for
//!   byte (for a failed open: the error);
//! - `igd-<layout>-dmesg-vfio-pci-igd`: one kernel log line when a feature is off or the open
//!   fails, saying which or why; none otherwise;
//! - `igd-refuse-edu-vfio-pci-igd`: bound by override to edu, the variant refuses it.
//!
//! IOMMU groups: no DMAR unit covers the fixture's PCI domain, so the device has no IOMMU group.
//! In the noiommu boot the VFIO core gives it a noiommu group as to every device; in the iommu
//! boot the checks switch `vfio.enable_unsafe_noiommu_mode` on at run time for the duration
//! (it only affects devices without an IOMMU group, i.e. the fake one) and off again after.

use crate::{s, vfio, wait_for, Suite};
use pcibind::Bdf;
use std::os::unix::fs::FileExt;
use std::path::Path;

const DRIVER: &str = "vfio-pci-igd";
const UPSTREAM: &str = "vfio-pci";
const FAKE_IGD: &str = "0001:00:02.0";
const HOST_BRIDGE: &str = "0000:00:00.0";
const LPC_BRIDGE: &str = "0000:00:1f.0";
/// Where the fixture's ASLS points at load.
const OPREGION_PHYS: u64 = 0x0800_0000;
const NOIOMMU_PARAM: &str = "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode";
const CONFIG: u64 = crate::vfio::CONFIG_BASE as u64;
const OPREGION_SIZE: usize = 8192;
/// `VFIO_REGION_TYPE_PCI_VENDOR_TYPE | PCI_VENDOR_ID_INTEL`.
const INTEL_TYPE: u32 = 0x8000_8086;

/// One OpRegion layout placed in memory.
struct Layout {
    name: &'static str,
    /// ASLS of the device during the check (0: none).
    asls: u32,
    /// The 8 KiB at ASLS (empty when ASLS is 0).
    opregion: Vec<u8>,
    /// The extended VBT and where it lives.
    vbt: Option<(u64, Vec<u8>)>,
    /// Upstream's answer to the open: `None` success, `Some(errno)` failure.
    open_errno: Option<i32>,
}

/// Deterministic filler, different per seed, so misplaced bytes show.
fn pattern(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(seed as u32 % 31) as u8
                ^ seed
        })
        .collect()
}

fn opregion(version: u16, rvda: u64, rvds: u32, size_kib: u32, seed: u8) -> Vec<u8> {
    let mut b = pattern(seed, OPREGION_SIZE);
    b[..16].copy_from_slice(b"IntelGraphicsMem");
    b[16..20].copy_from_slice(&size_kib.to_le_bytes());
    b[0x16..0x18].copy_from_slice(&version.to_le_bytes());
    b[0x3ba..0x3c2].copy_from_slice(&rvda.to_le_bytes());
    b[0x3c2..0x3c6].copy_from_slice(&rvds.to_le_bytes());
    b
}

fn layouts() -> Vec<Layout> {
    let a = OPREGION_PHYS as u32;
    let mut bad_sig = opregion(0x0201, 0, 0, 8, 5);
    bad_sig[..4].copy_from_slice(b"Nope");
    vec![
        // 2.0 with a stale RVDA but no RVDS: no extended VBT; RVDA reads 0.
        Layout {
            name: "v2.0",
            asls: a,
            opregion: opregion(0x0200, 0xdead_beef_0000, 0, 8, 1),
            vbt: None,
            open_errno: None,
        },
        // 2.1: RVDA relative to the OpRegion, VBT not contiguous (16 KiB after it).
        Layout {
            name: "v2.1-extvbt",
            asls: a,
            opregion: opregion(0x0201, 0x4000, 0x1800, 8, 2),
            vbt: Some((OPREGION_PHYS + 0x4000, pattern(12, 0x1800))),
            open_errno: None,
        },
        // 2.0: RVDA absolute, odd VBT size; reads as 2.1 with RVDA = 8 KiB.
        Layout {
            name: "v2.0-extvbt",
            asls: a,
            opregion: opregion(0x0200, OPREGION_PHYS + 0x1_0000, 0x2345, 8, 3),
            vbt: Some((OPREGION_PHYS + 0x1_0000, pattern(13, 0x2345))),
            open_errno: None,
        },
        Layout {
            name: "bad-signature",
            asls: a,
            opregion: bad_sig,
            vbt: None,
            open_errno: Some(libc::EINVAL),
        },
        Layout {
            name: "size-zero",
            asls: a,
            opregion: opregion(0x0201, 0, 0, 0, 6),
            vbt: None,
            open_errno: Some(libc::EINVAL),
        },
        Layout {
            name: "no-asls",
            asls: 0,
            opregion: vec![],
            vbt: None,
            open_errno: None,
        },
    ]
}

impl Layout {
    /// The OpRegion region's contents as upstream defines them.
    fn view(&self) -> Vec<u8> {
        let mut v = self.opregion.clone();
        if v.is_empty() {
            return v;
        }
        let version = u16::from_le_bytes([v[0x16], v[0x17]]);
        if version == 0x0200 && self.vbt.is_some() {
            v[0x16..0x18].copy_from_slice(&0x0201u16.to_le_bytes());
        }
        let rvda: u64 = if self.vbt.is_some() {
            OPREGION_SIZE as u64
        } else {
            0
        };
        v[0x3ba..0x3c2].copy_from_slice(&rvda.to_le_bytes());
        if let Some((_, vbt)) = &self.vbt {
            v.extend_from_slice(vbt);
        }
        v
    }

    /// What ASLS reads through VFIO right after open (upstream's `vconfig`: the address of the
    /// extended VBT when there is one, else ASLS).
    fn virtual_asls(&self) -> u32 {
        match &self.vbt {
            Some((at, _)) => *at as u32,
            None => self.asls,
        }
    }

    fn has_regions(&self) -> bool {
        self.asls != 0 && self.open_errno.is_none()
    }
}

/// Everything one driver answered for one layout.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct IgdAnswers {
    /// The open's error message (the errno is in it), or empty.
    open: Option<String>,
    info: Option<Result<[u8; 24], i32>>,
    /// `GET_REGION_INFO` of every index up to one past `num_regions`, 128-byte buffers.
    regions: Vec<(u32, Result<Vec<u8>, i32>)>,
    /// Contents of each device-specific region (whole read), by index.
    contents: Vec<(u32, Result<Vec<u8>, i32>)>,
    /// Whether 7-byte piecewise reads of each region equal its whole read.
    pieces_equal: Vec<(u32, bool)>,
    /// Errno of a 1-byte read at the end, and of a 1-byte write at 0, of each region.
    edges: Vec<(u32, i32, i32)>,
    /// ASLS: dword after open; after writing 0x12345678; then after a byte write of 0xab at
    /// 0xfd; 2-byte read at 0xfe.
    asls: Vec<Result<u32, i32>>,
    /// The device's real ASLS (sysfs) before and after the writes.
    real_asls: (u32, u32),
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

fn region_info_raw(f: &std::fs::File, index: u32) -> Result<Vec<u8>, i32> {
    use std::os::fd::AsRawFd;
    let mut b = [0xa5u8; 128];
    b[0..4].copy_from_slice(&128u32.to_ne_bytes());
    b[8..12].copy_from_slice(&index.to_ne_bytes());
    // SAFETY: a valid fd and a 128-byte buffer, as large as `argsz` says.
    let r = unsafe {
        libc::ioctl(
            f.as_raw_fd(),
            vfio::VFIO_DEVICE_GET_REGION_INFO as _,
            b.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(errno(&std::io::Error::last_os_error()));
    }
    Ok(b.to_vec())
}

/// `VFIO_DEVICE_GET_INFO` with `argsz` 24, the buffer pre-filled with 0xa5.
fn device_info_raw(f: &std::fs::File) -> Result<[u8; 24], i32> {
    use std::os::fd::AsRawFd;
    let mut b = [0xa5u8; 24];
    b[0..4].copy_from_slice(&24u32.to_ne_bytes());
    // SAFETY: a valid fd and a 24-byte buffer, as large as `argsz` says.
    let r = unsafe {
        libc::ioctl(
            f.as_raw_fd(),
            vfio::VFIO_DEVICE_GET_INFO as _,
            b.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(errno(&std::io::Error::last_os_error()));
    }
    Ok(b)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | (u64::from(u32_at(b, at + 4)) << 32)
}

fn sysfs_config(bdf: &str) -> Result<Vec<u8>, String> {
    std::fs::read(format!("/sys/bus/pci/devices/{bdf}/config"))
        .map_err(|e| format!("{bdf} config: {e}"))
}

fn real_asls() -> Result<u32, String> {
    let c = sysfs_config(FAKE_IGD)?;
    let b = c.get(0xfc..0x100).ok_or("short config")?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn set_real_asls(v: u32) -> Result<(), String> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/sys/bus/pci/devices/{FAKE_IGD}/config"))
        .map_err(|e| format!("open config: {e}"))?;
    f.write_all_at(&v.to_le_bytes(), 0xfc)
        .map_err(|e| format!("write ASLS: {e}"))?;
    match real_asls()? {
        got if got == v => Ok(()),
        got => Err(format!("ASLS reads {got:#x} after writing {v:#x}")),
    }
}

/// Places `bytes` at physical address `at` through `/dev/mem` and reads them back.
fn poke(at: u64, bytes: &[u8]) -> Result<(), String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/mem")
        .map_err(|e| format!("/dev/mem: {e}"))?;
    f.write_all_at(bytes, at)
        .map_err(|e| format!("write /dev/mem at {at:#x}: {e}"))?;
    let mut back = vec![0u8; bytes.len()];
    f.read_exact_at(&mut back, at)
        .map_err(|e| format!("read /dev/mem at {at:#x}: {e}"))?;
    if back != bytes {
        return Err(format!(
            "/dev/mem at {at:#x} does not keep what was written"
        ));
    }
    Ok(())
}

fn place(l: &Layout) -> Result<(), String> {
    if !l.opregion.is_empty() {
        poke(l.asls.into(), &l.opregion)?;
    }
    if let Some((at, vbt)) = &l.vbt {
        poke(*at, vbt)?;
    }
    set_real_asls(l.asls)
}

fn read_all(f: &std::fs::File, at: u64, n: usize) -> Result<Vec<u8>, i32> {
    let mut b = vec![0u8; n];
    f.read_exact_at(&mut b, at).map_err(|e| errno(&e))?;
    Ok(b)
}

fn cfg_read(f: &std::fs::File, off: u64, n: usize) -> Result<u32, i32> {
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b[..n], CONFIG + off)
        .map_err(|e| errno(&e))?;
    Ok(u32::from_le_bytes(b))
}

fn cfg_write(f: &std::fs::File, off: u64, bytes: &[u8]) -> Result<(), i32> {
    f.write_all_at(bytes, CONFIG + off).map_err(|e| errno(&e))
}

/// Asks one open device everything [`IgdAnswers`] records. `write_asls`: also write ASLS
/// through the config region (only when upstream virtualizes it, i.e. with an OpRegion;
/// without one upstream passes such writes to the device, which we do not: see
/// Documentation/variants/igd.md).
fn query(f: &std::fs::File, write_asls: bool) -> Result<IgdAnswers, String> {
    let mut a = IgdAnswers {
        real_asls: (real_asls()?, 0),
        ..Default::default()
    };
    let raw = device_info_raw(f).map_err(|e| format!("GET_INFO: errno {e}"))?;
    a.info = Some(Ok(raw));
    let num_regions = u32_at(&raw, 8);
    for i in 0..=num_regions {
        let r = region_info_raw(f, i);
        if i >= vfio::NUM_REGIONS {
            if let Ok(b) = &r {
                let (size, off) = (u64_at(b, 16), u64_at(b, 24));
                let whole = read_all(f, off, size as usize);
                let pieces = whole.as_ref().ok().map(|w| {
                    let mut p = Vec::new();
                    let mut at = 0;
                    while at < size {
                        let n = 7.min(size - at) as usize;
                        match read_all(f, off + at, n) {
                            Ok(b) => p.extend_from_slice(&b),
                            Err(_) => return false,
                        }
                        at += n as u64;
                    }
                    &p == w
                });
                a.pieces_equal.push((i, pieces.unwrap_or(false)));
                let past = f
                    .read_at(&mut [0u8; 1], off + size)
                    .map(|_| 0)
                    .unwrap_or_else(|e| errno(&e));
                let wr = f
                    .write_at(&[0u8], off)
                    .map(|_| 0)
                    .unwrap_or_else(|e| errno(&e));
                a.edges.push((i, past, wr));
                a.contents.push((i, whole));
            }
        }
        a.regions.push((i, r));
    }
    a.asls.push(cfg_read(f, 0xfc, 4));
    if !write_asls {
        a.real_asls.1 = real_asls()?;
        return Ok(a);
    }
    a.asls.push(
        cfg_write(f, 0xfc, &0x1234_5678u32.to_le_bytes()).and_then(|()| cfg_read(f, 0xfc, 4)),
    );
    a.asls
        .push(cfg_write(f, 0xfd, &[0xab]).and_then(|()| cfg_read(f, 0xfc, 4)));
    a.asls.push(cfg_read(f, 0xfe, 2));
    a.real_asls.1 = real_asls()?;
    Ok(a)
}

/// The first difference between two drivers' answers, described.
fn diff(o: &IgdAnswers, t: &IgdAnswers) -> Result<(), String> {
    let mut d = Vec::new();
    if o.open != t.open {
        d.push(format!("open: {:?} vs {:?}", o.open, t.open));
    }
    if o.info != t.info {
        d.push(format!("GET_INFO: {:02x?} vs {:02x?}", o.info, t.info));
    }
    for (x, y) in o.regions.iter().zip(&t.regions) {
        if x != y {
            d.push(format!(
                "GET_REGION_INFO({}): {:02x?} vs {:02x?}",
                x.0, x.1, y.1
            ));
        }
    }
    if o.regions.len() != t.regions.len() {
        d.push(format!(
            "{} vs {} region answers",
            o.regions.len(),
            t.regions.len()
        ));
    }
    for (x, y) in o.contents.iter().zip(&t.contents) {
        if x != y {
            let first = match (&x.1, &y.1) {
                (Ok(a), Ok(b)) => a
                    .iter()
                    .zip(b)
                    .position(|(p, q)| p != q)
                    .map(|p| format!("first at {p:#x}")),
                _ => None,
            };
            d.push(format!(
                "region {} contents differ ({})",
                x.0,
                first.unwrap_or_else(|| format!(
                    "{:?} vs {:?}",
                    x.1.as_ref().map(Vec::len),
                    y.1.as_ref().map(Vec::len)
                ))
            ));
        }
    }
    for (name, x, y) in [
        (
            "piecewise reads",
            format!("{:?}", o.pieces_equal),
            format!("{:?}", t.pieces_equal),
        ),
        (
            "edge accesses (index, read-at-end errno, write errno)",
            format!("{:?}", o.edges),
            format!("{:?}", t.edges),
        ),
        (
            "ASLS reads",
            format!("{:x?}", o.asls),
            format!("{:x?}", t.asls),
        ),
        (
            "real ASLS",
            format!("{:x?}", o.real_asls),
            format!("{:x?}", t.real_asls),
        ),
    ] {
        if x != y {
            d.push(format!("{name}: {x} vs {y}"));
        }
    }
    if d.is_empty() {
        Ok(())
    } else {
        Err(d.join("; "))
    }
}

impl Suite {
    pub(crate) fn igd_checks(&mut self) {
        let Ok(igd) = Bdf::parse(FAKE_IGD) else {
            return;
        };
        let sys = &self.sys;
        let ok = self.r.check("igd-fixture", || {
            if !sys.device_dir(&igd).exists() {
                return Err(format!("{FAKE_IGD} missing: is vfio_test_fakepci loaded?"));
            }
            let ids = sys.vendor_device(&igd).map_err(s)?;
            let class = std::fs::read_to_string(sys.device_dir(&igd).join("class")).map_err(s)?;
            if ids != (0x8086, 0x3e92) || class.trim() != "0x030000" {
                return Err(format!(
                    "{FAKE_IGD} is {:04x}:{:04x} class {}",
                    ids.0,
                    ids.1,
                    class.trim()
                ));
            }
            if let Some(d) = sys.driver(&igd).map_err(s)? {
                return Err(format!("{FAKE_IGD} has driver {d} before any bind"));
            }
            for d in [UPSTREAM, DRIVER] {
                if !sys.driver_loaded(d) {
                    return Err(format!("driver {d} is not registered"));
                }
            }
            if self.args.mode == crate::Mode::Iommu
                && sys.info(&igd).map_err(s)?.iommu_group.is_some()
            {
                return Err(format!(
                    "{FAKE_IGD} has an IOMMU group; the fixture's domain should have none"
                ));
            }
            Ok(())
        });
        if ok {
            let was = std::fs::read_to_string(NOIOMMU_PARAM)
                .map(|v| v.trim() == "Y")
                .unwrap_or(false);
            if !was {
                let _ = std::fs::write(NOIOMMU_PARAM, "Y");
            }
            for l in layouts() {
                self.igd_layout(&igd, &l);
            }
            let _ = set_real_asls(OPREGION_PHYS as u32);
            if !was {
                let _ = std::fs::write(NOIOMMU_PARAM, "N");
            }
        }
        self.igd_refuse_edu();
    }

    /// Binds `driver`, opens the device through its noiommu group, asks everything.
    fn igd_session(
        &mut self,
        igd: &Bdf,
        driver: &str,
        write_asls: bool,
    ) -> Result<IgdAnswers, String> {
        let sys = &self.sys;
        sys.bind(igd, driver)
            .map_err(|e| format!("bind {driver}: {e}"))?;
        let g = sys
            .info(igd)
            .map_err(s)?
            .iommu_group
            .ok_or("no iommu_group after binding")?;
        let node = format!("/dev/vfio/noiommu-{g}");
        if !wait_for(|| Path::new(&node).exists()) {
            return Err(format!("{node} did not appear"));
        }
        let r = match vfio::open_via_group(&node, igd.as_str(), vfio::VFIO_NOIOMMU_IOMMU) {
            Ok(dev) => query(&dev.file, write_asls),
            Err(e) => Ok(IgdAnswers {
                open: Some(e),
                ..Default::default()
            }),
        };
        sys.unbind(igd).map_err(|e| format!("unbind: {e}"))?;
        r
    }

    fn igd_layout(&mut self, igd: &Bdf, l: &Layout) {
        let mut answers: Vec<(String, IgdAnswers)> = Vec::new();
        for driver in [UPSTREAM, DRIVER] {
            let mut got = None;
            let placed = place(l);
            let log_before = crate::kmod::kmsg().map(|l| l.len()).unwrap_or(0);
            let run = placed.and_then(|()| self.igd_session(igd, driver, l.has_regions()));
            if driver == DRIVER {
                self.igd_dmesg(l, log_before);
            }
            let name = format!("igd-{}-open-{driver}", l.name);
            self.r.check(&name, || {
                let a = run.as_ref().map_err(|e| e.clone())?;
                match (&a.open, l.open_errno) {
                    (None, None) => {}
                    (Some(e), Some(want)) if e.contains(&format!("os error {want})")) => {}
                    (o, want) => return Err(format!("open gave {o:?}, expected errno {want:?}")),
                }
                got = Some(a.clone());
                Ok(())
            });
            let Some(a) = got else { continue };
            if l.open_errno.is_none() {
                self.igd_expectations(l, driver, &a);
            }
            answers.push((driver.to_string(), a));
        }
        if let [(_, o), (_, t)] = answers.as_slice() {
            self.r
                .check(&format!("igd-{}-differential-{DRIVER}", l.name), || {
                    diff(o, t)
                });
        } else {
            self.r
                .check(&format!("igd-{}-differential-{DRIVER}", l.name), || {
                    Err("a driver has no answers".into())
                });
        }
    }

    /// The checks of one driver's answers against what the layout and the platform define.
    fn igd_expectations(&mut self, l: &Layout, driver: &str, a: &IgdAnswers) {
        let name = |check: &str| format!("igd-{}-{check}-{driver}", l.name);
        let listed: Vec<String> = a
            .regions
            .iter()
            .filter(|(i, _)| *i >= vfio::NUM_REGIONS)
            .filter_map(|(i, r)| {
                r.as_ref().ok().map(|b| {
                    format!(
                        "{i}: subtype {} size {:#x} flags {:#x}",
                        u32_at(b, 44),
                        u64_at(b, 16),
                        u32_at(b, 4)
                    )
                })
            })
            .collect();
        self.r.info(format!(
            "igd {} {driver}: device regions [{}]",
            l.name,
            listed.join(", ")
        ));
        let host = sysfs_config(HOST_BRIDGE);
        let lpc = sysfs_config(LPC_BRIDGE);
        let want: Vec<(u32, u32, u64)> = if l.has_regions() {
            vec![
                (9, 1, l.view().len() as u64),
                (10, 2, host.as_ref().map(|c| c.len() as u64).unwrap_or(0)),
                (11, 3, lpc.as_ref().map(|c| c.len() as u64).unwrap_or(0)),
            ]
        } else {
            vec![]
        };
        self.r.check(&name("regions"), || {
            let info = a.info.ok_or("no GET_INFO")?.map_err(|e| format!("GET_INFO errno {e}"))?;
            let n = u32_at(&info, 8);
            if n != vfio::NUM_REGIONS + want.len() as u32 {
                return Err(format!("num_regions {n}, expected {}", vfio::NUM_REGIONS + want.len() as u32));
            }
            for &(i, subtype, size) in &want {
                let b = a.regions.iter().find(|r| r.0 == i).ok_or(format!("no answer for region {i}"))?;
                let b = b.1.as_ref().map_err(|e| format!("region {i}: errno {e}"))?;
                // READ | CAPS, the type capability (id 2, version 1), nothing after it.
                let (flags, cap, rsize, off) = (u32_at(b, 4), u32_at(b, 12), u64_at(b, 16), u64_at(b, 24));
                let (cid, cnext, ty, st) = (u32_at(b, 32), u32_at(b, 36), u32_at(b, 40), u32_at(b, 44));
                if (flags, cap, rsize, off) != (0x9, 32, size, u64::from(i) << 40)
                    || (cid, cnext, ty, st) != (0x0001_0002, 0, INTEL_TYPE, subtype)
                {
                    return Err(format!(
                        "region {i}: flags {flags:#x} cap_offset {cap} size {rsize:#x} offset {off:#x} cap id/ver {cid:#x} next {cnext} type {ty:#x}/{st}; expected READ|CAPS, size {size:#x}, type {INTEL_TYPE:#x}/{subtype}"
                    ));
                }
            }
            // The legacy VGA region: the fake IGD is VGA-class and the test kernel has
            // CONFIG_VFIO_PCI_VGA, so upstream offers it (IGD legacy mode needs it).
            let vga = a.regions.iter().find(|r| r.0 == vfio::VGA_INDEX).ok_or("no answer for region 8")?;
            let vga = vga.1.as_ref().map_err(|e| format!("VGA region (index 8): errno {e}; upstream offers it"))?;
            let (flags, rsize, off) = (u32_at(vga, 4), u64_at(vga, 16), u64_at(vga, 24));
            if (flags, rsize, off) != (0x3, 0xc0000, u64::from(vfio::VGA_INDEX) << 40) {
                return Err(format!(
                    "VGA region: flags {flags:#x} size {rsize:#x} offset {off:#x}; expected READ|WRITE, size 0xc0000, offset 8 << 40"
                ));
            }
            if let Some((i, r)) = a.regions.last() {
                if *i == n && r.is_ok() {
                    return Err(format!("region {n} (one past the last) answered"));
                }
            }
            for (i, past, wr) in &a.edges {
                if (*past, *wr) != (libc::EINVAL, libc::EINVAL) {
                    return Err(format!("region {i}: read at the end errno {past}, write errno {wr}; expected EINVAL for both"));
                }
            }
            Ok(())
        });
        if !l.has_regions() {
            return;
        }
        let contents = |i: u32| -> Result<Vec<u8>, String> {
            let c = a
                .contents
                .iter()
                .find(|c| c.0 == i)
                .ok_or(format!("region {i} was not read"))?;
            let c =
                c.1.clone()
                    .map_err(|e| format!("reading region {i}: errno {e}"))?;
            if !a.pieces_equal.iter().any(|p| *p == (i, true)) {
                return Err(format!(
                    "region {i}: 7-byte piecewise reads differ from the whole read"
                ));
            }
            Ok(c)
        };
        let view = l.view();
        self.r.check(&name("opregion"), || {
            let got = contents(9)?;
            if got != view {
                let at = got.iter().zip(&view).position(|(x, y)| x != y);
                return Err(format!("OpRegion region ({} bytes) differs from memory with upstream's patches ({} bytes), first at {at:x?}", got.len(), view.len()));
            }
            Ok(())
        });
        for (check, i, cfg) in [("host-cfg", 10, &host), ("lpc-cfg", 11, &lpc)] {
            self.r.check(&name(check), || {
                let want = cfg.clone()?;
                let got = contents(i)?;
                if got != want {
                    let at = got.iter().zip(&want).position(|(x, y)| x != y);
                    return Err(format!(
                        "region {i} differs from sysfs config ({} vs {} bytes, first at {at:x?})",
                        got.len(),
                        want.len()
                    ));
                }
                Ok(())
            });
        }
        let va = l.virtual_asls();
        self.r.check(&name("asls"), || {
            let want = [Ok(va), Ok(0x1234_5678), Ok(0x1234_ab78), Ok(0x1234)];
            if a.asls != want {
                return Err(format!("ASLS reads {:x?}, expected {want:x?} (open, after dword write, after byte write, word at 0xfe)", a.asls));
            }
            if a.real_asls != (l.asls, l.asls) {
                return Err(format!("the device's ASLS went {:#x} -> {:#x}; expected {:#x} unchanged", a.real_asls.0, a.real_asls.1, l.asls));
            }
            Ok(())
        });
    }

    /// The variant's kernel log lines about the fake device since `before`: one warning when
    /// the open fails, one line naming what is off when there is no OpRegion, none otherwise.
    fn igd_dmesg(&mut self, l: &Layout, before: usize) {
        self.r.check(&format!("igd-{}-dmesg-{DRIVER}", l.name), || {
            let log = crate::kmod::kmsg().map_err(s)?;
            let lines: Vec<&String> = log
                .iter()
                .skip(before)
                .filter(|x| x.contains(&format!("{DRIVER} {FAKE_IGD}:")) && (x.contains("IGD") || x.contains("OpRegion")))
                .collect();
            let want = match (l.open_errno, l.asls) {
                (Some(_), _) => Some("Failed to setup Intel IGD regions: "),
                (None, 0) => Some("no OpRegion (ASLS is 0 or all ones): OpRegion, host bridge and LPC bridge regions off"),
                _ => None,
            };
            match (want, lines.as_slice()) {
                (None, []) => Ok(()),
                (Some(w), [one]) if one.contains(w) => Ok(()),
                _ => Err(format!("expected {} line(s) like {want:?}, got {lines:?}", usize::from(want.is_some()))),
            }
        });
    }

    fn igd_refuse_edu(&mut self) {
        let Some(edu) = self.device_labelled("edu") else {
            return;
        };
        let _ = self.sys.unbind(&edu);
        let sys = &self.sys;
        let before = crate::kmod::kmsg().map(|l| l.len()).unwrap_or(0);
        self.r.check(&format!("igd-refuse-edu-{DRIVER}"), || {
            match sys.bind(&edu, DRIVER) {
                Ok(_) => return Err(format!("{DRIVER} accepted edu")),
                Err(pcibind::Error::Refused { .. }) => {}
                Err(e) => return Err(format!("bind failed otherwise: {e}")),
            }
            if let Some(d) = sys.driver(&edu).map_err(s)? {
                return Err(format!("edu on {d} after the refusal"));
            }
            let log = crate::kmod::kmsg().map_err(s)?;
            let lines: Vec<&String> = log
                .iter()
                .skip(before)
                .filter(|l| l.contains("is not in this driver's ID table"))
                .collect();
            if lines.len() != 1 || !lines[0].contains("[1234:11e8]") || !lines[0].contains(DRIVER) {
                return Err(format!(
                    "expected one refusal line naming edu and {DRIVER}: {lines:?}"
                ));
            }
            Ok(())
        });
        let _ = self.sys.unbind(&edu);
    }
}
