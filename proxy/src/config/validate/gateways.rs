//! Gateway servers strait cannot serve: a protocol or TLS mode it does not implement, or a
//! credential (Secret) that is unusable. Istio accepts these Gateways and their other servers
//! work, so each is a warning naming the server's field. A Secret that is not in the config is
//! not reported here (see [`Unserved::secret_missing`](crate::config::gateway::Unserved)): a
//! strait that serves the Gateway logs it.

use crate::config::{
    diagnostics::{Diagnostic, Finding},
    gateway::server_mode,
    resources::{Gateway, Resources},
};

pub(super) fn check(resources: &Resources) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for gateway in resources.of::<Gateway>() {
        for (index, server) in gateway.resource.spec.servers.iter().enumerate() {
            let Err(unserved) = server_mode(gateway.resource, server, resources) else {
                continue;
            };
            if unserved.secret_missing {
                continue;
            }
            let field = format!("spec.servers[{index}].{}", unserved.field);
            let finding = Finding::warning(field, unserved.message);
            diagnostics.push(finding.place(&gateway.source, &gateway.subject()));
        }
    }
    diagnostics
}
