// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask kernel`: the Rust-enabled test kernel, built out of tree in a cache directory.
//!
//! Layout under the cache root (see [`crate::util::cache_root`]):
//! - `src/linux-source-6.12_<debian version>/`: Debian's source, extracted once per version;
//! - `kernel/<kernel version>-<key>/`: one build directory (`O=`) per key, where the key hashes
//!   everything that changes the result: the Debian package version, the config fragment, the
//!   kernel's rustc and bindgen. A build that finished writes `.vfio-rs-complete`; a directory
//!   without it is resumed by `make`, which only redoes what is missing.

use crate::setup::{bindgen, KERNEL_RUSTC};
use crate::util::{cache_root, nproc, output, repo_root, run, run_logged, sha256_hex, step};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";
pub const FRAGMENT: &str = "tests/kernel/vfio-test.config";
const COMPLETE: &str = ".vfio-rs-complete";

fn package_version() -> Result<String> {
    let v = output(Command::new("dpkg-query").args(["-W", "-f=${Version}", "linux-source-6.12"]))
        .context("linux-source-6.12 is not installed: run `cargo xtask setup`")?;
    if v.is_empty() {
        bail!("linux-source-6.12 is not installed: run `cargo xtask setup`");
    }
    Ok(v)
}

/// Extracts Debian's kernel source into the cache (once per package version) and returns it.
pub fn extract_source() -> Result<PathBuf> {
    let ver = package_version()?;
    // Kbuild dislikes unusual characters in paths; Debian versions contain `~` and `+`.
    let safe: String = ver
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = cache_root()
        .join("src")
        .join(format!("linux-source-6.12_{safe}"));
    let stamp = dir.join(".vfio-rs-extracted");
    if stamp.exists() {
        return Ok(dir);
    }
    step(format!("extracting {TARBALL} ({ver}) to {}", dir.display()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    run(Command::new("tar")
        .arg("-xf")
        .arg(TARBALL)
        .arg("-C")
        .arg(&dir)
        .arg("--strip-components=1"))?;
    std::fs::write(&stamp, &ver)?;
    Ok(dir)
}

/// Everything a kernel build depends on, and the cache key made from it.
pub struct KernelKey {
    pub text: String,
    pub hash: String,
}

pub fn key() -> Result<KernelKey> {
    let frag =
        std::fs::read(repo_root().join(FRAGMENT)).with_context(|| format!("reading {FRAGMENT}"))?;
    let rustc = output(Command::new(KERNEL_RUSTC).arg("--version"))?;
    let bg = output(Command::new(bindgen()?).arg("--version"))?;
    let text = format!(
        "linux-source-6.12={}\nrustc={rustc}\nbindgen={bg}\nfragment-sha256={}\n",
        package_version()?,
        sha256_hex(&frag)
    );
    let hash = sha256_hex(text.as_bytes())[..16].to_string();
    Ok(KernelKey { text, hash })
}

/// The make invocation every kernel-side build uses: the kernel's rustc, our bindgen, x86_64.
pub fn make(src: &Path, build: &Path) -> Result<Command> {
    let mut c = Command::new("make");
    c.arg("-C")
        .arg(src)
        .arg(format!("O={}", build.display()))
        .arg("ARCH=x86_64")
        .arg(format!("RUSTC={KERNEL_RUSTC}"))
        .arg(format!("HOSTRUSTC={KERNEL_RUSTC}"))
        .arg(format!("BINDGEN={}", bindgen()?.display()));
    Ok(c)
}

/// The prepared kernel build directory for the current key, if it exists and finished.
pub fn cached_build() -> Result<Option<PathBuf>> {
    let k = key()?;
    let dir = build_dir(&k)?;
    Ok(dir.join(COMPLETE).exists().then_some(dir))
}

fn build_dir(k: &KernelKey) -> Result<PathBuf> {
    let ver = package_version()?;
    // "6.12.117-1~deb12u1" -> "6.12.117"
    let kver = ver.split('-').next().unwrap_or(&ver).to_string();
    Ok(cache_root()
        .join("kernel")
        .join(format!("{kver}-{}", k.hash)))
}

/// Symbols of the fragment with the value they must end up with (`n` for "is not set").
fn fragment_expectations(frag: &str) -> Vec<(String, String)> {
    frag.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("CONFIG_"))
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

fn check_config(build: &Path, frag: &str) -> Result<()> {
    let config = std::fs::read_to_string(build.join(".config"))?;
    let mut wrong = Vec::new();
    for (k, want) in fragment_expectations(frag) {
        let got = config
            .lines()
            .find_map(|l| {
                if let Some(v) = l.strip_prefix(&format!("{k}=")) {
                    Some(v.to_string())
                } else if l == format!("# {k} is not set") {
                    Some("n".to_string())
                } else {
                    None
                }
            })
            .unwrap_or_else(|| "n".to_string());
        if got != want {
            wrong.push(format!(
                "{k}: wanted {want}, got {got} (a dependency is missing)"
            ));
        }
    }
    if !wrong.is_empty() {
        bail!(
            "the config fragment did not apply:\n    {}",
            wrong.join("\n    ")
        );
    }
    Ok(())
}

/// Builds (or reuses) the test kernel and returns its build directory.
pub fn kernel(force: bool) -> Result<PathBuf> {
    let k = key()?;
    let build = build_dir(&k)?;
    if build.join(COMPLETE).exists() && !force {
        step(format!("test kernel is cached: {}", build.display()));
        return Ok(build);
    }
    let src = extract_source()?;
    std::fs::create_dir_all(&build)?;
    std::fs::write(build.join(".vfio-rs-key"), &k.text)?;
    let frag_path = repo_root().join(FRAGMENT);
    let frag = std::fs::read_to_string(&frag_path)?;

    step(format!(
        "configuring the test kernel: allnoconfig + {FRAGMENT}"
    ));
    println!(
        "    cache key {} from:\n      {}",
        k.hash,
        k.text.trim_end().replace('\n', "\n      ")
    );
    run(make(&src, &build)?
        .arg("-s")
        .arg(format!("KCONFIG_ALLCONFIG={}", frag_path.display()))
        .arg("allnoconfig"))?;
    check_config(&build, &frag)?;

    let jobs = nproc();
    step(format!(
        "building bzImage and modules with -j{jobs} (about 4 minutes on 2 cores)"
    ));
    let log = build.join("build.log");
    run_logged(
        make(&src, &build)?
            .arg(format!("-j{jobs}"))
            .arg("bzImage")
            .arg("modules"),
        &log,
        "kernel",
        Duration::from_secs(20),
        |l| {
            let t = l.trim_start();
            ["CC ", "RUSTC ", "AS ", "LD ", "AR ", "BINDGEN ", "HOSTCC "]
                .iter()
                .any(|p| t.starts_with(p))
        },
    )?;
    let bz = build.join("arch/x86/boot/bzImage");
    if !bz.exists() {
        bail!("the kernel build finished but {} is missing", bz.display());
    }
    if !build
        .join("rust/bindings/.bindings_generated.rs.cmd")
        .exists()
    {
        bail!("the kernel has no Rust bindings command file: is CONFIG_RUST set?");
    }
    std::fs::write(build.join(COMPLETE), &k.text)?;
    step(format!("test kernel ready: {}", build.display()));
    Ok(build)
}
