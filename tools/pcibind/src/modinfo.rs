// SPDX-License-Identifier: GPL-2.0
//! The `.modinfo` section of a kernel module (`.ko`, ELF64 little endian): `key=value` strings,
//! NUL separated. What `modinfo(8)` prints, without needing kmod.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a `.modinfo` could not be read.
#[derive(Debug)]
pub enum ModinfoError {
    /// The file could not be read.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not an ELF64 little-endian file.
    NotElf64Le { path: Option<PathBuf> },
    /// A header or section lies outside the file.
    Malformed {
        path: Option<PathBuf>,
        what: &'static str,
    },
    /// The file has no `.modinfo` section (not a kernel module).
    NoModinfo { path: Option<PathBuf> },
}

impl ModinfoError {
    fn with_path(self, p: &Path) -> Self {
        let p = Some(p.to_path_buf());
        match self {
            ModinfoError::NotElf64Le { .. } => ModinfoError::NotElf64Le { path: p },
            ModinfoError::Malformed { what, .. } => ModinfoError::Malformed { path: p, what },
            ModinfoError::NoModinfo { .. } => ModinfoError::NoModinfo { path: p },
            e => e,
        }
    }
}

fn show(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<buffer>".into())
}

impl fmt::Display for ModinfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModinfoError::Io { path, source } => write!(f, "reading {}: {source}", path.display()),
            ModinfoError::NotElf64Le { path } => {
                write!(f, "{}: not an ELF64 little-endian file", show(path))
            }
            ModinfoError::Malformed { path, what } => {
                write!(f, "{}: malformed ELF ({what})", show(path))
            }
            ModinfoError::NoModinfo { path } => {
                write!(
                    f,
                    "{}: no .modinfo section (not a kernel module)",
                    show(path)
                )
            }
        }
    }
}

/// The wrapped I/O error's text is part of ours, so it is not chained as a source.
impl std::error::Error for ModinfoError {}

/// The `.modinfo` of the module file at `path`, in file order.
pub fn modinfo(path: &Path) -> Result<Vec<(String, String)>, ModinfoError> {
    let data = std::fs::read(path).map_err(|source| ModinfoError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    modinfo_of(&data).map_err(|e| e.with_path(path))
}

/// The `.modinfo` of a module image in memory.
pub fn modinfo_of(data: &[u8]) -> Result<Vec<(String, String)>, ModinfoError> {
    let le = |o: usize, n: usize| -> Option<usize> {
        let end = o.checked_add(n)?;
        data.get(o..end)
            .map(|b| b.iter().rev().fold(0usize, |a, &x| (a << 8) | x as usize))
    };
    let bad = |what| ModinfoError::Malformed { path: None, what };
    if data.get(0..4) != Some(b"\x7fELF") || data.get(4) != Some(&2) || data.get(5) != Some(&1) {
        return Err(ModinfoError::NotElf64Le { path: None });
    }
    let shoff = le(0x28, 8).ok_or_else(|| bad("ELF header"))?;
    let shentsize = le(0x3a, 2).ok_or_else(|| bad("ELF header"))?;
    let shnum = le(0x3c, 2).ok_or_else(|| bad("ELF header"))?;
    let shstrndx = le(0x3e, 2).ok_or_else(|| bad("ELF header"))?;
    let sh = |i: usize| -> Option<(usize, usize, usize)> {
        let b = shoff.checked_add(i.checked_mul(shentsize)?)?;
        Some((
            le(b, 4)?,
            le(b.checked_add(0x18)?, 8)?,
            le(b.checked_add(0x20)?, 8)?,
        ))
    };
    let slice = |off: usize, size: usize| off.checked_add(size).and_then(|end| data.get(off..end));
    let (_, stroff, strsize) = sh(shstrndx).ok_or_else(|| bad("section header table"))?;
    let strtab = slice(stroff, strsize).ok_or_else(|| bad("section name table"))?;
    for i in 0..shnum {
        let (name, off, size) = sh(i).ok_or_else(|| bad("section header table"))?;
        let n = strtab.get(name..).unwrap_or(&[]);
        let n = n
            .get(..n.iter().position(|&c| c == 0).unwrap_or(n.len()))
            .unwrap_or(&[]);
        if n == b".modinfo" {
            let sec = slice(off, size).ok_or_else(|| bad(".modinfo section"))?;
            return Ok(sec
                .split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .filter_map(|s| {
                    let s = String::from_utf8_lossy(s);
                    s.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect());
        }
    }
    Err(ModinfoError::NoModinfo { path: None })
}

/// The fields of `.modinfo` this project cares about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleInfo {
    /// `name=` (underscores), or the file stem with `-` turned into `_` when absent.
    pub name: String,
    pub aliases: Vec<String>,
    pub depends: Vec<String>,
}

impl ModuleInfo {
    /// Picks the interesting fields out of `.modinfo` pairs; `fallback_name` is used when there
    /// is no `name=`.
    pub fn from_pairs(pairs: &[(String, String)], fallback_name: &str) -> ModuleInfo {
        let get = |k: &'static str| {
            pairs
                .iter()
                .filter(move |(kk, _)| kk == k)
                .map(|(_, v)| v.clone())
        };
        ModuleInfo {
            name: get("name")
                .next()
                .unwrap_or_else(|| fallback_name.replace('-', "_")),
            aliases: get("alias").collect(),
            depends: get("depends")
                .flat_map(|v| {
                    v.split(',')
                        .filter(|s| !s.is_empty())
                        .map(|s| s.replace('-', "_"))
                        .collect::<Vec<_>>()
                })
                .collect(),
        }
    }

    /// Reads a `.ko`.
    pub fn read(path: &Path) -> Result<ModuleInfo, ModinfoError> {
        let pairs = modinfo(path)?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(ModuleInfo::from_pairs(&pairs, &stem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 LE image with a `.shstrtab` and a `.modinfo` section.
    fn elf(modinfo: &[u8]) -> Vec<u8> {
        let shstr = b"\0.shstrtab\0.modinfo\0";
        let mut d = vec![0u8; 64];
        d[0..4].copy_from_slice(b"\x7fELF");
        d[4] = 2;
        d[5] = 1;
        let str_off = d.len();
        d.extend_from_slice(shstr);
        let mi_off = d.len();
        d.extend_from_slice(modinfo);
        while !d.len().is_multiple_of(8) {
            d.push(0);
        }
        let shoff = d.len();
        let mut sh = |name: u32, off: usize, size: usize| {
            let mut h = vec![0u8; 64];
            h[0..4].copy_from_slice(&name.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            h[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            d.extend_from_slice(&h);
        };
        sh(0, 0, 0);
        sh(1, str_off, shstr.len());
        sh(11, mi_off, modinfo.len());
        d[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        d[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        d[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        d[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
        d
    }

    #[test]
    fn reads_a_synthetic_module() {
        let img = elf(b"alias=vfio_pci:v*d*sv*sd*bc*sc*i*\0depends=vfio_pci_common\0name=vfio_pci_generic\0\0\0");
        let mi = modinfo_of(&img).unwrap();
        assert_eq!(mi.len(), 3);
        let info = ModuleInfo::from_pairs(&mi, "x");
        assert_eq!(info.name, "vfio_pci_generic");
        assert_eq!(info.aliases, vec!["vfio_pci:v*d*sv*sd*bc*sc*i*"]);
        assert_eq!(info.depends, vec!["vfio_pci_common"]);
        let none = ModuleInfo::from_pairs(&[("depends".into(), "".into())], "my-mod");
        assert_eq!(none.name, "my_mod");
        assert!(none.depends.is_empty());
    }

    #[test]
    fn refuses_garbage_without_panicking() {
        assert!(matches!(
            modinfo_of(b""),
            Err(ModinfoError::NotElf64Le { .. })
        ));
        assert!(matches!(
            modinfo_of(b"\x7fELF\x02\x01"),
            Err(ModinfoError::Malformed { .. })
        ));
        let img = elf(b"a=b\0");
        // Every truncation of a valid image fails cleanly.
        for n in 0..img.len() {
            let _ = modinfo_of(&img[..n]);
        }
        // Corrupt each byte of the headers in turn.
        for i in 0..img.len() {
            let mut c = img.clone();
            c[i] = 0xff;
            let _ = modinfo_of(&c);
        }
        let mut no_mi = img.clone();
        // Rename `.modinfo` to `.modinfx`.
        if let Some(p) = no_mi.windows(8).position(|w| w == b".modinfo") {
            no_mi[p + 7] = b'x';
        }
        assert!(matches!(
            modinfo_of(&no_mi),
            Err(ModinfoError::NoModinfo { .. })
        ));
        let e = modinfo(Path::new("/nonexistent/x.ko"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/x.ko"), "{e}");
    }

    #[test]
    fn reads_a_compiled_object() {
        // Any ELF64 relocatable with a .modinfo section will do: make one with the C compiler
        // when available.
        let dir = std::env::temp_dir().join(format!("pcibind-modinfo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = dir.join("m.c");
        std::fs::write(
            &c,
            "__attribute__((section(\".modinfo\"), used)) static const char a[] = \"alias=vfio_pci:v*d*sv*sd*bc*sc*i*\";\n\
             __attribute__((section(\".modinfo\"), used)) static const char d[] = \"depends=vfio_pci_common\";\n",
        )
        .unwrap();
        let o = dir.join("m.o");
        let ok = std::process::Command::new("cc")
            .arg("-c")
            .arg(&c)
            .arg("-o")
            .arg(&o)
            .status();
        if matches!(ok, Ok(s) if s.success()) {
            let mi = ModuleInfo::read(&o).unwrap();
            assert_eq!(mi.name, "m");
            assert_eq!(mi.aliases, vec!["vfio_pci:v*d*sv*sd*bc*sc*i*"]);
            assert_eq!(mi.depends, vec!["vfio_pci_common"]);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
