//! The schema migrations shipped under `migrations/`, and the run behind
//! [`SqlStore::migrate`], which applies the ones a database lacks.

use super::{Backend, SqlStore};

/// One schema migration shipped with the crate.
pub(super) struct Migration {
    pub(super) version: i64,
    pub(super) name: &'static str,
    pub(super) sql: &'static str,
}

#[cfg(feature = "postgres")]
pub(super) const POSTGRES_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../../../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "flow",
        sql: include_str!("../../../migrations/postgres/0002_flow.sql"),
    },
    Migration {
        version: 3,
        name: "epoch",
        sql: include_str!("../../../migrations/postgres/0003_epoch.sql"),
    },
];

#[cfg(feature = "sqlite")]
pub(super) const SQLITE_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../../../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "flow",
        sql: include_str!("../../../migrations/sqlite/0002_flow.sql"),
    },
    Migration {
        version: 3,
        name: "epoch",
        sql: include_str!("../../../migrations/sqlite/0003_epoch.sql"),
    },
];

/// The table recording which migrations ran (its own, so a host's own migration tool is not
/// disturbed).
pub(super) const CREATE_MIGRATIONS_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS twofactor_schema_migrations (
    version BIGINT PRIMARY KEY,
    name    TEXT   NOT NULL
)";

/// Key of the PostgreSQL advisory lock that serialises concurrent `migrate()` calls.
#[cfg(feature = "postgres")]
const MIGRATION_LOCK: i64 = 0x7477_6f66_6163_746f; // "twofacto"

/// Applies the migrations the database of `store` lacks ([`SqlStore::migrate`]): under a lock,
/// in one transaction.
pub(super) async fn run(store: &SqlStore) -> Result<(), sqlx::Error> {
    match &*store.backend {
        #[cfg(feature = "postgres")]
        Backend::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *tx)
                .await?;
            if let Some(schema) = &store.schema {
                // The name was checked to be a plain identifier when connecting.
                sqlx::raw_sql(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(CREATE_MIGRATIONS_TABLE)
                .execute(&mut *tx)
                .await?;
            let done: Vec<i64> =
                sqlx::query_scalar("SELECT version FROM twofactor_schema_migrations")
                    .fetch_all(&mut *tx)
                    .await?;
            for m in POSTGRES_MIGRATIONS {
                if !done.contains(&m.version) {
                    sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
                    sqlx::query(
                        "INSERT INTO twofactor_schema_migrations (version, name) VALUES ($1, $2)",
                    )
                    .bind(m.version)
                    .bind(m.name)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await
        }
        #[cfg(feature = "sqlite")]
        Backend::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            sqlx::query(CREATE_MIGRATIONS_TABLE)
                .execute(&mut *tx)
                .await?;
            let done: Vec<i64> =
                sqlx::query_scalar("SELECT version FROM twofactor_schema_migrations")
                    .fetch_all(&mut *tx)
                    .await?;
            for m in SQLITE_MIGRATIONS {
                if !done.contains(&m.version) {
                    sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
                    sqlx::query(
                        "INSERT INTO twofactor_schema_migrations (version, name) VALUES ($1, $2)",
                    )
                    .bind(m.version)
                    .bind(m.name)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await
        }
    }
}
