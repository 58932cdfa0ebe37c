// SPDX-License-Identifier: GPL-2.0
//! Override-only binding, variant selection and the strict ID check, through the same
//! `pcibind` library functions `cargo xtask match/bind/unbind` use on a host.
//!
//! Checks (devices: edu 1234:11e8 and pci-testdev 1b36:0005):
//! - `modinfo-only-vfio-aliases-<module>`: every module of ours publishes only `vfio_pci:`
//!   aliases (and every one but the common module at least one);
//! - `no-autobind-edu-vfio-pci-skeleton`: remove + rescan with the skeleton loaded;
//! - `match-edu-selects-vfio-pci-skeleton`, `match-pci-testdev-generic-fallback`,
//!   `match-edu-tie-with-new-variant`: the selection on real modaliases;
//! - `refuse-pci-testdev-vfio-pci-skeleton` (bind fails, no driver after, exactly one refusal
//!   line in dmesg naming the device and driver), then `bind-after-refusal-pci-testdev-vfio-pci-generic`;
//! - `refuse-restores-pci-testdev-vfio-pci`: on vfio-pci, a refused skeleton bind leaves it on
//!   vfio-pci with its override;
//! - `bind-auto-edu-vfio-pci-skeleton` (no driver named: selection picks it) and the VFIO
//!   checks on it;
//! - `bind-errors-*`: wrong BDF, missing module, device in use;
//! - `newvariant-load-bind-edu-vfio-pci-newvar-edu`: the variant `new-variant` made on the host,
//!   loaded by the library, bound to edu by override, driven through VFIO, then unloaded.

use crate::{find_nodes, kmod, s, wait_for, Mode, Suite};
use pcibind::binder::{self, BindError, Choice, ModuleLoader};
use pcibind::modinfo::ModuleInfo;
use pcibind::select::{Catalog, Outcome};
use pcibind::{Bdf, Error};
use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

const SKELETON: &str = "vfio-pci-skeleton";
const SKELETON_MODULE: &str = "vfio_pci_skeleton";
const GENERIC: &str = "vfio-pci-generic";
const REFUSAL: &str = "is not in this driver's ID table";

/// `finit_module` for our files; there is no modprobe (nor modules.dep) in the guest.
struct GuestLoader;

impl ModuleLoader for GuestLoader {
    fn insmod(&self, ko: &Path) -> Result<(), String> {
        kmod::load(ko).map_err(|e| format!("finit_module: {e}"))
    }
    fn modprobe(&self, module: &str) -> Result<(), String> {
        Err(format!(
            "modprobe: FATAL: Module {module} not found (no module file given for it)"
        ))
    }
}

fn kmsg_len() -> usize {
    kmod::kmsg().map(|l| l.len()).unwrap_or(0)
}

/// The refusal lines logged since `from`.
fn refusals_since(from: usize) -> Vec<String> {
    kmod::kmsg()
        .unwrap_or_default()
        .into_iter()
        .skip(from)
        .filter(|l| l.contains(REFUSAL))
        .collect()
}

/// Exactly one refusal line, naming the device, its IDs and the driver.
fn one_refusal(lines: &[String], bdf: &Bdf, ids: &str, driver: &str) -> Result<(), String> {
    match lines {
        [l] if l.contains(bdf.as_str()) && l.contains(driver) && l.contains(ids) => Ok(()),
        [l] => Err(format!(
            "the refusal line does not name {bdf}, {ids} and {driver}: {l}"
        )),
        v => Err(format!(
            "{} refusal lines, expected exactly one: {v:?}",
            v.len()
        )),
    }
}

impl Suite {
    pub(crate) fn device(&self, label: &str) -> Option<Bdf> {
        self.args
            .devices
            .iter()
            .find(|(_, l)| l == label)
            .map(|(b, _)| b.clone())
    }

    /// The catalog for the selection checks: the modules `cargo xtask match` would see for
    /// these devices on a host with upstream `vfio-pci` installed, restricted to upstream
    /// `vfio_pci`, `vfio_pci_generic` and the skeleton (plus the new variant when asked), so a
    /// variant someone adds to the tree for edu does not change what these checks expect.
    fn catalog(&self, with_new_variant: bool) -> Result<Catalog, String> {
        const SELECTION_MODULES: &[&str] = &["vfio_pci", "vfio_pci_generic", SKELETON_MODULE];
        let mut c = Catalog::new();
        for ko in self.args.catalog.iter().chain(&self.args.modules) {
            let info = ModuleInfo::read(ko).map_err(s)?;
            if SELECTION_MODULES.contains(&info.name.as_str()) {
                c.add_module(info, Some(ko.clone()));
            }
        }
        if with_new_variant {
            if let Some(ko) = &self.args.new_variant_ko {
                c.add_ko(ko).map_err(s)?;
            }
        }
        Ok(c)
    }

    /// Leaves a device with no driver and no override.
    fn clean(&self, bdf: &Bdf) {
        let _ = self.sys.unbind(bdf);
    }

    pub(crate) fn binding_checks(&mut self) {
        self.modinfo_aliases();
        let (Some(edu), Some(testdev)) = (self.device("edu"), self.device("pci-testdev")) else {
            self.r.check("binding-devices", || {
                Err("needs --device ...=edu and --device ...=pci-testdev".into())
            });
            return;
        };
        self.clean(&edu);
        self.clean(&testdev);
        self.no_autobind_skeleton(&edu);
        self.no_bind_by_new_id(&edu);
        self.selection(&edu, &testdev);
        self.refusal(&testdev);
        self.auto_bind(&edu);
        self.errors(&edu);
        self.new_variant(&edu);
        self.clean(&edu);
        self.clean(&testdev);
    }

    fn modinfo_aliases(&mut self) {
        let kos: Vec<_> = self
            .args
            .catalog
            .iter()
            .chain(&self.args.new_variant_ko)
            .cloned()
            .collect();
        for ko in kos {
            let info = ModuleInfo::read(&ko);
            let name = info
                .as_ref()
                .map(|i| i.name.clone())
                .unwrap_or_else(|_| ko.display().to_string());
            self.r
                .check(&format!("modinfo-only-vfio-aliases-{name}"), || {
                    let info = info.map_err(s)?;
                    let other: Vec<&String> = info
                        .aliases
                        .iter()
                        .filter(|a| !a.starts_with("vfio_pci:"))
                        .collect();
                    if !other.is_empty() {
                        return Err(format!("aliases other than vfio_pci: {other:?}"));
                    }
                    // The common module and the test fixture (a fake PCI bus) register no driver.
                    if info.aliases.is_empty()
                        && !["vfio_pci_common", "vfio_test_fakepci"].contains(&info.name.as_str())
                    {
                        return Err("no alias at all: is the ID table exported to modpost?".into());
                    }
                    Ok(())
                });
        }
    }

    fn no_autobind_skeleton(&mut self, edu: &Bdf) {
        let sys = &self.sys;
        self.r.check(&format!("no-autobind-edu-{SKELETON}"), || {
            if !sys.driver_loaded(SKELETON) {
                return Err(format!("{SKELETON} is not registered"));
            }
            sys.remove(edu).map_err(s)?;
            if !wait_for(|| !sys.device_dir(edu).exists()) {
                return Err(format!("{edu} still present after remove"));
            }
            sys.rescan().map_err(s)?;
            if !wait_for(|| sys.device_dir(edu).exists()) {
                return Err(format!("{edu} did not come back after rescan"));
            }
            std::thread::sleep(Duration::from_millis(200));
            match sys.driver(edu).map_err(s)? {
                Some(d) => Err(format!("{edu} bound to {d} by itself after rescan")),
                None => Ok(()),
            }
        });
    }

    /// An ID added through `new_id` is not override-only, so the PCI core binds it without
    /// `driver_override`; the SDK must still refuse: only an explicit override binds a variant.
    fn no_bind_by_new_id(&mut self, edu: &Bdf) {
        let sys = &self.sys;
        self.r
            .check(&format!("no-bind-by-new-id-edu-{SKELETON}"), || {
                let drv = sys.root().join("bus/pci/drivers").join(SKELETON);
                let from = kmsg_len();
                std::fs::write(drv.join("new_id"), "1234 11e8")
                    .map_err(|e| format!("new_id: {e}"))?;
                std::thread::sleep(Duration::from_millis(200));
                let bound = sys.driver(edu).map_err(s)?;
                let _ = std::fs::write(drv.join("remove_id"), "1234 11e8");
                if let Some(d) = bound {
                    let _ = sys.unbind(edu);
                    return Err(format!(
                        "{edu} bound to {d} through new_id without an override"
                    ));
                }
                let lines: Vec<String> = kmod::kmsg()
                    .map(|l| {
                        l.into_iter()
                            .skip(from)
                            .filter(|l| l.contains("not bound through driver_override"))
                            .collect()
                    })
                    .unwrap_or_default();
                // Every unbound edu is probed (the machine has two: `edu-b` is the migration
                // checks' destination); each must be refused, `edu` exactly once.
                let for_edu = lines
                    .iter()
                    .filter(|l| l.contains(&edu.to_string()))
                    .count();
                if for_edu != 1 || !lines.iter().all(|l| l.contains(SKELETON)) {
                    return Err(format!(
                        "expected one refusal line naming {edu} and {SKELETON}, got {lines:?}"
                    ));
                }
                Ok(())
            });
    }

    fn selection(&mut self, edu: &Bdf, testdev: &Bdf) {
        let cat = self.catalog(false);
        let sys = &self.sys;
        let mut lines = Vec::new();
        self.r.check(&format!("match-edu-selects-{SKELETON}"), || {
            let sel = cat
                .as_ref()?
                .select(&sys.modalias(edu).map_err(s)?)
                .map_err(s)?;
            lines.push(sel.to_string());
            match &sel.outcome {
                Outcome::Specific(c) if c.module == SKELETON_MODULE => {}
                o => return Err(format!("expected {SKELETON_MODULE}, got {o:?}")),
            }
            // The generic driver matched too, and lost.
            if !sel
                .candidates
                .iter()
                .any(|c| c.module == "vfio_pci_generic" && c.is_generic())
            {
                return Err("vfio_pci_generic is not among the (less specific) candidates".into());
            }
            let drivers = sys.module_pci_drivers(SKELETON_MODULE).map_err(s)?;
            if drivers != [SKELETON] {
                return Err(format!(
                    "{SKELETON_MODULE} registers {drivers:?}, expected [{SKELETON}]"
                ));
            }
            Ok(())
        });
        self.r.check("match-pci-testdev-generic-fallback", || {
            let sel = cat
                .as_ref()?
                .select(&sys.modalias(testdev).map_err(s)?)
                .map_err(s)?;
            lines.push(sel.to_string());
            match &sel.outcome {
                Outcome::GenericFallback(v) if v.iter().any(|c| c.module == "vfio_pci_generic") => {
                    if !sel.to_string().contains("GENERIC FALLBACK") {
                        return Err("the report does not say GENERIC FALLBACK".into());
                    }
                    Ok(())
                }
                o => Err(format!("expected the generic fallback, got {o:?}")),
            }
        });
        if self.args.new_variant_ko.is_some() {
            let cat = self.catalog(true);
            self.r.check("match-edu-tie-with-new-variant", || {
                let sel = cat
                    .as_ref()?
                    .select(&sys.modalias(edu).map_err(s)?)
                    .map_err(s)?;
                lines.push(sel.to_string());
                match &sel.outcome {
                    Outcome::Tie(v)
                        if v.len() == 2 && v.iter().any(|c| c.module == SKELETON_MODULE) =>
                    {
                        Ok(())
                    }
                    o => Err(format!(
                        "two variants with the same entry must tie, got {o:?}"
                    )),
                }
            });
        }
        for l in lines.iter().flat_map(|t| t.lines()) {
            self.r.info(format!("match: {l}"));
        }
    }

    fn refusal(&mut self, testdev: &Bdf) {
        let cat = self.catalog(false);
        let sys = &self.sys;
        let ids = "[1b36:0005]";
        let mut log = Vec::new();
        let refused = self.r.check(&format!("refuse-pci-testdev-{SKELETON}"), || {
            let cat = cat.as_ref()?;
            let from = kmsg_len();
            match binder::bind(sys, cat, &GuestLoader, testdev, Some(SKELETON)) {
                Err(BindError::Sysfs(e @ Error::Refused { .. })) => log.push(e.to_string()),
                other => return Err(format!("expected a refusal, got {other:?}")),
            }
            let i = sys.info(testdev).map_err(s)?;
            if i.driver.is_some() || i.driver_override.is_some() {
                return Err(format!(
                    "after the refusal: driver {:?}, override {:?}",
                    i.driver, i.driver_override
                ));
            }
            one_refusal(&refusals_since(from), testdev, ids, SKELETON)
        });
        if refused {
            self.r
                .check(&format!("bind-after-refusal-pci-testdev-{GENERIC}"), || {
                    let b = binder::bind(sys, cat.as_ref()?, &GuestLoader, testdev, Some(GENERIC))
                        .map_err(s)?;
                    log.push(b.to_string());
                    if sys.driver(testdev).map_err(s)?.as_deref() != Some(GENERIC) {
                        return Err(format!("not on {GENERIC}"));
                    }
                    sys.unbind(testdev).map_err(s)?;
                    Ok(())
                });
        }
        self.r.check("refuse-restores-pci-testdev-vfio-pci", || {
            let cat = cat.as_ref()?;
            binder::bind(sys, cat, &GuestLoader, testdev, Some("vfio-pci")).map_err(s)?;
            let from = kmsg_len();
            match binder::bind(sys, cat, &GuestLoader, testdev, Some(SKELETON)) {
                Err(BindError::Sysfs(e @ Error::Refused { .. })) => log.push(e.to_string()),
                other => return Err(format!("expected a refusal, got {other:?}")),
            }
            let i = sys.info(testdev).map_err(s)?;
            if i.driver.as_deref() != Some("vfio-pci")
                || i.driver_override.as_deref() != Some("vfio-pci")
            {
                return Err(format!(
                    "after the refusal: driver {:?}, override {:?}; expected vfio-pci for both",
                    i.driver, i.driver_override
                ));
            }
            one_refusal(&refusals_since(from), testdev, ids, SKELETON)?;
            sys.unbind(testdev).map_err(s)?;
            Ok(())
        });
        for l in log {
            self.r.info(l);
        }
        self.clean(testdev);
    }

    /// Binds with the library, then the usual VFIO checks, a differential check against
    /// upstream vfio-pci's answers, and unbind.
    fn drive(&mut self, bdf: &Bdf, label: &str, driver: &str) {
        let mode = self.args.mode;
        let nodes = match find_nodes(&self.sys, mode, bdf) {
            Ok(n) => n,
            Err(e) => {
                self.r.check(&format!("nodes-{label}-{driver}"), || Err(e));
                return;
            }
        };
        self.open_and_check(bdf, label, driver, &nodes);
        let hows: &[&'static str] = if mode == Mode::Iommu {
            &["group", "cdev"]
        } else {
            &["group"]
        };
        for how in hows {
            let o = self
                .answers
                .get(&(label.to_string(), "vfio-pci".to_string(), *how))
                .cloned();
            let t = self
                .answers
                .get(&(label.to_string(), driver.to_string(), *how))
                .cloned();
            self.r
                .check(&format!("differential-{label}-{driver}-{how}"), || {
                    crate::compare(o.as_ref(), t.as_ref())
                });
        }
        self.unbind(bdf, label, driver);
    }

    fn auto_bind(&mut self, edu: &Bdf) {
        let cat = self.catalog(false);
        let sys = &self.sys;
        let mut msg = String::new();
        let ok = self.r.check(&format!("bind-auto-edu-{SKELETON}"), || {
            let b = binder::bind(sys, cat.as_ref()?, &GuestLoader, edu, None).map_err(s)?;
            msg = b.to_string();
            if !matches!(&b.choice, Choice::Specific(c) if c.module == SKELETON_MODULE)
                || b.driver != SKELETON
            {
                return Err(format!("unexpected result: {b}"));
            }
            let i = sys.info(edu).map_err(s)?;
            if i.driver.as_deref() != Some(SKELETON)
                || i.driver_override.as_deref() != Some(SKELETON)
            {
                return Err(format!(
                    "driver {:?}, override {:?}",
                    i.driver, i.driver_override
                ));
            }
            Ok(())
        });
        self.r.info(msg);
        if ok {
            self.drive(edu, "edu", SKELETON);
        }
        self.clean(edu);
    }

    fn errors(&mut self, edu: &Bdf) {
        let cat = self.catalog(false);
        let sys = &self.sys;
        let mut log = Vec::new();
        self.r.check("bind-errors-wrong-bdf", || {
            let nowhere = Bdf::parse("0000:3f:1f.7").map_err(s)?;
            match binder::bind(sys, cat.as_ref()?, &GuestLoader, &nowhere, Some(GENERIC)) {
                Err(e @ BindError::Sysfs(Error::NoSuchDevice(_))) => {
                    log.push(e.to_string());
                    Ok(())
                }
                other => Err(format!("expected NoSuchDevice, got {other:?}")),
            }
        });
        self.r.check("bind-errors-missing-module", || {
            match binder::bind(
                sys,
                cat.as_ref()?,
                &GuestLoader,
                edu,
                Some("vfio-pci-nonesuch"),
            ) {
                Err(e @ BindError::MissingModule { .. })
                    if e.to_string().contains("vfio_pci_nonesuch") =>
                {
                    log.push(e.to_string());
                }
                other => return Err(format!("expected MissingModule, got {other:?}")),
            }
            match sys.info(edu).map_err(s)? {
                i if i.driver.is_none() && i.driver_override.is_none() => Ok(()),
                i => Err(format!(
                    "the failed bind changed the device: {:?}/{:?}",
                    i.driver, i.driver_override
                )),
            }
        });
        let mode = self.args.mode;
        self.r.check("bind-errors-device-in-use", || {
            let cat = cat.as_ref()?;
            binder::bind(sys, cat, &GuestLoader, edu, Some(GENERIC)).map_err(s)?;
            let nodes = find_nodes(sys, mode, edu)?;
            // Another process holds the group open.
            let mut child = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!(
                    "exec 3<>{} && echo ready && exec sleep 30",
                    nodes.group
                ))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| format!("spawning sh: {e}"))?;
            let mut line = String::new();
            if let Some(out) = child.stdout.take() {
                let _ = std::io::BufReader::new(out).read_line(&mut line);
            }
            let r = if line.trim() != "ready" {
                Err(format!("the holder could not open {}", nodes.group))
            } else {
                match binder::bind(sys, cat, &GuestLoader, edu, Some("vfio-pci")) {
                    Err(BindError::Sysfs(e @ Error::InUse { .. }))
                        if e.to_string().contains(&child.id().to_string()) =>
                    {
                        log.push(e.to_string());
                        Ok(())
                    }
                    other => Err(format!(
                        "expected InUse naming pid {}, got {other:?}",
                        child.id()
                    )),
                }
            };
            let _ = child.kill();
            let _ = child.wait();
            r?;
            match sys.driver(edu).map_err(s)? {
                Some(d) if d == GENERIC => {}
                d => return Err(format!("the refused bind moved the device to {d:?}")),
            }
            sys.unbind(edu).map_err(s)?;
            Ok(())
        });
        for l in log {
            self.r.info(format!("error text: {l}"));
        }
        self.clean(edu);
    }

    fn new_variant(&mut self, edu: &Bdf) {
        let Some(ko) = self.args.new_variant_ko.clone() else {
            return;
        };
        let cat = self.catalog(true);
        let sys = &self.sys;
        let info = ModuleInfo::read(&ko);
        let module = info.as_ref().map(|i| i.name.clone()).unwrap_or_default();
        let driver = module.replace('_', "-");
        let mut msg = String::new();
        let ok = self
            .r
            .check(&format!("newvariant-load-bind-edu-{driver}"), || {
                let info = info.as_ref().map_err(s)?;
                if kmod::loaded(&info.name) {
                    return Err(format!(
                        "{} is loaded already; the bind should load it",
                        info.name
                    ));
                }
                let b = binder::bind(sys, cat.as_ref()?, &GuestLoader, edu, Some(&driver))
                    .map_err(s)?;
                msg = b.to_string();
                if !b.loaded_module || b.driver != driver {
                    return Err(format!("unexpected result: {b}"));
                }
                Ok(())
            });
        self.r.info(msg);
        if ok {
            self.drive(edu, "edu", &driver);
            // `echo BDF > drivers_probe` after unbind (sdk-guide step 6): the override is gone,
            // so none of our override-only drivers (all loaded now) may take the device; edu
            // has no native driver, so it stays driverless.
            let sys = &self.sys;
            self.r.check("reprobe-after-unbind-edu", || {
                sys.probe(edu).map_err(s)?;
                std::thread::sleep(Duration::from_millis(100));
                match sys.info(edu).map_err(s)? {
                    i if i.driver.is_none() && i.driver_override.is_none() => Ok(()),
                    i => Err(format!(
                        "after drivers_probe: driver {:?}, override {:?}",
                        i.driver, i.driver_override
                    )),
                }
            });
        }
        self.clean(edu);
        if kmod::loaded(&module) {
            self.r.check(&format!("modunload-{module}"), || {
                kmod::unload(&module).map_err(|e| format!("delete_module({module}): {e}"))?;
                if kmod::loaded(&module) {
                    return Err(format!("{module} still loaded"));
                }
                Ok(())
            });
        }
    }
}
