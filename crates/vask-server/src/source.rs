//! Where the apps live: the configuration file (read-only while the server
//! runs, reloaded by SIGHUP) or a PostgreSQL store (changed through the
//! admin API or directly in the database, seen by every node).

use std::path::PathBuf;

use hyper::StatusCode;

use crate::admin::Refusal;
use crate::config::AppConfig;

/// Where the apps live.
#[derive(Debug)]
pub(crate) enum AppsSource {
    /// The configuration file (`None`: the command line, or the built-in
    /// development app).
    File(Option<PathBuf>),
}

impl AppsSource {
    /// Why the apps cannot be written here.
    fn read_only(&self) -> Refusal {
        let Self::File(file) = self;
        let message = match file {
            Some(path) => format!(
                "The apps are read from {}: edit it and send SIGHUP (the admin API writes to a PostgreSQL store only)",
                path.display()
            ),
            None => "The apps come from the command line: restart with other flags (the admin API writes to a PostgreSQL store only)".to_owned(),
        };
        Refusal::new(StatusCode::CONFLICT, message)
    }

    /// Adds an app.
    pub(crate) async fn create(&self, _app: &AppConfig) -> Result<(), Refusal> {
        Err(self.read_only())
    }

    /// Replaces an app's settings.
    pub(crate) async fn update(&self, _app: &AppConfig) -> Result<(), Refusal> {
        Err(self.read_only())
    }

    /// Deletes an app.
    pub(crate) async fn delete(&self, _id: &str) -> Result<(), Refusal> {
        Err(self.read_only())
    }
}
