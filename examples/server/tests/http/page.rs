//! The page and its assets.

use axum::http::{header, StatusCode};

use crate::support::{assert_error, Server};

#[tokio::test]
async fn page_and_assets_are_served_with_security_headers() {
    let s = Server::new();
    let r = s.call("GET", "/", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .header(header::CONTENT_TYPE)
        .unwrap()
        .starts_with("text/html"));
    assert!(r.text.contains(r#"inputmode="numeric""#));
    assert!(r.text.contains(r#"autocomplete="one-time-code""#));
    assert!(r.text.contains(r#"name="viewport""#));
    assert!(r.text.contains("Use a backup code instead"));
    assert!(r.text.contains("Use security key") && r.text.contains("Add security key"));
    let csp = r.header(header::CONTENT_SECURITY_POLICY).unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert_eq!(r.header(header::X_CONTENT_TYPE_OPTIONS), Some("nosniff"));

    let r = s.call("GET", "/app.js", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .header(header::CONTENT_TYPE)
        .unwrap()
        .starts_with("text/javascript"));
    assert!(r.text.contains("/auth/login/two-factor"));
    assert!(r.text.contains("parseRequestOptionsFromJSON"));
    let r = s.call("GET", "/style.css", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .header(header::CONTENT_TYPE)
        .unwrap()
        .starts_with("text/css"));

    let r = s.call("GET", "/no/such/page", None, None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}
