//! Abuse limits: failed sign-ins per account and per client address, sign-ups per address,
//! messages per user (with a burst). Each limit is configurable and 0 turns it off.
use std::{
    hash::Hash,
    net::IpAddr,
    num::NonZeroU32,
    time::{Duration, Instant},
};

use dashmap::DashMap;
use governor::{DefaultKeyedRateLimiter, Quota, clock::Clock};

use super::UserId;
use crate::{
    config::RateLimitsConfig,
    error::{Error, Result},
    monitoring,
};

/// A limit on failures: attempts are refused only after the quota of failures is used up.
struct FailureLimit<K: Hash + Eq + Clone> {
    failures: DefaultKeyedRateLimiter<K>,
    blocked_until: DashMap<K, Instant>,
}

impl<K: Hash + Eq + Clone> FailureLimit<K> {
    fn new(quota: Quota) -> Self {
        Self { failures: DefaultKeyedRateLimiter::keyed(quota), blocked_until: DashMap::new() }
    }

    fn check(&self, key: &K) -> Result<()> {
        match self.blocked_until.get(key).map(|until| *until) {
            Some(until) if until > Instant::now() => Err(refused(until - Instant::now())),
            _ => Ok(()),
        }
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

pub struct Limits {
    signin_per_account: Option<FailureLimit<String>>,
    signin_per_address: Option<FailureLimit<IpAddr>>,
    signups_per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    messages_per_user: Option<DefaultKeyedRateLimiter<UserId>>,
    pub sockets_per_user: usize,
}

impl Limits {
    pub fn new(config: &RateLimitsConfig) -> Self {
        let quota = |per_minute: u32| NonZeroU32::new(per_minute).map(Quota::per_minute);
        Self {
            signin_per_account: quota(config.signin_failures_per_account_per_minute).map(FailureLimit::new),
            signin_per_address: quota(config.signin_failures_per_address_per_minute).map(FailureLimit::new),
            signups_per_address: NonZeroU32::new(config.signups_per_address_per_hour)
                .map(|n| DefaultKeyedRateLimiter::keyed(Quota::per_hour(n))),
            messages_per_user: NonZeroU32::new(config.messages_per_second).map(|rate| {
                let burst = NonZeroU32::new(config.message_burst).unwrap_or(rate).max(rate);
                DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
            }),
            sockets_per_user: config.sockets_per_user as usize,
        }
    }

    /// No limits at all.
    pub fn unlimited() -> Self {
        Self::new(&RateLimitsConfig::unlimited())
    }

    pub fn check_signin(&self, account: &str, address: IpAddr) -> Result<()> {
        if let Some(limit) = &self.signin_per_account {
            limit.check(&account.to_ascii_lowercase()).inspect_err(|_| count_refusal())?;
        }
        if let Some(limit) = &self.signin_per_address {
            limit.check(&address).inspect_err(|_| count_refusal())?;
        }
        Ok(())
    }

    pub fn record_signin_failure(&self, account: &str, address: IpAddr) {
        if let Some(limit) = &self.signin_per_account {
            limit.record_failure(&account.to_ascii_lowercase());
        }
        if let Some(limit) = &self.signin_per_address {
            limit.record_failure(&address);
        }
    }

    pub fn check_signup(&self, address: IpAddr) -> Result<()> {
        consume(self.signups_per_address.as_ref(), &address)
    }

    pub fn check_message(&self, user: UserId) -> Result<()> {
        consume(self.messages_per_user.as_ref(), &user)
    }

    /// Drops state about keys that have been quiet long enough to be back at full quota.
    pub fn forget_stale(&self) {
        self.signin_per_account.iter().for_each(FailureLimit::forget_stale);
        self.signin_per_address.iter().for_each(FailureLimit::forget_stale);
        self.signups_per_address.iter().for_each(|l| l.retain_recent());
        self.messages_per_user.iter().for_each(|l| l.retain_recent());
    }
}

fn consume<K: Hash + Eq + Clone>(limiter: Option<&DefaultKeyedRateLimiter<K>>, key: &K) -> Result<()> {
    let Some(limiter) = limiter else { return Ok(()) };
    limiter.check_key(key).map_err(|not_until| {
        count_refusal();
        refused(not_until.wait_time_from(governor::clock::DefaultClock::default().now()))
    })
}

fn count_refusal() {
    metrics::counter!(monitoring::RATE_LIMITED).increment(1);
}

fn refused(wait: Duration) -> Error {
    Error::RateLimited { retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RateLimitsConfig {
        RateLimitsConfig {
            signin_failures_per_account_per_minute: 3,
            signin_failures_per_address_per_minute: 5,
            signups_per_address_per_hour: 2,
            messages_per_second: 2,
            message_burst: 4,
            sockets_per_user: 3,
        }
    }

    #[test]
    fn sign_in_is_refused_after_the_allowed_failures_only() {
        let limits = Limits::new(&config());
        let address: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..3 {
            assert!(limits.check_signin("Alice", address).is_ok());
            limits.record_signin_failure("alice", address);
        }
        limits.record_signin_failure("alice", address);
        assert!(matches!(limits.check_signin("ALICE", address), Err(Error::RateLimited { retry_after_secs }) if retry_after_secs >= 1));
        assert!(limits.check_signin("bob", [10, 0, 0, 2].into()).is_ok(), "other accounts and addresses are unaffected");
    }

    #[test]
    fn messages_allow_a_burst_then_the_rate() {
        let limits = Limits::new(&config());
        for _ in 0..4 {
            assert!(limits.check_message(7).is_ok());
        }
        assert!(matches!(limits.check_message(7), Err(Error::RateLimited { .. })));
        assert!(limits.check_message(8).is_ok());
        let unlimited = Limits::unlimited();
        assert!((0..10_000).all(|_| unlimited.check_message(7).is_ok()));
    }

    #[test]
    fn sign_ups_are_counted_per_address() {
        let limits = Limits::new(&config());
        let address: IpAddr = [10, 0, 0, 1].into();
        assert!(limits.check_signup(address).is_ok());
        assert!(limits.check_signup(address).is_ok());
        assert!(limits.check_signup(address).is_err());
        assert!(limits.check_signup([10, 0, 0, 9].into()).is_ok());
    }
}
