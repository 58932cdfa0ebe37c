// SPDX-License-Identifier: GPL-2.0
//! A sampling profiler of the guest kernel, for `cargo xtask bench --profile OP`.
//!
//! `perf_event_open` of `PERF_TYPE_SOFTWARE`/`PERF_COUNT_SW_CPU_CLOCK` on every CPU (the guest
//! has one; CPU-wide, so work done in interrupts, softirqs and kworkers on behalf of the
//! operation is seen too), kernel samples only (`exclude_user`, `exclude_hv`), each with its IP,
//! pid and kernel callchain (`exclude_callchain_user`), read from the mmap'ed ring buffer.
//! Addresses are resolved with `/proc/kallsyms` (module symbols carry `[module]`).
//!
//! The test kernel has no `CONFIG_HIGH_RES_TIMERS`: the clock event's hrtimer only expires on
//! the tick (`HZ=250`), so there is one sample per 4 ms whatever the period asked for. The
//! samples are still an unbiased picture of where the CPU is (the loop does not run in step with
//! the tick); only their number is small, hence runs of several seconds. An operation much
//! shorter than its surroundings (`open`, whose `close` takes 30 times as long on pci-testdev)
//! is profiled gated: the event is enabled around the operation only.
//!
//! The event's count is the time it was enabled (ns), so each symbol's share of the samples
//! gives an estimate of its time per operation: `share * enabled_ns / operations`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_CPU_CLOCK: u64 = 0;
const PERF_SAMPLE_IP: u64 = 1 << 0;
const PERF_SAMPLE_TID: u64 = 1 << 1;
const PERF_SAMPLE_CALLCHAIN: u64 = 1 << 5;
const ATTR_DISABLED: u64 = 1 << 0;
const ATTR_EXCLUDE_USER: u64 = 1 << 4;
const ATTR_EXCLUDE_HV: u64 = 1 << 6;
const ATTR_EXCLUDE_CALLCHAIN_USER: u64 = 1 << 22;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
/// `_IO('$', 0)`, `_IO('$', 1)`, `_IO('$', 3)`.
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_EVENT_IOC_DISABLE: libc::c_ulong = 0x2401;
const PERF_EVENT_IOC_RESET: libc::c_ulong = 0x2403;
const PERF_RECORD_LOST: u32 = 2;
const PERF_RECORD_SAMPLE: u32 = 9;
/// Callchain entries at or above this are context markers (`PERF_CONTEXT_KERNEL`, ...).
const PERF_CONTEXT_MAX: u64 = (-4095i64) as u64;
/// Data pages of each ring buffer (a power of two): 1 MiB, about 4000 samples.
const DATA_PAGES: usize = 256;
const PAGE: usize = 4096;
/// Offsets of `data_head` and `data_tail` in `struct perf_event_mmap_page`.
const DATA_HEAD: usize = 1024;
const DATA_TAIL: usize = 1032;

/// `struct perf_event_attr` as of `PERF_ATTR_SIZE_VER8` (136 bytes).
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    ty: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    reserved_2: u16,
    aux_sample_size: u32,
    reserved_3: u32,
    sig_data: u64,
    config3: u64,
}

/// One kernel sample: the pid it interrupted and its callchain, leaf first (the IP itself
/// first), context markers removed.
#[derive(Clone, Debug)]
pub(crate) struct Sample {
    pub(crate) pid: u32,
    pub(crate) chain: Vec<u64>,
}

/// One CPU's event and its ring buffer.
struct Event {
    fd: OwnedFd,
    base: *mut u8,
    len: usize,
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are the mapping made in `Profiler::new`, unmapped only here.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// The sampling events of every CPU and the samples read so far.
pub(crate) struct Profiler {
    events: Vec<Event>,
    pub(crate) samples: Vec<Sample>,
    pub(crate) lost: u64,
}

fn last_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

impl Profiler {
    /// Disabled events on every online CPU, sampling every `period_ns` of CPU time (rounded up
    /// to the tick by a kernel without high-resolution timers).
    pub(crate) fn new(period_ns: u64) -> Result<Profiler, String> {
        // SAFETY: sysconf has no memory effects.
        let ncpu = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as i32;
        let mut events = Vec::new();
        for cpu in 0..ncpu {
            let attr = PerfEventAttr {
                ty: PERF_TYPE_SOFTWARE,
                size: std::mem::size_of::<PerfEventAttr>() as u32,
                config: PERF_COUNT_SW_CPU_CLOCK,
                sample_period: period_ns,
                sample_type: PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_CALLCHAIN,
                flags: ATTR_DISABLED
                    | ATTR_EXCLUDE_USER
                    | ATTR_EXCLUDE_HV
                    | ATTR_EXCLUDE_CALLCHAIN_USER,
                ..Default::default()
            };
            // SAFETY: `attr` is a valid perf_event_attr of the size it states; pid -1 with a
            // CPU: every task on that CPU; no group; returns a new fd or -1.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_perf_event_open,
                    &attr as *const PerfEventAttr,
                    -1 as libc::pid_t,
                    cpu,
                    -1 as libc::c_int,
                    PERF_FLAG_FD_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(last_err(&format!("perf_event_open(cpu {cpu})")));
            }
            // SAFETY: a fresh fd owned by nobody else.
            let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
            let len = (1 + DATA_PAGES) * PAGE;
            // SAFETY: a new shared mapping of the event's ring buffer; checked below.
            let base = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            };
            if base == libc::MAP_FAILED {
                return Err(last_err("mmap of the perf ring buffer"));
            }
            events.push(Event {
                fd,
                base: base.cast(),
                len,
            });
        }
        Ok(Profiler {
            events,
            samples: Vec::new(),
            lost: 0,
        })
    }

    fn ioctl_all(&self, req: libc::c_ulong) {
        for e in &self.events {
            // SAFETY: a perf event fd; the request takes no argument.
            unsafe { libc::ioctl(e.fd.as_raw_fd(), req as _, 0) };
        }
    }

    pub(crate) fn enable(&self) {
        self.ioctl_all(PERF_EVENT_IOC_ENABLE);
    }

    pub(crate) fn disable(&self) {
        self.ioctl_all(PERF_EVENT_IOC_DISABLE);
    }

    /// Zeroes the enabled-time counts.
    pub(crate) fn reset(&self) {
        self.ioctl_all(PERF_EVENT_IOC_RESET);
    }

    /// Nanoseconds the events were enabled, summed over the CPUs.
    pub(crate) fn enabled_ns(&self) -> u64 {
        let mut total = 0;
        for e in &self.events {
            let mut b = [0u8; 8];
            // SAFETY: the fd stays open while `f` lives; `ManuallyDrop` keeps it open after.
            let mut f = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(e.fd.as_raw_fd()) });
            if f.read_exact(&mut b).is_ok() {
                total += u64::from_ne_bytes(b);
            }
        }
        total
    }

    /// Whether some ring buffer is more than a quarter full (cheap: two loads).
    pub(crate) fn wants_drain(&self) -> bool {
        self.events.iter().any(|e| {
            let (head, tail) = e.head_tail();
            head.wrapping_sub(tail) as usize > DATA_PAGES * PAGE / 4
        })
    }

    /// Moves every record out of the ring buffers into `samples`.
    pub(crate) fn drain(&mut self) {
        for i in 0..self.events.len() {
            let e = &self.events[i];
            let (head, mut tail) = e.head_tail();
            let size = (DATA_PAGES * PAGE) as u64;
            let mut out = Vec::new();
            let mut lost = 0;
            while tail + 8 <= head {
                let hdr = e.copy(tail, 8);
                let ty = u32::from_ne_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
                let len = u16::from_ne_bytes([hdr[6], hdr[7]]) as u64;
                if len < 8 || len > size || tail + len > head {
                    break;
                }
                let rec = e.copy(tail, len as usize);
                match ty {
                    PERF_RECORD_SAMPLE => {
                        if let Some(s) = parse_sample(&rec[8..]) {
                            out.push(s);
                        }
                    }
                    PERF_RECORD_LOST => {
                        // id, lost.
                        if let Some(b) = rec.get(16..24) {
                            let mut a = [0u8; 8];
                            a.copy_from_slice(b);
                            lost += u64::from_ne_bytes(a);
                        }
                    }
                    _ => {}
                }
                tail += len;
            }
            e.set_tail(tail);
            self.samples.extend(out);
            self.lost += lost;
        }
    }
}

impl Event {
    fn word(&self, off: usize) -> &AtomicU64 {
        // SAFETY: `off` is `DATA_HEAD` or `DATA_TAIL`, 8-aligned fields of the control page
        // mapped for the life of `self`; the kernel accesses them atomically too.
        unsafe { &*(self.base.add(off) as *const AtomicU64) }
    }

    fn head_tail(&self) -> (u64, u64) {
        let head = self.word(DATA_HEAD).load(Ordering::Acquire);
        (head, self.word(DATA_TAIL).load(Ordering::Relaxed))
    }

    fn set_tail(&self, tail: u64) {
        self.word(DATA_TAIL).store(tail, Ordering::Release);
    }

    /// `len` bytes of the data area from position `pos`, across the wrap.
    fn copy(&self, pos: u64, len: usize) -> Vec<u8> {
        let size = DATA_PAGES * PAGE;
        let mut v = vec![0u8; len];
        for (i, b) in v.iter_mut().enumerate() {
            let at = PAGE + (pos as usize + i) % size;
            // SAFETY: `at` is inside the mapping (one control page plus `size` data bytes).
            *b = unsafe { std::ptr::read_volatile(self.base.add(at)) };
        }
        v
    }
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_ne_bytes(a))
}

/// A `PERF_RECORD_SAMPLE` body of `IP | TID | CALLCHAIN`.
fn parse_sample(b: &[u8]) -> Option<Sample> {
    let ip = u64_at(b, 0)?;
    let pid = u64_at(b, 8)? as u32;
    let nr = u64_at(b, 16)? as usize;
    let mut chain: Vec<u64> = (0..nr)
        .filter_map(|i| u64_at(b, 24 + 8 * i))
        .filter(|&a| a < PERF_CONTEXT_MAX)
        .collect();
    if chain.first() != Some(&ip) {
        chain.insert(0, ip);
    }
    Some(Sample { pid, chain })
}

/// The kernel's text symbols, sorted by address.
pub(crate) struct Symbols {
    addrs: Vec<u64>,
    names: Vec<String>,
}

impl Symbols {
    /// Reads `/proc/kallsyms`, after lowering `kptr_restrict` so root sees addresses.
    pub(crate) fn load() -> Result<Symbols, String> {
        let _ = std::fs::write("/proc/sys/kernel/kptr_restrict", "0");
        let text = std::fs::read_to_string("/proc/kallsyms")
            .map_err(|e| format!("/proc/kallsyms: {e}"))?;
        let mut v: Vec<(u64, String)> = Vec::new();
        for l in text.lines() {
            let mut it = l.split_whitespace();
            let (Some(a), Some(t), Some(n)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            if !matches!(t, "t" | "T" | "w" | "W") {
                continue;
            }
            let Ok(a) = u64::from_str_radix(a, 16) else {
                continue;
            };
            let name = match it.next() {
                Some(m) => format!("{n} {m}"),
                None => n.to_string(),
            };
            v.push((a, name));
        }
        if v.iter().all(|(a, _)| *a == 0) {
            return Err("/proc/kallsyms shows no addresses (kptr_restrict)".into());
        }
        v.sort_by_key(|(a, _)| *a);
        Ok(Symbols {
            addrs: v.iter().map(|(a, _)| *a).collect(),
            names: v.into_iter().map(|(_, n)| n).collect(),
        })
    }

    /// The symbol containing `ip`: the last one at or below it.
    fn name(&self, ip: u64) -> String {
        self.name_off(ip).0
    }

    /// The symbol containing `ip` and the offset of `ip` in it.
    fn name_off(&self, ip: u64) -> (String, u64) {
        let i = self.addrs.partition_point(|&a| a <= ip);
        match i
            .checked_sub(1)
            .and_then(|j| Some((self.names.get(j)?, self.addrs.get(j)?)))
        {
            Some((n, &a)) => (n.clone(), ip - a),
            None => (format!("[unknown {ip:#x}]"), 0),
        }
    }
}

/// One slot's profile: what ran, for how long, and the samples.
pub(crate) struct SlotProfile {
    pub(crate) slot: String,
    pub(crate) driver: String,
    /// Operations done while the events were enabled.
    pub(crate) ops: u64,
    pub(crate) wall_ns: u64,
    /// Local timer interrupts (ticks) during `wall_ns`: the sampling clock's real period.
    pub(crate) ticks: u64,
    pub(crate) enabled_ns: u64,
    pub(crate) samples: Vec<Sample>,
    pub(crate) lost: u64,
    /// Our pid: samples of other tasks are kworkers, interrupts over the idle task, ...
    pub(crate) pid: u32,
}

impl SlotProfile {
    /// Adds another run of the same slot.
    pub(crate) fn merge(&mut self, o: SlotProfile) {
        self.ops += o.ops;
        self.wall_ns += o.wall_ns;
        self.ticks += o.ticks;
        self.enabled_ns += o.enabled_ns;
        self.samples.extend(o.samples);
        self.lost += o.lost;
    }

    /// The time between two samples: one tick (measured), or 4 ms (`HZ=250`) if unknown.
    fn tick_ns(&self) -> f64 {
        if self.ticks > 0 {
            self.wall_ns as f64 / self.ticks as f64
        } else {
            4e6
        }
    }
}

/// The local timer interrupts so far (the `LOC:` line of `/proc/interrupts`, every CPU).
pub(crate) fn local_timer_interrupts() -> u64 {
    let Ok(t) = std::fs::read_to_string("/proc/interrupts") else {
        return 0;
    };
    t.lines()
        .find_map(|l| l.trim_start().strip_prefix("LOC:"))
        .map_or(0, |rest| {
            rest.split_whitespace()
                .map_while(|w| w.parse::<u64>().ok())
                .sum()
        })
}

/// Per-symbol counts of one slot.
struct Counts {
    /// Samples counted (all but the profiler's own).
    total: u64,
    /// Samples in the profiler's own ioctls.
    own: u64,
    selfc: BTreeMap<String, u64>,
    incl: BTreeMap<String, u64>,
    /// Self symbol -> caller path (next frames) -> count.
    callers: BTreeMap<String, BTreeMap<String, u64>>,
    /// Self symbol -> offset of the sampled IP in it -> count.
    offsets: BTreeMap<String, BTreeMap<u64, u64>>,
    /// Estimated ns per operation of one sample: one tick over the operations.
    ns_per_sample_op: f64,
}

const TOP: usize = 25;
const CALLER_DEPTH: usize = 4;

/// The profiler's own ioctls (enabling and disabling the events around a gated operation):
/// their samples are counted apart, not in the tables.
const OWN: &str = "perf_ioctl";

/// Whether a resolved callchain is the profiler's own work.
fn own(names: &[String]) -> bool {
    names.iter().any(|n| n == OWN)
}

/// Folded stacks (`root;...;leaf count`, as flame graph tools take them) of one slot.
pub(crate) fn folded(p: &SlotProfile, syms: &Symbols) -> Vec<String> {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for s in &p.samples {
        let names: Vec<String> = s.chain.iter().rev().map(|&a| syms.name(a)).collect();
        if own(&names) {
            continue;
        }
        let names: Vec<String> = names
            .into_iter()
            .map(|n| n.replace([' ', ';'], "_"))
            .collect();
        *m.entry(names.join(";")).or_default() += 1;
    }
    m.into_iter().map(|(k, n)| format!("{k} {n}")).collect()
}

fn count(p: &SlotProfile, syms: &Symbols) -> Counts {
    let mut c = Counts {
        total: 0,
        own: 0,
        selfc: BTreeMap::new(),
        incl: BTreeMap::new(),
        callers: BTreeMap::new(),
        offsets: BTreeMap::new(),
        ns_per_sample_op: if p.ops == 0 {
            0.0
        } else {
            p.tick_ns() / p.ops as f64
        },
    };
    for s in &p.samples {
        let names: Vec<String> = s.chain.iter().map(|&a| syms.name(a)).collect();
        if own(&names) {
            c.own += 1;
            continue;
        }
        c.total += 1;
        let Some(leaf) = names.first() else { continue };
        if let Some(&ip) = s.chain.first() {
            *c.offsets
                .entry(leaf.clone())
                .or_default()
                .entry(syms.name_off(ip).1)
                .or_default() += 1;
        }
        *c.selfc.entry(leaf.clone()).or_default() += 1;
        let mut seen: Vec<&String> = Vec::new();
        for n in &names {
            if !seen.contains(&n) {
                seen.push(n);
                *c.incl.entry(n.clone()).or_default() += 1;
            }
        }
        // The first caller with the offset of the call's return address: which call site.
        let mut path: Vec<String> = Vec::new();
        if let Some(&ret) = s.chain.get(1) {
            let (n, off) = syms.name_off(ret);
            path.push(format!("{n} (+{off:#x})"));
        }
        path.extend(names.iter().skip(2).take(CALLER_DEPTH - 1).cloned());
        *c.callers
            .entry(leaf.clone())
            .or_default()
            .entry(if path.is_empty() {
                "(no callers)".to_string()
            } else {
                path.join(" <- ")
            })
            .or_default() += 1;
    }
    c
}

fn top(m: &BTreeMap<String, u64>, n: usize) -> Vec<(&String, u64)> {
    let mut v: Vec<(&String, u64)> = m.iter().map(|(k, &c)| (k, c)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.truncate(n);
    v
}

fn table(out: &mut Vec<String>, title: &str, m: &BTreeMap<String, u64>, c: &Counts) {
    out.push(format!("-- {title} --"));
    out.push(format!(
        "{:>8} {:>6} {:>9}  symbol",
        "samples", "%", "ns/op"
    ));
    for (name, n) in top(m, TOP) {
        out.push(format!(
            "{:>8} {:>5.1}% {:>9.0}  {name}",
            n,
            100.0 * n as f64 / c.total.max(1) as f64,
            n as f64 * c.ns_per_sample_op
        ));
    }
}

/// The text report of one device and operation: each slot's tables, then the symbols whose
/// estimated time per operation differs most between the first two slots.
pub(crate) fn report(
    device: &str,
    op: &str,
    gated: bool,
    slots: &[SlotProfile],
    syms: &Symbols,
) -> Vec<String> {
    let mut out = Vec::new();
    let counts: Vec<Counts> = slots.iter().map(|p| count(p, syms)).collect();
    out.push(format!(
        "profile of {op} on {device}: kernel samples of PERF_COUNT_SW_CPU_CLOCK on every CPU, \
         with callchains; {}",
        if gated {
            "the events are enabled around each operation only"
        } else {
            "the events are enabled for the whole loop"
        }
    ));
    out.push(
        "one sample per timer tick (no high-resolution timers): ns/op = samples x tick / \
         operations, an estimate; a tick that comes while interrupts are off is taken (and \
         sampled) where they are turned back on"
            .to_string(),
    );
    for (p, c) in slots.iter().zip(&counts) {
        let others = p.samples.iter().filter(|s| s.pid != p.pid).count();
        let idle = p.samples.iter().filter(|s| s.pid == 0).count();
        out.push(String::new());
        let depth = p.samples.iter().map(|s| s.chain.len()).sum::<usize>() as f64
            / p.samples.len().max(1) as f64;
        out.push(format!(
            "== {} ({}): {} samples ({} lost, {} in the profiler's ioctls left out, mean callchain \
             depth {depth:.1}), {} operations in {:.1} s, tick {:.2} ms; enabled {:.0} ns/op, in \
             the kernel (sampled) {:.0} ns/op; samples not in our task: {} ({} in the idle task)",
            p.slot,
            p.driver,
            c.total,
            p.lost,
            c.own,
            p.ops,
            p.wall_ns as f64 / 1e9,
            p.tick_ns() / 1e6,
            p.enabled_ns as f64 / p.ops.max(1) as f64,
            c.total as f64 * c.ns_per_sample_op,
            others,
            idle
        ));
        table(&mut out, "top by self samples", &c.selfc, c);
        table(&mut out, "top by inclusive samples (callchain)", &c.incl, c);
        out.push(format!(
            "-- callers of the top 15 self symbols (up to {CALLER_DEPTH} frames) --"
        ));
        for (name, n) in top(&c.selfc, 15) {
            out.push(format!("{n:>8}  {name}"));
            if let Some(m) = c.callers.get(name) {
                for (path, k) in top(m, 3) {
                    out.push(format!("{k:>12}    <- {path}"));
                }
            }
            if let Some(m) = c.offsets.get(name) {
                let mut v: Vec<(u64, u64)> = m.iter().map(|(&o, &k)| (o, k)).collect();
                v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                let hot: Vec<String> = v
                    .iter()
                    .take(6)
                    .map(|(o, k)| format!("+{o:#x}:{k}"))
                    .collect();
                out.push(format!("{:>12}    at {}", "", hot.join(" ")));
            }
        }
    }
    if let (Some(a), Some(b), Some(pa), Some(pb)) =
        (counts.first(), counts.get(1), slots.first(), slots.get(1))
    {
        out.push(String::new());
        out.push(format!(
            "== {} minus {}: inclusive ns/op by symbol, largest differences first",
            pb.slot, pa.slot
        ));
        out.push(format!(
            "{:>9} {:>9} {:>9}  symbol",
            pa.slot, pb.slot, "diff"
        ));
        let mut keys: Vec<&String> = a.incl.keys().chain(b.incl.keys()).collect();
        keys.sort();
        keys.dedup();
        let mut rows: Vec<(f64, f64, &String)> = keys
            .into_iter()
            .map(|k| {
                let x = a.incl.get(k).copied().unwrap_or(0) as f64 * a.ns_per_sample_op;
                let y = b.incl.get(k).copied().unwrap_or(0) as f64 * b.ns_per_sample_op;
                (x, y, k)
            })
            .collect();
        rows.sort_by(|p, q| {
            (q.1 - q.0)
                .abs()
                .partial_cmp(&(p.1 - p.0).abs())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        for (x, y, k) in rows.into_iter().take(2 * TOP) {
            out.push(format!("{x:>9.0} {y:>9.0} {:>+9.0}  {k}", y - x));
        }
    }
    out
}
