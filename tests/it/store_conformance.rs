//! The store conformance suite against every store of the crate: the same tests, four stores.
//! Redis and PostgreSQL read their URLs from the environment (see `support::stores`).

mod memory {
    mod otp {
        twofactor::otp_store_tests!(|| async { Some(twofactor::MemoryOtpStore::new()) }, purge);
    }
    mod enrollment {
        twofactor::enrollment_store_tests!(|| async {
            Some(twofactor::MemoryEnrollmentStore::new())
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

    /// Two stores on one Redis with different prefixes never see each other's keys.
    #[test]
    fn prefixes_isolate_stores_on_one_redis() {
        use twofactor::{OtpStore, StoreKey, Timestamp};
        twofactor::conformance::run(
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

    /// A prefix with a brace would steal the hash tag from the keys: refused.
    #[test]
    fn prefix_with_brace_is_refused() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt
            .block_on(
                twofactor::RedisOtpStore::builder("redis://127.0.0.1:1")
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
