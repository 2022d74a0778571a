// Where podctl finds the daemons and which TLS files it uses, from (first
// match wins) the flags, the environment, a config file, and the defaults
// (the local Unix sockets). An endpoint is a socket path, unix:///PATH, or
// https://HOST:PORT (plain http is refused, as podroute_proto's
// ipamd_client refuses it). Documented in README.md, "podctl".

use std::path::{Path, PathBuf};

use podroute_proto::ipamd_client::{ClientIdentity, Endpoint, TlsFiles};
use serde::Deserialize;

use crate::daemons::{Daemon, Target};

/// The flags that say where the daemons are; global, so they go anywhere
/// on the command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnectionArgs {
    /// podroute-bgpd's admin API: a socket path, unix:///PATH or
    /// https://HOST:PORT [default: /run/podroute/bgpd.sock].
    #[arg(long, global = true, value_name = "ENDPOINT", env = "PODROUTE_BGPD")]
    pub bgpd: Option<String>,
    /// podroute-ipamd's API: a socket path, unix:///PATH or
    /// https://HOST:PORT [default: /run/podroute/ipamd.sock].
    #[arg(long, global = true, value_name = "ENDPOINT", env = "PODROUTE_IPAMD")]
    pub ipamd: Option<String>,
    /// podroute-policy-agent's admin API: a socket path, unix:///PATH or
    /// https://HOST:PORT [default: /run/podroute/policy.sock].
    #[arg(long, global = true, value_name = "ENDPOINT", env = "PODROUTE_POLICY")]
    pub policy: Option<String>,
    /// CA (PEM) that signed the daemons' certificates, for https://
    /// endpoints.
    #[arg(long, global = true, value_name = "FILE", env = "PODCTL_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// podctl's client certificate (PEM) for https:// endpoints; the admin
    /// APIs on TCP require one.
    #[arg(long, global = true, value_name = "FILE", env = "PODCTL_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, value_name = "FILE", env = "PODCTL_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// podctl's config file (YAML: bgpd, ipamd, policy, tls.ca, tls.cert,
    /// tls.key) [default: ~/.config/podroute/podctl.yaml, else
    /// /etc/podroute/podctl.yaml, when present].
    #[arg(long, global = true, value_name = "FILE", env = "PODCTL_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The config file: the same settings as the flags.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub bgpd: Option<String>,
    #[serde(default)]
    pub ipamd: Option<String>,
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub tls: FileTls,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    #[serde(default)]
    pub ca: Option<PathBuf>,
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// Where a setting came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The flag or its environment variable.
    Flag {
        flag: &'static str,
        env: &'static str,
    },
    /// The environment variable of older podctl versions.
    LegacyEnv(&'static str),
    File(PathBuf),
    Default,
}

/// One endpoint's text and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub text: String,
    pub origin: Origin,
}

/// Every setting resolved, not yet checked: a bad endpoint is reported
/// only by the commands that need that daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub bgpd: Setting,
    pub ipamd: Setting,
    pub policy: Setting,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The config file read, if any.
    pub file: Option<PathBuf>,
}

/// Why podctl's settings are unusable; each says which setting and how to
/// fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_yaml_ng::Error,
    },
    #[error("{origin}: {text:?}: {reason}")]
    Endpoint {
        origin: String,
        text: String,
        reason: String,
    },
    #[error(
        "{daemon} at {endpoint} is https: give --tls-ca FILE, the CA that signed its certificate (and --tls-cert/--tls-key: the admin APIs on TCP require a client certificate)"
    )]
    NeedsCa {
        daemon: &'static str,
        endpoint: String,
    },
    #[error("--tls-cert and --tls-key go together: give both or neither")]
    HalfIdentity,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag { flag, env } => write!(f, "{flag} (or {env})"),
            Origin::LegacyEnv(env) => f.write_str(env),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Default => f.write_str("the default"),
        }
    }
}

/// What podctl needs from its surroundings to resolve settings; tests pass
/// their own.
pub struct Environment<'a> {
    pub var: &'a dyn Fn(&str) -> Option<String>,
    pub cwd: PathBuf,
    /// The system-wide config file (`SYSTEM_CONFIG`).
    pub system_config: PathBuf,
}

impl Environment<'_> {
    /// The real process environment.
    pub fn process() -> Environment<'static> {
        Environment {
            var: &|name| std::env::var(name).ok().filter(|v| !v.is_empty()),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            system_config: PathBuf::from(SYSTEM_CONFIG),
        }
    }
}

impl Endpoints {
    /// Resolves every setting: flag (or its environment variable) > the
    /// older *_SOCKET variable > config file > default.
    pub fn resolve(args: &ConnectionArgs, env: &Environment) -> Result<Endpoints, ConfigError> {
        let (file, path) = match config_path(args, env) {
            Some(path) => (read_file(&path, env)?, Some(path)),
            None => (FileConfig::default(), None),
        };
        let setting = |flag_value: &Option<String>,
                       flag: &'static str,
                       new_env: &'static str,
                       legacy_env: &'static str,
                       from_file: &Option<String>,
                       default: &str| {
            if let Some(text) = flag_value {
                return Setting {
                    text: text.clone(),
                    origin: Origin::Flag { flag, env: new_env },
                };
            }
            if let Some(text) = (env.var)(legacy_env) {
                return Setting {
                    text,
                    origin: Origin::LegacyEnv(legacy_env),
                };
            }
            match (from_file, &path) {
                (Some(text), Some(path)) => Setting {
                    text: text.clone(),
                    origin: Origin::File(path.clone()),
                },
                _ => Setting {
                    text: default.to_owned(),
                    origin: Origin::Default,
                },
            }
        };
        Ok(Endpoints {
            bgpd: setting(
                &args.bgpd,
                "--bgpd",
                "PODROUTE_BGPD",
                "PODROUTE_BGPD_SOCKET",
                &file.bgpd,
                podroute_proto::BGPD_SOCKET,
            ),
            ipamd: setting(
                &args.ipamd,
                "--ipamd",
                "PODROUTE_IPAMD",
                "PODROUTE_IPAMD_SOCKET",
                &file.ipamd,
                podroute_proto::IPAMD_SOCKET,
            ),
            policy: setting(
                &args.policy,
                "--policy",
                "PODROUTE_POLICY",
                "PODROUTE_POLICY_SOCKET",
                &file.policy,
                podroute_proto::POLICY_SOCKET,
            ),
            tls_ca: args.tls_ca.clone().or(file.tls.ca),
            tls_cert: args.tls_cert.clone().or(file.tls.cert),
            tls_key: args.tls_key.clone().or(file.tls.key),
            file: path,
        })
        .map(|endpoints| endpoints.relative_to(&env.cwd))
    }

    /// Where `daemon` is and how to reach it; relative socket paths are
    /// taken from the directory podctl runs in.
    pub fn target(&self, daemon: Daemon) -> Result<Target, ConfigError> {
        let setting = match daemon {
            Daemon::Bgpd => &self.bgpd,
            Daemon::Ipamd => &self.ipamd,
            Daemon::Policy => &self.policy,
        };
        let endpoint = parse_endpoint(&setting.text).map_err(|reason| ConfigError::Endpoint {
            origin: setting.origin.to_string(),
            text: setting.text.clone(),
            reason,
        })?;
        let tls = match &endpoint {
            Endpoint::Unix(_) => None,
            Endpoint::Https { uri } => Some(self.tls_files(daemon, uri)?),
        };
        Ok(Target {
            daemon,
            endpoint,
            tls,
        })
    }

    fn tls_files(&self, daemon: Daemon, uri: &str) -> Result<TlsFiles, ConfigError> {
        let ca = self.tls_ca.clone().ok_or_else(|| ConfigError::NeedsCa {
            daemon: daemon.name(),
            endpoint: uri.to_owned(),
        })?;
        let identity = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(ClientIdentity {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None) => None,
            _ => return Err(ConfigError::HalfIdentity),
        };
        Ok(TlsFiles { ca, identity })
    }

    /// Relative socket paths and TLS files from flags and the environment
    /// are taken from `cwd` (those of the file were made absolute when it
    /// was read).
    fn relative_to(mut self, cwd: &Path) -> Endpoints {
        for setting in [&mut self.bgpd, &mut self.ipamd, &mut self.policy] {
            if looks_like_relative_path(&setting.text) {
                setting.text = cwd.join(&setting.text).display().to_string();
            }
        }
        for file in [&mut self.tls_ca, &mut self.tls_cert, &mut self.tls_key]
            .into_iter()
            .flatten()
        {
            if file.is_relative() {
                *file = cwd.join(&*file);
            }
        }
        self
    }
}

/// The config file to read: --config or PODCTL_CONFIG (which must exist),
/// else the per-user one, else the system one, when present.
fn config_path(args: &ConnectionArgs, env: &Environment) -> Option<PathBuf> {
    if let Some(path) = &args.config {
        return Some(if path.is_relative() {
            env.cwd.join(path)
        } else {
            path.clone()
        });
    }
    let user = (env.var)("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| (env.var)("HOME").map(|home| Path::new(&home).join(".config")))
        .map(|dir| dir.join("podroute/podctl.yaml"));
    user.into_iter()
        .chain([env.system_config.clone()])
        .find(|path| path.is_file())
}

/// The system-wide config file.
pub const SYSTEM_CONFIG: &str = "/etc/podroute/podctl.yaml";

fn read_file(path: &Path, env: &Environment) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_file(&text, path, env)
}

/// Parses a config file's text; relative paths in it are relative to the
/// file's directory, and "~/" is the home directory.
pub fn parse_file(text: &str, path: &Path, env: &Environment) -> Result<FileConfig, ConfigError> {
    // An empty file (or one of comments only) is an empty config.
    let mut config = serde_yaml_ng::from_str::<Option<FileConfig>>(text)
        .map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?
        .unwrap_or_default();
    let dir = path.parent().unwrap_or(Path::new("/"));
    let home = (env.var)("HOME");
    let place = |file: &mut PathBuf| {
        if let (Ok(rest), Some(home)) = (file.strip_prefix("~"), &home) {
            *file = Path::new(home).join(rest);
        } else if file.is_relative() {
            *file = dir.join(&*file);
        }
    };
    for file in [
        &mut config.tls.ca,
        &mut config.tls.cert,
        &mut config.tls.key,
    ]
    .into_iter()
    .flatten()
    {
        place(file);
    }
    for endpoint in [&mut config.bgpd, &mut config.ipamd, &mut config.policy]
        .into_iter()
        .flatten()
    {
        if looks_like_relative_path(endpoint) {
            let mut file = PathBuf::from(&*endpoint);
            place(&mut file);
            *endpoint = file.display().to_string();
        }
    }
    Ok(config)
}

/// A socket path that is not absolute: no scheme, no leading '/', and not
/// HOST:PORT (which `parse_endpoint` turns away with advice).
fn looks_like_relative_path(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with('/')
        && !text.contains("://")
        && !text.to_ascii_lowercase().starts_with("unix:")
        && host_port(text).is_none()
}

/// "HOST:PORT" without a scheme.
fn host_port(text: &str) -> Option<(&str, &str)> {
    let (host, port) = text.rsplit_once(':')?;
    (!host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        .then_some((host, port))
}

/// The shared endpoint syntax, plus advice for HOST:PORT without https://.
fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    if host_port(text).is_some() && !text.contains("://") {
        return Err(format!(
            "give the scheme: https://{text} (TLS), or a Unix socket path"
        ));
    }
    Endpoint::parse(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    fn resolve(args: &ConnectionArgs, vars: &[(&str, &str)]) -> Result<Endpoints, ConfigError> {
        let var = env_of(vars);
        Endpoints::resolve(
            args,
            &Environment {
                var: &var,
                cwd: PathBuf::from("/work"),
                system_config: PathBuf::from("/nonexistent/podctl.yaml"),
            },
        )
    }

    #[test]
    fn defaults_are_the_local_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().display().to_string();
        // A HOME without a config file, and no system one.
        let e = resolve(&ConnectionArgs::default(), &[("HOME", &home)]).unwrap();
        assert_eq!(e.bgpd.text, "/run/podroute/bgpd.sock");
        assert_eq!(e.bgpd.origin, Origin::Default);
        assert_eq!(
            e.target(Daemon::Policy).unwrap().endpoint,
            Endpoint::Unix("/run/podroute/policy.sock".into())
        );
        assert!(e.target(Daemon::Ipamd).unwrap().tls.is_none());
    }

    #[test]
    fn flag_then_legacy_env_then_file_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("podctl.yaml");
        std::fs::write(
            &file,
            "bgpd: https://node-a:9651\nipamd: ipamd.sock\ntls: {ca: pki/ca.pem, cert: ~/me.pem, key: /k.pem}\n",
        )
        .unwrap();
        let args = ConnectionArgs {
            policy: Some("/flag/policy.sock".into()),
            config: Some(file.clone()),
            ..ConnectionArgs::default()
        };
        let e = resolve(
            &args,
            &[
                ("PODROUTE_IPAMD_SOCKET", "/legacy/ipamd.sock"),
                ("HOME", "/home/op"),
            ],
        )
        .unwrap();
        assert_eq!(e.policy.text, "/flag/policy.sock");
        assert_eq!(e.ipamd.text, "/legacy/ipamd.sock");
        assert_eq!(e.ipamd.origin, Origin::LegacyEnv("PODROUTE_IPAMD_SOCKET"));
        assert_eq!(e.bgpd.text, "https://node-a:9651");
        assert_eq!(e.bgpd.origin, Origin::File(file.clone()));
        assert_eq!(e.tls_ca, Some(dir.path().join("pki/ca.pem")));
        assert_eq!(e.tls_cert, Some(PathBuf::from("/home/op/me.pem")));
        let target = e.target(Daemon::Bgpd).unwrap();
        assert_eq!(
            target.tls,
            Some(TlsFiles {
                ca: dir.path().join("pki/ca.pem"),
                identity: Some(ClientIdentity {
                    cert: "/home/op/me.pem".into(),
                    key: "/k.pem".into()
                }),
            })
        );

        // Without the legacy variable, the file's relative socket path is
        // taken from the file's directory.
        let e = resolve(&args, &[]).unwrap();
        assert_eq!(
            e.ipamd.text,
            dir.path().join("ipamd.sock").display().to_string()
        );

        // The flag beats the file for TLS too.
        let args = ConnectionArgs {
            tls_ca: Some("ca.pem".into()),
            ..args
        };
        assert_eq!(
            resolve(&args, &[]).unwrap().tls_ca,
            Some(PathBuf::from("/work/ca.pem"))
        );
    }

    #[test]
    fn relative_sockets_and_bad_endpoints() {
        let args = ConnectionArgs {
            bgpd: Some("run/bgpd.sock".into()),
            ipamd: Some("ipamd:7443".into()),
            policy: Some("http://node:9653".into()),
            config: Some("/dev/null".into()),
            ..ConnectionArgs::default()
        };
        let e = resolve(&args, &[]).unwrap();
        assert_eq!(
            e.target(Daemon::Bgpd).unwrap().endpoint,
            Endpoint::Unix("/work/run/bgpd.sock".into())
        );
        let err = e.target(Daemon::Ipamd).unwrap_err().to_string();
        assert_eq!(
            err,
            "--ipamd (or PODROUTE_IPAMD): \"ipamd:7443\": give the scheme: https://ipamd:7443 (TLS), or a Unix socket path"
        );
        let err = e.target(Daemon::Policy).unwrap_err().to_string();
        assert!(err.contains("plain http is refused"), "{err}");
    }

    #[test]
    fn https_needs_a_ca_and_a_whole_identity() {
        let base = ConnectionArgs {
            bgpd: Some("https://node-a:9651".into()),
            config: Some("/dev/null".into()),
            ..ConnectionArgs::default()
        };
        let err = resolve(&base, &[])
            .unwrap()
            .target(Daemon::Bgpd)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("podroute-bgpd at https://node-a:9651 is https: give --tls-ca FILE"),
            "{err}"
        );
        let half = ConnectionArgs {
            tls_ca: Some("/ca.pem".into()),
            tls_cert: Some("/me.pem".into()),
            ..base.clone()
        };
        assert!(matches!(
            resolve(&half, &[]).unwrap().target(Daemon::Bgpd),
            Err(ConfigError::HalfIdentity)
        ));
        let ca_only = ConnectionArgs {
            tls_ca: Some("/ca.pem".into()),
            ..base
        };
        let target = resolve(&ca_only, &[])
            .unwrap()
            .target(Daemon::Bgpd)
            .unwrap();
        assert_eq!(target.tls.unwrap().identity, None);
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("podctl.yaml");
        std::fs::write(&file, "bgpd: /a.sock\nbpgd: typo\n").unwrap();
        let args = ConnectionArgs {
            config: Some(file.clone()),
            ..ConnectionArgs::default()
        };
        let err = resolve(&args, &[]).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "config file {}: unknown field `bpgd`",
                file.display()
            )),
            "{err}"
        );
        let missing = ConnectionArgs {
            config: Some(dir.path().join("none.yaml")),
            ..ConnectionArgs::default()
        };
        let err = resolve(&missing, &[]).unwrap_err().to_string();
        assert!(err.starts_with("cannot read config file"), "{err}");

        // Comments only: an empty config.
        std::fs::write(&file, "# nothing yet\n").unwrap();
        let e = resolve(&args, &[]).unwrap();
        assert_eq!(e.bgpd.origin, Origin::Default);
    }

    #[test]
    fn the_user_file_is_found_under_home() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join(".config/podroute");
        std::fs::create_dir_all(&user).unwrap();
        std::fs::write(user.join("podctl.yaml"), "policy: /from/home.sock\n").unwrap();
        let home = dir.path().display().to_string();
        let e = resolve(&ConnectionArgs::default(), &[("HOME", &home)]).unwrap();
        assert_eq!(e.policy.text, "/from/home.sock");
        assert_eq!(e.file, Some(user.join("podctl.yaml")));
    }
}
