// Label key and value syntax, as k8s.io/apimachinery/pkg/util/validation
// checks it (IsQualifiedName, IsValidLabelValue, IsDNS1123Subdomain). Both
// selector forms (text and meta/v1 LabelSelector) check names here, so they
// accept exactly the same keys and values.

/// Longest label name (the part after an optional prefix) and label value:
/// qualifiedNameMaxLength, LabelValueMaxLength.
pub const MAX_NAME_LEN: usize = 63;
/// Longest label key prefix, a DNS-1123 subdomain: DNS1123SubdomainMaxLength.
pub const MAX_PREFIX_LEN: usize = 253;

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

/// A label key: `[prefix/]name`, prefix a DNS-1123 subdomain (IsQualifiedName).
pub fn check_key(key: &str) -> Result<(), NameProblem> {
    let (prefix, name) = match key.split_once('/') {
        Some((_, name)) if name.contains('/') => return Err(NameProblem::TooManySlashes),
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err(NameProblem::EmptyPrefix);
        }
        if prefix.len() > MAX_PREFIX_LEN {
            return Err(NameProblem::PrefixTooLong);
        }
        if !is_dns_subdomain(prefix) {
            return Err(NameProblem::PrefixCharacters);
        }
    }
    if name.is_empty() {
        return Err(NameProblem::EmptyName);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameProblem::NameTooLong);
    }
    if !is_label_token(name) {
        return Err(NameProblem::NameCharacters);
    }
    Ok(())
}

/// A label value: empty, or a label token of at most 63 (IsValidLabelValue).
pub fn check_value(value: &str) -> Result<(), NameProblem> {
    if value.len() > MAX_NAME_LEN {
        return Err(NameProblem::ValueTooLong);
    }
    if !value.is_empty() && !is_label_token(value) {
        return Err(NameProblem::ValueCharacters);
    }
    Ok(())
}

/// RFC 1123 subdomain, lower case, as Kubernetes object names and label key
/// prefixes: `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`,
/// at most 253 characters in all.
pub fn is_dns_subdomain(s: &str) -> bool {
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !s.is_empty()
        && s.len() <= MAX_PREFIX_LEN
        && s.split('.').all(|label| {
            let bytes = label.as_bytes();
            match (bytes.first(), bytes.last()) {
                (Some(first), Some(last)) => {
                    alnum(first) && alnum(last) && bytes.iter().all(|b| alnum(b) || *b == b'-')
                }
                _ => false,
            }
        })
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, non-empty (no length limit).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_subdomains() {
        assert!(is_dns_subdomain("default-ipv4"));
        assert!(is_dns_subdomain("a.b-c.d"));
        assert!(!is_dns_subdomain(""));
        assert!(!is_dns_subdomain("-a"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(!is_dns_subdomain("Upper"));
        assert!(!is_dns_subdomain(&"a".repeat(254)));
        // Kubernetes limits the whole name, not each dot-separated part.
        assert!(is_dns_subdomain(&"a".repeat(64)));
    }

    #[test]
    fn keys_and_values() {
        assert_eq!(check_key("app.kubernetes.io/name"), Ok(()));
        assert_eq!(check_key("a/b/c"), Err(NameProblem::TooManySlashes));
        assert_eq!(check_key("/a"), Err(NameProblem::EmptyPrefix));
        assert_eq!(check_key("a/"), Err(NameProblem::EmptyName));
        assert_eq!(check_key("A.b/c"), Err(NameProblem::PrefixCharacters));
        assert_eq!(
            check_key(&format!("{}/a", "a".repeat(254))),
            Err(NameProblem::PrefixTooLong)
        );
        assert_eq!(check_key(&"a".repeat(63)), Ok(()));
        assert_eq!(check_key(&"a".repeat(64)), Err(NameProblem::NameTooLong));
        assert_eq!(check_key("-a"), Err(NameProblem::NameCharacters));
        assert_eq!(check_value(""), Ok(()));
        assert_eq!(check_value("my_app.v2"), Ok(()));
        assert_eq!(check_value("a b"), Err(NameProblem::ValueCharacters));
        assert_eq!(check_value(&"a".repeat(64)), Err(NameProblem::ValueTooLong));
    }
}
