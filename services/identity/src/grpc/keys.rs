use shop_proto::identity::signing_keys_service_server::SigningKeysService;
use shop_proto::identity::{ListSigningKeysRequest, ListSigningKeysResponse, SigningKey};
use tonic::{Request, Response, Status};

use crate::domain::accounts::Accounts;

/// Internal: guarded by the service-credential interceptor where it is mounted.
pub struct SigningKeysApi {
    accounts: Accounts,
}

impl SigningKeysApi {
    pub fn new(accounts: Accounts) -> Self {
        Self { accounts }
    }
}

#[tonic::async_trait]
impl SigningKeysService for SigningKeysApi {
    async fn list_signing_keys(
        &self,
        _request: Request<ListSigningKeysRequest>,
    ) -> Result<Response<ListSigningKeysResponse>, Status> {
        let keys = self
            .accounts
            .public_keys()
            .await?
            .into_iter()
            .map(|(kid, x)| SigningKey { kid, alg: "EdDSA".to_owned(), crv: "Ed25519".to_owned(), x })
            .collect();
        Ok(Response::new(ListSigningKeysResponse { keys }))
    }
}
