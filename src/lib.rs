//! The `samverka` command line, over the gateway library
//! ([`samverka_gateway`]), the adapter SDK and the reference adapters.
//!
//! `src/main.rs` only parses the arguments and hands over to [`cli`]; the
//! commands live in a library so that the end-to-end tests in `tests/` and
//! the benchmarks start exactly the network the demo starts
//! ([`cli::demo::Network`]).

pub mod cli;
