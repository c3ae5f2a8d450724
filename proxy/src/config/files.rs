//! Which files `--config` paths stand for.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use super::LoadError;

/// The files to load, in order: each path as given; a directory's `*.yaml` and `*.yml` files
/// recursively, in name order, skipping names that start with `.` (Kubernetes' ConfigMap volumes
/// keep a second copy of every file under `..data/`) and symlinks to directories (no loops). A
/// file named on its own is read whatever its extension.
pub(super) fn manifest_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut files = Vec::new();
    for path in paths {
        let metadata = fs::metadata(path).map_err(|err| LoadError::io(path, err))?;
        if metadata.is_dir() {
            walk(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let error = |err| LoadError::io(dir, err);
    let mut entries = fs::read_dir(dir)
        .and_then(Iterator::collect::<io::Result<Vec<_>>>)
        .map_err(error)?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let file_type = entry.file_type().map_err(error)?;
        if file_type.is_dir() {
            walk(&path, files)?;
        } else if is_manifest(&path) && (file_type.is_file() || path.is_file()) {
            files.push(path);
        }
    }
    Ok(())
}

fn is_manifest(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext == "yaml" || ext == "yml")
}
