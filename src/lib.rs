//! The library half of the `envctl` package. It exists so that the Machinefile parser
//! and validator can be reached from outside the binary: by the fuzz target in `fuzz/`
//! and by tests. Everything else stays private to the binary (`src/main.rs`).

pub mod manifest;
