//! `chatd user …`: account administration through the same services the API uses. Passwords come
//! from `CHATD_PASSWORD`, `--password-stdin` or a prompt — never from the command line.
use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};

use crate::{
    App,
    cli::UserCommand,
    config::Config,
    domain::{UserId, format_time},
    error::Error,
};

pub async fn run(config: Config, command: UserCommand) -> anyhow::Result<()> {
    // Read the password before touching the database, so a missing one fails fast and cleanly.
    let password = match &command {
        UserCommand::Add { password_stdin, .. } | UserCommand::Passwd { password_stdin, .. } => {
            Some(read_password(*password_stdin)?)
        }
        _ => None,
    };
    let app = App::open_for_command(config).await?;
    let accounts = &app.accounts;
    let done = |what: String| eprintln!("{what}");
    match command {
        UserCommand::Add { name, admin, ignore_exists, .. } => {
            match accounts.create_user(&name, password.as_deref().unwrap_or_default(), admin).await {
                Ok(user) => done(format!("created {}user {}", if admin { "admin " } else { "" }, user.username)),
                Err(Error::UsernameTaken) if ignore_exists => done(format!("user {} already exists; unchanged", name.to_lowercase())),
                Err(error) => return Err(explain(error)),
            }
        }
        UserCommand::List { json } => list(&app, json).await?,
        UserCommand::Passwd { name, .. } => {
            accounts.change_password(&name, password.as_deref().unwrap_or_default()).await.map_err(explain)?;
            done(format!("changed the password of {}; their sessions are signed out", name.to_lowercase()));
        }
        UserCommand::Remove { name, yes } => {
            let user = accounts.find_user(&name).await.map_err(explain)?;
            let (messages, conversations) =
                crate::store::users::removal_counts(&app.store.read, UserId(user.id)).await.map_err(explain)?;
            let what = format!(
                "removing {} deletes the account, its sessions and the {messages} message(s) it sent in {conversations} conversation(s)",
                user.username
            );
            confirm(&what, yes)?;
            accounts.remove_user(&user.username).await.map_err(explain)?;
            done(format!("removed user {} and {messages} message(s)", user.username));
        }
        UserCommand::SetAdmin { name, admin } => {
            accounts.set_admin(&name, admin).await.map_err(explain)?;
            done(format!("{} is {}an administrator", name.to_lowercase(), if admin { "" } else { "no longer " }));
        }
        UserCommand::Disable { name } => {
            accounts.set_disabled(&name, true).await.map_err(explain)?;
            done(format!("disabled {}; their sessions are signed out", name.to_lowercase()));
        }
        UserCommand::Enable { name } => {
            accounts.set_disabled(&name, false).await.map_err(explain)?;
            done(format!("enabled {}", name.to_lowercase()));
        }
    }
    Ok(())
}

async fn list(app: &App, json: bool) -> anyhow::Result<()> {
    let users = app.accounts.list_users().await.map_err(explain)?;
    if !json {
        println!("{:<32}  {:<5}  {:<8}  created", "username", "admin", "disabled");
    }
    for user in users {
        let created = format_time(user.created_at);
        if json {
            let line = serde_json::json!({
                "username": user.username, "is_admin": user.is_admin, "disabled": user.disabled, "created_at": created,
            });
            println!("{line}");
        } else {
            println!("{:<32}  {:<5}  {:<8}  {created}", user.username, user.is_admin, user.disabled);
        }
    }
    Ok(())
}

/// Domain errors carry the message a person needs; keep it and drop the wrapping.
pub(super) fn explain(error: Error) -> anyhow::Error {
    match error {
        Error::Internal(cause) => cause,
        other => anyhow::anyhow!("{other}"),
    }
}

/// Goes ahead with `--yes`; otherwise asks on a terminal, and refuses without one.
pub(super) fn confirm(what: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        eprintln!("{what}");
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{what}; pass --yes to confirm (standard input is not a terminal, so chatd cannot ask)");
    }
    eprint!("{what}. Continue? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).context("cannot read the answer")?;
    if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        bail!("not confirmed; nothing was removed");
    }
    Ok(())
}

/// `--password-stdin`, else `CHATD_PASSWORD`, else a prompt on a terminal.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            bail!("--password-stdin: standard input had no password");
        }
        return Ok(password);
    }
    if let Ok(password) = std::env::var("CHATD_PASSWORD") {
        return Ok(password);
    }
    if std::io::stdin().is_terminal() {
        let password = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Repeat password: ")?;
        if password != again {
            bail!("the passwords do not match");
        }
        return Ok(password);
    }
    bail!("no password given: set CHATD_PASSWORD, pass --password-stdin, or run in a terminal to be prompted")
}
