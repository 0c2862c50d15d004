//! The files the server keeps its secrets in and is pointed at: writing a secret so that
//! only the server's own user may read it (mode 0600 on Unix), and reading a key or
//! certificate only when it is a small regular file, so that a FIFO, a device or a huge
//! file named by a flag cannot hang or flood the start. Used for the development
//! certificate and its key (`tls.rs`), `--cert` / `--key`, and the resume key
//! (`credentials.rs`). What goes in the files, and where they live, is theirs.

use std::io::{self, Read};
use std::path::Path;

use anyhow::{Context, Result};

/// The most a key file may hold (a PEM private key is a few hundred bytes).
pub const MAX_KEY_BYTES: u64 = 64 * 1024;
/// The most a certificate chain file may hold.
pub const MAX_CERT_BYTES: u64 = 1024 * 1024;

/// Reads `path` as text when it is a regular file (links followed) of at most `max` bytes;
/// anything else is an error of kind `InvalidInput`, and a missing file keeps the kind
/// `NotFound`. For a `secret`, a file that others than its owner may read is still used,
/// with a warning in the log: a secret mounted by a platform is often 0644, and refusing
/// it would stop a deploy that is no less safe than the machine it runs on.
pub fn read_small(path: &Path, max: u64, secret: bool) -> io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("larger than {max} bytes"),
        ));
    }
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "a secret that others may read; make it readable by its owner only (chmod 600)"
            );
        }
    }
    let mut text = String::new();
    // The file may have grown since it was measured: read no more than allowed.
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(text)
}

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
    fn only_small_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // A FIFO nobody writes to would block an open for ever: it is refused unopened.
        let err = read_small(&fifo, MAX_KEY_BYTES, true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        let link = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let err = read_small(&link, MAX_KEY_BYTES, true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 100]).unwrap();
        let err = read_small(&big, 99, false).unwrap_err();
        assert!(err.to_string().contains("larger than 99 bytes"), "{err}");
        assert_eq!(read_small(&big, 100, false).unwrap().len(), 100);
        let missing = read_small(&dir.path().join("none"), 10, true).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }

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
