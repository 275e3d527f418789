//! Writing files so that a failure never leaves one half written: content
//! goes to a temporary file in the same directory, which is then renamed
//! over the target. Files whose content would not change are not touched, so
//! their timestamps (and cargo's incremental state) stay as they are.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `contents` to `path` atomically, creating parent directories.
/// Keeps the permissions of an existing file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let shown = path.display();
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), "create the directory", e))?;
    let mut temp =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(&shown, "create a temporary file for", e))?;
    temp.write_all(contents).map_err(|e| Error::io(&shown, "write", e))?;
    let permissions = match std::fs::metadata(path) {
        Ok(existing) => existing.permissions(),
        Err(_) => default_permissions(),
    };
    temp.as_file().set_permissions(permissions).map_err(|e| Error::io(&shown, "set permissions of", e))?;
    temp.as_file().sync_all().map_err(|e| Error::io(&shown, "flush", e))?;
    temp.persist(path).map_err(|e| Error::io(&shown, "replace", e.error))?;
    Ok(())
}

/// Writes `contents` unless the file already holds exactly that. Returns
/// whether the file was written.
pub fn write_if_changed(path: &Path, contents: &str) -> Result<bool> {
    if std::fs::read(path).is_ok_and(|existing| existing == contents.as_bytes()) {
        return Ok(false);
    }
    write_atomic(path, contents.as_bytes())?;
    Ok(true)
}

/// Reads a UTF-8 file, naming it on error.
pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), "read", e))
}

#[cfg(unix)]
fn default_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o644)
}

#[cfg(not(unix))]
fn default_permissions() -> std::fs::Permissions {
    let file = tempfile::tempfile().expect("a temporary file can be created");
    file.metadata().expect("metadata of a temporary file").permissions()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_on_change_and_keeps_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/file.txt");
        assert!(write_if_changed(&path, "one").unwrap());
        assert!(!write_if_changed(&path, "one").unwrap());
        assert!(write_if_changed(&path, "two").unwrap());
        assert_eq!(read(&path).unwrap(), "two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        }
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file may be left behind");
    }
}
