//! `GET /images/<key>`: the product pictures catalog keeps, read from the
//! same file store. A key names one version of one picture and its bytes
//! never change, so the key is the ETag and the answer may be cached for a
//! year; a client that has it gets `304`.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use shop_platform::storage::files::{FileStoreError, Files};

/// Only keys catalog writes: `products/<id>/<hex digest>.<png|jpg|webp>`.
fn content_type(key: &str) -> Option<&'static str> {
    let mut parts = key.split('/');
    let (Some("products"), Some(id), Some(name), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let (digest, extension) = name.split_once('.')?;
    let well_formed = !id.is_empty()
        && id.bytes().all(|byte| byte.is_ascii_digit())
        && !digest.is_empty()
        && digest.bytes().all(|byte| byte.is_ascii_hexdigit());
    if !well_formed {
        return None;
    }
    match extension {
        "png" => Some("image/png"),
        "jpg" => Some("image/jpeg"),
        "webp" => Some("image/webp"),
        _ => None,
    }
}

pub async fn picture(
    State(files): State<Files>,
    method: Method,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(content_type) = content_type(&key) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let tag = format!("\"{}\"", key.rsplit('/').next().unwrap_or_default());
    let Ok(etag) = HeaderValue::from_str(&tag) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let known =
        headers.get_all(IF_NONE_MATCH).iter().filter_map(|value| value.to_str().ok()).any(|value| {
            value.split(',').map(str::trim).any(|sent| sent == "*" || sent.trim_start_matches("W/") == tag)
        });
    let cache = [(CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")), (ETAG, etag)];
    let unavailable = |error: FileStoreError| {
        tracing::error!(%error, "picture store failed");
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    };
    // A client that has it, or asks only for the headers: no bytes are read.
    if known || method == Method::HEAD {
        return match files.exists(&key).await {
            Ok(true) if known => (StatusCode::NOT_MODIFIED, cache).into_response(),
            Ok(true) => (cache, [(CONTENT_TYPE, HeaderValue::from_static(content_type))]).into_response(),
            Ok(false) => StatusCode::NOT_FOUND.into_response(),
            Err(error) => unavailable(error),
        };
    }
    match files.stream(&key).await {
        // Streamed as the store hands it over: a picture is never held whole.
        Ok(Some((size, chunks))) => (
            cache,
            [
                (CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
                (CONTENT_LENGTH, HeaderValue::from(size)),
            ],
            axum::body::Body::from_stream(chunks),
        )
            .into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => unavailable(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_catalogs_keys_are_served() {
        assert_eq!(content_type("products/7/0a1b2c.png"), Some("image/png"));
        assert_eq!(content_type("products/7/0a1b2c.jpg"), Some("image/jpeg"));
        assert_eq!(content_type("products/7/0a1b2c.webp"), Some("image/webp"));
        for bad in [
            "products/7/0a1b2c.svg",
            "products/x/0a.png",
            "products/7/../0a.png",
            "other/7/0a.png",
            "products/7/zz.png",
            "products/7/0a.png/x",
        ] {
            assert_eq!(content_type(bad), None, "{bad}");
        }
    }
}
