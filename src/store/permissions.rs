//! The data directory holds every message and password hash: only chatd's own user should read
//! it. chatd creates it 0700 and its files 0600 (the process umask is 077); this finds looser
//! modes on what already exists, for `chatd config check` and the server's start-up log.
use std::path::Path;

/// Files in the data directory that hold data or secrets.
const DATA_FILES: &[&str] = &["chat.db", "chat.db-wal", "chat.db-shm", "jwt-secret"];

/// Keeps whatever chatd creates from now on private to its user: directories 0700, files 0600.
pub fn restrict_new_files() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// One line per path under `data_dir` that others may read or write.
pub fn loose_modes(data_dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The directory matters once it holds chatd's data (`.` may be anyone's working directory).
        let holds_data = DATA_FILES.iter().any(|f| data_dir.join(f).exists());
        let directory = holds_data.then(|| data_dir.to_path_buf());
        let paths = directory.into_iter().chain(DATA_FILES.iter().map(|f| data_dir.join(f)));
        for path in paths {
            let Ok(metadata) = std::fs::metadata(&path) else { continue };
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                let wanted = if metadata.is_dir() { "0700" } else { "0600" };
                problems.push(format!(
                    "{} has mode {mode:04o}: other users can read it; `chmod {wanted} {}`",
                    path.display(),
                    path.display()
                ));
            }
        }
    }
    problems
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn reports_readable_data_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(dir.path().join("chat.db"), "x").unwrap();
        std::fs::set_permissions(dir.path().join("chat.db"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        std::fs::set_permissions(dir.path().join("notes.txt"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(loose_modes(dir.path()).is_empty());
        std::fs::set_permissions(dir.path().join("chat.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let problems = loose_modes(dir.path());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[1].contains("chat.db has mode 0644"), "{problems:?}");
    }
}
