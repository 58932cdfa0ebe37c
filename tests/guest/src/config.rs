// SPDX-License-Identifier: GPL-2.0
//! Config space through the VFIO config region, per device and driver, compared byte for byte
//! with upstream C `vfio-pci` (the first `--driver`, the oracle), and a config-access latency
//! benchmark.
//!
//! For every `--device`, two phases, each running every `--driver` in turn (binding the device,
//! opening it through its group, closing and unbinding it again, so every session starts from a
//! device upstream's close path has restored, and no driver's sweep precedes another's reads):
//!
//! Phase 1:
//!
//! 1. **reads** (`config-dump-<label>-<driver>`): `GET_REGION_INFO` of the config region (its
//!    size must be the device's config size, 256 or 4096); the whole region as dwords; one
//!    `pread` of the whole region (the driver splits it); 1-, 2- and 3-byte reads at every offset
//!    of the first 256 bytes and 4-byte reads at every unaligned one (the read-splitting check).
//!    Every read must succeed, the IDs must equal sysfs and every split or bulk read must equal
//!    the dword dump.
//! 2. **rejected accesses** (`config-errno-<label>-<driver>`): reads and writes past the end, that
//!    straddle it, longer than the region, of 0 bytes, at offsets whose high bits select the VGA
//!    region (absent), no region at all or a negative offset, and a write to the ROM region;
//!    each must get upstream's answer (`EFAULT`, `EINVAL`, or 0 bytes; see [`errno_cases`]).
//!
//! Phase 2:
//!
//! 3. **write-probe sweep** (`config-sweep-<label>-<driver>`): for each dword of the region, read
//!    the original, write all-ones, read back, write zero, read back, write the original back and
//!    read back, recording every return value, errno and value; then the whole region again.
//!    Writing `PMCSR` puts the device in D3hot and the zero write brings it back to D0, writing
//!    `DEVCTL` with `BCR_FLR` set makes upstream reset the function (and restore its state):
//!    both are upstream behaviour and are kept identical on both sides, and the sweep order
//!    (one dword at a time, restored before the next) leaves the device usable. Every access
//!    must succeed and the IDs must never change.
//!
//! `differential-config-<label>-<driver>` then compares everything a driver answered with the
//! oracle's answers and reports the first differences (offset, size, values or errnos).
//!
//! The benchmark (not a pass/fail check) runs inside the same sessions, so it costs no extra
//! binds: in each of the two phases, the oracle and then `vfio-pci-generic` measure (and twice
//! more in a third, short phase in the other order), on the
//! same device in the same boot, 4-byte config reads at offset 0, 4-byte reads at a capability
//! (the PCIe one if present, else the first; none for a device without capabilities) and
//! 2-byte writes of `COMMAND` with its current value, in batches of [`BENCH_BATCH`] for at most
//! [`BENCH_BUDGET`] or [`BENCH_MAX_OPS`] per measurement. The drivers take turns, and for each
//! the lowest of its four rounds' medians is kept (TCG slows down with the host's load, which only
//! ever makes a round slower, so the better round is the less disturbed one); printed as
//! `INFO bench <config-read|config-read-cap|config-write> <label> vfio-pci=NNNns
//! vfio-pci-generic=NNNns ratio=X.XX off=0xNN n=N/N rounds=A,B/C,D` (ratio = ours / upstream,
//! `rounds` the medians of each round of each driver; a driver whose
//! access fails shows `=error(ERRNO)` and the ratio `n/a`); the host collects these lines into
//! its final report.

use crate::{find_nodes, vfio, Suite};
use pcibind::Bdf;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use vfio::{CONFIG_BASE, REGION_SHIFT};
const ROM_INDEX: i64 = vfio::ROM_INDEX as i64;
const VGA_INDEX: i64 = vfio::VGA_INDEX as i64;
/// The part of the config region the read-splitting check covers: the PCI-compatible space.
const SPLIT_SPAN: usize = 256;
/// How many differences a FAIL line names (the INFO lines show a few more).
const SHOW_DIFFS: usize = 8;
const INFO_DIFFS: usize = 24;

/// One access and its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// What the access is for (`orig`, `w-ones`, `read-at-end`, ...).
    pub what: &'static str,
    pub write: bool,
    /// The device fd offset (region index in bits 40 and up).
    pub off: i64,
    pub len: usize,
    /// Bytes written, or the bytes read (as many as the call returned).
    pub data: Vec<u8>,
    /// Bytes transferred, or the errno.
    pub ret: Result<usize, i32>,
}

pub fn errno_name(e: i32) -> String {
    let n = match e {
        libc::EPERM => "EPERM",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EEXIST => "EEXIST",
        libc::ENXIO => "ENXIO",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOTTY => "ENOTTY",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::ERANGE => "ERANGE",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => return format!("errno {e}"),
    };
    format!("{n}({e})")
}

/// `cfg+0x10`, `region8+0x0`, `offset -1`.
pub fn show_off(off: i64) -> String {
    if off < 0 {
        return format!("offset {off}");
    }
    let (idx, o) = (off >> REGION_SHIFT, off & ((1i64 << REGION_SHIFT) - 1));
    if idx == vfio::CONFIG_INDEX as i64 {
        format!("cfg+{o:#x}")
    } else {
        format!("region{idx}+{o:#x}")
    }
}

/// Up to 8 bytes as a little-endian number, longer data as its length and a checksum.
pub(crate) fn show_bytes(b: &[u8]) -> String {
    match b.len() {
        0 => "-".into(),
        n @ 1..=8 => {
            let v = b.iter().rev().fold(0u64, |a, &x| (a << 8) | x as u64);
            format!("{v:#0w$x}", w = 2 + 2 * n)
        }
        n => format!("{n} bytes, fnv {:016x}", fnv(b)),
    }
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x100_0000_01b3)
    })
}

impl Op {
    /// `w4 cfg+0x10 [w-ones]`.
    pub fn key(&self) -> String {
        format!(
            "{}{} {} [{}]",
            if self.write { 'w' } else { 'r' },
            self.len,
            show_off(self.off),
            self.what
        )
    }

    /// The answer: `-> 4 0xfffff000`, `-> EFAULT(14)`.
    pub fn answer(&self) -> String {
        match self.ret {
            Err(e) => errno_name(e),
            Ok(n) if self.write => format!("{n} (wrote {})", show_bytes(&self.data)),
            Ok(n) => format!("{n} {}", show_bytes(&self.data)),
        }
    }

    pub fn show(&self) -> String {
        format!("{} -> {}", self.key(), self.answer())
    }

    fn ok_full(&self) -> bool {
        self.ret == Ok(self.len)
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}

/// One `pread64`, exactly as given (no retry on a short count).
pub fn read(f: &File, what: &'static str, off: i64, len: usize) -> Op {
    let mut buf = vec![0u8; len];
    // SAFETY: `buf` is valid for `len` bytes of writes for the duration of the call.
    let r = unsafe { libc::pread64(f.as_raw_fd(), buf.as_mut_ptr().cast(), len, off) };
    let ret = if r < 0 {
        Err(last_errno())
    } else {
        Ok(r as usize)
    };
    buf.truncate(ret.unwrap_or(0));
    Op {
        what,
        write: false,
        off,
        len,
        data: buf,
        ret,
    }
}

/// One `pwrite64` of `data`.
pub fn write(f: &File, what: &'static str, off: i64, data: &[u8]) -> Op {
    // SAFETY: `data` is valid for `data.len()` bytes of reads for the duration of the call.
    let r = unsafe { libc::pwrite64(f.as_raw_fd(), data.as_ptr().cast(), data.len(), off) };
    let ret = if r < 0 {
        Err(last_errno())
    } else {
        Ok(r as usize)
    };
    Op {
        what,
        write: true,
        off,
        len: data.len(),
        data: data.to_vec(),
        ret,
    }
}

/// The config image from dword reads, if every read returned its 4 bytes.
fn image(ops: &[Op]) -> Option<Vec<u8>> {
    ops.iter()
        .all(Op::ok_full)
        .then(|| ops.iter().flat_map(|o| o.data.iter().copied()).collect())
}

/// The config region as dwords.
fn dump(f: &File, size: usize) -> Vec<Op> {
    (0..size)
        .step_by(4)
        .map(|o| read(f, "dword", CONFIG_BASE + o as i64, 4))
        .collect()
}

/// Reads of 1, 2 and 3 bytes at every offset of the first 256 bytes, and of 4 bytes at every
/// unaligned one, in that order.
fn split_reads(f: &File, size: usize) -> Vec<Op> {
    let span = SPLIT_SPAN.min(size);
    let mut out = Vec::new();
    for (len, what) in [
        (1usize, "split1"),
        (2, "split2"),
        (3, "split3"),
        (4, "split4"),
    ] {
        for off in 0..=span.saturating_sub(len) {
            if len == 4 && off % 4 == 0 {
                continue;
            }
            out.push(read(f, what, CONFIG_BASE + off as i64, len));
        }
    }
    out
}

/// An access upstream rejects (or answers in a way worth pinning), and the answer it gives.
struct Case {
    what: &'static str,
    write: bool,
    off: i64,
    len: usize,
    want: Result<usize, i32>,
}

/// The accesses of the errno check, for a config region of `size` bytes. What upstream answers
/// (6.12 `vfio_pci_rw`, `vfio_pci_config_rw`, `vfio_config_do_rw`): an index past the last
/// region is `EINVAL`, so is the VGA region of a device without VGA and any ROM write; in the
/// config region the whole `[pos, pos + count)` must lie below the config size or it is
/// `EFAULT` before anything is transferred; a count of 0 returns 0 before any check; a negative
/// offset is refused by the VFS with `EINVAL`.
fn errno_cases(size: usize) -> Vec<Case> {
    use libc::{EFAULT, EINVAL};
    let sz = size as i64;
    let c = |what, write, off: i64, len: usize, want| Case {
        what,
        write,
        off,
        len,
        want,
    };
    vec![
        c("read-0-bytes", false, CONFIG_BASE, 0, Ok(0)),
        c("write-0-bytes", true, CONFIG_BASE, 0, Ok(0)),
        c(
            "read-0-bytes-past-end",
            false,
            CONFIG_BASE + sz + 0x100,
            0,
            Ok(0),
        ),
        c("read-last-byte", false, CONFIG_BASE + sz - 1, 1, Ok(1)),
        c("read-last-dword", false, CONFIG_BASE + sz - 4, 4, Ok(4)),
        c("read-whole", false, CONFIG_BASE, size, Ok(size)),
        c("read-8-aligned", false, CONFIG_BASE, 8, Ok(8)),
        c("read-at-end", false, CONFIG_BASE + sz, 4, Err(EFAULT)),
        c("read-1-at-end", false, CONFIG_BASE + sz, 1, Err(EFAULT)),
        c(
            "read-straddle-2",
            false,
            CONFIG_BASE + sz - 1,
            2,
            Err(EFAULT),
        ),
        c(
            "read-straddle-4",
            false,
            CONFIG_BASE + sz - 2,
            4,
            Err(EFAULT),
        ),
        c(
            "read-straddle-8",
            false,
            CONFIG_BASE + sz - 4,
            8,
            Err(EFAULT),
        ),
        c(
            "read-whole-plus-1",
            false,
            CONFIG_BASE,
            size + 1,
            Err(EFAULT),
        ),
        c("read-4097", false, CONFIG_BASE, 4097, Err(EFAULT)),
        c("read-8192", false, CONFIG_BASE, 8192, Err(EFAULT)),
        c("read-past-4k", false, CONFIG_BASE + 0x1000, 4, Err(EFAULT)),
        c("read-far", false, CONFIG_BASE + 0x10_0000, 4, Err(EFAULT)),
        c(
            "read-region-top",
            false,
            CONFIG_BASE + (1i64 << REGION_SHIFT) - 4,
            4,
            Err(EFAULT),
        ),
        c("write-at-end", true, CONFIG_BASE + sz, 4, Err(EFAULT)),
        c(
            "write-straddle-2",
            true,
            CONFIG_BASE + sz - 1,
            2,
            Err(EFAULT),
        ),
        c(
            "write-straddle-8",
            true,
            CONFIG_BASE + sz - 4,
            8,
            Err(EFAULT),
        ),
        c(
            "write-whole-plus-1",
            true,
            CONFIG_BASE,
            size + 1,
            Err(EFAULT),
        ),
        c("write-4097", true, CONFIG_BASE, 4097, Err(EFAULT)),
        c("write-far", true, CONFIG_BASE + 0x10_0000, 4, Err(EFAULT)),
        c("read-vga", false, VGA_INDEX << REGION_SHIFT, 4, Err(EINVAL)),
        c("write-vga", true, VGA_INDEX << REGION_SHIFT, 4, Err(EINVAL)),
        c("write-rom", true, ROM_INDEX << REGION_SHIFT, 4, Err(EINVAL)),
        c("read-index-9", false, 9i64 << REGION_SHIFT, 4, Err(EINVAL)),
        c("write-index-9", true, 9i64 << REGION_SHIFT, 4, Err(EINVAL)),
        c(
            "read-index-255",
            false,
            255i64 << REGION_SHIFT,
            4,
            Err(EINVAL),
        ),
        c(
            "read-index-max",
            false,
            0x7f_ffffi64 << REGION_SHIFT,
            4,
            Err(EINVAL),
        ),
        c(
            "write-index-max",
            true,
            0x7f_ffffi64 << REGION_SHIFT,
            4,
            Err(EINVAL),
        ),
        c("read-negative", false, -4, 4, Err(EINVAL)),
        c("write-negative", true, -4, 4, Err(EINVAL)),
    ]
}

/// Runs the errno cases. Writes that should be refused carry the device's current bytes at
/// that offset (zeros past the end), so a driver that wrongly accepts one changes nothing.
fn errno_ops(f: &File, size: usize, img: &[u8]) -> Vec<Op> {
    errno_cases(size)
        .iter()
        .map(|c| {
            if c.write {
                let start = (c.off - CONFIG_BASE).max(0) as usize;
                let data: Vec<u8> = (0..c.len)
                    .map(|i| img.get(start + i).copied().unwrap_or(0))
                    .collect();
                write(f, c.what, c.off, &data)
            } else {
                read(f, c.what, c.off, c.len)
            }
        })
        .collect()
}

/// The write-probe sweep over every dword of the region.
fn sweep(f: &File, size: usize) -> Vec<Op> {
    let mut out = Vec::with_capacity(size / 4 * 7);
    for o in (0..size).step_by(4) {
        let off = CONFIG_BASE + o as i64;
        let orig = read(f, "orig", off, 4);
        let restore = orig.ok_full().then(|| orig.data.clone());
        out.push(orig);
        out.push(write(f, "w-ones", off, &[0xff; 4]));
        out.push(read(f, "r-ones", off, 4));
        out.push(write(f, "w-zero", off, &[0; 4]));
        out.push(read(f, "r-zero", off, 4));
        if let Some(v) = restore {
            out.push(write(f, "w-restore", off, &v));
            out.push(read(f, "r-restore", off, 4));
        }
    }
    out
}

/// Everything one driver answered for one device.
#[derive(Clone, Debug, Default)]
pub struct ConfigAnswers {
    /// Why a phase could not run (bind/open failed), per phase.
    pub broken: Vec<String>,
    /// `GET_REGION_INFO(config)`: (flags, size, offset) or the errno.
    pub region: Option<Result<(u32, u64, u64), i32>>,
    pub dump: Vec<Op>,
    pub bulk: Vec<Op>,
    pub split: Vec<Op>,
    pub errno: Vec<Op>,
    /// The region as dwords right before the sweep, the sweep, and the region right after.
    pub pre: Vec<Op>,
    pub sweep: Vec<Op>,
    pub post: Vec<Op>,
}

/// The standard and extended capabilities of a config image: (offset, id, extended).
pub fn capabilities(img: &[u8]) -> Vec<(usize, u16, bool)> {
    let mut out = Vec::new();
    let b = |o: usize| img.get(o).copied().unwrap_or(0);
    if img.len() >= 64 && b(6) & 0x10 != 0 {
        let mut p = (b(0x34) & 0xfc) as usize;
        let mut n = 0;
        while p >= 0x40 && p + 1 < img.len().min(256) && n < 48 {
            out.push((p, b(p) as u16, false));
            p = (b(p + 1) & 0xfc) as usize;
            n += 1;
        }
    }
    if img.len() > 256 {
        let mut p = 0x100;
        let mut n = 0;
        while p >= 0x100 && p + 4 <= img.len() && n < 1024 {
            let h = u32::from_le_bytes([b(p), b(p + 1), b(p + 2), b(p + 3)]);
            if h == 0 || h == 0xffff_ffff {
                break;
            }
            out.push((p, (h & 0xffff) as u16, true));
            p = ((h >> 20) & 0xffc) as usize;
            n += 1;
        }
    }
    out
}

/// Byte differences between two images, grouped by dword: `cfg+0x10: 0x... vs 0x...`.
fn image_diffs(a: &[u8], b: &[u8]) -> (usize, Vec<String>) {
    let mut count = 0;
    let mut out = Vec::new();
    if a.len() != b.len() {
        out.push(format!("size {} vs {}", a.len(), b.len()));
    }
    let n = a.len().min(b.len());
    for d in (0..n).step_by(4) {
        let e = (d + 4).min(n);
        let bytes = (d..e).filter(|&i| a[i] != b[i]).count();
        if bytes > 0 {
            count += bytes;
            out.push(format!(
                "{}: {} vs {}",
                show_off(CONFIG_BASE + d as i64),
                show_bytes(&a[d..e]),
                show_bytes(&b[d..e])
            ));
        }
    }
    (count, out)
}

/// Op-by-op differences between two runs of the same access sequence.
fn op_diffs(a: &[Op], b: &[Op], names: (&str, &str)) -> Vec<String> {
    let mut out = Vec::new();
    for (x, y) in a.iter().zip(b) {
        if x.key() != y.key() {
            out.push(format!("sequences diverge at {} vs {}", x.key(), y.key()));
            return out;
        }
        if x != y {
            out.push(format!(
                "{}: {} {} | {} {}",
                x.key(),
                names.0,
                x.answer(),
                names.1,
                y.answer()
            ));
        }
    }
    if a.len() != b.len() {
        out.push(format!("{} accesses vs {}", a.len(), b.len()));
    }
    out
}

/// All differences between the oracle's answers and another driver's, by category, each with
/// the total count and the first ones.
fn config_diffs(
    o: &ConfigAnswers,
    t: &ConfigAnswers,
    names: (&str, &str),
) -> Vec<(String, usize, Vec<String>)> {
    let mut cats: Vec<(String, Vec<String>)> = Vec::new();
    if o.region != t.region {
        cats.push((
            "region".into(),
            vec![format!(
                "GET_REGION_INFO(config) {:?} vs {:?}",
                o.region, t.region
            )],
        ));
    }
    match (image(&o.dump), image(&t.dump)) {
        (Some(a), Some(b)) => {
            let (bytes, v) = image_diffs(&a, &b);
            cats.push((format!("dump ({bytes} bytes differ)"), v));
        }
        _ => cats.push(("dump".into(), op_diffs(&o.dump, &t.dump, names))),
    }
    for (cat, a, b) in [
        ("bulk", &o.bulk, &t.bulk),
        ("split", &o.split, &t.split),
        ("errno", &o.errno, &t.errno),
        ("pre-sweep", &o.pre, &t.pre),
        ("sweep", &o.sweep, &t.sweep),
        ("post-sweep", &o.post, &t.post),
    ] {
        cats.push((cat.into(), op_diffs(a, b, names)));
    }
    cats.into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(c, v)| (c, v.len(), v))
        .collect()
}

/// The device fd of `bdf` bound to `driver`, through its group.
pub(crate) fn attach(suite: &Suite, bdf: &Bdf, driver: &str) -> Result<vfio::Device, String> {
    suite
        .sys
        .bind(bdf, driver)
        .map_err(|e| format!("bind to {driver}: {e}"))?;
    let nodes = find_nodes(&suite.sys, suite.args.mode, bdf)?;
    vfio::open_via_group(&nodes.group, bdf.as_str(), suite.iommu_type())
}

pub(crate) fn detach(suite: &Suite, bdf: &Bdf, dev: Option<vfio::Device>) {
    drop(dev);
    let _ = suite.sys.unbind(bdf);
}

fn region_of(f: &File) -> Result<(u32, u64, u64), i32> {
    vfio::region_info(f, vfio::CONFIG_INDEX)
        .map(|r| (r.flags, r.size, r.offset))
        .map_err(|e| vfio::errno(&e))
}

/// Every access must have moved all its bytes.
fn all_ok(ops: &[Op]) -> Result<(), String> {
    let bad: Vec<String> = ops.iter().filter(|o| !o.ok_full()).map(Op::show).collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} accesses failed, first: {}",
            bad.len(),
            ops.len(),
            first(&bad)
        ))
    }
}

pub(crate) fn first(v: &[String]) -> String {
    let mut s = v
        .iter()
        .take(SHOW_DIFFS)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if v.len() > SHOW_DIFFS {
        s.push_str(&format!("; ... {} more", v.len() - SHOW_DIFFS));
    }
    s
}

fn cap_name(id: u16, ext: bool) -> String {
    let n = if ext {
        match id {
            0x01 => "AER",
            0x02 => "VC",
            0x03 => "DSN",
            0x04 => "PWR",
            0x0b => "VSEC",
            0x0d => "ACS",
            0x0e => "ARI",
            0x0f => "ATS",
            0x10 => "SRIOV",
            0x17 => "TPH",
            0x18 => "LTR",
            0x19 => "SECPCI",
            0x1e => "L1SS",
            0x23 => "DVSEC",
            _ => "?",
        }
    } else {
        match id {
            0x01 => "PM",
            0x03 => "VPD",
            0x05 => "MSI",
            0x07 => "PCIX",
            0x09 => "VNDR",
            0x10 => "EXP",
            0x11 => "MSIX",
            0x12 => "SATA",
            0x13 => "AF",
            _ => "?",
        }
    };
    format!("{n}({id:#x})")
}

impl Suite {
    fn expected_cfg_size(&self, label: &str, bdf: &Bdf) -> u64 {
        self.args.cfg_sizes.get(label).copied().unwrap_or_else(|| {
            std::fs::metadata(self.sys.device_dir(bdf).join("config"))
                .map(|m| m.len())
                .unwrap_or(0)
        })
    }

    /// Config space checks and the differential, for every device and driver.
    pub(crate) fn config_checks(&mut self) {
        let drivers = self.args.drivers.clone();
        // The benchmark compares the oracle with our generic driver only.
        let bench_drivers = crate::bench::bench_drivers(&drivers);
        let bench_index = |d: &str| bench_drivers.iter().position(|b| b == d);
        for (bdf, label) in self.args.devices.clone() {
            let want = self.expected_cfg_size(&label, &bdf);
            let ids = self.sys.vendor_device(&bdf).ok();
            let mut all: BTreeMap<String, ConfigAnswers> = BTreeMap::new();
            let mut bench = Bench::default();
            let t0 = Instant::now();
            // Phase 1: reads and rejected accesses, every driver; then a benchmark round.
            for d in &drivers {
                let a = all.entry(d.clone()).or_default();
                match attach(self, &bdf, d) {
                    Ok(dev) => {
                        let f = &dev.file;
                        a.region = Some(region_of(f));
                        let size = match a.region {
                            Some(Ok((_, sz, _))) if sz > 0 && sz <= 4096 => sz as usize,
                            _ => want as usize,
                        };
                        a.dump = dump(f, size);
                        a.bulk = vec![read(f, "bulk", CONFIG_BASE, size)];
                        a.split = split_reads(f, size);
                        let img = image(&a.dump);
                        a.errno = errno_ops(f, size, img.as_deref().unwrap_or_default());
                        if let Some(i) = bench_index(d) {
                            bench.round(f, i, img.as_deref());
                        }
                        detach(self, &bdf, Some(dev));
                    }
                    Err(e) => {
                        a.broken.push(format!("reads: {e}"));
                        detach(self, &bdf, None);
                    }
                }
            }
            let t_reads = t0.elapsed();
            // Phase 2: a benchmark round, then the write-probe sweep, every driver.
            for d in &drivers {
                let a = all.entry(d.clone()).or_default();
                match attach(self, &bdf, d) {
                    Ok(dev) => {
                        let f = &dev.file;
                        // The size phase 1 read (the expected size if phase 1 could not run).
                        let size = if a.dump.is_empty() {
                            want as usize
                        } else {
                            a.dump.len() * 4
                        };
                        a.pre = dump(f, size);
                        if let Some(i) = bench_index(d) {
                            bench.round(f, i, image(&a.pre).as_deref());
                        }
                        a.sweep = sweep(f, size);
                        a.post = dump(f, size);
                        detach(self, &bdf, Some(dev));
                    }
                    Err(e) => {
                        a.broken.push(format!("sweep: {e}"));
                        detach(self, &bdf, None);
                    }
                }
            }
            // Phase 3: two more benchmark rounds with the drivers in the other order, so neither
            // is always measured second (a guest that slows down over a phase would otherwise
            // always penalise the same one), and so a burst of host load has fewer rounds to
            // spoil.
            for d in drivers.iter().rev() {
                let Some(i) = bench_index(d) else { continue };
                if let Ok(dev) = attach(self, &bdf, d) {
                    let img = all.get(d).and_then(|a| image(&a.pre));
                    bench.round(&dev.file, i, img.as_deref());
                    bench.round(&dev.file, i, img.as_deref());
                    detach(self, &bdf, Some(dev));
                } else {
                    detach(self, &bdf, None);
                }
            }
            let t_sweep = t0.elapsed() - t_reads;
            for d in &drivers {
                let a = all.get(d).cloned().unwrap_or_default();
                if self.args.config_trace.contains(&label) {
                    for o in a.dump.iter().chain(&a.errno).chain(&a.sweep) {
                        self.r
                            .info(format!("config-trace {label} {d}: {}", o.show()));
                    }
                }
                self.report_driver(&label, d, want, ids, &a);
            }
            if let Some(oracle) = drivers.first() {
                if let Some(img) = all.get(oracle).and_then(|a| image(&a.dump)) {
                    let caps: Vec<String> = capabilities(&img)
                        .iter()
                        .map(|&(o, id, x)| format!("{o:#x} {}", cap_name(id, x)))
                        .collect();
                    self.r.info(format!(
                        "config {label} ({want} bytes, via {oracle}): capabilities [{}]; \
                         reads+errno+bench {} ms, bench+sweeps {} ms",
                        caps.join(", "),
                        t_reads.as_millis(),
                        t_sweep.as_millis()
                    ));
                }
                for d in drivers.iter().skip(1) {
                    let (o, t) = (
                        all.get(oracle).cloned().unwrap_or_default(),
                        all.get(d).cloned().unwrap_or_default(),
                    );
                    self.differential_config(&label, oracle, d, &o, &t);
                }
            }
            self.report_bench(&label, &bench_drivers, &mut bench);
        }
    }

    fn report_driver(
        &mut self,
        label: &str,
        d: &str,
        want: u64,
        ids: Option<(u16, u16)>,
        a: &ConfigAnswers,
    ) {
        let sfx = format!("{label}-{d}");
        let broken = a.broken.clone();
        self.r.check(&format!("config-dump-{sfx}"), || {
            if let Some(b) = broken.iter().find(|b| b.starts_with("reads")) {
                return Err(b.clone());
            }
            let (flags, size, offset) = match a.region {
                Some(Ok(r)) => r,
                Some(Err(e)) => return Err(format!("GET_REGION_INFO(config): {}", errno_name(e))),
                None => return Err("no GET_REGION_INFO answer".into()),
            };
            let rw = vfio::VFIO_REGION_INFO_FLAG_READ | vfio::VFIO_REGION_INFO_FLAG_WRITE;
            if size != want || offset != CONFIG_BASE as u64 || flags & rw != rw {
                return Err(format!(
                    "config region size {size:#x} offset {offset:#x} flags {flags:#x}; want size {want:#x}, \
                     offset {CONFIG_BASE:#x}, READ|WRITE"
                ));
            }
            all_ok(&a.dump).map_err(|e| format!("dword dump: {e}"))?;
            let img = image(&a.dump).unwrap_or_default();
            let [v0, v1, d0, d1, ..] = img[..] else {
                return Err(format!("the dword dump has only {} bytes", img.len()));
            };
            let (v, dv) = (u16::from_le_bytes([v0, v1]), u16::from_le_bytes([d0, d1]));
            match ids {
                Some(x) if x == (v, dv) => {}
                Some((sv, sd)) => return Err(format!("config IDs {v:04x}:{dv:04x}, sysfs {sv:04x}:{sd:04x}")),
                None => return Err("cannot read the sysfs IDs".into()),
            }
            let mut bad = Vec::new();
            for o in a.bulk.iter().chain(&a.split) {
                let start = (o.off - CONFIG_BASE) as usize;
                let want = img.get(start..start + o.len);
                if !o.ok_full() || Some(o.data.as_slice()) != want {
                    bad.push(format!("{} (dump: {})", o.show(), want.map(show_bytes).unwrap_or_default()));
                }
            }
            if !bad.is_empty() {
                return Err(format!("{} split/bulk reads disagree with the dword dump: {}", bad.len(), first(&bad)));
            }
            Ok(())
        });
        let errno = a.errno.clone();
        let size = a.dump.len() * 4;
        self.r.check(&format!("config-errno-{sfx}"), || {
            if let Some(b) = broken.iter().find(|b| b.starts_with("reads")) {
                return Err(b.clone());
            }
            let cases = errno_cases(size);
            let bad: Vec<String> = cases
                .iter()
                .zip(&errno)
                .filter(|(c, o)| o.ret != c.want)
                .map(|(c, o)| {
                    let want = match c.want {
                        Ok(n) => format!("{n}"),
                        Err(e) => errno_name(e),
                    };
                    format!("{} -> {} (want {want})", o.key(), o.answer())
                })
                .collect();
            if bad.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} of {} accesses answered differently from upstream: {}",
                    bad.len(),
                    cases.len(),
                    first(&bad)
                ))
            }
        });
        let mut notes = Vec::new();
        self.r.check(&format!("config-sweep-{sfx}"), || {
            if let Some(b) = broken.iter().find(|b| b.starts_with("sweep")) {
                return Err(b.clone());
            }
            all_ok(&a.pre).map_err(|e| format!("dump before the sweep: {e}"))?;
            let ids0 = a.sweep.iter().find(|o| o.off == CONFIG_BASE && o.what == "orig").map(|o| o.data.clone());
            let changed: Vec<String> =
                a.sweep.iter().filter(|o| o.off == CONFIG_BASE && !o.write && Some(&o.data) != ids0.as_ref()).map(Op::show).collect();
            all_ok(&a.sweep).map_err(|e| format!("sweep: {e}"))?;
            if !changed.is_empty() {
                return Err(format!("the IDs changed: {}", first(&changed)));
            }
            all_ok(&a.post).map_err(|e| format!("dump after the sweep (device unusable?): {e}"))?;
            let (pre, post) = (image(&a.pre).unwrap_or_default(), image(&a.post).unwrap_or_default());
            if pre.len() < 4 || pre.get(..4) != post.get(..4) {
                let ids = |i: &[u8]| show_bytes(i.get(..4).unwrap_or_default());
                return Err(format!("IDs after the sweep {} vs before {}", ids(&post), ids(&pre)));
            }
            let (bytes, v) = image_diffs(&pre, &post);
            if bytes > 0 {
                notes.push(format!("{sfx}: {bytes} bytes differ after the sweep (restored values not kept): {}", first(&v)));
            }
            let mut orig: &[u8] = &[];
            let mut restored = 0;
            for o in &a.sweep {
                match o.what {
                    "orig" => orig = &o.data,
                    "r-restore" if o.data != orig => restored += 1,
                    _ => {}
                }
            }
            notes.push(format!(
                "{sfx}: sweep of {} dwords, {} accesses; {restored} dwords read back differently after the restore",
                a.pre.len(),
                a.sweep.len()
            ));
            Ok(())
        });
        for n in notes {
            self.r.info(n);
        }
    }

    fn differential_config(
        &mut self,
        label: &str,
        oracle: &str,
        d: &str,
        o: &ConfigAnswers,
        t: &ConfigAnswers,
    ) {
        let diffs = config_diffs(o, t, (oracle, d));
        let mut info = Vec::new();
        let ok = self
            .r
            .check(&format!("differential-config-{label}-{d}"), || {
                if !o.broken.is_empty() || !t.broken.is_empty() {
                    return Err(format!(
                        "a phase did not run: {oracle}: {:?}; {d}: {:?}",
                        o.broken, t.broken
                    ));
                }
                if diffs.is_empty() {
                    return Ok(());
                }
                let mut parts = Vec::new();
                let mut shown = 0;
                for (cat, n, v) in &diffs {
                    let take = SHOW_DIFFS.saturating_sub(shown).max(1).min(v.len());
                    shown += take;
                    parts.push(format!(
                        "{cat}: {n} differences, first: {}",
                        v[..take].join("; ")
                    ));
                    info.push((cat.clone(), v.clone()));
                }
                Err(format!("{oracle} vs {d}: {}", parts.join(" || ")))
            });
        if !ok {
            for (cat, v) in info {
                for l in v.iter().take(INFO_DIFFS) {
                    self.r
                        .info(format!("differential-config-{label}-{d} {cat}: {l}"));
                }
                if v.len() > INFO_DIFFS {
                    self.r.info(format!(
                        "differential-config-{label}-{d} {cat}: ... {} more",
                        v.len() - INFO_DIFFS
                    ));
                }
            }
        }
    }

    /// Prints the benchmark lines of one device: see the module documentation.
    fn report_bench(&mut self, label: &str, drivers: &[String], b: &mut Bench) {
        for &(what, off) in &b.plan {
            let rounds: Vec<Result<Rounds, String>> = (0..drivers.len())
                .map(|i| {
                    b.got
                        .remove(&(what, i))
                        .unwrap_or_else(|| Err("not measured".into()))
                })
                .collect();
            let names: Vec<&str> = drivers.iter().map(String::as_str).collect();
            self.r.info(format!(
                "bench {what} {label} {} off={off:#x}",
                crate::bench::summary(&names, &rounds, BENCH_BATCH)
            ));
        }
    }
}

/// The benchmark of one device: what is measured (decided on the first open, the same for every
/// driver) and the per-batch samples of each (measurement, driver index) so far.
#[derive(Default)]
struct Bench {
    plan: Vec<(&'static str, i64)>,
    got: BTreeMap<(&'static str, usize), Result<Rounds, String>>,
}

impl Bench {
    /// One round of every measurement on an open device; `img` is its config image if known.
    fn round(&mut self, f: &File, driver: usize, img: Option<&[u8]>) {
        if self.plan.is_empty() {
            let caps = img.map(capabilities).unwrap_or_default();
            self.plan.push(("config-read", 0));
            if let Some(c) = caps.iter().find(|c| c.1 == 0x10 && !c.2).or(caps.first()) {
                self.plan.push(("config-read-cap", c.0 as i64));
            }
            self.plan.push(("config-write", 4));
        }
        let cmd = read(f, "command", CONFIG_BASE + 4, 2);
        for &(what, off) in &self.plan {
            let res = match what {
                "config-write" if !cmd.ok_full() => {
                    Err(format!("reading COMMAND: {}", cmd.answer()))
                }
                "config-write" => measure(|| {
                    write(f, "bench", CONFIG_BASE + off, &cmd.data)
                        .ret
                        .map(|_| ())
                }),
                _ => measure(|| read(f, "bench", CONFIG_BASE + off, 4).ret.map(|_| ())),
            };
            let slot = self.got.entry((what, driver)).or_insert_with(|| Ok(vec![]));
            match (slot.as_mut(), res) {
                (Ok(v), Ok(x)) => v.push(x),
                (Ok(_), Err(e)) => *slot = Err(e),
                (Err(_), _) => {}
            }
        }
    }
}

/// The per-batch samples (ns per call) of each round of one measurement.
type Rounds = Vec<Vec<u64>>;

const BENCH_BATCH: usize = 8;
/// Per measurement and round: at most this much wall time and this many calls.
const BENCH_BUDGET: Duration = Duration::from_millis(100);
const BENCH_MAX_OPS: usize = 4000;

/// Per-batch times of `op` (ns per call, each the mean of [`BENCH_BATCH`] calls), after a short
/// warm-up, within [`BENCH_BUDGET`] and [`BENCH_MAX_OPS`]. The first failure ends the
/// measurement with its errno.
pub(crate) fn measure(mut op: impl FnMut() -> Result<(), i32>) -> Result<Vec<u64>, String> {
    for _ in 0..16 {
        op().map_err(errno_name)?;
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() * BENCH_BATCH < BENCH_MAX_OPS && start.elapsed() < BENCH_BUDGET {
        let t = Instant::now();
        for _ in 0..BENCH_BATCH {
            op().map_err(errno_name)?;
        }
        samples.push(t.elapsed().as_nanos() as u64 / BENCH_BATCH as u64);
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_values_show() {
        assert_eq!(show_off(CONFIG_BASE + 0x10), "cfg+0x10");
        assert_eq!(show_off(9 << 40), "region9+0x0");
        assert_eq!(show_off(-4), "offset -4");
        assert_eq!(show_bytes(&[0x00, 0x10, 0xbd, 0xfe]), "0xfebd1000");
        assert_eq!(show_bytes(&[0xff]), "0xff");
        assert_eq!(errno_name(libc::EFAULT), "EFAULT(14)");
    }

    #[test]
    fn walks_capabilities() {
        let mut img = vec![0u8; 4096];
        img[6] = 0x10;
        img[0x34] = 0x40;
        img[0x40] = 0x01;
        img[0x41] = 0x50;
        img[0x50] = 0x10;
        img[0x100..0x104].copy_from_slice(&(0x0001u32 | (0x140 << 20) | (2 << 16)).to_le_bytes());
        img[0x140..0x144].copy_from_slice(&(0x0003u32 | (1 << 16)).to_le_bytes());
        assert_eq!(
            capabilities(&img),
            vec![
                (0x40, 1, false),
                (0x50, 0x10, false),
                (0x100, 1, true),
                (0x140, 3, true)
            ]
        );
    }

    #[test]
    fn diffs_name_offsets_and_both_answers() {
        let a = vec![0u8; 8];
        let mut b = a.clone();
        b[5] = 0x12;
        let (n, v) = image_diffs(&a, &b);
        assert_eq!(n, 1);
        assert_eq!(v, vec!["cfg+0x4: 0x00000000 vs 0x00001200".to_string()]);
        let x = Op {
            what: "w-ones",
            write: true,
            off: CONFIG_BASE + 4,
            len: 4,
            data: vec![0xff; 4],
            ret: Ok(4),
        };
        let y = Op {
            ret: Err(libc::EINVAL),
            ..x.clone()
        };
        let d = op_diffs(std::slice::from_ref(&x), &[y], ("vfio-pci", "ours"));
        assert_eq!(
            d,
            vec![
                "w4 cfg+0x4 [w-ones]: vfio-pci 4 (wrote 0xffffffff) | ours EINVAL(22)".to_string()
            ]
        );
        let xs = std::slice::from_ref(&x);
        assert!(op_diffs(xs, xs, ("a", "b")).is_empty());
    }

    #[test]
    fn errno_cases_stay_in_their_regions() {
        for c in errno_cases(256) {
            if c.off >= 0
                && c.off >> REGION_SHIFT == vfio::CONFIG_INDEX as i64
                && c.want.is_ok()
                && c.len > 0
            {
                assert!((c.off - CONFIG_BASE) as usize + c.len <= 256, "{}", c.what);
            }
        }
    }
}
