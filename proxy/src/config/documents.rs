//! Splitting a YAML file into its documents, so one broken document cannot hide the others
//! (serde_yaml's multi-document iterator stops at the first syntax error).
//!
//! How documents are numbered, which is what a user counts: from 1, in file order, one per
//! `---`-separated section. Text before the first `---` counts as a document only when it holds
//! more than comments and blank lines (so a header comment followed by `---` is not document 1).
//! An empty section between two `---` lines still counts; it is skipped when loading.

/// One document of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Document<'a> {
    /// 1-based, as described in the module docs.
    pub number: usize,
    /// 1-based line of the file where `text` starts.
    pub first_line: usize,
    pub text: &'a str,
}

impl Document<'_> {
    /// Whether the document holds nothing but comments and blank lines.
    pub fn is_blank(&self) -> bool {
        is_blank(self.text)
    }
}

/// Splits at `---` marker lines. The YAML spec forbids a marker at column 0 inside any scalar,
/// so a line split is exact.
pub fn split(text: &str) -> Vec<Document<'_>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut sections = Vec::new();
    let (mut start, mut start_line) = (0, 1);
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if is_marker(line) {
            sections.push((start_line, &text[start..offset]));
            // The rest of the marker line (`--- # comment`, `--- |`) belongs to the document.
            start = offset + 3;
            start_line = index + 1;
        }
        offset += line.len();
    }
    sections.push((start_line, &text[start..]));

    let leading_is_document = !is_blank(sections[0].1);
    sections
        .into_iter()
        .skip(usize::from(!leading_is_document))
        .enumerate()
        .map(|(index, (first_line, text))| Document {
            number: index + 1,
            first_line,
            text,
        })
        .collect()
}

fn is_marker(line: &str) -> bool {
    line.strip_prefix("---")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
}

fn is_blank(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with('#') || line.starts_with('%'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(text: &str) -> Vec<(usize, usize, &str)> {
        split(text)
            .into_iter()
            .map(|doc| (doc.number, doc.first_line, doc.text.trim()))
            .collect()
    }

    #[test]
    fn header_comment_is_not_a_document() {
        let text = "# header\n---\na: 1\n---\nb: 2\n";
        assert_eq!(numbered(text), [(1, 2, "a: 1"), (2, 4, "b: 2")]);
    }

    #[test]
    fn content_before_the_first_marker_is_document_one() {
        assert_eq!(
            numbered("a: 1\n---\nb: 2"),
            [(1, 1, "a: 1"), (2, 2, "b: 2")]
        );
        assert_eq!(numbered("a: 1\n"), [(1, 1, "a: 1")]);
    }

    #[test]
    fn empty_documents_count() {
        let docs = split("---\na: 1\n---\n# nothing\n---\nb: 2\n");
        assert_eq!(docs.len(), 3);
        assert!(docs[1].is_blank());
        assert_eq!((docs[2].number, docs[2].text.trim()), (3, "b: 2"));
    }

    #[test]
    fn marker_needs_column_zero_and_a_break() {
        let text = "a: |\n  ---\n  x\nb: ---x\n---x: 1\n--- # c\nc: 1\n";
        assert_eq!(numbered(text).len(), 2);
        assert_eq!(numbered("---\r\na: 1\r\n"), [(1, 1, "a: 1")]);
    }
}
