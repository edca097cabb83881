//! Identity's settings, each an env var with a default (see README).

use shop_platform::config::ListenAddr;
use std::time::Duration;

use secrecy::SecretString;

#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Identity")]
pub struct IdentityConfig {
    /// Where the identity gRPC server listens. Port 0 lets the OS pick.
    #[arg(id = "identity-addr", long, env = "SHOP_IDENTITY_ADDR", default_value = "127.0.0.1:50052")]
    pub listen_addr: ListenAddr,
    /// Most Postgres connections identity's pool opens.
    #[arg(id = "identity-db-max-connections", long, env = "SHOP_IDENTITY_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
    /// Life of an access token, in seconds.
    #[arg(
        id = "identity-access-token-ttl-secs",
        long,
        env = "SHOP_IDENTITY_ACCESS_TOKEN_TTL_SECS",
        default_value_t = 300
    )]
    pub access_token_ttl_secs: u64,
    /// Life of a refresh token, in seconds.
    #[arg(
        id = "identity-refresh-token-ttl-secs",
        long,
        env = "SHOP_IDENTITY_REFRESH_TOKEN_TTL_SECS",
        default_value_t = 86_400
    )]
    pub refresh_token_ttl_secs: u64,
    /// Ed25519 private key that signs access tokens: PKCS#8 PEM, or base64 of
    /// PKCS#8 DER. Unset: one is generated on first start and kept in
    /// identity's schema.
    #[arg(id = "identity-signing-key", long, env = "SHOP_IDENTITY_SIGNING_KEY", hide_env_values = true)]
    pub signing_key: Option<SecretString>,
    /// A file holding the signing key (Docker and Kubernetes secrets), in
    /// place of SHOP_IDENTITY_SIGNING_KEY.
    #[arg(id = "identity-signing-key-file", long, env = "SHOP_IDENTITY_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<std::path::PathBuf>,
    /// Most password hashes computed at once (0 = one per CPU core). Hashing
    /// runs on the blocking pool, so other RPCs never wait behind it.
    #[arg(id = "identity-hash-concurrency", long, env = "SHOP_IDENTITY_HASH_CONCURRENCY", default_value_t = 0)]
    pub hash_concurrency: usize,
    #[command(flatten)]
    pub password_hash: PasswordHashConfig,
    /// Login attempts allowed per client address per minute (0 = no limit).
    #[arg(
        id = "identity-login-per-addr-per-min",
        long,
        env = "SHOP_IDENTITY_LOGIN_PER_ADDR_PER_MIN",
        default_value_t = 60
    )]
    pub login_per_addr_per_min: u32,
    /// Failed logins one client address may make on one account before
    /// each further failure doubles its wait (1 s, 2 s, 4 s, …); other
    /// addresses, the owner's among them, are not slowed (0 = off). Failures
    /// are forgotten after 15 quiet minutes or a success.
    #[arg(
        id = "identity-login-failures-per-account-addr",
        long,
        env = "SHOP_IDENTITY_LOGIN_FAILURES_PER_ACCOUNT_ADDR",
        default_value_t = 5
    )]
    pub login_failures_per_account_addr: u32,
    /// Failed logins on one account from all addresses together before each
    /// further failure doubles the wait for every address: the ceiling on
    /// guessing from many addresses (0 = off).
    #[arg(
        id = "identity-login-failures-per-account",
        long,
        env = "SHOP_IDENTITY_LOGIN_FAILURES_PER_ACCOUNT",
        default_value_t = 100
    )]
    pub login_failures_per_account: u32,
    /// Longest wait, in seconds, that failed logins can earn.
    #[arg(
        id = "identity-login-backoff-max-secs",
        long,
        env = "SHOP_IDENTITY_LOGIN_BACKOFF_MAX_SECS",
        default_value_t = 300
    )]
    pub login_backoff_max_secs: u64,
    /// Registrations allowed per client address per minute (0 = no limit).
    #[arg(
        id = "identity-register-per-addr-per-min",
        long,
        env = "SHOP_IDENTITY_REGISTER_PER_ADDR_PER_MIN",
        default_value_t = 30
    )]
    pub register_per_addr_per_min: u32,
    /// Registration attempts allowed per requested username per minute (0 = no limit).
    #[arg(
        id = "identity-register-per-username-per-min",
        long,
        env = "SHOP_IDENTITY_REGISTER_PER_USERNAME_PER_MIN",
        default_value_t = 10
    )]
    pub register_per_username_per_min: u32,
}

/// How passwords are hashed: what identity and `shop create-admin` share.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Identity: password hashing")]
pub struct PasswordHashConfig {
    /// Argon2id memory cost in KiB (OWASP minimum: 19456).
    #[arg(id = "identity-argon2-memory-kib", long, env = "SHOP_IDENTITY_ARGON2_MEMORY_KIB", default_value_t = 19_456)]
    pub argon2_memory_kib: u32,
    /// Argon2id passes over memory.
    #[arg(id = "identity-argon2-iterations", long, env = "SHOP_IDENTITY_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,
}

impl PasswordHashConfig {
    /// Refuses costs argon2 cannot work with, naming the env var.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.argon2_memory_kib >= 8, "SHOP_IDENTITY_ARGON2_MEMORY_KIB must be at least 8");
        anyhow::ensure!(self.argon2_iterations >= 1, "SHOP_IDENTITY_ARGON2_ITERATIONS must be at least 1");
        Ok(())
    }
}

impl IdentityConfig {
    pub fn access_token_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl_secs)
    }

    pub fn login_backoff_max(&self) -> Duration {
        Duration::from_secs(self.login_backoff_max_secs.max(1))
    }

    pub fn refresh_token_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_token_ttl_secs)
    }

    /// Refuses values that cannot work, naming the env var, before any port is bound.
    pub fn validate(&self) -> anyhow::Result<()> {
        const TEN_YEARS_SECS: u64 = 10 * 366 * 24 * 3600;
        anyhow::ensure!(
            (1..=TEN_YEARS_SECS).contains(&self.access_token_ttl_secs),
            "SHOP_IDENTITY_ACCESS_TOKEN_TTL_SECS must be between 1 and {TEN_YEARS_SECS}"
        );
        anyhow::ensure!(
            (1..=TEN_YEARS_SECS).contains(&self.refresh_token_ttl_secs),
            "SHOP_IDENTITY_REFRESH_TOKEN_TTL_SECS must be between 1 and {TEN_YEARS_SECS}"
        );
        self.password_hash.validate()
    }
}
