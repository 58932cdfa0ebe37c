// SPDX-License-Identifier: GPL-2.0
//! Storms: bind/unbind and open/close cycles, for each `--driver`, with slab accounting.
//!
//! Each storm runs [`CYCLES`] cycles, [`DEBUG_CYCLES`] on a KASAN kernel (see there why).
//!
//! - `storm-bind-unbind-edu-<driver>`: the cycles' binds (`driver_override` + `drivers_probe`)
//!   and unbinds of edu, after [`WARMUP`] cycles that are not counted. The device must end
//!   driverless, without an override or a `vfio-dev` node.
//! - `storm-open-close-nvme-<driver>`: nvme bound once and its group opened once; then
//!   once per cycle: `GET_DEVICE_FD`, MSI-X on 4 vectors with eventfds (`SET_IRQS` index 2),
//!   an ioeventfd registered on the first doorbell (BAR0 + 0x1000, 4 bytes), close of the
//!   device fd (with MSI-X and the ioeventfd still set up: the close path tears them down),
//!   then close of the eventfds. After the storm no `vfio-` interrupt and no mapping is left.
//!   nvme's function reset sleeps 100 ms in the PCI core on every open and every close (200 s
//!   per 1000 cycles), so for this storm its `reset_method` is written empty (every method
//!   off: upstream and ours then skip the reset on open and close, and no bus reset is
//!   possible on the root bus) and set back to `default` afterwards; resets are exercised by
//!   the lifecycle and fault checks.
//!
//! Slab accounting: `Slab:` of `/proc/meminfo` after the warm-up and [`SETTLE`] (RCU callbacks
//! and the deferred frees of workqueues run), at half time, and after the storm and
//! [`SETTLE`]. The growth from start to end must stay below [`SLAB_SLACK_KB`]: 1000 cycles
//! leaking even 1 KiB each (one `kmalloc-1k`, or a handful of small objects per cycle, or one
//! page every four cycles) would exceed it, while SLUB keeping a few partially used slabs per
//! cache after the churn (its per-CPU partial lists) stays well below. Smaller leaks are
//! kmemleak's job (the debug kernel scans at the end of the run). On a KASAN kernel freed
//! objects wait in the quarantine (up to 1/32 of RAM) before their slab pages can be freed, so
//! the tolerance there adds that bound: the total shows only gross leaks, kmemleak the rest.
//! The `INFO storm ...` line gives the time, the three Slab readings and, from
//! `/proc/slabinfo`, the caches whose active objects grew most.

use crate::config::errno_name;
use crate::irq::{fds, proc_vfio, set_irqs, EventFd, EFD, MSIX, TRIG};
use crate::lifecycle::{maps_count, meminfo};
use crate::{vfio, Suite};
use pcibind::Bdf;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Cycles per storm (`--storm-cycles` overrides it).
pub const CYCLES: usize = 1000;
/// Cycles per storm on a KASAN kernel, unless `--storm-cycles` says otherwise. A bind/unbind
/// cycle takes 146 ms there (5 ms on the test kernel; TCG, 2 host cores), so 1000 cycles of
/// each storm for each driver would take about 10 minutes of the debug run. The debug kernel is
/// there for KASAN, lockdep and kmemleak, which report a bad path the first time it runs and
/// a leak of any size; the proof that slab use does not grow with the cycles is the 1000-cycle
/// run on the test kernel, where Slab is not inflated by KASAN's quarantine.
pub const DEBUG_CYCLES: usize = 200;
/// Cycles before the first slab reading (first-time allocations: caches, sysfs nodes).
const WARMUP: usize = 20;
/// Time for deferred frees before a slab reading.
const SETTLE: Duration = Duration::from_secs(2);
/// Slab growth allowed over a storm (see the module documentation).
const SLAB_SLACK_KB: i64 = 1024;
/// nvme's first doorbell register (SQ 0 tail), in BAR0.
const NVME_DOORBELL: u64 = 0x1000;

/// Active objects per cache (`/proc/slabinfo`, which SLUB_DEBUG kernels have).
fn slabinfo() -> BTreeMap<String, i64> {
    std::fs::read_to_string("/proc/slabinfo")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?.to_string();
            let active = w.next()?.parse().ok()?;
            Some((name, active))
        })
        .collect()
}

/// Slab readings around a storm.
struct SlabWatch {
    start_kb: i64,
    mid_kb: i64,
    caches: BTreeMap<String, i64>,
}

impl SlabWatch {
    fn start() -> Self {
        std::thread::sleep(SETTLE);
        SlabWatch {
            start_kb: meminfo("Slab"),
            mid_kb: 0,
            caches: slabinfo(),
        }
    }

    fn mid(&mut self) {
        self.mid_kb = meminfo("Slab");
    }

    /// The final reading: (growth in KiB, the INFO text).
    fn end(&self, slack_kb: i64) -> (i64, String) {
        std::thread::sleep(SETTLE);
        let end = meminfo("Slab");
        let now = slabinfo();
        let mut grew: Vec<(i64, &String)> = now
            .iter()
            .map(|(k, v)| (v - self.caches.get(k).copied().unwrap_or(0), k))
            .filter(|(d, _)| *d > 0)
            .collect();
        grew.sort_unstable_by(|a, b| b.cmp(a));
        let top: Vec<String> = grew
            .iter()
            .take(5)
            .map(|(d, k)| format!("{k}+{d}"))
            .collect();
        (
            end - self.start_kb,
            format!(
                "Slab {}->{}->{} kB (growth {} kB, allowed {slack_kb}); most grown caches: {}",
                self.start_kb,
                self.mid_kb,
                end,
                end - self.start_kb,
                if top.is_empty() {
                    "none".to_string()
                } else {
                    top.join(" ")
                }
            ),
        )
    }
}

/// [`WARMUP`] uncounted cycles, then `n` counted ones between slab readings: (ms taken by the
/// `n` cycles, Slab growth in KiB, the INFO text of the readings).
fn storm(
    n: usize,
    slack_kb: i64,
    mut once: impl FnMut(usize) -> Result<(), String>,
) -> Result<(u128, i64, String), String> {
    for i in 0..WARMUP {
        once(i).map_err(|x| format!("warm-up {x}"))?;
    }
    let mut w = SlabWatch::start();
    let t = Instant::now();
    for i in 0..n {
        once(i)?;
        if i == n / 2 {
            w.mid();
        }
    }
    let ms = t.elapsed().as_millis();
    let (growth, text) = w.end(slack_kb);
    Ok((ms, growth, text))
}

/// The verdict on a storm's Slab growth.
fn slab_within(growth: i64, slack: i64, n: usize) -> Result<(), String> {
    if growth > slack {
        Err(format!("Slab grew by {growth} kB over {n} cycles"))
    } else {
        Ok(())
    }
}

impl Suite {
    pub(crate) fn storm_checks(&mut self) {
        let kasan = crate::robust::kasan_kernel();
        let slack = SLAB_SLACK_KB + if kasan { meminfo("MemTotal") / 32 } else { 0 };
        let n = self
            .args
            .storm_cycles
            .unwrap_or(if kasan { DEBUG_CYCLES } else { CYCLES });
        self.r.info(format!(
            "storms: {n} cycles each (KASAN kernel: {kasan}), Slab growth allowed {slack} kB"
        ));
        for d in self.args.drivers.clone() {
            if let Some(bdf) = self.label_bdf("edu") {
                self.bind_storm(&bdf, &d, n, slack);
            }
            if let Some(bdf) = self.label_bdf("nvme") {
                self.open_close_storm(&bdf, &d, n, slack);
            }
        }
    }

    fn bind_storm(&mut self, bdf: &Bdf, d: &str, n: usize, slack: i64) {
        let mut info = String::new();
        let res: Result<(), String> = (|| {
            let once = |i: usize| -> Result<(), String> {
                self.sys
                    .bind(bdf, d)
                    .map_err(|x| format!("cycle {i}: bind: {x}"))?;
                self.sys
                    .unbind(bdf)
                    .map_err(|x| format!("cycle {i}: unbind: {x}"))?;
                Ok(())
            };
            let (ms, growth, slab) = storm(n, slack, once)?;
            info = format!(
                "storm bind-unbind edu {d}: {n} cycles in {ms} ms ({:.1} ms each); {slab}",
                ms as f64 / n.max(1) as f64
            );
            let i = self.sys.info(bdf).map_err(|x| x.to_string())?;
            if i.driver.is_some() || i.driver_override.is_some() {
                return Err(format!(
                    "after the storm: driver {:?}, override {:?}",
                    i.driver, i.driver_override
                ));
            }
            if self
                .sys
                .vfio_cdev(bdf)
                .map_err(|x| x.to_string())?
                .is_some()
            {
                return Err("vfio-dev left after the storm".into());
            }
            slab_within(growth, slack, n)
        })();
        if !info.is_empty() {
            self.r.info(&info);
        }
        self.r.check(&format!("storm-bind-unbind-edu-{d}"), || res);
        let _ = self.sys.unbind(bdf);
    }

    fn open_close_storm(&mut self, bdf: &Bdf, d: &str, n: usize, slack: i64) {
        let it = self.iommu_type();
        let methods = self.sys.device_dir(bdf).join("reset_method");
        let mut info = String::new();
        let res: Result<(), String> = (|| {
            std::fs::write(&methods, "\n").map_err(|x| format!("{}: {x}", methods.display()))?;
            self.sys.bind(bdf, d).map_err(|x| format!("bind: {x}"))?;
            let grp = vfio::Group::open(&self.group_node(bdf)?, it)?;
            let once = |i: usize| -> Result<(), String> {
                let efds: Vec<EventFd> =
                    (0..4).map(|_| EventFd::new()).collect::<Result<_, _>>()?;
                let ioev = EventFd::new()?;
                let f = grp
                    .device(bdf.as_str())
                    .map_err(|x| format!("cycle {i}: GET_DEVICE_FD: {x}"))?;
                let all: Vec<i32> = efds.iter().map(EventFd::fd).collect();
                set_irqs(&f, TRIG | EFD, MSIX, 0, 4, &fds(&all), None)
                    .map_err(|x| format!("cycle {i}: MSI-X on: {}", errno_name(x)))?;
                let r = vfio::ioeventfd(
                    &f,
                    vfio::Ioeventfd {
                        argsz: std::mem::size_of::<vfio::Ioeventfd>() as u32,
                        flags: 4,
                        offset: vfio::region_offset(0) as u64 + NVME_DOORBELL,
                        data: 0,
                        fd: ioev.fd(),
                        reserved: 0,
                    },
                );
                if r != 0 {
                    return Err(format!("cycle {i}: ioeventfd: {}", errno_name(r)));
                }
                // The device first, with MSI-X and the ioeventfd still set up; the eventfds
                // after it.
                drop(f);
                drop(ioev);
                drop(efds);
                Ok(())
            };
            let maps0 = maps_count();
            let (ms, growth, slab) = storm(n, slack, once)?;
            let maps1 = maps_count();
            info = format!(
                "storm open-close nvme {d}: {n} cycles in {ms} ms ({:.1} ms each); {slab}",
                ms as f64 / n.max(1) as f64
            );
            let left = proc_vfio(None);
            if !left.is_empty() {
                return Err(format!("vfio interrupts left: {left:?}"));
            }
            if maps1 != maps0 {
                return Err(format!("{maps0} mappings before, {maps1} after"));
            }
            slab_within(growth, slack, n)
        })();
        if !info.is_empty() {
            self.r.info(&info);
        }
        self.r.check(&format!("storm-open-close-nvme-{d}"), || res);
        let _ = self.sys.unbind(bdf);
        let _ = std::fs::write(&methods, "default\n");
    }
}
