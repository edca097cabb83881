//! The suite as separate processes, as docker-compose runs it: one
//! `shop serve <service>` per service on real ports, wired with the
//! environment docker-compose.yml gives each container (hosts become
//! 127.0.0.1), secrets from files, started in reverse dependency order, and
//! stopped with SIGTERM, which drains calls in flight.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use shop_platform::storage::testing::TestDatabase;
use shop_proto::cart::{AddCartItemRequest, CheckoutRequest};
use shop_proto::identity::LoginRequest;
use shop_proto::reporting::GetProductSalesReportRequest;
use shop_proto::reporting::reporting_service_client::ReportingServiceClient;
use tokio::task::JoinSet;

use crate::harness::{PASSWORD, SERVICE_TOKEN, bearer, connect, eventually, product, registration};

const SERVICES: [&str; 5] = ["gateway", "reporting", "cart-order", "catalog", "identity"];

/// A `shop serve` child process, killed if the test ends without stopping it.
struct Process {
    child: Child,
}

impl Process {
    /// SIGTERM, then the exit status (a clean drain exits 0).
    async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success());
        eventually(&format!("process {pid} stops after SIGTERM"), Duration::from_secs(10), async || {
            self.child.try_wait().expect("wait").ok_or("still running")
        })
        .await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Each service's environment: what docker-compose.yml sets for its
/// container, with compose's host names replaced by 127.0.0.1 ports.
fn environments(
    ports: &BTreeMap<&str, u16>,
    database_url: &str,
    token_file: &str,
    index_dir: &str,
) -> BTreeMap<&'static str, Vec<(String, String)>> {
    let url = |service: &str| format!("http://127.0.0.1:{}", ports[service]);
    let addr = |service: &str| format!("127.0.0.1:{}", ports[service]);
    let common = vec![
        ("DATABASE_URL".to_owned(), database_url.to_owned()),
        ("SHOP_SERVICE_TOKEN_FILE".to_owned(), token_file.to_owned()),
        ("SHOP_DB_CONNECT_RETRY_SECS".to_owned(), "60".to_owned()),
        ("SHOP_REQUEST_TIMEOUT_SECS".to_owned(), "30".to_owned()),
        ("SHOP_LOG_FORMAT".to_owned(), "json".to_owned()),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
    ];
    let with = |own: Vec<(&str, String)>| {
        let mut env = common.clone();
        env.extend(own.into_iter().map(|(key, value)| (key.to_owned(), value)));
        env
    };
    BTreeMap::from([
        (
            "identity",
            with(vec![
                ("SHOP_IDENTITY_ADDR", addr("identity")),
                // The SIGTERM check sends a burst of logins for one user.
                ("SHOP_IDENTITY_LOGIN_PER_ADDR_PER_MIN", "0".to_owned()),
                ("SHOP_IDENTITY_LOGIN_FAILURES_PER_ACCOUNT_ADDR", "0".to_owned()),
            ]),
        ),
        (
            "catalog",
            with(vec![("SHOP_CATALOG_ADDR", addr("catalog")), ("SHOP_CATALOG_INDEX_DIR", index_dir.to_owned())]),
        ),
        (
            "cart-order",
            with(vec![
                ("SHOP_CART_ORDER_ADDR", addr("cart-order")),
                ("SHOP_CART_ORDER_CATALOG_URL", url("catalog")),
                ("SHOP_CART_ORDER_ORDERS_URL", url("cart-order")),
            ]),
        ),
        (
            "reporting",
            with(vec![
                ("SHOP_REPORTING_ADDR", addr("reporting")),
                ("SHOP_REPORTING_CATALOG_URL", url("catalog")),
                ("SHOP_REPORTING_ORDERS_URL", url("cart-order")),
            ]),
        ),
        (
            "gateway",
            with(vec![
                ("SHOP_GATEWAY_ADDR", addr("gateway")),
                ("SHOP_GATEWAY_IDENTITY_URL", url("identity")),
                ("SHOP_GATEWAY_CATALOG_URL", url("catalog")),
                ("SHOP_GATEWAY_CART_ORDER_URL", url("cart-order")),
                ("SHOP_GATEWAY_REPORTING_URL", url("reporting")),
            ]),
        ),
    ])
}

/// The compose file's `environment:` block of one service (its own keys and
/// those it merges from the shared block).
fn compose_keys(compose: &str, service: &str) -> Vec<String> {
    let shared = compose.split("environment: &shop-env").nth(1).expect("shared environment").split("depends_on").next();
    let own = compose
        .split(&format!("\n  {service}:\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("{service} in docker-compose.yml"))
        .split("healthcheck:")
        .next();
    [shared, own]
        .into_iter()
        .flatten()
        .flat_map(|block| block.lines())
        .filter_map(|line| line.trim().split_once(':').map(|(key, _)| key.to_owned()))
        .filter(|key| key.starts_with("SHOP_") || key == "DATABASE_URL" || key == "RUST_LOG")
        .collect()
}

#[tokio::test]
async fn the_services_run_apart_wired_like_docker_compose_and_drain_on_sigterm() {
    let database = TestDatabase::create(&shop::SCHEMAS).await.expect("test database");
    let token_file = std::env::temp_dir().join(format!("shop-service-token-{}", std::process::id()));
    std::fs::write(&token_file, format!("{SERVICE_TOKEN}\n")).expect("write the token file");
    let ports: BTreeMap<&str, u16> = SERVICES.iter().map(|service| (*service, free_port())).collect();
    let index_dir = std::env::temp_dir().join("shop-test-indexes").join(&database.name);
    let environments = environments(
        &ports,
        &database.url,
        token_file.to_str().expect("utf-8 path"),
        index_dir.to_str().expect("utf-8 path"),
    );

    // The same keys as the compose file gives each container.
    let compose = include_str!("../../docker-compose.yml");
    for (service, env) in &environments {
        let expected = compose_keys(compose, service);
        for (key, _) in env {
            assert!(expected.contains(key), "{service}: docker-compose.yml does not set {key}");
        }
    }

    // Dependents first: everything waits for what it needs.
    let mut processes = BTreeMap::new();
    for service in SERVICES {
        let child = Command::new(env!("CARGO_BIN_EXE_shop"))
            .args(["serve", service])
            .env_clear()
            .envs(environments[service].iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn shop serve");
        processes.insert(service, Process { child });
    }
    for service in SERVICES {
        let addr = format!("127.0.0.1:{}", ports[service]);
        eventually(&format!("{service} becomes healthy"), Duration::from_secs(30), async || {
            match shop::healthcheck(&addr, "", Duration::from_secs(1), &Default::default()).await {
                Ok(status) if status == "SERVING" => Ok(()),
                other => Err(other.map_err(|error| error.to_string())),
            }
        })
        .await;
    }

    // A customer's whole path through the gateway, across all five processes.
    let gateway = connect(format!("127.0.0.1:{}", ports["gateway"]).parse().unwrap()).await;
    let mut identity = shop_proto::identity::identity_service_client::IdentityServiceClient::new(gateway.clone());
    identity.register(registration("alice")).await.expect("register");
    let login = LoginRequest { username: "alice".into(), password: PASSWORD.into() };
    let alice = identity.login(login.clone()).await.expect("login").into_inner().access_token;
    let created = Command::new(env!("CARGO_BIN_EXE_shop"))
        .args(["create-admin", "--username", "root", "--email", "root@example.com"])
        .env_clear()
        .env("DATABASE_URL", &database.url)
        .env("SHOP_ADMIN_PASSWORD", PASSWORD)
        .stdout(Stdio::null())
        .status()
        .expect("shop create-admin");
    assert!(created.success());
    let admin_login = LoginRequest { username: "root".into(), password: PASSWORD.into() };
    let admin = identity.login(admin_login).await.expect("admin login").into_inner().access_token;
    let mut catalog = shop_proto::catalog::catalog_service_client::CatalogServiceClient::new(gateway.clone());
    let category = catalog
        .create_category(bearer(
            shop_proto::catalog::CreateCategoryRequest { name: "Lamps".into(), slug: String::new() },
            &admin,
        ))
        .await
        .expect("create category")
        .into_inner();
    let lamp = catalog
        .create_product(bearer(product("Desk lamp", "19.99", 5, category.id), &admin))
        .await
        .expect("create product")
        .into_inner();
    let mut cart = shop_proto::cart::cart_service_client::CartServiceClient::new(gateway.clone());
    cart.add_cart_item(bearer(AddCartItemRequest { product_id: lamp.id, quantity: 2 }, &alice)).await.expect("add");
    cart.checkout(bearer(CheckoutRequest::default(), &alice)).await.expect("checkout");
    let mut reporting = ReportingServiceClient::new(gateway.clone());
    eventually("the order reaches reporting through the order event stream", Duration::from_secs(10), async || {
        let report = reporting
            .get_product_sales_report(bearer(GetProductSalesReportRequest::default(), &admin))
            .await
            .expect("report")
            .into_inner();
        match report.rows.first().map_or(0, |row| row.units_sold) {
            2 => Ok(()),
            units => Err(units),
        }
    })
    .await;

    // SIGTERM while logins (each a real argon2id hash) are in flight: every
    // one of them still gets its answer, and identity exits cleanly.
    let mut logins = JoinSet::new();
    for _ in 0..40 {
        let mut client = identity.clone();
        let login = login.clone();
        logins.spawn(async move { client.login(login).await.map(|_| tokio::time::Instant::now()) });
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let identity_process = processes.remove("identity").expect("identity process");
    let sigterm_at = tokio::time::Instant::now();
    let status = identity_process.terminate().await;
    let mut answered_after_sigterm = 0;
    while let Some(result) = logins.join_next().await {
        let answered_at = result.expect("login task").expect("a login in flight at SIGTERM is answered");
        answered_after_sigterm += usize::from(answered_at > sigterm_at);
    }
    assert!(answered_after_sigterm > 0, "no login was still in flight at SIGTERM: the check proved nothing");
    assert!(status.success(), "identity exited with {status}");

    for service in ["gateway", "reporting", "cart-order", "catalog"] {
        let process = processes.remove(service).expect("process");
        let status = process.terminate().await;
        assert!(status.success(), "{service} exited with {status} after SIGTERM");
    }
    let _ = std::fs::remove_file(token_file);
    let _ = std::fs::remove_dir_all(index_dir);
}

#[tokio::test]
async fn logs_are_json_lines_when_asked_and_an_unknown_format_is_refused() {
    let database = TestDatabase::create(&shop::SCHEMAS).await.expect("test database");
    let run = |format: &str| {
        Command::new(env!("CARGO_BIN_EXE_shop"))
            .arg("migrate")
            .env_clear()
            .env("DATABASE_URL", &database.url)
            .env("SHOP_LOG_FORMAT", format)
            .env("RUST_LOG", "info")
            .output()
            .expect("run shop migrate")
    };
    let json = run("json");
    assert!(json.status.success(), "{json:?}");
    let lines: Vec<String> = [json.stdout, json.stderr]
        .iter()
        .flat_map(|out| String::from_utf8_lossy(out).lines().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    assert!(lines.iter().any(|line| line.contains("Every schema is migrated")), "{lines:?}");
    for line in &lines {
        assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "not JSON: {line}");
        assert!(!line.contains('\u{1b}'), "no terminal colours: {line}");
    }
    let text = run("text");
    assert!(text.status.success());
    assert!(!String::from_utf8_lossy(&text.stderr).contains('\u{1b}'), "no colours when not a terminal");
    let unknown = run("xml");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("SHOP_LOG_FORMAT"), "{unknown:?}");
}

/// `shop` with `args` and only `env` set; (exit ok, stdout, stderr).
fn shop_cli(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_shop"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run shop");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

#[tokio::test]
async fn a_database_url_that_cannot_work_is_refused_at_once_and_an_unreachable_server_is_named_once() {
    for (url, says) in [
        ("postgres://postgres@127.0.0.1:5432/", "DATABASE_URL names no database"),
        ("mysql://root:hunter2@127.0.0.1:3306/shop", "must be a postgres://"),
    ] {
        let (ok, _, stderr) = shop_cli(&["migrate"], &[("DATABASE_URL", url)]);
        assert!(!ok && stderr.contains(says), "{url}: {stderr}");
        assert!(stderr.contains("postgres://postgres@127.0.0.1:5432/shop") && !stderr.contains("hunter2"), "{stderr}");
    }
    let port = free_port().to_string();
    let url = format!("postgres://postgres@127.0.0.1:{port}/shop");
    let (ok, _, stderr) =
        shop_cli(&["migrate"], &[("DATABASE_URL", &url), ("SHOP_DB_CONNECT_RETRY_SECS", "1"), ("RUST_LOG", "warn")]);
    assert!(!ok);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains(&format!("cannot reach the Postgres server at 127.0.0.1:{port}")), "{stderr}");
    assert_eq!(last.matches("refused").count(), 1, "the cause is said once: {last}");
    assert!(
        stderr.lines().filter(|line| line.contains("WARN")).count() <= 1,
        "one warning, not one per retry: {stderr}"
    );
}

// Two threads: the suite answers while this one waits for the `shop` child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_says_what_it_found_and_what_it_expects() {
    let shop = crate::harness::TestShop::start().await;
    let addr = shop.suite.gateway_addr.to_string();
    let (ok, stdout, stderr) = shop_cli(&["healthcheck", &addr], &[]);
    assert!(ok, "{stdout} {stderr}");
    assert_eq!(stdout.trim(), format!("{addr}: SERVING"));
    let (ok, _, stderr) = shop_cli(&["healthcheck", "50051"], &[]);
    assert!(!ok && stderr.contains("expected host:port"), "{stderr}");
    let (ok, _, stderr) = shop_cli(&["healthcheck", "http://127.0.0.1:50051"], &[]);
    assert!(!ok && stderr.contains("is a URL"), "{stderr}");
    let (ok, _, stderr) = shop_cli(&["up"], &[("SHOP_GATEWAY_ADDR", "http://127.0.0.1:50061")]);
    assert!(!ok && stderr.contains("SHOP_GATEWAY_ADDR") && stderr.contains("is a URL"), "{stderr}");
}
