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
/// The kernel headers we take declarations from; everything else they mention must already be
/// in `kernel::bindings`, so the types shared with the kernel crate are the kernel's own.
/// x86's `asm/pci.h` gives `struct pci_sysdata`, which the test fixture that creates a software
/// PCI root bus (tests/fixtures/fakepci) hands to the PCI core.
const ALLOWLIST_FILE: &str = r".*/include/(uapi/)?linux/(pci|pci_regs|pci_ids|vfio|eventfd|iova_bitmap|msi_api|poll|cdev)\.h|.*/arch/x86/include/asm/pci\.h";

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
        None => {
            let missing = crate::setup::missing_tools();
            if !missing.is_empty() {
                step(format!(
                    "{} missing: running setup first",
                    missing.join(", ")
                ));
                crate::setup::setup()?;
            }
            if let Some(k) = crate::kernel::cached_build(profile)? {
                return Ok(k);
            }
            if missing.is_empty() {
                step(format!(
                    "no prepared {} kernel yet: running setup and kernel first",
                    profile.name()
                ));
                crate::setup::setup()?;
            }
            crate::kernel::kernel(profile, false)
        }
    }
}

/// Turns the kernel's saved bindgen command line (the `savedcmd_... := ...` line of
/// `.bindings_generated.rs.cmd`) into the shell command that makes our bindings: our header
/// and output instead of the kernel's, no dependency file, our allowlist, and the kernel's own
/// post-processing applied to our output.
pub fn rewrite_bindgen_command(saved: &str, header: &Path, out: &Path) -> Result<String> {
    let first = saved.lines().next().unwrap_or_default();
    let cmd = first
        .split_once(":= ")
        .map(|(_, c)| c)
        .context("no `:= ` in the saved command")?;
    // The saved line is `bindgen <kernel header> <flags> -o <out> -- <clang flags> ; sed ...`.
    let (bindgen_part, post) = cmd.split_once(" ; ").unwrap_or((cmd, ""));
    let (bindgen_args, clang_args) = bindgen_part
        .split_once(" -- ")
        .context("no ` -- ` before the clang flags")?;
    let mut words: Vec<String> = bindgen_args
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect();
    // words[0] is bindgen, words[1] the kernel's header.
    if words.len() < 2 || !words[1].ends_with("bindings_helper.h") {
        bail!(
            "unexpected bindgen command: {}",
            &bindgen_args[..bindgen_args.len().min(200)]
        );
    }
    words[1] = header.display().to_string();
    let o = words
        .iter()
        .position(|w| w == "-o")
        .context("no `-o` in the bindgen command")?;
    if o + 1 >= words.len() {
        bail!("`-o` without a file in the bindgen command");
    }
    let kernel_out = std::mem::replace(&mut words[o + 1], out.display().to_string());
    words.extend([
        "--allowlist-file".to_string(),
        format!("'{ALLOWLIST_FILE}'"),
        "--no-recursive-allowlist".to_string(),
        "--raw-line".to_string(),
        "'pub use kernel::bindings::*;'".to_string(),
        "--raw-line".to_string(),
        "'use kernel::ffi;'".to_string(),
    ]);
    let clang: Vec<&str> = clang_args
        .split(' ')
        .filter(|w| !w.is_empty() && !w.starts_with("-Wp,-MMD"))
        .collect();
    let mut script = format!("{} -- {}", words.join(" "), clang.join(" "));
    if !post.trim().is_empty() {
        script.push_str(" && ");
        script.push_str(&post.replace(&kernel_out, &out.display().to_string()));
    }
    Ok(script)
}

/// Re-runs the kernel's own bindgen invocation on our header, so our bindings are made with
/// exactly the flags, target and clang options the kernel's `bindings` crate was made with.
pub fn generate_bindings(kdir: &Path) -> Result<PathBuf> {
    generate_bindings_in(kdir, &repo_root())
}

/// [`generate_bindings`] for the tree at `root`.
pub fn generate_bindings_in(kdir: &Path, root: &Path) -> Result<PathBuf> {
    let root = root.to_path_buf();
    let cmd_file = kdir.join("rust/bindings/.bindings_generated.rs.cmd");
    let saved = std::fs::read_to_string(&cmd_file)
        .with_context(|| format!("reading {}", cmd_file.display()))?;
    let out = root.join(GENERATED);
    let tmp = out.with_extension("rs.tmp");
    std::fs::create_dir_all(out.parent().unwrap_or(&root))?;
    let script = rewrite_bindgen_command(&saved, &root.join(HEADER), &tmp)
        .with_context(|| format!("reading the bindgen command in {}", cmd_file.display()))?;
    step(format!(
        "generating bindings for {HEADER} with the kernel's bindgen command"
    ));
    println!(
        "    (from {}; output {})",
        cmd_file.display(),
        out.display()
    );
    let status = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(kdir)
        .status()
        .context("running bindgen")?;
    if !status.success() {
        bail!("bindgen failed ({status}); the command was:\n{script}");
    }
    // Keep the old file (and its mtime) when nothing changed, so Kbuild does not rebuild.
    let new = std::fs::read(&tmp)?;
    if std::fs::read(&out).ok().as_deref() != Some(&new[..]) {
        std::fs::rename(&tmp, &out)?;
    } else {
        std::fs::remove_file(&tmp)?;
    }
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
    use super::*;

    const SAVED: &str = "savedcmd_rust/bindings/bindings_generated.rs := /b/bindgen /src/rust/bindings/bindings_helper.h --blocklist-type __kernel_s?size_t --use-core --no-debug '.*' -o rust/bindings/bindings_generated.rs -- -Wp,-MMD,rust/bindings/.bindings_generated.rs.d -nostdinc -I./include -DMODULE  ; sed -Ei 's/pub const RUST_CONST_HELPER_([a-zA-Z0-9_]*)/pub const \\1/g' rust/bindings/bindings_generated.rs\n\nsource_rust/bindings/bindings_generated.rs := x\n";

    #[test]
    fn bindgen_command_uses_our_header_output_and_allowlist() {
        let s =
            rewrite_bindgen_command(SAVED, Path::new("/r/h.h"), Path::new("/r/out.rs")).unwrap();
        assert!(s.starts_with("/b/bindgen /r/h.h --blocklist-type"));
        assert!(s.contains(" -o /r/out.rs "));
        assert!(s.contains("--allowlist-file"));
        assert!(s.contains("--no-recursive-allowlist"));
        assert!(s.contains("'pub use kernel::bindings::*;'"));
        assert!(!s.contains("-Wp,-MMD"));
        assert!(s.contains(" -- -nostdinc -I./include -DMODULE"));
        assert!(
            s.ends_with("/g' /r/out.rs"),
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
        assert!(rewrite_bindgen_command("garbage", Path::new("h"), Path::new("o")).is_err());
        let other = SAVED.replace("bindings_helper.h", "other.h");
        assert!(rewrite_bindgen_command(&other, Path::new("h"), Path::new("o")).is_err());
    }
}
