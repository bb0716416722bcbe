//! Builds the Angular client into the binary.
//!
//! By default `cargo build` runs `npm ci` (only when `client/node_modules` is missing) and
//! `ng build` in `client/`, and rust-embed embeds the result from `$OUT_DIR/ui`. Escape hatches:
//! - `CHATD_UI_DIST=<dir>`: embed an already built bundle (the folder holding `index.html`),
//!   e.g. in a Docker stage that built the client with Node.
//! - `CHATD_SKIP_UI=1`: embed a one-page placeholder, for quick server-only builds.
use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
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
    let status = command.status().unwrap_or_else(|e| {
        panic!(
            "{what}: cannot run npm ({e}). Building chatd needs Node.js and npm to build the web app; \
             set CHATD_SKIP_UI=1 for a server-only build, or CHATD_UI_DIST to a prebuilt bundle."
        )
    });
    assert!(status.success(), "{what} failed ({status}); see its output above");
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
