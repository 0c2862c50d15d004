//! The client library at `/jam-client.js`: the npm package's file (`clients/js/`), byte for
//! byte, for the built-in page and for a `--web-dir` page alike.

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
