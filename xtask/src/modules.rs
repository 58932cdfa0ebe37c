// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask build-modules`: extra bindings, then one Kbuild `M=` build of every module.

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
const ALLOWLIST_FILE: &str =
    r".*/include/(uapi/)?linux/(pci|pci_regs|pci_ids|vfio|eventfd|iova_bitmap|msi_api|poll)\.h";

/// The kernel build directory to use: the one given, or the cached test kernel (built first
/// if needed, after installing what the build needs).
pub fn resolve_kdir(kdir: Option<PathBuf>) -> Result<PathBuf> {
    match kdir {
        Some(k) => {
            let k = k.canonicalize().with_context(|| format!("KDIR {} does not exist", k.display()))?;
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
            if let Some(k) = crate::kernel::cached_build()? {
                return Ok(k);
            }
            step("no prepared test kernel yet: running setup and kernel first");
            crate::setup::setup()?;
            crate::kernel::kernel(false)
        }
    }
}

/// Re-runs the kernel's own bindgen invocation on our header, so our bindings are made with
/// exactly the flags, target and clang options the kernel's `bindings` crate was made with.
pub fn generate_bindings(kdir: &Path) -> Result<PathBuf> {
    let cmd_file = kdir.join("rust/bindings/.bindings_generated.rs.cmd");
    let saved = std::fs::read_to_string(&cmd_file)
        .with_context(|| format!("reading {}", cmd_file.display()))?;
    let first = saved.lines().next().unwrap_or_default();
    let cmd = first
        .split_once(":= ")
        .map(|(_, c)| c)
        .with_context(|| format!("unexpected format of {}", cmd_file.display()))?;
    // The saved line is `bindgen <kernel header> <flags> -o <out> -- <clang flags> ; sed ...`.
    let (bindgen_part, post) = cmd.split_once(" ; ").unwrap_or((cmd, ""));
    let (bindgen_args, clang_args) = bindgen_part
        .split_once(" -- ")
        .with_context(|| format!("no ` -- ` in {}", cmd_file.display()))?;
    let mut words: Vec<String> = bindgen_args.split(' ').filter(|w| !w.is_empty()).map(String::from).collect();
    let root = repo_root();
    let out = root.join(GENERATED);
    let tmp = out.with_extension("rs.tmp");
    std::fs::create_dir_all(out.parent().unwrap_or(&root))?;
    // words[0] is bindgen, words[1] the kernel's header.
    if words.len() < 2 || !words[1].ends_with("bindings_helper.h") {
        bail!("unexpected bindgen command in {}: {}", cmd_file.display(), &bindgen_args[..bindgen_args.len().min(200)]);
    }
    words[1] = root.join(HEADER).display().to_string();
    if let Some(i) = words.iter().position(|w| w == "-o") {
        if i + 1 < words.len() {
            words[i + 1] = tmp.display().to_string();
        }
    }
    words.extend(
        [
            "--allowlist-file".to_string(),
            format!("'{ALLOWLIST_FILE}'"),
            "--no-recursive-allowlist".to_string(),
            "--raw-line".to_string(),
            "'pub use kernel::bindings::*;'".to_string(),
            "--raw-line".to_string(),
            "'use kernel::ffi;'".to_string(),
        ],
    );
    let clang: Vec<&str> = clang_args
        .split(' ')
        .filter(|w| !w.is_empty() && !w.starts_with("-Wp,-MMD"))
        .collect();
    let mut script = format!("{} -- {}", words.join(" "), clang.join(" "));
    // The kernel post-processes its output with sed (constant helper renames); do the same.
    if !post.is_empty() {
        script.push_str(" && ");
        script.push_str(&post.replace("rust/bindings/bindings_generated.rs", &tmp.display().to_string()));
    }
    step(format!("generating bindings for {HEADER} with the kernel's bindgen command"));
    println!("    (from {}; output {})", cmd_file.display(), out.display());
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

/// The make invocation for our tree against `kdir`.
pub fn kbuild(kdir: &Path) -> Command {
    let mut c = Command::new("make");
    c.arg("-C")
        .arg(kdir)
        .arg(format!("M={}", repo_root().display()))
        .arg(format!("RUSTC={KERNEL_RUSTC}"))
        .arg(format!("HOSTRUSTC={KERNEL_RUSTC}"));
    if let Some(bg) = crate::util::which("bindgen") {
        c.arg(format!("BINDGEN={}", bg.display()));
    }
    c
}

/// The modules the build produces, in load order.
pub fn module_paths() -> Vec<PathBuf> {
    let root = repo_root();
    [
        "common/vfio_pci_common.ko",
        "variants/generic/vfio_pci_generic.ko",
        "samples/skeleton/vfio_pci_skeleton.ko",
    ]
        .iter()
        .map(|p| root.join(p))
        .collect()
}

pub fn build_modules(kdir: Option<PathBuf>) -> Result<Vec<PathBuf>> {
    let kdir = resolve_kdir(kdir)?;
    generate_bindings(&kdir)?;
    step(format!("building all modules against {} (warnings are errors)", kdir.display()));
    run(kbuild(&kdir)
        .arg(format!("-j{}", nproc()))
        // Warnings are errors for our code even when the kernel was configured without
        // CONFIG_WERROR: C gets -Werror, Rust -Dwarnings (see the kernel Makefile).
        .arg("CONFIG_WERROR=y")
        .arg("modules"))?;
    let kos = module_paths();
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
        let rel = ko.strip_prefix(repo_root()).unwrap_or(ko);
        println!("    {}", rel.display());
        println!("        name:    {}", field("name"));
        println!("        alias:   {}", field("alias"));
        println!("        depends: {}", field("depends"));
    }
    Ok(kos)
}
