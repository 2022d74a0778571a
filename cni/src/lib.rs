// podroute-cni: the CNI 1.1 plugin. This module reads CNI_COMMAND and the
// other CNI_* variables, decodes the network configuration from stdin and
// answers per the CNI spec 1.1 "Protocol parameters" and "Execution" sections;
// the operations themselves live in `commands`.

pub mod args;
pub mod commands;
pub mod config;
pub mod error;
pub mod install;
pub mod ipamd;
mod log;
pub mod netlink;
pub mod result;
pub mod wiring;

use std::io::Read;

use serde::{Deserialize, Serialize};

pub use error::{CniError, ErrorCode};

use config::{NetConf, PluginConf};

/// The CNI spec version this plugin implements.
pub const CURRENT_VERSION: &str = "1.1.0";
/// Versions a network configuration may ask for. 0.4.0 is the first with
/// CHECK; older ones have different result formats we do not produce.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.4.0", "1.0.0", "1.1.0"];

/// The CNI commands (CNI_COMMAND values) of spec 1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Gc,
    Status,
    Version,
}

/// What the plugin prints on stdout, and whether it exits 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    pub success: bool,
}

impl Command {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Gc => "GC",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
        }
    }

    /// Environment variables the command requires besides CNI_COMMAND, as
    /// libcni's skel enforces them (CNI_NETNS is optional for DEL).
    fn required_env(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => {
                &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]
            }
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
            Command::Gc | Command::Status | Command::Version => &[],
        }
    }

    /// Oldest configuration version that may use the command (GC and STATUS
    /// are new in 1.1.0; CHECK in 0.4.0, our oldest).
    fn min_version(self) -> (u32, u32, u32) {
        match self {
            Command::Gc | Command::Status => (1, 1, 0),
            _ => (0, 4, 0),
        }
    }
}

/// The runtime's environment: reads a variable, empty counting as unset.
pub struct Env<'a> {
    read: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    pub fn get(&self, name: &str) -> Option<String> {
        (self.read)(name).filter(|v| !v.is_empty())
    }
}

/// Runs one plugin invocation. `env` reads an environment variable.
pub fn run(env: &dyn Fn(&str) -> Option<String>, stdin: &mut dyn Read) -> Outcome {
    let mut reply_version = CURRENT_VERSION.to_owned();
    match dispatch(env, stdin, &mut reply_version) {
        Ok(stdout) => Outcome {
            stdout,
            success: true,
        },
        Err(error) => Outcome {
            stdout: error.to_json(&reply_version),
            success: false,
        },
    }
}

/// The VERSION command's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionResult {
    cni_version: &'static str,
    supported_versions: &'static [&'static str],
}

/// Handles the invocation; on a decoded, supported configuration sets
/// `reply_version` so error results carry the caller's version.
fn dispatch(
    env: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
    reply_version: &mut String,
) -> Result<String, CniError> {
    let env = Env { read: env };
    let present = |name: &str| env.get(name);
    let command_name = present("CNI_COMMAND").ok_or_else(|| missing_env(&["CNI_COMMAND"]))?;
    let command = Command::parse(&command_name).ok_or_else(|| {
        CniError::new(
            ErrorCode::InvalidEnvironment,
            format!("unknown CNI_COMMAND: {command_name}"),
        )
        .with_details("expected one of ADD, DEL, CHECK, GC, STATUS, VERSION")
    })?;
    let missing: Vec<&str> = command
        .required_env()
        .iter()
        .copied()
        .filter(|name| present(name).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(missing_env(&missing));
    }

    let mut input = Vec::new();
    stdin
        .read_to_end(&mut input)
        .map_err(|e| CniError::new(ErrorCode::IoFailure, format!("error reading stdin: {e}")))?;

    if command == Command::Version {
        return version(&input);
    }

    let conf = NetConf::parse(&input).map_err(|e| {
        CniError::new(
            ErrorCode::DecodingFailure,
            format!("error decoding network config: {e}"),
        )
    })?;
    let config_version = check_version(conf.cni_version.as_deref(), command)?;
    *reply_version = config_version.to_owned();
    let version = config_version.to_owned();
    let mut conf = conf;
    if command == Command::Del {
        // DEL never reads it, and an unreadable one must not block teardown.
        conf.prev_result = None;
    }
    let conf = PluginConf::from_netconf(conf, &version)
        .map_err(|e| CniError::new(ErrorCode::InvalidNetworkConfig, e.to_string()))?;
    let invocation = commands::Invocation::from_env(command, &env)?;
    let started = std::time::Instant::now();
    let outcome = commands::run(&invocation, &conf);
    if let Some(path) = &conf.log_file {
        log::append(path, &invocation, &outcome, started.elapsed());
    }
    outcome
}

/// VERSION: the input is `{"cniVersion": ...}` or nothing. Any version may
/// ask (that is how negotiation starts), but malformed JSON is refused.
fn version(input: &[u8]) -> Result<String, CniError> {
    #[derive(Deserialize)]
    struct VersionRequest {
        #[serde(rename = "cniVersion")]
        _cni_version: Option<String>,
    }
    if !input.iter().all(u8::is_ascii_whitespace) {
        serde_json::from_slice::<VersionRequest>(input).map_err(|e| {
            CniError::new(
                ErrorCode::DecodingFailure,
                format!("error decoding VERSION input: {e}"),
            )
        })?;
    }
    let result = VersionResult {
        cni_version: CURRENT_VERSION,
        supported_versions: SUPPORTED_VERSIONS,
    };
    serde_json::to_string(&result)
        .map_err(|e| CniError::new(ErrorCode::IoFailure, format!("error encoding version: {e}")))
}

/// The configuration's version if we support it and it allows `command`.
/// A missing cniVersion counts as 0.1.0, as libcni reads it.
fn check_version(version: Option<&str>, command: Command) -> Result<&str, CniError> {
    let version = version.unwrap_or("0.1.0");
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err(
            CniError::new(ErrorCode::IncompatibleVersion, "incompatible CNI versions")
                .with_details(format!(
                    "config is {version}, plugin supports {}",
                    SUPPORTED_VERSIONS.join(", ")
                )),
        );
    }
    if parse_version(version).is_none_or(|v| v < command.min_version()) {
        return Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!("config version {version} does not allow {}", command.name()),
        ));
    }
    Ok(version)
}

fn missing_env(names: &[&str]) -> CniError {
    CniError::new(
        ErrorCode::InvalidEnvironment,
        format!("required env variables [{}] missing", names.join(",")),
    )
}

/// "major.minor.patch" → numbers.
fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(parse_version("1.1.0"), Some((1, 1, 0)));
        assert_eq!(parse_version("0.4.0"), Some((0, 4, 0)));
        assert_eq!(parse_version("1.1"), None);
        assert_eq!(parse_version("1.1.0.0"), None);
        assert_eq!(parse_version("1.x.0"), None);
    }

    #[test]
    fn gc_needs_a_1_1_config() {
        assert_eq!(check_version(Some("1.1.0"), Command::Gc), Ok("1.1.0"));
        let err = check_version(Some("1.0.0"), Command::Gc).unwrap_err();
        assert_eq!(err.code, ErrorCode::IncompatibleVersion);
        assert_eq!(check_version(Some("0.4.0"), Command::Check), Ok("0.4.0"));
        assert_eq!(
            check_version(None, Command::Add).unwrap_err().code,
            ErrorCode::IncompatibleVersion
        );
    }
}
