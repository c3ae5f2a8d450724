//! `strait_config_reloads_total{result}`: config reloads applied and rejected, so a broken
//! config push shows on a dashboard, not only in the log.

use std::sync::Arc;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, MetricType},
};

use crate::config::ReloadStats;

#[derive(Debug)]
pub struct ReloadCollector(pub Arc<ReloadStats>);

impl Collector for ReloadCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "strait_config_reloads",
            "Config reloads after a file change, by result (a rejected one keeps the last good config)",
            None,
            MetricType::Counter,
        )?;
        for (result, count) in [
            ("accepted", self.0.accepted()),
            ("rejected", self.0.rejected()),
        ] {
            ConstCounter::new(count).encode(family.encode_family(&[("result", result)])?)?;
        }
        Ok(())
    }
}
