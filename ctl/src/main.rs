// podctl, podroute's admin CLI: talks gRPC to the daemons over their Unix
// admin sockets (see ARCHITECTURE.md, "Interfaces that others rely on").
// Commands so far: `podctl version`, `podctl bgp peers|peer|routes|route`,
// `podctl ipam pools|blocks|show|usage|check|release|pool`,
// `podctl policy endpoints|explain`; `-o json` on all.

mod bgp;
mod daemons;
mod format;
mod ipam;
mod policy;
mod status;
mod table;
mod version;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use podroute_proto::common::v1::AddressFamily;

use crate::daemons::Daemon;

#[derive(Debug, Parser)]
#[command(name = "podctl", version, about = "podroute's admin CLI")]
struct Cli {
    /// podroute-bgpd's admin socket.
    #[arg(long, global = true, env = "PODROUTE_BGPD_SOCKET", default_value = podroute_proto::BGPD_SOCKET)]
    bgpd: PathBuf,
    /// podroute-ipamd's admin socket.
    #[arg(long, global = true, env = "PODROUTE_IPAMD_SOCKET", default_value = podroute_proto::IPAMD_SOCKET)]
    ipamd: PathBuf,
    /// podroute-policy-agent's admin socket.
    #[arg(long, global = true, env = "PODROUTE_POLICY_SOCKET", default_value = podroute_proto::POLICY_SOCKET)]
    policy: PathBuf,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show podctl's version and each daemon's (or why it cannot be asked).
    /// Always exits 0; the STATUS column tells which daemons answered.
    Version,
    /// One screen for this node: each daemon up or not, BGP sessions,
    /// kernel routes, IPAM usage, policy sync, and every problem found
    /// (a session down, a pod block with no route or not in the kernel,
    /// packets policy dropped and which policies isolate the pod).
    /// Exits 1 when it lists problems.
    Status,
    /// Inspect podroute-bgpd.
    Bgp {
        #[command(subcommand)]
        command: BgpCommand,
    },
    /// Inspect and manage podroute-ipamd: pools, blocks, addresses.
    Ipam {
        #[command(subcommand)]
        command: ipam::IpamCommand,
    },
    /// Inspect podroute-policy-agent: what NetworkPolicy enforces here.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// This node's pods: addresses, whether policy isolates them for
    /// ingress and egress, and by which policies.
    Endpoints,
    /// Whether a connection is allowed, and by which policy and rule (or
    /// which policies deny it).
    Explain {
        /// The client: namespace/pod or an IP address.
        #[arg(long)]
        from: String,
        /// The server: namespace/pod or an IP address.
        #[arg(long)]
        to: String,
        /// PORT/PROTOCOL, e.g. 80/TCP or 53/UDP (TCP when left out).
        #[arg(long, value_parser = policy::parse_port)]
        port: (u16, podroute_proto::policy::v1::Protocol),
    },
}

/// What a command prints on standard output, and whether it found
/// something wrong (`podctl ipam check` with problems): then podctl exits 1
/// after printing.
#[derive(Debug)]
pub struct Outcome {
    pub text: String,
    pub failed: bool,
}

impl From<String> for Outcome {
    fn from(text: String) -> Self {
        Outcome {
            text,
            failed: false,
        }
    }
}

#[derive(Debug, Subcommand)]
enum BgpCommand {
    /// List BGP peers and their session state. Exits 1 if bgpd cannot be
    /// reached.
    Peers,
    /// One peer in detail: capabilities, timers, counters, last error.
    Peer {
        /// The peer's address (its BGPPeer's peerIP).
        address: String,
    },
    /// The Loc-RIB like `show ip bgp`: every path of every prefix, best
    /// first, with status codes and whether the kernel holds the route.
    /// With --peer, the routes received from that peer (or advertised to
    /// it with --advertised) instead.
    Routes {
        /// Only the route for this prefix (or address), or else the
        /// longest prefix covering it.
        #[arg(long)]
        prefix: Option<String>,
        /// A peer's Adj-RIB-In (or Adj-RIB-Out) instead of the Loc-RIB.
        #[arg(long)]
        peer: Option<String>,
        /// Routes sent to the peer instead of received from it.
        #[arg(long, requires = "peer")]
        advertised: bool,
        /// Only IPv4 routes.
        #[arg(short = '4', long, conflicts_with = "ipv6")]
        ipv4: bool,
        /// Only IPv6 routes.
        #[arg(short = '6', long)]
        ipv6: bool,
    },
    /// Every path of one prefix in detail, like `show ip bgp PREFIX`: its
    /// attributes, flags, resolved next hops, kernel state, and why the
    /// best path won (or each other path lost).
    Route {
        /// A prefix or address; the longest prefix covering it is shown.
        prefix: String,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(outcome) => match std::io::stdout().lock().write_all(outcome.text.as_bytes()) {
            Ok(()) if outcome.failed => ExitCode::FAILURE,
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("podctl: cannot write output: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("podctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let text = match cli.command {
        Command::Version => {
            let sockets = Daemon::ALL.map(|d| {
                let path = match d {
                    Daemon::Bgpd => cli.bgpd.clone(),
                    Daemon::Ipamd => cli.ipamd.clone(),
                    Daemon::Policy => cli.policy.clone(),
                };
                (d, path)
            });
            let report = version::collect(&sockets).await;
            version::render(&report, cli.output)?
        }
        Command::Status => {
            let gathered = status::gather(&cli.bgpd, &cli.ipamd, &cli.policy).await;
            let report = status::report(gathered);
            return Ok(Outcome {
                text: status::render(&report, cli.output)?,
                failed: !report.problems.is_empty(),
            });
        }
        Command::Bgp { command } => match command {
            BgpCommand::Peers => bgp::render_peers(&bgp::peers(&cli.bgpd).await?, cli.output)?,
            BgpCommand::Peer { address } => {
                bgp::render_peer(&bgp::peer(&cli.bgpd, &address).await?, cli.output)?
            }
            BgpCommand::Route { prefix } => {
                bgp::render_route(&bgp::route(&cli.bgpd, &prefix).await?, cli.output)?
            }
            BgpCommand::Routes {
                prefix,
                peer,
                advertised,
                ipv4,
                ipv6,
            } => {
                let family = match (ipv4, ipv6) {
                    (true, _) => Some(AddressFamily::Ipv4),
                    (_, true) => Some(AddressFamily::Ipv6),
                    _ => None,
                };
                let query = bgp::RoutesQuery {
                    prefix,
                    peer,
                    advertised,
                    family,
                };
                bgp::render_routes(&bgp::routes(&cli.bgpd, query).await?, cli.output)?
            }
        },
        Command::Ipam { command } => return ipam::run(&cli.ipamd, command, cli.output).await,
        Command::Policy { command } => match command {
            PolicyCommand::Endpoints => {
                policy::render_endpoints(&policy::endpoints(&cli.policy).await?, cli.output)?
            }
            PolicyCommand::Explain { from, to, port } => policy::render_explanation(
                &policy::explain(&cli.policy, &from, &to, port).await?,
                cli.output,
            )?,
        },
    };
    Ok(text.into())
}
