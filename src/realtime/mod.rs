//! Realtime: the WebSocket protocol's frames, the hub that knows who is connected, and the life
//! of one connection.
pub mod connection;
pub mod hub;
pub mod protocol;
pub mod revocations;
