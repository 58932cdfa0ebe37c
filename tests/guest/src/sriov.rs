// SPDX-License-Identifier: GPL-2.0
//! `regress-sriov-d3-race-<driver>`: a PF must not be put in D3 under its VFs.
//!
//! The PF is QEMU's `nvme` with SR-IOV (`--sriov-pf`, two VFs). Its user (this process, through
//! the VFIO device fd) writes D3hot and then D0 into PMCSR in a loop, while the main thread
//! enables and disables the VFs through `sriov_numvfs`. The VFs exist (their `virtfnN` links
//! appear) well before `pci_enable_sriov` returns and the PCI core counts them, because each is
//! added and probed first (the PF driver's bus notifier hands them to the same driver). The
//! rule (upstream `sriov_active`, set under the memory lock before `pci_enable_sriov`) is that
//! no D3 write takes effect from then on; the defect was a check on the PCI core's VF count,
//! which let the PF go to D3hot in that window.
//!
//! A sample is a violation when `virtfn0` existed both before the D3 write and after the
//! physical PMCSR (read through sysfs, not through VFIO) showed D3hot, and at most one
//! `sriov_numvfs` write began or ended in between (so a full disable and re-enable cannot have
//! happened inside the sample). Samples taken while VFs existed are counted and must be
//! non-zero, so the check cannot pass without having looked.
//!
//! The first enable also checks that the VFs came up on the PF's driver (the bus notifier sets
//! their `driver_override`). Upstream C `vfio-pci` is the control; its `enable_sriov` parameter is set for the check and
//! restored afterwards.

use crate::Suite;
use pcibind::Bdf;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Config space region offset (`VFIO_PCI_CONFIG_REGION_INDEX` << 40).
const CONFIG: u64 = 7 << 40;
const PCI_CAP_ID_PM: u8 = 0x01;
const PCI_PM_CTRL: u64 = 4;
const D3HOT: u16 = 3;
/// How many VFs each enable asks for (the PF offers two).
const NUM_VFS: &str = "2";
/// How long the enable/disable loop runs.
const SECONDS: u64 = 6;
const UPSTREAM_ENABLE_SRIOV: &str = "/sys/module/vfio_pci/parameters/enable_sriov";

fn read_cfg(f: &File, off: u64, buf: &mut [u8]) -> Result<(), String> {
    f.read_exact_at(buf, CONFIG + off)
        .map_err(|e| format!("config read at {off:#x}: {e}"))
}

/// The PM capability's offset, walked through the VFIO config region.
pub(crate) fn pm_cap(f: &File) -> Result<u64, String> {
    let mut b = [0u8; 1];
    read_cfg(f, 0x34, &mut b)?;
    let mut pos = b[0] & !3;
    for _ in 0..48 {
        if pos < 0x40 {
            break;
        }
        let mut hdr = [0u8; 2];
        read_cfg(f, u64::from(pos), &mut hdr)?;
        if hdr[0] == PCI_CAP_ID_PM {
            return Ok(u64::from(pos));
        }
        pos = hdr[1] & !3;
    }
    Err("no PM capability".into())
}

/// The PF's power state as the hardware has it (sysfs reads the real config space).
fn physical_state(config: &File, pm: u64) -> Result<u16, String> {
    let mut b = [0u8; 2];
    config
        .read_exact_at(&mut b, pm + PCI_PM_CTRL)
        .map_err(|e| format!("sysfs config read of PMCSR: {e}"))?;
    Ok(u16::from_le_bytes(b) & 3)
}

pub(crate) fn write_pmcsr(f: &File, pm: u64, v: u16) {
    // A refused state change is not an error for the user: the write "succeeds" and the
    // state stays. Only the physical state matters here.
    let _ = f.write_at(&v.to_le_bytes(), CONFIG + pm + PCI_PM_CTRL);
}

struct Sampler {
    samples_with_vfs: u64,
    violations: u64,
}

/// The PF user's loop: D3hot, look, D0.
fn sample_loop(
    f: &File,
    config: &File,
    pm: u64,
    virtfn0: &std::path::Path,
    gen: &AtomicU64,
    stop: &AtomicBool,
) -> Result<Sampler, String> {
    let mut pmcsr = [0u8; 2];
    read_cfg(f, pm + PCI_PM_CTRL, &mut pmcsr)?;
    let d0 = u16::from_le_bytes(pmcsr) & !3;
    let mut s = Sampler {
        samples_with_vfs: 0,
        violations: 0,
    };
    while !stop.load(Ordering::Relaxed) {
        let g0 = gen.load(Ordering::SeqCst);
        let before = virtfn0.symlink_metadata().is_ok();
        write_pmcsr(f, pm, d0 | D3HOT);
        let state = physical_state(config, pm)?;
        let after = virtfn0.symlink_metadata().is_ok();
        let g1 = gen.load(Ordering::SeqCst);
        write_pmcsr(f, pm, d0);
        if before && after && g1 - g0 <= 1 {
            s.samples_with_vfs += 1;
            if state == D3HOT {
                s.violations += 1;
            }
        }
    }
    Ok(s)
}

fn set_numvfs(path: &std::path::Path, n: &str, gen: &AtomicU64) -> Result<(), String> {
    gen.fetch_add(1, Ordering::SeqCst);
    let r = std::fs::write(path, n);
    gen.fetch_add(1, Ordering::SeqCst);
    r.map_err(|e| format!("echo {n} > sriov_numvfs: {e}"))
}

impl Suite {
    pub(crate) fn sriov_checks(&mut self) {
        let Some(bdf) = self.args.sriov_pf.clone() else {
            self.r.check("regress-sriov-pf-present", || {
                Err("no --sriov-pf given".into())
            });
            return;
        };
        for d in self.args.drivers.clone() {
            let name = format!("regress-sriov-d3-race-{d}");
            let upstream_param = if d == "vfio-pci" {
                std::fs::read_to_string(UPSTREAM_ENABLE_SRIOV).ok()
            } else {
                None
            };
            if upstream_param.is_some() {
                let _ = std::fs::write(UPSTREAM_ENABLE_SRIOV, "Y");
            }
            let dev = crate::config::attach(self, &bdf, &d);
            let dir = self.sys.device_dir(&bdf);
            self.r.check(&name, || {
                let dev = dev.as_ref().map_err(Clone::clone)?;
                race(&dev.file, &bdf, &dir, &d)
            });
            let _ = std::fs::write(dir.join("sriov_numvfs"), "0");
            crate::config::detach(self, &bdf, dev.ok());
            if let Some(v) = upstream_param {
                let _ = std::fs::write(UPSTREAM_ENABLE_SRIOV, v.trim());
            }
        }
    }
}

/// The driver bound to `virtfn0` (`None` when it has none).
fn vf_driver(dir: &std::path::Path) -> Option<String> {
    let link = std::fs::read_link(dir.join("virtfn0/driver")).ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
}

fn race(f: &File, bdf: &Bdf, dir: &std::path::Path, driver: &str) -> Result<(), String> {
    let pm = pm_cap(f)?;
    let config = File::open(dir.join("config")).map_err(|e| format!("open sysfs config: {e}"))?;
    let numvfs = dir.join("sriov_numvfs");
    let gen = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let f = f.try_clone().map_err(|e| format!("dup device fd: {e}"))?;
        let virtfn0 = dir.join("virtfn0");
        let (gen, stop) = (gen.clone(), stop.clone());
        std::thread::spawn(move || sample_loop(&f, &config, pm, &virtfn0, &gen, &stop))
    };
    let end = Instant::now() + Duration::from_secs(SECONDS);
    let mut cycles = 0u64;
    let mut result = Ok(());
    while Instant::now() < end {
        if let Err(e) = set_numvfs(&numvfs, NUM_VFS, &gen) {
            result = Err(e);
            break;
        }
        if cycles == 0 {
            // The PF driver's bus notifier sets each new VF's `driver_override` to its own
            // name, so the VFs come up on the same driver.
            let vf = vf_driver(dir);
            if vf.as_deref() != Some(driver) {
                result = Err(format!("virtfn0 is bound to {vf:?}, expected {driver}"));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
        if let Err(e) = set_numvfs(&numvfs, "0", &gen) {
            result = Err(e);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        cycles += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let s = sampler
        .join()
        .map_err(|_| "the sampling thread panicked".to_string())??;
    result?;
    println!(
        "INFO regress-sriov-d3-race ({bdf}): {cycles} enable/disable cycles, {} samples with VFs present",
        s.samples_with_vfs
    );
    if s.violations > 0 {
        return Err(format!(
            "the PF was in D3hot under its VFs in {} of {} samples ({cycles} enable/disable cycles)",
            s.violations, s.samples_with_vfs
        ));
    }
    if s.samples_with_vfs == 0 {
        return Err(format!(
            "no sample while VFs existed in {cycles} enable/disable cycles: the check saw nothing"
        ));
    }
    Ok(())
}
