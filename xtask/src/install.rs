// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask install` / `uninstall`: the kernel's own `modules_install` of the modules we ship
//! into `updates/` of a kernel's module tree, signing as that kernel's configuration asks,
//! `depmod`, and a manifest of exactly what was installed, which `uninstall` removes again.
//!
//! What we ship: every module of the top-level Kbuild's directories except `samples/` and
//! `tests/` (today `vfio_pci_common`, `vfio_pci_generic`, `vfio_pci_igd`, `vfio_pci_nvlink`; a variant made with
//! `new-variant` is shipped too). The same list is in `dkms.conf` (a host check compares them).

use crate::modules::kbuild_dirs;
use crate::util::{output, run, sha256_hex, step};
use anyhow::{bail, Context, Result};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The manifest, in `<module tree>/updates/`: one `file <path>` or `dir <path>` line per thing
/// installed or created, relative to `lib/modules/<release>/`.
pub const MANIFEST: &str = "updates/vfio-pci-rs.manifest";
/// The directory of the kernel's module tree our modules go to (`INSTALL_MOD_DIR`).
pub const INSTALL_MOD_DIR: &str = "updates";

/// Whether a top-level Kbuild directory holds modules we ship (not examples, not test-only).
pub fn is_shipped_dir(dir: &str) -> bool {
    !(dir == "samples"
        || dir == "tests"
        || dir.starts_with("samples/")
        || dir.starts_with("tests/"))
}

/// The Kbuild directories of the tree at `root` whose modules we ship, in Kbuild order.
pub fn shipped_dirs(root: &Path) -> Result<Vec<String>> {
    let top = root.join("Kbuild");
    let text =
        std::fs::read_to_string(&top).with_context(|| format!("reading {}", top.display()))?;
    Ok(kbuild_dirs(&text)
        .into_iter()
        .filter(|d| is_shipped_dir(d))
        .collect())
}

/// The modules we ship from the tree at `root` (`dir/name.ko`, in load order).
pub fn shipped_modules(root: &Path) -> Result<Vec<PathBuf>> {
    let dirs = shipped_dirs(root)?;
    Ok(crate::modules::module_paths_in(root)?
        .into_iter()
        .filter(|k| {
            k.parent()
                .and_then(|p| p.strip_prefix(root).ok())
                .is_some_and(|p| dirs.iter().any(|d| Path::new(d) == p))
        })
        .collect())
}

/// How the kernel's configuration wants modules signed, and what install does about it.
#[derive(Debug, PartialEq, Eq)]
pub enum Signing {
    /// `CONFIG_MODULE_SIG` is not set: modules are installed unsigned and load as they are.
    Off,
    /// `CONFIG_MODULE_SIG_ALL=y`: the kernel's `modules_install` signs each module with
    /// `CONFIG_MODULE_SIG_KEY` (we check afterwards that it did: for external modules it ignores
    /// a failure to sign).
    ByKernel { hash: String, key: String },
    /// `CONFIG_MODULE_SIG=y` without `_ALL`: modules_install does not sign; we sign the installed
    /// copies with the kernel's `scripts/sign-file` and key, as `make modules_sign` would.
    ByUs { hash: String, key: String },
}

/// The value of `name` in a kernel `.config` (`None` when unset or `is not set`), quotes
/// removed.
pub fn config_value(config: &str, name: &str) -> Option<String> {
    config.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|r| r.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_string())
    })
}

/// The signing policy of a kernel `.config`.
pub fn signing_policy(config: &str) -> Signing {
    let on = |n: &str| config_value(config, n).as_deref() == Some("y");
    if !on("CONFIG_MODULE_SIG") {
        return Signing::Off;
    }
    let hash = config_value(config, "CONFIG_MODULE_SIG_HASH").unwrap_or_else(|| "sha512".into());
    let key = config_value(config, "CONFIG_MODULE_SIG_KEY")
        .unwrap_or_else(|| "certs/signing_key.pem".into());
    if on("CONFIG_MODULE_SIG_ALL") {
        Signing::ByKernel { hash, key }
    } else {
        Signing::ByUs { hash, key }
    }
}

/// The key file of `CONFIG_MODULE_SIG_KEY` (relative to the build directory unless absolute,
/// as the kernel resolves it); `None` for a PKCS#11 URI.
fn key_path(kdir: &Path, key: &str) -> Option<PathBuf> {
    if key.starts_with("pkcs11:") {
        return None;
    }
    let p = Path::new(key);
    Some(if p.is_absolute() {
        p.to_path_buf()
    } else {
        kdir.join(p)
    })
}

/// One install target: a kernel build directory and the root its module tree is under.
pub struct Target {
    pub kdir: PathBuf,
    pub release: String,
    /// `None`: the running system (`/`).
    pub destdir: Option<PathBuf>,
}

impl Target {
    /// The kernel of `kdir` (default: the cached test kernel), installing under `destdir`.
    pub fn new(kdir: Option<PathBuf>, destdir: Option<PathBuf>) -> Result<Target> {
        let kdir = match kdir {
            Some(k) => k
                .canonicalize()
                .with_context(|| format!("KDIR {} does not exist", k.display()))?,
            None => {
                // The cache lookup runs the kernel's rustc and bindgen; without them nothing
                // can have been built.
                let missing = crate::setup::missing_tools()
                    .into_iter()
                    .filter(|m| !m.starts_with("package "))
                    .collect::<Vec<_>>();
                if !missing.is_empty() {
                    bail!(
                        "nothing is built yet ({} missing): run `cargo xtask build-modules` first",
                        missing.join(", ")
                    );
                }
                crate::kernel::cached_build(crate::kernel::Profile::Test)?.context(
                    "the test kernel is not built, so neither are the modules: run \
                     `cargo xtask build-modules` first (or pass --kdir)",
                )?
            }
        };
        let rel_file = kdir.join("include/config/kernel.release");
        let release = std::fs::read_to_string(&rel_file)
            .with_context(|| {
                format!(
                    "reading {}: {} is not a prepared kernel build",
                    rel_file.display(),
                    kdir.display()
                )
            })?
            .trim()
            .to_string();
        let destdir = match destdir {
            None => None,
            Some(d) => {
                std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
                let d = d.canonicalize()?;
                (d != Path::new("/")).then_some(d)
            }
        };
        Ok(Target {
            kdir,
            release,
            destdir,
        })
    }

    /// `<destdir>/lib/modules/<release>`.
    pub fn modlib(&self) -> PathBuf {
        self.root().join("lib/modules").join(&self.release)
    }

    /// The install root: the destdir, or `/`.
    pub fn root(&self) -> PathBuf {
        self.destdir.clone().unwrap_or_else(|| PathBuf::from("/"))
    }

    /// Where the SDK for this kernel goes.
    pub fn sdk_dir(&self) -> PathBuf {
        self.root().join(crate::sdk::sdk_rel(&self.release))
    }

    /// `depmod -a [-b DESTDIR] [-e -F System.map] RELEASE`, as the kernel's scripts/depmod.sh
    /// runs it (with System.map, depmod also reports symbols no module or the kernel provides).
    pub fn depmod(&self) -> Result<()> {
        let mut c = Command::new("depmod");
        c.arg("-a");
        if let Some(d) = &self.destdir {
            c.arg("-b").arg(d);
        }
        let map = self.kdir.join("System.map");
        if map.is_file() {
            c.arg("-e").arg("-F").arg(&map);
        } else {
            println!(
                "    (no {}: depmod runs without it and cannot report unresolved symbols)",
                map.display()
            );
        }
        step(format!("depmod for {}", self.release));
        run(c.arg(&self.release))
    }
}

/// A manifest line's path, checked to stay inside the module tree.
fn manifest_path(modlib: &Path, rel: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    if rel.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        bail!("manifest entry `{rel}` is not a plain relative path");
    }
    Ok(modlib.join(p))
}

/// What a manifest lists.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Installed files, relative to the module tree (`file P`).
    pub files: Vec<String>,
    /// Directories the install created in the module tree (`dir P`).
    pub dirs: Vec<String>,
    /// The installed SDK directory, relative to the install root (`sdk P`).
    pub sdk: Option<String>,
    /// Directories the install created for the SDK, relative to the install root
    /// (`rootdir P`).
    pub root_dirs: Vec<String>,
}

/// Parses a manifest.
pub fn parse_manifest(text: &str) -> Result<Manifest> {
    let mut m = Manifest::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(' ') {
            Some(("file", p)) => m.files.push(p.trim().to_string()),
            Some(("dir", p)) => m.dirs.push(p.trim().to_string()),
            Some(("sdk", p)) if m.sdk.is_none() => m.sdk = Some(p.trim().to_string()),
            Some(("rootdir", p)) => m.root_dirs.push(p.trim().to_string()),
            _ => bail!(
                "manifest line {}: `{line}` is none of `file P`, `dir P`, `sdk P`, `rootdir P`",
                n + 1
            ),
        }
    }
    if let Some(sdk) = &m.sdk {
        // What uninstall removes recursively: only ever an SDK directory of ours.
        if !sdk.starts_with("usr/src/vfio-pci-rs-sdk-") || sdk.matches('/').count() != 3 {
            bail!("manifest: `sdk {sdk}` is not usr/src/vfio-pci-rs-sdk-<version>/<release>");
        }
    }
    Ok(m)
}

/// Removes what the manifest of `t` lists (files, then the directories it created if they are
/// empty; the SDK directory and the directories created for it) and the manifest itself.
/// Returns how many module files were removed.
fn remove_listed(t: &Target) -> Result<usize> {
    let modlib = t.modlib();
    let mpath = modlib.join(MANIFEST);
    let text =
        std::fs::read_to_string(&mpath).with_context(|| format!("reading {}", mpath.display()))?;
    let m = parse_manifest(&text)?;
    let mut removed = 0;
    for f in &m.files {
        let p = manifest_path(&modlib, f)?;
        match std::fs::remove_file(&p) {
            Ok(()) => {
                println!("    removed {}", p.display());
                removed += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("    {} was already gone", p.display())
            }
            Err(e) => return Err(e).with_context(|| format!("removing {}", p.display())),
        }
    }
    std::fs::remove_file(&mpath).with_context(|| format!("removing {}", mpath.display()))?;
    println!("    removed {}", mpath.display());
    remove_empty_dirs(&modlib, &m.dirs)?;
    if let Some(sdk) = &m.sdk {
        let p = manifest_path(&t.root(), sdk)?;
        match std::fs::remove_dir_all(&p) {
            Ok(()) => println!("    removed the SDK {}", p.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("    the SDK {} was already gone", p.display())
            }
            Err(e) => return Err(e).with_context(|| format!("removing {}", p.display())),
        }
    }
    remove_empty_dirs(&t.root(), &m.root_dirs)?;
    Ok(removed)
}

/// Removes the directories `dirs` (relative to `base`), deepest first, where they are empty; a
/// directory someone else put files in stays.
fn remove_empty_dirs(base: &Path, dirs: &[String]) -> Result<()> {
    let mut dirs = dirs.to_vec();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    for d in &dirs {
        let p = manifest_path(base, d)?;
        if std::fs::remove_dir(&p).is_ok() {
            println!("    removed directory {}", p.display());
        } else if p.exists() {
            println!("    kept {} (not empty)", p.display());
        }
    }
    Ok(())
}

/// Whether an installed module carries a module signature (`modinfo` reads compressed modules
/// too).
fn is_signed(ko: &Path) -> bool {
    output(Command::new("modinfo").args(["-F", "sig_id"]).arg(ko))
        .is_ok_and(|s| !s.trim().is_empty())
}

/// `cargo xtask install`: the modules built in the tree at `root`.
pub fn install(kdir: Option<PathBuf>, destdir: Option<PathBuf>, root: &Path) -> Result<()> {
    let t = Target::new(kdir, destdir)?;
    let root = root.to_path_buf();
    let kos = shipped_modules(&root)?;
    if kos.is_empty() {
        bail!("the top-level Kbuild lists no module we ship");
    }
    step(format!(
        "checking the built modules ({}) against {}",
        kos.len(),
        t.kdir.display()
    ));
    let dirs = shipped_dirs(&root)?;
    for ko in &kos {
        if !ko.is_file() {
            bail!(
                "{} is not built: run `cargo xtask build-modules{}` first",
                ko.display(),
                kdir_hint(&t)
            );
        }
        let vermagic = output(Command::new("modinfo").args(["-F", "vermagic"]).arg(ko))?;
        let built_for = vermagic.split_whitespace().next().unwrap_or_default();
        if built_for != t.release {
            bail!(
                "{} was built for kernel {built_for}, not {} ({}): run `cargo xtask \
                 build-modules{}` first",
                ko.display(),
                t.release,
                t.kdir.display(),
                kdir_hint(&t)
            );
        }
        println!("    {} (for {built_for})", ko.display());
    }
    for d in &dirs {
        let order = root.join(d).join("modules.order");
        if !order.is_file() {
            bail!(
                "{} is missing: run `cargo xtask build-modules{}` first",
                order.display(),
                kdir_hint(&t)
            );
        }
    }

    let config = std::fs::read_to_string(t.kdir.join(".config"))
        .with_context(|| format!("reading {}/.config", t.kdir.display()))?;
    let signing = signing_policy(&config);
    let suffix = if config_value(&config, "CONFIG_MODULE_COMPRESS_ALL").as_deref() == Some("y") {
        [
            ("CONFIG_MODULE_COMPRESS_GZIP", ".gz"),
            ("CONFIG_MODULE_COMPRESS_XZ", ".xz"),
            ("CONFIG_MODULE_COMPRESS_ZSTD", ".zst"),
        ]
        .iter()
        .find(|(c, _)| config_value(&config, c).as_deref() == Some("y"))
        .map_or("", |(_, s)| *s)
    } else {
        ""
    };
    step("module signing, as the kernel's configuration asks");
    match &signing {
        Signing::Off => println!(
            "    CONFIG_MODULE_SIG is not set in {}/.config: the modules are installed unsigned \
             (this kernel loads them without a signature)",
            t.kdir.display()
        ),
        Signing::ByKernel { hash, key } => println!(
            "    CONFIG_MODULE_SIG_ALL=y: modules_install signs each module ({hash}, key {key}); \
             checked after the install"
        ),
        Signing::ByUs { hash, key } => {
            println!(
                "    CONFIG_MODULE_SIG=y without CONFIG_MODULE_SIG_ALL: modules_install does not \
                 sign, so we sign the installed modules with scripts/sign-file ({hash}, key {key})"
            );
            let kp = key_path(&t.kdir, key);
            if !kp.as_deref().is_some_and(Path::is_file) {
                bail!(
                    "the kernel's signing key {key} is not in {} (a PKCS#11 key or a kernel built \
                     elsewhere): sign the modules yourself, or build against the tree that has \
                     the key",
                    t.kdir.display()
                );
            }
            if !suffix.is_empty() {
                bail!("CONFIG_MODULE_COMPRESS_ALL without CONFIG_MODULE_SIG_ALL: cannot sign modules that are installed compressed");
            }
        }
    }

    let modlib = t.modlib();
    if modlib.join(MANIFEST).exists() {
        step(format!(
            "removing the previous install recorded in {}",
            modlib.join(MANIFEST).display()
        ));
        remove_listed(&t)?;
    }
    // The directories this install creates (so uninstall removes them again).
    let created_dirs: Vec<String> = [INSTALL_MOD_DIR]
        .iter()
        .filter(|d| !modlib.join(d).exists())
        .map(|d| d.to_string())
        .collect();

    // What modules_install will write: updates/<name>.ko[.suffix] for every line of each
    // shipped directory's modules.order.
    let mut installed: Vec<String> = Vec::new();
    for d in &dirs {
        let order = std::fs::read_to_string(root.join(d).join("modules.order"))?;
        for o in order.lines().filter(|l| !l.trim().is_empty()) {
            let name = Path::new(o.trim())
                .file_stem()
                .context("empty modules.order line")?
                .to_string_lossy()
                .into_owned();
            installed.push(format!("{INSTALL_MOD_DIR}/{name}.ko{suffix}"));
        }
    }
    // The SDK's directory and the parents this install creates for it.
    let sdk_rel = crate::sdk::sdk_rel(&t.release);
    let sdk_dir = t.sdk_dir();
    if sdk_dir.exists() {
        bail!(
            "{} exists but no manifest of ours lists it: remove it, then install again",
            sdk_dir.display()
        );
    }
    let created_root_dirs: Vec<String> = sdk_rel
        .ancestors()
        .skip(1)
        .filter(|a| !a.as_os_str().is_empty() && !t.root().join(a).exists())
        .map(|a| a.display().to_string())
        .collect();
    let r = install_and_sign(&t, &root, &dirs, &signing, &installed).and_then(|()| {
        step(format!("installing the SDK into {}", sdk_dir.display()));
        let n = crate::sdk::install_sdk(&root, &t.release, &sdk_dir)?;
        println!("    {n} files");
        Ok(())
    });
    if let Err(e) = r {
        // Nothing of a failed install stays behind unrecorded.
        for rel in &installed {
            let _ = std::fs::remove_file(modlib.join(rel));
        }
        for d in &created_dirs {
            let _ = std::fs::remove_dir(modlib.join(d));
        }
        let _ = std::fs::remove_dir_all(&sdk_dir);
        let _ = remove_empty_dirs(&t.root(), &created_root_dirs);
        return Err(e.context("install failed; the files it had copied were removed"));
    }

    let mut text = format!(
        "# Installed by `cargo xtask install` from {} for \
         kernel {} ({}); `cargo xtask uninstall` removes exactly these.\n# Paths are relative to \
         {}.\n",
        root.display(),
        t.release,
        t.kdir.display(),
        modlib.display()
    );
    for rel in &installed {
        let sum = sha256_hex(&std::fs::read(modlib.join(rel))?);
        text.push_str(&format!("file {rel}\n"));
        println!(
            "    installed {} (sha256 {})",
            modlib.join(rel).display(),
            &sum[..16]
        );
    }
    for d in &created_dirs {
        text.push_str(&format!("dir {d}\n"));
    }
    text.push_str(&format!("sdk {}\n", sdk_rel.display()));
    for d in &created_root_dirs {
        text.push_str(&format!("rootdir {d}\n"));
    }
    std::fs::write(modlib.join(MANIFEST), text)
        .with_context(|| format!("writing {}", modlib.join(MANIFEST).display()))?;
    println!("    manifest {}", modlib.join(MANIFEST).display());
    t.depmod()?;
    step(format!(
        "installed {} modules for {}; `modprobe vfio_pci_generic` loads vfio_pci_common first",
        installed.len(),
        t.release
    ));
    Ok(())
}

/// The kernel's modules_install for each shipped directory, then the signing `signing` asks
/// for (or the check that the kernel did it); `installed` is what must come out.
fn install_and_sign(
    t: &Target,
    root: &Path,
    dirs: &[String],
    signing: &Signing,
    installed: &[String],
) -> Result<()> {
    let modlib = t.modlib();
    for d in dirs {
        step(format!(
            "make modules_install for {d}/ into {}/{INSTALL_MOD_DIR}/",
            modlib.display()
        ));
        let mut c = Command::new("make");
        c.arg("-C")
            .arg(&t.kdir)
            .arg(format!("M={}", root.join(d).display()))
            .arg(format!("INSTALL_MOD_DIR={INSTALL_MOD_DIR}"))
            // We run depmod once, after every directory is installed.
            .arg("DEPMOD=true")
            .env("DEPMOD", "true");
        if let Some(dd) = &t.destdir {
            c.arg(format!("INSTALL_MOD_PATH={}", dd.display()));
        }
        run(c.arg("modules_install"))?;
    }
    for rel in installed {
        if !modlib.join(rel).is_file() {
            bail!(
                "modules_install did not install {}",
                modlib.join(rel).display()
            );
        }
    }

    match &signing {
        Signing::Off => {}
        Signing::ByKernel { .. } => {
            for rel in installed {
                if !is_signed(&modlib.join(rel)) {
                    bail!(
                        "{} is not signed although CONFIG_MODULE_SIG_ALL=y (the kernel's \
                         modules_install ignores signing failures of external modules: is the key \
                         in {}?)",
                        modlib.join(rel).display(),
                        t.kdir.display()
                    );
                }
            }
            println!("    all {} installed modules are signed", installed.len());
        }
        Signing::ByUs { hash, key } => {
            step("signing the installed modules");
            let key = key_path(&t.kdir, key).context("no key file")?;
            for rel in installed {
                run(Command::new(t.kdir.join("scripts/sign-file"))
                    .arg(hash)
                    .arg(&key)
                    .arg(t.kdir.join("certs/signing_key.x509"))
                    .arg(modlib.join(rel)))?;
                if !is_signed(&modlib.join(rel)) {
                    bail!(
                        "{} is not signed after sign-file",
                        modlib.join(rel).display()
                    );
                }
            }
        }
    }
    Ok(())
}

fn kdir_hint(t: &Target) -> String {
    format!(" --kdir {}", t.kdir.display())
}

/// `cargo xtask uninstall`.
pub fn uninstall(kdir: Option<PathBuf>, destdir: Option<PathBuf>) -> Result<()> {
    let t = Target::new(kdir, destdir)?;
    let modlib = t.modlib();
    let mpath = modlib.join(MANIFEST);
    if !mpath.is_file() {
        bail!(
            "nothing to uninstall: no {} (`cargo xtask install` writes it)",
            mpath.display()
        );
    }
    step(format!("removing what {} lists", mpath.display()));
    let n = remove_listed(&t)?;
    t.depmod()?;
    step(format!("uninstalled {n} modules for {}", t.release));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::repo_root;

    #[test]
    fn shipped_dirs_leave_out_samples_and_tests() {
        assert!(is_shipped_dir("common"));
        assert!(is_shipped_dir("variants/igd"));
        assert!(!is_shipped_dir("samples/skeleton"));
        assert!(!is_shipped_dir("tests/fixtures/fakepci"));
        let kos = shipped_modules(&repo_root()).unwrap();
        let names: Vec<String> = kos
            .iter()
            .map(|k| k.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names[0], "vfio_pci_common");
        assert!(names.contains(&"vfio_pci_generic".to_string()));
        assert!(names.contains(&"vfio_pci_igd".to_string()));
        assert!(!names
            .iter()
            .any(|n| n.contains("skeleton") || n.contains("test")));
    }

    #[test]
    fn signing_follows_the_kernel_config() {
        assert_eq!(
            signing_policy("# CONFIG_MODULE_SIG is not set\n"),
            Signing::Off
        );
        assert_eq!(signing_policy(""), Signing::Off);
        let all = "CONFIG_MODULE_SIG=y\nCONFIG_MODULE_SIG_ALL=y\nCONFIG_MODULE_SIG_HASH=\"sha256\"\nCONFIG_MODULE_SIG_KEY=\"certs/signing_key.pem\"\n";
        assert_eq!(
            signing_policy(all),
            Signing::ByKernel {
                hash: "sha256".into(),
                key: "certs/signing_key.pem".into()
            }
        );
        let manual = "CONFIG_MODULE_SIG=y\n# CONFIG_MODULE_SIG_ALL is not set\nCONFIG_MODULE_SIG_HASH=\"sha512\"\nCONFIG_MODULE_SIG_KEY=\"/k/key.pem\"\n";
        assert_eq!(
            signing_policy(manual),
            Signing::ByUs {
                hash: "sha512".into(),
                key: "/k/key.pem".into()
            }
        );
        // Only the exact option name counts.
        assert_eq!(signing_policy("CONFIG_MODULE_SIG_FORCE=y\n"), Signing::Off);
        assert_eq!(
            key_path(Path::new("/kd"), "certs/k.pem"),
            Some(PathBuf::from("/kd/certs/k.pem"))
        );
        assert_eq!(key_path(Path::new("/kd"), "pkcs11:token=x"), None);
    }

    #[test]
    fn manifest_entries_stay_inside_the_module_tree() {
        let m = parse_manifest(
            "# c\nfile updates/a.ko\ndir updates\n\nfile updates/b.ko.xz\n\
             sdk usr/src/vfio-pci-rs-sdk-0.1.0/6.12\nrootdir usr/src\n",
        )
        .unwrap();
        assert_eq!(m.files, ["updates/a.ko", "updates/b.ko.xz"]);
        assert_eq!(m.dirs, ["updates"]);
        assert_eq!(m.sdk.as_deref(), Some("usr/src/vfio-pci-rs-sdk-0.1.0/6.12"));
        assert_eq!(m.root_dirs, ["usr/src"]);
        assert!(parse_manifest("rm -rf /\n").is_err());
        // Uninstall removes the SDK recursively: nothing but an SDK directory of ours.
        assert!(parse_manifest("sdk usr\n").is_err());
        assert!(parse_manifest("sdk usr/src/vfio-pci-rs-sdk-0.1.0\n").is_err());
        let m = Path::new("/d/lib/modules/r");
        assert!(manifest_path(m, "updates/a.ko").is_ok());
        assert!(manifest_path(m, "../../../etc/passwd").is_err());
        assert!(manifest_path(m, "/etc/passwd").is_err());
        assert!(manifest_path(m, "").is_err());
    }
}
