//! The gateway's copy of identity's public signing keys. Fetched at start,
//! refreshed periodically and on demand when a token names an unknown key;
//! kept when identity is down, so the gateway keeps verifying tokens while
//! identity restarts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shop_platform::auth::TokenVerifier;
use shop_platform::transport::client::{CallContext, Peer};
use shop_proto::identity::ListSigningKeysRequest;
use shop_proto::identity::signing_keys_service_client::SigningKeysServiceClient;
use tokio::sync::Mutex;

/// On-demand refreshes are at most this frequent, so forged key ids cannot
/// turn the gateway into a flood against identity.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct KeyCache {
    pub verifier: TokenVerifier,
    identity: Peer,
    last_fetch: Arc<Mutex<Option<Instant>>>,
}

impl KeyCache {
    pub fn new(verifier: TokenVerifier, identity: Peer) -> Self {
        Self { verifier, identity, last_fetch: Arc::default() }
    }

    /// Fetches the keys, at most once per second: a caller that queued behind
    /// a fetch uses that fetch's result; one that comes within a second of the
    /// last fetch waits out the second and then fetches (so a token minted by
    /// an identity that just came up is not refused for a whole second).
    /// Returns whether this call fetched them successfully.
    pub async fn refresh(&self) -> bool {
        let asked = Instant::now();
        let mut last_fetch = self.last_fetch.lock().await;
        if let Some(at) = *last_fetch {
            if at >= asked {
                return false;
            }
            tokio::time::sleep(MIN_REFRESH_INTERVAL.saturating_sub(at.elapsed())).await;
        }
        let fetched = self.fetch().await;
        *last_fetch = Some(Instant::now());
        match fetched {
            Ok(count) => {
                tracing::debug!(keys = count, "signing keys refreshed");
                true
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot fetch signing keys from identity; keeping the ones we have");
                false
            }
        }
    }

    async fn fetch(&self) -> anyhow::Result<usize> {
        let context = CallContext::background(self.identity.timeout());
        let response = self
            .identity
            .call(&context, ListSigningKeysRequest {}, |channel, request| async move {
                SigningKeysServiceClient::new(channel).list_signing_keys(request).await
            })
            .await?;
        let keys = response.keys.into_iter().map(|key| (key.kid, key.x));
        self.verifier.set_keys(keys)
    }

    /// Keeps the keys fresh: quickly until the first fetch succeeds, then every `period`.
    pub fn spawn_refresher(self, period: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut retries = shop_platform::observability::restart::backoff();
            loop {
                let changed = self.refresh().await;
                let retry = retries.next().unwrap_or(period);
                let wait = match (self.verifier.has_keys(), changed) {
                    (true, true) => {
                        retries = shop_platform::observability::restart::backoff();
                        period
                    }
                    (true, false) => period.min(retry),
                    (false, _) => retry,
                };
                tokio::time::sleep(wait).await;
            }
        })
    }
}
