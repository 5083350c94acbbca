//! A real PostgreSQL server for tests: its own data directory in a temp dir,
//! on a free port of 127.0.0.1 only, with password authentication over TCP;
//! stopped and removed on drop, and stoppable and restartable on the same
//! port (to take the database away from a node and bring it back).
//!
//! It needs the PostgreSQL server binaries (`/usr/lib/postgresql/*/bin`,
//! Debian's `postgresql` package; `.ci/run` installs it) and, when run as
//! root, the `postgres` user they run as.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use super::cluster::free_port;

/// The password of the `postgres` user in every test server.
pub const PASSWORD: &str = "vask-test-pw";
/// The database each test server has.
pub const DATABASE: &str = "vask";

/// The newest installed version's `bin` directory.
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                bin.join("postgres").exists().then_some((version, bin))
            })
            .collect();
        found.sort();
        found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
            panic!(
                "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): \
                 apt-get install postgresql (.ci/run installs it)"
            )
        })
    })
}

fn running_as_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// `bin/NAME args`, as the `postgres` user when we are root (PostgreSQL
/// refuses to run as root); panics with its output when it fails.
fn run(name: &str, args: &[&str]) -> Output {
    let bin = bin_dir().join(name);
    let mut cmd = if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    let out = cmd
        .args(args)
        .env("PGPASSWORD", PASSWORD)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A new directory under the temp dir that the server's user owns.
fn owned_dir(what: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vask-pg-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    if running_as_root() {
        let ok = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "cannot chown {} to the postgres user (does it exist?)",
            dir.display()
        );
    }
    dir
}

/// An initdb'd data directory, copied for each server (initdb is the slow
/// part). Kept in the temp dir across runs, one per PostgreSQL version and
/// settings (bump `v1` when the initdb options change), so that runs leave
/// one behind rather than one each.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let version = bin_dir()
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|v| v.to_str())
            .unwrap_or("x")
            .to_owned();
        let kept = std::env::temp_dir().join(format!("vask-pg-template-v1-{version}"));
        if kept.join("PG_VERSION").exists() {
            return kept;
        }
        let dir = owned_dir("template");
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        let data = dir.join("data");
        run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--pwfile",
                pwfile.to_str().unwrap(),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        // Another test binary may have made it meanwhile: then use theirs.
        if std::fs::rename(&data, &kept).is_err() {
            assert!(
                kept.join("PG_VERSION").exists(),
                "cannot keep {}",
                kept.display()
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
        kept
    })
}

/// A running (or stopped) test server.
pub struct Postgres {
    pub port: u16,
    dir: PathBuf,
}

impl Postgres {
    /// Starts a server with an empty database [`DATABASE`].
    pub fn start() -> Self {
        let dir = owned_dir("server");
        let data = dir.join("data");
        // cp -a keeps the owner and the 0700 mode PostgreSQL insists on.
        let status = Command::new("cp")
            .arg("-a")
            .arg(template())
            .arg(&data)
            .status()
            .unwrap();
        assert!(status.success(), "cannot copy the template data directory");
        let pg = Self {
            port: free_port(),
            dir,
        };
        pg.start_again();
        run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "postgres",
                DATABASE,
            ],
        );
        pg
    }

    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/vask`.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{DATABASE}",
            self.port
        )
    }

    fn data(&self) -> String {
        self.dir.join("data").to_str().unwrap().to_owned()
    }

    /// Starts the stopped server again, on the same port; returns once it
    /// accepts connections (pg_ctl waits, at most 30 s).
    pub fn start_again(&self) {
        // fsync off for speed: the OS keeps what was written across an
        // immediate stop. (Not synchronous_commit=off: commits not yet
        // written would be lost by `stop`.)
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c fsync=off -c full_page_writes=off \
             -c shared_buffers=16MB -c max_connections=50",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log");
        run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
    }

    /// Stops the server at once (as a crash would: every connection cut).
    pub fn stop(&self) {
        run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// Freezes the server (SIGSTOP to it and its backends): connections
    /// stay open and nothing answers, as with a peer gone without a word.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        assert!(self.try_signal(sig), "kill {sig} to the server failed");
    }

    fn try_signal(&self, sig: &str) -> bool {
        let pid_file = self.dir.join("data").join("postmaster.pid");
        let Ok(text) = std::fs::read_to_string(&pid_file) else {
            return false;
        };
        let pid = text.lines().next().unwrap_or_default().trim().to_owned();
        // Its children (backends, background workers) by parent pid, then
        // the postmaster itself.
        let Ok(children) = Command::new("pgrep").args(["-P", &pid]).output() else {
            return false;
        };
        let mut pids: Vec<String> = String::from_utf8_lossy(&children.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        pids.push(pid);
        Command::new("kill")
            .arg(sig)
            .args(&pids)
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Stops and starts it again on the same port.
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Not `run`: it may already be stopped, and a panic in drop aborts.
        // A paused server is thawed first, or it could not stop.
        self.try_signal("-CONT");
        let bin = bin_dir().join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = if running_as_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&bin)
                .args(args)
                .output()
        } else {
            Command::new(&bin).args(args).output()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
