// NLRI prefix encoding (RFC 4271 §4.3, RFC 4760 §5): a length in bits and
// the fewest octets holding it, optionally preceded by a 4-octet path
// identifier (RFC 7911 §3). Decoding masks host bits so every `Nlri` prefix
// is canonical, and rejects lengths beyond the family's (RFC 7606 §5.3).
#![deny(clippy::indexing_slicing)]

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, Bytes, BytesMut};
use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};

use super::error::EncodeError;
use super::family::{Afi, Family};
use super::message::Nlri;
use super::reader::Reader;

/// Why a run of prefixes did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrefixError {
    TruncatedPathId,
    TruncatedPrefix { length: u8, available: usize },
    LengthTooLong { length: u8, max: u8 },
    UnsupportedAfi { afi: Afi },
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefixError::TruncatedPathId => f.write_str("truncated ADD-PATH path identifier"),
            PrefixError::TruncatedPrefix { length, available } => write!(
                f,
                "prefix of length /{length} needs {} octets, {available} left",
                prefix_octets(*length)
            ),
            PrefixError::LengthTooLong { length, max } => {
                write!(f, "prefix length /{length} exceeds /{max}")
            }
            PrefixError::UnsupportedAfi { afi } => write!(f, "no prefix format for AFI {}", afi.0),
        }
    }
}

/// Decodes a field made only of prefixes of `afi`.
pub(crate) fn decode_prefixes(
    field: Bytes,
    afi: Afi,
    add_path: bool,
) -> Result<Vec<Nlri>, PrefixError> {
    let max_len = max_prefix_len(afi).ok_or(PrefixError::UnsupportedAfi { afi })?;
    let mut reader = Reader::new(field);
    let mut prefixes = Vec::new();
    while !reader.is_empty() {
        let path_id = if add_path {
            Some(reader.u32().ok_or(PrefixError::TruncatedPathId)?)
        } else {
            None
        };
        let length = reader.u8().ok_or(PrefixError::TruncatedPrefix {
            length: 0,
            available: 0,
        })?;
        if length > max_len {
            return Err(PrefixError::LengthTooLong {
                length,
                max: max_len,
            });
        }
        let available = reader.remaining();
        let octets = reader
            .take(prefix_octets(length))
            .ok_or(PrefixError::TruncatedPrefix { length, available })?;
        let prefix = if afi == Afi::IPV4 {
            let mut address = [0u8; 4];
            copy_masked(&mut address, &octets, length);
            Ipv4Network::new(Ipv4Addr::from(address), length).map(IpNetwork::V4)
        } else {
            let mut address = [0u8; 16];
            copy_masked(&mut address, &octets, length);
            Ipv6Network::new(Ipv6Addr::from(address), length).map(IpNetwork::V6)
        }
        // Unreachable: the length was checked against the family above.
        .map_err(|_| PrefixError::LengthTooLong {
            length,
            max: max_len,
        })?;
        prefixes.push(Nlri { path_id, prefix });
    }
    Ok(prefixes)
}

/// Appends `prefixes` in the wire format of `family`.
pub(crate) fn encode_prefixes(
    prefixes: &[Nlri],
    family: Family,
    add_path: bool,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    for nlri in prefixes {
        let matches_family = match nlri.prefix {
            IpNetwork::V4(_) => family.afi == Afi::IPV4,
            IpNetwork::V6(_) => family.afi == Afi::IPV6,
        };
        if !matches_family {
            return Err(EncodeError::WrongFamilyPrefix {
                family,
                prefix: nlri.prefix,
            });
        }
        match (add_path, nlri.path_id) {
            (true, path_id) => out.put_u32(path_id.unwrap_or(0)),
            (false, None) => {}
            (false, Some(_)) => return Err(EncodeError::UnexpectedPathId { family }),
        }
        let length = nlri.prefix.prefix();
        out.put_u8(length);
        let octets = prefix_octets(length);
        // network() clears host bits, so what we send is canonical too.
        match nlri.prefix.network() {
            std::net::IpAddr::V4(address) => {
                out.extend(address.octets().iter().take(octets));
            }
            std::net::IpAddr::V6(address) => {
                out.extend(address.octets().iter().take(octets));
            }
        }
    }
    Ok(())
}

fn max_prefix_len(afi: Afi) -> Option<u8> {
    match afi {
        Afi::IPV4 => Some(32),
        Afi::IPV6 => Some(128),
        _ => None,
    }
}

fn prefix_octets(length: u8) -> usize {
    usize::from(length).div_ceil(8)
}

/// Copies the prefix octets and clears the bits past `length` in the last.
fn copy_masked(address: &mut [u8], octets: &[u8], length: u8) {
    for (to, from) in address.iter_mut().zip(octets) {
        *to = *from;
    }
    let partial_bits = length % 8;
    if partial_bits != 0
        && let Some(last) = address.get_mut(usize::from(length / 8))
    {
        *last &= 0xffu8 << (8 - partial_bits);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn decodes_rfc4271_prefixes_and_masks_host_bits() {
        // 10.1.0.0/16, 192.168.1.255/24 (host bits set), 0.0.0.0/0, 1.2.3.4/32
        let field = Bytes::from_static(&[16, 10, 1, 24, 192, 168, 1, 0, 32, 1, 2, 3, 4]);
        let got = decode_prefixes(field, Afi::IPV4, false).unwrap();
        let want: Vec<_> = ["10.1.0.0/16", "192.168.1.0/24", "0.0.0.0/0", "1.2.3.4/32"]
            .iter()
            .map(|p| Nlri {
                path_id: None,
                prefix: net(p),
            })
            .collect();
        assert_eq!(got, want);

        let masked = decode_prefixes(Bytes::from_static(&[20, 10, 1, 0xff]), Afi::IPV4, false);
        assert_eq!(masked.unwrap()[0].prefix, net("10.1.240.0/20"));
    }

    #[test]
    fn decodes_ipv6_with_path_ids() {
        // path 7, 2001:db8::/32; path 8, ::/0
        let field = Bytes::from_static(&[0, 0, 0, 7, 32, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 8, 0]);
        let got = decode_prefixes(field, Afi::IPV6, true).unwrap();
        assert_eq!(got[0].path_id, Some(7));
        assert_eq!(got[0].prefix, net("2001:db8::/32"));
        assert_eq!(got[1].path_id, Some(8));
        assert_eq!(got[1].prefix, net("::/0"));
    }

    #[test]
    fn rejects_long_and_truncated_prefixes() {
        assert_eq!(
            decode_prefixes(Bytes::from_static(&[33, 1, 2, 3, 4, 5]), Afi::IPV4, false),
            Err(PrefixError::LengthTooLong {
                length: 33,
                max: 32
            })
        );
        assert_eq!(
            decode_prefixes(Bytes::from_static(&[129]), Afi::IPV6, false),
            Err(PrefixError::LengthTooLong {
                length: 129,
                max: 128
            })
        );
        assert_eq!(
            decode_prefixes(Bytes::from_static(&[24, 10, 0]), Afi::IPV4, false),
            Err(PrefixError::TruncatedPrefix {
                length: 24,
                available: 2
            })
        );
        assert_eq!(
            decode_prefixes(Bytes::from_static(&[0, 0, 1]), Afi::IPV4, true),
            Err(PrefixError::TruncatedPathId)
        );
    }

    #[test]
    fn encodes_canonical_prefixes() {
        let mut out = BytesMut::new();
        let prefixes = [
            Nlri {
                path_id: None,
                prefix: net("10.1.2.3/20"),
            },
            Nlri {
                path_id: None,
                prefix: net("0.0.0.0/0"),
            },
        ];
        encode_prefixes(&prefixes, Family::IPV4_UNICAST, false, &mut out).unwrap();
        assert_eq!(&out[..], &[20, 10, 1, 0, 0]);

        let mut out = BytesMut::new();
        encode_prefixes(&prefixes[..1], Family::IPV4_UNICAST, true, &mut out).unwrap();
        assert_eq!(&out[..], &[0, 0, 0, 0, 20, 10, 1, 0]);
    }

    #[test]
    fn encode_refuses_wrong_family_and_unnegotiated_path_id() {
        let mut out = BytesMut::new();
        let v6 = [Nlri {
            path_id: None,
            prefix: net("2001:db8::/32"),
        }];
        assert!(matches!(
            encode_prefixes(&v6, Family::IPV4_UNICAST, false, &mut out),
            Err(EncodeError::WrongFamilyPrefix { .. })
        ));
        let with_id = [Nlri {
            path_id: Some(1),
            prefix: net("10.0.0.0/8"),
        }];
        assert_eq!(
            encode_prefixes(&with_id, Family::IPV4_UNICAST, false, &mut out),
            Err(EncodeError::UnexpectedPathId {
                family: Family::IPV4_UNICAST
            })
        );
    }
}
