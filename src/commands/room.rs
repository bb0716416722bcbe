//! `chatd room …`: rooms administered from the command line, through the same write path as the
//! API (changes are checked and recorded as events; a server running on the same database
//! publishes them to open sockets within a second).
use anyhow::bail;

use super::user::{confirm, explain};
use crate::{
    App,
    cli::RoomCommand,
    config::Config,
    domain::{
        ConversationId, Username,
        conversations::{NewConversation, creation},
        writes::Operation,
    },
    store::conversations,
};

pub async fn run(config: Config, command: RoomCommand) -> anyhow::Result<()> {
    let app = App::open_for_command(config).await?;
    let outcome = match command {
        RoomCommand::List { json } => return list(&app, json).await,
        RoomCommand::Create { name, private, owner, members, topic } => {
            let new = NewConversation {
                kind: "room",
                name: Some(&name),
                topic: topic.as_deref(),
                visibility: Some(if private { "private" } else { "public" }),
                members: &members,
            };
            let owner = Username::parse(&owner).map_err(explain)?;
            let operation = creation(new, Some(owner)).map_err(explain)?;
            app.chat.administer(operation).await.map_err(explain)?;
            format!("created the {} room {name}", if private { "private" } else { "public" })
        }
        RoomCommand::Add { room, users } => {
            let id = find(&app, &room).await?;
            let usernames = users.iter().map(|u| Username::parse(u)).collect::<Result<Vec<_>, _>>().map_err(explain)?;
            app.chat.administer(Operation::AddMembers { id, usernames, role: crate::domain::Role::Member }).await.map_err(explain)?;
            format!("added {} to {room}", users.join(", "))
        }
        RoomCommand::Remove { room, users } => {
            let id = find(&app, &room).await?;
            for user in &users {
                let username = Username::parse(user).map_err(explain)?;
                app.chat.administer(Operation::RemoveMember { id, username }).await.map_err(explain)?;
            }
            format!("removed {} from {room}", users.join(", "))
        }
        RoomCommand::Archive { room } => archive(&app, &room, true).await?,
        RoomCommand::Unarchive { room } => archive(&app, &room, false).await?,
        RoomCommand::Delete { room, yes } => {
            let id = find(&app, &room).await?;
            confirm(&format!("deleting the room {room} deletes all of its messages"), yes)?;
            app.chat.administer(Operation::Delete { id }).await.map_err(explain)?;
            format!("deleted the room {room}")
        }
    };
    app.chat.flush().await;
    eprintln!("{outcome}");
    Ok(())
}

async fn find(app: &App, room: &str) -> anyhow::Result<ConversationId> {
    match conversations::find_room_by_name(&app.store.read, room).await.map_err(explain)? {
        Some(id) => Ok(id),
        None => bail!("no room named {room}; `chatd room list` shows them"),
    }
}

async fn archive(app: &App, room: &str, archived: bool) -> anyhow::Result<String> {
    let id = find(app, room).await?;
    app.chat.administer(Operation::Update { id, name: None, topic: None, archived: Some(archived) }).await.map_err(explain)?;
    Ok(format!("{} {room}", if archived { "archived" } else { "unarchived" }))
}

async fn list(app: &App, json: bool) -> anyhow::Result<()> {
    let rooms = conversations::all_rooms(&app.store.read).await.map_err(explain)?;
    if !json {
        println!("{:<40}  {:<10}  {:>7}  archived", "name", "visibility", "members");
    }
    for (_, name, visibility, archived, members) in rooms {
        if json {
            println!("{}", serde_json::json!({"name": name, "visibility": visibility.as_str(), "members": members, "archived": archived}));
        } else {
            println!("{name:<40}  {:<10}  {members:>7}  {archived}", visibility.as_str());
        }
    }
    Ok(())
}
