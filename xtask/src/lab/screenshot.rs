//! `cargo xtask lab --screenshot PNG`: strait's admin dashboard with the lab's traffic on it,
//! rendered by headless Chromium in the node's namespace (where the admin server listens) while
//! the client plays rounds, once every Service the scenario calls shows a live rate.

use std::path::Path;

use anyhow::{Context, Result};
use strait_tests::{browser::Chromium, dashboard, lab::NodeNamespace};

use super::ADMIN;

/// Renders the dashboard from inside `node`, checks it shows each of `services` live (see
/// [`dashboard::capture`]), and keeps it at `png`; returns the rendered DOM.
pub fn take(node: NodeNamespace, services: &[&str], png: &Path) -> Result<String> {
    let chromium = Chromium::find()
        .context("the screenshot needs chromium: apt-get install chromium")?
        .in_namespace(node.clone());
    let get = |url: &str| node.http_get(url);
    dashboard::capture(&chromium, &get, ADMIN, services, png)
}
