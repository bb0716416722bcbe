//! Upgrading from the release before groups and rooms: its database migrates in place (and back),
//! and its exports still import.
mod common;

use std::path::Path;

use common::*;
use migration::{MigrationName, Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

const FIXTURE: &str = "tests/fixtures/release-0.1.0";

fn copy_of_the_old_database() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(Path::new(FIXTURE).join("chat.db"), dir.path().join("chat.db")).unwrap();
    dir
}

fn lines(export: &str) -> Vec<Value> {
    export.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn of_type<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == kind).collect()
}

#[tokio::test]
async fn a_database_made_by_the_previous_release_upgrades_in_place_and_keeps_everything() {
    if sqlite_only("the previous release's SQLite file upgrades in place") {
        return;
    }
    let dir = copy_of_the_old_database();
    let status = run_chatd(dir.path(), &["db", "status"]);
    assert!(status.contains("pending\tm20261202_000002_rooms"), "{status}");
    run_chatd(dir.path(), &["db", "migrate"]);
    assert!(!run_chatd(dir.path(), &["db", "status"]).contains("pending"));

    let upgraded = lines(&run_chatd(dir.path(), &["export"]));
    let old = lines(&std::fs::read_to_string(Path::new(FIXTURE).join("export.jsonl")).unwrap());
    for kind in ["user", "message"] {
        let strip = |l: &&Value| {
            let mut l = (*l).clone();
            l.as_object_mut().unwrap().remove("kind");
            l
        };
        let (now, then): (Vec<Value>, Vec<Value>) = (of_type(&upgraded, kind).iter().map(strip).collect(), of_type(&old, kind).iter().map(strip).collect());
        assert_eq!(now, then, "{kind}s come through unchanged");
    }
    assert!(of_type(&upgraded, "message").iter().all(|m| m["kind"] == "text"));

    // The upgraded database serves: history, unread counts, catch-up, and new ids after the old.
    let server = TestServer::start_in(dir, |_| {}).await;
    let alice = TestUser { name: "alice".into(), token: server.signin("alice").await };
    let (_, list) = server.get("/api/conversations", Some(&alice.token)).await;
    assert_eq!(list.as_array().unwrap().iter().map(|c| (c["kind"].as_str().unwrap(), c["unread"].as_u64().unwrap())).collect::<Vec<_>>(), [("direct", 1), ("direct", 1)]);
    let (_, page) = server.get("/api/messages/bob", Some(&alice.token)).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 4);
    let (_, markers) = server.get("/api/read_markers", Some(&alice.token)).await;
    assert!(markers.as_array().unwrap().iter().any(|m| m["username"] == "bob" && m["peer_read_up_to"] == 3), "{markers}");
    let (mut ws, ready, _) = server.connect(&alice).await;
    assert_eq!(ready["last_id"], 5);
    ws.send(json!({"type": "sync", "after": 0})).await;
    let mut ids = Vec::new();
    loop {
        let frame = ws.recv().await;
        match frame["type"].as_str() {
            Some("receive_message") => ids.push(frame["message"]["id"].as_i64().unwrap()),
            Some("sync_done") => break,
            _ => {}
        }
    }
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    let (status, sent) = server.send_rest(&alice, "carol", "after the upgrade", "u-1").await;
    assert_eq!((status, sent["id"].as_i64()), (201, Some(6)));
    let bob = TestUser { name: "bob".into(), token: server.signin("bob").await };
    let (status, room) = server.post("/api/conversations", Some(&bob.token), json!({"kind": "room", "name": "new", "members": ["alice"]})).await;
    assert_eq!((status, room["member_count"].as_u64()), (201, Some(2)));
}

#[tokio::test]
async fn the_rooms_migration_rolls_back_to_direct_conversations_and_forward_again() {
    let dir = copy_of_the_old_database();
    run_chatd(dir.path(), &["db", "migrate"]);
    let url = format!("sqlite://{}?mode=rw", dir.path().join("chat.db").display());
    let db = Database::connect(&url).await.unwrap();
    db.execute_unprepared("PRAGMA foreign_keys = ON").await.unwrap();
    // Down through the rooms migration and whatever came after it.
    let all = Migrator::migrations();
    let rooms = all.iter().position(|m| m.name() == "m20261202_000002_rooms").expect("the rooms migration");
    Migrator::down(&db, Some((all.len() - rooms) as u32)).await.unwrap();
    let columns = db.query_all_raw(sea_orm::Statement::from_string(db.get_database_backend(), "SELECT name FROM pragma_table_info('conversations')")).await.unwrap();
    let columns: Vec<String> = columns.iter().map(|r| r.try_get("", "name").unwrap()).collect();
    assert_eq!(columns, ["id", "kind", "direct_key", "created_at"]);
    let count = db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), "SELECT COUNT(*) AS n FROM messages")).await.unwrap().unwrap();
    assert_eq!(count.try_get::<i64>("", "n").unwrap(), 5, "direct messages survive the way down");
    drop(db);
    run_chatd(dir.path(), &["db", "migrate"]);
    let export = lines(&run_chatd(dir.path(), &["export"]));
    assert_eq!(of_type(&export, "message").len(), 5);
    assert_eq!(of_type(&export, "membership").len(), 4);
}

#[test]
fn an_export_made_by_the_previous_release_still_imports() {
    let dir = tempfile::tempdir().unwrap();
    let _database = database::TestDatabase::for_dir(dir.path());
    let file = std::fs::canonicalize(Path::new(FIXTURE).join("export.jsonl")).unwrap();
    run_chatd(dir.path(), &["import", file.to_str().unwrap()]);
    let export = lines(&run_chatd(dir.path(), &["export"]));
    assert_eq!(export[0]["format"], 2);
    let conversations = of_type(&export, "conversation");
    assert_eq!(conversations.len(), 2);
    assert_eq!(conversations[0]["members"][0], json!({"username": "alice", "role": "member", "last_read_id": 0, "joined_at": conversations[0]["created_at"], "posted": false}));
    assert_eq!(of_type(&export, "message").len(), 5);
    assert_eq!(of_type(&export, "membership").len(), 4, "every member sees a direct conversation from the start");
    // A second run changes nothing.
    run_chatd(dir.path(), &["import", file.to_str().unwrap()]);
    assert_eq!(lines(&run_chatd(dir.path(), &["export"])), export);
}
