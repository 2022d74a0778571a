// The compiled selector both forms turn into: a list of requirements on
// labels, all of which must hold. The empty selector matches everything.
// Negative requirements (!=, notin, DoesNotExist) hold when the label is
// absent, as in Kubernetes and Calico. Display prints the Kubernetes text form.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::names::NameProblem;
use crate::structured::LabelSelectorOperator;
use crate::text::SyntaxProblem;

/// A node's, pod's or namespace's labels.
pub type Labels = BTreeMap<String, String>;

/// A parsed or validated selector: every requirement must hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Selector {
    /// Sorted by key (stable), as Kubernetes keeps them: equal selectors
    /// written in another order compare and print the same.
    requirements: Vec<Requirement>,
}

/// One condition on one label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    pub key: String,
    pub op: Operator,
}

/// Every test either form can write. The text form has all of them; the
/// structured form (LabelSelector) writes In, NotIn, Exists, DoesNotExist,
/// and its matchLabels `k: v` compiles to Equals.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `k=v`, `k==v`, Calico `k == 'v'`, matchLabels `k: v`
    Equals(String),
    /// `k!=v`, Calico `k != 'v'`: also true when the label is absent.
    NotEquals(String),
    /// `k in (a,b)`, Calico `k in {'a','b'}`, `In`
    In(BTreeSet<String>),
    /// `k notin (a,b)`, Calico `k not in {'a','b'}`, `NotIn`: also true when
    /// the label is absent.
    NotIn(BTreeSet<String>),
    /// `k`, Calico `has(k)`, `Exists`
    Exists,
    /// `!k`, Calico `!has(k)`, `DoesNotExist`
    DoesNotExist,
    /// `k>n` (text form only): the label is an integer greater than n.
    GreaterThan(i64),
    /// `k<n` (text form only): the label is an integer less than n.
    LessThan(i64),
}

/// Why a selector, in either form, is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The text form: `text` as written, and what is wrong in it.
    #[error("bad label selector {text:?}: {problem}")]
    Syntax {
        text: String,
        problem: SyntaxProblem,
    },
    // The structured form: `field` is the path inside the selector
    // (`matchExpressions[1].values`); callers prefix where the selector sits.
    #[error("{field}: values must be non-empty when operator is {operator}")]
    MissingValues {
        field: String,
        operator: LabelSelectorOperator,
    },
    #[error("{field}: values must be empty when operator is {operator}")]
    UnexpectedValues {
        field: String,
        operator: LabelSelectorOperator,
    },
    #[error("{field}: invalid label key {key:?}: {problem}")]
    InvalidKey {
        field: String,
        key: String,
        problem: NameProblem,
    },
    #[error("{field}: invalid label value {value:?}: {problem}")]
    InvalidValue {
        field: String,
        value: String,
        problem: NameProblem,
    },
}

impl Selector {
    /// Selects everything (the empty text, `all()`, `{}` in a manifest).
    pub fn everything() -> Self {
        Self::default()
    }

    /// Requirements as the parsers produce them (not checked again).
    pub(crate) fn new(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Self { requirements }
    }

    /// True when every requirement holds for `labels`.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True for the empty selector, which selects everything.
    pub fn matches_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }
}

impl Requirement {
    pub fn matches(&self, labels: &Labels) -> bool {
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

/// The Kubernetes text form (`labels.Parse` reads it back): requirements
/// sorted by key, values sorted; the empty selector prints as the empty text.
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = &self.key;
        match &self.op {
            Operator::Equals(v) => write!(f, "{k}={v}"),
            Operator::NotEquals(v) => write!(f, "{k}!={v}"),
            Operator::In(vs) => write!(f, "{k} in ({})", ValueSet(vs)),
            Operator::NotIn(vs) => write!(f, "{k} notin ({})", ValueSet(vs)),
            Operator::Exists => write!(f, "{k}"),
            Operator::DoesNotExist => write!(f, "!{k}"),
            Operator::GreaterThan(n) => write!(f, "{k}>{n}"),
            Operator::LessThan(n) => write!(f, "{k}<{n}"),
        }
    }
}

/// The values of a set, comma-separated. The set holding only the empty value
/// prints as `,` (a lone empty value would read back as the empty set `()`).
struct ValueSet<'a>(&'a BTreeSet<String>);

impl fmt::Display for ValueSet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() == 1 && self.0.contains("") {
            return f.write_str(",");
        }
        let values: Vec<&str> = self.0.iter().map(String::as_str).collect();
        f.write_str(&values.join(","))
    }
}
