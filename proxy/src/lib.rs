//! strait: the node proxy.
//!
//! The modules follow a connection: [`capture`] (kernel programs, original destination) ->
//! [`listener`] (accept) -> [`classify`] (what protocol a Service port speaks) -> [`route`] (which
//! Service port) -> [`l7`] (per-request HTTP/2 for gRPC ports) -> [`balance`] (which endpoint) ->
//! [`upstream`] (connect and relay, HTTP/2 pools), with [`gateway`] (Istio Gateways: TLS by SNI,
//! then the same L7 path),
//! [`config`], [`telemetry`] and [`admin`] beside them, [`handover`] (a successor strait taking
//! the node over), and [`app`] wiring them together.

pub mod admin;
pub mod app;
pub mod balance;
pub mod capture;
pub mod classify;
pub mod config;
pub mod gateway;
pub mod handover;
pub mod l7;
pub mod listener;
pub mod route;
pub mod telemetry;
pub mod upstream;
