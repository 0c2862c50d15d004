//! The workspace's module map, checked: in every crate, a module imports (`crate::…`, or
//! `super::…` from a nested module) only modules in layers before its own in that crate's
//! layer order below, so no module imports a module that imports it back, and the crate
//! root only declares and re-exports. The orders are the "How the parts fit" maps of each
//! crate's docs and docs/architecture.md.
//!
//! One layer may hold several modules, separated by spaces: a folder's `mod.rs` with the
//! file whose items it re-exports (`room` and `room::hub`), which name each other. Modules
//! in other layers still import them only from above.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each crate's source folder and its layers, lowest first. A nested module is named
/// with `::` (its file is `a/b.rs`, or `a/b/mod.rs`); a layer of several modules lists
/// them separated by spaces.
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
            "counters",
            "idle_spin",
            "wire",
            "summary",
            "hostile",
            "target",
            "ledger",
            "monitor",
            "report",
            "run",
            "idle",
            "floor::peer",
            "floor",
        ],
    ),
    (
        "src",
        &[
            "stats",
            "addresses",
            "handshakes",
            "descriptors",
            "stall",
            "clock",
            "private_file",
            "rate",
            "silence",
            "credentials",
            "auth",
            "history",
            "origins",
            "proxies",
            "store store::memory store::file store::redis",
            "outbox",
            "room::join_limit",
            "room::budget",
            "room::state",
            "room room::hub",
            "room::trim",
            "room::resume",
            "room::stored",
            "room::membership",
            "room::silence",
            "room::sign_in",
            "room::latency",
            "room::testing",
            "cluster",
            "followup",
            "session",
            "conn",
            "tls",
            "transport::lines",
            "transport::unfinished",
            "transport::ws",
            "transport::wt",
            "transport::sio::encode",
            "transport::sio::check",
            "transport::sio::admit",
            "transport::sio::inbound",
            "transport::sio::outbound",
            "transport::sio::connect",
            "transport::sio",
            "transport",
            "metrics",
            "http",
            "config",
            "server",
        ],
    ),
];

/// The module paths that `text`, the file of `module`, names after `crate::` or
/// `super::`, e.g. `room` or `transport::wt` (`use crate::{a, b::c}` names `a` and `b::c`;
/// `super::x` in `room::hub` names `room::x`). Comments are skipped, and so is the unit
/// test module (`mod tests {` to the end): a test may drive its module through the
/// layers above it, and `super::` there names the file's own module.
fn crate_paths(text: &str, module: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .take_while(|l| l.trim() != "mod tests {")
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let code = resolve_super(&code, module);
    let mut found = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let prefix = path_of(rest);
        let after = rest[prefix.len()..].trim_start_matches(':');
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let item = item.trim();
                if !item.is_empty() {
                    let item = path_of(item);
                    found.push(match prefix.as_str() {
                        "" => item,
                        prefix => format!("{prefix}::{item}"),
                    });
                }
            }
        } else {
            found.push(prefix);
        }
    }
    found
}

/// `code` with every `super::` (or `super::super::`, …) written as the `crate::` path it
/// stands for in `module`.
fn resolve_super(code: &str, module: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(i) = rest.find("super::") {
        out.push_str(&rest[..i]);
        let mut parent: Vec<&str> = module.split("::").collect();
        rest = &rest[i..];
        while let Some(tail) = rest.strip_prefix("super::") {
            parent.pop();
            rest = tail;
        }
        out.push_str("crate::");
        for p in parent {
            out.push_str(p);
            out.push_str("::");
        }
    }
    out.push_str(rest);
    out
}

/// The leading `a::b::c` of `s`, identifiers only.
fn path_of(s: &str) -> String {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(s.len());
    s[..end].trim_end_matches(':').to_owned()
}

/// Each module of `order` with the number of its layer.
fn layers<'a>(order: &[&'a str]) -> Vec<(&'a str, usize)> {
    order
        .iter()
        .enumerate()
        .flat_map(|(layer, ms)| ms.split_whitespace().map(move |m| (m, layer)))
        .collect()
}

/// The listed module that `path` reaches (its longest listed prefix), with its layer.
fn module_of<'a>(path: &str, modules: &[(&'a str, usize)]) -> Option<(&'a str, usize)> {
    modules
        .iter()
        .filter(|(m, _)| path == *m || path.starts_with(&format!("{m}::")))
        .max_by_key(|(m, _)| m.len())
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
        let modules = layers(order);
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
            let Some(&(_, layer)) = modules.iter().find(|(m, _)| *m == module) else {
                faults.push(format!(
                    "{dir}: `{module}` is in no layer; add it to CRATES"
                ));
                continue;
            };
            seen.insert(module.clone());
            let text = std::fs::read_to_string(&file).unwrap();
            for path in crate_paths(&text, &module) {
                match module_of(&path, &modules) {
                    Some((_, l)) if l < layer => {}
                    // One layer's modules name each other; a module names its children.
                    Some((_, l)) if l == layer => {}
                    Some((m, _)) if m.starts_with(&format!("{module}::")) => {}
                    Some((m, _)) => faults.push(format!(
                        "{dir}: `{module}` imports `{m}`, which is not below it"
                    )),
                    None => faults.push(format!(
                        "{dir}: `{module}` imports `crate::{path}` from the crate root"
                    )),
                }
            }
        }
        for (m, _) in modules.iter().filter(|(m, _)| !seen.contains(*m)) {
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
        crate_paths(text, "session"),
        [
            "room::Hub",
            "room::Membership",
            "outbox",
            "transport::wt::WtServer",
            "stats::Stats::default"
        ]
    );
    let nested = "use super::state::Seat;\nuse super::{hub::Hub, Limits};\nuse super::super::stats;\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::session;\n}";
    assert_eq!(
        crate_paths(nested, "room::resume"),
        [
            "room::state::Seat",
            "room::hub::Hub",
            "room::Limits",
            "stats"
        ]
    );
    assert_eq!(crate_paths("use super::Hub;", "room"), ["Hub"]);
    let order = layers(&["outbox", "room room::hub", "transport::wt", "transport"]);
    assert_eq!(
        module_of("transport::wt::WtServer", &order),
        Some(("transport::wt", 2))
    );
    assert_eq!(
        module_of("transport::lines", &order),
        Some(("transport", 3))
    );
    assert_eq!(module_of("room::hub::Hub", &order), Some(("room::hub", 1)));
    assert_eq!(module_of("room::Limits", &order), Some(("room", 1)));
    assert_eq!(module_of("Closed", &order), None);
}
