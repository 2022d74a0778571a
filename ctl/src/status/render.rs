// `podctl status` printed: the documented JSON or YAML, or one screen for
// people.

use super::*;

/// Problems listed in full; beyond that, a count.
const MAX_PROBLEMS: usize = 20;

/// Denials listed under the Policy line of the table; -o json lists all.
const MAX_DENIALS_SHOWN: usize = 10;

/// The table's lines for the pods policy dropped packets of, recent or
/// not: "  dropped: shop/db ingress 7 packets, 2 in the last 5 minutes,
/// last 3s ago (isolated by shop/x)".
fn denial_lines(p: &PolicyView) -> String {
    let mut out = String::new();
    for d in p.denials.iter().take(MAX_DENIALS_SHOWN) {
        let mut line = format!("  dropped: {} {} {} packets", d.pod, d.direction, d.packets);
        if d.recent_packets > 0 {
            line.push_str(&format!(", {} in the last 5 minutes", d.recent_packets));
        }
        match d.last_drop_s_ago {
            Some(ago) => line.push_str(&format!(", last {} ago", human::duration(ago))),
            None => line.push_str(", none seen since the agent started"),
        }
        out.push_str(&format!("{line} (isolated by {})\n", d.policies.join(", ")));
    }
    if p.denials.len() > MAX_DENIALS_SHOWN {
        out.push_str(&format!(
            "  ... and {} more (-o json lists all)\n",
            p.denials.len() - MAX_DENIALS_SHOWN
        ));
    }
    out
}

/// Renders the report.
pub fn render(report: &StatusReport, view: View) -> Result<String, RenderError> {
    if let Some(text) = view.structured(report)? {
        return Ok(text);
    }
    let style = view.style;
    let mut out = String::new();
    let title = if report.node.is_empty() {
        "podroute".to_string()
    } else {
        format!("podroute on node {}", report.node)
    };
    out.push_str(&title);
    if let Some(b) = &report.bgp {
        out.push_str(&format!(", AS {}, router ID {}", b.local_asn, b.router_id));
    }
    out.push_str("\n\n");
    let rows: Vec<Vec<String>> = report
        .daemons
        .iter()
        .map(|d| {
            vec![
                d.daemon.clone(),
                style.paint(
                    &d.state,
                    if d.state == "ready" {
                        Tone::Good
                    } else {
                        Tone::Bad
                    },
                ),
                if d.version.is_empty() {
                    "-".into()
                } else {
                    d.version.clone()
                },
                if d.state == "unreachable" {
                    "-".into()
                } else {
                    human::duration(d.uptime_s)
                },
                if d.metrics_address.is_empty() {
                    "-".into()
                } else {
                    d.metrics_address.clone()
                },
            ]
        })
        .collect();
    out.push_str(&human::table(
        &["DAEMON", "STATE", "VERSION", "UPTIME", "METRICS"],
        &rows,
    ));
    if let Some(b) = &report.bgp {
        out.push('\n');
        let kernel = if b.kernel_enabled {
            format!(
                "{} routes of ours in kernel table {} ({} pending, {} refused)",
                b.kernel_installed, b.kernel_table, b.kernel_pending, b.kernel_failed
            )
        } else {
            "kernel routes off (--no-kernel)".to_string()
        };
        out.push_str(&format!(
            "BGP: {} of {} sessions Established; {kernel}\n",
            b.sessions_established, b.sessions_configured
        ));
        if !b.peers.is_empty() {
            let rows: Vec<Vec<String>> = b
                .peers
                .iter()
                .map(|p| {
                    vec![
                        p.peer.clone(),
                        p.name.clone(),
                        p.asn.to_string(),
                        style.state(&p.state),
                        format!("{}/{}", p.prefixes_accepted, p.prefixes_sent),
                        if p.state == "Established" {
                            String::new()
                        } else {
                            p.last_error.clone()
                        },
                    ]
                })
                .collect();
            out.push_str(&indent(&human::table(
                &["PEER", "NAME", "AS", "STATE", "IN/OUT", "LAST ERROR"],
                &rows,
            )));
        }
        if !b.originated.is_empty() {
            out.push_str(&format!("  announcing: {}\n", b.originated.join(", ")));
        }
    }
    if let Some(i) = &report.ipam {
        out.push('\n');
        out.push_str(&format!("IPAM: {}\n", i.store));
        for p in &i.pools {
            out.push_str(&format!(
                "  pool {} {}: {} of {} addresses, {} of {} blocks claimed\n",
                p.pool, p.cidr, p.allocated, p.capacity, p.blocks_claimed, p.blocks_total
            ));
        }
        if !i.node_blocks.is_empty() {
            out.push_str(&format!(
                "  this node's blocks: {}\n",
                i.node_blocks.join(", ")
            ));
        }
    }
    if let Some(p) = &report.policy {
        out.push('\n');
        let synced = match p.last_sync_s_ago {
            Some(ago) => format!(
                "synced {} ago in {} ms",
                human::duration(ago),
                p.last_sync_duration_ms
            ),
            None => "not synced yet".to_string(),
        };
        out.push_str(&format!(
            "Policy: {synced}; {} policies, {} endpoints here ({} isolated), {} rules, {} ipset members\n",
            p.policies, p.endpoints, p.isolated_endpoints, p.rules, p.ipset_members
        ));
        out.push_str(&denial_lines(p));
    }
    out.push('\n');
    if report.problems.is_empty() {
        out.push_str(&style.paint("No problems found.", Tone::Good));
        out.push('\n');
    } else {
        let header = format!("Problems ({}):", report.problems.len());
        out.push_str(&style.paint(&header, Tone::Bad));
        out.push('\n');
        for p in report.problems.iter().take(MAX_PROBLEMS) {
            out.push_str(&format!("  [{}] {}\n", p.area, p.message));
            if !p.hint.is_empty() {
                out.push_str(&format!("      -> {}\n", p.hint));
            }
        }
        if report.problems.len() > MAX_PROBLEMS {
            out.push_str(&format!(
                "  ... and {} more (-o json lists all)\n",
                report.problems.len() - MAX_PROBLEMS
            ));
        }
    }
    Ok(out)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
