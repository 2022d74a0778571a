// Lab pods, made the way a kubelet makes them: a network namespace of the
// lab's own (so `down` removes it), the real CNI plugin's ADD run in the
// node's namespace with the lab ipamd's socket in its config, a `podlab
// probe serve` on the pod's TCP/UDP ports, and the Pod (and its Namespace)
// written into the manifests folder the policy agents read. A record per
// pod in cluster/pods/ is what `pods`, `exec` and `delete` find it by.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::LabCluster;
use super::daemons::Daemon;
use super::spec::{self, PortSpec};
use crate::error::LabError;
use crate::lab::{add_lab_namespace, remove_lab_namespace};
use crate::manifests::{self, write_atomic};
use crate::{cmdline, cni, netns};

/// How long a node's policy agent gets to program a new pod.
const PROGRAMMED: Duration = Duration::from_secs(60);

/// A pod of a lab, as its record in cluster/pods/ keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabPod {
    pub namespace: String,
    pub name: String,
    pub node: String,
    /// Its network namespace.
    pub netns: String,
    pub ips: Vec<IpAddr>,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<PortSpec>,
}

impl LabPod {
    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Its first address (IPv4 when it has one, as the CNI result lists).
    pub fn ip(&self) -> Option<IpAddr> {
        self.ips.first().copied()
    }
}

impl LabCluster {
    /// Makes pod `namespace/name` on `node` (a node running bgpd) with
    /// `labels` and container `ports`; a probe server answers on its TCP
    /// and UDP ports. Everything made is removed again if a step fails.
    pub fn create_pod(
        &self,
        node: &str,
        namespace: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
        ports: &[PortSpec],
    ) -> Result<LabPod, LabError> {
        spec::check_dns_label("namespace", namespace)?;
        spec::check_dns_label("pod name", name)?;
        spec::check_labels(labels)?;
        if !self.nodes().iter().any(|n| n == node) {
            self.check_node(node)?;
            return Err(LabError::Node {
                lab: self.name().to_string(),
                node: node.to_string(),
                reason: format!(
                    "runs ipamd, no bgpd; pods go on {}",
                    self.nodes().join(", ")
                ),
            });
        }
        let plugin = self.binary("podroute-cni")?;
        let podlab = self.binary("podlab")?;
        // The record is made first, exclusively: two creates of one pod
        // cannot both go ahead.
        let record = self.record_path(namespace, name);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&record)
        {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(LabError::PodExists {
                    lab: self.name().to_string(),
                    pod: format!("{namespace}/{name}"),
                    node: self
                        .read_record(namespace, name)
                        .map_or_else(|_| "?".into(), |p| p.node),
                });
            }
            Err(e) => return Err(LabError::io(&record, e)),
        }
        let mut pod = LabPod {
            namespace: namespace.to_string(),
            name: name.to_string(),
            node: node.to_string(),
            netns: String::new(),
            ips: Vec::new(),
            labels: labels.clone(),
            ports: ports.to_vec(),
        };
        match self.make_pod(&mut pod, &plugin, &podlab) {
            Ok(()) => Ok(pod),
            Err(e) => {
                // Best effort: the error that matters is the first.
                let _ = self.unmake_pod(&pod, &plugin);
                Err(e)
            }
        }
    }

    fn make_pod(
        &self,
        pod: &mut LabPod,
        plugin: &std::path::Path,
        podlab: &std::path::Path,
    ) -> Result<(), LabError> {
        let paths = self.paths();
        // Kubernetes names hold no `_`: `pod_<ns>_<name>` names one pod.
        pod.netns = add_lab_namespace(self.name(), &format!("pod_{}_{}", pod.namespace, pod.name))?;
        let node_ns = crate::lab::node_runtime(self.name(), &pod.node).netns;
        pod.ips = cni::add(
            plugin,
            &node_ns,
            &cni::conf(&paths.ipamd_endpoint(), &pod.node),
            &pod.netns,
            &pod.namespace,
            &pod.name,
        )?;
        let served = spec::served_ports(&pod.ports);
        if !served.is_empty() {
            let probe = self.probe(pod);
            let mut argv = vec![podlab.display().to_string()];
            argv.extend(cmdline::probe_serve_args(&served));
            probe.spawn(&pod.netns, &argv)?;
            // It prints {"listening":[...]} once every socket is bound.
            probe.wait(self.name(), || {
                fs::read_to_string(&probe.log)
                    .unwrap_or_default()
                    .contains("{\"listening\"")
            })?;
        }
        let tmp = paths.tmp();
        let ns_manifest = paths
            .manifests()
            .join(format!("Namespace.{}.yaml", pod.namespace));
        // An applied Namespace (with labels of its own) stays.
        if !ns_manifest.exists() {
            write_atomic(
                &tmp.join(format!("Namespace.{}.yaml.tmp", pod.namespace)),
                &ns_manifest,
                &manifests::namespace(&pod.namespace),
            )?;
        }
        let ports: Vec<_> = pod
            .ports
            .iter()
            .map(|p| (p.port, p.protocol.as_str()))
            .collect();
        write_atomic(
            &tmp.join(format!("{}.tmp", pod_manifest_name(pod))),
            &paths.manifests().join(pod_manifest_name(pod)),
            &manifests::pod(
                &pod.namespace,
                &pod.name,
                &pod.node,
                &pod.labels,
                &ports,
                &pod.ips,
            ),
        )?;
        self.wait_programmed(pod)?;
        let text = serde_json::to_string_pretty(pod).map_err(|e| LabError::Io {
            path: self.record_path(&pod.namespace, &pod.name),
            reason: e.to_string(),
        })?;
        write_atomic(
            &tmp.join(format!("pod.{}.{}.json.tmp", pod.namespace, pod.name)),
            &self.record_path(&pod.namespace, &pod.name),
            &text,
        )
    }

    /// Waits until the node's policy agent lists `pod` as an endpoint: it
    /// publishes that view only after programming the kernel, and until
    /// then the agent drops the pod's packets ("no policy programmed yet").
    fn wait_programmed(&self, pod: &LabPod) -> Result<(), LabError> {
        let until = Instant::now() + PROGRAMMED;
        let mut last = String::new();
        while Instant::now() < until {
            let out = self.podctl(&pod.node, &["policy", "endpoints", "-o", "json"])?;
            last = String::from_utf8_lossy(&out.stdout).into_owned();
            let listed = serde_json::from_str::<serde_json::Value>(&last)
                .ok()
                .and_then(|v| {
                    v["endpoints"].as_array().map(|list| {
                        list.iter()
                            .any(|e| e["namespace"] == *pod.namespace && e["pod"] == *pod.name)
                    })
                })
                .unwrap_or(false);
            if listed {
                return Ok(());
            }
            std::thread::sleep(netns::POLL_INTERVAL * 4);
        }
        Err(LabError::Cluster {
            lab: self.name().to_string(),
            reason: format!(
                "the policy agent on {} did not program pod {} within {PROGRAMMED:?} \
                 (endpoints: {}); its log: {}",
                pod.node,
                pod.id(),
                last.trim(),
                crate::lab::tail(&self.paths().node_file(&pod.node, "policy", "log"))
            ),
        })
    }

    /// Deletes pod `id` (`namespace/name`) as a runtime does: its Pod
    /// manifest goes, CNI DEL releases its addresses, its namespace (and
    /// the probe server in it) is removed, then its record.
    pub fn delete_pod(&self, id: &str) -> Result<LabPod, LabError> {
        let pod = self.pod(id)?;
        self.unmake_pod(&pod, &self.binary("podroute-cni")?)?;
        Ok(pod)
    }

    /// Undoes what exists of `pod`; every step is tried, the first error
    /// returned.
    fn unmake_pod(&self, pod: &LabPod, plugin: &std::path::Path) -> Result<(), LabError> {
        let paths = self.paths();
        let mut first: Option<LabError> = None;
        let mut keep = |r: Result<(), LabError>| {
            if let Err(e) = r
                && first.is_none()
            {
                first = Some(e);
            }
        };
        keep(remove_if_present(
            paths.manifests().join(pod_manifest_name(pod)),
        ));
        if !pod.netns.is_empty() {
            let node_ns = crate::lab::node_runtime(self.name(), &pod.node).netns;
            keep(cni::del(
                plugin,
                &node_ns,
                &cni::conf(&paths.ipamd_endpoint(), &pod.node),
                &pod.netns,
                &pod.namespace,
                &pod.name,
            ));
            keep(remove_lab_namespace(self.name(), &pod.netns));
        }
        let probe = self.probe(pod);
        keep(remove_if_present(probe.log));
        keep(remove_if_present(probe.pid));
        keep(remove_if_present(
            self.record_path(&pod.namespace, &pod.name),
        ));
        first.map_or(Ok(()), Err)
    }

    /// Pod `id` (`namespace/name`).
    pub fn pod(&self, id: &str) -> Result<LabPod, LabError> {
        let (namespace, name) = spec::parse_pod_id(id)?;
        self.read_record(&namespace, &name)
    }

    /// Every pod, by namespace and name. A pod being created (its record
    /// not yet written) is left out.
    pub fn pods(&self) -> Result<Vec<LabPod>, LabError> {
        let dir = self.paths().pods();
        let mut pods: Vec<LabPod> = fs::read_dir(&dir)
            .map_err(|e| LabError::io(&dir, e))?
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| serde_json::from_str(&fs::read_to_string(e.path()).ok()?).ok())
            .collect();
        pods.sort_by(|a: &LabPod, b: &LabPod| {
            (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
        });
        Ok(pods)
    }

    /// A command that runs `argv` in pod `id`'s network namespace.
    pub fn pod_command(&self, id: &str, argv: &[impl AsRef<str>]) -> Result<Command, LabError> {
        let pod = self.pod(id)?;
        Ok(netns::command_in(&pod.netns, argv))
    }

    /// Runs `argv` in pod `id` and returns its output, whatever its status.
    pub fn pod_exec(&self, id: &str, argv: &[impl AsRef<str>]) -> Result<Output, LabError> {
        let mut cmd = self.pod_command(id, argv)?;
        cmd.stdin(std::process::Stdio::null());
        let shown = netns::show(&cmd);
        cmd.output().map_err(|e| LabError::Spawn {
            command: shown,
            reason: e.to_string(),
        })
    }

    fn record_path(&self, namespace: &str, name: &str) -> PathBuf {
        self.paths().pods().join(format!("{namespace}.{name}.json"))
    }

    fn read_record(&self, namespace: &str, name: &str) -> Result<LabPod, LabError> {
        let path = self.record_path(namespace, name);
        let unknown = || LabError::UnknownPod {
            lab: self.name().to_string(),
            pod: format!("{namespace}/{name}"),
        };
        let text = fs::read_to_string(&path).map_err(|_| unknown())?;
        // An empty record is a pod still being made.
        serde_json::from_str(&text).map_err(|_| unknown())
    }

    fn probe(&self, pod: &LabPod) -> Daemon {
        let file = |ext: &str| {
            self.paths()
                .pods()
                .join(format!("{}.{}.probe.{ext}", pod.namespace, pod.name))
        };
        Daemon {
            what: format!("the probe server of pod {}", pod.id()),
            socket: None,
            log: file("log"),
            pid: file("pid"),
        }
    }
}

/// The Pod's file in the manifests folder.
fn pod_manifest_name(pod: &LabPod) -> String {
    format!("Pod.{}.{}.yaml", pod.namespace, pod.name)
}

fn remove_if_present(path: PathBuf) -> Result<(), LabError> {
    match fs::remove_file(&path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(LabError::io(&path, e)),
        _ => Ok(()),
    }
}
