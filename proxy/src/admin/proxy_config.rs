//! `strait proxy-config listeners|routes|clusters|endpoints|all`: a running strait's
//! `/config_dump`, as istioctl's aligned tables or as JSON.

use std::{fmt::Write as _, net::SocketAddr};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{client::conn::http1, Request};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

use super::config_dump::{Cluster, ClusterEndpoint, ConfigDump, Listener, RouteTable};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    Listeners,
    Routes,
    Clusters,
    Endpoints,
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// Fetches the dump from the admin server at `admin` and renders `section`.
pub async fn proxy_config(admin: SocketAddr, section: Section, output: Output) -> Result<String> {
    let dump = fetch(admin).await?;
    Ok(render(&dump, section, output))
}

async fn fetch(admin: SocketAddr) -> Result<ConfigDump> {
    let stream = TcpStream::connect(admin)
        .await
        .with_context(|| format!("connecting to strait's admin server at {admin}"))?;
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::get("/config_dump")
        .header(hyper::header::HOST, admin.to_string())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!(
            "{admin}/config_dump answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    serde_json::from_slice(&body).context("reading /config_dump")
}

pub fn render(dump: &ConfigDump, section: Section, output: Output) -> String {
    match output {
        Output::Json => json(dump, section),
        Output::Table => tables(dump, section),
    }
}

fn json(dump: &ConfigDump, section: Section) -> String {
    fn pretty(value: &impl Serialize) -> String {
        // Serializing plain data to a string cannot fail.
        serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
    }
    match section {
        Section::Listeners => pretty(&dump.listeners),
        Section::Routes => pretty(&dump.routes),
        Section::Clusters => pretty(&dump.clusters),
        Section::Endpoints => pretty(&dump.endpoints),
        Section::All => pretty(dump),
    }
}

/// One section's table.
type Render = fn(&ConfigDump) -> String;

fn tables(dump: &ConfigDump, section: Section) -> String {
    let sections: [(Section, Render); 4] = [
        (Section::Listeners, |d| listeners(&d.listeners)),
        (Section::Routes, |d| routes(&d.routes)),
        (Section::Clusters, |d| clusters(&d.clusters)),
        (Section::Endpoints, |d| endpoints(&d.endpoints)),
    ];
    sections
        .iter()
        .filter(|(which, _)| section == Section::All || section == *which)
        .map(|(_, table)| table(dump))
        .collect::<Vec<_>>()
        .join("\n")
}

fn listeners(listeners: &[Listener]) -> String {
    let rows = listeners.iter().map(|l| {
        vec![
            l.address.ip().to_string(),
            l.port.to_string(),
            l.service.clone(),
            l.protocol.clone(),
            l.classified_by.clone(),
        ]
    });
    table(
        &["ADDRESS", "PORT", "SERVICE", "PROTOCOL", "CLASSIFIED BY"],
        rows,
    )
}

fn routes(tables: &[RouteTable]) -> String {
    let rows = tables.iter().flat_map(|t| {
        t.routes.iter().map(|r| {
            let matches = if r.matches.is_empty() {
                "*".to_owned()
            } else {
                r.matches.join(" or ")
            };
            let destinations: Vec<String> = r
                .destinations
                .iter()
                .map(|d| match (&d.cluster, &d.unresolved) {
                    (Some(cluster), _) => format!("{cluster} {}%", d.percent),
                    (None, why) => format!("NR ({}) {}%", why.as_deref().unwrap_or("-"), d.percent),
                })
                .collect();
            vec![
                t.name.clone(),
                r.name.clone(),
                matches,
                destinations.join(", "),
            ]
        })
    });
    table(&["NAME", "ROUTE", "MATCH", "DESTINATIONS"], rows)
}

fn clusters(clusters: &[Cluster]) -> String {
    let rows = clusters.iter().map(|c| {
        vec![
            c.service.clone(),
            c.port.to_string(),
            c.subset.clone().unwrap_or_else(|| "-".to_owned()),
            "outbound".to_owned(),
            c.protocol.clone(),
            c.load_balancer.clone(),
            c.endpoints.to_string(),
        ]
    });
    let headers = [
        "SERVICE FQDN",
        "PORT",
        "SUBSET",
        "DIRECTION",
        "PROTOCOL",
        "LB",
        "ENDPOINTS",
    ];
    table(&headers, rows)
}

fn endpoints(endpoints: &[ClusterEndpoint]) -> String {
    let rows = endpoints.iter().map(|e| {
        let columns = [&e.health, &e.outlier, &e.cluster];
        let address = e.address.to_string();
        std::iter::once(address)
            .chain(columns.map(Clone::clone))
            .collect()
    });
    table(&["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"], rows)
}

/// Columns padded to their widest cell, two spaces apart, as istioctl prints them.
fn table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = std::iter::once(headers.iter().map(|h| h.to_string()).collect())
        .chain(rows)
        .collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
