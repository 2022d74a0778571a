// AS_PATH and AS4_PATH values (RFC 4271 §4.3, RFC 6793 §3): segments of
// 2- or 4-octet AS numbers, split at 255 ASes on encode. Malformed paths
// per RFC 7606 §7.2. With an old (2-octet) peer, ASes above 65535 become
// AS_TRANS, and the received AS4_PATH is merged back per RFC 6793 §4.2.3.
#![deny(clippy::indexing_slicing)]

use bytes::{BufMut, Bytes, BytesMut};

use super::attribute::{AsPath, AsSegment};
use super::error::EncodeError;
use super::iana::{AS_TRANS, MAX_AS_SEGMENT_LEN, as_path_segment};
use super::reader::Reader;

/// Decodes an AS_PATH (or AS4_PATH) value; the error is the RFC 7606 §7.2
/// reason the path is malformed.
pub(crate) fn decode_as_path(value: Bytes, four_octet: bool) -> Result<AsPath, String> {
    let mut reader = Reader::new(value);
    let mut segments = Vec::new();
    while !reader.is_empty() {
        let (Some(segment_type), Some(count)) = (reader.u8(), reader.u8()) else {
            return Err("a single octet left where a segment header was expected".to_string());
        };
        if count == 0 {
            return Err("segment of length zero".to_string());
        }
        let width = if four_octet { 4 } else { 2 };
        let available = reader.remaining();
        let Some(asns) = reader.take(usize::from(count) * width) else {
            return Err(format!(
                "segment of {count} ASes overruns the attribute ({available} octets left)"
            ));
        };
        let mut asns = Reader::new(asns);
        let mut numbers = Vec::with_capacity(usize::from(count));
        loop {
            let asn = if four_octet {
                asns.u32()
            } else {
                asns.u16().map(u32::from)
            };
            match asn {
                Some(asn) => numbers.push(asn),
                None => break,
            }
        }
        segments.push(match segment_type {
            as_path_segment::AS_SET => AsSegment::Set(numbers),
            as_path_segment::AS_SEQUENCE => AsSegment::Sequence(numbers),
            other => return Err(format!("unrecognized segment type {other}")),
        });
    }
    Ok(AsPath { segments })
}

/// Appends the AS_PATH value. Returns whether an AS above 65535 had to be
/// replaced by AS_TRANS (then the caller adds AS4_PATH).
pub(crate) fn encode_as_path(
    path: &AsPath,
    four_octet: bool,
    out: &mut BytesMut,
) -> Result<bool, EncodeError> {
    let mut substituted = false;
    for segment in &path.segments {
        let (segment_type, asns) = match segment {
            AsSegment::Set(asns) => (as_path_segment::AS_SET, asns),
            AsSegment::Sequence(asns) => (as_path_segment::AS_SEQUENCE, asns),
        };
        if asns.is_empty() {
            return Err(EncodeError::EmptyAsPathSegment);
        }
        for chunk in asns.chunks(MAX_AS_SEGMENT_LEN) {
            out.put_u8(segment_type);
            out.put_u8(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
            for &asn in chunk {
                if four_octet {
                    out.put_u32(asn);
                } else {
                    let two_octet = u16::try_from(asn).unwrap_or(AS_TRANS);
                    substituted |= u32::from(two_octet) != asn;
                    out.put_u16(two_octet);
                }
            }
        }
    }
    Ok(substituted)
}

/// RFC 6793 §4.2.3: rebuild the path from an old speaker's AS_PATH (with
/// AS_TRANS) and the AS4_PATH it carried along.
pub(crate) fn merge_as4_path(as_path: &AsPath, as4_path: &AsPath) -> AsPath {
    let as_path_len = path_len(as_path);
    let as4_path_len = path_len(as4_path);
    if as_path_len < as4_path_len {
        // The AS4_PATH is stale (an old speaker prepended less): ignore it.
        return as_path.clone();
    }
    let mut leading = as_path_len - as4_path_len;
    let mut segments = Vec::new();
    for segment in &as_path.segments {
        if leading == 0 {
            break;
        }
        match segment {
            AsSegment::Set(asns) => {
                segments.push(AsSegment::Set(asns.clone()));
                leading -= 1;
            }
            AsSegment::Sequence(asns) => {
                let taken: Vec<u32> = asns.iter().copied().take(leading).collect();
                leading -= taken.len();
                segments.push(AsSegment::Sequence(taken));
            }
        }
    }
    let mut rest = as4_path.segments.iter().cloned();
    // Join the two halves of a sequence split by the merge.
    if let (Some(AsSegment::Sequence(head)), Some(AsSegment::Sequence(first))) =
        (segments.last_mut(), as4_path.segments.first())
        && head.len() + first.len() <= MAX_AS_SEGMENT_LEN
    {
        head.extend_from_slice(first);
        rest.next();
    }
    segments.extend(rest);
    AsPath { segments }
}

/// RFC 4271 §9.1.2.2 a: each AS of a sequence counts one, a set counts one.
fn path_len(path: &AsPath) -> usize {
    path.segments
        .iter()
        .map(|segment| match segment {
            AsSegment::Set(_) => 1,
            AsSegment::Sequence(asns) => asns.len(),
        })
        .sum()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn seq(asns: &[u32]) -> AsSegment {
        AsSegment::Sequence(asns.to_vec())
    }

    #[test]
    fn decodes_two_and_four_octet_paths() {
        // RFC 4271 §4.3: SEQUENCE of 2 (65001 65002) then SET of 1 (65003).
        let two = Bytes::from_static(&[2, 2, 0xfd, 0xe9, 0xfd, 0xea, 1, 1, 0xfd, 0xeb]);
        assert_eq!(
            decode_as_path(two, false).unwrap().segments,
            vec![seq(&[65001, 65002]), AsSegment::Set(vec![65003])]
        );
        // SEQUENCE of 1: 4200000001 = 0xFA56EA01.
        let four = Bytes::from_static(&[2, 1, 0xfa, 0x56, 0xea, 0x01]);
        assert_eq!(
            decode_as_path(four, true).unwrap().segments,
            vec![seq(&[4200000001])]
        );
        assert_eq!(
            decode_as_path(Bytes::new(), true).unwrap(),
            AsPath::default()
        );
    }

    #[test]
    fn rfc7606_malformed_paths() {
        let cases: [&'static [u8]; 4] = [
            &[2, 0],          // zero-length segment
            &[2, 2, 0, 1],    // overrun
            &[2, 1, 0, 1, 2], // one octet left
            &[3, 1, 0, 1],    // AS_CONFED_SEQUENCE: not ours to accept
        ];
        for case in cases {
            assert!(
                decode_as_path(Bytes::from_static(case), false).is_err(),
                "{case:?}"
            );
        }
    }

    #[test]
    fn long_segments_split_at_255() {
        let asns: Vec<u32> = (1..=300).collect();
        let path = AsPath {
            segments: vec![seq(&asns)],
        };
        let mut out = BytesMut::new();
        assert!(!encode_as_path(&path, true, &mut out).unwrap());
        assert_eq!(out.len(), 2 + 255 * 4 + 2 + 45 * 4);
        assert_eq!(&out[..2], &[2, 255]);
        assert_eq!(&out[2 + 255 * 4..2 + 255 * 4 + 2], &[2, 45]);
        let back = decode_as_path(out.freeze(), true).unwrap();
        assert_eq!(back.segments, vec![seq(&asns[..255]), seq(&asns[255..])]);
    }

    #[test]
    fn two_octet_encoding_substitutes_as_trans() {
        let path = AsPath {
            segments: vec![seq(&[65001, 4200000001])],
        };
        let mut out = BytesMut::new();
        assert!(encode_as_path(&path, false, &mut out).unwrap());
        assert_eq!(&out[..], &[2, 2, 0xfd, 0xe9, 0x5b, 0xa0]);
    }

    #[test]
    fn rfc6793_merge() {
        // Old speaker 65010 prepended itself in front of a 4-octet path.
        let as_path = AsPath {
            segments: vec![seq(&[65010, 23456, 65001, 23456])],
        };
        let as4_path = AsPath {
            segments: vec![seq(&[4200000001, 65001, 4200000002])],
        };
        assert_eq!(
            merge_as4_path(&as_path, &as4_path).segments,
            vec![seq(&[65010, 4200000001, 65001, 4200000002])]
        );
        // A longer AS4_PATH than AS_PATH is ignored.
        let short = AsPath {
            segments: vec![seq(&[23456])],
        };
        assert_eq!(merge_as4_path(&short, &as4_path), short);
        // A set counts one.
        let with_set = AsPath {
            segments: vec![seq(&[65010]), AsSegment::Set(vec![1, 2, 3]), seq(&[23456])],
        };
        let as4 = AsPath {
            segments: vec![seq(&[4200000009])],
        };
        assert_eq!(
            merge_as4_path(&with_set, &as4).segments,
            vec![
                seq(&[65010]),
                AsSegment::Set(vec![1, 2, 3]),
                seq(&[4200000009])
            ]
        );
    }
}
