//! Runnable examples for Vask's crates; see the `[[example]]` list in this
//! package's `Cargo.toml` and run one with
//! `cargo run -p vask-examples --example NAME`.
