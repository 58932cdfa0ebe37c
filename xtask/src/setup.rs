// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask setup`: installs what the build and the tests need, and checks the Rust toolchain
//! the way the kernel's `make rustavailable` does. Idempotent: a second run installs nothing.

use crate::util::{output, run, step, which};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// Debian packages, with what each is for (printed when something is missing).
pub const PACKAGES: &[(&str, &str)] = &[
    (
        "linux-source-6.12",
        "the kernel source our modules build against",
    ),
    (
        "rustc-web",
        "rustc 1.96 in /usr/bin: the kernel's Rust compiler",
    ),
    (
        "rust-web-src",
        "the Rust standard library source the kernel build needs",
    ),
    ("libclang-dev", "libclang for bindgen"),
    ("qemu-system-x86", "the guest the module tests run in"),
    ("busybox-static", "the guest's userland"),
    ("cpio", "packs the initramfs"),
    ("kmod", "modinfo, modprobe"),
    (
        "dkms",
        "the dkms.conf check (`dkms build` against the test kernel)",
    ),
    ("flex", "kernel build"),
    ("bison", "kernel build"),
    ("bc", "kernel build"),
    ("libelf-dev", "kernel build (objtool)"),
    ("libssl-dev", "kernel build (sign-file)"),
    (
        "openssl",
        "the throwaway signing key of the install signing checks",
    ),
    ("xz-utils", "unpacks the kernel source"),
    ("make", "kernel build"),
    ("gcc", "kernel build"),
    (
        "g++",
        "libFuzzer, which cargo-fuzz builds for the fuzz check",
    ),
    ("git", "the dkms check lists the tree's files with git"),
    ("libc6-dev", "static guest test binary"),
    (
        "clang-14",
        "the debug kernel's C compiler (KASAN with Rust needs clang on 6.12)",
    ),
    ("lld-14", "the debug kernel's linker"),
    (
        "llvm-14",
        "the debug kernel's binutils (llvm-ar, llvm-nm, ...)",
    ),
];

pub const BINDGEN_VERSION: &str = "0.69.5";
/// The compiler the kernel and the modules are built with; it must be the same for both.
pub const KERNEL_RUSTC: &str = "/usr/bin/rustc";

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// The path of bindgen 0.69.5, installing it when missing or of another version.
pub fn bindgen() -> Result<PathBuf> {
    if let Some(p) = which("bindgen") {
        let v = output(Command::new(&p).arg("--version")).unwrap_or_default();
        if v.split_whitespace().last() == Some(BINDGEN_VERSION) {
            return Ok(p);
        }
        println!("    {} is `{v}`, need {BINDGEN_VERSION}", p.display());
    }
    step(format!(
        "installing bindgen-cli {BINDGEN_VERSION} with cargo (takes about two minutes)"
    ));
    run(Command::new("cargo").args([
        "install",
        "--locked",
        "--force",
        "bindgen-cli",
        "--version",
        BINDGEN_VERSION,
    ]))?;
    which("bindgen").context("bindgen was installed but is not in PATH nor ~/.cargo/bin")
}

/// What a build step needs before it can even look up its cache (the cache key reads the
/// kernel's rustc and bindgen versions and the kernel source package), named when missing.
/// Empty: setup has run on this machine.
pub fn missing_tools() -> Vec<String> {
    missing_tools_with(
        installed,
        |p| std::path::Path::new(p).exists(),
        || {
            which("bindgen").is_some_and(|p| {
                output(Command::new(p).arg("--version"))
                    .is_ok_and(|v| v.split_whitespace().last() == Some(BINDGEN_VERSION))
            })
        },
    )
}

/// [`missing_tools`] with its probes passed in (the host tests report things missing).
pub fn missing_tools_with(
    package: impl Fn(&str) -> bool,
    file: impl Fn(&str) -> bool,
    bindgen_ok: impl Fn() -> bool,
) -> Vec<String> {
    let mut m: Vec<String> = PACKAGES
        .iter()
        .filter(|(p, _)| !package(p))
        .map(|(p, _)| format!("package {p}"))
        .collect();
    if !file(KERNEL_RUSTC) {
        m.push(KERNEL_RUSTC.to_string());
    }
    if !bindgen_ok() {
        m.push(format!("bindgen {BINDGEN_VERSION}"));
    }
    m
}

pub fn setup() -> Result<()> {
    step("checking Debian packages");
    let missing: Vec<&(&str, &str)> = PACKAGES.iter().filter(|(p, _)| !installed(p)).collect();
    if missing.is_empty() {
        println!("    all {} packages present", PACKAGES.len());
    } else {
        for (p, why) in &missing {
            println!("    missing {p}: {why}");
        }
        let names: Vec<&str> = missing.iter().map(|(p, _)| *p).collect();
        let cmd = format!(
            "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y {}",
            names.join(" ")
        );
        if !crate::util::is_root() {
            bail!("installing packages needs root; run:\n    sudo sh -c '{cmd}'\nthen run this command again");
        }
        step(format!("installing {} Debian packages", names.len()));
        run(Command::new("apt-get").arg("update").arg("-q"))?;
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&names))?;
    }

    step("checking the kernel's Rust compiler");
    let rustc_v = output(Command::new(KERNEL_RUSTC).arg("--version"))
        .with_context(|| format!("{KERNEL_RUSTC} does not run: is rustc-web installed?"))?;
    println!("    {KERNEL_RUSTC}: {rustc_v}");
    let sysroot = output(Command::new(KERNEL_RUSTC).args(["--print", "sysroot"]))?;
    let core_src = PathBuf::from(&sysroot).join("lib/rustlib/src/rust/library/core/src/lib.rs");
    if !core_src.exists() {
        bail!(
            "{} is missing: the kernel needs the standard library source of {KERNEL_RUSTC} \
             (Debian package rust-web-src)",
            core_src.display()
        );
    }
    let bg = bindgen()?;
    println!("    bindgen: {}", bg.display());
    // `make rustavailable` runs on the extracted tree; doing it here finds a broken toolchain
    // before a long build starts.
    let src = crate::kernel::extract_source()?;
    step("make rustavailable (the kernel's own toolchain check)");
    run(Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(&src)
        .arg(format!("RUSTC={KERNEL_RUSTC}"))
        .arg(format!("BINDGEN={}", bg.display()))
        .arg("rustavailable"))
    .context("the kernel rejects this Rust toolchain; the lines above say why")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_machine_misses_the_compiler_packages_and_bindgen() {
        let m = missing_tools_with(|_| false, |_| false, || false);
        assert!(m.contains(&"package rustc-web".to_string()));
        assert!(m.contains(&"package clang-14".to_string()));
        assert!(m.contains(&KERNEL_RUSTC.to_string()));
        assert!(m.contains(&format!("bindgen {BINDGEN_VERSION}")));
        assert!(missing_tools_with(|_| true, |_| true, || true).is_empty());
        // Packages present but the compiler gone (a removed rustc-web): still not ready.
        assert_eq!(
            missing_tools_with(|_| true, |_| false, || true),
            [KERNEL_RUSTC]
        );
    }
}
