//! `chatd user add`: the same account creation as sign-up, with the password never on the command line.
use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};

use crate::{App, cli::UserCommand, config::Config};

pub async fn run(config: Config, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { name, admin, password_stdin } => {
            let password = read_password(password_stdin)?;
            let app = App::open(config).await?;
            let user = app.accounts.create_user(&name, &password, admin).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!("created {}user {}", if admin { "admin " } else { "" }, user.username);
            Ok(())
        }
    }
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
