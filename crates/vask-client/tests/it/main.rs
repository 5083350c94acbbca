//! Integration tests: a real vask-server in-process on 127.0.0.1, the
//! client on real sockets. Every wait is bounded.

mod common;

mod cache_channels;
mod client_events;
mod encrypted_channels;
mod http_authorizer;
mod http_errors;
mod presence;
mod private_channels;
mod publish_public;
mod queries;
mod reconnect;
mod reconnect_policy;
mod subscription_count;
mod tls;
mod users;
