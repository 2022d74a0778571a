// The text form of a label selector, as `labels.Parse` of k8s.io/apimachinery
// reads it: comma-separated requirements `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
// `k notin (a,b)`, `k`, `!k`, `k>1`, `k<1`; the empty text selects everything.
// Also the unambiguous part of Calico's selector syntax (BGPPeer and IPPool
// selectors users bring along): `all()`, `k == 'v'`, `k != "v"`, `has(k)`,
// `!has(k)`, `k in {'a','b'}`, `k not in {'a'}`, terms joined with `&&`.
// Calico's `||`, parentheses and string matches are refused by name.

use crate::names::{NameProblem, check_key, check_value};
use crate::selector::{Operator, Requirement, Selector, SelectorError};

/// What is wrong in a selector's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxProblem {
    #[error("expected {expected}, found {found}")]
    Expected {
        expected: &'static str,
        found: String,
    },
    #[error(
        "expected an operator (=, ==, !=, in, notin, not in, >, <) after {key:?}, found {found}"
    )]
    ExpectedOperator { key: String, found: String },
    #[error("{0:?} is not an integer (> and < compare integers)")]
    NotAnInteger(String),
    #[error("in/notin needs at least one value")]
    EmptySet,
    #[error("label key {key:?}: {problem}")]
    InvalidKey { key: String, problem: NameProblem },
    #[error("label value {value:?}: {problem}")]
    InvalidValue { value: String, problem: NameProblem },
    #[error("a quoted value has no closing {0}")]
    UnclosedQuote(char),
    #[error(
        "{0} (Calico selector syntax) is not supported: podroute reads Calico's all(), ==, !=, has(k), !has(k), in {{...}} and not in {{...}}, joined with && (or Kubernetes' \",\")"
    )]
    UnsupportedCalico(&'static str),
}

impl Selector {
    /// Parses the text form (Kubernetes' or Calico's, see the module comment).
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let fail = |problem| SelectorError::Syntax {
            text: text.to_string(),
            problem,
        };
        let tokens = lex(text).map_err(fail)?;
        if tokens.is_empty() {
            return Ok(Self::everything());
        }
        let requirements = Parser { tokens, pos: 0 }.selector().map_err(fail)?;
        Ok(Self::new(requirements))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    /// `'v'` or `"v"` (Calico): always a value, never a key or operator.
    Quoted(String),
    Not,        // !
    Eq,         // = or ==
    NotEq,      // !=
    Gt,         // >
    Lt,         // <
    Comma,      // ,
    And,        // && (Calico)
    Or,         // || (Calico, refused)
    Open,       // (
    Close,      // )
    OpenBrace,  // { (Calico)
    CloseBrace, // } (Calico)
}

fn describe(t: Option<&Token>) -> String {
    let s = match t {
        None => return "the end".to_string(),
        Some(Token::Word(w)) => return format!("{w:?}"),
        Some(Token::Quoted(w)) => return format!("the quoted value {w:?}"),
        Some(Token::Not) => "!",
        Some(Token::Eq) => "=",
        Some(Token::NotEq) => "!=",
        Some(Token::Gt) => ">",
        Some(Token::Lt) => "<",
        Some(Token::Comma) => ",",
        Some(Token::And) => "&&",
        Some(Token::Or) => "||",
        Some(Token::Open) => "(",
        Some(Token::Close) => ")",
        Some(Token::OpenBrace) => "{",
        Some(Token::CloseBrace) => "}",
    };
    format!("{s:?}")
}

fn is_special(c: char) -> bool {
    matches!(
        c,
        '!' | '=' | '(' | ')' | '{' | '}' | ',' | '<' | '>' | '&' | '|' | '\'' | '"'
    )
}

fn lex(text: &str) -> Result<Vec<Token>, SyntaxProblem> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        let next = chars.peek().map(|(_, n)| *n);
        let token = match c {
            '!' if next == Some('=') => {
                chars.next();
                Token::NotEq
            }
            '!' => Token::Not,
            '=' => {
                if next == Some('=') {
                    chars.next();
                }
                Token::Eq
            }
            '&' if next == Some('&') => {
                chars.next();
                Token::And
            }
            '|' if next == Some('|') => {
                chars.next();
                Token::Or
            }
            '>' => Token::Gt,
            '<' => Token::Lt,
            ',' => Token::Comma,
            '(' => Token::Open,
            ')' => Token::Close,
            '{' => Token::OpenBrace,
            '}' => Token::CloseBrace,
            '\'' | '"' => {
                let start = i + c.len_utf8();
                let end = loop {
                    match chars.next() {
                        Some((j, q)) if q == c => break j,
                        Some(_) => {}
                        None => return Err(SyntaxProblem::UnclosedQuote(c)),
                    }
                };
                Token::Quoted(text[start..end].to_string())
            }
            // A lone `&` or `|` is a word of its own; it fails as a key.
            '&' | '|' => Token::Word(c.to_string()),
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
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Token> {
        self.tokens.get(self.pos + ahead)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    /// True when the next tokens are the word `name` and `(`: Calico's
    /// `all()` and `has(k)` (a Kubernetes key is never followed by `(`).
    fn at_call(&self, name: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w == name)
            && self.peek_at(1) == Some(&Token::Open)
    }

    fn selector(mut self) -> Result<Vec<Requirement>, SyntaxProblem> {
        let mut requirements = Vec::new();
        loop {
            requirements.extend(self.requirement()?);
            match self.next() {
                None => return Ok(requirements),
                Some(Token::Comma | Token::And) => {}
                Some(Token::Or) => return Err(SyntaxProblem::UnsupportedCalico("\"||\" (or)")),
                other => {
                    return Err(SyntaxProblem::Expected {
                        expected: "\",\" or the end after a requirement",
                        found: describe(other.as_ref()),
                    });
                }
            }
        }
    }

    /// One term; None for Calico's `all()`, which requires nothing.
    fn requirement(&mut self) -> Result<Option<Requirement>, SyntaxProblem> {
        if self.peek() == Some(&Token::Open) {
            return Err(SyntaxProblem::UnsupportedCalico(
                "grouping with parentheses",
            ));
        }
        if self.at_call("all") {
            self.pos += 1;
            self.call_argument(false)?;
            return Ok(None);
        }
        if self.at_call("has") {
            self.pos += 1;
            let key = self.call_argument(true)?;
            return Ok(Some(Requirement {
                key,
                op: Operator::Exists,
            }));
        }
        if self.peek() == Some(&Token::Not) {
            self.pos += 1;
            let key = if self.at_call("has") {
                self.pos += 1;
                self.call_argument(true)?
            } else if self.peek() == Some(&Token::Open) {
                return Err(SyntaxProblem::UnsupportedCalico("\"!\" before parentheses"));
            } else {
                self.key()?
            };
            return Ok(Some(Requirement {
                key,
                op: Operator::DoesNotExist,
            }));
        }
        let key = self.key()?;
        let op = match self.peek() {
            None | Some(Token::Comma | Token::And | Token::Or) => Operator::Exists,
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
                Operator::In(self.set()?.into_iter().collect())
            }
            Some(Token::Word(w)) if w == "notin" => {
                self.pos += 1;
                Operator::NotIn(self.set()?.into_iter().collect())
            }
            Some(Token::Word(w))
                if w == "not" && self.peek_at(1) == Some(&Token::Word("in".into())) =>
            {
                self.pos += 2;
                Operator::NotIn(self.set()?.into_iter().collect())
            }
            Some(Token::Word(w)) if matches!(w.as_str(), "contains" | "starts" | "ends") => {
                return Err(SyntaxProblem::UnsupportedCalico(
                    "matching part of a value (contains, starts with, ends with)",
                ));
            }
            other => {
                return Err(SyntaxProblem::ExpectedOperator {
                    key,
                    found: describe(other),
                });
            }
        };
        Ok(Some(Requirement { key, op }))
    }

    /// `(k)` after `has`, or `()` after `all`; the key when `with_key`.
    fn call_argument(&mut self, with_key: bool) -> Result<String, SyntaxProblem> {
        self.pos += 1; // the `(` at_call saw
        let key = if with_key { self.key()? } else { String::new() };
        match self.next() {
            Some(Token::Close) => Ok(key),
            other => Err(SyntaxProblem::Expected {
                expected: if with_key {
                    "\")\" after has(key"
                } else {
                    "\")\" after all("
                },
                found: describe(other.as_ref()),
            }),
        }
    }

    fn key(&mut self) -> Result<String, SyntaxProblem> {
        match self.next() {
            Some(Token::Word(w)) => match check_key(&w) {
                Ok(()) => Ok(w),
                Err(problem) => Err(SyntaxProblem::InvalidKey { key: w, problem }),
            },
            other => Err(SyntaxProblem::Expected {
                expected: "a label key",
                found: describe(other.as_ref()),
            }),
        }
    }

    /// A value after `=` or `!=`; may be empty (`k=` selects an empty value).
    fn value(&mut self) -> Result<String, SyntaxProblem> {
        match self.peek() {
            Some(Token::Word(w) | Token::Quoted(w)) => {
                let w = w.clone();
                self.pos += 1;
                checked_value(w)
            }
            None | Some(Token::Comma | Token::And) => Ok(String::new()),
            other => Err(SyntaxProblem::Expected {
                expected: "a label value",
                found: describe(other),
            }),
        }
    }

    fn integer(&mut self) -> Result<i64, SyntaxProblem> {
        match self.next() {
            Some(Token::Word(w)) => w.parse().map_err(|_| SyntaxProblem::NotAnInteger(w)),
            other => Err(SyntaxProblem::Expected {
                expected: "an integer",
                found: describe(other.as_ref()),
            }),
        }
    }

    /// `(a, b, ...)` after `in` / `notin`, or Calico's `{'a', 'b'}`: at least
    /// one value. An empty value between commas counts, as Kubernetes allows:
    /// `in (a,)`.
    fn set(&mut self) -> Result<Vec<String>, SyntaxProblem> {
        let close = match self.next() {
            Some(Token::Open) => Token::Close,
            Some(Token::OpenBrace) => Token::CloseBrace,
            other => {
                return Err(SyntaxProblem::Expected {
                    expected: "\"(\" after in/notin (or Calico's \"{\")",
                    found: describe(other.as_ref()),
                });
            }
        };
        if self.peek() == Some(&close) {
            return Err(SyntaxProblem::EmptySet);
        }
        let mut values = Vec::new();
        loop {
            let value = match self.peek() {
                Some(Token::Word(w) | Token::Quoted(w)) => {
                    let w = w.clone();
                    self.pos += 1;
                    checked_value(w)?
                }
                Some(t) if *t == Token::Comma || *t == close => String::new(),
                other => {
                    return Err(SyntaxProblem::Expected {
                        expected: "a value",
                        found: describe(other),
                    });
                }
            };
            values.push(value);
            match self.next() {
                Some(Token::Comma) => continue,
                Some(t) if t == close => return Ok(values),
                other => {
                    return Err(SyntaxProblem::Expected {
                        expected: if close == Token::Close {
                            "\",\" or \")\" in a value set"
                        } else {
                            "\",\" or \"}\" in a value set"
                        },
                        found: describe(other.as_ref()),
                    });
                }
            }
        }
    }
}

fn checked_value(value: String) -> Result<String, SyntaxProblem> {
    match check_value(&value) {
        Ok(()) => Ok(value),
        Err(problem) => Err(SyntaxProblem::InvalidValue { value, problem }),
    }
}

#[cfg(test)]
mod tests;
