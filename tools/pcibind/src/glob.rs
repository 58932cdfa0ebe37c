// SPDX-License-Identifier: GPL-2.0
//! Shell-style pattern matching with the semantics kmod uses for module aliases:
//! `fnmatch(pattern, modalias, 0)` (glibc, no flags).
//!
//! - `*` matches any sequence of characters, including none (no flag makes `/` or a leading `.`
//!   special);
//! - `?` matches exactly one character;
//! - `[...]` matches one character from a set: single characters, ranges `a-z`, named classes
//!   `[:alpha:]` etc.; `[!...]` or `[^...]` negate the set; a `]` right after the opening `[`
//!   (or after the negation) is a member; `-` first or last is a member; a `[` without a
//!   closing `]` is an ordinary character;
//! - `\c` matches `c` literally (also inside a set); a trailing lone `\` matches itself.
//!
//! Matching is case-sensitive and works on `char`s. The matcher never panics and runs in
//! O(pattern × text) time (single-star backtracking, which is exact for these patterns because
//! every token other than `*` consumes exactly one character).

#[derive(Clone, Debug, PartialEq, Eq)]
enum ClassItem {
    Char(char),
    Range(char, char),
    Named(NamedClass),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NamedClass {
    Alnum,
    Alpha,
    Blank,
    Cntrl,
    Digit,
    Graph,
    Lower,
    Print,
    Punct,
    Space,
    Upper,
    Xdigit,
}

impl NamedClass {
    fn parse(name: &str) -> Option<NamedClass> {
        Some(match name {
            "alnum" => NamedClass::Alnum,
            "alpha" => NamedClass::Alpha,
            "blank" => NamedClass::Blank,
            "cntrl" => NamedClass::Cntrl,
            "digit" => NamedClass::Digit,
            "graph" => NamedClass::Graph,
            "lower" => NamedClass::Lower,
            "print" => NamedClass::Print,
            "punct" => NamedClass::Punct,
            "space" => NamedClass::Space,
            "upper" => NamedClass::Upper,
            "xdigit" => NamedClass::Xdigit,
            _ => return None,
        })
    }

    fn contains(self, c: char) -> bool {
        match self {
            NamedClass::Alnum => c.is_ascii_alphanumeric(),
            NamedClass::Alpha => c.is_ascii_alphabetic(),
            NamedClass::Blank => c == ' ' || c == '\t',
            NamedClass::Cntrl => c.is_ascii_control(),
            NamedClass::Digit => c.is_ascii_digit(),
            NamedClass::Graph => c.is_ascii_graphic(),
            NamedClass::Lower => c.is_ascii_lowercase(),
            NamedClass::Print => c.is_ascii_graphic() || c == ' ',
            NamedClass::Punct => c.is_ascii_punctuation(),
            NamedClass::Space => c.is_ascii_whitespace() || c == '\x0b',
            NamedClass::Upper => c.is_ascii_uppercase(),
            NamedClass::Xdigit => c.is_ascii_hexdigit(),
        }
    }
}

/// One element of a compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    /// `*`
    Star,
    /// `?`
    Any,
    /// A bracket expression (kept opaque).
    Set(Set),
    /// A literal character (after unescaping).
    Lit(char),
}

/// A bracket expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    negated: bool,
    items: Vec<ClassItem>,
}

impl Set {
    fn matches(&self, c: char) -> bool {
        let hit = self.items.iter().any(|i| match *i {
            ClassItem::Char(x) => x == c,
            ClassItem::Range(a, b) => a <= c && c <= b,
            ClassItem::Named(n) => n.contains(c),
        });
        hit != self.negated
    }
}

/// Parses a bracket expression starting right after `[` at `p[start]`. Returns the set and the
/// index after the closing `]`, or `None` when there is no closing `]` (the `[` is then literal).
fn parse_set(p: &[char], start: usize) -> Option<(Set, usize)> {
    let mut i = start;
    let mut negated = false;
    if matches!(p.get(i), Some('!') | Some('^')) {
        negated = true;
        i += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let c = *p.get(i)?;
        if c == ']' && !first {
            return Some((Set { negated, items }, i + 1));
        }
        first = false;
        // Named class `[:name:]`.
        if c == '[' && p.get(i + 1) == Some(&':') {
            let rest = p.get(i + 2..).unwrap_or(&[]);
            if let Some(end) = rest.windows(2).position(|w| w == [':', ']']) {
                let name: String = rest.get(..end).unwrap_or(&[]).iter().collect();
                if let Some(n) = NamedClass::parse(&name) {
                    items.push(ClassItem::Named(n));
                    i += 2 + end + 2;
                    continue;
                }
                // glibc: an unknown class name makes the whole pattern invalid (no match);
                // treating it as literal characters is the safe approximation.
            }
        }
        let (lo, next) = if c == '\\' {
            (*p.get(i + 1)?, i + 2)
        } else {
            (c, i + 1)
        };
        // A range `lo-hi`, unless the `-` is the last character before `]`.
        if p.get(next) == Some(&'-') && p.get(next + 1).is_some_and(|&h| h != ']') {
            let (hi, after) = match p.get(next + 1) {
                Some('\\') => (*p.get(next + 2)?, next + 3),
                Some(&h) => (h, next + 2),
                None => return None,
            };
            items.push(ClassItem::Range(lo, hi));
            i = after;
        } else {
            items.push(ClassItem::Char(lo));
            i = next;
        }
    }
}

/// Compiles a pattern into tokens.
pub fn tokenize(pattern: &str) -> Vec<Token> {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = Vec::with_capacity(p.len());
    let mut i = 0;
    while let Some(&c) = p.get(i) {
        match c {
            '*' => {
                // Consecutive stars are one star.
                if out.last() != Some(&Token::Star) {
                    out.push(Token::Star);
                }
                i += 1;
            }
            '?' => {
                out.push(Token::Any);
                i += 1;
            }
            '[' => match parse_set(&p, i + 1) {
                Some((set, next)) => {
                    out.push(Token::Set(set));
                    i = next;
                }
                None => {
                    out.push(Token::Lit('['));
                    i += 1;
                }
            },
            '\\' => match p.get(i + 1) {
                Some(&n) => {
                    out.push(Token::Lit(n));
                    i += 2;
                }
                None => {
                    out.push(Token::Lit('\\'));
                    i += 1;
                }
            },
            c => {
                out.push(Token::Lit(c));
                i += 1;
            }
        }
    }
    out
}

/// Whether the pattern contains any glob metacharacter (`*`, `?` or a bracket expression).
pub fn is_literal(pattern: &str) -> bool {
    tokenize(pattern).iter().all(|t| matches!(t, Token::Lit(_)))
}

fn token_matches(t: &Token, c: char) -> bool {
    match t {
        Token::Star => true,
        Token::Any => true,
        Token::Set(s) => s.matches(c),
        Token::Lit(l) => *l == c,
    }
}

/// `fnmatch(pattern, text, 0) == 0`.
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    let toks = tokenize(pattern);
    let text: Vec<char> = text.chars().collect();
    let (mut ti, mut pi) = (0usize, 0usize);
    // The last `*` seen and the text position it is currently assumed to have consumed up to.
    let mut star: Option<(usize, usize)> = None;
    loop {
        match (toks.get(pi), text.get(ti)) {
            (Some(Token::Star), _) => {
                star = Some((pi, ti));
                pi += 1;
            }
            (Some(t), Some(&c)) if token_matches(t, c) => {
                pi += 1;
                ti += 1;
            }
            (None, None) => return true,
            _ => match star {
                // Let the last star eat one more character and retry.
                Some((sp, st)) if st < text.len() => {
                    star = Some((sp, st + 1));
                    pi = sp + 1;
                    ti = st + 1;
                }
                _ => return false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_questions() {
        assert!(fnmatch("*", ""));
        assert!(fnmatch("*", "anything/with.slashes"));
        assert!(fnmatch("a*b", "ab"));
        assert!(fnmatch("a*b", "axxxb"));
        assert!(!fnmatch("a*b", "axxxc"));
        assert!(fnmatch("a**b*", "a-b-"));
        assert!(fnmatch("?", "x"));
        assert!(!fnmatch("?", ""));
        assert!(!fnmatch("?", "xy"));
        assert!(fnmatch("*a*a*a", "aaaa"));
        assert!(!fnmatch("*a*a*a*a*a", "aaaa"));
        assert!(fnmatch("", ""));
        assert!(!fnmatch("", "x"));
        assert!(fnmatch("abc", "abc"));
        assert!(!fnmatch("abc", "ABC"), "case-sensitive");
    }

    #[test]
    fn bracket_expressions() {
        assert!(fnmatch("[abc]", "b"));
        assert!(!fnmatch("[abc]", "d"));
        assert!(fnmatch("[!abc]", "d"));
        assert!(fnmatch("[^abc]", "d"));
        assert!(!fnmatch("[^abc]", "a"));
        assert!(fnmatch("[0-9A-F]", "E"));
        assert!(!fnmatch("[0-9A-F]", "e"));
        assert!(fnmatch("[]]", "]"));
        assert!(fnmatch("[!]]", "a"));
        assert!(!fnmatch("[!]]", "]"));
        assert!(fnmatch("[a-]", "-"));
        assert!(fnmatch("[-a]", "-"));
        assert!(fnmatch("[[:xdigit:]][[:upper:]]", "fA"));
        assert!(!fnmatch("[[:digit:]]", "a"));
        assert!(fnmatch("[\\]]", "]"));
        // No closing bracket: the `[` is literal.
        assert!(fnmatch("a[b", "a[b"));
        assert!(!fnmatch("a[b", "ab"));
        assert!(fnmatch("bc0[23]sc*", "bc03sc00"));
        assert!(!fnmatch("bc0[23]sc*", "bc01sc00"));
    }

    #[test]
    fn escapes() {
        assert!(fnmatch("a\\*b", "a*b"));
        assert!(!fnmatch("a\\*b", "axb"));
        assert!(fnmatch("\\?", "?"));
        assert!(fnmatch("a\\", "a\\"));
    }

    #[test]
    fn literal_detection() {
        assert!(is_literal("0000ABCD"));
        assert!(is_literal("a\\*"));
        assert!(!is_literal("*"));
        assert!(!is_literal("00[01]0"));
        assert!(!is_literal("0?"));
        assert!(is_literal("a[b"));
    }

    #[test]
    fn modpost_aliases() {
        let dev = "vfio_pci:v00001234d000011E8sv00001AF4sd00001100bc00scFFi00";
        assert!(fnmatch("vfio_pci:v*d*sv*sd*bc*sc*i*", dev));
        assert!(fnmatch("vfio_pci:v00001234d000011E8sv*sd*bc*sc*i*", dev));
        assert!(!fnmatch("vfio_pci:v00001234d000011E9sv*sd*bc*sc*i*", dev));
        assert!(!fnmatch("pci:v00001234d000011E8sv*sd*bc*sc*i*", dev));
        assert!(fnmatch("vfio_pci:v*d*sv*sd*bc00scFFi00*", dev));
    }

    #[test]
    fn never_panics_on_odd_patterns() {
        for p in [
            "[",
            "[!",
            "[]",
            "[a-",
            "[a-\\",
            "\\",
            "[[:",
            "[[:alpha",
            "[[:bogus:]]",
            "[z-a]",
            "***",
            "[\\",
        ] {
            for t in ["", "[", "a", "-", "\\", "]", "z"] {
                let _ = fnmatch(p, t);
            }
        }
        assert!(!fnmatch("[z-a]", "m"), "an inverted range is empty");
    }
}
