//! YAML value -> typed resource, keeping what serde alone loses: the path of the field that failed
//! (serde_path_to_error) and the fields nothing read (serde_ignored), so neither a wrong type nor a
//! typo goes unnamed.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_yaml::Value;

/// A field's place in a document, e.g. `spec.ports[0].targetPort`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(Vec<Segment>);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Segment {
    Key(String),
    Index(usize),
}

impl FieldPath {
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The path with every index blanked (`spec.ports[].name`), for matching against field tables.
    pub fn pattern(&self) -> String {
        self.render(false)
    }

    fn render(&self, with_indices: bool) -> String {
        let mut out = String::new();
        for segment in &self.0 {
            match segment {
                Segment::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Segment::Index(index) if with_indices => out.push_str(&format!("[{index}]")),
                Segment::Index(_) => out.push_str("[]"),
            }
        }
        out
    }

    fn from_ignored(path: &serde_ignored::Path<'_>) -> Self {
        use serde_ignored::Path;
        match path {
            Path::Root => Self::default(),
            Path::Seq { parent, index } => Self::from_ignored(parent).with(Segment::Index(*index)),
            Path::Map { parent, key } => Self::from_ignored(parent).with(Segment::Key(key.clone())),
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => Self::from_ignored(parent),
        }
    }

    fn from_tracked(path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment as Tracked;
        Self(
            path.iter()
                .map(|segment| match segment {
                    Tracked::Seq { index } => Segment::Index(*index),
                    Tracked::Map { key } => Segment::Key(key.clone()),
                    Tracked::Enum { variant } => Segment::Key(variant.clone()),
                    Tracked::Unknown => Segment::Key("?".to_owned()),
                })
                .collect(),
        )
    }

    fn with(mut self, segment: Segment) -> Self {
        self.0.push(segment);
        self
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(true))
    }
}

/// A decoded value and the fields of the document it did not read.
#[derive(Debug)]
pub struct Decoded<T> {
    pub value: T,
    pub ignored: Vec<FieldPath>,
}

impl<T> Decoded<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Decoded<U> {
        Decoded {
            value: f(self.value),
            ignored: self.ignored,
        }
    }
}

/// Why a document does not decode, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub field: FieldPath,
    pub message: String,
}

pub fn decode<T: DeserializeOwned>(value: Value) -> Result<Decoded<T>, DecodeError> {
    let mut ignored = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let mut on_ignored =
        |path: serde_ignored::Path<'_>| ignored.push(FieldPath::from_ignored(&path));
    let deserializer = serde_ignored::Deserializer::new(value, &mut on_ignored);
    let decoded = T::deserialize(serde_path_to_error::Deserializer::new(
        deserializer,
        &mut track,
    ));
    match decoded {
        Ok(value) => Ok(Decoded { value, ignored }),
        Err(err) => Err(DecodeError {
            field: FieldPath::from_tracked(&track.path()),
            message: err.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Doc {
        spec: Spec,
    }

    #[derive(Debug, Deserialize)]
    struct Spec {
        ports: Vec<Port>,
    }

    #[derive(Debug, Deserialize)]
    struct Port {
        port: u16,
    }

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn names_the_field_of_a_wrong_type() {
        let err = decode::<Doc>(yaml("spec: {ports: [{port: 1}, {port: x}]}")).unwrap_err();
        assert_eq!(err.field.to_string(), "spec.ports[1].port");
        assert!(err.message.contains("invalid type"), "{}", err.message);
    }

    #[test]
    fn collects_ignored_fields() {
        let decoded = decode::<Doc>(yaml("kind: X\nspec: {ports: [{port: 1, nmae: a}]}")).unwrap();
        assert_eq!(decoded.value.spec.ports[0].port, 1);
        let ignored: Vec<_> = decoded
            .ignored
            .iter()
            .map(|p| (p.to_string(), p.pattern()))
            .collect();
        assert_eq!(
            ignored,
            [
                ("kind".to_owned(), "kind".to_owned()),
                (
                    "spec.ports[0].nmae".to_owned(),
                    "spec.ports[].nmae".to_owned()
                )
            ]
        );
    }
}
