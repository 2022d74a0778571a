// Runs the built podroute-cni binary the way a container runtime does (CNI_*
// environment, network configuration on stdin) and checks stdout's JSON and
// the exit status against CNI spec 1.1.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

const CONF_1_1: &str = r#"{"cniVersion":"1.1.0","name":"podnet","type":"podroute-cni"}"#;

/// Runs the plugin with exactly `env` (nothing inherited) and `stdin`;
/// returns the parsed stdout and whether it exited 0.
fn run(env: &[(&str, &str)], stdin: &str) -> (Value, bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_podroute-cni"))
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn podroute-cni");
    let written = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes());
    // The plugin may answer an environment error before reading stdin, as a
    // runtime's plugin may: its closed pipe is not a test failure.
    if let Err(e) = written {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    let out = child.wait_with_output().expect("wait for podroute-cni");
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout:?}"));
    (json, out.status.success())
}

/// The full environment of a CNI ADD.
fn add_env(command: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "0123456789abcdef"),
        ("CNI_NETNS", "/var/run/netns/test"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ]
}

fn assert_error(out: &(Value, bool), code: u64) {
    assert!(!out.1, "exit status must be non-zero: {}", out.0);
    assert_eq!(out.0["code"], code, "{}", out.0);
    assert!(
        out.0["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        out.0
    );
}

#[test]
fn version_lists_supported_versions() {
    let expected = serde_json::json!({
        "cniVersion": "1.1.0",
        "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"],
    });
    let out = run(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"1.0.0"}"#);
    assert_eq!(out, (expected.clone(), true));
    // An older runtime asking is still answered: that is how it negotiates.
    let out = run(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"0.3.1"}"#);
    assert_eq!(out, (expected.clone(), true));
    // No input at all is fine too.
    let out = run(&[("CNI_COMMAND", "VERSION")], "");
    assert_eq!(out, (expected, true));
}

#[test]
fn version_with_malformed_input_is_a_decode_error() {
    let out = run(&[("CNI_COMMAND", "VERSION")], "{not json");
    assert_error(&out, 6);
}

#[test]
fn missing_or_unknown_command_is_code_4() {
    let out = run(&[], CONF_1_1);
    assert_error(&out, 4);
    assert_eq!(out.0["cniVersion"], "1.1.0");
    assert!(out.0["msg"].as_str().unwrap().contains("CNI_COMMAND"));

    let out = run(&[("CNI_COMMAND", "FROB")], CONF_1_1);
    assert_error(&out, 4);
    assert_eq!(out.0["msg"], "unknown CNI_COMMAND: FROB");
    assert!(out.0["details"].as_str().unwrap().contains("ADD"));
}

#[test]
fn missing_required_env_is_code_4_and_names_the_variables() {
    let env: Vec<_> = add_env("ADD")
        .into_iter()
        .filter(|(k, _)| *k != "CNI_NETNS" && *k != "CNI_PATH")
        .collect();
    let out = run(&env, CONF_1_1);
    assert_error(&out, 4);
    assert_eq!(
        out.0["msg"],
        "required env variables [CNI_NETNS,CNI_PATH] missing"
    );

    // DEL does not need CNI_NETNS, so it gets past the environment check
    // (to the configuration, which lacks the ipamd endpoint).
    let env: Vec<_> = add_env("DEL")
        .into_iter()
        .filter(|(k, _)| *k != "CNI_NETNS")
        .collect();
    assert_error(&run(&env, CONF_1_1), 7);
}

#[test]
fn a_config_without_the_ipamd_endpoint_is_code_7_for_every_command() {
    for command in ["ADD", "DEL", "CHECK", "GC", "STATUS"] {
        let out = run(&add_env(command), CONF_1_1);
        assert_error(&out, 7);
        let msg = out.0["msg"].as_str().unwrap();
        assert!(msg.contains("ipamd"), "{command}: {msg}");
        assert_eq!(out.0["cniVersion"], "1.1.0");
    }
}

#[test]
fn errors_carry_the_configuration_version() {
    let conf = r#"{"cniVersion":"1.0.0","name":"podnet","type":"podroute-cni"}"#;
    let out = run(&add_env("ADD"), conf);
    assert_error(&out, 7);
    assert_eq!(out.0["cniVersion"], "1.0.0");
}

#[test]
fn bad_environment_values_are_code_4() {
    let conf = r#"{"cniVersion":"1.1.0","name":"podnet","type":"podroute-cni","ipamd":{"endpoint":"unix:///nonexistent/pcni.sock"}}"#;
    let mut env = add_env("ADD");
    env[3] = ("CNI_IFNAME", "this-name-is-too-long");
    assert_error(&run(&env, conf), 4);
    let mut env = add_env("ADD");
    env[1] = ("CNI_CONTAINERID", "-bad id");
    assert_error(&run(&env, conf), 4);
}

#[test]
fn bad_config_json_is_code_6() {
    for stdin in ["", "{\"cniVersion\":", "[1,2]", r#"{"cniVersion":1}"#] {
        let out = run(&add_env("ADD"), stdin);
        assert_error(&out, 6);
    }
}

#[test]
fn unsupported_version_is_code_1() {
    let conf = r#"{"cniVersion":"0.3.1","name":"podnet","type":"podroute-cni"}"#;
    let out = run(&add_env("ADD"), conf);
    assert_error(&out, 1);
    assert_eq!(out.0["cniVersion"], "1.1.0");
    assert!(out.0["details"].as_str().unwrap().contains("0.3.1"));

    // No cniVersion reads as 0.1.0, which we do not support either.
    let out = run(
        &add_env("ADD"),
        r#"{"name":"podnet","type":"podroute-cni"}"#,
    );
    assert_error(&out, 1);

    // GC is new in 1.1.0.
    let conf = r#"{"cniVersion":"1.0.0","name":"podnet","type":"podroute-cni"}"#;
    assert_error(&run(&add_env("GC"), conf), 1);
}

#[test]
fn missing_network_name_is_code_7() {
    let out = run(
        &add_env("ADD"),
        r#"{"cniVersion":"1.1.0","type":"podroute-cni"}"#,
    );
    assert_error(&out, 7);
}
