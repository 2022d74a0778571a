// Kubernetes label selectors in their text form, as `labels.Parse` of
// k8s.io/apimachinery reads them: comma-separated requirements `k=v`, `k==v`,
// `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>1`, `k<1`. The empty text
// selects everything, and so does Calico's `all()`. IPPool.nodeSelector uses it;
// bgpd's BGPPeer.nodeSelector reuses it.

use std::collections::BTreeMap;
use std::fmt;

/// A parsed selector: every requirement must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// One condition on one label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Operator,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    /// `k=v`, `k==v`
    Equals(String),
    /// `k!=v`: also true when the label is absent.
    NotEquals(String),
    /// `k in (a,b)`
    In(Vec<String>),
    /// `k notin (a,b)`: also true when the label is absent.
    NotIn(Vec<String>),
    /// `k`
    Exists,
    /// `!k`
    DoesNotExist,
    /// `k>n`: the label is an integer greater than n.
    GreaterThan(i64),
    /// `k<n`: the label is an integer less than n.
    LessThan(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad label selector {text:?}: {reason}")]
pub struct SelectorError {
    pub text: String,
    pub reason: String,
}

/// Longest label name, and longest label value (Kubernetes).
const MAX_NAME_LEN: usize = 63;
/// Longest key prefix: a DNS subdomain.
const MAX_PREFIX_LEN: usize = 253;

impl Selector {
    /// Selects everything.
    pub fn everything() -> Self {
        Self::default()
    }

    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed == "all()" {
            return Ok(Self::everything());
        }
        let fail = |reason: String| SelectorError {
            text: text.to_string(),
            reason,
        };
        let tokens = lex(trimmed);
        let requirements = Parser { tokens, pos: 0 }.selector().map_err(fail)?;
        Ok(Self { requirements })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn selects_everything(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl Requirement {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match &self.op {
            Operator::Equals(v) => value == Some(v),
            Operator::NotEquals(v) => value != Some(v),
            Operator::In(vs) => value.is_some_and(|x| vs.contains(x)),
            Operator::NotIn(vs) => value.is_none_or(|x| !vs.contains(x)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan(n) => value
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Operator::LessThan(n) => value
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let k = &r.key;
            match &r.op {
                Operator::Equals(v) => write!(f, "{k}={v}")?,
                Operator::NotEquals(v) => write!(f, "{k}!={v}")?,
                Operator::In(vs) => write!(f, "{k} in ({})", vs.join(","))?,
                Operator::NotIn(vs) => write!(f, "{k} notin ({})", vs.join(","))?,
                Operator::Exists => write!(f, "{k}")?,
                Operator::DoesNotExist => write!(f, "!{k}")?,
                Operator::GreaterThan(n) => write!(f, "{k}>{n}")?,
                Operator::LessThan(n) => write!(f, "{k}<{n}")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Not,   // !
    Eq,    // = or ==
    NotEq, // !=
    Gt,    // >
    Lt,    // <
    Comma, // ,
    Open,  // (
    Close, // )
}

fn describe(t: Option<&Token>) -> String {
    match t {
        None => "the end".to_string(),
        Some(Token::Word(w)) => format!("{w:?}"),
        Some(Token::Not) => "\"!\"".to_string(),
        Some(Token::Eq) => "\"=\"".to_string(),
        Some(Token::NotEq) => "\"!=\"".to_string(),
        Some(Token::Gt) => "\">\"".to_string(),
        Some(Token::Lt) => "\"<\"".to_string(),
        Some(Token::Comma) => "\",\"".to_string(),
        Some(Token::Open) => "\"(\"".to_string(),
        Some(Token::Close) => "\")\"".to_string(),
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '(' | ')' | ',' | '<' | '>')
}

fn lex(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        let next_is_eq = chars.peek().is_some_and(|(_, n)| *n == '=');
        let token = match c {
            '!' if next_is_eq => {
                chars.next();
                Token::NotEq
            }
            '!' => Token::Not,
            '=' => {
                if next_is_eq {
                    chars.next();
                }
                Token::Eq
            }
            '>' => Token::Gt,
            '<' => Token::Lt,
            ',' => Token::Comma,
            '(' => Token::Open,
            ')' => Token::Close,
            _ => {
                let mut end = text.len();
                while let Some((j, n)) = chars.peek() {
                    if n.is_whitespace() || is_special(*n) {
                        end = *j;
                        break;
                    }
                    chars.next();
                }
                Token::Word(text[i..end].to_string())
            }
        };
        tokens.push(token);
    }
    tokens
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn selector(mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = vec![self.requirement()?];
        loop {
            match self.next() {
                None => return Ok(requirements),
                Some(Token::Comma) => requirements.push(self.requirement()?),
                other => {
                    return Err(format!(
                        "expected \",\" or the end after a requirement, found {}",
                        describe(other.as_ref())
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        if self.peek() == Some(&Token::Not) {
            self.pos += 1;
            let key = self.key()?;
            return Ok(Requirement {
                key,
                op: Operator::DoesNotExist,
            });
        }
        let key = self.key()?;
        let op = match self.peek() {
            None | Some(Token::Comma) => Operator::Exists,
            Some(Token::Eq) => {
                self.pos += 1;
                Operator::Equals(self.value()?)
            }
            Some(Token::NotEq) => {
                self.pos += 1;
                Operator::NotEquals(self.value()?)
            }
            Some(Token::Gt) => {
                self.pos += 1;
                Operator::GreaterThan(self.integer()?)
            }
            Some(Token::Lt) => {
                self.pos += 1;
                Operator::LessThan(self.integer()?)
            }
            Some(Token::Word(w)) if w == "in" => {
                self.pos += 1;
                Operator::In(self.set()?)
            }
            Some(Token::Word(w)) if w == "notin" => {
                self.pos += 1;
                Operator::NotIn(self.set()?)
            }
            other => {
                return Err(format!(
                    "expected an operator (=, ==, !=, in, notin, >, <) after {key:?}, found {}",
                    describe(other)
                ));
            }
        };
        Ok(Requirement { key, op })
    }

    fn key(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) => {
                check_key(&w)?;
                Ok(w)
            }
            other => Err(format!(
                "expected a label key, found {}",
                describe(other.as_ref())
            )),
        }
    }

    /// A value after `=` or `!=`; may be empty (`k=` selects an empty value).
    fn value(&mut self) -> Result<String, String> {
        match self.peek() {
            Some(Token::Word(w)) => {
                let w = w.clone();
                self.pos += 1;
                check_value(&w)?;
                Ok(w)
            }
            None | Some(Token::Comma) => Ok(String::new()),
            other => Err(format!("expected a label value, found {}", describe(other))),
        }
    }

    fn integer(&mut self) -> Result<i64, String> {
        match self.next() {
            Some(Token::Word(w)) => w
                .parse()
                .map_err(|_| format!("{w:?} is not an integer (> and < compare integers)")),
            other => Err(format!(
                "expected an integer, found {}",
                describe(other.as_ref())
            )),
        }
    }

    /// `(a, b, ...)` after `in` / `notin`: at least one value.
    fn set(&mut self) -> Result<Vec<String>, String> {
        if self.next() != Some(Token::Open) {
            return Err("expected \"(\" after in/notin".to_string());
        }
        let mut values = Vec::new();
        loop {
            let value = match self.peek() {
                Some(Token::Word(w)) => {
                    let w = w.clone();
                    self.pos += 1;
                    check_value(&w)?;
                    w
                }
                // An empty value between commas, as Kubernetes allows: `in (a,)`.
                Some(Token::Comma) | Some(Token::Close) => String::new(),
                other => return Err(format!("expected a value, found {}", describe(other))),
            };
            values.push(value);
            match self.next() {
                Some(Token::Comma) => continue,
                Some(Token::Close) => break,
                other => {
                    return Err(format!(
                        "expected \",\" or \")\" in a value set, found {}",
                        describe(other.as_ref())
                    ));
                }
            }
        }
        if values.iter().all(String::is_empty) && values.len() == 1 {
            return Err("in/notin needs at least one value".to_string());
        }
        Ok(values)
    }
}

/// A label key: `[prefix/]name`, prefix a DNS subdomain, name a label name.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > MAX_PREFIX_LEN || !is_dns_subdomain(p))
    {
        return Err(format!(
            "label key {key:?}: the prefix {p:?} must be a DNS subdomain"
        ));
    }
    if name.is_empty() || !is_label_text(name) {
        return Err(format!(
            "label key {key:?}: the name must be 1 to 63 characters of letters, digits, \"-\", \"_\" and \".\", starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_text(value) {
        Ok(())
    } else {
        Err(format!(
            "label value {value:?} must be at most 63 characters of letters, digits, \"-\", \"_\" and \".\", starting and ending with a letter or digit"
        ))
    }
}

/// Label name or value text (non-empty): `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`.
fn is_label_text(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() <= MAX_NAME_LEN
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// RFC 1123 subdomain, lower case, as Kubernetes names: dot-separated labels of
/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 253 characters in all.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_PREFIX_LEN
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            label.len() <= MAX_NAME_LEN
                && b.first()
                    .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && b.last()
                    .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap()
    }

    #[test]
    fn empty_and_all_select_everything() {
        for text in ["", "  ", "all()", " all() "] {
            let s = sel(text);
            assert!(s.selects_everything(), "{text:?}");
            assert!(s.matches(&labels(&[])));
            assert!(s.matches(&labels(&[("a", "b")])));
        }
    }

    #[test]
    fn equality_operators() {
        let l = labels(&[("zone", "a"), ("rack", "r1")]);
        assert!(sel("zone=a").matches(&l));
        assert!(sel("zone == a").matches(&l));
        assert!(!sel("zone=b").matches(&l));
        assert!(sel("zone!=b").matches(&l));
        assert!(!sel("zone!=a").matches(&l));
        // != holds for an absent label.
        assert!(sel("missing!=a").matches(&l));
        assert!(!sel("missing=a").matches(&l));
        assert!(sel("zone=a,rack=r1").matches(&l));
        assert!(!sel("zone=a, rack=r2").matches(&l));
    }

    #[test]
    fn set_operators() {
        let l = labels(&[("zone", "a")]);
        assert!(sel("zone in (a,b)").matches(&l));
        assert!(sel("zone in ( b , a )").matches(&l));
        assert!(!sel("zone in (b,c)").matches(&l));
        assert!(sel("zone notin (b,c)").matches(&l));
        assert!(!sel("zone notin (a)").matches(&l));
        assert!(sel("other notin (a)").matches(&l));
        assert!(!sel("other in (a)").matches(&l));
        assert!(sel("zone in (a,b),zone notin (c)").matches(&l));
    }

    #[test]
    fn existence_operators() {
        let l = labels(&[("node-role.kubernetes.io/worker", "")]);
        assert!(sel("node-role.kubernetes.io/worker").matches(&l));
        assert!(!sel("!node-role.kubernetes.io/worker").matches(&l));
        assert!(sel("!node-role.kubernetes.io/control-plane").matches(&l));
        assert!(sel("node-role.kubernetes.io/worker=").matches(&l));
        assert!(sel("a,!b").matches(&labels(&[("a", "1")])));
    }

    #[test]
    fn integer_comparisons() {
        let l = labels(&[("gen", "5"), ("name", "x")]);
        assert!(sel("gen>4").matches(&l));
        assert!(!sel("gen>5").matches(&l));
        assert!(sel("gen < 6").matches(&l));
        assert!(!sel("name>1").matches(&l));
        assert!(!sel("missing<1").matches(&l));
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "a=b",
            "a!=b",
            "a in (x,y)",
            "a notin (x)",
            "a",
            "!a",
            "a>3",
            "a<-1",
        ] {
            let s = sel(text);
            assert_eq!(sel(&s.to_string()), s, "{text}");
        }
        assert_eq!(sel("a==b , c").to_string(), "a=b,c");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let cases = [
            ("a=b,", "expected a label key"),
            (",a", "expected a label key"),
            ("a b", "expected an operator"),
            ("a in b", "expected \"(\""),
            ("a in (b", "expected \",\" or \")\""),
            ("a in ()", "at least one value"),
            ("a=b=c", "expected \",\" or the end"),
            ("a>b", "not an integer"),
            ("-a=b", "label key"),
            ("a=-b", "label value"),
            ("Example.COM/a=b", "DNS subdomain"),
            ("/a", "DNS subdomain"),
            ("a/", "label key"),
            ("!", "expected a label key"),
            ("a=(b)", "expected a label value"),
        ];
        for (text, want) in cases {
            let e = Selector::parse(text).unwrap_err();
            assert!(e.to_string().contains(want), "{text:?}: {e}");
            assert!(e.to_string().contains(&format!("{text:?}")), "{e}");
        }
        let long = "a".repeat(64);
        assert!(Selector::parse(&format!("{long}=x")).is_err());
        assert!(Selector::parse(&format!("x={long}")).is_err());
        // `all` without parentheses is a plain existence test of a label "all".
        assert_eq!(sel("all").requirements()[0].op, Operator::Exists);
    }

    #[test]
    fn dns_subdomains() {
        assert!(is_dns_subdomain("default-ipv4"));
        assert!(is_dns_subdomain("a.b-c.d"));
        assert!(!is_dns_subdomain(""));
        assert!(!is_dns_subdomain("-a"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(!is_dns_subdomain("Upper"));
        assert!(!is_dns_subdomain(&"a".repeat(254)));
    }
}
