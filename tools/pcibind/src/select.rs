// SPDX-License-Identifier: GPL-2.0
//! Choosing the VFIO PCI driver for a device: the device's `modalias` against the `vfio_pci:`
//! aliases of the known modules.
//!
//! A variant's ID table is override-only, so modpost publishes each entry as
//! `vfio_pci:v<V>d<D>sv<SV>sd<SD>bc<BC>sc<SC>i<I>` (each field 8 or 2 upper-case hex digits, or
//! `*` for "any"; a `*` is appended when the last field is not one) instead of a `pci:` alias.
//! The algorithm:
//!
//! 1. read the device's modalias (`pci:v...`, from sysfs) and prefix it with `vfio_`;
//! 2. match it against every known `vfio_pci:` alias with kmod's glob semantics
//!    ([`crate::glob::fnmatch`]); `pci:` aliases (native drivers) never take part;
//! 3. score each matching alias by its **wildcards**: the number of the seven fields
//!    (`v`, `d`, `sv`, `sd`, `bc`, `sc`, `i`) whose pattern is not a plain literal (contains
//!    `*`, `?` or `[...]`). modpost's trailing `*` after a specific last field is not a field
//!    and does not count. An alias that does not have the seven-field form counts as 7. A
//!    module's score is that of its best matching alias;
//! 4. the module with the fewest wildcards wins ([`Outcome::Specific`]). Two or more modules
//!    with the same, lowest score are a [`Outcome::Tie`]; when every match scores 7 (matches
//!    any PCI function: `vfio-pci`, `vfio-pci-generic`) there is no variant for the device and
//!    the result is [`Outcome::GenericFallback`]. Neither is resolved by guessing.

use crate::glob;
use crate::modinfo::{ModinfoError, ModuleInfo};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The prefix of the aliases modpost writes for override-only (VFIO) entries.
pub const VFIO_PREFIX: &str = "vfio_pci:";
/// The seven fields of a PCI modalias, in order.
pub const FIELDS: [&str; 7] = ["v", "d", "sv", "sd", "bc", "sc", "i"];
/// The wildcard count of an alias that matches any PCI function.
pub const MATCH_ANY: u8 = 7;

/// Where an alias came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// The `.modinfo` of a module file (our build).
    Module(PathBuf),
    /// A `modules.alias` file (installed modules).
    ModulesAlias(PathBuf),
    /// Added by a program.
    Other,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Module(p) => write!(f, "{}", p.display()),
            Source::ModulesAlias(p) => write!(f, "{}", p.display()),
            Source::Other => f.write_str("(given)"),
        }
    }
}

/// One module that can drive a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Module name (underscores).
    pub module: String,
    /// The module's best matching alias.
    pub alias: String,
    /// Its wildcard count (see the module documentation).
    pub wildcards: u8,
    /// Whether the alias has modpost's seven-field form.
    pub standard: bool,
    pub source: Source,
}

impl Candidate {
    /// Matches any PCI function.
    pub fn is_generic(&self) -> bool {
        self.wildcards >= MATCH_ANY
    }
}

/// The decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// One module matches more specifically than every other.
    Specific(Candidate),
    /// Several modules share the fewest wildcards (fewer than 7).
    Tie(Vec<Candidate>),
    /// Only match-any modules matched (there may be several, e.g. `vfio_pci` and
    /// `vfio_pci_generic`): no variant knows this device.
    GenericFallback(Vec<Candidate>),
    /// Nothing matched.
    NoMatch,
}

impl Outcome {
    /// The process exit status `cargo xtask match` uses: 0 specific, 3 generic fallback,
    /// 4 tie, 5 no match (1 is left for errors, 2 for usage errors).
    pub fn exit_status(&self) -> i32 {
        match self {
            Outcome::Specific(_) => 0,
            Outcome::GenericFallback(_) => 3,
            Outcome::Tie(_) => 4,
            Outcome::NoMatch => 5,
        }
    }
}

/// A full answer: what was matched, every candidate (best first), the decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// The `vfio_pci:...` string that was matched.
    pub device_alias: String,
    /// Every matching module with its best alias, fewest wildcards first, then by name.
    pub candidates: Vec<Candidate>,
    pub outcome: Outcome,
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "device alias: {}", self.device_alias)?;
        if self.candidates.is_empty() {
            writeln!(f, "candidates:   none")?;
        } else {
            writeln!(f, "candidates (fewest wildcards first):")?;
            for c in &self.candidates {
                writeln!(
                    f,
                    "    {:<28} wildcards {}{}  {}  ({})",
                    c.module,
                    c.wildcards,
                    if c.standard {
                        ""
                    } else {
                        " (nonstandard alias)"
                    },
                    c.alias,
                    c.source
                )?;
            }
        }
        let names = |v: &[Candidate]| {
            v.iter()
                .map(|c| c.module.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &self.outcome {
            Outcome::Specific(c) => {
                write!(f, "selected:     {} ({} wildcards)", c.module, c.wildcards)
            }
            Outcome::Tie(v) => write!(
                f,
                "TIE:          {} match with {} wildcards each; not choosing, name the driver",
                names(v),
                v.first().map(|c| c.wildcards).unwrap_or(0)
            ),
            Outcome::GenericFallback(v) => {
                write!(
                    f,
                    "GENERIC FALLBACK: no variant matches this device; match-any drivers: {}",
                    names(v)
                )
            }
            Outcome::NoMatch => write!(f, "NO MATCH: no vfio_pci: alias matches this device"),
        }
    }
}

/// What can go wrong while selecting.
#[derive(Debug)]
pub enum SelectError {
    /// The string is not a concrete PCI modalias (`pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X`).
    InvalidModalias { modalias: String, why: &'static str },
    /// A module file could not be read.
    Module(ModinfoError),
    /// A `modules.alias` file could not be read.
    AliasFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectError::InvalidModalias { modalias, why } => write!(
                f,
                "`{modalias}` is not a PCI modalias ({why}; expected \
                 pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X, as in /sys/bus/pci/devices/*/modalias)"
            ),
            SelectError::Module(e) => write!(f, "{e}"),
            SelectError::AliasFile { path, source } => write!(f, "reading {}: {source}", path.display()),
        }
    }
}

/// The wrapped errors' text is part of ours, so nothing is chained as a source.
impl std::error::Error for SelectError {}

/// Splits the part after `prefix:` into the seven field patterns, or `None` when it does not
/// have the form `v..d..sv..sd..bc..sc..i..` (field values never contain lower-case letters:
/// modpost writes upper-case hex). modpost's trailing `*` after a specific `i` field is dropped.
pub fn split_fields(body: &str) -> Option<[&str; 7]> {
    let mut out = [""; 7];
    let mut rest = body;
    for (n, key) in FIELDS.iter().enumerate() {
        rest = rest.strip_prefix(key)?;
        let end = rest
            .find(|c: char| c.is_ascii_lowercase())
            .unwrap_or(rest.len());
        let (val, tail) = rest.split_at(end);
        if val.is_empty() {
            return None;
        }
        *out.get_mut(n)? = val;
        rest = tail;
    }
    if !rest.is_empty() {
        return None;
    }
    let last = out.get_mut(6)?;
    if last.len() > 1 && last.ends_with('*') && !last.ends_with("\\*") {
        *last = &last[..last.len() - 1];
    }
    Some(out)
}

/// The wildcard count of an alias pattern (see the module documentation) and whether it has
/// the standard seven-field form.
pub fn wildcards(alias: &str) -> (u8, bool) {
    let body = alias.split_once(':').map(|(_, b)| b).unwrap_or(alias);
    match split_fields(body) {
        Some(fields) => (
            fields.iter().filter(|f| !glob::is_literal(f)).count() as u8,
            true,
        ),
        None => (MATCH_ANY, false),
    }
}

/// Checks a device modalias and turns it into the string matched against `vfio_pci:` aliases.
/// Accepts `pci:...` (as sysfs shows it) or an already prefixed `vfio_pci:...`; surrounding
/// white space is ignored.
pub fn device_alias(modalias: &str) -> Result<String, SelectError> {
    let m = modalias.trim();
    let bad = |why| SelectError::InvalidModalias {
        modalias: m.to_string(),
        why,
    };
    let body = m
        .strip_prefix(VFIO_PREFIX)
        .or_else(|| m.strip_prefix("pci:"))
        .ok_or_else(|| bad("it does not start with pci:"))?;
    let fields = split_fields(body)
        .ok_or_else(|| bad("the fields v, d, sv, sd, bc, sc, i are not all there"))?;
    for (n, f) in fields.iter().enumerate() {
        let width = if n < 4 { 8 } else { 2 };
        if f.len() != width
            || !f
                .chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
        {
            return Err(bad(if glob::is_literal(f) {
                "a field is not upper-case hex of the right width"
            } else {
                "it contains wildcards: a device modalias is concrete"
            }));
        }
    }
    Ok(format!("vfio_{}", m.strip_prefix("vfio_").unwrap_or(m)))
}

/// One known alias.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    module: String,
    alias: String,
    source: Source,
}

/// The known modules and their `vfio_pci:` aliases.
///
/// A module is known from one place only: the first that names it. Add our freshly built
/// modules before an installed `modules.alias`, so a module we built shadows an installed copy
/// (that is the one `bind` would load).
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    entries: Vec<Entry>,
    modules: BTreeMap<String, (Option<PathBuf>, ModuleInfo)>,
}

impl Catalog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a built module file. Returns its name.
    pub fn add_ko(&mut self, path: &Path) -> Result<String, SelectError> {
        let info = ModuleInfo::read(path).map_err(SelectError::Module)?;
        let name = info.name.clone();
        self.add_module(info, Some(path.to_path_buf()));
        Ok(name)
    }

    /// Adds a module described by its `.modinfo` fields (and the file it came from, if any).
    pub fn add_module(&mut self, info: ModuleInfo, ko: Option<PathBuf>) {
        if self.modules.contains_key(&info.name) {
            return;
        }
        let source = ko.clone().map(Source::Module).unwrap_or(Source::Other);
        for a in info.aliases.iter().filter(|a| a.starts_with(VFIO_PREFIX)) {
            self.entries.push(Entry {
                module: info.name.clone(),
                alias: a.clone(),
                source: source.clone(),
            });
        }
        self.modules.insert(info.name.clone(), (ko, info));
    }

    /// Adds the `vfio_pci:` lines of a `modules.alias` file's text (`alias <pattern> <module>`;
    /// comments, blank and malformed lines are skipped). Returns how many aliases were added.
    pub fn add_modules_alias(&mut self, text: &str, source: &Path) -> usize {
        let mut by_module: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in text.lines() {
            let mut w = line.split_whitespace();
            let (Some("alias"), Some(pat), Some(module), None) =
                (w.next(), w.next(), w.next(), w.next())
            else {
                continue;
            };
            if pat.starts_with(VFIO_PREFIX) {
                by_module
                    .entry(module.replace('-', "_"))
                    .or_default()
                    .push(pat.to_string());
            }
        }
        let mut n = 0;
        for (module, aliases) in by_module {
            if self.modules.contains_key(&module) {
                continue;
            }
            for a in &aliases {
                self.entries.push(Entry {
                    module: module.clone(),
                    alias: a.clone(),
                    source: Source::ModulesAlias(source.to_path_buf()),
                });
                n += 1;
            }
            let info = ModuleInfo {
                name: module.clone(),
                aliases,
                depends: vec![],
            };
            self.modules.insert(module, (None, info));
        }
        n
    }

    /// Reads and adds a `modules.alias` file.
    pub fn add_modules_alias_file(&mut self, path: &Path) -> Result<usize, SelectError> {
        let text = std::fs::read_to_string(path).map_err(|source| SelectError::AliasFile {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(self.add_modules_alias(&text, path))
    }

    /// The built module file for a module, if the catalog has one.
    pub fn ko(&self, module: &str) -> Option<&Path> {
        self.modules
            .get(&module.replace('-', "_"))
            .and_then(|(k, _)| k.as_deref())
    }

    /// What the catalog knows about a module.
    pub fn module(&self, module: &str) -> Option<&ModuleInfo> {
        self.modules.get(&module.replace('-', "_")).map(|(_, i)| i)
    }

    /// Every known module name.
    pub fn module_names(&self) -> Vec<String> {
        self.modules.keys().cloned().collect()
    }

    /// Selects the driver module for a device modalias (see the module documentation).
    pub fn select(&self, modalias: &str) -> Result<Selection, SelectError> {
        let device_alias = device_alias(modalias)?;
        let mut best: BTreeMap<&str, Candidate> = BTreeMap::new();
        for e in &self.entries {
            if !glob::fnmatch(&e.alias, &device_alias) {
                continue;
            }
            let (wildcards, standard) = wildcards(&e.alias);
            let c = Candidate {
                module: e.module.clone(),
                alias: e.alias.clone(),
                wildcards,
                standard,
                source: e.source.clone(),
            };
            match best.get(e.module.as_str()) {
                Some(old) if old.wildcards <= c.wildcards => {}
                _ => {
                    best.insert(&e.module, c);
                }
            }
        }
        let mut candidates: Vec<Candidate> = best.into_values().collect();
        candidates.sort_by(|a, b| (a.wildcards, &a.module).cmp(&(b.wildcards, &b.module)));
        let outcome = match candidates.first() {
            None => Outcome::NoMatch,
            Some(first) if first.is_generic() => Outcome::GenericFallback(candidates.clone()),
            Some(first) => {
                let top: Vec<Candidate> = candidates
                    .iter()
                    .filter(|c| c.wildcards == first.wildcards)
                    .cloned()
                    .collect();
                if top.len() == 1 {
                    Outcome::Specific(first.clone())
                } else {
                    Outcome::Tie(top)
                }
            }
        };
        Ok(Selection {
            device_alias,
            candidates,
            outcome,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real modalias strings (from sysfs on QEMU guests and real machines).
    mod dev {
        /// QEMU `edu` (class 00ff00, QEMU's subsystem 1af4:1100).
        pub const EDU: &str = "pci:v00001234d000011E8sv00001AF4sd00001100bc00scFFi00";
        /// QEMU `pci-testdev`.
        pub const TESTDEV: &str = "pci:v00001B36d00000005sv00001AF4sd00001100bc00scFFi00";
        /// QEMU `e1000e` (82574L).
        pub const E1000E: &str = "pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00";
        /// QEMU `nvme`.
        pub const NVME: &str = "pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02";
        /// Intel UHD Graphics 630 (Coffee Lake IGD), VGA class, Dell subsystem.
        pub const IGD: &str = "pci:v00008086d00003E92sv00001028sd0000085Abc03sc00i00";
        /// NVIDIA Tesla T4: 3D controller class 0302, NVIDIA subsystem.
        pub const T4: &str = "pci:v000010DEd00001EB8sv000010DEsd000012A2bc03sc02i00";
        /// NVIDIA GeForce RTX 3060 Ti (VGA), Gigabyte board.
        pub const RTX3060TI: &str = "pci:v000010DEd00002486sv00001458sd0000405Bbc03sc00i00";
        /// NVIDIA H100 (Grace Hopper superchip GPU).
        pub const GH100: &str = "pci:v000010DEd00002342sv000010DEsd000016EBbc03sc02i00";
        /// virtio-net, transitional and modern.
        pub const VIRTIO_NET: &str = "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00";
        pub const VIRTIO_NET_MODERN: &str = "pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00";
        /// virtio-blk (modern).
        pub const VIRTIO_BLK: &str = "pci:v00001AF4d00001042sv00001AF4sd00001100bc01sc00i00";
        /// Mellanox ConnectX-5 VF.
        pub const CX5_VF: &str = "pci:v000015B3d00001018sv000015B3sd00000080bc02sc00i00";
    }

    /// A `modules.alias` as a distribution kernel installs it (native `pci:` lines included,
    /// which must be ignored), with upstream's VFIO variants.
    const MODULES_ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e
alias pci:v00001B36d00000010sv*sd*bc*sc*i* nvme
alias pci:v*d*sv*sd*bc01sc08i02* nvme
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias pci:v000010DEd*sv*sd*bc03sc02i00* nouveau
alias pci:v00008086d00003E92sv*sd*bc*sc*i* i915
alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci
alias vfio_pci:v000015B3d00001018sv*sd*bc*sc*i* mlx5_vfio_pci
alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci
alias vfio_pci:v00001AF4d00001041sv*sd*bc*sc*i* virtio_vfio_pci
alias vfio_pci:v000010DEd00002342sv*sd*bc*sc*i* nvgrace_gpu_vfio_pci
alias vfio_pci:v000010DEd00002345sv*sd*bc*sc*i* nvgrace_gpu_vfio_pci
this line is malformed
alias vfio_pci:v*d*sv*sd*bc*sc*i*
";

    fn module(name: &str, aliases: &[&str]) -> ModuleInfo {
        ModuleInfo {
            name: name.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            depends: vec![],
        }
    }

    /// Our modules as modpost names them, plus hypothetical variants with class-based and
    /// subsystem-specific entries.
    fn catalog() -> Catalog {
        let mut c = Catalog::new();
        c.add_module(
            module("vfio_pci_generic", &["vfio_pci:v*d*sv*sd*bc*sc*i*"]),
            Some("/b/generic.ko".into()),
        );
        c.add_module(
            module(
                "vfio_pci_skeleton",
                &["vfio_pci:v00001234d000011E8sv*sd*bc*sc*i*"],
            ),
            Some("/b/skeleton.ko".into()),
        );
        // An IGD variant: any Intel display controller (class 03xxxx, mask ff0000) ...
        c.add_module(
            module("vfio_pci_igd", &["vfio_pci:v00008086d*sv*sd*bc03sc*i*"]),
            None,
        );
        // ... an NVLink-style variant: NVIDIA 3D controllers (030200/ffff00), one subsystem-
        // specific board, and a device-only entry.
        c.add_module(
            module(
                "vfio_pci_nvlink",
                &[
                    "vfio_pci:v000010DEd*sv*sd*bc03sc02i*",
                    "vfio_pci:v000010DEd00001EB8sv000010DEsd000012A2bc*sc*i*",
                ],
            ),
            None,
        );
        c.add_module(
            module(
                "vfio_pci_t4",
                &["vfio_pci:v000010DEd00001EB8sv*sd*bc*sc*i*"],
            ),
            None,
        );
        // A native-style alias in one of ours must not count.
        c.add_module(
            module("vfio_pci_odd", &["pci:v00001B36d00000005sv*sd*bc*sc*i*"]),
            None,
        );
        c.add_modules_alias(MODULES_ALIAS, Path::new("/lib/modules/x/modules.alias"));
        c
    }

    fn pick(m: &str) -> Selection {
        catalog().select(m).unwrap()
    }

    fn specific(m: &str) -> (String, u8) {
        match pick(m).outcome {
            Outcome::Specific(c) => (c.module, c.wildcards),
            o => panic!("{m}: {o:?}"),
        }
    }

    fn names(v: &[Candidate]) -> Vec<&str> {
        v.iter().map(|c| c.module.as_str()).collect()
    }

    #[test]
    fn wildcard_counting() {
        assert_eq!(wildcards("vfio_pci:v*d*sv*sd*bc*sc*i*"), (7, true));
        assert_eq!(
            wildcards("vfio_pci:v00001234d000011E8sv*sd*bc*sc*i*"),
            (5, true)
        );
        assert_eq!(wildcards("vfio_pci:v00008086d*sv*sd*bc03sc*i*"), (5, true));
        assert_eq!(wildcards("vfio_pci:v00008086d*sv*sd*bc03sc00i*"), (4, true));
        assert_eq!(
            wildcards("vfio_pci:v000010DEd00001EB8sv000010DEsd000012A2bc*sc*i*"),
            (3, true)
        );
        // modpost's trailing `*` after a specific interface is not a field wildcard.
        assert_eq!(wildcards("vfio_pci:v*d*sv*sd*bc01sc08i02*"), (4, true));
        assert_eq!(
            wildcards("vfio_pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02"),
            (0, true)
        );
        // A partial pattern in a field makes it a wildcard field.
        assert_eq!(
            wildcards("vfio_pci:v000010DEd000023[0-9A-F][0-9A-F]sv*sd*bc*sc*i*"),
            (6, true)
        );
        assert_eq!(
            wildcards("vfio_pci:v000010DEd0000234?sv*sd*bc*sc*i*"),
            (6, true)
        );
        // Not modpost's form: as unspecific as match-any.
        assert_eq!(wildcards("vfio_pci:*"), (7, false));
        assert_eq!(wildcards("vfio_pci:v000010DE*"), (7, false));
    }

    #[test]
    fn field_splitting() {
        let f = split_fields("v00001234d000011E8sv00001AF4sd00001100bc00scFFi00").unwrap();
        assert_eq!(
            f,
            ["00001234", "000011E8", "00001AF4", "00001100", "00", "FF", "00"]
        );
        assert!(split_fields("v1d2").is_none());
        assert!(split_fields("vd*sv*sd*bc*sc*i*").is_none());
        assert!(split_fields("v*d*sv*sd*bc*sc*i*x").is_none());
        assert!(split_fields("").is_none());
    }

    #[test]
    fn device_alias_validation() {
        assert_eq!(
            device_alias(dev::EDU).unwrap(),
            format!("vfio_{}", dev::EDU)
        );
        assert_eq!(
            device_alias(&format!(" vfio_{}\n", dev::EDU)).unwrap(),
            format!("vfio_{}", dev::EDU)
        );
        for bad in [
            "",
            "usb:v1234p5678",
            "pci:v00001234d000011E8",
            "pci:v00001234d000011e8sv00001AF4sd00001100bc00scFFi00",
            "pci:v1234d11E8sv1AF4sd1100bc00scFFi00",
            "pci:v*d*sv*sd*bc*sc*i*",
            "pci:v00001234d000011E8sv00001AF4sd00001100bc00scFFi00x",
        ] {
            assert!(
                matches!(device_alias(bad), Err(SelectError::InvalidModalias { .. })),
                "{bad:?}"
            );
        }
        let e = device_alias("pci:v*d*sv*sd*bc*sc*i*")
            .unwrap_err()
            .to_string();
        assert!(e.contains("wildcards"), "{e}");
    }

    #[test]
    fn edu_picks_the_skeleton_over_the_generic_drivers() {
        let s = pick(dev::EDU);
        assert_eq!(s.outcome, Outcome::Specific(s.candidates[0].clone()));
        assert_eq!(
            names(&s.candidates),
            ["vfio_pci_skeleton", "vfio_pci", "vfio_pci_generic"]
        );
        assert_eq!(s.candidates[0].wildcards, 5);
        assert_eq!(
            s.candidates[0].source,
            Source::Module("/b/skeleton.ko".into())
        );
        assert_eq!(s.outcome.exit_status(), 0);
        let text = s.to_string();
        assert!(
            text.contains("selected:     vfio_pci_skeleton (5 wildcards)"),
            "{text}"
        );
    }

    #[test]
    fn devices_without_a_variant_fall_back_to_the_generic_drivers() {
        for m in [
            dev::TESTDEV,
            dev::E1000E,
            dev::NVME,
            dev::VIRTIO_NET,
            dev::VIRTIO_BLK,
        ] {
            let s = pick(m);
            match &s.outcome {
                Outcome::GenericFallback(v) => {
                    assert_eq!(names(v), ["vfio_pci", "vfio_pci_generic"], "{m}")
                }
                o => panic!("{m}: {o:?}"),
            }
            assert_eq!(s.outcome.exit_status(), 3);
            assert!(s.to_string().contains("GENERIC FALLBACK"));
        }
        // Without the installed vfio_pci, the generic fallback is ours alone.
        let mut c = Catalog::new();
        c.add_module(
            module("vfio_pci_generic", &["vfio_pci:v*d*sv*sd*bc*sc*i*"]),
            None,
        );
        match c.select(dev::TESTDEV).unwrap().outcome {
            Outcome::GenericFallback(v) => assert_eq!(names(&v), ["vfio_pci_generic"]),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn class_based_entries() {
        // IGD 8086:3e92, class 030000: only the class-based IGD variant knows it (i915's
        // `pci:` alias does not take part).
        assert_eq!(specific(dev::IGD), ("vfio_pci_igd".into(), 5));
        // An Intel NIC is not a display controller.
        assert!(matches!(
            pick(dev::E1000E).outcome,
            Outcome::GenericFallback(_)
        ));
        // GH100 is a 3D controller (0302): the NVLink variant's vendor + class entry (4
        // wildcards: v, bc, sc literal) counts as more specific than nvgrace's vendor:device
        // entry (5). That is what "fewest wildcards" means; binding.md discusses it.
        let s = pick(dev::GH100);
        assert_eq!(s.outcome, Outcome::Specific(s.candidates[0].clone()));
        assert_eq!(
            names(&s.candidates)[..2],
            ["vfio_pci_nvlink", "nvgrace_gpu_vfio_pci"]
        );
        assert_eq!(
            (s.candidates[0].wildcards, s.candidates[1].wildcards),
            (4, 5)
        );
        // A GeForce is VGA class (0300), not 0302: no NVIDIA variant.
        assert!(matches!(
            pick(dev::RTX3060TI).outcome,
            Outcome::GenericFallback(_)
        ));
    }

    #[test]
    fn subsystem_specific_entries_win() {
        // T4 with NVIDIA's own subsystem: nvlink's subsystem entry (3) beats vfio_pci_t4's
        // device-only entry (5); a module scores with its best matching alias (not its class
        // entry's 4).
        let s = pick(dev::T4);
        assert_eq!(s.outcome, Outcome::Specific(s.candidates[0].clone()));
        assert_eq!(
            (s.candidates[0].module.as_str(), s.candidates[0].wildcards),
            ("vfio_pci_nvlink", 3)
        );
        assert_eq!(
            names(&s.candidates),
            [
                "vfio_pci_nvlink",
                "vfio_pci_t4",
                "vfio_pci",
                "vfio_pci_generic"
            ]
        );
        // Another subsystem: the subsystem entry no longer matches; nvlink's class entry (4)
        // still beats the T4 device entry (5).
        let other = dev::T4.replace("sd000012A2", "sd000012A3");
        let s = pick(&other);
        assert_eq!(
            names(&s.candidates)[..2],
            ["vfio_pci_nvlink", "vfio_pci_t4"]
        );
        assert_eq!(
            (s.candidates[0].wildcards, s.candidates[1].wildcards),
            (4, 5)
        );
    }

    #[test]
    fn ties_are_reported_not_broken() {
        let mut c = catalog();
        // A second module for edu, as `cargo xtask new-variant` makes one.
        c.add_module(
            module(
                "vfio_pci_edu",
                &["vfio_pci:v00001234d000011E8sv*sd*bc*sc*i*"],
            ),
            None,
        );
        let s = c.select(dev::EDU).unwrap();
        match &s.outcome {
            Outcome::Tie(v) => assert_eq!(names(v), ["vfio_pci_edu", "vfio_pci_skeleton"]),
            o => panic!("{o:?}"),
        }
        assert_eq!(s.outcome.exit_status(), 4);
        assert!(s.to_string().contains("TIE:"), "{s}");
        // Two generic drivers are not a tie but the fallback.
        assert!(matches!(
            c.select(dev::TESTDEV).unwrap().outcome,
            Outcome::GenericFallback(_)
        ));
    }

    #[test]
    fn installed_variants_from_modules_alias() {
        assert_eq!(specific(dev::CX5_VF), ("mlx5_vfio_pci".into(), 5));
        assert_eq!(
            specific(dev::VIRTIO_NET_MODERN),
            ("virtio_vfio_pci".into(), 5)
        );
        let s = pick(dev::CX5_VF);
        assert_eq!(
            s.candidates[0].source,
            Source::ModulesAlias("/lib/modules/x/modules.alias".into())
        );
    }

    #[test]
    fn native_aliases_never_match() {
        // vfio_pci_odd's only alias is a `pci:` one; e1000e's is in modules.alias.
        let s = pick(dev::TESTDEV);
        assert!(!names(&s.candidates).contains(&"vfio_pci_odd"));
        let s = pick(dev::E1000E);
        assert!(!names(&s.candidates).contains(&"e1000e"));
        let mut c = Catalog::new();
        assert_eq!(
            c.add_modules_alias("alias pci:v*d*sv*sd*bc*sc*i* pci_stub\n", Path::new("m")),
            0
        );
        assert_eq!(c.select(dev::EDU).unwrap().outcome, Outcome::NoMatch);
        assert_eq!(c.select(dev::EDU).unwrap().outcome.exit_status(), 5);
    }

    #[test]
    fn a_built_module_shadows_its_installed_copy() {
        let mut c = Catalog::new();
        c.add_module(
            module(
                "vfio_pci_skeleton",
                &["vfio_pci:v00001234d000011E8sv*sd*bc*sc*i*"],
            ),
            Some("/b/s.ko".into()),
        );
        c.add_modules_alias(
            "alias vfio_pci:v00001234d*sv*sd*bc*sc*i* vfio_pci_skeleton\nalias vfio_pci:v00001234d000011E8sv*sd*bc*sc*i* vfio-pci-edu\n",
            Path::new("m"),
        );
        let s = c.select(dev::EDU).unwrap();
        assert_eq!(names(&s.candidates), ["vfio_pci_edu", "vfio_pci_skeleton"]);
        assert!(
            s.candidates.iter().all(|c| c.wildcards == 5),
            "the installed, wider alias is ignored"
        );
        assert!(matches!(s.outcome, Outcome::Tie(_)));
        assert_eq!(c.ko("vfio-pci-skeleton"), Some(Path::new("/b/s.ko")));
        assert_eq!(c.ko("vfio_pci_edu"), None);
        assert!(c.module("vfio_pci_edu").is_some());
    }

    #[test]
    fn glob_features_in_aliases() {
        let mut c = Catalog::new();
        c.add_module(
            module("ranged", &["vfio_pci:v00001234d000011E[0-9]sv*sd*bc*sc*i*"]),
            None,
        );
        c.add_module(
            module(
                "questioned",
                &["vfio_pci:v00001234d000011E?sv*sd*bc00sc*i*"],
            ),
            None,
        );
        let s = c.select(dev::EDU).unwrap();
        assert_eq!(names(&s.candidates), ["questioned", "ranged"]);
        assert_eq!(s.outcome, Outcome::Specific(s.candidates[0].clone()));
        assert!(c
            .select(&dev::EDU.replace("11E8", "11EA"))
            .unwrap()
            .candidates
            .iter()
            .all(|c| c.module != "ranged"));
    }

    #[test]
    fn reads_a_modules_alias_file() {
        let p = std::env::temp_dir().join(format!("pcibind-alias-{}", std::process::id()));
        std::fs::write(&p, MODULES_ALIAS).unwrap();
        let mut c = Catalog::new();
        assert_eq!(c.add_modules_alias_file(&p).unwrap(), 6);
        assert_eq!(
            c.module_names(),
            [
                "mlx5_vfio_pci",
                "nvgrace_gpu_vfio_pci",
                "vfio_pci",
                "virtio_vfio_pci"
            ]
        );
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(
            c.add_modules_alias_file(&p),
            Err(SelectError::AliasFile { .. })
        ));
    }
}
