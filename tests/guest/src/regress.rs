// SPDX-License-Identifier: GPL-2.0
//! Regression tests for defects found in the common module, each run against upstream C
//! `vfio-pci` (the control) and ours on `edu`, from several threads at once.
//!
//! - `regress-ioeventfd-close-remove-edu-<driver>`: one thread registers an ioeventfd,
//!   signals it, closes its eventfd and removes the ioeventfd (`fd = -1`), in a loop; another
//!   reads edu's BAR0 through the fd (each access takes the state mutex), so queued writes
//!   wait. The
//!   eventfd close queues the virqfd shutdown and clears the virqfd pointer; the removal used
//!   to skip `vfio_virqfd_disable` for a cleared pointer and free the entry (and later unmap
//!   the BAR) under a pending write: `BUG: KASAN: slab-use-after-free in ...write_thread`.
//! - `regress-ioeventfd-close-device-edu-<driver>`: the same, but the device fd is closed
//!   instead of removing the ioeventfd (close frees every entry and unmaps the BARs).
//! - `regress-intx-flush-vs-ioeventfd-edu-<driver>`: one thread enables INTx, sets and clears
//!   an unmask eventfd and disables INTx; another registers, signals, closes and removes
//!   ioeventfds; a third reads BAR dwords. The INTx teardown flushes the VFIO core's global
//!   virqfd clean-up workqueue; it used to do so holding the state mutex, which the queued
//!   ioeventfd write waits for: lockdep's `possible circular locking dependency`, then a
//!   deadlock. A loop that makes no progress for [`STALL`] is reported as a deadlock (its
//!   threads are left where they hang, and the device stays bound: the run fails anyway).
//! - `regress-ioeventfd-vs-reset-nvme-<driver>`: one thread signals a registered ioeventfd on
//!   nvme's admin queue attributes in a loop; another resets the device (`VFIO_DEVICE_RESET`:
//!   a function reset, which sleeps about 100 ms holding the state mutex); a third writes
//!   `INTERRUPT_LINE` (a virtual register, under the mutex). The ioeventfd writes wait for the
//!   mutex in the virqfd thread. Written for a wake-up that tried the mutex itself: a guard
//!   made eagerly unlocked the holder's mutex on a failed try (lockdep's `bad unlock
//!   balance`, seen with this test), and a successful try's unlock could take the mutex's
//!   `wait_lock` under the eventfd's interrupt-safe lock (`HARDIRQ-safe -> HARDIRQ-unsafe`);
//!   the try is gone, the test stays. The device must still take the ioeventfd's writes
//!   afterwards.
//! - `regress-ioeventfd-gate-nvme-<driver>`: two threads signal an ioeventfd on nvme's admin
//!   queue attributes while a third turns memory decode off and on again (COMMAND.MEMORY) and
//!   a fourth resets the device: the ioeventfd writes in the eventfd's wake-up while the
//!   memory gate is open, and every path that changes decode or resets closes the gate and
//!   waits for the writers inside (`logic::memory_gate`). Nothing may oops or hang, and the
//!   device must still take the ioeventfd's writes afterwards.
//! - `regress-ioeventfd-memory-off-{edu,nvme}-<driver>`: with memory decode off, three
//!   threads signal an ioeventfd on edu's liveness register (nvme's admin queue attributes);
//!   once it is removed (which waits for queued writes) and decode is back on, the register
//!   must hold the value written before decode went off, and a new ioeventfd must write
//!   again. QEMU's devices stop decoding with COMMAND.MEMORY clear, so this only proves that
//!   nothing lands; `regress-ioeventfd-d3hot-nvme-<driver>` does the same with the device in
//!   D3hot (memory decode on): QEMU's nvme still decodes there, so a write the driver let
//!   through would land.
//! - `regress-config-virtual-writes-edu-<driver>`: three threads write `INTERRUPT_LINE` (a
//!   virtual byte, which our driver stores lock-free in the config read table) with values of
//!   their own, 1 and 4 bytes wide, and read it back; a fourth runs the locked emulator on
//!   the same table (COMMAND written with its value, BAR0 sized and restored), a fifth reads
//!   BAR0. Every read-back must be a value some thread wrote, with `INTERRUPT_PIN`, `MIN_GNT`
//!   and `MAX_LAT` unchanged; afterwards a last write must read back exactly.
//!
//! Each loop runs for [`SECONDS`]; the kernel's reports (KASAN, lockdep, hung tasks) fail the
//! run on the host even where the loop itself survives.

use crate::irq::{fds, set_irqs, EventFd, EFD, INTX, NONE, TRIG, UNMASK};
use crate::vfio::{self, Ioeventfd};
use crate::Suite;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long each loop runs.
const SECONDS: u64 = 4;
/// No progress for this long is a deadlock.
const STALL: Duration = Duration::from_secs(20);
/// edu's liveness register: a write stores the complement, nothing else happens.
const EDU_LIVENESS: u64 = 0x04;
/// Config space region offset (`VFIO_PCI_CONFIG_REGION_INDEX` << 40).
const CONFIG: u64 = 7 << 40;
const VFIO_DEVICE_IOEVENTFD_32: u32 = 4;

/// Threads that share a stop flag and a progress counter.
struct Workers {
    stop: Arc<AtomicBool>,
    progress: Arc<AtomicU64>,
    handles: Vec<std::thread::JoinHandle<Result<(), String>>>,
}

impl Workers {
    fn new() -> Self {
        Workers {
            stop: Arc::new(AtomicBool::new(false)),
            progress: Arc::new(AtomicU64::new(0)),
            handles: Vec::new(),
        }
    }

    /// Runs `step` until told to stop; each `Ok` counts as progress.
    fn spawn(&mut self, mut step: impl FnMut() -> Result<(), String> + Send + 'static) {
        let stop = self.stop.clone();
        let progress = self.progress.clone();
        self.handles.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                step()?;
                progress.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }

    /// Lets the threads run for `secs`, then stops and joins them. `Err` if one failed, or if
    /// the counter stood still for [`STALL`] (then the threads are abandoned).
    fn run(self, secs: u64) -> Result<u64, String> {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut last = (0, Instant::now());
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let p = self.progress.load(Ordering::Relaxed);
            if p != last.0 {
                last = (p, Instant::now());
            } else if last.1.elapsed() > STALL {
                return Err(format!(
                    "no progress for {}s after {p} steps: deadlocked",
                    STALL.as_secs()
                ));
            }
            if Instant::now() >= end {
                self.stop.store(true, Ordering::Relaxed);
            }
            if self.stop.load(Ordering::Relaxed) && self.handles.iter().all(|h| h.is_finished()) {
                break;
            }
        }
        for h in self.handles {
            h.join().map_err(|_| "a thread panicked".to_string())??;
        }
        Ok(self.progress.load(Ordering::Relaxed))
    }
}

fn ioeventfd_args(fd: i32) -> Ioeventfd {
    Ioeventfd {
        argsz: std::mem::size_of::<Ioeventfd>() as u32,
        flags: VFIO_DEVICE_IOEVENTFD_32,
        offset: EDU_LIVENESS,
        data: 0x1234_5678,
        fd,
        reserved: 0,
    }
}

/// Registers the ioeventfd of [`ioeventfd_args`] on `ev`.
fn register(f: &File, ev: &File) -> Result<(), String> {
    match vfio::ioeventfd(f, ioeventfd_args(ev.as_raw_fd())) {
        0 => Ok(()),
        e => Err(format!("IOEVENTFD register: errno {e}")),
    }
}

/// Register, signal a few times, close the eventfd; the entry stays registered.
fn register_signal_close(f: &File) -> Result<(), String> {
    let ev = vfio::eventfd()?;
    register(f, &ev)?;
    for _ in 0..4 {
        vfio::signal(&ev);
    }
    drop(ev);
    Ok(())
}

/// Remove the entry `register_signal_close` left (matched by offset, data and size).
fn remove(f: &File) -> Result<(), String> {
    match vfio::ioeventfd(f, ioeventfd_args(-1)) {
        0 => Ok(()),
        e => Err(format!("IOEVENTFD remove: errno {e}")),
    }
}

/// A 4-byte read of edu's BAR0 through the fd: every access takes the state mutex (the
/// memory decode check), as upstream takes its memory lock.
fn read_bar_dword(f: &File) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, 0)
        .map_err(|e| format!("read of BAR0: {e}"))
}

/// A write of `INTERRUPT_LINE` with its current value: a virtual register, written by the
/// emulator under the state mutex.
fn write_interrupt_line(f: &File) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, CONFIG + 0x3c)
        .and_then(|()| f.write_all_at(&b, CONFIG + 0x3c))
        .map_err(|e| format!("INTERRUPT_LINE: {e}"))
}

/// Reads `N` config bytes at `pos`.
fn config_read<const N: usize>(f: &File, pos: u64) -> Result<[u8; N], String> {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; N];
    f.read_exact_at(&mut b, CONFIG + pos)
        .map_err(|e| format!("config read of {N} at {pos:#x}: {e}"))?;
    Ok(b)
}

/// Writes config bytes at `pos`.
fn config_write(f: &File, pos: u64, b: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    f.write_all_at(b, CONFIG + pos)
        .map_err(|e| format!("config write of {} at {pos:#x}: {e}", b.len()))
}

/// One thread of `regress-config-virtual-writes`: writes `INTERRUPT_LINE` with values from
/// `base..base + 16` (`wide`: as the low byte of a dword write, whose other bytes are
/// read-only) and checks what it reads back: a value one of the writers wrote
/// (`0x10..0x40`), the rest of the dword as it was (`rest`).
fn virtual_write_step(
    f: &File,
    base: u8,
    wide: bool,
    i: &mut u8,
    rest: [u8; 3],
) -> Result<(), String> {
    *i = i.wrapping_add(1);
    let v = base + (*i & 0xf);
    if wide {
        config_write(f, 0x3c, &[v, !rest[0], !rest[1], !rest[2]])?;
    } else {
        config_write(f, 0x3c, &[v])?;
    }
    let got = config_read::<4>(f, 0x3c)?;
    if !(0x10..0x40).contains(&got[0]) || got[1..] != rest {
        return Err(format!(
            "read back {got:02x?} after writing {v:#x} (rest {rest:02x?})"
        ));
    }
    Ok(())
}

/// The locked emulator on the dwords around: COMMAND written with its value, BAR0 sized
/// (all ones written, read, restored).
fn locked_config_step(f: &File) -> Result<(), String> {
    let cmd = config_read::<2>(f, 0x04)?;
    config_write(f, 0x04, &cmd)?;
    let bar = config_read::<4>(f, 0x10)?;
    config_write(f, 0x10, &[0xff; 4])?;
    config_read::<4>(f, 0x10)?;
    config_write(f, 0x10, &bar)
}

/// `regress-config-virtual-writes`: see the module documentation.
fn virtual_writes(dev: &Arc<vfio::Device>) -> Result<u64, String> {
    let f = &dev.file;
    let before = config_read::<4>(f, 0x3c)?;
    let rest = [before[1], before[2], before[3]];
    let mut w = Workers::new();
    for (base, wide) in [(0x10, false), (0x20, false), (0x30, true)] {
        let d = dev.clone();
        let mut i = 0u8;
        w.spawn(move || virtual_write_step(&d.file, base, wide, &mut i, rest));
    }
    let d = dev.clone();
    w.spawn(move || locked_config_step(&d.file));
    let d = dev.clone();
    w.spawn(move || read_bar_dword(&d.file));
    let n = w.run(SECONDS)?;
    config_write(f, 0x3c, &[0x42])?;
    let (one, four) = (config_read::<1>(f, 0x3c)?, config_read::<4>(f, 0x3c)?);
    config_write(f, 0x3c, &before[..1])?;
    if one != [0x42] || four != [0x42, rest[0], rest[1], rest[2]] {
        return Err(format!(
            "after the threads: wrote 0x42, read {one:02x?} and {four:02x?}"
        ));
    }
    Ok(n)
}

fn intx_cycle(f: &File) -> Result<(), String> {
    let trigger = EventFd::new()?;
    let unmask = EventFd::new()?;
    let set = |flags, data: &[u8], count| set_irqs(f, flags, INTX, 0, count, data, None);
    set(EFD | TRIG, &fds(&[trigger.fd()]), 1).map_err(|e| format!("INTx enable: errno {e}"))?;
    set(EFD | UNMASK, &fds(&[unmask.fd()]), 1)
        .map_err(|e| format!("INTx unmask eventfd: errno {e}"))?;
    set(EFD | UNMASK, &fds(&[-1]), 1).map_err(|e| format!("INTx unmask eventfd off: errno {e}"))?;
    set(NONE | TRIG, &[], 0).map_err(|e| format!("INTx disable: errno {e}"))?;
    Ok(())
}

/// nvme's admin queue attributes: read-write while the controller is disabled (as after a
/// reset), no side effect.
const NVME_AQA: u64 = 0x24;
/// A valid AQA value (both queue sizes 32).
const NVME_AQA_VALUE: u64 = 0x001f_001f;

/// See the module documentation (`regress-ioeventfd-vs-reset-nvme-<driver>`).
fn ioeventfd_vs_reset(dev: &Arc<vfio::Device>) -> Result<u64, String> {
    aqa_ioeventfd_storm(dev, 1, |w| {
        let a = dev.clone();
        w.spawn(move || match vfio::reset(&a.file) {
            0 => Ok(()),
            e => Err(format!("VFIO_DEVICE_RESET: errno {e}")),
        });
        let b = dev.clone();
        w.spawn(move || write_interrupt_line(&b.file));
    })
}

/// See the module documentation (`regress-ioeventfd-gate-nvme-<driver>`).
fn ioeventfd_vs_memory_toggle(dev: &Arc<vfio::Device>) -> Result<u64, String> {
    aqa_ioeventfd_storm(dev, 2, |w| {
        let a = dev.clone();
        w.spawn(move || {
            crate::irq::command_clear(&a.file, 0x2)?;
            crate::irq::command_set(&a.file, 0x2)
        });
        let b = dev.clone();
        w.spawn(move || match vfio::reset(&b.file) {
            0 => Ok(()),
            e => Err(format!("VFIO_DEVICE_RESET: errno {e}")),
        });
    })
}

/// Registers an ioeventfd on nvme's AQA (memory decode on) and signals it from `signallers`
/// threads, next to the threads `others` adds, for [`SECONDS`]; then it must still write.
fn aqa_ioeventfd_storm(
    dev: &Arc<vfio::Device>,
    signallers: usize,
    others: impl FnOnce(&mut Workers),
) -> Result<u64, String> {
    crate::irq::command_set(&dev.file, 0x2)?;
    let ev = Arc::new(vfio::eventfd()?);
    match vfio::ioeventfd(&dev.file, aqa_ioeventfd(ev.as_raw_fd())) {
        0 => {}
        e => return Err(format!("IOEVENTFD register: errno {e}")),
    }
    let mut w = Workers::new();
    for _ in 0..signallers {
        let e = ev.clone();
        w.spawn(move || match vfio::signal(&e) {
            0 => Ok(()),
            e => Err(format!("eventfd write: errno {e}")),
        });
    }
    others(&mut w);
    let n = w.run(SECONDS)?;
    let writes = aqa_takes_signal(dev, &ev);
    match vfio::ioeventfd(&dev.file, aqa_ioeventfd(-1)) {
        0 => {}
        e => return Err(format!("IOEVENTFD remove: errno {e}")),
    }
    writes?;
    Ok(n)
}

/// With memory decode on, nvme's AQA cleared and `ev` (an ioeventfd writing
/// [`NVME_AQA_VALUE`] there) signalled, AQA must take the value within 2 s.
fn aqa_takes_signal(dev: &vfio::Device, ev: &File) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    crate::irq::command_set(&dev.file, 0x2)?;
    dev.file
        .write_all_at(&0u32.to_le_bytes(), NVME_AQA)
        .map_err(|e| format!("AQA: {e}"))?;
    vfio::signal(ev);
    let end = Instant::now() + Duration::from_secs(2);
    let mut got = 0u32;
    while Instant::now() < end {
        let mut v = [0u8; 4];
        dev.file
            .read_exact_at(&mut v, NVME_AQA)
            .map_err(|e| format!("AQA: {e}"))?;
        got = u32::from_le_bytes(v);
        if u64::from(got) == NVME_AQA_VALUE {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(format!(
        "AQA {got:#x} after a signal, want {NVME_AQA_VALUE:#x}"
    ))
}

/// The ioeventfd on nvme's AQA, registered with memory decode on.
fn aqa_ioeventfd(fd: i32) -> Ioeventfd {
    Ioeventfd {
        offset: NVME_AQA,
        data: NVME_AQA_VALUE,
        ..ioeventfd_args(fd)
    }
}

/// A register an ioeventfd writes, and how the check reads and writes it through the fd.
struct Target {
    /// The ioeventfd on the register (fd -1 removes it).
    args: fn(i32) -> Ioeventfd,
    /// The value last written to the register (memory decode on).
    read: fn(&File) -> Result<u32, String>,
    write: fn(&File, u32) -> Result<(), String>,
    /// A value other than the ioeventfd's, written before memory access is blocked.
    before: u32,
}

/// edu's liveness register: reads return the complement of the last write.
const EDU_TARGET: Target = Target {
    args: ioeventfd_args,
    read: |f| Ok(!bar_dword(f, EDU_LIVENESS)?),
    write: |f, v| set_bar_dword(f, EDU_LIVENESS, v),
    before: 0x0bad_cafe,
};

/// nvme's admin queue attributes (the controller is disabled: reads return the last write).
const NVME_TARGET: Target = Target {
    args: aqa_ioeventfd,
    read: |f| bar_dword(f, NVME_AQA),
    write: |f, v| set_bar_dword(f, NVME_AQA, v),
    before: 0x0007_0007,
};

fn bar_dword(f: &File, off: u64) -> Result<u32, String> {
    use std::os::unix::fs::FileExt;
    let mut v = [0u8; 4];
    f.read_exact_at(&mut v, off)
        .map_err(|e| format!("BAR0 read at {off:#x}: {e}"))?;
    Ok(u32::from_le_bytes(v))
}

fn set_bar_dword(f: &File, off: u64, v: u32) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    f.write_all_at(&v.to_le_bytes(), off)
        .map_err(|e| format!("BAR0 write at {off:#x}: {e}"))
}

fn set_ioeventfd(f: &File, a: Ioeventfd) -> Result<(), String> {
    match vfio::ioeventfd(f, a) {
        0 => Ok(()),
        e => Err(format!("IOEVENTFD (fd {}): errno {e}", a.fd)),
    }
}

/// Memory decode off (COMMAND.MEMORY clear) and on again.
fn decode_off(f: &File) -> Result<(), String> {
    crate::irq::command_clear(f, 0x2)
}

fn decode_on(f: &File) -> Result<(), String> {
    crate::irq::command_set(f, 0x2)
}

/// D3hot and back to D0 through the emulated PMCSR (memory decode stays on). QEMU's devices
/// still decode in D3hot, so a write that got through would land.
fn d3hot(f: &File) -> Result<(), String> {
    crate::sriov::write_pmcsr(f, crate::sriov::pm_cap(f)?, 3);
    Ok(())
}

fn d0(f: &File) -> Result<(), String> {
    crate::sriov::write_pmcsr(f, crate::sriov::pm_cap(f)?, 0);
    // A device without No_Soft_Reset may come back from D3hot reset; decode on again.
    decode_on(f)
}

/// See the module documentation (`regress-ioeventfd-memory-off-*`): with memory access
/// blocked by `off`, three threads signal an ioeventfd on `t`; once it is removed (which
/// waits for queued writes) and `on` ran, `t` must still hold `t.before`; then a new
/// ioeventfd must write it. Returns the number of signals.
fn ioeventfd_blocked(
    dev: &vfio::Device,
    t: &Target,
    off: fn(&File) -> Result<(), String>,
    on: fn(&File) -> Result<(), String>,
) -> Result<u64, String> {
    const SIGNALS: u64 = 200;
    const THREADS: u64 = 3;
    let data = (t.args)(-1).data as u32;
    decode_on(&dev.file)?;
    (t.write)(&dev.file, t.before)?;
    let ev = Arc::new(vfio::eventfd()?);
    set_ioeventfd(&dev.file, (t.args)(ev.as_raw_fd()))?;
    off(&dev.file)?;
    let signallers: Vec<_> = (0..THREADS)
        .map(|_| {
            let e = ev.clone();
            std::thread::spawn(move || {
                for _ in 0..SIGNALS {
                    vfio::signal(&e);
                }
            })
        })
        .collect();
    for s in signallers {
        s.join()
            .map_err(|_| "a signalling thread panicked".to_string())?;
    }
    // Removal waits for every write still queued for the virqfd thread.
    set_ioeventfd(&dev.file, (t.args)(-1))?;
    on(&dev.file)?;
    let got = (t.read)(&dev.file)?;
    if got != t.before {
        return Err(format!(
            "register {got:#x} after signals with memory access blocked, want {:#x}: a \
             write reached the device",
            t.before
        ));
    }
    // With access back, a new ioeventfd writes (the gate opened again).
    let ev = vfio::eventfd()?;
    set_ioeventfd(&dev.file, (t.args)(ev.as_raw_fd()))?;
    vfio::signal(&ev);
    let end = Instant::now() + Duration::from_secs(2);
    let mut got = (t.read)(&dev.file)?;
    while got != data && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
        got = (t.read)(&dev.file)?;
    }
    set_ioeventfd(&dev.file, (t.args)(-1))?;
    if got != data {
        return Err(format!(
            "register {got:#x} after a signal with access back, want {data:#x}"
        ));
    }
    Ok(SIGNALS * THREADS)
}

impl Suite {
    /// `regress-ioeventfd-vs-reset-nvme-<driver>` and `regress-ioeventfd-gate-nvme-<driver>`.
    fn regression_vs_reset(&mut self) {
        let Some((bdf, label)) = self.args.devices.iter().find(|(_, l)| l == "nvme").cloned()
        else {
            self.r.check(
                "regress-nvme-present",
                || Err("no nvme device given".into()),
            );
            return;
        };
        let checks: [(&str, fn(&Arc<vfio::Device>) -> Result<u64, String>); 4] = [
            ("vs-reset", ioeventfd_vs_reset),
            ("gate", ioeventfd_vs_memory_toggle),
            ("memory-off", |d| {
                ioeventfd_blocked(d, &NVME_TARGET, decode_off, decode_on)
            }),
            ("d3hot", |d| ioeventfd_blocked(d, &NVME_TARGET, d3hot, d0)),
        ];
        for d in self.args.drivers.clone() {
            let dev = match crate::config::attach(self, &bdf, &d) {
                Ok(dev) => Arc::new(dev),
                Err(e) => {
                    self.r
                        .check(&format!("regress-attach-{label}-{d}"), || Err(e));
                    crate::config::detach(self, &bdf, None);
                    continue;
                }
            };
            let mut hung = false;
            for (what, check) in checks {
                if hung {
                    break;
                }
                let name = format!("regress-ioeventfd-{what}-{label}-{d}");
                self.r.check(&name, || {
                    let n = check(&dev).inspect_err(|_| hung = true)?;
                    crate::robust::progress_info(&name, n);
                    Ok(())
                });
            }
            if hung {
                std::mem::forget(dev);
                continue;
            }
            drop(dev);
            crate::config::detach(self, &bdf, None);
        }
    }

    pub(crate) fn regression_checks(&mut self) {
        self.regression_vs_reset();
        let Some((bdf, label)) = self.args.devices.iter().find(|(_, l)| l == "edu").cloned() else {
            self.r
                .check("regress-edu-present", || Err("no edu device given".into()));
            return;
        };
        for d in self.args.drivers.clone() {
            let dev = match crate::config::attach(self, &bdf, &d) {
                Ok(dev) => Arc::new(dev),
                Err(e) => {
                    self.r
                        .check(&format!("regress-attach-{label}-{d}"), || Err(e));
                    crate::config::detach(self, &bdf, None);
                    continue;
                }
            };
            let mut hung = false;
            let name = format!("regress-ioeventfd-close-remove-{label}-{d}");
            self.r.check(&name, || {
                let mut w = Workers::new();
                let a = dev.clone();
                w.spawn(move || register_signal_close(&a.file).and_then(|()| remove(&a.file)));
                let b = dev.clone();
                w.spawn(move || read_bar_dword(&b.file));
                let n = w.run(SECONDS).inspect_err(|_| hung = true)?;
                crate::robust::progress_info(&name, n);
                Ok(())
            });
            let name = format!("regress-intx-flush-vs-ioeventfd-{label}-{d}");
            if !hung {
                self.r.check(&name, || {
                    let mut w = Workers::new();
                    let a = dev.clone();
                    w.spawn(move || intx_cycle(&a.file));
                    let b = dev.clone();
                    w.spawn(move || register_signal_close(&b.file).and_then(|()| remove(&b.file)));
                    let c = dev.clone();
                    w.spawn(move || read_bar_dword(&c.file));
                    let n = w.run(SECONDS).inspect_err(|_| hung = true)?;
                    crate::robust::progress_info(&name, n);
                    Ok(())
                });
            }
            if !hung {
                let name = format!("regress-config-virtual-writes-{label}-{d}");
                self.r.check(&name, || {
                    let n = virtual_writes(&dev).inspect_err(|_| hung = true)?;
                    crate::robust::progress_info(&name, n);
                    Ok(())
                });
            }
            if !hung {
                let name = format!("regress-ioeventfd-memory-off-{label}-{d}");
                self.r.check(&name, || {
                    let n = ioeventfd_blocked(&dev, &EDU_TARGET, decode_off, decode_on)?;
                    crate::robust::progress_info(&name, n);
                    Ok(())
                });
            }
            if hung {
                // Threads are stuck in the kernel holding the device: leave it bound.
                std::mem::forget(dev);
                continue;
            }
            let Ok(dev) = Arc::try_unwrap(dev) else {
                continue;
            };
            // Re-opened per iteration: needs the group, which `dev` keeps; reuse its path.
            let nodes = crate::find_nodes(&self.sys, self.args.mode, &bdf);
            drop(dev);
            let name = format!("regress-ioeventfd-close-device-{label}-{d}");
            let it = self.iommu_type();
            self.r.check(&name, || {
                let nodes = nodes?;
                let group = Arc::new(vfio::Group::open(&nodes.group, it)?);
                let mut w = Workers::new();
                let bdf_s = bdf.as_str().to_string();
                w.spawn(move || {
                    let f = group
                        .device(&bdf_s)
                        .map_err(|e| format!("GET_DEVICE_FD: {e}"))?;
                    register_signal_close(&f)?;
                    drop(f);
                    Ok(())
                });
                let n = w.run(SECONDS)?;
                crate::robust::progress_info(&name, n);
                Ok(())
            });
            crate::config::detach(self, &bdf, None);
        }
    }
}
