//! The store conformance suite against every store of the crate: the same tests, four stores.
//! Redis and PostgreSQL read their URLs from the environment (see `support::stores`).

mod memory {
    mod otp {
        twofactor::otp_store_tests!(
            || async { Some(twofactor::store::MemoryOtpStore::new()) },
            purge
        );
    }
    mod enrollment {
        twofactor::enrollment_store_tests!(|| async {
            Some(twofactor::store::MemoryEnrollmentStore::new())
        });
    }
}

#[cfg(feature = "redis")]
mod redis {
    use crate::support::stores;

    mod otp {
        use crate::support::stores::redis_store;
        twofactor::otp_store_tests!(redis_store);
    }
    mod enrollment {
        use crate::support::stores::redis_enrollment_store;
        twofactor::enrollment_store_tests!(redis_enrollment_store);
    }

    /// Two stores on one Redis with different prefixes never see each other's keys.
    #[test]
    fn prefixes_isolate_stores_on_one_redis() {
        use twofactor::{clock::Timestamp, store::OtpStore, store::StoreKey};
        twofactor::store::conformance::run(
            "prefixes_isolate_stores_on_one_redis",
            || async {
                let a = stores::redis_store().await?;
                let b = stores::redis_store().await?;
                Some((a, b))
            },
            |stores| async move {
                let (a, b) = &*stores;
                assert_ne!(a.prefix(), b.prefix());
                let k = StoreKey::new(format!("{{{}}}:code", stores::random_word()));
                let (now, exp) = (
                    Timestamp::from_unix_secs(100),
                    Timestamp::from_unix_secs(400),
                );
                a.put(&k, b"from-a", exp, now).await.unwrap();
                assert_eq!(b.get(&k, now).await.unwrap(), None);
                assert!(b.put_if_absent(&k, b"from-b", exp, now).await.unwrap());
                assert_eq!(
                    b.increment(&StoreKey::new("{x}:n"), exp, now)
                        .await
                        .unwrap(),
                    1
                );
                assert_eq!(
                    a.increment(&StoreKey::new("{x}:n"), exp, now)
                        .await
                        .unwrap(),
                    1
                );
                assert_eq!(
                    a.take(&k, now).await.unwrap().as_deref(),
                    Some(&b"from-a"[..])
                );
                assert_eq!(
                    b.take(&k, now).await.unwrap().as_deref(),
                    Some(&b"from-b"[..])
                );
            },
        );
    }

    /// Enrolment stores under different prefixes never see each other's records or codes; user
    /// ids that differ only by braces or percent signs stay apart; a key holding something else
    /// than this store wrote is a corrupt record, never an empty one.
    #[test]
    fn enrollment_keys_isolate_and_refuse_foreign_records() {
        use twofactor::{
            clock::Timestamp, error::StoreErrorKind, store::BackupCodeRecord,
            store::EnrollmentRecord, store::EnrollmentStore,
        };
        twofactor::store::conformance::run(
            "enrollment_keys_isolate_and_refuse_foreign_records",
            || async {
                let a = stores::redis_store().await?;
                let b = stores::redis_store().await?;
                Some((a, b))
            },
            |stores| async move {
                let (a_otp, b_otp) = &*stores;
                let (a, b) = (a_otp.enrollment_store(), b_otp.enrollment_store());
                assert_eq!(a.prefix(), a_otp.prefix());
                let now = Timestamp::from_unix_secs(100);
                let w = stores::random_word();
                let users = [
                    w.clone(),
                    format!("{w}}}x"),
                    format!("{{{w}}}"),
                    format!("{w}%7Dx"),
                    format!("{w}%257Dx"),
                ];
                let code = |i: usize| BackupCodeRecord::new(vec![i as u8; 32], None);
                for (i, u) in users.iter().enumerate() {
                    let mut r = EnrollmentRecord::new();
                    r.last_verified_at = Some(Timestamp::from_unix_secs(i as u64));
                    a.save(u, &r, None).await.unwrap().unwrap();
                    a.replace_backup_codes(u, &[code(i)], now).await.unwrap();
                }
                for (i, u) in users.iter().enumerate() {
                    let (rec, n) = a.load_with_codes(u).await.unwrap();
                    assert_eq!(
                        rec.unwrap().0.last_verified_at,
                        Some(Timestamp::from_unix_secs(i as u64)),
                        "{u}"
                    );
                    assert_eq!(n, 1, "{u}");
                    assert_eq!(
                        a.find_backup_code(u, &code(i).lookup).await.unwrap(),
                        Some(code(i))
                    );
                    assert_eq!(b.load_with_codes(u).await.unwrap(), (None, 0), "{u}");
                }

                let client = redis::Client::open(stores::redis_url().unwrap()).unwrap();
                let mut conn = redis::aio::ConnectionManager::new(client).await.unwrap();
                let (plain, garbled) = (format!("{w}-plain"), format!("{w}-garbled"));
                let record_key = |u: &str| format!("{}enrollment:{{{u}}}", a.prefix());
                redis::cmd("SET")
                    .arg(record_key(&plain))
                    .arg("not a hash")
                    .query_async::<()>(&mut conn)
                    .await
                    .unwrap();
                redis::cmd("HSET")
                    .arg(record_key(&garbled))
                    .arg("record")
                    .arg("not json")
                    .arg("revision")
                    .arg(1)
                    .query_async::<()>(&mut conn)
                    .await
                    .unwrap();
                for u in [&plain, &garbled] {
                    let e = a.load(u).await.unwrap_err();
                    assert_eq!(e.kind(), StoreErrorKind::Corrupt, "{u}: {e}");
                    let e = a.load_with_codes(u).await.unwrap_err();
                    assert_eq!(e.kind(), StoreErrorKind::Corrupt, "{u}: {e}");
                }
                assert!(
                    a.save(&plain, &EnrollmentRecord::new(), None)
                        .await
                        .is_err(),
                    "a foreign record is not overwritten"
                );
            },
        );
    }

    /// A prefix with a brace would steal the hash tag from the keys: refused.
    #[test]
    fn prefix_with_brace_is_refused() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt
            .block_on(
                twofactor::store::RedisOtpStore::builder("redis://127.0.0.1:1")
                    .prefix("{app}:")
                    .connect(),
            )
            .unwrap_err();
        assert_eq!(e.code(), "invalid_config");
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    mod otp {
        use crate::support::stores::postgres_store;
        twofactor::otp_store_tests!(postgres_store, purge);
    }
    mod enrollment {
        use crate::support::stores::postgres_store;
        twofactor::enrollment_store_tests!(postgres_store);
    }
    mod otp_async_login_commits {
        use crate::support::stores::postgres_store_async_login_commits;
        twofactor::otp_store_tests!(postgres_store_async_login_commits, purge);
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    mod otp {
        use crate::support::stores::sqlite_store;
        twofactor::otp_store_tests!(sqlite_store, purge);
    }
    mod enrollment {
        use crate::support::stores::sqlite_store;
        twofactor::enrollment_store_tests!(sqlite_store);
    }
}
