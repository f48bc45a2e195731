//! Criterion benchmarks of hashing and verification.

fn main() {}
