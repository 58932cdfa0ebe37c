// SPDX-License-Identifier: GPL-2.0
//! Checks of the SDK's config overlay API through the test-only variant
//! `vfio-pci-test-overlay` (tests/variants/overlay) bound to edu:
//! - `config-overlay-read-edu`: 0xfc reads the device's value taken at open, 0xf8 reads its
//!   fixed value through the variant's read hook;
//! - `config-overlay-write-edu`: writes change only the writable bits, reach the variant's
//!   write hook, and never the device (its real config space, read through sysfs, is as
//!   before).

use crate::{find_nodes, s, vfio, Suite};
use pcibind::Bdf;
use std::os::unix::fs::FileExt;

const DRIVER: &str = "vfio-pci-test-overlay";
const CONFIG: u64 = 7 << 40;

fn rd(f: &std::fs::File, off: u64, n: usize) -> Result<u32, String> {
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b[..n], CONFIG + off).map_err(|e| format!("read {off:#x}: {e}"))?;
    Ok(u32::from_le_bytes(b))
}

fn wr(f: &std::fs::File, off: u64, n: usize, v: u32) -> Result<(), String> {
    f.write_all_at(&v.to_le_bytes()[..n], CONFIG + off).map_err(|e| format!("write {off:#x}: {e}"))
}

/// The device's real config dword at `off`, as the host sees it.
fn host_dword(bdf: &Bdf, off: usize) -> Result<u32, String> {
    let cfg = std::fs::read(format!("/sys/bus/pci/devices/{bdf}/config")).map_err(s)?;
    let b = cfg.get(off..off + 4).ok_or("short sysfs config")?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl Suite {
    pub(crate) fn overlay_checks(&mut self) {
        let Some(edu) = self.args.devices.iter().find(|(_, l)| l == "edu").map(|(b, _)| b.clone()) else {
            return;
        };
        if !self.sys.driver_loaded(DRIVER) {
            self.r.check("config-overlay-driver", || Err(format!("{DRIVER} is not registered")));
            return;
        }
        let _ = self.sys.unbind(&edu);
        let (mode, iommu_type) = (self.args.mode, self.iommu_type());
        let sys = &self.sys;
        let mut dev = None;
        let mut before = (0u32, 0u32);
        self.r.check("config-overlay-bind-edu", || {
            before = (host_dword(&edu, 0xf8)?, host_dword(&edu, 0xfc)?);
            sys.bind(&edu, DRIVER).map_err(s)?;
            let nodes = find_nodes(sys, mode, &edu)?;
            dev = Some(vfio::open_via_group(&nodes.group, &edu.to_string(), iommu_type)?);
            Ok(())
        });
        if let Some(d) = dev.as_ref() {
            let f = &d.file;
            self.r.check("config-overlay-read-edu", || {
                let asls = rd(f, 0xfc, 4)?;
                if asls != before.1 {
                    return Err(format!("0xfc reads {asls:#x}, the device had {:#x} at open", before.1));
                }
                let v = rd(f, 0xf8, 2)?;
                if v != 0x0000 {
                    return Err(format!("0xf8 reads {v:#06x}; expected 0x0000 (low byte 0x00, no writes yet)"));
                }
                Ok(())
            });
            self.r.check("config-overlay-write-edu", || {
                wr(f, 0xfc, 4, 0xffff_ffff)?;
                let asls = rd(f, 0xfc, 4)?;
                let want = 0xffff_0000 | (before.1 & 0xffff);
                if asls != want {
                    return Err(format!("0xfc reads {asls:#x} after writing all ones; expected {want:#x}"));
                }
                wr(f, 0xf8, 2, 0x1234)?;
                let v = rd(f, 0xf8, 2)?;
                // Low byte writable (0x34); the read hook puts the write count (2) on top.
                if v != 0x0234 {
                    return Err(format!("0xf8 reads {v:#06x} after writing 0x1234; expected 0x0234"));
                }
                let after = (host_dword(&edu, 0xf8)?, host_dword(&edu, 0xfc)?);
                if after != before {
                    return Err(format!("the device's own config changed: {before:x?} -> {after:x?}"));
                }
                Ok(())
            });
        }
        drop(dev);
        let _ = self.sys.unbind(&edu);
    }
}
