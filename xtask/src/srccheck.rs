// SPDX-License-Identifier: GPL-2.0
//! Host-side source checks of `cargo xtask test`, run before any guest boots:
//!
//! - `layers-no-import-cycle`: the files of the common module (every `.rs` under `common/`
//!   except `logic/`, a crate of its own, `sdk/`, compiled into the variants, and `bindings/`,
//!   generated) form a directed graph, file -> file, by the `crate::` paths each one uses; the
//!   check fails, naming the files and one chain of imports, on any cycle. `cargo xtask layers`
//!   prints the graph.
//! - `rustfmt-kbuild-files`: `rustfmt --check` on the Rust files Kbuild builds, which are in no
//!   cargo workspace, so `cargo fmt` never reaches them. `cargo xtask fmt` formats them.
//!
//! The graph is read from the tokens of each file (comments and string literals dropped), not
//! from rustc: `use crate::...` trees (grouped, nested, `self`, `as`), `crate::...` paths
//! anywhere in code, and paths that start with a name a `use crate::...` brought in (so
//! `use crate::features;` then `features::bar::zap()` is an edge to `features/bar.rs`). A path
//! belongs to the file of its longest prefix that is a module with a file of its own: module
//! files are found from the `mod` items of the crate root down (inline `mod a { mod b; }`,
//! `#[path]`), else by the usual layout (`common/a/b.rs`, `common/a/b/mod.rs`). Paths into
//! `crate::logic` (the logic crate, `#[path = "logic/src"]`) and paths that name no file are not
//! edges; neither are `super::`/`self::` paths, nor items of the crate root itself.

use crate::guest::Counts;
use crate::util::{show, step};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

/// The name of the import-cycle check.
pub const LAYERS: &str = "layers-no-import-cycle";
/// The name of the formatting check.
pub const RUSTFMT: &str = "rustfmt-kbuild-files";
/// The common module's crate root, in `common/`.
pub const CRATE_ROOT: &str = "vfio_pci_common_main.rs";
/// Directories of `common/` whose files are not in the graph: the logic crate (its own crate,
/// `#[path]`-included), the SDK (compiled into the variants) and the generated bindings.
const NOT_IN_GRAPH: [&str; 3] = ["logic", "sdk", "bindings"];
/// How many file names a failure message lists.
const LIST_IN_MESSAGE: usize = 5;

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    /// An identifier or keyword (a raw identifier without its `r#`).
    Ident(String),
    /// The contents of a string literal (plain, byte, C or raw).
    Str(String),
    /// `::`
    PathSep,
    /// Any other character (numbers and character literals are dropped).
    Punct(char),
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// A string literal starting at `c[i]` (with an optional `b`, `c`, `r`, `br` or `cr` prefix):
/// (index after it, contents, newlines in it).
fn string_literal(c: &[char], i: usize) -> Option<(usize, String, usize)> {
    let mut j = i;
    if matches!(c.get(j), Some('b') | Some('c')) {
        j += 1;
    }
    let raw = c.get(j) == Some(&'r');
    if raw {
        j += 1;
    }
    let mut hashes = 0;
    if raw {
        while c.get(j) == Some(&'#') {
            hashes += 1;
            j += 1;
        }
    }
    if c.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    let start = j;
    let mut text = String::new();
    loop {
        let Some(&ch) = c.get(j) else {
            // Unterminated: the rest of the file is the literal.
            let nl = c[start..].iter().filter(|&&x| x == '\n').count();
            return Some((c.len(), text, nl));
        };
        if ch == '"' && (0..hashes).all(|k| c.get(j + 1 + k) == Some(&'#')) {
            let nl = c[start..j].iter().filter(|&&x| x == '\n').count();
            return Some((j + 1 + hashes, text, nl));
        }
        if ch == '\\' && !raw {
            if let Some(&next) = c.get(j + 1) {
                text.push(next);
            }
            j += 2;
            continue;
        }
        text.push(ch);
        j += 1;
    }
}

/// The tokens of a Rust source file, without comments (doc comments included), numbers and
/// character literals.
fn lex(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            // Block comments nest.
            let mut depth = 0usize;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if let Some((end, text, nl)) = string_literal(&c, i) {
            out.push(Token {
                tok: Tok::Str(text),
                line,
            });
            line += nl;
            i = end;
        } else if ch == '\'' {
            if c.get(i + 1) == Some(&'\\') {
                // '\n', '\'', '\u{..}': up to the closing quote after the escaped character.
                let mut j = i + 3;
                while j < c.len() && c[j] != '\'' && c[j] != '\n' {
                    j += 1;
                }
                i = j + 1;
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                // A lifetime or label: its name follows as an identifier.
                i += 1;
            }
        } else if ch == 'r'
            && c.get(i + 1) == Some(&'#')
            && c.get(i + 2).is_some_and(|&x| is_ident_start(x))
        {
            let start = i + 2;
            let mut j = start;
            while j < c.len() && is_ident_char(c[j]) {
                j += 1;
            }
            out.push(Token {
                tok: Tok::Ident(c[start..j].iter().collect()),
                line,
            });
            i = j;
        } else if is_ident_start(ch) {
            let mut j = i;
            while j < c.len() && is_ident_char(c[j]) {
                j += 1;
            }
            out.push(Token {
                tok: Tok::Ident(c[i..j].iter().collect()),
                line,
            });
            i = j;
        } else if ch.is_ascii_digit() {
            while i < c.len() && is_ident_char(c[i]) {
                i += 1;
            }
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push(Token {
                tok: Tok::PathSep,
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                tok: Tok::Punct(ch),
                line,
            });
            i += 1;
        }
    }
    out
}

fn ident(t: &[Token], i: usize) -> Option<&str> {
    match t.get(i).map(|t| &t.tok) {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

fn is(t: &[Token], i: usize, want: &Tok) -> bool {
    t.get(i).is_some_and(|t| &t.tok == want)
}

// ---------------------------------------------------------------------------------------------
// `crate::` paths of one file

/// One path a `use` brings in.
#[derive(Clone, Debug, PartialEq, Eq)]
struct UsePath {
    segs: Vec<String>,
    /// The name it is bound to in the file (`None` for a glob or `as _`).
    binding: Option<String>,
    line: usize,
}

/// Parses the use tree at `t[*i]` with the path `prefix` before it; `*i` ends after the tree.
fn use_tree(t: &[Token], i: &mut usize, prefix: &[String], line: usize, out: &mut Vec<UsePath>) {
    let mut segs = prefix.to_vec();
    let mut line = line;
    if is(t, *i, &Tok::PathSep) {
        *i += 1;
    }
    loop {
        match t.get(*i).map(|t| &t.tok) {
            Some(Tok::Ident(s)) => {
                segs.push(s.clone());
                line = t[*i].line;
                *i += 1;
                if is(t, *i, &Tok::PathSep) {
                    *i += 1;
                    continue;
                }
                let mut binding = segs.last().cloned();
                if segs.last().is_some_and(|s| s == "self") {
                    segs.pop();
                    binding = segs.last().cloned();
                }
                if ident(t, *i) == Some("as") {
                    *i += 1;
                    binding = ident(t, *i).filter(|a| *a != "_").map(str::to_string);
                    if t.get(*i).is_some() {
                        *i += 1;
                    }
                }
                out.push(UsePath {
                    segs,
                    binding,
                    line,
                });
                return;
            }
            Some(Tok::Punct('*')) => {
                *i += 1;
                out.push(UsePath {
                    segs,
                    binding: None,
                    line,
                });
                return;
            }
            Some(Tok::Punct('{')) => {
                *i += 1;
                loop {
                    if is(t, *i, &Tok::Punct('}')) {
                        *i += 1;
                        return;
                    }
                    let before = *i;
                    use_tree(t, i, &segs, line, out);
                    if is(t, *i, &Tok::Punct(',')) {
                        *i += 1;
                    } else if *i == before || !is(t, *i, &Tok::Punct('}')) {
                        // Not a use tree after all: stop where it went wrong.
                        return;
                    }
                }
            }
            _ => return,
        }
    }
}

/// Every `crate::` path of a file, with its line: the leaves of `use crate::...` trees,
/// `crate::...` paths in code, and paths starting with a name a `use crate::...` bound.
fn crate_paths(t: &[Token]) -> Vec<(Vec<String>, usize)> {
    let mut out = Vec::new();
    let mut bindings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut in_use = vec![false; t.len()];
    let mut i = 0;
    while i < t.len() {
        if ident(t, i) == Some("use") && !(i > 0 && is(t, i - 1, &Tok::PathSep)) {
            let start = i;
            i += 1;
            let mut paths = Vec::new();
            use_tree(t, &mut i, &[], t[start].line, &mut paths);
            for flag in in_use.iter_mut().take(i).skip(start) {
                *flag = true;
            }
            for p in paths {
                if p.segs.first().is_some_and(|s| s == "crate") && p.segs.len() > 1 {
                    if let Some(b) = &p.binding {
                        bindings.insert(b.clone(), p.segs.clone());
                    }
                    out.push((p.segs, p.line));
                }
            }
            if i == start + 1 {
                // `use<'a>` in an `impl Trait` bound, or a stray keyword.
                continue;
            }
        } else {
            i += 1;
        }
    }
    for i in 0..t.len() {
        if in_use[i] || (i > 0 && (is(t, i - 1, &Tok::PathSep) || is(t, i - 1, &Tok::Punct('.')))) {
            continue;
        }
        let Some(first) = ident(t, i) else { continue };
        let mut segs = match (first, bindings.get(first)) {
            ("crate", _) => vec!["crate".to_string()],
            (_, Some(target)) => target.clone(),
            _ => continue,
        };
        let base = segs.len();
        let mut j = i + 1;
        while is(t, j, &Tok::PathSep) {
            match ident(t, j + 1) {
                Some(s) => {
                    segs.push(s.to_string());
                    j += 2;
                }
                None => break,
            }
        }
        if segs.len() > base {
            out.push((segs, t[i].line));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Modules and files

/// `..` and `.` removed without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A file's name in the graph (relative to `common/`, `/`-separated), or `None` for a file
/// outside it.
fn graph_name(common: &Path, file: &Path) -> Option<String> {
    let rel = normalize(file)
        .strip_prefix(normalize(common))
        .ok()?
        .to_path_buf();
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.is_empty() || !parts.last()?.ends_with(".rs") || parts.iter().any(|p| p == "..") {
        return None;
    }
    if parts.len() > 1 && NOT_IN_GRAPH.contains(&parts[0].as_str()) {
        return None;
    }
    Some(parts.join("/"))
}

/// What the `mod` items say about where modules live.
#[derive(Default, Debug)]
struct Modules {
    /// Module path (without `crate`) -> the file it was declared to live in.
    files: BTreeMap<Vec<String>, PathBuf>,
    /// Modules whose items are outside the graph (the logic crate, the SDK, the bindings).
    opaque: BTreeSet<Vec<String>>,
}

impl Modules {
    /// Reads the `mod` items of `file` (module path `modpath`) and of the files they name.
    /// `mod_rs`: the crate root, a `mod.rs` or a `#[path]` file, whose child modules live in
    /// its own directory (for `a.rs`, in `a/`).
    fn collect(
        &mut self,
        common: &Path,
        file: &Path,
        modpath: &[String],
        mod_rs: bool,
        seen: &mut BTreeSet<PathBuf>,
    ) {
        if !seen.insert(normalize(file)) {
            return;
        }
        let Ok(src) = std::fs::read_to_string(file) else {
            return;
        };
        let t = lex(&src);
        let dir = file.parent().unwrap_or(Path::new("")).to_path_buf();
        let base = if mod_rs {
            dir.clone()
        } else {
            dir.join(file.file_stem().unwrap_or_default())
        };
        // One entry per open brace: Some((name, directory)) for an inline module.
        let mut scopes: Vec<Option<(String, PathBuf)>> = Vec::new();
        let mut path_attr: Option<String> = None;
        let mut i = 0;
        while i < t.len() {
            if is(&t, i, &Tok::Punct('#'))
                && is(&t, i + 1, &Tok::Punct('['))
                && ident(&t, i + 2) == Some("path")
                && is(&t, i + 3, &Tok::Punct('='))
                && is(&t, i + 5, &Tok::Punct(']'))
            {
                if let Some(Tok::Str(p)) = t.get(i + 4).map(|t| &t.tok) {
                    path_attr = Some(p.clone());
                    i += 6;
                    continue;
                }
            }
            let inline: Vec<&(String, PathBuf)> = scopes.iter().flatten().collect();
            let cur_dir = inline.last().map_or(base.clone(), |(_, d)| d.clone());
            if ident(&t, i) == Some("mod") {
                if let Some(name) = ident(&t, i + 1) {
                    let mut child: Vec<String> = modpath.to_vec();
                    child.extend(inline.iter().map(|(n, _)| n.clone()));
                    child.push(name.to_string());
                    if is(&t, i + 2, &Tok::Punct('{')) {
                        let d = normalize(&cur_dir.join(path_attr.as_deref().unwrap_or(name)));
                        if graph_name(common, &d.join("x.rs")).is_none() {
                            self.opaque.insert(child);
                        }
                        scopes.push(Some((name.to_string(), d)));
                        path_attr = None;
                        i += 3;
                        continue;
                    }
                    if is(&t, i + 2, &Tok::Punct(';')) {
                        let (target, target_mod_rs) = match &path_attr {
                            Some(p) if inline.is_empty() => (dir.join(p), true),
                            Some(p) => (cur_dir.join(p), true),
                            None => {
                                let flat = cur_dir.join(format!("{name}.rs"));
                                if flat.is_file() {
                                    (flat, false)
                                } else {
                                    (cur_dir.join(name).join("mod.rs"), true)
                                }
                            }
                        };
                        let target = normalize(&target);
                        if graph_name(common, &target).is_none() {
                            self.opaque.insert(child.clone());
                        } else {
                            self.collect(common, &target, &child, target_mod_rs, seen);
                        }
                        self.files.insert(child, target);
                        path_attr = None;
                        i += 3;
                        continue;
                    }
                }
            }
            match &t[i].tok {
                Tok::Punct('{') => {
                    scopes.push(None);
                    path_attr = None;
                }
                Tok::Punct('}') => {
                    scopes.pop();
                    path_attr = None;
                }
                Tok::Punct(';') => path_attr = None,
                _ => {}
            }
            i += 1;
        }
    }

    /// The graph file a `crate::` path (`segs` without `crate`) belongs to.
    fn resolve(&self, common: &Path, segs: &[String]) -> Option<String> {
        if (1..=segs.len()).any(|k| self.opaque.contains(&segs[..k])) {
            return None;
        }
        for k in (1..=segs.len()).rev() {
            let prefix = &segs[..k];
            if let Some(f) = self.files.get(prefix) {
                if f.is_file() {
                    return graph_name(common, f);
                }
            }
            let dir: PathBuf = prefix[..k - 1].iter().collect();
            let flat = common.join(&dir).join(format!("{}.rs", prefix[k - 1]));
            if flat.is_file() {
                return graph_name(common, &flat);
            }
            let nested = common.join(&dir).join(&prefix[k - 1]).join("mod.rs");
            if nested.is_file() {
                return graph_name(common, &nested);
            }
        }
        None
    }
}

/// Every `.rs` file under `dir`, recursively, skipping `target/` and hidden directories and
/// directories for which `skip` says so.
fn walk_rs(dir: &Path, skip: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let ft = entry
            .file_type()
            .with_context(|| format!("reading {}", path.display()))?;
        if ft.is_dir() {
            if name == "target" || name.starts_with('.') || skip(&path) {
                continue;
            }
            walk_rs(&path, skip, out)?;
        } else if name.ends_with(".rs") && path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The graph

/// Where an edge comes from: the first path that makes it.
#[derive(Clone, Debug)]
pub struct Via {
    /// The path as the resolver saw it (`crate::features::bar::zap`).
    pub path: String,
    /// Its line in the importing file.
    pub line: usize,
    /// How many paths of the importing file resolve to the same file.
    pub count: usize,
}

/// The import graph of the common module's files.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Every file, relative to `common/`.
    pub files: BTreeSet<String>,
    /// importer -> imported -> why.
    pub edges: BTreeMap<String, BTreeMap<String, Via>>,
}

impl Graph {
    fn targets(&self, f: &str) -> impl Iterator<Item = (&String, &Via)> {
        self.edges.get(f).into_iter().flatten()
    }

    pub fn edge_count(&self) -> usize {
        self.edges.values().map(BTreeMap::len).sum()
    }
}

/// Reads the graph of `common` (a directory holding `vfio_pci_common_main.rs`).
pub fn build_graph(common: &Path) -> Result<Graph> {
    let root = common.join(CRATE_ROOT);
    if !root.is_file() {
        bail!("no crate root {}", root.display());
    }
    let mut found = Vec::new();
    walk_rs(
        common,
        &|d| {
            d.parent() == Some(common)
                && d.file_name()
                    .is_some_and(|n| NOT_IN_GRAPH.iter().any(|x| n == *x))
        },
        &mut found,
    )?;
    let mut mods = Modules::default();
    mods.collect(common, &root, &[], true, &mut BTreeSet::new());
    let mut g = Graph::default();
    let mut sources = Vec::new();
    for path in found {
        let Some(name) = graph_name(common, &path) else {
            continue;
        };
        match std::fs::read_to_string(&path) {
            Ok(src) => {
                g.files.insert(name.clone());
                sources.push((name, src));
            }
            // Moved away while we read the tree.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    for (name, src) in sources {
        for (segs, line) in crate_paths(&lex(&src)) {
            let Some(to) = mods.resolve(common, &segs[1..]) else {
                continue;
            };
            if to == name || !g.files.contains(&to) {
                continue;
            }
            g.edges
                .entry(name.clone())
                .or_default()
                .entry(to)
                .or_insert_with(|| Via {
                    path: segs.join("::"),
                    line,
                    count: 0,
                })
                .count += 1;
        }
    }
    Ok(g)
}

/// The strongly connected components of the graph (Tarjan), each sorted, in reverse
/// topological order (a component comes after every component it imports from).
pub fn components(g: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        g: &'a Graph,
        next: usize,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            for (w, _) in self.g.targets(v) {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    scc.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                scc.sort();
                self.out.push(scc);
            }
        }
    }
    let mut t = Tarjan {
        g,
        next: 0,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for f in &g.files {
        if !t.index.contains_key(f.as_str()) {
            t.visit(f);
        }
    }
    t.out
}

/// The import cycles: components of more than one file (a file's paths to itself are never
/// edges).
pub fn cycles(g: &Graph) -> Vec<Vec<String>> {
    let mut c: Vec<Vec<String>> = components(g).into_iter().filter(|c| c.len() > 1).collect();
    c.sort();
    c
}

fn hop(g: &Graph, from: &str, to: &str) -> String {
    match g.edges.get(from).and_then(|e| e.get(to)) {
        Some(v) => format!("{to} ({}, {from}:{})", v.path, v.line),
        None => to.to_string(),
    }
}

/// One shortest chain of imports around a cycle through its first file, e.g.
/// `a.rs -> b.rs (crate::b::f, a.rs:3) -> a.rs (crate::a::T, b.rs:7)`.
pub fn witness(g: &Graph, scc: &[String]) -> String {
    let Some(start) = scc.first() else {
        return String::new();
    };
    let inside: BTreeSet<&str> = scc.iter().map(String::as_str).collect();
    let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start.as_str()]);
    while let Some(u) = queue.pop_front() {
        for (v, _) in g.targets(u) {
            let v = v.as_str();
            if v == start {
                let mut chain = vec![u];
                while let Some(p) = prev.get(chain.last().copied().unwrap_or(start)) {
                    chain.push(p);
                }
                chain.reverse();
                chain.push(start);
                let mut s = start.to_string();
                for w in chain.windows(2) {
                    s.push_str(" -> ");
                    s.push_str(&hop(g, w[0], w[1]));
                }
                return s;
            }
            if inside.contains(v) && !prev.contains_key(v) && v != start {
                prev.insert(v, u);
                queue.push_back(v);
            }
        }
    }
    scc.join(", ")
}

/// One line per cycle: its files and a witness chain.
pub fn cycle_messages(g: &Graph) -> Vec<String> {
    cycles(g)
        .iter()
        .map(|c| {
            format!(
                "import cycle among {} files: {}; e.g. {}",
                c.len(),
                c.join(", "),
                witness(g, c)
            )
        })
        .collect()
}

/// The layer of each file: 0 for a file that imports none, else one more than the highest
/// layer it imports from (the files of a cycle share one).
fn layers(g: &Graph) -> BTreeMap<usize, Vec<String>> {
    let comps = components(g);
    let mut comp_of: BTreeMap<&str, usize> = BTreeMap::new();
    for (k, c) in comps.iter().enumerate() {
        for f in c {
            comp_of.insert(f, k);
        }
    }
    // Reverse topological order: every component a component imports from comes first.
    let mut level = vec![0usize; comps.len()];
    for (k, c) in comps.iter().enumerate() {
        for f in c {
            for (to, _) in g.targets(f) {
                let kt = comp_of[to.as_str()];
                if kt != k {
                    level[k] = level[k].max(level[kt] + 1);
                }
            }
        }
    }
    let mut out: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (k, c) in comps.into_iter().enumerate() {
        out.entry(level[k]).or_default().extend(c);
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// `cargo xtask layers`: prints the graph of `common/` and fails on a cycle.
pub fn layers_cmd(root: &Path) -> Result<()> {
    let common = root.join("common");
    let g = build_graph(&common)?;
    println!(
        "import graph of {} ({} files, {} edges; `crate::` paths; {} not included)",
        common.display(),
        g.files.len(),
        g.edge_count(),
        NOT_IN_GRAPH.map(|d| format!("{d}/")).join(", ")
    );
    let width = g.files.iter().map(String::len).max().unwrap_or(0);
    for f in &g.files {
        println!("{f}");
        let mut any = false;
        for (to, via) in g.targets(f) {
            any = true;
            let more = if via.count > 1 {
                format!(" (+{} more)", via.count - 1)
            } else {
                String::new()
            };
            println!("    -> {to:width$}  {} (line {}){more}", via.path, via.line);
        }
        if !any {
            println!("    (imports no file)");
        }
    }
    println!();
    println!("layers, bottom up (a file imports only from lower layers, or its own cycle):");
    for (level, files) in layers(&g) {
        println!("    {level:>2}: {}", files.join(", "));
    }
    println!();
    let cyc = cycles(&g);
    if cyc.is_empty() {
        println!("no import cycle");
        return Ok(());
    }
    for (k, c) in cyc.iter().enumerate() {
        println!("cycle {}: {} files: {}", k + 1, c.len(), c.join(", "));
        println!("    e.g. {}", witness(&g, c));
        println!("    edges inside the cycle:");
        let inside: BTreeSet<&String> = c.iter().collect();
        for f in c {
            for (to, via) in g.targets(f) {
                if inside.contains(to) {
                    println!("        {f} -> {to}  {} (line {})", via.path, via.line);
                }
            }
        }
    }
    Err(anyhow!(
        "{} import cycle{} in {}",
        cyc.len(),
        if cyc.len() == 1 { "" } else { "s" },
        common.display()
    ))
}

// ---------------------------------------------------------------------------------------------
// rustfmt on the Kbuild files

/// The Rust files Kbuild builds, relative to `root`, sorted: every `.rs` under `common/`
/// except `common/logic/` (a workspace crate) and `common/bindings/generated/`, and under
/// `variants/`, `samples/`, `tests/variants/` and `tests/fixtures/`.
pub fn kbuild_rust_files(root: &Path) -> Result<Vec<PathBuf>> {
    let skip_common = [
        root.join("common/logic"),
        root.join("common/bindings/generated"),
    ];
    let mut out = Vec::new();
    for top in [
        "common",
        "variants",
        "samples",
        "tests/variants",
        "tests/fixtures",
    ] {
        walk_rs(
            &root.join(top),
            &|d| skip_common.iter().any(|s| s == d),
            &mut out,
        )?;
    }
    let mut rel: Vec<PathBuf> = out
        .into_iter()
        .filter_map(|p| p.strip_prefix(root).ok().map(Path::to_path_buf))
        .collect();
    rel.sort();
    rel.dedup();
    Ok(rel)
}

/// Check only, or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FmtMode {
    Check,
    Write,
}

/// A directory of its own under the system temporary directory.
fn scratch_dir(tag: &str) -> Result<PathBuf> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let d = std::env::temp_dir().join(format!(
        "xtask-{tag}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    Ok(d)
}

/// Whether this rustfmt honours `--config skip_children=true` (an unstable option that the
/// stable rustfmt 1.9 accepts): formats a file declaring a module that does not exist.
fn skip_children_works() -> bool {
    let Ok(dir) = scratch_dir("rustfmt-probe") else {
        return false;
    };
    let file = dir.join("probe.rs");
    let ok = std::fs::write(&file, "mod absent_child;\n").is_ok()
        && Command::new("rustfmt")
            .args([
                "--check",
                "--edition",
                "2021",
                "--config",
                "skip_children=true",
            ])
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .map(|o| o.status.success() && o.stdout.is_empty() && o.stderr.is_empty())
            .unwrap_or(false);
    let _ = std::fs::remove_dir_all(&dir);
    ok
}

/// One file through rustfmt's standard input, which never follows `mod` items.
fn format_via_stdin(file: &Path) -> Result<String> {
    use std::io::Write;
    let src = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let mut cmd = Command::new("rustfmt");
    cmd.args(["--edition", "2021", "--emit", "stdout"])
        .current_dir(file.parent().unwrap_or(Path::new(".")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| {
        format!(
            "cannot start `{}` (rustup component add rustfmt)",
            show(&cmd)
        )
    })?;
    let mut stdin = child.stdin.take().context("rustfmt stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(&src));
    let out = child.wait_with_output()?;
    let _ = writer.join();
    if !out.status.success() {
        bail!(
            "rustfmt failed on {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs rustfmt (edition 2021, each file on its own: `mod` items are not followed) on
/// `files` (relative to `root`). Returns the files that are not formatted (`Check`) or that
/// were rewritten (`Write`), relative to `root`.
pub fn rustfmt_files(root: &Path, files: &[PathBuf], mode: FmtMode) -> Result<Vec<PathBuf>> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    if !skip_children_works() {
        println!("    (this rustfmt ignores skip_children: one file at a time, via stdin)");
        let mut changed = Vec::new();
        for f in files {
            let abs = root.join(f);
            let formatted = format_via_stdin(&abs)?;
            let now = std::fs::read_to_string(&abs)
                .with_context(|| format!("reading {}", abs.display()))?;
            if formatted != now {
                if mode == FmtMode::Write {
                    std::fs::write(&abs, formatted)
                        .with_context(|| format!("writing {}", abs.display()))?;
                }
                changed.push(f.clone());
            }
        }
        return Ok(changed);
    }
    let mut cmd = Command::new("rustfmt");
    if mode == FmtMode::Check {
        cmd.arg("--check");
    }
    cmd.args([
        "--files-with-diff",
        "--edition",
        "2021",
        "--config",
        "skip_children=true",
    ])
    .args(files)
    .current_dir(root)
    .stdin(Stdio::null());
    println!("    $ {}", show(&cmd));
    let out = cmd.output().with_context(|| {
        format!(
            "cannot start `{}` (rustup component add rustfmt)",
            show(&cmd)
        )
    })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        let tail: Vec<&str> = stderr.lines().take(30).collect();
        bail!(
            "rustfmt reported errors ({}):\n{}",
            out.status,
            tail.join("\n")
        );
    }
    let changed = parse_files_with_diff(root, &String::from_utf8_lossy(&out.stdout));
    if !out.status.success() && (mode == FmtMode::Write || changed.is_empty()) {
        bail!("`{}` failed with {}", show(&cmd), out.status);
    }
    Ok(changed)
}

/// The file names `rustfmt --files-with-diff` printed, relative to `root` where possible.
fn parse_files_with_diff(root: &Path, stdout: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let p = Path::new(l);
            p.strip_prefix(root).unwrap_or(p).to_path_buf()
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// `cargo xtask fmt`: formats the Kbuild files in place; with `--check`, the check of
/// `cargo xtask test` alone.
pub fn fmt_cmd(root: &Path, check: bool) -> Result<()> {
    if check {
        step(format!(
            "{RUSTFMT}: rustfmt --check on the Rust files Kbuild builds"
        ));
        return match rustfmt_check(root) {
            Ok(detail) => {
                println!("PASS {RUSTFMT}{detail}");
                Ok(())
            }
            Err(why) => Err(anyhow!("{why}")),
        };
    }
    let files = kbuild_rust_files(root)?;
    step(format!(
        "rustfmt --edition 2021 on the {} Rust files Kbuild builds",
        files.len()
    ));
    let changed = rustfmt_files(root, &files, FmtMode::Write)?;
    for f in &changed {
        println!("    formatted {}", f.display());
    }
    println!(
        "{} of {} files reformatted (the cargo workspace: `cargo fmt --all`)",
        changed.len(),
        files.len()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The checks of `cargo xtask test`

/// Counts one host check: `PASS host: NAME<detail>`, or a failure with its reason.
pub fn record(c: &mut Counts, name: &str, r: Result<String, String>) {
    match r {
        Ok(detail) => {
            c.passed += 1;
            println!("PASS host: {name}{detail}");
        }
        Err(why) => {
            c.failed += 1;
            println!("FAIL host: {name}: {why}");
            c.failures.push(format!("host: {name}: {why}"));
        }
    }
}

/// `layers-no-import-cycle` on `root`'s `common/`.
pub fn layers_check(root: &Path) -> Result<String, String> {
    let common = root.join("common");
    let g = build_graph(&common).map_err(|e| format!("{e:#}"))?;
    let msgs = cycle_messages(&g);
    if msgs.is_empty() {
        Ok(format!(
            " ({} files, {} edges, no cycle)",
            g.files.len(),
            g.edge_count()
        ))
    } else {
        Err(format!(
            "{} (`cargo xtask layers` prints the graph)",
            msgs.join("; ")
        ))
    }
}

/// `rustfmt-kbuild-files` on `root`.
pub fn rustfmt_check(root: &Path) -> Result<String, String> {
    let files = kbuild_rust_files(root).map_err(|e| format!("{e:#}"))?;
    if files.is_empty() {
        return Err(format!(
            "no Kbuild Rust files found under {}",
            root.display()
        ));
    }
    let bad = rustfmt_files(root, &files, FmtMode::Check).map_err(|e| format!("{e:#}"))?;
    if bad.is_empty() {
        return Ok(format!(" ({} files)", files.len()));
    }
    for f in &bad {
        println!("    not formatted: {}", f.display());
    }
    let shown: Vec<String> = bad
        .iter()
        .take(LIST_IN_MESSAGE)
        .map(|f| f.display().to_string())
        .collect();
    let more = if bad.len() > LIST_IN_MESSAGE {
        format!(" and {} more", bad.len() - LIST_IN_MESSAGE)
    } else {
        String::new()
    };
    Err(format!(
        "{} of {} files differ from rustfmt: {}{more}; fix with `cargo xtask fmt`",
        bad.len(),
        files.len(),
        shown.join(", ")
    ))
}

/// Both source checks on `root`: two checks of the summary.
pub fn source_checks(root: &Path) -> Counts {
    let mut c = Counts::default();
    step("source checks: import cycles in common/, rustfmt on the Kbuild files");
    record(&mut c, LAYERS, layers_check(root));
    record(&mut c, RUSTFMT, rustfmt_check(root));
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::repo_root;

    /// A fake tree under the temporary directory; removed on drop.
    struct Tree(PathBuf);

    impl Tree {
        fn new(tag: &str) -> Tree {
            Tree(scratch_dir(tag).unwrap())
        }
        fn write(&self, rel: &str, text: &str) -> &Tree {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
            self
        }
        fn common(&self) -> PathBuf {
            self.0.join("common")
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn paths(src: &str) -> Vec<String> {
        crate_paths(&lex(src))
            .into_iter()
            .map(|(s, _)| s.join("::"))
            .collect()
    }

    #[test]
    fn lexer_drops_comments_strings_and_chars() {
        let src = r##"
            // crate::a::line_comment
            /// crate::a::doc
            //! crate::a::inner_doc
            /* crate::a::block /* nested crate::a::x */ still crate::a::y */
            /** crate::a::block_doc */
            fn f<'a>(x: &'a u8) -> char {
                let s = "crate::a::string \" crate::a::escaped";
                let r = r#"crate::a::raw " crate::a::raw2"#;
                let b = b"crate::a::bytes";
                let q = '"'; let e = '\''; let u = '\u{1F600}';
                crate::real::path(s, r, b, q, e, u, 1.5e3, 0x1f_u32);
                '{'
            }
        "##;
        assert_eq!(paths(src), ["crate::real::path"]);
        let strs: Vec<Tok> = lex(src)
            .into_iter()
            .map(|t| t.tok)
            .filter(|t| matches!(t, Tok::Str(_)))
            .collect();
        assert_eq!(strs.len(), 3);
        assert_eq!(strs[1], Tok::Str("crate::a::raw \" crate::a::raw2".into()));
    }

    #[test]
    fn lexer_counts_lines() {
        let t = lex("/* a\n b */ \"x\ny\"\n// c\nfoo");
        assert_eq!(t.last().unwrap().tok, Tok::Ident("foo".into()));
        assert_eq!(t.last().unwrap().line, 5);
    }

    #[test]
    fn use_trees_expand() {
        let src = "
            use crate::a::b;
            use crate::{a::X, b::{c, d}};
            use crate::e::{self, F};
            use crate::{
                g::{
                    h::{self as hh, I},
                },
                j::K as _,
            };
            use crate::k::*;
            use kernel::prelude::*;
            pub(crate) use crate::l::M;
            use ::core::ptr;
        ";
        assert_eq!(
            paths(src),
            [
                "crate::a::b",
                "crate::a::X",
                "crate::b::c",
                "crate::b::d",
                "crate::e",
                "crate::e::F",
                "crate::g::h",
                "crate::g::h::I",
                "crate::j::K",
                "crate::k",
                "crate::l::M",
            ]
        );
    }

    #[test]
    fn inline_paths_and_use_bindings() {
        let src = "
            use crate::features;
            use crate::state::{self as st};
            use crate::x::Y;
            pub(crate) fn f(d: &crate::state::DeviceState) -> crate::a::T<u8> {
                features::bar::zap(d);
                st::lock(d);
                <crate::b::C as Trait>::g::<u8>();
                Y::new();
                d.features::<u8>();
                kernel::features::nothing();
                $crate::m::n!();
            }
        ";
        assert_eq!(
            paths(src),
            [
                "crate::features",
                "crate::state",
                "crate::x::Y",
                "crate::state::DeviceState",
                "crate::a::T",
                "crate::features::bar::zap",
                "crate::state::lock",
                "crate::b::C",
                "crate::x::Y::new",
                "crate::m::n",
            ]
        );
    }

    #[test]
    fn precise_capture_use_is_not_a_use_item() {
        let src = "fn f<'a>() -> impl Sized + use<'a> { crate::a::b() }";
        assert_eq!(paths(src), ["crate::a::b"]);
    }

    /// A crate root with an inline `mod a { mod b; mod c; }`, an out-of-line `mod top;`, a
    /// `#[path]` module, the logic crate and files outside the graph.
    fn fake_common(tag: &str) -> Tree {
        let t = Tree::new(tag);
        t.write(
            "common/vfio_pci_common_main.rs",
            "// SPDX-License-Identifier: GPL-2.0\n\
             #[path = \"logic/src\"]\n\
             mod logic {\n    pub(crate) mod l;\n}\n\
             /// Doc.\n\
             mod a {\n    pub(crate) mod b;\n    pub(crate) mod c;\n}\n\
             mod top;\n\
             #[path = \"odd/renamed.rs\"]\n\
             mod shared;\n\
             fn init() { a::b::go(); }\n",
        )
        .write(
            "common/top.rs",
            "use crate::{\n    a::{\n        b::Thing,\n        c,\n    },\n    logic::l::X,\n};\n\
             // crate::a::zzz in a comment\n\
             fn f() { crate::a::b::func(); let _ = \"crate::top::no\"; crate::shared::s(); }\n",
        )
        .write("common/a/b.rs", "use crate::a::c::{self, Other};\n")
        .write(
            "common/a/c.rs",
            "pub(crate) fn g() { crate::logic::l::h(); }\n",
        )
        .write("common/odd/renamed.rs", "pub(crate) fn s() {}\n")
        .write("common/logic/src/l.rs", "use crate::top::Y;\n")
        .write("common/sdk/mod.rs", "use crate::top::Z;\n")
        .write("common/bindings/generated/gen.rs", "use crate::top::W;\n");
        t
    }

    fn edges(g: &Graph) -> Vec<String> {
        g.edges
            .iter()
            .flat_map(|(f, to)| to.keys().map(move |t| format!("{f} -> {t}")))
            .collect()
    }

    #[test]
    fn layered_tree_has_no_cycle() {
        let t = fake_common("layers-ok");
        let g = build_graph(&t.common()).unwrap();
        assert_eq!(
            g.files.iter().map(String::as_str).collect::<Vec<_>>(),
            [
                "a/b.rs",
                "a/c.rs",
                "odd/renamed.rs",
                "top.rs",
                "vfio_pci_common_main.rs"
            ]
        );
        assert_eq!(
            edges(&g),
            [
                "a/b.rs -> a/c.rs",
                "top.rs -> a/b.rs",
                "top.rs -> a/c.rs",
                "top.rs -> odd/renamed.rs"
            ]
        );
        let via = &g.edges["top.rs"]["a/b.rs"];
        assert_eq!(
            (via.path.as_str(), via.line, via.count),
            ("crate::a::b::Thing", 3, 2)
        );
        assert!(cycles(&g).is_empty());
        assert!(layers_check(&t.0).is_ok());
        let l = layers(&g);
        assert_eq!(
            l[&0],
            ["a/c.rs", "odd/renamed.rs", "vfio_pci_common_main.rs"]
        );
        assert_eq!(l[&1], ["a/b.rs"]);
        assert_eq!(l[&2], ["top.rs"]);
    }

    #[test]
    fn back_import_is_a_cycle_naming_both_files() {
        let t = fake_common("layers-cycle");
        t.write(
            "common/a/c.rs",
            "use crate::{\n    top::{\n        helper,\n    },\n};\npub(crate) fn g() {}\n",
        );
        let g = build_graph(&t.common()).unwrap();
        assert_eq!(cycles(&g), [["a/b.rs", "a/c.rs", "top.rs"]]);
        let err = layers_check(&t.0).unwrap_err();
        assert!(err.contains("a/c.rs") && err.contains("top.rs"), "{err}");
        assert!(err.contains("import cycle among 3 files"), "{err}");
        // The shortest chain through the first file: b -> c -> top -> b.
        assert_eq!(
            witness(&g, &cycles(&g)[0]),
            "a/b.rs -> a/c.rs (crate::a::c, a/b.rs:1) -> top.rs (crate::top::helper, a/c.rs:3) \
             -> a/b.rs (crate::a::b::Thing, top.rs:3)"
        );
    }

    #[test]
    fn two_file_cycle_by_inline_path() {
        let t = Tree::new("layers-two");
        t.write(
            "common/vfio_pci_common_main.rs",
            "mod device;\nmod config;\nmod solo;\n",
        )
        .write(
            "common/device.rs",
            "pub(crate) struct DeviceState;\nfn f() { crate::config::read(); }\n",
        )
        .write(
            "common/config.rs",
            "pub(crate) fn read(d: &crate::device::DeviceState) {}\n",
        )
        .write("common/solo.rs", "fn f() { crate::solo::f(); }\n");
        let g = build_graph(&t.common()).unwrap();
        let c = cycles(&g);
        assert_eq!(c, [["config.rs", "device.rs"]]);
        assert_eq!(
            witness(&g, &c[0]),
            "config.rs -> device.rs (crate::device::DeviceState, config.rs:1) \
             -> config.rs (crate::config::read, device.rs:2)"
        );
        // A file's paths to itself are no edge.
        assert!(!g.edges.contains_key("solo.rs"));
    }

    #[test]
    fn mod_rs_and_nested_out_of_line_modules() {
        let t = Tree::new("layers-modrs");
        t.write("common/vfio_pci_common_main.rs", "mod p;\nmod q;\n")
            .write("common/p/mod.rs", "mod inner;\n")
            .write("common/p/inner.rs", "fn f() { crate::q::deep::g(); }\n")
            .write(
                "common/q.rs",
                "mod deep;\n#[cfg(test)]\nmod tests { use super::*; }\n",
            )
            .write("common/q/deep.rs", "fn g() { crate::p::inner::f(); }\n");
        let g = build_graph(&t.common()).unwrap();
        assert_eq!(
            edges(&g),
            ["p/inner.rs -> q/deep.rs", "q/deep.rs -> p/inner.rs"]
        );
        assert_eq!(cycles(&g), [["p/inner.rs", "q/deep.rs"]]);
    }

    #[test]
    fn missing_crate_root_is_an_error() {
        let t = Tree::new("layers-noroot");
        t.write("common/a.rs", "");
        assert!(build_graph(&t.common()).is_err());
        assert!(layers_check(&t.0).is_err());
    }

    /// The real `common/`: only with VFIO_RS_LAYERS_REAL=1 (it is being restructured and has
    /// cycles for now).
    #[test]
    fn real_common_has_no_cycle() {
        if std::env::var("VFIO_RS_LAYERS_REAL").as_deref() != Ok("1") {
            eprintln!("set VFIO_RS_LAYERS_REAL=1 to check the real common/");
            return;
        }
        if let Err(e) = layers_check(&repo_root()) {
            panic!("{e}");
        }
    }

    #[test]
    fn kbuild_file_list() {
        let t = Tree::new("fmt-list");
        for f in [
            "common/vfio_pci_common_main.rs",
            "common/bindings.rs",
            "common/sdk/mod.rs",
            "common/primitives/irq.rs",
            "common/logic/src/lib.rs",
            "common/logic/fuzz/fuzz_targets/config_space.rs",
            "common/bindings/generated/vfio_pci_bindings.rs",
            "common/target/debug/build/x.rs",
            "variants/generic/vfio_pci_generic.rs",
            "variants/generic/target/y.rs",
            "variants/generic/vfio_pci_generic.mod.c",
            "samples/skeleton/vfio_pci_skeleton.rs",
            "tests/variants/overlay/vfio_pci_test_overlay.rs",
            "tests/fixtures/fakepci/vfio_test_fakepci.rs",
            "tests/guest/src/main.rs",
            "xtask/src/main.rs",
        ] {
            t.write(f, "");
        }
        let files: Vec<String> = kbuild_rust_files(&t.0)
            .unwrap()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            files,
            [
                "common/bindings.rs",
                "common/primitives/irq.rs",
                "common/sdk/mod.rs",
                "common/vfio_pci_common_main.rs",
                "samples/skeleton/vfio_pci_skeleton.rs",
                "tests/fixtures/fakepci/vfio_test_fakepci.rs",
                "tests/variants/overlay/vfio_pci_test_overlay.rs",
                "variants/generic/vfio_pci_generic.rs",
            ]
        );
    }

    #[test]
    fn files_with_diff_output() {
        let root = Path::new("/r");
        assert_eq!(
            parse_files_with_diff(
                root,
                "/r/common/a.rs\n/r/variants/x/y.rs\n\n/elsewhere/z.rs\n"
            ),
            [
                PathBuf::from("/elsewhere/z.rs"),
                PathBuf::from("common/a.rs"),
                PathBuf::from("variants/x/y.rs")
            ]
        );
    }

    /// rustfmt itself (from the toolchain running the tests): unformatted files are found, an
    /// out-of-line `#[path]` module to a missing file and a `mod x;` are not followed, and the
    /// write mode fixes what the check found.
    #[test]
    fn rustfmt_checks_and_writes_without_following_modules() {
        let t = Tree::new("fmt-run");
        t.write(
            "common/vfio_pci_common_main.rs",
            concat!(
                "// SPDX-License-Identifier: GPL-2.0\n",
                "mod child;\n",
                "#[path = \"nowhere/gone.rs\"]\n",
                "mod gone;\n\n",
                "fn main() {}\n",
            ),
        )
        .write("common/child.rs", "fn  f( ) {}\n")
        .write("common/logic/src/lib.rs", "fn  not_ours( ) {}\n")
        .write(
            "variants/v/vfio_pci_v.rs",
            "#[path = \"../../common/child.rs\"]\nmod child;\nfn g() {}\n",
        );
        let files = kbuild_rust_files(&t.0).unwrap();
        assert_eq!(files.len(), 3);
        let bad = rustfmt_files(&t.0, &files, FmtMode::Check).unwrap();
        assert_eq!(bad, [PathBuf::from("common/child.rs")]);
        let err = rustfmt_check(&t.0).unwrap_err();
        assert!(
            err.starts_with("1 of 3 files differ from rustfmt: common/child.rs;"),
            "{err}"
        );
        assert!(err.contains("cargo xtask fmt"), "{err}");
        // The stdin path (used when skip_children is not honoured) agrees.
        assert_ne!(
            format_via_stdin(&t.0.join("common/child.rs")).unwrap(),
            "fn  f( ) {}\n"
        );
        assert_eq!(
            format_via_stdin(&t.0.join("common/vfio_pci_common_main.rs")).unwrap(),
            std::fs::read_to_string(t.0.join("common/vfio_pci_common_main.rs")).unwrap()
        );
        let fixed = rustfmt_files(&t.0, &files, FmtMode::Write).unwrap();
        assert_eq!(fixed, [PathBuf::from("common/child.rs")]);
        assert_eq!(
            std::fs::read_to_string(t.0.join("common/child.rs")).unwrap(),
            "fn f() {}\n"
        );
        assert_eq!(
            std::fs::read_to_string(t.0.join("common/logic/src/lib.rs")).unwrap(),
            "fn  not_ours( ) {}\n"
        );
        assert!(rustfmt_check(&t.0).is_ok());
    }

    #[test]
    fn rustfmt_parse_error_is_a_failure() {
        let t = Tree::new("fmt-broken");
        t.write("samples/s/s.rs", "fn main( {}\n");
        let err = rustfmt_check(&t.0).unwrap_err();
        assert!(err.contains("rustfmt reported errors"), "{err}");
    }
}
