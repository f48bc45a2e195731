//! Faults: a store that is down, refusing or not answering gives a typed, transient
//! `StoreError` that keeps its cause, and never a wrongful value. Ports are chosen at run time;
//! the Redis stopped mid-flow is one this test starts itself (`redis-server` on a free port).

use std::error::Error as _;
use std::net::TcpListener;
use std::time::Duration;

use twofactor::error::StoreErrorKind;

use crate::support::stores::{self, dead_port, has_source, runtime, store_error, SHORT};

/// A TCP server on a free port that accepts connections and never answers.
fn silent_server() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use stores::OwnRedis;
    use twofactor::{clock::Timestamp, store::OtpStore, store::RedisOtpStore, store::StoreKey};

    #[test]
    fn dead_port_is_a_transient_store_error_with_its_source() {
        runtime().block_on(async {
            let url = format!("redis://127.0.0.1:{}", dead_port());
            let e = RedisOtpStore::builder(url)
                .connect_timeout(SHORT)
                .connect()
                .await
                .unwrap_err();
            assert_eq!(e.code(), "store_unavailable");
            assert!(e.is_transient());
            let s = store_error(e);
            assert_eq!(s.kind(), StoreErrorKind::Unavailable);
            assert!(s.is_transient());
            assert!(has_source(&s), "the cause is kept: {s}");
        });
    }

    #[test]
    fn server_that_never_answers_times_out() {
        let (_listener, port) = silent_server();
        runtime().block_on(async {
            let e = RedisOtpStore::builder(format!("redis://127.0.0.1:{port}"))
                .connect_timeout(SHORT)
                .response_timeout(SHORT)
                .connect()
                .await
                .unwrap_err();
            let s = store_error(e);
            assert!(s.is_transient(), "{s}");
            assert_eq!(s.kind(), StoreErrorKind::Timeout, "{s}");
            assert!(has_source(&s));
        });
    }

    #[test]
    fn url_password_never_shows_in_errors_or_debug() {
        runtime().block_on(async {
            let url = format!("redis://:hunter2-secret@127.0.0.1:{}", dead_port());
            let builder = RedisOtpStore::builder(url.clone()).connect_timeout(SHORT);
            assert!(!format!("{builder:?}").contains("hunter2"));
            let e = builder.connect().await.unwrap_err();
            let mut text = format!("{e} {e:?}");
            let mut source = e.source();
            while let Some(s) = source {
                text.push_str(&format!(" {s} {s:?}"));
                source = s.source();
            }
            assert!(!text.contains("hunter2"), "{text}");
            let bad = RedisOtpStore::connect("redis://:hunter2@[bad")
                .await
                .unwrap_err();
            assert_eq!(bad.code(), "invalid_config");
            assert!(!format!("{bad} {bad:?}").contains("hunter2"));
        });
    }

    #[test]
    fn server_stopped_mid_flow_fails_closed_and_recovers() {
        let port = dead_port();
        let Some(mut server) = OwnRedis::start(port) else {
            return;
        };
        runtime().block_on(async {
            let store = server.connect().await;
            let (now, exp) = (
                Timestamp::from_unix_secs(1_000),
                Timestamp::from_unix_secs(1_300),
            );
            let code = StoreKey::new("{user-1}:login-code");
            let attempts = StoreKey::new("{user-1}:attempts");
            store.put(&code, b"hashed-code", exp, now).await.unwrap();
            assert_eq!(store.increment(&attempts, exp, now).await.unwrap(), 1);

            server.kill();

            // Every primitive fails with a transient, typed error: none answers as if it worked.
            let errors = vec![
                store.get(&code, now).await.map(|_| ()).unwrap_err(),
                store.take(&code, now).await.map(|_| ()).unwrap_err(),
                store.put(&code, b"x", exp, now).await.unwrap_err(),
                store
                    .put_if_absent(&code, b"x", exp, now)
                    .await
                    .map(|_| ())
                    .unwrap_err(),
                store
                    .increment(&attempts, exp, now)
                    .await
                    .map(|_| ())
                    .unwrap_err(),
                store
                    .advance(&attempts, 9, exp, now)
                    .await
                    .map(|_| ())
                    .unwrap_err(),
                store.delete(&code).await.unwrap_err(),
            ];
            for e in &errors {
                assert!(e.is_transient(), "{e}");
                assert_eq!(e.kind(), StoreErrorKind::Unavailable, "{e}");
                assert!(has_source(e), "{e}");
            }

            // The server comes back empty (no persistence): the store reconnects by itself,
            // and the lost code is simply absent, never accepted.
            let _server = OwnRedis::start(port).unwrap();
            let mut back = None;
            for _ in 0..100 {
                match store.take(&code, now).await {
                    Ok(v) => {
                        back = Some(v);
                        break;
                    }
                    Err(e) => {
                        assert!(e.is_transient(), "{e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            assert_eq!(back, Some(None), "reconnected, and the lost code is absent");
            assert_eq!(store.increment(&attempts, exp, now).await.unwrap(), 1);
            store.put(&code, b"new", exp, now).await.unwrap();
            assert_eq!(
                store.take(&code, now).await.unwrap().as_deref(),
                Some(&b"new"[..])
            );
        });
    }

    /// The enrolment store on a Redis that went away: every operation fails with a transient,
    /// typed error that keeps its cause, and none answers "not enrolled" or "no such code".
    #[test]
    fn enrollment_store_fails_closed_when_redis_is_down() {
        use twofactor::{store::BackupCodeRecord, store::EnrollmentRecord, store::EnrollmentStore};
        let port = dead_port();
        let Some(mut server) = OwnRedis::start(port) else {
            return;
        };
        runtime().block_on(async {
            let store = server.connect().await.enrollment_store();
            let now = Timestamp::from_unix_secs(1_000);
            let code = BackupCodeRecord::new(vec![7; 32], None);
            let rev = store
                .save("u", &EnrollmentRecord::new(), None)
                .await
                .unwrap()
                .unwrap();
            store
                .replace_backup_codes("u", std::slice::from_ref(&code), now)
                .await
                .unwrap();

            server.kill();

            let record = EnrollmentRecord::new();
            let errors = vec![
                store.load("u").await.map(|_| ()).unwrap_err(),
                store
                    .save("u", &record, Some(rev))
                    .await
                    .map(|_| ())
                    .unwrap_err(),
                store.remove("u").await.unwrap_err(),
                store.replace_backup_codes("u", &[], now).await.unwrap_err(),
                store
                    .find_backup_code("u", &code.lookup)
                    .await
                    .map(|_| ())
                    .unwrap_err(),
                store
                    .consume_backup_code("u", &code.lookup, now)
                    .await
                    .map(|_| ())
                    .unwrap_err(),
                store
                    .backup_codes_remaining("u")
                    .await
                    .map(|_| ())
                    .unwrap_err(),
                store.load_with_codes("u").await.map(|_| ()).unwrap_err(),
                store
                    .redeem_backup_code("u", &code.lookup, now)
                    .await
                    .map(|_| ())
                    .unwrap_err(),
            ];
            for e in &errors {
                assert!(e.is_transient(), "{e}");
                assert_eq!(e.kind(), StoreErrorKind::Unavailable, "{e}");
                assert!(has_source(e), "{e}");
            }
        });
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use twofactor::{store::EnrollmentStore, store::SqlStore};

    #[test]
    fn dead_port_is_a_transient_store_error_with_its_source() {
        runtime().block_on(async {
            let url = format!("postgres://postgres@127.0.0.1:{}/test", dead_port());
            let e = SqlStore::builder(url)
                .acquire_timeout(SHORT)
                .connect()
                .await
                .unwrap_err();
            assert_eq!(e.code(), "store_unavailable");
            let s = store_error(e);
            assert!(s.is_transient(), "{s}");
            assert!(has_source(&s));
        });
    }

    #[test]
    fn server_that_never_answers_times_out() {
        let (_listener, port) = silent_server();
        runtime().block_on(async {
            let url = format!("postgres://postgres@127.0.0.1:{port}/test");
            let e = SqlStore::builder(url)
                .acquire_timeout(SHORT)
                .connect()
                .await
                .unwrap_err();
            let s = store_error(e);
            assert_eq!(s.kind(), StoreErrorKind::Timeout, "{s}");
            assert!(s.is_transient());
            assert!(has_source(&s));
        });
    }

    #[test]
    fn url_password_never_shows_in_debug() {
        let b = SqlStore::builder("postgres://u:hunter2-secret@127.0.0.1:1/test");
        assert!(!format!("{b:?}").contains("hunter2"));
    }

    #[test]
    fn closed_store_fails_transiently_and_loses_nothing() {
        runtime().block_on(async {
            let Some(store) = stores::postgres_store().await else {
                return;
            };
            let user = format!("fault-{}", stores::random_word());
            let mut rec = twofactor::store::EnrollmentRecord::new();
            rec.last_verified_at = Some(twofactor::clock::Timestamp::from_unix_secs(5));
            let rev = store.save(&user, &rec, None).await.unwrap().unwrap();
            store.close().await;
            let e = store.load(&user).await.unwrap_err();
            assert!(e.is_transient(), "{e}");
            assert_eq!(e.kind(), StoreErrorKind::Unavailable);
            let e = store.save(&user, &rec, Some(rev)).await.unwrap_err();
            assert!(e.is_transient());
            // A new connection finds the enrollment intact.
            let again = stores::postgres_store().await.unwrap();
            assert_eq!(again.load(&user).await.unwrap(), Some((rec, rev)));
        });
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use twofactor::{clock::Timestamp, store::OtpStore, store::SqlStore, store::StoreKey};

    #[test]
    fn unopenable_file_is_a_store_error_with_its_source() {
        runtime().block_on(async {
            let e = SqlStore::builder("sqlite:///nonexistent-dir-for-twofactor/x/2fa.db")
                .acquire_timeout(SHORT)
                .connect()
                .await
                .unwrap_err();
            let s = store_error(e);
            assert!(has_source(&s), "{s}");
        });
    }

    #[test]
    fn closed_store_fails_transiently() {
        runtime().block_on(async {
            let store = stores::sqlite_store().await.unwrap();
            let k = StoreKey::new("{u}:k");
            let now = Timestamp::from_unix_secs(1);
            store
                .put(&k, b"v", Timestamp::from_unix_secs(100), now)
                .await
                .unwrap();
            store.close().await;
            let e = store.take(&k, now).await.unwrap_err();
            assert!(e.is_transient(), "{e}");
            assert!(has_source(&e));
        });
    }

    #[test]
    fn unknown_scheme_and_bad_schema_are_config_errors() {
        runtime().block_on(async {
            let e = SqlStore::connect("mysql://localhost/x").await.unwrap_err();
            assert_eq!(e.code(), "invalid_config");
            let e = SqlStore::builder("sqlite::memory:")
                .schema("Robert'); DROP TABLE students;--")
                .connect()
                .await
                .unwrap_err();
            assert_eq!(e.code(), "invalid_config");
        });
    }
}
