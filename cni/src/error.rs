// The CNI error result (CNI spec 1.1, "Error" section): the JSON a plugin
// prints on stdout before exiting non-zero, and the error codes we use.
// Codes 0-99 are the spec's well-known codes; 100 and up are plugin-specific
// and this file is where podroute-cni allocates them.

use serde::Serialize;

/// Error codes. Values from CNI spec 1.1 "Well-known Error Codes" unless
/// marked as ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 1: incompatible CNI version.
    IncompatibleVersion,
    /// 4: invalid necessary environment variables (CNI_COMMAND, ...).
    InvalidEnvironment,
    /// 5: I/O failure (e.g. reading stdin).
    IoFailure,
    /// 6: failed to decode content (bad JSON).
    DecodingFailure,
    /// 7: invalid network config.
    InvalidNetworkConfig,
    /// 11: try again later: a transient condition (podroute-ipamd not
    /// answering, its store unavailable); the runtime retries.
    TryAgainLater,
    /// 50: the plugin is not available, i.e. cannot service ADD (the STATUS
    /// answer: podroute-ipamd does not answer).
    PluginNotAvailable,
    /// 51: not available, and existing pods may have limited connectivity
    /// (the STATUS answer when the node does not forward a family it serves).
    PluginNotAvailableLimitedConnectivity,
    /// 100 (ours): the kernel refused a change (creating the veth pair,
    /// an address, a route); the message names the object.
    KernelRefused,
    /// 101 (ours): podroute-ipamd refused the request (pool exhausted, an
    /// address held by another pod, a disabled pool, a node certificate for
    /// another node); its words are passed on.
    IpamRefused,
    /// 102 (ours): the host-side veth name is held by another pod's veth
    /// (a hash collision) or by a link that is not ours.
    HostVethNameTaken,
    /// 103 (ours): CNI_NETNS cannot be opened as a network namespace.
    NetnsUnavailable,
    /// 104 (ours): CNI_IFNAME already exists in the pod's namespace.
    InterfaceExists,
    /// 105 (ours): CHECK found the pod's network differing from prevResult.
    CheckFailed,
    /// 106 (ours): the node name cannot be found (nodeNameFile unreadable).
    NodeNameUnknown,
}

impl ErrorCode {
    pub fn code(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::InvalidEnvironment => 4,
            ErrorCode::IoFailure => 5,
            ErrorCode::DecodingFailure => 6,
            ErrorCode::InvalidNetworkConfig => 7,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::PluginNotAvailable => 50,
            ErrorCode::PluginNotAvailableLimitedConnectivity => 51,
            ErrorCode::KernelRefused => 100,
            ErrorCode::IpamRefused => 101,
            ErrorCode::HostVethNameTaken => 102,
            ErrorCode::NetnsUnavailable => 103,
            ErrorCode::InterfaceExists => 104,
            ErrorCode::CheckFailed => 105,
            ErrorCode::NodeNameUnknown => 106,
        }
    }
}

/// A CNI error: code, short message and optional details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CNI error {}: {msg}", code.code())]
pub struct CniError {
    pub code: ErrorCode,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The error result JSON, stamped with `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        let wire = Wire {
            cni_version,
            code: self.code.code(),
            msg: &self.msg,
            details: &self.details,
        };
        // Serializing plain strings and an integer cannot fail; fall back to
        // a fixed document rather than panic if it ever did.
        serde_json::to_string(&wire).unwrap_or_else(|_| {
            format!(
                r#"{{"cniVersion":"{}","code":{},"msg":"podroute-cni: cannot encode error"}}"#,
                crate::CURRENT_VERSION,
                ErrorCode::IoFailure.code()
            )
        })
    }
}
