// Asking the daemons what `podctl status` checks: everything from ipamd
// and the policy agent, and from bgpd its status, peers and only the routes
// the checks look at.

use super::*;

/// Asks the three daemons concurrently, then bgpd how ipamd's blocks of
/// other nodes are routed. A daemon whose setting is unusable is reported
/// like one that cannot be reached.
pub async fn gather(ctx: &Context) -> Gathered {
    let target = |d: Daemon| ctx.endpoints.target(d).map_err(|e| e.to_string());
    let (bgpd, ipamd, policy) = (
        target(Daemon::Bgpd),
        target(Daemon::Ipamd),
        target(Daemon::Policy),
    );
    let (b, i, p) = tokio::join!(
        async {
            let t = bgpd.as_ref().map_err(Clone::clone)?;
            gather_bgpd(t).await.map_err(|e| e.to_string())
        },
        async {
            let t = ipamd?;
            gather_ipamd(&t).await.map_err(|e| e.to_string())
        },
        async {
            let t = policy?;
            gather_policy(&t).await.map_err(|e| e.to_string())
        },
    );
    let b = match (b, &bgpd) {
        (Ok(mut facts), Ok(t)) => {
            let blocks = foreign_blocks(&facts, i.as_ref().ok());
            match bgp_routes(t, blocks).await {
                Ok(routes) => facts.routes = routes,
                Err(e) => facts.routes_error = Some(e.to_string()),
            }
            Ok(facts)
        }
        (b, _) => b,
    };
    Gathered {
        bgpd: b,
        ipamd: i,
        policy: p,
    }
}

async fn gather_bgpd(target: &Target) -> Result<BgpFacts, Unreachable> {
    let version = daemons::call(target, |ch| async move {
        BgpAdminClient::new(ch)
            .get_version(GetVersionRequest {})
            .await
    })
    .await?;
    let status = daemons::call(target, |ch| async move {
        BgpAdminClient::new(ch)
            .get_status(GetStatusRequest {})
            .await
    })
    .await?;
    let peers = daemons::call(target, |ch| async move {
        BgpAdminClient::new(ch)
            .list_peers(ListPeersRequest {})
            .await
    })
    .await?
    .peers;
    Ok(BgpFacts {
        version,
        status,
        peers,
        routes: Vec::new(),
        routes_error: None,
    })
}

/// The blocks check_blocks judges: another node's, announced.
fn foreign_blocks(b: &BgpFacts, i: Option<&IpamFacts>) -> Vec<String> {
    i.into_iter()
        .flat_map(|i| &i.blocks)
        .filter(|block| {
            !block.node.is_empty() && block.node != b.status.node && !block.disable_bgp_export
        })
        .map(|block| block.cidr.clone())
        .collect()
}

/// The routes status looks at, in two answers whatever the cluster's size:
/// those the kernel refused or another program shadows, and every route
/// for or covering one of `blocks`.
async fn bgp_routes(target: &Target, blocks: Vec<String>) -> Result<Vec<Route>, Unreachable> {
    daemons::call(target, |ch| async move {
        let mut client =
            BgpAdminClient::new(ch).max_decoding_message_size(crate::bgp::MAX_ROUTES_MESSAGE);
        let mut routes = client
            .list_routes(ListRoutesRequest {
                kernel_problems: true,
                ..ListRoutesRequest::default()
            })
            .await?
            .into_inner()
            .routes;
        if !blocks.is_empty() {
            let mut seen: HashSet<(String, String, u32)> = routes
                .iter()
                .map(|r| (r.prefix.clone(), r.peer.clone(), r.path_id))
                .collect();
            let covering = client
                .list_routes(ListRoutesRequest {
                    covering: blocks,
                    ..ListRoutesRequest::default()
                })
                .await?
                .into_inner()
                .routes;
            for route in covering {
                if seen.insert((route.prefix.clone(), route.peer.clone(), route.path_id)) {
                    routes.push(route);
                }
            }
        }
        Ok(tonic::Response::new(routes))
    })
    .await
}

async fn gather_ipamd(target: &Target) -> Result<IpamFacts, Unreachable> {
    let version = daemons::call(target, |ch| async move {
        IpamClient::new(ch).get_version(GetVersionRequest {}).await
    })
    .await?;
    let status = daemons::call(target, |ch| async move {
        IpamClient::new(ch).get_status(GetStatusRequest {}).await
    })
    .await?;
    let usage = daemons::call(target, |ch| async move {
        IpamClient::new(ch).usage(UsageRequest {}).await
    })
    .await?
    .pools;
    let blocks = daemons::call(target, |ch| async move {
        IpamClient::new(ch)
            .list_blocks(ListBlocksRequest::default())
            .await
    })
    .await?
    .blocks;
    Ok(IpamFacts {
        version,
        status,
        usage,
        blocks,
    })
}

async fn gather_policy(target: &Target) -> Result<PolicyFacts, Unreachable> {
    let version = daemons::call(target, |ch| async move {
        PolicyAdminClient::new(ch)
            .get_version(GetVersionRequest {})
            .await
    })
    .await?;
    let status = daemons::call(target, |ch| async move {
        PolicyAdminClient::new(ch)
            .get_status(GetStatusRequest {})
            .await
    })
    .await?;
    Ok(PolicyFacts { version, status })
}
