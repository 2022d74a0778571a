// The CodecParams variants every target runs its input through: each
// combination of 4-octet AS, extended message and ADD-PATH.

use podroute_bgpd::wire::{CodecParams, Family};

pub fn all() -> Vec<CodecParams> {
    let mut variants = Vec::new();
    for four_octet_as in [false, true] {
        for extended_message in [false, true] {
            for add_path in [false, true] {
                let families = if add_path {
                    vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
                } else {
                    Vec::new()
                };
                variants.push(CodecParams {
                    four_octet_as,
                    extended_message,
                    add_path_receive: families.clone(),
                    add_path_send: families,
                });
            }
        }
    }
    variants
}
