// Connection tracking entries through the conntrack tool: listing the flows
// the kernel tracks (their original direction) and deleting one, so that a
// connection a new policy forbids does not live on as ESTABLISHED.

use std::net::IpAddr;

use super::runner::{RunError, Runner};
use crate::render::dataplane::Family;

/// IANA protocol numbers the tool names.
const ICMP: u8 = 1;
const TCP: u8 = 6;
const UDP: u8 = 17;
const DCCP: u8 = 33;
const GRE: u8 = 47;
const ICMPV6: u8 = 58;
const SCTP: u8 = 132;
const UDPLITE: u8 = 136;

/// One tracked flow, in its original direction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConntrackFlow {
    pub family: Family,
    /// IANA protocol number: 6 tcp, 17 udp, 132 sctp, 1 icmp, 58 icmpv6.
    pub protocol: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// For protocols with ports (tcp, udp, sctp, dccp, udplite).
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// Where the flow really goes: the reply direction's source and source
    /// port, which differ from `dst`/`dport` when the flow was DNATed (a
    /// Service). Filter rules in FORWARD see this destination.
    pub served_by: IpAddr,
    pub served_port: Option<u16>,
    /// The entry has seen a reply and (TCP) is not closing: a packet of it
    /// would pass as ESTABLISHED. Only these need cutting when policy
    /// changes; an unreplied entry's next packet is judged as NEW anyway.
    pub live: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    #[error(transparent)]
    Run(#[from] RunError),

    #[error("cannot read a line of `{command}`: {reason}: {line}")]
    Parse {
        command: String,
        line: String,
        reason: String,
    },
}

/// Every flow of `family` the kernel tracks (in the runner's namespace).
pub fn list(runner: &Runner, family: Family) -> Result<Vec<ConntrackFlow>, ConntrackError> {
    let args = ["-L", "-f", family_arg(family), "-o", "extended"];
    let out = runner.run("conntrack", &args, None)?;
    out.stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            parse_line(line).map_err(|reason| ConntrackError::Parse {
                command: runner.show("conntrack", &args),
                line: line.to_string(),
                reason,
            })
        })
        .collect()
}

/// Deletes the entries whose original direction is `flow`; returns how
/// many went. None left is no error: the flow may have ended meanwhile.
pub fn delete(runner: &Runner, flow: &ConntrackFlow) -> Result<usize, ConntrackError> {
    let protocol = protocol_arg(flow.protocol);
    let (src, dst) = (flow.src.to_string(), flow.dst.to_string());
    let (sport, dport) = (
        flow.sport.map(|p| p.to_string()),
        flow.dport.map(|p| p.to_string()),
    );
    let mut args = vec![
        "-D",
        "-f",
        family_arg(flow.family),
        "-p",
        &protocol,
        "-s",
        &src,
        "-d",
        &dst,
    ];
    if let Some(sport) = &sport {
        args.extend(["--sport", sport]);
    }
    if let Some(dport) = &dport {
        args.extend(["--dport", dport]);
    }
    let out = runner.output("conntrack", &args, None)?;
    let deleted = deleted_count(&out.stderr);
    // conntrack exits 1 when it deleted nothing, saying so.
    match (out.status.success(), deleted) {
        (true, Some(n)) => Ok(n),
        (true, None) => Ok(0),
        (false, Some(0)) => Ok(0),
        (false, _) => Err(runner.failed("conntrack", &args, None, &out).into()),
    }
}

/// Deletes the entries of every flow in `flows` with one `conntrack -R`
/// (a script of `-D` lines on stdin): one process however many, where a
/// `conntrack -D` each would take seconds for a few hundred. Entries
/// already gone are skipped silently.
pub fn delete_all(runner: &Runner, flows: &[&ConntrackFlow]) -> Result<(), ConntrackError> {
    if flows.is_empty() {
        return Ok(());
    }
    let mut script = String::new();
    for flow in flows {
        script.push_str(&format!(
            "-D -f {} -p {} -s {} -d {}",
            family_arg(flow.family),
            protocol_arg(flow.protocol),
            flow.src,
            flow.dst
        ));
        if let Some(sport) = flow.sport {
            script.push_str(&format!(" --sport {sport}"));
        }
        if let Some(dport) = flow.dport {
            script.push_str(&format!(" --dport {dport}"));
        }
        script.push('\n');
    }
    runner.run("conntrack", &["-R", "/dev/stdin"], Some(&script))?;
    Ok(())
}

/// Reads one line of `conntrack -L -o extended`:
/// `ipv4 2 tcp 6 431999 ESTABLISHED src=10.9.0.1 dst=10.9.0.2 sport=56476
/// dport=5201 src=10.9.0.2 ... [ASSURED] mark=0 use=1`. The first src, dst,
/// sport and dport are the original direction; the second src starts the
/// reply.
pub fn parse_line(line: &str) -> Result<ConntrackFlow, String> {
    let unreplied = line.split_whitespace().any(|w| w == "[UNREPLIED]");
    // Both sides have sent FIN (or the flow is over): no data can pass.
    // CLOSE_WAIT and FIN_WAIT are half closed and still carry data.
    let closing = line
        .split_whitespace()
        .take(7)
        .any(|w| matches!(w, "TIME_WAIT" | "CLOSE" | "LAST_ACK"));
    let mut words = line.split_whitespace();
    let family = match words.next() {
        Some("ipv4") => Family::V4,
        Some("ipv6") => Family::V6,
        other => return Err(format!("unknown family {other:?}")),
    };
    let _l3_number = words.next().ok_or("no layer 3 protocol number")?;
    let _name = words.next().ok_or("no protocol name")?;
    let protocol: u8 = words
        .next()
        .ok_or("no protocol number")?
        .parse()
        .map_err(|e| format!("bad protocol number: {e}"))?;
    let (mut src, mut dst, mut sport, mut dport) = (None, None, None, None);
    let (mut reply_src, mut reply_sport) = (None, None);
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        let addr = || {
            value
                .parse::<IpAddr>()
                .map_err(|e| format!("bad address {key}={value}: {e}"))
        };
        let port = || {
            value
                .parse::<u16>()
                .map_err(|e| format!("bad port {key}={value}: {e}"))
        };
        match key {
            "src" if reply_src.is_some() => break,
            "src" if src.is_some() => reply_src = Some(addr()?),
            "sport" if reply_src.is_some() => {
                reply_sport = Some(port()?);
                break;
            }
            "src" => src = Some(addr()?),
            "dst" if dst.is_none() => dst = Some(addr()?),
            "sport" if sport.is_none() => sport = Some(port()?),
            "dport" if dport.is_none() => dport = Some(port()?),
            _ => {}
        }
    }
    let src = src.ok_or("no src=")?;
    let dst = dst.ok_or("no dst=")?;
    let wrong_family = match family {
        Family::V4 => !src.is_ipv4() || !dst.is_ipv4(),
        Family::V6 => !src.is_ipv6() || !dst.is_ipv6(),
    };
    if wrong_family {
        return Err(format!("addresses {src} and {dst} are not {family}"));
    }
    Ok(ConntrackFlow {
        family,
        protocol,
        src,
        dst,
        sport,
        dport,
        served_by: reply_src.unwrap_or(dst),
        served_port: reply_sport.or(dport),
        live: !unreplied && !closing,
    })
}

fn family_arg(family: Family) -> &'static str {
    match family {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

/// The name conntrack's `-p` knows a protocol by; the number otherwise.
fn protocol_arg(protocol: u8) -> String {
    match protocol {
        ICMP => "icmp".to_string(),
        TCP => "tcp".to_string(),
        UDP => "udp".to_string(),
        DCCP => "dccp".to_string(),
        GRE => "gre".to_string(),
        ICMPV6 => "icmpv6".to_string(),
        SCTP => "sctp".to_string(),
        UDPLITE => "udplite".to_string(),
        n => n.to_string(),
    }
}

/// N from conntrack's `N flow entries have been deleted.`
fn deleted_count(stderr: &str) -> Option<usize> {
    stderr.lines().find_map(|line| {
        let before = line.strip_suffix(" flow entries have been deleted.")?;
        before.rsplit(' ').next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_udp_and_sctp_lines_give_the_original_direction() {
        let tcp = "ipv4     2 tcp      6 431999 ESTABLISHED src=10.9.0.1 dst=10.9.0.2 sport=56476 dport=5201 src=10.9.0.2 dst=10.9.0.1 sport=5201 dport=56476 [ASSURED] mark=0 use=1";
        assert_eq!(
            parse_line(tcp).unwrap(),
            ConntrackFlow {
                family: Family::V4,
                protocol: 6,
                src: "10.9.0.1".parse().unwrap(),
                dst: "10.9.0.2".parse().unwrap(),
                sport: Some(56476),
                dport: Some(5201),
                served_by: "10.9.0.2".parse().unwrap(),
                served_port: Some(5201),
                live: true,
            }
        );
        let udp = "ipv6     10 udp      17 29 src=fd09::1 dst=fd09::2 sport=40000 dport=53 [UNREPLIED] src=fd09::2 dst=fd09::1 sport=53 dport=40000 mark=0 use=1";
        let flow = parse_line(udp).unwrap();
        assert_eq!(flow.family, Family::V6);
        assert_eq!(flow.protocol, 17);
        assert_eq!(flow.src, "fd09::1".parse::<IpAddr>().unwrap());
        assert_eq!((flow.sport, flow.dport), (Some(40000), Some(53)));
        assert!(!flow.live, "unreplied");
        let closing = tcp.replace("ESTABLISHED", "TIME_WAIT");
        assert!(!parse_line(&closing).unwrap().live);
        let half_closed = tcp.replace("ESTABLISHED", "CLOSE_WAIT");
        assert!(parse_line(&half_closed).unwrap().live, "still carries data");
        // A Service: sent to the cluster IP, answered by the pod behind it.
        let dnat = "ipv4     2 tcp      6 86399 ESTABLISHED src=10.240.0.5 dst=10.96.0.10 sport=40000 dport=53 src=10.240.1.7 dst=10.240.0.5 sport=5353 dport=40000 [ASSURED] mark=0 use=1";
        let flow = parse_line(dnat).unwrap();
        assert_eq!(flow.dst, "10.96.0.10".parse::<IpAddr>().unwrap());
        assert_eq!(flow.served_by, "10.240.1.7".parse::<IpAddr>().unwrap());
        assert_eq!((flow.dport, flow.served_port), (Some(53), Some(5353)));
        let sctp = "ipv4     2 sctp     132 3 CLOSED src=10.0.0.1 dst=10.0.0.2 sport=5000 dport=6000 src=10.0.0.2 dst=10.0.0.1 sport=6000 dport=5000 mark=0 use=1";
        assert_eq!(parse_line(sctp).unwrap().protocol, 132);
    }

    #[test]
    fn icmp_lines_have_no_ports() {
        let icmp = "ipv4     2 icmp     1 27 src=10.9.0.1 dst=10.9.0.2 type=8 code=0 id=23582 src=10.9.0.2 dst=10.9.0.1 type=0 code=0 id=23582 mark=0 use=1";
        let flow = parse_line(icmp).unwrap();
        assert_eq!((flow.protocol, flow.sport, flow.dport), (1, None, None));
        let icmp6 = "ipv6     10 icmpv6   58 28 src=fd09::1 dst=fd09::2 type=128 code=0 id=23583 src=fd09::2 dst=fd09::1 type=129 code=0 id=23583 mark=0 use=1";
        let flow = parse_line(icmp6).unwrap();
        assert_eq!((flow.protocol, flow.sport, flow.dport), (58, None, None));
        assert_eq!(flow.dst, "fd09::2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn bad_lines_say_why() {
        for line in [
            "",
            "ipx 2 tcp 6",
            "ipv4 2 tcp",
            "ipv4 2 tcp six 1 src=1.1.1.1 dst=1.1.1.2",
            "ipv4 2 tcp 6 1 dst=1.1.1.2",
            "ipv4 2 tcp 6 1 src=1.1.1.1",
            "ipv4 2 tcp 6 1 src=1.1.1.x dst=1.1.1.2",
            "ipv4 2 tcp 6 1 src=1.1.1.1 dst=1.1.1.2 sport=70000",
            "ipv4 2 tcp 6 1 src=fd00::1 dst=fd00::2",
        ] {
            assert!(parse_line(line).is_err(), "{line:?}");
        }
    }

    #[test]
    fn protocols_are_named_for_the_tool() {
        assert_eq!(protocol_arg(6), "tcp");
        assert_eq!(protocol_arg(58), "icmpv6");
        assert_eq!(protocol_arg(99), "99");
    }

    #[test]
    fn the_deleted_count_is_read_from_stderr() {
        assert_eq!(
            deleted_count(
                "conntrack v1.4.7 (conntrack-tools): 2 flow entries have been deleted.\n"
            ),
            Some(2)
        );
        assert_eq!(
            deleted_count("conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted."),
            Some(0)
        );
        assert_eq!(deleted_count("Operation not permitted"), None);
    }
}
