// `podroute-cni install`: copies the plugin binary into the runtime's CNI
// bin folder and writes podroute's network configuration list (CNI spec 1.1
// section 1 "Configuration format", with 1.1's "cniVersions") into its conf
// folder. Each file goes through a temp file + fsync + rename, so a runtime
// never sees a half-written file, and an unchanged file is not rewritten.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{DEFAULT_IPAMD_ENDPOINT, Family, NetConf, PluginConf};
use crate::{CURRENT_VERSION, SUPPORTED_VERSIONS};

pub struct InstallOptions {
    /// e.g. /opt/cni/bin
    pub bin_dir: PathBuf,
    /// e.g. /etc/cni/net.d
    pub conf_dir: PathBuf,
    /// std::env::current_exe() by the caller.
    pub source_binary: PathBuf,
    pub conflist: ConflistOptions,
}

/// What goes into the conflist. `Default` gives network "podroute" on the
/// default ipamd socket, everything else automatic.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflistOptions {
    /// The list's cniVersion: 1.1.0, or 1.0.0 for runtimes on libcni before
    /// 1.2 (containerd 1.7), which cannot read a 1.1.0 result.
    pub cni_version: String,
    pub network: String,
    pub ipamd_endpoint: String,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
    pub node_name: Option<String>,
    pub node_name_file: Option<PathBuf>,
    /// 0: auto.
    pub mtu: u32,
    pub families: Vec<Family>,
    pub log_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{field} {path:?}: not UTF-8, and a conflist is JSON text")]
    NonUtf8Path { field: &'static str, path: PathBuf },
    #[error("{}: the conflist would not load: {reason}", path.display())]
    InvalidConflist { path: PathBuf, reason: String },
    #[error("cannot read the plugin binary {}: {source}", path.display())]
    ReadBinary {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot create the folder {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    pub binary: PathBuf,
    pub conflist: PathBuf,
    /// Written, or its mode corrected.
    pub binary_changed: bool,
    /// Written, or its mode corrected.
    pub conflist_changed: bool,
}

/// The conflist's file name: sorts before most others, so a runtime that
/// takes the first configuration in the folder takes ours.
pub const CONFLIST_NAME: &str = "10-podroute.conflist";
/// The binary's name in the bin folder, the plugins' "type".
pub const BINARY_NAME: &str = "podroute-cni";
/// ConflistOptions' default network name.
pub const DEFAULT_NETWORK: &str = "podroute";

const BINARY_MODE: u32 = 0o755;
const CONFLIST_MODE: u32 = 0o644;

impl Default for ConflistOptions {
    fn default() -> Self {
        ConflistOptions {
            cni_version: CURRENT_VERSION.to_owned(),
            network: DEFAULT_NETWORK.to_owned(),
            ipamd_endpoint: DEFAULT_IPAMD_ENDPOINT.to_owned(),
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            node_name: None,
            node_name_file: None,
            mtu: 0,
            families: Vec::new(),
            log_file: None,
        }
    }
}

/// The conflist JSON: {"cniVersion":"1.1.0","cniVersions":["0.4.0","1.0.0","1.1.0"],
/// "name":..,"plugins":[{"type":"podroute-cni","ipamd":{...},"nodeName":..,
/// "mtu":..,"families":[..],"logFile":..,"capabilities":{"ips":true}}]} —
/// pretty-printed with a final newline, absent options (and mtu 0, empty
/// families) omitted. Paths are written lossily if not UTF-8: `install`
/// refuses those first.
pub fn render_conflist(options: &ConflistOptions) -> String {
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.to_string_lossy().into_owned());
    let conflist = WireConflist {
        cni_version: &options.cni_version,
        cni_versions: SUPPORTED_VERSIONS,
        name: &options.network,
        plugins: [WirePlugin {
            plugin_type: BINARY_NAME,
            ipamd: WireIpamd {
                endpoint: &options.ipamd_endpoint,
                tls_cert: path(&options.tls_cert),
                tls_key: path(&options.tls_key),
                tls_ca: path(&options.tls_ca),
            },
            node_name: options.node_name.as_deref(),
            node_name_file: path(&options.node_name_file),
            mtu: (options.mtu != 0).then_some(options.mtu),
            families: &options.families,
            log_file: path(&options.log_file),
            capabilities: WireCapabilities { ips: true },
        }],
    };
    // Strings, numbers and lists of them always serialize; were that ever
    // to fail, `install` refuses the empty text as a conflist that does not
    // load.
    let mut text = serde_json::to_string_pretty(&conflist).unwrap_or_default();
    text.push('\n');
    text
}

/// Writes `bin_dir/podroute-cni` (mode 0755) and `conf_dir/10-podroute.conflist`
/// (0644), each via a temp file in the same folder + fsync + rename, so a
/// runtime never sees a half-written file; creates the folders; leaves every
/// other file alone; a file whose bytes already match is not rewritten (only
/// its mode is corrected). The conflist is checked to load as a PluginConf
/// before anything is written, and the binary is written first, so a
/// runtime never finds the conflist without the plugin.
pub fn install(options: &InstallOptions) -> Result<InstallReport, InstallError> {
    let conflist_path = options.conf_dir.join(CONFLIST_NAME);
    let binary_path = options.bin_dir.join(BINARY_NAME);

    check_utf8(&options.conflist)?;
    if !SUPPORTED_VERSIONS.contains(&options.conflist.cni_version.as_str()) {
        return Err(InstallError::InvalidConflist {
            path: conflist_path,
            reason: format!(
                "cniVersion {:?} is not one of {}",
                options.conflist.cni_version,
                SUPPORTED_VERSIONS.join(", ")
            ),
        });
    }
    let conflist = render_conflist(&options.conflist);
    check_conflist(&conflist).map_err(|reason| InstallError::InvalidConflist {
        path: conflist_path.clone(),
        reason,
    })?;
    let binary = fs::read(&options.source_binary).map_err(|source| InstallError::ReadBinary {
        path: options.source_binary.clone(),
        source,
    })?;

    for dir in [&options.bin_dir, &options.conf_dir] {
        fs::create_dir_all(dir).map_err(|source| InstallError::CreateDir {
            path: dir.clone(),
            source,
        })?;
    }
    let binary_changed = write_if_changed(&binary_path, &binary, BINARY_MODE)?;
    let conflist_changed = write_if_changed(&conflist_path, conflist.as_bytes(), CONFLIST_MODE)?;
    Ok(InstallReport {
        binary: binary_path,
        conflist: conflist_path,
        binary_changed,
        conflist_changed,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireConflist<'a> {
    cni_version: &'a str,
    cni_versions: &'a [&'a str],
    name: &'a str,
    plugins: [WirePlugin<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WirePlugin<'a> {
    #[serde(rename = "type")]
    plugin_type: &'a str,
    ipamd: WireIpamd<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node_name_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    #[serde(skip_serializing_if = "<[Family]>::is_empty")]
    families: &'a [Family],
    #[serde(skip_serializing_if = "Option::is_none")]
    log_file: Option<String>,
    capabilities: WireCapabilities,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireIpamd<'a> {
    endpoint: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_cert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_ca: Option<String>,
}

#[derive(Serialize)]
struct WireCapabilities {
    ips: bool,
}

/// Refuses paths a JSON string cannot hold exactly.
fn check_utf8(options: &ConflistOptions) -> Result<(), InstallError> {
    let paths = [
        ("tlsCert", &options.tls_cert),
        ("tlsKey", &options.tls_key),
        ("tlsCa", &options.tls_ca),
        ("nodeNameFile", &options.node_name_file),
        ("logFile", &options.log_file),
    ];
    for (field, path) in paths {
        if let Some(path) = path
            && path.to_str().is_none()
        {
            return Err(InstallError::NonUtf8Path {
                field,
                path: path.clone(),
            });
        }
    }
    Ok(())
}

/// Loads `text` the way a runtime hands it to the plugin (plugins[0] with
/// the list's name and cniVersion injected) and checks it as ADD would.
fn check_conflist(text: &str) -> Result<PluginConf, String> {
    let list: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut plugin = list
        .get("plugins")
        .and_then(|p| p.get(0))
        .cloned()
        .ok_or("no plugins[0]")?;
    let object = plugin
        .as_object_mut()
        .ok_or("plugins[0] is not an object")?;
    for key in ["name", "cniVersion"] {
        if let Some(value) = list.get(key) {
            object.insert(key.to_owned(), value.clone());
        }
    }
    let conf = NetConf::parse(plugin.to_string().as_bytes()).map_err(|e| e.to_string())?;
    PluginConf::from_netconf(conf, CURRENT_VERSION).map_err(|e| e.to_string())
}

/// Makes `path` hold `bytes` with `mode`; false when it already did.
fn write_if_changed(path: &Path, bytes: &[u8], mode: u32) -> Result<bool, InstallError> {
    let write_error = |source| InstallError::Write {
        path: path.to_owned(),
        source,
    };
    match fs::read(path) {
        Ok(existing) if existing == bytes => {
            let current = fs::metadata(path)
                .map_err(write_error)?
                .permissions()
                .mode()
                & 0o7777;
            if current == mode {
                return Ok(false);
            }
            fs::set_permissions(path, Permissions::from_mode(mode)).map_err(write_error)?;
            return Ok(true);
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(write_error(e)),
    }
    write_atomically(path, bytes, mode).map_err(write_error)?;
    Ok(true)
}

/// Temp file next to `path` (hidden, and with no .conf/.conflist/.json
/// ending, so no runtime loads it), fsync, rename over `path`, fsync the
/// folder so the rename survives a crash. The temp file is removed on
/// failure.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file path",
        ));
    };
    let mut temp = TempFile {
        path: dir.join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        )),
        renamed: false,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temp.path)?;
    file.write_all(bytes)?;
    // The umask may have narrowed the mode at creation.
    file.set_permissions(Permissions::from_mode(mode))?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp.path, path)?;
    temp.renamed = true;
    File::open(dir)?.sync_all()
}

/// Removes the file when dropped before it was renamed (a write that
/// failed halfway).
struct TempFile {
    path: PathBuf,
    renamed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;

    use crate::config::IpamdEndpoint;

    struct Dirs {
        _root: tempfile::TempDir,
        options: InstallOptions,
    }

    fn dirs() -> Dirs {
        let root = tempfile::tempdir().unwrap();
        let source = root.path().join("build/podroute-cni");
        fs::create_dir_all(source.parent().unwrap()).unwrap();
        fs::write(&source, b"\x7fELF plugin v1").unwrap();
        let options = InstallOptions {
            bin_dir: root.path().join("opt/cni/bin"),
            conf_dir: root.path().join("etc/cni/net.d"),
            source_binary: source,
            conflist: ConflistOptions::default(),
        };
        Dirs {
            _root: root,
            options,
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    /// Every file in `dir` and its bytes.
    fn listing(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn default_conflist() {
        let expected = r#"{
  "cniVersion": "1.1.0",
  "cniVersions": [
    "0.4.0",
    "1.0.0",
    "1.1.0"
  ],
  "name": "podroute",
  "plugins": [
    {
      "type": "podroute-cni",
      "ipamd": {
        "endpoint": "unix:///run/podroute/ipamd.sock"
      },
      "capabilities": {
        "ips": true
      }
    }
  ]
}
"#;
        assert_eq!(render_conflist(&ConflistOptions::default()), expected);
    }

    #[test]
    fn full_conflist_round_trips_into_a_plugin_conf() {
        let options = ConflistOptions {
            cni_version: "1.0.0".into(),
            network: "k8s-pods".into(),
            ipamd_endpoint: "https://10.0.0.1:7443".into(),
            tls_cert: Some("/etc/podroute/node.crt".into()),
            tls_key: Some("/etc/podroute/node.key".into()),
            tls_ca: Some("/etc/podroute/ca.crt".into()),
            node_name: Some("worker-1".into()),
            node_name_file: Some("/var/lib/podroute/nodename".into()),
            mtu: 1450,
            families: vec![Family::Ipv4, Family::Ipv6],
            log_file: Some("/var/log/podroute-cni.log".into()),
        };
        let text = render_conflist(&options);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let plugin = &value["plugins"][0];
        assert_eq!(value["cniVersion"], "1.0.0");
        assert_eq!(plugin["families"], serde_json::json!(["ipv4", "ipv6"]));
        assert_eq!(plugin["mtu"], 1450);
        assert_eq!(plugin["capabilities"]["ips"], true);
        assert_eq!(plugin["ipamd"]["tlsCa"], "/etc/podroute/ca.crt");

        let conf = check_conflist(&text).unwrap();
        assert_eq!(conf.network, "k8s-pods");
        assert_eq!(
            conf.ipamd,
            IpamdEndpoint::Https {
                uri: "https://10.0.0.1:7443".into()
            }
        );
        let tls = conf.tls.unwrap();
        assert_eq!(tls.ca, Path::new("/etc/podroute/ca.crt"));
        assert_eq!(
            tls.identity.unwrap().key,
            Path::new("/etc/podroute/node.key")
        );
        assert_eq!(conf.node_name.as_deref(), Some("worker-1"));
        assert_eq!(
            conf.node_name_file.as_deref(),
            Some(Path::new("/var/lib/podroute/nodename"))
        );
        assert_eq!(conf.mtu, Some(1450));
        assert_eq!(conf.families, vec![Family::Ipv4, Family::Ipv6]);
        assert_eq!(
            conf.log_file.as_deref(),
            Some(Path::new("/var/log/podroute-cni.log"))
        );
        // The default one loads too.
        let conf = check_conflist(&render_conflist(&ConflistOptions::default())).unwrap();
        assert_eq!(
            conf.ipamd,
            IpamdEndpoint::Unix("/run/podroute/ipamd.sock".into())
        );
        assert_eq!(conf.mtu, None);
    }

    #[test]
    fn installs_both_files_with_their_modes() {
        let d = dirs();
        let report = install(&d.options).unwrap();
        let binary = d.options.bin_dir.join("podroute-cni");
        let conflist = d.options.conf_dir.join("10-podroute.conflist");
        assert_eq!(
            report,
            InstallReport {
                binary: binary.clone(),
                conflist: conflist.clone(),
                binary_changed: true,
                conflist_changed: true,
            }
        );
        assert_eq!(fs::read(&binary).unwrap(), b"\x7fELF plugin v1");
        assert_eq!(mode(&binary), 0o755);
        assert_eq!(
            fs::read_to_string(&conflist).unwrap(),
            render_conflist(&ConflistOptions::default())
        );
        assert_eq!(mode(&conflist), 0o644);
        // Nothing else, in particular no temp file.
        assert_eq!(
            listing(&d.options.bin_dir).keys().collect::<Vec<_>>(),
            ["podroute-cni"]
        );
        assert_eq!(
            listing(&d.options.conf_dir).keys().collect::<Vec<_>>(),
            ["10-podroute.conflist"]
        );
    }

    #[test]
    fn a_second_run_changes_nothing() {
        let d = dirs();
        install(&d.options).unwrap();
        let inode = |p: PathBuf| fs::metadata(p).unwrap().ino();
        let before = (
            inode(d.options.bin_dir.join(BINARY_NAME)),
            inode(d.options.conf_dir.join(CONFLIST_NAME)),
        );
        let report = install(&d.options).unwrap();
        assert!(!report.binary_changed);
        assert!(!report.conflist_changed);
        // Not rewritten: the same files, not equal copies.
        let after = (
            inode(d.options.bin_dir.join(BINARY_NAME)),
            inode(d.options.conf_dir.join(CONFLIST_NAME)),
        );
        assert_eq!(before, after);
    }

    #[test]
    fn other_files_are_left_alone() {
        let d = dirs();
        fs::create_dir_all(&d.options.conf_dir).unwrap();
        fs::create_dir_all(&d.options.bin_dir).unwrap();
        fs::write(
            d.options.conf_dir.join("05-other.conflist"),
            b"{\"other\":1}",
        )
        .unwrap();
        fs::write(d.options.conf_dir.join("99-loopback.conf"), b"{\"lo\":1}").unwrap();
        fs::write(d.options.bin_dir.join("loopback"), b"lo binary").unwrap();
        let conf_before = listing(&d.options.conf_dir);
        let bin_before = listing(&d.options.bin_dir);

        install(&d.options).unwrap();

        let mut conf_after = listing(&d.options.conf_dir);
        let mut bin_after = listing(&d.options.bin_dir);
        assert!(conf_after.remove(CONFLIST_NAME).is_some());
        assert!(bin_after.remove(BINARY_NAME).is_some());
        assert_eq!(conf_after, conf_before);
        assert_eq!(bin_after, bin_before);
    }

    #[test]
    fn changes_only_what_differs() {
        let d = dirs();
        install(&d.options).unwrap();
        fs::write(&d.options.source_binary, b"\x7fELF plugin v2").unwrap();
        let report = install(&d.options).unwrap();
        assert!(report.binary_changed);
        assert!(!report.conflist_changed);
        assert_eq!(
            fs::read(d.options.bin_dir.join(BINARY_NAME)).unwrap(),
            b"\x7fELF plugin v2"
        );

        let mut options = d.options;
        options.conflist.mtu = 1400;
        let report = install(&options).unwrap();
        assert!(!report.binary_changed);
        assert!(report.conflist_changed);
        assert!(
            fs::read_to_string(options.conf_dir.join(CONFLIST_NAME))
                .unwrap()
                .contains("\"mtu\": 1400")
        );
    }

    #[test]
    fn a_wrong_mode_is_corrected_in_place() {
        let d = dirs();
        install(&d.options).unwrap();
        let conflist = d.options.conf_dir.join(CONFLIST_NAME);
        let binary = d.options.bin_dir.join(BINARY_NAME);
        fs::set_permissions(&conflist, Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(&binary, Permissions::from_mode(0o700)).unwrap();
        let report = install(&d.options).unwrap();
        assert!(report.binary_changed && report.conflist_changed);
        assert_eq!(mode(&conflist), 0o644);
        assert_eq!(mode(&binary), 0o755);
    }

    #[test]
    fn a_bad_configuration_writes_nothing() {
        type Change = fn(&mut ConflistOptions);
        let cases: [(&str, Change); 5] = [
            (r#"name "-bad""#, |o| o.network = "-bad".into()),
            ("plain http", |o| {
                o.ipamd_endpoint = "http://ipamd:80".into()
            }),
            ("logFile", |o| o.log_file = Some("relative.log".into())),
            ("tlsCert and tlsKey", |o| {
                o.ipamd_endpoint = "https://ipamd:7443".into();
                o.tls_ca = Some("/ca".into());
                o.tls_cert = Some("/cert".into());
            }),
            ("mtu 10", |o| o.mtu = 10),
        ];
        for (needle, change) in cases {
            let mut d = dirs();
            change(&mut d.options.conflist);
            let err = install(&d.options).unwrap_err();
            assert!(
                matches!(&err, InstallError::InvalidConflist { path, .. } if path.ends_with(CONFLIST_NAME)),
                "{err}"
            );
            let message = err.to_string();
            assert!(message.contains("the conflist would not load"), "{message}");
            assert!(message.contains(needle), "{message}");
            assert!(!d.options.bin_dir.exists());
            assert!(!d.options.conf_dir.exists());
        }
    }

    #[test]
    fn non_utf8_paths_are_refused() {
        let mut d = dirs();
        d.options.conflist.log_file = Some(PathBuf::from(OsStr::from_bytes(b"/var/log/\xff.log")));
        let err = install(&d.options).unwrap_err();
        assert!(
            matches!(
                err,
                InstallError::NonUtf8Path {
                    field: "logFile",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!d.options.conf_dir.exists());
    }

    #[test]
    fn a_missing_binary_is_named() {
        let mut d = dirs();
        d.options.source_binary = d.options.bin_dir.join("nowhere");
        let err = install(&d.options).unwrap_err();
        assert!(matches!(err, InstallError::ReadBinary { .. }));
        assert!(err.to_string().contains("nowhere"), "{err}");
        assert!(!d.options.conf_dir.exists());
    }

    #[test]
    fn an_unwritable_destination_is_named() {
        let d = dirs();
        // A folder where the conflist goes.
        let conflist = d.options.conf_dir.join(CONFLIST_NAME);
        fs::create_dir_all(&conflist).unwrap();
        let err = install(&d.options).unwrap_err();
        assert!(matches!(&err, InstallError::Write { path, .. } if *path == conflist));
        assert!(err.to_string().contains(CONFLIST_NAME), "{err}");
    }

    #[test]
    fn a_failed_rename_leaves_no_temp_file() {
        let root = tempfile::tempdir().unwrap();
        // A non-empty folder cannot be renamed over.
        let target = root.path().join("target");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), b"x").unwrap();
        assert!(write_atomically(&target, b"new", 0o644).is_err());
        assert_eq!(listing_names(root.path()), ["target".to_owned()]);
        assert_eq!(fs::read(target.join("inside")).unwrap(), b"x");
    }

    fn listing_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}
