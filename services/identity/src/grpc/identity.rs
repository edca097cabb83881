use shop_platform::auth::ServiceCredentials;
use shop_platform::error::Invalid;
use shop_proto::identity::identity_service_server::IdentityService;
use shop_proto::identity::{
    GetCurrentUserRequest, LoginRequest, LogoutRequest, LogoutResponse, RefreshTokenRequest, RegisterRequest,
    RegisterResponse, TokenPair, User,
};
use tonic::{Request, Response, Status};

use crate::domain::accounts::{Accounts, IssuedTokens, Registration};
use crate::error::Error;
use crate::model;
use shop_platform::error::FieldRefusal as _;

use shop_platform::kernel::time::timestamp;

pub struct IdentityApi {
    accounts: Accounts,
    credentials: ServiceCredentials,
}

impl IdentityApi {
    pub fn new(accounts: Accounts, credentials: ServiceCredentials) -> Self {
        Self { accounts, credentials }
    }
}

impl From<model::User> for User {
    fn from(user: model::User) -> Self {
        User {
            id: user.id,
            username: user.username,
            email: user.email,
            is_admin: user.is_admin,
            created_at: Some(timestamp(user.created_at)),
        }
    }
}

impl From<IssuedTokens> for TokenPair {
    fn from(tokens: IssuedTokens) -> Self {
        TokenPair {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            token_type: "Bearer".to_owned(),
            access_expires_at: Some(timestamp(tokens.access_expires_at)),
            refresh_expires_at: Some(timestamp(tokens.refresh_expires_at)),
        }
    }
}

/// An empty or absurdly long refresh token is a malformed request, not a login failure.
fn refresh_token_field(token: &str) -> Result<&str, Error> {
    match token.len() {
        0 => Err(Error::field("refresh_token")(Invalid::new("is required"))),
        1..=512 => Ok(token),
        _ => Err(Error::field("refresh_token")(Invalid::new("is too long"))),
    }
}

#[tonic::async_trait]
impl IdentityService for IdentityApi {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<RegisterResponse>, Status> {
        let caller = self.credentials.caller(request.metadata())?;
        let refused_token = self.credentials.refused_token(request.metadata());
        let client = self.credentials.client_ip(&request);
        let req = request.into_inner();
        self.accounts.check_register_rate(client, &req.username)?;
        if req.is_admin && !caller.is_admin() {
            // A token was presented but refused (expired, say): that is the
            // client's problem to fix, not a lack of rights.
            if let Some(reason) = refused_token {
                return Err(Status::unauthenticated(reason));
            }
            return Err(Error::PermissionDenied("only an admin may create an admin").into());
        }
        let registration =
            Registration::parse(&req.username, &req.email, &req.password, &req.password_confirm, req.is_admin)?;
        let user = self.accounts.register(registration).await?;
        tracing::info!(user_id = user.id, is_admin = user.is_admin, "user registered");
        Ok(Response::new(RegisterResponse { user: Some(user.into()) }))
    }

    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<TokenPair>, Status> {
        let client = self.credentials.client_ip(&request);
        let req = request.into_inner();
        if req.username.is_empty() {
            return Err(Error::field("username")(Invalid::new("is required")).into());
        }
        if req.password.is_empty() {
            return Err(Error::field("password")(Invalid::new("is required")).into());
        }
        let tokens = self.accounts.login(client, &req.username, &req.password).await?;
        Ok(Response::new(tokens.into()))
    }

    async fn refresh_token(&self, request: Request<RefreshTokenRequest>) -> Result<Response<TokenPair>, Status> {
        let req = request.into_inner();
        let tokens = self.accounts.refresh(refresh_token_field(&req.refresh_token)?).await?;
        Ok(Response::new(tokens.into()))
    }

    async fn logout(&self, request: Request<LogoutRequest>) -> Result<Response<LogoutResponse>, Status> {
        let req = request.into_inner();
        self.accounts.logout(refresh_token_field(&req.refresh_token)?).await?;
        Ok(Response::new(LogoutResponse {}))
    }

    async fn get_current_user(&self, request: Request<GetCurrentUserRequest>) -> Result<Response<User>, Status> {
        let user_id = self.credentials.caller(request.metadata())?.require_user()?;
        tracing::Span::current().record("user_id", user_id);
        let user = self.accounts.user(user_id).await?;
        Ok(Response::new(user.into()))
    }
}
