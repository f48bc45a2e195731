//! The example over `SqlStore` on a SQLite file (feature `sqlite`).

use std::sync::Arc;

use axum::http::StatusCode;
use twofactor::store::EnrollmentStore;

use crate::support::{assert_error, Server};

/// A SQLite file of its own in the temporary directory, deleted (with its journal) on drop.
struct TempDatabase(std::path::PathBuf);

impl TempDatabase {
    fn new() -> Self {
        let name = format!(
            "twofactor-server-http-{}-{:016x}.db",
            std::process::id(),
            rand::random::<u64>()
        );
        TempDatabase(std::env::temp_dir().join(name))
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.0.display())
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The example's state over `SqlStore` on a SQLite file, as `cargo run -p twofactor-server-example
/// --features sqlite` runs it: registration, TOTP enrolment and sign-in with TOTP and with a
/// backup code go through the file, where a second connection finds what they wrote.
#[tokio::test]
async fn the_flows_run_over_sql_store_on_a_sqlite_file() {
    use twofactor::store::SqlStore;

    let db = TempDatabase::new();
    let store = SqlStore::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let s = Server::with_stores(Arc::new(store.clone()), Arc::new(store.clone()));

    let judy = s.register("judy").await;
    let id = s.get_auth("/auth/me", &judy.access).await.json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (secret, codes) = s.enrol_totp(&judy).await;

    let challenge = s.challenge("judy").await;
    let r = s.answer(&challenge, &s.totp(&secret, 0)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["method"], "totp");
    // The challenge was taken from the file: it cannot be answered twice.
    let r = s.answer(&challenge, &s.totp(&secret, 30)).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");

    let challenge = s.challenge("judy").await;
    let r = s.answer(&challenge, &codes[0]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["method"], "backup_code");
    assert_eq!(r.json["backup_codes_remaining"], 9);
    let challenge = s.challenge("judy").await;
    let r = s.answer(&challenge, &codes[0]).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_code");

    // A second connection to the file sees the confirmed factor and the spent code.
    let other = SqlStore::connect(db.url()).await.unwrap();
    let (record, _) = other
        .load(&id)
        .await
        .unwrap()
        .expect("the enrolment is in the file");
    assert!(record.totp.is_some());
    assert!(record.pending_totp.is_none());
    assert_eq!(other.backup_codes_remaining(&id).await.unwrap(), 9);
    other.close().await;
    store.close().await;
}
