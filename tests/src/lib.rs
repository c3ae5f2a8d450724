//! strait's end-to-end test support.
//!
//! [`lab`] builds a small node on one Linux host: a node network namespace with a bridge, pod
//! namespaces on veths and a cgroup v2 directory for the pods. The privileged tests in `tests/`
//! and `cargo xtask lab` share it, so both exercise the same topology.
//!
//! The `strait-lab-agent` binary (`src/bin`) is the servers and clients that run inside the lab.

pub mod lab;
