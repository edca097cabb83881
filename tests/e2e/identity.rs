//! Every identity rule of API.md, through the gateway.

use std::time::Duration;

use shop_proto::identity::identity_service_client::IdentityServiceClient;
use shop_proto::identity::{GetCurrentUserRequest, LoginRequest, RegisterRequest};
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::harness::{PASSWORD, TestShop, assert_invalid_field, bearer, registration};

fn with(username: &str, change: impl FnOnce(&mut RegisterRequest)) -> RegisterRequest {
    let mut request = registration(username);
    change(&mut request);
    request
}

#[tokio::test]
async fn register_returns_a_customer_with_an_id_and_creation_time() {
    let shop = TestShop::start().await;
    let user = shop.register("ann").await;
    assert!(user.id > 0);
    assert_eq!(user.username, "ann");
    assert_eq!(user.email, "ann@example.com");
    assert!(!user.is_admin);
    assert!(user.created_at.is_some());
}

#[tokio::test]
async fn each_bad_register_field_is_named() {
    let shop = TestShop::start().await;
    let cases: Vec<(RegisterRequest, &str)> = vec![
        (with("", |_| {}), "username"),
        (with(&"a".repeat(151), |_| {}), "username"),
        (with("ann lee", |_| {}), "username"),
        (with("ann!", |_| {}), "username"),
        (with("ann", |r| r.email = "not-an-email".into()), "email"),
        (with("ann", |r| r.email = String::new()), "email"),
        (with("ann", |r| r.email = "ann@localhost".into()), "email"),
        (
            with("ann", |r| {
                r.password = "Xk9#mQ2".into();
                r.password_confirm = "Xk9#mQ2".into();
            }),
            "password",
        ),
        (
            with("ann", |r| {
                r.password = "93718264".into();
                r.password_confirm = "93718264".into();
            }),
            "password",
        ),
        (
            with("ann", |r| {
                r.password = "Password123".into();
                r.password_confirm = "Password123".into();
            }),
            "password",
        ),
        (
            with("margarethe", |r| {
                r.password = "margarethe1".into();
                r.password_confirm = "margarethe1".into();
            }),
            "password",
        ),
        (
            with("ann", |r| {
                r.password = "ann@example.com".into();
                r.password_confirm = "ann@example.com".into();
            }),
            "password",
        ),
        (with("ann", |r| r.password_confirm = "tulip-Orbit-43".into()), "password_confirm"),
    ];
    for (request, field) in cases {
        let status = shop.identity().register(request.clone()).await.expect_err(&format!("{request:?} must fail"));
        assert_invalid_field(&status, field);
    }
    // Nothing was half-written: the name is still free.
    shop.register("ann").await;
}

#[tokio::test]
async fn usernames_and_emails_are_unique_ignoring_case() {
    let shop = TestShop::start().await;
    shop.register("Ann").await;
    let same_name = shop.identity().register(with("aNN", |r| r.email = "other@example.com".into())).await.unwrap_err();
    assert_eq!(same_name.code(), Code::AlreadyExists);
    assert!(same_name.message().contains("username"), "{same_name:?}");
    let same_email = shop.identity().register(with("bob", |r| r.email = "ANN@EXAMPLE.COM".into())).await.unwrap_err();
    assert_eq!(same_email.code(), Code::AlreadyExists);
    assert!(same_email.message().contains("email"), "{same_email:?}");
}

#[tokio::test]
async fn only_an_admin_may_register_an_admin() {
    let shop = TestShop::start().await;
    let anonymous = shop.identity().register(with("eve", |r| r.is_admin = true)).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::PermissionDenied);

    let customer = shop.customer("carl").await;
    let by_customer =
        shop.identity().register(bearer(with("eve", |r| r.is_admin = true), &customer)).await.unwrap_err();
    assert_eq!(by_customer.code(), Code::PermissionDenied);

    let admin = shop.admin("root").await;
    let created =
        shop.identity().register(bearer(with("ada", |r| r.is_admin = true), &admin)).await.unwrap().into_inner();
    assert!(created.user.unwrap().is_admin);
    // And an admin's token says so.
    let token = shop.login("ada").await.access_token;
    let me = shop.identity().get_current_user(bearer(GetCurrentUserRequest {}, &token)).await.unwrap().into_inner();
    assert!(me.is_admin);
}

#[tokio::test]
async fn a_client_cannot_claim_admin_through_forged_metadata() {
    let shop = TestShop::start().await;
    let mut request = tonic::Request::new(with("eve", |r| r.is_admin = true));
    request.metadata_mut().insert("x-shop-user-id", "1".parse().unwrap());
    request.metadata_mut().insert("x-shop-user-is-admin", "true".parse().unwrap());
    let status = shop.identity().register(request).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn login_returns_a_bearer_pair_with_five_minute_and_one_day_lives() {
    let shop = TestShop::start().await;
    shop.register("ann").await;
    let pair = shop.login("ANN").await;
    assert_eq!(pair.token_type, "Bearer");
    assert!(!pair.refresh_token.is_empty());
    let now = chrono::Utc::now().timestamp();
    let access = pair.access_expires_at.unwrap().seconds - now;
    let refresh = pair.refresh_expires_at.unwrap().seconds - now;
    assert!((295..=301).contains(&access), "access token life {access}s");
    assert!((86_395..=86_401).contains(&refresh), "refresh token life {refresh}s");
}

#[tokio::test]
async fn unknown_user_and_wrong_password_fail_the_same_way() {
    let shop = TestShop::start().await;
    shop.register("ann").await;
    let wrong_password = shop
        .identity()
        .login(LoginRequest { username: "ann".into(), password: "tulip-Orbit-43".into() })
        .await
        .unwrap_err();
    let unknown_user =
        shop.identity().login(LoginRequest { username: "nobody".into(), password: PASSWORD.into() }).await.unwrap_err();
    assert_eq!(wrong_password.code(), Code::Unauthenticated);
    assert_eq!(unknown_user.code(), wrong_password.code());
    assert_eq!(unknown_user.message(), wrong_password.message());
}

#[tokio::test]
async fn junk_login_input_is_a_plain_login_failure() {
    let shop = TestShop::start().await;
    let long_name = "a".repeat(10_000);
    for username in ["ann\0", long_name.as_str(), "ann lee", "' OR 1=1 --"] {
        let request = LoginRequest { username: username.into(), password: PASSWORD.into() };
        let status = shop.identity().login(request).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{username:?}: {status:?}");
    }
    let request = LoginRequest { username: "ann".into(), password: "p".repeat(100_000) };
    assert_eq!(shop.identity().login(request).await.unwrap_err().code(), Code::Unauthenticated);
}

#[tokio::test]
async fn junk_register_input_is_named_not_internal() {
    let shop = TestShop::start().await;
    let nul_password = |r: &mut RegisterRequest| {
        r.password = "tulip\0Orbit-42".into();
        r.password_confirm = "tulip-Orbit-42".into();
    };
    let cases = [
        (with("ann\0", |_| {}), "username"),
        (with("ann", |r| r.email = "ann\0@example.com".into()), "email"),
        (with("ann", nul_password), "password"),
    ];
    for (request, field) in cases {
        assert_invalid_field(&shop.identity().register(request).await.unwrap_err(), field);
    }
    // One rule for all text: no control characters, in a password either.
    let refused = shop
        .identity()
        .register(with("nul", |r| {
            r.password = "tulip\0Orbit-42".into();
            r.password_confirm = "tulip\0Orbit-42".into();
        }))
        .await
        .unwrap_err();
    assert_invalid_field(&refused, "password");
}

#[tokio::test]
async fn empty_login_fields_are_named() {
    let shop = TestShop::start().await;
    let status =
        shop.identity().login(LoginRequest { username: String::new(), password: "x".into() }).await.unwrap_err();
    assert_invalid_field(&status, "username");
    let status =
        shop.identity().login(LoginRequest { username: "ann".into(), password: String::new() }).await.unwrap_err();
    assert_invalid_field(&status, "password");
}

#[tokio::test]
async fn get_current_user_needs_a_token_and_returns_its_owner() {
    let shop = TestShop::start().await;
    let user = shop.register("ann").await;
    let token = shop.login("ann").await.access_token;
    let me = shop.identity().get_current_user(bearer(GetCurrentUserRequest {}, &token)).await.unwrap().into_inner();
    assert_eq!(me.id, user.id);
    assert_eq!(me.username, "ann");
    let anonymous = shop.identity().get_current_user(GetCurrentUserRequest {}).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn failed_logins_on_an_account_slow_down_that_address() {
    let shop = TestShop::start_with(|config| config.identity.login_failures_per_account_addr = 3).await;
    shop.register("ann").await;
    let wrong = || LoginRequest { username: "ann".into(), password: "wrong-Password-1".into() };
    for _ in 0..3 {
        assert_eq!(shop.identity().login(wrong()).await.unwrap_err().code(), Code::Unauthenticated);
    }
    assert_eq!(shop.identity().login(wrong()).await.unwrap_err().code(), Code::ResourceExhausted);
    // Another username from the same address is not affected by ann's limit.
    shop.register("bob").await;
    shop.login("bob").await;
    // Case does not dodge the limit.
    let shouted = shop.identity().login(LoginRequest { username: "ANN".into(), password: PASSWORD.into() }).await;
    assert_eq!(shouted.unwrap_err().code(), Code::ResourceExhausted);
}

#[tokio::test]
async fn logins_are_rate_limited_per_client_address() {
    let shop = TestShop::start_with(|config| config.identity.login_per_addr_per_min = 4).await;
    for name in ["ann", "bob", "cid", "dan"] {
        shop.register(name).await;
        shop.login(name).await;
    }
    shop.register("eve").await;
    let status =
        shop.identity().login(LoginRequest { username: "eve".into(), password: PASSWORD.into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
}

#[tokio::test]
async fn registrations_are_rate_limited_per_client_address_and_username() {
    let shop = TestShop::start_with(|config| {
        config.identity.register_per_addr_per_min = 4;
        config.identity.register_per_username_per_min = 2;
    })
    .await;
    shop.register("ann").await;
    assert_eq!(shop.identity().register(registration("ann")).await.unwrap_err().code(), Code::AlreadyExists);
    assert_eq!(shop.identity().register(registration("ANN")).await.unwrap_err().code(), Code::ResourceExhausted);
    shop.register("bob").await;
    assert_eq!(shop.identity().register(registration("cid")).await.unwrap_err().code(), Code::ResourceExhausted);
}

/// Logs in through the gateway from `client`, a loopback address of its own
/// (all of 127.0.0.0/8 reaches the gateway on 127.0.0.1).
async fn login_from(shop: &TestShop, client: &str, username: &str, password: &str) -> Result<(), tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", shop.suite.gateway_addr))
        .expect("endpoint")
        .local_address(Some(client.parse().expect("an address")))
        .connect()
        .await
        .expect("connect from the client address");
    let request = LoginRequest { username: username.into(), password: password.into() };
    IdentityServiceClient::new(channel).login(request).await.map(|_| ())
}

#[tokio::test]
async fn a_stranger_guessing_wrong_does_not_lock_the_owner_out() {
    let shop = TestShop::start_with(|config| {
        config.identity.login_failures_per_account_addr = 5;
        config.identity.login_failures_per_account = 100;
    })
    .await;
    shop.register("bobby").await;
    let stranger = "127.0.0.66";
    let mut codes = Vec::new();
    for _ in 0..10 {
        codes.push(login_from(&shop, stranger, "bobby", "wrong-Password-1").await.unwrap_err().code());
    }
    assert_eq!(codes[..5], [Code::Unauthenticated; 5], "failures, not attempts, are counted");
    assert!(codes[5..].iter().all(|code| *code == Code::ResourceExhausted), "{codes:?}");

    // The stranger waits, and is told for how long.
    let status = login_from(&shop, stranger, "bobby", PASSWORD).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    let retry = status.get_details_retry_info().expect("google.rpc.RetryInfo");
    let delay = retry.retry_delay.expect("a retry delay");
    assert!(delay > Duration::ZERO && delay <= Duration::from_secs(300), "{delay:?}");

    // The owner, from their own address and in any case, is not.
    login_from(&shop, "127.0.0.7", "BOBBY", PASSWORD).await.expect("the owner logs in");
    login_from(&shop, "127.0.0.7", "bobby", PASSWORD).await.expect("again");
}

#[tokio::test]
async fn guessing_from_many_addresses_meets_the_per_account_ceiling() {
    let shop = TestShop::start_with(|config| {
        config.identity.login_failures_per_account_addr = 5;
        config.identity.login_failures_per_account = 8;
    })
    .await;
    shop.register("bobby").await;
    for n in 0..4 {
        for _ in 0..2 {
            let status = login_from(&shop, &format!("127.0.1.{n}"), "bobby", "wrong-Password-1").await.unwrap_err();
            assert_eq!(status.code(), Code::Unauthenticated);
        }
    }
    // Past the ceiling, a new address is heard once; having failed, it waits.
    let status = login_from(&shop, "127.0.0.99", "bobby", "wrong-Password-1").await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let status = login_from(&shop, "127.0.0.99", "bobby", "wrong-Password-1").await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.get_details_retry_info().is_some());
    // Other accounts are not affected.
    shop.register("carol").await;
    login_from(&shop, "127.0.0.99", "carol", PASSWORD).await.expect("another account");
}

#[tokio::test]
async fn strangers_past_the_per_account_ceiling_do_not_lock_the_owner_out() {
    let shop = TestShop::start_with(|config| {
        config.identity.login_failures_per_account_addr = 5;
        config.identity.login_failures_per_account = 20;
    })
    .await;
    shop.register("bobby").await;
    login_from(&shop, "127.0.0.7", "bobby", PASSWORD).await.expect("the owner's usual address");
    // 22 strangers, 5 wrong guesses each: the account-wide ceiling is long passed.
    for n in 0..22 {
        for _ in 0..5 {
            let status = login_from(&shop, &format!("127.0.2.{n}"), "bobby", "wrong-Password-1").await.unwrap_err();
            assert!(matches!(status.code(), Code::Unauthenticated | Code::ResourceExhausted), "{status:?}");
        }
    }
    let stranger = login_from(&shop, "127.0.2.0", "bobby", PASSWORD).await.unwrap_err();
    assert_eq!(stranger.code(), Code::ResourceExhausted, "a stranger that failed waits, right password or not");

    // From an address they logged in from before, even a typo does not bring the strangers' wait.
    let typo = login_from(&shop, "127.0.0.7", "bobby", "wrong-Password-1").await.unwrap_err();
    assert_eq!(typo.code(), Code::Unauthenticated);
    login_from(&shop, "127.0.0.7", "bobby", PASSWORD).await.expect("the owner's usual address, after a typo");
    // The owner, from never-used addresses, gets in at once.
    for n in 0..11 {
        login_from(&shop, &format!("127.0.3.{n}"), "bobby", PASSWORD).await.expect("the owner from elsewhere");
    }
}

#[tokio::test]
async fn usernames_that_look_like_another_are_refused() {
    let shop = TestShop::start().await;
    shop.register("alice").await;
    let mut identity = shop.identity();
    for (name, code) in [
        ("ＡＬＩＣＥ", Code::AlreadyExists),
        ("aIice", Code::AlreadyExists),
        ("\u{430}lice", Code::InvalidArgument),
        ("ali\u{200B}ce", Code::InvalidArgument),
    ] {
        let mut request = registration("x");
        request.username = name.into();
        request.email = format!("{}@example.com", name.len());
        let status = identity.register(request).await.unwrap_err();
        assert_eq!(status.code(), code, "{name:?}: {status:?}");
        if code == Code::InvalidArgument {
            assert_invalid_field(&status, "username");
        }
    }
    // Full width logs in as the plain name it is.
    login_from(&shop, "127.0.0.8", "ａｌｉｃｅ", PASSWORD).await.expect("the same user");
    shop.register("alicia").await;
}

#[tokio::test]
async fn blank_phonetic_marked_and_digit_look_alikes_are_refused_and_whole_scripts_stay() {
    let shop = TestShop::start().await;
    shop.register("alice").await;
    shop.register("root").await;
    let mut identity = shop.identity();
    for (name, code) in [
        ("\u{3164}", Code::InvalidArgument),          // a blank Hangul filler
        ("\u{280}oo\u{1D1B}", Code::InvalidArgument), // small capitals ʀooᴛ
        ("roo\u{363}t", Code::InvalidArgument),       // a combining mark on an o
        ("AL1CE", Code::AlreadyExists),               // 1 for I, beside alice
        ("R00T", Code::AlreadyExists),                // zeros for O, beside root
    ] {
        let mut request = registration("x");
        request.username = name.into();
        request.email = format!("lookalike{}@example.com", name.len());
        let status = identity.register(request).await.unwrap_err();
        assert_eq!(status.code(), code, "{name:?}: {status:?}");
        if code == Code::InvalidArgument {
            assert_invalid_field(&status, "username");
        }
    }
    // Scripts of their own are names like any other: Hangul, and Cherokee
    // (which reads as none of the names taken here).
    for (n, name) in ["한국어", "\u{13A1}\u{13BE}\u{13BE}\u{13A2}"].into_iter().enumerate() {
        let mut request = registration("x");
        request.username = name.into();
        request.email = format!("script{n}@example.com");
        identity.register(request).await.unwrap_or_else(|status| panic!("{name}: {status:?}"));
    }
}

#[tokio::test]
async fn a_name_from_before_the_script_rule_still_logs_in() {
    let shop = TestShop::start().await;
    shop.register("bobby").await;
    // As if registered before names had to keep to one script.
    let mixed = "b\u{43e}bby";
    sqlx::query("UPDATE identity.users SET username = $1 WHERE username = 'bobby'")
        .bind(mixed)
        .execute(&shop.db().await)
        .await
        .unwrap();
    login_from(&shop, "127.0.0.9", mixed, PASSWORD).await.expect("an older name logs in as it is");
}
