// SPDX-License-Identifier: GPL-2.0
//! `--suite bench`: the benchmark behind `cargo xtask bench` (and its short form in
//! `cargo xtask test`). Not a correctness check: every measurement that runs is a passing check
//! `bench-<device>-<op>`, one that cannot run (an errno where a number was expected) a failing
//! one, and the numbers go to the host as `BENCH {json}` lines, one per (device, operation,
//! driver slot, round), with every sample.
//!
//! # Method
//!
//! Three driver slots take turns on the same device in the same boot: `upstream` (C
//! `vfio-pci`), `ours` (`vfio-pci-generic`) and `control` (C `vfio-pci` again). The control
//! slot is the noise band: whatever separates it from `upstream` is not a driver difference.
//! Each round binds, opens, measures and unbinds each slot in turn, in the order
//! upstream, ours, control, reversed every other round, so neither side always runs first
//! (a TCG guest slows down with the host's load; alternating spreads that over both).
//!
//! Operations (each planned once per device, from what the device has):
//! - config reads: a virtual dword (offset 0, the IDs), a pass-through one (0x08, class and
//!   revision), BAR0's register, the first capability's header;
//! - config writes of the current value: `INTERRUPT_LINE` (a fully virtual byte), `COMMAND`,
//!   `CACHE_LINE_SIZE` (a byte written through to the device);
//! - BAR access through the fd, 1/2/4/8 bytes, at a register that is safe to read and write
//!   (see [`bar_plan`]), and a 4-byte read through `mmap` (no driver on the path: the floor);
//! - edu: ioeventfd (eventfd signal until the device shows the write), MSI and INTx round trip
//!   (device raises, eventfd fires; INTx also unmasks); nvme: MSI-X loopback (`SET_IRQS`
//!   `DATA_BOOL` trigger to eventfd);
//! - open (`VFIO_GROUP_GET_DEVICE_FD`), close (the last `close`), `VFIO_DEVICE_RESET` where
//!   the device has a reset;
//! - scaling (with `--bench-fleet`, a bridge with 16 `pci-testdev`s sharing one bus reset):
//!   `SET_IRQS` enabling N MSI-X vectors on nvme for N = 1, 2, 4, ... up to the device's count;
//!   config read latency with 1 and with 16 devices bound and open; open/close of one device
//!   with no other and with 15 others of its dev_set open; `VFIO_DEVICE_PCI_HOT_RESET` of
//!   their bus with all 16 open (no device of the main machine has a slot or bus reset of
//!   its own in the test kernel: no hotplug driver for the root ports); kernel memory (`Slab` and
//!   `MemTotal - MemFree` of `/proc/meminfo`) per bound and per open device.
//!
//! Batched operations report the mean of each batch of [`BATCH`] calls as one sample (the
//! clock costs as much as a config read under TCG); slow ones (interrupts, open, reset) one
//! sample per call.

use crate::config::errno_name;
use crate::irq::{fds, set_irqs, EventFd, BOOL, EFD, MSIX, NONE, TRIG};
use crate::{find_nodes, profile, vfio, Suite, GENERIC_DRIVER};
use pcibind::Bdf;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// The benchmark's options (`--bench-rounds`, `--bench-devices`, `--bench-fleet`).
#[derive(Clone, Debug)]
pub(crate) struct BenchArgs {
    pub(crate) rounds: usize,
    /// Device labels to measure, in order; empty: [`DEFAULT_DEVICES`].
    pub(crate) devices: Vec<String>,
    /// The bridge whose secondary bus holds the scaling fleet.
    pub(crate) fleet: Option<Bdf>,
    /// Per batched measurement and round: at most this many calls.
    pub(crate) max_ops: usize,
    /// `--bench-profile OP`: instead of the benchmark, profile the kernel while OP runs in a
    /// loop, per slot (see [`crate::profile`]).
    pub(crate) profile: Option<String>,
    /// Seconds of the profiled loop per slot (`--bench-profile-secs`).
    pub(crate) profile_secs: u64,
}

impl Default for BenchArgs {
    fn default() -> Self {
        Self {
            rounds: 9,
            devices: vec![],
            fleet: None,
            max_ops: 1024,
            profile: None,
            profile_secs: 10,
        }
    }
}

pub(crate) const DEFAULT_DEVICES: &[&str] = &["edu", "nvme", "e1000e", "pci-testdev"];

/// The three driver slots: name in the output, driver bound.
const SLOTS: [(&str, &str); 3] = [
    ("upstream", "vfio-pci"),
    ("ours", GENERIC_DRIVER),
    ("control", "vfio-pci"),
];

const BATCH: usize = 8;
/// The profiler's sample period asked for (the tick rounds it up: see [`crate::profile`]).
const PROFILE_PERIOD_NS: u64 = 20_000;
/// Per batched measurement and round: at most this much wall time.
const BUDGET: Duration = Duration::from_millis(60);
/// Samples per round of the one-call-per-sample operations.
const IRQ_SAMPLES: usize = 60;
const OPEN_SAMPLES: usize = 12;
const FLEET_OPEN_SAMPLES: usize = 3;
const RESET_SAMPLES: usize = 6;
const HOT_RESET_SAMPLES: usize = 2;
const MSIX_SCALE_SAMPLES: usize = 5;
/// Devices of the scaling fleet used (`pci-testdev`s on one conventional bus).
const FLEET: usize = 16;

/// One operation of the plan.
#[derive(Clone, Debug)]
enum Op {
    CfgRead(i64),
    CfgWrite(i64, usize),
    BarRead(u32, u64, usize),
    BarWrite(u32, u64, usize),
    MmapRead(u32, u64),
    Ioeventfd,
    Msi,
    Intx,
    MsixLoopback,
    Reset,
}

/// A named operation of one device.
#[derive(Clone, Debug)]
struct Planned {
    name: String,
    op: Op,
}

/// The BAR register each device's BAR benchmark uses: (BAR, offset for reads, offset for
/// writes and whether 8-byte accesses are valid there). Reads and writes at these offsets
/// change nothing a later measurement depends on: edu's liveness register (stores the
/// inverse), nvme's admin queue attributes and base (meaningless while the controller is
/// disabled), e1000e's STATUS for reads only, pci-testdev's first test register for reads.
fn bar_plan(label: &str) -> Option<(u32, u64, Option<u64>, bool)> {
    match label {
        "edu" => Some((0, 0x04, Some(0x04), false)),
        "nvme" => Some((0, 0x00, Some(0x28), true)),
        "e1000e" => Some((0, 0x08, None, false)),
        "pci-testdev" => Some((0, 0x00, None, false)),
        _ => None,
    }
}

/// Per-batch means (ns per call) of `op`, after a warm-up, within [`BUDGET`] and `max_ops`.
fn batched(max_ops: usize, mut op: impl FnMut() -> Result<(), i32>) -> Result<Vec<u64>, String> {
    for _ in 0..BATCH {
        op().map_err(errno_name)?;
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() * BATCH < max_ops && start.elapsed() < BUDGET {
        let t = Instant::now();
        for _ in 0..BATCH {
            op().map_err(errno_name)?;
        }
        samples.push(t.elapsed().as_nanos() as u64 / BATCH as u64);
    }
    Ok(samples)
}

/// A `pread`/`pwrite` result: every byte moved, the errno, or `EIO` for a short transfer.
fn whole(r: isize, len: usize) -> Result<(), i32> {
    if r == len as isize {
        Ok(())
    } else if r < 0 {
        Err(vfio::errno(&std::io::Error::last_os_error()))
    } else {
        Err(libc::EIO)
    }
}

fn pread(f: &File, off: i64, buf: &mut [u8]) -> Result<(), i32> {
    // SAFETY: `buf` is a live buffer of `buf.len()` bytes.
    let r = unsafe { libc::pread64(f.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), off) };
    whole(r, buf.len())
}

fn pwrite(f: &File, off: i64, buf: &[u8]) -> Result<(), i32> {
    // SAFETY: `buf` is a live buffer of `buf.len()` bytes.
    let r = unsafe { libc::pwrite64(f.as_raw_fd(), buf.as_ptr().cast(), buf.len(), off) };
    whole(r, buf.len())
}

/// The config image's capabilities: offset of the first standard one, if any.
fn first_capability(f: &File) -> Option<i64> {
    let mut b = [0u8; 256];
    pread(f, vfio::CONFIG_BASE, &mut b).ok()?;
    if b[6] & 0x10 == 0 {
        return None;
    }
    let p = b[0x34] & !3;
    (p >= 0x40).then_some(p as i64)
}

/// What to measure on `label`, decided on its first open (the same for every slot).
fn plan(label: &str, f: &File) -> Vec<Planned> {
    let mut v = Vec::new();
    let mut add = |name: &str, op| {
        v.push(Planned {
            name: name.to_string(),
            op,
        })
    };
    add("config-read-virt", Op::CfgRead(0));
    add("config-read-pass", Op::CfgRead(0x08));
    add("config-read-bar", Op::CfgRead(0x10));
    if let Some(c) = first_capability(f) {
        add("config-read-cap", Op::CfgRead(c));
    }
    add("config-write-virt", Op::CfgWrite(0x3c, 1));
    add("config-write-command", Op::CfgWrite(0x04, 2));
    add("config-write-pass", Op::CfgWrite(0x0c, 1));
    if let Some((bar, roff, woff, wide)) = bar_plan(label) {
        let sizes: &[usize] = if wide { &[1, 2, 4, 8] } else { &[1, 2, 4] };
        for &n in sizes {
            add(&format!("bar-read-{n}"), Op::BarRead(bar, roff, n));
        }
        if let Some(w) = woff {
            for &n in sizes {
                add(&format!("bar-write-{n}"), Op::BarWrite(bar, w, n));
            }
        }
        add("bar-read-mmap", Op::MmapRead(bar, roff));
    }
    if label == "edu" {
        add("ioeventfd", Op::Ioeventfd);
        add("irq-msi", Op::Msi);
        add("irq-intx", Op::Intx);
    }
    if label == "nvme" {
        add("irq-msix-loopback", Op::MsixLoopback);
    }
    add("reset", Op::Reset);
    v
}

/// Prints one `BENCH` record.
fn emit(suite: &Suite, dev: &str, op: &str, slot: &str, round: usize, unit: &str, samples: &[u64]) {
    let s: Vec<String> = samples.iter().map(u64::to_string).collect();
    suite.r.line(&format!(
        "BENCH {{\"device\":\"{dev}\",\"op\":\"{op}\",\"slot\":\"{slot}\",\"round\":{round},\
         \"unit\":\"{unit}\",\"samples\":[{}]}}",
        s.join(",")
    ));
}

/// The results of one device: (op, slot) -> first error, so each op is one check.
type Failures = std::collections::BTreeMap<String, String>;

/// A device open through its own group and container, kept for open/close and hot reset.
struct Session {
    group: vfio::Group,
    file: Option<File>,
}

fn open_session(suite: &Suite, bdf: &Bdf, driver: &str) -> Result<Session, String> {
    suite
        .sys
        .bind(bdf, driver)
        .map_err(|e| format!("bind to {driver}: {e}"))?;
    let nodes = find_nodes(&suite.sys, suite.args.mode, bdf)?;
    let group = vfio::Group::open(&nodes.group, suite.iommu_type())?;
    let file = group
        .device(bdf.as_str())
        .map_err(|e| format!("VFIO_GROUP_GET_DEVICE_FD: {e}"))?;
    Ok(Session {
        group,
        file: Some(file),
    })
}

/// Sets memory decode (and keeps the rest of COMMAND) so BAR access works.
fn decode_on(f: &File) -> Result<(), String> {
    crate::irq::command_set(f, 0x2)
}

fn measure_op(
    bdf: &Bdf,
    f: &File,
    p: &Planned,
    max_ops: usize,
) -> Result<(Vec<u64>, &'static str), String> {
    let ns = "ns";
    match p.op {
        Op::CfgRead(off) => {
            let mut b = [0u8; 4];
            batched(max_ops, || pread(f, vfio::CONFIG_BASE + off, &mut b)).map(|v| (v, ns))
        }
        Op::CfgWrite(off, n) => {
            let mut b = [0u8; 4];
            pread(f, vfio::CONFIG_BASE + off, &mut b[..n]).map_err(errno_name)?;
            batched(max_ops, || pwrite(f, vfio::CONFIG_BASE + off, &b[..n])).map(|v| (v, ns))
        }
        Op::BarRead(bar, off, n) => {
            let at = vfio::region_offset(bar) + off as i64;
            let mut b = [0u8; 8];
            batched(max_ops, || pread(f, at, &mut b[..n])).map(|v| (v, ns))
        }
        Op::BarWrite(bar, off, n) => {
            let at = vfio::region_offset(bar) + off as i64;
            let b = 0x5a5a_5a5a_5a5a_5a5au64.to_le_bytes();
            batched(max_ops, || pwrite(f, at, &b[..n])).map(|v| (v, ns))
        }
        Op::MmapRead(bar, off) => {
            let len = 4096usize;
            let m = vfio::Mapping::new(f, vfio::region_offset(bar), len, libc::MAP_SHARED)
                .map_err(|e| format!("mmap: {}", errno_name(e)))?;
            let off = off as usize & !3;
            batched(max_ops, || {
                std::hint::black_box(m.read32(off));
                Ok(())
            })
            .map(|v| (v, ns))
        }
        Op::Ioeventfd => ioeventfd_latency(bdf, f).map(|v| (v, ns)),
        Op::Msi | Op::Intx => {
            // An MSI is a memory write by the device: bus mastering on.
            crate::irq::command_set(f, 0x6)?;
            let edu = crate::irq::Edu::map(bdf)?;
            crate::irq::bench_samples(f, &edu, matches!(p.op, Op::Intx), IRQ_SAMPLES)
                .map(|v| (v, ns))
        }
        Op::MsixLoopback => msix_loopback(f).map(|v| (v, ns)),
        Op::Reset => {
            let mut v = Vec::new();
            for _ in 0..RESET_SAMPLES {
                let t = Instant::now();
                let e = vfio::reset(f);
                if e != 0 {
                    return Err(format!("VFIO_DEVICE_RESET: {}", errno_name(e)));
                }
                v.push(t.elapsed().as_nanos() as u64);
            }
            Ok((v, ns))
        }
    }
}

/// Signal an ioeventfd, then poll edu's liveness register (through sysfs, no VFIO on the
/// polling path) until it shows the write: the latency of the eventfd-to-device path. Two
/// ioeventfds with different data alternate so every signal changes the register.
fn ioeventfd_latency(bdf: &Bdf, f: &File) -> Result<Vec<u64>, String> {
    let edu = crate::irq::Edu::map(bdf)?;
    let evs = [vfio::eventfd()?, vfio::eventfd()?];
    let data = [0x1111_2222u64, 0x3333_4444u64];
    let add = |i: usize, fd: i32| vfio::Ioeventfd {
        argsz: 32,
        flags: 4,
        offset: 0x04,
        data: data[i],
        fd,
        reserved: 0,
    };
    for (i, ev) in evs.iter().enumerate() {
        let e = vfio::ioeventfd(f, add(i, ev.as_raw_fd()));
        if e != 0 {
            return Err(format!("VFIO_DEVICE_IOEVENTFD: {}", errno_name(e)));
        }
    }
    let mut v = Vec::new();
    let mut err = None;
    for n in 0..IRQ_SAMPLES + 4 {
        let i = n % 2;
        let want = !(data[i] as u32);
        let t = Instant::now();
        if vfio::signal(&evs[i]) != 0 {
            err = Some("eventfd write failed".to_string());
            break;
        }
        let deadline = t + Duration::from_millis(500);
        while edu.read(0x04) != want {
            if Instant::now() > deadline {
                err = Some(format!("sample {n}: the device never saw the write"));
                break;
            }
            std::hint::spin_loop();
        }
        if err.is_some() {
            break;
        }
        if n >= 4 {
            v.push(t.elapsed().as_nanos() as u64);
        }
    }
    for i in 0..2 {
        // Removal: the same arguments with fd -1.
        let _ = vfio::ioeventfd(f, add(i, -1));
    }
    match err {
        Some(e) => Err(e),
        None => Ok(v),
    }
}

/// `SET_IRQS` `DATA_BOOL` trigger of MSI-X vector 0 until its eventfd fires.
fn msix_loopback(f: &File) -> Result<Vec<u64>, String> {
    let ev = EventFd::new()?;
    set_irqs(f, TRIG | EFD, MSIX, 0, 1, &fds(&[ev.fd()]), None)
        .map_err(|e| format!("enable MSI-X: {}", errno_name(e)))?;
    let mut v = Vec::new();
    let mut err = None;
    for n in 0..IRQ_SAMPLES + 4 {
        let t = Instant::now();
        if let Err(e) = set_irqs(f, TRIG | BOOL, MSIX, 0, 1, &[1u8], None) {
            err = Some(format!("trigger: {}", errno_name(e)));
            break;
        }
        if ev.wait(2000) != 1 {
            err = Some(format!("sample {n}: no signal"));
            break;
        }
        if n >= 4 {
            v.push(t.elapsed().as_nanos() as u64);
        }
    }
    let _ = set_irqs(f, TRIG | NONE, MSIX, 0, 0, &[], None);
    match err {
        Some(e) => Err(e),
        None => Ok(v),
    }
}

/// `SET_IRQS` enabling vectors 0..n of MSI-X at once, then disabling them: the enable times.
fn msix_enable(f: &File, n: u32) -> Result<Vec<u64>, String> {
    let evs: Vec<EventFd> = (0..n).map(|_| EventFd::new()).collect::<Result<_, _>>()?;
    let data = fds(&evs.iter().map(EventFd::fd).collect::<Vec<_>>());
    let mut v = Vec::new();
    for _ in 0..MSIX_SCALE_SAMPLES {
        let t = Instant::now();
        set_irqs(f, TRIG | EFD, MSIX, 0, n, &data, None)
            .map_err(|e| format!("enable {n} vectors: {}", errno_name(e)))?;
        v.push(t.elapsed().as_nanos() as u64);
        set_irqs(f, TRIG | NONE, MSIX, 0, 0, &[], None)
            .map_err(|e| format!("disable: {}", errno_name(e)))?;
    }
    Ok(v)
}

/// The MSI-X vector count of an open device (0 without MSI-X).
fn msix_count(f: &File) -> u32 {
    let mut b: [u32; 4] = [16, 0, MSIX, 0];
    // SAFETY: a 16-byte `vfio_irq_info` the kernel reads and writes at most 16 bytes of.
    let r = unsafe {
        libc::ioctl(
            f.as_raw_fd(),
            crate::irq::VFIO_DEVICE_GET_IRQ_INFO as _,
            b.as_mut_ptr(),
        )
    };
    if r < 0 {
        0
    } else {
        b[3]
    }
}

/// `Slab` and the memory in use (`MemTotal - MemFree`) of `/proc/meminfo`, in bytes. Both
/// move in pages, so per-device figures come from 16 devices at once.
fn kernel_memory() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (
        field("Slab:"),
        field("MemTotal:").saturating_sub(field("MemFree:")),
    )
}

impl Suite {
    pub(crate) fn bench_suite(&mut self, b: &BenchArgs) {
        let labels: Vec<String> = if b.devices.is_empty() {
            DEFAULT_DEVICES.iter().map(|s| s.to_string()).collect()
        } else {
            b.devices.clone()
        };
        self.r.info(format!(
            "bench: rounds={} devices={labels:?} fleet={:?} slots={SLOTS:?}",
            b.rounds,
            b.fleet.as_ref().map(Bdf::as_str)
        ));
        if let Some(op) = &b.profile {
            for label in &labels {
                self.profile_device(label, op, b.profile_secs);
            }
            return;
        }
        for label in &labels {
            let Some(bdf) = self
                .args
                .devices
                .iter()
                .find(|(_, l)| l == label)
                .map(|(b, _)| b.clone())
            else {
                self.r.check(&format!("bench-{label}"), || {
                    Err(format!("no device labelled {label} in this guest"))
                });
                continue;
            };
            self.bench_device(label, &bdf, b);
        }
        if labels.iter().any(|l| l == "nvme") {
            if let Some((bdf, _)) = self.args.devices.iter().find(|(_, l)| l == "nvme").cloned() {
                self.bench_msix_scaling(&bdf, b);
            }
        }
        if let Some(fleet) = b.fleet.clone() {
            self.bench_fleet(&fleet, b);
        }
    }

    fn bench_device(&mut self, label: &str, bdf: &Bdf, b: &BenchArgs) {
        let mut planned: Option<Vec<Planned>> = None;
        let mut failures = Failures::new();
        for round in 0..b.rounds {
            let mut order: Vec<usize> = (0..SLOTS.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for &si in &order {
                let (slot, driver) = SLOTS[si];
                let mut s = match open_session(self, bdf, driver) {
                    Ok(s) => s,
                    Err(e) => {
                        failures
                            .entry("open".into())
                            .or_insert(format!("{slot}: {e}"));
                        let _ = self.sys.unbind(bdf);
                        continue;
                    }
                };
                let Some(f) = s.file.take() else { continue };
                if let Err(e) = decode_on(&f) {
                    failures
                        .entry("decode".into())
                        .or_insert(format!("{slot}: {e}"));
                }
                let p = planned.get_or_insert_with(|| {
                    let mut p = plan(label, &f);
                    let info = vfio::device_info(&f, 24).ok();
                    if info.is_none_or(|i| i.flags & vfio::VFIO_DEVICE_FLAGS_RESET == 0) {
                        p.retain(|x| !matches!(x.op, Op::Reset));
                    }
                    p
                });
                for op in p.iter() {
                    match measure_op(bdf, &f, op, b.max_ops) {
                        Ok((v, unit)) => emit(self, label, &op.name, slot, round, unit, &v),
                        Err(e) => {
                            failures
                                .entry(op.name.clone())
                                .or_insert(format!("{slot} round {round}: {e}"));
                        }
                    }
                    // A reset turns memory decode off: back on for the next operation.
                    if matches!(op.op, Op::Reset) {
                        let _ = decode_on(&f);
                    }
                }
                drop(f);
                // Open and close: the device fd only, group and container stay.
                let mut open = Vec::new();
                let mut close = Vec::new();
                for _ in 0..OPEN_SAMPLES {
                    let t = Instant::now();
                    match s.group.device(bdf.as_str()) {
                        Ok(f) => {
                            open.push(t.elapsed().as_nanos() as u64);
                            let t = Instant::now();
                            drop(f);
                            close.push(t.elapsed().as_nanos() as u64);
                        }
                        Err(e) => {
                            failures
                                .entry("open".into())
                                .or_insert(format!("{slot} round {round}: {e}"));
                            break;
                        }
                    }
                }
                emit(self, label, "open", slot, round, "ns", &open);
                emit(self, label, "close", slot, round, "ns", &close);
                drop(s);
                let _ = self.sys.unbind(bdf);
            }
        }
        let mut names: Vec<String> = planned
            .unwrap_or_default()
            .iter()
            .map(|p| p.name.clone())
            .collect();
        names.extend(["open".to_string(), "close".to_string()]);
        for n in names {
            let why = failures.remove(&n);
            self.r
                .check(&format!("bench-{label}-{n}"), || why.map_or(Ok(()), Err));
        }
        for (n, why) in failures {
            self.r.check(&format!("bench-{label}-{n}"), || Err(why));
        }
    }

    /// `--bench-profile OP`: the kernel profile of OP on `label`, upstream's slot then ours,
    /// printed as `PROFILE <label> <text>` lines (the host writes them to
    /// `target/bench/profile-<label>-<op>.txt`). One check, `profile-<label>-<op>`.
    fn profile_device(&mut self, label: &str, op: &str, secs: u64) {
        let name = format!("profile-{label}-{op}");
        let Some(bdf) = self.device_labelled(label) else {
            self.r.check(&name, || {
                Err(format!("no device labelled {label} in this guest"))
            });
            return;
        };
        let syms = match profile::Symbols::load() {
            Ok(s) => s,
            Err(e) => {
                self.r.check(&name, || Err(e));
                return;
            }
        };
        // Upstream, ours, ours, upstream: half the time each, so a change of the host's load
        // during the run weighs on both slots alike.
        let half = secs.div_ceil(2);
        let mut slots: Vec<Option<profile::SlotProfile>> = vec![None, None];
        let mut fail = None;
        for si in [0usize, 1, 1, 0] {
            let (slot, driver) = SLOTS[si];
            match self.profile_slot(&bdf, label, op, slot, driver, half) {
                Ok(p) => match &mut slots[si] {
                    Some(acc) => acc.merge(p),
                    None => slots[si] = Some(p),
                },
                Err(e) => {
                    fail.get_or_insert(format!("{slot}: {e}"));
                }
            }
            let _ = self.sys.unbind(&bdf);
        }
        let slots: Vec<profile::SlotProfile> = slots.into_iter().flatten().collect();
        let gated = matches!(op, "open" | "close");
        for l in profile::report(label, op, gated, &slots, &syms) {
            self.r.line(&format!("PROFILE {label} {l}"));
        }
        for p in &slots {
            for l in profile::folded(p, &syms) {
                self.r
                    .line(&format!("PROFILE {label} folded {} {l}", p.slot));
            }
        }
        if slots.iter().any(|p| p.samples.is_empty()) {
            fail.get_or_insert("a slot has no samples".to_string());
        }
        self.r.check(&name, || fail.map_or(Ok(()), Err));
    }

    /// One slot of [`Self::profile_device`]: bind, open, run `op` for `secs` seconds under
    /// the profiler, unbind (by the caller).
    fn profile_slot(
        &self,
        bdf: &Bdf,
        label: &str,
        op: &str,
        slot: &str,
        driver: &str,
        secs: u64,
    ) -> Result<profile::SlotProfile, String> {
        let mut s = open_session(self, bdf, driver)?;
        let f = s.file.take().ok_or("no device fd")?;
        decode_on(&f)?;
        let mut prof = profile::Profiler::new(PROFILE_PERIOD_NS)?;
        let budget = Duration::from_secs(secs);
        let mut ops = 0u64;
        let start;
        let ticks0 = profile::local_timer_interrupts();
        if matches!(op, "open" | "close") {
            drop(f);
            let gate_open = op == "open";
            prof.reset();
            start = Instant::now();
            while start.elapsed() < budget {
                if gate_open {
                    prof.enable();
                }
                let r = s.group.device(bdf.as_str());
                if gate_open {
                    prof.disable();
                }
                let d = r.map_err(|e| format!("VFIO_GROUP_GET_DEVICE_FD: {e}"))?;
                if !gate_open {
                    prof.enable();
                }
                drop(d);
                if !gate_open {
                    prof.disable();
                }
                ops += 1;
                if prof.wants_drain() {
                    prof.drain();
                }
            }
        } else {
            let p = plan(label, &f)
                .into_iter()
                .find(|p| p.name == op)
                .ok_or_else(|| format!("{label} has no operation {op}"))?;
            if matches!(p.op, Op::MmapRead(..)) {
                return Err("reads through mmap do not enter the kernel".into());
            }
            let mut b = [0u8; 8];
            if let Op::CfgWrite(off, n) = p.op {
                pread(&f, vfio::CONFIG_BASE + off, &mut b[..n]).map_err(errno_name)?;
            }
            // One call (or, for the slow operations, one `measure_op`): operations done.
            let mut once = || -> Result<u64, String> {
                match p.op {
                    Op::CfgRead(off) => {
                        pread(&f, vfio::CONFIG_BASE + off, &mut b[..4]).map_err(errno_name)?
                    }
                    Op::CfgWrite(off, n) => {
                        pwrite(&f, vfio::CONFIG_BASE + off, &b[..n]).map_err(errno_name)?
                    }
                    Op::BarRead(bar, off, n) => {
                        let at = vfio::region_offset(bar) + off as i64;
                        pread(&f, at, &mut b[..n]).map_err(errno_name)?
                    }
                    Op::BarWrite(bar, off, n) => {
                        let at = vfio::region_offset(bar) + off as i64;
                        let w = 0x5a5a_5a5a_5a5a_5a5au64.to_le_bytes();
                        pwrite(&f, at, &w[..n]).map_err(errno_name)?
                    }
                    _ => {
                        let (v, _) = measure_op(bdf, &f, &p, BATCH)?;
                        // Warm-up calls the samples leave out.
                        let extra = match p.op {
                            Op::Msi | Op::Intx => 10,
                            Op::Ioeventfd | Op::MsixLoopback => 4,
                            _ => 0,
                        };
                        if matches!(p.op, Op::Reset) {
                            decode_on(&f)?;
                        }
                        return Ok(v.len() as u64 + extra);
                    }
                }
                Ok(1)
            };
            once()?;
            prof.reset();
            start = Instant::now();
            prof.enable();
            while start.elapsed() < budget {
                ops += once()?;
                if prof.wants_drain() {
                    prof.drain();
                }
            }
            prof.disable();
        }
        let wall_ns = start.elapsed().as_nanos() as u64;
        let ticks = profile::local_timer_interrupts().saturating_sub(ticks0);
        let enabled_ns = prof.enabled_ns();
        prof.drain();
        Ok(profile::SlotProfile {
            slot: slot.to_string(),
            driver: driver.to_string(),
            ops,
            wall_ns,
            ticks,
            enabled_ns,
            samples: std::mem::take(&mut prof.samples),
            lost: prof.lost,
            pid: std::process::id(),
        })
    }

    fn bench_msix_scaling(&mut self, bdf: &Bdf, b: &BenchArgs) {
        let mut fail = None;
        let mut ns_seen = Vec::new();
        for round in 0..b.rounds {
            for &(slot, driver) in &SLOTS {
                let mut s = match open_session(self, bdf, driver) {
                    Ok(s) => s,
                    Err(e) => {
                        fail.get_or_insert(format!("{slot}: {e}"));
                        let _ = self.sys.unbind(bdf);
                        continue;
                    }
                };
                if let Some(f) = s.file.take() {
                    let max = msix_count(&f);
                    let mut n = 1u32;
                    while n <= max {
                        match msix_enable(&f, n) {
                            Ok(v) => {
                                emit(
                                    self,
                                    "nvme",
                                    &format!("msix-enable-{n}"),
                                    slot,
                                    round,
                                    "ns",
                                    &v,
                                );
                                if !ns_seen.contains(&n) {
                                    ns_seen.push(n);
                                }
                            }
                            Err(e) => {
                                fail.get_or_insert(format!("{slot} N={n}: {e}"));
                            }
                        }
                        n = if n * 2 > max && n < max { max } else { n * 2 };
                    }
                }
                drop(s);
                let _ = self.sys.unbind(bdf);
            }
        }
        self.r.check("bench-nvme-msix-enable-scaling", || {
            if let Some(e) = fail {
                return Err(e);
            }
            if ns_seen.len() < 3 {
                return Err(format!("only {} vector counts measured", ns_seen.len()));
            }
            Ok(())
        });
    }

    /// Scaling with the number of devices: see the module documentation.
    fn bench_fleet(&mut self, bridge: &Bdf, b: &BenchArgs) {
        let fleet = match fleet_devices(self, bridge) {
            Ok(v) => v,
            Err(e) => {
                self.r.check("bench-fleet", || Err(e));
                return;
            }
        };
        let mut fail: Option<String> = None;
        for round in 0..b.rounds {
            let mut order: Vec<usize> = (0..SLOTS.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for &si in &order {
                let (slot, driver) = SLOTS[si];
                if let Err(e) = self.fleet_round(&fleet, slot, driver, round, b) {
                    fail.get_or_insert(format!("{slot} round {round}: {e}"));
                }
                for d in &fleet {
                    let _ = self.sys.unbind(d);
                }
            }
        }
        self.r.check("bench-fleet", || fail.map_or(Ok(()), Err));
    }

    fn fleet_round(
        &mut self,
        fleet: &[Bdf],
        slot: &str,
        driver: &str,
        round: usize,
        b: &BenchArgs,
    ) -> Result<(), String> {
        let (slab0, vm0) = kernel_memory();
        for d in fleet {
            self.sys
                .bind(d, driver)
                .map_err(|e| format!("bind {} to {driver}: {e}", d.as_str()))?;
        }
        let (slab1, vm1) = kernel_memory();
        // One group per device in noiommu mode; one shared group behind the bridge with an
        // IOMMU: open each node once.
        let mut groups: Vec<(String, vfio::Group)> = Vec::new();
        let mut files = Vec::new();
        for d in fleet {
            let nodes = find_nodes(&self.sys, self.args.mode, d)?;
            if !groups.iter().any(|(n, _)| *n == nodes.group) {
                let g = vfio::Group::open(&nodes.group, self.iommu_type())?;
                groups.push((nodes.group.clone(), g));
            }
        }
        let group_of = |d: &Bdf, groups: &[(String, vfio::Group)]| -> Result<usize, String> {
            let nodes = find_nodes(&self.sys, self.args.mode, d)?;
            groups
                .iter()
                .position(|(n, _)| *n == nodes.group)
                .ok_or_else(|| "group vanished".to_string())
        };
        let first = fleet.first().ok_or("empty fleet")?;
        let g0 = group_of(first, &groups)?;
        // Device 0 alone: open/close and config read.
        let (open1, close1) = open_close(&groups[g0].1, first)?;
        emit(self, "fleet", "open-dev_set-1", slot, round, "ns", &open1);
        emit(self, "fleet", "close-dev_set-1", slot, round, "ns", &close1);
        let f0 = groups[g0]
            .1
            .device(first.as_str())
            .map_err(|e| format!("open: {e}"))?;
        let (slab2, vm2) = kernel_memory();
        let mut buf = [0u8; 4];
        let v = batched(b.max_ops, || pread(&f0, vfio::CONFIG_BASE, &mut buf))?;
        emit(self, "fleet", "config-read-open-1", slot, round, "ns", &v);
        drop(f0);
        // All of them open; device 0 measured again.
        for d in fleet.iter().skip(1) {
            let g = group_of(d, &groups)?;
            files.push(
                groups[g]
                    .1
                    .device(d.as_str())
                    .map_err(|e| format!("open {}: {e}", d.as_str()))?,
            );
        }
        let (open16, close16) = open_close(&groups[g0].1, first)?;
        emit(
            self,
            "fleet",
            &format!("open-dev_set-{}", fleet.len()),
            slot,
            round,
            "ns",
            &open16,
        );
        emit(
            self,
            "fleet",
            &format!("close-dev_set-{}", fleet.len()),
            slot,
            round,
            "ns",
            &close16,
        );
        let f0 = groups[g0]
            .1
            .device(first.as_str())
            .map_err(|e| format!("open: {e}"))?;
        let (slab3, vm3) = kernel_memory();
        let v = batched(b.max_ops, || pread(&f0, vfio::CONFIG_BASE, &mut buf))?;
        emit(
            self,
            "fleet",
            &format!("config-read-open-{}", fleet.len()),
            slot,
            round,
            "ns",
            &v,
        );
        // The bus reset of the whole dev_set, every device open, every group passed.
        let gfds: Vec<i32> = groups.iter().map(|(_, g)| g.group.as_raw_fd()).collect();
        let mut v = Vec::new();
        for _ in 0..HOT_RESET_SAMPLES {
            let t = Instant::now();
            let e = vfio::hot_reset(&f0, 0, &gfds, None);
            if e != 0 {
                return Err(format!("VFIO_DEVICE_PCI_HOT_RESET: {}", errno_name(e)));
            }
            v.push(t.elapsed().as_nanos() as u64);
        }
        let name = format!("hot-reset-{}", fleet.len());
        emit(self, "fleet", &name, slot, round, "ns", &v);
        drop(f0);
        drop(files);
        drop(groups);
        let n = fleet.len() as u64;
        let per = |a: u64, b: u64, n: u64| b.saturating_sub(a) / n.max(1);
        emit(
            self,
            "fleet",
            "mem-slab-per-bound-device",
            slot,
            round,
            "B",
            &[per(slab0, slab1, n)],
        );
        emit(
            self,
            "fleet",
            "mem-used-per-bound-device",
            slot,
            round,
            "B",
            &[per(vm0, vm1, n)],
        );
        emit(
            self,
            "fleet",
            "mem-slab-first-open",
            slot,
            round,
            "B",
            &[per(slab1, slab2, 1)],
        );
        emit(
            self,
            "fleet",
            "mem-used-first-open",
            slot,
            round,
            "B",
            &[per(vm1, vm2, 1)],
        );
        emit(
            self,
            "fleet",
            "mem-slab-per-open-device",
            slot,
            round,
            "B",
            &[per(slab1, slab3, n)],
        );
        emit(
            self,
            "fleet",
            "mem-used-per-open-device",
            slot,
            round,
            "B",
            &[per(vm1, vm3, n)],
        );
        Ok(())
    }
}

/// Open/close times of one device of `g`, [`FLEET_OPEN_SAMPLES`] each (the last close of a
/// dev_set resets its bus: a second per close).
fn open_close(g: &vfio::Group, d: &Bdf) -> Result<(Vec<u64>, Vec<u64>), String> {
    let mut open = Vec::new();
    let mut close = Vec::new();
    for _ in 0..FLEET_OPEN_SAMPLES {
        let t = Instant::now();
        let f = g
            .device(d.as_str())
            .map_err(|e| format!("open {}: {e}", d.as_str()))?;
        open.push(t.elapsed().as_nanos() as u64);
        let t = Instant::now();
        drop(f);
        close.push(t.elapsed().as_nanos() as u64);
    }
    Ok((open, close))
}

/// The first [`FLEET`] functions on the bridge's secondary bus, driverless.
fn fleet_devices(suite: &Suite, bridge: &Bdf) -> Result<Vec<Bdf>, String> {
    let dir = suite.sys.device_dir(bridge);
    let mut v: Vec<Bdf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| Bdf::parse(&e.file_name().to_string_lossy()).ok())
        .collect();
    v.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    v.truncate(FLEET);
    if v.len() < FLEET {
        return Err(format!(
            "{} functions behind {}, want {FLEET}",
            v.len(),
            bridge.as_str()
        ));
    }
    Ok(v)
}
