// SPDX-License-Identifier: GPL-2.0
//! Rust v0 symbol demangling (RFC 2603), for the kernel profiles of `cargo xtask bench
//! --profile`: Rust for Linux mangles with v0, so `/proc/kallsyms` shows `_RNvMs_NtCs...`.
//! Paths, generic arguments, types, constants and back references; crate disambiguators and
//! the instantiating crate are left out. A name that does not parse is returned as it was.

/// Demangles every `_R...` word of `line` (words end at a character that is not
/// alphanumeric, `_` or `$`).
pub fn demangle_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let word_start = i == 0 || !is_sym(b[i - 1]);
        if word_start && b[i..].starts_with(b"_R") {
            let mut j = i;
            while j < b.len() && is_sym(b[j]) {
                j += 1;
            }
            let w = &line[i..j];
            out.push_str(&demangle(w).unwrap_or_else(|| w.to_string()));
            i = j;
        } else {
            let c = line[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn is_sym(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$'
}

/// The demangled form of one v0 symbol, or `None`.
pub fn demangle(sym: &str) -> Option<String> {
    // Optional LLVM suffixes (`.llvm.123`) are not part of the grammar.
    let sym = sym.split('.').next()?;
    let s = sym.strip_prefix("_R")?;
    let mut p = Parser {
        s: s.as_bytes(),
        pos: 0,
        depth: 0,
    };
    // An optional encoding version.
    while p.peek().is_some_and(|c| c.is_ascii_digit()) {
        p.pos += 1;
    }
    let mut out = String::new();
    p.path(&mut out, false)?;
    Some(out)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 256;

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// `{0-9a-zA-Z} "_"`: `_` is 0, otherwise the base-62 value plus one.
    fn base62(&mut self) -> Option<u64> {
        if self.eat(b'_') {
            return Some(0);
        }
        let mut v: u64 = 0;
        loop {
            let c = self.next()?;
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'z' => c - b'a' + 10,
                b'A'..=b'Z' => c - b'A' + 36,
                b'_' => return v.checked_add(1),
                _ => return None,
            };
            v = v.checked_mul(62)?.checked_add(u64::from(d))?;
        }
    }

    fn decimal(&mut self) -> Option<usize> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        std::str::from_utf8(&self.s[start..self.pos])
            .ok()?
            .parse()
            .ok()
    }

    fn disambiguator(&mut self) -> Option<u64> {
        if self.eat(b's') {
            self.base62()
        } else {
            Some(0)
        }
    }

    /// `["u"] <decimal> ["_"] <bytes>` (punycode shown as it is).
    fn ident(&mut self) -> Option<String> {
        let puny = self.eat(b'u');
        let n = self.decimal()?;
        self.eat(b'_');
        let b = self.s.get(self.pos..self.pos + n)?;
        self.pos += n;
        let s = std::str::from_utf8(b).ok()?.to_string();
        Some(if puny { format!("{s}(punycode)") } else { s })
    }

    /// Runs `f` at the position a back reference names, then comes back.
    fn backref<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let target = usize::try_from(self.base62()?).ok()?;
        if target >= self.pos || self.depth >= MAX_DEPTH {
            return None;
        }
        let saved = self.pos;
        self.pos = target;
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        self.pos = saved;
        r
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth < MAX_DEPTH).then_some(())
    }

    /// A path; `in_type`: generic arguments print as `<..>` (types) rather than `::<..>`.
    fn path(&mut self, out: &mut String, in_type: bool) -> Option<()> {
        self.enter()?;
        let r = self.path_inner(out, in_type);
        self.depth -= 1;
        r
    }

    fn path_inner(&mut self, out: &mut String, in_type: bool) -> Option<()> {
        match self.next()? {
            b'C' => {
                self.disambiguator()?;
                out.push_str(&self.ident()?);
            }
            b'M' => {
                self.disambiguator()?;
                self.skip_path()?;
                out.push('<');
                self.ty(out)?;
                out.push('>');
            }
            b'X' => {
                self.disambiguator()?;
                self.skip_path()?;
                out.push('<');
                self.ty(out)?;
                out.push_str(" as ");
                self.path(out, true)?;
                out.push('>');
            }
            b'Y' => {
                out.push('<');
                self.ty(out)?;
                out.push_str(" as ");
                self.path(out, true)?;
                out.push('>');
            }
            b'N' => {
                let ns = self.next()?;
                self.path(out, in_type)?;
                let dis = self.disambiguator()?;
                let id = self.ident()?;
                match ns {
                    b'C' => {
                        out.push_str("::{closure");
                        if !id.is_empty() {
                            out.push(':');
                            out.push_str(&id);
                        }
                        out.push_str(&format!("#{dis}}}"));
                    }
                    b'S' => {
                        out.push_str("::{shim");
                        if !id.is_empty() {
                            out.push(':');
                            out.push_str(&id);
                        }
                        out.push_str(&format!("#{dis}}}"));
                    }
                    b'A'..=b'Z' => out.push_str(&format!("::{{{}:{id}#{dis}}}", ns as char)),
                    _ => {
                        if !id.is_empty() {
                            out.push_str("::");
                            out.push_str(&id);
                        }
                    }
                }
            }
            b'I' => {
                self.path(out, in_type)?;
                out.push_str(if in_type { "<" } else { "::<" });
                let mut first = true;
                while !self.eat(b'E') {
                    if !first {
                        out.push_str(", ");
                    }
                    first = false;
                    self.generic_arg(out)?;
                }
                out.push('>');
            }
            b'B' => {
                let mut s = String::new();
                self.backref(|p| p.path(&mut s, in_type))?;
                out.push_str(&s);
            }
            _ => return None,
        }
        Some(())
    }

    /// An impl path, not printed (the type says it all).
    fn skip_path(&mut self) -> Option<()> {
        let mut sink = String::new();
        self.path(&mut sink, false)
    }

    fn generic_arg(&mut self, out: &mut String) -> Option<()> {
        if self.eat(b'L') {
            self.base62()?;
            out.push_str("'_");
            Some(())
        } else if self.eat(b'K') {
            self.konst(out)
        } else {
            self.ty(out)
        }
    }

    fn lifetime_opt(&mut self) -> Option<()> {
        if self.eat(b'L') {
            self.base62()?;
        }
        Some(())
    }

    fn binder_opt(&mut self) -> Option<()> {
        if self.eat(b'G') {
            self.base62()?;
        }
        Some(())
    }

    fn ty(&mut self, out: &mut String) -> Option<()> {
        self.enter()?;
        let r = self.ty_inner(out);
        self.depth -= 1;
        r
    }

    fn ty_inner(&mut self, out: &mut String) -> Option<()> {
        let c = self.peek()?;
        if let Some(b) = basic(c) {
            self.pos += 1;
            out.push_str(b);
            return Some(());
        }
        match c {
            b'A' | b'S' => {
                self.pos += 1;
                out.push('[');
                self.ty(out)?;
                if c == b'A' {
                    out.push_str("; ");
                    self.konst(out)?;
                }
                out.push(']');
            }
            b'R' | b'Q' => {
                self.pos += 1;
                self.lifetime_opt()?;
                out.push_str(if c == b'R' { "&" } else { "&mut " });
                self.ty(out)?;
            }
            b'P' | b'O' => {
                self.pos += 1;
                out.push_str(if c == b'P' { "*const " } else { "*mut " });
                self.ty(out)?;
            }
            b'T' => {
                self.pos += 1;
                out.push('(');
                let mut n = 0;
                while !self.eat(b'E') {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    self.ty(out)?;
                    n += 1;
                }
                if n == 1 {
                    out.push(',');
                }
                out.push(')');
            }
            b'F' => {
                self.pos += 1;
                self.binder_opt()?;
                let unsafe_ = self.eat(b'U');
                if self.eat(b'K') && !self.eat(b'C') {
                    self.ident()?;
                }
                if unsafe_ {
                    out.push_str("unsafe ");
                }
                out.push_str("fn(");
                let mut first = true;
                while !self.eat(b'E') {
                    if !first {
                        out.push_str(", ");
                    }
                    first = false;
                    self.ty(out)?;
                }
                out.push(')');
                let mut ret = String::new();
                self.ty(&mut ret)?;
                if ret != "()" {
                    out.push_str(" -> ");
                    out.push_str(&ret);
                }
            }
            b'D' => {
                self.pos += 1;
                self.binder_opt()?;
                out.push_str("dyn ");
                let mut first = true;
                while !self.eat(b'E') {
                    if !first {
                        out.push_str(" + ");
                    }
                    first = false;
                    self.path(out, true)?;
                    while self.eat(b'p') {
                        let name = self.ident()?;
                        out.push_str(&format!("<{name} = "));
                        self.ty(out)?;
                        out.push('>');
                    }
                }
                self.lifetime_opt()?;
            }
            b'B' => {
                self.pos += 1;
                let mut s = String::new();
                self.backref(|p| p.ty(&mut s))?;
                out.push_str(&s);
            }
            _ => self.path(out, true)?,
        }
        Some(())
    }

    fn konst(&mut self, out: &mut String) -> Option<()> {
        if self.eat(b'p') {
            out.push('_');
            return Some(());
        }
        if self.eat(b'B') {
            let mut s = String::new();
            self.backref(|p| p.konst(&mut s))?;
            out.push_str(&s);
            return Some(());
        }
        let t = self.next()?;
        let neg = self.eat(b'n');
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
            self.pos += 1;
        }
        let hex = std::str::from_utf8(&self.s[start..self.pos]).ok()?;
        if !self.eat(b'_') {
            return None;
        }
        let v = if hex.is_empty() {
            0
        } else {
            u128::from_str_radix(hex, 16).ok()?
        };
        match t {
            b'b' => out.push_str(if v == 0 { "false" } else { "true" }),
            b'c' => out.push_str(&format!(
                "{:?}",
                char::from_u32(u32::try_from(v).ok()?).unwrap_or('?')
            )),
            _ => {
                if neg {
                    out.push('-');
                }
                out.push_str(&v.to_string());
            }
        }
        Some(())
    }
}

fn basic(c: u8) -> Option<&'static str> {
    Some(match c {
        b'a' => "i8",
        b'b' => "bool",
        b'c' => "char",
        b'd' => "f64",
        b'e' => "str",
        b'f' => "f32",
        b'h' => "u8",
        b'i' => "isize",
        b'j' => "usize",
        b'l' => "i32",
        b'm' => "u32",
        b'n' => "i128",
        b'o' => "u128",
        b's' => "i16",
        b't' => "u16",
        b'u' => "()",
        b'v' => "...",
        b'x' => "i64",
        b'y' => "u64",
        b'z' => "!",
        b'p' => "_",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_symbols() {
        assert_eq!(
            demangle(
                "_RNvMNtNtCs3DwOvY7LBXp_20vfio_pci_common_main5logic12config_spaceNtB2_11ConfigSpace4vget"
            )
            .as_deref(),
            Some("<vfio_pci_common_main::logic::config_space::ConfigSpace>::vget")
        );
        assert_eq!(
            demangle(
                "_RINvMNtNtCs3DwOvY7LBXp_20vfio_pci_common_main5logic12config_spaceNtB3_11ConfigSpace11basic_writeNtNtNtB7_8features6config10HostConfigEB7_"
            )
            .as_deref(),
            Some(
                "<vfio_pci_common_main::logic::config_space::ConfigSpace>::basic_write::\
                 <vfio_pci_common_main::features::config::HostConfig>"
            )
        );
        assert_eq!(
            demangle(
                "_RINvNtCs2DxGA1hvVcO_4core3ptr13drop_in_placeINtNtB4_6option6OptionNtNtCs3DwOvY7LBXp_20vfio_pci_common_main5state9MsiVectorEEB16_"
            )
            .as_deref(),
            Some(
                "core::ptr::drop_in_place::<core::option::Option<vfio_pci_common_main::state::MsiVector>>"
            )
        );
    }

    #[test]
    fn rfc_examples_and_lines() {
        // From RFC 2603 and rustc-demangle's tests.
        assert_eq!(
            demangle("_RNvNtCs1234_7mycrate3foo3bar").as_deref(),
            Some("mycrate::foo::bar")
        );
        assert_eq!(
            demangle("_RNCNvCsgStHSCytQ6I_7mycrate4main0B3_").as_deref(),
            Some("mycrate::main::{closure#0}")
        );
        assert_eq!(
            demangle("_RINvCs1234_7mycrate3fooAhj4_E").as_deref(),
            Some("mycrate::foo::<[u8; 4]>")
        );
        assert_eq!(
            demangle("_RNvC7mycrate3foo_garbage").as_deref(),
            Some("mycrate::foo")
        );
        assert_eq!(demangle("memset"), None);
        assert_eq!(
            demangle_line("  12  _RNvNtCs1234_7mycrate3foo3bar [vfio_pci_common] <- memset"),
            "  12  mycrate::foo::bar [vfio_pci_common] <- memset"
        );
        assert_eq!(demangle_line("x_Rfoo _RZ"), "x_Rfoo _RZ");
    }
}
