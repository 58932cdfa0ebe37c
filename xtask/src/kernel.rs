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
/// Applied after [`FRAGMENT`] for the debug kernel (KASAN, lockdep, kmemleak, ...).
pub const DEBUG_FRAGMENT: &str = "tests/kernel/vfio-debug.config";
const COMPLETE: &str = ".vfio-rs-complete";
/// The LLVM suffix the debug kernel is built with (`LLVM=-14`: clang-14, ld.lld-14, ...).
pub const DEBUG_LLVM: &str = "-14";

/// Which guest kernel: the small test kernel, or the same plus the debug options.
///
/// On 6.12 `CONFIG_RUST` depends on `!KASAN || CC_IS_CLANG`, so the debug kernel is built with
/// LLVM (Debian's clang-14), and modules built against it must use the same compiler: see
/// [`llvm_of`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Profile {
    Test,
    Debug,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Test => "test",
            Profile::Debug => "debug",
        }
    }

    /// The config fragments, applied in order.
    pub fn fragments(self) -> &'static [&'static str] {
        match self {
            Profile::Test => &[FRAGMENT],
            Profile::Debug => &[FRAGMENT, DEBUG_FRAGMENT],
        }
    }

    fn llvm(self) -> Option<&'static str> {
        match self {
            Profile::Test => None,
            Profile::Debug => Some(DEBUG_LLVM),
        }
    }
}

/// The `LLVM=` value modules built against `kdir` need: none for a gcc-built kernel;
/// `-N` when the kernel was built with clang N and `clang-N` is installed, else `1`.
pub fn llvm_of(kdir: &Path) -> Option<String> {
    let config = std::fs::read_to_string(kdir.join(".config")).ok()?;
    if !config.lines().any(|l| l == "CONFIG_CC_IS_CLANG=y") {
        return None;
    }
    let major = config
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_CLANG_VERSION="))
        .and_then(|v| v.parse::<u32>().ok())
        .map(|v| v / 10000);
    match major {
        Some(m) if crate::util::which(&format!("clang-{m}")).is_some() => Some(format!("-{m}")),
        _ => Some("1".into()),
    }
}

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

pub fn key(profile: Profile) -> Result<KernelKey> {
    let frag =
        std::fs::read(repo_root().join(FRAGMENT)).with_context(|| format!("reading {FRAGMENT}"))?;
    let rustc = output(Command::new(KERNEL_RUSTC).arg("--version"))?;
    let bg = output(Command::new(bindgen()?).arg("--version"))?;
    let mut text = format!(
        "linux-source-6.12={}\nrustc={rustc}\nbindgen={bg}\nfragment-sha256={}\n",
        package_version()?,
        sha256_hex(&frag)
    );
    // The test kernel's key is the one it always had, so its cache stays valid.
    if profile == Profile::Debug {
        let dbg = std::fs::read(repo_root().join(DEBUG_FRAGMENT))
            .with_context(|| format!("reading {DEBUG_FRAGMENT}"))?;
        let clang = output(Command::new(format!("clang{DEBUG_LLVM}")).arg("--version"))
            .context("clang-14 does not run: run `cargo xtask setup`")?;
        let clang = clang.lines().next().unwrap_or_default().to_string();
        text.push_str(&format!(
            "profile=debug\ndebug-fragment-sha256={}\nclang={clang}\n",
            sha256_hex(&dbg)
        ));
    }
    let hash = sha256_hex(text.as_bytes())[..16].to_string();
    Ok(KernelKey { text, hash })
}

/// The make invocation every kernel-side build uses: the kernel's rustc, our bindgen, x86_64.
pub fn make(src: &Path, build: &Path, profile: Profile) -> Result<Command> {
    let mut c = Command::new("make");
    c.arg("-C")
        .arg(src)
        .arg(format!("O={}", build.display()))
        .arg("ARCH=x86_64")
        .arg(format!("RUSTC={KERNEL_RUSTC}"))
        .arg(format!("HOSTRUSTC={KERNEL_RUSTC}"))
        .arg(format!("BINDGEN={}", bindgen()?.display()));
    if let Some(l) = profile.llvm() {
        c.arg(format!("LLVM={l}"));
    }
    Ok(c)
}

/// The prepared kernel build directory for the current key, if it exists and finished.
pub fn cached_build(profile: Profile) -> Result<Option<PathBuf>> {
    let k = key(profile)?;
    let dir = build_dir(&k, profile)?;
    Ok(dir.join(COMPLETE).exists().then_some(dir))
}

fn build_dir(k: &KernelKey, profile: Profile) -> Result<PathBuf> {
    let ver = package_version()?;
    // "6.12.117-1~deb12u1" -> "6.12.117"
    let kver = ver.split('-').next().unwrap_or(&ver).to_string();
    let name = match profile {
        Profile::Test => format!("{kver}-{}", k.hash),
        Profile::Debug => format!("{kver}-debug-{}", k.hash),
    };
    Ok(cache_root().join("kernel").join(name))
}

/// Symbols of the fragment with the value they must end up with (`n` for "is not set"); where
/// a symbol is set twice (a later fragment overriding an earlier one), the last value counts.
fn fragment_expectations(frag: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in frag
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("CONFIG_"))
        .filter_map(|l| l.split_once('='))
    {
        out.retain(|(seen, _)| seen != k);
        out.push((k.to_string(), v.to_string()));
    }
    out
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
pub fn kernel(profile: Profile, force: bool) -> Result<PathBuf> {
    let what = profile.name();
    let k = key(profile)?;
    let build = build_dir(&k, profile)?;
    if build.join(COMPLETE).exists() && !force {
        step(format!("{what} kernel is cached: {}", build.display()));
        return Ok(build);
    }
    let src = extract_source()?;
    std::fs::create_dir_all(&build)?;
    std::fs::write(build.join(".vfio-rs-key"), &k.text)?;
    // One KCONFIG_ALLCONFIG file: the fragments in order (a later line wins).
    let mut frag = String::new();
    for f in profile.fragments() {
        frag.push_str(
            &std::fs::read_to_string(repo_root().join(f))
                .with_context(|| format!("reading {f}"))?,
        );
        frag.push('\n');
    }
    let frag_path = build.join(".vfio-rs-fragment");
    std::fs::write(&frag_path, &frag)?;

    step(format!(
        "configuring the {what} kernel: allnoconfig + {}",
        profile.fragments().join(" + ")
    ));
    println!(
        "    cache key {} from:\n      {}",
        k.hash,
        k.text.trim_end().replace('\n', "\n      ")
    );
    run(make(&src, &build, profile)?
        .arg("-s")
        .arg(format!("KCONFIG_ALLCONFIG={}", frag_path.display()))
        .arg("allnoconfig"))?;
    check_config(&build, &frag)?;

    let jobs = nproc();
    step(format!(
        "building the {what} kernel's bzImage and modules with -j{jobs} ({} on 2 cores)",
        match profile {
            Profile::Test => "about 4 minutes",
            Profile::Debug => "about 10 minutes: clang, KASAN and lockdep",
        }
    ));
    let log = build.join("build.log");
    run_logged(
        make(&src, &build, profile)?
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
    step(format!("{what} kernel ready: {}", build.display()));
    Ok(build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_fragment_overrides_an_earlier_one() {
        let frag = "CONFIG_A=y\n# comment\nCONFIG_B=n\nCONFIG_A=n\n  CONFIG_C=\"x\"\n";
        assert_eq!(
            fragment_expectations(frag),
            [
                ("CONFIG_B".to_string(), "n".to_string()),
                ("CONFIG_A".to_string(), "n".to_string()),
                ("CONFIG_C".to_string(), "\"x\"".to_string()),
            ]
        );
    }

    #[test]
    fn the_debug_kernel_adds_its_fragment_after_the_test_one() {
        assert_eq!(Profile::Test.fragments(), [FRAGMENT]);
        assert_eq!(Profile::Debug.fragments(), [FRAGMENT, DEBUG_FRAGMENT]);
        // Every debug option the issue asks for is in the fragment.
        let dbg = std::fs::read_to_string(repo_root().join(DEBUG_FRAGMENT)).unwrap();
        for o in [
            "CONFIG_KASAN=y",
            "CONFIG_KASAN_GENERIC=y",
            "CONFIG_PROVE_LOCKING=y",
            "CONFIG_DEBUG_ATOMIC_SLEEP=y",
            "CONFIG_DEBUG_LIST=y",
            "CONFIG_UBSAN_BOUNDS=y",
            "CONFIG_DEBUG_KMEMLEAK=y",
            "CONFIG_SLUB_DEBUG=y",
            "CONFIG_DETECT_HUNG_TASK=y",
            "CONFIG_SOFTLOCKUP_DETECTOR=y",
            "CONFIG_RUST_DEBUG_ASSERTIONS=y",
            "CONFIG_RUST_OVERFLOW_CHECKS=y",
        ] {
            assert!(
                dbg.lines().any(|l| l == o),
                "{o} missing from {DEBUG_FRAGMENT}"
            );
        }
    }
}
