//! Groups and rooms against a real server: creating them, roles and who may do what, members
//! coming and going on open sockets, public rooms and the directory, archiving and deleting, and
//! the change stream that carries all of it live and through `sync`.
mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_millis(300);

async fn create(server: &TestServer, owner: &TestUser, body: Value) -> Value {
    let (status, conversation) = server.post("/api/conversations", Some(&owner.token), body).await;
    assert_eq!(status, 201, "{conversation}");
    conversation
}

async fn room(server: &TestServer, owner: &TestUser, name: &str, visibility: &str, members: &[&str]) -> i64 {
    let body = json!({"kind": "room", "name": name, "topic": format!("all about {name}"), "visibility": visibility, "members": members});
    create(server, owner, body).await["id"].as_i64().unwrap()
}

async fn post(server: &TestServer, user: &TestUser, conversation: i64, body: &str) -> (u16, Value) {
    let client_id = format!("{}-{conversation}-{body}", user.name);
    server
        .post(&format!("/api/conversations/{conversation}/messages"), Some(&user.token), json!({"body": body, "client_id": client_id}))
        .await
}

async fn history(server: &TestServer, user: &TestUser, conversation: i64) -> (u16, Value) {
    server.get(&format!("/api/conversations/{conversation}/messages?limit=100"), Some(&user.token)).await
}

fn texts(page: &Value) -> Vec<String> {
    page["messages"].as_array().unwrap().iter().filter(|m| m["kind"] == "text").map(|m| m["body"].as_str().unwrap().to_owned()).collect()
}

fn member_names(conversation: &Value) -> Vec<String> {
    let mut names: Vec<String> =
        conversation["members"].as_array().unwrap().iter().map(|m| m["username"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_group_of_three_reaches_everyone_live_and_names_no_single_recipient() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let (mut bob_ws, ..) = server.connect(&bob).await;
    let (mut carol_ws, ..) = server.connect(&carol).await;

    let group = create(&server, &alice, json!({"kind": "group", "members": ["bob", "Carol"]})).await;
    assert_eq!(group["kind"], "group");
    assert_eq!((group["name"].clone(), group["topic"].clone(), group["visibility"].clone()), (Value::Null, Value::Null, Value::Null));
    assert_eq!(member_names(&group), ["alice", "bob", "carol"]);
    assert!(group["members"].as_array().unwrap().iter().all(|m| m["role"] == "member"), "groups have no roles");
    let id = group["id"].as_i64().unwrap();
    for ws in [&mut bob_ws, &mut carol_ws] {
        let created = ws.recv_type("conversation_created").await;
        assert_eq!((created["conversation_id"].as_i64(), created["by"].as_str(), created["kind"].as_str()), (Some(id), Some("alice"), Some("group")));
        assert!(created["id"].as_i64().unwrap() > 0, "events carry the stream cursor");
    }

    let (mut alice_ws, ..) = server.connect(&alice).await;
    alice_ws.send(json!({"type": "send_message", "conversation_id": id, "body": "hi both", "client_id": "g1"})).await;
    let ack = alice_ws.recv_type("ack").await;
    let message = &ack["message"];
    assert_eq!((message["conversation_id"].as_i64(), &message["to"]), (Some(id), &Value::Null), "{message}");
    for ws in [&mut bob_ws, &mut carol_ws] {
        assert_eq!(ws.recv_type("receive_message").await["message"], *message);
    }
    // A resend lands once.
    alice_ws.send(json!({"type": "send_message", "conversation_id": id, "body": "hi both", "client_id": "g1"})).await;
    assert_eq!(alice_ws.recv_type("ack").await["message"]["id"], message["id"]);
    bob_ws.expect_silence(QUIET).await;
    let (_, page) = history(&server, &carol, id).await;
    assert_eq!(texts(&page), ["hi both"]);
    assert_eq!(page["messages"][0]["kind"], "event", "the timeline starts with the creation");
}

#[tokio::test]
async fn creating_a_conversation_checks_its_people_name_and_size() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    server.user("carol").await;
    let attempt = |body: Value| server.post("/api/conversations", Some(&alice.token), body);
    let code = |(status, body): (u16, Value)| (status, body["code"].as_str().unwrap_or_default().to_owned());

    assert_eq!(code(attempt(json!({"kind": "group", "members": ["bob"]})).await), (400, "too_few_members".into()));
    let (status, error) = attempt(json!({"kind": "group", "members": ["bob", "nobody", "ghost"]})).await;
    assert_eq!((status, error["code"].as_str()), (404, Some("user_not_found")));
    assert!(error["message"].as_str().unwrap().contains("nobody, ghost"), "{error}");
    let many: Vec<String> = (0..50).map(|n| format!("user{n:02}")).collect();
    for name in &many {
        server.user(name).await;
    }
    assert_eq!(code(attempt(json!({"kind": "group", "members": many})).await), (400, "too_many_members".into()));
    assert_eq!(code(attempt(json!({"kind": "room", "members": ["bob"]})).await), (400, "invalid_name".into()));
    assert_eq!(code(attempt(json!({"kind": "room", "name": "   "})).await), (400, "invalid_name".into()));
    assert_eq!(code(attempt(json!({"kind": "room", "name": "x".repeat(81)})).await), (400, "invalid_name".into()));
    assert_eq!(code(attempt(json!({"kind": "room", "name": "Design", "topic": "t".repeat(251)})).await), (400, "invalid_topic".into()));
    assert_eq!(code(attempt(json!({"kind": "group", "members": ["bob", "carol"], "topic": "no"})).await), (400, "invalid_parameter".into()));
    assert_eq!(code(attempt(json!({"kind": "direct", "members": ["bob"]})).await).0, 400);
    assert_eq!(code(attempt(json!({"kind": "room", "name": "Design", "extra": 1})).await), (400, "invalid_body".into()));

    let design = create(&server, &alice, json!({"kind": "room", "name": "  Design ", "members": ["bob"]})).await;
    assert_eq!((design["name"].as_str(), design["visibility"].as_str(), design["my_role"].as_str()), (Some("Design"), Some("public"), Some("owner")));
    assert_eq!(code(attempt(json!({"kind": "room", "name": "DESIGN"})).await), (409, "name_taken".into()), "names are unique ignoring case");
}

/// Who tries, in the authorisation matrix.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Stranger,
    Removed,
    Member,
    Admin,
    Owner,
    ServerAdmin,
}

#[tokio::test]
async fn every_role_gets_exactly_what_the_rules_allow_in_public_and_private_rooms() {
    let server = TestServer::start().await;
    let owner = server.user("owner").await;
    let admin = server.user("admin").await;
    let member = server.user("member").await;
    let removed = server.user("removed").await;
    let stranger = server.user("stranger").await;
    let boss = server.user("boss").await;
    server.app.accounts.set_admin("boss", true).await.unwrap();
    let boss = TestUser { name: boss.name, token: server.signin("boss").await };
    let extra = ["extra1", "extra2", "extra3", "extra4", "extra5", "extra6", "extra7", "extra8"];
    for name in extra {
        server.user(name).await;
    }
    let users = [(Who::Stranger, &stranger), (Who::Removed, &removed), (Who::Member, &member), (Who::Admin, &admin), (Who::Owner, &owner), (Who::ServerAdmin, &boss)];

    for visibility in ["public", "private"] {
        let public = visibility == "public";
        for (who, user) in users {
            // A fresh room per case, so that one case's change cannot decide the next.
            let name = format!("{visibility}-{who:?}");
            let id = room(&server, &owner, &name, visibility, &["admin", "member", "removed"]).await;
            let path = |rest: &str| format!("/api/conversations/{id}{rest}");
            server.call("PUT", &path("/members/admin/role"), Some(&owner.token), Some(json!({"role": "admin"}))).await;
            assert_eq!(server.call("DELETE", &path("/members/removed"), Some(&owner.token), None).await.0, 204);
            let hidden = !public && matches!(who, Who::Stranger | Who::Removed);
            let case = format!("{visibility} room, {who:?}");
            let status = |result: (u16, Value)| result.0;

            // Reading.
            let read = status(server.get(&path(""), Some(&user.token)).await);
            let history = status(server.get(&path("/messages"), Some(&user.token)).await);
            let expected_read = match who {
                _ if hidden => (404, 404),
                // Server admins manage private rooms without reading them.
                Who::ServerAdmin if !public => (200, 403),
                _ => (200, 200),
            };
            assert_eq!((read, history), expected_read, "read: {case}");

            // Posting.
            let posted = status(post(&server, user, id, "hello").await);
            let expected_post = match who {
                Who::Member | Who::Admin | Who::Owner => 201,
                _ if hidden => 404,
                _ => 403,
            };
            assert_eq!(posted, expected_post, "post: {case}");

            // Renaming and the topic.
            let renamed = status(server.call("PATCH", &path(""), Some(&user.token), Some(json!({"topic": format!("by {who:?}")}))).await);
            let expected_manage = match who {
                Who::Admin | Who::Owner | Who::ServerAdmin => 200,
                _ if hidden => 404,
                _ => 403,
            };
            assert_eq!(renamed, expected_manage, "topic: {case}");

            // Adding people: members may add to a public room only.
            let added = status(server.post(&path("/members"), Some(&user.token), json!({"usernames": [extra[0]]})).await);
            let expected_add = match who {
                Who::Admin | Who::Owner | Who::ServerAdmin => 200,
                Who::Member if public => 200,
                _ if hidden => 404,
                _ => 403,
            };
            assert_eq!(added, expected_add, "add: {case}");

            // Removing a member.
            server.post(&path("/members"), Some(&owner.token), json!({"usernames": [extra[1]]})).await;
            let kicked = status(server.call("DELETE", &path(&format!("/members/{}", extra[1])), Some(&user.token), None).await);
            assert_eq!(kicked, if expected_manage == 200 { 204 } else { expected_manage }, "remove: {case}");

            // Roles: owners (and server admins) only.
            server.post(&path("/members"), Some(&owner.token), json!({"usernames": [extra[2]]})).await;
            let promoted = status(server.call("PUT", &path(&format!("/members/{}/role", extra[2])), Some(&user.token), Some(json!({"role": "admin"}))).await);
            let expected_role = match who {
                Who::Owner | Who::ServerAdmin => 200,
                _ if hidden => 404,
                _ => 403,
            };
            assert_eq!(promoted, expected_role, "role: {case}");

            // Joining.
            let joined = status(server.post(&path("/join"), Some(&user.token), json!({})).await);
            let expected_join = match who {
                Who::Member | Who::Admin | Who::Owner => 200,
                Who::Stranger | Who::Removed | Who::ServerAdmin if public => 200,
                Who::ServerAdmin => 403,
                _ => 404,
            };
            assert_eq!(joined, expected_join, "join: {case}");

            // Archiving, then deleting.
            let archived = status(server.call("PATCH", &path(""), Some(&user.token), Some(json!({"archived": true}))).await);
            let expected_archive = match who {
                Who::Admin | Who::Owner | Who::ServerAdmin => 200,
                _ if hidden => 404,
                _ => 403,
            };
            assert_eq!(archived, expected_archive, "archive: {case}");
            let deleted = status(server.call("DELETE", &path(""), Some(&user.token), None).await);
            let expected_delete = match who {
                Who::Owner | Who::ServerAdmin => 204,
                _ if hidden => 404,
                _ => 403,
            };
            assert_eq!(deleted, expected_delete, "delete: {case}");
            // A private room's existence never leaks: its 404 is the one for a room that never was.
            if hidden {
                let (_, error) = server.get(&path(""), Some(&user.token)).await;
                let (_, never) = server.get("/api/conversations/999999", Some(&user.token)).await;
                assert_eq!(error, never, "{case}");
            }
        }
    }
}

#[tokio::test]
async fn the_last_owner_cannot_leave_until_someone_else_owns_the_room() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let id = room(&server, &alice, "ops", "private", &["bob"]).await;
    let leave = async |user: &TestUser| {
        server.call("DELETE", &format!("/api/conversations/{id}/members/{}", user.name), Some(&user.token), None).await
    };
    let (status, error) = leave(&alice).await;
    assert_eq!((status, error["code"].as_str()), (409, Some("last_owner")));
    let (status, error) = server.call("PUT", &format!("/api/conversations/{id}/members/alice/role"), Some(&alice.token), Some(json!({"role": "member"}))).await;
    assert_eq!((status, error["code"].as_str()), (409, Some("last_owner")));
    let (status, room) = server.call("PUT", &format!("/api/conversations/{id}/members/bob/role"), Some(&alice.token), Some(json!({"role": "owner"}))).await;
    assert_eq!(status, 200, "{room}");
    assert_eq!(leave(&alice).await.0, 204);
    assert_eq!(server.get(&format!("/api/conversations/{id}"), Some(&alice.token)).await.0, 404, "a private room closes behind whoever leaves");
    assert_eq!(leave(&bob).await.0, 409, "bob is the last owner now");
}

#[tokio::test]
async fn a_removed_member_stops_receiving_at_once_and_cannot_read_on() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let id = room(&server, &alice, "secret", "private", &["bob", "carol"]).await;
    let (mut carol_ws, ..) = server.connect(&carol).await;
    let (mut bob_ws, ..) = server.connect(&bob).await;
    assert_eq!(post(&server, &alice, id, "before").await.0, 201);
    assert_eq!(carol_ws.recv_type("receive_message").await["message"]["body"], "before");

    assert_eq!(server.call("DELETE", &format!("/api/conversations/{id}/members/carol"), Some(&alice.token), None).await.0, 204);
    let removed = carol_ws.recv_type("member_removed").await;
    assert_eq!((removed["username"].as_str(), removed["by"].as_str(), removed["conversation_id"].as_i64()), (Some("carol"), Some("alice"), Some(id)));
    assert_eq!(bob_ws.recv_type("member_removed").await, removed, "the same event for everyone");

    post(&server, &alice, id, "after").await;
    bob_ws.send(json!({"type": "typing", "conversation_id": id})).await;
    assert_eq!(bob_ws.recv_type("receive_message").await["message"]["body"], "after");
    carol_ws.expect_silence(QUIET).await;
    assert_eq!(history(&server, &carol, id).await.0, 404);
    assert_eq!(post(&server, &carol, id, "let me in").await.0, 404);
    carol_ws.send(json!({"type": "send_message", "conversation_id": id, "body": "hello?", "client_id": "c9"})).await;
    assert_eq!(carol_ws.recv_type("error").await["code"], "conversation_not_found");

    // A reconnect's catch-up replays the removal and nothing after it.
    let (mut again, ..) = server.connect(&carol).await;
    again.send(json!({"type": "sync", "after": 0})).await;
    let mut seen = Vec::new();
    loop {
        let frame = again.recv().await;
        if frame["type"] == "sync_done" {
            break;
        }
        seen.push(frame["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["conversation_created", "receive_message", "member_removed"]);
}

#[tokio::test]
async fn someone_added_sees_the_conversation_appear_live_with_its_history() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let dave = server.user("dave").await;
    let id = room(&server, &alice, "plans", "private", &["bob"]).await;
    post(&server, &alice, id, "the plan").await;
    let (mut phone, ..) = server.connect(&dave).await;
    let (mut laptop, ..) = server.connect(&dave).await;
    let (status, room) = server.post(&format!("/api/conversations/{id}/members"), Some(&bob.token), json!({"usernames": ["dave"]})).await;
    assert_eq!(status, 403, "members may not add people to a private room: {room}");
    let (status, room) = server.post(&format!("/api/conversations/{id}/members"), Some(&alice.token), json!({"usernames": ["dave", "bob"]})).await;
    assert_eq!(status, 200);
    assert_eq!(member_names(&room), ["alice", "bob", "dave"]);
    for ws in [&mut phone, &mut laptop] {
        let added = ws.recv_type("member_added").await;
        assert_eq!(added["members"], json!([{"username": "dave", "role": "member"}]), "bob was in already");
    }
    let (status, page) = history(&server, &dave, id).await;
    assert_eq!((status, texts(&page)), (200, vec!["the plan".to_owned()]), "new members of a private room read its history");
    let (_, list) = server.get("/api/conversations", Some(&dave.token)).await;
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[0]["unread"], 1);
    // Adding again changes nothing and tells nobody.
    assert_eq!(server.post(&format!("/api/conversations/{id}/members"), Some(&alice.token), json!({"usernames": ["dave"]})).await.0, 200);
    phone.expect_silence(QUIET).await;
}

#[tokio::test]
async fn public_rooms_are_found_in_the_directory_and_joined_and_private_ones_never_show() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    room(&server, &alice, "Rust", "public", &[]).await;
    room(&server, &alice, "Gardening", "public", &[]).await;
    room(&server, &alice, "Rust core team", "private", &[]).await;
    let (status, found) = server.get("/api/rooms?q=rust", Some(&bob.token)).await;
    assert_eq!(status, 200);
    assert_eq!(found, json!([{"id": found[0]["id"], "name": "Rust", "topic": "all about Rust", "member_count": 1, "joined": false}]));
    let (_, by_topic) = server.get("/api/rooms?q=about%20garden", Some(&bob.token)).await;
    assert_eq!(by_topic[0]["name"], "Gardening", "the topic is searched too");
    let (_, all) = server.get("/api/rooms", Some(&bob.token)).await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    for q in ["%", "_", "\\"] {
        let (status, none) = server.get(&format!("/api/rooms?q={}", urlencode(q)), Some(&bob.token)).await;
        assert_eq!((status, none), (200, json!([])), "{q} is taken literally");
    }

    let id = found[0]["id"].as_i64().unwrap();
    let (status, room) = server.post(&format!("/api/conversations/{id}/join"), Some(&bob.token), json!({})).await;
    assert_eq!((status, room["my_role"].as_str()), (200, Some("member")));
    let (_, found) = server.get("/api/rooms?q=rust", Some(&bob.token)).await;
    assert_eq!((found[0]["member_count"].as_u64(), found[0]["joined"].as_bool()), (Some(2), Some(true)));
    assert_eq!(post(&server, &bob, id, "hello rustaceans").await.0, 201);
}

fn urlencode(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test]
async fn an_archived_room_is_read_only_until_unarchived() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let id = room(&server, &alice, "2025", "public", &["bob"]).await;
    post(&server, &bob, id, "old news").await;
    let (mut bob_ws, ..) = server.connect(&bob).await;
    let (status, room) = server.call("PATCH", &format!("/api/conversations/{id}"), Some(&alice.token), Some(json!({"archived": true}))).await;
    assert_eq!((status, room["archived"].as_bool()), (200, Some(true)));
    let updated = bob_ws.recv_type("conversation_updated").await;
    assert_eq!((updated["archived"].as_bool(), updated["by"].as_str()), (Some(true), Some("alice")));
    let (status, error) = post(&server, &bob, id, "anyone?").await;
    assert_eq!((status, error["code"].as_str()), (403, Some("archived")));
    bob_ws.send(json!({"type": "send_message", "conversation_id": id, "body": "anyone?", "client_id": "b2"})).await;
    assert_eq!(bob_ws.recv_type("error").await["code"], "archived");
    assert_eq!(texts(&history(&server, &bob, id).await.1), ["old news"], "still readable");
    let (status, error) = server.call("PATCH", &format!("/api/conversations/{id}"), Some(&alice.token), Some(json!({"name": "2025 (old)"}))).await;
    assert_eq!((status, error["code"].as_str()), (403, Some("archived")));
    assert_eq!(server.call("PATCH", &format!("/api/conversations/{id}"), Some(&alice.token), Some(json!({"archived": false}))).await.0, 200);
    assert_eq!(post(&server, &bob, id, "back").await.0, 201);
}

#[tokio::test]
async fn renames_topics_and_roles_reach_every_member_and_show_in_the_timeline() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let id = room(&server, &alice, "design", "private", &["bob"]).await;
    let (mut bob_ws, ..) = server.connect(&bob).await;
    let (status, room) =
        server.call("PATCH", &format!("/api/conversations/{id}"), Some(&alice.token), Some(json!({"name": "Design team", "topic": "Figma links"}))).await;
    assert_eq!((status, room["name"].as_str(), room["topic"].as_str()), (200, Some("Design team"), Some("Figma links")));
    let updated = bob_ws.recv_type("conversation_updated").await;
    assert_eq!((updated["name"].as_str(), updated["topic"].as_str()), (Some("Design team"), Some("Figma links")));
    server.call("PUT", &format!("/api/conversations/{id}/members/bob/role"), Some(&alice.token), Some(json!({"role": "admin"}))).await;
    let role = bob_ws.recv_type("role_changed").await;
    assert_eq!((role["username"].as_str(), role["role"].as_str()), (Some("bob"), Some("admin")));
    // The same name again changes nothing.
    server.call("PATCH", &format!("/api/conversations/{id}"), Some(&alice.token), Some(json!({"name": "Design team"}))).await;
    bob_ws.expect_silence(QUIET).await;

    let (_, page) = history(&server, &bob, id).await;
    let lines: Vec<&str> = page["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(lines, ["alice created the room design", "alice renamed the conversation to Design team", "alice made bob admin"]);
    assert_eq!(page["messages"][1]["event"]["topic"], "Figma links");
}

#[tokio::test]
async fn a_deleted_room_is_gone_for_everyone_and_its_removal_is_replayed() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let id = room(&server, &alice, "temp", "public", &["bob"]).await;
    post(&server, &bob, id, "soon gone").await;
    let (status, _) = server.call("DELETE", &format!("/api/conversations/{id}"), Some(&bob.token), None).await;
    assert_eq!(status, 403, "members may not delete a room");
    let (mut bob_ws, ..) = server.connect(&bob).await;
    assert_eq!(server.call("DELETE", &format!("/api/conversations/{id}"), Some(&alice.token), None).await.0, 204);
    let removed = bob_ws.recv_type("conversation_removed").await;
    assert_eq!((removed["conversation_id"].as_i64(), removed["by"].as_str()), (Some(id), Some("alice")));
    for user in [&alice, &bob] {
        assert_eq!(server.get(&format!("/api/conversations/{id}"), Some(&user.token)).await.0, 404);
        let (_, list) = server.get("/api/conversations", Some(&user.token)).await;
        assert!(list.as_array().unwrap().iter().all(|c| c["id"] != id));
    }
    let (_, rooms) = server.get("/api/rooms", Some(&bob.token)).await;
    assert_eq!(rooms, json!([]));
    // The name is free again.
    room(&server, &alice, "temp", "public", &[]).await;
    let (mut later, ..) = server.connect(&bob).await;
    later.send(json!({"type": "sync", "after": 0})).await;
    let removal = later.recv_type("conversation_removed").await;
    assert_eq!(removal, removed, "sync replays the same frame");
}

#[tokio::test]
async fn presence_is_shared_within_a_room_and_ends_with_the_last_shared_conversation() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let (mut bob_ws, _, online) = server.connect(&bob).await;
    assert_eq!(online["users"], json!([]));
    let (_alice_ws, ..) = server.connect(&alice).await;
    bob_ws.expect_silence(QUIET).await;

    let id = room(&server, &alice, "general", "private", &["bob"]).await;
    let mut frames = vec![bob_ws.recv().await, bob_ws.recv().await];
    frames.sort_by_key(|f| f["type"].as_str().unwrap().to_owned());
    assert_eq!(frames[0]["type"], "conversation_created");
    assert_eq!(frames[1], json!({"type": "presence", "username": "alice", "online": true}));
    let (_, view) = server.get(&format!("/api/conversations/{id}"), Some(&bob.token)).await;
    assert!(view["members"].as_array().unwrap().iter().all(|m| m["online"] == true), "{view}");

    server.call("DELETE", &format!("/api/conversations/{id}/members/bob"), Some(&bob.token), None).await;
    bob_ws.recv_type("member_removed").await;
    let (alice_again, ..) = server.connect(&alice).await;
    alice_again.close().await;
    drop(_alice_ws);
    bob_ws.expect_silence(Duration::from_millis(600)).await;
    let (_, found) = server.get("/api/users?q=alice", Some(&bob.token)).await;
    assert_eq!(found[0]["online"], false, "no conversation shared any more");
}

#[tokio::test]
async fn typing_and_seen_receipts_in_a_group_name_the_conversation() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let id = create(&server, &alice, json!({"kind": "group", "members": ["bob", "carol"]})).await["id"].as_i64().unwrap();
    let (mut alice_ws, ..) = server.connect(&alice).await;
    let (mut bob_ws, ..) = server.connect(&bob).await;
    let (mut carol_ws, ..) = server.connect(&carol).await;
    let (_, message) = post(&server, &alice, id, "lunch?").await;
    bob_ws.send(json!({"type": "typing", "conversation_id": id})).await;
    for ws in [&mut alice_ws, &mut carol_ws] {
        assert_eq!(ws.recv_type("typing").await, json!({"type": "typing", "conversation_id": id, "from": "bob"}));
    }
    bob_ws.send(json!({"type": "read", "conversation_id": id, "up_to": message["id"]})).await;
    assert_eq!(alice_ws.recv_type("read").await, json!({"type": "read", "conversation_id": id, "peer": "bob", "up_to": message["id"]}));
    let (_, view) = server.get(&format!("/api/conversations/{id}"), Some(&alice.token)).await;
    let seen: Vec<&str> = view["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["username"] != "alice" && m["read_up_to"] == message["id"])
        .map(|m| m["username"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ["bob"], "seen by 1");
    let (status, state) = server.post(&format!("/api/conversations/{id}/read"), Some(&carol.token), json!({"up_to": 1_000_000})).await;
    assert_eq!((status, state["up_to"].clone()), (200, message["id"].clone()));
}

#[tokio::test]
async fn direct_conversations_are_listed_and_reachable_by_id_too() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let (_, first) = server.send_rest(&alice, "bob", "hi", "d1").await;
    let id = first["conversation_id"].as_i64().unwrap();
    let (_, list) = server.get("/api/conversations", Some(&bob.token)).await;
    assert_eq!((list[0]["kind"].as_str(), list[0]["id"].as_i64(), list[0]["unread"].as_u64()), (Some("direct"), Some(id), Some(1)));
    assert_eq!(member_names(&list[0]), ["alice", "bob"]);
    let (status, reply) = post(&server, &bob, id, "hello").await;
    assert_eq!((status, reply["to"].as_str()), (201, Some("alice")));
    let (_, page) = server.get("/api/messages/bob", Some(&alice.token)).await;
    assert_eq!(page["messages"][1], reply, "the same message by either path");
    let (status, error) = server.call("PATCH", &format!("/api/conversations/{id}"), Some(&alice.token), Some(json!({"name": "x"}))).await;
    assert_eq!((status, error["code"].as_str()), (403, Some("forbidden")));
    let (status, _) = server.post(&format!("/api/conversations/{id}/members"), Some(&alice.token), json!({"usernames": ["alice"]})).await;
    assert_eq!(status, 200, "already in: nothing to do");
}

#[tokio::test]
async fn rooms_made_on_the_command_line_reach_a_running_server_within_a_second() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    server.user("carol").await;
    let (mut alice_ws, ..) = server.connect(&alice).await;
    let dir = server.data_dir.path().to_owned();
    let cli = move |args: &'static [&'static str]| {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || run_chatd(&dir, args))
    };

    cli(&["room", "create", "ops", "--private", "--owner", "alice", "--member", "bob", "--topic", "on call"]).await.unwrap();
    let created = alice_ws.recv_type("conversation_created").await;
    assert_eq!((created["name"].as_str(), created["by"].clone(), created["visibility"].as_str()), (Some("ops"), Value::Null, Some("private")));
    let id = created["conversation_id"].as_i64().unwrap();
    let (_, view) = server.get(&format!("/api/conversations/{id}"), Some(&alice.token)).await;
    assert_eq!((view["my_role"].as_str(), view["topic"].as_str()), (Some("owner"), Some("on call")));

    cli(&["room", "add", "ops", "carol"]).await.unwrap();
    assert_eq!(alice_ws.recv_type("member_added").await["members"][0]["username"], "carol");
    cli(&["room", "remove", "ops", "bob"]).await.unwrap();
    assert_eq!(alice_ws.recv_type("member_removed").await["username"], "bob");
    cli(&["room", "archive", "ops"]).await.unwrap();
    assert_eq!(alice_ws.recv_type("conversation_updated").await["archived"], true);
    let listed: Vec<Value> = cli(&["room", "list", "--json"]).await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(listed, [json!({"name": "ops", "visibility": "private", "members": 2, "archived": true})]);
    cli(&["room", "delete", "ops", "--yes"]).await.unwrap();
    alice_ws.recv_type("conversation_removed").await;
    assert_eq!(server.get(&format!("/api/conversations/{id}"), Some(&alice.token)).await.0, 404);
    // Live sends keep working and keep their order after what the command line did.
    let (status, sent) = server.send_rest(&alice, "bob", "still here", "after-cli").await;
    assert_eq!(status, 201);
    assert!(sent["id"].as_i64().unwrap() > created["id"].as_i64().unwrap());
}

#[test]
fn room_commands_explain_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let _database = database::TestDatabase::for_dir(dir.path());
    let fails = |args: &[&str]| {
        let output = chatd_cli(dir.path()).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    assert!(fails(&["room", "create", "ops", "--owner", "nobody"]).contains("no such user: nobody"));
    assert!(fails(&["room", "add", "ops", "alice"]).contains("no room named ops"));
    let usage = chatd_cli(dir.path()).args(["room", "create", "ops"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2), "--owner is required");
    let added = chatd_cli(dir.path()).args(["user", "add", "alice"]).env("CHATD_PASSWORD", PASSWORD).output().unwrap();
    assert!(added.status.success());
    run_chatd(dir.path(), &["room", "create", "ops", "--owner", "alice"]);
    assert!(fails(&["room", "create", "OPS", "--owner", "alice"]).contains("already exists"));
    assert!(fails(&["room", "delete", "ops"]).contains("pass --yes"), "no terminal to ask");
}

/// Every kind of conversation with roles, a member out and back in, a removed room and a read
/// marker, for the export tests.
async fn every_kind_of_conversation(server: &TestServer) {
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    // Names that sort differently by bytes and by a language's rules: members are listed by name.
    for name in ["xx_a", "xx-a", "xx.a"] {
        server.user(name).await;
    }
    server.send_rest(&alice, "bob", "direct", "d1").await;
    let members = json!(["bob", "carol", "xx_a", "xx-a", "xx.a"]);
    let group = create(server, &alice, json!({"kind": "group", "name": "lunch", "members": members})).await["id"].as_i64().unwrap();
    post(server, &bob, group, "pizza?").await;
    let public = room(server, &alice, "general", "public", &["bob"]).await;
    let private = room(server, &alice, "secret", "private", &["carol"]).await;
    let gone = room(server, &alice, "temp", "public", &["carol"]).await;
    post(server, &carol, private, "psst").await;
    post(server, &carol, gone, "soon gone").await;
    server.call("PUT", &format!("/api/conversations/{public}/members/bob/role"), Some(&alice.token), Some(json!({"role": "admin"}))).await;
    server.call("DELETE", &format!("/api/conversations/{private}/members/carol"), Some(&alice.token), None).await;
    server.post(&format!("/api/conversations/{private}/members"), Some(&alice.token), json!({"usernames": ["carol"]})).await;
    server.call("PATCH", &format!("/api/conversations/{public}"), Some(&alice.token), Some(json!({"topic": "everything", "archived": true}))).await;
    server.call("DELETE", &format!("/api/conversations/{gone}"), Some(&alice.token), None).await;
    server.post(&format!("/api/conversations/{group}/read"), Some(&carol.token), json!({"up_to": 1_000_000})).await;
}

/// Imports `export` into the data directory `dir` and exports it again.
fn import_then_export(dir: &std::path::Path, export: &str) -> String {
    let file = dir.join("export.jsonl");
    std::fs::write(&file, export).unwrap();
    run_chatd(dir, &["import", file.to_str().unwrap()]);
    run_chatd(dir, &["export"])
}

/// The same export from SQLite and from PostgreSQL: ids, order, markers, memberships and periods
/// survive the move either way, and PostgreSQL numbers what comes next after what it imported.
#[tokio::test]
async fn an_export_moves_between_sqlite_and_postgresql_byte_for_byte() {
    if database::postgres_only("moves an export between the two backends") {
        return;
    }
    let mut sqlite = TestServer::start_with(|c| c.database.url = format!("sqlite://{}?mode=rwc", c.data_dir.join("chat.db").display())).await;
    every_kind_of_conversation(&sqlite).await;
    sqlite.stop_in_place().await;
    let from_sqlite = run_chatd(sqlite.data_dir.path(), &["export"]);

    let on_postgres = tempfile::tempdir().unwrap();
    let _database = database::TestDatabase::for_dir(on_postgres.path());
    let from_postgres = import_then_export(on_postgres.path(), &from_sqlite);
    assert_eq!(from_postgres, from_sqlite, "SQLite → PostgreSQL");
    let back = tempfile::tempdir().unwrap();
    assert_eq!(import_then_export(back.path(), &from_postgres), from_postgres, "PostgreSQL → SQLite");

    let lines: Vec<Value> = from_sqlite.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let highest = |kind: &str| lines.iter().filter(|l| l["type"] == kind).map(|l| l["id"].as_i64().unwrap()).max().unwrap();
    let copied = TestServer::start_in(on_postgres, |_| {}).await;
    copied.app.accounts.change_password("alice", PASSWORD).await.unwrap();
    let alice = TestUser { name: "alice".into(), token: copied.signin("alice").await };
    copied.user("dave").await;
    let dave = chatd::store::users::find_by_username(&copied.app.store.read, "dave").await.unwrap().unwrap();
    assert!(dave.id > highest("user"), "{dave:?}");
    let created = room(&copied, &alice, "fresh", "public", &["dave"]).await;
    assert!(created > highest("conversation"));
    let (status, sent) = copied.send_rest(&alice, "dave", "after the move", "moved-1").await;
    assert_eq!(status, 201, "{sent}");
    assert!(sent["id"].as_i64().unwrap() > highest("message"), "{sent}");
}

#[tokio::test]
async fn export_then_import_then_export_gives_the_same_bytes_with_every_kind_of_conversation() {
    let server = TestServer::start().await;
    every_kind_of_conversation(&server).await;
    let mut server = server;
    server.stop_in_place().await;

    let first = run_chatd(server.data_dir.path(), &["export"]);
    let periods = first.lines().filter(|l| l.contains("\"membership\"")).count();
    assert!(periods >= 10, "{first}");
    assert!(first.contains("\"role\":\"admin\"") && first.contains("\"deleted_id\""), "{first}");
    let copy = tempfile::tempdir().unwrap();
    let _copy_database = database::TestDatabase::for_dir(copy.path());
    assert_eq!(import_then_export(copy.path(), &first), first);

    // The copy serves it all: carol's second time in the private room, the archived room, the group.
    let copied = TestServer::start_in(copy, |_| {}).await;
    copied.app.accounts.change_password("carol", PASSWORD).await.unwrap();
    let carol = TestUser { name: "carol".into(), token: copied.signin("carol").await };
    let (_, list) = copied.get("/api/conversations", Some(&carol.token)).await;
    let names: Vec<&str> = list.as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["secret", "lunch"]);
    let (mut ws, ..) = copied.connect(&carol).await;
    ws.send(json!({"type": "sync", "after": 0})).await;
    let mut kinds = Vec::new();
    loop {
        let frame = ws.recv().await;
        if frame["type"] == "sync_done" {
            break;
        }
        kinds.push(frame["type"].as_str().unwrap().to_owned());
    }
    assert!(kinds.contains(&"conversation_removed".to_owned()) && kinds.contains(&"member_removed".to_owned()), "{kinds:?}");
}

#[tokio::test]
async fn a_client_id_cannot_reach_the_events_the_server_stores() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    let id = room(&server, &alice, "general", "public", &["bob"]).await;
    let (_, page) = history(&server, &alice, id).await;
    let event = page["messages"].as_array().unwrap().iter().find(|m| m["kind"] == "event").expect("the room's creation is an event").clone();
    let key = event["client_id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("event-"), "{event}");
    let path = format!("/api/conversations/{id}/messages");
    let (status, body) = server.post(&path, Some(&alice.token), json!({"body": "hi", "client_id": key})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_client_id")), "{body}");
    let (_, after) = history(&server, &alice, id).await;
    assert_eq!(after["messages"], page["messages"], "nothing stored, the event untouched");
}
