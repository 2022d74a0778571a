#![allow(clippy::unwrap_used)]

use super::*;
use crate::{Labels, NameProblem, Selector, SelectorError};
// The moved policy-agent tests name the wire operator `Operator`.
use LabelSelectorOperator as Operator;

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

#[test]
fn displays_the_canonical_text_form() {
    let cases = [
        (r#"{}"#, ""),
        (r#"{"matchLabels":{"app":"web"}}"#, "app=web"),
        (
            r#"{"matchLabels":{"tier":"fe","app":"web"},"matchExpressions":[{"key":"env","operator":"NotIn","values":["prod","dev","prod"]},{"key":"canary","operator":"DoesNotExist"},{"key":"b","operator":"Exists"},{"key":"zone","operator":"In","values":["a"]}]}"#,
            "app=web,b,!canary,env notin (dev,prod),tier=fe,zone in (a)",
        ),
        (
            r#"{"matchLabels":{"app.kubernetes.io/name":""}}"#,
            "app.kubernetes.io/name=",
        ),
    ];
    for (json, text) in cases {
        let wire = parse(json);
        assert_eq!(wire.to_string(), text, "{json}");
        // The text reads back as the same selector.
        assert_eq!(
            Selector::parse(text).unwrap(),
            wire.validate().unwrap(),
            "{json}"
        );
        assert_eq!(wire.validate().unwrap().to_string(), text);
    }
    // Invalid selectors print too, for error messages.
    assert_eq!(
        parse(r#"{"matchExpressions":[{"key":"a","operator":"In"}]}"#).to_string(),
        "a in ()"
    );
}

#[test]
fn match_labels_compile_to_equals() {
    let s = selector(r#"{"matchLabels":{"app":"web"}}"#);
    assert_eq!(
        s.requirements()[0].op,
        crate::Operator::Equals("web".into())
    );
}

#[test]
fn both_forms_match_alike_over_every_term() {
    // Each structured term and its text form agree on every label set.
    let sets = all_label_sets();
    for term in all_terms() {
        let wire = LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![term.clone()],
        };
        let text = Selector::parse(&wire.to_string()).unwrap();
        for l in &sets {
            assert_eq!(text.matches(l), spec(&term, l), "{wire} on {l:?}");
        }
    }
}

#[test]
fn null_as_default_reads_null_and_absent_alike() {
    #[derive(serde::Deserialize)]
    struct Wire {
        #[serde(default, deserialize_with = "null_as_default")]
        list: Vec<String>,
    }
    let read = |json| serde_json::from_str::<Wire>(json).unwrap().list;
    assert!(read(r#"{"list":null}"#).is_empty());
    assert!(read(r#"{}"#).is_empty());
    assert_eq!(read(r#"{"list":["a"]}"#), ["a"]);
    assert!(serde_json::from_str::<Wire>(r#"{"list":3}"#).is_err());
}
