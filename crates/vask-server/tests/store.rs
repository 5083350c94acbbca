//! The PostgreSQL apps store against a real PostgreSQL server (started by
//! the test on a free port in a temp dir): migrations, concurrent starts,
//! the CRUD and its conflicts, the change feed (psql edits included, and
//! across a database restart), invalid rows, usage figures, and the bounds.

mod support;

use std::time::{Duration, Instant};

use pusher_hub::{Counts, PeriodCounts, UsageReport};
use support::postgres::Postgres;
use tokio::sync::mpsc;
use vask_server::AppConfig;
use vask_server::config::WebhookConfig;
use vask_server::store::{PgStore, SCHEMA_VERSION, StoreError, StoreOptions};

/// v1's DDL, as a database made by the first release has it.
const V1: &str = "
    CREATE TABLE vask_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
    INSERT INTO vask_schema (version) VALUES (1);
    CREATE TABLE vask_apps (
        id text PRIMARY KEY,
        key text NOT NULL UNIQUE,
        secret text NOT NULL,
        enabled boolean NOT NULL DEFAULT true,
        settings jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now()
    );";

/// A plain client, as an operator's psql.
async fn psql(pg: &Postgres) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

async fn versions(pg: &Postgres) -> Vec<i32> {
    psql(pg)
        .await
        .query("SELECT version FROM vask_schema ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn app(id: &str, key: &str) -> AppConfig {
    AppConfig {
        id: id.into(),
        key: key.into(),
        secret: format!("secret-{id}").into(),
        ..AppConfig::development()
    }
}

/// Every field compared through its serialized form (secret included).
fn same(a: &AppConfig, b: &AppConfig) -> bool {
    serde_json::to_value(a).unwrap() == serde_json::to_value(b).unwrap()
}

/// Waits for a ring of the doorbell, at most `within`.
async fn rung(rx: &mut mpsc::Receiver<()>, within: Duration) -> bool {
    matches!(tokio::time::timeout(within, rx.recv()).await, Ok(Some(())))
}

#[tokio::test]
async fn migrations_create_the_schema_once() {
    let pg = Postgres::start();
    let expected: Vec<i32> = (1..=SCHEMA_VERSION).collect();
    let store = PgStore::connect(&pg.url()).await.unwrap();
    assert_eq!(versions(&pg).await, expected);
    assert!(store.list().await.unwrap().is_empty());
    store.create(&app("1", "one")).await.unwrap();
    drop(store);
    // A second start finds nothing to do, and the data is still there.
    let store = PgStore::connect(&pg.url()).await.unwrap();
    assert_eq!(versions(&pg).await, expected);
    assert_eq!(store.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_v1_database_is_upgraded_and_keeps_its_rows() {
    let pg = Postgres::start();
    let db = psql(&pg).await;
    db.batch_execute(V1).await.unwrap();
    db.execute(
        "INSERT INTO vask_apps (id, key, secret, settings) VALUES ('7', 'seven', 's7', '{\"client_events\": true, \"limits\": {\"max_connections\": 5}}')",
        &[],
    )
    .await
    .unwrap();
    let store = PgStore::connect(&pg.url()).await.unwrap();
    assert_eq!(versions(&pg).await, vec![1, 2]);
    let apps = store.list().await.unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].id, "7");
    assert_eq!(apps[0].secret.expose(), "s7");
    assert!(apps[0].client_events);
    assert!(apps[0].enabled);
    assert_eq!(apps[0].limits.max_connections, Some(5));
    // v2's parts are there: updated_at, the trigger, the usage table.
    let row = db
        .query_one(
            "SELECT updated_at IS NOT NULL FROM vask_apps WHERE id = '7'",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    let (tx, mut rx) = mpsc::channel(1);
    store.watch(tx);
    assert!(rung(&mut rx, Duration::from_secs(5)).await, "first ring");
    db.execute("UPDATE vask_apps SET enabled = false WHERE id = '7'", &[])
        .await
        .unwrap();
    assert!(
        rung(&mut rx, Duration::from_secs(1)).await,
        "trigger's ring"
    );
    store.save_usage(&[]).await.unwrap();
    assert!(store.load_usage().await.unwrap().is_empty());
}

#[tokio::test]
async fn two_nodes_starting_together_migrate_once() {
    let pg = Postgres::start();
    let url = pg.url();
    let (a, b) = tokio::join!(PgStore::connect(&url), PgStore::connect(&url));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        versions(&pg).await,
        (1..=SCHEMA_VERSION).collect::<Vec<_>>()
    );
    a.create(&app("1", "one")).await.unwrap();
    assert_eq!(b.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn create_get_list_update_delete_and_conflicts() {
    let pg = Postgres::start();
    let store = PgStore::connect(&pg.url()).await.unwrap();
    let mut one = app("1", "one");
    one.webhooks.push(WebhookConfig {
        url: "http://127.0.0.1:9/hook".into(),
        event_types: vec!["channel_occupied".into()],
        filter: Default::default(),
        headers: [("x-token".to_owned(), "t".to_owned())].into(),
    });
    one.limits.max_broadcasts_per_day = Some(1000);
    one.user_signin_timeout_secs = Some(30);
    store.create(&one).await.unwrap();
    store.create(&app("10", "ten")).await.unwrap();
    store.create(&app("2", "two")).await.unwrap();

    let got = store.get("1").await.unwrap().unwrap();
    assert!(same(&got, &one), "{got:?}");
    assert!(store.get("3").await.unwrap().is_none());
    let ids: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, ["1", "2", "10"], "numeric order");

    // Conflicts: the id, then the key.
    let e = store.create(&app("1", "other")).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict(m) if m.contains("id")),
        "{e:?}"
    );
    let e = store.create(&app("3", "two")).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict(m) if m.contains("key")),
        "{e:?}"
    );
    let e = store.update(&app("1", "ten")).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict(m) if m.contains("key")),
        "{e:?}"
    );
    // An invalid app is refused before reaching the database.
    let e = store.create(&app("x", "x")).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Invalid(m) if m.contains("id")),
        "{e:?}"
    );

    // Update replaces every field, the secret included.
    let mut changed = app("1", "uno");
    changed.secret = "new-secret".into();
    changed.enabled = false;
    changed.client_events = false;
    assert!(store.update(&changed).await.unwrap());
    let got = store.get("1").await.unwrap().unwrap();
    assert!(same(&got, &changed), "{got:?}");
    assert!(got.webhooks.is_empty());
    assert!(!store.update(&app("99", "nn")).await.unwrap());

    assert!(store.delete("2").await.unwrap());
    assert!(!store.delete("2").await.unwrap());
    assert_eq!(store.list().await.unwrap().len(), 2);
    // The freed key can be used again.
    store.create(&app("3", "two")).await.unwrap();
}

#[tokio::test]
async fn edits_by_hand_ring_the_doorbell_within_a_second() {
    let pg = Postgres::start();
    let store = PgStore::connect(&pg.url()).await.unwrap();
    let (tx, mut rx) = mpsc::channel(1);
    store.watch(tx);
    assert!(rung(&mut rx, Duration::from_secs(5)).await, "first ring");
    assert!(!rung(&mut rx, Duration::from_millis(200)).await, "quiet");

    let db = psql(&pg).await;
    for sql in [
        "INSERT INTO vask_apps (id, key, secret) VALUES ('5', 'five', 's')",
        "UPDATE vask_apps SET key = 'cinq' WHERE id = '5'",
        "DELETE FROM vask_apps WHERE id = '5'",
    ] {
        let t = Instant::now();
        db.execute(sql, &[]).await.unwrap();
        assert!(
            rung(&mut rx, Duration::from_secs(1)).await,
            "no ring for {sql}"
        );
        eprintln!("{sql}: rang after {:?}", t.elapsed());
    }
    // The store's own writes ring too.
    store.create(&app("6", "six")).await.unwrap();
    assert!(rung(&mut rx, Duration::from_secs(1)).await);
    assert_eq!(store.disconnects(), 0);
}

#[tokio::test]
async fn the_watcher_rings_again_after_the_database_restarts() {
    let pg = Postgres::start();
    let store = PgStore::connect(&pg.url()).await.unwrap();
    let (tx, mut rx) = mpsc::channel(1);
    store.watch(tx);
    assert!(rung(&mut rx, Duration::from_secs(5)).await, "first ring");

    pg.stop();
    let e = store.list().await.unwrap_err();
    assert!(matches!(e, StoreError::Unreachable(_)), "{e:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    pg.start_again();
    let t = Instant::now();
    // Back within the backoff's cap (5 s) plus a connection.
    assert!(
        rung(&mut rx, Duration::from_secs(8)).await,
        "ring after restart"
    );
    eprintln!("rang {:?} after the restart", t.elapsed());
    assert_eq!(store.disconnects(), 1);
    // Listening again: an edit rings, and queries work on a new connection.
    psql(&pg)
        .await
        .execute(
            "INSERT INTO vask_apps (id, key, secret) VALUES ('8', 'eight', 's')",
            &[],
        )
        .await
        .unwrap();
    assert!(
        rung(&mut rx, Duration::from_secs(1)).await,
        "ring for an edit"
    );
    assert_eq!(store.list().await.unwrap().len(), 1);

    // Closing the doorbell ends the watcher: nothing rings or counts
    // after another restart.
    drop(rx);
    pg.restart();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.disconnects(), 1);
}

#[tokio::test]
async fn a_silent_database_is_noticed_and_its_return_too() {
    let pg = Postgres::start();
    let options = StoreOptions {
        connect_timeout: Duration::from_millis(500),
        query_timeout: Duration::from_millis(500),
        ping_every: Duration::from_millis(200),
        ..StoreOptions::default()
    };
    let store = PgStore::connect_with(&pg.url(), options).await.unwrap();
    let (tx, mut rx) = mpsc::channel(1);
    store.watch(tx);
    assert!(rung(&mut rx, Duration::from_secs(5)).await, "first ring");

    // Only the store's query connection goes silent: one query times out,
    // and the next is made on a new connection.
    store.list().await.unwrap();
    let pid: i32 = psql(&pg)
        .await
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'vask-server' AND query LIKE 'SELECT id, key%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let kill = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    kill("-STOP");
    let e = store.list().await.unwrap_err();
    assert!(matches!(e, StoreError::Unreachable(_)), "{e:?}");
    let t = Instant::now();
    assert!(store.list().await.unwrap().is_empty());
    assert!(
        t.elapsed() < Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    kill("-CONT");

    // Then the whole server.
    pg.pause();
    let t = Instant::now();
    let e = store.list().await.unwrap_err();
    assert!(matches!(e, StoreError::Unreachable(_)), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // The next query opens a new connection, which is bounded too.
    let t = Instant::now();
    let e = store.get("1").await.unwrap_err();
    assert!(matches!(e, StoreError::Unreachable(_)), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // The watcher's ping goes unanswered: the loss is counted.
    let t = Instant::now();
    while store.disconnects() == 0 {
        assert!(t.elapsed() < Duration::from_secs(3), "loss not noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    pg.resume();
    assert!(
        rung(&mut rx, Duration::from_secs(8)).await,
        "ring after the thaw"
    );
    assert_eq!(store.disconnects(), 1);
    assert!(store.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn invalid_rows_are_reported_with_the_app_and_field() {
    let pg = Postgres::start();
    let store = PgStore::connect(&pg.url()).await.unwrap();
    store.create(&app("1", "one")).await.unwrap();
    let db = psql(&pg).await;
    for (sql, expected) in [
        (
            "INSERT INTO vask_apps (id, key, secret, settings) VALUES ('7', 'seven', 's', '{\"limits\": {\"max_batch_events\": 0}}')",
            "app 7: limits.max_batch_events",
        ),
        (
            "INSERT INTO vask_apps (id, key, secret, settings) VALUES ('7', 'seven', 's', '{\"limits\": {\"max_batch_events\": \"ten\"}}')",
            "app 7: settings.limits.max_batch_events",
        ),
        (
            "INSERT INTO vask_apps (id, key, secret, settings) VALUES ('7', 'seven', 's', '{\"client_events\": \"yes\"}')",
            "app 7: settings.client_events",
        ),
        (
            "INSERT INTO vask_apps (id, key, secret, settings) VALUES ('7', 'seven', 's', '{\"colour\": \"red\"}')",
            "app 7: settings.colour",
        ),
        (
            "INSERT INTO vask_apps (id, key, secret, settings) VALUES ('7', 'seven', 's', '[1]')",
            "app 7: settings",
        ),
        (
            "INSERT INTO vask_apps (id, key, secret) VALUES ('seven', 'seven', 's')",
            "app seven: id",
        ),
        (
            "INSERT INTO vask_apps (id, key, secret) VALUES ('7', 'se ven', 's')",
            "app 7: key",
        ),
        (
            "INSERT INTO vask_apps (id, key, secret) VALUES ('7', 'seven', '')",
            "app 7: secret",
        ),
    ] {
        db.execute(sql, &[]).await.unwrap();
        let e = store.list().await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains(expected)),
            "{sql}: {e:?}"
        );
        let id = if expected.starts_with("app seven") {
            "seven"
        } else {
            "7"
        };
        let e = store.get(id).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains(expected)),
            "{e:?}"
        );
        // The other apps are still readable one by one.
        assert!(store.get("1").await.unwrap().is_some());
        db.execute("DELETE FROM vask_apps WHERE id <> '1'", &[])
            .await
            .unwrap();
    }
    assert_eq!(store.list().await.unwrap().len(), 1);
}

fn report(start: u64, broadcasts: u64) -> UsageReport {
    let counts = Counts {
        broadcasts,
        deliveries: broadcasts * 3,
        peak_connections: 4,
        api_requests: 5,
        bytes_out: 600,
    };
    UsageReport {
        day: PeriodCounts { start, counts },
        month: PeriodCounts {
            start: start - 86_400,
            counts,
        },
    }
}

#[tokio::test]
async fn usage_figures_round_trip_and_go_with_their_app() {
    let pg = Postgres::start();
    let store = PgStore::connect(&pg.url()).await.unwrap();
    store.create(&app("1", "one")).await.unwrap();
    store.create(&app("2", "two")).await.unwrap();
    let day = 1_764_633_600;
    let rows = vec![
        ("node-a".to_owned(), "1".to_owned(), report(day, 10)),
        ("node-b".to_owned(), "1".to_owned(), report(day, 20)),
        ("node-a".to_owned(), "2".to_owned(), report(day, 30)),
    ];
    store.save_usage(&rows).await.unwrap();
    assert_eq!(store.load_usage().await.unwrap(), rows);

    // A node's new figures replace its old ones; a pair given twice is
    // merged; an app no longer in the store is not kept.
    store
        .save_usage(&[
            ("node-a".to_owned(), "1".to_owned(), report(day, 11)),
            ("node-a".to_owned(), "1".to_owned(), report(day, 12)),
            ("node-a".to_owned(), "99".to_owned(), report(day, 1)),
        ])
        .await
        .unwrap();
    let loaded = store.load_usage().await.unwrap();
    assert_eq!(loaded[0], ("node-a".into(), "1".into(), report(day, 12)));
    assert_eq!(loaded.len(), 3);

    // Figures not written for two months (a node run long ended) go.
    psql(&pg)
        .await
        .execute(
            "UPDATE vask_usage SET updated_at = now() - interval '70 days' WHERE node = 'node-b'",
            &[],
        )
        .await
        .unwrap();
    let loaded = store.load_usage().await.unwrap();
    assert_eq!(loaded.len(), 2, "{loaded:?}");
    assert!(loaded.iter().all(|(node, _, _)| node == "node-a"));

    // Deleting an app deletes its figures.
    store.delete("1").await.unwrap();
    assert_eq!(
        store.load_usage().await.unwrap(),
        vec![("node-a".to_owned(), "2".to_owned(), report(day, 30))]
    );
    // A report edited into nonsense is reported, not skipped.
    psql(&pg)
        .await
        .execute("UPDATE vask_usage SET report = '{\"day\": 1}'", &[])
        .await
        .unwrap();
    let e = store.load_usage().await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Invalid(m) if m.contains("app 2")),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_unreachable_database_fails_within_the_bound_without_the_password() {
    // Nothing listens.
    let port = support::cluster::free_port();
    let t = Instant::now();
    let e = PgStore::connect(&format!("postgres://u:hunter2@127.0.0.1:{port}/db"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Unreachable(_)), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    assert!(!format!("{e} {e:?}").contains("hunter2"), "{e}");

    // Something listens and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let t = Instant::now();
    let e = PgStore::connect(&format!("postgres://u:hunter2@127.0.0.1:{port}/db"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Unreachable(_)), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(7), "{:?}", t.elapsed());
    assert!(!format!("{e} {e:?}").contains("hunter2"), "{e}");
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_the_right_one_is_not_shown() {
    let pg = Postgres::start();
    let wrong = pg.url().replace(support::postgres::PASSWORD, "not-it");
    let e = PgStore::connect(&wrong).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Unreachable(m) if m.contains("password")),
        "{e:?}"
    );
    assert!(!e.to_string().contains("not-it"), "{e}");
    // No TLS yet: a URL that demands it fails (rather than going in clear).
    let e = PgStore::connect(&format!("{}?sslmode=require", pg.url()))
        .await
        .unwrap_err();
    assert!(matches!(&e, StoreError::Unreachable(_)), "{e:?}");
    eprintln!("sslmode=require: {e}");
    let store = PgStore::connect(&pg.url()).await.unwrap();
    let debug = format!("{store:?}");
    assert!(!debug.contains(support::postgres::PASSWORD), "{debug}");
    assert!(debug.contains("***"), "{debug}");
}
