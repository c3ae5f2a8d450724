//! One document: YAML, then the kind it says it is, then that kind decoded.

use serde_yaml::Value;

use super::{
    decode::Decoded,
    diagnostics::{Finding, Severity, Subject},
    documents::Document,
    kinds::Kind,
    resources::{Resource, DEFAULT_NAMESPACE},
};

/// What a document is, as far as it could be read.
pub(super) struct Read {
    /// Kind, namespace and name as far as they are known, for diagnostics.
    pub subject: Subject,
    pub outcome: Result<(Kind, Decoded<Resource>), Skip>,
}

/// Reads a document; `None` when it holds only a null (`~`).
pub(super) fn read(document: Document<'_>) -> Option<Read> {
    let value = match parse(document) {
        Ok(value) => value,
        Err(finding) => {
            let outcome = Err(Skip::Undecodable(finding));
            return Some(Read {
                subject: Subject::default(),
                outcome,
            });
        }
    };
    if value.is_null() {
        return None;
    }
    let subject = subject(&value);
    let outcome = identify(&value).and_then(|kind| decode(kind, value));
    Some(Read { subject, outcome })
}

/// Why a document yields no resource.
pub(super) enum Skip {
    /// strait cannot tell what the document holds: a reload with one is rejected.
    Undecodable(Finding),
    /// strait understood the document and leaves it out.
    Ignored(Finding),
}

/// The document as YAML, with merge keys (`<<`) applied.
fn parse(document: Document<'_>) -> Result<Value, Finding> {
    let mut value: Value =
        serde_yaml::from_str(document.text).map_err(|_| syntax_error(document))?;
    value
        .apply_merge()
        .map_err(|err| Finding::document_error(err.to_string()))?;
    Ok(value)
}

/// The parse error again, from text padded so its line numbers count from the top of the file.
/// Only done on failure, so the padding costs nothing on the common path.
fn syntax_error(document: Document<'_>) -> Finding {
    let padded = format!("{}{}", "\n".repeat(document.first_line - 1), document.text);
    let message = match serde_yaml::from_str::<Value>(&padded) {
        Err(err) => format!("not valid YAML: {err}"),
        Ok(_) => "not valid YAML".to_owned(),
    };
    Finding::document_error(message)
}

/// The kind the document says it is, if strait reads it at that apiVersion.
fn identify(value: &Value) -> Result<Kind, Skip> {
    if !value.is_mapping() {
        return Err(Skip::Undecodable(Finding::document_error(
            "a manifest must be a mapping with apiVersion and kind",
        )));
    }
    let text = |key: &str| value.get(key).and_then(Value::as_str);
    let (Some(api_version), Some(kind_name)) = (text("apiVersion"), text("kind")) else {
        let missing = if text("apiVersion").is_none() {
            "apiVersion"
        } else {
            "kind"
        };
        return Err(Skip::Undecodable(Finding::error(
            missing,
            format!("{missing} is required (a string)"),
        )));
    };
    let Some(kind) = Kind::from_name(kind_name) else {
        let message = format!("{api_version} {kind_name} is not a kind strait reads; ignored");
        return Err(Skip::Ignored(Finding::warning("kind", message)));
    };
    if !kind.is_served_by(api_version) {
        let expected = kind.api_versions().join(", ");
        let message =
            format!("{api_version} does not serve {kind}: strait reads {kind} as {expected}");
        return Err(Skip::Ignored(Finding::error("apiVersion", message)));
    }
    Ok(kind)
}

fn decode(kind: Kind, value: Value) -> Result<(Kind, Decoded<Resource>), Skip> {
    Resource::decode(kind, value)
        .map(|decoded| (kind, decoded))
        .map_err(|err| {
            let field = (!err.field.is_root()).then(|| err.field.to_string());
            Skip::Undecodable(Finding {
                severity: Severity::Error,
                field,
                message: err.message,
            })
        })
}

/// Kind, namespace and name as the raw document gives them, for diagnostics about a document
/// that may not decode.
fn subject(value: &Value) -> Subject {
    if !value.is_mapping() {
        return Subject::default();
    }
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
    let meta = value.get("metadata");
    let kind = text(value.get("kind"));
    let cluster_scoped = kind
        .as_deref()
        .and_then(Kind::from_name)
        .is_some_and(|kind| !kind.is_namespaced());
    let namespace =
        text(meta.and_then(|m| m.get("namespace"))).unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    Subject {
        kind,
        namespace: (!cluster_scoped).then_some(namespace),
        name: text(meta.and_then(|m| m.get("name"))),
    }
}
