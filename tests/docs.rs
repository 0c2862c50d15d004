//! The repository's documentation stays whole: every relative link in a tracked Markdown
//! file points at a file or folder inside the repository, no link climbs out of it, every
//! `docs/protocol.md §N` cited in the source names a section that `docs/protocol.md` has,
//! and nothing cites the protocol under its old upper-case file name.
//!
//! It reads the files `git ls-files` lists (so `target/` and `node_modules/` never count,
//! nor the patched dependencies' own files under `vendor/`) and owns no server: it checks
//! text only. Links to other sites are not followed.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The repository's root (this package is the workspace root).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Tracked files whose name ends with one of `extensions`, relative to the root.
fn tracked(extensions: &[&str]) -> Vec<PathBuf> {
    let out = Command::new("git")
        .arg("ls-files")
        .current_dir(root())
        .output()
        .expect("git ls-files runs in the repository");
    assert!(out.status.success(), "git ls-files failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|p| !p.split('/').any(|c| c == "target" || c == "node_modules"))
        // A patched dependency's own files are its authors' text, as published (its
        // README's links point into its own repository); `vendor/README.md` is ours.
        .filter(|p| !(p.starts_with("vendor/") && p.matches('/').count() > 1))
        .filter(|p| extensions.iter().any(|e| p.ends_with(e)))
        .map(PathBuf::from)
        .filter(|p| root().join(p).is_file())
        .collect()
}

/// Markdown text without fenced code blocks and inline code spans, where a `](` is code,
/// not a link.
fn prose(markdown: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            out.push('\n');
            continue;
        }
        if fenced {
            out.push('\n');
            continue;
        }
        // Inline code spans: drop what lies between pairs of backticks.
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                out.push_str(part);
            }
        }
        out.push('\n');
    }
    out
}

/// The targets of Markdown links and images (`[text](target)`) and of HTML `src=` /
/// `href=` attributes in `markdown`.
fn link_targets(markdown: &str) -> Vec<String> {
    let text = prose(markdown);
    let mut targets = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let end = after.find(')').unwrap_or(after.len());
        // A title after the target (`[a](b "title")`) is not part of it.
        let target = after[..end].split_whitespace().next().unwrap_or("");
        targets.push(target.trim_matches(['<', '>']).to_string());
        rest = &after[end..];
    }
    for attr in ["src=\"", "href=\""] {
        let mut rest = text.as_str();
        while let Some(at) = rest.find(attr) {
            let after = &rest[at + attr.len()..];
            let end = after.find('"').unwrap_or(after.len());
            targets.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    targets
}

/// Whether a link target is another site (or a mail address), which this test leaves alone.
fn is_external(target: &str) -> bool {
    let scheme = target.split(':').next().unwrap_or("");
    target.contains(':')
        && !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
}

/// `path` with `.` and `..` resolved without touching the file system; `None` if it climbs
/// above its start.
fn normalise(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// What is wrong with every relative link in `markdown`, a file at `file` (relative to
/// the root).
fn broken_links(file: &Path, markdown: &str) -> Vec<String> {
    let dir = file.parent().unwrap_or(Path::new(""));
    let mut problems = Vec::new();
    for target in link_targets(markdown) {
        let path = target.split(['#', '?']).next().unwrap_or("");
        if path.is_empty() || is_external(&target) {
            continue;
        }
        if path.starts_with('/') {
            problems.push(format!(
                "{}: `{target}` is an absolute path",
                file.display()
            ));
            continue;
        }
        match normalise(&dir.join(path)) {
            None => problems.push(format!(
                "{}: `{target}` leaves the repository",
                file.display()
            )),
            Some(inside) if !root().join(&inside).exists() => problems.push(format!(
                "{}: `{target}` points at {}, which does not exist",
                file.display(),
                inside.display()
            )),
            Some(_) => {}
        }
    }
    problems
}

/// The numbers N of the `## N.` headings of docs/protocol.md.
fn protocol_sections() -> BTreeSet<u32> {
    let text =
        std::fs::read_to_string(root().join("docs/protocol.md")).expect("docs/protocol.md exists");
    text.lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter_map(|l| l.split_once('.'))
        .filter_map(|(n, _)| n.parse().ok())
        .collect()
}

/// The section numbers cited as `docs/protocol.md §N` (also `§§N`, `§N-M`, `§N, M`) in `text`.
fn cited_sections(text: &str) -> Vec<u32> {
    const CITE: &str = "docs/protocol.md §";
    let mut cited = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(CITE) {
        let after = rest[at + CITE.len()..].trim_start_matches('§');
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse() {
            cited.push(n);
        }
        rest = &rest[at + CITE.len()..];
    }
    cited
}

const SOURCE: &[&str] = &[".rs", ".js", ".mjs", ".ts", ".tsx", ".sh"];

#[test]
fn every_relative_markdown_link_points_inside_the_repository() {
    let files = tracked(&[".md"]);
    assert!(files.iter().any(|f| f == Path::new("README.md")));
    let problems: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(root().join(f)).ok()?;
            Some(broken_links(f, &text))
        })
        .flatten()
        .collect();
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_cited_protocol_section_exists() {
    let sections = protocol_sections();
    assert_eq!(
        sections,
        (1..=13).collect(),
        "docs/protocol.md has the sections 1 to 13"
    );
    let mut problems = Vec::new();
    for file in tracked(SOURCE) {
        let Ok(text) = std::fs::read_to_string(root().join(&file)) else {
            continue;
        };
        for n in cited_sections(&text) {
            if !sections.contains(&n) {
                problems.push(format!("{}: cites §{n}", file.display()));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "sections docs/protocol.md does not have:\n{}",
        problems.join("\n")
    );
}

#[test]
fn nothing_cites_the_upper_case_protocol_file() {
    // Built at run time so that this file does not match itself.
    let old = ["PROTOCOL", ".md"].concat();
    let mut extensions = SOURCE.to_vec();
    extensions.push(".md");
    let problems: Vec<String> = tracked(&extensions)
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(root().join(f)).ok()?;
            let lines: Vec<String> = text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.contains(&old))
                .map(|(i, _)| format!("{}:{}", f.display(), i + 1))
                .collect();
            Some(lines)
        })
        .flatten()
        .collect();
    assert!(
        problems.is_empty(),
        "{} cite {old}; cite docs/protocol.md instead:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_link_reader_finds_links_and_skips_code() {
    let md = "See [a](docs/a.md#x) and ![b](../b.png \"t\").\n`[no](c.md)`\n```\n[no](d.md)\n```\n<img src=\"e.png\">";
    assert_eq!(link_targets(md), ["docs/a.md#x", "../b.png", "e.png"]);
    assert!(is_external("https://example.com/x"));
    assert!(!is_external("docs/a.md"));
    assert_eq!(
        normalise(Path::new("docs/../README.md")),
        Some("README.md".into())
    );
    assert_eq!(normalise(Path::new("docs/../../x")), None);
    assert_eq!(
        cited_sections("see docs/protocol.md §6 and docs/protocol.md §10."),
        [6, 10]
    );
}
