// SPDX-License-Identifier: GPL-2.0
//! Binding PCI devices to drivers through sysfs, the way the kernel documents it:
//! `driver_override`, then `unbind` from the current driver, then `drivers_probe`.
//!
//! `driver_override` makes the PCI core match the device against the named driver only, so the
//! bind is deterministic (no `new_id` race, no other device captured by the same ID). Every step
//! is checked: after a bind the device must sit on the requested driver, otherwise the previous
//! override and driver are restored and [`Error::Refused`] says where the device ended up.
//!
//! All file access goes through a [`Backend`] below a configurable root, so the logic is tested
//! on the host against a simulated driver core (see the tests at the end of this file).
//!
//! The rest of the crate: [`select`] picks the driver for a device from its modalias and the
//! modules' `vfio_pci:` aliases (with [`glob`], kmod's `fnmatch`, and [`modinfo`], a `.ko`
//! reader); [`binder`] is the whole `bind` command (select, load the module, bind). Used by
//! `cargo xtask match/bind/unbind` and by the guest tests: one implementation.

pub mod binder;
pub mod glob;
pub mod kernel_log;
pub mod modinfo;
pub mod select;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A normalized PCI address, `dddd:bb:dd.f` (lower case).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bdf(String);

impl Bdf {
    /// Parses `dddd:bb:dd.f` or `bb:dd.f` (domain 0000).
    pub fn parse(s: &str) -> Result<Bdf, Error> {
        let bad = || Error::InvalidBdf(s.to_string());
        let t = s.trim().to_ascii_lowercase();
        let parts: Vec<&str> = t.split(':').collect();
        let (dom, bus, rest) = match parts.as_slice() {
            [b, r] => ("0000", *b, *r),
            [d, b, r] => (*d, *b, *r),
            _ => return Err(bad()),
        };
        let (dev, func) = rest.split_once('.').ok_or_else(bad)?;
        let hex = |x: &str, n: usize| x.len() == n && x.chars().all(|c| c.is_ascii_hexdigit());
        if !hex(dom, 4) || !hex(bus, 2) || !hex(dev, 2) || func.len() != 1 {
            return Err(bad());
        }
        let d = u8::from_str_radix(dev, 16).map_err(|_| bad())?;
        let f = func.parse::<u8>().map_err(|_| bad())?;
        if d > 0x1f || f > 7 {
            return Err(bad());
        }
        Ok(Bdf(format!("{dom}:{bus}:{dev}.{func}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Bdf {
    type Err = Error;
    fn from_str(s: &str) -> Result<Bdf, Error> {
        Bdf::parse(s)
    }
}

/// What can go wrong, with enough context to act on it.
#[derive(Debug)]
pub enum Error {
    /// The string is not a PCI address.
    InvalidBdf(String),
    /// No such device under `bus/pci/devices`.
    NoSuchDevice(Bdf),
    /// The driver is not registered with the PCI bus (module not loaded?).
    DriverNotLoaded(String),
    /// The device did not end up on the requested driver (probe failed or refused it). The
    /// previous state was restored as far as possible: `restored` is the driver it is on now.
    Refused {
        bdf: Bdf,
        driver: String,
        ended_on: Option<String>,
        restored: Option<String>,
    },
    /// A process holds the device (its VFIO group or cdev) open; unbinding would block.
    InUse {
        bdf: Bdf,
        driver: Option<String>,
        holders: Vec<u32>,
    },
    /// The kernel answered a sysfs write with EBUSY.
    Busy { bdf: Bdf, path: PathBuf },
    /// Any other I/O error on a sysfs file.
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidBdf(s) => write!(f, "`{s}` is not a PCI address (expected dddd:bb:dd.f)"),
            Error::NoSuchDevice(b) => write!(f, "no PCI device {b}"),
            Error::DriverNotLoaded(d) => {
                write!(
                    f,
                    "PCI driver `{d}` is not registered (is its module loaded?)"
                )
            }
            Error::Refused {
                bdf,
                driver,
                ended_on,
                restored,
            } => write!(
                f,
                "{bdf} did not bind to `{driver}` (it ended on {}); restored to {} \
                 (see dmesg for the probe error)",
                name_or_none(ended_on),
                name_or_none(restored)
            ),
            Error::InUse {
                bdf,
                driver,
                holders,
            } => write!(
                f,
                "{bdf} (driver {}) is in use by pid(s) {holders:?}; close it first",
                name_or_none(driver)
            ),
            Error::Busy { bdf, path } => {
                write!(f, "{bdf}: the kernel refused {} with EBUSY", path.display())
            }
            Error::Io { path, op, source } => write!(f, "{op} {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for Error {
    // Every variant's text already includes the I/O error it wraps, so nothing is chained
    // (`{:#}` would print it twice).
}

fn name_or_none(d: &Option<String>) -> String {
    d.as_deref()
        .map(|s| format!("`{s}`"))
        .unwrap_or_else(|| "no driver".into())
}

/// File operations below the root; [`RealFs`] is the real thing.
pub trait Backend {
    fn read(&self, path: &Path) -> io::Result<String>;
    fn write(&self, path: &Path, data: &str) -> io::Result<()>;
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;
    fn exists(&self, path: &Path) -> bool;
    fn list(&self, path: &Path) -> io::Result<Vec<String>>;
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl Backend for RealFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn write(&self, path: &Path, data: &str) -> io::Result<()> {
        // One write(2) call: sysfs stores take the whole buffer at once.
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(data.as_bytes())
    }
    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::read_link(path)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn list(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut v: Vec<String> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        Ok(v)
    }
}

/// What sysfs says about one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub bdf: Bdf,
    pub vendor: u16,
    pub device: u16,
    pub subsystem_vendor: Option<u16>,
    pub subsystem_device: Option<u16>,
    pub class: Option<u32>,
    pub modalias: Option<String>,
    pub driver: Option<String>,
    pub driver_override: Option<String>,
    pub iommu_group: Option<u32>,
}

/// The sysfs (and procfs, for the in-use check) view the binder works on.
pub struct Sysfs<B: Backend = RealFs> {
    root: PathBuf,
    proc_root: Option<PathBuf>,
    backend: B,
}

impl Sysfs<RealFs> {
    /// The running system: `/sys` and `/proc`.
    pub fn system() -> Self {
        Sysfs {
            root: "/sys".into(),
            proc_root: Some("/proc".into()),
            backend: RealFs,
        }
    }

    /// A sysfs tree below `root` (e.g. a fake tree in tests); no in-use check.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Sysfs {
            root: root.into(),
            proc_root: None,
            backend: RealFs,
        }
    }
}

fn hex_u32(s: &str) -> Option<u32> {
    u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

fn last_component(p: &Path) -> Option<String> {
    p.file_name().map(|n| n.to_string_lossy().into_owned())
}

impl<B: Backend> Sysfs<B> {
    pub fn with_backend(root: impl Into<PathBuf>, proc_root: Option<PathBuf>, backend: B) -> Self {
        Sysfs {
            root: root.into(),
            proc_root,
            backend,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn bus(&self) -> PathBuf {
        self.root.join("bus/pci")
    }

    /// `<root>/bus/pci/devices/<bdf>`.
    pub fn device_dir(&self, bdf: &Bdf) -> PathBuf {
        self.bus().join("devices").join(bdf.as_str())
    }

    fn io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> Error + 'a {
        move |source| Error::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }

    fn check_device(&self, bdf: &Bdf) -> Result<PathBuf, Error> {
        let d = self.device_dir(bdf);
        if !self.backend.exists(&d) {
            return Err(Error::NoSuchDevice(bdf.clone()));
        }
        Ok(d)
    }

    fn attr(&self, bdf: &Bdf, name: &str) -> Result<String, Error> {
        let p = self.check_device(bdf)?.join(name);
        self.backend
            .read(&p)
            .map(|s| s.trim().to_string())
            .map_err(Self::io(&p, "reading"))
    }

    fn write_dev(&self, bdf: &Bdf, path: &Path, data: &str, op: &'static str) -> Result<(), Error> {
        self.backend
            .write(path, data)
            .map_err(|e| match e.raw_os_error() {
                Some(EBUSY) => Error::Busy {
                    bdf: bdf.clone(),
                    path: path.to_path_buf(),
                },
                Some(ENOENT | ENODEV) if !self.backend.exists(&self.device_dir(bdf)) => {
                    Error::NoSuchDevice(bdf.clone())
                }
                _ => Error::Io {
                    path: path.to_path_buf(),
                    op,
                    source: e,
                },
            })
    }

    /// All PCI devices, sorted.
    pub fn devices(&self) -> Result<Vec<Bdf>, Error> {
        let p = self.bus().join("devices");
        let names = self.backend.list(&p).map_err(Self::io(&p, "listing"))?;
        Ok(names.iter().filter_map(|n| Bdf::parse(n).ok()).collect())
    }

    pub fn vendor_device(&self, bdf: &Bdf) -> Result<(u16, u16), Error> {
        let v = self.attr(bdf, "vendor")?;
        let d = self.attr(bdf, "device")?;
        let bad = |what: &str, s: &str| Error::Io {
            path: self.device_dir(bdf).join(what),
            op: "parsing",
            source: io::Error::new(io::ErrorKind::InvalidData, format!("not a hex id: {s:?}")),
        };
        let v = hex_u32(&v).ok_or_else(|| bad("vendor", &v))? as u16;
        let d = hex_u32(&d).ok_or_else(|| bad("device", &d))? as u16;
        Ok((v, d))
    }

    /// The bound driver's name, if any.
    pub fn driver(&self, bdf: &Bdf) -> Result<Option<String>, Error> {
        let p = self.check_device(bdf)?.join("driver");
        match self.backend.read_link(&p) {
            Ok(t) => Ok(last_component(&t)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io {
                path: p,
                op: "reading link",
                source: e,
            }),
        }
    }

    /// The current `driver_override` (`None` when the kernel shows `(null)` or it is empty).
    pub fn driver_override(&self, bdf: &Bdf) -> Result<Option<String>, Error> {
        let s = self.attr(bdf, "driver_override")?;
        Ok((!s.is_empty() && s != "(null)").then_some(s))
    }

    /// The IOMMU group number, if the device has one.
    pub fn iommu_group(&self, bdf: &Bdf) -> Result<Option<u32>, Error> {
        let p = self.check_device(bdf)?.join("iommu_group");
        match self.backend.read_link(&p) {
            Ok(t) => Ok(last_component(&t).and_then(|n| n.parse().ok())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io {
                path: p,
                op: "reading link",
                source: e,
            }),
        }
    }

    pub fn modalias(&self, bdf: &Bdf) -> Result<String, Error> {
        self.attr(bdf, "modalias")
    }

    /// Everything at once.
    pub fn info(&self, bdf: &Bdf) -> Result<DeviceInfo, Error> {
        let (vendor, device) = self.vendor_device(bdf)?;
        let opt = |n: &str| self.attr(bdf, n).ok().and_then(|s| hex_u32(&s));
        Ok(DeviceInfo {
            bdf: bdf.clone(),
            vendor,
            device,
            subsystem_vendor: opt("subsystem_vendor").map(|v| v as u16),
            subsystem_device: opt("subsystem_device").map(|v| v as u16),
            class: opt("class"),
            modalias: self.modalias(bdf).ok(),
            driver: self.driver(bdf)?,
            driver_override: self.driver_override(bdf)?,
            iommu_group: self.iommu_group(bdf)?,
        })
    }

    /// Whether a PCI driver of this name is registered.
    pub fn driver_loaded(&self, driver: &str) -> bool {
        !driver.is_empty()
            && !driver.contains('/')
            && self
                .backend
                .exists(&self.bus().join("drivers").join(driver))
    }

    /// Whether a loadable module is loaded (`<root>/module/<name>/refcnt`; built-in modules
    /// have no `refcnt`). `-` and `_` are the same in module names.
    pub fn module_loaded(&self, module: &str) -> bool {
        let m = module.replace('-', "_");
        !m.is_empty()
            && !m.contains('/')
            && self
                .backend
                .exists(&self.root.join("module").join(m).join("refcnt"))
    }

    /// The PCI drivers a loaded module registers (`<root>/module/<name>/drivers/pci:<driver>`).
    pub fn module_pci_drivers(&self, module: &str) -> Result<Vec<String>, Error> {
        let m = module.replace('-', "_");
        if m.is_empty() || m.contains('/') {
            return Ok(vec![]);
        }
        let p = self.root.join("module").join(m).join("drivers");
        match self.backend.list(&p) {
            Ok(v) => Ok(v
                .iter()
                .filter_map(|n| n.strip_prefix("pci:"))
                .map(String::from)
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(vec![]),
            Err(e) => Err(Error::Io {
                path: p,
                op: "listing",
                source: e,
            }),
        }
    }

    /// The module that registered a PCI driver (`bus/pci/drivers/<d>/module`), if any.
    pub fn driver_module(&self, driver: &str) -> Result<Option<String>, Error> {
        if !self.driver_loaded(driver) {
            return Ok(None);
        }
        let p = self.bus().join("drivers").join(driver).join("module");
        match self.backend.read_link(&p) {
            Ok(t) => Ok(last_component(&t)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io {
                path: p,
                op: "reading link",
                source: e,
            }),
        }
    }

    /// The `vfioN` name of the device's VFIO cdev, if it has one.
    pub fn vfio_cdev(&self, bdf: &Bdf) -> Result<Option<String>, Error> {
        let p = self.check_device(bdf)?.join("vfio-dev");
        match self.backend.list(&p) {
            Ok(v) => Ok(v.into_iter().find(|n| n.starts_with("vfio"))),
            Err(_) => Ok(None),
        }
    }

    /// Pids that hold the device's VFIO group node or cdev open (needs a proc root).
    pub fn holders(&self, bdf: &Bdf) -> Result<Vec<u32>, Error> {
        let Some(proc_root) = &self.proc_root else {
            return Ok(vec![]);
        };
        let mut targets: Vec<PathBuf> = Vec::new();
        if let Some(g) = self.iommu_group(bdf)? {
            targets.push(format!("/dev/vfio/{g}").into());
            targets.push(format!("/dev/vfio/noiommu-{g}").into());
        }
        if let Some(c) = self.vfio_cdev(bdf)? {
            targets.push(format!("/dev/vfio/devices/{c}").into());
        }
        if targets.is_empty() {
            return Ok(vec![]);
        }
        let me = std::process::id();
        let mut pids = Vec::new();
        for pid in self.backend.list(proc_root).unwrap_or_default() {
            let Ok(n) = pid.parse::<u32>() else { continue };
            if n == me {
                continue;
            }
            let fd_dir = proc_root.join(&pid).join("fd");
            for fd in self.backend.list(&fd_dir).unwrap_or_default() {
                if let Ok(t) = self.backend.read_link(&fd_dir.join(fd)) {
                    if targets.contains(&t) {
                        pids.push(n);
                        break;
                    }
                }
            }
        }
        Ok(pids)
    }

    fn check_not_in_use(&self, bdf: &Bdf) -> Result<(), Error> {
        let holders = self.holders(bdf)?;
        if !holders.is_empty() {
            return Err(Error::InUse {
                bdf: bdf.clone(),
                driver: self.driver(bdf)?,
                holders,
            });
        }
        Ok(())
    }

    /// Sets `driver_override` (`None` clears it).
    pub fn set_override(&self, bdf: &Bdf, driver: Option<&str>) -> Result<(), Error> {
        let p = self.check_device(bdf)?.join("driver_override");
        // An empty write is a no-op for some shells' sake; "\n" clears the override.
        let data = match driver {
            Some(d) => format!("{d}\n"),
            None => "\n".to_string(),
        };
        self.write_dev(bdf, &p, &data, "writing")
    }

    /// Detaches the device from its driver, if it has one; returns the driver it had.
    pub fn detach(&self, bdf: &Bdf) -> Result<Option<String>, Error> {
        let Some(cur) = self.driver(bdf)? else {
            return Ok(None);
        };
        let p = self.device_dir(bdf).join("driver/unbind");
        self.write_dev(bdf, &p, bdf.as_str(), "writing")?;
        Ok(Some(cur))
    }

    /// Asks the PCI core to probe drivers for the device (honours `driver_override`).
    pub fn probe(&self, bdf: &Bdf) -> Result<(), Error> {
        let p = self.bus().join("drivers_probe");
        // The kernel returns an error when no driver took the device; the caller checks the
        // resulting state, which is the only thing that matters.
        match self.write_dev(bdf, &p, bdf.as_str(), "writing") {
            Ok(()) | Err(Error::Io { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Binds `bdf` to `driver` via `driver_override`; on failure restores the previous state.
    /// Returns the driver the device was on before.
    pub fn bind(&self, bdf: &Bdf, driver: &str) -> Result<Option<String>, Error> {
        self.check_device(bdf)?;
        if !self.driver_loaded(driver) {
            return Err(Error::DriverNotLoaded(driver.to_string()));
        }
        let prev_driver = self.driver(bdf)?;
        let prev_override = self.driver_override(bdf)?;
        if prev_driver.as_deref() == Some(driver) {
            // Already there; make the override say so, so a later reprobe keeps it.
            self.set_override(bdf, Some(driver))?;
            return Ok(prev_driver);
        }
        self.check_not_in_use(bdf)?;
        self.set_override(bdf, Some(driver))?;
        let steps = self.detach(bdf).and_then(|_| self.probe(bdf));
        let now = self.driver(bdf)?;
        if steps.is_ok() && now.as_deref() == Some(driver) {
            return Ok(prev_driver);
        }
        // Roll back: previous override, previous driver.
        let _ = self.set_override(bdf, prev_override.as_deref());
        if now.is_some() && now != prev_driver {
            let _ = self.detach(bdf);
        }
        if let Some(pd) = &prev_driver {
            if self.driver(bdf)?.is_none() {
                let bind = self.bus().join("drivers").join(pd).join("bind");
                if self.backend.write(&bind, bdf.as_str()).is_err() {
                    let _ = self.probe(bdf);
                }
            }
        }
        let restored = self.driver(bdf)?;
        match steps {
            Err(e @ Error::Busy { .. }) => Err(e),
            _ => Err(Error::Refused {
                bdf: bdf.clone(),
                driver: driver.to_string(),
                ended_on: now,
                restored,
            }),
        }
    }

    /// Unbinds the device and clears `driver_override`, so it is left with no driver (until the
    /// next probe, when normal ID matching applies again). Returns the driver it had.
    pub fn unbind(&self, bdf: &Bdf) -> Result<Option<String>, Error> {
        self.check_device(bdf)?;
        self.check_not_in_use(bdf)?;
        let prev = self.detach(bdf)?;
        self.set_override(bdf, None)?;
        Ok(prev)
    }

    /// Removes the device from the bus (`remove`).
    pub fn remove(&self, bdf: &Bdf) -> Result<(), Error> {
        let p = self.check_device(bdf)?.join("remove");
        self.write_dev(bdf, &p, "1", "writing")
    }

    /// Rescans all PCI buses (`bus/pci/rescan`).
    pub fn rescan(&self) -> Result<(), Error> {
        let p = self.bus().join("rescan");
        self.backend.write(&p, "1").map_err(Self::io(&p, "writing"))
    }
}

const EBUSY: i32 = 16;
const ENOENT: i32 = 2;
const ENODEV: i32 = 19;

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    #[test]
    fn bdf_parsing() {
        assert_eq!(Bdf::parse("00:03.0").unwrap().as_str(), "0000:00:03.0");
        assert_eq!(Bdf::parse("0000:0A:1f.7").unwrap().as_str(), "0000:0a:1f.7");
        for bad in [
            "",
            "00:03",
            "0:03.0",
            "00:20.0",
            "00:03.8",
            "zz:03.0",
            "0000:00:03.0.1",
            "a:b:c:d",
        ] {
            assert!(
                matches!(Bdf::parse(bad), Err(Error::InvalidBdf(_))),
                "{bad}"
            );
        }
    }

    /// A fake tree on disk for the read-only accessors.
    #[test]
    fn reads_a_directory_tree() {
        let root = std::env::temp_dir().join(format!("pcibind-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dev = root.join("bus/pci/devices/0000:00:03.0");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::create_dir_all(root.join("bus/pci/drivers/vfio-pci")).unwrap();
        std::fs::create_dir_all(root.join("kernel/iommu_groups/7")).unwrap();
        std::fs::write(dev.join("vendor"), "0x1234\n").unwrap();
        std::fs::write(dev.join("device"), "0x11e8\n").unwrap();
        std::fs::write(dev.join("class"), "0x00ff00\n").unwrap();
        std::fs::write(
            dev.join("modalias"),
            "pci:v00001234d000011E8sv00001AF4sd00001100bc00scFFi00\n",
        )
        .unwrap();
        std::fs::write(dev.join("driver_override"), "(null)\n").unwrap();
        std::os::unix::fs::symlink("../../../bus/pci/drivers/vfio-pci", dev.join("driver"))
            .unwrap();
        std::os::unix::fs::symlink("../../../kernel/iommu_groups/7", dev.join("iommu_group"))
            .unwrap();
        let s = Sysfs::at(&root);
        let b = Bdf::parse("00:03.0").unwrap();
        let i = s.info(&b).unwrap();
        assert_eq!((i.vendor, i.device), (0x1234, 0x11e8));
        assert_eq!(i.class, Some(0xff00));
        assert_eq!(i.driver.as_deref(), Some("vfio-pci"));
        assert_eq!(i.driver_override, None);
        assert_eq!(i.iommu_group, Some(7));
        assert!(i.modalias.unwrap().starts_with("pci:v00001234"));
        assert!(s.driver_loaded("vfio-pci"));
        assert!(!s.driver_loaded("vfio-pci-generic"));
        assert_eq!(s.devices().unwrap(), vec![b.clone()]);
        assert!(matches!(
            s.info(&Bdf::parse("00:04.0").unwrap()),
            Err(Error::NoSuchDevice(_))
        ));
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A simulated PCI driver core: writes have the kernel's effect.
    #[derive(Default)]
    struct Kernel {
        devs: BTreeMap<String, Dev>,
        drivers: Vec<Drv>,
        writes: Vec<(String, String)>,
        /// Loaded modules.
        loaded: std::collections::BTreeSet<String>,
    }
    #[derive(Clone, Default)]
    struct Dev {
        vendor: u16,
        driver: Option<String>,
        over: Option<String>,
        modalias: String,
    }
    struct Drv {
        name: &'static str,
        vendor: Option<u16>,          // matching ID (None: override-only)
        refuses: bool,                // probe fails
        module: Option<&'static str>, // None: built in
    }

    impl Kernel {
        fn registered(&self, drv: &Drv) -> bool {
            drv.module.is_none_or(|m| self.loaded.contains(m))
        }
    }
    struct Fake(RefCell<Kernel>);

    impl Kernel {
        fn matches(&self, d: &Dev, drv: &Drv) -> bool {
            match &d.over {
                Some(o) => o == drv.name,
                None => drv.vendor == Some(d.vendor),
            }
        }
        fn probe(&mut self, bdf: &str) {
            let d = self.devs[bdf].clone();
            if d.driver.is_some() {
                return;
            }
            for drv in &self.drivers {
                if self.registered(drv) && self.matches(&d, drv) && !drv.refuses {
                    self.devs.get_mut(bdf).unwrap().driver = Some(drv.name.to_string());
                    return;
                }
            }
        }
    }

    fn rel(p: &Path) -> Vec<String> {
        p.strip_prefix("/fake")
            .unwrap()
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect()
    }
    fn enoent() -> io::Error {
        io::Error::from_raw_os_error(ENOENT)
    }

    impl Backend for Fake {
        fn read(&self, path: &Path) -> io::Result<String> {
            let k = self.0.borrow();
            match rel(path)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice()
            {
                ["bus", "pci", "devices", b, "driver_override"] => {
                    let d = k.devs.get(*b).ok_or_else(enoent)?;
                    Ok(format!(
                        "{}\n",
                        d.over.clone().unwrap_or_else(|| "(null)".into())
                    ))
                }
                ["bus", "pci", "devices", b, "vendor"] => Ok(format!(
                    "0x{:04x}\n",
                    k.devs.get(*b).ok_or_else(enoent)?.vendor
                )),
                ["bus", "pci", "devices", b, "device"] => {
                    k.devs.get(*b).ok_or_else(enoent)?;
                    Ok("0x0001\n".into())
                }
                ["bus", "pci", "devices", b, "modalias"] => {
                    Ok(format!("{}\n", k.devs.get(*b).ok_or_else(enoent)?.modalias))
                }
                _ => Err(enoent()),
            }
        }
        fn write(&self, path: &Path, data: &str) -> io::Result<()> {
            let mut k = self.0.borrow_mut();
            k.writes.push((rel(path).join("/"), data.to_string()));
            let r = rel(path);
            match r.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
                ["bus", "pci", "devices", b, "driver_override"] => {
                    let d = k.devs.get_mut(*b).ok_or_else(enoent)?;
                    let v = data.split('\n').next().unwrap_or("");
                    d.over = (!v.is_empty()).then(|| v.to_string());
                    Ok(())
                }
                ["bus", "pci", "devices", b, "driver", "unbind"] => {
                    assert_eq!(*b, data);
                    let d = k.devs.get_mut(*b).ok_or_else(enoent)?;
                    d.driver.take().map(|_| ()).ok_or_else(enoent)
                }
                ["bus", "pci", "drivers", drv, "bind"] => {
                    let d = k.devs.get(data).cloned().ok_or_else(enoent)?;
                    let i = k
                        .drivers
                        .iter()
                        .position(|x| x.name == *drv && k.registered(x))
                        .ok_or_else(enoent)?;
                    if d.driver.is_some() {
                        return Err(io::Error::from_raw_os_error(EBUSY));
                    }
                    if !k.matches(&d, &k.drivers[i]) || k.drivers[i].refuses {
                        return Err(io::Error::from_raw_os_error(19));
                    }
                    k.devs.get_mut(data).unwrap().driver = Some(drv.to_string());
                    Ok(())
                }
                ["bus", "pci", "drivers_probe"] => {
                    k.probe(data);
                    if k.devs[data].driver.is_none() {
                        return Err(io::Error::from_raw_os_error(22));
                    }
                    Ok(())
                }
                _ => Err(enoent()),
            }
        }
        fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
            let k = self.0.borrow();
            match rel(path)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice()
            {
                ["bus", "pci", "devices", b, "driver"] => {
                    let d = k.devs.get(*b).ok_or_else(enoent)?;
                    d.driver
                        .as_ref()
                        .map(|n| format!("../../../bus/pci/drivers/{n}").into())
                        .ok_or_else(enoent)
                }
                ["bus", "pci", "drivers", d, "module"] => {
                    let m = k
                        .drivers
                        .iter()
                        .find(|x| x.name == *d && k.registered(x))
                        .and_then(|x| x.module);
                    m.map(|m| format!("../../../../module/{m}").into())
                        .ok_or_else(enoent)
                }
                _ => Err(enoent()),
            }
        }
        fn exists(&self, path: &Path) -> bool {
            let k = self.0.borrow();
            match rel(path)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice()
            {
                ["bus", "pci", "devices", b] => k.devs.contains_key(*b),
                ["bus", "pci", "drivers", d] => {
                    k.drivers.iter().any(|x| x.name == *d && k.registered(x))
                }
                ["module", m, "refcnt"] => k.loaded.contains(*m),
                _ => false,
            }
        }
        fn list(&self, path: &Path) -> io::Result<Vec<String>> {
            let k = self.0.borrow();
            match rel(path)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice()
            {
                ["bus", "pci", "devices"] => Ok(k.devs.keys().cloned().collect()),
                ["module", m, "drivers"] if k.loaded.contains(*m) => Ok(k
                    .drivers
                    .iter()
                    .filter(|d| d.module == Some(*m))
                    .map(|d| format!("pci:{}", d.name))
                    .collect()),
                _ => Err(enoent()),
            }
        }
    }

    const EDU: &str = "0000:00:03.0";

    const EDU_ALIAS: &str = "pci:v00001234d000011E8sv00001AF4sd00001100bc00scFFi00";
    const TESTDEV: &str = "0000:00:04.0";
    const TESTDEV_ALIAS: &str = "pci:v00001B36d00000005sv00001AF4sd00001100bc00scFFi00";

    fn fake(refuse_generic: bool) -> Sysfs<Fake> {
        let mut k = Kernel::default();
        k.devs.insert(
            EDU.into(),
            Dev {
                vendor: 0x1234,
                driver: Some("edu".into()),
                over: None,
                modalias: EDU_ALIAS.into(),
            },
        );
        k.devs.insert(
            TESTDEV.into(),
            Dev {
                vendor: 0x1b36,
                modalias: TESTDEV_ALIAS.into(),
                ..Dev::default()
            },
        );
        k.drivers.push(Drv {
            name: "edu",
            vendor: Some(0x1234),
            refuses: false,
            module: None,
        });
        k.drivers.push(Drv {
            name: "vfio-pci",
            vendor: None,
            refuses: false,
            module: Some("vfio_pci"),
        });
        k.drivers.push(Drv {
            name: "vfio-pci-generic",
            vendor: None,
            refuses: refuse_generic,
            module: Some("vfio_pci_generic"),
        });
        k.loaded
            .extend(["vfio_pci".to_string(), "vfio_pci_generic".to_string()]);
        Sysfs::with_backend("/fake", None, Fake(RefCell::new(k)))
    }

    fn state(s: &Sysfs<Fake>) -> (Option<String>, Option<String>) {
        let b = Bdf::parse(EDU).unwrap();
        (s.driver(&b).unwrap(), s.driver_override(&b).unwrap())
    }

    #[test]
    fn bind_and_unbind() {
        let s = fake(false);
        let b = Bdf::parse(EDU).unwrap();
        assert_eq!(
            s.bind(&b, "vfio-pci-generic").unwrap().as_deref(),
            Some("edu")
        );
        assert_eq!(
            state(&s),
            (
                Some("vfio-pci-generic".into()),
                Some("vfio-pci-generic".into())
            )
        );
        // Rebinding to the driver it is on is a no-op success.
        assert_eq!(
            s.bind(&b, "vfio-pci-generic").unwrap().as_deref(),
            Some("vfio-pci-generic")
        );
        // From one vfio driver to the other.
        s.bind(&b, "vfio-pci").unwrap();
        assert_eq!(
            state(&s),
            (Some("vfio-pci".into()), Some("vfio-pci".into()))
        );
        assert_eq!(s.unbind(&b).unwrap().as_deref(), Some("vfio-pci"));
        assert_eq!(state(&s), (None, None));
        // Unbinding an unbound device is fine too.
        assert_eq!(s.unbind(&b).unwrap(), None);
    }

    #[test]
    fn refused_bind_restores_previous_state() {
        let s = fake(true);
        let b = Bdf::parse(EDU).unwrap();
        match s.bind(&b, "vfio-pci-generic") {
            Err(Error::Refused {
                ended_on,
                restored,
                driver,
                ..
            }) => {
                assert_eq!(driver, "vfio-pci-generic");
                assert_eq!(ended_on, None);
                assert_eq!(restored.as_deref(), Some("edu"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(state(&s), (Some("edu".into()), None));
        // The same from an override-bound state: the override comes back too.
        s.bind(&b, "vfio-pci").unwrap();
        assert!(matches!(
            s.bind(&b, "vfio-pci-generic"),
            Err(Error::Refused { .. })
        ));
        assert_eq!(
            state(&s),
            (Some("vfio-pci".into()), Some("vfio-pci".into()))
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let s = fake(false);
        let b = Bdf::parse(EDU).unwrap();
        assert!(matches!(s.bind(&b, "nope"), Err(Error::DriverNotLoaded(d)) if d == "nope"));
        let missing = Bdf::parse("00:1f.0").unwrap();
        assert!(matches!(
            s.bind(&missing, "vfio-pci"),
            Err(Error::NoSuchDevice(_))
        ));
        assert!(matches!(s.unbind(&missing), Err(Error::NoSuchDevice(_))));
        // Nothing was written for the failed calls.
        assert!(s.backend.0.borrow().writes.is_empty());
        let e = s.bind(&b, "nope").unwrap_err().to_string();
        assert!(e.contains("not registered"), "{e}");
    }

    /// Loads modules into the fake kernel; registers the skeleton driver with its module.
    struct FakeLoader<'a>(&'a Sysfs<Fake>, RefCell<Vec<String>>);

    impl binder::ModuleLoader for FakeLoader<'_> {
        fn insmod(&self, ko: &Path) -> Result<(), String> {
            let m = ko.file_stem().unwrap().to_string_lossy().into_owned();
            self.1.borrow_mut().push(format!("insmod {m}"));
            self.0.backend.0.borrow_mut().loaded.insert(m);
            Ok(())
        }
        fn modprobe(&self, module: &str) -> Result<(), String> {
            self.1.borrow_mut().push(format!("modprobe {module}"));
            if module == "vfio_pci_common" {
                self.0.backend.0.borrow_mut().loaded.insert(module.into());
                return Ok(());
            }
            Err(format!("modprobe: FATAL: Module {module} not found"))
        }
    }

    fn with_skeleton(s: &Sysfs<Fake>) {
        // Override-only, refuses what is not edu (the strict ID check).
        let mut k = s.backend.0.borrow_mut();
        k.drivers.push(Drv {
            name: "vfio-pci-skeleton",
            vendor: None,
            refuses: false,
            module: Some("vfio_pci_skeleton"),
        });
    }

    fn catalog() -> select::Catalog {
        use modinfo::ModuleInfo;
        let mut c = select::Catalog::new();
        let m = |name: &str, alias: &str, deps: &[&str]| ModuleInfo {
            name: name.into(),
            aliases: vec![alias.into()],
            depends: deps.iter().map(|d| d.to_string()).collect(),
        };
        c.add_module(
            m(
                "vfio_pci_generic",
                "vfio_pci:v*d*sv*sd*bc*sc*i*",
                &["vfio_pci_common"],
            ),
            Some("/b/vfio_pci_generic.ko".into()),
        );
        c.add_module(
            m(
                "vfio_pci_skeleton",
                "vfio_pci:v00001234d000011E8sv*sd*bc*sc*i*",
                &["vfio_pci_common"],
            ),
            Some("/b/vfio_pci_skeleton.ko".into()),
        );
        c.add_modules_alias(
            "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n",
            Path::new("/m"),
        );
        c
    }

    #[test]
    fn bind_selects_loads_and_binds() {
        let s = fake(false);
        with_skeleton(&s);
        let l = FakeLoader(&s, RefCell::new(vec![]));
        let b = Bdf::parse(EDU).unwrap();
        let r = binder::bind(&s, &catalog(), &l, &b, None).unwrap();
        assert_eq!(r.driver, "vfio-pci-skeleton");
        assert_eq!(r.module.as_deref(), Some("vfio_pci_skeleton"));
        assert_eq!(r.previous.as_deref(), Some("edu"));
        assert!(r.loaded_module);
        assert!(matches!(&r.choice, binder::Choice::Specific(c) if c.wildcards == 5));
        // Dependencies first: vfio_pci_common is not one of our files here, so by name.
        assert_eq!(
            *l.1.borrow(),
            ["modprobe vfio_pci_common", "insmod vfio_pci_skeleton"]
        );
        assert_eq!(
            state(&s),
            (
                Some("vfio-pci-skeleton".into()),
                Some("vfio-pci-skeleton".into())
            )
        );
        assert!(
            r.to_string().contains("is bound to vfio-pci-skeleton"),
            "{r}"
        );
        // Again: nothing to load, nothing to do.
        let r = binder::bind(&s, &catalog(), &l, &b, None).unwrap();
        assert!(!r.loaded_module);
        assert_eq!(l.1.borrow().len(), 2);
    }

    #[test]
    fn bind_falls_back_to_the_one_usable_generic_driver() {
        let s = fake(false);
        let l = FakeLoader(&s, RefCell::new(vec![]));
        let b = Bdf::parse(TESTDEV).unwrap();
        // vfio_pci (installed, loaded) and vfio_pci_generic (ours, loaded) both match any
        // device: the caller must choose.
        match binder::bind(&s, &catalog(), &l, &b, None) {
            Err(e @ binder::BindError::Ambiguous { .. }) => {
                assert!(e.to_string().contains("vfio_pci, vfio_pci_generic"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        // With vfio_pci not loaded (and no file for it), ours is the one usable fallback.
        s.backend.0.borrow_mut().loaded.remove("vfio_pci");
        let r = binder::bind(&s, &catalog(), &l, &b, None).unwrap();
        assert_eq!(r.driver, "vfio-pci-generic");
        assert!(matches!(r.choice, binder::Choice::GenericFallback(_)));
        assert!(r.to_string().contains("GENERIC FALLBACK"), "{r}");
    }

    #[test]
    fn bind_by_driver_or_module_name() {
        let s = fake(false);
        with_skeleton(&s);
        let l = FakeLoader(&s, RefCell::new(vec![]));
        let b = Bdf::parse(EDU).unwrap();
        // A module name works as well as the driver name.
        let r = binder::bind(&s, &catalog(), &l, &b, Some("vfio_pci_skeleton")).unwrap();
        assert_eq!(r.driver, "vfio-pci-skeleton");
        assert_eq!(r.choice, binder::Choice::Named);
        let r = binder::bind(&s, &catalog(), &l, &b, Some("vfio-pci")).unwrap();
        assert_eq!(
            (r.driver.as_str(), r.module.as_deref()),
            ("vfio-pci", Some("vfio_pci"))
        );
        assert!(!r.loaded_module);
    }

    #[test]
    fn bind_errors() {
        let s = fake(false);
        let l = FakeLoader(&s, RefCell::new(vec![]));
        let c = catalog();
        // Wrong BDF: nothing is loaded or written.
        let missing = Bdf::parse("00:1f.0").unwrap();
        assert!(matches!(
            binder::bind(&s, &c, &l, &missing, Some("vfio-pci-skeleton")),
            Err(binder::BindError::Sysfs(Error::NoSuchDevice(_)))
        ));
        assert!(l.1.borrow().is_empty());
        // A module that exists nowhere.
        let b = Bdf::parse(EDU).unwrap();
        match binder::bind(&s, &c, &l, &b, Some("vfio-pci-nonesuch")) {
            Err(e @ binder::BindError::MissingModule { .. }) => {
                let t = e.to_string();
                assert!(
                    t.contains("vfio_pci_nonesuch") && t.contains("not found"),
                    "{t}"
                );
            }
            other => panic!("{other:?}"),
        }
        // A module that loads but has no such driver.
        match binder::bind(&s, &c, &l, &b, Some("vfio_pci_common")) {
            Err(binder::BindError::NoDriver {
                module, registered, ..
            }) => {
                assert_eq!(module, "vfio_pci_common");
                assert!(registered.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert!(
            s.backend.0.borrow().writes.is_empty(),
            "no sysfs writes for failed binds"
        );
        // The device keeps its driver.
        assert_eq!(state(&s).0.as_deref(), Some("edu"));
        // A refused bind through the whole path restores the previous driver.
        let s = fake(true);
        let l = FakeLoader(&s, RefCell::new(vec![]));
        assert!(matches!(
            binder::bind(&s, &c, &l, &b, Some("vfio-pci-generic")),
            Err(binder::BindError::Sysfs(Error::Refused { .. }))
        ));
        assert_eq!(state(&s), (Some("edu".into()), None));
    }

    #[test]
    fn in_use_is_refused() {
        // A fake /proc with one process holding /dev/vfio/7 open.
        let root = std::env::temp_dir().join(format!("pcibind-inuse-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dev = root.join("sys/bus/pci/devices/0000:00:03.0");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::create_dir_all(root.join("sys/bus/pci/drivers/vfio-pci")).unwrap();
        std::fs::write(dev.join("driver_override"), "vfio-pci\n").unwrap();
        std::os::unix::fs::symlink("../../../bus/pci/drivers/vfio-pci", dev.join("driver"))
            .unwrap();
        std::os::unix::fs::symlink("../../../kernel/iommu_groups/7", dev.join("iommu_group"))
            .unwrap();
        std::fs::create_dir_all(root.join("proc/4242/fd")).unwrap();
        std::os::unix::fs::symlink("/dev/vfio/7", root.join("proc/4242/fd/5")).unwrap();
        let s = Sysfs::with_backend(root.join("sys"), Some(root.join("proc")), RealFs);
        let b = Bdf::parse(EDU).unwrap();
        match s.unbind(&b) {
            Err(Error::InUse {
                holders, driver, ..
            }) => {
                assert_eq!(holders, vec![4242]);
                assert_eq!(driver.as_deref(), Some("vfio-pci"));
            }
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}
