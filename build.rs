//! Builds the Angular client into the binary.
//!
//! By default `cargo build` runs `npm ci` (only when `client/node_modules` is missing) and
//! `ng build` in `client/`, and rust-embed embeds the result from `$OUT_DIR/ui`. Escape hatches:
//! - `CHATD_UI_DIST=<dir>`: embed an already built bundle (the folder holding `index.html`),
//!   e.g. in a Docker stage that built the client with Node.
//! - `CHATD_SKIP_UI=1`: embed a one-page placeholder, for quick server-only builds.
//!
//! Cargo hides a build script's output while it runs, so npm's output is echoed (shown by
//! `cargo build -vv`, and by cargo when the build fails), and the time each step took and every
//! warning npm or Angular printed come back as cargo `warning:` lines once the script is done.
use std::{
    env, fs,
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::Instant,
};

const CLIENT_INPUTS: &[&str] =
    &["src", "public", "angular.json", "package.json", "package-lock.json", "tsconfig.json", "tsconfig.app.json"];

fn main() {
    println!("cargo:rerun-if-env-changed=CHATD_UI_DIST");
    println!("cargo:rerun-if-env-changed=CHATD_SKIP_UI");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let ui = out_dir.join("ui");
    let _ = fs::remove_dir_all(&ui);

    if let Some(dist) = env::var_os("CHATD_UI_DIST") {
        let dist = PathBuf::from(dist);
        println!("cargo:rerun-if-changed={}", dist.display());
        assert!(dist.join("index.html").is_file(), "CHATD_UI_DIST={} has no index.html", dist.display());
        copy_dir(&dist, &ui);
        return;
    }
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("client");
    if env::var("CHATD_SKIP_UI").is_ok_and(|v| v == "1") || !client.join("package.json").is_file() {
        write_placeholder(&ui);
        return;
    }
    for input in CLIENT_INPUTS {
        println!("cargo:rerun-if-changed=client/{input}");
    }
    if !client.join("node_modules").is_dir() {
        run(Command::new(npm()).args(["ci", "--no-audit", "--no-fund"]).current_dir(&client), "npm ci");
    }
    let built = out_dir.join("ng");
    let _ = fs::remove_dir_all(&built);
    run(
        Command::new(npm())
            .args(["exec", "--", "ng", "build", "--configuration", "production", "--output-path"])
            .arg(&built)
            .env("NG_CLI_ANALYTICS", "false")
            .current_dir(&client),
        "ng build",
    );
    let browser = built.join("browser");
    assert!(browser.join("index.html").is_file(), "ng build produced no {}", browser.join("index.html").display());
    copy_dir(&browser, &ui);
}

fn npm() -> &'static str {
    if cfg!(windows) { "npm.cmd" } else { "npm" }
}

fn run(command: &mut Command, what: &str) {
    let started = Instant::now();
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| {
        panic!(
            "{what}: cannot run npm ({e}). Building chatd needs Node.js and npm to build the web app; \
             set CHATD_SKIP_UI=1 for a server-only build, or CHATD_UI_DIST to a prebuilt bundle."
        )
    });
    let (lines, received) = mpsc::channel();
    let readers = [forward_lines(child.stdout.take(), lines.clone()), forward_lines(child.stderr.take(), lines)];
    let mut warnings = Vec::new();
    for line in received {
        // Both streams go to stderr: this script's stdout is read by cargo as instructions.
        eprintln!("{line}");
        if is_warning(&line) {
            warnings.push(line);
        }
    }
    readers.into_iter().for_each(|reader| reader.join().expect("output reader"));
    let status = child.wait().expect("wait for npm");
    assert!(status.success(), "{what} failed ({status}); see its output above");
    // Cargo repeats these lines on later builds until the script runs again; say so.
    println!("cargo:warning=web app: {what} took {} s (kept until client/ changes)", started.elapsed().as_secs());
    for warning in &warnings {
        println!("cargo:warning={what}: {}", warning.trim());
    }
    if !warnings.is_empty() {
        println!("cargo:warning={what}: `cargo build -vv` shows the full output");
    }
}

fn forward_lines(stream: Option<impl Read + Send + 'static>, lines: mpsc::Sender<String>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let Some(stream) = stream else { return };
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let _ = lines.send(strip_ansi(&line));
        }
    })
}

/// npm's `npm warn …` and Angular's `▲ [WARNING] …` / `Warning: …` lines.
fn is_warning(line: &str) -> bool {
    let line = line.trim_start();
    let lowered = line.to_ascii_lowercase();
    lowered.starts_with("npm warn") || line.contains("[WARNING]") || line.starts_with("Warning:")
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // A CSI sequence ends with a letter: `ESC [ 1 ; 3 3 m`.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn write_placeholder(ui: &Path) {
    fs::create_dir_all(ui).expect("create ui dir");
    fs::write(
        ui.join("index.html"),
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>chatd</title></head>\
         <body><h1>chatd</h1><p>This build has no web app (built with CHATD_SKIP_UI=1). \
         The API is at <a href=\"/api/docs\">/api/docs</a>.</p></body></html>\n",
    )
    .expect("write placeholder");
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create ui dir");
    for entry in fs::read_dir(from).expect("read bundle dir") {
        let entry = entry.expect("bundle entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy bundle file");
        }
    }
}
