//! sitediff command line entry point.
fn main() {}
