//! strait's own log (to stderr, text or JSON), with levels that can be changed while it runs:
//! the admin server's `/logging`, as Envoy's.

use std::fmt;

use tracing_subscriber::{
    filter::{EnvFilter, LevelFilter},
    layer::SubscriberExt,
    reload,
    util::SubscriberInitExt,
    Layer, Registry,
};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The level filter in effect, changeable at run time.
#[derive(Clone)]
pub struct LogLevels(reload::Handle<EnvFilter, Registry>);

impl fmt::Debug for LogLevels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.current())
    }
}

/// Installs the global subscriber: `RUST_LOG` if set, else `info`.
pub fn init(format: LogFormat) -> LogLevels {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let output = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let output = match format {
        LogFormat::Text => output.boxed(),
        LogFormat::Json => output.json().boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .init();
    LogLevels(handle)
}

impl LogLevels {
    /// One level for everything: `trace`, `debug`, `info`, `warn`, `error` or `off`.
    pub fn set_level(&self, level: &str) -> Result<(), String> {
        let level: LevelFilter = level
            .parse()
            .map_err(|_| format!("{level}: not a level (trace, debug, info, warn, error, off)"))?;
        self.set_filter(&level.to_string().to_lowercase())
    }

    /// Replaces the filter with `tracing` directives (`info,strait::l7=debug`).
    pub fn set_filter(&self, directives: &str) -> Result<(), String> {
        let filter =
            EnvFilter::try_new(directives).map_err(|err| format!("{directives}: {err}"))?;
        self.0.reload(filter).map_err(|err| err.to_string())?;
        tracing::info!(filter = directives, "log levels changed");
        Ok(())
    }

    pub fn current(&self) -> String {
        self.0
            .with_current(ToString::to_string)
            .unwrap_or_else(|err| format!("unknown ({err})"))
    }
}
