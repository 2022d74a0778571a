// Who is calling. On the Unix socket (mode 0600) and on TCP without client
// certificates the caller is an administrator. With client certificates, a
// certificate whose subject CN is `system:node:NAME` (the Kubernetes
// convention for kubelet certificates) belongs to node NAME, which may only
// allocate, release and collect for itself, watch its own blocks and read;
// the nodes' shared certificate of `--tls-secret` (CN `podroute-node`) may do
// that for any node but never manage pools; any other certificate the
// client CA signed is an administrator's.

use tonic::{Request, Status};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Subject CN prefix of a node certificate.
pub const NODE_CN_PREFIX: &str = "system:node:";

/// Subject CN of the certificate `--tls-secret` gives every node
/// (tls/pki.rs): a node, but not which one.
pub const ANY_NODE_CN: &str = crate::tls::pki::NODE_COMMON_NAME;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Node(String),
    /// A node whose certificate does not say which: it acts for any node,
    /// but is not an administrator (one compromised node must not be able
    /// to delete pools).
    AnyNode,
}

impl Caller {
    /// The caller behind `request`. A presented certificate that does not
    /// parse is refused (TLS accepted it, so this should not happen).
    pub fn of<T>(request: &Request<T>) -> Result<Caller, Status> {
        let Some(certs) = request.peer_certs() else {
            return Ok(Caller::Admin);
        };
        let Some(leaf) = certs.first() else {
            return Ok(Caller::Admin);
        };
        caller_of_certificate(leaf.as_ref())
    }

    /// Refuses a node acting for `node` when it is another node.
    pub fn may_act_for(&self, node: &str) -> Result<(), Status> {
        match self {
            Caller::Admin | Caller::AnyNode => Ok(()),
            Caller::Node(own) if own == node => Ok(()),
            Caller::Node(own) => Err(Status::permission_denied(format!(
                "the certificate of node {own:?} may not act for node {node:?}"
            ))),
        }
    }

    /// Refuses nodes an administrator's call (pool management).
    pub fn must_be_admin(&self, what: &str) -> Result<(), Status> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Node(own) => Err(Status::permission_denied(format!(
                "the certificate of node {own:?} may not {what}; use an administrator's certificate"
            ))),
            Caller::AnyNode => Err(Status::permission_denied(format!(
                "the nodes' certificate ({ANY_NODE_CN}) may not {what}; use an administrator's certificate"
            ))),
        }
    }
}

fn caller_of_certificate(der: &[u8]) -> Result<Caller, Status> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| Status::unauthenticated(format!("unreadable client certificate: {e}")))?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default();
    Ok(match common_name.strip_prefix(NODE_CN_PREFIX) {
        Some(node) if !node.is_empty() => Caller::Node(node.to_owned()),
        _ if common_name == ANY_NODE_CN => Caller::AnyNode,
        _ => Caller::Admin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with_cn(cn: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn node_certificates_are_bound_to_their_node() {
        let caller = caller_of_certificate(&cert_with_cn("system:node:n1")).unwrap();
        assert_eq!(caller, Caller::Node("n1".into()));
        assert!(caller.may_act_for("n1").is_ok());
        let denied = caller.may_act_for("n2").unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(caller.must_be_admin("create pools").is_err());
    }

    #[test]
    fn the_nodes_shared_certificate_acts_for_any_node_but_manages_no_pool() {
        let caller = caller_of_certificate(&cert_with_cn(ANY_NODE_CN)).unwrap();
        assert_eq!(caller, Caller::AnyNode);
        assert!(caller.may_act_for("n1").is_ok());
        assert!(caller.may_act_for("n2").is_ok());
        let denied = caller.must_be_admin("delete pools").unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    }

    #[test]
    fn other_certificates_are_administrators() {
        for cn in ["podctl", "system:node:", "admin"] {
            let caller = caller_of_certificate(&cert_with_cn(cn)).unwrap();
            assert_eq!(caller, Caller::Admin, "{cn}");
            assert!(caller.may_act_for("n2").is_ok());
        }
    }

    #[test]
    fn garbage_is_refused() {
        let status = caller_of_certificate(b"not a certificate").unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }
}
