// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask match`, `bind`, `unbind` and `new-variant`: thin front ends over the `pcibind`
//! library (selection, binding) and `variant.rs` (the template copy). The guest tests call the
//! same library functions.

use crate::util::{repo_root, step};
use anyhow::{bail, Context, Result};
use pcibind::binder::{self, ModuleLoader};
use pcibind::select::{Catalog, Selection};
use pcibind::{Bdf, Sysfs};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The installed kernel's `modules.alias`, if there is one.
fn installed_modules_alias() -> Option<PathBuf> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let p = PathBuf::from(format!("/lib/modules/{}/modules.alias", release.trim()));
    p.exists().then_some(p)
}

/// Our built modules (those that exist; or only `only`, when given), then `modules_alias` (or
/// the installed one unless `no_installed`).
pub fn catalog(
    modules_alias: Option<&Path>,
    no_installed: bool,
    only: &[PathBuf],
) -> Result<Catalog> {
    let mut c = Catalog::new();
    let mut built = 0;
    let kos = if only.is_empty() {
        crate::modules::module_paths()?
    } else {
        only.to_vec()
    };
    for ko in kos {
        if ko.exists() || !only.is_empty() {
            c.add_ko(&ko)
                .with_context(|| format!("reading {}", ko.display()))?;
            built += 1;
        }
    }
    if built == 0 {
        println!("note: no built modules of ours (run `cargo xtask build-modules`)");
    }
    let alias = match modules_alias {
        Some(p) => Some(p.to_path_buf()),
        None if no_installed => None,
        None => installed_modules_alias(),
    };
    if let Some(p) = alias {
        let n = c.add_modules_alias_file(&p)?;
        println!("note: {n} vfio_pci: aliases from {}", p.display());
    }
    Ok(c)
}

/// A BDF (read its modalias from sysfs) or a modalias string.
fn modalias_of(arg: &str) -> Result<String> {
    if arg.contains("pci:") {
        return Ok(arg.to_string());
    }
    let bdf = Bdf::parse(arg).map_err(|_| {
        anyhow::anyhow!("`{arg}` is neither a PCI address (dddd:bb:dd.f) nor a modalias (pci:v...)")
    })?;
    Ok(Sysfs::system().modalias(&bdf)?)
}

/// `cargo xtask match`: prints the selection; returns the exit status ([`Outcome::exit_status`]).
///
/// [`Outcome::exit_status`]: pcibind::select::Outcome::exit_status
pub fn match_cmd(
    arg: &str,
    modules_alias: Option<&Path>,
    no_installed: bool,
    only: &[PathBuf],
) -> Result<i32> {
    let modalias = modalias_of(arg)?;
    let c = catalog(modules_alias, no_installed, only)?;
    let sel: Selection = c.select(&modalias)?;
    println!("{sel}");
    Ok(sel.outcome.exit_status())
}

/// Loads modules on this machine: our files with `insmod`, others with `modprobe`.
struct HostLoader;

fn run_quiet(cmd: &mut Command) -> Result<(), String> {
    println!("    $ {}", crate::util::show(cmd));
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", crate::util::show(cmd)))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

impl ModuleLoader for HostLoader {
    fn insmod(&self, ko: &Path) -> Result<(), String> {
        run_quiet(Command::new("insmod").arg(ko))
    }
    fn modprobe(&self, module: &str) -> Result<(), String> {
        run_quiet(Command::new("modprobe").arg(module))
    }
}

/// `cargo xtask bind BDF [DRIVER]`.
pub fn bind_cmd(bdf: &str, driver: Option<&str>, modules_alias: Option<&Path>) -> Result<()> {
    let bdf = Bdf::parse(bdf)?;
    let c = catalog(modules_alias, false, &[])?;
    let sys = Sysfs::system();
    step(format!(
        "binding {bdf} to {}",
        driver.unwrap_or("the driver `match` selects")
    ));
    match binder::bind(&sys, &c, &HostLoader, &bdf, driver) {
        Ok(b) => {
            if let Some(sel) = &b.selection {
                println!("{sel}");
            }
            println!("{b}");
            Ok(())
        }
        Err(e) => {
            if let binder::BindError::Sysfs(pcibind::Error::Refused { .. }) = &e {
                println!("    (the driver's probe refused the device; `dmesg | tail` says why)");
            }
            Err(e.into())
        }
    }
}

/// `cargo xtask unbind BDF`: detach and clear the override; the device stays driverless.
pub fn unbind_cmd(bdf: &str) -> Result<()> {
    let bdf = Bdf::parse(bdf)?;
    let sys = Sysfs::system();
    let prev = sys.unbind(&bdf)?;
    println!(
        "{bdf} unbound from {} and driver_override cleared; `echo {bdf} > /sys/bus/pci/drivers_probe` \
         gives it back to its native driver",
        prev.as_deref().unwrap_or("no driver")
    );
    Ok(())
}

/// `cargo xtask new-variant`.
pub fn new_variant_cmd(
    spec: &crate::variant::Spec,
    root: Option<PathBuf>,
    kdir: Option<PathBuf>,
    build: bool,
) -> Result<()> {
    let root = root.unwrap_or_else(repo_root);
    step(format!(
        "creating variants/{} from {} in {}",
        spec.name,
        crate::variant::TEMPLATE_DIR,
        root.display()
    ));
    let c = crate::variant::create(&root, spec)?;
    println!("    {} (in {})", c.source.display(), c.dir.display());
    println!(
        "    module {}, driver {}, alias {}",
        spec.module(),
        spec.driver(),
        spec.alias()
    );
    println!("    added `obj-m += variants/{}/` to Kbuild", spec.name);
    if build {
        let kos = crate::modules::build_modules(kdir, crate::kernel::Profile::Test)?;
        if !kos.contains(&c.ko) {
            bail!("the build did not list {}", c.ko.display());
        }
    }
    println!(
        "next: `cargo xtask match <BDF>` should select {}, `cargo xtask bind <BDF> {}` binds it",
        spec.module(),
        spec.driver()
    );
    Ok(())
}

/// `cargo xtask new-variant NAME ... --standalone DIR`.
pub fn new_standalone_cmd(spec: &crate::variant::Spec, dir: &Path) -> Result<()> {
    step(format!(
        "creating the standalone variant {} in {}",
        spec.module(),
        dir.display()
    ));
    let ko = crate::sdk::create_standalone(&repo_root(), spec, dir)?;
    println!(
        "    module {}, driver {}, alias {}",
        spec.module(),
        spec.driver(),
        spec.alias()
    );
    println!(
        "next: `make -C {}` builds {} against the SDK `cargo xtask install` installed for the \
         running kernel ({}=DIR for another SDK, KDIR=DIR for another kernel)",
        dir.display(),
        ko.display(),
        crate::sdk::SDK_VAR
    );
    Ok(())
}
