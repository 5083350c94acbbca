//! The apps kept in PostgreSQL (`--apps postgres://...`): every node reads
//! them from one database and is told of changes through LISTEN/NOTIFY, even
//! of rows an operator edits by hand with psql.
//!
//! The schema is created on an empty database and upgraded by versioned
//! migrations, each in its own transaction under an advisory lock, so that
//! nodes starting together on one database do not race. Each app is a row of
//! `vask_apps`: `id`, `key`, `secret` and `enabled` as columns, the rest of
//! [`AppConfig`] as the jsonb `settings`. Rows are validated as a
//! configuration file's `[[apps]]` are ([`validate_apps`]): a row edited
//! into nonsense is a [`StoreError::Invalid`] naming the app and the field.
//!
//! TLS to the database is not supported yet: a URL with `sslmode=require`
//! fails to connect.

use std::collections::BTreeMap;
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pusher_hub::UsageReport;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use crate::config::{AppConfig, ConfigError, redact, validate_apps};

/// The NOTIFY channel the `vask_apps` trigger sends each changed app's id on.
pub const CHANNEL: &str = "vask_apps_changed";

/// A store's timeouts and delays. The defaults suit production; tests
/// shorten them to see a silent database noticed quickly.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How long connecting (TCP, authentication, startup) may take.
    pub connect_timeout: Duration,
    /// How long one query may take; a connection that did not answer in
    /// time is dropped and a new one opened for the next query.
    pub query_timeout: Duration,
    /// How long the migrations may take, waiting for another node's
    /// included.
    pub migrate_timeout: Duration,
    /// The watcher checks that its connection is alive this often (a peer
    /// gone without a FIN would otherwise never be noticed).
    pub ping_every: Duration,
    /// The watcher's first reconnection delay, doubled after each failure...
    pub backoff_first: Duration,
    /// ...up to this.
    pub backoff_max: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            query_timeout: Duration::from_secs(10),
            migrate_timeout: Duration::from_secs(30),
            ping_every: Duration::from_secs(10),
            backoff_first: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// The key of the advisory lock the migrations run under ("vask" in ASCII).
const MIGRATION_LOCK: i64 = 0x7661_736b;

/// The schema versions, in order; version N is `MIGRATIONS[N - 1]`. Never
/// edit a released one: add a new version.
const MIGRATIONS: &[&str] = &[
    // v1: the apps alone.
    "CREATE TABLE vask_apps (
        id text PRIMARY KEY,
        key text NOT NULL UNIQUE,
        secret text NOT NULL,
        enabled boolean NOT NULL DEFAULT true,
        settings jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now()
    );",
    // v2: updated_at kept by a trigger (psql edits included), a NOTIFY on
    // every change, and the usage figures (gone with their app).
    "ALTER TABLE vask_apps ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
    CREATE FUNCTION vask_apps_touch() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.updated_at := now();
        RETURN NEW;
    END $$;
    CREATE TRIGGER vask_apps_touch BEFORE UPDATE ON vask_apps
        FOR EACH ROW EXECUTE FUNCTION vask_apps_touch();
    CREATE FUNCTION vask_apps_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify('vask_apps_changed', OLD.id);
        ELSE
            PERFORM pg_notify('vask_apps_changed', NEW.id);
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER vask_apps_notify AFTER INSERT OR UPDATE OR DELETE ON vask_apps
        FOR EACH ROW EXECUTE FUNCTION vask_apps_notify();
    CREATE TABLE vask_usage (
        node text NOT NULL,
        app_id text NOT NULL REFERENCES vask_apps (id) ON DELETE CASCADE ON UPDATE CASCADE,
        report jsonb NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (node, app_id)
    );",
];

/// The schema version this build creates and expects.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Why the store failed (never contains the password).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached, refused the login, or did not answer
    /// in time.
    #[error("apps store unreachable: {0}")]
    Unreachable(String),
    /// The id or key is taken by another app.
    #[error("conflict: {0}")]
    Conflict(String),
    /// An app (given, or read from a row) or the URL is not valid.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The database refused a statement.
    #[error("database error: {0}")]
    Db(String),
}

/// The apps store: a connection for queries (reopened when lost) and the
/// settings to open others (the watcher's).
pub struct PgStore {
    config: tokio_postgres::Config,
    redacted: String,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
    disconnects: Arc<AtomicU64>,
    options: StoreOptions,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.redacted)
            .field("disconnects", &self.disconnects())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects (bounded: at most ~5 s), creates the schema on an empty
    /// database and upgrades an older one (versioned migrations, one
    /// transaction each, recorded in `vask_schema`, under an advisory lock so
    /// that nodes starting together are safe).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// [`PgStore::connect`] with other timeouts and delays.
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let redacted = redact_url(url);
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Invalid(format!("apps store URL {redacted:?}: {}", chain(&e)))
        })?;
        config
            .connect_timeout(options.connect_timeout)
            .application_name("vask-server");
        let mut client = open(&config, options.connect_timeout).await?;
        let limit = options.migrate_timeout;
        match tokio::time::timeout(limit, migrate(&mut client)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(StoreError::Unreachable(format!(
                    "schema migrations did not finish within {limit:?}"
                )));
            }
        }
        Ok(Self {
            config,
            redacted,
            client: tokio::sync::Mutex::new(Some(Arc::new(client))),
            disconnects: Arc::default(),
            options,
        })
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        &self.redacted
    }

    /// How many times the watcher lost its connection (or failed to make
    /// its first one).
    pub fn disconnects(&self) -> u64 {
        self.disconnects.load(Ordering::Relaxed)
    }

    /// Every app, ordered by id (numerically: ids are numeric strings).
    pub async fn list(&self) -> Result<Vec<AppConfig>, StoreError> {
        let client = self.client().await?;
        let rows = self.bounded(&client, client.query(
            "SELECT id, key, secret, enabled, settings FROM vask_apps ORDER BY length(id), id",
            &[],
        ))
        .await?;
        let apps = rows
            .iter()
            .map(app_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        check(&apps)?;
        Ok(apps)
    }

    /// The app with this id, if any.
    pub async fn get(&self, id: &str) -> Result<Option<AppConfig>, StoreError> {
        let client = self.client().await?;
        let row = self
            .bounded(
                &client,
                client.query_opt(
                    "SELECT id, key, secret, enabled, settings FROM vask_apps WHERE id = $1",
                    &[&id],
                ),
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let app = app_from_row(&row)?;
        check(std::slice::from_ref(&app))?;
        Ok(Some(app))
    }

    /// Inserts; [`StoreError::Conflict`] when the id or key is taken.
    pub async fn create(&self, app: &AppConfig) -> Result<(), StoreError> {
        check(std::slice::from_ref(app))?;
        let client = self.client().await?;
        self.bounded(&client, client.execute(
            "INSERT INTO vask_apps (id, key, secret, enabled, settings) VALUES ($1, $2, $3, $4, $5)",
            &[&app.id, &app.key, &app.secret.expose(), &app.enabled, &settings(app)],
        ))
        .await
        .map_err(|e| conflict(e, app))?;
        Ok(())
    }

    /// Replaces the app with this id (all fields, secret included);
    /// `Ok(false)` when there is none; [`StoreError::Conflict`] when its key
    /// is another app's.
    pub async fn update(&self, app: &AppConfig) -> Result<bool, StoreError> {
        check(std::slice::from_ref(app))?;
        let client = self.client().await?;
        let n = self.bounded(&client, client.execute(
            "UPDATE vask_apps SET key = $2, secret = $3, enabled = $4, settings = $5 WHERE id = $1",
            &[
                &app.id,
                &app.key,
                &app.secret.expose(),
                &app.enabled,
                &settings(app),
            ],
        ))
        .await
        .map_err(|e| conflict(e, app))?;
        Ok(n > 0)
    }

    /// Deletes the app with this id (and its usage figures); `Ok(false)`
    /// when there is none.
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = self
            .bounded(
                &client,
                client.execute("DELETE FROM vask_apps WHERE id = $1", &[&id]),
            )
            .await?;
        Ok(n > 0)
    }

    /// Keeps this node's figures: one row per (node, app id), replaced.
    /// Figures of an app no longer in the store are not kept (its usage rows
    /// went with it).
    pub async fn save_usage(
        &self,
        rows: &[(String, String, UsageReport)],
    ) -> Result<(), StoreError> {
        // One statement for the batch; a pair given twice is merged first
        // (an upsert may not touch one row twice).
        let mut merged: BTreeMap<(&str, &str), UsageReport> = BTreeMap::new();
        for (node, app, report) in rows {
            merged
                .entry((node.as_str(), app.as_str()))
                .or_default()
                .merge(report);
        }
        if merged.is_empty() {
            return Ok(());
        }
        let batch: Vec<Value> = merged
            .into_iter()
            .map(|((node, app), report)| {
                serde_json::json!({ "node": node, "app_id": app, "report": report })
            })
            .collect();
        let batch = Value::Array(batch);
        let client = self.client().await?;
        self.bounded(
            &client,
            client.execute(
                "INSERT INTO vask_usage (node, app_id, report)
             SELECT r->>'node', r->>'app_id', r->'report'
             FROM jsonb_array_elements($1::jsonb) AS r
             JOIN vask_apps AS a ON a.id = r->>'app_id'
             ON CONFLICT (node, app_id) DO UPDATE SET report = EXCLUDED.report, updated_at = now()",
                &[&batch],
            ),
        )
        .await?;
        Ok(())
    }

    /// Every kept figure: (node, app id, report), ordered by app then node;
    /// figures not written for 62 days (of node runs long ended) are
    /// deleted first.
    pub async fn load_usage(&self) -> Result<Vec<(String, String, UsageReport)>, StoreError> {
        let client = self.client().await?;
        // Figures not written for two months are of periods long over (a
        // node's run that ended): dropped here, at a node's start.
        self.bounded(
            &client,
            client.execute(
                "DELETE FROM vask_usage WHERE updated_at < now() - interval '62 days'",
                &[],
            ),
        )
        .await?;
        let rows = self.bounded(&client, client.query(
            "SELECT node, app_id, report FROM vask_usage ORDER BY length(app_id), app_id, node",
            &[],
        ))
        .await?;
        rows.iter()
            .map(|row| {
                let node: String = row.get(0);
                let app: String = row.get(1);
                let report: Value = row.get(2);
                let report = serde_json::from_value(report).map_err(|e| {
                    StoreError::Invalid(format!("usage of app {app} on node {node:?}: {e}"))
                })?;
                Ok((node, app, report))
            })
            .collect()
    }

    /// Watches for changes: spawns a task that LISTENs on [`CHANNEL`] on its
    /// own connection and rings `changed` (`try_send`: a "something changed,
    /// reload" doorbell, so a full channel is fine) on every NOTIFY, and
    /// right after each (re)connection, since changes may have been missed
    /// meanwhile. A lost connection is logged once, counted in
    /// [`PgStore::disconnects`], and reopened with backoff (by default
    /// 100 ms doubling to 5 s); its return is logged once. The task ends
    /// when `changed` is closed. Must be called within a tokio runtime.
    pub fn watch(&self, changed: mpsc::Sender<()>) {
        let config = self.config.clone();
        let disconnects = self.disconnects.clone();
        let url = self.redacted.clone();
        let opts = self.options.clone();
        tokio::spawn(async move {
            let mut lost = false;
            let mut backoff = opts.backoff_first;
            loop {
                let reason = match listen(&config, &opts, &changed, &mut lost, &url).await {
                    Ok(()) => return,
                    Err(reason) => reason,
                };
                if lost {
                    tracing::debug!(url = %url, "apps store: still unreachable ({reason})");
                } else {
                    // Connected until now (or never tried): a new loss.
                    lost = true;
                    backoff = opts.backoff_first;
                    disconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(url = %url, "apps store: change feed lost ({reason}); reconnecting");
                }
                tokio::select! {
                    _ = changed.closed() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(opts.backoff_max);
            }
        });
    }

    /// Runs a query of `client` within the query timeout. A connection that
    /// did not answer in time is dropped, so that the next query opens a new
    /// one rather than wait on a peer that may be gone without a word.
    async fn bounded<T>(
        &self,
        client: &Arc<Client>,
        fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, StoreError> {
        let limit = self.options.query_timeout;
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => r.map_err(db),
            Err(_) => {
                let mut slot = self.client.lock().await;
                if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, client)) {
                    *slot = None;
                }
                Err(StoreError::Unreachable(format!(
                    "no answer within {limit:?}"
                )))
            }
        }
    }

    /// The query connection, reopened if it was lost.
    async fn client(&self) -> Result<Arc<Client>, StoreError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        *slot = None;
        let c = Arc::new(open(&self.config, self.options.connect_timeout).await?);
        *slot = Some(c.clone());
        Ok(c)
    }
}

/// One LISTEN session: connects, listens, rings, then rings on every
/// notification until the connection fails (`Err`, with the reason) or
/// `changed` is closed (`Ok`). Clears `lost` (logging the return) once
/// listening.
async fn listen(
    config: &tokio_postgres::Config,
    opts: &StoreOptions,
    changed: &mpsc::Sender<()>,
    lost: &mut bool,
    url: &str,
) -> Result<(), String> {
    let (connect_timeout, query_timeout) = (opts.connect_timeout, opts.query_timeout);
    let connecting = tokio::time::timeout(connect_timeout, config.connect(NoTls));
    let (client, mut conn) = tokio::select! {
        _ = changed.closed() => return Ok(()),
        r = connecting => match r {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(chain(&e)),
            Err(_) => return Err(format!("no connection within {connect_timeout:?}")),
        },
    };
    let ring = || {
        let _ = changed.try_send(());
    };
    // The connection only makes progress while polled: drive it (ringing on
    // any notification) while waiting for `fut`.
    async fn driving<F: Future>(
        conn: &mut tokio_postgres::Connection<
            tokio_postgres::Socket,
            tokio_postgres::tls::NoTlsStream,
        >,
        ring: &impl Fn(),
        fut: F,
    ) -> Result<F::Output, String> {
        let mut fut = std::pin::pin!(fut);
        loop {
            tokio::select! {
                out = &mut fut => return Ok(out),
                m = poll_fn(|cx| conn.poll_message(cx)) => match m {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        tracing::trace!("apps store: app {} changed", n.payload());
                        ring();
                    }
                    Some(Ok(m)) => tracing::debug!("apps store: {m:?}"),
                    Some(Err(e)) => return Err(chain(&e)),
                    None => return Err("connection closed".into()),
                },
            }
        }
    }
    let sql = format!("LISTEN {CHANNEL}");
    let listening = tokio::time::timeout(query_timeout, client.batch_execute(&sql));
    match driving(&mut conn, &ring, listening).await? {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(chain(&e)),
        Err(_) => return Err(format!("LISTEN not answered within {query_timeout:?}")),
    }
    if std::mem::take(lost) {
        tracing::info!(url = %url, "apps store: change feed back");
    }
    ring();
    loop {
        let idle = async {
            tokio::select! {
                _ = changed.closed() => true,
                _ = tokio::time::sleep(opts.ping_every) => false,
            }
        };
        if driving(&mut conn, &ring, idle).await? {
            return Ok(());
        }
        let ping = tokio::time::timeout(query_timeout, client.simple_query(""));
        match driving(&mut conn, &ring, ping).await? {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(chain(&e)),
            Err(_) => return Err(format!("ping not answered within {query_timeout:?}")),
        }
    }
}

/// Opens a connection (within `limit`) and drives it in a task of its own.
async fn open(config: &tokio_postgres::Config, limit: Duration) -> Result<Client, StoreError> {
    let (client, conn) = tokio::time::timeout(limit, config.connect(NoTls))
        .await
        .map_err(|_| StoreError::Unreachable(format!("no connection within {limit:?}")))?
        .map_err(|e| StoreError::Unreachable(chain(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("apps store: connection ended: {}", chain(&e));
        }
    });
    Ok(client)
}

/// Brings the schema to [`SCHEMA_VERSION`]: each missing version in its own
/// transaction, all under one advisory lock so that only one node migrates
/// at a time (the others then find nothing left to do).
async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    // A unique violation here is no conflict of the caller's making.
    let db = |e| match db(e) {
        StoreError::Conflict(c) => StoreError::Db(format!("unique violation ({c})")),
        other => other,
    };
    for version in 1..=SCHEMA_VERSION {
        let tx = client.transaction().await.map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS vask_schema (
                version integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(db)?;
        let current: i32 = tx
            .query_one("SELECT coalesce(max(version), 0) FROM vask_schema", &[])
            .await
            .map_err(db)?
            .get(0);
        if current > SCHEMA_VERSION {
            return Err(StoreError::Invalid(format!(
                "the database's schema is version {current}, newer than this build's {SCHEMA_VERSION}: upgrade vask-server"
            )));
        }
        if current >= version {
            tx.commit().await.map_err(db)?;
            continue;
        }
        tx.batch_execute(MIGRATIONS[version as usize - 1])
            .await
            .map_err(|e| {
                StoreError::Db(format!("schema migration to v{version}: {}", chain(&e)))
            })?;
        tx.execute("INSERT INTO vask_schema (version) VALUES ($1)", &[&version])
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        tracing::info!("apps store: schema migrated to v{version}");
    }
    Ok(())
}

/// The URL for logs: its password, in the user part or as a `password=`
/// parameter, replaced by `***`.
fn redact_url(url: &str) -> String {
    let mut out = redact(url);
    let mut from = 0;
    while let Some(i) = out[from..].find("password=") {
        let start = from + i + "password=".len();
        let end = out[start..]
            .find(['&', ' '])
            .map_or(out.len(), |j| start + j);
        out.replace_range(start..end, "***");
        from = start + 3;
    }
    out
}

/// The columns of `app` that are not columns of their own, as one object.
fn settings(app: &AppConfig) -> Value {
    let mut v = serde_json::to_value(app).expect("an AppConfig serializes");
    if let Value::Object(m) = &mut v {
        for column in COLUMNS {
            m.remove(column);
        }
    }
    v
}

/// The fields of [`AppConfig`] kept as columns rather than in `settings`.
const COLUMNS: [&str; 4] = ["id", "key", "secret", "enabled"];

/// An app from a `SELECT id, key, secret, enabled, settings` row; a
/// `settings` that does not fit is [`StoreError::Invalid`], naming the field.
fn app_from_row(row: &tokio_postgres::Row) -> Result<AppConfig, StoreError> {
    let id: String = row.get(0);
    let invalid = |field: &str, msg: &dyn std::fmt::Display| {
        StoreError::Invalid(format!("app {id}: {field}: {msg}"))
    };
    let settings: Value = row.get(4);
    let Value::Object(settings) = settings else {
        return Err(invalid("settings", &"must be a JSON object"));
    };
    if let Some(c) = COLUMNS.iter().find(|c| settings.contains_key(**c)) {
        return Err(invalid(
            &format!("settings.{c}"),
            &"is a column of its own, not a setting",
        ));
    }
    let columns = [
        ("id", Value::from(id.clone())),
        ("key", Value::from(row.get::<_, String>(1))),
        ("secret", Value::from(row.get::<_, String>(2))),
        ("enabled", Value::from(row.get::<_, bool>(3))),
    ];
    let with = |extra: Map<String, Value>| {
        let mut m = extra;
        for (k, v) in &columns {
            m.insert((*k).into(), v.clone());
        }
        serde_json::from_value::<AppConfig>(Value::Object(m))
    };
    match with(settings.clone()) {
        Ok(app) => Ok(app),
        // serde does not say where a wrong type was: try each setting
        // alone (and each limit alone) to name the one that does not fit.
        Err(e) => {
            for (k, v) in &settings {
                if let (Value::Object(inner), "limits") = (v, k.as_str()) {
                    for (lk, lv) in inner {
                        let one = Map::from_iter([(lk.clone(), lv.clone())]);
                        let m = Map::from_iter([(k.clone(), Value::Object(one))]);
                        if let Err(e) = with(m) {
                            return Err(invalid(&format!("settings.limits.{lk}"), &e));
                        }
                    }
                }
                if let Err(e) = with(Map::from_iter([(k.clone(), v.clone())])) {
                    return Err(invalid(&format!("settings.{k}"), &e));
                }
            }
            Err(invalid("settings", &e))
        }
    }
}

/// [`validate_apps`], its `apps[i]` replaced by the app's id.
fn check(apps: &[AppConfig]) -> Result<(), StoreError> {
    validate_apps(apps).map_err(|e| match e {
        ConfigError::Invalid { field, message } => {
            let (app, field) = field
                .strip_prefix("apps[")
                .and_then(|f| f.split_once("]."))
                .and_then(|(i, f)| Some((apps.get(i.parse::<usize>().ok()?)?, f)))
                .map_or(("?", field.as_str()), |(a, f)| (a.id.as_str(), f));
            StoreError::Invalid(format!("app {app}: {field}: {message}"))
        }
        other => StoreError::Invalid(other.to_string()),
    })
}

/// A unique violation as [`StoreError::Conflict`] naming what is taken.
fn conflict(e: StoreError, app: &AppConfig) -> StoreError {
    match e {
        StoreError::Conflict(constraint) if constraint.contains("pkey") => {
            StoreError::Conflict(format!("app id {:?} is taken", app.id))
        }
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("app key {:?} is another app's", app.key))
        }
        other => other,
    }
}

/// A driver error as a [`StoreError`]: unique violations are conflicts
/// (carrying the constraint's name), a lost connection is unreachable.
fn db(e: tokio_postgres::Error) -> StoreError {
    if let Some(d) = e.as_db_error() {
        if *d.code() == SqlState::UNIQUE_VIOLATION {
            return StoreError::Conflict(d.constraint().unwrap_or_default().to_owned());
        }
        return StoreError::Db(format!("{} ({})", d.message(), d.code().code()));
    }
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io {
        return StoreError::Unreachable(chain(&e));
    }
    StoreError::Db(chain(&e))
}

/// An error and its causes, `a: b: c` (the driver's own message is only
/// the first).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_leave_out_the_columns() {
        let app = AppConfig::development();
        let s = settings(&app);
        for c in COLUMNS {
            assert!(s.get(c).is_none(), "{c} in {s}");
        }
        assert_eq!(s["client_events"], true);
        assert!(s["limits"].is_object());
    }

    #[test]
    fn invalid_apps_are_named_by_id() {
        let mut app = AppConfig::development();
        app.id = "42".into();
        app.limits.max_batch_events = 0;
        let e = check(&[app]).unwrap_err().to_string();
        assert!(e.contains("app 42: limits.max_batch_events"), "{e}");
    }

    #[test]
    fn urls_are_logged_without_passwords() {
        assert_eq!(
            redact_url("postgres://vask:pw@db:5432/vask"),
            "postgres://vask:***@db:5432/vask"
        );
        assert_eq!(
            redact_url("postgres://db/vask?user=v&password=pw&sslmode=disable"),
            "postgres://db/vask?user=v&password=***&sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://db/vask?password=pw"),
            "postgres://db/vask?password=***"
        );
    }

    #[tokio::test]
    async fn a_bad_url_is_invalid_and_does_not_show_the_password() {
        let e = PgStore::connect("postgres://u:hunter2@h:notaport/db")
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)), "{e:?}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
