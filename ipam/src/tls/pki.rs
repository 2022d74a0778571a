// The certificates of --tls-secret: a CA (ECDSA P-256, 10 years), ipamd's
// server certificate and the nodes' client certificate signed by it (the
// RFC 5280 profile rustls checks: basicConstraints, keyUsage,
// extKeyUsage, subjectAltName, key identifiers), and the checks that decide
// whether a stored certificate can still be used. Times are Unix seconds,
// given by the caller; only key generation draws randomness.

use std::fmt;
use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;

/// Subject CN of the CA.
pub const CA_COMMON_NAME: &str = "podroute-ipamd CA";
/// Subject CN of ipamd's server certificate.
pub const SERVER_COMMON_NAME: &str = "podroute-ipamd";
/// Subject CN of the nodes' client certificate: not `system:node:NAME`, so
/// it acts for any node (service/auth.rs).
pub const NODE_COMMON_NAME: &str = "podroute-node";

pub const DAY_SECS: i64 = 86_400;
/// How long the CA is valid.
pub const CA_LIFETIME_SECS: i64 = 3650 * DAY_SECS;
/// How long the certificates it signs are valid (never past the CA). Long,
/// because ipamd renews only when it starts and serves what it read until
/// it stops; the CA key sits in the same Secret, so a short leaf would not
/// make a stolen Secret any less useful.
pub const LEAF_LIFETIME_SECS: i64 = 3650 * DAY_SECS;
/// A certificate expiring within this is renewed.
pub const RENEW_BEFORE_SECS: i64 = 30 * DAY_SECS;
/// Certificates start this much before they are issued, for clocks that
/// lag the issuing replica's.
const BACKDATE_SECS: i64 = 3600;

/// A certificate and its private key, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Never prints the key.
impl fmt::Debug for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pair")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

/// What a certificate is for (extKeyUsage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Usage::Server => "TLS server authentication",
            Usage::Client => "TLS client authentication",
        })
    }
}

/// Why a stored certificate or key cannot be used; `key` is the Secret's
/// data key ("tls.crt").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("{key} is missing")]
    Missing { key: &'static str },
    #[error("{key} is unreadable: {reason}")]
    Unreadable { key: &'static str, reason: String },
    #[error("{key} does not belong to the certificate in {cert}")]
    KeyMismatch {
        key: &'static str,
        cert: &'static str,
    },
    #[error("{key} expired {days} days ago")]
    Expired { key: &'static str, days: i64 },
    #[error("{key} expires in {days} days")]
    Expiring { key: &'static str, days: i64 },
    #[error("{key} is not a CA certificate")]
    NotCa { key: &'static str },
    #[error("{key} is not signed by the CA")]
    NotSignedByCa { key: &'static str },
    #[error("{key} is not for {}", names.join(", "))]
    MissingNames {
        key: &'static str,
        names: Vec<String>,
    },
    #[error("{key} is not for {usage}")]
    WrongUsage { key: &'static str, usage: Usage },
    #[error("{key} is not the CA that signs ipamd's certificate")]
    OtherCa { key: &'static str },
    #[error("{key} must not be there")]
    Unexpected { key: &'static str },
}

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot issue the {what}: {source}")]
    Issue {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("cannot sign with the CA: {0}")]
    Ca(Problem),
    #[error("the time {0} (Unix seconds) is out of range")]
    Time(i64),
}

/// A new self-signed CA.
pub fn new_ca(now: i64) -> Result<Pair, PkiError> {
    let what = "CA";
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(issue(what))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = at(now - BACKDATE_SECS)?;
    params.not_after = at(now + CA_LIFETIME_SECS)?;
    let cert = params.self_signed(&key).map_err(issue(what))?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// ipamd's server certificate for `names` (DNS names; IP addresses become
/// IP address names), signed by `ca`.
pub fn issue_server(ca: &Pair, names: &[String], now: i64) -> Result<Pair, PkiError> {
    let what = "server certificate";
    let mut params = CertificateParams::new(names.to_vec()).map_err(issue(what))?;
    params.distinguished_name = common_name(SERVER_COMMON_NAME);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    issue_leaf(ca, params, now, what)
}

/// The nodes' client certificate, signed by `ca`.
pub fn issue_node(ca: &Pair, now: i64) -> Result<Pair, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(NODE_COMMON_NAME);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    issue_leaf(ca, params, now, "node client certificate")
}

/// A sound CA: a CA certificate with its key, not expiring soon.
pub fn check_ca(ca: &Pair, keys: (&'static str, &'static str), now: i64) -> Result<(), Problem> {
    let (cert_name, key_name) = keys;
    with_certificate(cert_name, &ca.cert_pem, |cert| {
        if !cert.is_ca() {
            return Err(Problem::NotCa { key: cert_name });
        }
        check_key(cert, (cert_name, key_name), &ca.key_pem)?;
        check_expiry(cert, cert_name, now)
    })
}

/// A sound leaf: its key, signed by `ca_pem`, for `usage` and every one of
/// `names`, not expiring soon.
pub fn check_leaf(
    leaf: &Pair,
    keys: (&'static str, &'static str),
    ca_pem: &str,
    usage: Usage,
    names: &[String],
    now: i64,
) -> Result<(), Problem> {
    let cert_name = keys.0;
    with_certificate(cert_name, &leaf.cert_pem, |cert| {
        check_key(cert, keys, &leaf.key_pem)?;
        let signed = with_certificate("ca.crt", ca_pem, |ca| {
            let issued_by = cert.issuer().as_raw() == ca.subject().as_raw();
            Ok(issued_by && cert.verify_signature(Some(ca.public_key())).is_ok())
        })?;
        if !signed {
            return Err(Problem::NotSignedByCa { key: cert_name });
        }
        if !allows(cert, usage) {
            return Err(Problem::WrongUsage {
                key: cert_name,
                usage,
            });
        }
        let missing: Vec<String> = names
            .iter()
            .filter(|name| !names_in(cert, name))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(Problem::MissingNames {
                key: cert_name,
                names: missing,
            });
        }
        check_expiry(cert, cert_name, now)
    })
}

/// Whether two PEM texts hold the same (first) certificate.
pub fn same_certificate(a: &str, b: &str) -> bool {
    match (parse_x509_pem(a.as_bytes()), parse_x509_pem(b.as_bytes())) {
        (Ok((_, a)), Ok((_, b))) => a.contents == b.contents,
        _ => false,
    }
}

/// When a PEM certificate expires (Unix seconds).
pub fn not_after(key: &'static str, cert_pem: &str) -> Result<i64, Problem> {
    with_certificate(key, cert_pem, |cert| {
        Ok(cert.validity().not_after.timestamp())
    })
}

fn issue_leaf(
    ca: &Pair,
    mut params: CertificateParams,
    now: i64,
    what: &'static str,
) -> Result<Pair, PkiError> {
    let ca_not_after = not_after("ca.crt", &ca.cert_pem).map_err(PkiError::Ca)?;
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(issue(what))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).map_err(issue(what))?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params.not_before = at(now - BACKDATE_SECS)?;
    params.not_after = at((now + LEAF_LIFETIME_SECS).min(ca_not_after))?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(issue(what))?;
    let cert = params.signed_by(&key, &issuer).map_err(issue(what))?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn issue(what: &'static str) -> impl Fn(rcgen::Error) -> PkiError {
    move |source| PkiError::Issue { what, source }
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

fn at(unix_secs: i64) -> Result<OffsetDateTime, PkiError> {
    OffsetDateTime::from_unix_timestamp(unix_secs).map_err(|_| PkiError::Time(unix_secs))
}

/// Runs `check` on the first certificate of `pem`.
fn with_certificate<R>(
    key: &'static str,
    pem: &str,
    check: impl FnOnce(&X509Certificate<'_>) -> Result<R, Problem>,
) -> Result<R, Problem> {
    let unreadable = |reason: String| Problem::Unreadable { key, reason };
    let (_, pem) = parse_x509_pem(pem.as_bytes()).map_err(|e| unreadable(e.to_string()))?;
    if pem.label != "CERTIFICATE" {
        return Err(unreadable(format!(
            "a PEM {:?}, not a CERTIFICATE",
            pem.label
        )));
    }
    let cert = pem.parse_x509().map_err(|e| unreadable(e.to_string()))?;
    check(&cert)
}

fn check_key(
    cert: &X509Certificate<'_>,
    keys: (&'static str, &'static str),
    key_pem: &str,
) -> Result<(), Problem> {
    let (cert_name, key_name) = keys;
    let key = KeyPair::from_pem(key_pem).map_err(|e| Problem::Unreadable {
        key: key_name,
        reason: e.to_string(),
    })?;
    if key.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
        return Err(Problem::KeyMismatch {
            key: key_name,
            cert: cert_name,
        });
    }
    Ok(())
}

fn check_expiry(cert: &X509Certificate<'_>, key: &'static str, now: i64) -> Result<(), Problem> {
    let not_after = cert.validity().not_after.timestamp();
    if not_after <= now {
        return Err(Problem::Expired {
            key,
            days: (now - not_after) / DAY_SECS,
        });
    }
    if not_after - now < RENEW_BEFORE_SECS {
        return Err(Problem::Expiring {
            key,
            days: (not_after - now) / DAY_SECS,
        });
    }
    Ok(())
}

/// Whether extKeyUsage allows `usage` (no extension allows every use).
fn allows(cert: &X509Certificate<'_>, usage: Usage) -> bool {
    match cert.extended_key_usage() {
        Ok(None) => true,
        Ok(Some(eku)) => {
            eku.value.any
                || match usage {
                    Usage::Server => eku.value.server_auth,
                    Usage::Client => eku.value.client_auth,
                }
        }
        Err(_) => false,
    }
}

/// Whether `name` (a DNS name or an IP address) is among the certificate's
/// subject alternative names.
fn names_in(cert: &X509Certificate<'_>, name: &str) -> bool {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    let ip = name.parse::<IpAddr>().ok();
    san.value.general_names.iter().any(|general| match general {
        GeneralName::DNSName(dns) => ip.is_none() && dns.eq_ignore_ascii_case(name),
        GeneralName::IPAddress(bytes) => match ip {
            Some(IpAddr::V4(v4)) => *bytes == v4.octets(),
            Some(IpAddr::V6(v6)) => *bytes == v6.octets(),
            None => false,
        },
        _ => false,
    })
}
