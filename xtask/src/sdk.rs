// SPDX-License-Identifier: GPL-2.0
//! The installed SDK for variants built outside this repository, and the standalone variant
//! tree `cargo xtask new-variant NAME --standalone DIR` writes.
//!
//! `cargo xtask install` copies, into `<destdir>/usr/src/vfio-pci-rs-sdk-<version>/<release>/`
//! (versioned like `/usr/src/linux-headers-<release>`: one directory per SDK version, one per
//! kernel under it, because the generated bindings and the symbol versions are the kernel's):
//! - every file under `common/sdk/`, whatever other engineers add there, not a fixed list;
//! - every file those reach through `#[path = "..."]` or `include!("...")`, transitively
//!   (today `common/abi.rs`, `common/bindings.rs`, `common/dev_print.rs` and the generated
//!   `common/bindings/generated/vfio_pci_bindings.rs`), at the same relative place, so the
//!   relative paths inside the SDK keep working unchanged;
//! - `Module.symvers` with `vfio_pci_common`'s exports only (modpost of a vendor's build reads
//!   it through `KBUILD_EXTRA_SYMBOLS` and records the dependency on `vfio_pci_common`);
//! - `VERSION`, naming the SDK version, the kernel and the ABI version.
//!
//! A standalone tree reaches the SDK through a symlink `vfio-pci-rs-sdk` its Makefile points at
//! `$(VFIO_PCI_RS_SDK)` before each build; the variant says
//! `#[path = "vfio-pci-rs-sdk/common/sdk/mod.rs"] mod sdk;`.

use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// The SDK's version: the workspace version (`Cargo.toml`), also DKMS's `PACKAGE_VERSION`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The SDK's directory inside the repository.
pub const SDK_DIR: &str = "common/sdk";
/// The name of the symlink to the SDK in a standalone tree.
pub const SDK_LINK: &str = "vfio-pci-rs-sdk";
/// The Makefile variable naming the installed SDK.
pub const SDK_VAR: &str = "VFIO_PCI_RS_SDK";
/// The module whose exports the SDK's `Module.symvers` holds.
const COMMON_MODULE: &str = "vfio_pci_common";

/// Where the SDK for kernel `release` goes, relative to the install root.
pub fn sdk_rel(release: &str) -> PathBuf {
    PathBuf::from(format!("usr/src/vfio-pci-rs-sdk-{VERSION}")).join(release)
}

/// The targets of `#[path = "X"]` and `include!("X")` in a Rust source, as written.
pub fn included_paths(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in source.lines() {
        let t = line.trim_start();
        if t.starts_with("//") {
            continue;
        }
        for (open, close) in [("#[path", "]"), ("include!(", ")")] {
            let Some(at) = t.find(open) else { continue };
            let rest = &t[at + open.len()..];
            let Some(end) = rest.find(close) else {
                continue;
            };
            let inner = &rest[..end];
            if let Some(q1) = inner.find('"') {
                if let Some(q2) = inner[q1 + 1..].find('"') {
                    out.push(inner[q1 + 1..q1 + 1 + q2].to_string());
                }
            }
        }
    }
    out
}

/// Lexically normalised `p` (no `.`, `..` resolved), or `None` if it climbs above its start.
fn normalise(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Every file of the SDK, relative to `root`: all of `common/sdk/` and, transitively, what
/// its Rust files include by path. A path leaving `root` or naming a missing file is an error
/// (the SDK would not build where it is installed).
pub fn sdk_files(root: &Path) -> Result<BTreeSet<PathBuf>> {
    let mut files = BTreeSet::new();
    let mut todo: Vec<PathBuf> = Vec::new();
    let sdk = root.join(SDK_DIR);
    let mut dirs = vec![sdk.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            if e.file_type()?.is_dir() {
                dirs.push(e.path());
            } else {
                todo.push(e.path().strip_prefix(root)?.to_path_buf());
            }
        }
    }
    ensure!(!todo.is_empty(), "{} is empty", sdk.display());
    while let Some(rel) = todo.pop() {
        if !files.insert(rel.clone()) {
            continue;
        }
        if rel.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let abs = root.join(&rel);
        let text =
            std::fs::read_to_string(&abs).with_context(|| format!("reading {}", abs.display()))?;
        let dir = rel.parent().unwrap_or(Path::new(""));
        for inc in included_paths(&text) {
            let Some(target) = normalise(&dir.join(&inc)) else {
                bail!("{}: `{inc}` leaves the tree", abs.display());
            };
            if !root.join(&target).is_file() {
                bail!(
                    "{}: `{inc}` ({}) does not exist: run `cargo xtask build-modules` first \
                     (the generated bindings are part of the SDK)",
                    abs.display(),
                    root.join(&target).display()
                );
            }
            todo.push(target);
        }
    }
    Ok(files)
}

/// The lines of a `Module.symvers` that `module` exports (the module column is a path whose
/// last component is the module name).
pub fn symvers_of(symvers: &str, module: &str) -> String {
    symvers
        .lines()
        .filter(|l| {
            l.split('\t')
                .nth(2)
                .is_some_and(|m| Path::new(m).file_name().is_some_and(|n| n == module))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Copies the SDK of the tree at `root` (built against the kernel of `release`) to `to`, which
/// must not exist yet. Returns the number of files written.
pub fn install_sdk(root: &Path, release: &str, to: &Path) -> Result<usize> {
    ensure!(!to.exists(), "{} already exists", to.display());
    let files = sdk_files(root)?;
    let symvers_path = root.join("Module.symvers");
    let symvers = std::fs::read_to_string(&symvers_path).with_context(|| {
        format!(
            "reading {}: run `cargo xtask build-modules` first",
            symvers_path.display()
        )
    })?;
    let ours = symvers_of(&symvers, COMMON_MODULE);
    ensure!(
        !ours.is_empty(),
        "{} lists no export of {COMMON_MODULE}",
        symvers_path.display()
    );
    for rel in &files {
        let dst = to.join(rel);
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
        }
        std::fs::copy(root.join(rel), &dst)
            .with_context(|| format!("copying {} to {}", rel.display(), dst.display()))?;
    }
    std::fs::write(to.join("Module.symvers"), ours)?;
    let abi = abi_version(&root.join("common/abi.rs")).unwrap_or_else(|| "unknown".into());
    std::fs::write(
        to.join("VERSION"),
        format!(
            "vfio-pci-rs SDK {VERSION} for kernel {release}, ABI version {abi}\n\
             Build a variant against it with `make {SDK_VAR}={}` (see Documentation/sdk-guide.md).\n",
            to.display()
        ),
    )?;
    Ok(files.len() + 2)
}

/// The `ABI_VERSION` constant of `common/abi.rs`, as written.
fn abi_version(abi: &Path) -> Option<String> {
    let text = std::fs::read_to_string(abi).ok()?;
    text.lines().find_map(|l| {
        let at = l.find("const ABI_VERSION")?;
        let v = l[at..].split('=').nth(1)?;
        Some(v.trim().trim_end_matches(';').trim().to_string())
    })
}

/// The Makefile of a standalone variant tree: `make` builds the module against `KDIR` (the
/// running kernel's build directory unless given) and the installed SDK for that kernel.
pub fn standalone_makefile(module: &str) -> String {
    format!(
        r#"# SPDX-License-Identifier: GPL-2.0
# Builds {module}.ko outside the vfio-pci-rs tree, against an installed SDK
# (`cargo xtask install` puts it in /usr/src/vfio-pci-rs-sdk-<version>/<kernel release>/).
#
#   make                        build against the running kernel and its SDK
#   make KDIR=/path/to/build    another kernel build directory (a CONFIG_RUST=y build)
#   make {SDK_VAR}=/path        an SDK installed elsewhere (e.g. under a --destdir)
#   make KRUSTC=/path/to/rustc  the rustc the kernel was built with (default /usr/bin/rustc)
#   make LLVM=1 (or LLVM=-14)   for a kernel built with clang, as for any external module
#   make clean

KDIR ?= /lib/modules/$(shell uname -r)/build
KRUSTC ?= /usr/bin/rustc
KERNEL_RELEASE := $(shell cat $(KDIR)/include/config/kernel.release 2>/dev/null)
{SDK_VAR} ?= /usr/src/vfio-pci-rs-sdk-{VERSION}/$(KERNEL_RELEASE)
MAKEFLAGS += --no-print-directory

all: modules

sdk:
	@test -n "$(KERNEL_RELEASE)" || {{ echo "error: $(KDIR) is not a prepared kernel build (no include/config/kernel.release): pass KDIR=" >&2; exit 1; }}
	@test -f "$({SDK_VAR})/{SDK_DIR}/mod.rs" -a -f "$({SDK_VAR})/Module.symvers" || {{ echo "error: no vfio-pci-rs SDK in $({SDK_VAR}): run \`cargo xtask install\` in vfio-pci-rs, or pass {SDK_VAR}=" >&2; exit 1; }}
	ln -sfn "$({SDK_VAR})" {SDK_LINK}

modules: sdk
	$(MAKE) -C $(KDIR) M=$(CURDIR) RUSTC=$(KRUSTC) HOSTRUSTC=$(KRUSTC) \
		KBUILD_EXTRA_SYMBOLS=$(abspath $({SDK_VAR})/Module.symvers) modules

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) clean
	rm -f {SDK_LINK}

.PHONY: all sdk modules clean
"#
    )
}

/// The standalone tree's variant source: the in-tree one with its SDK path pointing at the
/// symlink instead of `../../common/sdk`.
pub fn standalone_source(in_tree: &str) -> Result<String> {
    let from = format!("#[path = \"../../{SDK_DIR}/mod.rs\"]");
    ensure!(
        in_tree.contains(&from),
        "the template does not include the SDK with `{from}`"
    );
    Ok(in_tree.replacen(
        &from,
        &format!("#[path = \"{SDK_LINK}/{SDK_DIR}/mod.rs\"]"),
        1,
    ))
}

/// `cargo xtask new-variant NAME --standalone DIR`: a vendor's own tree in `dir` (created if
/// missing; files already there are never overwritten): `Kbuild`, `Makefile` and the variant
/// file rendered from the template of the tree at `root`. Returns the module file `make` will
/// build.
pub fn create_standalone(root: &Path, spec: &crate::variant::Spec, dir: &Path) -> Result<PathBuf> {
    use crate::variant::{render_source, validate_name, TEMPLATE_DIR};
    validate_name(&spec.name)?;
    let module = spec.module();
    let tsrc = root
        .join(TEMPLATE_DIR)
        .join(format!("{}.rs", crate::variant::TEMPLATE_MODULE));
    let template =
        std::fs::read_to_string(&tsrc).with_context(|| format!("reading {}", tsrc.display()))?;
    let source = standalone_source(&render_source(&template, &tsrc, spec)?)?;
    let files = [
        (
            "Kbuild".to_string(),
            format!("# SPDX-License-Identifier: GPL-2.0\nobj-m += {module}.o\n"),
        ),
        ("Makefile".to_string(), standalone_makefile(&module)),
        (format!("{module}.rs"), source),
    ];
    for (name, _) in &files {
        if dir.join(name).exists() {
            bail!(
                "{} already exists: new-variant never overwrites a file",
                dir.join(name).display()
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in &files {
        std::fs::write(dir.join(name), text)
            .with_context(|| format!("writing {}", dir.join(name).display()))?;
        println!("    wrote {}", dir.join(name).display());
    }
    Ok(dir.join(format!("{module}.ko")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::repo_root;

    #[test]
    fn finds_path_and_include_targets() {
        let src = "// #[path = \"no.rs\"]\n#[path = \"../abi.rs\"]\nmod abi;\n\
                   include!(\"bindings/generated/x.rs\");\nmod id;\n";
        assert_eq!(
            included_paths(src),
            ["../abi.rs", "bindings/generated/x.rs"]
        );
        assert_eq!(
            normalise(Path::new("common/sdk/../abi.rs")),
            Some(PathBuf::from("common/abi.rs"))
        );
        assert_eq!(normalise(Path::new("common/../../x")), None);
    }

    #[test]
    fn the_sdk_is_the_whole_directory_and_what_it_includes() {
        let root = repo_root();
        let Ok(files) = sdk_files(&root) else {
            // Without generated bindings (nothing built yet) the set is incomplete by design.
            assert!(!root
                .join("common/bindings/generated/vfio_pci_bindings.rs")
                .exists());
            return;
        };
        for f in std::fs::read_dir(root.join(SDK_DIR)).unwrap().flatten() {
            assert!(files.contains(&f.path().strip_prefix(&root).unwrap().to_path_buf()));
        }
        for f in [
            "common/abi.rs",
            "common/bindings.rs",
            "common/dev_print.rs",
            "common/bindings/generated/vfio_pci_bindings.rs",
        ] {
            assert!(files.contains(Path::new(f)), "{f} missing from {files:?}");
        }
        assert!(!files.iter().any(|f| f.starts_with("common/primitives")));
    }

    #[test]
    fn symvers_keeps_the_common_modules_exports_only() {
        let s = "0x0\tvfio_pci_rs_register\t/t/common/vfio_pci_common\tEXPORT_SYMBOL_GPL\t\n\
                 0x0\tfake_thing\t/t/tests/fixtures/fakepci/vfio_test_fakepci\tEXPORT_SYMBOL_GPL\t\n";
        assert_eq!(
            symvers_of(s, "vfio_pci_common"),
            "0x0\tvfio_pci_rs_register\t/t/common/vfio_pci_common\tEXPORT_SYMBOL_GPL\t\n"
        );
    }

    #[test]
    fn standalone_source_points_at_the_link() {
        let skel =
            std::fs::read_to_string(repo_root().join("samples/skeleton/vfio_pci_skeleton.rs"))
                .unwrap();
        let s = standalone_source(&skel).unwrap();
        assert!(s.contains("#[path = \"vfio-pci-rs-sdk/common/sdk/mod.rs\"]"));
        assert!(standalone_source("mod sdk;").is_err());
    }
}
