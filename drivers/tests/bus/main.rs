//! Integration tests over real zenoh sessions on loopback with real timing: the driver runs in-process
//! (or as the built binary) and a second session plays gated.

mod authority;
mod binary;
mod card_reader;
mod door;
mod harness;
mod light;
mod tls;
