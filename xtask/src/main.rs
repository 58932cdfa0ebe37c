// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask`: every build and test step of the project, each printed before it runs.

mod guest;
mod kernel;
mod modules;
mod setup;
mod testrun;
mod util;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build and test the Rust VFIO PCI variant framework")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
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
    },
    /// Build every module in one Kbuild invocation (runs setup and kernel first when needed).
    BuildModules {
        /// A prepared Rust-enabled kernel build directory to build against instead of ours.
        #[arg(long, env = "KDIR")]
        kdir: Option<PathBuf>,
    },
    /// Generate only the extra bindings for KDIR (used by the top-level Makefile).
    Bindings {
        #[arg(long, env = "KDIR")]
        kdir: Option<PathBuf>,
    },
    /// Run every test: host crates, then the QEMU guest suite (intel-iommu and noiommu modes).
    Test {
        #[arg(long, env = "KDIR")]
        kdir: Option<PathBuf>,
        /// Run only this guest mode.
        #[arg(long, value_parser = ["iommu", "noiommu"])]
        mode: Option<String>,
        /// Skip the host tests (`cargo test`).
        #[arg(long)]
        no_host: bool,
    },
    /// Boot the test guest with an interactive shell on the console (for debugging).
    Qemu {
        #[arg(long, env = "KDIR")]
        kdir: Option<PathBuf>,
        #[arg(long, value_parser = ["iommu", "noiommu"], default_value = "iommu")]
        mode: String,
    },
    /// Print the cached test kernel's build directory (empty and failing if not built yet).
    Kdir,
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
        Cmd::Kernel { force } => setup::setup().and_then(|_| kernel::kernel(force)).map(|_| ()),
        Cmd::BuildModules { kdir } => modules::build_modules(kdir).map(|_| ()),
        Cmd::Bindings { kdir } => modules::resolve_kdir(kdir)
            .and_then(|k| modules::generate_bindings(&k))
            .map(|_| ()),
        Cmd::Test { kdir, mode, no_host } => {
            let modes: Vec<guest::Mode> = match mode.as_deref() {
                Some(m) => vec![parse_mode(m)],
                None => vec![guest::Mode::Iommu, guest::Mode::NoIommu],
            };
            match testrun::test(kdir, &modes, !no_host) {
                Ok(true) => Ok(()),
                Ok(false) => std::process::exit(1),
                Err(e) => Err(e),
            }
        }
        Cmd::Qemu { kdir, mode } => modules::build_modules(kdir.clone()).and_then(|kos| {
            let k = modules::resolve_kdir(kdir)?;
            guest::qemu_shell(&k, &kos, parse_mode(&mode))
        }),
        Cmd::Kdir => kernel::cached_build().and_then(|k| match k {
            Some(k) => {
                println!("{}", k.display());
                Ok(())
            }
            None => Err(anyhow::anyhow!("the test kernel is not built yet: run `cargo xtask kernel`")),
        }),
    };
    if let Err(e) = r {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
