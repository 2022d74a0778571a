// Links over rtnetlink (RTM_NEWLINK/DELLINK/GETLINK/SETLINK, rtnetlink(7)):
// lookups, the pod's veth pair created across two namespaces in one message
// (veth(4): VETH_INFO_PEER with IFLA_NET_NS_FD), bringing links up, and
// turning off IPv6 link-local address generation (IFLA_INET6_ADDR_GEN_MODE).

use std::os::fd::AsRawFd;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoKind, InfoVeth, LinkAttribute,
    LinkExtentMask, LinkFlags, LinkInfo, LinkMessage,
};

use super::{Mac, Netlink, NetlinkError, Netns};

/// A network interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<Mac>,
    pub mtu: u32,
    /// IFLA_IFALIAS.
    pub alias: Option<String>,
    /// IFF_UP.
    pub up: bool,
    /// IFLA_INFO_KIND, e.g. "veth".
    pub kind: Option<String>,
    /// IFF_LOOPBACK.
    pub loopback: bool,
}

/// A veth pair to create: `name` in the socket's namespace, `peer_name` in
/// `peer_netns`.
#[derive(Debug, Clone, Copy)]
pub struct VethSpec<'a> {
    pub name: &'a str,
    /// `name`'s address; None: a random one.
    pub mac: Option<Mac>,
    /// Both ends' MTU.
    pub mtu: u32,
    /// `name`'s alias (IFLA_IFALIAS).
    pub alias: Option<&'a str>,
    pub peer_name: &'a str,
    pub peer_netns: &'a Netns,
}

impl Netlink {
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        self.get_link(&|| format!("get link {name}"), msg)
    }

    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        self.get_link(&|| format!("get link #{index}"), msg)
    }

    pub fn links(&mut self) -> Result<Vec<Link>, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let answers = self.dump(
            &|| "list links".to_owned(),
            RouteNetlinkMessage::GetLink(msg),
        )?;
        Ok(answers
            .into_iter()
            .filter_map(|answer| match answer {
                RouteNetlinkMessage::NewLink(link) => Some(link_from(link)),
                _ => None,
            })
            .collect())
    }

    /// Creates a veth pair: `spec.name` here, `spec.peer_name` directly in
    /// `spec.peer_netns` (IFLA_NET_NS_FD inside VETH_INFO_PEER). Both down.
    /// EEXIST (either name taken) → Kernel error with is_exists().
    pub fn create_veth(&mut self, spec: &VethSpec<'_>) -> Result<(), NetlinkError> {
        let op = || format!("create veth {} (peer {})", spec.name, spec.peer_name);
        let mut peer = LinkMessage::default();
        peer.attributes = vec![
            LinkAttribute::IfName(spec.peer_name.to_owned()),
            LinkAttribute::Mtu(spec.mtu),
            LinkAttribute::NetNsFd(spec.peer_netns.fd().as_raw_fd()),
        ];
        let mut msg = LinkMessage::default();
        msg.attributes = vec![
            LinkAttribute::IfName(spec.name.to_owned()),
            LinkAttribute::Mtu(spec.mtu),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
            ]),
        ];
        if let Some(mac) = spec.mac {
            msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        self.request(
            &op,
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )?;
        // The kernel accepts IFLA_IFALIAS in a create request but ignores it
        // (only a change to an existing link applies it), so the alias
        // follows; without it the pair is not known as ours, so it goes.
        if let Some(alias) = spec.alias {
            let mut msg = LinkMessage::default();
            msg.attributes = vec![
                LinkAttribute::IfName(spec.name.to_owned()),
                LinkAttribute::IfAlias(alias.to_owned()),
            ];
            let set = self.request(
                &|| format!("set alias of {} to {alias:?}", spec.name),
                RouteNetlinkMessage::SetLink(msg),
                0,
            );
            if let Err(e) = set {
                let mut msg = LinkMessage::default();
                msg.attributes = vec![LinkAttribute::IfName(spec.name.to_owned())];
                // Best effort: the alias error is the one to report.
                let _ = self.request(
                    &|| format!("delete link {}", spec.name),
                    RouteNetlinkMessage::DelLink(msg),
                    0,
                );
                return Err(e);
            }
        }
        Ok(())
    }

    /// Deletes by index; Ok(false) when it did not exist. Deleting one end
    /// of a veth pair deletes both.
    pub fn delete_link(&mut self, index: u32) -> Result<bool, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.request(
            &|| format!("delete link #{index}"),
            RouteNetlinkMessage::DelLink(msg),
            0,
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn set_link_up(&mut self, index: u32) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(
            &|| format!("set link #{index} up"),
            RouteNetlinkMessage::SetLink(msg),
            0,
        )
        .map(drop)
    }

    /// IFLA_AF_SPEC/AF_INET6/IFLA_INET6_ADDR_GEN_MODE = NONE (no automatic
    /// link-local address), set while the link is down. (It cannot ride in
    /// create_veth's message: the kernel refuses IFLA_AF_SPEC on a link it
    /// creates with EAFNOSUPPORT.)
    pub fn disable_ipv6_addr_gen(&mut self, index: u32) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes = vec![LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
            vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
        )])];
        self.request(
            &|| format!("set IPv6 addr-gen-mode none on link #{index}"),
            RouteNetlinkMessage::SetLink(msg),
            0,
        )
        .map(drop)
    }

    /// RTM_GETLINK for one link; None when it does not exist.
    fn get_link(
        &mut self,
        op: &dyn Fn() -> String,
        msg: LinkMessage,
    ) -> Result<Option<Link>, NetlinkError> {
        let answers = match self.request(op, RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(answers) => answers,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(answers.into_iter().find_map(|answer| match answer {
            RouteNetlinkMessage::NewLink(link) => Some(link_from(link)),
            _ => None,
        }))
    }
}

/// The fields we use of a kernel link message.
fn link_from(msg: LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        mac: None,
        mtu: 0,
        alias: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        kind: None,
        loopback: msg.header.flags.contains(LinkFlags::Loopback),
    };
    for attribute in msg.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name = name,
            LinkAttribute::Address(address) => link.mac = address.try_into().ok(),
            LinkAttribute::Mtu(mtu) => link.mtu = mtu,
            LinkAttribute::IfAlias(alias) => link.alias = Some(alias),
            LinkAttribute::LinkInfo(infos) => {
                link.kind = infos.into_iter().find_map(|info| match info {
                    LinkInfo::Kind(kind) => Some(kind.to_string()),
                    _ => None,
                })
            }
            _ => {}
        }
    }
    link
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{Emitable, Parseable};

    use super::*;

    /// A veth as the kernel reports it: the fields land in Link; an address
    /// that is not 6 bytes long (e.g. a tunnel's IPv4 one) is not a MAC.
    #[test]
    fn link_fields() {
        let mut msg = LinkMessage::default();
        msg.header.index = 7;
        msg.header.flags = LinkFlags::Up | LinkFlags::Broadcast;
        msg.attributes = vec![
            LinkAttribute::IfName("podr0123456789a".into()),
            LinkAttribute::Address(vec![0xee; 6]),
            LinkAttribute::Mtu(1450),
            LinkAttribute::IfAlias("podroute:net:c1:eth0:ns/pod".into()),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
        ];
        // Round trip through bytes, as it arrives from the kernel.
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        let parsed = LinkMessage::parse(&buf[..]).unwrap();
        assert_eq!(
            link_from(parsed),
            Link {
                index: 7,
                name: "podr0123456789a".into(),
                mac: Some([0xee; 6]),
                mtu: 1450,
                alias: Some("podroute:net:c1:eth0:ns/pod".into()),
                up: true,
                kind: Some("veth".into()),
                loopback: false,
            }
        );

        let mut tunnel = LinkMessage::default();
        tunnel.header.flags = LinkFlags::Loopback;
        tunnel.attributes = vec![LinkAttribute::Address(vec![10, 0, 0, 1])];
        let link = link_from(tunnel);
        assert_eq!(link.mac, None);
        assert!(link.loopback && !link.up);
        assert_eq!(link.kind, None);
    }
}
