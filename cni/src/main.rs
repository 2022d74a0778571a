// podroute-cni's entry point. Run by a container runtime (no arguments) it
// hands the environment and stdin to the library's dispatcher, prints its
// answer on stdout, and exits 0 on success, 1 after a CNI error result (CNI
// spec 1.1, "Error"). `podroute-cni install ...` is the DaemonSet's init
// step: it copies this binary and writes the network configuration list.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use podroute_cni::config::{DEFAULT_IPAMD_ENDPOINT, Family};
use podroute_cni::install::{ConflistOptions, InstallOptions, install};

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some() {
        return install_command();
    }
    let outcome = podroute_cni::run(
        &|name| std::env::var(name).ok(),
        &mut std::io::stdin().lock(),
    );
    let mut stdout = std::io::stdout().lock();
    let written = if outcome.stdout.is_empty() {
        Ok(())
    } else {
        writeln!(stdout, "{}", outcome.stdout).and_then(|()| stdout.flush())
    };
    if outcome.success && written.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `podroute-cni install`: what the DaemonSet's init container runs.
#[derive(Debug, Parser)]
#[command(name = "podroute-cni", version, about = "podroute's CNI 1.1 plugin")]
enum Cli {
    /// Copy this binary into the CNI bin folder and write 10-podroute.conflist,
    /// both atomically; other plugins' files are left alone.
    Install(InstallArgs),
}

#[derive(Debug, clap::Args)]
struct InstallArgs {
    /// Where runtimes look for plugin binaries.
    #[arg(long, default_value = "/opt/cni/bin")]
    bin_dir: PathBuf,
    /// Where runtimes look for network configurations.
    #[arg(long, default_value = "/etc/cni/net.d")]
    conf_dir: PathBuf,
    /// The conflist's cniVersion: 1.1.0, or 1.0.0 for runtimes on libcni
    /// before 1.2 (containerd 1.7).
    #[arg(long, default_value = podroute_cni::CURRENT_VERSION)]
    cni_version: String,
    /// Network name in the conflist.
    #[arg(long, default_value = "podroute")]
    network: String,
    /// podroute-ipamd: unix:///path or https://host:port.
    #[arg(long, default_value = DEFAULT_IPAMD_ENDPOINT)]
    ipamd_endpoint: String,
    /// Client certificate (PEM) for https endpoints: CN system:node:NAME,
    /// or the nodes' shared certificate of ipamd --tls-secret.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// CA (PEM) that signed ipamd's certificate.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// This node's name (the DaemonSet passes spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
    /// File the plugin reads the node name from when --node-name is not set.
    #[arg(long)]
    node_name_file: Option<PathBuf>,
    /// Pod interface MTU; 0 takes the node's uplink MTU at each ADD.
    #[arg(long, default_value_t = 0)]
    mtu: u32,
    /// Address families to give pods (ipv4, ipv6); none: what the pools offer.
    #[arg(long = "family", value_parser = parse_family)]
    families: Vec<Family>,
    /// Invocation log file.
    #[arg(long)]
    log_file: Option<PathBuf>,
}

fn parse_family(s: &str) -> Result<Family, String> {
    match s {
        "ipv4" => Ok(Family::Ipv4),
        "ipv6" => Ok(Family::Ipv6),
        other => Err(format!("{other:?}: expected ipv4 or ipv6")),
    }
}

fn install_command() -> ExitCode {
    let Cli::Install(args) = Cli::parse();
    let source_binary = match std::env::current_exe() {
        Ok(path) => path,
        Err(e) => {
            eprintln!("podroute-cni install: cannot find this binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = InstallOptions {
        bin_dir: args.bin_dir,
        conf_dir: args.conf_dir,
        source_binary,
        conflist: ConflistOptions {
            cni_version: args.cni_version,
            network: args.network,
            ipamd_endpoint: args.ipamd_endpoint,
            tls_cert: args.tls_cert,
            tls_key: args.tls_key,
            tls_ca: args.tls_ca,
            node_name: args.node_name,
            node_name_file: args.node_name_file,
            mtu: args.mtu,
            families: args.families,
            log_file: args.log_file,
        },
    };
    match install(&options) {
        Ok(report) => {
            let said = |changed: bool| if changed { "written" } else { "unchanged" };
            println!(
                "{} {}\n{} {}",
                report.binary.display(),
                said(report.binary_changed),
                report.conflist.display(),
                said(report.conflist_changed)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("podroute-cni install: {e}");
            ExitCode::FAILURE
        }
    }
}
