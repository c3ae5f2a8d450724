//! Configuration: manifests from files, validated, resolved into the model the proxy serves.
//!
//! The path: files and directories ([`load`]) are split into YAML documents
//! ([`documents`] says how they are numbered), each decoded into the resource its apiVersion and
//! kind name ([`resources`]), checked ([`validate`]), and resolved into a [`Model`]: Services,
//! their ports classified ([`crate::classify`]), their endpoints, the DestinationRule traffic
//! policy for each ([`policy`]) and their HTTP routes from VirtualServices ([`route`]).
//! [`watch()`] follows the files and publishes a new model on every good change.
//!
//! Problems are [`Diagnostic`]s, one line each: `error|warning: FILE#DOC KIND/NAMESPACE/NAME:
//! FIELD: message`.
//! - An error drops its document, and only it (Kubernetes or Istio would refuse it): not YAML,
//!   no apiVersion or kind, an apiVersion that does not serve the kind, a field of the wrong
//!   type or out of range (a bad duration, regex, percentage, status or gRPC status name), a
//!   duplicate resource or cluster IP, conflicting ports, a header name that is not one, route
//!   weights that are all 0, an empty fault, a header change or rewrite Istio refuses.
//! - A warning drops nothing: a field strait does not read (a typo, or Istio API strait does not
//!   implement; standard Kubernetes fields with no bearing on routing pass silently), a kind
//!   strait does not read, a route or mirror to a host, port or subset that does not exist, two
//!   VirtualServices for one host, weights that do not add up to 100, a fault that injects
//!   nothing (no percentage, status or delay), and what Istio's validation refuses but has one
//!   plain reading (a route timeout of 0s, retry settings beside `attempts: 0`, a `retryOn`
//!   token that is no condition).
//!
//! Loading policy, the same at start and on reload except for one rule: a reload is rejected,
//! and the last good model kept, when a path cannot be read or a document cannot be decoded
//! (see [`watch()`]). Other errors drop their documents as at start, so a file with a known bad
//! document (the seed's DestinationRule) still reloads.

mod bindings;
mod decode;
mod describe;
mod diagnostics;
pub mod documents;
mod fields;
mod files;
pub mod gateway;
mod hosts;
mod identity;
mod kinds;
pub mod kubernetes;
mod load;
mod model;
pub mod policy;
pub mod precedence;
mod read;
pub mod resources;
pub mod route;
mod rules;
mod validate;
mod watch;

use std::{io::Write, path::PathBuf};

pub use self::{
    describe::describe_command,
    diagnostics::{Diagnostic, Severity, Source, Subject},
    hosts::{
        canonical_host, cluster_name, fqdn, split_authority, Host, ServiceName, CLUSTER_DOMAIN,
    },
    identity::WorkloadIdentity,
    kinds::Kind,
    load::{assemble, load, load_str, Checked, LoadError, Loaded},
    model::{
        Backend, Endpoint, EndpointSource, EnrolledPod, Model, Service, ServicePort, ServicePortRef,
    },
    policy::{ConnectionPool, H2UpgradePolicy, OutlierDetection, TrafficPolicy},
    route::{
        Abort, AbortStatus, Delay, Destinations, Fault, GrpcCodes, HeaderChange, HeaderChanges,
        HttpRoute, Mirror, PathRewrite, Percentage, RequestHead, RequestMatch, RetryOn,
        RetryPolicy, RouteDestination, RouteOrigin, Target, TryOutcome, Unresolved,
    },
    watch::{watch, ConfigWatch, ReloadStats, WatchError, DEBOUNCE},
};

/// `strait validate`: prints one line per problem to `out` and returns the exit code: 0 when
/// clean or only warnings, 1 when any error (with `strict`, any warning too, printed as an
/// error), 2 when a path cannot be read.
pub fn validate_command(paths: &[PathBuf], strict: bool, out: &mut impl Write) -> i32 {
    let loaded = match load(paths) {
        Ok(loaded) => loaded,
        Err(err) => {
            // Nothing more useful can be said if even this write fails.
            let _ = writeln!(out, "error: {err}");
            return 2;
        }
    };
    let printed = loaded.diagnostics.iter().try_for_each(|diagnostic| {
        let diagnostic = if strict {
            diagnostic.clone().escalated()
        } else {
            diagnostic.clone()
        };
        writeln!(out, "{diagnostic}")
    });
    match (printed, loaded.has_errors(strict)) {
        // The verdict is the report; without it the run failed.
        (Err(_), _) => 2,
        (Ok(()), true) => 1,
        (Ok(()), false) => 0,
    }
}

#[cfg(test)]
mod tests;
