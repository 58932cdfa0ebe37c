// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask test`: host checks (source checks, `cargo test`, fuzzing), then the guest suite
//! in each IOMMU mode, then one summary line `N passed, N failed`. Anything that cannot run (no
//! kernel, no QEMU, a guest that does not finish) is a failure, never a skip.

use crate::guest::{self, Counts, GuestRun, Mode, Suite};
use crate::kernel::Profile;
use crate::util::{repo_root, run, show, step};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Runs `cargo test` over the host crates and adds up cargo's own `test result:` lines.
fn host_tests() -> Counts {
    step("host tests: cargo test --workspace");
    let mut counts = Counts::default();
    let mut cmd = Command::new("cargo");
    cmd.args(["test", "--workspace", "--color", "never"])
        .current_dir(repo_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    println!("    $ {}", show(&cmd));
    let child = cmd.spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            counts.failed += 1;
            counts
                .failures
                .push(format!("host: cannot run cargo test: {e}"));
            return counts;
        }
    };
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let num = |key: &str| -> usize {
                    rest.split(';')
                        .find_map(|p| {
                            p.trim().strip_suffix(key).map(|n| {
                                n.trim()
                                    .trim_start_matches("ok. ")
                                    .trim_start_matches("FAILED. ")
                                    .to_string()
                            })
                        })
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0)
                };
                counts.passed += num(" passed");
                counts.failed += num(" failed");
            }
            if let Some(name) = line
                .strip_prefix("test ")
                .and_then(|l| l.strip_suffix(" ... FAILED"))
            {
                counts.failures.push(format!("host: {name}"));
            }
        }
    }
    match child.wait() {
        Ok(s) if s.success() => {}
        Ok(s) => {
            if counts.failures.is_empty() {
                counts.failed += 1;
                counts
                    .failures
                    .push(format!("host: cargo test exited with {s} (build failure?)"));
            }
        }
        Err(e) => {
            counts.failed += 1;
            counts.failures.push(format!("host: cargo test: {e}"));
        }
    }
    counts
}

/// The variant the test step makes with `new-variant`: module `vfio_pci_newvar_edu`, driver
/// `vfio-pci-newvar-edu`, for edu (1234:11e8). An unusual name, so it does not collide with a
/// variant someone adds to the tree.
pub const NEW_VARIANT: &str = "newvar_edu";
const EDU_MODALIAS: &str = "pci:v00001234d000011E8sv00001AF4sd00001100bc00scFFi00";
const TESTDEV_MODALIAS: &str = "pci:v00001B36d00000005sv00001AF4sd00001100bc00scFFi00";
/// A PCI address no machine of ours has.
const NOWHERE: &str = "0000:3f:1f.7";

/// Runs this very xtask binary with `args`; returns (exit status, stdout + stderr).
pub fn xtask(args: &[&str]) -> Result<(Option<i32>, String)> {
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let mut cmd = Command::new(exe);
    cmd.args(args);
    println!("    $ cargo xtask {}", args.join(" "));
    let out = cmd
        .output()
        .with_context(|| format!("running {}", show(&cmd)))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for l in text.lines() {
        println!("    | {l}");
    }
    Ok((out.status.code(), text))
}

/// `cargo xtask new-variant newvar_edu --vendor 1234 --device 11e8` (the real command line) on a
/// scratch copy of the tree, then a build of just that directory against KDIR and our
/// `Module.symvers` (so the common module is not rebuilt). Returns the `.ko` for the guest
/// suite, which loads it through the bind library, binds it to edu by override and drives it
/// through VFIO.
fn new_variant_step(kdir: &Path, kos: &[PathBuf]) -> Result<PathBuf> {
    use crate::variant;
    // Per checkout: another worktree's run must not rebuild the scratch tree (with its own
    // `common/`) under this one.
    let tree = crate::util::checkout_cache("new-variant-test");
    step(format!(
        "new-variant {NEW_VARIANT} for edu in a scratch tree {}",
        tree.display()
    ));
    if tree.exists() {
        std::fs::remove_dir_all(&tree).with_context(|| format!("removing {}", tree.display()))?;
    }
    // From the tree the modules were built in: for the debug kernel that is the mirror, whose
    // `common/` holds the bindings generated for that kernel.
    let mod_root = module_root(kos)?;
    variant::copy_tree_skeleton(&mod_root, &tree).context("copying the tree")?;
    let root = tree.display().to_string();
    let args = [
        "new-variant",
        NEW_VARIANT,
        "--vendor",
        "1234",
        "--device",
        "11e8",
        "--no-build",
        "--root",
        &root,
    ];
    match xtask(&args)? {
        (Some(0), _) => {}
        (c, t) => bail!("new-variant exited with {c:?}: {t}"),
    }
    match xtask(&args)? {
        (Some(1), t) if t.contains("already exists") => {}
        (c, _) => bail!(
            "a second new-variant {NEW_VARIANT} exited with {c:?}; expected a refusal to overwrite"
        ),
    }
    let spec = variant::Spec {
        name: NEW_VARIANT.into(),
        vendor: 0x1234,
        device: 0x11e8,
        subsystem: None,
        class: None,
    };
    let dir = tree.join("variants").join(NEW_VARIANT);
    let ko = dir.join(format!("{}.ko", spec.module()));
    let listed = crate::modules::module_paths_in(&tree)?;
    if !listed.contains(&ko) {
        bail!(
            "{} is not among the modules the scratch Kbuild builds: {listed:?}",
            ko.display()
        );
    }
    // The Module.symvers of the tree our modules were just built in.
    let symvers = mod_root.join("Module.symvers");
    run(crate::modules::kbuild_at(kdir, &dir)
        .arg(format!("KBUILD_EXTRA_SYMBOLS={}", symvers.display()))
        .arg("CONFIG_WERROR=y")
        .arg(format!("-j{}", crate::util::nproc()))
        .arg("modules"))?;
    let info = pcibind::modinfo::ModuleInfo::read(&ko)?;
    if info.name != spec.module()
        || info.aliases != [spec.alias()]
        || info.depends != ["vfio_pci_common"]
    {
        bail!(
            "{}: name {}, aliases {:?}, depends {:?}; expected {}, [{}], [vfio_pci_common]",
            ko.display(),
            info.name,
            info.aliases,
            info.depends,
            spec.module(),
            spec.alias()
        );
    }
    println!("    built {} (alias {})", ko.display(), spec.alias());
    Ok(ko)
}

/// The standalone variant the install step builds outside the repository against the installed
/// SDK: module `vfio_pci_sa_testdev`, driver `vfio-pci-sa-testdev`, for pci-testdev (1b36:0005).
pub const STANDALONE: &str = "sa_testdev";

/// The real `cargo xtask install --destdir` of the modules built in the tree of `kos` into a
/// scratch staging root (what the guest's initramfs carries under /lib/modules/<release>/),
/// then `cargo xtask new-variant --standalone` in a scratch directory outside the repository
/// and a plain `make` there against the SDK that install put in the staging root. Returns
/// (the staging root, the standalone module).
fn install_step(kdir: &Path, kos: &[PathBuf]) -> Result<(PathBuf, PathBuf)> {
    let mod_root = module_root(kos)?;
    let stage = crate::util::checkout_cache("install-stage/root");
    let vendor = crate::util::checkout_cache("install-stage/vendor-tree");
    for d in [&stage, &vendor] {
        if d.exists() {
            std::fs::remove_dir_all(d).with_context(|| format!("removing {}", d.display()))?;
        }
    }
    step(format!(
        "cargo xtask install into the staging root {}",
        stage.display()
    ));
    let (k, st, r) = (
        kdir.display().to_string(),
        stage.display().to_string(),
        mod_root.display().to_string(),
    );
    match xtask(&["install", "--kdir", &k, "--destdir", &st, "--root", &r])? {
        (Some(0), _) => {}
        (c, t) => bail!("install exited with {c:?}: {t}"),
    }
    let t = crate::install::Target::new(Some(kdir.to_path_buf()), Some(stage.clone()))?;
    let sdk = t.sdk_dir();
    step(format!(
        "a standalone variant {STANDALONE} in {} built against the SDK in {}",
        vendor.display(),
        sdk.display()
    ));
    let v = vendor.display().to_string();
    match xtask(&[
        "new-variant",
        STANDALONE,
        "--vendor",
        "1b36",
        "--device",
        "0005",
        "--standalone",
        &v,
    ])? {
        (Some(0), _) => {}
        (c, t) => bail!("new-variant --standalone exited with {c:?}: {t}"),
    }
    // Exactly what a vendor types: make, with the kernel and the SDK named (neither is the
    // running system's here), and LLVM= for a clang-built kernel, as for any external module.
    let mut make = Command::new("make");
    make.arg("-C")
        .arg(&vendor)
        .arg(format!("KDIR={k}"))
        .arg(format!("{}={}", crate::sdk::SDK_VAR, sdk.display()));
    if let Some(l) = crate::kernel::llvm_of(kdir) {
        make.arg(format!("LLVM={l}"));
    }
    run(&mut make)?;
    let spec = crate::variant::Spec {
        name: STANDALONE.into(),
        vendor: 0x1b36,
        device: 0x0005,
        subsystem: None,
        class: None,
    };
    let ko = vendor.join(format!("{}.ko", spec.module()));
    let info = pcibind::modinfo::ModuleInfo::read(&ko)?;
    if info.aliases != [spec.alias()] || info.depends != ["vfio_pci_common"] {
        bail!(
            "{}: aliases {:?}, depends {:?}; expected [{}], [vfio_pci_common]",
            ko.display(),
            info.aliases,
            info.depends,
            spec.alias()
        );
    }
    println!("    built {} (alias {})", ko.display(), spec.alias());
    Ok((stage, ko))
}

/// Misconfigured constants a variant might write, each with the compile error the SDK's
/// checks (`common/sdk/checks.rs`) must give for it.
const MISCONFIGURED: &[(&str, &str, &str)] = &[
    (
        "overlay-crossing-a-dword",
        "const CONFIG_OVERLAYS: &'static [ConfigOverlay] = &[ConfigOverlay::value(0x3e, 4, 0, 0)];",
        "CONFIG_OVERLAYS: an overlay crosses a dword boundary",
    ),
    (
        "bar-window-without-hooks",
        "const BAR_WINDOWS: &'static [BarWindow] = &[BarWindow::new(0, 0, 4)];",
        "BAR_WINDOWS needs bar_window_read and bar_window_write",
    ),
    (
        "mdev-msi-without-dma-windows",
        "const MEDIATED: &'static [MdevType] = &[MdevType { name: c\"x\", description: c\"x\", \
         bus_master: MdevBusMaster::ForMsi }];",
        "MEDIATED: MdevBusMaster::ForMsi needs BAR_WINDOWS that mediate the device's DMA",
    ),
];

/// Each of [`MISCONFIGURED`] added to a copy of the variant `new_variant_step` made (in the
/// same scratch tree, at the same depth, so its `#[path]` to the SDK holds) must fail to build
/// with its message: a misconfigured constant is a build error, not an `-EINVAL` at every open.
fn misconfigured_variant_checks(kdir: &Path, kos: &[PathBuf], counts: &mut Counts) {
    let tree = crate::util::checkout_cache("new-variant-test");
    let made = tree.join("variants").join(NEW_VARIANT);
    let bad = tree.join("variants").join("misconfigured");
    let symvers = module_root(kos).map(|r| r.join("Module.symvers"));
    for (name, line, message) in MISCONFIGURED {
        let check = format!("host: sdk-compile-time-check-{name}");
        let result = (|| -> Result<()> {
            let symvers = symvers.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
            if bad.exists() {
                std::fs::remove_dir_all(&bad)?;
            }
            std::fs::create_dir_all(&bad)?;
            for entry in std::fs::read_dir(&made)? {
                let p = entry?.path();
                let keep = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n == "Kbuild" || (n.ends_with(".rs") && !n.ends_with(".mod.rs"))
                });
                if keep {
                    if let Some(n) = p.file_name() {
                        std::fs::copy(&p, bad.join(n))?;
                    }
                }
            }
            let src = bad.join(format!("vfio_pci_{NEW_VARIANT}.rs"));
            let text = std::fs::read_to_string(&src)?;
            let anchor = "    type IdInfo = ();\n";
            if !text.contains(anchor) {
                bail!("{} has no `type IdInfo = ();` line", src.display());
            }
            std::fs::write(
                &src,
                text.replacen(anchor, &format!("{anchor}    {line}\n"), 1),
            )?;
            step(format!("{check}: building {} (must fail)", bad.display()));
            let out = crate::modules::kbuild_at(kdir, &bad)
                .arg(format!("KBUILD_EXTRA_SYMBOLS={}", symvers.display()))
                .arg("CONFIG_WERROR=y")
                .arg("modules")
                .output()?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.success() {
                bail!("the build succeeded");
            }
            if !text.contains(message) {
                bail!("the build failed without \"{message}\":\n{text}");
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                counts.passed += 1;
                println!("PASS {check}");
            }
            Err(e) => {
                counts.failed += 1;
                counts.failures.push(format!("{check}: {e:#}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&bad);
}

/// The root of the tree `kos` were built in (the repository, or the debug kernel's mirror of
/// it): the common module is `<root>/common/vfio_pci_common.ko`.
fn module_root(kos: &[PathBuf]) -> Result<PathBuf> {
    kos.first()
        .and_then(|k| k.parent())
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("no modules built")
}

/// The `match`, `bind` and `unbind` command lines on the host (the guest suite runs the same
/// library on real devices): selection on edu's and pci-testdev's modaliases against our
/// built modules, and the error paths of bind/unbind for a device that does not exist.
fn cli_checks(mod_root: &Path) -> Counts {
    let mut c = Counts::default();
    let mut check = |name: &str, args: &[&str], want: Option<i32>, text: &str| {
        let r = xtask(args);
        match r {
            Ok((code, out)) if code == want && out.contains(text) => {
                c.passed += 1;
                println!("PASS host: {name}");
            }
            Ok((code, _)) => {
                c.failed += 1;
                c.failures.push(format!(
                    "host: {name}: exit {code:?} (want {want:?}) or no `{text}` in the output"
                ));
            }
            Err(e) => {
                c.failed += 1;
                c.failures.push(format!("host: {name}: {e:#}"));
            }
        }
    };
    // Restricted to the skeleton and the generic driver, so a variant someone adds to the tree
    // does not change the expectation.
    let root = mod_root;
    let skel = root
        .join("samples/skeleton/vfio_pci_skeleton.ko")
        .display()
        .to_string();
    let generic = root
        .join("variants/generic/vfio_pci_generic.ko")
        .display()
        .to_string();
    let only = ["--no-installed", "--module", &skel, "--module", &generic];
    let edu: Vec<&str> = ["match", EDU_MODALIAS]
        .iter()
        .chain(&only)
        .copied()
        .collect();
    let testdev: Vec<&str> = ["match", TESTDEV_MODALIAS]
        .iter()
        .chain(&only)
        .copied()
        .collect();
    check(
        "xtask-match-edu",
        &edu,
        Some(0),
        "selected:     vfio_pci_skeleton (5 wildcards)",
    );
    check(
        "xtask-match-pci-testdev",
        &testdev,
        Some(3),
        "GENERIC FALLBACK",
    );
    check(
        "xtask-match-bad-modalias",
        &["match", "pci:v1234", "--no-installed"],
        Some(1),
        "is not a PCI modalias",
    );
    check(
        "xtask-bind-wrong-bdf",
        &["bind", NOWHERE, "vfio-pci-generic"],
        Some(1),
        &format!("no PCI device {NOWHERE}"),
    );
    check(
        "xtask-unbind-wrong-bdf",
        &["unbind", NOWHERE],
        Some(1),
        &format!("no PCI device {NOWHERE}"),
    );
    check(
        "xtask-bind-bad-bdf",
        &["bind", "03.0"],
        Some(1),
        "is not a PCI address",
    );
    check(
        "xtask-new-variant-bad-name",
        &[
            "new-variant",
            "Edu-1",
            "--vendor",
            "1234",
            "--device",
            "11e8",
        ],
        Some(1),
        "invalid variant name",
    );
    check(
        "xtask-new-variant-bad-class",
        &[
            "new-variant",
            "x",
            "--vendor",
            "1234",
            "--device",
            "11e8",
            "--class",
            "030000/f00000",
        ],
        Some(1),
        "each mask byte must be 00 or ff",
    );
    c
}

fn add(total: &mut Counts, c: Counts) {
    total.passed += c.passed;
    total.failed += c.failed;
    total.failures.extend(c.failures);
    total.bench.extend(c.bench);
    total.records.extend(c.records);
}

/// The whole suite. Returns whether everything passed; the summary line is printed last.
///
/// Without `--kernel`: every guest check on the test kernel, then the robustness checks on
/// the debug kernel (KASAN, lockdep, ...). With `--kernel K`: every check on K only. With a
/// KDIR: every check on that kernel only.
pub fn test(
    kdir: Option<PathBuf>,
    kernel: Option<Profile>,
    modes: &[Mode],
    host: bool,
    guest: bool,
) -> Result<bool> {
    let start = Instant::now();
    let mut total = Counts::default();
    // First, so `cargo xtask test` alone works on a machine setup has not seen yet: the host
    // checks need some of the packages too (g++ for the fuzz check, git for the dkms check).
    if let Err(e) = crate::setup::setup() {
        total.failed += 1;
        total.failures.push(format!("setup: {e:#}"));
    }
    if host {
        add(&mut total, crate::srccheck::source_checks(&repo_root()));
        add(&mut total, host_tests());
        add(&mut total, crate::fuzz::fuzz_check());
    }
    let plan: Vec<(Profile, Suite)> = match (kernel, kdir.is_some()) {
        (Some(p), _) => vec![(p, Suite::Full)],
        (None, true) => vec![(Profile::Test, Suite::Full)],
        (None, false) => vec![
            (Profile::Test, Suite::Full),
            (Profile::Debug, Suite::Robust),
        ],
    };
    // Without a guest, the host checks need one build only.
    let plan = if guest {
        plan
    } else {
        plan.into_iter().take(1).collect()
    };
    let mut cli_done = false;
    for (profile, suite) in plan {
        let guest_ready = crate::modules::build_modules(kdir.clone(), profile).and_then(|kos| {
            let kdir = crate::modules::resolve_kdir(kdir.clone(), profile)?;
            Ok((kdir, kos))
        });
        let (kdir, kos) = match guest_ready {
            Ok(x) => x,
            Err(e) => {
                total.failed += 1;
                total
                    .failures
                    .push(format!("build ({} kernel): {e:#}", profile.name()));
                continue;
            }
        };
        if !cli_done {
            match module_root(&kos) {
                Ok(root) => {
                    add(&mut total, cli_checks(&root));
                    add(
                        &mut total,
                        crate::installcheck::host_checks(profile, &kdir, &root),
                    );
                }
                Err(e) => {
                    total.failed += 1;
                    total.failures.push(format!("host: cli checks: {e:#}"));
                }
            }
            cli_done = true;
        }
        let mut extras = guest::Extras::default();
        if suite == Suite::Full {
            match new_variant_step(&kdir, &kos) {
                Ok(ko) => {
                    total.passed += 1;
                    println!(
                        "PASS host: new-variant-{NEW_VARIANT}-build ({} kernel)",
                        profile.name()
                    );
                    misconfigured_variant_checks(&kdir, &kos, &mut total);
                    extras.new_variant = Some(ko);
                }
                Err(e) => {
                    total.failed += 1;
                    total.failures.push(format!(
                        "host: new-variant-{NEW_VARIANT}-build ({} kernel): {e:#}",
                        profile.name()
                    ));
                }
            }
            // Without it the guest's installed-module checks fail (they never skip).
            match install_step(&kdir, &kos) {
                Ok((stage, ko)) => {
                    total.passed += 1;
                    println!(
                        "PASS host: install-stage-and-standalone-{STANDALONE}-build ({} kernel)",
                        profile.name()
                    );
                    extras.installed_root = Some(stage);
                    extras.standalone = Some(ko);
                }
                Err(e) => {
                    total.failed += 1;
                    total.failures.push(format!(
                        "host: install-stage-and-standalone-{STANDALONE}-build ({} kernel): {e:#}",
                        profile.name()
                    ));
                }
            }
        }
        if !guest {
            println!("    (--no-guest: the guest suite is not run)");
            continue;
        }
        for &mode in modes {
            let run = GuestRun {
                profile,
                suite,
                mode,
            };
            step(format!("guest suite, {}", run.label()));
            match guest::run_guest_suite(&kdir, &kos, &extras, run) {
                Ok(c) => add(&mut total, c),
                Err(e) => {
                    total.failed += 1;
                    total
                        .failures
                        .push(format!("guest ({}): {e:#}", run.label()));
                }
            }
        }
        // The benchmark in its short form, so `cargo xtask bench` cannot rot: once, on the
        // test kernel, in the first mode.
        if profile == Profile::Test && suite == Suite::Full {
            if let Some(&mode) = modes.first() {
                step(format!(
                    "short benchmark ({} rounds, {}), mode {}",
                    crate::bench::SHORT_ROUNDS,
                    crate::bench::SHORT_DEVICES.join(", "),
                    mode.name()
                ));
                add(&mut total, crate::bench::short_run(&kdir, &kos, mode));
            }
        }
    }
    println!();
    if !total.failures.is_empty() {
        println!("failures:");
        for f in &total.failures {
            println!("    {f}");
        }
    }
    if !total.bench.is_empty() {
        println!("benchmarks (median per access; ratio = ours / upstream vfio-pci; not checks):");
        for b in &total.bench {
            println!("    {b}");
        }
    }
    println!("took {}s", start.elapsed().as_secs());
    println!("{} passed, {} failed", total.passed, total.failed);
    Ok(total.failed == 0)
}
