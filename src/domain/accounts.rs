//! Accounts and sessions: sign-up, sign-in, sign-out, and turning a token back into a user.
//!
//! A token is a JWT (HS256, pinned) naming a session row; signing out revokes that row, so the
//! token stops working at once while the user's other devices stay signed in.
use std::{
    io::Write,
    net::IpAddr,
    path::Path,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use anyhow::Context;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation, decode, encode};
use rand::RngCore;
use sea_orm::TransactionTrait;
use serde::{Deserialize, Serialize};

use super::{
    CurrentUser, Password, UserId, UserSummary, Username, now_millis,
    rate_limits::{RateLimiter, SigninGate, count_refusal},
};
use crate::{
    config::Config,
    error::{Error, Result},
    store::{Store, entities::user, users},
};

const SECRET_FILE: &str = "jwt-secret";
/// Seconds to wait, in a `Retry-After`, when the password hashers are busy.
const BUSY_RETRY_SECS: u64 = 1;

/// A signed-in session handed to the client.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: u64,
    pub username: String,
}

/// What a token says: signed, so only the server can have written it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The username, for humans reading a token; the server trusts `sid` only.
    pub sub: String,
    /// The session row the token names; revoking it ends the token.
    pub sid: String,
    pub iat: u64,
    pub exp: u64,
}

const TOKEN_LEEWAY_SECS: u64 = 5;

/// The only way tokens are checked: HS256 and nothing else, `exp` and `sub` required, `nbf`
/// honoured when present, 5 s leeway.
pub fn token_validation() -> Validation {
    let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.leeway = TOKEN_LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation
}

/// The pure half of [`Accounts::authenticate`]: checks a token's algorithm, signature, expiry,
/// `nbf` and `iat` against `secret` and returns its claims, touching no database. The session it
/// names must still be looked up.
pub fn decode_claims(token: &str, secret: &[u8]) -> Result<Claims> {
    decode_with(token, &DecodingKey::from_secret(secret), &token_validation())
}

fn decode_with(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Claims> {
    let claims = decode::<Claims>(token, key, validation).map(|data| data.claims).map_err(|_| Error::Unauthorized)?;
    // A token from the future was not issued by this server's clock.
    if claims.iat > (now_millis() / 1000) as u64 + TOKEN_LEEWAY_SECS {
        return Err(Error::Unauthorized);
    }
    Ok(claims)
}

#[derive(Clone)]
pub struct Accounts {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    limits: Arc<RateLimiter>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    token_ttl_secs: u64,
    max_sessions_per_user: u32,
    /// `auth.hash_queue_per_core`: password checks that may wait per hashing thread; 0: no bound.
    hash_queue_per_core: usize,
}

impl Accounts {
    pub fn new(store: Store, config: &Config, limits: Arc<RateLimiter>) -> anyhow::Result<Self> {
        let secret = signing_secret(config)?;
        let validation = token_validation();
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                limits,
                encoding: EncodingKey::from_secret(&secret),
                decoding: DecodingKey::from_secret(&secret),
                validation,
                token_ttl_secs: config.auth.token_ttl_secs,
                max_sessions_per_user: config.auth.max_sessions_per_user,
                hash_queue_per_core: config.auth.hash_queue_per_core as usize,
            }),
        })
    }

    /// Starts computing the stand-in hash in the background, so that the first sign-in of an
    /// unknown name is not slower than a wrong password (which would tell the name does not
    /// exist) — without delaying start-up by a hash.
    pub fn warm_up(&self) {
        tokio::spawn(run_hashing(0, || {
            dummy_hash();
        }));
    }

    /// Self-service sign-up, limited per client address.
    pub async fn sign_up(&self, username: &str, password: &str, client: IpAddr) -> Result<user::Model> {
        self.inner.limits.check_signup(client)?;
        self.create_user(username, password, false).await
    }

    /// Creates an account; the CLI uses this for admins too.
    pub async fn create_user(&self, username: &str, password: &str, is_admin: bool) -> Result<user::Model> {
        let username = Username::parse(username)?;
        let password = Password::parse(password)?;
        // Fail fast on a taken name before spending ~25 ms of CPU on the hash.
        if users::find_by_username(&self.inner.store.read, username.as_str()).await?.is_some() {
            return Err(Error::UsernameTaken);
        }
        let hash = self.hash_password(password).await?;
        users::insert_user(&self.inner.store.write, username.as_str(), hash, is_admin).await
    }

    /// Same error, and the same work, for an unknown user and a wrong password. A disabled account
    /// answers `account_disabled` whatever the password, so it cannot be used to confirm one.
    pub async fn sign_in(&self, username: &str, password: &str, client: IpAddr) -> Result<IssuedToken> {
        let limits = &self.inner.limits;
        let gate = limits.admit_signin(username, client)?;
        let user = match Username::parse(username) {
            Ok(name) => users::find_by_username(&self.inner.store.read, name.as_str()).await?,
            Err(_) => None,
        };
        if let SigninGate::KnownAddressesOnly { retry_after_secs } = gate {
            let known = match &user {
                Some(user) => self.has_signed_in_from(UserId(user.id), client).await?,
                None => false,
            };
            if !known {
                count_refusal();
                return Err(Error::RateLimited { retry_after_secs });
            }
        }
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| dummy_hash().to_owned());
        let password_matches = self.verify_password(password.to_owned(), stored_hash).await?;
        let result = if password_matches { "ok" } else { "failed" };
        metrics::counter!(crate::monitoring::SIGN_INS, "result" => result).increment(1);
        if !password_matches {
            limits.record_signin_failure(username, client);
        }
        match user {
            Some(user) if user.disabled => Err(Error::AccountDisabled),
            Some(user) if password_matches => self.issue_token(&user, client).await,
            _ => Err(Error::InvalidCredentials),
        }
    }

    /// Whether `user` has a session made from `client`'s address (its network, for IPv6) within
    /// the token lifetime: the owner's usual places.
    async fn has_signed_in_from(&self, user: UserId, client: IpAddr) -> Result<bool> {
        let limits = &self.inner.limits;
        let since = now_millis() - (self.inner.token_ttl_secs as i64) * 1000;
        let addresses = users::session_addresses(&self.inner.store.read, user, since).await?;
        let client = limits.address_key(client);
        Ok(addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()).any(|a| limits.address_key(a) == client))
    }

    /// Makes a session and its token; past `auth.max_sessions_per_user` the oldest sessions are
    /// revoked (their sockets close), so sign-ins cannot pile up sessions without bound.
    async fn issue_token(&self, user: &user::Model, client: IpAddr) -> Result<IssuedToken> {
        let session_id = random_hex(16);
        let now_secs = (now_millis() / 1000) as u64;
        let exp = now_secs + self.inner.token_ttl_secs;
        // One statement on the write connection the message writer shares; finding the sessions
        // over the cap is a read, and revoking them (rare) the only other write.
        let store = &self.inner.store;
        users::insert_session(&store.write, &session_id, UserId(user.id), (exp * 1000) as i64, &client.to_string()).await?;
        let beyond = users::sessions_beyond(&store.read, UserId(user.id), self.inner.max_sessions_per_user).await?;
        if !beyond.is_empty() {
            let txn = store.write.begin().await?;
            for session in &beyond {
                users::revoke_session(&txn, UserId(user.id), session).await?;
            }
            txn.commit().await?;
        }
        let claims = Claims { sub: user.username.clone(), sid: session_id, iat: now_secs, exp };
        let access_token = encode(&Header::new(jsonwebtoken::Algorithm::HS256), &claims, &self.inner.encoding)
            .map_err(Error::internal)?;
        Ok(IssuedToken { access_token, expires_in: self.inner.token_ttl_secs, username: user.username.clone() })
    }

    /// The user behind a token, if its signature, expiry and session are all still good.
    pub async fn authenticate(&self, token: &str) -> Result<CurrentUser> {
        let claims = decode_with(token, &self.inner.decoding, &self.inner.validation)?;
        users::session_user(&self.inner.store.read, &claims.sid).await?.ok_or(Error::Unauthorized)
    }

    pub async fn sign_out(&self, user: &CurrentUser) -> Result<()> {
        users::revoke_session(&self.inner.store.write, user.id, &user.session_id).await
    }

    async fn hash_password(&self, password: Password) -> Result<String> {
        run_hashing(self.inner.hash_queue_per_core, move || {
            argon2id().hash_password(password.expose().as_bytes()).map(|hash| hash.to_string())
        })
        .await?
        .map_err(|e| Error::internal(anyhow::anyhow!("password hashing failed: {e}")))
    }

    async fn verify_password(&self, password: String, hash: String) -> Result<bool> {
        run_hashing(self.inner.hash_queue_per_core, move || argon2id().verify_password(password.as_bytes(), hash.as_str()).is_ok()).await
    }

    pub async fn list_users(&self) -> Result<Vec<user::Model>> {
        users::list_users(&self.inner.store.read).await
    }

    /// Sets a new password and signs the user out everywhere.
    pub async fn change_password(&self, username: &str, password: &str) -> Result<()> {
        let user = self.find_user(username).await?;
        let hash = self.hash_password(Password::parse(password)?).await?;
        let db = self.inner.store.write.begin().await?;
        users::set_password_hash(&db, UserId(user.id), hash).await?;
        users::revoke_all_sessions(&db, UserId(user.id)).await?;
        db.commit().await?;
        Ok(())
    }

    pub async fn set_admin(&self, username: &str, is_admin: bool) -> Result<()> {
        let user = self.find_user(username).await?;
        users::set_admin(&self.inner.store.write, UserId(user.id), is_admin).await
    }

    /// A disabled account cannot sign in, and its sessions end at once.
    pub async fn set_disabled(&self, username: &str, disabled: bool) -> Result<()> {
        let user = self.find_user(username).await?;
        let db = self.inner.store.write.begin().await?;
        users::set_disabled(&db, UserId(user.id), disabled).await?;
        if disabled {
            users::revoke_all_sessions(&db, UserId(user.id)).await?;
        }
        db.commit().await?;
        Ok(())
    }

    /// Removes the account, its sessions and the messages it sent.
    pub async fn remove_user(&self, username: &str) -> Result<()> {
        let user = self.find_user(username).await?;
        let db = self.inner.store.write.begin().await?;
        users::revoke_all_sessions(&db, UserId(user.id)).await?;
        users::delete_user(&db, UserId(user.id)).await?;
        db.commit().await?;
        Ok(())
    }

    pub async fn find_user(&self, username: &str) -> Result<user::Model> {
        let name = Username::parse(username).map_err(|_| Error::UserNotFound)?;
        users::find_by_username(&self.inner.store.read, name.as_str()).await?.ok_or(Error::UserNotFound)
    }

    pub async fn search(&self, query: &str, me: &CurrentUser, limit: u64) -> Result<Vec<UserSummary>> {
        users::search_users(&self.inner.store.read, &query.trim().to_ascii_lowercase(), me.id, limit).await
    }
}

fn argon2id() -> Argon2<'static> {
    // OWASP's recommendation for argon2id: 19 MiB, two passes, one lane.
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashing takes tens of milliseconds of CPU and 19 MiB of memory, so it runs on a few threads of
/// its own, one per core: a storm of sign-ins queues here instead of starving message delivery,
/// and the memory stays bounded (each thread's allocator keeps its one buffer, where a pool of
/// hundreds of blocking threads would each keep one).
///
/// When `per_thread` checks per thread already wait (`auth.hash_queue_per_core`; 0: no bound) the
/// work is refused at once (`Error::Busy`, 503 with `Retry-After`): answering in a millisecond
/// beats answering in ten seconds. One takes ~25 ms, so the default 16 is about 0.4 s of waiting.
async fn run_hashing<T: Send + 'static>(per_thread: usize, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    type Job = Box<dyn FnOnce() + Send>;
    static QUEUE: OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> = OnceLock::new();
    static QUEUED: AtomicUsize = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let waiting = QUEUED.fetch_add(1, Ordering::AcqRel);
    if per_thread > 0 && waiting >= threads * per_thread {
        QUEUED.fetch_sub(1, Ordering::AcqRel);
        metrics::counter!(crate::monitoring::RATE_LIMITED).increment(1);
        return Err(Error::Busy { retry_after_secs: BUSY_RETRY_SECS });
    }
    let queue = QUEUE.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel::<Job>();
        let receiver = Arc::new(std::sync::Mutex::new(receiver));
        for n in 0..threads {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("chatd-hash-{n}"))
                .spawn(move || {
                    loop {
                        let job = receiver.lock().expect("hash queue").recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .expect("spawn a hashing thread");
        }
        std::sync::Mutex::new(sender)
    });
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let output = work();
        QUEUED.fetch_sub(1, Ordering::AcqRel);
        let _ = reply.send(output);
    });
    queue.lock().expect("hash queue").send(job).map_err(|_| Error::Unavailable)?;
    answer.await.map_err(Error::internal)
}

/// A real hash of a random password, verified against when the user does not exist so that
/// an unknown name costs as much as a wrong password.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        argon2id().hash_password(random_hex(16).as_bytes()).map(|h| h.to_string()).expect("argon2 works")
    })
}

pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    hex::encode(buffer)
}

/// The configured secret, or the one generated on first start into the data directory (mode 0600).
fn signing_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    if !config.auth.jwt_secret.is_empty() {
        return Ok(config.auth.jwt_secret.as_bytes().to_vec());
    }
    let path = config.data_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(secret) if secret.trim().len() >= 32 => return Ok(secret.trim().as_bytes().to_vec()),
        Ok(_) => anyhow::bail!("{} is too short; delete it to generate a new one", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let secret = random_hex(32);
    write_private_file(&path, &secret).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated the token-signing secret (keep it with the database)");
    Ok(secret.into_bytes())
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use serde_json::{Value, json};

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn sign(algorithm: Algorithm, claims: &Value, secret: &[u8]) -> String {
        encode(&Header::new(algorithm), claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    #[test]
    fn only_unexpired_hs256_tokens_signed_with_the_secret_decode() {
        let now = (now_millis() / 1000) as u64;
        let claims = json!({"sub": "alice", "sid": "s-1", "iat": now, "exp": now + 3600});
        let good = sign(Algorithm::HS256, &claims, SECRET);
        assert_eq!(
            decode_claims(&good, SECRET).unwrap(),
            Claims { sub: "alice".into(), sid: "s-1".into(), iat: now, exp: now + 3600 }
        );

        let with = |change: &dyn Fn(&mut Value)| {
            let mut changed = claims.clone();
            change(&mut changed);
            changed
        };
        let header_none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = good.split('.').nth(1).unwrap();
        let tampered_payload = URL_SAFE_NO_PAD.encode(with(&|c| c["sid"] = json!("s-2")).to_string());
        let signature = good.split('.').nth(2).unwrap();
        let forged = [
            ("alg none", format!("{header_none}.{payload}.")),
            ("alg none with the real signature", format!("{header_none}.{payload}.{signature}")),
            ("HS512", sign(Algorithm::HS512, &claims, SECRET)),
            ("HS384", sign(Algorithm::HS384, &claims, SECRET)),
            ("another key", sign(Algorithm::HS256, &claims, b"another secret of thirty-two bytes!")),
            ("expired", sign(Algorithm::HS256, &with(&|c| c["exp"] = json!(now - 60)), SECRET)),
            ("string exp", sign(Algorithm::HS256, &with(&|c| c["exp"] = json!((now + 3600).to_string())), SECRET)),
            ("no exp", sign(Algorithm::HS256, &with(&|c| c.as_object_mut().unwrap().remove("exp").map(drop).unwrap()), SECRET)),
            ("no sub", sign(Algorithm::HS256, &with(&|c| c.as_object_mut().unwrap().remove("sub").map(drop).unwrap()), SECRET)),
            ("issued in the future", sign(Algorithm::HS256, &with(&|c| c["iat"] = json!(now + 3600)), SECRET)),
            ("not valid before later", sign(Algorithm::HS256, &with(&|c| c["nbf"] = json!(now + 3600)), SECRET)),
            ("tampered claims", format!("{}.{tampered_payload}.{signature}", good.split('.').next().unwrap())),
            ("truncated", good[..good.len() - 1].to_owned()),
            ("empty", String::new()),
            ("garbage", "not.a.token".to_owned()),
        ];
        for (what, token) in forged {
            assert!(decode_claims(&token, SECRET).is_err(), "{what} was accepted");
        }
    }
}
