// What each Secret of --tls-secret needs, given what was read and the
// time: keep it, create it, or replace it, and what to issue anew. Pure
// (no I/O, no clock, no randomness): secret.rs reads, asks, issues and
// writes.

use std::collections::BTreeMap;

use super::pki::{self, Pair, Problem, Usage};

/// Data keys of the Secrets (kubernetes.io/tls, plus the CA).
pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const TLS_CERT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";

/// A Secret's data, as read.
pub type SecretData = BTreeMap<String, Vec<u8>>;

/// ipamd's Secret: `ca.crt`, `ca.key`, `tls.crt`, `tls.key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerPlan {
    /// Everything is sound: serve with it.
    Keep { ca: Pair, server: Pair },
    /// No Secret: a new CA and server certificate, created.
    Create,
    /// The CA is sound, the server certificate is not: a new one signed by
    /// the same CA, replacing the Secret (nodes keep working).
    RenewServer { ca: Pair, why: Problem },
    /// The CA is broken: a new CA and server certificate, replacing the
    /// Secret (the nodes' Secret then follows).
    RenewAll { why: Problem },
}

/// The nodes' Secret: `ca.crt`, `tls.crt`, `tls.key`, and no CA key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodePlan {
    /// Sound and from the current CA: keep it.
    Keep,
    /// No Secret: issue and create it.
    Create,
    /// Issue a new client certificate and replace the Secret.
    Renew { why: Problem },
}

/// The server Secret's plan, for a certificate that must name `names`.
pub fn plan_server(stored: Option<&SecretData>, names: &[String], now: i64) -> ServerPlan {
    let Some(data) = stored else {
        return ServerPlan::Create;
    };
    let ca = match pair(data, (CA_CERT, CA_KEY)) {
        Ok(ca) => ca,
        Err(why) => return ServerPlan::RenewAll { why },
    };
    if let Err(why) = pki::check_ca(&ca, (CA_CERT, CA_KEY), now) {
        return ServerPlan::RenewAll { why };
    }
    let server = pair(data, (TLS_CERT, TLS_KEY)).and_then(|server| {
        let keys = (TLS_CERT, TLS_KEY);
        pki::check_leaf(&server, keys, &ca.cert_pem, Usage::Server, names, now)?;
        Ok(server)
    });
    match server {
        Ok(server) => ServerPlan::Keep { ca, server },
        Err(why) => ServerPlan::RenewServer { ca, why },
    }
}

/// The nodes' Secret's plan, for the CA `ca_pem` (a sound one).
pub fn plan_node(stored: Option<&SecretData>, ca_pem: &str, now: i64) -> NodePlan {
    let Some(data) = stored else {
        return NodePlan::Create;
    };
    match check_node(data, ca_pem, now) {
        Ok(()) => NodePlan::Keep,
        Err(why) => NodePlan::Renew { why },
    }
}

/// The data of ipamd's Secret.
pub fn server_data(ca: &Pair, server: &Pair) -> SecretData {
    BTreeMap::from([
        (CA_CERT.to_owned(), ca.cert_pem.clone().into_bytes()),
        (CA_KEY.to_owned(), ca.key_pem.clone().into_bytes()),
        (TLS_CERT.to_owned(), server.cert_pem.clone().into_bytes()),
        (TLS_KEY.to_owned(), server.key_pem.clone().into_bytes()),
    ])
}

/// The data of the nodes' Secret.
pub fn node_data(ca_pem: &str, node: &Pair) -> SecretData {
    BTreeMap::from([
        (CA_CERT.to_owned(), ca_pem.as_bytes().to_vec()),
        (TLS_CERT.to_owned(), node.cert_pem.clone().into_bytes()),
        (TLS_KEY.to_owned(), node.key_pem.clone().into_bytes()),
    ])
}

fn check_node(data: &SecretData, ca_pem: &str, now: i64) -> Result<(), Problem> {
    if data.contains_key(CA_KEY) {
        return Err(Problem::Unexpected { key: CA_KEY });
    }
    let ca = text(data, CA_CERT)?;
    if !pki::same_certificate(ca, ca_pem) {
        return Err(Problem::OtherCa { key: CA_CERT });
    }
    let node = pair(data, (TLS_CERT, TLS_KEY))?;
    pki::check_leaf(&node, (TLS_CERT, TLS_KEY), ca_pem, Usage::Client, &[], now)
}

fn pair(data: &SecretData, keys: (&'static str, &'static str)) -> Result<Pair, Problem> {
    Ok(Pair {
        cert_pem: text(data, keys.0)?.to_owned(),
        key_pem: text(data, keys.1)?.to_owned(),
    })
}

fn text<'a>(data: &'a SecretData, key: &'static str) -> Result<&'a str, Problem> {
    let bytes = data.get(key).ok_or(Problem::Missing { key })?;
    std::str::from_utf8(bytes).map_err(|_| Problem::Unreadable {
        key,
        reason: "not PEM text".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::tls::pki::{
        CA_LIFETIME_SECS, DAY_SECS, LEAF_LIFETIME_SECS, issue_node, issue_server, new_ca,
    };

    /// 2026-01-01T00:00:00Z.
    const NOW: i64 = 1_767_225_600;

    fn names() -> Vec<String> {
        vec![
            "podroute-ipamd".to_owned(),
            "podroute-ipamd.podroute-system.svc".to_owned(),
            "127.0.0.1".to_owned(),
        ]
    }

    fn sound() -> (Pair, Pair, SecretData) {
        let ca = new_ca(NOW).unwrap();
        let server = issue_server(&ca, &names(), NOW).unwrap();
        let data = server_data(&ca, &server);
        (ca, server, data)
    }

    #[test]
    fn nothing_stored_is_created() {
        assert_eq!(plan_server(None, &names(), NOW), ServerPlan::Create);
        assert_eq!(plan_node(None, "unused", NOW), NodePlan::Create);
    }

    #[test]
    fn a_sound_secret_is_kept_as_read() {
        let (ca, server, data) = sound();
        let later = NOW + 365 * DAY_SECS;
        assert_eq!(
            plan_server(Some(&data), &names(), later),
            ServerPlan::Keep { ca, server }
        );
    }

    #[test]
    fn a_server_certificate_expiring_within_30_days_is_renewed_by_the_same_ca() {
        // A CA with five years left, a server certificate with ten days.
        let ca = new_ca(NOW - CA_LIFETIME_SECS / 2).unwrap();
        let issued = NOW + 10 * DAY_SECS - LEAF_LIFETIME_SECS;
        let server = issue_server(&ca, &names(), issued).unwrap();
        let data = server_data(&ca, &server);
        assert_eq!(
            plan_server(Some(&data), &names(), NOW),
            ServerPlan::RenewServer {
                ca: ca.clone(),
                why: Problem::Expiring {
                    key: TLS_CERT,
                    days: 10
                },
            }
        );
        let plan = plan_server(Some(&data), &names(), NOW + 11 * DAY_SECS);
        assert!(
            matches!(
                &plan,
                ServerPlan::RenewServer {
                    why: Problem::Expired {
                        key: TLS_CERT,
                        days: 1
                    },
                    ..
                }
            ),
            "{plan:?}"
        );
    }

    #[test]
    fn a_server_certificate_missing_a_name_asked_for_is_renewed() {
        let (ca, _, data) = sound();
        let mut more = names();
        more.push("ipamd.example.org".to_owned());
        more.push("10.0.0.1".to_owned());
        let plan = plan_server(Some(&data), &more, NOW);
        let ServerPlan::RenewServer { ca: kept, why } = plan else {
            panic!("{plan:?}");
        };
        assert_eq!(kept, ca);
        assert_eq!(
            why,
            Problem::MissingNames {
                key: TLS_CERT,
                names: vec!["ipamd.example.org".to_owned(), "10.0.0.1".to_owned()],
            }
        );
        assert_eq!(
            why.to_string(),
            "tls.crt is not for ipamd.example.org, 10.0.0.1"
        );
    }

    #[test]
    fn a_broken_server_certificate_is_renewed() {
        let (ca, _, data) = sound();
        let foreign = issue_server(&new_ca(NOW).unwrap(), &names(), NOW).unwrap();
        let client = issue_node(&ca, NOW).unwrap();
        let another_key = new_ca(NOW).unwrap().key_pem;
        let cases = [
            (
                "garbage",
                with(&data, TLS_CERT, b"garbage"),
                Problem::Unreadable {
                    key: TLS_CERT,
                    reason: String::new(),
                },
            ),
            (
                "missing key",
                without(&data, TLS_KEY),
                Problem::Missing { key: TLS_KEY },
            ),
            (
                "another key",
                with(&data, TLS_KEY, another_key.as_bytes()),
                Problem::KeyMismatch {
                    key: TLS_KEY,
                    cert: TLS_CERT,
                },
            ),
            (
                "another CA",
                server_data(&ca, &foreign),
                Problem::NotSignedByCa { key: TLS_CERT },
            ),
            (
                "a client certificate",
                server_data(&ca, &client),
                Problem::WrongUsage {
                    key: TLS_CERT,
                    usage: Usage::Server,
                },
            ),
        ];
        for (case, broken, expected) in cases {
            let plan = plan_server(Some(&broken), &names(), NOW);
            let ServerPlan::RenewServer { ca: kept, why } = plan else {
                panic!("{case}: {plan:?}");
            };
            assert_eq!(kept, ca, "{case}");
            assert_same_problem(&why, &expected, case);
        }
    }

    #[test]
    fn a_broken_ca_renews_everything() {
        let (_, server, data) = sound();
        let cases: Vec<(&str, SecretData, Problem)> = vec![
            (
                "garbage",
                with(
                    &data,
                    CA_CERT,
                    b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                ),
                Problem::Unreadable {
                    key: CA_CERT,
                    reason: String::new(),
                },
            ),
            (
                "no key",
                without(&data, CA_KEY),
                Problem::Missing { key: CA_KEY },
            ),
            (
                "the server certificate as CA",
                with(&data, CA_CERT, server.cert_pem.as_bytes()),
                Problem::NotCa { key: CA_CERT },
            ),
            (
                "another key",
                with(&data, CA_KEY, new_ca(NOW).unwrap().key_pem.as_bytes()),
                Problem::KeyMismatch {
                    key: CA_KEY,
                    cert: CA_CERT,
                },
            ),
        ];
        for (case, broken, expected) in cases {
            let plan = plan_server(Some(&broken), &names(), NOW);
            let ServerPlan::RenewAll { why } = plan else {
                panic!("{case}: {plan:?}");
            };
            assert_same_problem(&why, &expected, case);
        }
        let expiring = NOW + CA_LIFETIME_SECS - 29 * DAY_SECS;
        let plan = plan_server(Some(&data), &names(), expiring);
        assert!(
            matches!(
                plan,
                ServerPlan::RenewAll {
                    why: Problem::Expiring {
                        key: CA_CERT,
                        days: 29
                    }
                }
            ),
            "{plan:?}"
        );
    }

    #[test]
    fn the_node_secret_follows_the_ca() {
        let (ca, _, _) = sound();
        let node = issue_node(&ca, NOW).unwrap();
        let data = node_data(&ca.cert_pem, &node);
        assert_eq!(plan_node(Some(&data), &ca.cert_pem, NOW), NodePlan::Keep);

        let new = new_ca(NOW).unwrap();
        assert_eq!(
            plan_node(Some(&data), &new.cert_pem, NOW),
            NodePlan::Renew {
                why: Problem::OtherCa { key: CA_CERT }
            }
        );
        // ca.crt says the new CA, the certificate is from the old one.
        let mixed = with(&data, CA_CERT, new.cert_pem.as_bytes());
        assert_eq!(
            plan_node(Some(&mixed), &new.cert_pem, NOW),
            NodePlan::Renew {
                why: Problem::NotSignedByCa { key: TLS_CERT }
            }
        );
        let leaky = with(&data, CA_KEY, ca.key_pem.as_bytes());
        assert_eq!(
            plan_node(Some(&leaky), &ca.cert_pem, NOW),
            NodePlan::Renew {
                why: Problem::Unexpected { key: CA_KEY }
            }
        );
        let server = issue_server(&ca, &names(), NOW).unwrap();
        let wrong = node_data(&ca.cert_pem, &server);
        assert_eq!(
            plan_node(Some(&wrong), &ca.cert_pem, NOW),
            NodePlan::Renew {
                why: Problem::WrongUsage {
                    key: TLS_CERT,
                    usage: Usage::Client
                }
            }
        );
        let late = NOW + LEAF_LIFETIME_SECS + DAY_SECS;
        assert!(matches!(
            plan_node(Some(&data), &ca.cert_pem, late),
            NodePlan::Renew {
                why: Problem::Expired { key: TLS_CERT, .. }
            }
        ));
    }

    #[test]
    fn leaves_never_outlive_their_ca() {
        let ca = new_ca(NOW - CA_LIFETIME_SECS + 100 * DAY_SECS).unwrap();
        let server = issue_server(&ca, &names(), NOW).unwrap();
        let ca_end = pki::not_after(CA_CERT, &ca.cert_pem).unwrap();
        assert_eq!(pki::not_after(TLS_CERT, &server.cert_pem).unwrap(), ca_end);
    }

    /// Equal, except that an unreadable one's reason (the parser's words)
    /// is not compared.
    fn assert_same_problem(found: &Problem, expected: &Problem, case: &str) {
        match (found, expected) {
            (Problem::Unreadable { key, .. }, Problem::Unreadable { key: want, .. }) => {
                assert_eq!(key, want, "{case}: {found}");
            }
            _ => assert_eq!(found, expected, "{case}"),
        }
    }

    fn with(data: &SecretData, key: &str, value: &[u8]) -> SecretData {
        let mut data = data.clone();
        data.insert(key.to_owned(), value.to_vec());
        data
    }

    fn without(data: &SecretData, key: &str) -> SecretData {
        let mut data = data.clone();
        data.remove(key);
        data
    }
}
