// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask`: every build and test step of the project, each printed before it runs.

mod kernel;
mod modules;
mod setup;
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
    /// Print the cached test kernel's build directory (empty and failing if not built yet).
    Kdir,
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
