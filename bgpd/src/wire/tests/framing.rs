// BgpCodec as tokio-util drives it: partial frames, several frames per
// read, errors raised as soon as the header shows them.

use tokio_util::codec::{Decoder, Encoder};

use super::*;
use crate::wire::*;

fn keepalive() -> Vec<u8> {
    hex("ffffffffffffffffffffffffffffffff 0013 04")
}

fn update() -> Vec<u8> {
    hex("ffffffffffffffffffffffffffffffff 0045 02
        0000 0027
        40 01 01 00 40 02 04 02 01 fde9 40 03 04 0a000001
        80 04 04 00000064 40 05 04 000000c8 c0 08 04 fde90064
        10 0a01 18 c0a800")
}

#[test]
fn byte_by_byte() {
    let mut codec = BgpCodec::new();
    let mut buffer = BytesMut::new();
    let bytes = update();
    let mut decoded = Vec::new();
    for (i, byte) in bytes.iter().enumerate() {
        buffer.put_u8(*byte);
        match codec.decode(&mut buffer).unwrap() {
            Some(message) => {
                assert_eq!(i, bytes.len() - 1);
                decoded.push(message);
            }
            None => assert!(i < bytes.len() - 1),
        }
    }
    assert_eq!(decoded.len(), 1);
    assert!(buffer.is_empty());
}

#[test]
fn two_messages_in_one_buffer() {
    let mut codec = BgpCodec::new();
    let mut buffer = BytesMut::new();
    buffer.put_slice(&update());
    buffer.put_slice(&keepalive());
    buffer.put_slice(&keepalive()[..5]);
    assert!(matches!(
        codec.decode(&mut buffer).unwrap(),
        Some(Message::Update(_))
    ));
    assert_eq!(codec.decode(&mut buffer).unwrap(), Some(Message::Keepalive));
    assert_eq!(codec.decode(&mut buffer).unwrap(), None);
    assert_eq!(buffer.len(), 5);
}

#[test]
fn header_errors_need_no_body() {
    let mut codec = BgpCodec::new();
    let mut bad_marker = BytesMut::from(&hex("ffffffffffffffffffffffffffffff00 0045 02")[..]);
    let error = codec.decode(&mut bad_marker).unwrap_err();
    assert_eq!(error.notification().unwrap().subcode, 1);

    let mut too_short = BytesMut::from(&hex("ffffffffffffffffffffffffffffffff 0010 04")[..]);
    let error = codec.decode(&mut too_short).unwrap_err();
    let notification = error.notification().unwrap();
    assert_eq!((notification.code, notification.subcode), (1, 2));
    assert_eq!(&notification.data[..], &[0, 0x10]);

    let mut too_long = BytesMut::from(&hex("ffffffffffffffffffffffffffffffff 1001 02")[..]);
    let error = codec.decode(&mut too_long).unwrap_err();
    assert_eq!(&error.notification().unwrap().data[..], &[0x10, 0x01]);
    codec.set_params(CodecParams {
        extended_message: true,
        ..CodecParams::default()
    });
    let mut now_fine = BytesMut::from(&hex("ffffffffffffffffffffffffffffffff 1001 02")[..]);
    assert_eq!(codec.decode(&mut now_fine).unwrap(), None);
}

#[test]
fn encoder_appends_and_leaves_nothing_on_error() {
    let mut codec = BgpCodec::new();
    let mut out = BytesMut::new();
    codec.encode(Message::Keepalive, &mut out).unwrap();
    codec
        .encode(
            &Message::Notification(Notification::hold_timer_expired()),
            &mut out,
        )
        .unwrap();
    assert_eq!(out.len(), 19 + 21);
    let too_big = Message::Notification(Notification::new(6, 0, Bytes::from(vec![0; 5000])));
    assert!(matches!(
        codec.encode(&too_big, &mut out),
        Err(CodecError::Encode(EncodeError::MessageTooLong { .. }))
    ));
    assert_eq!(out.len(), 19 + 21);
    assert_eq!(codec.decode(&mut out).unwrap(), Some(Message::Keepalive));
    assert_eq!(
        codec.decode(&mut out).unwrap(),
        Some(Message::Notification(Notification::hold_timer_expired()))
    );
}

#[test]
fn decoded_values_share_the_frame() {
    // Unknown attribute values and NOTIFICATION data point into the frame.
    let frame = Bytes::from(hex(
        "ffffffffffffffffffffffffffffffff 001a 03 06 02 04 61626364",
    ));
    let range = frame.as_ptr_range();
    let Message::Notification(notification) = decode_message(frame.clone(), &two_octet()).unwrap()
    else {
        panic!()
    };
    assert!(range.contains(&notification.data.as_ptr()));
}
