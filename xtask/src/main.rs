// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask`: every build and test step of the project, each printed before it runs.

mod bench;
mod bindcmd;
mod demangle;
mod fuzz;
mod guest;
mod install;
mod installcheck;
mod kernel;
mod modules;
mod qmp;
mod sdk;
mod setup;
mod srccheck;
mod testrun;
mod util;
mod variant;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use kernel::Profile;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build and test the Rust VFIO PCI variant framework"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// `--kernel`: which cached guest kernel.
#[derive(Clone, Copy, ValueEnum)]
enum KernelArg {
    /// The small test kernel (gcc).
    Test,
    /// The test kernel plus KASAN, lockdep, UBSAN, kmemleak and hang detection (clang).
    Debug,
}

impl From<KernelArg> for Profile {
    fn from(k: KernelArg) -> Profile {
        match k {
            KernelArg::Test => Profile::Test,
            KernelArg::Debug => Profile::Debug,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the Debian packages and bindgen the build needs; check the Rust toolchain.
    Setup,
    /// Build (or reuse from the cache) the Rust-enabled 6.12 test kernel.
    Kernel {
        /// Rebuild even when the cache has a finished build for the current key.
        #[arg(long)]
        force: bool,
        #[arg(long, value_enum, default_value = "test")]
        kernel: KernelArg,
    },
    /// Build every module in one Kbuild invocation (runs setup and kernel first when needed).
    BuildModules {
        /// A prepared Rust-enabled kernel build directory to build against instead of ours.
        #[arg(long, env = "KDIR")]
        kdir: Option<PathBuf>,
        /// Which cached kernel to build against (when no KDIR is given).
        #[arg(long, value_enum, default_value = "test")]
        kernel: KernelArg,
    },
    /// Install the modules we ship (common and variants, not samples or test modules) into
    /// lib/modules/<release>/updates/ with the kernel's modules_install, signing them as the
    /// kernel's configuration asks, then depmod; records them in updates/vfio-pci-rs.manifest.
    /// Needs the modules built (`cargo xtask build-modules`) for that kernel.
    Install {
        /// The kernel build directory the modules were built against (default: the cached
        /// test kernel).
        #[arg(long, env = "KDIR")]
        kdir: Option<PathBuf>,
        /// Install under this root instead of / (like the kernel's INSTALL_MOD_PATH).
        #[arg(long)]
        destdir: Option<PathBuf>,
        /// The tree the modules were built in (the test suite uses the debug kernel's mirror).
        #[arg(long, hide = true)]
        root: Option<PathBuf>,
    },
    /// Remove exactly what `install` installed (the files its manifest lists, and the
    /// manifest), then depmod.
    Uninstall {
        #[arg(long, env = "KDIR")]
        kdir: Option<PathBuf>,
        #[arg(long)]
        destdir: Option<PathBuf>,
    },
    /// Generate only the extra bindings for KDIR (used by the top-level Makefile).
    Bindings {
        #[arg(long, env = "KDIR")]
        kdir: Option<PathBuf>,
    },
    /// Run every test: host crates, then the QEMU guest suite (intel-iommu and noiommu modes)
    /// on the test kernel, then the robustness suite (regressions, concurrent fuzzing,
    /// faults, storms) on the debug kernel.
    Test {
        #[arg(long, env = "KDIR")]
        kdir: Option<PathBuf>,
        /// Run the whole guest suite on this kernel only (`debug`: every check on the KASAN +
        /// lockdep kernel).
        #[arg(long, value_enum)]
        kernel: Option<KernelArg>,
        /// Run only this guest mode.
        #[arg(long, value_parser = ["iommu", "noiommu"])]
        mode: Option<String>,
        /// Skip the host checks (source checks, `cargo test`, fuzzing).
        #[arg(long)]
        no_host: bool,
        /// Build and run every host check (including the command-line, install and DKMS
        /// checks), but boot no guest.
        #[arg(long, conflicts_with = "no_host")]
        no_guest: bool,
    },
    /// Benchmark our driver against upstream C vfio-pci (and a C-against-C control) in one
    /// boot of the test kernel: every hot path, MSI-X and device-count scaling, kernel memory
    /// and module size; writes target/bench/{bench.txt,bench.md,bench.json,ratios.svg}.
    Bench {
        #[arg(long, env = "KDIR")]
        kdir: Option<PathBuf>,
        /// Rounds per driver (the order is reversed every other round).
        #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(u16).range(1..=99))]
        rounds: u16,
        /// Devices to measure, comma-separated labels of the test machine (default: edu, nvme,
        /// e1000e, pci-testdev).
        #[arg(long, value_delimiter = ',')]
        devices: Vec<String>,
        #[arg(long, value_parser = ["iommu", "noiommu"], default_value = "iommu")]
        mode: String,
        /// Most calls per batched measurement and round.
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(8..))]
        max_ops: u32,
        /// Output directory (default: target/bench).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Instead of the benchmark: profile the guest kernel while this operation (a name of
        /// the table: open, close, config-write-command, irq-intx, ...) runs in a loop, under
        /// upstream vfio-pci and under ours; writes target/bench/profile-<device>-<op>.txt
        /// (devices default to edu).
        #[arg(long, value_name = "OP")]
        profile: Option<String>,
        /// Seconds of the profiled loop per driver (the test kernel samples on the 4 ms tick).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=600))]
        profile_seconds: u16,
    },
    /// Print the import graph of the common module's files (the `crate::` paths of every file
    /// under common/ except logic/, sdk/ and bindings/), grouped per file, with its layers;
    /// fails on an import cycle (the `layers-no-import-cycle` check of `test`).
    Layers {
        /// Another tree than this repository (its `common/` is read).
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// Format the Rust files Kbuild builds (common/ but logic/ and bindings/generated/,
    /// variants/, samples/, tests/variants/, tests/fixtures/), which `cargo fmt` does not
    /// reach: rustfmt --edition 2021, each file on its own.
    Fmt {
        /// Only list the files that are not formatted (the `rustfmt-kbuild-files` check of
        /// `test`); exit non-zero if there are any.
        #[arg(long)]
        check: bool,
    },
    /// Boot the test guest with an interactive shell on the console (for debugging).
    Qemu {
        #[arg(long, env = "KDIR")]
        kdir: Option<PathBuf>,
        #[arg(long, value_parser = ["iommu", "noiommu"], default_value = "iommu")]
        mode: String,
        #[arg(long, value_enum, default_value = "test")]
        kernel: KernelArg,
    },
    /// Print the cached kernel's build directory (empty and failing if not built yet).
    Kdir {
        #[arg(long, value_enum, default_value = "test")]
        kernel: KernelArg,
    },
    /// Select the VFIO driver for a device: its modalias against the vfio_pci: aliases of our
    /// built modules and of modules.alias. Exit status: 0 one specific variant, 3 only the
    /// generic (match-any) drivers, 4 a tie, 5 no match, 1 error.
    Match {
        /// A PCI address (its modalias is read from sysfs) or a modalias string (pci:v...).
        device: String,
        /// A modules.alias file (default: /lib/modules/$(uname -r)/modules.alias, if present).
        #[arg(long)]
        modules_alias: Option<PathBuf>,
        /// Only our built modules.
        #[arg(long, conflicts_with = "modules_alias")]
        no_installed: bool,
        /// Consider these module files instead of every module of our build (repeatable).
        #[arg(long = "module", value_name = "KO")]
        modules: Vec<PathBuf>,
    },
    /// Bind a device to DRIVER (default: what `match` selects) by driver_override, loading the
    /// module if needed; a refused bind restores the previous driver and override.
    Bind {
        bdf: String,
        /// A driver or module name (vfio-pci-generic, vfio_pci_skeleton, vfio-pci, ...).
        driver: Option<String>,
        #[arg(long)]
        modules_alias: Option<PathBuf>,
    },
    /// Unbind a device and clear its driver_override (it stays without a driver).
    Unbind { bdf: String },
    /// Create variants/NAME from samples/skeleton, add it to Kbuild, and build it.
    NewVariant {
        /// Lower-case identifier: module vfio_pci_NAME, driver vfio-pci-NAME.
        name: String,
        /// Vendor ID, hex (e.g. 1234).
        #[arg(long)]
        vendor: String,
        /// Device ID, hex (e.g. 11e8).
        #[arg(long)]
        device: String,
        /// Subsystem vendor:device, hex.
        #[arg(long)]
        subsystem: Option<String>,
        /// Class code and mask, hex, e.g. 030000/ff0000 (each mask byte 00 or ff).
        #[arg(long)]
        class: Option<String>,
        /// Only create the files.
        #[arg(long)]
        no_build: bool,
        /// A vendor's own tree in DIR instead of variants/NAME/: Kbuild, Makefile and the
        /// variant file, built with a plain `make` against the SDK `cargo xtask install`
        /// installed (VFIO_PCI_RS_SDK; KDIR defaults to the running kernel's build directory).
        #[arg(long, value_name = "DIR", conflicts_with_all = ["root", "kdir"])]
        standalone: Option<PathBuf>,
        #[arg(long, env = "KDIR")]
        kdir: Option<PathBuf>,
        /// Another tree than this repository (the test suite uses a scratch copy).
        #[arg(long, hide = true, requires = "no_build")]
        root: Option<PathBuf>,
    },
}

fn new_variant_spec(
    name: &str,
    vendor: &str,
    device: &str,
    subsystem: Option<&str>,
    class: Option<&str>,
) -> Result<variant::Spec, variant::Error> {
    variant::validate_name(name)?;
    Ok(variant::Spec {
        name: name.to_string(),
        vendor: variant::parse_id16("vendor", vendor)?,
        device: variant::parse_id16("device", device)?,
        subsystem: subsystem.map(variant::parse_subsystem).transpose()?,
        class: class.map(variant::parse_class).transpose()?,
    })
}

fn parse_mode(m: &str) -> guest::Mode {
    if m == "noiommu" {
        guest::Mode::NoIommu
    } else {
        guest::Mode::Iommu
    }
}

fn main() {
    let cli = Cli::parse();
    let r: Result<()> = match cli.cmd {
        Cmd::Setup => setup::setup(),
        Cmd::Kernel { force, kernel } => setup::setup()
            .and_then(|_| kernel::kernel(kernel.into(), force))
            .map(|_| ()),
        Cmd::BuildModules { kdir, kernel } => {
            modules::build_modules(kdir, kernel.into()).map(|_| ())
        }
        Cmd::Install {
            kdir,
            destdir,
            root,
        } => install::install(kdir, destdir, &root.unwrap_or_else(util::repo_root)),
        Cmd::Uninstall { kdir, destdir } => install::uninstall(kdir, destdir),
        Cmd::Bindings { kdir } => modules::resolve_kdir(kdir, Profile::Test)
            .and_then(|k| modules::generate_bindings(&k))
            .map(|_| ()),
        Cmd::Test {
            kdir,
            kernel,
            mode,
            no_host,
            no_guest,
        } => {
            let modes: Vec<guest::Mode> = match mode.as_deref() {
                Some(m) => vec![parse_mode(m)],
                None => vec![guest::Mode::Iommu, guest::Mode::NoIommu],
            };
            match testrun::test(kdir, kernel.map(Profile::from), &modes, !no_host, !no_guest) {
                Ok(true) => Ok(()),
                Ok(false) => std::process::exit(1),
                Err(e) => Err(e),
            }
        }
        Cmd::Bench {
            kdir,
            rounds,
            devices,
            mode,
            max_ops,
            out,
            profile,
            profile_seconds,
        } => match match profile {
            Some(op) => {
                bench::profile_cmd(kdir, &op, profile_seconds, &devices, parse_mode(&mode), out)
            }
            None => bench::bench_cmd(kdir, rounds, &devices, parse_mode(&mode), max_ops, out),
        } {
            Ok(true) => Ok(()),
            Ok(false) => std::process::exit(1),
            Err(e) => Err(e),
        },
        Cmd::Layers { root } => srccheck::layers_cmd(&root.unwrap_or_else(util::repo_root)),
        Cmd::Fmt { check } => srccheck::fmt_cmd(&util::repo_root(), check),
        Cmd::Qemu { kdir, mode, kernel } => {
            let profile = Profile::from(kernel);
            modules::build_modules(kdir.clone(), profile).and_then(|kos| {
                let k = modules::resolve_kdir(kdir, profile)?;
                guest::qemu_shell(&k, &kos, parse_mode(&mode), profile)
            })
        }
        Cmd::Kdir { kernel } => kernel::cached_build(kernel.into()).and_then(|k| match k {
            Some(k) => {
                println!("{}", k.display());
                Ok(())
            }
            None => Err(anyhow::anyhow!(
                "the test kernel is not built yet: run `cargo xtask kernel`"
            )),
        }),
        Cmd::Match {
            device,
            modules_alias,
            no_installed,
            modules,
        } => match bindcmd::match_cmd(&device, modules_alias.as_deref(), no_installed, &modules) {
            Ok(0) => Ok(()),
            Ok(code) => std::process::exit(code),
            Err(e) => Err(e),
        },
        Cmd::Bind {
            bdf,
            driver,
            modules_alias,
        } => bindcmd::bind_cmd(&bdf, driver.as_deref(), modules_alias.as_deref()),
        Cmd::Unbind { bdf } => bindcmd::unbind_cmd(&bdf),
        Cmd::NewVariant {
            name,
            vendor,
            device,
            subsystem,
            class,
            no_build,
            standalone,
            kdir,
            root,
        } => new_variant_spec(
            &name,
            &vendor,
            &device,
            subsystem.as_deref(),
            class.as_deref(),
        )
        .map_err(anyhow::Error::from)
        .and_then(|spec| match standalone {
            Some(dir) => bindcmd::new_standalone_cmd(&spec, &dir),
            None => bindcmd::new_variant_cmd(&spec, root, kdir, !no_build),
        }),
    };
    if let Err(e) = r {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
