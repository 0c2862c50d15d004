//! Files named by flags are read only when they are small regular files: a FIFO or a
//! device named as the resume key or the TLS key stops the start at once with the file
//! named, instead of hanging it; a secret others may read is used, with a warning.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs the real binary with `args` (WebTransport on a free loopback port) until it exits
/// by itself (bounded: killed after 20 s).
fn run(args: &[&std::ffi::OsStr]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jam-server"))
        .args(["--wt-addr", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("the server did not stop by itself with {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn fifo(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("key-fifo");
    assert!(Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap()
        .success());
    path
}

#[test]
fn a_fifo_or_a_device_as_a_key_stops_the_start_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = fifo(dir.path());
    let zero = dir.path().join("zero");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    for key in [&fifo, &zero] {
        let out = run(&[
            "--http-addr".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--ephemeral-cert".as_ref(),
            "--resume-key-file".as_ref(),
            key.as_os_str(),
        ]);
        assert!(!out.status.success(), "{key:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&*key.to_string_lossy()), "{err}");
        assert!(err.contains("not a regular file"), "{err}");
    }
    let cert_dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "--make-cert".as_ref(),
        "--cert-dir".as_ref(),
        cert_dir.path().as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert = std::fs::read_dir(cert_dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("cert.pem"))
        .expect("a certificate was made");
    let out = run(&[
        "--http-addr".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--cert".as_ref(),
        cert.as_os_str(),
        "--key".as_ref(),
        fifo.as_os_str(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("reading key") && err.contains("not a regular file"),
        "{err}"
    );
}

#[test]
fn a_resume_key_others_may_read_is_used_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("resume.key");
    std::fs::write(&key, format!("{}\n", "ab".repeat(32))).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    // The resume key is read before the listeners open, so a run whose HTTP port is taken
    // shows the warning and then stops by itself.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&[
        "--ephemeral-cert".as_ref(),
        "--resume-key-file".as_ref(),
        key.as_os_str(),
        "--http-addr".as_ref(),
        addr.as_ref(),
    ]);
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("a secret that others may read"), "{log}");
    assert!(
        log.contains("mode=644") || log.contains("mode=\"644\""),
        "{log}"
    );
    assert!(log.contains("--http-addr"), "it went on to bind: {log}");
}
