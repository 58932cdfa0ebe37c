// SPDX-License-Identifier: GPL-2.0
//! The whole of `bind`: choose the driver (by name, or by [`Catalog::select`]), load its module
//! when needed, then [`Sysfs::bind`] (override, unbind, probe, verify, roll back on refusal).
//!
//! `cargo xtask bind` and the guest tests both call [`bind`]; they differ only in how a module
//! is loaded ([`ModuleLoader`]: `insmod`/`modprobe` on a host, `finit_module` in the guest).

use crate::select::{Candidate, Catalog, Outcome, SelectError, Selection};
use crate::{Backend, Bdf, Error, Sysfs};
use std::fmt;
use std::path::Path;

/// How modules get loaded.
pub trait ModuleLoader {
    /// Loads one module file (its dependencies are already loaded).
    fn insmod(&self, ko: &Path) -> Result<(), String>;
    /// Loads an installed module by name, with its dependencies (`modprobe NAME`).
    fn modprobe(&self, module: &str) -> Result<(), String>;
}

/// What can go wrong in [`bind`] and [`load_module`].
#[derive(Debug)]
pub enum BindError {
    /// From sysfs: wrong BDF, no such device, refused (state restored), in use, EBUSY, I/O.
    Sysfs(Error),
    /// The device's modalias could not be matched.
    Select(SelectError),
    /// No driver named and no `vfio_pci:` alias matches the device.
    NoCandidate { bdf: Bdf, device_alias: String },
    /// No driver named and several equally specific modules match: name one.
    Ambiguous {
        bdf: Bdf,
        device_alias: String,
        candidates: Vec<Candidate>,
    },
    /// The module is neither loaded, nor one of the given module files, nor loadable by name.
    MissingModule { module: String, why: String },
    /// The module loaded but registered no PCI driver (or not the one named).
    NoDriver {
        module: String,
        wanted: Option<String>,
        registered: Vec<String>,
    },
}

impl From<Error> for BindError {
    fn from(e: Error) -> Self {
        BindError::Sysfs(e)
    }
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::Sysfs(e) => write!(f, "{e}"),
            BindError::Select(e) => write!(f, "{e}"),
            BindError::NoCandidate { bdf, device_alias } => write!(
                f,
                "{bdf}: no module has a vfio_pci: alias matching {device_alias}; name a driver \
                 (e.g. vfio-pci-generic)"
            ),
            BindError::Ambiguous {
                bdf,
                device_alias,
                candidates,
            } => {
                write!(
                f,
                "{bdf}: {} match {device_alias} equally well ({} wildcards); not guessing, name \
                 the driver",
                candidates.iter().map(|c| c.module.as_str()).collect::<Vec<_>>().join(", "),
                candidates.first().map(|c| c.wildcards).unwrap_or(0)
            )
            }
            BindError::MissingModule { module, why } => {
                write!(
                    f,
                    "module {module} is not loaded and cannot be loaded: {why}"
                )
            }
            BindError::NoDriver {
                module,
                wanted: Some(w),
                registered,
            } => {
                write!(
                f,
                "module {module} is loaded but registers no PCI driver `{w}` (it registers: {})",
                if registered.is_empty() { "none".to_string() } else { registered.join(", ") }
            )
            }
            BindError::NoDriver {
                module,
                wanted: None,
                registered,
            } => write!(
                f,
                "module {module} registers {} PCI drivers ({}); name the driver",
                registered.len(),
                registered.join(", ")
            ),
        }
    }
}

/// The wrapped errors' text is part of ours, so nothing is chained as a source.
impl std::error::Error for BindError {}

/// How the driver was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// The caller named it.
    Named,
    /// [`Catalog::select`] found one most specific module.
    Specific(Candidate),
    /// Only match-any modules matched, and exactly one of them was usable: this one.
    GenericFallback(Candidate),
}

/// What [`bind`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bound {
    pub bdf: Bdf,
    /// The driver the device is on now.
    pub driver: String,
    /// The module that registers it, when known.
    pub module: Option<String>,
    /// The driver it was on before.
    pub previous: Option<String>,
    pub choice: Choice,
    /// Whether [`bind`] loaded the module.
    pub loaded_module: bool,
    /// The selection, when one was made.
    pub selection: Option<Selection>,
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match &self.choice {
            Choice::Named => "named".to_string(),
            Choice::Specific(c) => {
                format!("selected: {} wildcards, alias {}", c.wildcards, c.alias)
            }
            Choice::GenericFallback(c) => {
                format!("GENERIC FALLBACK (no variant matches): alias {}", c.alias)
            }
        };
        write!(
            f,
            "{} is bound to {} (module {}{}; was on {}; {how})",
            self.bdf,
            self.driver,
            self.module.as_deref().unwrap_or("unknown"),
            if self.loaded_module {
                ", loaded now"
            } else {
                ""
            },
            self.previous.as_deref().unwrap_or("no driver"),
        )
    }
}

/// The module name for a driver or module name: kmod treats `-` and `_` alike; module names
/// use `_`.
pub fn module_name(name: &str) -> String {
    name.replace('-', "_")
}

/// Loads `module` unless it is loaded: from the catalog's module file (dependencies first,
/// recursively: our own from their files, others by name), else by name. Returns whether it
/// loaded anything.
pub fn load_module<B: Backend>(
    sys: &Sysfs<B>,
    catalog: &Catalog,
    loader: &dyn ModuleLoader,
    module: &str,
) -> Result<bool, BindError> {
    load_rec(sys, catalog, loader, &module_name(module), &mut Vec::new())
}

fn load_rec<B: Backend>(
    sys: &Sysfs<B>,
    catalog: &Catalog,
    loader: &dyn ModuleLoader,
    module: &str,
    stack: &mut Vec<String>,
) -> Result<bool, BindError> {
    if sys.module_loaded(module) {
        return Ok(false);
    }
    if stack.iter().any(|m| m == module) {
        return Err(BindError::MissingModule {
            module: module.to_string(),
            why: format!("dependency cycle: {} -> {module}", stack.join(" -> ")),
        });
    }
    match catalog.ko(module) {
        Some(ko) => {
            stack.push(module.to_string());
            let deps = catalog
                .module(module)
                .map(|i| i.depends.clone())
                .unwrap_or_default();
            for d in deps {
                load_rec(sys, catalog, loader, &d, stack)?;
            }
            stack.pop();
            loader.insmod(ko).map_err(|why| BindError::MissingModule {
                module: module.to_string(),
                why: format!("loading {}: {why}", ko.display()),
            })?;
        }
        None => loader
            .modprobe(module)
            .map_err(|why| BindError::MissingModule {
                module: module.to_string(),
                why,
            })?,
    }
    if !sys.module_loaded(module) {
        return Err(BindError::MissingModule {
            module: module.to_string(),
            why: "the load reported success but the module is not in /sys/module".into(),
        });
    }
    Ok(true)
}

/// The driver to bind, once the module is loaded: `wanted` if it is registered, else the one
/// PCI driver the module registers.
fn driver_of<B: Backend>(
    sys: &Sysfs<B>,
    module: &str,
    wanted: Option<&str>,
) -> Result<String, BindError> {
    if let Some(w) = wanted {
        if sys.driver_loaded(w) {
            return Ok(w.to_string());
        }
    }
    let registered = sys.module_pci_drivers(module)?;
    match (wanted, registered.as_slice()) {
        (None, [one]) => Ok(one.clone()),
        // A name given as the module name (`vfio_pci_skeleton` for `vfio-pci-skeleton`).
        (Some(w), [one]) if module_name(w) == module_name(one) => Ok(one.clone()),
        _ => Err(BindError::NoDriver {
            module: module.to_string(),
            wanted: wanted.map(String::from),
            registered,
        }),
    }
}

/// Binds `bdf` to `driver` (a driver or module name), or, when `None`, to the driver
/// [`Catalog::select`] picks for its modalias: the most specific one, or the generic fallback
/// when exactly one match-any module is usable. A tie, or several generic drivers, is an
/// error ([`BindError::Ambiguous`]). Loads the module when needed, then [`Sysfs::bind`]: a
/// refused bind restores the previous driver and override ([`Error::Refused`]).
pub fn bind<B: Backend>(
    sys: &Sysfs<B>,
    catalog: &Catalog,
    loader: &dyn ModuleLoader,
    bdf: &Bdf,
    driver: Option<&str>,
) -> Result<Bound, BindError> {
    // A wrong BDF is reported before anything else happens.
    sys.info(bdf)?;
    let mut selection = None;
    // The module to load (if any) and the driver asked for.
    let (module, choice) = match driver {
        Some(d) if sys.driver_loaded(d) => (sys.driver_module(d)?, Choice::Named),
        Some(d) => (Some(module_name(d)), Choice::Named),
        None => {
            let modalias = sys.modalias(bdf)?;
            let sel = catalog.select(&modalias).map_err(BindError::Select)?;
            let ambiguous = |v: &[Candidate]| BindError::Ambiguous {
                bdf: bdf.clone(),
                device_alias: sel.device_alias.clone(),
                candidates: v.to_vec(),
            };
            let picked = match &sel.outcome {
                Outcome::Specific(c) => Choice::Specific(c.clone()),
                Outcome::GenericFallback(v) => {
                    // Only the generic drivers usable right now (loaded, or with a module
                    // file) count; several usable ones are a choice for the caller.
                    let usable: Vec<&Candidate> = v
                        .iter()
                        .filter(|c| sys.module_loaded(&c.module) || catalog.ko(&c.module).is_some())
                        .collect();
                    match (usable.as_slice(), v.as_slice()) {
                        ([one], _) => Choice::GenericFallback((*one).clone()),
                        ([], [one]) => Choice::GenericFallback(one.clone()),
                        _ => return Err(ambiguous(v)),
                    }
                }
                Outcome::Tie(v) => return Err(ambiguous(v)),
                Outcome::NoMatch => {
                    return Err(BindError::NoCandidate {
                        bdf: bdf.clone(),
                        device_alias: sel.device_alias.clone(),
                    })
                }
            };
            let m = match &picked {
                Choice::Specific(c) | Choice::GenericFallback(c) => Some(c.module.clone()),
                Choice::Named => None,
            };
            selection = Some(sel);
            (m, picked)
        }
    };
    let mut loaded_module = false;
    let driver = match (&module, driver) {
        // Registered already (with or without a module).
        (_, Some(d)) if sys.driver_loaded(d) => d.to_string(),
        (Some(m), d) => {
            loaded_module = load_module(sys, catalog, loader, m)?;
            driver_of(sys, m, d)?
        }
        (None, d) => {
            return Err(BindError::MissingModule {
                module: d.map(module_name).unwrap_or_default(),
                why: "no module to load".into(),
            })
        }
    };
    let previous = sys.bind(bdf, &driver)?;
    Ok(Bound {
        bdf: bdf.clone(),
        driver,
        module,
        previous,
        choice,
        loaded_module,
        selection,
    })
}
