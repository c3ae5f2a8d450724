//! Problems found in the manifests, one line each, in DESIGN.md's format:
//! `error|warning: FILE#DOC KIND/NAMESPACE/NAME: FIELD: message`.

use std::{fmt, path::Path, sync::Arc};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Warning => "warning",
            Self::Error => "error",
        })
    }
}

/// Where a document came from. Documents are numbered from 1 as [`super::documents`] explains.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Source {
    pub file: Arc<Path>,
    pub document: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.file.display(), self.document)
    }
}

/// One problem. Parts that are unknown (a document that is not YAML has no kind) or do not apply
/// (a cluster-scoped kind has no namespace; a whole-document problem has no field) are `None`
/// and print as `-`, so every line has the same shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: Arc<Path>,
    /// 1-based.
    pub document: usize,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// A field path such as `spec.ports[0].targetPort`.
    pub field: Option<String>,
    pub message: String,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `--strict`: every warning becomes an error.
    pub fn escalated(mut self) -> Self {
        self.severity = Severity::Error;
        self
    }

    /// Logs the problem at its severity.
    pub fn log(&self) {
        match self.severity {
            Severity::Error => tracing::error!("{}", self.body()),
            Severity::Warning => tracing::warn!("{}", self.body()),
        }
    }

    /// The line without its severity.
    fn body(&self) -> String {
        let part = |value: &Option<String>| value.as_deref().unwrap_or("-").to_owned();
        format!(
            "{}#{} {}/{}/{}: {}: {}",
            self.file.display(),
            self.document,
            part(&self.kind),
            part(&self.namespace),
            part(&self.name),
            part(&self.field),
            self.message
        )
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity, self.body())
    }
}

/// The resource a diagnostic is about, as far as it is known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// A problem in one resource before it is placed in a file: what the checks return.
///
/// An error always means the document is ignored, and [`Finding::place`] says so in the message;
/// a warning never drops anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Finding {
    pub severity: Severity,
    /// `None`: the whole document.
    pub field: Option<String>,
    pub message: String,
}

impl Finding {
    pub fn error(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    pub fn warning(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// A problem with the document as a whole.
    pub fn document_error(message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            field: None,
            message: message.into(),
        }
    }

    pub fn place(self, source: &Source, subject: &Subject) -> Diagnostic {
        let message = match self.severity {
            Severity::Error => format!("{}; the document is ignored", self.message),
            Severity::Warning => self.message,
        };
        Diagnostic {
            severity: self.severity,
            file: source.file.clone(),
            document: source.document,
            kind: subject.kind.clone(),
            namespace: subject.namespace.clone(),
            name: subject.name.clone(),
            field: self.field,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let source = Source {
            file: Path::new("a.yaml").into(),
            document: 3,
        };
        let subject = Subject {
            kind: Some("Service".into()),
            namespace: Some("default".into()),
            name: Some("web".into()),
        };
        let diagnostic =
            Finding::warning("spec.ports[0].targetPort", "no such port").place(&source, &subject);
        assert_eq!(
            diagnostic.to_string(),
            "warning: a.yaml#3 Service/default/web: spec.ports[0].targetPort: no such port"
        );
        assert_eq!(
            diagnostic
                .escalated()
                .to_string()
                .split_once(':')
                .unwrap()
                .0,
            "error"
        );
    }

    #[test]
    fn unknown_parts_print_as_dashes() {
        let source = Source {
            file: Path::new("a.yaml").into(),
            document: 1,
        };
        let diagnostic = Finding::document_error("not YAML").place(&source, &Subject::default());
        assert_eq!(
            diagnostic.to_string(),
            "error: a.yaml#1 -/-/-: -: not YAML; the document is ignored"
        );
    }
}
