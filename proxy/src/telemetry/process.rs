//! The standard `process_*` metrics (as Prometheus client libraries export them), read from
//! `/proc/self` at scrape time: CPU seconds, memory, file descriptors, threads, start time.

use procfs::process::{LimitValue, Process};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
};

#[derive(Debug, Default)]
pub struct ProcessCollector;

/// One reading of `/proc/self`.
#[derive(Debug, PartialEq)]
struct Reading {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    open_fds: u64,
    max_fds: Option<u64>,
    threads: i64,
    start_time_seconds: f64,
}

impl Reading {
    fn now() -> procfs::ProcResult<Self> {
        let me = Process::myself()?;
        let stat = me.stat()?;
        let ticks = procfs::ticks_per_second() as f64;
        let max_fds = match me.limits()?.max_open_files.soft_limit {
            LimitValue::Value(limit) => Some(limit),
            LimitValue::Unlimited => None,
        };
        Ok(Self {
            cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
            resident_bytes: stat.rss * procfs::page_size(),
            virtual_bytes: stat.vsize,
            open_fds: me.fd_count()? as u64,
            max_fds,
            threads: stat.num_threads,
            start_time_seconds: procfs::boot_time_secs()? as f64 + stat.starttime as f64 / ticks,
        })
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // A failed reading leaves the metrics out of this scrape rather than failing it.
        let Ok(reading) = Reading::now() else {
            return Ok(());
        };
        let mut counter = |name, help, value: f64| -> Result<(), std::fmt::Error> {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(metric)
        };
        counter(
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds",
            reading.cpu_seconds,
        )?;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size, in bytes",
                reading.resident_bytes as f64,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size, in bytes",
                reading.virtual_bytes as f64,
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                reading.open_fds as f64,
            ),
            ("process_threads", "OS threads", reading.threads as f64),
            (
                "process_start_time_seconds",
                "Start time since the Unix epoch, in seconds",
                reading.start_time_seconds,
            ),
        ];
        let max_fds = reading.max_fds.map(|max| {
            (
                "process_max_fds",
                "The limit of open file descriptors",
                max as f64,
            )
        });
        for (name, help, value) in gauges.into_iter().chain(max_fds) {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(value).encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let reading = Reading::now().unwrap();
        assert!(reading.resident_bytes > 1 << 20, "{reading:?}");
        assert!(reading.virtual_bytes >= reading.resident_bytes);
        assert!(reading.open_fds >= 3 && reading.threads >= 1, "{reading:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((now - 3600.0..=now + 1.0).contains(&reading.start_time_seconds));

        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ProcessCollector));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
        ] {
            assert!(text.contains(name), "{name}: {text}");
        }
    }
}
