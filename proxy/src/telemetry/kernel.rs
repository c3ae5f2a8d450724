//! `strait_kernel_*`: the kernel's per-Service counters, read from the BPF map at scrape time and
//! labelled with the Service the address belongs to.

use std::sync::Arc;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{counter::ConstCounter, MetricType},
};
use strait_common::Counters;
use tokio::sync::watch;

use crate::{capture::ebpf::KernelCounters, config::Model};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KernelLabels {
    destination_service: String,
    destination_port: u16,
}

pub struct KernelCollector {
    counters: Arc<KernelCounters>,
    model: watch::Receiver<Arc<Model>>,
}

impl KernelCollector {
    pub fn new(counters: Arc<KernelCounters>, model: watch::Receiver<Arc<Model>>) -> Self {
        Self { counters, model }
    }
}

impl std::fmt::Debug for KernelCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KernelCollector")
    }
}

type Field = fn(&Counters) -> u64;

pub(super) const FAMILIES: [(&str, &str, Field); 4] = [
    (
        "strait_kernel_connections_opened",
        "Captured connections opened, counted by the kernel",
        |c| c.opened,
    ),
    (
        "strait_kernel_connections_closed",
        "Captured connections closed, counted by the kernel",
        |c| c.closed,
    ),
    (
        "strait_kernel_sent_bytes",
        "Payload bytes captured clients sent and had acknowledged (TCP bytes_acked at close, less SYN and FIN)",
        |c| c.sent_bytes,
    ),
    (
        "strait_kernel_received_bytes",
        "Bytes captured clients received (TCP bytes_received at close)",
        |c| c.received_bytes,
    ),
];

impl Collector for KernelCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let model = self.model.borrow().clone();
        let rows: Vec<(KernelLabels, Counters)> = self
            .counters
            .snapshot()
            .into_iter()
            .map(|(addr, counters)| {
                // An address whose Service is gone keeps its numbers under its address.
                let service = model
                    .service_port_by_addr(addr)
                    .map(|port| port.service().fqdn())
                    .unwrap_or_else(|| addr.ip().to_string());
                (
                    KernelLabels {
                        destination_service: service,
                        destination_port: addr.port(),
                    },
                    counters,
                )
            })
            .collect();
        for (name, help, field) in FAMILIES {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (labels, counters) in &rows {
                ConstCounter::new(field(counters)).encode(family.encode_family(labels)?)?;
            }
        }
        Ok(())
    }
}
