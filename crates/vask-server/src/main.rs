//! Vask server (being built).

fn main() {}
