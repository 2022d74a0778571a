// IANA registry numbers used on the wire: message types, optional
// parameters, capability codes, path attribute types, AFI/SAFI and
// NOTIFICATION error codes. Each constant names the RFC section defining it.

/// RFC 4271 §4.1: the 16-octet all-ones marker.
pub const MARKER: [u8; 16] = [0xff; 16];
/// RFC 4271 §4.1: marker, length, type.
pub const HEADER_LEN: usize = 19;
/// RFC 4271 §4.1: smallest message (KEEPALIVE).
pub const MIN_MESSAGE_LEN: usize = HEADER_LEN;
/// RFC 4271 §4.1: largest message without the extended message capability.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// RFC 8654 §4: largest message with the extended message capability.
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;
/// RFC 4271 §4.2.
pub const BGP_VERSION: u8 = 4;
/// RFC 6793 §9: the 2-octet placeholder for a 4-octet AS number.
pub const AS_TRANS: u16 = 23456;
/// RFC 4271 §8.2.1.
pub const BGP_PORT: u16 = 179;
/// RFC 4271 §4.2: header + version, my AS, hold time, BGP id, opt len.
pub const OPEN_MIN_LEN: usize = 29;
/// RFC 4271 §4.3: header + the two 2-octet length fields.
pub const UPDATE_MIN_LEN: usize = 23;
/// RFC 4271 §4.5: header + error code + error subcode.
pub const NOTIFICATION_MIN_LEN: usize = 21;
/// RFC 2918 §3: header + AFI (2) + reserved/subtype (1) + SAFI (1).
pub const ROUTE_REFRESH_LEN: usize = 23;
/// RFC 4271 §4.3: a segment counts its ASes in one octet.
pub const MAX_AS_SEGMENT_LEN: usize = 255;
/// RFC 9003 §2: the shutdown communication is at most 255 octets.
pub const MAX_SHUTDOWN_COMMUNICATION_LEN: usize = 255;
/// RFC 4271 §4.2: hold times of 1 and 2 seconds are refused.
pub const MIN_NONZERO_HOLD_TIME: u16 = 3;
/// RFC 7911 §3: the path identifier preceding each NLRI.
pub const PATH_ID_LEN: usize = 4;

/// RFC 4271 §4.1 message types, plus ROUTE-REFRESH (RFC 2918 §3).
pub mod message_type {
    pub const OPEN: u8 = 1;
    pub const UPDATE: u8 = 2;
    pub const NOTIFICATION: u8 = 3;
    pub const KEEPALIVE: u8 = 4;
    pub const ROUTE_REFRESH: u8 = 5;
}

/// RFC 5492 §4: the optional parameter carrying capabilities.
pub const OPT_PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072 §2: Non-Ext OP Len and Non-Ext OP Type of 255 announce the
/// extended (2-octet length) optional parameters format.
pub const OPT_PARAM_EXTENDED_LENGTH: u8 = 255;

/// RFC 4724 §3 graceful restart capability bits.
pub mod graceful_restart {
    /// Restart State (R) bit of the Restart Flags.
    pub const RESTART_STATE: u16 = 0x8000;
    /// Graceful Notification (N) bit (RFC 8538 §2).
    pub const NOTIFICATION: u16 = 0x4000;
    /// The 12-bit Restart Time.
    pub const TIME_MASK: u16 = 0x0fff;
    /// Forwarding State (F) bit of the per-family flags.
    pub const FORWARDING_STATE: u8 = 0x80;
}

/// RFC 7911 §4 Send/Receive field.
pub mod add_path_mode {
    pub const RECEIVE: u8 = 1;
    pub const SEND: u8 = 2;
    pub const BOTH: u8 = 3;
}

/// RFC 7313 §3.2 ROUTE-REFRESH message subtypes.
pub mod route_refresh_subtype {
    pub const REQUEST: u8 = 0;
    pub const BEGINNING_OF_REFRESH: u8 = 1;
    pub const END_OF_REFRESH: u8 = 2;
}

/// Capability codes (IANA "Capability Codes").
pub mod capability_code {
    pub const MULTIPROTOCOL: u8 = 1; // RFC 4760
    pub const ROUTE_REFRESH: u8 = 2; // RFC 2918
    pub const EXTENDED_NEXT_HOP: u8 = 5; // RFC 8950
    pub const EXTENDED_MESSAGE: u8 = 6; // RFC 8654
    pub const GRACEFUL_RESTART: u8 = 64; // RFC 4724
    pub const FOUR_OCTET_AS: u8 = 65; // RFC 6793
    pub const ADD_PATH: u8 = 69; // RFC 7911
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70; // RFC 7313
}

/// Path attribute type codes (IANA "BGP Path Attributes").
pub mod attr_type {
    pub const ORIGIN: u8 = 1; // RFC 4271
    pub const AS_PATH: u8 = 2; // RFC 4271
    pub const NEXT_HOP: u8 = 3; // RFC 4271
    pub const MULTI_EXIT_DISC: u8 = 4; // RFC 4271
    pub const LOCAL_PREF: u8 = 5; // RFC 4271
    pub const ATOMIC_AGGREGATE: u8 = 6; // RFC 4271
    pub const AGGREGATOR: u8 = 7; // RFC 4271
    pub const COMMUNITIES: u8 = 8; // RFC 1997
    pub const ORIGINATOR_ID: u8 = 9; // RFC 4456
    pub const CLUSTER_LIST: u8 = 10; // RFC 4456
    pub const MP_REACH_NLRI: u8 = 14; // RFC 4760
    pub const MP_UNREACH_NLRI: u8 = 15; // RFC 4760
    pub const EXTENDED_COMMUNITIES: u8 = 16; // RFC 4360
    pub const AS4_PATH: u8 = 17; // RFC 6793
    pub const AS4_AGGREGATOR: u8 = 18; // RFC 6793
    pub const LARGE_COMMUNITY: u8 = 32; // RFC 8092
}

/// RFC 4271 §4.3 attribute flag bits.
pub mod attr_flag {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// RFC 4271 §4.3 AS_PATH segment types.
pub mod as_path_segment {
    pub const AS_SET: u8 = 1;
    pub const AS_SEQUENCE: u8 = 2;
}

/// RFC 4271 §4.5 NOTIFICATION error codes and their subcodes (§6.1-6.7),
/// with the additions of RFC 4486, RFC 5492, RFC 7313 and RFC 8203.
pub mod notification {
    pub const MESSAGE_HEADER_ERROR: u8 = 1;
    pub const OPEN_MESSAGE_ERROR: u8 = 2;
    pub const UPDATE_MESSAGE_ERROR: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM_ERROR: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH_MESSAGE_ERROR: u8 = 7; // RFC 7313 §5

    /// Message Header Error subcodes (RFC 4271 §6.1).
    pub mod header {
        pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
        pub const BAD_MESSAGE_LENGTH: u8 = 2;
        pub const BAD_MESSAGE_TYPE: u8 = 3;
    }

    /// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492 §5).
    pub mod open {
        /// RFC 4271 §6.2: a recognised optional parameter that is malformed.
        pub const UNSPECIFIC: u8 = 0;
        pub const UNSUPPORTED_VERSION_NUMBER: u8 = 1;
        pub const BAD_PEER_AS: u8 = 2;
        pub const BAD_BGP_IDENTIFIER: u8 = 3;
        pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
        pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
        pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    }

    /// UPDATE Message Error subcodes (RFC 4271 §6.3).
    pub mod update {
        pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
        pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
        pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
        pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
        pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
        pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
        pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
        pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
        pub const INVALID_NETWORK_FIELD: u8 = 10;
        pub const MALFORMED_AS_PATH: u8 = 11;
    }

    /// FSM Error subcodes (RFC 6608 §4).
    pub mod fsm {
        pub const UNSPECIFIED: u8 = 0;
        pub const UNEXPECTED_IN_OPENSENT: u8 = 1;
        pub const UNEXPECTED_IN_OPENCONFIRM: u8 = 2;
        pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
    }

    /// Cease subcodes (RFC 4486 §4).
    pub mod cease {
        pub const MAX_PREFIXES_REACHED: u8 = 1;
        pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
        pub const PEER_DECONFIGURED: u8 = 3;
        pub const ADMINISTRATIVE_RESET: u8 = 4;
        pub const CONNECTION_REJECTED: u8 = 5;
        pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
        pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
        pub const OUT_OF_RESOURCES: u8 = 8;
        pub const HARD_RESET: u8 = 9; // RFC 8538
    }

    /// ROUTE-REFRESH Message Error subcodes (RFC 7313 §5).
    pub mod route_refresh {
        pub const INVALID_MESSAGE_LENGTH: u8 = 1;
    }
}
