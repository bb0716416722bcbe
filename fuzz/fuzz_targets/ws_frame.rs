//! The WebSocket frame parser: any text a client sends must give a frame or one of the documented
//! error codes, never a panic.
#![no_main]

use chatd::{
    error::ErrorCode,
    realtime::protocol::{ClientFrame, parse_client_frame},
};
use libfuzzer_sys::fuzz_target;

const CODES: &[ErrorCode] = &[ErrorCode::InvalidJson, ErrorCode::InvalidFrame, ErrorCode::UnknownType];

fuzz_target!(|data: &[u8]| {
    // The server only ever parses text frames, which are UTF-8 by the time they reach the parser.
    let text = String::from_utf8_lossy(data);
    match parse_client_frame(&text) {
        Ok(frame) => {
            // Only JSON objects are frames.
            assert!(text.trim_start().starts_with('{'), "a non-object parsed as {frame:?}");
            match &frame {
                ClientFrame::SendMessage { client_id, to, conversation_id, .. } => {
                    let _ = chatd::domain::ClientId::parse(client_id);
                    assert!(to.is_some() != conversation_id.is_some(), "a send naming no or two conversations: {frame:?}");
                }
                ClientFrame::Typing { to, conversation_id } => assert!(to.is_some() != conversation_id.is_some(), "{frame:?}"),
                ClientFrame::Read { peer, conversation_id, .. } => assert!(peer.is_some() != conversation_id.is_some(), "{frame:?}"),
                _ => {}
            }
        }
        Err(error) => assert!(CODES.contains(&error.code), "undocumented code {:?}", error.code),
    }
});
