// Arbitrary bytes through decode_message with every CodecParams variant:
// decoding must never panic, and a decode error must yield a NOTIFICATION.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use podroute_bgpd::wire::decode_message;

mod params;

fuzz_target!(|data: &[u8]| {
    let frame = Bytes::copy_from_slice(data);
    for params in params::all() {
        if let Err(error) = decode_message(frame.clone(), &params) {
            let _ = error.notification();
            let _ = error.to_string();
        }
    }
});
