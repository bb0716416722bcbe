//! Which backend the tests run on. By default every test uses SQLite in its temporary data
//! directory; with `CHATD_TEST_BACKEND=postgres` every data directory a test makes gets a database
//! of its own instead, on the server `CHATD_TEST_POSTGRES` names (a URL with a database to connect
//! to and the right to create databases), created on demand and dropped when its owner is dropped.
//! The servers and CLI runs of a test find it by their data directory.
#![allow(dead_code)]

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Mutex,
};

use sea_orm::ConnectionTrait;

/// Test databases are named `chatd_t_<unix seconds>_<random>`, so that a run can drop what a
/// crashed run left behind by its age.
pub const PREFIX: &str = "chatd_t_";

/// Data directory → URL of its database, while that database lives.
static BY_DIR: Mutex<Option<HashMap<PathBuf, String>>> = Mutex::new(None);

/// The PostgreSQL server the tests run on, if they run on PostgreSQL.
pub fn postgres_server() -> Option<String> {
    if !on_postgres() {
        return None;
    }
    let url = std::env::var("CHATD_TEST_POSTGRES").ok().filter(|url| !url.is_empty());
    Some(url.expect("CHATD_TEST_BACKEND=postgres needs CHATD_TEST_POSTGRES, a PostgreSQL URL"))
}

pub fn on_postgres() -> bool {
    match std::env::var("CHATD_TEST_BACKEND").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("CHATD_TEST_BACKEND is sqlite or postgres, not {other:?}"),
    }
}

/// True (after saying so) when the tests run on PostgreSQL: the caller is about SQLite only.
pub fn sqlite_only(reason: &str) -> bool {
    let skip = on_postgres();
    if skip {
        println!("skipped on PostgreSQL: {reason}");
    }
    skip
}

/// True (after saying so) when the tests run on SQLite: the caller is about PostgreSQL only.
pub fn postgres_only(reason: &str) -> bool {
    let skip = !on_postgres();
    if skip {
        println!("skipped on SQLite (CHATD_TEST_BACKEND=postgres runs it): {reason}");
    }
    skip
}

/// The database URL a server or CLI run on `dir` must use, if the tests run on PostgreSQL and
/// something made one for it.
pub fn url_for(dir: &Path) -> Option<String> {
    BY_DIR.lock().unwrap().as_ref()?.get(dir).cloned()
}

/// `CHATD_DATABASE__URL` for a child process on `dir`, when it has a database of its own.
pub fn env_for(dir: &Path) -> Option<(&'static str, String)> {
    url_for(dir).map(|url| ("CHATD_DATABASE__URL", url))
}

/// A PostgreSQL database of a test's own, dropped (connections and all) with this value.
pub struct TestDatabase {
    pub url: String,
    name: String,
    admin: String,
    dir: Option<PathBuf>,
}

impl TestDatabase {
    /// A new, empty database, or `None` when the tests run on SQLite.
    pub fn create() -> Option<Self> {
        let admin = postgres_server()?;
        let name = format!(
            "{PREFIX}{}_{:012x}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
            rand::random::<u64>() >> 16
        );
        let (base, _) = admin.split('?').next().unwrap().rsplit_once('/').expect("CHATD_TEST_POSTGRES: a URL with a database");
        let url = format!("{base}/{name}");
        // A language's collation where the server has ICU: orders must not depend on it.
        let linguistic = format!("CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'");
        if on_admin_connection(&admin, linguistic).is_err() {
            on_admin_connection(&admin, format!("CREATE DATABASE {name}")).unwrap();
        }
        Some(Self { url, name, admin, dir: None })
    }

    /// A new database for `dir` unless it has one: what a server or CLI run there will use.
    pub fn for_dir(dir: &Path) -> Option<Self> {
        if url_for(dir).is_some() {
            return None;
        }
        let mut database = Self::create()?;
        BY_DIR.lock().unwrap().get_or_insert_with(HashMap::new).insert(dir.to_owned(), database.url.clone());
        database.dir = Some(dir.to_owned());
        Some(database)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            BY_DIR.lock().unwrap().as_mut().map(|by_dir| by_dir.remove(dir));
        }
        let dropped = on_admin_connection(&self.admin, format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        if let Err(error) = dropped {
            if !std::thread::panicking() {
                panic!("{error}");
            }
        }
    }
}

/// Runs `statement` on a thread and runtime of its own, so that sync and async tests alike can
/// make and drop databases (a drop may run inside a runtime that cannot block).
fn on_admin_connection(admin: &str, statement: String) -> Result<(), String> {
    let admin = admin.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let connection = sea_orm::Database::connect(&admin).await.map_err(|e| format!("PostgreSQL at {admin}: {e}"))?;
            connection.execute_unprepared(&statement).await.map_err(|e| format!("{statement}: {e}"))?;
            connection.close().await.map_err(|e| e.to_string())
        })
    })
    .join()
    .expect("the admin thread ran")
}
