// SPDX-License-Identifier: GPL-2.0
//! VGA devices: what binding one does (firmware framebuffer and VGA console evicted, the device
//! registered with the VGA arbiter), the legacy VGA region (index 8) and `disable_vga`,
//! compared between upstream `vfio-pci` and `vfio-pci-generic` on QEMU's standard VGA
//! (`vga`, class 0x030000, the boot VGA device with the VESA framebuffer) and its
//! `secondary-vga` (class 0x038000: not VGA for vfio-pci, so none of this applies).
//!
//! Runs right after the modules are loaded, before any other check binds a device: the
//! firmware framebuffer can only be evicted once per boot, so the first driver to bind the
//! VGA device is the one that must evict it. That is `vfio-pci-generic` in the iommu boot and
//! upstream `vfio-pci` in the noiommu boot, so each boot proves one of them and the two boots
//! together prove both. Everything else is repeatable and compared byte for byte:
//!
//! - `vga-<label>-<driver>`: the VGA arbiter's status line for every VGA-class device
//!   (`/dev/vga_arbiter`, `target PCI:...` then a read) before the bind, after it, after the
//!   open, after the region accesses, after the close and after the unbind; the kernel log lines
//!   of the bind (driver name replaced by `DRIVER`); `GET_REGION_INFO` of index 8 (buffers
//!   pre-filled with 0xa5); the region accesses below; the device's `boot_vga`.
//! - Region accesses (after COMMAND gets I/O and memory decode through the config region):
//!   writes and reads of the VGA memory window (1 to 16 bytes, unaligned, at both ends, clipped
//!   at 0xc0000), VGA registers through the I/O windows (sequencer, graphics controller and
//!   CRT controller index/data pairs, with a written CRTC value read back and restored, a
//!   16-bit index+data write, the miscellaneous output register, the monochrome window, the
//!   clipped end of the colour window), and offsets outside the windows (`EINVAL`). The device
//!   state each session reads is set by the session first, so the order of the drivers does
//!   not matter.
//! - The arbiter's lock: with another VGA device (the fake IGD) holding the legacy resources
//!   through `/dev/vga_arbiter` (`lock io+mem`), a read of the region waits (checked for 300
//!   ms) and completes after `unlock io+mem`; the arbiter's status during and after is
//!   recorded. An access without `vga_get` would complete at once. A read of the memory window
//!   then gives both resources back to the device, so every session starts from the same
//!   arbiter state. Only where the region exists (not with `disable_vga=1`).
//! - `vga-evict-<label>-<driver>`: after the bind no firmware framebuffer is left (the sysfb
//!   device `/sys/bus/platform/devices/vesa-framebuffer.0`, which vesafb drives, is gone) and
//!   the log has the arbiter's "deactivate vga console"; for the first driver of the boot the
//!   device was there before, with vesafb bound.
//! - `vga-disable-vga-<driver>`: the driver's module reloaded with `disable_vga=1` (upstream:
//!   `vfio_pci`; ours: `vfio_pci_common`, with the modules that use it unloaded and reloaded
//!   around it), then the same session; the region must be gone (`EINVAL`); then back to the
//!   default.
//! - `vga-differential-<label>-vfio-pci-generic`, `vga-disable-vga-differential`: the records
//!   compared with upstream's.

use crate::config::{errno_name, read, write, Op};
use crate::{find_nodes, kmod, module_name, s, Mode, Suite};
use pcibind::Bdf;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

const UPSTREAM: &str = "vfio-pci";
const OURS: &str = "vfio-pci-generic";
/// The file offset of the VGA region (index 8).
const VGA_BASE: i64 = (crate::vfio::VGA_INDEX as i64) << crate::vfio::REGION_SHIFT;
const CFG_BASE: i64 = crate::vfio::CONFIG_BASE as i64;
const VESA_FB: &str = "/sys/bus/platform/devices/vesa-framebuffer.0";
const DEACTIVATE: &str = "vgaarb: deactivate vga console";

/// One observation: what was done, and the answer.
type Rec = (String, String);

/// Everything one driver answered for one device.
#[derive(Default)]
struct Transcript {
    recs: Vec<Rec>,
    /// Setup failures (bind, open) that make the transcript meaningless.
    broken: Vec<String>,
}

impl Transcript {
    fn rec(&mut self, key: impl Into<String>, ans: impl Into<String>) {
        self.recs.push((key.into(), ans.into()));
    }
    fn op(&mut self, o: &Op) -> Option<Vec<u8>> {
        let key = format!(
            "{}{} region8+{:#x}",
            if o.write { 'w' } else { 'r' },
            o.len,
            o.off - VGA_BASE
        );
        self.rec(key, o.answer());
        o.ret.ok().map(|_| o.data.clone())
    }
}

/// Every VGA-class device (class 0x0300xx) in the guest, in sysfs order.
fn vga_class_devices(suite: &Suite) -> Vec<Bdf> {
    let mut v: Vec<Bdf> = suite
        .sys
        .devices()
        .unwrap_or_default()
        .into_iter()
        .filter(|b| {
            std::fs::read_to_string(suite.sys.device_dir(b).join("class"))
                .map(|c| c.trim().starts_with("0x0300"))
                .unwrap_or(false)
        })
        .collect();
    v.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    v
}

/// The arbiter's status line for each device, as `/dev/vga_arbiter` gives it.
fn arbiter(targets: &[Bdf]) -> String {
    let mut f = match File::options()
        .read(true)
        .write(true)
        .open("/dev/vga_arbiter")
    {
        Ok(f) => f,
        Err(e) => return format!("open /dev/vga_arbiter: {e}"),
    };
    let mut out = Vec::new();
    for t in targets {
        if let Err(e) = f.write_all(format!("target PCI:{}", t.as_str()).as_bytes()) {
            out.push(format!("target {}: {e}", t.as_str()));
            continue;
        }
        let mut buf = [0u8; 256];
        match f.read(&mut buf) {
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).trim().to_string()),
            Err(e) => out.push(format!("read {}: {e}", t.as_str())),
        }
    }
    out.join(" | ")
}

/// Whether the firmware framebuffer is still there: the sysfb platform device, and the driver
/// bound to it (vesafb, whose `fb0` goes with it).
fn framebuffer() -> (bool, String) {
    let driver = std::fs::read_link(Path::new(VESA_FB).join("driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    (Path::new(VESA_FB).exists(), driver)
}

/// The arbiter's kernel log lines after `from`, with `driver` replaced. (Other lines, such as
/// the framebuffer's removal, come from the first bind of the boot only; they are printed as
/// INFO.)
fn log_lines(from: usize, driver: &str) -> Vec<String> {
    kmod::kmsg()
        .unwrap_or_default()
        .into_iter()
        .skip(from)
        .filter(|l| l.contains("vgaarb"))
        .map(|l| {
            // The longest name first: "vfio-pci" is a prefix of "vfio-pci-generic".
            l.replace(&format!("{driver} "), "DRIVER ")
        })
        .collect()
}

fn info_buf(r: &Result<Vec<u8>, i32>) -> String {
    match r {
        Err(e) => errno_name(*e),
        Ok(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

/// The region accesses of one session (see the module documentation).
fn region_accesses(t: &mut Transcript, f: &File) {
    let at = |o: i64| VGA_BASE + o;
    // I/O and memory decode on, so QEMU's VGA answers its legacy ranges.
    let cmd = read(f, "cmd", CFG_BASE + 4, 2);
    if let Some(d) = cmd.ret.ok().and(cmd.data.get(..2)) {
        let v = u16::from_le_bytes([d[0], d[1]]) | 0x3;
        let w = write(f, "cmd", CFG_BASE + 4, &v.to_le_bytes());
        t.rec("command |= io+mem", w.answer());
    } else {
        t.rec("command read", cmd.answer());
    }
    // The VGA memory window: the session writes what it reads first.
    let pattern: Vec<u8> = (0u8..16).map(|i| 0x30 + i).collect();
    t.op(&write(f, "", at(0xa0000), &pattern));
    t.op(&read(f, "", at(0xa0000), 16));
    t.op(&write(f, "", at(0xa0001), &[0xa1, 0xa2, 0xa3]));
    for (off, len) in [
        (0xa0000, 8),
        (0xa0003, 1),
        (0xa0006, 2),
        (0xa0004, 4),
        (0xa0008, 8),
        (0xa0005, 3),
    ] {
        t.op(&read(f, "", at(off), len));
    }
    t.op(&write(f, "", at(0xbfffc), &[1, 2, 3, 4, 5, 6, 7, 8]));
    t.op(&read(f, "", at(0xbfffc), 8));
    t.op(&read(f, "", at(0xbffff), 1));
    // Outside the windows, and 0 bytes.
    for (off, len) in [
        (0x0, 4),
        (0x3af, 1),
        (0x3bc, 1),
        (0x3bf, 4),
        (0x3e0, 1),
        (0x9fffe, 4),
        (0x9ffff, 1),
        (0xc0000, 1),
        (0xfffff, 4),
        (1 << 39, 4),
        (0xc0000, 0),
    ] {
        t.op(&read(f, "", at(off), len));
    }
    for off in [0x3bc, 0x3e0, 0xc0000, 0x9ffff] {
        t.op(&write(f, "", at(off), &[0]));
    }
    // VGA registers: index then data.
    t.op(&read(f, "", at(0x3cc), 1));
    t.op(&write(f, "", at(0x3c4), &[0x02]));
    t.op(&read(f, "", at(0x3c5), 1));
    t.op(&read(f, "", at(0x3c4), 2));
    t.op(&write(f, "", at(0x3ce), &[0x06]));
    t.op(&read(f, "", at(0x3cf), 1));
    t.op(&write(f, "", at(0x3d4), &[0x0c]));
    let orig = t
        .op(&read(f, "", at(0x3d5), 1))
        .and_then(|d| d.first().copied());
    t.op(&write(f, "", at(0x3d5), &[0x5a]));
    t.op(&read(f, "", at(0x3d5), 1));
    t.op(&write(f, "", at(0x3d4), &[0x0c, orig.unwrap_or(0)]));
    t.op(&read(f, "", at(0x3d4), 2));
    t.op(&read(f, "", at(0x3b0), 12));
    t.op(&read(f, "", at(0x3dc), 8));
    // The memory window again, after the register writes.
    t.op(&read(f, "", at(0xa0000), 4));
}

/// The arbiter's lock around an access: another VGA device (`other`) takes the legacy
/// resources through `/dev/vga_arbiter` (`lock io+mem`); a read of the VGA region must then
/// wait until it lets go (`unlock io+mem`), and complete after.
fn lock_wait(t: &mut Transcript, f: &File, other: &Bdf, targets: &[Bdf]) {
    let arb = File::options()
        .read(true)
        .write(true)
        .open("/dev/vga_arbiter");
    let mut arb = match arb {
        Ok(a) => a,
        Err(e) => return t.broken.push(format!("open /dev/vga_arbiter: {e}")),
    };
    let cmd = |arb: &mut File, c: &str| {
        arb.write_all(c.as_bytes())
            .map(|_| "ok".to_string())
            .unwrap_or_else(|e| e.to_string())
    };
    let target = cmd(&mut arb, &format!("target PCI:{}", other.as_str()));
    let lock = cmd(&mut arb, "lock io+mem");
    t.rec(
        format!("{} takes the lock", other.as_str()),
        format!("target {target}, lock {lock}"),
    );
    t.rec("arbiter while it holds the lock", arbiter(targets));
    let fd = match f.try_clone() {
        Ok(fd) => fd,
        Err(e) => return t.broken.push(format!("dup: {e}")),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let o = read(&fd, "", VGA_BASE + 0x3cc, 1);
        let _ = tx.send(());
        o
    });
    let early = rx
        .recv_timeout(std::time::Duration::from_millis(300))
        .is_ok();
    t.rec(
        "read of 0x3cc while another device holds the lock",
        if early {
            "completed at once: the access did not wait for the arbiter"
        } else {
            "waits"
        },
    );
    let unlock = cmd(&mut arb, "unlock io+mem");
    match reader.join() {
        Ok(o) => t.rec(
            format!("after the unlock ({unlock}): r1 region8+0x3cc"),
            o.answer(),
        ),
        Err(_) => t.broken.push("the reader thread panicked".into()),
    }
    drop(arb);
    t.rec("arbiter after the unlock", arbiter(targets));
    // The memory window too, so the device owns both resources again and the next session
    // starts from the arbiter state this one started from.
    t.op(&read(f, "", VGA_BASE + 0xa0000, 4));
    t.rec("arbiter after a memory read", arbiter(targets));
}

/// Binds `bdf` to `driver`, records the session, unbinds. `targets`: the VGA-class devices
/// whose arbiter state is recorded.
fn session(suite: &Suite, bdf: &Bdf, driver: &str, targets: &[Bdf], t: &mut Transcript) {
    let sys = &suite.sys;
    t.rec(
        "boot_vga",
        std::fs::read_to_string(sys.device_dir(bdf).join("boot_vga"))
            .map(|x| x.trim().to_string())
            .unwrap_or_else(|e| format!("{e}")),
    );
    t.rec("arbiter before bind", arbiter(targets));
    let log0 = kmod::kmsg().map(|l| l.len()).unwrap_or(0);
    if let Err(e) = sys.bind(bdf, driver) {
        t.broken.push(format!("bind to {driver}: {e}"));
        let _ = sys.unbind(bdf);
        return;
    }
    t.rec("log of the bind", log_lines(log0, driver).join(" / "));
    t.rec("arbiter after bind", arbiter(targets));
    let dev = find_nodes(sys, suite.args.mode, bdf)
        .and_then(|n| crate::vfio::open_via_group(&n.group, bdf.as_str(), suite.iommu_type()));
    match dev {
        Ok(dev) => {
            t.rec("arbiter after open", arbiter(targets));
            for argsz in [32, 256] {
                let r = crate::vfio::region_info_raw(&dev.file, crate::vfio::VGA_INDEX, argsz);
                t.rec(format!("region info 8 argsz {argsz}"), info_buf(&r));
            }
            region_accesses(t, &dev.file);
            t.rec("arbiter after the accesses", arbiter(targets));
            let has_region = t
                .recs
                .iter()
                .any(|(k, v)| k == "region info 8 argsz 32" && v.starts_with("20000000"));
            if has_region {
                if let Some(other) = targets.iter().find(|b| *b != bdf) {
                    lock_wait(t, &dev.file, other, targets);
                }
            }
            drop(dev);
            t.rec("arbiter after close", arbiter(targets));
        }
        Err(e) => t.broken.push(format!("open: {e}")),
    }
    let log1 = kmod::kmsg().map(|l| l.len()).unwrap_or(0);
    if let Err(e) = sys.unbind(bdf) {
        t.broken.push(format!("unbind: {e}"));
    }
    t.rec("log of the unbind", log_lines(log1, driver).join(" / "));
    t.rec("arbiter after unbind", arbiter(targets));
}

/// The first difference between two transcripts, and how many there are.
fn diff(a: &Transcript, b: &Transcript) -> Result<(), String> {
    let mut diffs = Vec::new();
    let n = a.recs.len().max(b.recs.len());
    for i in 0..n {
        match (a.recs.get(i), b.recs.get(i)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => diffs.push(format!(
                "{}: {} | {}",
                x.or(y).map(|r| r.0.as_str()).unwrap_or("?"),
                x.map(|r| r.1.as_str()).unwrap_or("(missing)"),
                y.map(|r| r.1.as_str()).unwrap_or("(missing)")
            )),
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} differences, first: {}",
            diffs.len(),
            diffs[..diffs.len().min(3)].join(" ;; ")
        ))
    }
}

/// Ours compared with upstream's, both sessions present.
fn diff_runs(runs: &BTreeMap<&str, Transcript>) -> Result<(), String> {
    match (runs.get(UPSTREAM), runs.get(OURS)) {
        (Some(a), Some(b)) => diff(a, b),
        _ => Err("a session is missing".into()),
    }
}

/// `finit_module` with a parameter string.
fn load_with(path: &Path, params: &str) -> Result<(), String> {
    let f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let p = CString::new(params).map_err(s)?;
    // SAFETY: a valid open fd and a NUL-terminated parameter string.
    let r = unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), p.as_ptr(), 0) };
    if r < 0 {
        return Err(format!(
            "finit_module({}, {params:?}): {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

impl Suite {
    /// The `.ko` of a loaded module, from `--module` (ours and upstream's alike).
    fn ko_of(&self, name: &str) -> Option<PathBuf> {
        self.args
            .modules
            .iter()
            .find(|k| module_name(k) == name)
            .cloned()
    }

    /// Reloads the module that holds `driver`'s `disable_vga` with `params` (and the modules
    /// that use it, in `--module` order).
    fn reload_vga_param(&self, driver: &str, params: &str) -> Result<(), String> {
        let core = if driver == UPSTREAM {
            "vfio_pci"
        } else {
            "vfio_pci_common"
        };
        let holders: Vec<String> = std::fs::read_dir(format!("/sys/module/{core}/holders"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        // Unload in reverse load order, reload in load order.
        let order: Vec<PathBuf> = self
            .args
            .modules
            .iter()
            .filter(|k| holders.contains(&module_name(k)))
            .cloned()
            .collect();
        for ko in order.iter().rev() {
            kmod::unload(&module_name(ko))
                .map_err(|e| format!("unload {}: {e}", module_name(ko)))?;
        }
        kmod::unload(core).map_err(|e| format!("unload {core}: {e}"))?;
        let ko = self
            .ko_of(core)
            .ok_or_else(|| format!("no --module for {core}"))?;
        load_with(&ko, params)?;
        for ko in &order {
            load_with(ko, "")?;
        }
        let now = std::fs::read_to_string(format!("/sys/module/{core}/parameters/disable_vga"))
            .map_err(s)?;
        let want = if params.contains("disable_vga=1") {
            "Y"
        } else {
            "N"
        };
        if now.trim() != want {
            return Err(format!(
                "{core} disable_vga is {} after the reload",
                now.trim()
            ));
        }
        Ok(())
    }

    /// The VGA checks (see the module documentation); before any other check binds a device.
    pub(crate) fn vga_checks(&mut self) {
        let devices: Vec<(Bdf, String)> = self
            .args
            .devices
            .iter()
            .filter(|(b, _)| {
                std::fs::read_to_string(self.sys.device_dir(b).join("class"))
                    .map(|c| c.trim().starts_with("0x03"))
                    .unwrap_or(false)
            })
            .cloned()
            .collect();
        if devices.is_empty() {
            return;
        }
        let targets = vga_class_devices(self);
        self.r.info(format!(
            "vga: display devices {:?}, VGA-class {:?}, arbiter at start: {}",
            devices
                .iter()
                .map(|(b, l)| format!("{l}={}", b.as_str()))
                .collect::<Vec<_>>(),
            targets
                .iter()
                .map(|b| b.as_str().to_string())
                .collect::<Vec<_>>(),
            arbiter(&targets)
        ));
        // The first driver of the boot evicts the framebuffer (see the module documentation).
        let order: Vec<&str> = match self.args.mode {
            Mode::Iommu => vec![OURS, UPSTREAM],
            Mode::NoIommu => vec![UPSTREAM, OURS],
        };
        for (bdf, label) in &devices {
            let is_vga = targets.contains(bdf);
            let mut runs: BTreeMap<&str, Transcript> = BTreeMap::new();
            for (i, d) in order.iter().enumerate() {
                let fb_before = framebuffer();
                let log0 = kmod::kmsg().map(|l| l.len()).unwrap_or(0);
                let mut t = Transcript::default();
                session(self, bdf, d, &targets, &mut t);
                let fb_after = framebuffer();
                let log = kmod::kmsg().unwrap_or_default();
                let deactivated = log.iter().skip(log0).any(|l| l.contains(DEACTIVATE));
                if is_vga {
                    self.r.check(&format!("vga-evict-{label}-{d}"), || {
                        if fb_after.0 {
                            return Err(format!("framebuffer still there after the bind: {VESA_FB} (driver {:?})", fb_after.1));
                        }
                        if i == 0 && !(fb_before.0 && fb_before.1 == "vesa-framebuffer") {
                            return Err(format!("no {VESA_FB} with vesafb bound before the first bind of the boot ({fb_before:?}): nothing to evict (is the guest booted with vga=?)"));
                        }
                        if !deactivated {
                            return Err(format!("no \"{DEACTIVATE}\" in the kernel log of the bind"));
                        }
                        Ok(())
                    });
                    if i == 0 {
                        self.r.info(format!("vga: {d} bound {label} first: framebuffer before {fb_before:?}, after {fb_after:?}"));
                        for l in log.iter().skip(log0) {
                            self.r.info(format!("vga: kmsg: {l}"));
                        }
                    }
                }
                for (k, v) in &t.recs {
                    if self.args.regions_trace.iter().any(|x| x == label) {
                        self.r.info(format!("vga-trace {label} {d}: {k}: {v}"));
                    }
                }
                let broken = t.broken.clone();
                let region_ok = !is_vga
                    || t.recs
                        .iter()
                        .any(|(k, v)| k == "region info 8 argsz 32" && v.starts_with("20000000"));
                let waited = !is_vga
                    || targets.len() < 2
                    || t.recs
                        .iter()
                        .any(|(k, v)| k.starts_with("read of 0x3cc while") && v == "waits");
                self.r.check(&format!("vga-{label}-{d}"), || {
                    if !broken.is_empty() {
                        return Err(broken.join("; "));
                    }
                    if !region_ok {
                        return Err("no VGA region (index 8) on a VGA device".into());
                    }
                    if !waited {
                        return Err("a VGA region access did not wait while another device held the arbiter's lock".into());
                    }
                    Ok(())
                });
                runs.insert(d, t);
            }
            self.r
                .check(&format!("vga-differential-{label}-{OURS}"), || {
                    diff_runs(&runs)
                });
        }
        self.vga_disable_checks(&devices, &targets);
    }

    /// `disable_vga=1` under both drivers, on the VGA-class devices.
    fn vga_disable_checks(&mut self, devices: &[(Bdf, String)], targets: &[Bdf]) {
        let Some((bdf, label)) = devices.iter().find(|(b, _)| targets.contains(b)).cloned() else {
            return;
        };
        let mut runs: BTreeMap<&str, Transcript> = BTreeMap::new();
        for d in [UPSTREAM, OURS] {
            let mut t = Transcript::default();
            let r = self.reload_vga_param(d, "disable_vga=1");
            if let Err(e) = &r {
                t.broken.push(e.clone());
            } else {
                session(self, &bdf, d, targets, &mut t);
            }
            let back = self.reload_vga_param(d, "");
            let gone = t
                .recs
                .iter()
                .any(|(k, v)| k == "region info 8 argsz 32" && v == "EINVAL(22)");
            let broken = t.broken.clone();
            self.r.check(&format!("vga-disable-vga-{label}-{d}"), || {
                back.clone()?;
                if !broken.is_empty() {
                    return Err(broken.join("; "));
                }
                if !gone {
                    return Err("the VGA region is still offered with disable_vga=1".into());
                }
                Ok(())
            });
            runs.insert(d, t);
        }
        self.r.check(
            &format!("vga-disable-vga-differential-{label}-{OURS}"),
            || diff_runs(&runs),
        );
    }
}
