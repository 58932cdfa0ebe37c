// SPDX-License-Identifier: GPL-2.0
//! Host checks of `cargo xtask install` / `uninstall` (always into a scratch destdir, never
//! into /) and of `dkms.conf` (`dkms build` against the kernel's build tree, with a scratch
//! DKMS tree, so nothing lands in /var/lib/dkms). Each prints `PASS host: NAME` or is counted
//! as a failure with its reason; a missing tool is a failure, never a skip.

use crate::guest::Counts;
use crate::install::{self, Target, MANIFEST};
use crate::kernel::Profile;
use crate::testrun::xtask;
use crate::util::{checkout_cache, output, repo_root, run, sha256_hex, step, which};
use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The modules we ship today, in load order (what install and DKMS must produce).
const SHIPPED: [&str; 4] = [
    "vfio_pci_common",
    "vfio_pci_generic",
    "vfio_pci_igd",
    "vfio_pci_nvlink",
];

fn record(c: &mut Counts, name: &str, r: Result<()>) {
    crate::srccheck::record(
        c,
        name,
        r.map(|()| String::new()).map_err(|e| format!("{e:#}")),
    );
}

fn must_exit(args: &[&str], want: i32, text: &str) -> Result<String> {
    let (code, out) = xtask(args)?;
    ensure!(
        code == Some(want),
        "`cargo xtask {}` exited with {code:?}, want {want}",
        args.join(" ")
    );
    ensure!(
        out.contains(text),
        "no `{text}` in the output of `cargo xtask {}`",
        args.join(" ")
    );
    Ok(out)
}

/// Every file under `dir` (relative path -> sha256) and every directory (`path/` -> "").
fn snapshot(dir: &Path) -> Result<BTreeMap<String, String>> {
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<String, String>) -> Result<()> {
        for e in std::fs::read_dir(d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            let p = e.path();
            let rel = p.strip_prefix(base)?.display().to_string();
            if e.file_type()?.is_dir() {
                out.insert(format!("{rel}/"), String::new());
                walk(base, &p, out)?;
            } else {
                out.insert(rel, sha256_hex(&std::fs::read(&p)?));
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

fn diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => d.push(format!("-{k}")),
            Some(w) if w != v => d.push(format!("~{k}")),
            _ => {}
        }
    }
    d.extend(
        b.keys()
            .filter(|k| !a.contains_key(*k))
            .map(|k| format!("+{k}")),
    );
    d
}

/// A scratch destdir holding what the kernel's own `modules_install` leaves in a module tree
/// (modules.order, modules.builtin{,.modinfo}) and depmod's output for it: the "system" the
/// install goes into and the uninstall must give back byte for byte.
fn baseline(kdir: &Path, dest: &Path) -> Result<Target> {
    if dest.exists() {
        std::fs::remove_dir_all(dest).with_context(|| format!("removing {}", dest.display()))?;
    }
    let t = Target::new(Some(kdir.to_path_buf()), Some(dest.to_path_buf()))?;
    ensure!(t.destdir.is_some(), "the scratch destdir resolved to /");
    let m = t.modlib();
    std::fs::create_dir_all(&m)?;
    for f in ["modules.builtin", "modules.builtin.modinfo"] {
        if kdir.join(f).is_file() {
            std::fs::copy(kdir.join(f), m.join(f))?;
        }
    }
    if let Ok(order) = std::fs::read_to_string(kdir.join("modules.order")) {
        let lines: String = order
            .lines()
            .map(|l| format!("kernel/{}\n", l.trim_end_matches(".o").to_owned() + ".ko"))
            .collect();
        std::fs::write(m.join("modules.order"), lines)?;
    }
    t.depmod()?;
    Ok(t)
}

/// The install and DKMS checks, for the modules built in `mod_root` against `kdir` (of
/// `profile`).
pub fn host_checks(profile: Profile, kdir: &Path, mod_root: &Path) -> Counts {
    let mut c = install_checks(kdir, mod_root);
    let s = signing_checks(kdir, mod_root);
    c.passed += s.passed;
    c.failed += s.failed;
    c.failures.extend(s.failures);
    // DKMS on the test kernel (gcc): DKMS appends an unversioned CC=clang for a clang-built
    // kernel, which the debug kernel's clang-14 is not.
    let dkms_kdir = if profile == Profile::Test {
        Ok(Some(kdir.to_path_buf()))
    } else {
        crate::kernel::cached_build(Profile::Test)
    };
    match dkms_kdir {
        Ok(Some(k)) => record(&mut c, "dkms-build", dkms_check(&k)),
        Ok(None) => record(
            &mut c,
            "dkms-build",
            Err(anyhow::anyhow!(
                "needs the test kernel: run `cargo xtask kernel`"
            )),
        ),
        Err(e) => record(&mut c, "dkms-build", Err(e)),
    }
    c
}

/// install, checks, reinstall, uninstall, checks; the refusals.
pub fn install_checks(kdir: &Path, mod_root: &Path) -> Counts {
    let mut c = Counts::default();
    let dest = checkout_cache("install-test/destdir");
    step(format!(
        "install / uninstall into the scratch destdir {}",
        dest.display()
    ));
    let t = match baseline(kdir, &dest) {
        Ok(t) => t,
        Err(e) => {
            record(&mut c, "install-into-destdir", Err(e.context("baseline")));
            return c;
        }
    };
    let before = snapshot(&dest);
    let m = t.modlib();
    let k = kdir.display().to_string();
    let d = dest.display().to_string();
    let r = mod_root.display().to_string();
    let args = ["install", "--kdir", &k, "--destdir", &d, "--root", &r];

    let installed = must_exit(&args, 0, "installed 4 modules").and_then(|_| {
        for name in SHIPPED {
            let inst = m.join(format!("updates/{name}.ko"));
            ensure!(inst.is_file(), "{} is missing", inst.display());
        }
        // Only the shipped modules, nothing else under updates/ but the manifest.
        let mut present: Vec<String> = std::fs::read_dir(m.join("updates"))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        present.sort();
        let mut want: Vec<String> = SHIPPED.iter().map(|n| format!("{n}.ko")).collect();
        want.push("vfio-pci-rs.manifest".into());
        want.sort();
        ensure!(present == want, "updates/ holds {present:?}, want {want:?}");
        // The test kernel does not sign (CONFIG_MODULE_SIG unset): the installed files are
        // the built ones, byte for byte.
        let config = std::fs::read_to_string(kdir.join(".config"))?;
        if install::signing_policy(&config) == install::Signing::Off {
            for (name, built) in SHIPPED.iter().zip(install::shipped_modules(mod_root)?) {
                let inst = std::fs::read(m.join(format!("updates/{name}.ko")))?;
                ensure!(
                    inst == std::fs::read(&built)?,
                    "updates/{name}.ko differs from {}",
                    built.display()
                );
            }
        }
        Ok(())
    });
    let ok = installed.is_ok();
    record(&mut c, "install-into-destdir", installed);

    let gate = |r: Result<()>| if ok { r } else { bail!("install failed") };
    record(
        &mut c,
        "install-modules-dep",
        gate((|| {
            let dep = std::fs::read_to_string(m.join("modules.dep"))?;
            for line in [
                "updates/vfio_pci_common.ko:",
                "updates/vfio_pci_generic.ko: updates/vfio_pci_common.ko",
                "updates/vfio_pci_igd.ko: updates/vfio_pci_common.ko",
                "updates/vfio_pci_nvlink.ko: updates/vfio_pci_common.ko",
            ] {
                ensure!(
                    dep.lines().any(|l| l == line),
                    "no `{line}` in modules.dep:\n{dep}"
                );
            }
            let alias = std::fs::read_to_string(m.join("modules.alias"))?;
            ensure!(
                alias
                    .lines()
                    .any(|l| l == "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci_generic"),
                "vfio_pci_generic's alias is not in modules.alias"
            );
            let dep_of = output(
                Command::new("modprobe")
                    .arg("-d")
                    .arg(&dest)
                    .arg("-S")
                    .arg(&t.release)
                    .args(["--show-depends", "vfio_pci_generic"]),
            )?;
            let order: Vec<&str> = dep_of.lines().map(str::trim_end).collect();
            ensure!(
                order.len() == 2
                    && order[0].ends_with("updates/vfio_pci_common.ko")
                    && order[1].ends_with("updates/vfio_pci_generic.ko"),
                "modprobe --show-depends vfio_pci_generic: {dep_of:?}"
            );
            println!("    modprobe --show-depends vfio_pci_generic: {order:?}");
            Ok(())
        })()),
    );
    record(
        &mut c,
        "install-manifest",
        gate((|| {
            let text = std::fs::read_to_string(m.join(MANIFEST))?;
            let install::Manifest {
                files,
                dirs,
                sdk,
                root_dirs,
            } = install::parse_manifest(&text)?;
            let want_sdk = crate::sdk::sdk_rel(&t.release).display().to_string();
            ensure!(
                sdk.as_deref() == Some(want_sdk.as_str()),
                "manifest sdk {sdk:?}, want {want_sdk}"
            );
            // The scratch destdir has no usr/: the install creates all three levels.
            ensure!(
                root_dirs.len() == 3,
                "manifest rootdirs {root_dirs:?}, want usr, usr/src and the versioned directory"
            );
            ensure!(
                t.sdk_dir().join("common/sdk/mod.rs").is_file()
                    && t.sdk_dir().join("Module.symvers").is_file(),
                "no SDK in {}",
                t.sdk_dir().display()
            );
            let want: Vec<String> = SHIPPED.iter().map(|n| format!("updates/{n}.ko")).collect();
            ensure!(files == want, "manifest files {files:?}, want {want:?}");
            ensure!(
                dirs == ["updates"],
                "manifest dirs {dirs:?}, want [updates]"
            );
            Ok(())
        })()),
    );
    let after_install = snapshot(&dest);
    record(
        &mut c,
        "install-twice-same-tree",
        gate((|| {
            must_exit(&args, 0, "removing the previous install")?;
            let again = snapshot(&dest)?;
            let first = after_install
                .as_ref()
                .map_err(|e| anyhow::anyhow!("{e:#}"))?;
            let dd = diff(first, &again);
            ensure!(dd.is_empty(), "a second install changed: {dd:?}");
            Ok(())
        })()),
    );
    record(
        &mut c,
        "uninstall-restores-tree",
        gate((|| {
            must_exit(
                &["uninstall", "--kdir", &k, "--destdir", &d],
                0,
                "uninstalled 4 modules",
            )?;
            let before = before.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
            let dd = diff(before, &snapshot(&dest)?);
            ensure!(
                dd.is_empty(),
                "the tree differs from before the install: {dd:?}"
            );
            must_exit(
                &["uninstall", "--kdir", &k, "--destdir", &d],
                1,
                "nothing to uninstall",
            )?;
            Ok(())
        })()),
    );
    // A tree whose modules are not built: a clean refusal that names build-modules, and
    // nothing installed.
    record(
        &mut c,
        "install-refuses-unbuilt",
        (|| {
            let scratch = checkout_cache("install-test/unbuilt");
            if scratch.exists() {
                std::fs::remove_dir_all(&scratch)?;
            }
            std::fs::create_dir_all(scratch.join("common"))?;
            std::fs::write(scratch.join("Kbuild"), "obj-m += common/\n")?;
            std::fs::write(
                scratch.join("common/Kbuild"),
                "obj-m += vfio_pci_common.o\n",
            )?;
            let d2 = checkout_cache("install-test/destdir-unbuilt");
            if d2.exists() {
                std::fs::remove_dir_all(&d2)?;
            }
            let s = scratch.display().to_string();
            let d2s = d2.display().to_string();
            must_exit(
                &["install", "--kdir", &k, "--destdir", &d2s, "--root", &s],
                1,
                "run `cargo xtask build-modules",
            )?;
            let left = snapshot(&d2)?;
            ensure!(left.is_empty(), "a refused install left {left:?}");
            std::fs::remove_dir_all(&scratch)?;
            std::fs::remove_dir_all(&d2)?;
            Ok(())
        })(),
    );
    let _ = std::fs::remove_dir_all(&dest);
    c
}

/// The subject of the throwaway signing key of the signing checks.
const TEST_SIGNER: &str = "vfio-pci-rs test key";

/// A copy of the kernel build directory `kdir` that asks for signed modules: symlinks to
/// everything but `.config` and `include/config/auto.conf` (with `CONFIG_MODULE_SIG=y`, `_ALL`
/// as `all` says, sha256, `certs/signing_key.pem`), `scripts/` (plus `sign-file`, built from
/// the kernel's source) and `certs/` (a throwaway key, unless `key` is false).
fn signing_kdir(kdir: &Path, at: &Path, sign_file: &Path, all: bool, key: bool) -> Result<()> {
    use std::os::unix::fs::symlink;
    if at.exists() {
        std::fs::remove_dir_all(at)?;
    }
    std::fs::create_dir_all(at.join("include/config"))?;
    std::fs::create_dir_all(at.join("scripts"))?;
    std::fs::create_dir_all(at.join("certs"))?;
    let link_all = |from: &Path, to: &Path, except: &[&str]| -> Result<()> {
        for e in std::fs::read_dir(from)?.flatten() {
            let n = e.file_name();
            if !except.iter().any(|x| n == *x) {
                symlink(e.path(), to.join(&n))?;
            }
        }
        Ok(())
    };
    link_all(kdir, at, &[".config", "include", "scripts", "certs"])?;
    link_all(&kdir.join("include"), &at.join("include"), &["config"])?;
    link_all(
        &kdir.join("include/config"),
        &at.join("include/config"),
        &["auto.conf"],
    )?;
    link_all(&kdir.join("scripts"), &at.join("scripts"), &[])?;
    std::fs::copy(sign_file, at.join("scripts/sign-file"))?;
    let sig = format!(
        "CONFIG_MODULE_SIG=y\n{}\nCONFIG_MODULE_SIG_HASH=\"sha256\"\n\
         CONFIG_MODULE_SIG_KEY=\"certs/signing_key.pem\"\n",
        if all {
            "CONFIG_MODULE_SIG_ALL=y"
        } else {
            "# CONFIG_MODULE_SIG_ALL is not set"
        }
    );
    for (from, to) in [
        (".config", ".config"),
        ("include/config/auto.conf", "include/config/auto.conf"),
    ] {
        let text: String = std::fs::read_to_string(kdir.join(from))?
            .lines()
            .filter(|l| !l.contains("CONFIG_MODULE_SIG"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(at.join(to), text + &sig)?;
    }
    if key {
        let certs = at.join("certs");
        run(Command::new("openssl")
            .args([
                "req", "-new", "-nodes", "-utf8", "-sha256", "-days", "1", "-batch", "-x509",
            ])
            .args([
                "-subj",
                &format!("/CN={TEST_SIGNER}"),
                "-newkey",
                "rsa:2048",
            ])
            .arg("-keyout")
            .arg(certs.join("key.pem"))
            .arg("-out")
            .arg(certs.join("cert.pem"))
            .stderr(std::process::Stdio::null()))?;
        let pem = [
            std::fs::read(certs.join("key.pem"))?,
            std::fs::read(certs.join("cert.pem"))?,
        ]
        .concat();
        std::fs::write(certs.join("signing_key.pem"), pem)?;
        run(Command::new("openssl")
            .args(["x509", "-outform", "DER"])
            .arg("-in")
            .arg(certs.join("cert.pem"))
            .arg("-out")
            .arg(certs.join("signing_key.x509")))?;
    }
    Ok(())
}

/// Install into a scratch destdir for a kernel that asks for signed modules, in each of the
/// three ways install handles it (the test kernel itself has no module signing): the kernel
/// signs (`CONFIG_MODULE_SIG_ALL=y`), we sign (`CONFIG_MODULE_SIG=y` only), and the two
/// failures without a key, which must leave nothing installed.
pub fn signing_checks(kdir: &Path, mod_root: &Path) -> Counts {
    let mut c = Counts::default();
    let base = checkout_cache("install-test/signing");
    step(format!(
        "install for a kernel that asks for signed modules (scratch trees in {})",
        base.display()
    ));
    let sign_file = base.join("sign-file");
    let built = (|| -> Result<()> {
        if base.exists() {
            std::fs::remove_dir_all(&base)?;
        }
        std::fs::create_dir_all(&base)?;
        let src = kdir.join("source/scripts/sign-file.c");
        let src = if src.is_file() {
            src
        } else {
            kdir.join("scripts/sign-file.c")
        };
        run(Command::new("gcc")
            .args(["-O2", "-w", "-o"])
            .arg(&sign_file)
            .arg(&src)
            .arg(format!(
                "-I{}",
                src.parent().context("no parent")?.display()
            ))
            .arg("-lcrypto"))
        .context("building the kernel's sign-file (gcc, libssl-dev: `cargo xtask setup`)")
    })();
    let cases: [(&str, bool, bool, i32, &str); 4] = [
        (
            "install-signed-by-kernel",
            true,
            true,
            0,
            "all 4 installed modules are signed",
        ),
        (
            "install-signed-by-us",
            false,
            true,
            0,
            "signing the installed modules",
        ),
        (
            "install-sig-all-without-key-fails",
            true,
            false,
            1,
            "is not signed although CONFIG_MODULE_SIG_ALL=y",
        ),
        (
            "install-refuses-without-key",
            false,
            false,
            1,
            "signing key",
        ),
    ];
    for (name, all, key, want, text) in cases {
        let r = match &built {
            Err(e) => Err(anyhow::anyhow!("{e:#}")),
            Ok(()) => (|| -> Result<()> {
                let k = base.join(format!("{name}/kdir"));
                let d = base.join(format!("{name}/destdir"));
                signing_kdir(kdir, &k, &sign_file, all, key)?;
                let (ks, ds, rs) = (
                    k.display().to_string(),
                    d.display().to_string(),
                    mod_root.display().to_string(),
                );
                must_exit(
                    &["install", "--kdir", &ks, "--destdir", &ds, "--root", &rs],
                    want,
                    text,
                )?;
                let t = Target::new(Some(k.clone()), Some(d.clone()))?;
                let m = t.modlib();
                if want == 0 {
                    for n in SHIPPED {
                        let ko = m.join(format!("updates/{n}.ko"));
                        let signer =
                            output(Command::new("modinfo").args(["-F", "signer"]).arg(&ko))?;
                        ensure!(signer == TEST_SIGNER, "{}: signer `{signer}`", ko.display());
                    }
                    println!("    {} modules signed by `{TEST_SIGNER}`", SHIPPED.len());
                    must_exit(
                        &["uninstall", "--kdir", &ks, "--destdir", &ds],
                        0,
                        "uninstalled 4 modules",
                    )?;
                } else {
                    let left: Vec<String> = snapshot(&d)?
                        .into_keys()
                        .filter(|p| p.contains("updates"))
                        .collect();
                    ensure!(left.is_empty(), "a failed install left {left:?}");
                }
                Ok(())
            })(),
        };
        record(&mut c, name, r);
    }
    let _ = std::fs::remove_dir_all(&base);
    c
}

/// `PACKAGE_VERSION` of dkms.conf.
pub fn dkms_version(conf: &str) -> Option<String> {
    conf.lines().find_map(|l| {
        l.trim()
            .strip_prefix("PACKAGE_VERSION=")
            .map(|v| v.trim_matches('"').to_string())
    })
}

/// The source tree a packager ships (what `git archive` of the working tree holds: tracked
/// and untracked, not ignored files), copied to `to`.
fn stage_source(to: &Path) -> Result<()> {
    let root = repo_root();
    let list = output(
        Command::new("git")
            .args(["ls-files", "-co", "--exclude-standard"])
            .current_dir(&root),
    )?;
    let mut n = 0;
    for f in list.lines() {
        let from = root.join(f);
        if !from.is_file() {
            continue; // deleted in the working tree
        }
        let dst = to.join(f);
        std::fs::create_dir_all(dst.parent().context("no parent")?)?;
        std::fs::copy(&from, &dst).with_context(|| format!("copying {}", from.display()))?;
        n += 1;
    }
    println!("    staged {n} files in {}", to.display());
    Ok(())
}

/// `dkms add` + `dkms build` of this tree for `kdir`, in scratch source and DKMS trees; the
/// three shipped modules must come out, built for that kernel, and nothing else.
pub fn dkms_check(kdir: &Path) -> Result<()> {
    let dkms = which("dkms").context(
        "the `dkms` command is not installed: `cargo xtask setup` installs it (Debian \
             package dkms)",
    )?;
    let conf = std::fs::read_to_string(repo_root().join("dkms.conf"))?;
    let ver = dkms_version(&conf).context("no PACKAGE_VERSION in dkms.conf")?;
    let release = std::fs::read_to_string(kdir.join("include/config/kernel.release"))?
        .trim()
        .to_string();
    let base = checkout_cache("dkms-test");
    if base.exists() {
        std::fs::remove_dir_all(&base)?;
    }
    let src = base.join("src");
    let tree = base.join("dkms");
    std::fs::create_dir_all(&tree)?;
    step(format!(
        "dkms build of vfio-pci-rs {ver} for {release} (scratch trees in {}; about 30 s)",
        base.display()
    ));
    stage_source(&src.join(format!("vfio-pci-rs-{ver}")))?;
    let system_before = Path::new("/var/lib/dkms/vfio-pci-rs").exists();
    let common = |a: &str| {
        let mut cmd = Command::new(&dkms);
        cmd.arg(a)
            .args(["-m", "vfio-pci-rs", "-v", &ver])
            .arg("--dkmstree")
            .arg(&tree)
            .arg("--sourcetree")
            .arg(&src);
        cmd
    };
    run(&mut common("add"))?;
    let built = run(common("build")
        .args(["-k", &release])
        .arg("--kernelsourcedir")
        .arg(kdir));
    if let Err(e) = built {
        let log = tree.join(format!("vfio-pci-rs/{ver}/build/make.log"));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        for l in tail.iter().rev() {
            println!("    | {l}");
        }
        return Err(e);
    }
    let status = output(common("status").arg("-k").arg(&release))?;
    println!("    dkms status: {status}");
    ensure!(status.contains(": built"), "dkms status: {status}");
    let arch_dirs: Vec<PathBuf> =
        std::fs::read_dir(tree.join(format!("vfio-pci-rs/{ver}/{release}")))?
            .flatten()
            .map(|e| e.path().join("module"))
            .filter(|p| p.is_dir())
            .collect();
    ensure!(arch_dirs.len() == 1, "module directories: {arch_dirs:?}");
    let mut got: Vec<String> = std::fs::read_dir(&arch_dirs[0])?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    got.sort();
    let want: Vec<String> = SHIPPED.iter().map(|n| format!("{n}.ko")).collect();
    ensure!(got == want, "dkms built {got:?}, want {want:?}");
    for name in SHIPPED {
        let ko = arch_dirs[0].join(format!("{name}.ko"));
        let info = pcibind::modinfo::ModuleInfo::read(&ko)?;
        let vermagic = output(Command::new("modinfo").args(["-F", "vermagic"]).arg(&ko))?;
        ensure!(
            vermagic.split_whitespace().next() == Some(&release),
            "{name}: vermagic {vermagic}"
        );
        let want_dep: &[&str] = if name == "vfio_pci_common" {
            &[]
        } else {
            &["vfio_pci_common"]
        };
        ensure!(
            info.depends == want_dep,
            "{name} depends {:?}",
            info.depends
        );
        println!(
            "    {} ({vermagic}; depends {:?})",
            ko.display(),
            info.depends
        );
    }
    ensure!(
        system_before || !Path::new("/var/lib/dkms/vfio-pci-rs").exists(),
        "the check wrote to /var/lib/dkms"
    );
    std::fs::remove_dir_all(&base)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dkms.conf lists exactly the modules `install` ships, where Kbuild builds them, and the
    /// workspace's version.
    #[test]
    fn dkms_conf_matches_what_install_ships() {
        let root = repo_root();
        let conf = std::fs::read_to_string(root.join("dkms.conf")).unwrap();
        assert!(conf.starts_with("# SPDX-License-Identifier: GPL-2.0\n"));
        let field = |k: &str| -> Vec<String> {
            conf.lines()
                .filter_map(|l| l.strip_prefix(k))
                .filter_map(|r| r.split_once("]=\""))
                .map(|(_, v)| v.trim_end_matches('"').to_string())
                .collect()
        };
        let names = field("BUILT_MODULE_NAME[");
        let locs = field("BUILT_MODULE_LOCATION[");
        let dests = field("DEST_MODULE_LOCATION[");
        let shipped = install::shipped_modules(&root).unwrap();
        let want_names: Vec<String> = shipped
            .iter()
            .map(|k| k.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        let want_locs: Vec<String> = shipped
            .iter()
            .map(|k| {
                format!(
                    "{}/",
                    k.parent().unwrap().strip_prefix(&root).unwrap().display()
                )
            })
            .collect();
        assert_eq!(names, want_names);
        assert_eq!(names, SHIPPED);
        assert_eq!(locs, want_locs);
        assert_eq!(dests.len(), names.len());
        assert!(dests.iter().all(|d| d == "/updates/dkms"));
        let cargo = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let v = dkms_version(&conf).unwrap();
        assert!(cargo.contains(&format!("version = \"{v}\"")), "{v}");
        assert!(conf.contains("AUTOINSTALL=\"yes\""));
        assert!(conf.contains("SHIPPED_ONLY=1"));
    }
}
