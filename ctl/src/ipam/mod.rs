// `podctl ipam ...`: podroute-ipamd's pools, blocks and addresses over its
// admin socket or TCP API (proto/proto/ipam.proto). `pools`, `blocks`, `usage` and
// `show` look; `check` reports inconsistencies (exit 1 when any); `release`
// and `pool create|delete` change state. Every command takes `-o json` and
// `-o yaml`, whose schema is documented in ctl/OUTPUT.md.

mod blocks;
mod check;
mod errors;
mod manifest;
mod pool;
mod pools;
mod release;
mod show;

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use podroute_proto::ipam::v1::ipam_client::IpamClient;
use podroute_proto::ipam::v1::{
    CheckRequest, CreatePoolRequest, DeletePoolRequest, ListBlocksRequest, ListPoolsRequest,
    ReleaseRequest, ShowAddressRequest, UsageRequest,
};
use tonic::transport::Channel;
use tonic::{Response, Status};

use crate::Outcome;
use crate::daemons::{self, Target};
use crate::human;
use crate::output::View;

use errors::{Action, IpamError};

#[derive(Debug, Subcommand)]
pub enum IpamCommand {
    /// List the IP pools: their spec and how many addresses are allocated.
    Pools,
    /// List the address blocks: the node each is affine to, how full it
    /// is, and how long an empty one has been empty.
    Blocks {
        /// Only the blocks affine to this node.
        #[arg(long, value_name = "NODE")]
        node: Option<String>,
    },
    /// Who holds one address (handle, pod, node, block, pool), or why it
    /// is free.
    Show {
        /// The address, e.g. 10.244.3.7 (or 10.244.3.7/32).
        #[arg(long, value_name = "ADDRESS", value_parser = show::parse_address)]
        ip: IpAddr,
    },
    /// Per pool: addresses allocated, cooling down, reserved and free, and
    /// blocks claimed.
    Usage,
    /// Check IPAM's records for consistency, as `calicoctl ipam check`.
    /// Exits 1 when it finds a problem.
    Check {
        /// A node known to exist (repeat the flag for each); blocks and
        /// allocations of any other node are reported.
        #[arg(long = "node", value_name = "NODE", value_delimiter = ',')]
        nodes: Vec<String>,
    },
    /// Free every address an allocation handle holds, as the CNI plugin's
    /// DEL does. A handle that holds nothing frees nothing and exits 0.
    Release {
        /// The allocation handle, as `podctl ipam show --ip` names it.
        #[arg(long, value_name = "HANDLE")]
        handle: String,
    },
    /// Create or delete an IP pool.
    Pool {
        #[command(subcommand)]
        command: PoolCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Create an IP pool from flags, or from an IPPool manifest with -f.
    /// Creating a pool identical to an existing one succeeds.
    Create(CreateArgs),
    /// Delete an IP pool and its empty blocks; refused while any of its
    /// addresses is held.
    Delete {
        /// The pool's name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The pool's name (a DNS-1123 subdomain, e.g. default-ipv4).
    #[arg(required_unless_present = "file")]
    name: Option<String>,
    /// The pool's range, e.g. 10.244.0.0/16 or fd00:10:244::/56.
    #[arg(long, value_name = "CIDR", required_unless_present = "file")]
    cidr: Option<String>,
    /// Prefix length of the blocks handed to nodes [default: 26 for IPv4,
    /// 122 for IPv6].
    #[arg(long, value_name = "PREFIX_LEN", value_parser = clap::value_parser!(u32).range(1..=128))]
    block_size: Option<u32>,
    /// Kubernetes label selector of the nodes that take addresses from the
    /// pool, e.g. "zone in (a,b)" [default: every node].
    #[arg(long, value_name = "SELECTOR")]
    node_selector: Option<String>,
    /// Create the pool disabled: it hands out no new addresses.
    #[arg(long)]
    disabled: bool,
    /// Do not announce the pool's blocks over BGP.
    #[arg(long = "disable-bgp-export")]
    disable_bgp_export: bool,
    /// Ranges inside the pool never handed out (repeat, or give several).
    #[arg(long, value_name = "CIDR", num_args = 1.., value_delimiter = ',')]
    reserved: Vec<String>,
    /// Read the pool from an IPPool manifest (YAML, apiVersion
    /// podroute.io/v1) instead of the flags; "-" reads standard input.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE.yaml",
        conflicts_with_all = ["name", "cidr", "block_size", "node_selector", "disabled", "disable_bgp_export", "reserved"]
    )]
    file: Option<PathBuf>,
}

/// Runs one `podctl ipam` command against ipamd at `ipamd`.
pub async fn run(ipamd: &Target, command: IpamCommand, view: View) -> anyhow::Result<Outcome> {
    let now_ms = human::now_unix_ms();
    Ok(match command {
        IpamCommand::Pools => {
            let (pools, usage) = call(ipamd, Action::ListPools, |mut c| async move {
                let pools = c.list_pools(ListPoolsRequest {}).await?.into_inner();
                let usage = c.usage(UsageRequest {}).await?.into_inner();
                Ok(Response::new((pools, usage)))
            })
            .await?;
            let report = pools::pools_report(pools.pools, &usage.pools);
            pools::render_pools(&report, view)?.into()
        }
        IpamCommand::Usage => {
            let usage = call(ipamd, Action::Usage, |mut c| async move {
                c.usage(UsageRequest {}).await
            })
            .await?;
            pools::render_usage(&pools::usage_report(usage.pools), view)?.into()
        }
        IpamCommand::Blocks { node } => {
            let request = ListBlocksRequest {
                node: node.clone().unwrap_or_default(),
            };
            let response = call(ipamd, Action::ListBlocks, |mut c| async move {
                c.list_blocks(request).await
            })
            .await?;
            let report = blocks::BlocksReport {
                blocks: response
                    .blocks
                    .into_iter()
                    .map(|b| blocks::BlockView::new(b, now_ms))
                    .collect(),
                node,
            };
            blocks::render_blocks(&report, view)?.into()
        }
        IpamCommand::Show { ip } => {
            let request = ShowAddressRequest {
                address: ip.to_string(),
            };
            let response = call(
                ipamd,
                Action::ShowAddress(ip.to_string()),
                |mut c| async move { c.show_address(request).await },
            )
            .await?;
            let address = show::AddressView::new(ip, response, now_ms);
            show::render_address(&address, view, now_ms)?.into()
        }
        IpamCommand::Check { nodes } => {
            let request = CheckRequest { known_nodes: nodes };
            let response = call(ipamd, Action::Check, |mut c| async move {
                c.check(request).await
            })
            .await?;
            let report = check::CheckReport::from(response);
            Outcome {
                text: check::render_check(&report, view)?,
                failed: !report.ok,
            }
        }
        IpamCommand::Release { handle } => {
            let request = ReleaseRequest {
                handle: handle.clone(),
            };
            let response = call(ipamd, Action::Release(handle.clone()), |mut c| async move {
                c.release(request).await
            })
            .await?;
            release::render_release(&release::ReleaseView::new(handle, response), view)?.into()
        }
        IpamCommand::Pool {
            command: PoolCommand::Create(args),
        } => {
            let pool = match args.file {
                Some(path) => manifest::read(&path)?,
                None => pool::PoolFlags {
                    name: args.name.unwrap_or_default(),
                    cidr: args.cidr.unwrap_or_default(),
                    block_size: args.block_size,
                    node_selector: args.node_selector,
                    disabled: args.disabled,
                    disable_bgp_export: args.disable_bgp_export,
                    reserved: args.reserved,
                }
                .into(),
            };
            let action = Action::CreatePool(pool.name.clone());
            let request = CreatePoolRequest { pool: Some(pool) };
            let created = call(ipamd, action, |mut c| async move {
                c.create_pool(request).await
            })
            .await?;
            let created = pool::CreatedView {
                pool: pools::PoolView::from(created),
            };
            pool::render_created(&created, view)?.into()
        }
        IpamCommand::Pool {
            command: PoolCommand::Delete { name },
        } => {
            let request = DeletePoolRequest { name: name.clone() };
            let response = call(
                ipamd,
                Action::DeletePool(name.clone()),
                |mut c| async move { c.delete_pool(request).await },
            )
            .await?;
            let deleted = pool::DeletedView {
                pool: name,
                blocks_removed: response.blocks_removed,
            };
            pool::render_deleted(&deleted, view)?.into()
        }
    })
}

/// One call (or a few on one connection) to ipamd, its failure worded for
/// `action`.
async fn call<T, F, Fut>(ipamd: &Target, action: Action, f: F) -> Result<T, IpamError>
where
    F: FnOnce(IpamClient<Channel>) -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    daemons::call(ipamd, |channel| f(IpamClient::new(channel)))
        .await
        .map_err(|error| IpamError::new(action, error))
}
