// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask build-modules`: extra bindings, then one Kbuild `M=` build of every module.

use crate::kernel::Profile;
use crate::setup::KERNEL_RUSTC;
use crate::util::{nproc, output, repo_root, run, step};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Our header, fed to the kernel's saved bindgen command.
const HEADER: &str = "common/bindings/vfio_pci_common.h";
/// Where the generated bindings go (ignored by git; rebuilt for every KDIR).
const GENERATED: &str = "common/bindings/generated/vfio_pci_bindings.rs";
/// The script that rewrites and runs the kernel's bindgen command (plain sh, so `make` and
/// DKMS use it without cargo); it holds the allowlist of kernel headers.
pub const GENERATE_SCRIPT: &str = "common/bindings/generate.sh";

/// The kernel build directory to use: the one given, or the cached kernel of `profile` (built
/// first if needed, after installing what the build needs). Nothing here runs a tool before
/// setup has made sure it is installed: on a bare machine the cache lookup itself needs the
/// kernel's rustc and bindgen.
pub fn resolve_kdir(kdir: Option<PathBuf>, profile: Profile) -> Result<PathBuf> {
    match kdir {
        Some(k) => {
            let k = k
                .canonicalize()
                .with_context(|| format!("KDIR {} does not exist", k.display()))?;
            if !k.join("rust/bindings/.bindings_generated.rs.cmd").exists() {
                bail!(
                    "{} is not a prepared Rust-enabled kernel build: it has no \
                     rust/bindings/.bindings_generated.rs.cmd (build it with CONFIG_RUST=y first)",
                    k.display()
                );
            }
            Ok(k)
        }
        None => cached_kernel_with(
            crate::setup::missing_tools(),
            crate::setup::setup,
            || crate::kernel::cached_build(profile),
            || crate::kernel::kernel(profile, false),
            profile.name(),
        ),
    }
}

/// The cached kernel's resolution order, with its steps passed in (the host tests report tools
/// missing and check the order): setup first when anything is `missing`, because the cache
/// lookup itself runs the kernel's rustc and bindgen; then the lookup; then a kernel build,
/// after setup if it has not run yet.
fn cached_kernel_with(
    missing: Vec<String>,
    setup: impl Fn() -> Result<()>,
    cached_build: impl Fn() -> Result<Option<PathBuf>>,
    build_kernel: impl Fn() -> Result<PathBuf>,
    profile: &str,
) -> Result<PathBuf> {
    if !missing.is_empty() {
        step(format!(
            "{} missing: running setup first",
            missing.join(", ")
        ));
        setup()?;
    }
    if let Some(k) = cached_build()? {
        return Ok(k);
    }
    if missing.is_empty() {
        step(format!(
            "no prepared {profile} kernel yet: running setup and kernel first"
        ));
        setup()?;
    }
    build_kernel()
}

/// The command [`GENERATE_SCRIPT`] would run for `kdir` (`--print`): the kernel's saved
/// bindgen command rewritten for our header and `out` (the script writes `out.tmp` first).
#[cfg(test)]
pub fn bindgen_command(kdir: &Path, header: &Path, out: &Path) -> Result<String> {
    output(
        Command::new("sh")
            .arg(repo_root().join(GENERATE_SCRIPT))
            .arg("--print")
            .arg(kdir)
            .arg(header)
            .arg(out),
    )
}

/// Re-runs the kernel's own bindgen invocation on our header, so our bindings are made with
/// exactly the flags, target and clang options the kernel's `bindings` crate was made with.
pub fn generate_bindings(kdir: &Path) -> Result<PathBuf> {
    generate_bindings_in(kdir, &repo_root())
}

/// [`generate_bindings`] for the tree at `root` (always with this checkout's script).
pub fn generate_bindings_in(kdir: &Path, root: &Path) -> Result<PathBuf> {
    let out = root.join(GENERATED);
    step(format!(
        "generating bindings for {HEADER} with the kernel's bindgen command"
    ));
    println!(
        "    (from {}; output {})",
        kdir.join("rust/bindings/.bindings_generated.rs.cmd")
            .display(),
        out.display()
    );
    run(Command::new("sh")
        .arg(repo_root().join(GENERATE_SCRIPT))
        .arg(kdir)
        .arg(root.join(HEADER))
        .arg(&out))
    .context("generating the bindings")?;
    Ok(out)
}

/// The make invocation for the external-module directory `m` against `kdir` (with the
/// kernel's own compiler: `LLVM=` when it was built with clang).
pub fn kbuild_at(kdir: &Path, m: &Path) -> Command {
    let mut c = Command::new("make");
    c.arg("-C")
        .arg(kdir)
        .arg(format!("M={}", m.display()))
        .arg(format!("RUSTC={KERNEL_RUSTC}"))
        .arg(format!("HOSTRUSTC={KERNEL_RUSTC}"));
    if let Some(l) = crate::kernel::llvm_of(kdir) {
        c.arg(format!("LLVM={l}"));
    }
    if let Some(bg) = crate::util::which("bindgen") {
        c.arg(format!("BINDGEN={}", bg.display()));
    }
    c
}

/// The words after `obj-m +=` / `obj-m :=` on every line of a Kbuild file (comments dropped).
fn obj_m_words(kbuild: &str) -> impl Iterator<Item = &str> {
    kbuild.lines().flat_map(|line| {
        let line = line.split('#').next().unwrap_or("").trim();
        let rest = line.strip_prefix("obj-m").map(str::trim_start);
        let rest = rest.and_then(|r| r.strip_prefix("+=").or_else(|| r.strip_prefix(":=")));
        rest.unwrap_or("").split_whitespace()
    })
}

/// The directories the top-level Kbuild builds (`obj-m += dir/ [dir/...]` lines, in order;
/// comments and other lines are ignored).
pub fn kbuild_dirs(kbuild: &str) -> Vec<String> {
    obj_m_words(kbuild)
        .filter(|w| w.ends_with('/'))
        .map(|w| w.trim_end_matches('/').to_string())
        .collect()
}

/// The module objects one directory's Kbuild builds (`obj-m += name.o` -> `name`).
pub fn kbuild_objects(kbuild: &str) -> Vec<String> {
    obj_m_words(kbuild)
        .filter_map(|w| w.strip_suffix(".o"))
        .map(String::from)
        .collect()
}

/// The modules a tree at `root` builds, discovered from its Kbuild files: for every
/// `obj-m += dir/` of the top-level Kbuild, every `obj-m += name.o` of `dir/Kbuild`, as
/// `root/dir/name.ko`, in Kbuild order (the common module first).
pub fn module_paths_in(root: &Path) -> Result<Vec<PathBuf>> {
    let top = root.join("Kbuild");
    let text =
        std::fs::read_to_string(&top).with_context(|| format!("reading {}", top.display()))?;
    let mut out = Vec::new();
    for dir in kbuild_dirs(&text) {
        let kb = root.join(&dir).join("Kbuild");
        let sub = std::fs::read_to_string(&kb)
            .with_context(|| format!("reading {} (listed in {})", kb.display(), top.display()))?;
        let objs = kbuild_objects(&sub);
        if objs.is_empty() {
            bail!(
                "{} builds no module (no `obj-m += name.o` line)",
                kb.display()
            );
        }
        out.extend(objs.iter().map(|o| root.join(&dir).join(format!("{o}.ko"))));
    }
    Ok(out)
}

/// The modules this repository builds, in load order.
pub fn module_paths() -> Result<Vec<PathBuf>> {
    module_paths_in(&repo_root())
}

/// Every module of this tree, built against the given kernel or the cached kernel of
/// `profile`. Test-profile builds write next to the sources, as a plain `make` does; a
/// debug-profile build (a clang kernel) uses a mirror of the module sources in the cache
/// ([`mirror_tree`]), so the two builds never overwrite each other's objects.
pub fn build_modules(kdir: Option<PathBuf>, profile: Profile) -> Result<Vec<PathBuf>> {
    let explicit = kdir.is_some();
    let kdir = resolve_kdir(kdir, profile)?;
    let root = if profile == Profile::Debug && !explicit {
        let m = crate::util::checkout_cache("modules-debug");
        step(format!("mirroring the module sources to {}", m.display()));
        mirror_tree(&repo_root(), &m)?;
        m
    } else {
        repo_root()
    };
    generate_bindings_in(&kdir, &root)?;
    step(format!(
        "building all modules against {} (warnings are errors)",
        kdir.display()
    ));
    run(kbuild_at(&kdir, &root)
        .arg(format!("-j{}", nproc()))
        // Warnings are errors for our code even when the kernel was configured without
        // CONFIG_WERROR: C gets -Werror, Rust -Dwarnings (see the kernel Makefile).
        .arg("CONFIG_WERROR=y")
        .arg("modules"))?;
    let kos = module_paths_in(&root)?;
    step("built modules");
    for ko in &kos {
        if !ko.exists() {
            bail!("{} was not built", ko.display());
        }
        let field = |f: &str| -> String {
            output(Command::new("modinfo").arg("-F").arg(f).arg(ko))
                .unwrap_or_default()
                .replace('\n', ", ")
        };
        let rel = ko.strip_prefix(&root).unwrap_or(ko);
        println!("    {}", rel.display());
        println!("        name:    {}", field("name"));
        println!("        alias:   {}", field("alias"));
        println!("        depends: {}", field("depends"));
    }
    Ok(kos)
}

/// What a module build reads: the top-level Kbuild, and below it every Kbuild, Rust, C and
/// header file (build output, Cargo targets and fuzz corpora are not sources).
fn is_module_source(name: &str) -> bool {
    name == "Kbuild" || name.ends_with(".rs") || name.ends_with(".c") || name.ends_with(".h")
}

/// Makes `to` hold the module sources of `from` (see [`is_module_source`]): a file is written
/// only when its bytes differ, so Kbuild rebuilds only what changed; files gone from `from`
/// are removed.
pub fn mirror_tree(from: &Path, to: &Path) -> Result<()> {
    fn walk(from: &Path, to: &Path, depth: usize) -> Result<()> {
        std::fs::create_dir_all(to)?;
        let mut wanted = std::collections::BTreeSet::new();
        for e in std::fs::read_dir(from)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ft = e.file_type()?;
            if ft.is_dir() {
                if name.starts_with('.')
                    || ["target", "generated", "fuzz", "xtask", "Documentation"]
                        .contains(&name.as_str())
                {
                    continue;
                }
                wanted.insert(name.clone());
                walk(&e.path(), &to.join(&name), depth + 1)?;
            } else if ft.is_file() && is_module_source(&name) && (depth > 0 || name == "Kbuild") {
                wanted.insert(name.clone());
                let data = std::fs::read(e.path())?;
                let dst = to.join(&name);
                if std::fs::read(&dst).ok().as_deref() != Some(&data[..]) {
                    std::fs::write(&dst, &data)?;
                }
            }
        }
        for e in std::fs::read_dir(to)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type()?.is_file() && is_module_source(&name) && !wanted.contains(&name) {
                std::fs::remove_file(e.path())?;
            }
        }
        Ok(())
    }
    walk(from, to, 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn setup_runs_before_the_cache_lookup_when_tools_are_missing() {
        use std::cell::RefCell;
        let log = RefCell::new(Vec::<&str>::new());
        let setup = || {
            log.borrow_mut().push("setup");
            Ok(())
        };
        // The lookup runs rustc and bindgen: it must never come before setup on a bare machine.
        let lookup = |found: bool| {
            let log = &log;
            move || {
                assert_eq!(log.borrow().first(), Some(&"setup"), "lookup before setup");
                log.borrow_mut().push("lookup");
                Ok(found.then(|| PathBuf::from("/k")))
            }
        };
        let build = || {
            log.borrow_mut().push("kernel");
            Ok(PathBuf::from("/built"))
        };
        let bare = vec!["/usr/bin/rustc".to_string(), "bindgen 0.69.5".to_string()];
        let k = cached_kernel_with(bare.clone(), setup, lookup(false), build, "test").unwrap();
        assert_eq!(k, PathBuf::from("/built"));
        assert_eq!(*log.borrow(), ["setup", "lookup", "kernel"]);
        log.borrow_mut().clear();
        cached_kernel_with(bare, setup, lookup(true), build, "test").unwrap();
        assert_eq!(*log.borrow(), ["setup", "lookup"]);
        // Tools present, nothing cached: the lookup first, then setup and the kernel.
        log.borrow_mut().clear();
        let lookup_any = || {
            log.borrow_mut().push("lookup");
            Ok(None)
        };
        cached_kernel_with(vec![], setup, lookup_any, build, "test").unwrap();
        assert_eq!(*log.borrow(), ["lookup", "setup", "kernel"]);
        // A failed setup stops everything.
        log.borrow_mut().clear();
        let failing = || Err(anyhow::anyhow!("apt-get failed"));
        let lookup_never = || -> Result<Option<PathBuf>> { panic!("lookup after a failed setup") };
        assert!(cached_kernel_with(vec!["x".into()], failing, lookup_never, build, "t").is_err());
    }

    use super::*;

    const SAVED: &str = "savedcmd_rust/bindings/bindings_generated.rs := /b/bindgen /src/rust/bindings/bindings_helper.h --blocklist-type __kernel_s?size_t --use-core --no-debug '.*' -o rust/bindings/bindings_generated.rs -- -Wp,-MMD,rust/bindings/.bindings_generated.rs.d -nostdinc -I./include -DMODULE  ; sed -Ei 's/pub const RUST_CONST_HELPER_([a-zA-Z0-9_]*)/pub const \\1/g' rust/bindings/bindings_generated.rs\n\nsource_rust/bindings/bindings_generated.rs := x\n";

    /// A fake kernel build directory whose saved bindgen command is `saved`.
    fn fake_kdir(name: &str, saved: &str) -> PathBuf {
        let k = std::env::temp_dir().join(format!("xtask-bindgen-{name}-{}", std::process::id()));
        std::fs::create_dir_all(k.join("rust/bindings")).unwrap();
        std::fs::write(k.join("rust/bindings/.bindings_generated.rs.cmd"), saved).unwrap();
        k
    }

    #[test]
    fn bindgen_command_uses_our_header_output_and_allowlist() {
        let k = fake_kdir("ok", SAVED);
        let s = bindgen_command(&k, Path::new("/r/h.h"), Path::new("/r/out.rs")).unwrap();
        std::fs::remove_dir_all(&k).unwrap();
        assert!(s.starts_with("/b/bindgen /r/h.h --blocklist-type"), "{s}");
        assert!(s.contains(" -o /r/out.rs.tmp "), "{s}");
        assert!(s.contains("--allowlist-file '.*/include/(uapi/)?linux/(pci|"));
        assert!(s.contains("--no-recursive-allowlist"));
        assert!(s.contains("'pub use kernel::bindings::*;'"));
        assert!(!s.contains("-Wp,-MMD"));
        assert!(s.contains(" -- -nostdinc -I./include -DMODULE"));
        assert!(
            s.ends_with("/g' /r/out.rs.tmp"),
            "post-processing runs on our output: {s}"
        );
        assert!(!s.contains("rust/bindings/bindings_generated.rs"));
    }

    #[test]
    fn kbuild_parsing() {
        let top = "# SPDX\n# comment obj-m += nope/\nobj-m += common/\nobj-m += variants/generic/ variants/igd/\n\
                   obj-y += builtin/\nobj-m += samples/skeleton/ # trailing comment\nobj-m:=x/\n";
        assert_eq!(
            kbuild_dirs(top),
            [
                "common",
                "variants/generic",
                "variants/igd",
                "samples/skeleton",
                "x"
            ]
        );
        let sub = "obj-m += vfio_pci_common.o\nvfio_pci_common-y := a.o b.o\n";
        assert_eq!(kbuild_objects(sub), ["vfio_pci_common"]);
    }

    #[test]
    fn this_trees_modules() {
        let kos = module_paths().unwrap();
        let rel: Vec<String> = kos
            .iter()
            .map(|k| k.strip_prefix(repo_root()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            rel.first().map(String::as_str),
            Some("common/vfio_pci_common.ko")
        );
        assert!(rel.contains(&"variants/generic/vfio_pci_generic.ko".to_string()));
        assert!(rel.contains(&"samples/skeleton/vfio_pci_skeleton.ko".to_string()));
    }

    #[test]
    fn bindgen_command_refuses_unexpected_input() {
        let (h, o) = (Path::new("h"), Path::new("o"));
        let k = fake_kdir("garbage", "garbage\n");
        assert!(bindgen_command(&k, h, o).is_err());
        let other = SAVED.replace("bindings_helper.h", "other.h");
        let k2 = fake_kdir("other", &other);
        assert!(bindgen_command(&k2, h, o).is_err());
        let k3 = fake_kdir("no-o", &SAVED.replace(" -o ", " "));
        assert!(bindgen_command(&k3, h, o).is_err());
        for k in [k, k2, k3] {
            std::fs::remove_dir_all(k).unwrap();
        }
        assert!(bindgen_command(Path::new("/nonexistent"), h, o).is_err());
    }
}
