//! Runnable examples for mshale-fl, one file each in this directory; run one with
//! `cargo run -p fl-examples --example NAME`.
