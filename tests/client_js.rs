//! The client library at `/jam-client.js`: the npm package's file (`clients/js/`), byte for
//! byte, for the built-in page and for a `--web-dir` page alike.

mod common;

use common::TestServer;
use jam_client::http_get;

/// The package's file as it is in the source tree.
fn package_file() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js/jam-client.js");
    std::fs::read(path).unwrap()
}

#[tokio::test]
async fn the_built_in_page_gets_the_package_file() {
    let s = TestServer::start().await;
    let (status, body) = http_get(&format!("{}/jam-client.js", s.http_base()))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        body == package_file(),
        "/jam-client.js is not clients/js/jam-client.js"
    );
    // The page imports it by that name; nothing else of the package is served.
    let (status, _) = http_get(&format!("{}/package.json", s.http_base()))
        .await
        .unwrap();
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
    let (status, body) = http_get(&format!("{}/jam-client.js", s.http_base()))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        body == package_file(),
        "/jam-client.js is not clients/js/jam-client.js"
    );
    let (status, body) = http_get(&format!("{}/index.html", s.http_base()))
        .await
        .unwrap();
    assert_eq!((status, body.as_slice()), (200, &b"<p>mine</p>"[..]));
}
