// SPDX-License-Identifier: GPL-2.0
//! Fault injection: surprise removal, module unload, killed processes, failing resets. Every
//! check runs for each `--driver` (upstream `vfio-pci` first, the control) and leaves every
//! device unbound and present.
//!
//! - `fault-unplug-<label>-<driver>` (virtio-rng, behind a `pcie-root-port`): the device fd is
//!   open, a BAR mmap'ed and touched, a REQ eventfd set (`SET_IRQS` index 4, TRIGGER,
//!   EVENTFD); the guest prints `HOST-REQUEST qmp device_del <label>` and the host unplugs the
//!   device through QMP (`xtask/src/qmp.rs`). The REQ eventfd must fire (within
//!   [`UNPLUG_WAIT`]: the ACPI eject takes seconds), the device must still be in sysfs at that
//!   moment (the driver waits for us), and once the test munmaps and closes everything the
//!   device must leave sysfs within [`UNPLUG_WAIT`].
//! - `fault-replug-<label>-<driver>`: `HOST-REQUEST qmp device_add <label>` (the same
//!   `-device` arguments); the device must come back (a rescan is written if it does not
//!   show up by itself), driverless, and be usable: bound again, opened, config IDs equal
//!   sysfs, unbound. Its config as it came back becomes the `config-restored-<label>` baseline.
//! - `fault-remove-<label>-<driver>` (pci-testdev): `echo 1 > .../remove` from a thread while
//!   the device fd is open with a BAR mapped and a REQ eventfd set: REQ fires, the remove is
//!   still blocked, it completes after munmap and close; a rescan brings the device back and it
//!   is usable (as above).
//! - `fault-rmmod-<driver>` (edu bound and open): `delete_module` of the variant module and of
//!   its common module (`vfio_pci`/`vfio_pci_core`, `vfio_pci_generic`/`vfio_pci_common`) is
//!   refused with `EBUSY`/`EWOULDBLOCK`, both stay loaded, the device answers as before; after
//!   close the common module's holders and the common module itself unload (the device is left
//!   driverless) and every module of `--module` that is gone is loaded again, so later checks
//!   find every driver registered.
//! - `fault-sigkill-<label>-<driver>` (virtio-rng: FLR, hot reset through its root port, MSI-X,
//!   mmap): [`KILLS`] times a forked child opens the device and loops over MSI-X enable/disable,
//!   `PCI_HOT_RESET`, mmap + touch + `VFIO_DEVICE_RESET` + touch (the reset zaps the mapping,
//!   the touch faults it back) + munmap, and MSI-X enable + reset; the parent SIGKILLs it after a
//!   random delay (seeded; the seed is printed). The child must die of SIGKILL (not SIGBUS, not
//!   an error exit), and afterwards the device opens again, answers config reads, enables and
//!   disables MSI-X, maps and reads its BAR, and no `vfio-` interrupt is left.
//! - `fault-reset-<driver>`: resets that cannot work: `VFIO_DEVICE_RESET` on pci-testdev (no
//!   FLR, no PM reset, on the root bus: no reset method at all); on virtio-rng with every reset
//!   method disabled through sysfs `reset_method` (written empty) before the open, and while
//!   it is open; `PCI_HOT_RESET` without a group (`count` 0) and with a non-group fd. The
//!   `GET_INFO` RESET flag and every errno are recorded; the device must keep answering
//!   through its mapping and config, and after `reset_method` is set back to `default` the
//!   reset works again. `fault-reset-differential-<driver>` compares everything with upstream.

use crate::config::{attach, detach, errno_name};
use crate::irq::{command_set, fds, proc_vfio, set_irqs, EventFd, EFD, MSIX, NONE, REQ, TRIG};
use crate::lifecycle::{record_diff, sysfs_config, Record};
use crate::{kmod, vfio, Suite};
use pcibind::Bdf;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// How long an unplug or re-plug through QMP may take to show in the guest: the ACPI eject
/// (or pciehp's attention button) takes seconds under TCG.
const UNPLUG_WAIT: Duration = Duration::from_secs(20);
/// How long a sysfs `remove` may take to complete after the fds are closed, and a rescan to
/// bring the device back.
const REMOVE_WAIT: Duration = Duration::from_secs(10);
/// Children killed per driver in `fault-sigkill-*`.
const KILLS: usize = 8;
/// The longest delay before a SIGKILL: a few loop rounds (a hot reset through the root port
/// takes over half a second under TCG, an FLR 100+ ms).
const KILL_DELAY_MS: u64 = 2500;
/// The child's operations, in loop order (the INFO line names the one a kill landed in).
const CHILD_OPS: [&str; 4] = ["msix", "hot-reset", "mmap-reset", "msix-reset"];

fn e(r: i32) -> String {
    if r == 0 {
        "ok".into()
    } else {
        errno_name(r)
    }
}

/// Polls `cond` every 50 ms for up to `limit`; how long it took, or `None`.
fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    loop {
        if cond() {
            return Some(t.elapsed());
        }
        if t.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the host serves `HOST-REQUEST qmp` lines (`cargo xtask test` says so on the kernel
/// command line).
fn qmp_host() -> bool {
    std::fs::read_to_string("/proc/cmdline")
        .map(|c| c.split_whitespace().any(|w| w == "vfiotest.qmp=1"))
        .unwrap_or(false)
}

/// The largest mmap-able BAR of an open device, mapped (whole, at most 1 MiB).
fn map_bar(f: &File) -> Result<(u32, vfio::Mapping), String> {
    let best = (0..6u32)
        .filter_map(|i| vfio::region_info(f, i).ok().map(|r| (i, r)))
        .filter(|(_, r)| r.flags & vfio::REGION_FLAG_MMAP != 0 && r.size >= 4096)
        .max_by_key(|(_, r)| r.size)
        .ok_or("no mmap-able BAR")?;
    let (i, r) = best;
    let len = (r.size as usize).min(1 << 20);
    let m = vfio::Mapping::new(f, r.offset as i64, len, libc::MAP_SHARED)
        .map_err(|x| format!("mmap BAR{i}: {}", errno_name(x)))?;
    Ok((i, m))
}

/// The variant module behind `driver` and the common module it depends on.
fn modules_of(driver: &str) -> (String, String) {
    let variant = crate::driver_module(driver).unwrap_or_else(|| driver.replace('-', "_"));
    let common = if driver == "vfio-pci" {
        "vfio_pci_core"
    } else {
        "vfio_pci_common"
    };
    (variant, common.to_string())
}

/// The modules that use `name` (`/sys/module/<name>/holders`).
fn holders(name: &str) -> Vec<String> {
    std::fs::read_dir(format!("/sys/module/{name}/holders"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Unloads `name` after everything that holds it (depth first); the names unloaded, in order.
fn unload_tree(name: &str, out: &mut Vec<String>) -> Result<(), String> {
    for h in holders(name) {
        unload_tree(&h, out)?;
    }
    kmod::unload(name).map_err(|x| format!("delete_module({name}): {x}"))?;
    out.push(name.to_string());
    Ok(())
}

/// A small deterministic generator for the kill delays (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The body of a `fault-sigkill` child: opens the device and loops over interrupt setup,
/// resets and mapping faults until it is killed. Writes one byte to `ready` once the device is
/// open. Returns (as the exit status) only on a setup error.
fn sigkill_child(group_node: &str, bdf: &str, iommu_type: u32, ready: i32) -> i32 {
    let Ok(grp) = vfio::Group::open(group_node, iommu_type) else {
        return 10;
    };
    let Ok(f) = grp.device(bdf) else {
        return 11;
    };
    if command_set(&f, 0x2).is_err() {
        return 12;
    }
    let (Ok(a), Ok(b)) = (EventFd::new(), EventFd::new()) else {
        return 13;
    };
    let both = fds(&[a.fd(), b.fd()]);
    let gfd = grp.group.as_raw_fd();
    // One byte when the device is open, then one per operation done (the parent counts them).
    let tick = || {
        // SAFETY: writes one byte from a live buffer to our end of the pipe.
        unsafe { libc::write(ready, b"r".as_ptr().cast(), 1) };
    };
    tick();
    let mut i = 0u64;
    loop {
        match i % CHILD_OPS.len() as u64 {
            0 => {
                let _ = set_irqs(&f, TRIG | EFD, MSIX, 0, 2, &both, None);
                let _ = set_irqs(&f, TRIG | NONE, MSIX, 0, 0, &[], None);
            }
            1 => {
                let _ = vfio::hot_reset(&f, 0, &[gfd], None);
            }
            2 => {
                if let Ok((_, m)) = map_bar(&f) {
                    let _ = m.read32(0);
                    let _ = vfio::reset(&f);
                    let _ = m.read32(0);
                }
            }
            _ => {
                let _ = set_irqs(&f, TRIG | EFD, MSIX, 0, 2, &both, None);
                let _ = vfio::reset(&f);
            }
        }
        tick();
        i += 1;
    }
}

/// How a child forked by [`fork_and_kill`] ended.
fn wait_child(pid: i32) -> vfio::ChildEnd {
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a live int.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    if r < 0 {
        return vfio::ChildEnd::Error(vfio::errno(&std::io::Error::last_os_error()));
    }
    if libc::WIFSIGNALED(status) {
        vfio::ChildEnd::Signal(libc::WTERMSIG(status))
    } else {
        vfio::ChildEnd::Exit(libc::WEXITSTATUS(status))
    }
}

/// Forks a [`sigkill_child`], waits until it has the device open, lets it run `delay_ms`, then
/// SIGKILLs it: how it ended, and how many operations it completed.
fn fork_and_kill(
    group_node: &str,
    bdf: &str,
    iommu_type: u32,
    delay_ms: u64,
) -> (vfio::ChildEnd, usize) {
    let mut p = [0i32; 2];
    // SAFETY: `p` has room for the two descriptors.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
        return (
            vfio::ChildEnd::Error(vfio::errno(&std::io::Error::last_os_error())),
            0,
        );
    }
    // The test binary has no other thread here (every helper thread is joined before), and
    // stdout is flushed after every line.
    // SAFETY: fork in a single-threaded process; the child only runs `sigkill_child` and
    // `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: the child closes its copy of the read end and never returns.
        unsafe {
            libc::close(p[0]);
            libc::_exit(sigkill_child(group_node, bdf, iommu_type, p[1]));
        }
    }
    // SAFETY: the parent's copy of the write end.
    unsafe { libc::close(p[1]) };
    if pid < 0 {
        // SAFETY: our read end.
        unsafe { libc::close(p[0]) };
        return (
            vfio::ChildEnd::Error(vfio::errno(&std::io::Error::last_os_error())),
            0,
        );
    }
    let mut pfd = libc::pollfd {
        fd: p[0],
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd.
    unsafe { libc::poll(&mut pfd, 1, 10_000) };
    std::thread::sleep(Duration::from_millis(delay_ms));
    // SAFETY: signals our own child (still a zombie at worst, so the pid is not reused).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let end = wait_child(pid);
    // The child is gone: read what it wrote (non-blocking) up to end of file.
    let mut n = 0usize;
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reads into a live buffer of that size.
        let r = unsafe { libc::read(p[0], buf.as_mut_ptr().cast(), buf.len()) };
        if r <= 0 {
            break;
        }
        n += r as usize;
    }
    // SAFETY: our read end.
    unsafe { libc::close(p[0]) };
    (end, n.saturating_sub(1))
}

impl Suite {
    pub(crate) fn fault_checks(&mut self) {
        let drivers = self.args.drivers.clone();
        let mut rec: BTreeMap<String, Record> = BTreeMap::new();
        for d in &drivers {
            if let Some(bdf) = self.label_bdf("virtio-rng") {
                self.surprise_unplug(&bdf, "virtio-rng", d);
            }
            if let Some(bdf) = self.label_bdf("pci-testdev") {
                self.remove_while_open(&bdf, "pci-testdev", d);
            }
            if let Some(bdf) = self.label_bdf("edu") {
                self.rmmod_while_open(&bdf, d);
            }
            if let Some(bdf) = self.label_bdf("virtio-rng") {
                self.sigkill(&bdf, "virtio-rng", d);
            }
            let mut r = Record::new();
            self.reset_failures(d, &mut r);
            rec.insert(d.clone(), r);
        }
        let Some(oracle) = drivers.first() else {
            return;
        };
        for d in drivers.iter().skip(1) {
            let (o, t) = (
                rec.get(oracle).cloned().unwrap_or_default(),
                rec.get(d).cloned().unwrap_or_default(),
            );
            let res = record_diff(oracle, d, &o, &t);
            self.r
                .check(&format!("fault-reset-differential-{d}"), || res);
        }
    }

    /// Binds and opens the device, turns memory decode on, maps its largest mmap-able BAR and
    /// touches it, and sets a REQ eventfd: the device, the BAR index, its mapping, the first
    /// dword read and the eventfd.
    fn open_mapped_with_req(
        &self,
        bdf: &Bdf,
        d: &str,
    ) -> Result<(vfio::Device, u32, vfio::Mapping, u32, EventFd), String> {
        let dev = attach(self, bdf, d)?;
        command_set(&dev.file, 0x2)?;
        let (bar, map) = map_bar(&dev.file)?;
        let first = map.read32(0);
        let req = EventFd::new()?;
        set_irqs(&dev.file, TRIG | EFD, REQ, 0, 1, &fds(&[req.fd()]), None)
            .map_err(|x| format!("SET_IRQS REQ: {}", errno_name(x)))?;
        Ok((dev, bar, map, first, req))
    }

    /// Waits for a removed device to come back (a rescan after 3 s and every 5 s after), makes
    /// its config the new `config-restored` baseline and checks it is usable with `d`.
    fn back_and_usable(
        &mut self,
        bdf: &Bdf,
        label: &str,
        d: &str,
        limit: Duration,
    ) -> Result<String, String> {
        let dir = self.sys.device_dir(bdf);
        let t = Instant::now();
        let mut next_rescan = Duration::from_secs(3);
        let back = wait_until(limit, || {
            if dir.join("config").exists() {
                return true;
            }
            if t.elapsed() > next_rescan {
                let _ = self.sys.rescan();
                next_rescan += Duration::from_secs(5);
            }
            false
        })
        .ok_or_else(|| format!("{bdf} did not come back within {} s", limit.as_secs()))?;
        // Give probing and the IOMMU notifier a moment.
        std::thread::sleep(Duration::from_millis(200));
        let info = self.sys.info(bdf).map_err(|x| x.to_string())?;
        if info.driver.is_some() || info.driver_override.is_some() {
            return Err(format!(
                "came back with driver {:?}, override {:?}",
                info.driver, info.driver_override
            ));
        }
        if self.args.mode == crate::Mode::Iommu && info.iommu_group.is_none() {
            return Err("came back without an IOMMU group".into());
        }
        let ids = self.sys.vendor_device(bdf).map_err(|x| x.to_string())?;
        // A hot-added device starts with decode off; the first open turns it on
        // (`pci_enable_device`) and no close turns it off again (upstream too). The baseline
        // for `config-restored` is therefore the config after one session of the oracle.
        let oracle = self
            .args
            .drivers
            .first()
            .cloned()
            .unwrap_or_else(|| d.to_string());
        let mut drivers = vec![oracle.clone()];
        if d != oracle {
            drivers.push(d.to_string());
        }
        for (i, drv) in drivers.iter().enumerate() {
            let dev = attach(self, bdf, drv);
            let got = dev
                .as_ref()
                .map(|dev| vfio::query(dev).config_ids)
                .map_err(Clone::clone);
            detach(self, bdf, dev.ok());
            let b =
                got?.map_err(|x| format!("{drv}: config read after re-add: {}", errno_name(x)))?;
            let v = (
                u16::from_le_bytes([b[0], b[1]]),
                u16::from_le_bytes([b[2], b[3]]),
            );
            if v != ids {
                return Err(format!(
                    "{drv}: config IDs {v:04x?} after re-add, sysfs {ids:04x?}"
                ));
            }
            if self.sys.driver(bdf).map_err(|x| x.to_string())?.is_some() {
                return Err(format!("still bound to {drv} after the usability check"));
            }
            if i == 0 {
                let cfg = sysfs_config(self, bdf)?;
                self.config_baseline.insert(label.to_string(), cfg);
            }
        }
        Ok(format!("back after {} ms", back.as_millis()))
    }

    fn surprise_unplug(&mut self, bdf: &Bdf, label: &str, d: &str) {
        let dir = self.sys.device_dir(bdf);
        let mut note = String::new();
        let res: Result<(), String> = (|| {
            if !qmp_host() {
                return Err(
                    "the host serves no QMP requests (no vfiotest.qmp=1 on the kernel \
                            command line: run the guest through `cargo xtask test`)"
                        .into(),
                );
            }
            let (dev, bar, map, first, req) = self.open_mapped_with_req(bdf, d)?;
            let t = Instant::now();
            self.r.line(&format!("HOST-REQUEST qmp device_del {label}"));
            let mut fired = 0;
            let at_req = wait_until(UNPLUG_WAIT, || {
                fired += req.wait(100);
                fired > 0
            });
            let present_at_req = dir.exists();
            // Release everything: munmap, the REQ eventfd, device, group and container fds.
            let touched = map.read32(0);
            drop(map);
            drop(req);
            drop(dev);
            let released = t.elapsed();
            let gone = wait_until(UNPLUG_WAIT, || !dir.exists());
            note = format!(
                "{label} {d}: BAR{bar} read {first:#x} before and {touched:#x} after the unplug request; REQ {} ({fired} signals), removed {}",
                at_req.map_or("never fired".to_string(), |x| format!("after {} ms", x.as_millis())),
                gone.map_or("never".to_string(), |x| format!("{} ms after the release ({} ms after device_del)", x.as_millis(), (released + x).as_millis()))
            );
            if at_req.is_none() {
                return Err(format!(
                    "REQ did not fire within {} s of device_del",
                    UNPLUG_WAIT.as_secs()
                ));
            }
            if !present_at_req {
                return Err("the device left sysfs before the driver asked for it back".into());
            }
            if gone.is_none() {
                return Err(format!(
                    "{bdf} still present {} s after the release",
                    UNPLUG_WAIT.as_secs()
                ));
            }
            Ok(())
        })();
        self.r.check(&format!("fault-unplug-{label}-{d}"), || res);
        if !note.is_empty() {
            self.r.info(format!("fault-unplug {note}"));
        }
        if !dir.exists() {
            self.r.line(&format!("HOST-REQUEST qmp device_add {label}"));
        }
        let back = self.back_and_usable(bdf, label, d, UNPLUG_WAIT);
        if let Ok(b) = &back {
            self.r.info(format!("fault-replug {label} {d}: {b}"));
        }
        self.r
            .check(&format!("fault-replug-{label}-{d}"), || back.map(|_| ()));
    }

    fn remove_while_open(&mut self, bdf: &Bdf, label: &str, d: &str) {
        let dir = self.sys.device_dir(bdf);
        let mut note = String::new();
        let res: Result<(), String> = (|| {
            let (dev, _, map, _, req) = self.open_mapped_with_req(bdf, d)?;
            let path = dir.join("remove");
            let t = Instant::now();
            let th = std::thread::spawn(move || {
                std::fs::write(&path, "1").map_err(|x| format!("{}: {x}", path.display()))
            });
            let fired = req.wait(REMOVE_WAIT.as_millis() as i32);
            let early = th.is_finished();
            drop(map);
            drop(req);
            drop(dev);
            let done = wait_until(REMOVE_WAIT, || th.is_finished());
            if done.is_none() {
                // Leave the thread blocked (it cannot be cancelled); later checks will see
                // the device missing.
                return Err(format!(
                    "remove still blocked {} s after the fds were closed",
                    REMOVE_WAIT.as_secs()
                ));
            }
            th.join()
                .map_err(|_| "remove thread panicked".to_string())??;
            note = format!(
                "{label} {d}: REQ {} signal(s), remove done {} ms after it started",
                fired,
                t.elapsed().as_millis()
            );
            if fired == 0 {
                return Err(format!(
                    "REQ did not fire within {} s of the remove",
                    REMOVE_WAIT.as_secs()
                ));
            }
            if early {
                return Err("the remove completed while the device fd was open".into());
            }
            if dir.exists() {
                return Err(format!("{bdf} still in sysfs after remove"));
            }
            self.sys.rescan().map_err(|x| x.to_string())?;
            Ok(())
        })();
        self.r.check(&format!("fault-remove-{label}-{d}"), || res);
        if !note.is_empty() {
            self.r.info(format!("fault-remove {note}"));
        }
        let back = self.back_and_usable(bdf, label, d, REMOVE_WAIT);
        self.r
            .check(&format!("fault-remove-rescan-{label}-{d}"), || {
                back.map(|_| ())
            });
    }

    fn rmmod_while_open(&mut self, bdf: &Bdf, d: &str) {
        let (variant, common) = modules_of(d);
        let mut note = String::new();
        let res: Result<(), String> = (|| {
            let dev = attach(self, bdf, d)?;
            let before = vfio::query(&dev);
            let mut said = vec![];
            for m in [&variant, &common] {
                match kmod::unload(m) {
                    Ok(()) => return Err(format!("delete_module({m}) succeeded with {bdf} open")),
                    Err(x)
                        if matches!(
                            x.raw_os_error(),
                            Some(libc::EBUSY) | Some(libc::EWOULDBLOCK)
                        ) =>
                    {
                        said.push(format!(
                            "{m}: {}",
                            errno_name(x.raw_os_error().unwrap_or(0))
                        ))
                    }
                    Err(x) => {
                        return Err(format!(
                            "delete_module({m}) with {bdf} open: {x}, expected EBUSY/EWOULDBLOCK"
                        ))
                    }
                }
                if !kmod::loaded(m) {
                    return Err(format!("{m} gone although delete_module failed"));
                }
            }
            if vfio::query(&dev) != before {
                return Err("the device answers differently after the refused unloads".into());
            }
            drop(dev);
            let mut gone = vec![];
            unload_tree(&common, &mut gone)?;
            if self.sys.driver(bdf).map_err(|x| x.to_string())?.is_some() {
                return Err(format!("{bdf} still bound after {common} was unloaded"));
            }
            note = format!(
                "{d}: with {bdf} open: {}; after close unloaded {}",
                said.join(", "),
                gone.join(", ")
            );
            Ok(())
        })();
        self.r.check(&format!("fault-rmmod-{d}"), || res);
        if !note.is_empty() {
            self.r.info(format!("fault-rmmod {note}"));
        }
        let _ = self.sys.unbind(bdf);
        // Load again whatever is gone, in the order of `--module`.
        let mut reloaded = vec![];
        let reload: Result<(), String> = (|| {
            for ko in self.args.modules.clone() {
                let name = crate::module_name(&ko);
                if !kmod::loaded(&name) {
                    kmod::load(&ko).map_err(|x| format!("finit_module({}): {x}", ko.display()))?;
                    reloaded.push(name);
                }
            }
            for drv in &self.args.drivers {
                if !self.sys.driver_loaded(drv) {
                    return Err(format!("driver {drv} not registered after reloading"));
                }
            }
            Ok(())
        })();
        self.r
            .info(format!("fault-rmmod {d}: reloaded {}", reloaded.join(", ")));
        self.r.check(&format!("fault-rmmod-reload-{d}"), || reload);
    }

    fn sigkill(&mut self, bdf: &Bdf, label: &str, d: &str) {
        let seed = self.args.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|t| t.as_nanos() as u64)
                .unwrap_or(1)
        }) | 1;
        let it = self.iommu_type();
        let mut ends = vec![];
        let res: Result<(), String> = (|| {
            self.sys.bind(bdf, d).map_err(|x| format!("bind: {x}"))?;
            let node = self.group_node(bdf)?;
            let mut rng = Rng(seed);
            for k in 0..KILLS {
                let delay = rng.next() % KILL_DELAY_MS;
                let (end, ops) = fork_and_kill(&node, bdf.as_str(), it, delay);
                ends.push(format!(
                    "{delay}ms:{ops}ops,in-{}:{end}",
                    CHILD_OPS[ops % CHILD_OPS.len()]
                ));
                if end != vfio::ChildEnd::Signal(libc::SIGKILL) {
                    return Err(format!(
                        "child {k} (killed after {delay} ms): {end}, expected SIGKILL"
                    ));
                }
            }
            // The device must work again.
            let grp = vfio::Group::open(&node, it)?;
            let f = grp
                .device(bdf.as_str())
                .map_err(|x| format!("GET_DEVICE_FD after the kills: {x}"))?;
            let ids = self.sys.vendor_device(bdf).map_err(|x| x.to_string())?;
            let mut b = [0u8; 4];
            std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, vfio::CONFIG_BASE as u64)
                .map_err(|x| format!("config read: {x}"))?;
            let v = (
                u16::from_le_bytes([b[0], b[1]]),
                u16::from_le_bytes([b[2], b[3]]),
            );
            if v != ids {
                return Err(format!("config IDs {v:04x?}, sysfs {ids:04x?}"));
            }
            command_set(&f, 0x2)?;
            let (x, y) = (EventFd::new()?, EventFd::new()?);
            set_irqs(&f, TRIG | EFD, MSIX, 0, 2, &fds(&[x.fd(), y.fd()]), None)
                .map_err(|x| format!("MSI-X enable: {}", errno_name(x)))?;
            set_irqs(&f, TRIG | NONE, MSIX, 0, 2, &[], None)
                .map_err(|x| format!("MSI-X loopback: {}", errno_name(x)))?;
            if x.wait(1000) != 1 || y.wait(1000) != 1 {
                return Err("MSI-X loopback did not reach both eventfds".into());
            }
            set_irqs(&f, TRIG | NONE, MSIX, 0, 0, &[], None)
                .map_err(|x| format!("MSI-X disable: {}", errno_name(x)))?;
            let (_, m) = map_bar(&f)?;
            let _ = m.read32(0);
            drop(m);
            drop(f);
            drop(grp);
            let left = proc_vfio(None);
            if !left.is_empty() {
                return Err(format!("vfio interrupts left: {left:?}"));
            }
            Ok(())
        })();
        self.r.check(&format!("fault-sigkill-{label}-{d}"), || res);
        self.r.info(format!(
            "fault-sigkill {label} {d}: seed {seed:#x}, children: {}",
            ends.join(" ")
        ));
        let _ = self.sys.unbind(bdf);
    }

    /// Writes sysfs `reset_method` (`""` disables every method, `"default"` restores them).
    fn set_reset_method(&self, bdf: &Bdf, v: &str) -> Result<String, String> {
        let p = self.sys.device_dir(bdf).join("reset_method");
        std::fs::write(&p, format!("{v}\n")).map_err(|x| format!("{}: {x}", p.display()))?;
        Ok(std::fs::read_to_string(&p)
            .unwrap_or_default()
            .trim()
            .to_string())
    }

    fn reset_failures(&mut self, d: &str, rec: &mut Record) {
        let mut problems: Vec<String> = vec![];
        // pci-testdev: no reset method at all.
        if let Some(bdf) = self.label_bdf("pci-testdev") {
            match attach(self, &bdf, d) {
                Ok(dev) => {
                    let f = &dev.file;
                    rec.push(("pci-testdev GET_INFO".into(), reset_flag(f)));
                    let r = vfio::reset(f);
                    must_fail(rec, &mut problems, "pci-testdev (no method)", r);
                    self.check_ids(f, &bdf, "pci-testdev", &mut problems);
                    detach(self, &bdf, Some(dev));
                }
                Err(x) => problems.push(format!("pci-testdev: {x}")),
            }
        }
        let Some(bdf) = self.label_bdf("virtio-rng") else {
            self.r
                .check(&format!("fault-reset-{d}"), || Err("no virtio-rng".into()));
            return;
        };
        let res: Result<(), String> = (|| {
            // Every method disabled before the open.
            let shown = self.set_reset_method(&bdf, "")?;
            rec.push((
                "virtio-rng reset_method after \"\"".into(),
                format!("{shown:?}"),
            ));
            let dev = attach(self, &bdf, d)?;
            let f = &dev.file;
            rec.push((
                "virtio-rng (methods off at open) GET_INFO".into(),
                reset_flag(f),
            ));
            let r = vfio::reset(f);
            must_fail(rec, &mut problems, "virtio-rng (methods off at open)", r);
            let r = vfio::hot_reset(f, 0, &[], Some(0));
            rec.push(("virtio-rng PCI_HOT_RESET count 0 (no group)".into(), e(r)));
            let null = File::open("/dev/null").map_err(|x| x.to_string())?;
            let r = vfio::hot_reset(f, 0, &[null.as_raw_fd()], None);
            rec.push(("virtio-rng PCI_HOT_RESET non-group fd".into(), e(r)));
            self.check_ids(f, &bdf, "virtio-rng", &mut problems);
            detach(self, &bdf, Some(dev));
            self.set_reset_method(&bdf, "default")?;
            // Methods taken away while the device is open.
            let dev = attach(self, &bdf, d)?;
            let f = &dev.file;
            command_set(f, 0x2)?;
            let (_, m) = map_bar(f)?;
            let before = m.read32(0);
            rec.push((
                "virtio-rng (methods on at open) GET_INFO".into(),
                reset_flag(f),
            ));
            self.set_reset_method(&bdf, "")?;
            let r = vfio::reset(f);
            must_fail(rec, &mut problems, "virtio-rng (methods off while open)", r);
            let after = m.read32(0);
            if after != before {
                problems.push(format!(
                    "virtio-rng: BAR reads {after:#x} after the failed reset, {before:#x} before"
                ));
            }
            self.check_ids(f, &bdf, "virtio-rng", &mut problems);
            self.set_reset_method(&bdf, "default")?;
            let r = vfio::reset(f);
            rec.push(("virtio-rng (methods back) VFIO_DEVICE_RESET".into(), e(r)));
            if r != 0 {
                problems.push(format!(
                    "virtio-rng: VFIO_DEVICE_RESET after restoring the methods: {}",
                    e(r)
                ));
            }
            let _ = m.read32(0);
            drop(m);
            detach(self, &bdf, Some(dev));
            Ok(())
        })();
        let _ = self.set_reset_method(&bdf, "default");
        let _ = self.sys.unbind(&bdf);
        if let Err(x) = res {
            problems.push(x);
        }
        let line: Vec<String> = rec.iter().map(|(k, v)| format!("{k}={v}")).collect();
        self.r.info(format!("fault-reset {d}: {}", line.join("; ")));
        self.r.check(&format!("fault-reset-{d}"), || {
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.join("; "))
            }
        });
    }

    /// Config IDs through the device fd must equal sysfs; a problem is noted otherwise.
    fn check_ids(&self, f: &File, bdf: &Bdf, label: &str, problems: &mut Vec<String>) {
        let mut b = [0u8; 4];
        let ok = std::os::unix::fs::FileExt::read_exact_at(f, &mut b, vfio::CONFIG_BASE as u64)
            .is_ok()
            && self.sys.vendor_device(bdf).ok()
                == Some((
                    u16::from_le_bytes([b[0], b[1]]),
                    u16::from_le_bytes([b[2], b[3]]),
                ));
        if !ok {
            problems.push(format!("{label}: config IDs wrong after the failed reset"));
        }
    }
}

/// Whether `GET_INFO` says the device can be reset.
fn reset_flag(f: &File) -> String {
    match vfio::device_info(f, 24) {
        Ok(i) if i.flags & vfio::VFIO_DEVICE_FLAGS_RESET != 0 => "RESET".into(),
        Ok(_) => "no RESET".into(),
        Err(x) => errno_name(vfio::errno(&x)),
    }
}

/// Records a `VFIO_DEVICE_RESET` answer that must be an error.
fn must_fail(rec: &mut Record, problems: &mut Vec<String>, what: &str, r: i32) {
    rec.push((format!("{what} VFIO_DEVICE_RESET"), e(r)));
    if r == 0 {
        problems.push(format!("{what}: VFIO_DEVICE_RESET succeeded"));
    }
}
