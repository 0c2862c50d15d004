//! What the tests share: running the built jam-bench with a bound on its time.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a command may take; the binary's own timeouts end a stuck run well before.
pub const RUN_LIMIT: Duration = Duration::from_secs(30);

/// Runs jam-bench with `args` and returns its standard output; fails the test if it
/// exits non-zero or runs over [`RUN_LIMIT`].
pub fn jam_bench(args: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jam-bench"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting jam-bench");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    // Read both pipes on their own threads so that a full pipe cannot stall the child.
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).map(|_| s)
    });
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for jam-bench") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("jam-bench {args:?} ran over {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap().expect("reading stdout");
    let stderr = err.join().unwrap().expect("reading stderr");
    assert!(
        status.success(),
        "jam-bench {args:?} failed ({status}): {stderr}"
    );
    stdout
}
