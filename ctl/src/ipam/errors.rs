// What podctl says when podroute-ipamd refuses a request: the gRPC status
// codes of ipam.proto turned into sentences that start with what podctl was
// doing and end with what to do about it. Failures to reach the daemon at
// all keep the wording of daemons.rs.

use std::fmt;

use tonic::Code;

use crate::daemons::Unreachable;

/// What podctl asked podroute-ipamd for: the first words of an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    ListPools,
    ListBlocks,
    ShowAddress(String),
    Usage,
    Check,
    Release(String),
    CreatePool(String),
    DeletePool(String),
}

/// Why an ipam command failed, worded for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// The daemon could not be asked (no socket, permission, timeout...).
    #[error(transparent)]
    Unreachable(Unreachable),
    /// UNAVAILABLE from the daemon itself: its store (etcd, or the embedded
    /// file) did not answer; the request may succeed if repeated.
    #[error("{action}: the IPAM store is unreachable, retry (podroute-ipamd: {message})")]
    StoreUnavailable { action: Action, message: String },
    /// The daemon understood the request and said no; `message` is its own
    /// words, `hint` what podctl suggests doing.
    #[error("{action}: {message}{}", hint_suffix(.hint))]
    Refused {
        action: Action,
        code: Code,
        message: String,
        hint: &'static str,
    },
    /// UNIMPLEMENTED with a message: the daemon knows the API but not this
    /// call yet.
    #[error(
        "{action}: this podroute-ipamd does not support it ({message}); upgrade podroute-ipamd to podctl's version"
    )]
    Unsupported { action: Action, message: String },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::ListPools => f.write_str("listing IP pools"),
            Action::ListBlocks => f.write_str("listing blocks"),
            Action::ShowAddress(ip) => write!(f, "looking up {ip}"),
            Action::Usage => f.write_str("reading pool usage"),
            Action::Check => f.write_str("checking IPAM consistency"),
            Action::Release(handle) => write!(f, "releasing handle {handle:?}"),
            Action::CreatePool(name) => write!(f, "creating pool {name:?}"),
            Action::DeletePool(name) => write!(f, "deleting pool {name:?}"),
        }
    }
}

impl IpamError {
    /// Words `error`, a failed call made for `action`.
    pub fn new(action: Action, error: Unreachable) -> Self {
        let Unreachable::Rpc { daemon, at, status } = error else {
            return IpamError::Unreachable(error);
        };
        let message = status.message().to_string();
        match status.code() {
            // A status tonic made up for a broken connection carries its
            // transport error as source; one the daemon sent does not.
            Code::Unavailable if std::error::Error::source(&status).is_none() => {
                IpamError::StoreUnavailable { action, message }
            }
            Code::Unimplemented => IpamError::Unsupported { action, message },
            code @ (Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::ResourceExhausted
            | Code::PermissionDenied) => IpamError::Refused {
                hint: hint(&action, code),
                action,
                code,
                message,
            },
            _ => IpamError::Unreachable(Unreachable::Rpc { daemon, at, status }),
        }
    }

    /// The gRPC code the daemon answered, when it answered one.
    #[cfg(test)]
    pub fn code(&self) -> Option<Code> {
        match self {
            IpamError::Unreachable(Unreachable::Rpc { status, .. }) => Some(status.code()),
            IpamError::Unreachable(_) => None,
            IpamError::StoreUnavailable { .. } => Some(Code::Unavailable),
            IpamError::Refused { code, .. } => Some(*code),
            IpamError::Unsupported { .. } => Some(Code::Unimplemented),
        }
    }
}

/// What to do about a refusal, when podctl knows better than the daemon's
/// message alone.
fn hint(action: &Action, code: Code) -> &'static str {
    match (action, code) {
        (Action::DeletePool(_) | Action::CreatePool(_), Code::NotFound) => {
            "`podctl ipam pools` lists the pools"
        }
        (Action::CreatePool(_), Code::AlreadyExists) => {
            "`podctl ipam pools` shows the pool there is; delete it first (`podctl ipam pool delete NAME`) or choose another name"
        }
        (Action::CreatePool(_), Code::InvalidArgument) => "fix the pool's spec and try again",
        (Action::DeletePool(_), Code::FailedPrecondition) => {
            "release its addresses first; `podctl ipam blocks` shows which blocks still hold some"
        }
        (Action::ShowAddress(_) | Action::Release(_), Code::InvalidArgument) => {
            "see `podctl ipam --help`"
        }
        _ => "",
    }
}

fn hint_suffix(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!("; {hint}")
    }
}

#[cfg(test)]
mod tests {
    use tonic::Status;

    use super::*;

    fn rpc(status: Status) -> Unreachable {
        Unreachable::Rpc {
            daemon: "podroute-ipamd",
            at: "/run/podroute/ipamd.sock".to_owned(),
            status,
        }
    }

    #[test]
    fn unavailable_from_the_daemon_means_the_store() {
        let e = IpamError::new(
            Action::ListPools,
            rpc(Status::unavailable("etcd: context deadline exceeded")),
        );
        assert_eq!(
            e.to_string(),
            "listing IP pools: the IPAM store is unreachable, retry (podroute-ipamd: etcd: context deadline exceeded)"
        );
    }

    #[test]
    fn refusals_keep_the_daemons_words_and_add_what_to_do() {
        let e = IpamError::new(
            Action::DeletePool("blue".into()),
            rpc(Status::failed_precondition(
                "pool \"blue\" holds 3 addresses",
            )),
        );
        assert_eq!(
            e.to_string(),
            "deleting pool \"blue\": pool \"blue\" holds 3 addresses; release its addresses first; `podctl ipam blocks` shows which blocks still hold some"
        );
        assert_eq!(e.code(), Some(Code::FailedPrecondition));

        let words = "pool \"default-ipv4\" (10.244.0.0/16) is exhausted: 65536 of 65536 addresses in use, 0 cooling down";
        let e = IpamError::new(
            Action::Release("h".into()),
            rpc(Status::resource_exhausted(words)),
        );
        assert_eq!(e.to_string(), format!("releasing handle \"h\": {words}"));
    }

    #[test]
    fn other_codes_keep_the_generic_wording() {
        let e = IpamError::new(Action::Usage, rpc(Status::internal("boom")));
        assert_eq!(
            e.to_string(),
            "podroute-ipamd on /run/podroute/ipamd.sock answered Internal: boom"
        );
        let e = IpamError::new(Action::Check, rpc(Status::unimplemented("later")));
        assert!(
            e.to_string().starts_with(
                "checking IPAM consistency: this podroute-ipamd does not support it (later)"
            ),
            "{e}"
        );
    }
}
