// SPDX-License-Identifier: GPL-2.0
//! `vfio-pci-nvlink` against upstream `nvgrace-gpu` on the fake Grace Hopper GPUs of the
//! `vfio_test_fakepci` fixture (its module documentation lists them: with the reserved-memory
//! carve-out, without it, without properties, with size 0, with a base that is not
//! page-aligned). Each GPU is bound to upstream, then to ours, opened through its noiommu
//! group (the fixture's PCI domain has no IOMMU; in the iommu boot the checks switch
//! `vfio.enable_unsafe_noiommu_mode` on for their duration, as the IGD checks do), and
//! everything a VFIO user observes is written down ([`transcript`]):
//! - device info, every region's info with its capabilities (256 bytes of reply), every
//!   interrupt's info, the whole config space;
//! - sizing of every BAR register and the ROM register (all-ones, read, put back), dword and
//!   partial writes of the memory BARs' registers;
//! - reads and writes at the edges of each memory BAR (start, end of the memory, end of the
//!   BAR, past it), each write undone;
//! - `mmap` of each memory BAR (first page, whole memory, a page past the memory, private),
//!   a write through the mapping read back with `pread` and, for memory the fixture backs,
//!   from the physical memory (`/dev/mem`);
//! - an ioeventfd on BAR0, `VFIO_DEVICE_RESET` and the BAR registers after it, and after a
//!   close and a second open;
//! - the memory BAR paths from four threads at once ([`threads`]).
//!
//! `nvlink-<gpu>-transcript` checks the two transcripts are identical (the first differing
//! lines otherwise); `nvlink-<gpu>-model` checks ours against the model the fixture describes
//! (so an identical but empty transcript cannot pass); `nvlink-refuses-non-nvidia` binds the
//! variant to the fake IGD and expects the bind refused.

use crate::{s, vfio, wait_for, Suite};
use pcibind::Bdf;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

const DRIVER: &str = "vfio-pci-nvlink";
const UPSTREAM: &str = "nvgrace_gpu_vfio_pci";
const NOIOMMU_PARAM: &str = "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode";
const FAKE_IGD: &str = "0001:00:02.0";

/// A fake GPU: its address, its name in the checks, the physical memory behind its usable
/// memory if the fixture backs it, and the regions ours must show: (index, BAR size, memory).
struct Gpu {
    bdf: &'static str,
    name: &'static str,
    backing: Option<u64>,
    model: &'static [(u32, u64, u64)],
}

const GPUS: [Gpu; 5] = [
    Gpu {
        bdf: "0001:00:03.0",
        name: "carveout",
        backing: None,
        // Upstream sizes the usable BAR before rounding the memory down to 512 MiB blocks.
        model: &[(2, 2 << 30, (1 << 30) + (3 << 20)), (4, 1 << 30, 512 << 20)],
    },
    Gpu {
        bdf: "0001:00:04.0",
        name: "cached",
        backing: Some(0x0900_0000),
        model: &[(2, 0, 0), (4, 4 << 20, 3 << 20)],
    },
    Gpu {
        bdf: "0001:00:05.0",
        name: "no-properties",
        backing: None,
        model: &[(2, 0, 0), (4, 0, 0)],
    },
    Gpu {
        bdf: "0001:00:06.0",
        name: "size-zero",
        backing: None,
        model: &[(2, 0, 0), (4, 0, 0)],
    },
    Gpu {
        bdf: "0001:00:07.0",
        name: "misaligned",
        backing: Some(0x0930_0800),
        model: &[(2, 0, 0), (4, 512 << 10, 512 << 10)],
    },
];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | (u64::from(u32_at(b, at + 4)) << 32)
}

/// `pread` of `n` bytes at `off`: the bytes, or the errno.
fn rd(f: &File, off: i64, n: usize) -> String {
    let mut b = vec![0u8; n];
    match f.read_at(&mut b, off as u64) {
        Ok(k) => format!("read {k}: {}", hex(&b[..k])),
        Err(e) => format!("read errno {}", vfio::errno(&e)),
    }
}

/// `pwrite` of `data` at `off`: the count, or the errno.
fn wr(f: &File, off: i64, data: &[u8]) -> String {
    match f.write_at(data, off as u64) {
        Ok(k) => format!("write {k}"),
        Err(e) => format!("write errno {}", vfio::errno(&e)),
    }
}

/// `n` bytes at `off` read a dword at a time: what QEMU does for a guest's config accesses.
/// (A read across both memory BARs' registers differs on purpose: see `nvlink-*-config-span`.)
fn rd_dwords(f: &File, off: i64, n: usize) -> String {
    (0..n / 4)
        .map(|i| rd(f, off + 4 * i as i64, 4))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The memory BAR paths from several threads at once: two read and write the usable memory
/// BAR (region 4) at its start and across the end of its memory, one sizes its config
/// registers, one maps and unmaps it and resets the device. Nothing may fail that does not
/// fail alone; the answer (the same under both drivers) is part of the transcript.
fn threads(f: &File) -> Result<(), String> {
    let size = vfio::region_info(f, 4).map_err(|e| e.to_string())?.size as i64;
    if size == 0 {
        return Ok(());
    }
    let base = vfio::region_offset(4);
    std::thread::scope(|sc| {
        let rw: Vec<_> = (0..2i64)
            .map(|i| {
                sc.spawn(move || -> Result<(), String> {
                    for n in 0..200i64 {
                        let at = if n % 2 == 0 {
                            64 * i
                        } else {
                            size / 2 - 4 + 8 * i
                        };
                        let mut b = [0u8; 8];
                        f.read_at(&mut b, (base + at) as u64)
                            .map_err(|e| e.to_string())?;
                        f.write_at(&b, (base + at) as u64)
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        let cfg = sc.spawn(move || -> Result<(), String> {
            for _ in 0..200 {
                let c = (vfio::CONFIG_BASE + 0x20) as u64;
                f.write_all_at(&[0xff; 4], c).map_err(|e| e.to_string())?;
                let mut b = [0u8; 4];
                f.read_exact_at(&mut b, c).map_err(|e| e.to_string())?;
            }
            Ok(())
        });
        let map = sc.spawn(move || -> Result<(), String> {
            for _ in 0..50 {
                if let Ok(m) = vfio::Mapping::new(f, base, 4096, libc::MAP_SHARED) {
                    drop(m);
                }
                let _ = vfio::reset(f);
            }
            Ok(())
        });
        for t in rw.into_iter().chain([cfg, map]) {
            t.join().map_err(|_| "a thread panicked".to_string())??;
        }
        Ok(())
    })
}

/// Reads `n` bytes of physical memory at `phys` through `/dev/mem`.
fn devmem(phys: u64, n: usize) -> String {
    let mut b = vec![0u8; n];
    match File::open("/dev/mem").and_then(|f| f.read_exact_at(&mut b, phys)) {
        Ok(()) => hex(&b),
        Err(e) => format!("devmem {e}"),
    }
}

/// The sparse-mmap area (offset, size) of a region's info reply, if it has one.
fn sparse_area(info: &[u8]) -> Option<(u64, u64)> {
    let mut at = u32_at(info, 12) as usize;
    while at != 0 && at + 32 <= info.len() {
        if u32_at(info, at) & 0xffff == 1 && u32_at(info, at + 8) >= 1 {
            return Some((u64_at(info, at + 16), u64_at(info, at + 24)));
        }
        at = u32_at(info, at + 4) as usize;
    }
    None
}

/// Everything a VFIO user observes of the open device `f` (see the module documentation).
fn transcript(f: &File, backing: Option<u64>) -> Vec<String> {
    let mut t = Vec::new();
    let info = vfio::device_info(f, 24);
    t.push(format!(
        "info {:?}",
        info.as_ref()
            .map(|i| (i.flags, i.num_regions, i.num_irqs))
            .map_err(vfio::errno)
    ));
    let (n_regions, n_irqs) = info.map_or((9, 5), |i| (i.num_regions.min(16), i.num_irqs.min(16)));
    let mut regions = Vec::new();
    for i in 0..n_regions {
        match vfio::region_info_raw(f, i, 256) {
            Ok(b) => {
                t.push(format!("region {i}: {}", hex(&b)));
                regions.push((i, u64_at(&b, 16), sparse_area(&b)));
            }
            Err(e) => t.push(format!("region {i}: errno {e}")),
        }
    }
    for i in 0..n_irqs {
        t.push(format!("irq {i}: {:x?}", crate::irq::irq_info(f, i, 16)));
    }
    let cfg = vfio::CONFIG_BASE;
    let cfg_size = regions
        .iter()
        .find(|r| r.0 == vfio::CONFIG_INDEX)
        .map_or(256, |r| r.1);
    let mut off = 0;
    while off < cfg_size {
        t.push(format!(
            "config {off:#05x}: {}",
            rd_dwords(f, cfg + off as i64, 64)
        ));
        off += 64;
    }
    let bar_regs = |t: &mut Vec<String>, when: &str| {
        t.push(format!(
            "{when} BAR registers: {}",
            rd_dwords(f, cfg + 0x10, 24)
        ));
    };
    for reg in (0x10..=0x24).step_by(4).chain([0x30]) {
        let orig = {
            let mut b = [0u8; 4];
            f.read_exact_at(&mut b, (cfg + reg) as u64).map(|()| b)
        };
        let w = wr(f, cfg + reg, &[0xff; 4]);
        let sized = rd(f, cfg + reg, 4);
        let back = orig.map(|b| wr(f, cfg + reg, &b));
        t.push(format!("size {reg:#x}: {w} {sized} restore {back:?}"));
    }
    t.push(format!(
        "write 0x20: {} {}",
        wr(f, cfg + 0x20, &0x1234_5678u32.to_le_bytes()),
        rd(f, cfg + 0x20, 8)
    ));
    t.push(format!(
        "write 0x26: {} {}",
        wr(f, cfg + 0x26, &[0xab, 0xcd]),
        rd(f, cfg + 0x20, 8)
    ));
    t.push(format!(
        "write 0x19: {} {}",
        wr(f, cfg + 0x19, &[0xff]),
        rd(f, cfg + 0x18, 8)
    ));
    t.push(format!("read 0x1a word: {}", rd(f, cfg + 0x1a, 2)));
    t.push(format!(
        "write 0x18 qword: {} {}",
        wr(f, cfg + 0x18, &[0x11; 8]),
        rd(f, cfg + 0x18, 8)
    ));
    bar_regs(&mut t, "after writes");
    for &(index, size, area) in regions.iter().filter(|r| r.0 == 2 || r.0 == 4) {
        if size == 0 {
            continue;
        }
        let base = vfio::region_offset(index);
        let mem = area.map_or(size, |a| a.1) as i64;
        let size = size as i64;
        for (what, at, n) in [
            ("start", 0, 8),
            ("memory end", mem - 4, 8),
            ("past memory", mem, 8),
            ("bar end", size - 4, 8),
            ("past bar", size, 1),
        ] {
            t.push(format!("bar {index} read {what}: {}", rd(f, base + at, n)));
        }
        for (what, at, n) in [
            ("start", 0, 8),
            ("memory end", mem - 4, 8),
            ("bar end", size - 2, 4),
            ("past bar", size, 1),
        ] {
            let mut orig = vec![0u8; n];
            let had = f.read_at(&mut orig, (base + at) as u64).unwrap_or(0);
            let data: Vec<u8> = (0..n as u8).map(|i| 0xa0 + i).collect();
            let w = wr(f, base + at, &data);
            let back = rd(f, base + at, n);
            let _ = f.write_at(&orig[..had], (base + at) as u64);
            t.push(format!("bar {index} write {what}: {w} then {back}"));
        }
        let page = 4096i64;
        for (what, off, len, flags) in [
            ("first page", 0, page, libc::MAP_SHARED),
            (
                "all memory",
                0,
                (mem + page - 1) / page * page,
                libc::MAP_SHARED,
            ),
            (
                "past memory",
                (mem + page - 1) / page * page,
                page,
                libc::MAP_SHARED,
            ),
            ("private", 0, page, libc::MAP_PRIVATE),
        ] {
            match vfio::Mapping::new(f, base + off, len as usize, flags) {
                Err(e) => t.push(format!("bar {index} mmap {what}: errno {e}")),
                Ok(m) if what == "first page" => {
                    let mapped = m.read32(16);
                    let orig = m.read32(32);
                    m.write32(32, 0x5eed_0000 | index);
                    let through = rd(f, base + 32, 4);
                    let phys = backing.filter(|_| index == 4).map(|p| devmem(p + 32, 4));
                    m.write32(32, orig);
                    t.push(format!(
                        "bar {index} mmap {what}: ok, reads {mapped:#x} (pread {}), write then {through}, physical {phys:?}",
                        rd(f, base + 16, 4)
                    ));
                }
                Ok(_) => t.push(format!("bar {index} mmap {what}: ok")),
            }
        }
    }
    let ev = vfio::eventfd().ok();
    let fd = ev
        .as_ref()
        .map_or(-1, |e| std::os::fd::AsRawFd::as_raw_fd(e));
    t.push(format!(
        "ioeventfd BAR0: {}",
        vfio::ioeventfd(
            f,
            vfio::Ioeventfd {
                argsz: 32,
                flags: 4,
                offset: vfio::region_offset(0) as u64,
                data: 1,
                fd,
                reserved: 0
            }
        )
    ));
    t.push(format!("reset: {}", vfio::reset(f)));
    bar_regs(&mut t, "after reset");
    t
}

impl Suite {
    pub(crate) fn nvlink_checks(&mut self) {
        let sys = &self.sys;
        let ok = self.r.check("nvlink-fixture", || {
            for d in [UPSTREAM, DRIVER] {
                if !sys.driver_loaded(d) {
                    return Err(format!("driver {d} is not registered"));
                }
            }
            for g in &GPUS {
                let bdf = Bdf::parse(g.bdf).map_err(s)?;
                if sys.vendor_device(&bdf).map_err(s)? != (0x10de, 0x2342) {
                    return Err(format!("{} is not the fake GPU", g.bdf));
                }
            }
            Ok(())
        });
        if !ok {
            return;
        }
        let was = std::fs::read_to_string(NOIOMMU_PARAM).is_ok_and(|v| v.trim() == "Y");
        if !was {
            let _ = std::fs::write(NOIOMMU_PARAM, "Y");
        }
        for g in &GPUS {
            self.nvlink_gpu(g);
        }
        if !was {
            let _ = std::fs::write(NOIOMMU_PARAM, "N");
        }
        let sys = &self.sys;
        self.r.check("nvlink-refuses-non-nvidia", || {
            let igd = Bdf::parse(FAKE_IGD).map_err(s)?;
            let r = sys.bind(&igd, DRIVER);
            let bound = sys.driver(&igd).map_err(s)?;
            let _ = sys.unbind(&igd);
            match (r, bound) {
                (Err(_), None) => Ok(()),
                (r, b) => Err(format!("bind gave {r:?}, driver {b:?}")),
            }
        });
    }

    /// Binds `driver` to the GPU, opens it through its noiommu group, writes the transcript
    /// (twice: a second open must find the BAR registers cleared again), unbinds.
    fn nvlink_session(
        &self,
        bdf: &Bdf,
        driver: &str,
        backing: Option<u64>,
    ) -> Result<Vec<String>, String> {
        let sys = &self.sys;
        sys.bind(bdf, driver)
            .map_err(|e| format!("bind {driver}: {e}"))?;
        let r = (|| {
            let g = sys
                .info(bdf)
                .map_err(s)?
                .iommu_group
                .ok_or("no iommu_group")?;
            let node = format!("/dev/vfio/noiommu-{g}");
            if !wait_for(|| Path::new(&node).exists()) {
                return Err(format!("{node} did not appear"));
            }
            let mut t = {
                let dev = vfio::open_via_group(&node, bdf.as_str(), vfio::VFIO_NOIOMMU_IOMMU)?;
                transcript(&dev.file, backing)
            };
            let dev = vfio::open_via_group(&node, bdf.as_str(), vfio::VFIO_NOIOMMU_IOMMU)?;
            t.push(format!(
                "second open BAR registers: {}",
                rd_dwords(&dev.file, vfio::CONFIG_BASE + 0x10, 24)
            ));
            // Last, not compared: one read across both memory BARs' registers next to the
            // same bytes a dword at a time.
            let c = vfio::CONFIG_BASE + 0x10;
            let _ = vfio::reset(&dev.file);
            t.push(format!("threads: {:?}", threads(&dev.file)));
            t.push(format!(
                "span {} | {}",
                rd(&dev.file, c, 24),
                rd_dwords(&dev.file, c, 24)
            ));
            Ok(t)
        })();
        sys.unbind(bdf).map_err(|e| format!("unbind: {e}"))?;
        r
    }

    fn nvlink_gpu(&mut self, g: &Gpu) {
        let Ok(bdf) = Bdf::parse(g.bdf) else { return };
        let upstream = self.nvlink_session(&bdf, UPSTREAM, g.backing);
        let ours = self.nvlink_session(&bdf, DRIVER, g.backing);
        let span = |t: &Result<Vec<String>, String>| {
            t.as_ref()
                .ok()
                .and_then(|t| t.last().cloned())
                .unwrap_or_default()
        };
        let (upstream_span, our_span) = (span(&upstream), span(&ours));
        self.r
            .info(format!("nvlink-{} upstream {upstream_span}", g.name));
        self.r.check(&format!("nvlink-{}-config-span", g.name), || {
            // Ours answers a read across the memory BARs' registers as its dword reads;
            // upstream emulates only the first pair such a read touches (the rest reads as the
            // plain device's registers): Documentation/variants/nvlink.md.
            let (whole, dwords) = our_span.split_once(" | ").ok_or("no span line")?;
            let whole = whole.rsplit(": ").next().unwrap_or_default();
            let dwords: String = dwords.split("read 4: ").map(str::trim).collect();
            if whole != dwords {
                return Err(format!("ours: {our_span}"));
            }
            Ok(())
        });
        self.r.check(&format!("nvlink-{}-transcript", g.name), || {
            let (u, o) = (upstream.as_ref()?, ours.as_ref()?);
            let (u, o) = (
                &u[..u.len().saturating_sub(1)],
                &o[..o.len().saturating_sub(1)],
            );
            let diffs: Vec<String> = u
                .iter()
                .zip(o.iter())
                .filter(|(a, b)| a != b)
                .take(3)
                .map(|(a, b)| format!("upstream `{a}` ours `{b}`"))
                .collect();
            if diffs.is_empty() && u.len() == o.len() {
                Ok(())
            } else {
                Err(format!(
                    "{} vs {} lines; {}",
                    u.len(),
                    o.len(),
                    diffs.join("; ")
                ))
            }
        });
        self.r.check(&format!("nvlink-{}-model", g.name), || {
            let o = ours.as_ref()?;
            for &(index, size, mem) in g.model {
                let line = o
                    .iter()
                    .find(|l| l.starts_with(&format!("region {index}: ")))
                    .ok_or(format!("no region {index}"))?;
                let hexs = line.trim_start_matches(&format!("region {index}: "));
                let bytes: Vec<u8> = (0..hexs.len() / 2)
                    .filter_map(|i| u8::from_str_radix(&hexs[2 * i..2 * i + 2], 16).ok())
                    .collect();
                let got = (u64_at(&bytes, 16), sparse_area(&bytes).map_or(0, |a| a.1));
                let want = (size, if size == 0 { 0 } else { mem });
                if got != want {
                    return Err(format!(
                        "region {index}: size and memory {got:#x?}, expected {want:#x?}"
                    ));
                }
            }
            Ok(())
        });
    }
}
