// Bytes through BgpCodec::decode until it wants more or fails, as a TCP
// stream would deliver them; the first byte picks the CodecParams variant
// and the split point of two reads.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use podroute_bgpd::wire::BgpCodec;
use tokio_util::codec::Decoder;

mod params;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let variants = params::all();
    let params = variants[usize::from(selector) % variants.len()].clone();
    let split = usize::from(selector).min(stream.len());
    let (first, second) = stream.split_at(split);
    let mut codec = BgpCodec::with_params(params);
    let mut buffer = BytesMut::new();
    for chunk in [first, second] {
        buffer.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buffer) {
                Ok(Some(message)) => {
                    let _ = format!("{message:?}");
                }
                Ok(None) => break,
                Err(error) => {
                    let _ = error.notification();
                    return;
                }
            }
        }
    }
});
