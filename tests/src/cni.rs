// Calling a CNI plugin the way a container runtime does: a clean
// environment with CNI_* variables, the network configuration on stdin,
// the result (or the error JSON) on stdout. Shared by the CNI plugin's
// tests and the policy tests' labs.

use std::io::{self, Write};
use std::process::{Command, Output, Stdio};

/// Runs `cmd` (the plugin, or `ip netns exec NODE plugin`) as a runtime
/// would for `command` (ADD, DEL, CHECK, ...): only PATH, CNI_COMMAND,
/// CNI_PATH and `env` (CNI_CONTAINERID, CNI_NETNS, ...) in its
/// environment, `config` on stdin.
pub fn invoke(
    mut cmd: Command,
    command: &str,
    config: &str,
    env: &[(&str, String)],
) -> io::Result<Output> {
    let mut child = cmd
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command)
        .env("CNI_PATH", "/opt/cni/bin")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(config.as_bytes())?;
    }
    child.wait_with_output()
}
