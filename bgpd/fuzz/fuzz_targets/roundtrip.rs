// decode → encode → decode must give the same message: whatever we accept
// we can send on, and what we send reads back the same.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use podroute_bgpd::wire::{
    AsSegment, CodecParams, Message, PathAttribute, Update, decode_message, encode_message,
};

mod params;

fuzz_target!(|data: &[u8]| {
    let frame = Bytes::copy_from_slice(data);
    for params in params::all() {
        let Ok(message) = decode_message(frame.clone(), &params) else {
            continue;
        };
        // The RFC 7606 record is a property of what was received, not of
        // the message, and dropped attributes are not sent on.
        let message = match message {
            Message::Update(mut update) => {
                if !update.malformed.is_empty() || as4_path_would_be_void(&update, &params) {
                    continue;
                }
                update.malformed.clear();
                Message::Update(update)
            }
            other => other,
        };
        let Ok(bytes) = encode_message(&message, &params) else {
            continue;
        };
        let again = decode_message(bytes.freeze(), &params)
            .unwrap_or_else(|error| panic!("re-decoding {message:?} failed: {error}"));
        assert_eq!(again, message);
    }
});

/// RFC 6793 §4.2.3: towards a 2-octet AS peer, an AGGREGATOR that is not
/// AS_TRANS makes the receiver ignore AS4_PATH, so a path with 4-octet ASes
/// cannot come back unchanged. That is the RFC, not a codec bug.
fn as4_path_would_be_void(update: &Update, params: &CodecParams) -> bool {
    if params.four_octet_as {
        return false;
    }
    let plain_aggregator = update.attributes.iter().any(|a| {
        matches!(a, PathAttribute::Aggregator(g) if g.asn <= 65535 && g.asn != 23456)
    });
    let four_octet_path = update.attributes.iter().any(|a| match a {
        PathAttribute::AsPath(path) => path.segments.iter().any(|segment| {
            let (AsSegment::Set(asns) | AsSegment::Sequence(asns)) = segment;
            asns.iter().any(|&asn| asn > 65535)
        }),
        _ => false,
    });
    plain_aggregator && four_octet_path
}
