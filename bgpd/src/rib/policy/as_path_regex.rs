// AS-path regular expressions as router configs write them: matched against
// the AS_PATH rendered as ASNs separated by single spaces, an AS_SET as
// `{a,b}` (RFC 4271 §4.3 segment types), with Cisco's `_` standing for a
// boundary: the start, the end, a space, a brace or a comma.

use std::fmt;

use regex::{Regex, RegexBuilder};

use crate::wire::{AsPath, AsSegment};

/// What `_` becomes: the boundaries of an AS in the rendered path.
const BOUNDARY: &str = "(?:^|$|[ {},])";
/// A bound on the compiled program, so one line of config cannot take
/// much memory (the regex crate's own default is 10 MiB).
const SIZE_LIMIT: usize = 1 << 20;

/// A compiled AS-path regex. Equal when the source text is equal, so
/// configurations compare (config::diff) by what was written.
#[derive(Clone)]
pub struct AsPathRegex {
    source: String,
    regex: Regex,
}

impl AsPathRegex {
    /// Compiles `source`; the error is a one-line reason.
    pub fn new(source: &str) -> Result<Self, String> {
        let regex = RegexBuilder::new(&translate(source))
            .size_limit(SIZE_LIMIT)
            .build()
            .map_err(|e| one_line(&e))?;
        Ok(AsPathRegex {
            source: source.to_owned(),
            regex,
        })
    }

    /// The regex as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the path matches; a route without AS_PATH (iBGP-originated)
    /// is the empty string.
    pub fn is_match(&self, path: Option<&AsPath>) -> bool {
        self.is_match_rendered(&render(path))
    }

    /// Against a path already rendered by [`render`].
    pub fn is_match_rendered(&self, rendered: &str) -> bool {
        self.regex.is_match(rendered)
    }
}

impl PartialEq for AsPathRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for AsPathRegex {}

impl fmt::Debug for AsPathRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AsPathRegex({:?})", self.source)
    }
}

/// `65001 65002 {65003,65004}`: the text regexes match against.
pub fn render(path: Option<&AsPath>) -> String {
    let mut out = String::new();
    for segment in path.map(|p| p.segments.as_slice()).unwrap_or_default() {
        if !out.is_empty() {
            out.push(' ');
        }
        match segment {
            AsSegment::Sequence(asns) => push_joined(&mut out, asns, ' '),
            AsSegment::Set(asns) => {
                out.push('{');
                push_joined(&mut out, asns, ',');
                out.push('}');
            }
        }
    }
    out
}

fn push_joined(out: &mut String, asns: &[u32], separator: char) {
    for (i, asn) in asns.iter().enumerate() {
        if i > 0 {
            out.push(separator);
        }
        out.push_str(&asn.to_string());
    }
}

/// Replaces each `_` outside escapes and character classes by [`BOUNDARY`].
fn translate(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    // Nesting depth of `[...]` (the regex crate allows nested classes).
    let mut class_depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some(escaped) = chars.next() {
                    out.push(escaped);
                }
            }
            '[' => {
                out.push(c);
                class_depth += 1;
                // A `]` first in a class (after an optional `^`) is literal.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push(']');
                    chars.next();
                }
            }
            ']' if class_depth > 0 => {
                out.push(c);
                class_depth -= 1;
            }
            '_' if class_depth == 0 => out.push_str(BOUNDARY),
            c => out.push(c),
        }
    }
    out
}

/// The regex crate's syntax errors span several lines (pattern, caret,
/// reason); a config error is one line, so keep the reason.
fn one_line(error: &regex::Error) -> String {
    let text = error.to_string();
    let last = text.lines().last().unwrap_or_default().trim();
    last.strip_prefix("error: ").unwrap_or(last).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(segments: Vec<AsSegment>) -> AsPath {
        AsPath { segments }
    }

    fn regex(source: &str) -> AsPathRegex {
        AsPathRegex::new(source).unwrap()
    }

    #[test]
    fn renders_sequences_and_sets() {
        let p = path(vec![
            AsSegment::Sequence(vec![65001, 65002]),
            AsSegment::Set(vec![65003, 65004]),
            AsSegment::Sequence(vec![4_200_000_001]),
        ]);
        assert_eq!(render(Some(&p)), "65001 65002 {65003,65004} 4200000001");
        assert_eq!(render(None), "");
        assert_eq!(render(Some(&AsPath::default())), "");
    }

    #[test]
    fn underscore_is_a_boundary() {
        let p = path(vec![
            AsSegment::Sequence(vec![65001, 65002]),
            AsSegment::Set(vec![65003, 65004]),
        ]);
        let r = render(Some(&p));
        for (source, expected) in [
            ("_65001_", true),
            ("^65001_", true),
            ("_65002_", true),
            ("_65003_", true),
            ("_65004_", true),
            ("_6500_", false),
            ("_5001_", false),
            ("^65001_65002_", true),
            ("^65002", false),
            ("_65001$", false),
            ("\\{65003,65004\\}$", true),
            ("^$", false),
        ] {
            assert_eq!(regex(source).is_match_rendered(&r), expected, "{source}");
        }
        let origin = regex("_65001$");
        assert!(origin.is_match(Some(&path(vec![AsSegment::Sequence(vec![65000, 65001])]))));
        assert!(regex("^$").is_match(None));
        assert!(
            regex("_").is_match(None),
            "a boundary matches the empty path"
        );
    }

    #[test]
    fn underscore_stays_literal_when_escaped_or_in_a_class() {
        assert_eq!(translate(r"\_"), r"\_");
        assert_eq!(translate("[_a]"), "[_a]");
        assert_eq!(translate("[]_]_"), format!("[]_]{BOUNDARY}"));
        assert_eq!(translate("[^]_]"), "[^]_]");
        assert_eq!(translate("a_b"), format!("a{BOUNDARY}b"));
    }

    #[test]
    fn bad_regex_is_one_line() {
        let e = AsPathRegex::new("(65001").unwrap_err();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("unclosed group"), "{e}");
        assert!(AsPathRegex::new("[0-9]{1000}{1000}").is_err(), "size limit");
    }

    #[test]
    fn equality_is_by_source() {
        assert_eq!(regex("_1_"), regex("_1_"));
        assert_ne!(regex("_1_"), regex("_1$"));
        assert_eq!(format!("{:?}", regex("_1_")), "AsPathRegex(\"_1_\")");
    }
}
