// SPDX-License-Identifier: GPL-2.0
//! Checks on the modules as `cargo xtask install` installs them: the initramfs carries the
//! staging root of a real `cargo xtask install --destdir` under `/lib/modules/<release>/`
//! (`updates/*.ko`, the manifest, depmod's output) and kmod's own `modprobe` in `/sbin`.
//!
//! They run last, after every module the other checks loaded with `finit_module` from
//! `/lib/modules/vfio-test/` is unloaded, so `modprobe` starts from nothing and nothing else
//! sees its modules. The modules the other checks need here and that do not depend on ours
//! (upstream `vfio-pci`, the fake PCI bus of the fake IGD) are loaded again from their paths and
//! unloaded at the end.
//! - `installed-tree`: the shipped modules are in `updates/` with `modules.dep`;
//! - `installed-modules-alias`: every `vfio_pci:` alias of every installed module is in
//!   `modules.alias`, naming that module;
//! - `installed-modprobe-loads-common-first` / `installed-modprobe-r-removes-both`;
//! - `installed-libvirt-choice-<device>`: the variant libvirt's rule picks from the installed
//!   `modules.alias` (below), which must be `vfio_pci_igd` for the fake IGD and
//!   `vfio_pci_generic` for nvme, and agree with `pcibind`'s selection;
//! - `installed-bind-<device>`: that module loaded by `modprobe`, the device bound as
//!   `driverctl set-override` and libvirt do it (`driver_override`, unbind, `drivers_probe`);
//! - `standalone-*`: the variant built outside the repository against the installed SDK,
//!   loaded, bound to pci-testdev and opened through VFIO;
//! - `readme-use-it-*`: the README's "Use it" commands, run as written by `sh`;
//! - `independent-client-nvme-<driver>-<group|cdev>` and
//!   `independent-client-differential-nvme-<group|cdev>`: the `vfio-ioctls` client (client.rs)
//!   on nvme under upstream `vfio-pci` and under ours, through a container and (iommu mode)
//!   through iommufd.
//!
//! libvirt's rule (`virPCIDeviceFindBestVFIOVariant`, written here from its description, not
//! its code): read `/lib/modules/$(uname -r)/modules.alias`; for each `alias vfio_pci:PATTERN
//! MODULE` line whose pattern matches the device's modalias without its `pci:` prefix
//! (`fnmatch`), count the `*` in the pattern; the module of the first line with the fewest
//! wins. A modalias no line matches has no VFIO driver.

use crate::{client, kmod, module_name, s, vfio, Mode, Suite};
use pcibind::glob::fnmatch;
use pcibind::select::Catalog;
use pcibind::{Bdf, Sysfs};
use std::path::{Path, PathBuf};
use std::process::Command;

const MODPROBE: &str = "/sbin/modprobe";
const COMMON: &str = "vfio_pci_common";
const GENERIC: &str = "vfio_pci_generic";
const IGD: &str = "vfio_pci_igd";
const NVLINK: &str = "vfio_pci_nvlink";
const SHIPPED: [&str; 4] = [COMMON, GENERIC, IGD, NVLINK];
const FAKE_IGD: &str = "0001:00:02.0";
const NOIOMMU_PARAM: &str = "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode";
const UPSTREAM_DRIVER: &str = "vfio-pci";
const GENERIC_DRIVER: &str = "vfio-pci-generic";

/// `/lib/modules/<running release>`.
fn modlib() -> Result<PathBuf, String> {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").map_err(s)?;
    Ok(Path::new("/lib/modules").join(rel.trim()))
}

/// Runs a program; Ok(stdout + stderr) when it exits 0.
fn sh(prog: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(prog)
        .args(args)
        .env("PATH", "/sbin:/bin")
        .output()
        .map_err(|e| format!("{prog}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "{prog} {}: {}: {}",
            args.join(" "),
            out.status,
            text.trim()
        ))
    }
}

/// libvirt's choice (see the module documentation) among the `vfio_pci:` lines of a
/// `modules.alias`, for a device modalias `pci:...`.
pub fn libvirt_choice(modules_alias: &str, modalias: &str) -> Option<String> {
    let dev = modalias.strip_prefix("pci:")?;
    let mut best: Option<(usize, &str)> = None;
    for l in modules_alias.lines() {
        let mut f = l.split_whitespace();
        let (Some("alias"), Some(pat), Some(module)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let Some(pat) = pat.strip_prefix("vfio_pci:") else {
            continue;
        };
        if !fnmatch(pat, dev) {
            continue;
        }
        let stars = pat.matches('*').count();
        if best.is_none_or(|(b, _)| stars < b) {
            best = Some((stars, module));
        }
    }
    best.map(|(_, m)| m.to_string())
}

/// Binds as `driverctl set-override` does: override, unbind from the current driver,
/// `drivers_probe`; then the device must be on `driver`.
fn override_probe(sys: &Sysfs, bdf: &Bdf, driver: &str) -> Result<(), String> {
    sys.set_override(bdf, Some(driver)).map_err(s)?;
    sys.detach(bdf).map_err(s)?;
    sys.probe(bdf).map_err(s)?;
    match sys.driver(bdf).map_err(s)? {
        Some(d) if d == driver => Ok(()),
        d => Err(format!("after override + drivers_probe: driver {d:?}")),
    }
}

/// Leaves a device with no driver and no override.
fn release(sys: &Sysfs, bdf: &Bdf) {
    let _ = sys.detach(bdf);
    let _ = sys.set_override(bdf, None);
}

impl Suite {
    pub(crate) fn installed_checks(&mut self) {
        if !self.args.installed {
            self.r.check("installed-tree", || {
                Err(
                    "no installed module tree in the initramfs: the host's install step \
                     failed (see its failure)"
                        .into(),
                )
            });
            return;
        }
        // The modules the checks below need that do not depend on ours, again.
        let reload: Vec<PathBuf> = self
            .args
            .modules
            .iter()
            .filter(|ko| {
                let name = module_name(ko);
                !SHIPPED.contains(&name.as_str())
                    && !kmod::loaded(&name)
                    && !kmod::modinfo(ko).is_ok_and(|mi| {
                        mi.iter()
                            .any(|(k, v)| k == "depends" && v.split(',').any(|d| d == COMMON))
                    })
            })
            .cloned()
            .collect();
        for ko in &reload {
            let name = module_name(ko);
            self.r.check(&format!("installed-reload-{name}"), || {
                kmod::load(ko).map_err(|e| format!("finit_module({}): {e}", ko.display()))
            });
        }
        let ok = self.installed_tree();
        if ok {
            self.installed_modprobe();
            self.installed_choice_and_bind();
            self.standalone();
            self.readme_use_it();
            self.independent_client();
        }
        for name in SHIPPED.iter().rev() {
            if kmod::loaded(name) {
                let _ = kmod::unload(name);
            }
        }
        for ko in reload.iter().rev() {
            let name = module_name(ko);
            self.r.check(&format!("installed-unload-{name}"), || {
                kmod::unload(&name).map_err(|e| format!("delete_module({name}): {e}"))
            });
        }
    }

    fn installed_tree(&mut self) -> bool {
        let ok = self.r.check("installed-tree", || {
            let m = modlib()?;
            for n in SHIPPED {
                let ko = m.join(format!("updates/{n}.ko"));
                if !ko.is_file() {
                    return Err(format!("{} missing", ko.display()));
                }
            }
            for f in [
                "modules.dep",
                "modules.alias",
                "updates/vfio-pci-rs.manifest",
            ] {
                if !m.join(f).is_file() {
                    return Err(format!("{} missing", m.join(f).display()));
                }
            }
            if SHIPPED.iter().any(|n| kmod::loaded(n)) {
                return Err("some of our modules are still loaded from the other checks".into());
            }
            Ok(())
        });
        self.r.check("installed-modules-alias", || {
            let m = modlib()?;
            let alias = std::fs::read_to_string(m.join("modules.alias")).map_err(s)?;
            let mut variants = 0;
            for e in std::fs::read_dir(m.join("updates")).map_err(s)?.flatten() {
                let p = e.path();
                if p.extension().is_none_or(|x| x != "ko") {
                    continue;
                }
                let info = pcibind::modinfo::ModuleInfo::read(&p).map_err(s)?;
                if info.name != COMMON && info.aliases.is_empty() {
                    return Err(format!("{} has no alias", info.name));
                }
                variants += usize::from(!info.aliases.is_empty());
                for a in &info.aliases {
                    let line = format!("alias {a} {}", info.name);
                    if !a.starts_with("vfio_pci:") {
                        return Err(format!("{}: alias {a} is not a vfio_pci: alias", info.name));
                    }
                    if !alias.lines().any(|l| l == line) {
                        return Err(format!("no `{line}` in modules.alias"));
                    }
                }
            }
            if variants < 2 {
                return Err(format!(
                    "{variants} variants in updates/, expected at least 2"
                ));
            }
            Ok(())
        });
        ok
    }

    fn installed_modprobe(&mut self) {
        self.r.check("installed-modprobe-loads-common-first", || {
            let out = sh(MODPROBE, &["-v", GENERIC])?;
            let order: Vec<&str> = out.lines().filter(|l| l.starts_with("insmod ")).collect();
            let common_at = order
                .iter()
                .position(|l| l.contains(&format!("/updates/{COMMON}.ko")));
            let generic_at = order
                .iter()
                .position(|l| l.contains(&format!("/updates/{GENERIC}.ko")));
            match (common_at, generic_at) {
                (Some(c), Some(g)) if c < g => {}
                _ => return Err(format!("modprobe -v said {out:?}")),
            }
            if !kmod::loaded(COMMON) || !kmod::loaded(GENERIC) {
                return Err("not both loaded".into());
            }
            if !Path::new(&format!("/sys/module/{COMMON}/holders/{GENERIC}")).exists() {
                return Err(format!("{GENERIC} is not a holder of {COMMON}"));
            }
            Ok(())
        });
        self.r.check("installed-modprobe-r-removes-both", || {
            sh(MODPROBE, &["-r", GENERIC])?;
            if kmod::loaded(GENERIC) || kmod::loaded(COMMON) {
                return Err(format!(
                    "after modprobe -r: {GENERIC} loaded {}, {COMMON} loaded {}",
                    kmod::loaded(GENERIC),
                    kmod::loaded(COMMON)
                ));
            }
            Ok(())
        });
    }

    fn installed_choice_and_bind(&mut self) {
        let mut targets: Vec<(String, Option<Bdf>, &str)> = vec![
            ("fake-igd".into(), Bdf::parse(FAKE_IGD).ok(), IGD),
            ("nvme".into(), self.device("nvme"), GENERIC),
        ];
        for (label, bdf, want) in targets.drain(..) {
            let mut chosen = None;
            let mut said = String::new();
            let sys = &self.sys;
            self.r
                .check(&format!("installed-libvirt-choice-{label}"), || {
                    let bdf = bdf.clone().ok_or(format!("no {label} device"))?;
                    let modalias = sys.modalias(&bdf).map_err(s)?;
                    let aliases = modlib()?.join("modules.alias");
                    let text = std::fs::read_to_string(&aliases).map_err(s)?;
                    let got = libvirt_choice(&text, &modalias)
                        .ok_or(format!("no vfio_pci: alias matches {modalias}"))?;
                    let mut cat = Catalog::new();
                    cat.add_modules_alias_file(&aliases).map_err(s)?;
                    let sel = cat.select(&modalias).map_err(s)?;
                    said = format!("{label} ({modalias}): libvirt's rule picks {got}");
                    if got != want {
                        return Err(format!("libvirt's rule picks {got}, expected {want}"));
                    }
                    let agrees = match &sel.outcome {
                        pcibind::select::Outcome::Specific(c) => c.module == got,
                        pcibind::select::Outcome::GenericFallback(v) => {
                            v.iter().any(|c| c.module == got)
                        }
                        _ => false,
                    };
                    if !agrees {
                        return Err(format!("pcibind selects {:?}", sel.outcome));
                    }
                    chosen = Some((bdf, got));
                    Ok(())
                });
            if !said.is_empty() {
                self.r.info(said);
            }
            let Some((bdf, module)) = chosen else {
                continue;
            };
            let driver = module.replace('_', "-");
            let noiommu_was = std::fs::read_to_string(NOIOMMU_PARAM)
                .map(|v| v.trim() == "Y")
                .unwrap_or(false);
            // The fake IGD's domain has no IOMMU: as igd.rs, noiommu for the duration.
            let igd = label == "fake-igd";
            if igd && !noiommu_was {
                let _ = std::fs::write(NOIOMMU_PARAM, "Y");
            }
            let before = kmod::kmsg().map(|l| l.len()).unwrap_or(0);
            let sys = &self.sys;
            let ok = self.r.check(&format!("installed-bind-{label}"), || {
                sh(MODPROBE, &[&module])?;
                override_probe(sys, &bdf, &driver)?;
                let g = sys.info(&bdf).map_err(s)?.iommu_group;
                if g.is_none() {
                    return Err("no iommu_group after binding".into());
                }
                Ok(())
            });
            if !ok {
                for l in kmod::kmsg().unwrap_or_default().iter().skip(before) {
                    self.r.info(format!("kmsg: {l}"));
                }
            }
            release(&self.sys, &bdf);
            self.r.check(&format!("installed-unbind-{label}"), || {
                sh(MODPROBE, &["-r", &module])?;
                if kmod::loaded(&module) || kmod::loaded(COMMON) {
                    return Err("still loaded after modprobe -r".into());
                }
                Ok(())
            });
            if igd && !noiommu_was {
                let _ = std::fs::write(NOIOMMU_PARAM, "N");
            }
        }
    }

    fn standalone(&mut self) {
        let Some(ko) = self.args.standalone_ko.clone() else {
            self.r.check("standalone-load", || {
                Err("no --standalone-ko: the host's standalone build failed".into())
            });
            return;
        };
        let name = module_name(&ko);
        let driver = name.replace('_', "-");
        let sys = &self.sys;
        let loaded = self.r.check("standalone-load", || {
            // Its dependency from the installed tree, as a vendor's user would have it.
            sh(MODPROBE, &[COMMON])?;
            kmod::load(&ko).map_err(|e| format!("finit_module({}): {e}", ko.display()))?;
            if !sys.driver_loaded(&driver) {
                return Err(format!("driver {driver} not registered"));
            }
            Ok(())
        });
        let Some(testdev) = self.device("pci-testdev") else {
            self.r.check("standalone-bind-pci-testdev", || {
                Err("no pci-testdev".into())
            });
            return;
        };
        if loaded {
            let mode = self.args.mode;
            let it = self.iommu_type();
            let sys = &self.sys;
            self.r.check("standalone-bind-pci-testdev", || {
                override_probe(sys, &testdev, &driver)?;
                let nodes = crate::find_nodes(sys, mode, &testdev)?;
                let dev = vfio::open_via_group(&nodes.group, testdev.as_str(), it)?;
                let a = vfio::query(&dev);
                a.info.map_err(|e| format!("GET_INFO: errno {e}"))?;
                let ids = a
                    .config_ids
                    .map_err(|e| format!("config read: errno {e}"))?;
                if ids[..4] != [0x36, 0x1b, 0x05, 0x00] {
                    return Err(format!("config dword 0 {ids:02x?}, expected 1b36:0005"));
                }
                Ok(())
            });
            release(&self.sys, &testdev);
        }
        self.r.check("standalone-unload", || {
            kmod::unload(&name).map_err(|e| format!("delete_module({name}): {e}"))?;
            sh(MODPROBE, &["-r", COMMON])?;
            Ok(())
        });
    }

    fn readme_use_it(&mut self) {
        let Some(nvme) = self.device("nvme") else {
            self.r
                .check("readme-use-it-bind", || Err("no nvme device".into()));
            return;
        };
        let mode = self.args.mode;
        let run = |n: usize| -> Result<String, String> {
            let script =
                std::fs::read_to_string(format!("/etc/readme-use-it-{n}.sh")).map_err(s)?;
            // The README's commands as written, with this machine's NVMe controller as `dev`.
            let script: String = script
                .lines()
                .map(|l| {
                    if l.starts_with("dev=") {
                        format!("dev={nvme}")
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            let script = format!("dev={nvme}\n{script}\n");
            let out = Command::new("/bin/sh")
                .args(["-x", "-c", &script])
                .env("PATH", "/sbin:/bin")
                .output()
                .map_err(s)?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            // The last command lists the group node, `/dev/vfio/N`: noiommu names it
            // `noiommu-N`, so there it fails by design.
            let fails_by_design = n == 1 && mode == Mode::NoIommu;
            if !(out.status.success() || fails_by_design) {
                return Err(format!("sh exited with {}: {text}", out.status));
            }
            Ok(text)
        };
        let mut bound = false;
        let mut said = String::new();
        let sys = &self.sys;
        self.r.check("readme-use-it-bind", || {
            let out = run(1)?;
            said = out.clone();
            let i = sys.info(&nvme).map_err(s)?;
            if i.driver.as_deref() != Some(GENERIC_DRIVER)
                || i.driver_override.as_deref() != Some(GENERIC_DRIVER)
            {
                return Err(format!(
                    "driver {:?}, override {:?}",
                    i.driver, i.driver_override
                ));
            }
            crate::find_nodes(sys, mode, &nvme)?;
            bound = true;
            Ok(())
        });
        for l in said.lines() {
            self.r.info(format!("readme: {l}"));
        }
        if bound {
            let it = self.iommu_type();
            let sys = &self.sys;
            // What `-device vfio-pci,host=...` needs: the group, opened by a VMM's VFIO layer.
            self.r.check("readme-use-it-ready-for-qemu", || {
                let t = client::transcript(nvme.as_str(), client::Backend::Container);
                match mode {
                    Mode::Iommu if t.iter().any(|l| l.contains("error")) => {
                        Err(format!("vfio-ioctls: {}", t.join(" | ")))
                    }
                    Mode::Iommu => Ok(()),
                    // The crate needs a type1 IOMMU; here the check is the node and a raw open.
                    Mode::NoIommu => {
                        let nodes = crate::find_nodes(sys, mode, &nvme)?;
                        vfio::open_via_group(&nodes.group, nvme.as_str(), it).map(drop)
                    }
                }
            });
        }
        let sys = &self.sys;
        self.r.check("readme-use-it-give-back", || {
            run(2)?;
            let i = sys.info(&nvme).map_err(s)?;
            if i.driver.is_some() || i.driver_override.is_some() {
                return Err(format!(
                    "driver {:?}, override {:?}",
                    i.driver, i.driver_override
                ));
            }
            if kmod::loaded(GENERIC) || kmod::loaded(COMMON) {
                return Err("modules still loaded".into());
            }
            Ok(())
        });
        release(&self.sys, &nvme);
    }

    fn independent_client(&mut self) {
        let Some(nvme) = self.device("nvme") else {
            self.r
                .check("independent-client-nvme", || Err("no nvme device".into()));
            return;
        };
        let backends: &[client::Backend] = match self.args.mode {
            Mode::Iommu => &[client::Backend::Container, client::Backend::Iommufd],
            // No cdev without an IOMMU on 6.12.
            Mode::NoIommu => &[client::Backend::Container],
        };
        for &backend in backends {
            self.independent_client_with(&nvme, backend);
        }
    }

    fn independent_client_with(&mut self, nvme: &Bdf, backend: client::Backend) {
        let how = backend.how();
        let mut transcripts: Vec<(String, client::Transcript)> = Vec::new();
        for driver in [UPSTREAM_DRIVER, GENERIC_DRIVER] {
            let mut t = None;
            let sys = &self.sys;
            let mode = self.args.mode;
            self.r
                .check(&format!("independent-client-nvme-{driver}-{how}"), || {
                    if driver == GENERIC_DRIVER {
                        sh(MODPROBE, &[GENERIC])?;
                    }
                    override_probe(sys, nvme, driver)?;
                    let tr = client::transcript(nvme.as_str(), backend);
                    release(sys, nvme);
                    let failed = tr.iter().find(|l| l.contains("error"));
                    t = Some(tr.clone());
                    match (mode, failed) {
                        (Mode::Iommu, Some(l)) => Err(format!("vfio-ioctls: {l}")),
                        // The crate opens /dev/vfio/<group>; a noiommu group is
                        // /dev/vfio/noiommu-<group>: it must say so, nothing else.
                        (Mode::NoIommu, l) if tr.len() != 1 || l.is_none() => {
                            Err(format!("expected one error line in noiommu mode: {tr:?}"))
                        }
                        _ => Ok(()),
                    }
                });
            release(&self.sys, nvme);
            if let Some(tr) = t {
                for l in &tr {
                    self.r.info(format!("client {driver} {how}: {l}"));
                }
                transcripts.push((driver.to_string(), tr));
            }
        }
        self.r.check(
            &format!("independent-client-differential-nvme-{how}"),
            || {
                let [(_, a), (_, b)] = &transcripts[..] else {
                    return Err("a driver's transcript is missing (an earlier check failed)".into());
                };
                let diffs: Vec<String> = a
                    .iter()
                    .zip(b)
                    .filter(|(x, y)| x != y)
                    .map(|(x, y)| format!("{x} vs {y}"))
                    .collect();
                if a.len() != b.len() || !diffs.is_empty() {
                    return Err(format!(
                        "upstream vs ours ({} vs {} lines): {}",
                        a.len(),
                        b.len(),
                        diffs.join("; ")
                    ));
                }
                Ok(())
            },
        );
        let _ = sh(MODPROBE, &["-r", GENERIC]);
    }
}

#[cfg(test)]
mod tests {
    use super::libvirt_choice;

    #[test]
    fn the_fewest_stars_win_and_the_first_of_equals() {
        let aliases = "alias pci:v00008086d*sv*sd*bc*sc*i* native\n\
                       alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci_generic\n\
                       alias vfio_pci:v00008086d00003E92sv*sd*bc03sc*i* vfio_pci_igd\n\
                       alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n";
        let igd = "pci:v00008086d00003E92sv00008086sd00002212bc03sc00i00";
        assert_eq!(
            libvirt_choice(aliases, igd).as_deref(),
            Some("vfio_pci_igd")
        );
        let nvme = "pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02";
        assert_eq!(
            libvirt_choice(aliases, nvme).as_deref(),
            Some("vfio_pci_generic")
        );
        assert_eq!(libvirt_choice("alias pci:v*d* x\n", nvme), None);
    }
}
