// SPDX-License-Identifier: GPL-2.0
//! `vfio-guest-tests`: the guest half of the test suite, run as the only program of a QEMU guest.
//!
//! Usage: `vfio-guest-tests --mode iommu|noiommu [--module KO]... [--driver NAME]...
//!         [--device BDF=LABEL[/CFGSIZE]]... [--generic-ko KO] [--catalog KO]... [--new-variant-ko KO]
//!         [--installed] [--standalone-ko KO] [--config-trace LABEL]... [--regions-trace LABEL]...
//!         [--suite full|robust|installed|hooks|migration|mdev|nvlink|bench] [--seed N] [--storm-cycles N]
//!         [--sriov-pf BDF] [--bench-rounds N] [--bench-devices L,L...]
//!         [--bench-fleet BRIDGE-BDF] [--bench-max-ops N] [--bench-profile OP]
//!         [--bench-profile-secs N] [--no-exit]`
//!
//! `--suite installed` runs only the checks of the installed modules (`installed.rs`; boot with
//! `VFIO_RS_GUEST_APPEND="vfiotest.extra=--suite,installed"`, e.g. on the debug kernel).
//! `--suite robust` runs only the robustness checks (regressions of fixed defects, the
//! concurrent fuzzer, faults and storms: see `robust.rs`), as `cargo xtask test` does on the
//! debug kernel; `full` (the default) runs them after every other check; `migration` only the
//! live-migration checks (`migration.rs`, also part of `robust`); `mdev` only the mdev-pci
//! sample's checks (`mdev_pci.rs`, also part of `full`). `--suite bench` runs only
//! the benchmark of `cargo xtask bench` (`perf.rs`); any `--bench-*` option implies it.
//! `--bench-profile OP` replaces the benchmark with a kernel profile of OP per driver slot
//! (`profile.rs`; `cargo xtask bench --profile OP`).
//! `--seed` replays a fuzzer run. `--storm-cycles` sets the number of cycles of each storm (default
//! [`storms::CYCLES`], [`storms::DEBUG_CYCLES`] on a KASAN kernel).
//!
//! Modules are loaded in the order given and unloaded in reverse. Every driver-dependent check
//! runs once per `--driver`, named `<check>-<device>-<driver>`; with two or more drivers the
//! first is the oracle and the answers of the others are compared with it byte for byte.
//!
//! Output, one line each: `TEST <name>`, then `PASS <name>` or `FAIL <name>: <reason>`, with
//! `INFO ...` lines for context; finally `SUMMARY passed=N failed=M`. A failed check never
//! stops the run. At the end the program writes [`PASS_EXIT`] to isa-debug-exit, meaning only
//! "the guest ran to the end": the host decides from SUMMARY.

mod bench;
mod binding;
mod client;
mod config;
mod faults;
mod fuzz;
mod hooks;
mod igd;
mod installed;
mod irq;
mod kmod;
mod lifecycle;
mod mdev_pci;
mod migration;
mod nvlink;
mod overlay;
mod perf;
mod profile;
mod regions;
mod regress;
mod robust;
mod sriov;
mod storms;
mod vfio;
mod vga;

use pcibind::{Bdf, Sysfs};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Written to isa-debug-exit when the run got to the end: QEMU exits with `(0x10 << 1) | 1` = 33.
const PASS_EXIT: u8 = 0x10;
/// The alias modpost must emit for an override-only match-any table.
const GENERIC_ALIAS: &str = "vfio_pci:v*d*sv*sd*bc*sc*i*";
const GENERIC_DRIVER: &str = "vfio-pci-generic";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Iommu,
    NoIommu,
}

struct Args {
    mode: Mode,
    modules: Vec<PathBuf>,
    drivers: Vec<String>,
    devices: Vec<(Bdf, String)>,
    /// The config space size each device label must have (`--device BDF=LABEL/SIZE`).
    cfg_sizes: BTreeMap<String, u64>,
    /// Device labels whose config sweep is printed access by access (`--config-trace LABEL`).
    config_trace: Vec<String>,
    /// Device labels whose region checks are printed record by record (`--regions-trace LABEL`).
    regions_trace: Vec<String>,
    generic_ko: Option<PathBuf>,
    /// Our modules: what `cargo xtask match` would see on the host.
    catalog: Vec<PathBuf>,
    /// The variant `cargo xtask new-variant` made for edu (loaded by the bind checks).
    new_variant_ko: Option<PathBuf>,
    /// The initramfs carries `cargo xtask install`'s module tree (`--installed`).
    installed: bool,
    /// The variant built outside the repository against the installed SDK (`--standalone-ko`).
    standalone_ko: Option<PathBuf>,
    /// Only the robustness checks (`--suite robust`).
    robust_only: bool,
    /// Only the installed-module checks (`--suite installed`; installed.rs).
    installed_only: bool,
    /// Only the SDK checks (`--suite hooks`: `overlay.rs` and `hooks.rs`).
    hooks_only: bool,
    /// Only the benchmark (`--suite bench`), with its options (`--bench-*`).
    bench: Option<perf::BenchArgs>,
    /// Only the live-migration checks (`--suite migration`, for the debug kernel).
    migration_only: bool,
    /// Only the mdev-pci sample's checks (`--suite mdev`; mdev_pci.rs).
    mdev_only: bool,
    /// Only the NVLink variant's checks (`--suite nvlink`; nvlink.rs).
    nvlink_only: bool,
    /// The fuzzer's seed (`--seed`); random (and printed) when not given.
    seed: Option<u64>,
    /// The SR-IOV capable PF of the D3-versus-VF-enable check (`--sriov-pf BDF`).
    sriov_pf: Option<Bdf>,
    /// Cycles per storm (`--storm-cycles`; the default depends on the kernel).
    storm_cycles: Option<usize>,
    exit: bool,
}

fn usage(msg: &str) -> ! {
    eprintln!("vfio-guest-tests: {msg}");
    eprintln!(
        "usage: vfio-guest-tests --mode iommu|noiommu [--module KO]... [--driver NAME]... \
         [--device BDF=LABEL[/CFGSIZE]]... [--generic-ko KO] [--catalog KO]... [--new-variant-ko KO] \
         [--installed] [--standalone-ko KO] [--config-trace LABEL]... [--regions-trace LABEL]... \
         [--suite full|robust|installed|hooks|migration|mdev|nvlink|bench] [--seed N] [--storm-cycles N] \
         [--sriov-pf BDF] [--bench-rounds N] [--bench-devices L,L] [--bench-fleet BDF] \
         [--bench-max-ops N] [--bench-profile OP] [--bench-profile-secs N] [--no-exit]"
    );
    std::process::exit(2)
}

/// The benchmark options, which also select `--suite bench`.
fn bench_args(a: &mut Args) -> &mut perf::BenchArgs {
    a.bench.get_or_insert_with(Default::default)
}

fn parse_args() -> Args {
    let mut a = Args {
        mode: Mode::Iommu,
        modules: vec![],
        drivers: vec![],
        devices: vec![],
        cfg_sizes: BTreeMap::new(),
        config_trace: vec![],
        regions_trace: vec![],
        generic_ko: None,
        catalog: vec![],
        new_variant_ko: None,
        installed: false,
        standalone_ko: None,
        robust_only: false,
        installed_only: false,
        hooks_only: false,
        bench: None,
        migration_only: false,
        mdev_only: false,
        nvlink_only: false,
        seed: None,
        storm_cycles: None,
        sriov_pf: None,
        exit: true,
    };
    let mut mode = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--mode" => {
                mode = Some(match val("--mode").as_str() {
                    "iommu" => Mode::Iommu,
                    "noiommu" => Mode::NoIommu,
                    m => usage(&format!("unknown mode {m}")),
                })
            }
            "--module" => a.modules.push(val("--module").into()),
            "--driver" => a.drivers.push(val("--driver")),
            "--device" => {
                let v = val("--device");
                let (b, l) = v
                    .split_once('=')
                    .unwrap_or_else(|| usage("--device wants BDF=LABEL[/CFGSIZE]"));
                let b = Bdf::parse(b).unwrap_or_else(|e| usage(&e.to_string()));
                let l = match l.split_once('/') {
                    Some((l, sz)) => {
                        let sz = sz
                            .parse()
                            .unwrap_or_else(|_| usage(&format!("bad config size in --device {v}")));
                        a.cfg_sizes.insert(l.to_string(), sz);
                        l
                    }
                    None => l,
                };
                a.devices.push((b, l.to_string()));
            }
            "--config-trace" => a.config_trace.push(val("--config-trace")),
            "--regions-trace" => a.regions_trace.push(val("--regions-trace")),
            "--generic-ko" => a.generic_ko = Some(val("--generic-ko").into()),
            "--catalog" => a.catalog.push(val("--catalog").into()),
            "--new-variant-ko" => a.new_variant_ko = Some(val("--new-variant-ko").into()),
            "--installed" => a.installed = true,
            "--standalone-ko" => a.standalone_ko = Some(val("--standalone-ko").into()),
            "--suite" => match val("--suite").as_str() {
                "bench" => {
                    a.bench.get_or_insert_with(Default::default);
                }
                s => {
                    (a.robust_only, a.installed_only, a.hooks_only) = match s {
                        "full" => (false, false, false),
                        "robust" => (true, false, false),
                        "installed" => (false, true, false),
                        "hooks" => (false, false, true),
                        "migration" => {
                            a.migration_only = true;
                            (true, false, false)
                        }
                        "mdev" => {
                            a.mdev_only = true;
                            (false, false, false)
                        }
                        "nvlink" => {
                            a.nvlink_only = true;
                            (false, false, false)
                        }
                        x => usage(&format!("unknown suite {x}")),
                    }
                }
            },
            "--bench-rounds" => {
                let v = val("--bench-rounds");
                bench_args(&mut a).rounds = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| usage(&format!("bad --bench-rounds {v}")));
            }
            "--bench-max-ops" => {
                let v = val("--bench-max-ops");
                bench_args(&mut a).max_ops = v
                    .parse()
                    .ok()
                    .filter(|&n| n >= 8)
                    .unwrap_or_else(|| usage(&format!("bad --bench-max-ops {v}")));
            }
            "--bench-devices" => {
                let v = val("--bench-devices");
                bench_args(&mut a).devices = v.split([',', '+']).map(str::to_string).collect();
            }
            "--bench-profile" => {
                bench_args(&mut a).profile = Some(val("--bench-profile"));
            }
            "--bench-profile-secs" => {
                let v = val("--bench-profile-secs");
                bench_args(&mut a).profile_secs = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| usage(&format!("bad --bench-profile-secs {v}")));
            }
            "--bench-fleet" => {
                let v = val("--bench-fleet");
                bench_args(&mut a).fleet =
                    Some(Bdf::parse(&v).unwrap_or_else(|e| usage(&e.to_string())));
            }
            "--sriov-pf" => {
                let v = val("--sriov-pf");
                a.sriov_pf = Some(Bdf::parse(&v).unwrap_or_else(|e| usage(&e.to_string())));
            }
            "--seed" => {
                let v = val("--seed");
                let n = v
                    .strip_prefix("0x")
                    .map_or_else(|| v.parse().ok(), |h| u64::from_str_radix(h, 16).ok())
                    .unwrap_or_else(|| usage(&format!("bad --seed {v}")));
                a.seed = Some(n);
            }
            "--storm-cycles" => {
                let v = val("--storm-cycles");
                a.storm_cycles = Some(
                    v.parse()
                        .unwrap_or_else(|_| usage(&format!("bad --storm-cycles {v}"))),
                );
            }
            "--no-exit" => a.exit = false,
            "-h" | "--help" => usage("help"),
            x => usage(&format!("unknown argument {x}")),
        }
    }
    a.mode = mode.unwrap_or_else(|| usage("--mode is required"));
    if a.drivers.is_empty() {
        a.drivers.push("vfio-pci".into());
    }
    if a.devices.is_empty() {
        a.devices.push((
            Bdf::parse("0000:00:03.0").unwrap_or_else(|e| usage(&e.to_string())),
            "edu".into(),
        ));
    }
    a
}

/// Counts results and prints the protocol lines.
struct Report {
    passed: usize,
    failed: usize,
    start: Instant,
}

impl Report {
    fn line(&self, s: &str) {
        // One write per line, so kernel messages on the same console rarely split it.
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(format!("{s}\n").as_bytes());
        let _ = out.flush();
    }

    fn info(&self, s: impl AsRef<str>) {
        self.line(&format!("INFO {}", s.as_ref()));
    }

    /// Runs one named check; `Err` is a failure with its reason.
    fn check(&mut self, name: &str, f: impl FnOnce() -> Result<(), String>) -> bool {
        self.line(&format!("TEST {name}"));
        let t = Instant::now();
        match f() {
            Ok(()) => {
                self.passed += 1;
                self.line(&format!("PASS {name} ({} ms)", t.elapsed().as_millis()));
                true
            }
            Err(why) => {
                self.failed += 1;
                self.line(&format!("FAIL {name}: {}", why.replace('\n', " | ")));
                false
            }
        }
    }
}

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Waits up to two seconds for a condition (device nodes appear from devtmpfs asynchronously).
fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(2);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn module_name(ko: &Path) -> String {
    kmod::modinfo(ko)
        .ok()
        .and_then(|mi| mi.into_iter().find(|(k, _)| k == "name").map(|(_, v)| v))
        .unwrap_or_else(|| {
            ko.file_stem()
                .map(|s| s.to_string_lossy().replace('-', "_"))
                .unwrap_or_default()
        })
}

/// The module that registered a PCI driver (`/sys/bus/pci/drivers/<d>/module`).
fn driver_module(driver: &str) -> Option<String> {
    std::fs::read_link(format!("/sys/bus/pci/drivers/{driver}/module"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// What the tests need to open a bound device.
struct Nodes {
    group: String,
    cdev: Option<String>,
}

/// The VFIO group node and cdev of a device bound to a VFIO driver, once they exist.
fn find_nodes(sys: &Sysfs, mode: Mode, bdf: &Bdf) -> Result<Nodes, String> {
    let info = sys.info(bdf).map_err(s)?;
    let g = info.iommu_group.ok_or("no iommu_group after binding")?;
    let group = match mode {
        Mode::Iommu => format!("/dev/vfio/{g}"),
        Mode::NoIommu => format!("/dev/vfio/noiommu-{g}"),
    };
    if !wait_for(|| Path::new(&group).exists()) {
        return Err(format!("{group} did not appear"));
    }
    let cdev = sys
        .vfio_cdev(bdf)
        .map_err(s)?
        .map(|c| format!("/dev/vfio/devices/{c}"));
    if mode == Mode::Iommu {
        let c = cdev.clone().ok_or("no vfio-dev/vfioN in sysfs")?;
        if !wait_for(|| Path::new(&c).exists()) {
            return Err(format!("{c} did not appear"));
        }
    }
    Ok(Nodes { group, cdev })
}

struct Suite {
    args: Args,
    sys: Sysfs,
    r: Report,
    /// (device label, driver, path) -> answers, for the differential checks.
    answers: BTreeMap<(String, String, &'static str), vfio::Answers>,
    /// The config a device came back with after a check removed it and had it re-added
    /// (`faults.rs`): what `config-restored-<label>` compares with instead of the first snapshot.
    config_baseline: BTreeMap<String, Vec<u8>>,
}

impl Suite {
    /// Binds `bdf` to `driver` and opens it through its group (every IOMMU mode has one).
    fn bind_and_open(&self, bdf: &Bdf, driver: &str) -> Result<vfio::Device, String> {
        self.sys.bind(bdf, driver).map_err(s)?;
        let nodes = find_nodes(&self.sys, self.args.mode, bdf)?;
        vfio::open_via_group(&nodes.group, &bdf.to_string(), self.iommu_type())
    }

    /// The first device the host passed with label `label` (`edu`, `pci-testdev`, ...).
    fn device_labelled(&self, label: &str) -> Option<Bdf> {
        self.args
            .devices
            .iter()
            .find(|(_, l)| l == label)
            .map(|(b, _)| b.clone())
    }

    fn iommu_type(&self) -> u32 {
        match self.args.mode {
            Mode::Iommu => vfio::VFIO_TYPE1v2_IOMMU,
            Mode::NoIommu => vfio::VFIO_NOIOMMU_IOMMU,
        }
    }

    fn environment(&mut self) {
        let mode = self.args.mode;
        let devices = self.args.devices.clone();
        let cfg_sizes = self.args.cfg_sizes.clone();
        let sys = &self.sys;
        self.r.check("environment", || {
            if !Path::new("/dev/vfio/vfio").exists() {
                return Err("/dev/vfio/vfio missing (VFIO_CONTAINER?)".into());
            }
            let noiommu = std::fs::read_to_string("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode")
                .map(|v| v.trim() == "Y")
                .unwrap_or(false);
            for (b, l) in &devices {
                let info = sys.info(b).map_err(|e| format!("{l}: {e}"))?;
                if let Some(&want) = cfg_sizes.get(l) {
                    let got = std::fs::metadata(sys.device_dir(b).join("config")).map(|m| m.len()).unwrap_or(0);
                    if got != want {
                        return Err(format!("{l} ({b}) has {got} bytes of config space, expected {want}"));
                    }
                }
                if info.driver.is_some() {
                    return Err(format!("{l} ({b}) already has driver {:?}", info.driver));
                }
                match mode {
                    Mode::Iommu if info.iommu_group.is_none() => {
                        return Err(format!("{l} ({b}) has no IOMMU group: is the IOMMU on?"))
                    }
                    Mode::NoIommu if info.iommu_group.is_some() => {
                        return Err(format!("{l} ({b}) has an IOMMU group in noiommu mode"))
                    }
                    _ => {}
                }
            }
            if mode == Mode::Iommu {
                let log = kmod::kmsg().map_err(|e| format!("/dev/kmsg: {e}"))?;
                if !log.iter().any(|l| l.contains("Enabled IRQ remapping")) {
                    return Err("interrupt remapping is not enabled (no \"Enabled IRQ remapping\" in dmesg)".into());
                }
            }
            match mode {
                Mode::Iommu if !Path::new("/dev/iommu").exists() => Err("/dev/iommu missing".into()),
                Mode::NoIommu if !noiommu => Err("vfio.enable_unsafe_noiommu_mode is not Y".into()),
                _ => Ok(()),
            }
        });
    }

    fn load_modules(&mut self) {
        for ko in self.args.modules.clone() {
            let name = module_name(&ko);
            self.r.check(&format!("modload-{name}"), || {
                kmod::load(&ko).map_err(|e| format!("finit_module({}): {e}", ko.display()))?;
                if !kmod::loaded(&name) {
                    return Err(format!("/sys/module/{name} missing after load"));
                }
                Ok(())
            });
        }
        for d in self.args.drivers.clone() {
            let sys = &self.sys;
            self.r.check(&format!("driver-registered-{d}"), || {
                if sys.driver_loaded(&d) {
                    Ok(())
                } else {
                    Err(format!(
                        "/sys/bus/pci/drivers/{d} missing after loading the modules"
                    ))
                }
            });
        }
    }

    fn modinfo(&mut self) {
        if !self.args.drivers.iter().any(|d| d == GENERIC_DRIVER) {
            return;
        }
        let ko = self.args.generic_ko.clone();
        self.r.check("modinfo-vfio_pci_generic", || {
            let ko = ko.ok_or("no --generic-ko given")?;
            let mi = kmod::modinfo(&ko)?;
            let aliases: Vec<&str> = mi
                .iter()
                .filter(|(k, _)| k == "alias")
                .map(|(_, v)| v.as_str())
                .collect();
            let depends: Vec<&str> = mi
                .iter()
                .filter(|(k, _)| k == "depends")
                .flat_map(|(_, v)| v.split(',').filter(|s| !s.is_empty()))
                .collect();
            if !aliases.contains(&GENERIC_ALIAS) {
                return Err(format!(
                    "alias {GENERIC_ALIAS} missing; aliases: {aliases:?}"
                ));
            }
            if depends != ["vfio_pci_common"] {
                return Err(format!(
                    "depends is {depends:?}, expected [\"vfio_pci_common\"]"
                ));
            }
            Ok(())
        });
    }

    /// Remove each device and rescan with every driver loaded: none may take it on its own.
    fn no_autobind(&mut self) {
        for (bdf, label) in self.args.devices.clone() {
            let sys = &self.sys;
            // Loading the modules must not have taken the device either.
            let at_load = sys.driver(&bdf).ok().flatten();
            let mut after: Option<Option<String>> = None;
            self.r.check(&format!("remove-rescan-{label}"), || {
                sys.remove(&bdf).map_err(s)?;
                if !wait_for(|| !sys.device_dir(&bdf).exists()) {
                    return Err(format!("{bdf} still present after remove"));
                }
                sys.rescan().map_err(s)?;
                if !wait_for(|| sys.device_dir(&bdf).exists()) {
                    return Err(format!("{bdf} did not come back after rescan"));
                }
                // Probing runs synchronously in the rescan write; give async probes a moment.
                std::thread::sleep(Duration::from_millis(200));
                after = Some(sys.driver(&bdf).map_err(s)?);
                Ok(())
            });
            let Some(after) = after else { continue };
            self.r.info(format!(
                "{label}: driver after module load {at_load:?}, after remove+rescan {after:?}"
            ));
            for d in self.args.drivers.clone() {
                let loaded = self.sys.driver_loaded(&d);
                let at_load = at_load.clone();
                self.r
                    .check(&format!("no-autobind-{label}-{d}"), || match &after {
                        _ if !loaded => {
                            Err(format!("driver {d} was not registered during the rescan"))
                        }
                        _ if at_load.as_deref() == Some(d.as_str()) => Err(format!(
                            "{bdf} bound to {d} by itself when the module was loaded"
                        )),
                        Some(got) if *got == d => {
                            Err(format!("{bdf} bound to {d} by itself after rescan"))
                        }
                        _ => Ok(()),
                    });
            }
            if after.is_some() {
                let _ = self.sys.unbind(&bdf);
            }
        }
    }

    fn bind(&mut self, bdf: &Bdf, label: &str, driver: &str) -> Option<Nodes> {
        let mode = self.args.mode;
        let sys = &self.sys;
        let mut nodes = None;
        let log_before = kmod::kmsg().map(|l| l.len()).unwrap_or(0);
        let ok = self.r.check(&format!("bind-{label}-{driver}"), || {
            sys.bind(bdf, driver).map_err(s)?;
            let info = sys.info(bdf).map_err(s)?;
            if info.driver.as_deref() != Some(driver)
                || info.driver_override.as_deref() != Some(driver)
            {
                return Err(format!(
                    "after bind: driver {:?}, driver_override {:?}",
                    info.driver, info.driver_override
                ));
            }
            nodes = Some(find_nodes(sys, mode, bdf)?);
            Ok(())
        });
        if !ok {
            // What the kernel said while we tried (the probe error is only in the log).
            for l in kmod::kmsg().unwrap_or_default().iter().skip(log_before) {
                self.r.info(format!("kmsg: {l}"));
            }
        }
        nodes
    }

    /// The checks on one open device; records the answers for the differential check.
    fn device_checks(&mut self, bdf: &Bdf, label: &str, driver: &str, dev: &vfio::Device) {
        let a = vfio::query(dev);
        let how = dev.how;
        let sfx = format!("{label}-{driver}-{how}");
        let cfg_size = std::fs::metadata(self.sys.device_dir(bdf).join("config"))
            .map(|m| m.len())
            .unwrap_or(0);
        let ids = self.sys.vendor_device(bdf).ok();
        let a2 = a.clone();
        self.r.check(&format!("get-info-{sfx}"), || {
            let b = a2
                .info
                .map_err(|e| format!("VFIO_DEVICE_GET_INFO: errno {e}"))?;
            let u = |o: usize| u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
            let (flags, nreg, nirq) = (u(4), u(8), u(12));
            if flags & vfio::VFIO_DEVICE_FLAGS_PCI == 0 {
                return Err(format!(
                    "VFIO_DEVICE_FLAGS_PCI not set: {}",
                    vfio::show_info(&b)
                ));
            }
            if nreg < vfio::NUM_REGIONS || nirq != vfio::NUM_IRQS {
                return Err(format!(
                    "expected num_regions >= {} and num_irqs == {}: {}",
                    vfio::NUM_REGIONS,
                    vfio::NUM_IRQS,
                    vfio::show_info(&b)
                ));
            }
            Ok(())
        });
        self.r.info(format!(
            "{sfx}: GET_INFO {}",
            a.info
                .map(|b| vfio::show_info(&b))
                .unwrap_or_else(|e| format!("errno {e}"))
        ));
        let small = a.info_small;
        self.r
            .check(&format!("get-info-argsz-{sfx}"), || match small {
                libc::EINVAL => Ok(()),
                0 => Err("GET_INFO with argsz 8 succeeded, expected EINVAL".into()),
                e => Err(format!(
                    "GET_INFO with argsz 8 gave errno {e}, expected EINVAL ({})",
                    libc::EINVAL
                )),
            });
        let cr = a.config_region;
        self.r.check(&format!("region-config-{sfx}"), || {
            let b = cr.map_err(|e| format!("GET_REGION_INFO(config): errno {e}"))?;
            let (flags, size, offset) = vfio::region_fields(&b);
            let rw = vfio::VFIO_REGION_INFO_FLAG_READ | vfio::VFIO_REGION_INFO_FLAG_WRITE;
            if offset != (vfio::CONFIG_INDEX as u64) << 40 || size != cfg_size || flags & rw != rw {
                return Err(format!(
                    "{} (want offset {:#x}, size {cfg_size:#x}, READ|WRITE)",
                    vfio::show_region(&b),
                    (vfio::CONFIG_INDEX as u64) << 40
                ));
            }
            Ok(())
        });
        let ci = a.config_ids;
        self.r.check(&format!("config-ids-{sfx}"), || {
            let b = ci.map_err(|e| format!("config read: errno {e}"))?;
            let (v, d) = (
                u16::from_le_bytes([b[0], b[1]]),
                u16::from_le_bytes([b[2], b[3]]),
            );
            match ids {
                Some((sv, sd)) if (sv, sd) == (v, d) => Ok(()),
                Some((sv, sd)) => Err(format!(
                    "config says {v:04x}:{d:04x}, sysfs {sv:04x}:{sd:04x}"
                )),
                None => Err("cannot read sysfs vendor/device".into()),
            }
        });
        for (i, r) in &a.other_regions {
            self.r.info(format!(
                "{sfx}: region {i}: {}",
                r.map(|b| vfio::show_region(&b))
                    .unwrap_or_else(|e| format!("errno {e}"))
            ));
        }
        self.answers
            .insert((label.to_string(), driver.to_string(), how), a);
    }

    fn open_and_check(&mut self, bdf: &Bdf, label: &str, driver: &str, nodes: &Nodes) {
        let it = self.iommu_type();
        let mut dev = None;
        let sfx = format!("{label}-{driver}");
        self.r.check(&format!("open-group-{sfx}"), || {
            dev = Some(vfio::open_via_group(&nodes.group, bdf.as_str(), it)?);
            Ok(())
        });
        if let Some(d) = dev.take() {
            self.device_checks(bdf, label, driver, &d);
        }
        if self.args.mode == Mode::Iommu {
            let cdev = nodes.cdev.clone();
            self.r.check(&format!("open-cdev-{sfx}"), || {
                dev = Some(vfio::open_via_cdev(&cdev.ok_or("no cdev")?)?);
                Ok(())
            });
            if let Some(d) = dev.take() {
                self.device_checks(bdf, label, driver, &d);
                let g = self
                    .answers
                    .get(&(label.to_string(), driver.to_string(), "group"))
                    .cloned();
                let c = self
                    .answers
                    .get(&(label.to_string(), driver.to_string(), "cdev"))
                    .cloned();
                self.r.check(&format!("group-vs-cdev-{sfx}"), || {
                    compare(g.as_ref(), c.as_ref())
                });
            }
        } else if let Some(c) = &nodes.cdev {
            self.r.info(format!(
                "noiommu: {label} has a cdev {c} (exists: {})",
                Path::new(c).exists()
            ));
        }
    }

    fn unbind(&mut self, bdf: &Bdf, label: &str, driver: &str) {
        let sys = &self.sys;
        self.r.check(&format!("unbind-{label}-{driver}"), || {
            let prev = sys.unbind(bdf).map_err(s)?;
            if prev.as_deref() != Some(driver) {
                return Err(format!("was on {prev:?}, expected {driver}"));
            }
            let i = sys.info(bdf).map_err(s)?;
            if i.driver.is_some() || i.driver_override.is_some() {
                return Err(format!(
                    "after unbind: driver {:?}, driver_override {:?}",
                    i.driver, i.driver_override
                ));
            }
            if sys.vfio_cdev(bdf).map_err(s)?.is_some() {
                return Err("vfio-dev still present after unbind".into());
            }
            Ok(())
        });
    }

    fn per_driver(&mut self) {
        for (bdf, label) in self.args.devices.clone() {
            for d in self.args.drivers.clone() {
                if let Some(nodes) = self.bind(&bdf, &label, &d) {
                    self.open_and_check(&bdf, &label, &d, &nodes);
                }
                if self.sys.driver(&bdf).ok().flatten().as_deref() == Some(d.as_str()) {
                    self.unbind(&bdf, &label, &d);
                } else {
                    // The bind failed; leave the device clean for the next driver.
                    let _ = self.sys.unbind(&bdf);
                }
            }
            self.differential(&label);
        }
    }

    fn differential(&mut self, label: &str) {
        let drivers = self.args.drivers.clone();
        let Some(oracle) = drivers.first() else {
            return;
        };
        for d in drivers.iter().skip(1) {
            let hows: &[&'static str] = if self.args.mode == Mode::Iommu {
                &["group", "cdev"]
            } else {
                &["group"]
            };
            for how in hows {
                let o = self
                    .answers
                    .get(&(label.to_string(), oracle.clone(), *how))
                    .cloned();
                let t = self
                    .answers
                    .get(&(label.to_string(), d.clone(), *how))
                    .cloned();
                self.r
                    .check(&format!("differential-{label}-{d}-{how}"), || {
                        compare(o.as_ref(), t.as_ref())
                    });
            }
        }
    }

    /// Unloading a driver's module while one of its devices is open must fail cleanly, leave
    /// the device usable, and succeed after close (which also unbinds the device).
    fn unload_while_open(&mut self) {
        let Some((bdf, label)) = self.args.devices.first().cloned() else {
            return;
        };
        for d in self.args.drivers.clone() {
            let Some(module) = driver_module(&d).or_else(|| {
                // A driver registered without an owner has no `module` link; try the usual name.
                let guess = d.replace('-', "_");
                kmod::loaded(&guess).then(|| {
                    self.r.info(format!(
                        "/sys/bus/pci/drivers/{d}/module missing; assuming module {guess}"
                    ));
                    guess
                })
            }) else {
                self.r.check(&format!("unload-while-open-{d}"), || {
                    Err(format!("no module for driver {d}"))
                });
                continue;
            };
            let Some(nodes) = self.bind(&bdf, &label, &d) else {
                continue;
            };
            let it = self.iommu_type();
            let mut refused = String::new();
            self.r.check(&format!("unload-while-open-{d}"), || {
                let dev = vfio::open_via_group(&nodes.group, bdf.as_str(), it)?;
                let before = vfio::query(&dev);
                match kmod::unload(&module) {
                    Ok(()) => {
                        return Err(format!(
                            "delete_module({module}) succeeded with a device fd open"
                        ))
                    }
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EBUSY) | Some(libc::EWOULDBLOCK)
                        ) =>
                    {
                        refused = format!("delete_module({module}) with a device fd open: {e}");
                    }
                    Err(e) => {
                        return Err(format!(
                            "delete_module({module}) with fd open: {e}, expected EBUSY/EWOULDBLOCK"
                        ))
                    }
                }
                if !kmod::loaded(&module) {
                    return Err(format!("{module} gone although delete_module failed"));
                }
                let after = vfio::query(&dev);
                if before != after {
                    return Err("device answers changed after the refused unload".into());
                }
                drop(dev);
                kmod::unload(&module)
                    .map_err(|e| format!("delete_module({module}) after close: {e}"))?;
                if kmod::loaded(&module) {
                    return Err(format!("{module} still loaded"));
                }
                if Path::new(&format!("/sys/bus/pci/drivers/{d}")).exists() {
                    return Err(format!("driver {d} still registered"));
                }
                if let Some(x) = self.sys.driver(&bdf).map_err(s)? {
                    return Err(format!("{bdf} still on {x} after the module is gone"));
                }
                Ok(())
            });
            if !refused.is_empty() {
                self.r.info(refused);
            }
            let _ = self.sys.set_override(&bdf, None);
        }
    }

    fn unload_modules(&mut self) {
        for ko in self.args.modules.clone().iter().rev() {
            let name = module_name(ko);
            if !kmod::loaded(&name) {
                continue; // already unloaded by unload-while-open
            }
            self.r.check(&format!("modunload-{name}"), || {
                kmod::unload(&name).map_err(|e| format!("delete_module({name}): {e}"))?;
                if kmod::loaded(&name) {
                    return Err(format!("{name} still loaded"));
                }
                Ok(())
            });
        }
    }

    fn dmesg(&mut self) {
        self.r.check("dmesg-clean", || {
            let log = kmod::kmsg().map_err(|e| format!("/dev/kmsg: {e}"))?;
            let bad = kmod::bad_kernel_lines(&log);
            if bad.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} bad kernel log lines: {}",
                    bad.len(),
                    bad.join(" | ")
                ))
            }
        });
    }
}

fn compare(a: Option<&vfio::Answers>, b: Option<&vfio::Answers>) -> Result<(), String> {
    let (a, b) = match (a, b) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err("one side has no answers (an earlier check failed)".into()),
    };
    let mut diffs = Vec::new();
    let show_i = |x: &Result<[u8; 24], i32>| {
        x.map(|b| vfio::show_info(&b))
            .unwrap_or_else(|e| format!("errno {e}"))
    };
    let show_r = |x: &Result<[u8; 32], i32>| {
        x.map(|b| vfio::show_region(&b))
            .unwrap_or_else(|e| format!("errno {e}"))
    };
    if a.info != b.info {
        diffs.push(format!(
            "GET_INFO: {} vs {}",
            show_i(&a.info),
            show_i(&b.info)
        ));
    }
    if a.info_small != b.info_small {
        diffs.push(format!(
            "GET_INFO(argsz 8): errno {} vs {}",
            a.info_small, b.info_small
        ));
    }
    if a.config_region != b.config_region {
        diffs.push(format!(
            "config region: {} vs {}",
            show_r(&a.config_region),
            show_r(&b.config_region)
        ));
    }
    if a.config_ids != b.config_ids {
        diffs.push(format!(
            "config dword 0: {:02x?} vs {:02x?}",
            a.config_ids, b.config_ids
        ));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("; "))
    }
}

fn main() {
    let args = parse_args();
    let exit = args.exit;
    let mut suite = Suite {
        args,
        sys: Sysfs::system(),
        r: Report {
            passed: 0,
            failed: 0,
            start: Instant::now(),
        },
        answers: BTreeMap::new(),
        config_baseline: BTreeMap::new(),
    };
    suite.r.info(format!(
        "vfio-guest-tests mode={:?} drivers={:?} devices={:?}",
        suite.args.mode,
        suite.args.drivers,
        suite
            .args
            .devices
            .iter()
            .map(|(b, l)| format!("{l}={b}"))
            .collect::<Vec<_>>()
    ));
    suite.environment();
    // Decided while the boot log is still complete.
    let kasan = robust::kasan_kernel();
    suite.r.info(format!("KASAN kernel: {kasan}"));
    suite.leak_check_start();
    if suite.args.installed_only {
        // Nothing loaded first: modprobe from the installed tree is what is checked.
        suite.installed_checks();
    } else if let Some(b) = suite.args.bench.clone() {
        suite.load_modules();
        suite.bench_suite(&b);
        suite.unload_modules();
    } else if suite.args.nvlink_only {
        suite.load_modules();
        suite.nvlink_checks();
        suite.unload_modules();
    } else if suite.args.mdev_only {
        suite.load_modules();
        let pristine = suite.snapshot_configs();
        suite.mdev_checks();
        suite.unload_modules();
        suite.config_restored(&pristine);
    } else if suite.args.hooks_only {
        suite.load_modules();
        suite.overlay_checks();
        suite.hooks_checks();
        suite.unload_modules();
    } else if suite.args.robust_only {
        suite.load_modules();
        let pristine = suite.snapshot_configs();
        if suite.args.migration_only {
            suite.migration_checks();
        } else {
            suite.robust_checks();
        }
        suite.unload_modules();
        suite.config_restored(&pristine);
    } else {
        suite.load_modules();
        suite.modinfo();
        // First: the firmware framebuffer can be evicted once per boot (see vga.rs).
        suite.vga_checks();
        suite.no_autobind();
        // Every device's config before any binding (and after the rescan, which moves BARs),
        // compared with the state after the suite.
        let pristine = suite.snapshot_configs();
        suite.per_driver();
        suite.config_checks();
        suite.region_checks();
        suite.irq_checks();
        suite.binding_checks();
        suite.overlay_checks();
        suite.hooks_checks();
        suite.igd_checks();
        suite.nvlink_checks();
        suite.lifecycle_checks();
        suite.mdev_checks();
        suite.robust_checks();
        suite.unload_while_open();
        suite.unload_modules();
        suite.config_restored(&pristine);
        // Last: modprobe from the installed tree, with none of the modules above loaded.
        suite.installed_checks();
    }
    suite.leak_check_end();
    suite.dmesg();
    let r = &suite.r;
    r.line(&format!(
        "SUMMARY passed={} failed={} ({} ms)",
        r.passed,
        r.failed,
        r.start.elapsed().as_millis()
    ));
    if exit {
        if let Err(e) = kmod::debug_exit(PASS_EXIT) {
            eprintln!("vfio-guest-tests: writing isa-debug-exit: {e}");
        }
        // Still here: not under QEMU with isa-debug-exit. Fail so init notices.
        std::process::exit(1);
    }
}
