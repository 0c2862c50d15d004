//! Writing a secret to a file that only the server's own user may read (mode 0600 on
//! Unix): the development certificate's key (`tls.rs`) and the resume key
//! (`credentials.rs`). What goes in the file, and where it lives, is theirs.

use std::path::Path;

use anyhow::{Context, Result};

/// Writes `text` to `path`, replacing what was there, readable by the owner only.
#[cfg(unix)]
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // `mode` applies only to a file it creates: a file that was there keeps its mode, so
    // make it private before the secret goes in.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} private", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Writes `text` to `path`, replacing what was there.
#[cfg(not(unix))]
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_written_over_a_readable_file_becomes_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev-key.pem");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, "secret").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "secret");
    }
}
