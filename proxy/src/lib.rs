//! strait: the node proxy.
//!
//! The modules follow a connection: [`capture`] (kernel programs, original destination) ->
//! [`listener`] (accept) -> [`classify`] (what protocol a Service port speaks) -> [`route`] (which
//! Service port) -> [`balance`] (which endpoint) -> [`upstream`] (connect and relay), with
//! [`config`], [`telemetry`] and [`admin`] beside them, and [`app`] wiring them together.

pub mod admin;
pub mod app;
pub mod balance;
pub mod capture;
pub mod classify;
pub mod config;
pub mod listener;
pub mod route;
pub mod telemetry;
pub mod upstream;
