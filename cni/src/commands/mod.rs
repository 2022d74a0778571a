// The CNI operations (CNI spec 1.1 "CNI operations"): ADD, DEL, CHECK, GC and
// STATUS, each in its own file, sharing what one invocation knows (the
// runtime's CNI_* variables, parsed) and the node-level helpers below.

mod add;
mod check;
mod del;
mod gc;
mod status;

use std::path::PathBuf;

use crate::args::{CniArgs, ipam_handle, parse_cni_args, valid_container_id, valid_ifname};
use crate::config::PluginConf;
use crate::error::{CniError, ErrorCode};
use crate::ipamd::Ipamd;
use crate::{Command, Env};

/// ipamd's limit on a handle's length (proto/proto/ipam.proto).
const MAX_HANDLE_LEN: usize = 253;

/// One invocation's runtime parameters (CNI spec 1.1 "Parameters").
#[derive(Debug, Clone)]
pub struct Invocation {
    pub command: Command,
    pub container_id: String,
    pub netns: Option<PathBuf>,
    pub ifname: String,
    pub args: CniArgs,
}

impl Invocation {
    /// Reads and checks the CNI_* variables `command` uses (their presence
    /// was checked by the dispatcher).
    pub fn from_env(command: Command, env: &Env<'_>) -> Result<Invocation, CniError> {
        let container_id = env.get("CNI_CONTAINERID").unwrap_or_default();
        let ifname = env.get("CNI_IFNAME").unwrap_or_default();
        let attachment = matches!(command, Command::Add | Command::Del | Command::Check);
        if attachment && !valid_container_id(&container_id) {
            return Err(CniError::new(
                ErrorCode::InvalidEnvironment,
                format!("CNI_CONTAINERID {container_id:?} is not a valid container ID"),
            )
            .with_details(
                "it must start with a letter or digit and hold only letters, digits, '_', '.' and '-'",
            ));
        }
        if attachment && !valid_ifname(&ifname) {
            return Err(CniError::new(
                ErrorCode::InvalidEnvironment,
                format!("CNI_IFNAME {ifname:?} is not a valid interface name"),
            )
            .with_details("1 to 15 bytes, no '/', ':' or white space"));
        }
        let args = parse_cni_args(&env.get("CNI_ARGS").unwrap_or_default())
            .map_err(|e| CniError::new(ErrorCode::InvalidEnvironment, e.to_string()))?;
        Ok(Invocation {
            command,
            container_id,
            netns: env.get("CNI_NETNS").map(PathBuf::from),
            ifname,
            args,
        })
    }

    /// The pod's (namespace, name) when the runtime is Kubernetes.
    pub fn pod(&self) -> Option<(&str, &str)> {
        self.args.pod()
    }

    pub fn handle(&self, conf: &PluginConf) -> String {
        ipam_handle(&conf.network, &self.container_id, &self.ifname)
    }
}

/// Runs `command`; Ok holds what to print on stdout (empty for DEL, CHECK,
/// GC and STATUS).
pub fn run(invocation: &Invocation, conf: &PluginConf) -> Result<String, CniError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            CniError::new(
                ErrorCode::IoFailure,
                format!("cannot start the I/O runtime: {e}"),
            )
        })?;
    let attachment = matches!(
        invocation.command,
        Command::Add | Command::Del | Command::Check
    );
    if attachment && invocation.handle(conf).len() > MAX_HANDLE_LEN {
        return Err(CniError::new(
            ErrorCode::InvalidNetworkConfig,
            format!(
                "network name {:?} and CNI_CONTAINERID together are too long for an ipamd handle (at most {MAX_HANDLE_LEN} bytes)",
                conf.network
            ),
        ));
    }
    match invocation.command {
        Command::Add => add::add(invocation, conf, &runtime),
        Command::Del => del::del(invocation, conf, &runtime).map(|()| String::new()),
        Command::Check => check::check(invocation, conf, &runtime).map(|()| String::new()),
        Command::Gc => gc::gc(conf, &runtime).map(|()| String::new()),
        Command::Status => status::status(conf, &runtime).map(|()| String::new()),
        Command::Version => Err(CniError::new(
            ErrorCode::InvalidEnvironment,
            "VERSION is answered by the dispatcher",
        )),
    }
}

/// The node this plugin acts for: `nodeName`, else the first line of
/// `nodeNameFile`, else the host name (what kubelet uses by default).
pub fn node_name(conf: &PluginConf) -> Result<String, CniError> {
    if let Some(name) = &conf.node_name {
        return Ok(name.clone());
    }
    let (path, what) = match &conf.node_name_file {
        Some(path) => (path.clone(), "nodeNameFile"),
        None => (PathBuf::from("/proc/sys/kernel/hostname"), "the host name"),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        CniError::new(
            ErrorCode::NodeNameUnknown,
            format!("cannot read {what} from {}: {e}", path.display()),
        )
        .with_details("set nodeName in the network configuration, or start podroute on this node")
    })?;
    // Kubernetes node names are lower case; kubelet lowercases the host name.
    let name = text
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_lowercase();
    if name.is_empty() {
        return Err(CniError::new(
            ErrorCode::NodeNameUnknown,
            format!("{what} in {} is empty", path.display()),
        ));
    }
    Ok(name)
}

/// Connects to ipamd on `runtime`.
fn connect(conf: &PluginConf, runtime: &tokio::runtime::Runtime) -> Result<Ipamd, CniError> {
    runtime.block_on(Ipamd::connect(conf))
}
