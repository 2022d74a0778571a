#![allow(clippy::unwrap_used)]

use super::*;
use crate::Labels;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

fn problem(s: &str) -> SyntaxProblem {
    match Selector::parse(s) {
        Err(SelectorError::Syntax { problem, .. }) => problem,
        other => panic!("{s:?}: {other:?}"),
    }
}

#[test]
fn empty_and_all_select_everything() {
    for text in ["", "  ", "all()", " all() ", "all ( )"] {
        let s = sel(text);
        assert!(s.matches_everything(), "{text:?}");
        assert!(s.matches(&labels(&[])));
        assert!(s.matches(&labels(&[("a", "b")])));
        assert_eq!(s, Selector::everything());
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
    // An empty value between commas is a value.
    assert!(sel("zone in (b,)").matches(&labels(&[("zone", "")])));
    assert!(!sel("zone in (b,)").matches(&l));
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
        "a in (,)",
        "a notin (,x)",
        "a=",
        "has(a) && b == 'x' && c not in {'y'}",
    ] {
        let s = sel(text);
        assert_eq!(sel(&s.to_string()), s, "{text}");
    }
    assert_eq!(sel("a==b , c").to_string(), "a=b,c");
    // Canonical: requirements sorted by key, set values sorted and unique.
    assert_eq!(sel("z, a in (y,x,y)").to_string(), "a in (x,y),z");
    assert_eq!(sel("a in (,)").to_string(), "a in (,)");
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
        ("Example.COM/a=b", "DNS-1123 subdomain"),
        ("/a", "prefix part must be non-empty"),
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
    // The key and value problems are the structured form's.
    assert_eq!(
        problem("a/b/c"),
        SyntaxProblem::InvalidKey {
            key: "a/b/c".into(),
            problem: NameProblem::TooManySlashes
        }
    );
}

#[test]
fn calico_equality_with_either_quote() {
    let l = labels(&[("zone", "a"), ("rack", "r1")]);
    assert_eq!(sel("zone == 'a'"), sel("zone=a"));
    assert_eq!(sel("zone == \"a\""), sel("zone=a"));
    assert_eq!(sel("zone != 'b'"), sel("zone!=b"));
    assert!(sel("zone == 'a'").matches(&l));
    assert!(!sel("zone == \"b\"").matches(&l));
    assert!(sel("zone != 'b'").matches(&l));
    assert!(!sel("zone != 'a'").matches(&l));
    // As in Calico, != holds for an absent label.
    assert!(sel("missing != 'a'").matches(&l));
    // A quoted empty value.
    assert!(sel("empty == ''").matches(&labels(&[("empty", "")])));
}

#[test]
fn calico_has_and_not_has() {
    let l = labels(&[("bgp-rr", "")]);
    assert_eq!(sel("has(bgp-rr)"), sel("bgp-rr"));
    assert_eq!(sel("!has(bgp-rr)"), sel("!bgp-rr"));
    assert!(sel("has(bgp-rr)").matches(&l));
    assert!(sel("has( bgp-rr )").matches(&l));
    assert!(!sel("!has(bgp-rr)").matches(&l));
    assert!(sel("!has(other)").matches(&l));
    assert!(sel("has(example.com/x)").matches(&labels(&[("example.com/x", "1")])));
    // `has` and `all` without parentheses are plain keys.
    assert_eq!(sel("has").requirements()[0].op, Operator::Exists);
    assert_eq!(sel("!has").requirements()[0].op, Operator::DoesNotExist);
}

#[test]
fn calico_sets() {
    let l = labels(&[("zone", "a")]);
    assert_eq!(sel("zone in {'a', \"b\"}"), sel("zone in (a,b)"));
    assert_eq!(sel("zone not in {'a','b'}"), sel("zone notin (a,b)"));
    assert!(sel("zone in {'a','b'}").matches(&l));
    assert!(!sel("zone in {'b'}").matches(&l));
    assert!(sel("zone not in {'b'}").matches(&l));
    assert!(!sel("zone not in {'a','b'}").matches(&l));
    // As in Calico, not in holds for an absent label.
    assert!(sel("other not in {'a'}").matches(&l));
    // Quoted values inside Kubernetes' parentheses too.
    assert_eq!(sel("zone in ('a')"), sel("zone in (a)"));
    assert_eq!(problem("zone in {}"), SyntaxProblem::EmptySet);
    assert!(matches!(
        problem("zone in {'a')"),
        SyntaxProblem::Expected { .. }
    ));
}

#[test]
fn calico_terms_joined_with_and() {
    let s = sel("all() && has(rr) && zone == 'a' && rack in {'r1','r2'} && !has(drain)");
    assert_eq!(s, sel("rr,zone=a,rack in (r1,r2),!drain"));
    assert!(s.matches(&labels(&[("rr", ""), ("zone", "a"), ("rack", "r2")])));
    assert!(!s.matches(&labels(&[("rr", ""), ("zone", "a"), ("rack", "r3")])));
    assert!(!s.matches(&labels(&[
        ("rr", ""),
        ("zone", "a"),
        ("rack", "r1"),
        ("drain", "")
    ])));
    // Both joiners in one text; `k &&` is an existence test.
    assert_eq!(sel("a && b=c, d"), sel("a,b=c,d"));
    assert_eq!(sel("a && b"), sel("a,b"));
}

#[test]
fn calico_or_and_parentheses_are_refused_by_name() {
    for text in [
        "a == 'x' || b == 'y'",
        "has(a) || has(b)",
        "a || b",
        "(a == 'x')",
        "has(a) && (b == 'x' || c == 'y')",
        "!(a == 'x')",
        "a contains 'x'",
        "a starts with 'x'",
        "a ends with 'x'",
    ] {
        let e = Selector::parse(text).unwrap_err();
        assert!(
            matches!(
                e,
                SelectorError::Syntax {
                    problem: SyntaxProblem::UnsupportedCalico(_),
                    ..
                }
            ),
            "{text:?}: {e:?}"
        );
        let message = e.to_string();
        assert!(message.contains("Calico selector syntax"), "{message}");
        assert!(message.contains("joined with &&"), "{message}");
    }
    assert!(
        Selector::parse("a || b")
            .unwrap_err()
            .to_string()
            .contains("\"||\" (or)")
    );
    assert!(
        Selector::parse("(a)")
            .unwrap_err()
            .to_string()
            .contains("parentheses")
    );
}

#[test]
fn calico_malformed() {
    assert_eq!(problem("a == 'x"), SyntaxProblem::UnclosedQuote('\''));
    assert_eq!(problem("a == \"x"), SyntaxProblem::UnclosedQuote('"'));
    assert!(matches!(problem("has(a"), SyntaxProblem::Expected { .. }));
    assert!(matches!(problem("has()"), SyntaxProblem::Expected { .. }));
    assert!(matches!(problem("all(a)"), SyntaxProblem::Expected { .. }));
    assert!(matches!(
        problem("a & b"),
        SyntaxProblem::ExpectedOperator { .. }
    ));
    // A quoted text is a value, never a key.
    assert!(matches!(
        problem("'a' == 'b'"),
        SyntaxProblem::Expected { .. }
    ));
    // Quoted values obey the label value rules.
    assert!(matches!(
        problem("a == 'x y'"),
        SyntaxProblem::InvalidValue {
            problem: NameProblem::ValueCharacters,
            ..
        }
    ));
    assert!(matches!(problem("a &&"), SyntaxProblem::Expected { .. }));
}
