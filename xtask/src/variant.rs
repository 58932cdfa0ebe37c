// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask new-variant NAME --vendor V --device D [--subsystem SV:SD] [--class C/MASK]`:
//! a new variant in `variants/NAME/`, copied from `samples/skeleton/`, wired into the
//! top-level Kbuild (which `module_paths()` reads, so nothing else needs editing).
//!
//! Everything is checked and rendered in memory first; files are written only when every
//! check passed, the top-level Kbuild last, so a failure leaves the tree as it was.

use std::fmt;
use std::path::{Path, PathBuf};

/// The template.
pub const TEMPLATE_DIR: &str = "samples/skeleton";
const TEMPLATE_MODULE: &str = "vfio_pci_skeleton";
const TEMPLATE_DRIVER: &str = "vfio-pci-skeleton";
const TEMPLATE_TYPE: &str = "Skeleton";
/// Module names are at most 55 characters (`MODULE_NAME_LEN - 1`); `vfio_pci_` takes 9.
const MAX_NAME: usize = 40;

/// What a new variant matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub vendor: u16,
    pub device: u16,
    pub subsystem: Option<(u16, u16)>,
    /// 24-bit class code and mask (each mask byte 00 or ff: modpost cannot express others).
    pub class: Option<(u32, u32)>,
}

impl Spec {
    pub fn module(&self) -> String {
        format!("vfio_pci_{}", self.name)
    }
    pub fn driver(&self) -> String {
        format!("vfio-pci-{}", self.name.replace('_', "-"))
    }
    /// The Rust type of the per-device state.
    pub fn type_name(&self) -> String {
        let camel: String = self
            .name
            .split('_')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let mut c = p.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect();
        // A suffix keeps it clear of the SDK prelude's names (`Variant`, `PciFunction`, ...).
        format!("{camel}Variant")
    }
    /// The `PciId` expression of the single ID table entry.
    pub fn id_expr(&self) -> String {
        let mut e = format!(
            "PciId::vendor_device({:#06x}, {:#06x})",
            self.vendor, self.device
        );
        if let Some((sv, sd)) = self.subsystem {
            e.push_str(&format!(".subsystem({sv:#06x}, {sd:#06x})"));
        }
        if let Some((c, m)) = self.class {
            e.push_str(&format!(".class({c:#08x}, {m:#08x})"));
        }
        e
    }
    /// The `vfio_pci:` alias modpost will write for the entry.
    pub fn alias(&self) -> String {
        let (sv, sd) = match self.subsystem {
            Some((sv, sd)) => (format!("{sv:08X}"), format!("{sd:08X}")),
            None => ("*".into(), "*".into()),
        };
        let byte = |shift: u32| match self.class {
            Some((c, m)) if (m >> shift) & 0xff == 0xff => format!("{:02X}", (c >> shift) & 0xff),
            _ => "*".into(),
        };
        let mut a = format!(
            "vfio_pci:v{:08X}d{:08X}sv{sv}sd{sd}bc{}sc{}i{}",
            self.vendor,
            self.device,
            byte(16),
            byte(8),
            byte(0)
        );
        if !a.ends_with('*') {
            a.push('*');
        }
        a
    }
}

#[derive(Debug)]
pub enum Error {
    InvalidName {
        name: String,
        why: &'static str,
    },
    InvalidId {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    /// `variants/NAME` exists.
    Exists {
        path: PathBuf,
    },
    /// Another module of the tree already has the module name.
    ModuleTaken {
        module: String,
        path: PathBuf,
    },
    /// The template no longer has a piece new-variant rewrites.
    Template {
        path: PathBuf,
        missing: String,
    },
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    /// The tree's Kbuild files could not be read.
    Tree(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidName { name, why } => write!(
                f,
                "invalid variant name `{name}`: {why} (use lower-case letters, digits and `_`, \
                 starting with a letter, at most {MAX_NAME} characters)"
            ),
            Error::InvalidId { what, value, why } => write!(f, "invalid {what} `{value}`: {why}"),
            Error::Exists { path } => write!(f, "{} already exists; not overwriting it", path.display()),
            Error::ModuleTaken { module, path } => {
                write!(f, "module name {module} is already used by {}", path.display())
            }
            Error::Template { path, missing } => write!(
                f,
                "the template {} changed: it no longer contains {missing}; update xtask/src/variant.rs",
                path.display()
            ),
            Error::Io { path, op, source } => write!(f, "{op} {}: {source}", path.display()),
            Error::Tree(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

/// Checks a variant name.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let bad = |why| {
        Err(Error::InvalidName {
            name: name.to_string(),
            why,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME {
        return bad("it is too long");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("it must start with a lower-case letter");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return bad("only lower-case letters, digits and `_` are allowed");
    }
    if name.ends_with('_') || name.contains("__") {
        return bad("no trailing or doubled `_`");
    }
    if name.starts_with("vfio_pci") {
        return bad("leave out the vfio_pci prefix: it is added");
    }
    Ok(())
}

/// Parses a 16-bit hex ID (`1234`, `0x1234`).
pub fn parse_id16(what: &'static str, s: &str) -> Result<u16, Error> {
    let bad = |why| Error::InvalidId {
        what,
        value: s.to_string(),
        why,
    };
    let h = s.trim().trim_start_matches("0x").trim_start_matches("0X");
    if h.is_empty() || h.len() > 4 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad("expected 1 to 4 hex digits"));
    }
    let v = u16::from_str_radix(h, 16).map_err(|_| bad("expected 1 to 4 hex digits"))?;
    if v == 0xffff {
        return Err(bad("ffff is PCI_ANY_ID (no device has it)"));
    }
    Ok(v)
}

/// Parses `SV:SD`.
pub fn parse_subsystem(s: &str) -> Result<(u16, u16), Error> {
    let (a, b) = s.split_once(':').ok_or(Error::InvalidId {
        what: "subsystem",
        value: s.to_string(),
        why: "expected SUBVENDOR:SUBDEVICE in hex",
    })?;
    Ok((
        parse_id16("subsystem vendor", a)?,
        parse_id16("subsystem device", b)?,
    ))
}

/// Parses `C/MASK` (or `C`, mask `ffffff`): 24-bit hex class code and mask; each mask byte
/// must be `00` or `ff` (modpost drops entries with other masks from the aliases).
pub fn parse_class(s: &str) -> Result<(u32, u32), Error> {
    let bad = |why| Error::InvalidId {
        what: "class",
        value: s.to_string(),
        why,
    };
    let (c, m) = s.split_once('/').unwrap_or((s, "ffffff"));
    let hex24 = |x: &str| -> Option<u32> {
        let h = x.trim().trim_start_matches("0x");
        if h.is_empty() || h.len() > 6 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(h, 16).ok()
    };
    let c = hex24(c).ok_or_else(|| bad("the class is not a 24-bit hex number (e.g. 030000)"))?;
    let m = hex24(m).ok_or_else(|| bad("the mask is not a 24-bit hex number (e.g. ff0000)"))?;
    if m == 0 {
        return Err(bad("a zero mask matches every class: leave --class out"));
    }
    if (0..3).any(|i| !matches!((m >> (8 * i)) & 0xff, 0 | 0xff)) {
        return Err(bad(
            "each mask byte must be 00 or ff (modpost cannot publish other masks)",
        ));
    }
    if c & !m != 0 {
        return Err(bad("the class has bits outside the mask"));
    }
    Ok((c, m))
}

fn replace_word(text: &str, word: &str, with: &str) -> String {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(word) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + word.len()..].chars().next();
        out.push_str(&rest[..i]);
        if before.is_some_and(ident) || after.is_some_and(ident) {
            out.push_str(word);
        } else {
            out.push_str(with);
        }
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
    out
}

/// The variant's Rust source, from the template's.
pub fn render_source(template: &str, template_path: &Path, spec: &Spec) -> Result<String, Error> {
    let missing = |what: &str| Error::Template {
        path: template_path.to_path_buf(),
        missing: what.to_string(),
    };
    let mut lines: Vec<String> = Vec::new();
    let mut doc_done = false;
    let mut saw = (false, false, false, false);
    // Inside a multi-line `ids: [ ... ],` being replaced.
    let mut in_ids = false;
    for line in template.lines() {
        let t = line.trim_start();
        if in_ids {
            in_ids = !t.trim_end().ends_with("],");
            continue;
        }
        let indent = &line[..line.len() - t.len()];
        if t.starts_with("//!") {
            if !doc_done {
                doc_done = true;
                lines.push(format!(
                    "//! `{}`: VFIO PCI variant for {:04x}:{:04x} (`{}`).",
                    spec.driver(),
                    spec.vendor,
                    spec.device,
                    spec.alias()
                ));
                lines.push(format!(
                    "//! Made by `cargo xtask new-variant` from `{TEMPLATE_DIR}`; see Documentation/sdk-guide.md."
                ));
            }
            continue;
        }
        if t.starts_with("name:") && t.contains(&format!("\"{TEMPLATE_MODULE}\"")) {
            saw.0 = true;
            lines.push(format!("{indent}name: \"{}\",", spec.module()));
        } else if t.starts_with("driver:") && t.contains(&format!("\"{TEMPLATE_DRIVER}\"")) {
            saw.1 = true;
            lines.push(format!("{indent}driver: \"{}\",", spec.driver()));
        } else if t.starts_with("description:") {
            saw.2 = true;
            lines.push(format!(
                "{indent}description: \"VFIO PCI variant for {:04x}:{:04x}\",",
                spec.vendor, spec.device
            ));
        } else if t.starts_with("ids:") {
            saw.3 = true;
            in_ids = !t.trim_end().ends_with("],");
            lines.push(format!("{indent}ids: [({}, ())],", spec.id_expr()));
        } else {
            lines.push(line.to_string());
        }
    }
    if !saw.0 {
        return Err(missing(&format!("name: \"{TEMPLATE_MODULE}\"")));
    }
    if !saw.1 {
        return Err(missing(&format!("driver: \"{TEMPLATE_DRIVER}\"")));
    }
    if !saw.2 {
        return Err(missing("a description: line"));
    }
    if !saw.3 {
        return Err(missing("an ids: [...] entry"));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    if !out.contains(&format!("struct {TEMPLATE_TYPE}")) {
        return Err(missing(&format!("struct {TEMPLATE_TYPE}")));
    }
    Ok(replace_word(&out, TEMPLATE_TYPE, &spec.type_name()))
}

/// The top-level Kbuild with `obj-m += variants/NAME/` added after the last `variants/` line
/// (or before the first `samples/` line, or at the end).
pub fn add_to_kbuild(kbuild: &str, name: &str) -> String {
    let new = format!("obj-m += variants/{name}/");
    let lines: Vec<&str> = kbuild.lines().collect();
    let is = |l: &str, p: &str| l.trim_start().starts_with("obj-m") && l.contains(p);
    let at = lines
        .iter()
        .rposition(|l| is(l, "variants/"))
        .map(|i| i + 1)
        .or_else(|| lines.iter().position(|l| is(l, "samples/")))
        .unwrap_or(lines.len());
    let mut out: Vec<&str> = lines.clone();
    out.insert(at, &new);
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// What [`create`] made.
#[derive(Debug)]
pub struct Created {
    pub dir: PathBuf,
    pub source: PathBuf,
    /// Where the build will put the module.
    pub ko: PathBuf,
}

fn read(p: &Path) -> Result<String, Error> {
    std::fs::read_to_string(p).map_err(|source| Error::Io {
        path: p.to_path_buf(),
        op: "reading",
        source,
    })
}

fn write(p: &Path, data: &str) -> Result<(), Error> {
    std::fs::write(p, data).map_err(|source| Error::Io {
        path: p.to_path_buf(),
        op: "writing",
        source,
    })
}

/// Creates `variants/NAME/` in the tree at `root` and adds it to the top-level Kbuild.
pub fn create(root: &Path, spec: &Spec) -> Result<Created, Error> {
    validate_name(&spec.name)?;
    let dir = root.join("variants").join(&spec.name);
    if dir.exists() {
        return Err(Error::Exists { path: dir });
    }
    let module = spec.module();
    let existing =
        crate::modules::module_paths_in(root).map_err(|e| Error::Tree(format!("{e:#}")))?;
    if let Some(p) = existing
        .iter()
        .find(|p| p.file_stem().is_some_and(|s| s.to_string_lossy() == module))
    {
        return Err(Error::ModuleTaken {
            module,
            path: p.clone(),
        });
    }
    let tdir = root.join(TEMPLATE_DIR);
    let tsrc = tdir.join(format!("{TEMPLATE_MODULE}.rs"));
    let source = render_source(&read(&tsrc)?, &tsrc, spec)?;
    let tkb = tdir.join("Kbuild");
    let kbuild_t = read(&tkb)?;
    if !kbuild_t.contains(&format!("{TEMPLATE_MODULE}.o")) {
        return Err(Error::Template {
            path: tkb,
            missing: format!("{TEMPLATE_MODULE}.o"),
        });
    }
    let kbuild = kbuild_t.replace(TEMPLATE_MODULE, &module);
    let top_path = root.join("Kbuild");
    let top = add_to_kbuild(&read(&top_path)?, &spec.name);

    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        op: "creating",
        source,
    })?;
    let src_path = dir.join(format!("{module}.rs"));
    let r = write(&src_path, &source)
        .and_then(|_| write(&dir.join("Kbuild"), &kbuild))
        .and_then(|_| {
            let tmp = top_path.with_extension("new-variant.tmp");
            write(&tmp, &top)?;
            std::fs::rename(&tmp, &top_path).map_err(|source| Error::Io {
                path: top_path.clone(),
                op: "replacing",
                source,
            })
        });
    if let Err(e) = r {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(Created {
        ko: dir.join(format!("{module}.ko")),
        dir,
        source: src_path,
    })
}

/// Copies what `new-variant` and a variant build need from `from` to `to`: the top-level
/// Kbuild, and the Kbuild and `.rs` files of every directory it lists, except `common`,
/// which becomes a symlink to the real one (variants reach the SDK through
/// `../../common/sdk`).
pub fn copy_tree_skeleton(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    std::fs::copy(from.join("Kbuild"), to.join("Kbuild"))?;
    let top = std::fs::read_to_string(from.join("Kbuild"))?;
    for d in crate::modules::kbuild_dirs(&top) {
        if d == "common" {
            std::os::unix::fs::symlink(from.join("common"), to.join("common"))?;
            continue;
        }
        std::fs::create_dir_all(to.join(&d))?;
        for e in std::fs::read_dir(from.join(&d))?.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n == "Kbuild" || n.ends_with(".rs") {
                std::fs::copy(e.path(), to.join(&d).join(&n))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::repo_root;

    fn spec(name: &str) -> Spec {
        Spec {
            name: name.into(),
            vendor: 0x1234,
            device: 0x11e8,
            subsystem: None,
            class: None,
        }
    }

    /// A scratch tree: the top-level Kbuild and the Kbuild files (and sources) of its
    /// directories, copied from this repository.
    fn scratch(tag: &str) -> PathBuf {
        let t =
            std::env::temp_dir().join(format!("xtask-new-variant-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        copy_tree_skeleton(&repo_root(), &t).unwrap();
        t
    }

    #[test]
    fn names() {
        for ok in ["edu", "edu_test", "igd2", "a"] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "",
            "Edu",
            "1edu",
            "edu-test",
            "edu.test",
            "../x",
            "edu_",
            "a__b",
            "vfio_pci_x",
            &"x".repeat(41),
        ] {
            assert!(
                matches!(validate_name(bad), Err(Error::InvalidName { .. })),
                "{bad}"
            );
        }
        let s = spec("edu_test");
        assert_eq!(
            (s.module(), s.driver(), s.type_name()),
            (
                "vfio_pci_edu_test".into(),
                "vfio-pci-edu-test".into(),
                "EduTestVariant".into()
            )
        );
    }

    #[test]
    fn ids_and_aliases() {
        assert_eq!(parse_id16("vendor", "0x10DE").unwrap(), 0x10de);
        assert_eq!(parse_id16("vendor", "8086").unwrap(), 0x8086);
        for bad in ["", "12345", "xyz", "ffff", "0x"] {
            assert!(parse_id16("vendor", bad).is_err(), "{bad}");
        }
        assert_eq!(parse_class("030000/ff0000").unwrap(), (0x030000, 0xff0000));
        assert_eq!(parse_class("030200/ffff00").unwrap(), (0x030200, 0xffff00));
        assert_eq!(parse_class("010802").unwrap(), (0x010802, 0xffffff));
        for bad in [
            "03/0",
            "030000/f00000",
            "030001/ffff00",
            "zz",
            "1000000/ffffff",
        ] {
            assert!(parse_class(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_subsystem("10de:12a2").unwrap(), (0x10de, 0x12a2));
        assert!(parse_subsystem("10de").is_err());
        assert_eq!(
            spec("edu").alias(),
            "vfio_pci:v00001234d000011E8sv*sd*bc*sc*i*"
        );
        let igd = Spec {
            name: "igd".into(),
            vendor: 0x8086,
            device: 0x3e92,
            subsystem: None,
            class: Some((0x030000, 0xff0000)),
        };
        assert_eq!(igd.alias(), "vfio_pci:v00008086d00003E92sv*sd*bc03sc*i*");
        assert_eq!(
            igd.id_expr(),
            "PciId::vendor_device(0x8086, 0x3e92).class(0x030000, 0xff0000)"
        );
        let t4 = Spec {
            subsystem: Some((0x10de, 0x12a2)),
            class: Some((0x030200, 0xffffff)),
            ..spec("t4")
        };
        assert_eq!(
            t4.alias(),
            "vfio_pci:v00001234d000011E8sv000010DEsd000012A2bc03sc02i00*"
        );
        assert_eq!(pcibind::select::wildcards(&t4.alias()).0, 0);
    }

    #[test]
    fn renders_the_real_skeleton() {
        let p = repo_root()
            .join(TEMPLATE_DIR)
            .join(format!("{TEMPLATE_MODULE}.rs"));
        let t = std::fs::read_to_string(&p).unwrap();
        let s = Spec {
            class: Some((0x00ff00, 0xffff00)),
            ..spec("edu_test")
        };
        let out = render_source(&t, &p, &s).unwrap();
        assert!(
            out.starts_with("// SPDX-License-Identifier: GPL-2.0\n"),
            "{out}"
        );
        assert!(out.contains("name: \"vfio_pci_edu_test\","));
        assert!(out.contains("driver: \"vfio-pci-edu-test\","));
        assert!(out.contains(
            "ids: [(PciId::vendor_device(0x1234, 0x11e8).class(0x00ff00, 0xffff00), ())],"
        ));
        assert!(out.contains("struct EduTestVariant;"));
        assert!(
            !out.contains("Skeleton") && !out.contains("skeleton\""),
            "{out}"
        );
        // No unsafe code, and the lint that keeps it so (the SDK module alone exempted).
        assert!(out.contains("#![deny(unsafe_code)]"));
        assert_eq!(out.matches("unsafe").count(), 2, "{out}");
        assert!(out.contains("#[allow(unsafe_code)]\n#[path = "));
        assert_eq!(out.matches("//!").count(), 2);
        // A multi-line ID table is replaced as a whole.
        let multi = t.replace(
            "    ids: [(PciId::vendor_device(0x1234, 0x11e8), ())],",
            "    ids: [\n        (PciId::vendor_device(0x1234, 0x11e8), ()),\n        (PciId::vendor(0x1b36), ()),\n    ],",
        );
        assert_ne!(
            multi, t,
            "the skeleton's ids line changed; update this test"
        );
        let out2 = render_source(&multi, &p, &s).unwrap();
        assert!(
            !out2.contains("0x1b36")
                && out2.contains("ids: [(PciId::vendor_device(0x1234, 0x11e8).class("),
            "{out2}"
        );
        assert!(
            out2.trim_end().ends_with("}") && out2.contains("license:"),
            "the rest is kept: {out2}"
        );
        // The template without a piece we rewrite is refused.
        let broken = t.replace("driver:", "drv:");
        assert!(matches!(
            render_source(&broken, &p, &s),
            Err(Error::Template { .. })
        ));
    }

    #[test]
    fn kbuild_insertion() {
        let k =
            "# SPDX\nobj-m += common/\nobj-m += variants/generic/\nobj-m += samples/skeleton/\n";
        assert_eq!(
            add_to_kbuild(k, "edu"),
            "# SPDX\nobj-m += common/\nobj-m += variants/generic/\nobj-m += variants/edu/\nobj-m += samples/skeleton/\n"
        );
        assert_eq!(
            add_to_kbuild("obj-m += common/\nobj-m += samples/x/\n", "e"),
            "obj-m += common/\nobj-m += variants/e/\nobj-m += samples/x/\n"
        );
        assert_eq!(
            add_to_kbuild("obj-m += common/", "e"),
            "obj-m += common/\nobj-m += variants/e/\n"
        );
    }

    #[test]
    fn creates_wires_and_refuses_to_overwrite() {
        let t = scratch("create");
        let c = create(&t, &spec("edu")).unwrap();
        assert!(c.source.ends_with("variants/edu/vfio_pci_edu.rs"));
        let kos = crate::modules::module_paths_in(&t).unwrap();
        assert!(
            kos.contains(&t.join("variants/edu/vfio_pci_edu.ko")),
            "{kos:?}"
        );
        assert_eq!(kos.first(), Some(&t.join("common/vfio_pci_common.ko")));
        let kb = std::fs::read_to_string(t.join("variants/edu/Kbuild")).unwrap();
        assert!(
            kb.contains("obj-m += vfio_pci_edu.o")
                && kb.starts_with("# SPDX-License-Identifier: GPL-2.0")
        );
        let before = std::fs::read_to_string(t.join("Kbuild")).unwrap();
        // Again: refused, nothing changes.
        assert!(matches!(
            create(&t, &spec("edu")),
            Err(Error::Exists { .. })
        ));
        // A name whose module exists elsewhere (samples/skeleton) is refused too.
        assert!(matches!(
            create(&t, &spec("skeleton")),
            Err(Error::ModuleTaken { .. })
        ));
        assert!(!t.join("variants/skeleton").exists());
        assert!(matches!(
            create(&t, &spec("Bad")),
            Err(Error::InvalidName { .. })
        ));
        assert_eq!(std::fs::read_to_string(t.join("Kbuild")).unwrap(), before);
        std::fs::remove_dir_all(&t).unwrap();
    }
}
