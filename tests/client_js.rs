//! The client library at `/jam-client.js` and its modules at `/src/*.js`: the npm
//! package's files (`clients/js/`), byte for byte, for the built-in page and for a
//! `--web-dir` page alike.

mod common;

use common::TestServer;

/// Asserts that `/jam-client.js` is the package's file as it is in the source tree.
async fn assert_serves_the_package_file(s: &TestServer) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js/jam-client.js");
    let (status, body) = s.get("/jam-client.js").await;
    assert_eq!(status, 200);
    assert!(
        body == std::fs::read(path).unwrap(),
        "/jam-client.js is not clients/js/jam-client.js"
    );
}

#[tokio::test]
async fn the_built_in_page_gets_the_package_file() {
    let s = TestServer::start().await;
    assert_serves_the_package_file(&s).await;
    // The page imports it by that name; nothing else of the package is served.
    let (status, _) = s.get("/package.json").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_web_dir_page_gets_the_package_file_too() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), "<p>mine</p>").unwrap();
    // A stale copy in the folder does not shadow the package.
    std::fs::write(root.path().join("jam-client.js"), "stale").unwrap();
    let web = root.path().canonicalize().unwrap();
    let s = TestServer::start_with(|c| c.web_dir = Some(web.clone())).await;
    assert_serves_the_package_file(&s).await;
    let (status, body) = s.get("/index.html").await;
    assert_eq!((status, body.as_slice()), (200, &b"<p>mine</p>"[..]));
}

/// The modules `clients/js/jam-client.js` imports (`from './src/....js'`), as the page's
/// `/jam-client.js` resolves them: `/src/....js`.
fn entry_imports() -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js/jam-client.js");
    let entry = std::fs::read_to_string(path).unwrap();
    let imports: Vec<String> = entry
        .split("from '")
        .skip(1)
        .filter_map(|rest| rest.split('\'').next())
        .filter_map(|spec| spec.strip_prefix("./"))
        .map(|m| format!("/{m}"))
        .collect();
    assert!(!imports.is_empty(), "jam-client.js imports no module");
    imports
}

/// Asserts that every module the entry imports loads, as a browser's module loader
/// checks: 200 and a JavaScript content type, and the package's bytes.
async fn assert_serves_the_modules(s: &TestServer) {
    let client = reqwest::Client::new();
    for module in entry_imports() {
        let res = client
            .get(format!("{}{module}", s.http_base()))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{module}");
        let kind = res.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(kind.starts_with("text/javascript"), "{module}: {kind}");
        let on_disk =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("clients/js{module}"));
        assert!(
            res.bytes().await.unwrap() == std::fs::read(on_disk).unwrap(),
            "{module} is not the package's file"
        );
    }
}

#[tokio::test]
async fn the_entrys_modules_load_for_the_built_in_page() {
    let s = TestServer::start().await;
    assert_serves_the_modules(&s).await;
    // Only the package's modules: nothing else under src/, and no path out of it.
    for path in ["/src/", "/src/missing.js", "/src/../Cargo.toml"] {
        let (status, _) = s.get(path).await;
        assert_eq!(status, 404, "{path}");
    }
}

#[tokio::test]
async fn the_entrys_modules_load_for_a_web_dir_page_too() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), "<p>mine</p>").unwrap();
    let web = root.path().canonicalize().unwrap();
    let s = TestServer::start_with(|c| c.web_dir = Some(web.clone())).await;
    assert_serves_the_modules(&s).await;
}
