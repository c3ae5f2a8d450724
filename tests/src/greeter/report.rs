//! What the Greeters print, one JSON object a line: the client's line per call and summary, the
//! server's line per call served. The Rust Greeter prints these types; tests parse them; the
//! Python scripts print the same keys.

use std::{collections::BTreeMap, io::Write};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

/// Messages longer than this are cut in reports (a 16 MiB reply is not a log line).
pub const MESSAGE_PREVIEW_CHARS: usize = 200;

/// One call as the client saw it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CallLine {
    pub ok: bool,
    /// The gRPC status code; 0 when `ok`.
    pub code: i32,
    /// The last reply's message when `ok`, else the status message; cut to
    /// [`MESSAGE_PREVIEW_CHARS`] characters and "...".
    pub message: String,
    /// Who answered: `x-instance` metadata (headers, or trailers of a failure), else the name
    /// before ": " in a reply; `None` when neither (say, the proxy answered).
    pub instance: Option<String>,
    pub elapsed_ms: f64,
    /// Reply messages received.
    pub replies: u64,
    /// UTF-8 bytes of all reply `message` fields received.
    pub bytes: u64,
}

/// The client's last line.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CallSummary {
    /// Always true: tells this line from a [`CallLine`].
    pub summary: bool,
    pub calls: u64,
    pub ok: u64,
    /// Calls by the instance that answered, failed ones included.
    pub by_instance: BTreeMap<String, u64>,
    /// Calls by status code, as a decimal string.
    pub by_code: BTreeMap<String, u64>,
}

/// Everything a client printed.
#[derive(Clone, Debug)]
pub struct CallReport {
    pub calls: Vec<CallLine>,
    pub summary: CallSummary,
}

/// One call as a server saw it, printed when it ends.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ServedCall {
    /// The server's count of calls, from 1 (what `--fail-every` counts).
    pub call: u64,
    /// The gRPC method name, e.g. `SayHello`.
    pub method: String,
    /// The status the server sent; `None` when it sent none.
    pub code: Option<i32>,
    /// The client (or a proxy) went away first: RST_STREAM or a closed connection.
    pub cancelled: bool,
}

impl CallSummary {
    pub fn add(&mut self, line: &CallLine) {
        self.summary = true;
        self.calls += 1;
        self.ok += u64::from(line.ok);
        if let Some(instance) = &line.instance {
            *self.by_instance.entry(instance.clone()).or_default() += 1;
        }
        *self.by_code.entry(line.code.to_string()).or_default() += 1;
    }

    /// Calls that ended with `code`.
    pub fn with_code(&self, code: tonic::Code) -> u64 {
        let code = (code as i32).to_string();
        self.by_code.get(&code).copied().unwrap_or(0)
    }

    /// Calls `instance` answered.
    pub fn from_instance(&self, instance: &str) -> u64 {
        self.by_instance.get(instance).copied().unwrap_or(0)
    }
}

/// The summary line of a client's output.
pub fn parse_summary(output: &str) -> Result<CallSummary> {
    Ok(parse_report(output)?.summary)
}

/// A client's whole output: a line per call, then the summary, which must agree with them.
pub fn parse_report(output: &str) -> Result<CallReport> {
    let mut calls = Vec::new();
    let mut summary = None;
    for line in output.lines().filter(|line| !line.trim().is_empty()) {
        ensure!(summary.is_none(), "output after the summary: {line}");
        let value: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
        if value.get("summary").is_some() {
            summary = Some(serde_json::from_value(value).with_context(|| line.to_owned())?);
        } else {
            calls.push(serde_json::from_value(value).with_context(|| line.to_owned())?);
        }
    }
    let Some(summary) = summary else {
        bail!("no summary line in the client's output:\n{output}");
    };
    let mut counted = CallSummary::default();
    calls.iter().for_each(|call| counted.add(call));
    ensure!(
        counted == summary,
        "the summary {summary:?} disagrees with the call lines ({counted:?})"
    );
    Ok(CallReport { calls, summary })
}

/// A server's line about a call; `None` for other lines (`listening ...`).
pub fn parse_served(line: &str) -> Option<ServedCall> {
    serde_json::from_str(line).ok()
}

/// `message` cut to [`MESSAGE_PREVIEW_CHARS`] characters.
pub fn preview(message: &str) -> String {
    match message.char_indices().nth(MESSAGE_PREVIEW_CHARS) {
        Some((end, _)) => format!("{}...", &message[..end]),
        None => message.to_owned(),
    }
}

/// Prints `value` as one JSON line. A closed stdout is not the Greeter's problem: the line is
/// dropped rather than panicking mid-call.
pub fn emit(value: &impl Serialize) {
    let line = serde_json::to_string(value).expect("reports serialize");
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ok: bool, code: i32, instance: Option<&str>) -> CallLine {
        CallLine {
            ok,
            code,
            message: String::new(),
            instance: instance.map(str::to_owned),
            elapsed_ms: 1.5,
            replies: 1,
            bytes: 3,
        }
    }

    #[test]
    fn report_round_trip() {
        let calls = vec![
            line(true, 0, Some("a")),
            line(false, 14, Some("b")),
            line(false, 14, None),
        ];
        let mut summary = CallSummary::default();
        calls.iter().for_each(|call| summary.add(call));
        let mut output = String::new();
        for call in &calls {
            output += &serde_json::to_string(call).unwrap();
            output.push('\n');
        }
        output += &serde_json::to_string(&summary).unwrap();
        let report = parse_report(&output).unwrap();
        assert_eq!(report.calls, calls);
        assert_eq!(report.summary.with_code(tonic::Code::Unavailable), 2);
        assert_eq!(report.summary.from_instance("a"), 1);
        assert_eq!(report.summary.ok, 1);
        assert!(output
            .lines()
            .last()
            .unwrap()
            .starts_with(r#"{"summary":true,"calls":3,"ok":1,"#));

        // A summary that does not add up is an error, not a number to trust.
        let short = output.lines().skip(1).collect::<Vec<_>>().join("\n");
        assert!(parse_report(&short).is_err());
        assert!(parse_summary(&output.lines().take(3).collect::<Vec<_>>().join("\n")).is_err());
    }

    #[test]
    fn previews_cut_long_messages() {
        assert_eq!(preview("short"), "short");
        let long = "é".repeat(MESSAGE_PREVIEW_CHARS + 1);
        assert_eq!(
            preview(&long),
            format!("{}...", "é".repeat(MESSAGE_PREVIEW_CHARS))
        );
    }

    #[test]
    fn served_lines() {
        assert_eq!(parse_served("listening 127.0.0.1:5"), None);
        let served =
            parse_served(r#"{"call":2,"method":"SayHello","code":null,"cancelled":true}"#).unwrap();
        assert!(served.cancelled && served.code.is_none());
    }
}
