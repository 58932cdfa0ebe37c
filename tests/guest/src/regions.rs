// SPDX-License-Identifier: GPL-2.0
//! Regions: `GET_REGION_INFO` of every index, BAR and ROM access through the device fd, BAR
//! `mmap` with fault handling, memory decode and power state, `VFIO_DEVICE_IOEVENTFD`, and a
//! BAR access benchmark; every driver's answers compared with upstream C `vfio-pci` (the first
//! `--driver`, the oracle).
//!
//! For every `--device`, every driver in turn binds it, opens it through its group and runs the
//! categories below in one session (then, in iommu mode, opens it again through its cdev for the
//! region infos), then closes and unbinds it. What is accessed is planned from sysfs (the
//! `resource` file and the config space), never from a driver's answers, so both drivers run the
//! same sequence. Each category records every access and its answer as text (`Rec`) and notes
//! where an answer differs from what upstream is known to give (pinned from 6.12
//! `vfio_pci_core.c`/`vfio_pci_rdwr.c`). Per category and driver, `<cat>-<label>-<driver>` fails
//! on such a difference; `differential-<cat>-<label>-<driver>` compares the records with the
//! oracle's line by line.
//!
//! - `regions`: `GET_REGION_INFO` for indices 0-10, 31, 255 and `u32::MAX`, each with `argsz`
//!   32, then the `argsz` the driver asked for (when a capability chain did not fit), 256 and 16;
//!   the whole buffer (pre-filled with `0xa5`) as returned; `GET_INFO`'s region count; group and
//!   cdev paths (which must agree). Device-specific regions: the generic driver registers none,
//!   so `num_regions` is 9 and index 9 and up are `EINVAL` on both.
//! - `bar-rw`: device registers through `pread`/`pwrite` (edu liveness and factorial,
//!   pci-testdev's I/O BAR, ivshmem BAR2 as RAM against a model, the MSI-X table reading `0xff`
//!   with writes dropped), 1/2/4/8-byte and unaligned accesses, the ends of every BAR (short
//!   transfers, `EINVAL` at and past the end), absent BARs, ROM read and write, VGA, index 9.
//! - `bar-mmap`: `mmap` of every region (`MAP_PRIVATE`, I/O BARs, config, ROM, too long, past the
//!   end: `EINVAL`), then data through mappings, each in a forked child so a wrong SIGBUS cannot
//!   kill the test binary: edu registers, ivshmem BAR2 both ways against `pread`/`pwrite`, the
//!   MSI-X table unchanged by a dropped `pwrite`.
//! - `bar-decode`: memory decode off (virtual `COMMAND` bit 1): `pread`/`pwrite` are `EIO`, a
//!   child touching an existing or a new mapping dies of SIGBUS, I/O BARs keep working; decode
//!   back on: the same mapping faults in again. With a PM capability the same in D3hot.
//! - `ioeventfd`: edu's liveness register written by an eventfd (lands as `~data`), duplicate
//!   `EEXIST`, removal, removal of nothing `ENODEV`, nothing lands after removal or while decode
//!   is off, the 1000-entry limit (`ENOSPC`), cleanup on close (checked in a second session);
//!   invalid requests (argsz, flags, sizes, fd, region, bounds, the MSI-X table) on every device.
//!
//! The benchmark (not a check): on edu, 4-byte `pread` at BAR0+0x0 (`bar-read`) and `pwrite` at
//! BAR0+0x4 (`bar-write`), one round in each of two sessions per driver, the drivers taking
//! turns, then two rounds in a third session per driver in the other order; the best round's
//! median per driver, printed as the config benchmark prints its lines.

use crate::config::{self, errno_name, read, show_bytes, show_off, write, Op};
use crate::{find_nodes, vfio, Mode, Suite, GENERIC_DRIVER};
use pcibind::Bdf;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

use vfio::{CONFIG_BASE as CFG, REGION_SHIFT as SHIFT, ROM_INDEX as ROM, VGA_INDEX as VGA};
const PAGE: usize = 4096;
const CMD_IO: u16 = 1;
const CMD_MEM: u16 = 2;
const INDICES: &[u32] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 31, 255, u32::MAX];
const CATS: &[&str] = &["regions", "bar-rw", "bar-mmap", "bar-decode", "ioeventfd"];
/// `VFIO_PCI_IOEVENTFD_MAX`.
const IOEVENTFD_MAX: usize = 1000;
const EDU_LIVENESS: i64 = 0x04;
const EDU_FACT: i64 = 0x08;
const EDU_STATUS: i64 = 0x20;

fn base(idx: u32) -> i64 {
    (idx as i64) << SHIFT
}

/// One BAR as sysfs shows it.
#[derive(Clone, Copy, Debug)]
struct Bar {
    idx: u32,
    start: u64,
    size: u64,
    io: bool,
}

impl Bar {
    /// Upstream's `vfio_pci_probe_mmaps`: memory BARs of at least a page, or page-aligned.
    fn mmappable(&self) -> bool {
        !self.io && (self.size >= PAGE as u64 || self.start.is_multiple_of(PAGE as u64))
    }
    fn map_len(&self) -> usize {
        (self.size as usize).div_ceil(PAGE) * PAGE
    }
}

/// The MSI-X table: BAR, offset, size in bytes (entries * 16).
#[derive(Clone, Copy, Debug)]
struct Msix {
    bir: u32,
    off: u64,
    size: u64,
}

/// What the checks access, from sysfs only (the same for every driver).
#[derive(Clone, Debug)]
struct Plan {
    bars: Vec<Bar>,
    /// The lowest BAR index without a resource.
    absent: Option<u32>,
    rom: u64,
    cfg_size: u64,
    msix: Option<Msix>,
    /// Offset of the PM capability.
    pm: Option<usize>,
    /// A VGA-class device (0x0300xx): upstream offers the VGA region (the test kernel has
    /// CONFIG_VFIO_PCI_VGA; `disable_vga` is off outside `vga.rs`).
    vga: bool,
}

impl Plan {
    fn from_sysfs(suite: &Suite, bdf: &Bdf) -> Result<Plan, String> {
        let dir = suite.sys.device_dir(bdf);
        let res = std::fs::read_to_string(dir.join("resource"))
            .map_err(|e| format!("sysfs resource: {e}"))?;
        let cfg = std::fs::read(dir.join("config")).map_err(|e| format!("sysfs config: {e}"))?;
        let mut bars = Vec::new();
        let mut absent = None;
        let mut rom = 0;
        for (i, line) in res.lines().enumerate().take(7) {
            let v: Vec<u64> = line
                .split_whitespace()
                .map(|x| u64::from_str_radix(x.trim_start_matches("0x"), 16).unwrap_or(0))
                .collect();
            let (start, end, flags) = (
                v.first().copied().unwrap_or(0),
                v.get(1).copied().unwrap_or(0),
                v.get(2).copied().unwrap_or(0),
            );
            let size = if start == 0 && end == 0 {
                0
            } else {
                end - start + 1
            };
            if i == ROM as usize {
                rom = size;
            } else if size == 0 {
                absent = absent.or(Some(i as u32));
            } else {
                bars.push(Bar {
                    idx: i as u32,
                    start,
                    size,
                    io: flags & 0x100 != 0,
                });
            }
        }
        let caps = config::capabilities(&cfg);
        let u16at = |o: usize| {
            u16::from_le_bytes([
                cfg.get(o).copied().unwrap_or(0),
                cfg.get(o + 1).copied().unwrap_or(0),
            ])
        };
        let u32at = |o: usize| u32::from(u16at(o)) | (u32::from(u16at(o + 2)) << 16);
        let msix = caps.iter().find(|c| c.1 == 0x11 && !c.2).map(|c| {
            let table = u32at(c.0 + 4);
            Msix {
                bir: table & 7,
                off: (table & !7) as u64,
                size: ((u16at(c.0 + 2) & 0x7ff) as u64 + 1) * 16,
            }
        });
        let pm = caps.iter().find(|c| c.1 == 0x01 && !c.2).map(|c| c.0);
        // Class code: programming interface, sub-class, base class at 0x09..0x0b.
        let vga = cfg.get(0x0a..0x0c) == Some(&[0x00, 0x03][..]);
        Ok(Plan {
            bars,
            absent,
            rom,
            cfg_size: cfg.len() as u64,
            msix,
            pm,
            vga,
        })
    }

    fn bar(&self, idx: u32) -> Option<Bar> {
        self.bars.iter().copied().find(|b| b.idx == idx)
    }

    fn first_io(&self) -> Option<Bar> {
        self.bars.iter().copied().find(|b| b.io)
    }
}

/// One observation: what was done and the answer, as text.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    key: String,
    ans: String,
}

#[derive(Clone, Debug, Default)]
struct Cat {
    recs: Vec<Rec>,
    /// Answers that differ from upstream's known behaviour.
    bad: Vec<String>,
    ran: bool,
}

/// Everything one driver answered for one device.
#[derive(Default)]
struct Run {
    broken: Vec<String>,
    cats: BTreeMap<&'static str, Cat>,
    /// Per benchmark, the per-batch samples of each round, or the first error.
    bench: BTreeMap<&'static str, Result<Vec<Vec<u64>>, String>>,
    /// The eventfd left registered at the end of the first session (cleanup-on-close check).
    left_registered: Option<File>,
    /// Eventfds kept open until the end (closing one would tear its ioeventfds down early).
    keep: Vec<File>,
    notes: Vec<String>,
}

impl Run {
    fn cat(&mut self, c: &'static str) -> &mut Cat {
        let c = self.cats.entry(c).or_default();
        c.ran = true;
        c
    }
    fn rec(&mut self, c: &'static str, key: impl Into<String>, ans: impl Into<String>) {
        self.cat(c).recs.push(Rec {
            key: key.into(),
            ans: ans.into(),
        });
    }
    fn expect(&mut self, c: &'static str, ok: bool, msg: impl FnOnce() -> String) -> bool {
        if !ok {
            let m = msg();
            self.cat(c).bad.push(m);
        }
        ok
    }
    fn op(&mut self, c: &'static str, tag: &str, o: &Op) {
        let key = format!(
            "{tag}: {}{} {}",
            if o.write { 'w' } else { 'r' },
            o.len,
            show_off(o.off)
        );
        self.rec(c, key, o.answer());
    }
    fn rd(&mut self, c: &'static str, f: &File, tag: &str, off: i64, len: usize) -> Op {
        let o = read(f, "bar", off, len);
        self.op(c, tag, &o);
        o
    }
    fn wr(&mut self, c: &'static str, f: &File, tag: &str, off: i64, data: &[u8]) -> Op {
        let o = write(f, "bar", off, data);
        self.op(c, tag, &o);
        o
    }
    /// A read or write whose answer upstream is known to give.
    fn want(&mut self, c: &'static str, o: &Op, tag: &str, want: Result<usize, i32>) {
        self.op(c, tag, o);
        let got = o.ret;
        self.expect(c, got == want, || {
            format!(
                "{tag}: {} -> {}, upstream gives {}",
                key_of(o),
                o.answer(),
                show_ret(want)
            )
        });
    }
    fn rd_want(
        &mut self,
        c: &'static str,
        f: &File,
        tag: &str,
        off: i64,
        len: usize,
        want: Result<usize, i32>,
    ) -> Op {
        let o = read(f, "bar", off, len);
        self.want(c, &o, tag, want);
        o
    }
    fn wr_want(
        &mut self,
        c: &'static str,
        f: &File,
        tag: &str,
        off: i64,
        data: &[u8],
        want: Result<usize, i32>,
    ) -> Op {
        let o = write(f, "bar", off, data);
        self.want(c, &o, tag, want);
        o
    }
    /// Runs `body` in a forked child; its `rec`/`expect` calls come back through a pipe. The
    /// way the child ended is recorded as `<tag>: end`, and checked against `end`.
    fn child(
        &mut self,
        c: &'static str,
        tag: &str,
        end: vfio::ChildEnd,
        body: impl FnOnce(&mut Emit),
    ) -> vfio::ChildEnd {
        let (lines, got) = child_lines(body);
        for l in lines {
            match l.split_once('\t') {
                Some(("R", rest)) => {
                    let (k, a) = rest.split_once('\t').unwrap_or((rest, ""));
                    self.rec(c, format!("{tag}: {k}"), a);
                }
                Some(("X", m)) => {
                    self.expect(c, false, || format!("{tag}: {m}"));
                }
                _ => self.rec(c, format!("{tag}: ?"), l),
            }
        }
        self.rec(c, format!("{tag}: end"), got.to_string());
        self.expect(c, got == end, || format!("{tag}: {got}, expected {end}"));
        got
    }
}

fn key_of(o: &Op) -> String {
    format!(
        "{}{} {}",
        if o.write { 'w' } else { 'r' },
        o.len,
        show_off(o.off)
    )
}

fn show_ret(r: Result<usize, i32>) -> String {
    match r {
        Ok(n) => format!("{n}"),
        Err(e) => errno_name(e),
    }
}

fn show_errno(e: i32) -> String {
    if e == 0 {
        "0".into()
    } else {
        errno_name(e)
    }
}

fn show_opt(v: Option<u64>) -> String {
    v.map(|x| format!("{x:#x}"))
        .unwrap_or_else(|| "read failed".into())
}

fn le(b: &[u8]) -> u64 {
    b.iter().rev().fold(0u64, |a, &x| (a << 8) | x as u64)
}

fn val(o: &Op) -> Option<u64> {
    (o.ret == Ok(o.len)).then(|| le(&o.data))
}

/// What a forked child reports: `R\tkey\tanswer` and `X\tmessage` lines.
struct Emit {
    fd: i32,
}

impl Emit {
    fn line(&mut self, s: String) {
        let b = format!("{}\n", s.replace('\n', " "));
        // SAFETY: writes from a live buffer to the pipe's write end.
        unsafe { libc::write(self.fd, b.as_ptr().cast(), b.len()) };
    }
    fn rec(&mut self, k: impl AsRef<str>, a: impl AsRef<str>) {
        self.line(format!("R\t{}\t{}", k.as_ref(), a.as_ref()));
    }
    fn expect(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.line(format!("X\t{}", msg()));
        }
    }
}

fn child_lines(body: impl FnOnce(&mut Emit)) -> (Vec<String>, vfio::ChildEnd) {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a live array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return (
            vec![],
            vfio::ChildEnd::Error(vfio::errno(&std::io::Error::last_os_error())),
        );
    }
    let (rfd, wfd) = (fds[0], fds[1]);
    let end = vfio::in_child(|| {
        // SAFETY: the child's copy of the read end, not used by it.
        unsafe { libc::close(rfd) };
        body(&mut Emit { fd: wfd });
        0
    });
    // SAFETY: the parent's write end, closed so the read below sees EOF once the child is gone.
    unsafe { libc::close(wfd) };
    // SAFETY: the read end is ours alone from here.
    let mut r = unsafe { File::from_raw_fd(rfd) };
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    (s.lines().map(str::to_string).collect(), end)
}

/// A returned region info buffer: the header decoded, and the bytes after it in hex with a
/// trailing run of untouched `0xa5` summarised.
fn show_info_buf(r: &Result<Vec<u8>, i32>) -> String {
    match r {
        Err(e) => errno_name(*e),
        Ok(b) => {
            let mut h = [0u8; 32];
            h.copy_from_slice(&b[..32]);
            let tail = &b[32..];
            let keep = tail
                .iter()
                .rposition(|&x| x != 0xa5)
                .map(|p| p + 1)
                .unwrap_or(0);
            let hex: String = tail[..keep].iter().map(|x| format!("{x:02x}")).collect();
            format!(
                "{} tail[{hex}]+{}xa5",
                vfio::show_region(&h),
                tail.len() - keep
            )
        }
    }
}

fn u32at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn u64at(b: &[u8], o: usize) -> u64 {
    (u32at(b, o) as u64) | ((u32at(b, o + 4) as u64) << 32)
}

/// Reads `COMMAND`, writes it with `set` bits set and `clear` bits cleared, reads it back.
fn command(
    run: &mut Run,
    c: &'static str,
    f: &File,
    tag: &str,
    set: u16,
    clear: u16,
) -> Option<u16> {
    let o = run.rd(c, f, &format!("{tag} COMMAND"), CFG + 4, 2);
    let v = val(&o)? as u16;
    let nv = (v | set) & !clear;
    let w = run.wr(c, f, &format!("{tag} COMMAND"), CFG + 4, &nv.to_le_bytes());
    run.expect(c, w.ret == Ok(2), || {
        format!("{tag}: writing COMMAND {nv:#x}: {}", w.answer())
    });
    let o = run.rd(c, f, &format!("{tag} COMMAND back"), CFG + 4, 2);
    val(&o).map(|x| x as u16)
}

/// Sets the power state bits of PMCSR.
fn power(run: &mut Run, c: &'static str, f: &File, pm: usize, state: u16) {
    let off = CFG + pm as i64 + 4;
    let o = run.rd(c, f, "PMCSR", off, 2);
    let Some(v) = val(&o) else { return };
    let nv = (v as u16 & !3) | state;
    let w = run.wr(c, f, &format!("PMCSR D{state}"), off, &nv.to_le_bytes());
    run.expect(c, w.ret == Ok(2), || {
        format!("writing PMCSR {nv:#x}: {}", w.answer())
    });
    run.rd(c, f, "PMCSR back", off, 2);
}

// ---------------------------------------------------------------------------------------------
// regions

fn region_infos(run: &mut Run, f: &File, how: &str, plan: &Plan) {
    const C: &str = "regions";
    let info = vfio::device_info(f, 24);
    let nreg = info.as_ref().map(|i| i.num_regions).map_err(vfio::errno);
    run.rec(
        C,
        format!("{how} GET_INFO num_regions"),
        format!("{nreg:?}"),
    );
    run.expect(C, nreg == Ok(vfio::NUM_REGIONS), || {
        format!("{how}: GET_INFO num_regions {nreg:?}, upstream 9 (no device-specific regions)")
    });
    for &idx in INDICES {
        let a32 = vfio::region_info_raw(f, idx, 32);
        run.rec(C, format!("{how} idx{idx} argsz32"), show_info_buf(&a32));
        let asked = a32.as_ref().map(|b| u32at(b, 0)).unwrap_or(0);
        let full = (asked > 32 && asked <= 4096).then(|| vfio::region_info_raw(f, idx, asked));
        if let Some(full) = &full {
            run.rec(
                C,
                format!("{how} idx{idx} argsz{asked}"),
                show_info_buf(full),
            );
        }
        let a256 = vfio::region_info_raw(f, idx, 256);
        run.rec(C, format!("{how} idx{idx} argsz256"), show_info_buf(&a256));
        let a16 = vfio::region_info_raw(f, idx, 16);
        run.rec(C, format!("{how} idx{idx} argsz16"), show_info_buf(&a16));
        let w = format!("{how} index {idx}");
        run.expect(C, a16 == Err(libc::EINVAL), || {
            format!("{w} argsz 16: {}, upstream EINVAL", show_info_buf(&a16))
        });
        // What upstream answers: (size, flags, capability chain or not); None: EINVAL.
        let want: Option<(u64, u32, bool)> = match idx {
            0..=5 => Some(match plan.bar(idx) {
                None => (0, 0, false),
                Some(b) => {
                    let mut fl =
                        vfio::VFIO_REGION_INFO_FLAG_READ | vfio::VFIO_REGION_INFO_FLAG_WRITE;
                    let caps = b.mmappable() && plan.msix.is_some_and(|m| m.bir == idx);
                    if b.mmappable() {
                        fl |= vfio::REGION_FLAG_MMAP;
                    }
                    if caps {
                        fl |= vfio::REGION_FLAG_CAPS;
                    }
                    (b.size, fl, caps)
                }
            }),
            ROM => Some((
                plan.rom,
                if plan.rom > 0 {
                    vfio::VFIO_REGION_INFO_FLAG_READ
                } else {
                    0
                },
                false,
            )),
            7 => Some((
                plan.cfg_size,
                vfio::VFIO_REGION_INFO_FLAG_READ | vfio::VFIO_REGION_INFO_FLAG_WRITE,
                false,
            )),
            VGA if plan.vga => Some((
                0xc0000,
                vfio::VFIO_REGION_INFO_FLAG_READ | vfio::VFIO_REGION_INFO_FLAG_WRITE,
                false,
            )),
            _ => None,
        };
        let Some((size, flags, caps)) = want else {
            run.expect(C, a32 == Err(libc::EINVAL), || {
                format!("{w}: {}, upstream EINVAL", show_info_buf(&a32))
            });
            run.expect(C, a256 == Err(libc::EINVAL), || {
                format!("{w} argsz 256: {}, upstream EINVAL", show_info_buf(&a256))
            });
            continue;
        };
        let (b, b256) = match (&a32, &a256) {
            (Ok(b), Ok(b256)) => (b, b256),
            _ => {
                run.expect(C, false, || {
                    format!(
                        "{w}: {} / argsz 256: {}",
                        show_info_buf(&a32),
                        show_info_buf(&a256)
                    )
                });
                continue;
            }
        };
        let hdr = |b: &[u8]| (u32at(b, 4), u32at(b, 8), u64at(b, 16), u64at(b, 24));
        for (what, x) in [("argsz 32", b), ("argsz 256", b256)] {
            let (fl, ix, sz, off) = hdr(x);
            run.expect(C, (fl, ix, sz, off) == (flags, idx, size, base(idx) as u64), || {
                format!("{w} {what}: flags {fl:#x} index {ix} size {sz:#x} offset {off:#x}; upstream flags {flags:#x} size {size:#x} offset {:#x}", base(idx))
            });
        }
        if caps {
            // A capability chain that does not fit: argsz enlarged, cap_offset 0, nothing copied.
            run.expect(C, u32at(b, 0) == 40 && u32at(b, 12) == 0, || {
                format!("{w} argsz 32: argsz {} cap_offset {:#x}; upstream 40 and 0 (MSIX_MAPPABLE does not fit)", u32at(b, 0), u32at(b, 12))
            });
            let cap_ok = |x: &[u8], argsz: u32| {
                x.len() >= 40
                    && u32at(x, 0) == argsz
                    && u32at(x, 12) == 32
                    && u16::from_ne_bytes([x[32], x[33]]) == vfio::REGION_CAP_MSIX_MAPPABLE
                    && u16::from_ne_bytes([x[34], x[35]]) == 1
                    && u32at(x, 36) == 0
                    && x[40..].iter().all(|&y| y == 0xa5)
            };
            match &full {
                Some(Ok(x)) => {
                    run.expect(C, cap_ok(x, 40), || {
                        format!(
                            "{w} argsz 40: {}; upstream cap_offset 32, MSIX_MAPPABLE v1, next 0",
                            show_info_buf(&Ok(x.clone()))
                        )
                    });
                }
                other => {
                    run.expect(C, false, || {
                        format!("{w}: no second call with the asked argsz ({other:?})")
                    });
                }
            }
            run.expect(C, cap_ok(b256, 256), || format!("{w} argsz 256: {}; upstream argsz 256, cap_offset 32, MSIX_MAPPABLE, rest untouched", show_info_buf(&a256)));
        } else {
            run.expect(C, u32at(b, 0) == 32 && u32at(b, 12) == 0xa5a5_a5a5, || {
                format!("{w} argsz 32: argsz {} cap_offset {:#x}; upstream leaves both as passed (32, 0xa5a5a5a5)", u32at(b, 0), u32at(b, 12))
            });
            run.expect(
                C,
                u32at(b256, 0) == 256
                    && u32at(b256, 12) == 0xa5a5_a5a5
                    && b256[32..].iter().all(|&y| y == 0xa5),
                || {
                    format!(
                        "{w} argsz 256: {}; upstream touches nothing past the header",
                        show_info_buf(&a256)
                    )
                },
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// bar-rw

fn bar_rw(run: &mut Run, f: &File, label: &str, plan: &Plan) {
    const C: &str = "bar-rw";
    use libc::EINVAL;
    // Every BAR's ends; writes only where they cannot disturb the device.
    for b in &plan.bars {
        let (bb, sz) = (base(b.idx), b.size as i64);
        let t = |s: &str| format!("bar{} {s}", b.idx);
        run.rd(C, f, &t("first dword"), bb, 4);
        run.rd_want(C, f, &t("read at end"), bb + sz, 4, Err(EINVAL));
        run.rd_want(C, f, &t("read 1 at end"), bb + sz, 1, Err(EINVAL));
        run.rd_want(
            C,
            f,
            &t("read far past end"),
            bb + sz + 0x10_0000,
            4,
            Err(EINVAL),
        );
        run.rd_want(C, f, &t("read 0 past end"), bb + sz + 0x100, 0, Ok(0));
        run.rd_want(C, f, &t("read last byte"), bb + sz - 1, 1, Ok(1));
        run.rd_want(C, f, &t("read 8 at end-4 (short)"), bb + sz - 4, 8, Ok(4));
        run.rd_want(C, f, &t("read 2 at end-1 (short)"), bb + sz - 1, 2, Ok(1));
        if sz >= 64 {
            run.rd_want(
                C,
                f,
                &t("read 64 at end-32 (short)"),
                bb + sz - 32,
                64,
                Ok(32),
            );
        }
        run.wr_want(C, f, &t("write at end"), bb + sz, &[0; 4], Err(EINVAL));
        run.wr_want(
            C,
            f,
            &t("write far past end"),
            bb + sz + 0x10_0000,
            &[0; 4],
            Err(EINVAL),
        );
        let writable = (label == "edu" && b.idx == 0) || (label == "ivshmem" && b.idx == 2);
        if writable {
            run.wr_want(
                C,
                f,
                &t("write 8 at end-4 (short)"),
                bb + sz - 4,
                &[0; 8],
                Ok(4),
            );
        }
    }
    if let Some(a) = plan.absent {
        run.rd_want(
            C,
            f,
            &format!("absent bar{a} read"),
            base(a),
            4,
            Err(EINVAL),
        );
        run.wr_want(
            C,
            f,
            &format!("absent bar{a} write"),
            base(a),
            &[0; 4],
            Err(EINVAL),
        );
    }
    if plan.rom == 0 {
        run.rd_want(C, f, "rom read (no ROM)", base(ROM), 4, Err(EINVAL));
    } else {
        run.rd_want(C, f, "rom read", base(ROM), 4, Ok(4));
        let o = run.rd(C, f, "rom signature", base(ROM), 2);
        run.expect(C, o.data == [0x55, 0xaa], || {
            format!("ROM signature {}", o.answer())
        });
    }
    run.wr_want(C, f, "rom write", base(ROM), &[0; 4], Err(EINVAL));
    run.rd_want(C, f, "vga read", base(VGA), 4, Err(EINVAL));
    run.rd_want(C, f, "index 9 read", base(9), 4, Err(EINVAL));
    run.wr_want(C, f, "index 9 write", base(9), &[0; 4], Err(EINVAL));
    if let Some(m) = plan.msix {
        msix_rw(run, f, m, plan.bar(m.bir).map(|b| b.size).unwrap_or(0));
    }
    match label {
        "edu" => edu_rw(run, f),
        "pci-testdev" => testdev_rw(run, f, plan),
        "ivshmem" => ivshmem_rw(run, f),
        "nvme" => {
            run.rd(C, f, "nvme CAP", 0, 8);
            run.rd(C, f, "nvme VS", 8, 4);
        }
        "e1000e" => {
            run.rd(C, f, "e1000e STATUS", 8, 4);
            if let Some(io) = plan.first_io() {
                run.rd(C, f, "e1000e IOADDR", base(io.idx), 4);
            }
        }
        _ => {}
    }
}

/// Puts device state an earlier session (of another driver) changed back to a fixed one, so
/// both drivers read the same values.
fn prepare(run: &mut Run, f: &File, label: &str, plan: &Plan) {
    const C: &str = "bar-rw";
    match label {
        // The selected test (offset 0 of either BAR) survives from the previous session.
        "pci-testdev" => {
            if let Some(io) = plan.first_io() {
                run.wr_want(
                    C,
                    f,
                    "prepare: select test 0",
                    base(io.idx),
                    &0u32.to_le_bytes(),
                    Ok(4),
                );
            }
        }
        // BAR2 is RAM the previous session wrote: zero what the checks read before writing.
        "ivshmem" => {
            let z = vec![0u8; PAGE];
            for off in [0usize, 0x1000, 0x8_0000, 0x10_0000 - PAGE] {
                run.wr_want(
                    C,
                    f,
                    "prepare: zero BAR2",
                    base(2) + off as i64,
                    &z,
                    Ok(PAGE),
                );
            }
        }
        _ => {}
    }
}

fn edu_rw(run: &mut Run, f: &File) {
    const C: &str = "bar-rw";
    let id = run.rd_want(C, f, "edu ident", 0, 4, Ok(4));
    run.expect(C, val(&id).map(|v| v & 0xff) == Some(0xed), || {
        format!("edu ident {} (want 0x......ed)", id.answer())
    });
    for x in [0x1234_5678u32, 0, 0xffff_ffff, 0xa5a5_5a5a] {
        run.wr_want(C, f, "edu liveness", EDU_LIVENESS, &x.to_le_bytes(), Ok(4));
        let o = run.rd_want(C, f, "edu liveness", EDU_LIVENESS, 4, Ok(4));
        run.expect(C, val(&o) == Some(!x as u64), || {
            format!(
                "edu liveness: wrote {x:#x}, read {} (want {:#x})",
                o.answer(),
                !x
            )
        });
    }
    for (n, want) in [(5u32, 120u64), (10, 3_628_800), (12, 479_001_600)] {
        let got = edu_factorial(f, val, n);
        run.rec(C, format!("edu factorial {n}"), format!("{got:?}"));
        run.expect(C, got == Ok(want), || {
            format!("edu factorial({n}) through pread/pwrite: {got:?}, want {want}")
        });
    }
    // Sizes and alignments: edu answers only 4-byte accesses below 0x80 (others read as ~0 or
    // are dropped), and 4/8-byte ones from 0x80; upstream splits 8 bytes into two 4-byte ones
    // (lo-hi) and unaligned accesses by alignment. Compared with upstream, not pinned.
    run.wr(
        C,
        f,
        "edu liveness",
        EDU_LIVENESS,
        &0x0bad_cafeu32.to_le_bytes(),
    );
    for len in [1usize, 2, 4, 8] {
        for off in [0i64, 1, 2, 3, 4, 6, 7] {
            run.rd(C, f, "edu sizes", off, len);
        }
    }
    run.rd(C, f, "edu 16 bytes", 0, 16);
    run.rd(C, f, "edu 7 bytes unaligned", 1, 7);
    run.wr(C, f, "edu 2-byte write", EDU_LIVENESS, &[0x11, 0x22]);
    run.rd(C, f, "after 2-byte write", EDU_LIVENESS, 4);
    run.wr(C, f, "edu 1-byte write", EDU_LIVENESS + 1, &[0x33]);
    run.rd(C, f, "after 1-byte write", EDU_LIVENESS, 4);
    // At 0x0, not 0x4: the upper half of an 8-byte write at 0x4 would start a factorial.
    run.wr(
        C,
        f,
        "edu 8-byte write",
        0,
        &0x0102_0304_0506_0708u64.to_le_bytes(),
    );
    run.rd(C, f, "after 8-byte write", 0, 16);
    run.wr(
        C,
        f,
        "edu dma src 8-byte write",
        0x80,
        &0x1122_3344_5566_7788u64.to_le_bytes(),
    );
    run.rd(C, f, "edu dma src", 0x80, 8);
    run.rd(C, f, "edu dma src lo", 0x80, 4);
    run.rd(C, f, "edu dma src hi", 0x84, 4);
    run.wr(
        C,
        f,
        "edu dma src 4-byte write",
        0x80,
        &0x99aa_bbccu32.to_le_bytes(),
    );
    run.rd(C, f, "edu dma src", 0x80, 8);
}

/// Starts edu's factorial of `n` (write 0x08), polls the status register (0x20) until bit 0 is
/// clear and reads the result. `v` turns a read into a value (lets the mmap path reuse it).
fn edu_factorial(f: &File, v: impl Fn(&Op) -> Option<u64>, n: u32) -> Result<u64, String> {
    // edu ignores a new factorial while one is running.
    let t = Instant::now();
    while read(f, "status", EDU_STATUS, 4)
        .data
        .first()
        .is_some_and(|s| s & 1 != 0)
        && t.elapsed() < Duration::from_millis(500)
    {}
    let w = write(f, "fact", EDU_FACT, &n.to_le_bytes());
    if w.ret != Ok(4) {
        return Err(format!("write: {}", w.answer()));
    }
    let t = Instant::now();
    loop {
        let s = read(f, "status", EDU_STATUS, 4);
        match v(&s) {
            Some(x) if x & 1 == 0 => break,
            Some(_) if t.elapsed() < Duration::from_millis(500) => continue,
            Some(x) => return Err(format!("status still {x:#x} after 500 ms")),
            None => return Err(format!("status read: {}", s.answer())),
        }
    }
    let r = read(f, "fact", EDU_FACT, 4);
    v(&r).ok_or_else(|| format!("read: {}", r.answer()))
}

fn testdev_rw(run: &mut Run, f: &File, plan: &Plan) {
    const C: &str = "bar-rw";
    // pci-testdev: offset 0 selects a test, the header of the selected test reads back
    // (test, width, offset, data, count, name). Compared with upstream, not pinned.
    let Some(io) = plan.first_io() else {
        run.expect(C, false, || "pci-testdev has no I/O BAR in sysfs".into());
        return;
    };
    let b = base(io.idx);
    for t in [0u32, 1, 2] {
        run.wr_want(C, f, "testdev select", b, &t.to_le_bytes(), Ok(4));
        let h = run.rd_want(C, f, "testdev header", b, 32, Ok(32));
        if t == 0 {
            let name: String = h
                .data
                .iter()
                .skip(20)
                .take_while(|&&c| c != 0)
                .map(|&c| c as char)
                .collect();
            run.notes.push(format!(
                "pci-testdev test {t} header {:02x?} name {name:?}",
                h.data.get(..20).unwrap_or_default()
            ));
        }
    }
    run.wr(C, f, "testdev select", b, &0u32.to_le_bytes());
    for len in [1usize, 2, 4, 8] {
        for off in [0i64, 1, 2, 4, 8] {
            run.rd(C, f, "testdev io sizes", b + off, len);
        }
    }
    run.wr(C, f, "testdev 1-byte write", b, &[1]);
    run.rd(C, f, "testdev after 1-byte write", b, 8);
    run.wr(C, f, "testdev 2-byte write", b, &[0, 0]);
    run.rd(C, f, "testdev after 2-byte write", b, 8);
    if let Some(m) = plan.bars.iter().find(|x| !x.io) {
        for off in [0i64, 4, 8, 12] {
            run.rd(C, f, "testdev mmio", base(m.idx) + off, 4);
        }
    }
}

/// A byte pattern that differs per `seed` and offset.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u8)
                .wrapping_mul(31)
                .wrapping_add(seed)
                .wrapping_add((i >> 8) as u8)
        })
        .collect()
}

fn ivshmem_rw(run: &mut Run, f: &File) {
    const C: &str = "bar-rw";
    for off in [0i64, 4, 8] {
        run.rd(C, f, "ivshmem reg", off, 4);
    }
    // BAR2 is RAM: every write, of any size and alignment, must read back exactly.
    let b2 = base(2);
    let area = 0x300usize;
    let mut model = vec![0u8; 0x80];
    run.wr_want(
        C,
        f,
        "ivshmem clear",
        b2 + area as i64,
        &model,
        Ok(model.len()),
    );
    for (i, &(o, n)) in [
        (0usize, 1usize),
        (1, 2),
        (3, 4),
        (7, 8),
        (15, 3),
        (18, 13),
        (32, 64),
        (0x61, 17),
    ]
    .iter()
    .enumerate()
    {
        let p = pattern(0x40 + i as u8, n);
        run.wr_want(C, f, "ivshmem write", b2 + (area + o) as i64, &p, Ok(n));
        model[o..o + n].copy_from_slice(&p);
    }
    let back = run.rd_want(
        C,
        f,
        "ivshmem read back",
        b2 + area as i64,
        model.len(),
        Ok(model.len()),
    );
    run.expect(C, back.data == model, || {
        format!(
            "ivshmem BAR2 {:#x}: read {:02x?}, wrote {:02x?}",
            area, back.data, model
        )
    });
    for (o, n) in [(1usize, 1usize), (2, 2), (5, 4), (9, 8), (3, 8), (17, 31)] {
        let r = read(f, "bar", b2 + (area + o) as i64, n);
        let ok = r.ret == Ok(n) && r.data == model[o..o + n];
        run.op(C, "ivshmem unaligned read", &r);
        run.expect(C, ok, || {
            format!(
                "ivshmem read {n} at {:#x}: {}, want {}",
                area + o,
                r.answer(),
                show_bytes(&model[o..o + n])
            )
        });
    }
    let p = pattern(0x77, PAGE);
    run.wr_want(C, f, "ivshmem 4 KiB write", b2 + 0x1000, &p, Ok(PAGE));
    let r = run.rd_want(C, f, "ivshmem 4 KiB read", b2 + 0x1000, PAGE, Ok(PAGE));
    run.expect(C, r.data == p, || {
        "ivshmem BAR2 4 KiB at 0x1000 read back differently".into()
    });
}

fn msix_rw(run: &mut Run, f: &File, m: Msix, bar_size: u64) {
    const C: &str = "bar-rw";
    let (t, end) = (
        base(m.bir) + m.off as i64,
        base(m.bir) + (m.off + m.size) as i64,
    );
    let ff = |o: &Op, from: usize, to: usize| {
        o.data.len() >= to && o.data[from..to].iter().all(|&x| x == 0xff)
    };
    let o = run.rd_want(C, f, "msix table dword", t, 4, Ok(4));
    run.expect(C, ff(&o, 0, 4), || {
        format!("MSI-X table read {}: upstream 0xffffffff", o.answer())
    });
    let o = run.rd_want(C, f, "msix table entry 0", t, 16, Ok(16));
    run.expect(C, ff(&o, 0, 16), || {
        format!("MSI-X table entry 0: {}, upstream all 0xff", o.answer())
    });
    let o = run.rd_want(
        C,
        f,
        "msix whole table",
        t,
        m.size as usize,
        Ok(m.size as usize),
    );
    run.expect(C, ff(&o, 0, m.size as usize), || {
        "MSI-X table: not all 0xff".into()
    });
    let o = run.rd_want(C, f, "msix last table byte", end - 1, 1, Ok(1));
    run.expect(C, ff(&o, 0, 1), || {
        format!("MSI-X last table byte {}", o.answer())
    });
    if m.off >= 4 {
        let o = run.rd_want(C, f, "msix straddle start", t - 4, 8, Ok(8));
        run.expect(C, ff(&o, 4, 8), || {
            format!(
                "read 8 at table-4: {}; upstream: 4 device bytes, then 0xff",
                o.answer()
            )
        });
        run.rd_want(C, f, "msix straddle start unaligned", t - 3, 6, Ok(6));
    }
    if m.off + m.size + 4 <= bar_size {
        let o = run.rd_want(C, f, "msix straddle end", end - 4, 8, Ok(8));
        run.expect(C, ff(&o, 0, 4), || {
            format!(
                "read 8 at table end-4: {}; upstream: 0xff, then 4 device bytes",
                o.answer()
            )
        });
    }
    run.wr_want(
        C,
        f,
        "msix table write (dropped)",
        t + 8,
        &0x4321u32.to_le_bytes(),
        Ok(4),
    );
    run.wr_want(C, f, "msix entry write (dropped)", t, &[0x5a; 16], Ok(16));
    let o = run.rd_want(C, f, "msix after write", t, 16, Ok(16));
    run.expect(C, ff(&o, 0, 16), || {
        format!("MSI-X entry 0 after a write: {}", o.answer())
    });
}

// ---------------------------------------------------------------------------------------------
// bar-mmap

fn show_map(r: &Result<vfio::Mapping, i32>) -> String {
    match r {
        Ok(m) => format!("mapped {:#x}", m.len()),
        Err(e) => errno_name(*e),
    }
}

fn bar_mmap(run: &mut Run, f: &File, label: &str, plan: &Plan) {
    const C: &str = "bar-mmap";
    use libc::{EINVAL, MAP_PRIVATE, MAP_SHARED};
    let try_map = |run: &mut Run, tag: String, off: i64, len: usize, flags: i32, ok: bool| {
        let m = vfio::Mapping::new(f, off, len, flags);
        let s = show_map(&m);
        run.rec(
            C,
            format!("{tag}: mmap {len:#x} at {}", show_off(off)),
            s.clone(),
        );
        let good = if ok {
            m.is_ok()
        } else {
            m.as_ref().err() == Some(&EINVAL)
        };
        run.expect(C, good, || {
            format!(
                "{tag}: mmap {len:#x} at {}: {s}; upstream {}",
                show_off(off),
                if ok { "maps" } else { "EINVAL" }
            )
        });
    };
    for b in &plan.bars {
        let (bb, len, mm) = (base(b.idx), b.map_len(), b.mmappable());
        let t = |s: &str| format!("bar{} {s}", b.idx);
        try_map(run, t("shared"), bb, len, MAP_SHARED, mm);
        try_map(run, t("private"), bb, len, MAP_PRIVATE, false);
        try_map(
            run,
            t("one page too long"),
            bb,
            len + PAGE,
            MAP_SHARED,
            false,
        );
        try_map(
            run,
            t("last page"),
            bb + (len - PAGE) as i64,
            PAGE,
            MAP_SHARED,
            mm,
        );
        if len > PAGE {
            try_map(
                run,
                t("past the end"),
                bb + PAGE as i64,
                len,
                MAP_SHARED,
                false,
            );
        }
    }
    if let Some(a) = plan.absent {
        try_map(
            run,
            format!("absent bar{a}"),
            base(a),
            PAGE,
            MAP_SHARED,
            false,
        );
    }
    try_map(run, "rom".into(), base(ROM), PAGE, MAP_SHARED, false);
    try_map(run, "config".into(), CFG, PAGE, MAP_SHARED, false);
    try_map(run, "vga".into(), base(VGA), PAGE, MAP_SHARED, false);
    try_map(run, "index 9".into(), base(9), PAGE, MAP_SHARED, false);

    match label {
        "edu" => edu_mmap(run, f),
        "ivshmem" => ivshmem_mmap(run, f),
        _ => {}
    }
    if let Some(m) = plan.msix {
        if plan.bar(m.bir).is_some_and(|b| b.mmappable()) {
            msix_mmap(run, f, plan, m);
        }
    }
}

fn edu_mmap(run: &mut Run, f: &File) {
    const C: &str = "bar-mmap";
    let map = match vfio::Mapping::new(f, 0, PAGE, libc::MAP_SHARED) {
        Ok(m) => m,
        Err(e) => {
            run.expect(C, false, || {
                format!("edu: mmap of BAR0's first page: {}", errno_name(e))
            });
            return;
        }
    };
    let ident = val(&read(f, "bar", 0, 4));
    run.child(C, "edu through the mapping", vfio::ChildEnd::Exit(0), |e| {
        let id = map.read32(0);
        e.rec("ident", format!("{id:#x}"));
        e.expect(Some(id as u64) == ident, || {
            format!("ident through the mapping {id:#x}, pread {ident:?}")
        });
        for x in [0x1234_5678u32, 0xffff_0000] {
            map.write32(EDU_LIVENESS as usize, x);
            let v = map.read32(EDU_LIVENESS as usize);
            e.rec(format!("liveness {x:#x}"), format!("{v:#x}"));
            e.expect(v == !x, || {
                format!("liveness through the mapping: wrote {x:#x}, read {v:#x}")
            });
        }
        // Mapping and fd see the same register.
        map.write32(EDU_LIVENESS as usize, 0x600d_f00d);
        let r = read(f, "bar", EDU_LIVENESS, 4);
        e.rec("pread after mapped write", r.answer());
        e.expect(val(&r) == Some(!0x600d_f00du32 as u64), || {
            format!("pread after a mapped write: {}", r.answer())
        });
        let w = write(f, "bar", EDU_LIVENESS, &0x00dd_ba11_u32.to_le_bytes());
        let v = map.read32(EDU_LIVENESS as usize);
        e.rec("mapped read after pwrite", format!("{} {v:#x}", w.answer()));
        e.expect(v == !0x00dd_ba11_u32, || {
            format!("mapped read after pwrite: {v:#x}")
        });
        for (n, want) in [(6u32, 720u32), (9, 362_880)] {
            let t = Instant::now();
            while map.read32(EDU_STATUS as usize) & 1 != 0
                && t.elapsed() < Duration::from_millis(500)
            {}
            map.write32(EDU_FACT as usize, n);
            let t = Instant::now();
            while map.read32(EDU_STATUS as usize) & 1 != 0
                && t.elapsed() < Duration::from_millis(500)
            {}
            let v = map.read32(EDU_FACT as usize);
            e.rec(format!("factorial {n}"), format!("{v}"));
            e.expect(v == want, || {
                format!("factorial({n}) through the mapping: {v}, want {want}")
            });
        }
    });
}

fn ivshmem_mmap(run: &mut Run, f: &File) {
    const C: &str = "bar-mmap";
    let len = 0x10_0000usize;
    let map = match vfio::Mapping::new(f, base(2), len, libc::MAP_SHARED) {
        Ok(m) => m,
        Err(e) => {
            run.expect(C, false, || {
                format!("ivshmem: mmap of BAR2: {}", errno_name(e))
            });
            return;
        }
    };
    run.child(
        C,
        "ivshmem BAR2 mapping vs fd",
        vfio::ChildEnd::Exit(0),
        |e| {
            for (seed, off) in [(1u8, 0usize), (2, 0x8_0000), (3, len - PAGE)] {
                // Mapped writes, fd reads.
                let p = pattern(seed, PAGE);
                for i in (0..PAGE).step_by(8) {
                    map.write64(off + i, le(&p[i..i + 8]));
                }
                let r = read(f, "bar", base(2) + off as i64, PAGE);
                e.rec(format!("mapped write, pread at {off:#x}"), r.answer());
                e.expect(r.data == p, || {
                    format!("pread of BAR2+{off:#x} after mapped writes differs")
                });
                // fd writes, mapped reads.
                let q = pattern(seed.wrapping_add(0x80), PAGE);
                let w = write(f, "bar", base(2) + off as i64, &q);
                let back: Vec<u8> = (0..PAGE)
                    .step_by(8)
                    .flat_map(|i| map.read64(off + i).to_le_bytes())
                    .collect();
                e.rec(
                    format!("pwrite, mapped read at {off:#x}"),
                    format!("{} match={}", w.answer(), back == q),
                );
                e.expect(back == q, || {
                    format!("mapped read of BAR2+{off:#x} after pwrite differs")
                });
            }
        },
    );
    if let Ok(regs) = vfio::Mapping::new(f, 0, PAGE, libc::MAP_SHARED) {
        let r = val(&read(f, "bar", 0, 4));
        run.child(C, "ivshmem BAR0 mapping", vfio::ChildEnd::Exit(0), |e| {
            let v = regs.read32(0);
            e.rec("IntrMask", format!("{v:#x}"));
            e.expect(Some(v as u64) == r, || {
                format!("IntrMask through the mapping {v:#x}, pread {r:?}")
            });
        });
    }
}

fn msix_mmap(run: &mut Run, f: &File, plan: &Plan, m: Msix) {
    const C: &str = "bar-mmap";
    let Some(b) = plan.bar(m.bir) else { return };
    let map = match vfio::Mapping::new(f, base(m.bir), b.map_len(), libc::MAP_SHARED) {
        Ok(x) => x,
        Err(e) => {
            run.expect(C, false, || {
                format!("mmap of the MSI-X BAR{}: {}", m.bir, errno_name(e))
            });
            return;
        }
    };
    // The table is mappable (MSIX_MAPPABLE); a write through the fd is dropped, so the real
    // entry seen through the mapping does not change.
    let at = m.off as usize + 8;
    run.child(C, "msix table through the mapping", vfio::ChildEnd::Exit(0), |e| {
        let before = map.read32(at);
        let x = before ^ 0x5a5a;
        let w = write(f, "bar", base(m.bir) + at as i64, &x.to_le_bytes());
        let after = map.read32(at);
        e.rec("pwrite msg data", w.answer());
        e.rec("real entry unchanged", format!("{}", before == after));
        e.expect(before == after, || format!("MSI-X entry 0 msg data {before:#x} -> {after:#x} after a pwrite of {x:#x}: not dropped"));
        let r = read(f, "bar", base(m.bir) + at as i64, 4);
        e.expect(val(&r) == Some(0xffff_ffff), || format!("pread of the table {}", r.answer()));
    });
}

// ---------------------------------------------------------------------------------------------
// bar-decode

fn bar_decode(run: &mut Run, f: &File, label: &str, plan: &Plan) {
    const C: &str = "bar-decode";
    use vfio::ChildEnd::{Exit, Signal};
    // A BAR whose offset 0 is device memory, not the MSI-X table (upstream fills the table with
    // 0xff without looking at memory decode).
    let in_table = |b: &Bar| plan.msix.is_some_and(|m| m.bir == b.idx && m.off == 0);
    let Some(b) = plan
        .bars
        .iter()
        .copied()
        .find(|b| b.mmappable() && !in_table(b))
    else {
        return;
    };
    let bb = base(b.idx);
    let map = match vfio::Mapping::new(f, bb, PAGE, libc::MAP_SHARED) {
        Ok(m) => m,
        Err(e) => {
            run.expect(C, false, || {
                format!("mmap of BAR{}: {}", b.idx, errno_name(e))
            });
            return;
        }
    };
    let on = val(&run.rd_want(C, f, "decode on: pread", bb, 4, Ok(4)));
    // A child touches first (a wrong SIGBUS must not kill the test binary); once that worked the
    // parent faults the page in too, so the children below inherit a populated page table
    // entry and only the driver's zap can make them fault (and die of SIGBUS).
    let parent_touch = |run: &mut Run, tag: &str, want: Option<u64>| {
        let ok = run.child(C, &format!("{tag}: touch"), Exit(0), |e| {
            let v = map.read32(0);
            e.expect(Some(v as u64) == want, || {
                format!("mapped {v:#x} vs pread {want:?}")
            });
        });
        if ok == Exit(0) {
            let v = map.read32(0);
            run.rec(C, format!("{tag}: parent touch"), format!("{v:#x}"));
        }
    };
    parent_touch(run, "decode on", on);
    command(run, C, f, "decode off:", 0, CMD_MEM);
    run.rd_want(C, f, "decode off: pread", bb, 4, Err(libc::EIO));
    run.rd_want(C, f, "decode off: pread 8", bb, 8, Err(libc::EIO));
    if label == "edu" {
        run.wr_want(
            C,
            f,
            "decode off: pwrite liveness",
            bb + EDU_LIVENESS,
            &1u32.to_le_bytes(),
            Err(libc::EIO),
        );
    }
    if label == "ivshmem" {
        run.wr_want(
            C,
            f,
            "decode off: pwrite BAR2",
            base(2),
            &[0; 8],
            Err(libc::EIO),
        );
        run.rd_want(C, f, "decode off: pread BAR2", base(2), 8, Err(libc::EIO));
    }
    if let Some(m) = plan.msix {
        // The MSI-X table is filled with 0xff without an access, decode or not.
        let o = run.rd(
            C,
            f,
            "decode off: MSI-X table pread",
            base(m.bir) + m.off as i64,
            4,
        );
        run.expect(C, o.ret == Ok(4) && o.data == [0xff; 4], || {
            format!(
                "MSI-X table read with memory decode off: {}; upstream 4 0xffffffff",
                o.answer()
            )
        });
    }
    if let Some(io) = plan.first_io() {
        // Upstream tests only memory decode (`test_mem` is false for I/O BARs).
        let o = run.rd(C, f, "decode off: I/O BAR pread", base(io.idx), 4);
        run.expect(C, o.ret == Ok(4), || {
            format!(
                "I/O BAR read with memory decode off: {}; upstream 4",
                o.answer()
            )
        });
    }
    run.child(
        C,
        "decode off: touch old mapping",
        Signal(libc::SIGBUS),
        |_| {
            std::hint::black_box(map.read32(0));
        },
    );
    if label == "edu" {
        run.child(
            C,
            "decode off: write old mapping",
            Signal(libc::SIGBUS),
            |_| map.write32(EDU_LIVENESS as usize, 7),
        );
    }
    let fresh = vfio::Mapping::new(f, bb, PAGE, libc::MAP_SHARED);
    run.rec(C, "decode off: new mmap", show_map(&fresh));
    run.expect(C, fresh.is_ok(), || {
        format!(
            "mmap with decode off: {}; upstream maps (faults are refused)",
            show_map(&fresh)
        )
    });
    if let Ok(m2) = &fresh {
        run.child(
            C,
            "decode off: touch new mapping",
            Signal(libc::SIGBUS),
            |_| {
                std::hint::black_box(m2.read32(0));
            },
        );
    }
    command(run, C, f, "decode on:", CMD_MEM, 0);
    let again = val(&run.rd_want(C, f, "decode on again: pread", bb, 4, Ok(4)));
    parent_touch(run, "decode on again, old mapping", again);
    if label == "edu" {
        run.child(
            C,
            "decode on again: liveness through the old mapping",
            Exit(0),
            |e| {
                map.write32(EDU_LIVENESS as usize, 0x1357_9bdf);
                let v = map.read32(EDU_LIVENESS as usize);
                e.rec("liveness", format!("{v:#x}"));
                e.expect(v == !0x1357_9bdfu32, || format!("liveness {v:#x}"));
            },
        );
    }
    // Low power: D3hot refuses BAR access and faults like decode off; D0 brings them back.
    if let Some(pm) = plan.pm {
        power(run, C, f, pm, 3);
        run.rd_want(C, f, "D3hot: pread", bb, 4, Err(libc::EIO));
        run.child(C, "D3hot: touch old mapping", Signal(libc::SIGBUS), |_| {
            std::hint::black_box(map.read32(0));
        });
        power(run, C, f, pm, 0);
        // A device without No_Soft_Reset may come back from D3hot reset; upstream restores it.
        command(run, C, f, "D0:", CMD_MEM, 0);
        let d0 = val(&run.rd_want(C, f, "D0: pread", bb, 4, Ok(4)));
        run.child(C, "D0: touch old mapping", Exit(0), |e| {
            let v = map.read32(0);
            e.expect(Some(v as u64) == d0, || {
                format!("mapped {v:#x} vs pread {d0:?}")
            });
        });
    }
}

// ---------------------------------------------------------------------------------------------
// ioeventfd

fn iev(offset: i64, data: u64, flags: u32, fd: i32) -> vfio::Ioeventfd {
    vfio::Ioeventfd {
        argsz: 32,
        flags,
        offset: offset as u64,
        data,
        fd,
        reserved: 0,
    }
}

/// Reads the eventfd's counter to zero (a counter left by a signal nobody consumed would fire
/// a later registration at once).
fn drain(ev: &File) {
    let mut b = [0u8; 8];
    // SAFETY: reads 8 bytes into a live buffer; the eventfd is non-blocking.
    unsafe { libc::read(ev.as_raw_fd(), b.as_mut_ptr().cast(), 8) };
}

fn eventfd() -> Result<File, String> {
    let ev = vfio::eventfd()?;
    // SAFETY: plain fcntl on our own fd.
    unsafe {
        let fl = libc::fcntl(ev.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(ev.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    Ok(ev)
}

/// Waits up to 500 ms for edu's liveness register to read `want`; the last value read.
fn wait_liveness(f: &File, want: u32, wait: bool) -> Option<u64> {
    let t = Instant::now();
    loop {
        let v = val(&read(f, "bar", EDU_LIVENESS, 4));
        if v == Some(want as u64) || !wait || t.elapsed() > Duration::from_millis(500) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn ioeventfd(run: &mut Run, f: &File, label: &str, plan: &Plan) {
    const C: &str = "ioeventfd";
    use libc::{EBADF, EEXIST, EINVAL, ENODEV, ENOSPC};
    let (ev, ev2) = match (eventfd(), eventfd()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            run.broken.push(e);
            return;
        }
    };
    let (evfd, ev2fd, devfd) = (ev.as_raw_fd(), ev2.as_raw_fd(), f.as_raw_fd());
    // File descriptor numbers differ between sessions; the records name them.
    let fdname = |fd: i32| match fd {
        x if x == evfd => "ev".to_string(),
        x if x == ev2fd => "ev2".to_string(),
        x if x == devfd => "device-fd".to_string(),
        x => x.to_string(),
    };
    let call = |run: &mut Run, tag: &str, a: vfio::Ioeventfd, want: i32| -> i32 {
        let r = vfio::ioeventfd(f, a);
        run.rec(
            C,
            format!(
                "{tag}: argsz {} flags {:#x} {} data {:#x} fd {}",
                a.argsz,
                a.flags,
                show_off(a.offset as i64),
                a.data,
                fdname(a.fd)
            ),
            show_errno(r),
        );
        run.expect(C, r == want, || {
            format!("{tag}: {}, upstream {}", show_errno(r), show_errno(want))
        });
        r
    };
    // Invalid requests, on a BAR without the MSI-X table if there is one, else clear of it.
    let pick = plan
        .bars
        .iter()
        .find(|b| plan.msix.is_none_or(|m| m.bir != b.idx))
        .or(plan.bars.first());
    if let Some(b) = pick {
        let (bb, sz) = (base(b.idx), b.size as i64);
        // Offsets below are from `o0`, outside the MSI-X table (which then ends at least 16
        // bytes before the BAR's end in every device used here).
        let (o0, tbl) = match plan.msix {
            Some(m) if m.bir == b.idx => (
                (m.off + m.size).div_ceil(8) as i64 * 8,
                Some((m.off as i64, (m.off + m.size) as i64)),
            ),
            _ => (0, None),
        };
        let o0 = if tbl.is_some_and(|(t, _)| t >= 16) {
            0
        } else {
            o0
        };
        let clear = |o: i64, n: i64| tbl.is_none_or(|(t, e)| o + n <= t || o >= e);
        let ok = iev(bb + o0, 0, 4, evfd);
        call(run, "argsz 27", vfio::Ioeventfd { argsz: 27, ..ok }, EINVAL);
        call(run, "argsz 0", vfio::Ioeventfd { argsz: 0, ..ok }, EINVAL);
        call(run, "no size", iev(bb + o0, 0, 0, evfd), EINVAL);
        call(run, "two sizes", iev(bb + o0, 0, 3, evfd), EINVAL);
        call(run, "unknown flag", iev(bb + o0, 0, 0x10 | 4, evfd), EINVAL);
        call(run, "high flag", iev(bb + o0, 0, 0x8000_0004, evfd), EINVAL);
        call(run, "fd -2", iev(bb + o0, 0, 4, -2), EINVAL);
        call(run, "remove nothing", iev(bb + o0, 0x1234, 4, -1), ENODEV);
        call(run, "rom", iev(base(ROM), 0, 4, evfd), EINVAL);
        call(run, "config", iev(CFG, 0, 4, evfd), EINVAL);
        call(run, "vga", iev(base(VGA), 0, 4, evfd), EINVAL);
        call(run, "index 9", iev(base(9), 0, 4, evfd), EINVAL);
        if let Some(a) = plan.absent {
            call(run, "absent bar", iev(base(a), 0, 4, evfd), EINVAL);
        }
        call(
            run,
            "straddles the end",
            iev(bb + sz - 2, 0, 4, evfd),
            EINVAL,
        );
        call(run, "at the end", iev(bb + sz, 0, 1, evfd), EINVAL);
        call(run, "8 at end-4", iev(bb + sz - 4, 0, 8, evfd), EINVAL);
        call(run, "fd not open", iev(bb + o0, 0, 4, 9999), EBADF);
        call(
            run,
            "fd not an eventfd",
            iev(bb + o0, 0, 4, f.as_raw_fd()),
            EINVAL,
        );
        // Accepted (never signalled), then removed: the last bytes, and an unaligned offset
        // (upstream checks bounds, not alignment).
        for (tag, off, fl) in [
            ("last dword", sz - 4, 4u32),
            ("last byte", sz - 1, 1),
            ("unaligned", o0 + 5.min(sz - 4), 4),
            ("2 bytes", o0 + 2, 2),
        ] {
            if clear(off, fl as i64)
                && call(
                    run,
                    &format!("{tag} add"),
                    iev(bb + off, 0xabc, fl, evfd),
                    0,
                ) == 0
            {
                call(
                    run,
                    &format!("{tag} remove"),
                    iev(bb + off, 0xabc, fl, -1),
                    0,
                );
            }
        }
        if b.size >= 8
            && clear(sz - 8, 8)
            && call(run, "8 bytes add", iev(bb + sz - 8, 0xabc, 8, evfd), 0) == 0
        {
            call(run, "8 bytes remove", iev(bb + sz - 8, 0xabc, 8, -1), 0);
        }
    }
    // Never inside the MSI-X table.
    if let Some(m) = plan.msix {
        let (t, end) = (
            base(m.bir) + m.off as i64,
            base(m.bir) + (m.off + m.size) as i64,
        );
        call(run, "msix table start", iev(t, 0, 4, evfd), EINVAL);
        call(
            run,
            "msix table entry 1 data",
            iev(t + 24, 0, 4, evfd),
            EINVAL,
        );
        call(
            run,
            "msix table last byte",
            iev(end - 1, 0, 1, evfd),
            EINVAL,
        );
        call(
            run,
            "msix straddles table end",
            iev(end - 2, 0, 4, evfd),
            EINVAL,
        );
        if m.off >= 4 {
            call(
                run,
                "msix straddles table start",
                iev(t - 2, 0, 4, evfd),
                EINVAL,
            );
            call(run, "msix 8 into table", iev(t - 4, 0, 8, evfd), EINVAL);
            if call(run, "just before table add", iev(t - 4, 1, 4, evfd), 0) == 0 {
                call(run, "just before table remove", iev(t - 4, 1, 4, -1), 0);
            }
        }
        let bar_size = plan.bar(m.bir).map(|b| b.size).unwrap_or(0);
        if m.off + m.size + 4 <= bar_size
            && call(run, "just after table add", iev(end, 1, 4, evfd), 0) == 0
        {
            call(run, "just after table remove", iev(end, 1, 4, -1), 0);
        }
    }
    // An I/O BAR.
    if let Some(io) = plan.first_io() {
        if call(run, "io bar add", iev(base(io.idx), 0, 4, evfd), 0) == 0 {
            call(run, "io bar remove", iev(base(io.idx), 0, 4, -1), 0);
        }
    }
    if label != "edu" {
        return;
    }
    // edu: a write lands.
    let live = EDU_LIVENESS;
    let land = |run: &mut Run, tag: &str, want: u32, wait: bool| {
        let v = wait_liveness(f, want, wait);
        run.rec(C, format!("{tag}: liveness"), show_opt(v));
        run.expect(C, v == Some(want as u64), || {
            format!("{tag}: liveness {}, want {want:#x}", show_opt(v))
        });
    };
    let d: u32 = 0x1bad_b002;
    write(f, "bar", live, &0x1111_1111u32.to_le_bytes());
    call(run, "liveness add", iev(live, d as u64, 4, evfd), 0);
    land(run, "registered, not signalled", !0x1111_1111u32, false);
    run.rec(C, "signal", show_errno(vfio::signal(&ev)));
    land(run, "signalled", !d, true);
    call(run, "duplicate", iev(live, d as u64, 4, evfd), EEXIST);
    call(
        run,
        "duplicate on another eventfd",
        iev(live, d as u64, 4, f.as_raw_fd()),
        EEXIST,
    );
    if call(run, "other data, same offset", iev(live, 0x42, 4, evfd), 0) == 0 {
        call(run, "other data remove", iev(live, 0x42, 4, -1), 0);
    }
    call(
        run,
        "remove, wrong size",
        iev(live, d as u64, 2, -1),
        ENODEV,
    );
    call(run, "remove", iev(live, d as u64, 4, -1), 0);
    call(run, "remove again", iev(live, d as u64, 4, -1), ENODEV);
    write(f, "bar", live, &0x2222_2222u32.to_le_bytes());
    run.rec(C, "signal after removal", show_errno(vfio::signal(&ev)));
    std::thread::sleep(Duration::from_millis(20));
    land(run, "after removal", !0x2222_2222u32, false);
    drain(&ev);
    // Decode off: upstream's handler skips the write.
    let d2: u32 = 0x0c0f_fee0;
    call(run, "decode-off add", iev(live, d2 as u64, 4, evfd), 0);
    write(f, "bar", live, &0x3333_3333u32.to_le_bytes());
    command(run, C, f, "decode off:", 0, CMD_MEM);
    run.rec(C, "signal with decode off", show_errno(vfio::signal(&ev)));
    std::thread::sleep(Duration::from_millis(20));
    command(run, C, f, "decode on:", CMD_MEM, 0);
    land(run, "signalled with decode off", !0x3333_3333u32, false);
    drain(&ev);
    call(run, "decode-off remove", iev(live, d2 as u64, 4, -1), 0);
    // 1-byte and 2-byte ioeventfds land too (edu drops them: compared, not pinned).
    for (fl, dv) in [(1u32, 0x5au64), (2, 0x5a5a)] {
        write(f, "bar", live, &0x4444_4444u32.to_le_bytes());
        if call(run, &format!("{fl}-byte add"), iev(live, dv, fl, evfd), 0) == 0 {
            vfio::signal(&ev);
            std::thread::sleep(Duration::from_millis(10));
            let v = val(&read(f, "bar", live, 4));
            run.rec(C, format!("{fl}-byte signalled: liveness"), show_opt(v));
            call(run, &format!("{fl}-byte remove"), iev(live, dv, fl, -1), 0);
        }
        drain(&ev);
    }
    // The limit: 1000 per device.
    {
        {
            let mut added = 0;
            let mut first_err = 0;
            for i in 0..IOEVENTFD_MAX {
                let r = vfio::ioeventfd(f, iev(0x10, i as u64, 4, ev2.as_raw_fd()));
                if r == 0 {
                    added += 1;
                } else if first_err == 0 {
                    first_err = r;
                }
            }
            run.rec(
                C,
                format!("add {IOEVENTFD_MAX}"),
                format!("{added} added, first error {}", show_errno(first_err)),
            );
            run.expect(C, added == IOEVENTFD_MAX, || {
                format!(
                    "{added} of {IOEVENTFD_MAX} ioeventfds added (first error {})",
                    show_errno(first_err)
                )
            });
            call(run, "one more", iev(0x10, 5000, 4, ev2.as_raw_fd()), ENOSPC);
            call(run, "remove one of them", iev(0x10, 7, 4, -1), 0);
            call(
                run,
                "one more after a removal",
                iev(0x10, 5000, 4, ev2.as_raw_fd()),
                0,
            );
            call(
                run,
                "and another",
                iev(0x10, 5001, 4, ev2.as_raw_fd()),
                ENOSPC,
            );
            // Left registered: the close must clean them up (checked in the second session).
            run.notes
                .push(format!("edu: {added} ioeventfds left registered at close"));
        }
    }
    // One more that would land: removed at close? (second session).
    if call(run, "left for close remove one", iev(0x10, 0, 4, -1), 0) == 0 {
        call(run, "left for close", iev(live, d as u64, 4, evfd), 0);
    }
    run.left_registered = Some(ev);
    run.keep.push(ev2);
}

/// The second edu session: nothing registered in the first may fire or block a registration.
fn ioeventfd_after_close(run: &mut Run, f: &File) {
    const C: &str = "ioeventfd";
    let Some(ev) = run.left_registered.take() else {
        run.rec(C, "after close", "first session left nothing");
        return;
    };
    let d: u32 = 0x1bad_b002;
    write(f, "bar", EDU_LIVENESS, &0x5555_5555u32.to_le_bytes());
    run.rec(
        C,
        "after close: signal the old eventfd",
        show_errno(vfio::signal(&ev)),
    );
    std::thread::sleep(Duration::from_millis(20));
    let v = val(&read(f, "bar", EDU_LIVENESS, 4));
    run.rec(C, "after close: liveness", show_opt(v));
    run.expect(C, v == Some(!0x5555_5555u32 as u64), || {
        format!(
            "after close: liveness {}: an ioeventfd of the closed session fired",
            show_opt(v)
        )
    });
    drain(&ev);
    let r = vfio::ioeventfd(f, iev(EDU_LIVENESS, d as u64, 4, ev.as_raw_fd()));
    run.rec(C, "after close: same registration", show_errno(r));
    run.expect(C, r == 0, || {
        format!(
            "after close: registering the first session's ioeventfd again: {}; upstream 0",
            show_errno(r)
        )
    });
    let r2 = vfio::ioeventfd(f, iev(0x10, 1, 4, ev.as_raw_fd()));
    run.rec(C, "after close: below the limit again", show_errno(r2));
    run.expect(C, r2 == 0, || {
        format!(
            "after close: a new ioeventfd: {} (entries of the closed session kept?)",
            show_errno(r2)
        )
    });
    for (o, dv) in [(EDU_LIVENESS, d as u64), (0x10, 1)] {
        vfio::ioeventfd(f, iev(o, dv, 4, -1));
    }
}

// ---------------------------------------------------------------------------------------------
// the benchmark

const BENCHES: &[(&str, i64)] = &[("bar-read", 0), ("bar-write", EDU_LIVENESS)];

fn bench_round(run: &mut Run, f: &File) {
    for &(what, off) in BENCHES {
        let res = match what {
            "bar-read" => config::measure(|| read(f, "bench", off, 4).ret.map(|_| ())),
            _ => config::measure(|| {
                write(f, "bench", off, &0x1234_5678u32.to_le_bytes())
                    .ret
                    .map(|_| ())
            }),
        };
        let slot = run.bench.entry(what).or_insert_with(|| Ok(vec![]));
        match (slot.as_mut(), res) {
            (Ok(v), Ok(x)) => v.push(x),
            (Ok(_), Err(e)) => *slot = Err(e),
            (Err(_), _) => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// driving it

impl Suite {
    /// One session: bind, open through the group, run `body`, close, and in iommu mode (when
    /// `cdev` is set) open through the cdev for the region infos; unbind.
    fn region_session(
        &self,
        bdf: &Bdf,
        d: &str,
        run: &mut Run,
        cdev: Option<&Plan>,
        body: impl FnOnce(&mut Run, &File),
    ) {
        match config::attach(self, bdf, d) {
            Ok(dev) => {
                body(run, &dev.file);
                drop(dev);
                if let (Some(plan), Mode::Iommu) = (cdev, self.args.mode) {
                    let c = find_nodes(&self.sys, self.args.mode, bdf)
                        .and_then(|n| n.cdev.ok_or_else(|| "no cdev".to_string()));
                    match c.and_then(|c| vfio::open_via_cdev(&c)) {
                        Ok(dev) => region_infos(run, &dev.file, "cdev", plan),
                        Err(e) => run.broken.push(format!("cdev: {e}")),
                    }
                }
                config::detach(self, bdf, None);
            }
            Err(e) => {
                run.broken.push(e);
                config::detach(self, bdf, None);
            }
        }
    }

    /// The region checks and their differentials, for every device and driver.
    pub(crate) fn region_checks(&mut self) {
        let drivers = self.args.drivers.clone();
        for (bdf, label) in self.args.devices.clone() {
            let t0 = Instant::now();
            let plan = match Plan::from_sysfs(self, &bdf) {
                Ok(p) => p,
                Err(e) => {
                    self.r.check(&format!("regions-{label}"), || Err(e.clone()));
                    continue;
                }
            };
            self.r.info(format!(
                "regions {label}: bars [{}] rom {:#x} msix {:?} pm {:?}",
                plan.bars
                    .iter()
                    .map(|b| format!("{}:{:#x}{}", b.idx, b.size, if b.io { " io" } else { "" }))
                    .collect::<Vec<_>>()
                    .join(", "),
                plan.rom,
                plan.msix,
                plan.pm
            ));
            let mut runs: BTreeMap<String, Run> = BTreeMap::new();
            for d in &drivers {
                let mut run = Run::default();
                let (p, l) = (plan.clone(), label.clone());
                self.region_session(&bdf, d, &mut run, Some(&plan), |run, f| {
                    region_infos(run, f, "group", &p);
                    command(run, "bar-rw", f, "enable decode:", CMD_MEM | CMD_IO, 0);
                    prepare(run, f, &l, &p);
                    bar_rw(run, f, &l, &p);
                    bar_mmap(run, f, &l, &p);
                    bar_decode(run, f, &l, &p);
                    ioeventfd(run, f, &l, &p);
                    if l == "edu" {
                        bench_round(run, f);
                    }
                });
                runs.insert(d.clone(), run);
            }
            if label == "edu" {
                // Second sessions: ioeventfd cleanup on close, and the benchmark's second round,
                // the drivers taking turns again.
                for d in &drivers {
                    let Some(mut run) = runs.remove(d) else {
                        continue;
                    };
                    self.region_session(&bdf, d, &mut run, None, |run, f| {
                        command(run, "ioeventfd", f, "second session:", CMD_MEM, 0);
                        ioeventfd_after_close(run, f);
                        bench_round(run, f);
                    });
                    runs.insert(d.clone(), run);
                }
                // Two more rounds per driver in the other order, so neither is always measured
                // second and a burst of host load spoils fewer rounds.
                for d in drivers.iter().rev() {
                    let Some(mut run) = runs.remove(d) else {
                        continue;
                    };
                    self.region_session(&bdf, d, &mut run, None, |run, f| {
                        command(run, "bar-rw", f, "bench session:", CMD_MEM, 0);
                        bench_round(run, f);
                        bench_round(run, f);
                    });
                    runs.insert(d.clone(), run);
                }
            }
            for d in &drivers {
                let run = runs.get(d).expect("inserted above");
                for n in &run.notes {
                    self.r.info(format!("regions {label} {d}: {n}"));
                }
                if self.args.regions_trace.contains(&label) {
                    for (c, cat) in &run.cats {
                        for r in &cat.recs {
                            self.r.info(format!(
                                "regions-trace {label} {d} {c}: {} -> {}",
                                r.key, r.ans
                            ));
                        }
                    }
                }
                for &c in CATS {
                    let cat = run.cats.get(c).cloned().unwrap_or_default();
                    if !cat.ran && run.broken.is_empty() {
                        continue; // not applicable to this device (no memory BAR, ...)
                    }
                    let broken = run.broken.clone();
                    let mut group_cdev = Vec::new();
                    if c == "regions" && self.args.mode == Mode::Iommu {
                        let strip = |p: &str| -> Vec<Rec> {
                            cat.recs
                                .iter()
                                .filter_map(|r| {
                                    r.key.strip_prefix(p).map(|k| Rec {
                                        key: k.to_string(),
                                        ans: r.ans.clone(),
                                    })
                                })
                                .collect()
                        };
                        let (g, cd) = (strip("group "), strip("cdev "));
                        if g != cd {
                            group_cdev = rec_diffs(&g, &cd, ("group", "cdev"));
                        }
                    }
                    self.r.check(&format!("{c}-{label}-{d}"), || {
                        if !broken.is_empty() {
                            return Err(format!("session broken: {}", broken.join("; ")));
                        }
                        let mut bad = cat.bad.clone();
                        if !group_cdev.is_empty() {
                            bad.push(format!(
                                "group and cdev answers differ: {}",
                                group_cdev.join("; ")
                            ));
                        }
                        if bad.is_empty() {
                            Ok(())
                        } else {
                            Err(format!(
                                "{} answers differ from upstream's: {}",
                                bad.len(),
                                config::first(&bad)
                            ))
                        }
                    });
                }
            }
            if let Some(oracle) = drivers.first() {
                for d in drivers.iter().skip(1) {
                    self.differential_regions(&label, oracle, d, &runs);
                }
            }
            self.report_region_bench(&label, &drivers, &runs);
            self.r
                .info(format!("regions {label}: {} ms", t0.elapsed().as_millis()));
        }
    }

    fn differential_regions(
        &mut self,
        label: &str,
        oracle: &str,
        d: &str,
        runs: &BTreeMap<String, Run>,
    ) {
        let (Some(o), Some(t)) = (runs.get(oracle), runs.get(d)) else {
            return;
        };
        for &c in CATS {
            let (a, b) = (
                o.cats.get(c).cloned().unwrap_or_default(),
                t.cats.get(c).cloned().unwrap_or_default(),
            );
            if !a.ran && !b.ran && o.broken.is_empty() && t.broken.is_empty() {
                continue;
            }
            let diffs = rec_diffs(&a.recs, &b.recs, (oracle, d));
            let broken: Vec<String> = o
                .broken
                .iter()
                .map(|x| format!("{oracle}: {x}"))
                .chain(t.broken.iter().map(|x| format!("{d}: {x}")))
                .collect();
            let name = format!("differential-{c}-{label}-{d}");
            let ok = self.r.check(&name, || {
                if !broken.is_empty() {
                    return Err(format!("a session did not run: {}", broken.join("; ")));
                }
                if diffs.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "{} of {} answers differ, first: {}",
                        diffs.len(),
                        a.recs.len().max(b.recs.len()),
                        config::first(&diffs)
                    ))
                }
            });
            if !ok {
                for l in diffs.iter().take(24) {
                    self.r.info(format!("{name}: {l}"));
                }
                if diffs.len() > 24 {
                    self.r
                        .info(format!("{name}: ... {} more", diffs.len() - 24));
                }
            }
        }
    }

    fn report_region_bench(
        &mut self,
        label: &str,
        drivers: &[String],
        runs: &BTreeMap<String, Run>,
    ) {
        // The oracle against our generic driver, as the config benchmark.
        let ds: Vec<&String> = drivers
            .iter()
            .take(1)
            .chain(
                drivers
                    .iter()
                    .skip(1)
                    .filter(|d| d.as_str() == GENERIC_DRIVER),
            )
            .collect();
        for &(what, off) in BENCHES {
            let rounds: Vec<Result<Vec<Vec<u64>>, String>> = ds
                .iter()
                .map(|d| match runs.get(*d).and_then(|r| r.bench.get(what)) {
                    Some(Ok(rs)) => Ok(rs.clone()),
                    Some(Err(e)) => Err(e.clone()),
                    None => Err("not measured".into()),
                })
                .collect();
            if label != "edu"
                && rounds
                    .iter()
                    .any(|r| matches!(r, Err(e) if e == "not measured"))
            {
                return;
            }
            let names: Vec<&str> = ds.iter().map(|d| d.as_ref()).collect();
            self.r.info(format!(
                "bench {what} {label} {} off={off:#x}",
                crate::bench::summary(&names, &rounds, 8)
            ));
        }
    }
}

/// Line-by-line differences of two record lists: `key: a-name ans | b-name ans`.
fn rec_diffs(a: &[Rec], b: &[Rec], names: (&str, &str)) -> Vec<String> {
    let mut out = Vec::new();
    for (x, y) in a.iter().zip(b) {
        if x.key != y.key {
            out.push(format!("sequences diverge at {:?} vs {:?}", x.key, y.key));
            return out;
        }
        if x.ans != y.ans {
            out.push(format!(
                "{}: {} {} | {} {}",
                x.key, names.0, x.ans, names.1, y.ans
            ));
        }
    }
    if a.len() != b.len() {
        out.push(format!("{} records vs {}", a.len(), b.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_buffers_show_tails() {
        let mut b = vec![0xa5u8; 48];
        b[..4].copy_from_slice(&48u32.to_ne_bytes());
        b[32] = 3;
        b[33] = 0;
        let s = show_info_buf(&Ok(b));
        assert!(s.ends_with("tail[0300]+14xa5"), "{s}");
        assert_eq!(show_info_buf(&Err(libc::EINVAL)), "EINVAL(22)");
    }

    #[test]
    fn record_diffs() {
        let r = |k: &str, a: &str| Rec {
            key: k.into(),
            ans: a.into(),
        };
        let a = vec![r("x", "1"), r("y", "2")];
        let b = vec![r("x", "1"), r("y", "3")];
        assert_eq!(
            rec_diffs(&a, &b, ("up", "ours")),
            vec!["y: up 2 | ours 3".to_string()]
        );
        assert!(rec_diffs(&a, &a, ("a", "b")).is_empty());
        assert_eq!(
            rec_diffs(&a, &a[..1], ("a", "b")),
            vec!["2 records vs 1".to_string()]
        );
    }

    #[test]
    fn bars_mmappable_like_upstream() {
        let b = |start, size, io| Bar {
            idx: 0,
            start,
            size,
            io,
        };
        assert!(b(0xfe00_0000, 0x100, false).mmappable());
        assert!(!b(0xfe00_0100, 0x100, false).mmappable());
        assert!(!b(0xc000, 0x100, true).mmappable());
        assert_eq!(b(0xfe00_0000, 0x100, false).map_len(), PAGE);
    }
}
