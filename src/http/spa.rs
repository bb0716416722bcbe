//! The embedded web app: files from the client build, `index.html` for client-side routes (with a
//! fresh style nonce, never cached), ETags with 304s, and a year of caching on content-hashed assets.
use poem::{
    Request, Response, handler,
    http::{StatusCode, header},
};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "$OUT_DIR/ui"]
struct Ui;

const INDEX: &str = "index.html";

#[handler]
pub fn serve_ui(req: &Request) -> Response {
    let path = req.uri().path().trim_start_matches('/');
    let (name, file) = match Ui::get(path).filter(|_| !path.is_empty()) {
        Some(file) => (path, file),
        // A path whose last segment has a dot names a file that is not there; anything else is
        // a client-side route that the app itself resolves.
        None if path.rsplit('/').next().is_some_and(|segment| segment.contains('.')) => {
            return Response::builder().status(StatusCode::NOT_FOUND).body("not found");
        }
        None => match Ui::get(INDEX) {
            Some(file) => (INDEX, file),
            None => return Response::builder().status(StatusCode::NOT_FOUND).body("the web app is not built in"),
        },
    };
    if name == INDEX {
        return index_page(&file.data);
    }
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let cache = if is_content_hashed(name) { "public, max-age=31536000, immutable" } else { "no-cache" };
    let fresh = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == etag);
    let builder = Response::builder().header(header::ETAG, etag).header(header::CACHE_CONTROL, cache);
    if fresh {
        return builder.status(StatusCode::NOT_MODIFIED).finish();
    }
    builder.content_type(file.metadata.mimetype()).body(file.data.into_owned())
}

/// Where `index.html` asks for a nonce (`ngCspNonce` on the root element).
const NONCE_PLACEHOLDER: &str = "chatd-csp-nonce";

/// `index.html` with a fresh nonce for the styles Angular adds, and the policy that allows exactly
/// those. Never cached: a cached page would carry a nonce that no longer matches.
fn index_page(data: &[u8]) -> Response {
    let nonce = crate::domain::accounts::random_hex(16);
    let page = String::from_utf8_lossy(data).replace(NONCE_PLACEHOLDER, &nonce);
    Response::builder()
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::CONTENT_SECURITY_POLICY, super::middleware::app_csp(Some(&nonce)))
        .content_type("text/html; charset=utf-8")
        .body(page)
}

/// Angular names bundles like `main-AB12CD34.js`: the part after the last `-` is a content hash.
fn is_content_hashed(name: &str) -> bool {
    let stem = name.rsplit('/').next().unwrap_or(name);
    let stem = stem.split('.').next().unwrap_or(stem);
    stem.rsplit_once('-').is_some_and(|(_, hash)| hash.len() >= 8 && hash.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::is_content_hashed;

    #[test]
    fn recognises_hashed_bundles() {
        assert!(is_content_hashed("main-AB12CD34.js"));
        assert!(is_content_hashed("media/font-ABCDEFGH1234.woff2"));
        assert!(!is_content_hashed("favicon.ico"));
        assert!(!is_content_hashed("index.html"));
        assert!(!is_content_hashed("my-file.js"));
    }
}
