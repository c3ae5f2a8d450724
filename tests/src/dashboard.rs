//! strait's admin dashboard as a user sees it: the live summary behind it (`/stats/summary`)
//! and the page rendered by headless Chromium, checked to show each service live, then kept as
//! a screenshot. The loopback dashboard test and `cargo xtask lab --screenshot` share it.

use std::{path::Path, time::Duration};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use crate::{browser::Chromium, lab::wait_until};

/// Until the summary shows what is waited for: a rate needs a complete second of traffic.
pub const SETTLE: Duration = Duration::from_secs(10);
/// The screenshot's size: the graph and the service table side by side.
const SIZE: (u32, u32) = (1280, 760);

/// Fetches a URL wherever strait's admin server can be reached: status code and body.
pub type Get<'a> = &'a (dyn Fn(&str) -> Result<(u16, String)> + Sync);

/// `/stats/summary` of the admin server at `admin` (`IP:PORT`).
pub fn summary(get: Get, admin: &str) -> Result<Value> {
    let (code, body) = get(&format!("http://{admin}/stats/summary"))?;
    ensure!(code == 200, "/stats/summary answered {code}: {body}");
    Ok(serde_json::from_str(&body)?)
}

/// The summary's services (`name.ns.svc.cluster.local`) with a request rate above zero.
pub fn live_services(summary: &Value) -> Vec<String> {
    let services = summary["services"].as_array().into_iter().flatten();
    services
        .filter(|s| s["request_rate"].as_f64() > Some(0.0))
        .filter_map(|s| Some(s["destination_service"].as_str()?.to_owned()))
        .collect()
}

/// Waits until the summary shows every one of `services` live, then renders the page and
/// checks that it shows each of them with a rate and is updating itself; keeps a PNG of it
/// at `png` and returns the rendered DOM. Traffic must go on meanwhile: the rates cover the
/// last seconds only.
pub fn capture(
    chromium: &Chromium,
    get: Get,
    admin: &str,
    services: &[&str],
    png: &Path,
) -> Result<String> {
    let all_live = |summary: &Value| {
        let live = live_services(summary);
        services.iter().all(|s| live.iter().any(|l| l == s))
    };
    let settled = wait_until(SETTLE, || summary(get, admin).is_ok_and(|s| all_live(&s)));
    ensure!(
        settled,
        "not every one of {services:?} has a request rate: {:#}",
        summary(get, admin)?
    );
    let page = format!("http://{admin}/");
    let dom = chromium.dump_dom(&page)?;
    for service in services {
        let rate = rendered_rate(&dom, service)
            .with_context(|| format!("no row for {service} in the rendered page:\n{dom}"))?;
        ensure!(rate > 0.0, "the page shows no rate for {service}:\n{dom}");
    }
    ensure!(
        dom.contains("class=\"live\""),
        "the page is not live:\n{dom}"
    );
    chromium.screenshot(&page, png, SIZE)?;
    Ok(dom)
}

/// The `data-rate` of the page's row for `service`.
pub fn rendered_rate(dom: &str, service: &str) -> Result<f64> {
    let row = format!("data-service=\"{service}\" data-rate=\"");
    let Some(start) = dom.find(&row) else {
        bail!("no row");
    };
    let rest = &dom[start + row.len()..];
    let value = &rest[..rest.find('"').context("an unterminated data-rate")?];
    Ok(value.parse()?)
}
