//! strait's end-to-end test support.
//!
//! [`lab`] builds a small node on one Linux host: a node network namespace with a bridge, pod
//! namespaces on veths and a cgroup v2 directory for the pods. The privileged tests in `tests/`
//! and `cargo xtask lab` share it, so both exercise the same topology.
//!
//! The `strait-lab-agent` binary (`src/bin`) is the servers and clients that run inside the lab.
//! [`greeter`] is the gRPC Greeter (the `strait-greeter` binary, and Python's grpcio in
//! `python/`) that the L7 tests run, in the lab or on loopback; [`web`] is its plain HTTP
//! counterpart (HTTP/1.1 and HTTP/2 echo servers). [`manifests`] writes the Services and Pods
//! the tests configure strait with; [`h2load`] drives gRPC load with nghttp2's h2load;
//! [`browser`] runs headless Chromium, which [`dashboard`] points at strait's admin dashboard;
//! [`kube_api`] is a fake Kubernetes API server for the `--kubernetes` source.

pub mod browser;
pub mod dashboard;
pub mod greeter;
pub mod h2load;
pub mod kube_api;
pub mod lab;
pub mod manifests;
pub mod web;
