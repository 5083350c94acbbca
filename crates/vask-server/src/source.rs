//! Where the apps live: the configuration file (read-only while the server
//! runs, reloaded by SIGHUP) or a PostgreSQL store (changed through the
//! admin API or directly in the database, seen by every node).

use std::path::PathBuf;
use std::sync::Arc;

use hyper::StatusCode;

use crate::admin::Refusal;
use crate::config::AppConfig;
use crate::store::{PgStore, StoreError};

/// Where the apps live.
#[derive(Debug)]
pub(crate) enum AppsSource {
    /// The configuration file (`None`: the command line, or the built-in
    /// development app).
    File(Option<PathBuf>),
    /// A PostgreSQL store.
    Postgres(Arc<PgStore>),
}

/// A store failure as the admin API answers it.
impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::Conflict(_) => StatusCode::CONFLICT,
            StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
            StoreError::Unreachable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Refusal::new(status, e.to_string())
    }
}

impl AppsSource {
    /// The store, or why the apps cannot be written here.
    fn store(&self) -> Result<&PgStore, Refusal> {
        let file = match self {
            Self::Postgres(store) => return Ok(store),
            Self::File(file) => file,
        };
        let message = match file {
            Some(path) => format!(
                "The apps are read from {}: edit it and send SIGHUP (the admin API writes to a PostgreSQL store only)",
                path.display()
            ),
            None => "The apps come from the command line: restart with other flags (the admin API writes to a PostgreSQL store only)".to_owned(),
        };
        Err(Refusal::new(StatusCode::CONFLICT, message))
    }

    /// Adds an app.
    pub(crate) async fn create(&self, app: &AppConfig) -> Result<(), Refusal> {
        Ok(self.store()?.create(app).await?)
    }

    /// Replaces an app's settings.
    pub(crate) async fn update(&self, app: &AppConfig) -> Result<(), Refusal> {
        if self.store()?.update(app).await? {
            Ok(())
        } else {
            Err(gone(&app.id))
        }
    }

    /// Deletes an app.
    pub(crate) async fn delete(&self, id: &str) -> Result<(), Refusal> {
        if self.store()?.delete(id).await? {
            Ok(())
        } else {
            Err(gone(id))
        }
    }
}

/// Deleted meanwhile (by another node, or in the database).
fn gone(id: &str) -> Refusal {
    Refusal::new(StatusCode::NOT_FOUND, format!("No app {id:?}"))
}
