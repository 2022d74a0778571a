// Every error path: the NOTIFICATION (code, subcode, data) a session-reset
// error maps to, and the RFC 7606 action recorded for the others.

use super::*;
use crate::wire::*;

const MARKER: &str = "ffffffffffffffffffffffffffffffff";

fn update_with(attributes: &str, nlri: &str) -> Vec<u8> {
    let attributes = hex(attributes);
    let nlri = hex(nlri);
    let mut body = vec![0, 0];
    body.extend_from_slice(&u16::try_from(attributes.len()).unwrap().to_be_bytes());
    body.extend(attributes);
    body.extend(nlri);
    frame(2, &body).to_vec()
}

/// Mandatory attributes for an IPv4 announcement.
const BASE: &str = "40 01 01 00  40 02 04 02 01 fde9  40 03 04 0a000001";

fn malformed(bytes: &[u8], params: &CodecParams) -> Update {
    match decode_message(Bytes::copy_from_slice(bytes), params).unwrap() {
        Message::Update(update) => update,
        other => panic!("{other:?}"),
    }
}

fn notification_of(bytes: &[u8], params: &CodecParams) -> (u8, u8, Vec<u8>) {
    let (_, notification) = decode_error(bytes, params);
    (
        notification.code,
        notification.subcode,
        notification.data.to_vec(),
    )
}

#[test]
fn header_errors() {
    // Bad marker: Connection Not Synchronized, no data.
    let bad_marker = hex("ffffffffffffffffffffffffffff00ff 0013 04");
    assert_eq!(notification_of(&bad_marker, &two_octet()), (1, 1, vec![]));
    // Length below 19: Bad Message Length with the length.
    let short = hex(&format!("{MARKER} 0012 04"));
    assert_eq!(notification_of(&short, &two_octet()), (1, 2, vec![0, 0x12]));
    // KEEPALIVE must be exactly 19.
    let long_keepalive = hex(&format!("{MARKER} 0014 04 00"));
    assert_eq!(
        notification_of(&long_keepalive, &two_octet()),
        (1, 2, vec![0, 0x14])
    );
    // OPEN below 29.
    let short_open = frame(1, &hex("04 fde9 00b4 0a000001"));
    assert_eq!(
        notification_of(&short_open, &two_octet()),
        (1, 2, vec![0, 0x1c])
    );
    // UPDATE below 23, NOTIFICATION below 21.
    let short_update = hex(&format!("{MARKER} 0016 02 000000"));
    assert_eq!(
        notification_of(&short_update, &two_octet()),
        (1, 2, vec![0, 0x16])
    );
    let short_notification = hex(&format!("{MARKER} 0014 03 06"));
    assert_eq!(
        notification_of(&short_notification, &two_octet()),
        (1, 2, vec![0, 0x14])
    );
    // Unknown type: Bad Message Type with the type.
    let bad_type = hex(&format!("{MARKER} 0013 09"));
    assert_eq!(notification_of(&bad_type, &two_octet()), (1, 3, vec![9]));
    // A length field that does not match the bytes handed in.
    let mismatch = hex(&format!("{MARKER} 0014 04"));
    assert_eq!(
        notification_of(&mismatch, &two_octet()),
        (1, 2, vec![0, 0x14])
    );
}

#[test]
fn extended_message_limits() {
    let mut body = vec![0, 0, 0x13, 0x8c, 0xd0, 0x08, 0x13, 0x88];
    body.extend(std::iter::repeat_n(0u8, 5000));
    let big_update = frame(2, &body);
    assert_eq!(big_update.len(), 5027);
    // Without the capability: Bad Message Length 5027 = 0x13a3.
    assert_eq!(
        notification_of(&big_update, &two_octet()),
        (1, 2, vec![0x13, 0xa3])
    );
    let extended = CodecParams {
        extended_message: true,
        ..CodecParams::default()
    };
    assert!(decode_message(big_update.clone(), &extended).is_ok());
    // OPEN and KEEPALIVE stay within 4096 even then (RFC 8654 §4).
    let mut open_body = hex("04 fde9 00b4 0a000001 00");
    open_body.extend(std::iter::repeat_n(0u8, 4100));
    let big_open = frame(1, &open_body);
    assert_eq!(notification_of(&big_open, &extended).1, 2);

    // Encoding refuses what the peer could not take.
    let communities = (0..1100).map(Community).collect();
    let message = Message::Update(Update {
        attributes: vec![PathAttribute::Communities(communities)],
        ..Update::default()
    });
    assert!(matches!(
        encode_message(&message, &two_octet()),
        Err(EncodeError::MessageTooLong {
            message_type: 2,
            max: 4096,
            ..
        })
    ));
    assert!(encode_message(&message, &extended).is_ok());
    let open = Message::Open(Open {
        my_as: 1,
        hold_time: 90,
        bgp_id: "1.1.1.1".parse().unwrap(),
        capabilities: (0..20)
            .map(|code| Capability::Unknown {
                code: 200 + code,
                value: Bytes::from(vec![0; 250]),
            })
            .collect(),
    });
    assert!(matches!(
        encode_message(&open, &extended),
        Err(EncodeError::OptionalParametersTooLong { .. })
    ));
}

#[test]
fn open_errors() {
    let version_3 = frame(1, &hex("03 fde9 00b4 0a000001 00"));
    let (error, notification) = decode_error(&version_3, &two_octet());
    assert_eq!(error, DecodeError::UnsupportedVersion { version: 3 });
    assert_eq!((notification.code, notification.subcode), (2, 1));
    assert_eq!(&notification.data[..], &[0, 4]);

    let hold_2 = frame(1, &hex("04 fde9 0002 0a000001 00"));
    assert_eq!(notification_of(&hold_2, &two_octet()), (2, 6, vec![]));

    let zero_id = frame(1, &hex("04 fde9 00b4 00000000 00"));
    assert_eq!(notification_of(&zero_id, &two_octet()), (2, 3, vec![]));

    // Optional parameter type 1 (the deprecated Authentication).
    let auth = frame(1, &hex("04 fde9 00b4 0a000001 03 01 01 00"));
    assert_eq!(notification_of(&auth, &two_octet()), (2, 4, vec![]));

    // Parameters length overruns the message.
    let overrun = frame(1, &hex("04 fde9 00b4 0a000001 05 02 02 02 00"));
    assert_eq!(notification_of(&overrun, &two_octet()), (2, 0, vec![]));

    // Capability length overruns its parameter.
    let cap_overrun = frame(1, &hex("04 fde9 00b4 0a000001 04 02 02 41 04"));
    assert_eq!(notification_of(&cap_overrun, &two_octet()), (2, 0, vec![]));

    // Multiprotocol capability of length 3.
    let bad_mp = frame(1, &hex("04 fde9 00b4 0a000001 05 02 03 01 01 00"));
    let (error, notification) = decode_error(&bad_mp, &two_octet());
    assert!(
        matches!(error, DecodeError::MalformedCapability { code: 1, .. }),
        "{error}"
    );
    assert_eq!((notification.code, notification.subcode), (2, 0));
}

#[test]
fn unsupported_capability_lists_the_capabilities() {
    let notification = Notification::unsupported_capability(&[
        Capability::FourOctetAs(65001),
        Capability::Multiprotocol(Family::IPV6_UNICAST),
    ]);
    assert_eq!((notification.code, notification.subcode), (2, 7));
    assert_eq!(
        &notification.data[..],
        &hex("41 04 0000fde9  01 04 0002 00 01")[..]
    );
    assert_eq!(
        notification.to_string(),
        "OPEN Message Error / Unsupported Capability (12 octets of data)"
    );
}

#[test]
fn update_length_errors_reset_the_session() {
    // Withdrawn routes length 5 with 4 octets left.
    let withdrawn = frame(2, &hex("0005 0000 0000"));
    assert_eq!(notification_of(&withdrawn, &two_octet()), (3, 1, vec![]));
    // Total attribute length 8 with 4 left.
    let attributes = frame(2, &hex("0000 0008 40010100"));
    assert_eq!(notification_of(&attributes, &two_octet()), (3, 1, vec![]));
    // An attribute overrunning the attribute section.
    let overrun = update_with("40 01 01 00 40 02 09 02 01 fde9", "");
    let (error, notification) = decode_error(&overrun, &two_octet());
    assert!(
        error.to_string().contains("AS_PATH (2) length 9 overruns"),
        "{error}"
    );
    assert_eq!((notification.code, notification.subcode), (3, 1));
    // A single octet left where an attribute header should start.
    let dangling = update_with("40 01 01 00 40", "");
    assert_eq!(notification_of(&dangling, &two_octet()), (3, 1, vec![]));
}

#[test]
fn nlri_errors_reset_with_invalid_network_field() {
    let too_long = update_with(BASE, "21 0a000000 00");
    let (error, notification) = decode_error(&too_long, &two_octet());
    assert_eq!(
        error,
        DecodeError::InvalidNetworkField {
            field: NlriField::Nlri,
            reason: "prefix length /33 exceeds /32".to_string()
        }
    );
    assert_eq!((notification.code, notification.subcode), (3, 10));
    let truncated = update_with(BASE, "18 0a00");
    assert_eq!(notification_of(&truncated, &two_octet()), (3, 10, vec![]));
    let withdrawn = frame(2, &hex("0002 20 0a 0000"));
    let (error, _) = decode_error(&withdrawn, &two_octet());
    assert!(matches!(
        error,
        DecodeError::InvalidNetworkField {
            field: NlriField::Withdrawn,
            ..
        }
    ));
}

#[test]
fn attribute_errors_that_reset_carry_the_attribute() {
    // Unrecognized well-known attribute 99: flags, type, length, value.
    let unknown = update_with("40 63 01 07", "");
    assert_eq!(
        notification_of(&unknown, &two_octet()),
        (3, 2, hex("40 63 01 07"))
    );
    // MP_REACH_NLRI with an IPv6 prefix of length 129.
    let mp_reach = "80 0e 16 0002 01 10 20010db8000000000000000000000001 00 81";
    let bad_nlri = update_with(&format!("40 01 01 00 40 02 00 {mp_reach}"), "");
    assert_eq!(
        notification_of(&bad_nlri, &four_octet()),
        (3, 9, hex(mp_reach))
    );
    // MP_REACH_NLRI next hop length past the attribute.
    let overrun = "80 0e 05 0002 01 10 00";
    let bad_next_hop = update_with(overrun, "");
    assert_eq!(
        notification_of(&bad_next_hop, &four_octet()),
        (3, 9, hex(overrun))
    );
    // MP_UNREACH_NLRI truncated prefix.
    let unreach = "80 0f 05 0002 01 30 20";
    assert_eq!(
        notification_of(&update_with(unreach, ""), &four_octet()),
        (3, 9, hex(unreach))
    );
    // Two MP_UNREACH_NLRI: Malformed Attribute List (RFC 7606 §3 g).
    let twice = update_with("80 0f 03 0002 01 80 0f 03 0001 01", "");
    assert_eq!(notification_of(&twice, &four_octet()), (3, 1, vec![]));
    // Extended-length attribute with a 4096+ length field.
    let huge = update_with("50 01 ffff 00", "");
    assert_eq!(notification_of(&huge, &four_octet()), (3, 1, vec![]));
}

fn single_problem(update: &Update) -> (u8, ErrorAction) {
    assert_eq!(update.malformed.len(), 1, "{:?}", update.malformed);
    (update.malformed[0].type_code, update.malformed[0].action)
}

#[test]
fn rfc7606_treat_as_withdraw_cases() {
    use ErrorAction::TreatAsWithdraw;
    let cases: [(&str, u8); 11] = [
        ("40 01 01 03", 1),         // ORIGIN value 3
        ("40 01 02 0000", 1),       // ORIGIN length 2
        ("c0 01 01 00", 1),         // ORIGIN flagged optional
        ("40 02 03 02 01 fd", 2),   // AS_PATH overrun
        ("40 02 02 02 00", 2),      // AS_PATH zero-length segment
        ("40 03 05 0a00000100", 3), // NEXT_HOP length 5
        ("80 04 03 000000", 4),     // MED length 3
        ("40 05 02 0000", 5),       // LOCAL_PREF length 2
        ("c0 08 05 0000000000", 8), // COMMUNITIES length 5
        ("c0 10 04 00000000", 16),  // EXTENDED_COMMUNITIES length 4
        ("c0 20 00", 32),           // LARGE_COMMUNITY empty
    ];
    for (attribute, type_code) in cases {
        // The broken attribute replaces the good one of the same type.
        let attributes: String = BASE
            .split("  ")
            .filter(|good| !good.starts_with(&format!("40 0{type_code}")))
            .chain([attribute])
            .collect::<Vec<_>>()
            .join(" ");
        let update = malformed(&update_with(&attributes, "18 0a0001"), &two_octet());
        assert_eq!(
            single_problem(&update),
            (type_code, TreatAsWithdraw),
            "{attribute}"
        );
        assert!(update.treat_as_withdraw());
        assert!(!update.attributes.iter().any(|a| a.type_code() == type_code));
        assert_eq!(update.nlri.len(), 1);
    }
    let cluster = update_with(&format!("{BASE} 80 0a 03 000000"), "18 0a0001");
    assert_eq!(
        single_problem(&malformed(&cluster, &two_octet())),
        (10, TreatAsWithdraw)
    );
    let originator = update_with(&format!("{BASE} 80 09 00"), "18 0a0001");
    assert_eq!(
        single_problem(&malformed(&originator, &two_octet())),
        (9, TreatAsWithdraw)
    );
}

#[test]
fn rfc7606_attribute_discard_cases() {
    use ErrorAction::AttributeDiscard;
    let atomic = update_with(&format!("{BASE} 40 06 01 00"), "18 0a0001");
    let update = malformed(&atomic, &two_octet());
    assert_eq!(single_problem(&update), (6, AttributeDiscard));
    assert!(!update.treat_as_withdraw());
    assert_eq!(update.attributes.len(), 3);

    let aggregator = update_with(&format!("{BASE} c0 07 07 fde90a00000900"), "18 0a0001");
    assert_eq!(
        single_problem(&malformed(&aggregator, &two_octet())),
        (7, AttributeDiscard)
    );
    // 8-octet AGGREGATOR from an old speaker is wrong too.
    let aggregator = update_with(&format!("{BASE} c0 07 08 0000fde9 0a000009"), "18 0a0001");
    assert_eq!(
        single_problem(&malformed(&aggregator, &two_octet())),
        (7, AttributeDiscard)
    );

    // Duplicate ORIGIN: the first wins.
    let duplicate = update_with(&format!("{BASE} 40 01 01 02"), "18 0a0001");
    let update = malformed(&duplicate, &two_octet());
    assert_eq!(single_problem(&update), (1, AttributeDiscard));
    assert_eq!(update.attributes[0], PathAttribute::Origin(Origin::Igp));
    assert_eq!(update.attributes.len(), 3);

    // AS4_PATH and AS4_AGGREGATOR from a 4-octet AS speaker (RFC 6793).
    let base4 = "40 01 01 00  40 02 06 02 01 0000fde9  40 03 04 0a000001";
    let as4 = update_with(
        &format!("{base4} c0 11 06 02 01 fa56ea01 c0 12 08 fa56ea01 0a000009"),
        "18 0a0001",
    );
    let update = malformed(&as4, &four_octet());
    assert_eq!(update.malformed.len(), 2);
    assert!(
        update
            .malformed
            .iter()
            .all(|m| m.action == AttributeDiscard)
    );
    assert_eq!(update.attributes.len(), 3);
    // A malformed AS4_PATH from an old speaker is discarded, AS_PATH kept.
    let bad_as4 = update_with(&format!("{BASE} c0 11 03 02 01 fa"), "18 0a0001");
    let update = malformed(&bad_as4, &two_octet());
    assert_eq!(single_problem(&update), (17, AttributeDiscard));
}

#[test]
fn missing_mandatory_attributes_treat_as_withdraw() {
    let no_next_hop = update_with("40 01 01 00 40 02 00", "18 0a0001");
    let update = malformed(&no_next_hop, &two_octet());
    assert_eq!(single_problem(&update), (3, ErrorAction::TreatAsWithdraw));
    assert_eq!(
        update.malformed[0].reason,
        "missing well-known attribute NEXT_HOP"
    );

    let nothing = update_with("", "18 0a0001");
    let update = malformed(&nothing, &two_octet());
    let missing: Vec<u8> = update.malformed.iter().map(|m| m.type_code).collect();
    assert_eq!(missing, vec![1, 2, 3]);

    // MP_REACH_NLRI needs ORIGIN and AS_PATH but no NEXT_HOP.
    let mp = "80 0e 0d 0001 01 04 0a000001 00 18 0a0001";
    let update = malformed(
        &update_with(&format!("40 01 01 00 {mp}"), ""),
        &four_octet(),
    );
    assert_eq!(single_problem(&update), (2, ErrorAction::TreatAsWithdraw));
    // Withdrawals alone need nothing.
    let update = malformed(&frame(2, &hex("0002 08 0a 0000")), &two_octet());
    assert!(update.malformed.is_empty());
}

#[test]
fn mp_reach_bad_next_hop_keeps_prefixes_to_withdraw() {
    // IPv6 next hop of 5 octets; the NLRI can still be located.
    let mp = "80 0e 0f 0002 01 05 2001000000 00 20 20010db8";
    let update = malformed(
        &update_with(&format!("40 01 01 00 40 02 00 {mp}"), ""),
        &four_octet(),
    );
    assert_eq!(single_problem(&update), (14, ErrorAction::TreatAsWithdraw));
    let PathAttribute::MpReach(reach) = &update.attributes[2] else {
        panic!("{:?}", update.attributes)
    };
    assert!(reach.next_hops.is_empty());
    assert_eq!(reach.nlri[0].prefix, "2001:db8::/32".parse().unwrap());
    // Flags error on MP_REACH: session reset (RFC 7606 §5.3), Attribute
    // Flags Error with the attribute as data.
    let flagged = "c0 0e 0d 0001 01 04 0a000001 00 18 0a0001";
    let message = update_with(&format!("40 01 01 00 40 02 00 {flagged}"), "");
    assert_eq!(
        notification_of(&message, &four_octet()),
        (3, 4, hex(flagged))
    );
}

#[test]
fn route_refresh_length_errors() {
    // Enhanced subtype with a wrong length: RFC 7313 §5, whole message.
    let begin = hex(&format!("{MARKER} 0018 05 0001 01 01 00"));
    assert_eq!(notification_of(&begin, &two_octet()), (7, 1, begin.clone()));
    // Plain request with a wrong length: header error.
    let request = hex(&format!("{MARKER} 0018 05 0001 00 01 00"));
    assert_eq!(
        notification_of(&request, &two_octet()),
        (1, 2, vec![0, 0x18])
    );
    let short = hex(&format!("{MARKER} 0015 05 0001"));
    assert_eq!(notification_of(&short, &two_octet()), (1, 2, vec![0, 0x15]));
}

#[test]
fn decode_errors_read_well() {
    let error = DecodeError::AttributeError {
        type_code: 2,
        subcode: 11,
        attribute: Bytes::new(),
        reason: "malformed AS_PATH: segment of length zero".to_string(),
    };
    assert_eq!(
        error.to_string(),
        "UPDATE: attribute type 2: malformed AS_PATH: segment of length zero"
    );
    assert_eq!(error.action(), ErrorAction::SessionReset);
    assert_eq!(
        error.notification().to_string(),
        "UPDATE Message Error / Malformed AS_PATH"
    );
    assert_eq!(
        DecodeError::BadMessageLength {
            length: 5000,
            message_type: 1
        }
        .to_string(),
        "bad message length 5000 for message type 1"
    );
}
