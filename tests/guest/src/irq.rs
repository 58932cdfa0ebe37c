// SPDX-License-Identifier: GPL-2.0
//! Interrupts through eventfds, per device and driver, compared with upstream C `vfio-pci` (the
//! first `--driver`), and an interrupt latency benchmark.
//!
//! For every device, every driver in turn binds it, opens it through its group and runs:
//!
//! - `irq-info-<label>-<driver>`: `GET_IRQ_INFO` for indexes 0..=5 and with a short `argsz`
//!   (fields pre-filled with `0xa5`); every index below 5 except ERR on conventional PCI must
//!   answer.
//! - `irq-set-table-<label>-<driver>`: [`table`], a fixed sequence of valid and invalid
//!   `SET_IRQS` requests (bad `argsz`, flags, index, ranges, data sizes, fds, mode switches,
//!   enable/replace/disable of every index the device has, loopback triggers); each return
//!   value or errno and each eventfd count after a loopback is recorded. The check fails only
//!   if the device ends with interrupts still listed in `/proc/interrupts`.
//! - `differential-irq-<label>-<driver>`: both of the above equal to upstream's, entry by entry.
//!
//! Then, on devices that can really interrupt:
//!
//! - `irq-intx-edu-<driver>`: edu raises INTx (register `0x60`); the eventfd fires exactly once
//!   per raise; the line stays masked after it fires (auto-mask) until user space unmasks; a
//!   raise while masked (by `SET_IRQS` MASK) is delivered only at unmask; unmask through an
//!   eventfd works.
//! - `irq-msi-edu-<driver>`: the same raise with MSI: once per raise, named in
//!   `/proc/interrupts` while enabled, gone after disable.
//! - `irq-msix-<label>-<driver>` (nvme, e1000e): several vectors enabled, partially detached and
//!   re-attached, disabled and re-enabled; `/proc/interrupts` lists exactly the enabled ones,
//!   and none after disable.
//! - `irq-req-edu-<driver>`: with a REQ eventfd set, unbinding the device (from another thread)
//!   signals it and completes once the fd is closed.
//!
//! `irq-none-left` then checks that no `vfio-` interrupt is left in `/proc/interrupts`.
//!
//! The benchmark (`INFO bench irq-<intx|msi> edu vfio-pci=NNNns vfio-pci-generic=NNNns
//! ratio=X.XX n=N/N`): the time from the MMIO write that raises an edu interrupt (through the
//! sysfs `resource0` mapping) to the return of the `read` of the eventfd: [`BENCH_SAMPLES`] in
//! [`BENCH_ROUNDS`] rounds per session, in two sessions per driver (upstream first, then ours
//! first), the best round's median, ours / upstream, in the same boot;
//! `rounds=` lists every round's median per driver.

use crate::config::{attach, detach, errno_name};
use crate::{Suite, GENERIC_DRIVER};
use pcibind::Bdf;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

pub(crate) const VFIO_DEVICE_GET_IRQ_INFO: u64 = (b';' as u64) << 8 | (100 + 9);
pub(crate) const VFIO_DEVICE_SET_IRQS: u64 = (b';' as u64) << 8 | (100 + 10);
pub(crate) const INTX: u32 = 0;
const MSI: u32 = 1;
pub(crate) const MSIX: u32 = 2;
const ERR: u32 = 3;
pub(crate) const REQ: u32 = 4;
pub(crate) const NONE: u32 = 1;
pub(crate) const BOOL: u32 = 2;
pub(crate) const EFD: u32 = 4;
pub(crate) const MASK: u32 = 8;
pub(crate) const UNMASK: u32 = 16;
pub(crate) const TRIG: u32 = 32;
const CONFIG_BASE: i64 = 7 << 40;
const BENCH_SAMPLES: usize = 300;
/// The samples are taken in this many rounds; the best round's median is reported (TCG only
/// ever gets slower with the host's load, so the best round is the least disturbed one).
const BENCH_ROUNDS: usize = 3;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}

/// `GET_IRQ_INFO` of `index` with `argsz`: the 16 bytes returned, or the errno.
pub(crate) fn irq_info(f: &File, index: u32, argsz: u32) -> Result<[u32; 4], i32> {
    let mut b: [u32; 4] = [argsz, 0xa5a5_a5a5, index, 0xa5a5_a5a5];
    // SAFETY: a 16-byte `vfio_irq_info` the kernel reads and writes at most 16 bytes of.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), VFIO_DEVICE_GET_IRQ_INFO as _, b.as_mut_ptr()) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(b)
    }
}

/// `SET_IRQS`: the ioctl's return value or the errno. `argsz` defaults to header plus data.
pub(crate) fn set_irqs(
    f: &File,
    flags: u32,
    index: u32,
    start: u32,
    count: u32,
    data: &[u8],
    argsz: Option<u32>,
) -> Result<i32, i32> {
    let mut buf = Vec::with_capacity(20 + data.len());
    let argsz = argsz.unwrap_or(20 + data.len() as u32);
    for v in [argsz, flags, index, start, count] {
        buf.extend_from_slice(&v.to_ne_bytes());
    }
    buf.extend_from_slice(data);
    // SAFETY: `buf` holds the header and `data`; the kernel reads at most `argsz` bytes and
    // only as many data bytes as `count` needs, which the tests keep within `buf` or use to
    // provoke EINVAL before any read.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), VFIO_DEVICE_SET_IRQS as _, buf.as_mut_ptr()) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

pub(crate) fn fds(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

/// A non-blocking eventfd.
pub(crate) struct EventFd(OwnedFd);

impl EventFd {
    pub(crate) fn new() -> Result<Self, String> {
        // SAFETY: plain syscall; a non-negative result is a new descriptor we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(format!("eventfd: {}", errno_name(errno())));
        }
        // SAFETY: a fresh descriptor nobody else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub(crate) fn fd(&self) -> i32 {
        self.0.as_raw_fd()
    }

    /// The counter, reset to 0 (0 if nothing was signalled).
    fn take(&self) -> u64 {
        let mut v = 0u64;
        // SAFETY: reads 8 bytes into `v`.
        let r = unsafe { libc::read(self.fd(), (&mut v as *mut u64).cast(), 8) };
        if r == 8 {
            v
        } else {
            0
        }
    }

    /// Waits up to `ms` for a signal, then takes the counter.
    pub(crate) fn wait(&self, ms: i32) -> u64 {
        let mut p = libc::pollfd {
            fd: self.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd.
        unsafe { libc::poll(&mut p, 1, ms) };
        self.take()
    }

    fn signal(&self) {
        let v = 1u64;
        // SAFETY: writes 8 bytes from `v`.
        unsafe { libc::write(self.fd(), (&v as *const u64).cast(), 8) };
    }
}

/// edu's BAR0, mapped through sysfs `resource0` (works whatever driver holds the device, as long
/// as memory decode is on).
pub(crate) struct Edu {
    base: *mut u8,
    _file: File,
}

impl Edu {
    pub(crate) fn map(bdf: &Bdf) -> Result<Self, String> {
        let path = format!("/sys/bus/pci/devices/{}/resource0", bdf.as_str());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| format!("{path}: {e}"))?;
        // SAFETY: maps the first page of the BAR; checked for failure below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!("mmap {path}: {}", errno_name(errno())));
        }
        Ok(Self {
            base: p.cast(),
            _file: file,
        })
    }

    fn write(&self, off: usize, v: u32) {
        // SAFETY: `off` is a 4-aligned register offset inside the mapped page.
        unsafe { std::ptr::write_volatile(self.base.add(off).cast::<u32>(), v) }
    }

    pub(crate) fn read(&self, off: usize) -> u32 {
        // SAFETY: as in `write`.
        unsafe { std::ptr::read_volatile(self.base.add(off).cast::<u32>()) }
    }

    /// Raise interrupt status bit `v` (edu register 0x60).
    pub(crate) fn raise(&self, v: u32) {
        self.write(0x60, v);
    }

    /// Acknowledge everything pending (0x24 status, 0x64 ack).
    pub(crate) fn ack(&self) {
        let s = self.read(0x24);
        if s != 0 {
            self.write(0x64, s);
        }
    }
}

impl Drop for Edu {
    fn drop(&mut self) {
        // SAFETY: our mapping of one page.
        unsafe { libc::munmap(self.base.cast(), 4096) };
    }
}

/// Sets COMMAND bits (memory decode 0x2, bus master 0x4) through the VFIO config region.
pub(crate) fn command_set(f: &File, bits: u16) -> Result<(), String> {
    command_change(f, |c| c | bits)
}

/// Clears COMMAND bits through the VFIO config region.
pub(crate) fn command_clear(f: &File, bits: u16) -> Result<(), String> {
    command_change(f, |c| c & !bits)
}

/// A read-modify-write of COMMAND through the VFIO config region.
fn command_change(f: &File, change: impl FnOnce(u16) -> u16) -> Result<(), String> {
    let mut b = [0u8; 2];
    // SAFETY: 2-byte buffers.
    let r = unsafe { libc::pread64(f.as_raw_fd(), b.as_mut_ptr().cast(), 2, CONFIG_BASE + 4) };
    if r != 2 {
        return Err(format!("reading COMMAND: {}", errno_name(errno())));
    }
    let v = change(u16::from_le_bytes(b)).to_le_bytes();
    // SAFETY: as above.
    let r = unsafe { libc::pwrite64(f.as_raw_fd(), v.as_ptr().cast(), 2, CONFIG_BASE + 4) };
    if r != 2 {
        return Err(format!("writing COMMAND: {}", errno_name(errno())));
    }
    Ok(())
}

/// The `/proc/interrupts` lines naming `vfio-` interrupts (of `bdf` if given).
pub(crate) fn proc_vfio(bdf: Option<&Bdf>) -> Vec<String> {
    std::fs::read_to_string("/proc/interrupts")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("vfio-") && bdf.is_none_or(|b| l.contains(b.as_str())))
        .map(|l| l.split_whitespace().last().unwrap_or("").to_string())
        .collect()
}

fn show(r: Result<i32, i32>) -> String {
    match r {
        Ok(v) => format!("{v}"),
        Err(e) => errno_name(e),
    }
}

/// What one driver answered for one device: (what, answer) in order.
type Answers = Vec<(String, String)>;

/// The `SET_IRQS` table. `counts` are the vector counts `GET_IRQ_INFO` gave (0 if absent).
fn table(f: &File, counts: [u32; 5], pcie: bool) -> Result<Answers, String> {
    let mut out: Answers = Vec::new();
    let e1 = EventFd::new()?;
    let e2 = EventFd::new()?;
    let efds: Vec<EventFd> = (0..4).map(|_| EventFd::new()).collect::<Result<_, _>>()?;
    macro_rules! rec {
        ($what:expr, $r:expr) => {
            out.push(($what.to_string(), show($r)))
        };
    }
    let one = fds(&[e1.fd()]);
    // Header and flag checks.
    rec!(
        "argsz-19",
        set_irqs(f, TRIG | NONE, REQ, 0, 1, &[], Some(19))
    );
    rec!("argsz-0", set_irqs(f, TRIG | NONE, REQ, 0, 1, &[], Some(0)));
    rec!("flags-0", set_irqs(f, 0, REQ, 0, 1, &[], None));
    rec!(
        "flags-unknown-bit",
        set_irqs(f, TRIG | NONE | 0x40, REQ, 0, 1, &[], None)
    );
    rec!(
        "flags-high-bit",
        set_irqs(f, TRIG | NONE | 0x8000_0000, REQ, 0, 1, &[], None)
    );
    rec!(
        "two-data-types",
        set_irqs(f, TRIG | NONE | BOOL, REQ, 0, 1, &[1], None)
    );
    rec!("no-data-type", set_irqs(f, TRIG, REQ, 0, 1, &[], None));
    rec!("no-action", set_irqs(f, NONE, REQ, 0, 1, &[], None));
    rec!(
        "two-actions",
        set_irqs(f, TRIG | MASK | NONE, REQ, 0, 1, &[], None)
    );
    rec!("index-5", set_irqs(f, TRIG | NONE, 5, 0, 0, &[], None));
    rec!(
        "index-max",
        set_irqs(f, TRIG | NONE, u32::MAX, 0, 0, &[], None)
    );
    rec!(
        "start-past-end",
        set_irqs(f, TRIG | NONE, REQ, 1, 0, &[], None)
    );
    rec!(
        "count-past-end",
        set_irqs(f, TRIG | NONE, REQ, 0, 2, &[], None)
    );
    rec!(
        "count-overflow",
        set_irqs(f, TRIG | NONE, REQ, 1, u32::MAX, &[], None)
    );
    rec!(
        "eventfd-short-data",
        set_irqs(f, TRIG | EFD, REQ, 0, 1, &[0, 0], Some(22))
    );
    rec!(
        "bool-short-data",
        set_irqs(f, TRIG | BOOL, REQ, 0, 1, &[], Some(20))
    );
    // REQ (every device) and ERR (PCIe only) single eventfds.
    for (idx, name) in [(REQ, "req"), (ERR, "err")] {
        let pre = |s: &str| format!("{name}-{s}");
        rec!(
            &pre("none-unset"),
            set_irqs(f, TRIG | NONE, idx, 0, 1, &[], None)
        );
        rec!(
            &pre("bool-count-0"),
            set_irqs(f, TRIG | BOOL, idx, 0, 0, &[], None)
        );
        rec!(
            &pre("efd-count-0"),
            set_irqs(f, TRIG | EFD, idx, 0, 0, &[], None)
        );
        rec!(
            &pre("fd-minus-2"),
            set_irqs(f, TRIG | EFD, idx, 0, 1, &fds(&[-2]), None)
        );
        rec!(
            &pre("fd-bad"),
            set_irqs(f, TRIG | EFD, idx, 0, 1, &fds(&[9999]), None)
        );
        rec!(
            &pre("fd-not-eventfd"),
            set_irqs(f, TRIG | EFD, idx, 0, 1, &fds(&[f.as_raw_fd()]), None)
        );
        rec!(&pre("mask"), set_irqs(f, MASK | NONE, idx, 0, 1, &[], None));
        rec!(&pre("set"), set_irqs(f, TRIG | EFD, idx, 0, 1, &one, None));
        rec!(
            &pre("loopback-none"),
            set_irqs(f, TRIG | NONE, idx, 0, 1, &[], None)
        );
        rec!(
            &pre("loopback-bool"),
            set_irqs(f, TRIG | BOOL, idx, 0, 1, &[1], None)
        );
        rec!(
            &pre("loopback-bool-0"),
            set_irqs(f, TRIG | BOOL, idx, 0, 1, &[0], None)
        );
        out.push((pre("count-after-loopback"), e1.take().to_string()));
        rec!(
            &pre("replace"),
            set_irqs(f, TRIG | EFD, idx, 0, 1, &fds(&[e2.fd()]), None)
        );
        rec!(
            &pre("loopback-replaced"),
            set_irqs(f, TRIG | NONE, idx, 0, 1, &[], None)
        );
        out.push((
            pre("counts-after-replace"),
            format!("{}/{}", e1.take(), e2.take()),
        ));
        rec!(
            &pre("clear-none-0"),
            set_irqs(f, TRIG | NONE, idx, 0, 0, &[], None)
        );
        rec!(
            &pre("none-after-clear"),
            set_irqs(f, TRIG | NONE, idx, 0, 1, &[], None)
        );
        rec!(
            &pre("set-again"),
            set_irqs(f, TRIG | EFD, idx, 0, 1, &one, None)
        );
        rec!(
            &pre("clear-fd-minus-1"),
            set_irqs(f, TRIG | EFD, idx, 0, 1, &fds(&[-1]), None)
        );
        rec!(
            &pre("none-after-fd-clear"),
            set_irqs(f, TRIG | NONE, idx, 0, 1, &[], None)
        );
    }
    let _ = pcie;
    // INTx.
    rec!(
        "intx-mask-off",
        set_irqs(f, MASK | NONE, INTX, 0, 1, &[], None)
    );
    rec!(
        "intx-unmask-off",
        set_irqs(f, UNMASK | NONE, INTX, 0, 1, &[], None)
    );
    rec!(
        "intx-disable-off",
        set_irqs(f, TRIG | NONE, INTX, 0, 0, &[], None)
    );
    rec!(
        "intx-loopback-off",
        set_irqs(f, TRIG | NONE, INTX, 0, 1, &[], None)
    );
    rec!(
        "intx-enable-bad-fd",
        set_irqs(f, TRIG | EFD, INTX, 0, 1, &fds(&[9999]), None)
    );
    rec!(
        "intx-enable",
        set_irqs(f, TRIG | EFD, INTX, 0, 1, &one, None)
    );
    if counts[0] > 0 {
        rec!(
            "intx-enable-count-2",
            set_irqs(f, TRIG | EFD, INTX, 0, 2, &fds(&[e1.fd(), e1.fd()]), None)
        );
        rec!(
            "msi-while-intx",
            set_irqs(f, TRIG | EFD, MSI, 0, 1, &one, None)
        );
        rec!(
            "msix-while-intx",
            set_irqs(f, TRIG | EFD, MSIX, 0, 1, &one, None)
        );
        rec!(
            "intx-mask-efd",
            set_irqs(f, MASK | EFD, INTX, 0, 1, &one, None)
        );
        rec!("intx-mask", set_irqs(f, MASK | NONE, INTX, 0, 1, &[], None));
        rec!(
            "intx-mask-bool-0",
            set_irqs(f, MASK | BOOL, INTX, 0, 1, &[0], None)
        );
        rec!(
            "intx-mask-count-0",
            set_irqs(f, MASK | NONE, INTX, 0, 0, &[], None)
        );
        rec!(
            "intx-loopback",
            set_irqs(f, TRIG | NONE, INTX, 0, 1, &[], None)
        );
        rec!(
            "intx-loopback-bool",
            set_irqs(f, TRIG | BOOL, INTX, 0, 1, &[1], None)
        );
        out.push(("intx-count-after-loopback".into(), e1.take().to_string()));
        rec!(
            "intx-unmask-bool-0",
            set_irqs(f, UNMASK | BOOL, INTX, 0, 1, &[0], None)
        );
        rec!(
            "intx-unmask",
            set_irqs(f, UNMASK | NONE, INTX, 0, 1, &[], None)
        );
        rec!(
            "intx-unmask-efd",
            set_irqs(f, UNMASK | EFD, INTX, 0, 1, &fds(&[e2.fd()]), None)
        );
        rec!(
            "intx-unmask-efd-bad",
            set_irqs(f, UNMASK | EFD, INTX, 0, 1, &fds(&[9999]), None)
        );
        rec!(
            "intx-unmask-efd-off",
            set_irqs(f, UNMASK | EFD, INTX, 0, 1, &fds(&[-1]), None)
        );
        rec!(
            "intx-replace",
            set_irqs(f, TRIG | EFD, INTX, 0, 1, &fds(&[e2.fd()]), None)
        );
        rec!(
            "intx-loopback-replaced",
            set_irqs(f, TRIG | NONE, INTX, 0, 1, &[], None)
        );
        rec!(
            "intx-detach-trigger",
            set_irqs(f, TRIG | EFD, INTX, 0, 1, &fds(&[-1]), None)
        );
        rec!(
            "intx-loopback-detached",
            set_irqs(f, TRIG | NONE, INTX, 0, 1, &[], None)
        );
        out.push((
            "intx-counts-after-replace".into(),
            format!("{}/{}", e1.take(), e2.take()),
        ));
        rec!(
            "intx-disable",
            set_irqs(f, TRIG | NONE, INTX, 0, 0, &[], None)
        );
        rec!(
            "intx-disable-again",
            set_irqs(f, TRIG | NONE, INTX, 0, 0, &[], None)
        );
        rec!(
            "intx-enable-no-trigger",
            set_irqs(f, TRIG | EFD, INTX, 0, 1, &fds(&[-1]), None)
        );
        rec!(
            "intx-disable-2",
            set_irqs(f, TRIG | NONE, INTX, 0, 0, &[], None)
        );
    }
    // MSI and MSI-X.
    for (idx, name) in [(MSI, "msi"), (MSIX, "msix")] {
        let n = counts[idx as usize];
        let pre = |s: &str| format!("{name}-{s}");
        rec!(&pre("mask"), set_irqs(f, MASK | NONE, idx, 0, 1, &[], None));
        rec!(
            &pre("unmask"),
            set_irqs(f, UNMASK | NONE, idx, 0, 1, &[], None)
        );
        rec!(
            &pre("disable-off"),
            set_irqs(f, TRIG | NONE, idx, 0, 0, &[], None)
        );
        rec!(
            &pre("loopback-off"),
            set_irqs(f, TRIG | NONE, idx, 0, 1, &[], None)
        );
        rec!(
            &pre("past-end"),
            set_irqs(f, TRIG | EFD, idx, n, 1, &one, None)
        );
        if n == 0 {
            continue;
        }
        let k = n.min(4);
        let all: Vec<i32> = efds.iter().take(k as usize).map(EventFd::fd).collect();
        rec!(
            &pre("enable-bad-fd"),
            set_irqs(f, TRIG | EFD, idx, 0, 1, &fds(&[9999]), None)
        );
        out.push((
            pre("vectors-after-failed-enable"),
            proc_vfio(None).len().to_string(),
        ));
        rec!(
            &pre("enable"),
            set_irqs(f, TRIG | EFD, idx, 0, k, &fds(&all), None)
        );
        out.push((pre("vectors"), proc_vfio(None).len().to_string()));
        rec!(
            &pre("intx-while-on"),
            set_irqs(f, TRIG | EFD, INTX, 0, 1, &one, None)
        );
        let other = if idx == MSI { MSIX } else { MSI };
        rec!(
            &pre("other-while-on"),
            set_irqs(f, TRIG | EFD, other, 0, 1, &one, None)
        );
        rec!(
            &pre("loopback-all"),
            set_irqs(f, TRIG | NONE, idx, 0, k, &[], None)
        );
        let bools: Vec<u8> = (0..k).map(|i| (i % 2 == 0) as u8).collect();
        rec!(
            &pre("loopback-bool"),
            set_irqs(f, TRIG | BOOL, idx, 0, k, &bools, None)
        );
        out.push((
            pre("counts"),
            efds.iter()
                .take(k as usize)
                .map(|e| e.take().to_string())
                .collect::<Vec<_>>()
                .join(","),
        ));
        if k > 1 {
            rec!(
                &pre("detach-1"),
                set_irqs(f, TRIG | EFD, idx, 1, 1, &fds(&[-1]), None)
            );
            out.push((
                pre("vectors-after-detach"),
                proc_vfio(None).len().to_string(),
            ));
            rec!(
                &pre("loopback-detached"),
                set_irqs(f, TRIG | NONE, idx, 0, k, &[], None)
            );
            out.push((
                pre("counts-detached"),
                efds.iter()
                    .take(k as usize)
                    .map(|e| e.take().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ));
            rec!(
                &pre("reattach-1"),
                set_irqs(f, TRIG | EFD, idx, 1, 1, &fds(&[e2.fd()]), None)
            );
            rec!(
                &pre("block-bad-fd"),
                set_irqs(f, TRIG | EFD, idx, 0, 2, &fds(&[e1.fd(), 9999]), None)
            );
            out.push((
                pre("vectors-after-bad-block"),
                proc_vfio(None).len().to_string(),
            ));
        }
        rec!(
            &pre("count-0-eventfd"),
            set_irqs(f, TRIG | EFD, idx, 0, 0, &[], None)
        );
        rec!(
            &pre("disable"),
            set_irqs(f, TRIG | NONE, idx, 0, 0, &[], None)
        );
        out.push((
            pre("vectors-after-disable"),
            proc_vfio(None).len().to_string(),
        ));
        rec!(
            &pre("disable-again"),
            set_irqs(f, TRIG | NONE, idx, 0, 0, &[], None)
        );
        rec!(
            &pre("enable-count-0"),
            set_irqs(f, TRIG | EFD, idx, 0, 0, &[], None)
        );
        rec!(
            &pre("disable-count-0-enabled"),
            set_irqs(f, TRIG | NONE, idx, 0, 0, &[], None)
        );
        if n > 1 {
            rec!(
                &pre("enable-partial"),
                set_irqs(f, TRIG | EFD, idx, 1, 1, &one, None)
            );
            out.push((pre("vectors-partial"), proc_vfio(None).len().to_string()));
            rec!(
                &pre("disable-partial"),
                set_irqs(f, TRIG | NONE, idx, 0, 0, &[], None)
            );
        }
    }
    Ok(out)
}

/// Polls for `ms` and returns how many signals came.
fn quiet(e: &EventFd, ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    e.take()
}

pub(crate) fn intx_edu(f: &File, edu: &Edu) -> Result<(), String> {
    let trig = EventFd::new()?;
    let unmask = EventFd::new()?;
    let ok = |r: Result<i32, i32>, what: &str| {
        r.map(|_| ())
            .map_err(|e| format!("{what}: {}", errno_name(e)))
    };
    edu.ack();
    ok(
        set_irqs(f, TRIG | EFD, INTX, 0, 1, &fds(&[trig.fd()]), None),
        "enable INTx",
    )?;
    for round in 0..3 {
        edu.raise(1);
        let n = trig.wait(2000);
        if n != 1 {
            return Err(format!(
                "round {round}: eventfd counted {n} after one raise, expected 1"
            ));
        }
        // Auto-masked: even with the line still asserted, nothing more comes.
        if quiet(&trig, 50) != 0 {
            return Err(format!("round {round}: more signals while auto-masked"));
        }
        edu.ack();
        ok(set_irqs(f, UNMASK | NONE, INTX, 0, 1, &[], None), "unmask")?;
        if quiet(&trig, 30) != 0 {
            return Err(format!("round {round}: a signal after ack and unmask"));
        }
    }
    // Masked by user space: a raise is held until unmask.
    ok(set_irqs(f, MASK | NONE, INTX, 0, 1, &[], None), "mask")?;
    edu.raise(2);
    if quiet(&trig, 100) != 0 {
        return Err("a signal while masked".into());
    }
    ok(
        set_irqs(f, UNMASK | NONE, INTX, 0, 1, &[], None),
        "unmask after masked raise",
    )?;
    if trig.wait(2000) != 1 {
        return Err("the raise made while masked was not delivered once at unmask".into());
    }
    edu.ack();
    ok(set_irqs(f, UNMASK | NONE, INTX, 0, 1, &[], None), "unmask")?;
    // Unmask through an eventfd.
    ok(
        set_irqs(f, UNMASK | EFD, INTX, 0, 1, &fds(&[unmask.fd()]), None),
        "unmask eventfd",
    )?;
    edu.raise(4);
    if trig.wait(2000) != 1 {
        return Err("no signal with an unmask eventfd set".into());
    }
    edu.ack();
    unmask.signal();
    std::thread::sleep(Duration::from_millis(20));
    edu.raise(8);
    if trig.wait(2000) != 1 {
        return Err("unmask through the eventfd did not unmask".into());
    }
    edu.ack();
    unmask.signal();
    let names = proc_vfio(None);
    if names.len() != 1 || !names[0].starts_with("vfio-intx(") {
        return Err(format!("/proc/interrupts while INTx is on: {names:?}"));
    }
    ok(
        set_irqs(f, TRIG | NONE, INTX, 0, 0, &[], None),
        "disable INTx",
    )?;
    if !proc_vfio(None).is_empty() {
        return Err(format!("left after INTx disable: {:?}", proc_vfio(None)));
    }
    Ok(())
}

fn msi_edu(f: &File, edu: &Edu) -> Result<(), String> {
    let trig = EventFd::new()?;
    edu.ack();
    set_irqs(f, TRIG | EFD, MSI, 0, 1, &fds(&[trig.fd()]), None)
        .map_err(|e| format!("enable MSI: {}", errno_name(e)))?;
    let names = proc_vfio(None);
    if names.len() != 1 || !names[0].starts_with("vfio-msi[0](") {
        return Err(format!("/proc/interrupts while MSI is on: {names:?}"));
    }
    for round in 0..5 {
        edu.raise(1 << round);
        let n = trig.wait(2000);
        if n != 1 {
            return Err(format!(
                "round {round}: eventfd counted {n} after one raise, expected 1"
            ));
        }
        edu.ack();
        if quiet(&trig, 20) != 0 {
            return Err(format!("round {round}: extra signals"));
        }
    }
    set_irqs(f, TRIG | NONE, MSI, 0, 0, &[], None)
        .map_err(|e| format!("disable MSI: {}", errno_name(e)))?;
    if !proc_vfio(None).is_empty() {
        return Err(format!("left after MSI disable: {:?}", proc_vfio(None)));
    }
    Ok(())
}

fn msix_cycle(f: &File, bdf: &Bdf, n: u32) -> Result<(), String> {
    let k = n.min(4);
    let efds: Vec<EventFd> = (0..k).map(|_| EventFd::new()).collect::<Result<_, _>>()?;
    let all: Vec<i32> = efds.iter().map(EventFd::fd).collect();
    let want = |v: &[u32]| -> Vec<String> {
        let mut w: Vec<String> = v
            .iter()
            .map(|i| format!("vfio-msix[{i}]({})", bdf.as_str()))
            .collect();
        w.sort();
        w
    };
    let got = || {
        let mut g = proc_vfio(Some(bdf));
        g.sort();
        g
    };
    let call = |flags, start, count, data: &[u8], what: &str| {
        set_irqs(f, flags, MSIX, start, count, data, None)
            .map(|_| ())
            .map_err(|e| format!("{what}: {}", errno_name(e)))
    };
    for cycle in 0..2 {
        call(TRIG | EFD, 0, k, &fds(&all), "enable")?;
        let idx: Vec<u32> = (0..k).collect();
        if got() != want(&idx) {
            return Err(format!(
                "cycle {cycle}: enabled {k}, /proc/interrupts has {:?}",
                got()
            ));
        }
        call(TRIG | NONE, 0, k, &[], "loopback")?;
        let c: Vec<u64> = efds.iter().map(EventFd::take).collect();
        if c.iter().any(|&x| x != 1) {
            return Err(format!("cycle {cycle}: loopback counts {c:?}"));
        }
        call(TRIG | EFD, 1, 1, &fds(&[-1]), "detach vector 1")?;
        let rest: Vec<u32> = (0..k).filter(|&i| i != 1).collect();
        if got() != want(&rest) {
            return Err(format!("cycle {cycle}: after detaching 1: {:?}", got()));
        }
        call(TRIG | EFD, 1, 1, &fds(&[all[1]]), "re-attach vector 1")?;
        if got() != want(&idx) {
            return Err(format!("cycle {cycle}: after re-attaching 1: {:?}", got()));
        }
        call(TRIG | NONE, 0, 0, &[], "disable")?;
        if !got().is_empty() {
            return Err(format!("cycle {cycle}: left after disable: {:?}", got()));
        }
    }
    Ok(())
}

/// Unbinding with the fd open: REQ fires, and the unbind completes after close.
fn req_unbind(
    sys: &pcibind::Sysfs,
    bdf: &Bdf,
    driver: &str,
    dev: crate::vfio::Device,
) -> Result<(), String> {
    let req = EventFd::new()?;
    set_irqs(&dev.file, TRIG | EFD, REQ, 0, 1, &fds(&[req.fd()]), None)
        .map_err(|e| format!("set REQ: {}", errno_name(e)))?;
    let path = format!("/sys/bus/pci/drivers/{driver}/unbind");
    let name = bdf.as_str().to_string();
    let t = std::thread::spawn(move || {
        std::fs::write(&path, name.as_bytes()).map_err(|e| format!("{path}: {e}"))
    });
    let n = req.wait(3000);
    let early = t.is_finished();
    drop(dev);
    let done = t.join().map_err(|_| "unbind thread panicked".to_string())?;
    let _ = sys.set_override(bdf, None);
    done?;
    if n == 0 {
        return Err("REQ did not fire within 3 s of the unbind".into());
    }
    if early {
        return Err("the unbind completed while the device fd was still open".into());
    }
    if let Some(d) = sys.driver(bdf).map_err(|e| e.to_string())? {
        return Err(format!("still bound to {d} after close"));
    }
    Ok(())
}

/// MMIO write to eventfd read, ns per interrupt.
fn bench(f: &File, edu: &Edu, intx: bool) -> Result<Vec<u64>, String> {
    bench_samples(f, edu, intx, BENCH_SAMPLES)
}

/// [`bench`] with `samples` samples (after 10 discarded ones).
pub(crate) fn bench_samples(
    f: &File,
    edu: &Edu,
    intx: bool,
    samples: usize,
) -> Result<Vec<u64>, String> {
    let trig = EventFd::new()?;
    let index = if intx { INTX } else { MSI };
    edu.ack();
    set_irqs(f, TRIG | EFD, index, 0, 1, &fds(&[trig.fd()]), None)
        .map_err(|e| format!("enable: {}", errno_name(e)))?;
    let mut v = Vec::with_capacity(samples);
    let mut err = None;
    for i in 0..samples + 10 {
        let t = Instant::now();
        edu.raise(1);
        let mut p = libc::pollfd {
            fd: trig.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd.
        unsafe { libc::poll(&mut p, 1, 2000) };
        let n = trig.take();
        let dt = t.elapsed().as_nanos() as u64;
        edu.ack();
        if intx {
            let _ = set_irqs(f, UNMASK | NONE, INTX, 0, 1, &[], None);
        }
        if n != 1 {
            err = Some(format!("sample {i}: count {n}"));
            break;
        }
        if i >= 10 {
            v.push(dt);
        }
    }
    let _ = set_irqs(f, TRIG | NONE, index, 0, 0, &[], None);
    match err {
        Some(e) => Err(e),
        None => Ok(v),
    }
}

impl Suite {
    pub(crate) fn irq_checks(&mut self) {
        let drivers = self.args.drivers.clone();
        let mut benches: BTreeMap<(&'static str, String), Result<Vec<u64>, String>> =
            BTreeMap::new();
        for (bdf, label) in self.args.devices.clone() {
            let mut answers: BTreeMap<String, (Answers, Answers)> = BTreeMap::new();
            for d in &drivers {
                let dev = match attach(self, &bdf, d) {
                    Ok(dev) => dev,
                    Err(e) => {
                        self.r
                            .check(&format!("irq-info-{label}-{d}"), || Err(e.clone()));
                        detach(self, &bdf, None);
                        continue;
                    }
                };
                let f = &dev.file;
                let mut info: Answers = Vec::new();
                let mut counts = [0u32; 5];
                for i in 0..=5u32 {
                    let r = irq_info(f, i, 16);
                    if let (Ok(b), Some(c)) = (r, counts.get_mut(i as usize)) {
                        *c = b[3];
                    }
                    info.push((
                        format!("index {i}"),
                        match r {
                            Ok(b) => format!(
                                "argsz={} flags={:#x} index={} count={}",
                                b[0], b[1], b[2], b[3]
                            ),
                            Err(e) => errno_name(e),
                        },
                    ));
                }
                info.push((
                    "argsz 15".into(),
                    irq_info(f, 0, 15)
                        .map(|_| "ok".to_string())
                        .unwrap_or_else(errno_name),
                ));
                info.push((
                    "argsz 4096".into(),
                    irq_info(f, 0, 4096)
                        .map(|b| format!("{b:x?}"))
                        .unwrap_or_else(errno_name),
                ));
                let pcie = irq_info(f, ERR, 16).is_ok();
                let inf = info.clone();
                self.r.check(&format!("irq-info-{label}-{d}"), || {
                    let bad: Vec<String> = inf
                        .iter()
                        .take(5)
                        .enumerate()
                        .filter(|(i, (_, a))| a.starts_with('E') && (pcie || *i != ERR as usize))
                        .map(|(_, (w, a))| format!("{w}: {a}"))
                        .collect();
                    if bad.is_empty() {
                        Ok(())
                    } else {
                        Err(bad.join(", "))
                    }
                });
                self.r.info(format!(
                    "irq {label} {d}: counts intx={} msi={} msix={} err={} req={}",
                    counts[0], counts[1], counts[2], counts[3], counts[4]
                ));
                let mut tab = Vec::new();
                self.r.check(&format!("irq-set-table-{label}-{d}"), || {
                    tab = table(f, counts, pcie)?;
                    let left = proc_vfio(Some(&bdf));
                    if left.is_empty() {
                        Ok(())
                    } else {
                        Err(format!("interrupts left: {left:?}"))
                    }
                });
                if drivers.first() == Some(d) {
                    let line: Vec<String> = tab.iter().map(|(w, a)| format!("{w}={a}")).collect();
                    self.r
                        .info(format!("irq-table {label} {d}: {}", line.join(" ")));
                }
                answers.insert(d.clone(), (info, tab));
                // Devices that interrupt for real.
                if label == "edu" {
                    let edu = command_set(f, 0x6).and_then(|()| Edu::map(&bdf));
                    match edu {
                        Ok(edu) => {
                            self.r
                                .check(&format!("irq-intx-edu-{d}"), || intx_edu(f, &edu));
                            self.r
                                .check(&format!("irq-msi-edu-{d}"), || msi_edu(f, &edu));
                            if drivers.first() == Some(d) || d == GENERIC_DRIVER {
                                benches.insert(("irq-msi", d.clone()), bench(f, &edu, false));
                                benches.insert(("irq-intx", d.clone()), bench(f, &edu, true));
                            }
                        }
                        Err(e) => {
                            self.r
                                .check(&format!("irq-intx-edu-{d}"), || Err(e.clone()));
                        }
                    }
                }
                if counts[MSIX as usize] > 1 && (label == "nvme" || label == "e1000e") {
                    let n = counts[MSIX as usize];
                    self.r
                        .check(&format!("irq-msix-{label}-{d}"), || msix_cycle(f, &bdf, n));
                }
                if label == "edu" {
                    let sys = &self.sys;
                    self.r.check(&format!("irq-req-edu-{d}"), || {
                        req_unbind(sys, &bdf, d, dev)
                    });
                    let _ = self.sys.unbind(&bdf);
                } else {
                    detach(self, &bdf, Some(dev));
                }
                let left = proc_vfio(Some(&bdf));
                if !left.is_empty() {
                    self.r.check(&format!("irq-closed-{label}-{d}"), || {
                        Err(format!("left after close: {left:?}"))
                    });
                }
            }
            let Some(oracle) = drivers.first() else {
                continue;
            };
            for d in drivers.iter().skip(1) {
                let (o, t) = (
                    answers.get(oracle).cloned().unwrap_or_default(),
                    answers.get(d).cloned().unwrap_or_default(),
                );
                self.r.check(&format!("differential-irq-{label}-{d}"), || {
                    if o.0.is_empty() || t.0.is_empty() {
                        return Err("one side has no answers".into());
                    }
                    let mut diffs = Vec::new();
                    for (a, b) in o.0.iter().chain(&o.1).zip(t.0.iter().chain(&t.1)) {
                        if a != b {
                            diffs.push(format!("{}: {oracle} {} | {d} {}", a.0, a.1, b.1));
                        }
                    }
                    if o.1.len() != t.1.len() {
                        diffs.push(format!("table lengths {} vs {}", o.1.len(), t.1.len()));
                    }
                    if diffs.is_empty() {
                        Ok(())
                    } else {
                        Err(format!(
                            "{} differences: {}",
                            diffs.len(),
                            diffs
                                .iter()
                                .take(12)
                                .cloned()
                                .collect::<Vec<_>>()
                                .join("; ")
                        ))
                    }
                });
            }
        }
        self.r.check("irq-none-left", || {
            let left = proc_vfio(None);
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        });
        let bench_drivers = crate::bench::bench_drivers(&drivers);
        // One more session per driver in the other order (ours first), so a change in the
        // guest's or host's load between the two drivers' sessions cannot always favour the
        // driver measured first; its samples become each driver's extra rounds.
        if let Some(bdf) = self
            .args
            .devices
            .iter()
            .find(|(_, l)| l == "edu")
            .map(|(b, _)| b.clone())
        {
            for d in bench_drivers.iter().rev() {
                let Ok(dev) = attach(self, &bdf, d) else {
                    detach(self, &bdf, None);
                    continue;
                };
                let f = &dev.file;
                if let Ok(edu) = command_set(f, 0x6).and_then(|()| Edu::map(&bdf)) {
                    for (what, intx) in [("irq-msi", false), ("irq-intx", true)] {
                        let more = bench(f, &edu, intx);
                        if let (Some(Ok(v)), Ok(m)) = (benches.get_mut(&(what, d.clone())), more) {
                            v.extend(m);
                        }
                    }
                }
                detach(self, &bdf, Some(dev));
            }
        }
        for what in ["irq-msi", "irq-intx"] {
            let rounds: Vec<Result<Vec<Vec<u64>>, String>> = bench_drivers
                .iter()
                .map(|d| match benches.get(&(what, d.clone())) {
                    Some(Ok(v)) => Ok(v
                        .chunks(BENCH_SAMPLES / BENCH_ROUNDS)
                        .map(<[u64]>::to_vec)
                        .collect()),
                    Some(Err(e)) => Err(e.clone()),
                    None => Err("not measured".into()),
                })
                .collect();
            let names: Vec<&str> = bench_drivers.iter().map(String::as_str).collect();
            self.r.info(format!(
                "bench {what} edu {}",
                crate::bench::summary(&names, &rounds, 1)
            ));
        }
    }
}
