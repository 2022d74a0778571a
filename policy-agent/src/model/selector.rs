// Kubernetes label selectors (meta/v1 LabelSelector) with their exact
// semantics: matchLabels and every matchExpressions term are ANDed; an empty
// selector matches everything; NotIn and DoesNotExist match when the key is
// absent. `LabelSelector` is the wire form (camelCase JSON/YAML, as in a
// NetworkPolicy); `validate` turns it into a `Selector` that can match.
//
// A *missing* selector (null in Go) matches nothing in Kubernetes; callers
// model that as `Option<LabelSelector>`, it is not a value of this type.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A pod's or namespace's labels.
pub type Labels = BTreeMap<String, String>;

/// Longest label name (the part after an optional prefix) and label value.
/// k8s.io/apimachinery/pkg/util/validation: qualifiedNameMaxLength,
/// LabelValueMaxLength.
pub const MAX_NAME_LEN: usize = 63;
/// Longest label key prefix (a DNS-1123 subdomain). Same source:
/// DNS1123SubdomainMaxLength.
pub const MAX_PREFIX_LEN: usize = 253;

/// meta/v1 LabelSelector, as written in manifests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub match_labels: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// meta/v1 LabelSelectorRequirement: one matchExpressions term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: Operator,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub values: Vec<String>,
}

/// meta/v1 LabelSelectorOperator; serialized exactly as Kubernetes spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// A validated selector, ready to match label sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// Why a label selector is invalid. `field` is the path inside the selector
/// (`matchExpressions[1].values`); callers prefix where the selector sits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("{field}: values must be non-empty when operator is {operator}")]
    MissingValues { field: String, operator: Operator },
    #[error("{field}: values must be empty when operator is {operator}")]
    UnexpectedValues { field: String, operator: Operator },
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

/// What is wrong with a label key or value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    #[error("name part must be non-empty")]
    EmptyName,
    #[error("name part must be at most {MAX_NAME_LEN} characters")]
    NameTooLong,
    #[error(
        "name part must consist of alphanumerics, '-', '_' or '.', and start and end with an alphanumeric"
    )]
    NameCharacters,
    #[error("prefix part must be non-empty")]
    EmptyPrefix,
    #[error("prefix part must be at most {MAX_PREFIX_LEN} characters")]
    PrefixTooLong,
    #[error(
        "prefix part must be a DNS-1123 subdomain: lowercase alphanumerics, '-' and '.', starting and ending with an alphanumeric"
    )]
    PrefixCharacters,
    #[error("a key has at most one '/' (prefix/name)")]
    TooManySlashes,
    #[error("value must be at most {MAX_NAME_LEN} characters")]
    ValueTooLong,
    #[error(
        "value must be empty or consist of alphanumerics, '-', '_' or '.', and start and end with an alphanumeric"
    )]
    ValueCharacters,
}

/// One ANDed term of a validated selector. matchLabels `k: v` becomes
/// `In { k, {v} }`, exactly as Kubernetes converts it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    In {
        key: String,
        values: BTreeSet<String>,
    },
    NotIn {
        key: String,
        values: BTreeSet<String>,
    },
    Exists {
        key: String,
    },
    DoesNotExist {
        key: String,
    },
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operator::In => "In",
            Operator::NotIn => "NotIn",
            Operator::Exists => "Exists",
            Operator::DoesNotExist => "DoesNotExist",
        })
    }
}

impl LabelSelector {
    /// Checks the selector as the Kubernetes API server does and returns the
    /// matcher, or the first problem found.
    pub fn validate(&self) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in &self.match_labels {
            check_key(key, "matchLabels")?;
            check_value(value, &format!("matchLabels.{key}"))?;
            requirements.push(Requirement::In {
                key: key.clone(),
                values: BTreeSet::from([value.clone()]),
            });
        }
        for (i, expr) in self.match_expressions.iter().enumerate() {
            requirements.push(expr.validate(&format!("matchExpressions[{i}]"))?);
        }
        Ok(Selector { requirements })
    }
}

impl LabelSelectorRequirement {
    fn validate(&self, field: &str) -> Result<Requirement, SelectorError> {
        check_key(&self.key, &format!("{field}.key"))?;
        let values_field = format!("{field}.values");
        let key = self.key.clone();
        match self.operator {
            Operator::In | Operator::NotIn => {
                if self.values.is_empty() {
                    return Err(SelectorError::MissingValues {
                        field: values_field,
                        operator: self.operator,
                    });
                }
                for (i, value) in self.values.iter().enumerate() {
                    check_value(value, &format!("{values_field}[{i}]"))?;
                }
                let values = self.values.iter().cloned().collect();
                Ok(if self.operator == Operator::In {
                    Requirement::In { key, values }
                } else {
                    Requirement::NotIn { key, values }
                })
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !self.values.is_empty() {
                    return Err(SelectorError::UnexpectedValues {
                        field: values_field,
                        operator: self.operator,
                    });
                }
                Ok(if self.operator == Operator::Exists {
                    Requirement::Exists { key }
                } else {
                    Requirement::DoesNotExist { key }
                })
            }
        }
    }
}

impl Selector {
    /// The selector that matches every label set (`{}` in a manifest).
    pub fn everything() -> Self {
        Selector {
            requirements: Vec::new(),
        }
    }

    /// True when every term holds for `labels`.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True for the empty selector, which selects everything.
    pub fn matches_everything(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl TryFrom<&LabelSelector> for Selector {
    type Error = SelectorError;

    fn try_from(selector: &LabelSelector) -> Result<Self, Self::Error> {
        selector.validate()
    }
}

impl Requirement {
    fn matches(&self, labels: &Labels) -> bool {
        match self {
            Requirement::In { key, values } => labels.get(key).is_some_and(|v| values.contains(v)),
            Requirement::NotIn { key, values } => {
                labels.get(key).is_none_or(|v| !values.contains(v))
            }
            Requirement::Exists { key } => labels.contains_key(key),
            Requirement::DoesNotExist { key } => !labels.contains_key(key),
        }
    }
}

/// Kubernetes' IsQualifiedName: `[prefix/]name`, prefix a DNS-1123 subdomain.
fn check_key(key: &str, field: &str) -> Result<(), SelectorError> {
    let invalid = |problem| SelectorError::InvalidKey {
        field: field.to_owned(),
        key: key.to_owned(),
        problem,
    };
    let (prefix, name) = match key.split_once('/') {
        Some((_, name)) if name.contains('/') => return Err(invalid(NameProblem::TooManySlashes)),
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err(invalid(NameProblem::EmptyPrefix));
        }
        if prefix.len() > MAX_PREFIX_LEN {
            return Err(invalid(NameProblem::PrefixTooLong));
        }
        if !is_dns1123_subdomain(prefix) {
            return Err(invalid(NameProblem::PrefixCharacters));
        }
    }
    if name.is_empty() {
        return Err(invalid(NameProblem::EmptyName));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(NameProblem::NameTooLong));
    }
    if !is_label_token(name) {
        return Err(invalid(NameProblem::NameCharacters));
    }
    Ok(())
}

/// Kubernetes' IsValidLabelValue: empty, or a label token of at most 63.
fn check_value(value: &str, field: &str) -> Result<(), SelectorError> {
    let invalid = |problem| SelectorError::InvalidValue {
        field: field.to_owned(),
        value: value.to_owned(),
        problem,
    };
    if value.len() > MAX_NAME_LEN {
        return Err(invalid(NameProblem::ValueTooLong));
    }
    if !value.is_empty() && !is_label_token(value) {
        return Err(invalid(NameProblem::ValueCharacters));
    }
    Ok(())
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, non-empty.
fn is_label_token(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`.
fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let bytes = label.as_bytes();
        let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        match (bytes.first(), bytes.last()) {
            (Some(first), Some(last)) => {
                alnum(first) && alnum(last) && bytes.iter().all(|b| alnum(b) || *b == b'-')
            }
            _ => false,
        }
    })
}

/// Kubernetes writes absent lists and maps as `null`; read them as empty.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(json: &str) -> LabelSelector {
        serde_json::from_str(json).unwrap()
    }

    fn selector(json: &str) -> Selector {
        parse(json).validate().unwrap()
    }

    fn expr(key: &str, operator: Operator, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_owned(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn of(exprs: Vec<LabelSelectorRequirement>) -> Selector {
        LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: exprs,
        }
        .validate()
        .unwrap()
    }

    #[test]
    fn table_of_matches() {
        let web_fe = labels(&[("app", "web"), ("tier", "frontend")]);
        let db = labels(&[("app", "db"), ("env", "prod")]);
        let none = labels(&[]);
        // (selector JSON, labels, expected)
        let cases: &[(&str, &Labels, bool)] = &[
            (r#"{}"#, &web_fe, true),
            (r#"{}"#, &none, true),
            (r#"{"matchLabels":{"app":"web"}}"#, &web_fe, true),
            (r#"{"matchLabels":{"app":"web"}}"#, &db, false),
            (r#"{"matchLabels":{"app":"web"}}"#, &none, false),
            (
                r#"{"matchLabels":{"app":"web","tier":"frontend"}}"#,
                &web_fe,
                true,
            ),
            (
                r#"{"matchLabels":{"app":"web","tier":"backend"}}"#,
                &web_fe,
                false,
            ),
            (
                r#"{"matchExpressions":[{"key":"app","operator":"In","values":["web","db"]}]}"#,
                &db,
                true,
            ),
            (
                r#"{"matchExpressions":[{"key":"app","operator":"In","values":["web","db"]}]}"#,
                &none,
                false,
            ),
            (
                r#"{"matchExpressions":[{"key":"env","operator":"NotIn","values":["prod"]}]}"#,
                &db,
                false,
            ),
            // NotIn matches when the key is absent.
            (
                r#"{"matchExpressions":[{"key":"env","operator":"NotIn","values":["prod"]}]}"#,
                &web_fe,
                true,
            ),
            (
                r#"{"matchExpressions":[{"key":"env","operator":"Exists"}]}"#,
                &db,
                true,
            ),
            (
                r#"{"matchExpressions":[{"key":"env","operator":"Exists"}]}"#,
                &web_fe,
                false,
            ),
            (
                r#"{"matchExpressions":[{"key":"env","operator":"DoesNotExist"}]}"#,
                &web_fe,
                true,
            ),
            (
                r#"{"matchExpressions":[{"key":"env","operator":"DoesNotExist"}]}"#,
                &db,
                false,
            ),
            // matchLabels and matchExpressions are ANDed.
            (
                r#"{"matchLabels":{"app":"db"},"matchExpressions":[{"key":"env","operator":"NotIn","values":["prod"]}]}"#,
                &db,
                false,
            ),
            (
                r#"{"matchLabels":{"app":"web"},"matchExpressions":[{"key":"env","operator":"DoesNotExist"}]}"#,
                &web_fe,
                true,
            ),
            // Kubernetes writes absent fields as null.
            (
                r#"{"matchLabels":null,"matchExpressions":[{"key":"app","operator":"Exists","values":null}]}"#,
                &web_fe,
                true,
            ),
            // Keys with a DNS prefix; values may be empty strings.
            (
                r#"{"matchLabels":{"app.kubernetes.io/name":""}}"#,
                &labels(&[("app.kubernetes.io/name", "")]),
                true,
            ),
            (
                r#"{"matchLabels":{"app.kubernetes.io/name":""}}"#,
                &labels(&[("app.kubernetes.io/name", "x")]),
                false,
            ),
        ];
        for (json, labels, expected) in cases {
            assert_eq!(
                selector(json).matches(labels),
                *expected,
                "selector {json} on {labels:?}"
            );
        }
    }

    #[test]
    fn table_of_validation_errors() {
        let long63 = "a".repeat(63);
        let long64 = "a".repeat(64);
        let cases: Vec<(String, SelectorError)> = vec![
            (
                r#"{"matchExpressions":[{"key":"app","operator":"In","values":[]}]}"#.into(),
                SelectorError::MissingValues {
                    field: "matchExpressions[0].values".into(),
                    operator: Operator::In,
                },
            ),
            (
                r#"{"matchExpressions":[{"key":"a","operator":"Exists"},{"key":"app","operator":"NotIn"}]}"#
                    .into(),
                SelectorError::MissingValues {
                    field: "matchExpressions[1].values".into(),
                    operator: Operator::NotIn,
                },
            ),
            (
                r#"{"matchExpressions":[{"key":"app","operator":"DoesNotExist","values":["x"]}]}"#
                    .into(),
                SelectorError::UnexpectedValues {
                    field: "matchExpressions[0].values".into(),
                    operator: Operator::DoesNotExist,
                },
            ),
            (
                r#"{"matchLabels":{"-app":"web"}}"#.into(),
                SelectorError::InvalidKey {
                    field: "matchLabels".into(),
                    key: "-app".into(),
                    problem: NameProblem::NameCharacters,
                },
            ),
            (
                r#"{"matchLabels":{"Example.com/app":"web"}}"#.into(),
                SelectorError::InvalidKey {
                    field: "matchLabels".into(),
                    key: "Example.com/app".into(),
                    problem: NameProblem::PrefixCharacters,
                },
            ),
            (
                r#"{"matchLabels":{"/app":"web"}}"#.into(),
                SelectorError::InvalidKey {
                    field: "matchLabels".into(),
                    key: "/app".into(),
                    problem: NameProblem::EmptyPrefix,
                },
            ),
            (
                r#"{"matchLabels":{"a/b/c":"web"}}"#.into(),
                SelectorError::InvalidKey {
                    field: "matchLabels".into(),
                    key: "a/b/c".into(),
                    problem: NameProblem::TooManySlashes,
                },
            ),
            (
                r#"{"matchExpressions":[{"key":"example.com/","operator":"Exists"}]}"#.into(),
                SelectorError::InvalidKey {
                    field: "matchExpressions[0].key".into(),
                    key: "example.com/".into(),
                    problem: NameProblem::EmptyName,
                },
            ),
            (
                format!(r#"{{"matchLabels":{{"{long64}":"x"}}}}"#),
                SelectorError::InvalidKey {
                    field: "matchLabels".into(),
                    key: long64.clone(),
                    problem: NameProblem::NameTooLong,
                },
            ),
            (
                format!(r#"{{"matchLabels":{{"app":"{long64}"}}}}"#),
                SelectorError::InvalidValue {
                    field: "matchLabels.app".into(),
                    value: long64.clone(),
                    problem: NameProblem::ValueTooLong,
                },
            ),
            (
                r#"{"matchExpressions":[{"key":"app","operator":"In","values":["ok","bad value"]}]}"#
                    .into(),
                SelectorError::InvalidValue {
                    field: "matchExpressions[0].values[1]".into(),
                    value: "bad value".into(),
                    problem: NameProblem::ValueCharacters,
                },
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(parse(&json).validate(), Err(expected), "selector {json}");
        }
        // The limits themselves are fine.
        selector(&format!(r#"{{"matchLabels":{{"{long63}":"{long63}"}}}}"#));
        selector(r#"{"matchLabels":{"app.kubernetes.io/part-of":"my_app.v2"}}"#);
    }

    #[test]
    fn error_message_names_the_field() {
        let err = parse(r#"{"matchExpressions":[{"key":"app","operator":"In"}]}"#)
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "matchExpressions[0].values: values must be non-empty when operator is In"
        );
    }

    #[test]
    fn unknown_operator_is_a_decode_error() {
        let err = serde_json::from_str::<LabelSelector>(
            r#"{"matchExpressions":[{"key":"app","operator":"Equals","values":["x"]}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("Equals"), "{err}");
        // Operators are case-sensitive, as in Kubernetes.
        assert!(
            serde_json::from_str::<LabelSelector>(
                r#"{"matchExpressions":[{"key":"app","operator":"in","values":["x"]}]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn serde_round_trip_uses_kubernetes_field_names() {
        let sel = LabelSelector {
            match_labels: BTreeMap::from([("app".into(), "web".into())]),
            match_expressions: vec![
                expr("env", Operator::NotIn, &["prod"]),
                expr("canary", Operator::DoesNotExist, &[]),
            ],
        };
        let json = serde_json::to_string(&sel).unwrap();
        assert_eq!(
            json,
            r#"{"matchLabels":{"app":"web"},"matchExpressions":[{"key":"env","operator":"NotIn","values":["prod"]},{"key":"canary","operator":"DoesNotExist"}]}"#
        );
        assert_eq!(serde_json::from_str::<LabelSelector>(&json).unwrap(), sel);
        assert_eq!(
            serde_json::to_string(&LabelSelector::default()).unwrap(),
            "{}"
        );
        assert!(parse("{}").validate().unwrap().matches_everything());
        assert_eq!(parse("{}").validate().unwrap(), Selector::everything());
    }

    /// Every label set over keys {a, b} and values {x, y} (each key absent,
    /// x or y): 9 sets.
    fn all_label_sets() -> Vec<Labels> {
        let options = [None, Some("x"), Some("y")];
        let mut sets = Vec::new();
        for a in options {
            for b in options {
                let mut l = Labels::new();
                if let Some(v) = a {
                    l.insert("a".into(), v.into());
                }
                if let Some(v) = b {
                    l.insert("b".into(), v.into());
                }
                sets.push(l);
            }
        }
        sets
    }

    /// Every valid single term over the same universe: In/NotIn with each
    /// non-empty subset of {x, y}, Exists, DoesNotExist, for keys a and b.
    fn all_terms() -> Vec<LabelSelectorRequirement> {
        let subsets: [&[&str]; 3] = [&["x"], &["y"], &["x", "y"]];
        let mut terms = Vec::new();
        for key in ["a", "b"] {
            for values in subsets {
                terms.push(expr(key, Operator::In, values));
                terms.push(expr(key, Operator::NotIn, values));
            }
            terms.push(expr(key, Operator::Exists, &[]));
            terms.push(expr(key, Operator::DoesNotExist, &[]));
        }
        terms
    }

    /// The Kubernetes documentation's definition of each operator, written
    /// independently of `Requirement::matches`.
    fn spec(term: &LabelSelectorRequirement, labels: &Labels) -> bool {
        let value = labels.get(&term.key);
        let listed = value.is_some_and(|v| term.values.contains(v));
        match term.operator {
            Operator::In => listed,
            Operator::NotIn => !listed,
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }

    #[test]
    fn exhaustive_single_terms_follow_the_spec() {
        let sets = all_label_sets();
        for term in all_terms() {
            let sel = of(vec![term.clone()]);
            for l in &sets {
                assert_eq!(sel.matches(l), spec(&term, l), "{term:?} on {l:?}");
            }
        }
        for l in &sets {
            assert!(Selector::everything().matches(l));
        }
    }

    #[test]
    fn exhaustive_negations_and_match_labels_equivalence() {
        for l in &all_label_sets() {
            for key in ["a", "b"] {
                let exists = of(vec![expr(key, Operator::Exists, &[])]).matches(l);
                let absent = of(vec![expr(key, Operator::DoesNotExist, &[])]).matches(l);
                assert_ne!(exists, absent, "{key} on {l:?}");
                for value in ["x", "y"] {
                    let is_in = of(vec![expr(key, Operator::In, &[value])]).matches(l);
                    let not_in = of(vec![expr(key, Operator::NotIn, &[value])]).matches(l);
                    assert_ne!(is_in, not_in, "{key}={value} on {l:?}");
                    let by_labels = LabelSelector {
                        match_labels: BTreeMap::from([(key.into(), value.into())]),
                        match_expressions: vec![],
                    }
                    .validate()
                    .unwrap()
                    .matches(l);
                    assert_eq!(by_labels, is_in, "matchLabels {key}={value} on {l:?}");
                }
            }
        }
    }

    #[test]
    fn exhaustive_pairs_are_anded_in_any_order() {
        let sets = all_label_sets();
        let terms = all_terms();
        for t1 in &terms {
            for t2 in &terms {
                let both = of(vec![t1.clone(), t2.clone()]);
                let swapped = of(vec![t2.clone(), t1.clone()]);
                for l in &sets {
                    let expected = spec(t1, l) && spec(t2, l);
                    assert_eq!(both.matches(l), expected, "{t1:?} AND {t2:?} on {l:?}");
                    assert_eq!(swapped.matches(l), expected);
                }
            }
        }
    }
}
