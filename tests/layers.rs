//! The workspace's module map, checked: in every crate, a module imports (`crate::…`) only
//! modules listed before it in that crate's layer order below, so no module imports a
//! module that imports it back, and the crate root only declares and re-exports. The
//! orders are the "How the parts fit" maps of each crate's docs and the README.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each crate's source folder and its modules, lowest layer first. A nested module is
/// named with `::` (its file is `a/b.rs`).
const CRATES: &[(&str, &[&str])] = &[
    (
        "crates/jam-protocol/src",
        &[
            "event",
            "error",
            "ids",
            "participant",
            "tempo",
            "validate",
            "datagram",
            "msgpack",
            "server_message",
            "encode",
            "envelope",
        ],
    ),
    (
        "crates/jam-client/src",
        &[
            "received", "error", "clock", "outgoing", "link", "http", "ws", "wt", "client",
        ],
    ),
    (
        "crates/jam-bench/src",
        &[
            "cli",
            "procfs",
            "idle_spin",
            "wire",
            "summary",
            "target",
            "ledger",
            "monitor",
            "report",
            "run",
            "idle",
        ],
    ),
    (
        "src",
        &[
            "stats",
            "addresses",
            "clock",
            "resume",
            "history",
            "origins",
            "outbox",
            "room",
            "session",
            "conn",
            "tls",
            "transport::lines",
            "transport::unfinished",
            "transport::ws",
            "transport::wt",
            "transport::sio",
            "transport",
            "metrics",
            "http",
            "config",
            "server",
        ],
    ),
];

/// The module paths that `text` names after `crate::`, e.g. `room` or `transport::wt`
/// (`use crate::{a, b::c}` names `a` and `b::c`). Comments are skipped.
fn crate_paths(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let item = item.trim();
                if !item.is_empty() {
                    found.push(path_of(item));
                }
            }
        } else {
            found.push(path_of(rest));
        }
    }
    found
}

/// The leading `a::b::c` of `s`, identifiers only.
fn path_of(s: &str) -> String {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(s.len());
    s[..end].trim_end_matches(':').to_owned()
}

/// The listed module that `path` reaches: its longest listed prefix.
fn module_of<'a>(path: &str, modules: &[&'a str]) -> Option<&'a str> {
    modules
        .iter()
        .filter(|m| path == **m || path.starts_with(&format!("{m}::")))
        .max_by_key(|m| m.len())
        .copied()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn modules_import_only_lower_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut faults = Vec::new();
    for (dir, order) in CRATES {
        let src = root.join(dir);
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let mut seen = BTreeSet::new();
        for file in files {
            let rel = file.strip_prefix(&src).unwrap().with_extension("");
            let rel = rel.to_str().unwrap().replace('/', "::");
            let module = rel.trim_end_matches("::mod").to_owned();
            if matches!(module.as_str(), "lib" | "main") {
                continue; // the root declares and re-exports
            }
            let Some(layer) = order.iter().position(|m| *m == module) else {
                faults.push(format!(
                    "{dir}: `{module}` is in no layer; add it to CRATES"
                ));
                continue;
            };
            seen.insert(module.clone());
            let text = std::fs::read_to_string(&file).unwrap();
            for path in crate_paths(&text) {
                match module_of(&path, order) {
                    Some(m) if order.iter().position(|o| *o == m).unwrap() < layer => {}
                    // A module may name its own children.
                    Some(m) if m.starts_with(&format!("{module}::")) => {}
                    Some(m) => faults.push(format!(
                        "{dir}: `{module}` imports `{m}`, which is not below it"
                    )),
                    None => faults.push(format!(
                        "{dir}: `{module}` imports `crate::{path}` from the crate root"
                    )),
                }
            }
        }
        for m in order.iter().filter(|m| !seen.contains(**m)) {
            if !src.join(format!("{}.rs", m.replace("::", "/"))).exists()
                && !src.join(m.replace("::", "/")).join("mod.rs").exists()
            {
                faults.push(format!("{dir}: layer `{m}` has no file"));
            }
        }
    }
    assert!(faults.is_empty(), "{}", faults.join("\n"));
}

#[test]
fn the_checker_sees_imports() {
    let text = "use crate::room::{Hub, Membership};\n// use crate::server;\nuse crate::{outbox, transport::wt::WtServer};\nlet x = crate::stats::Stats::default();";
    assert_eq!(
        crate_paths(text),
        [
            "room::",
            "outbox",
            "transport::wt::WtServer",
            "stats::Stats::default"
        ]
        .map(|p| p.trim_end_matches(':').to_owned())
    );
    let order = ["outbox", "transport::wt", "transport"];
    assert_eq!(
        module_of("transport::wt::WtServer", &order),
        Some("transport::wt")
    );
    assert_eq!(module_of("transport::lines", &order), Some("transport"));
    assert_eq!(module_of("Closed", &order), None);
}
