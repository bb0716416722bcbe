//! Abuse limits: sign-in attempts and failures, sign-ups, messages, typing and `sync` frames.
//! Each configurable limit can be switched off with 0.
//!
//! Sign-in failures are counted per account *and address*, so that a stranger guessing alice's
//! password from one address blocks only that address. Guessing spread over many addresses is
//! caught by an account-wide count; past it the account accepts sign-ins only from addresses it has
//! signed in from before, so the owner still gets in while the guessers wait.
use std::{
    hash::Hash,
    net::IpAddr,
    num::NonZeroU32,
    time::{Duration, Instant},
};

use dashmap::DashMap;
use governor::{DefaultKeyedRateLimiter, Quota, clock::Clock};

use super::{UserId, Username};
use crate::{
    config::RateLimitsConfig,
    error::{Error, Result},
    monitoring,
};

/// Typing frames a user may send per second (and at once); more are dropped without a word.
/// A client sends one per conversation every few seconds while someone types.
const TYPING_PER_SECOND: u32 = 2;
const TYPING_BURST: u32 = 6;

/// A limit on failures: attempts are refused only after the quota of failures is used up.
struct FailureLimit<K: Hash + Eq + Clone> {
    failures: DefaultKeyedRateLimiter<K>,
    blocked_until: DashMap<K, Instant>,
}

impl<K: Hash + Eq + Clone> FailureLimit<K> {
    fn new(quota: Quota) -> Self {
        Self { failures: DefaultKeyedRateLimiter::keyed(quota), blocked_until: DashMap::new() }
    }

    fn blocked(&self, key: &K) -> Option<Duration> {
        let until = *self.blocked_until.get(key)?;
        let now = Instant::now();
        (until > now).then(|| until - now)
    }

    fn record_failure(&self, key: &K) {
        if let Err(not_until) = self.failures.check_key(key) {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            self.blocked_until.insert(key.clone(), Instant::now() + wait);
        }
    }

    fn forget_stale(&self) {
        self.failures.retain_recent();
        let now = Instant::now();
        self.blocked_until.retain(|_, until| *until > now);
    }
}

/// Who may go on to have their password checked.
#[derive(Debug, PartialEq, Eq)]
pub enum SigninGate {
    Open,
    /// The account is being guessed at from many addresses: only an address it has signed in from
    /// before may try.
    KnownAddressesOnly { retry_after_secs: u64 },
}

pub struct RateLimiter {
    signin_failures_per_pair: Option<FailureLimit<(String, IpAddr)>>,
    signin_failures_per_account: Option<FailureLimit<String>>,
    signin_failures_per_address: Option<FailureLimit<IpAddr>>,
    signins_per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    signins_per_account: Option<DefaultKeyedRateLimiter<String>>,
    signups_per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    messages_per_user: Option<DefaultKeyedRateLimiter<UserId>>,
    syncs_per_user: Option<DefaultKeyedRateLimiter<UserId>>,
    typing_per_user: DefaultKeyedRateLimiter<UserId>,
    pub sockets_per_user: usize,
    pub connections_per_address: usize,
    ipv6_prefix: u8,
    share_failures: std::sync::OnceLock<Box<dyn Fn(&str, IpAddr) + Send + Sync>>,
}

fn per_minute(n: u32) -> Option<Quota> {
    NonZeroU32::new(n).map(Quota::per_minute)
}

fn keyed<K: Hash + Eq + Clone>(quota: Option<Quota>) -> Option<DefaultKeyedRateLimiter<K>> {
    quota.map(DefaultKeyedRateLimiter::keyed)
}

impl RateLimiter {
    pub fn new(config: &RateLimitsConfig) -> Self {
        let nonzero = |n: u32| NonZeroU32::new(n).expect("a positive constant");
        Self {
            signin_failures_per_pair: per_minute(config.signin_failures_per_account_per_minute).map(FailureLimit::new),
            signin_failures_per_account: NonZeroU32::new(config.signin_failures_per_account_per_hour)
                .map(|n| FailureLimit::new(Quota::per_hour(n))),
            signin_failures_per_address: per_minute(config.signin_failures_per_address_per_minute).map(FailureLimit::new),
            signins_per_address: keyed(per_minute(config.signins_per_address_per_minute)),
            signins_per_account: keyed(per_minute(config.signins_per_account_per_minute)),
            signups_per_address: keyed(NonZeroU32::new(config.signups_per_address_per_hour).map(Quota::per_hour)),
            messages_per_user: NonZeroU32::new(config.messages_per_second).map(|rate| {
                let burst = NonZeroU32::new(config.message_burst).unwrap_or(rate).max(rate);
                DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
            }),
            syncs_per_user: keyed(per_minute(config.syncs_per_user_per_minute)),
            typing_per_user: DefaultKeyedRateLimiter::keyed(
                Quota::per_second(nonzero(TYPING_PER_SECOND)).allow_burst(nonzero(TYPING_BURST)),
            ),
            sockets_per_user: config.sockets_per_user as usize,
            connections_per_address: config.connections_per_address as usize,
            ipv6_prefix: config.ipv6_prefix,
            share_failures: std::sync::OnceLock::new(),
        }
    }

    /// No limits at all.
    pub fn unlimited() -> Self {
        Self::new(&RateLimitsConfig::unlimited())
    }

    /// The key a client address is counted under: IPv6 addresses by their network
    /// (`rate_limits.ipv6_prefix`), since one host usually holds a whole /64.
    pub fn address_key(&self, address: IpAddr) -> IpAddr {
        match address.to_canonical() {
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.ipv6_prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
            v4 => v4,
        }
    }

    /// Before a password is checked. `account` is what the client typed: limits are keyed on the
    /// canonical username, so `" Alice"` and `"alice\u{a0}"` count as alice.
    pub fn admit_signin(&self, account: &str, address: IpAddr) -> Result<SigninGate> {
        let (account, address) = (account_key(account), self.address_key(address));
        consume(self.signins_per_address.as_ref(), &address)?;
        let blocked = [
            self.signin_failures_per_address.as_ref().and_then(|l| l.blocked(&address)),
            self.signin_failures_per_pair.as_ref().and_then(|l| l.blocked(&(account.clone(), address))),
        ];
        if let Some(wait) = blocked.into_iter().flatten().max() {
            count_refusal();
            return Err(refused(wait));
        }
        let guessed_at = self.signin_failures_per_account.as_ref().and_then(|l| l.blocked(&account));
        let crowded = consume(self.signins_per_account.as_ref(), &account).err();
        match (guessed_at, crowded) {
            (Some(wait), _) => Ok(SigninGate::KnownAddressesOnly { retry_after_secs: seconds(wait) }),
            (None, Some(Error::RateLimited { retry_after_secs })) => Ok(SigninGate::KnownAddressesOnly { retry_after_secs }),
            _ => Ok(SigninGate::Open),
        }
    }

    pub fn record_signin_failure(&self, account: &str, address: IpAddr) {
        self.count_signin_failure(account, address);
        if let Some(share) = self.share_failures.get() {
            share(account, address);
        }
    }

    /// Hands every wrong password from now on to `share` too (the other nodes of a cluster), so
    /// that a guesser cannot multiply the limits by the number of nodes.
    pub fn share_signin_failures(&self, share: impl Fn(&str, IpAddr) + Send + Sync + 'static) {
        let _ = self.share_failures.set(Box::new(share));
    }

    /// Counts a wrong password, given here or on another node.
    pub fn count_signin_failure(&self, account: &str, address: IpAddr) {
        let (account, address) = (account_key(account), self.address_key(address));
        if let Some(limit) = &self.signin_failures_per_address {
            limit.record_failure(&address);
        }
        if let Some(limit) = &self.signin_failures_per_pair {
            limit.record_failure(&(account.clone(), address));
        }
        if let Some(limit) = &self.signin_failures_per_account {
            limit.record_failure(&account);
        }
    }

    pub fn check_signup(&self, address: IpAddr) -> Result<()> {
        consume(self.signups_per_address.as_ref(), &self.address_key(address))
    }

    pub fn check_message(&self, user: UserId) -> Result<()> {
        consume(self.messages_per_user.as_ref(), &user)
    }

    pub fn check_sync(&self, user: UserId) -> Result<()> {
        consume(self.syncs_per_user.as_ref(), &user)
    }

    /// Whether a typing frame may go out; over the rate it is dropped silently.
    pub fn allow_typing(&self, user: UserId) -> bool {
        self.typing_per_user.check_key(&user).is_ok()
    }

    /// Drops state about keys that have been quiet long enough to be back at full quota.
    pub fn forget_stale(&self) {
        self.signin_failures_per_pair.iter().for_each(FailureLimit::forget_stale);
        self.signin_failures_per_account.iter().for_each(FailureLimit::forget_stale);
        self.signin_failures_per_address.iter().for_each(FailureLimit::forget_stale);
        for limiter in [&self.signins_per_address, &self.signups_per_address].into_iter().flatten() {
            limiter.retain_recent();
        }
        self.signins_per_account.iter().for_each(|l| l.retain_recent());
        for limiter in [&self.messages_per_user, &self.syncs_per_user].into_iter().flatten() {
            limiter.retain_recent();
        }
        self.typing_per_user.retain_recent();
    }
}

/// The canonical username when `raw` is one, else `raw` as typed (no account has that name).
fn account_key(raw: &str) -> String {
    Username::parse(raw).map(|name| name.as_str().to_owned()).unwrap_or_else(|_| raw.to_owned())
}

fn consume<K: Hash + Eq + Clone>(limiter: Option<&DefaultKeyedRateLimiter<K>>, key: &K) -> Result<()> {
    let Some(limiter) = limiter else { return Ok(()) };
    limiter.check_key(key).map_err(|not_until| {
        count_refusal();
        refused(not_until.wait_time_from(governor::clock::DefaultClock::default().now()))
    })
}

pub fn count_refusal() {
    metrics::counter!(monitoring::RATE_LIMITED).increment(1);
}

fn seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

fn refused(wait: Duration) -> Error {
    Error::RateLimited { retry_after_secs: seconds(wait) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RateLimitsConfig {
        RateLimitsConfig {
            signin_failures_per_account_per_minute: 3,
            signin_failures_per_account_per_hour: 6,
            signin_failures_per_address_per_minute: 5,
            signins_per_address_per_minute: 100,
            signins_per_account_per_minute: 100,
            signups_per_address_per_hour: 2,
            messages_per_second: 2,
            message_burst: 4,
            sockets_per_user: 3,
            syncs_per_user_per_minute: 2,
            connections_per_address: 4,
            ipv6_prefix: 64,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn failures_block_the_guessing_address_for_that_account_only() {
        let limits = RateLimiter::new(&config());
        let guesser = ip("10.0.0.1");
        for _ in 0..4 {
            assert_eq!(limits.admit_signin("alice", guesser).unwrap(), SigninGate::Open);
            limits.record_signin_failure("alice", guesser);
        }
        assert!(matches!(limits.admit_signin("ALICE", guesser), Err(Error::RateLimited { retry_after_secs }) if retry_after_secs >= 1));
        assert!(limits.admit_signin(" alice\u{a0}", guesser).is_err(), "spellings of alice count as alice");
        assert_eq!(limits.admit_signin("alice", ip("10.0.0.2")).unwrap(), SigninGate::Open, "the owner elsewhere is not locked out");
        assert_eq!(limits.admit_signin("bob", guesser).unwrap(), SigninGate::Open);
    }

    #[test]
    fn guessing_from_many_addresses_leaves_only_known_addresses() {
        let limits = RateLimiter::new(&config());
        for n in 0..7 {
            limits.record_signin_failure("alice", ip(&format!("10.0.1.{n}")));
        }
        assert!(matches!(limits.admit_signin("alice", ip("10.0.2.1")), Ok(SigninGate::KnownAddressesOnly { .. })));
        assert_eq!(limits.admit_signin("bob", ip("10.0.2.1")).unwrap(), SigninGate::Open);
    }

    #[test]
    fn ipv6_addresses_count_per_network() {
        let limits = RateLimiter::new(&config());
        assert_eq!(limits.address_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert!(limits.check_signup(ip("2001:db8:1:2::1")).is_ok());
        assert!(limits.check_signup(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")).is_ok());
        assert!(limits.check_signup(ip("2001:db8:1:2::99")).is_err(), "one /64 is one client");
        assert!(limits.check_signup(ip("2001:db8:1:3::1")).is_ok());
        assert_eq!(limits.address_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn messages_allow_a_burst_then_the_rate() {
        let limits = RateLimiter::new(&config());
        for _ in 0..4 {
            assert!(limits.check_message(UserId(7)).is_ok());
        }
        assert!(matches!(limits.check_message(UserId(7)), Err(Error::RateLimited { .. })));
        assert!(limits.check_message(UserId(8)).is_ok());
        let unlimited = RateLimiter::unlimited();
        assert!((0..10_000).all(|_| unlimited.check_message(UserId(7)).is_ok()));
    }

    #[test]
    fn typing_and_syncs_are_metered_per_user() {
        let limits = RateLimiter::new(&config());
        let allowed = (0..1000).filter(|_| limits.allow_typing(UserId(1))).count();
        assert!((TYPING_BURST as usize..TYPING_BURST as usize + 3).contains(&allowed), "{allowed}");
        assert!(limits.allow_typing(UserId(2)));
        assert!(limits.check_sync(UserId(1)).is_ok() && limits.check_sync(UserId(1)).is_ok());
        assert!(limits.check_sync(UserId(1)).is_err());
    }

    #[test]
    fn sign_ups_are_counted_per_address() {
        let limits = RateLimiter::new(&config());
        let address: IpAddr = [10, 0, 0, 1].into();
        assert!(limits.check_signup(address).is_ok());
        assert!(limits.check_signup(address).is_ok());
        assert!(limits.check_signup(address).is_err());
        assert!(limits.check_signup([10, 0, 0, 9].into()).is_ok());
    }
}
