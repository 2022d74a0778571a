// podlab: containerlab topologies as network namespaces on this machine.
//   podlab up FILE | down FILE | status FILE | exec FILE NODE -- CMD... | check FILE
//   podlab probe serve [--ports 80,81] | probe connect [--timeout-ms 1000] TARGET...
// and, for labs with cluster nodes (LAB: the .clab.yml, or a lab name that is up):
//   podlab pod create LAB --node N --namespace X --name A [--labels k=v,..] [--port 80/TCP ..]
//   podlab pod exec LAB X/A -- CMD... | pod delete LAB X/A | pods LAB [-o json]
//   podlab apply LAB FILE.yaml | delete LAB FILE.yaml | podctl LAB NODE -- ARGS...
//   podlab stop LAB NODE bgpd|policy [--signal KILL] | start LAB NODE bgpd|policy

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use podroute_lab::lab::{check_lab_name, node_runtime, teardown};
use podroute_lab::labcluster::{LabCluster, NodeDaemon, PortSpec, labels_text, parse_labels};
use podroute_lab::probe::{self, DEFAULT_PORTS, Server, Target, WILDCARDS};
use podroute_lab::{DownOutcome, Lab, LabError, LabOptions, LabStatus, Topology, lab_status};

#[derive(Parser)]
#[command(
    name = "podlab",
    version,
    about = "containerlab topologies as network namespaces, without Docker"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Bring a lab up (a stale copy of it is removed first).
    Up {
        file: PathBuf,
        /// Run under this name instead of the file's `name`.
        #[arg(long)]
        name: Option<String>,
    },
    /// Tear a lab down: its processes, namespaces, veths and state.
    Down {
        file: PathBuf,
        #[arg(long)]
        name: Option<String>,
    },
    /// Show each node's namespace, processes and interfaces.
    Status {
        file: PathBuf,
        #[arg(long)]
        name: Option<String>,
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Run a command inside a node (vtysh and birdc reach that node's daemons).
    Exec {
        file: PathBuf,
        node: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Check a topology file without creating anything.
    Check { file: PathBuf },
    /// Reachability probes: a server to run in a pod, a client to test it.
    #[command(subcommand)]
    Probe(ProbeCmd),
    /// Pods of a lab with cluster nodes, made by the real CNI plugin.
    #[command(subcommand)]
    Pod(PodCmd),
    /// List a lab's pods: NAMESPACE NAME NODE IP LABELS PORTS.
    Pods {
        /// The .clab.yml file, or the name of a lab that is up.
        lab: String,
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Apply a multi-document YAML file: Namespaces and NetworkPolicies to
    /// the policy agents, IPPools to ipamd, BGPConfiguration, BGPPeer and
    /// Node to every bgpd. Nothing is written unless every document checks.
    Apply { lab: String, file: PathBuf },
    /// Remove the documents a file names (the reverse of apply).
    Delete { lab: String, file: PathBuf },
    /// Stop a cluster node's daemon (bgpd or policy) with a signal, as a
    /// crash (KILL) or an orderly stop (TERM) would; HUP reloads bgpd.
    Stop {
        lab: String,
        node: String,
        /// bgpd or policy
        daemon: String,
        #[arg(long, default_value = "TERM")]
        signal: String,
    },
    /// Start a stopped daemon of a cluster node again, with the command line
    /// `up` gave it; waits for its admin socket.
    Start {
        lab: String,
        node: String,
        /// bgpd or policy
        daemon: String,
    },
    /// Run podctl against a node's bgpd and policy agent and the lab's ipamd.
    Podctl {
        lab: String,
        node: String,
        #[arg(last = true, required = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum PodCmd {
    /// Make a pod on a node: CNI ADD as a runtime calls it, a probe server
    /// on its TCP/UDP ports, its Pod manifest for the policy agents.
    /// Prints its IP(s).
    Create {
        /// The .clab.yml file, or the name of a lab that is up.
        lab: String,
        #[arg(long)]
        node: String,
        #[arg(long, default_value = "default")]
        namespace: String,
        #[arg(long)]
        name: String,
        /// k=v[,k=v...]
        #[arg(long, default_value = "")]
        labels: String,
        /// A container port, PORT/PROTOCOL (TCP, UDP, SCTP); repeatable.
        #[arg(long = "port")]
        ports: Vec<String>,
    },
    /// Run a command in a pod's network namespace; its exit status is ours.
    Exec {
        lab: String,
        /// NAMESPACE/NAME
        pod: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Delete a pod: CNI DEL, its namespace and manifest removed.
    Delete {
        lab: String,
        /// NAMESPACE/NAME
        pod: String,
    },
}

#[derive(Subcommand)]
enum ProbeCmd {
    /// Accept TCP connections and echo UDP datagrams on every IPv4 and IPv6
    /// address until killed; prints {"listening":[...]} once all are bound.
    Serve {
        #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_PORTS)]
        ports: Vec<u16>,
    },
    /// Probe every target at once; one JSON line per target, in order:
    /// {"target":"tcp:10.0.0.1:80","ok":true}. UDP is ok when the echo
    /// comes back.
    Connect {
        /// How long each probe may take.
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
        /// Send a UDP probe from this port (one UDP target only): probing
        /// twice from one port is one conntrack flow.
        #[arg(long)]
        source_port: Option<u16>,
        /// tcp:IP:PORT or udp:IP:PORT (IPv6 as tcp:[fd00::1]:80).
        #[arg(required = true)]
        targets: Vec<Target>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("podlab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    if let Cmd::Up {
        name: Some(name), ..
    }
    | Cmd::Down {
        name: Some(name), ..
    }
    | Cmd::Status {
        name: Some(name), ..
    }
    | Cmd::Exec {
        name: Some(name), ..
    } = &cli.command
    {
        check_lab_name(name)?;
    }
    match cli.command {
        Cmd::Probe(cmd) => run_probe(cmd)?,
        Cmd::Pod(cmd) => return run_pod(cmd),
        Cmd::Pods { lab, output } => {
            let cluster = open_cluster(&lab)?;
            let pods = cluster.pods()?;
            match output {
                Format::Json => println!("{}", serde_json::to_string_pretty(&pods)?),
                Format::Table => {
                    let rows = pods
                        .iter()
                        .map(|p| {
                            let ips: Vec<String> = p.ips.iter().map(ToString::to_string).collect();
                            let ports: Vec<String> =
                                p.ports.iter().map(ToString::to_string).collect();
                            [
                                p.namespace.clone(),
                                p.name.clone(),
                                p.node.clone(),
                                dash(ips.join(",")),
                                dash(labels_text(&p.labels)),
                                dash(ports.join(",")),
                            ]
                        })
                        .collect::<Vec<_>>();
                    print_table(
                        ["NAMESPACE", "NAME", "NODE", "IP", "LABELS", "PORTS"],
                        &rows,
                    );
                }
            }
        }
        Cmd::Apply { lab, file } => {
            let cluster = open_cluster(&lab)?;
            for doc in cluster.apply(&file)? {
                println!("{} applied", doc.describe());
            }
        }
        Cmd::Delete { lab, file } => {
            let cluster = open_cluster(&lab)?;
            for (doc, found) in cluster.delete(&file)? {
                if found {
                    println!("{} deleted", doc.describe());
                } else {
                    println!("{} was not there", doc.describe());
                }
            }
        }
        Cmd::Stop {
            lab,
            node,
            daemon,
            signal,
        } => {
            let cluster = open_cluster(&lab)?;
            let daemon: NodeDaemon = daemon.parse()?;
            cluster.stop_daemon(&node, daemon, &signal)?;
            println!(
                "{} on {node}: sent SIG{}",
                daemon.as_str(),
                signal.trim_start_matches("SIG")
            );
        }
        Cmd::Start { lab, node, daemon } => {
            let cluster = open_cluster(&lab)?;
            let daemon: NodeDaemon = daemon.parse()?;
            cluster.start_daemon(&node, daemon)?;
            println!("{} on {node} is running", daemon.as_str());
        }
        Cmd::Podctl { lab, node, args } => {
            let cluster = open_cluster(&lab)?;
            let status = cluster
                .podctl_command(&node, &args)?
                .status()
                .context("running podctl")?;
            return Ok(exit_code(status));
        }
        Cmd::Check { file } => {
            let topo = load(&file)?;
            print_warnings(&topo);
            println!(
                "{}: lab {} is valid: {} nodes, {} links",
                file.display(),
                topo.name,
                topo.nodes.len(),
                topo.links.len()
            );
        }
        Cmd::Up { file, name } => {
            let topo = load(&file)?;
            print_warnings(&topo);
            let lab = Lab::start(
                topo,
                LabOptions {
                    name,
                    binaries: Some(binaries_dir()),
                },
            )?;
            print_status(&lab_status(lab.name(), lab.topology()));
            if let Ok(cluster) = LabCluster::from_lab(&lab, binaries_dir()) {
                println!(
                    "cluster: podroute-ipamd on {}; podroute-bgpd and podroute-policy-agent on {}; \
                     state in {}",
                    cluster.ipamd_node(),
                    cluster.nodes().join(", "),
                    cluster.paths().cluster().display()
                );
            }
            // The lab stays up after podlab exits; `podlab down` removes it.
            std::mem::forget(lab);
        }
        Cmd::Down { file, name } => {
            let (lab, nodes) = match load(&file) {
                Ok(topo) => (name.unwrap_or(topo.name), topo.nodes.into_keys().collect()),
                // A file broken since `up` must not keep a lab from coming down.
                Err(e) => {
                    let (lab, nodes) = peek(&file).with_context(|| format!("{e}"))?;
                    (name.unwrap_or(lab), nodes)
                }
            };
            match teardown(&lab, &nodes)? {
                DownOutcome::Removed => println!("lab {lab} is down"),
                DownOutcome::NotUp => println!("lab {lab} is not up; nothing to do"),
            }
        }
        Cmd::Status { file, name, output } => {
            let topo = load(&file)?;
            let status = lab_status(name.as_deref().unwrap_or(&topo.name), &topo);
            match output {
                Format::Json => println!("{}", serde_json::to_string_pretty(&status)?),
                Format::Table => print_status(&status),
            }
        }
        Cmd::Exec {
            file,
            node,
            name,
            command,
        } => {
            let topo = load(&file)?;
            let lab_name = name.unwrap_or_else(|| topo.name.clone());
            let Some(n) = topo.nodes.get(&node) else {
                anyhow::bail!(
                    "lab {lab_name} has no node `{node}` (nodes: {})",
                    topo.nodes.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            };
            let rt = node_runtime(&lab_name, &node);
            if !podroute_lab::netns::exists(&rt.netns) {
                anyhow::bail!(
                    "lab {lab_name} is not up (no namespace {}); run `podlab up {}`",
                    rt.netns,
                    file.display()
                );
            }
            let argv = n.role.rewrite_argv(&rt, &command);
            let status = podroute_lab::netns::command_in(&rt.netns, &argv)
                .envs(&n.env)
                .status()
                .with_context(|| format!("running {argv:?} in {}", rt.netns))?;
            return Ok(exit_code(status));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_pod(cmd: PodCmd) -> Result<ExitCode> {
    match cmd {
        PodCmd::Create {
            lab,
            node,
            namespace,
            name,
            labels,
            ports,
        } => {
            // Checked before the lab is looked at: a typo needs no lab.
            let labels = parse_labels(&labels)?;
            let ports = ports
                .iter()
                .map(|p| p.parse::<PortSpec>())
                .collect::<Result<Vec<_>, _>>()?;
            let cluster = open_cluster(&lab)?;
            let pod = cluster.create_pod(&node, &namespace, &name, &labels, &ports)?;
            let ips: Vec<String> = pod.ips.iter().map(ToString::to_string).collect();
            println!("{}", ips.join(" "));
        }
        PodCmd::Exec { lab, pod, command } => {
            let cluster = open_cluster(&lab)?;
            let status = cluster
                .pod_command(&pod, &command)?
                .status()
                .with_context(|| format!("running {command:?} in pod {pod}"))?;
            return Ok(exit_code(status));
        }
        PodCmd::Delete { lab, pod } => {
            let cluster = open_cluster(&lab)?;
            let deleted = cluster.delete_pod(&pod)?;
            println!("pod {} deleted", deleted.id());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The folder podlab runs from: the daemons, podctl and the CNI plugin are
/// built beside it (target/debug), else found on PATH.
fn binaries_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_default()
}

/// LAB as given: a topology file (the lab up from it, under whatever
/// name) or a lab name.
fn open_cluster(lab: &str) -> Result<LabCluster> {
    let path = Path::new(lab);
    let name = if path.is_file() {
        let file = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        match podroute_lab::lab::labs_from_file(&file).as_slice() {
            [one] => one.clone(),
            [] => {
                let topo = load(path)?;
                return Err(LabError::NotUp { lab: topo.name }.into());
            }
            many => anyhow::bail!(
                "several labs are up from {}: {}; give one's name",
                path.display(),
                many.join(", ")
            ),
        }
    } else {
        lab.to_string()
    };
    Ok(LabCluster::open(&name, binaries_dir())?)
}

/// A child's exit status as ours (a signal is 1).
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8)
}

fn dash(text: String) -> String {
    if text.is_empty() { "-".into() } else { text }
}

/// Columns padded to their widest cell.
fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let header = header.map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

fn run_probe(cmd: ProbeCmd) -> Result<()> {
    match cmd {
        ProbeCmd::Serve { mut ports } => {
            ports.sort_unstable();
            ports.dedup();
            let server = Server::bind(&WILDCARDS, &ports)?;
            let listening: Vec<String> = server
                .listening()
                .context("reading the bound addresses")?
                .iter()
                .map(Target::to_string)
                .collect();
            // One line, printed only once every socket is bound: whoever
            // started us waits for it.
            println!("{}", serde_json::json!({ "listening": listening }));
            for thread in server.spawn() {
                // The threads never end; a join returns only on a panic.
                if thread.join().is_err() {
                    anyhow::bail!("a probe server thread panicked");
                }
            }
        }
        ProbeCmd::Connect {
            timeout_ms,
            source_port,
            targets,
        } => {
            let timeout = Duration::from_millis(timeout_ms);
            let outcomes = match (source_port, targets.as_slice()) {
                (None, _) => probe::probe_all(&targets, timeout),
                (Some(port), [target]) if target.protocol == probe::Protocol::Udp => {
                    vec![probe::Outcome::new(
                        target,
                        probe::probe(target, timeout, 0, port),
                    )]
                }
                (Some(_), _) => anyhow::bail!("--source-port takes exactly one udp: target"),
            };
            for outcome in outcomes {
                println!("{}", serde_json::to_string(&outcome)?);
            }
        }
    }
    Ok(())
}

fn load(file: &Path) -> Result<Topology> {
    Ok(Topology::load(file)?)
}

/// The lab name and node names of a file that no longer checks out.
fn peek(file: &Path) -> Result<(String, Vec<String>)> {
    let text = std::fs::read_to_string(file)?;
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)?;
    let name = doc
        .get("name")
        .and_then(|n| n.as_str())
        .context("no lab name in the file")?
        .to_string();
    let nodes = doc
        .get("topology")
        .and_then(|t| t.get("nodes"))
        .and_then(|n| n.as_mapping())
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok((name, nodes))
}

fn print_warnings(topo: &Topology) {
    for w in &topo.warnings {
        eprintln!("podlab: {}: {w}", topo.file.display());
    }
}

fn print_status(status: &LabStatus) {
    println!(
        "lab {} ({}): {}",
        status.name,
        status.file,
        if status.up { "up" } else { "not up" }
    );
    let rows: Vec<[String; 5]> = status
        .nodes
        .iter()
        .map(|n| {
            let ifaces = n
                .interfaces
                .iter()
                .map(|i| {
                    let addrs = if i.addresses.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", i.addresses.join(","))
                    };
                    format!("{}({}){addrs}", i.name, i.state.to_lowercase())
                })
                .collect::<Vec<_>>()
                .join(" ");
            let procs = n
                .processes
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(",");
            [
                n.name.clone(),
                n.role.to_string(),
                if n.present {
                    n.netns.clone()
                } else {
                    "(absent)".into()
                },
                if procs.is_empty() { "-".into() } else { procs },
                if ifaces.is_empty() {
                    "-".into()
                } else {
                    ifaces
                },
            ]
        })
        .collect();
    print_table(
        ["NODE", "ROLE", "NAMESPACE", "PROCESSES", "INTERFACES"],
        &rows,
    );
}
