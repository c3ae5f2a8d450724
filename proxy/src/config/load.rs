//! Reading `--config` paths into resources and diagnostics. A bad document costs only itself:
//! every other document still loads.

use std::{
    collections::HashMap,
    fs, io,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    diagnostics::{Diagnostic, Finding, Severity, Source, Subject},
    documents::{self, Document},
    fields,
    files::manifest_files,
    read::{read, Read, Skip},
    resources::{Located, Resource, Resources},
    validate,
};

/// A path that cannot be read at all: no diagnostics can be given for it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: no such file or directory", .path.display())]
    NotFound { path: PathBuf },
    #[error("{}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl LoadError {
    pub(super) fn io(path: &Path, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::NotFound => Self::NotFound {
                path: path.to_owned(),
            },
            _ => Self::Read {
                path: path.to_owned(),
                source,
            },
        }
    }
}

/// The outcome of a load: the resources that passed, and every problem found.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// Every document without an error, in load order.
    pub resources: Resources,
    /// In file order, then document order.
    pub diagnostics: Vec<Diagnostic>,
    /// Documents that were not YAML, had no apiVersion or kind, or did not decode.
    undecodable: usize,
}

impl Loaded {
    /// Whether there is an error, or with `strict` any problem at all.
    pub fn has_errors(&self, strict: bool) -> bool {
        self.diagnostics.iter().any(|d| strict || d.is_error())
    }

    /// Whether every document could at least be read as the kind it says it is. A reload that is
    /// not complete is rejected: a half-saved file must not take Services away.
    pub fn is_complete(&self) -> bool {
        self.undecodable == 0
    }

    /// Logs every diagnostic at its severity.
    pub fn log(&self) {
        self.diagnostics.iter().for_each(Diagnostic::log);
    }
}

/// Loads files and directories, as [`manifest_files`] lists them.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, LoadError> {
    let mut checked = Vec::new();
    for file in manifest_files(paths)? {
        let text = fs::read_to_string(&file).map_err(|err| LoadError::io(&file, err))?;
        checked.push(Checked::of(Arc::from(file), &text));
    }
    Ok(assemble(&checked))
}

/// Loads one file's text, as if read from `file`.
pub fn load_str(file: &Path, text: &str) -> Loaded {
    assemble(&[Checked::of(Arc::from(file), text)])
}

/// One text's documents, read and checked each on its own: the resources a load keeps of it and
/// what was found. What needs every document (duplicates, references) is checked when texts
/// are [`assemble`]d, so a source whose texts change one at a time (the Kubernetes API's
/// objects) reads each only when it changes. Equal when what a load takes of them is: the
/// resources as strait reads them and the problems (not fields it ignores, like
/// `metadata.resourceVersion`).
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    file: Arc<Path>,
    resources: Vec<Located<Resource>>,
    diagnostics: Vec<Diagnostic>,
    /// Documents that were not YAML, had no apiVersion or kind, or did not decode.
    undecodable: usize,
}

impl Checked {
    /// Reads and checks every document of `text`, as if read from `file`.
    pub fn of(file: Arc<Path>, text: &str) -> Self {
        let mut checked = Self {
            file,
            resources: Vec::new(),
            diagnostics: Vec::new(),
            undecodable: 0,
        };
        for document in documents::split(text)
            .into_iter()
            .filter(|document| !document.is_blank())
        {
            let source = Source {
                file: checked.file.clone(),
                document: document.number,
            };
            checked.document(source, document);
        }
        checked
    }

    /// Whether every document could be read as the kind it says it is.
    pub fn is_complete(&self) -> bool {
        self.undecodable == 0
    }

    /// The problems found in this text alone.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    fn document(&mut self, source: Source, document: Document<'_>) {
        let Some(Read { subject, outcome }) = read(document) else {
            return;
        };
        let (kind, decoded) = match outcome {
            Ok(decoded) => decoded,
            Err(skip) => return self.skip(skip, &source, &subject),
        };
        let findings: Vec<Finding> = fields::ignored(kind, &decoded.ignored)
            .into_iter()
            .chain(validate::document(&decoded.value))
            .collect();
        let rejected = findings
            .iter()
            .any(|finding| finding.severity == Severity::Error);
        self.report(findings, &source, &subject);
        if !rejected {
            self.resources.push(Located {
                source,
                resource: decoded.value,
            });
        }
    }

    fn skip(&mut self, skip: Skip, source: &Source, subject: &Subject) {
        let finding = match skip {
            Skip::Undecodable(finding) => {
                self.undecodable += 1;
                finding
            }
            Skip::Ignored(finding) => finding,
        };
        self.report([finding], source, subject);
    }

    fn report(
        &mut self,
        findings: impl IntoIterator<Item = Finding>,
        source: &Source,
        subject: &Subject,
    ) {
        self.diagnostics.extend(
            findings
                .into_iter()
                .map(|finding| finding.place(source, subject)),
        );
    }
}

/// The load of checked texts, in order: their resources and problems, then the checks across
/// them; problems sorted by text, then document.
pub fn assemble<'c>(texts: impl IntoIterator<Item = &'c Checked>) -> Loaded {
    let mut order: HashMap<Arc<Path>, usize> = HashMap::new();
    let mut resources = Resources::default();
    let mut diagnostics = Vec::new();
    let mut undecodable = 0;
    for checked in texts {
        let next = order.len();
        order.entry(checked.file.clone()).or_insert(next);
        checked
            .resources
            .iter()
            .cloned()
            .for_each(|located| resources.push(located));
        diagnostics.extend(checked.diagnostics.iter().cloned());
        undecodable += checked.undecodable;
    }
    diagnostics.extend(validate::across(&mut resources));
    diagnostics.sort_by_key(|d| (order.get(&d.file).copied(), d.document));
    Loaded {
        resources,
        diagnostics,
        undecodable,
    }
}

#[cfg(test)]
mod tests;
