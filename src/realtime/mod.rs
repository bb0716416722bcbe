//! Realtime: the WebSocket protocol's frames and their AsyncAPI document, the hub that knows who
//! is connected, each socket's outbox, and the life of one connection.
pub mod asyncapi;
pub mod connection;
pub mod hub;
pub mod outbox;
pub mod protocol;
pub mod revocations;
