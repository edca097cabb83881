//! Argon2id hashing on the blocking pool, at most `concurrency` at once, so a
//! burst of logins queues here instead of starving the async workers that
//! serve every other RPC.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::config::PasswordHashConfig;
use crate::error::Error;

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// Verified against when the user does not exist, so an unknown username
    /// costs the same time as a wrong password.
    decoy_hash: Arc<str>,
}

impl PasswordHasher {
    pub fn new(config: &PasswordHashConfig, concurrency: usize) -> Result<Self, Error> {
        let params = Params::new(config.argon2_memory_kib, config.argon2_iterations, 1, None)
            .map_err(|error| Error::Internal(format!("argon2 params: {error}")))?;
        let concurrency = if concurrency == 0 {
            std::thread::available_parallelism().map_or(2, |cores| cores.get())
        } else {
            concurrency
        };
        let decoy_hash = hash_now(&params, "decoy password that no user has")?;
        Ok(Self { params, permits: Arc::new(Semaphore::new(concurrency)), decoy_hash: decoy_hash.into() })
    }

    pub async fn hash(&self, password: &str) -> Result<String, Error> {
        let params = self.params.clone();
        let password = password.to_owned();
        self.run_blocking(move || hash_now(&params, &password)).await?
    }

    /// Whether `password` matches `stored`; with no stored hash (unknown user)
    /// the decoy is checked and the answer is false.
    pub async fn verify(&self, password: &str, stored: Option<String>) -> Result<bool, Error> {
        let exists = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.decoy_hash.to_string());
        let password = password.to_owned();
        let matches = self
            .run_blocking(move || {
                PasswordHash::new(&stored)
                    .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
                    .unwrap_or(false)
            })
            .await?;
        Ok(exists && matches)
    }

    async fn run_blocking<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
        // The permit moves into the job: a caller that gives up (deadline,
        // disconnect) does not free a slot while its hash is still running.
        let permit =
            self.permits.clone().acquire_owned().await.map_err(|_| Error::Internal("password hasher closed".into()))?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let output = span.in_scope(work);
            drop(permit);
            output
        })
        .await
        .map_err(|error| Error::Internal(format!("password hashing task: {error}")))
    }
}

fn hash_now(params: &Params, password: &str) -> Result<String, Error> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| Error::Internal(format!("argon2: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_not_another() {
        let hasher =
            PasswordHasher::new(&PasswordHashConfig { argon2_memory_kib: 64, argon2_iterations: 1 }, 2).unwrap();
        let hash = hasher.hash("tulip-Orbit-42").await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(hasher.verify("tulip-Orbit-42", Some(hash.clone())).await.unwrap());
        assert!(!hasher.verify("tulip-orbit-42", Some(hash)).await.unwrap());
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies_even_with_the_decoy_password() {
        let hasher =
            PasswordHasher::new(&PasswordHashConfig { argon2_memory_kib: 64, argon2_iterations: 1 }, 2).unwrap();
        assert!(!hasher.verify("decoy password that no user has", None).await.unwrap());
    }
}
