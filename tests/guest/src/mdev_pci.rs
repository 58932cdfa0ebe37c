// SPDX-License-Identifier: GPL-2.0
//! The mdev-pci sample (`samples/mdev_pci`, driver `vfio-mdev-pci`) on `edu`, through sysfs and
//! the VFIO uAPI only (`--suite mdev`, and in the full suite):
//! - `mdev-type-sysfs`: bound to edu, the function is an mdev parent with one type
//!   `vfio-mdev-pci-edu` (`name`, `description`, `device_api` `vfio-pci`,
//!   `available_instances` 1) and no VFIO device of its own;
//! - `mdev-create`: a UUID written to `create` makes the mdev, in a group of its own;
//!   `available_instances` drops to 0; `mdev-second-instance-eusers`: a second `create` is
//!   `EUSERS` (the mdev core's answer when no instance is left);
//! - `mdev-open-group` (type1 container, in both modes: the group is an emulated-IOMMU one)
//!   and `mdev-open-cdev` (iommufd, when the kernel made `vfio-dev/vfioN`): `GET_INFO` is a PCI
//!   device, `mdev-config-ids` reads the parent's IDs through the emulated config space;
//! - `mdev-no-bus-master`: COMMAND's bus-master bit reads back as written, and the parent
//!   function never gets it (its sysfs config);
//! - `mdev-bar-rw`, `mdev-bar-mmap`: edu's liveness and factorial registers through
//!   pread/pwrite and through a mapping; `mdev-bar-threads`: four threads at once;
//!   `mdev-mmap-zap-decode-off`: a mapping faults with SIGBUS while memory decode is off;
//! - `mdev-intx`: edu's interrupt on an eventfd through the common INTx code (auto-mask,
//!   unmask, masking, the unmask eventfd); `mdev-msi-needs-bus-master`: MSI enables, but
//!   nothing arrives (an MSI is a DMA write, and the mdev never masters the bus);
//! - `mdev-reset`, `mdev-no-hot-reset` (`ENOTTY`);
//! - the `edu-msi` type (edu's DMA registers mediated by the sample):
//!   `mdev-types-share-one-instance` (`EUSERS` on the other type too), `mdev-msi` (delivered;
//!   the parent masters the bus exactly while MSI is on, the user's COMMAND unchanged),
//!   `mdev-msi-dma-registers-mediated` (read back, never reach the device, a transfer start is
//!   `EPERM`), `mdev-msi-sparse-mmap` (page 0 not mappable, the rest is),
//!   `mdev-msi-threads` (window access and MSI on/off from several threads),
//!   `mdev-msi-intx-and-reset`;
//! - `mdev-unbind-parent-while-open`: the parent's unbind signals the mdev's REQ eventfd and
//!   waits until the mdev is closed (the VFIO core's rule, through the mdev core's removal);
//! - `mdev-remove`, `mdev-parent-rebind-generic`: after removal the parent is intact and
//!   `vfio-pci-generic` takes it.

use crate::irq::{self, fds, set_irqs, EventFd, EFD, NONE, TRIG};
use crate::migration::{bar_rd, bar_wr};
use crate::{s, vfio, Suite};
use pcibind::Bdf;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DRIVER: &str = "vfio-mdev-pci";
const TYPE: &str = "vfio-mdev-pci-edu";
/// The type whose DMA engine the sample mediates, so that MSI works.
const TYPE_MSI: &str = "vfio-mdev-pci-edu-msi";
const UUID: &str = "5b1c9ad2-6f5e-4b8e-9d1a-6d2c0e00ed01";
const UUID2: &str = "5b1c9ad2-6f5e-4b8e-9d1a-6d2c0e00ed02";
const MSI: u32 = 1;

const LIVENESS: u64 = 0x04;
const FACTORIAL: u64 = 0x08;
const STATUS: u64 = 0x20;

fn type_dir(bdf: &Bdf) -> String {
    type_dir_of(bdf, TYPE)
}

fn type_dir_of(bdf: &Bdf, mtype: &str) -> String {
    format!(
        "/sys/bus/pci/devices/{}/mdev_supported_types/{mtype}",
        bdf.as_str()
    )
}

/// edu's DMA registers (source, destination, count, command: 8 bytes each).
const DMA_SRC: u64 = 0x80;
const DMA_CNT: u64 = 0x90;
const DMA_CMD: u64 = 0x98;

fn mdev_dir(uuid: &str) -> String {
    format!("/sys/bus/mdev/devices/{uuid}")
}

fn read_attr(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|v| v.trim_end().to_string())
        .map_err(|e| format!("{path}: {e}"))
}

fn write_attr(path: &str, v: &str) -> Result<(), i32> {
    std::fs::write(path, v).map_err(|e| e.raw_os_error().unwrap_or(0))
}

fn cfg_rd(f: &File, off: u64, n: usize) -> Result<u32, String> {
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b[..n], vfio::CONFIG_BASE as u64 + off)
        .map_err(|e| format!("config read {off:#x}: {e}"))?;
    Ok(u32::from_le_bytes(b))
}

fn cfg_wr16(f: &File, off: u64, v: u16) -> Result<(), String> {
    f.write_all_at(&v.to_le_bytes(), vfio::CONFIG_BASE as u64 + off)
        .map_err(|e| format!("config write {off:#x}: {e}"))
}

/// The parent's COMMAND register as the host sees it.
fn parent_command(bdf: &Bdf) -> Result<u16, String> {
    let path = format!("/sys/bus/pci/devices/{}/config", bdf.as_str());
    let f = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    let mut b = [0u8; 2];
    f.read_exact_at(&mut b, 4)
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(u16::from_le_bytes(b))
}

/// liveness (inverts what is written) and factorial (5! = 120), through pread/pwrite.
fn edu_works(f: &File, tag: u32) -> Result<(), String> {
    bar_wr(f, LIVENESS, tag)?;
    let got = bar_rd(f, LIVENESS)?;
    if got != !tag {
        return Err(format!("liveness: wrote {tag:#x}, read {got:#x}"));
    }
    bar_wr(f, FACTORIAL, 5)?;
    let end = Instant::now() + Duration::from_secs(2);
    while bar_rd(f, STATUS)? & 1 != 0 {
        if Instant::now() > end {
            return Err("factorial still computing after 2 s".into());
        }
    }
    let got = bar_rd(f, FACTORIAL)?;
    if got != 120 {
        return Err(format!("factorial of 5 read {got}"));
    }
    Ok(())
}

/// The mdev's group node (`/dev/vfio/N`: an emulated-IOMMU group, in both modes).
fn group_node(uuid: &str) -> Result<String, String> {
    let link = std::fs::read_link(format!("{}/iommu_group", mdev_dir(uuid)))
        .map_err(|e| format!("{uuid}/iommu_group: {e}"))?;
    let g = link
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or("iommu_group link without a name")?;
    let node = format!("/dev/vfio/{g}");
    let end = Instant::now() + Duration::from_secs(2);
    while !Path::new(&node).exists() {
        if Instant::now() > end {
            return Err(format!("{node} did not appear"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(node)
}

/// The mdev's cdev, if the kernel offers one.
fn cdev_node(uuid: &str) -> Option<String> {
    let dir = std::fs::read_dir(format!("{}/vfio-dev", mdev_dir(uuid))).ok()?;
    dir.flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("vfio"))
        .map(|n| format!("/dev/vfio/devices/{n}"))
}

/// Opens the mdev through its group, with a type1 container (emulated IOMMU) whatever the
/// mode, and memory decode on.
fn open_group(uuid: &str) -> Result<vfio::Device, String> {
    let node = group_node(uuid)?;
    let d = vfio::open_via_group(&node, uuid, vfio::VFIO_TYPE1v2_IOMMU)?;
    irq::command_set(&d.file, 0x2)?;
    Ok(d)
}

impl Suite {
    pub(crate) fn mdev_checks(&mut self) {
        let Some(edu) = self.label_bdf("edu") else {
            self.r
                .check("mdev-devices", || Err("needs --device ...=edu".into()));
            return;
        };
        if !self.sys.driver_loaded(DRIVER) {
            self.r
                .check("mdev-driver", || Err(format!("{DRIVER} is not registered")));
            return;
        }
        let sys = &self.sys;
        let t = type_dir(&edu);
        self.r.check("mdev-type-sysfs", || {
            let _ = sys.unbind(&edu);
            sys.bind(&edu, DRIVER).map_err(s)?;
            let want = [
                ("name", "edu"),
                ("device_api", "vfio-pci"),
                ("available_instances", "1"),
            ];
            for (attr, v) in want {
                let got = read_attr(&format!("{t}/{attr}"))?;
                if got != v {
                    return Err(format!("{attr}: {got:?}, expected {v:?}"));
                }
            }
            let d = read_attr(&format!("{t}/description"))?;
            if !d.contains("no DMA") {
                return Err(format!("description {d:?} does not say there is no DMA"));
            }
            let own = format!("/sys/bus/pci/devices/{}/vfio-dev", edu.as_str());
            if Path::new(&own).exists() {
                return Err("the parent function has a VFIO device of its own".into());
            }
            Ok(())
        });
        let created = write_attr(&format!("{t}/create"), UUID);
        self.r.check("mdev-create", || {
            created.map_err(|e| format!("create: errno {e}"))?;
            if !Path::new(&mdev_dir(UUID)).exists() {
                return Err(format!("{} missing", mdev_dir(UUID)));
            }
            let n = read_attr(&format!("{t}/available_instances"))?;
            if n != "0" {
                return Err(format!("available_instances {n} with the instance created"));
            }
            Ok(())
        });
        self.r.check("mdev-second-instance-eusers", || {
            match write_attr(&format!("{t}/create"), UUID2) {
                Err(e) if e == libc::EUSERS => Ok(()),
                Err(e) => Err(format!("second create: errno {e}, expected EUSERS")),
                Ok(()) => {
                    let _ = write_attr(&format!("{}/remove", mdev_dir(UUID2)), "1");
                    Err("a second instance was created".into())
                }
            }
        });
        let dev = open_group(UUID);
        let mut dev = match dev {
            Ok(d) => {
                self.r.check("mdev-open-group", || Ok(()));
                Some(d)
            }
            Err(e) => {
                self.r.check("mdev-open-group", || Err(e));
                None
            }
        };
        if let Some(d) = &dev {
            self.mdev_device_checks(&edu, &d.file);
        }
        self.r.check("mdev-no-hot-reset", || {
            let f = &dev.as_ref().ok_or("not open")?.file;
            let (r, _, _) = vfio::hot_reset_info(f, 4);
            match r {
                Err(e) if e == libc::ENOTTY => {}
                r => return Err(format!("GET_PCI_HOT_RESET_INFO: {r:?}, expected ENOTTY")),
            }
            match vfio::hot_reset(f, 0, &[], None) {
                e if e == libc::ENOTTY => Ok(()),
                e => Err(format!("PCI_HOT_RESET: errno {e}, expected ENOTTY")),
            }
        });
        // The cdev with iommufd, once the group user is gone (one user at a time).
        dev = None;
        self.r.check("mdev-open-cdev", || {
            let Some(c) = cdev_node(UUID) else {
                // No cdev is fine only for a kernel without VFIO_DEVICE_CDEV.
                if Path::new("/dev/vfio/devices").exists() {
                    return Err("the kernel has VFIO cdevs but the mdev has none".into());
                }
                return Ok(());
            };
            let d = vfio::open_via_cdev(&c)?;
            irq::command_set(&d.file, 0x2)?;
            edu_works(&d.file, 0x1234_5678)?;
            if cfg_rd(&d.file, 0, 4)? != 0x11e8_1234 {
                return Err("wrong IDs through the cdev".into());
            }
            Ok(())
        });
        drop(dev);
        self.mdev_msi_type_checks(&edu);
        self.mdev_unbind_while_open(&edu);
        self.r.check("mdev-remove", || {
            if Path::new(&mdev_dir(UUID)).exists() {
                write_attr(&format!("{}/remove", mdev_dir(UUID)), "1")
                    .map_err(|e| format!("remove: errno {e}"))?;
            }
            if Path::new(&mdev_dir(UUID)).exists() {
                return Err("the mdev is still there".into());
            }
            if Path::new(&t).exists() {
                let n = read_attr(&format!("{t}/available_instances"))?;
                if n != "1" {
                    return Err(format!("available_instances {n} after remove"));
                }
            }
            Ok(())
        });
        let sys = &self.sys;
        let mode = self.args.mode;
        let iommu_type = self.iommu_type();
        self.r.check("mdev-parent-rebind-generic", || {
            let _ = sys.unbind(&edu);
            if !sys.driver_loaded("vfio-pci-generic") {
                return Ok(());
            }
            sys.bind(&edu, "vfio-pci-generic").map_err(s)?;
            let nodes = crate::find_nodes(sys, mode, &edu)?;
            let d = vfio::open_via_group(&nodes.group, edu.as_str(), iommu_type)?;
            irq::command_set(&d.file, 0x2)?;
            let r = edu_works(&d.file, 0x0bad_cafe);
            drop(d);
            let _ = sys.unbind(&edu);
            r
        });
    }

    /// The checks on an open mdev.
    fn mdev_device_checks(&mut self, edu: &Bdf, f: &File) {
        self.r.check("mdev-get-info", || {
            let i = vfio::device_info(f, 24).map_err(|e| format!("GET_INFO: {e}"))?;
            if i.flags & vfio::VFIO_DEVICE_FLAGS_PCI == 0 || i.num_regions < 9 || i.num_irqs < 5 {
                return Err(format!(
                    "GET_INFO flags {:#x} regions {} irqs {}",
                    i.flags, i.num_regions, i.num_irqs
                ));
            }
            Ok(())
        });
        self.r.check("mdev-config-ids", || {
            let ids = cfg_rd(f, 0, 4)?;
            if ids != 0x11e8_1234 {
                return Err(format!("vendor/device {ids:#010x}, expected 0x11e81234"));
            }
            Ok(())
        });
        self.r.check("mdev-no-bus-master", || {
            let cmd = cfg_rd(f, 4, 2)? as u16;
            cfg_wr16(f, 4, cmd | 0x6)?;
            let seen = cfg_rd(f, 4, 2)? as u16;
            let host = parent_command(edu)?;
            cfg_wr16(f, 4, (cmd | 0x2) & !0x4)?;
            if seen & 0x6 != 0x6 {
                return Err(format!(
                    "COMMAND reads {seen:#x} after writing MEMORY|MASTER"
                ));
            }
            if host & 0x4 != 0 || host & 0x2 == 0 {
                return Err(format!(
                    "the parent's COMMAND is {host:#x}: expected MEMORY, no MASTER"
                ));
            }
            Ok(())
        });
        self.r.check("mdev-bar-rw", || edu_works(f, 0x55aa_00ff));
        self.r.check("mdev-bar-mmap", || {
            let m = vfio::Mapping::new(f, vfio::region_offset(0), 4096, libc::MAP_SHARED)
                .map_err(|e| format!("mmap BAR0: errno {e}"))?;
            m.write32(LIVENESS as usize, 0x1357_9bdf);
            let got = m.read32(LIVENESS as usize);
            if got != !0x1357_9bdf {
                return Err(format!("liveness through the mapping read {got:#x}"));
            }
            m.write32(FACTORIAL as usize, 6);
            let end = Instant::now() + Duration::from_secs(2);
            while m.read32(STATUS as usize) & 1 != 0 {
                if Instant::now() > end {
                    return Err("factorial still computing after 2 s".into());
                }
            }
            match m.read32(FACTORIAL as usize) {
                720 => Ok(()),
                v => Err(format!("factorial of 6 through the mapping read {v}")),
            }
        });
        self.r.check("mdev-mmap-zap-decode-off", || {
            let m = vfio::Mapping::new(f, vfio::region_offset(0), 4096, libc::MAP_SHARED)
                .map_err(|e| format!("mmap BAR0: errno {e}"))?;
            let _ = m.read32(LIVENESS as usize);
            let cmd = cfg_rd(f, 4, 2)? as u16;
            cfg_wr16(f, 4, cmd & !0x2)?;
            let end = vfio::in_child(|| {
                let _ = m.read32(LIVENESS as usize);
                0
            });
            cfg_wr16(f, 4, cmd | 0x2)?;
            if end != vfio::ChildEnd::Signal(libc::SIGBUS) {
                return Err(format!(
                    "a read with memory decode off: {end:?}, expected SIGBUS"
                ));
            }
            bar_wr(f, LIVENESS, 1)?;
            if m.read32(LIVENESS as usize) != !1 {
                return Err("the mapping does not work again after decode on".into());
            }
            Ok(())
        });
        self.r.check("mdev-bar-threads", || {
            let f = Arc::new(f.try_clone().map_err(|e| e.to_string())?);
            let threads: Vec<_> = (0..4u32)
                .map(|i| {
                    let f = Arc::clone(&f);
                    std::thread::spawn(move || -> Result<(), String> {
                        for n in 0..200u32 {
                            let v = (i << 24) | n;
                            let mut b = [0u8; 4];
                            f.write_all_at(&v.to_le_bytes(), vfio::region_offset(0) as u64 + 0x04)
                                .map_err(|e| e.to_string())?;
                            f.read_exact_at(&mut b, vfio::CONFIG_BASE as u64)
                                .map_err(|e| e.to_string())?;
                            if u32::from_le_bytes(b) != 0x11e8_1234 {
                                return Err("config IDs changed under load".into());
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            for t in threads {
                t.join().map_err(|_| "a thread panicked".to_string())??;
            }
            edu_works(&f, 0x2468)
        });
        self.r.check("mdev-intx", || {
            let e = irq::Edu::map(edu)?;
            irq::intx_edu(f, &e)
        });
        self.r.check("mdev-msi-needs-bus-master", || {
            let e = irq::Edu::map(edu)?;
            let trig = EventFd::new()?;
            e.ack();
            set_irqs(f, TRIG | EFD, MSI, 0, 1, &fds(&[trig.fd()]), None)
                .map_err(|e| format!("enable MSI: errno {e}"))?;
            e.raise(1);
            let n = trig.wait(300);
            e.ack();
            set_irqs(f, TRIG | NONE, MSI, 0, 0, &[], None)
                .map_err(|e| format!("disable MSI: errno {e}"))?;
            if n != 0 {
                return Err(format!("{n} MSI signals without bus mastering"));
            }
            Ok(())
        });
        self.r.check("mdev-reset", || {
            match vfio::reset(f) {
                0 => {}
                // edu has no function reset: the common module answers as for vfio-pci.
                e if e == libc::EINVAL => {}
                e => return Err(format!("VFIO_DEVICE_RESET: errno {e}")),
            }
            irq::command_set(f, 0x2)?;
            edu_works(f, 0x7777)
        });
    }

    /// The `edu-msi` type: the sample mediates edu's DMA registers, so the function masters
    /// the bus while MSI is on. Removes the `edu` mdev first (one instance in all) and makes
    /// it again at the end for the unbind check.
    fn mdev_msi_type_checks(&mut self, edu: &Bdf) {
        let t = type_dir(edu);
        let tm = type_dir_of(edu, TYPE_MSI);
        self.r.check("mdev-types-share-one-instance", || {
            let n = read_attr(&format!("{tm}/available_instances"))?;
            let d = read_attr(&format!("{tm}/description"))?;
            if n != "0" || !d.contains("MSI") {
                return Err(format!(
                    "{TYPE_MSI}: available_instances {n}, description {d:?}"
                ));
            }
            match write_attr(&format!("{tm}/create"), UUID2) {
                Err(e) if e == libc::EUSERS => Ok(()),
                Err(e) => Err(format!(
                    "create {TYPE_MSI} beside {TYPE}: errno {e}, expected EUSERS"
                )),
                Ok(()) => {
                    let _ = write_attr(&format!("{}/remove", mdev_dir(UUID2)), "1");
                    Err("a second instance was created on the other type".into())
                }
            }
        });
        let made = write_attr(&format!("{}/remove", mdev_dir(UUID)), "1")
            .and_then(|()| write_attr(&format!("{tm}/create"), UUID2));
        let dev = made
            .map_err(|e| format!("remove {TYPE}, create {TYPE_MSI}: errno {e}"))
            .and_then(|()| open_group(UUID2));
        let d = match dev {
            Ok(d) => {
                self.r.check("mdev-msi-open", || Ok(()));
                Some(d)
            }
            Err(e) => {
                self.r.check("mdev-msi-open", || Err(e));
                None
            }
        };
        if let Some(d) = &d {
            self.mdev_msi_device_checks(edu, &d.file);
        }
        drop(d);
        self.r.check("mdev-msi-remove", || {
            write_attr(&format!("{}/remove", mdev_dir(UUID2)), "1")
                .map_err(|e| format!("remove: errno {e}"))?;
            write_attr(&format!("{t}/create"), UUID)
                .map_err(|e| format!("create {TYPE} again: errno {e}"))
        });
    }

    /// The checks on an open `edu-msi` mdev.
    fn mdev_msi_device_checks(&mut self, edu: &Bdf, f: &File) {
        self.r
            .check("mdev-msi-bar-rw", || edu_works(f, 0x0f0f_f0f0));
        self.r.check("mdev-msi", || {
            let e = irq::Edu::map(edu)?;
            let trig = EventFd::new()?;
            e.ack();
            let user_cmd = cfg_rd(f, 4, 2)? as u16;
            set_irqs(f, TRIG | EFD, MSI, 0, 1, &fds(&[trig.fd()]), None)
                .map_err(|e| format!("enable MSI: errno {e}"))?;
            let during = parent_command(edu)?;
            e.raise(1);
            let n = trig.wait(2000);
            e.ack();
            set_irqs(f, TRIG | NONE, MSI, 0, 0, &[], None)
                .map_err(|e| format!("disable MSI: errno {e}"))?;
            let after = parent_command(edu)?;
            let user_after = cfg_rd(f, 4, 2)? as u16;
            if n == 0 {
                return Err("no MSI on the eventfd".into());
            }
            if during & 0x4 == 0 || after & 0x4 != 0 {
                return Err(format!(
                    "the parent's COMMAND is {during:#x} with MSI on, {after:#x} after: \
                     expected MASTER exactly while MSI is on"
                ));
            }
            if user_after & 0x4 != user_cmd & 0x4 {
                return Err(format!(
                    "the user's COMMAND went {user_cmd:#x} -> {user_after:#x}"
                ));
            }
            Ok(())
        });
        self.r.check("mdev-msi-dma-registers-mediated", || {
            let e = irq::Edu::map(edu)?;
            let device_src = e.read(DMA_SRC as usize);
            bar_wr(f, DMA_SRC, 0x4000_1000)?;
            bar_wr(f, DMA_CNT, 0x80)?;
            if bar_rd(f, DMA_SRC)? != 0x4000_1000 || bar_rd(f, DMA_CNT)? != 0x80 {
                return Err("the DMA registers do not read back what was written".into());
            }
            if e.read(DMA_SRC as usize) != device_src {
                return Err("a DMA register write reached the device".into());
            }
            match f.write_all_at(&1u32.to_le_bytes(), vfio::region_offset(0) as u64 + DMA_CMD) {
                Err(err) if err.raw_os_error() == Some(libc::EPERM) => {}
                r => return Err(format!("starting a transfer: {r:?}, expected EPERM")),
            }
            if e.read(DMA_CMD as usize) & 1 != 0 {
                return Err("the device's DMA engine started".into());
            }
            Ok(())
        });
        self.r.check("mdev-msi-sparse-mmap", || {
            let b =
                vfio::region_info_raw(f, 0, 256).map_err(|e| format!("region info: errno {e}"))?;
            let u32_at = |at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            let u64_at = |at: usize| u64::from(u32_at(at)) | (u64::from(u32_at(at + 4)) << 32);
            let (flags, cap, size) = (u32_at(4), u32_at(12) as usize, u64_at(16));
            if flags & vfio::REGION_FLAG_CAPS == 0 || cap == 0 || cap + 32 > b.len() {
                return Err(format!("BAR0 flags {flags:#x} cap_offset {cap}"));
            }
            let area = (
                u32_at(cap) & 0xffff,
                u32_at(cap + 8),
                u64_at(cap + 16),
                u64_at(cap + 24),
            );
            if area != (1, 1, 0x1000, size - 0x1000) {
                return Err(format!(
                    "sparse mmap {area:x?}: expected one area past page 0"
                ));
            }
            if vfio::Mapping::new(f, vfio::region_offset(0), 4096, libc::MAP_SHARED).is_ok() {
                return Err("page 0 (the DMA registers) could be mapped".into());
            }
            let m = vfio::Mapping::new(f, vfio::region_offset(0) + 0x1000, 4096, libc::MAP_SHARED)
                .map_err(|e| format!("mmap BAR0 page 1: errno {e}"))?;
            let (mapped, read) = (m.read32(0), bar_rd(f, 0x1000)?);
            if mapped != read {
                return Err(format!("page 1 maps {mapped:#x}, reads {read:#x}"));
            }
            Ok(())
        });
        self.r.check("mdev-msi-threads", || {
            let f = Arc::new(f.try_clone().map_err(|e| e.to_string())?);
            let window = (0..2u32).map(|i| {
                let f = Arc::clone(&f);
                std::thread::spawn(move || -> Result<(), String> {
                    for n in 0..200u32 {
                        bar_wr(&f, DMA_SRC + 4 * u64::from(i), n)?;
                        bar_rd(&f, DMA_SRC + 4 * u64::from(i))?;
                        bar_rd(&f, LIVENESS)?;
                    }
                    Ok(())
                })
            });
            let toggler = {
                let f = Arc::clone(&f);
                std::thread::spawn(move || -> Result<(), String> {
                    let trig = EventFd::new()?;
                    for _ in 0..50 {
                        set_irqs(&f, TRIG | EFD, MSI, 0, 1, &fds(&[trig.fd()]), None)
                            .map_err(|e| format!("enable MSI: errno {e}"))?;
                        set_irqs(&f, TRIG | NONE, MSI, 0, 0, &[], None)
                            .map_err(|e| format!("disable MSI: errno {e}"))?;
                    }
                    Ok(())
                })
            };
            let threads: Vec<_> = window.chain([toggler]).collect();
            for t in threads {
                t.join().map_err(|_| "a thread panicked".to_string())??;
            }
            if parent_command(edu)? & 0x4 != 0 {
                return Err("MASTER left on with MSI off".into());
            }
            edu_works(&f, 0x1357)
        });
        self.r.check("mdev-msi-intx-and-reset", || {
            let e = irq::Edu::map(edu)?;
            irq::intx_edu(f, &e)?;
            match vfio::reset(f) {
                0 => {}
                e if e == libc::EINVAL => {}
                e => return Err(format!("VFIO_DEVICE_RESET: errno {e}")),
            }
            irq::command_set(f, 0x2)?;
            edu_works(f, 0x2222)
        });
    }

    /// Unbinding the parent while the mdev is open waits for the mdev's user to close it.
    fn mdev_unbind_while_open(&mut self, edu: &Bdf) {
        let edu = edu.clone();
        self.r.check("mdev-unbind-parent-while-open", || {
            let d = open_group(UUID)?;
            let req = EventFd::new()?;
            set_irqs(&d.file, TRIG | EFD, irq::REQ, 0, 1, &fds(&[req.fd()]), None)
                .map_err(|e| format!("REQ eventfd: errno {e}"))?;
            let unbind = format!("/sys/bus/pci/drivers/{DRIVER}/unbind");
            let bdf = edu.as_str().to_string();
            let t = std::thread::spawn(move || std::fs::write(unbind, bdf));
            // The VFIO core asks the user to let go (the REQ eventfd) and waits.
            let asked = req.wait(2000);
            std::thread::sleep(Duration::from_millis(300));
            let waited = !t.is_finished();
            drop(d);
            let r = t.join().map_err(|_| "unbind thread panicked".to_string())?;
            r.map_err(|e| format!("unbind: {e}"))?;
            if asked == 0 {
                return Err("no request on the REQ eventfd while the unbind waited".into());
            }
            if !waited {
                return Err("the unbind did not wait for the open mdev".into());
            }
            if Path::new(&mdev_dir(UUID)).exists() {
                return Err("the mdev survived its parent's unbind".into());
            }
            Ok(())
        });
    }
}
