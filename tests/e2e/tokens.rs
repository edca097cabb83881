//! Access-token checks at the gateway and refresh-token rotation at identity.
//! Bad tokens are forged with identity's own stored key, so each test changes
//! exactly one thing about an otherwise valid token.

use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use shop_proto::identity::{GetCurrentUserRequest, LogoutRequest, RefreshTokenRequest};
use tonic::Code;

use crate::harness::{TestShop, assert_invalid_field, bearer};

/// Signs `claims` with identity's current key (read from its schema).
async fn forge(shop: &TestShop, claims: serde_json::Value) -> String {
    let (kid, der): (String, Vec<u8>) =
        sqlx::query_as("SELECT kid, private_key_der FROM identity.signing_keys ORDER BY created_at DESC LIMIT 1")
            .fetch_one(&shop.db().await)
            .await
            .expect("signing key");
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid);
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&der)).expect("sign")
}

fn claims(user_id: i64, change: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "sub": user_id.to_string(), "iss": "shop-identity", "aud": "shop",
        "iat": now, "exp": now + 300, "jti": "t", "typ": "access", "adm": false,
    });
    change(&mut claims);
    claims
}

async fn current_user_code(shop: &TestShop, token: &str) -> Code {
    match shop.identity().get_current_user(bearer(GetCurrentUserRequest {}, token)).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn a_well_forged_token_is_accepted_so_the_checks_below_are_meaningful() {
    let shop = TestShop::start().await;
    let user = shop.register("ann").await;
    let token = forge(&shop, claims(user.id, |_| {})).await;
    assert_eq!(current_user_code(&shop, &token).await, Code::Ok);
}

#[tokio::test]
async fn expired_wrong_type_issuer_or_audience_tokens_are_unauthenticated() {
    let shop = TestShop::start().await;
    let user = shop.register("ann").await;
    let past = chrono::Utc::now().timestamp() - 10;
    let variants: Vec<(&str, serde_json::Value)> = vec![
        ("expired", claims(user.id, |c| c["exp"] = json!(past))),
        ("refresh typ", claims(user.id, |c| c["typ"] = json!("refresh"))),
        (
            "no typ",
            claims(user.id, |c| {
                c.as_object_mut().unwrap().remove("typ");
            }),
        ),
        ("issuer", claims(user.id, |c| c["iss"] = json!("someone-else"))),
        ("audience", claims(user.id, |c| c["aud"] = json!("other-app"))),
        (
            "no exp",
            claims(user.id, |c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
    ];
    for (what, claims) in variants {
        let token = forge(&shop, claims).await;
        assert_eq!(current_user_code(&shop, &token).await, Code::Unauthenticated, "{what}");
    }
}

#[tokio::test]
async fn a_token_not_valid_yet_is_unauthenticated_and_one_valid_since_a_moment_works() {
    let shop = TestShop::start().await;
    let user = shop.register("ann").await;
    let now = chrono::Utc::now().timestamp();
    let future = forge(&shop, claims(user.id, |c| c["nbf"] = json!(now + 3600))).await;
    let status = shop.identity().get_current_user(bearer(GetCurrentUserRequest {}, &future)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("not valid yet"), "{status:?}");
    let past = forge(&shop, claims(user.id, |c| c["nbf"] = json!(now - 10))).await;
    assert_eq!(current_user_code(&shop, &past).await, Code::Ok);
}

#[tokio::test]
async fn a_token_that_lapses_stops_working() {
    let shop = TestShop::start_with(|config| config.identity.access_token_ttl_secs = 1).await;
    shop.register("ann").await;
    let token = shop.login("ann").await.access_token;
    assert_eq!(current_user_code(&shop, &token).await, Code::Ok);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(current_user_code(&shop, &token).await, Code::Unauthenticated);
}

#[tokio::test]
async fn tampered_tokens_are_unauthenticated() {
    let shop = TestShop::start().await;
    shop.register("ann").await;
    let admin_id = shop.register("bob").await.id;
    let token = shop.login("ann").await.access_token;
    let parts: Vec<&str> = token.split('.').collect();
    // Same signature, payload changed to another user who is an admin.
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut payload: serde_json::Value = serde_json::from_slice(&engine.decode(parts[1]).unwrap()).unwrap();
    payload["sub"] = json!(admin_id.to_string());
    payload["adm"] = json!(true);
    let swapped = format!("{}.{}.{}", parts[0], engine.encode(payload.to_string()), parts[2]);
    // A flipped signature character.
    let mut signature = parts[2].to_owned();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    signature.replace_range(0..1, &flipped.to_string());
    let resigned = format!("{}.{}.{signature}", parts[0], parts[1]);
    // alg none.
    let none_header = engine.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{none_header}.{}.", parts[1]);
    for (what, bad) in
        [("payload", swapped), ("signature", resigned), ("alg none", unsigned), ("garbage", "abc".to_owned())]
    {
        assert_eq!(current_user_code(&shop, &bad).await, Code::Unauthenticated, "{what}");
    }
    assert_eq!(current_user_code(&shop, &token).await, Code::Ok);
}

#[tokio::test]
async fn a_stale_token_does_not_block_public_calls() {
    let shop = TestShop::start_with(|config| config.identity.access_token_ttl_secs = 1).await;
    shop.register("ann").await;
    let pair = shop.login("ann").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // The expired access token rides along, as many clients send it always.
    let request = bearer(RefreshTokenRequest { refresh_token: pair.refresh_token }, &pair.access_token);
    let fresh = shop.identity().refresh_token(request).await.unwrap().into_inner();
    assert_eq!(current_user_code(&shop, &fresh.access_token).await, Code::Ok);
    let garbage = bearer(
        shop_proto::identity::LoginRequest { username: "ann".into(), password: crate::harness::PASSWORD.into() },
        "garbage",
    );
    shop.identity().login(garbage).await.unwrap();
    // But a stale token is no admin: is_admin is still refused, as a token
    // problem for the client to fix.
    let mut request = crate::harness::registration("eve");
    request.is_admin = true;
    let status = shop.identity().register(bearer(request, "garbage")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_malformed_authorization_header_is_unauthenticated() {
    let shop = TestShop::start().await;
    let mut request = tonic::Request::new(GetCurrentUserRequest {});
    request.metadata_mut().insert("authorization", "Basic YW5uOnB3".parse().unwrap());
    assert_eq!(shop.identity().get_current_user(request).await.unwrap_err().code(), Code::Unauthenticated);
}

#[tokio::test]
async fn refresh_rotates_and_the_old_token_stops_working() {
    let shop = TestShop::start().await;
    shop.register("ann").await;
    let first = shop.login("ann").await;
    let second = shop
        .identity()
        .refresh_token(RefreshTokenRequest { refresh_token: first.refresh_token.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(current_user_code(&shop, &second.access_token).await, Code::Ok);
    // Refreshing again with the newest token works.
    let third = shop
        .identity()
        .refresh_token(RefreshTokenRequest { refresh_token: second.refresh_token.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(current_user_code(&shop, &third.access_token).await, Code::Ok);
    // The first token was rotated away: it no longer works.
    let old = shop.identity().refresh_token(RefreshTokenRequest { refresh_token: first.refresh_token }).await;
    assert_eq!(old.unwrap_err().code(), Code::Unauthenticated);
}

#[tokio::test]
async fn reusing_a_refresh_token_revokes_its_whole_family_but_not_other_logins() {
    let shop = TestShop::start().await;
    shop.register("ann").await;
    let stolen = shop.login("ann").await;
    let other_device = shop.login("ann").await;
    let rotated = shop
        .identity()
        .refresh_token(RefreshTokenRequest { refresh_token: stolen.refresh_token.clone() })
        .await
        .unwrap()
        .into_inner();
    let reuse =
        shop.identity().refresh_token(RefreshTokenRequest { refresh_token: stolen.refresh_token }).await.unwrap_err();
    assert_eq!(reuse.code(), Code::Unauthenticated);
    // The legitimate newest token of that family is dead too.
    let descendant =
        shop.identity().refresh_token(RefreshTokenRequest { refresh_token: rotated.refresh_token }).await.unwrap_err();
    assert_eq!(descendant.code(), Code::Unauthenticated);
    // Another login's family lives on.
    shop.identity().refresh_token(RefreshTokenRequest { refresh_token: other_device.refresh_token }).await.unwrap();
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_let_at_most_one_through() {
    let shop = TestShop::start().await;
    shop.register("ann").await;
    let pair = shop.login("ann").await;
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let mut client = shop.identity();
        let refresh_token = pair.refresh_token.clone();
        attempts.spawn(async move { client.refresh_token(RefreshTokenRequest { refresh_token }).await });
    }
    let results = attempts.join_all().await;
    let successes = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(successes, 1, "exactly the first refresh wins");
    for status in results.iter().filter_map(|result| result.as_ref().err()) {
        assert_eq!(status.code(), Code::Unauthenticated);
    }
}

#[tokio::test]
async fn logout_revokes_the_family() {
    let shop = TestShop::start().await;
    shop.register("ann").await;
    let pair = shop.login("ann").await;
    shop.identity().logout(LogoutRequest { refresh_token: pair.refresh_token.clone() }).await.unwrap();
    let status = shop
        .identity()
        .refresh_token(RefreshTokenRequest { refresh_token: pair.refresh_token.clone() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // Logging out twice is harmless.
    shop.identity().logout(LogoutRequest { refresh_token: pair.refresh_token }).await.unwrap();
}

#[tokio::test]
async fn unknown_or_empty_refresh_tokens_are_refused() {
    let shop = TestShop::start().await;
    let unknown =
        shop.identity().refresh_token(RefreshTokenRequest { refresh_token: "nope".into() }).await.unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);
    let empty = shop.identity().refresh_token(RefreshTokenRequest { refresh_token: String::new() }).await.unwrap_err();
    assert_invalid_field(&empty, "refresh_token");
    let logout = shop.identity().logout(LogoutRequest { refresh_token: "nope".into() }).await.unwrap_err();
    assert_eq!(logout.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn an_expired_refresh_token_is_refused() {
    let shop = TestShop::start_with(|config| config.identity.refresh_token_ttl_secs = 1).await;
    shop.register("ann").await;
    let pair = shop.login("ann").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status =
        shop.identity().refresh_token(RefreshTokenRequest { refresh_token: pair.refresh_token }).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("expired"), "{status:?}");
}

#[tokio::test]
async fn an_expired_admin_token_creating_an_admin_is_told_it_expired() {
    let shop = TestShop::start().await;
    let root = shop.register("root").await;
    let past = chrono::Utc::now().timestamp() - 60;
    let expired = forge(
        &shop,
        claims(root.id, |c| {
            c["adm"] = json!(true);
            c["exp"] = json!(past);
        }),
    )
    .await;
    let mut admin_request = crate::harness::registration("ada");
    admin_request.is_admin = true;
    let status = shop.identity().register(bearer(admin_request, &expired)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("expired"), "{status:?}");
    // A public call with the same stale token goes on as anonymous.
    shop.identity().register(bearer(crate::harness::registration("bea"), &expired)).await.unwrap();
}
