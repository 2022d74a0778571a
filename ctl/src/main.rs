// podctl, podroute's admin CLI: talks gRPC to the daemons on their Unix
// admin sockets, or on TCP with TLS (see ARCHITECTURE.md, "Interfaces that
// others rely on"). Commands: `podctl version`, `podctl bgp
// peers|peer|routes|route`, `podctl ipam
// pools|blocks|show|usage|check|release|pool`, `podctl policy
// endpoints|explain`, `podctl completion`, `podctl man`. Every command
// prints a table, or with `-o json|yaml` the documented schema of
// ctl/OUTPUT.md. Where the daemons are: config.rs; reaching them and
// wording failures: daemons.rs; tables, colours, durations: human.rs;
// `--watch`: watch.rs.

mod bgp;
mod completion;
mod config;
mod daemons;
mod human;
mod ipam;
mod output;
mod policy;
mod status;
mod version;
mod watch;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use podroute_proto::common::v1::AddressFamily;

use crate::config::{ConnectionArgs, Endpoints, Environment};
use crate::daemons::{Daemon, Target};
use crate::human::{ColorChoice, Style};
use crate::output::{Output, View};
use crate::watch::{Watch, WatchArgs};

#[derive(Debug, Parser)]
#[command(
    name = "podctl",
    version,
    about = "podroute's admin CLI",
    long_about = "podroute's admin CLI: BGP sessions and routes (podroute-bgpd), IP pools, blocks and addresses (podroute-ipamd), NetworkPolicy on this node (podroute-policy-agent).\n\nThe daemons are reached on their Unix sockets under /run/podroute by default, or wherever --bgpd, --ipamd and --policy (their environment variables, or the config file) say: a socket path or https://HOST:PORT with --tls-ca, --tls-cert and --tls-key.\n\nTables are for people; -o json and -o yaml print a stable schema for scripts (ctl/OUTPUT.md)."
)]
struct Cli {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Output format: a table for people, or JSON or YAML for scripts (a
    /// stable schema: ctl/OUTPUT.md).
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Colour states in tables: auto (on a terminal, unless NO_COLOR is
    /// set), always, never.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    #[command(subcommand)]
    command: Command,
}

/// podctl's commands. A new one is a variant here, a module that fetches
/// and renders (taking `Context` and a `View`), and an arm in `run`;
/// `--watch` is `WatchArgs` flattened in and `Context::watch(...).run(...)`.
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
    Status {
        #[command(flatten)]
        watch: WatchArgs,
    },
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
    /// Print a shell completion script, e.g. `podctl completion bash >
    /// /etc/bash_completion.d/podctl`.
    Completion {
        #[arg(value_enum)]
        shell: completion::Shell,
    },
    /// Print podctl's man page (roff), e.g. `podctl man >
    /// /usr/share/man/man1/podctl.1`.
    Man {
        /// Write podctl.1 and one page per command (podctl-bgp-peers.1, ...)
        /// into this directory instead.
        #[arg(long, hide = true, value_name = "DIR")]
        out_dir: Option<PathBuf>,
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

#[derive(Debug, Subcommand)]
enum BgpCommand {
    /// List BGP peers and their session state. Exits 1 if bgpd cannot be
    /// reached.
    Peers {
        #[command(flatten)]
        watch: WatchArgs,
    },
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

/// What every command runs with: where the daemons are and how to print.
#[derive(Debug, Clone)]
pub struct Context {
    pub endpoints: Endpoints,
    pub view: View,
    /// Standard output is a terminal (`--watch` redraws in place).
    pub terminal: bool,
}

impl Context {
    /// Where `daemon` is; an unusable setting is an error that names it.
    pub fn target(&self, daemon: Daemon) -> anyhow::Result<Target> {
        Ok(self.endpoints.target(daemon)?)
    }

    /// A `--watch` of the command `title` at `interval`.
    pub fn watch(&self, title: &str, interval: std::time::Duration) -> Watch {
        Watch {
            title: title.to_owned(),
            interval,
            terminal: self.terminal,
            output: self.view.output,
            style: self.view.style,
        }
    }
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
    // These need no daemon and no settings.
    match &cli.command {
        Command::Completion { shell } => {
            let script = completion::completion(*shell, Cli::command());
            return Ok(String::from_utf8(script)?.into());
        }
        Command::Man { out_dir: None } => {
            return Ok(String::from_utf8(completion::man_page(Cli::command())?)?.into());
        }
        Command::Man { out_dir: Some(dir) } => {
            let written = completion::man_pages(Cli::command(), dir)?;
            let list: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
            return Ok(format!("{}\n", list.join("\n")).into());
        }
        _ => {}
    }
    let ctx = Context {
        endpoints: Endpoints::resolve(&cli.connection, &Environment::process())?,
        view: View {
            output: cli.output,
            style: Style::for_stdout(cli.color),
        },
        terminal: std::io::stdout().is_terminal(),
    };
    let view = ctx.view;
    let text = match cli.command {
        Command::Completion { .. } | Command::Man { .. } => String::new(),
        Command::Version => {
            let report = version::collect(&ctx).await;
            version::render(&report, view)?
        }
        Command::Status {
            watch: WatchArgs {
                watch: Some(interval),
            },
        } => {
            let ctx = &ctx;
            ctx.watch("podctl status", interval)
                .run(move || async move {
                    let report = status::report(status::gather(ctx).await);
                    Ok(status::render(&report, view)?)
                })
                .await?;
            String::new()
        }
        Command::Status { .. } => {
            let report = status::report(status::gather(&ctx).await);
            return Ok(Outcome {
                text: status::render(&report, view)?,
                failed: !report.problems.is_empty(),
            });
        }
        Command::Bgp { command } => {
            let bgpd = ctx.target(Daemon::Bgpd)?;
            match command {
                BgpCommand::Peers {
                    watch:
                        WatchArgs {
                            watch: Some(interval),
                        },
                } => {
                    let bgpd = &bgpd;
                    ctx.watch("podctl bgp peers", interval)
                        .run(move || async move {
                            Ok(bgp::render_peers(&bgp::peers(bgpd).await?, view)?)
                        })
                        .await?;
                    String::new()
                }
                BgpCommand::Peers { .. } => bgp::render_peers(&bgp::peers(&bgpd).await?, view)?,
                BgpCommand::Peer { address } => {
                    bgp::render_peer(&bgp::peer(&bgpd, &address).await?, view)?
                }
                BgpCommand::Route { prefix } => {
                    bgp::render_route(&bgp::route(&bgpd, &prefix).await?, view)?
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
                    bgp::render_routes(&bgp::routes(&bgpd, query).await?, view)?
                }
            }
        }
        Command::Ipam { command } => {
            return ipam::run(&ctx.target(Daemon::Ipamd)?, command, view).await;
        }
        Command::Policy { command } => {
            let agent = ctx.target(Daemon::Policy)?;
            match command {
                PolicyCommand::Endpoints => {
                    policy::render_endpoints(&policy::endpoints(&agent).await?, view)?
                }
                PolicyCommand::Explain { from, to, port } => policy::render_explanation(
                    &policy::explain(&agent, &from, &to, port).await?,
                    view,
                )?,
            }
        }
    };
    Ok(text.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn watch_takes_an_optional_interval() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|cli| cli.command);
        let interval = |args: &[&str]| match parse(args) {
            Ok(Command::Bgp {
                command: BgpCommand::Peers { watch },
            }) => watch.watch,
            other => panic!("{other:?}"),
        };
        assert_eq!(interval(&["podctl", "bgp", "peers"]), None);
        assert_eq!(
            interval(&["podctl", "bgp", "peers", "--watch"]),
            Some(std::time::Duration::from_secs(2))
        );
        assert_eq!(
            interval(&["podctl", "bgp", "peers", "--watch", "5"]),
            Some(std::time::Duration::from_secs(5))
        );
        assert_eq!(
            interval(&["podctl", "bgp", "peers", "--watch", "-o", "json"]),
            Some(std::time::Duration::from_secs(2))
        );
    }

    /// Every command's full name: "podctl bgp peers", ...
    fn command_names() -> Vec<String> {
        let mut cmd = Cli::command();
        cmd.build();
        completion::every_command(&cmd)
            .into_iter()
            .map(|c| c.get_bin_name().unwrap_or(c.get_name()).to_owned())
            .collect()
    }

    #[test]
    fn completions_know_every_command() {
        let names = command_names();
        assert!(names.contains(&"podctl bgp peers".to_owned()), "{names:?}");
        assert!(
            names.contains(&"podctl ipam pool create".to_owned()),
            "{names:?}"
        );
        for shell in [
            completion::Shell::Bash,
            completion::Shell::Zsh,
            completion::Shell::Fish,
        ] {
            let script = String::from_utf8(completion::completion(shell, Cli::command())).unwrap();
            for name in &names {
                let last = name.rsplit(' ').next().unwrap();
                assert!(script.contains(last), "{shell:?} completion lacks {name}");
            }
        }
        let bash = String::from_utf8(completion::completion(
            completion::Shell::Bash,
            Cli::command(),
        ))
        .unwrap();
        // bash names each state by the command path.
        for name in &names {
            let state = name.split(' ').collect::<Vec<_>>().join("__subcmd__");
            assert!(
                bash.contains(&state),
                "bash completion lacks {name} ({state})"
            );
        }
        assert!(bash.contains("--watch"));
        assert!(bash.contains("--tls-ca"));
    }

    #[test]
    fn the_man_page_has_every_command() {
        let page = String::from_utf8(completion::man_page(Cli::command()).unwrap()).unwrap();
        assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{page}");
        assert_eq!(page.matches(".ds Aq").count(), 2, "one preamble");
        for section in [
            "NAME",
            "SYNOPSIS",
            "OPTIONS",
            "COMMANDS",
            "ENVIRONMENT",
            "FILES",
        ] {
            assert!(page.contains(&format!(".SH {section}")), "no {section}");
        }
        for name in command_names() {
            assert!(
                page.contains(&format!(".SS \"{name}\""))
                    || page.contains(&format!(".SS {name}\n")),
                "no section for {name}"
            );
        }
        assert!(page.contains("PODROUTE_BGPD_SOCKET"));
        // Global options are documented once, in OPTIONS, and --help not
        // at all below it.
        assert_eq!(
            page.matches(".TP\n\\fB\\-\\-tls\\-ca\\fR").count(),
            1,
            "{page}"
        );
        let commands = &page[page.find(".SH COMMANDS").unwrap()..];
        assert!(!commands.contains("\\-\\-help"), "{commands}");
        assert!(commands.contains("\\fB\\-\\-watch\\fR"), "{commands}");
    }

    #[test]
    fn man_pages_per_command() {
        let dir = tempfile::tempdir().unwrap();
        let written = completion::man_pages(Cli::command(), dir.path()).unwrap();
        assert!(written.contains(&dir.path().join("podctl.1")));
        assert!(written.contains(&dir.path().join("podctl-bgp-peers.1")));
        for file in &written {
            assert!(file.is_file(), "{} not written", file.display());
        }
    }
}
