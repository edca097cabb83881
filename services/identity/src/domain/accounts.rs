//! The identity use cases: register, log in, rotate and revoke refresh
//! tokens, look up the current user. Each starts and ends its own transaction.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::clock::DefaultClock;
use governor::{DefaultKeyedRateLimiter, Quota};
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::IdentityConfig;
use crate::domain::backoff::{FailureBackoff, KnownAddresses};
use crate::domain::passwords::PasswordHasher;
use crate::domain::tokens::{SigningMaterial, new_refresh_token, refresh_token_hash};
use crate::error::Error;
use crate::model::User;
use crate::model::{Email, NewPassword, PasswordProblem, Username};
use crate::repo;
use crate::repo::users::NewUserRow;
use shop_platform::error::FieldRefusal as _;

/// What Register was asked for, after parsing.
pub struct Registration {
    pub username: Username,
    pub email: Email,
    pub password: NewPassword,
    pub is_admin: bool,
}

impl Registration {
    pub fn parse(
        username: &str,
        email: &str,
        password: &str,
        password_confirm: &str,
        is_admin: bool,
    ) -> Result<Self, Error> {
        let username = Username::parse(username).map_err(Error::field("username"))?;
        let email = Email::parse(email).map_err(Error::field("email"))?;
        let password =
            NewPassword::parse(password, password_confirm, &username, &email).map_err(|problem| match problem {
                PasswordProblem::Password(reason) => Error::field("password")(reason),
                PasswordProblem::Confirmation(reason) => Error::field("password_confirm")(reason),
            })?;
        Ok(Self { username, email, password, is_admin })
    }
}

pub struct IssuedTokens {
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
}

/// Keyed limiters; `None` where the configured rate is 0 (off). Logins are
/// metered per address by attempts, and per account by failures
/// ([`FailureBackoff`]), so that nobody but the guesser waits.
struct Limits {
    login_per_addr: Option<DefaultKeyedRateLimiter<IpAddr>>,
    login_failures_per_account_addr: FailureBackoff<(String, Option<IpAddr>)>,
    login_failures_per_account: FailureBackoff<String>,
    /// Where each account logged in from lately: never slowed by the
    /// account-wide count of others' failures.
    login_addresses: KnownAddresses<String, IpAddr>,
    register_per_addr: Option<DefaultKeyedRateLimiter<IpAddr>>,
    register_per_username: Option<DefaultKeyedRateLimiter<String>>,
}

fn per_minute<K: std::hash::Hash + Eq + Clone>(rate: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(rate).map(|rate| DefaultKeyedRateLimiter::keyed(Quota::per_minute(rate)))
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &Option<DefaultKeyedRateLimiter<K>>,
    key: &K,
    what: &'static str,
) -> Result<(), Error> {
    match limiter.as_ref().map(|limiter| limiter.check_key(key)) {
        Some(Err(not_until)) => {
            let retry_after = not_until.wait_time_from(governor::clock::Clock::now(&DefaultClock::default()));
            Err(Error::RateLimited { what, retry_after })
        }
        _ => Ok(()),
    }
}

/// Only names a user could have become limiter keys, so junk input cannot
/// grow the limiter's memory (validation refuses it, or login fails anyway).
fn check_username(
    limiter: &Option<DefaultKeyedRateLimiter<String>>,
    username: &str,
    what: &'static str,
) -> Result<(), Error> {
    if Username::parse(username).is_err() {
        return Ok(());
    }
    check(limiter, &username.to_lowercase(), what)
}

/// Failed logins older than this are forgotten.
const LOGIN_FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// An address an account logged in from counts as the owner's this long.
const KNOWN_ADDRESS_WINDOW: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Addresses remembered per account.
const KNOWN_ADDRESSES_PER_ACCOUNT: usize = 8;

#[derive(Clone)]
pub struct Accounts {
    pool: PgPool,
    hasher: PasswordHasher,
    signing: Arc<SigningMaterial>,
    limits: Arc<Limits>,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

/// Stores a new user with their password hashed: `Register`, and `shop
/// create-admin`, which needs no more of identity than this.
pub async fn create_user(pool: &PgPool, hasher: &PasswordHasher, registration: Registration) -> Result<User, Error> {
    let password_hash = hasher.hash(registration.password.expose()).await?;
    let mut conn = pool.acquire().await?;
    repo::users::insert(
        &mut conn,
        NewUserRow {
            username: registration.username.as_str(),
            username_skeleton: &registration.username.skeleton(),
            username_capital_skeleton: &registration.username.capital_skeleton(),
            email: registration.email.as_str(),
            password_hash: &password_hash,
            is_admin: registration.is_admin,
        },
    )
    .await
}

/// Gives every user created before skeletons were kept their name's
/// skeleton, so new names that look like theirs are refused too.
pub async fn keep_skeletons_of_older_users(pool: &PgPool) -> Result<(), Error> {
    let mut conn = pool.acquire().await?;
    let mut after_id = 0;
    loop {
        let batch = repo::users::without_skeleton(&mut conn, after_id, 1_000).await?;
        let Some((last, _)) = batch.last() else { return Ok(()) };
        after_id = *last;
        for (id, username) in batch {
            // A name from before today's rules (mixed scripts) still has a look.
            let skeleton = Username::skeleton_of(&username);
            let capital = Username::capital_skeleton_of(&username);
            if !repo::users::set_skeletons(&mut conn, id, &skeleton, &capital).await? {
                tracing::warn!(user_id = id, "an older user's name looks like another's; both keep their names");
            }
        }
    }
}

impl Accounts {
    pub async fn new(pool: PgPool, config: &IdentityConfig) -> anyhow::Result<Self> {
        let configured = shop_platform::config::secret(
            config.signing_key.as_ref(),
            config.signing_key_file.as_deref(),
            "SHOP_IDENTITY_SIGNING_KEY",
        )?;
        let signing = match &configured {
            Some(configured) => SigningMaterial::from_config(configured)?,
            None => load_or_create_signing_key(&pool).await?,
        };
        let hasher = PasswordHasher::new(&config.password_hash, config.hash_concurrency)?;
        let limits = Limits {
            login_per_addr: per_minute(config.login_per_addr_per_min),
            login_failures_per_account_addr: FailureBackoff::new(
                config.login_failures_per_account_addr,
                config.login_backoff_max(),
                LOGIN_FAILURE_WINDOW,
            ),
            login_failures_per_account: FailureBackoff::new(
                config.login_failures_per_account,
                config.login_backoff_max(),
                LOGIN_FAILURE_WINDOW,
            ),
            login_addresses: KnownAddresses::new(KNOWN_ADDRESSES_PER_ACCOUNT, KNOWN_ADDRESS_WINDOW),
            register_per_addr: per_minute(config.register_per_addr_per_min),
            register_per_username: per_minute(config.register_per_username_per_min),
        };
        Ok(Self {
            pool,
            hasher,
            signing: Arc::new(signing),
            limits: Arc::new(limits),
            access_ttl: config.access_token_ttl(),
            refresh_ttl: config.refresh_token_ttl(),
        })
    }

    /// Forgets limiter entries that have refilled, so memory stays bounded.
    pub fn forget_idle_rate_limits(&self) {
        let limits = &self.limits;
        for limiter in [&limits.login_per_addr, &limits.register_per_addr].into_iter().flatten() {
            limiter.retain_recent();
        }
        if let Some(limiter) = &limits.register_per_username {
            limiter.retain_recent();
        }
        let now = std::time::Instant::now();
        limits.login_failures_per_account_addr.forget_old(now);
        limits.login_failures_per_account.forget_old(now);
        limits.login_addresses.forget_old(now);
    }

    pub fn check_register_rate(&self, client: Option<IpAddr>, username: &str) -> Result<(), Error> {
        if let Some(client) = client {
            check(&self.limits.register_per_addr, &client, "registration")?;
        }
        check_username(&self.limits.register_per_username, username, "registration")
    }

    pub async fn register(&self, registration: Registration) -> Result<User, Error> {
        create_user(&self.pool, &self.hasher, registration).await
    }

    pub async fn login(&self, client: Option<IpAddr>, given: &str, password: &str) -> Result<IssuedTokens, Error> {
        let username = &Username::lookup_form(given);
        if let Some(client) = client {
            check(&self.limits.login_per_addr, &client, "login")?;
        }
        // A name no user could have (too long, a NUL byte, …) is never sent to
        // the database; it still pays for a hash, like any unknown user. Only
        // names a user could have are counted, so junk cannot grow memory.
        let could_exist = Username::could_be_stored(given) && password.chars().count() <= NewPassword::MAX_CHARS;
        let account = could_exist.then(|| username.to_lowercase());
        let now = std::time::Instant::now();
        if let Some(account) = &account {
            let limits = &self.limits;
            let key = (account.clone(), client);
            // Others' failures slow only an address that failed here too and
            // never logged in to this account: not the owner elsewhere.
            let known = client.is_some_and(|client| limits.login_addresses.knows(account, client, now));
            let slowed_by_account = !known && limits.login_failures_per_account_addr.has_failed(&key, now);
            let wait = [
                limits.login_failures_per_account_addr.wait(&key, now),
                slowed_by_account.then(|| limits.login_failures_per_account.wait(account, now)).flatten(),
            ]
            .into_iter()
            .flatten()
            .max();
            if let Some(retry_after) = wait {
                return Err(Error::RateLimited { what: "failed login", retry_after });
            }
        }
        let wrong = Error::Unauthenticated("invalid username or password");
        let found = if could_exist {
            let mut conn = self.pool.acquire().await?;
            match repo::users::find_credentials(&mut conn, username).await? {
                // A name registered before names were stored in NFKC form
                // is found as it was typed.
                None if given != username => repo::users::find_credentials(&mut conn, given).await?,
                found => found,
            }
        } else {
            None
        };
        let (user, stored_hash) = found.map_or((None, None), |(user, hash)| (Some(user), Some(hash)));
        let password = password.chars().take(NewPassword::MAX_CHARS).collect::<String>();
        if !self.hasher.verify(&password, stored_hash).await? {
            if let Some(account) = account {
                self.limits.login_failures_per_account_addr.failed((account.clone(), client), now);
                self.limits.login_failures_per_account.failed(account, now);
            }
            return Err(wrong);
        }
        if let Some(account) = account {
            self.limits.login_failures_per_account_addr.succeeded(&(account.clone(), client));
            if let Some(client) = client {
                self.limits.login_addresses.remember(account, client, now);
            }
        }
        let user = user.ok_or(wrong)?;
        let mut tx = self.pool.begin().await?;
        let family_id = Uuid::new_v4();
        repo::tokens::insert_family(&mut tx, family_id, user.id).await?;
        let issued = self.issue(&mut tx, family_id, &user).await?;
        tx.commit().await?;
        Ok(issued)
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<IssuedTokens, Error> {
        let hash = refresh_token_hash(refresh_token);
        let mut tx = self.pool.begin().await?;
        let presented = repo::tokens::lock_presented(&mut tx, &hash)
            .await?
            .ok_or(Error::Unauthenticated("invalid refresh token"))?;
        if presented.is_family_revoked {
            return Err(Error::Unauthenticated("refresh token revoked"));
        }
        if presented.is_used {
            // A used token seen again means it leaked: end every session of this login.
            repo::tokens::revoke_family(&mut tx, presented.family_id).await?;
            tx.commit().await?;
            tracing::warn!(user_id = presented.user_id, "refresh token reuse; family revoked");
            return Err(Error::Unauthenticated("refresh token already used; this login's sessions are revoked"));
        }
        if presented.expires_at <= Utc::now() {
            return Err(Error::Unauthenticated("refresh token expired"));
        }
        let user = repo::users::find(&mut tx, presented.user_id)
            .await?
            .ok_or(Error::Unauthenticated("invalid refresh token"))?;
        repo::tokens::mark_used(&mut tx, &hash).await?;
        let issued = self.issue(&mut tx, presented.family_id, &user).await?;
        tx.commit().await?;
        Ok(issued)
    }

    /// Revokes the family of any token identity issued, used or not.
    pub async fn logout(&self, refresh_token: &str) -> Result<(), Error> {
        let hash = refresh_token_hash(refresh_token);
        let mut tx = self.pool.begin().await?;
        let presented = repo::tokens::lock_presented(&mut tx, &hash)
            .await?
            .ok_or(Error::Unauthenticated("invalid refresh token"))?;
        repo::tokens::revoke_family(&mut tx, presented.family_id).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn user(&self, id: i64) -> Result<User, Error> {
        let mut conn = self.pool.acquire().await?;
        repo::users::find(&mut conn, id).await?.ok_or(Error::NotFound("user"))
    }

    /// Every key that may have signed a live token, the current one first.
    pub async fn public_keys(&self) -> Result<Vec<(String, String)>, Error> {
        let mut conn = self.pool.acquire().await?;
        let mut keys = vec![(self.signing.kid.clone(), self.signing.public_key_x.clone())];
        keys.extend(repo::keys::public_keys(&mut conn).await?.into_iter().filter(|(kid, _)| *kid != self.signing.kid));
        Ok(keys)
    }

    async fn issue(&self, conn: &mut sqlx::PgConnection, family_id: Uuid, user: &User) -> Result<IssuedTokens, Error> {
        let now = Utc::now();
        let (access_token, access_expires_at) =
            self.signing.sign_access_token(user.id, user.is_admin, now, self.access_ttl)?;
        let (refresh_token, refresh_hash) = new_refresh_token();
        let refresh_expires_at = now
            + chrono::Duration::from_std(self.refresh_ttl)
                .map_err(|_| Error::Internal("refresh ttl out of range".into()))?;
        repo::tokens::insert_token(conn, &refresh_hash, family_id, refresh_expires_at).await?;
        Ok(IssuedTokens { access_token, access_expires_at, refresh_token, refresh_expires_at })
    }
}

/// The newest stored key, or a new one generated and stored on first start.
async fn load_or_create_signing_key(pool: &PgPool) -> anyhow::Result<SigningMaterial> {
    let mut conn = pool.acquire().await?;
    if let Some((_, der)) = repo::keys::newest(&mut conn).await? {
        return Ok(SigningMaterial::from_pkcs8_der(&der)?);
    }
    let generated = SigningMaterial::generate()?;
    repo::keys::insert(&mut conn, &generated.kid, &generated.private_key_der, &generated.public_key_x).await?;
    tracing::info!(kid = %generated.kid, "generated a new access-token signing key");
    Ok(generated)
}
