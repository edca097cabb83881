//! `shop bench`: a closed-loop load generator. `--concurrency` virtual users
//! each send one call, wait for the answer, and send the next, for
//! `--duration`, over a few shared HTTP/2 connections to the gateway.
//! Latencies go into HDR histograms (microsecond resolution). The checkout
//! scenario then balances the books (see [`books`]).

pub mod books;
pub mod quality;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use rand::Rng as _;
use shop_platform::config::DatabaseConfig;
use shop_proto::cart::cart_service_client::CartServiceClient;
use shop_proto::cart::{AddCartItemRequest, CheckoutRequest, RemoveCartItemRequest};
use shop_proto::catalog::catalog_service_client::CatalogServiceClient;
use shop_proto::catalog::{GetProductRequest, ListCategoriesRequest, ListProductsRequest, SearchProductsRequest};
use shop_proto::identity::identity_service_client::IdentityServiceClient;
use shop_proto::identity::{LoginRequest, RegisterRequest};
use shop_proto::reporting::GetProductSalesReportRequest;
use shop_proto::reporting::reporting_service_client::ReportingServiceClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// ListProducts, default page (newest first, 10 per page).
    ListProducts,
    /// ListProducts with a category, a price range and a random ordering.
    ListFiltered,
    /// ListProducts searching one or two common words (a handful of
    /// searches, as a shop's most popular ones).
    Search,
    /// ListProducts searching one or two words drawn from a hundred, with a
    /// random ordering and page: thousands of different searches, so
    /// answers remembered from earlier searches rarely help.
    SearchVaried,
    /// SearchProducts as a search box sends it: each virtual user types a
    /// query of one or two words drawn from a hundred (now and then with a
    /// typo) a letter at a time, and every keystroke is a call.
    SearchBox,
    /// Not a load: scores the search box's judged set (`--judged`), made
    /// from the running catalog when the file does not exist yet.
    SearchQuality,
    /// GetProduct of a random product id.
    GetProduct,
    /// Login of one bench user (run identity with rate limits off: see bench/README.md).
    Login,
    /// Each virtual user (its own account) adds 1-3 random products to its
    /// cart, then checks out. Counts checkouts; latency is the Checkout call's.
    Checkout,
    /// GetProductSalesReport, default page (most sold, 50 rows), as an admin
    /// (`--admin`, password in SHOP_ADMIN_PASSWORD).
    SalesReport,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// What each virtual user does.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Virtual users calling at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// How long to run, e.g. 30s, 2m.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// The gateway to load.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub target: String,
    /// HTTP/2 connections shared by the virtual users.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// The admin the sales-report scenario logs in as: the README
    /// walkthrough's `root` unless you name another (`shop create-admin`
    /// makes one); the password is read from SHOP_ADMIN_PASSWORD.
    #[arg(long, default_value = "root")]
    pub admin: String,
    /// Checkout only: products added to the cart per round, one number or a
    /// range (`1-3`, the default; `1` is the old backend's flow).
    #[arg(long, default_value = "1-3", value_parser = count_range)]
    pub lines: std::ops::RangeInclusive<i32>,
    /// Checkout only: units of each product added, one number or a range
    /// (`1`, the default; `1-3` is the old backend's flow).
    #[arg(long, default_value = "1", value_parser = count_range)]
    pub units: std::ops::RangeInclusive<i32>,
    /// How the calls travel: native gRPC, gRPC-Web or Connect (JSON or
    /// binary protobuf), each over the same HTTP/2 connections. The
    /// catalog reads (list-products, list-filtered, search, search-varied,
    /// search-box, get-product) run in every one; the other scenarios in
    /// gRPC only.
    #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
    pub protocol: Protocol,
    /// search-quality only: the judged set (made from the running catalog
    /// when the file does not exist).
    #[arg(long, default_value = "bench/search-quality/judged.tsv")]
    pub judged: std::path::PathBuf,
    /// Checkout only: do not balance the books in the database after the run.
    #[arg(long)]
    pub skip_books: bool,
    /// Sends a call that found Shop UNAVAILABLE again, the same request
    /// (a checkout with its idempotency key), up to this many times, a
    /// quarter second apart; the report counts them as `retried`. 0: never.
    #[arg(long, default_value_t = 0)]
    pub retries: u32,
    /// Where the checkout scenario balances its books.
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub tls: crate::ClientTlsArgs,
}

/// How a bench call travels to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    Grpc,
    GrpcWeb,
    ConnectJson,
    ConnectProto,
}

/// The start of every idempotency key the checkout scenario sends: the books
/// count the orders placed with it.
const CHECKOUT_KEY_PREFIX: &str = "bench-checkout-";

/// `3` or `1-3`: a range of counts, each at least 1.
fn count_range(raw: &str) -> Result<std::ops::RangeInclusive<i32>, String> {
    let (low, high) = raw.split_once('-').unwrap_or((raw, raw));
    let parse =
        |part: &str| part.trim().parse::<i32>().map_err(|_| format!("{raw:?} is not a count or a range like 1-3"));
    let (low, high) = (parse(low)?, parse(high)?);
    if low < 1 || high < low {
        return Err(format!("{raw:?}: counts start at 1 and a range goes up (1-3)"));
    }
    Ok(low..=high)
}

/// What every virtual user needs to make its calls.
#[derive(Clone)]
struct Fixture {
    /// Checkout: products per round, and units of each.
    lines: std::ops::RangeInclusive<i32>,
    units: std::ops::RangeInclusive<i32>,
    max_product_id: i64,
    category_slugs: Vec<String>,
    login: Option<(String, String)>,
    /// One access token per virtual user (checkout), or the admin's (sales-report).
    tokens: Vec<String>,
    /// `--retries`, and how many calls were sent again.
    retries: u32,
    retried: Arc<std::sync::atomic::AtomicU64>,
}

/// How long a retried call waits first.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

impl Fixture {
    /// Whether a call that found Shop UNAVAILABLE may go again (`left` of
    /// the `--retries` remain): if so, counts it and waits the pause.
    async fn may_retry(&self, left: &mut u32) -> bool {
        if *left == 0 {
            return false;
        }
        *left -= 1;
        self.retried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(RETRY_PAUSE).await;
        true
    }
}

/// `send` until it is not UNAVAILABLE or the fixture's retries are spent.
async fn with_retries<T, F: Future<Output = Result<T, tonic::Status>>>(
    fixture: &Fixture,
    mut send: impl FnMut() -> F,
) -> Result<T, tonic::Status> {
    let mut left = fixture.retries;
    loop {
        let outcome = send().await;
        let unavailable = matches!(&outcome, Err(status) if status.code() == tonic::Code::Unavailable);
        if !unavailable || !fixture.may_retry(&mut left).await {
            return outcome;
        }
    }
}

const SEARCHES: &[&str] = &["red", "cotton", "lamp", "wooden", "red cotton", "leather boots", "smart", "steel knife"];
/// Searched beside the seeded vocabulary: words of the seeded descriptions'
/// phrases, fragments of seeded words, and words no product has.
const EXTRA_SEARCH_WORDS: &[&str] = &[
    "gift", "comfort", "warranty", "batch", "ship", "lamps", "sof", "amp", "otto", "zebra", "unicorn", "teapot", "oak",
    "walnut", "ivory", "neon",
];

/// What `search-varied` draws its one or two words from.
static SEARCH_WORDS: std::sync::LazyLock<Vec<&'static str>> =
    std::sync::LazyLock::new(|| shop_catalog::seed_vocabulary().chain(EXTRA_SEARCH_WORDS.iter().copied()).collect());

const ORDERINGS: &[&str] =
    &["price", "-price", "created_at", "-created_at", "sold_count", "-sold_count", "title", "-title"];
const PRICE_FLOORS: &[&str] = &["1", "5", "10", "25", "50", "100"];

async fn fixture(channel: Channel, args: &BenchArgs) -> anyhow::Result<Fixture> {
    let (scenario, users, admin) = (args.scenario, args.concurrency, args.admin.as_str());
    let mut catalog = CatalogServiceClient::new(channel.clone());
    let total = catalog.list_products(ListProductsRequest { page_size: 1, ..Default::default() }).await?.into_inner();
    let category_slugs: Vec<String> = catalog
        .list_categories(ListCategoriesRequest {})
        .await?
        .into_inner()
        .categories
        .into_iter()
        .map(|c| c.slug)
        .collect();
    if matches!(scenario, Scenario::GetProduct | Scenario::ListFiltered) {
        anyhow::ensure!(
            total.total_count > 0 && !category_slugs.is_empty(),
            "the catalog is empty: run `shop seed` first"
        );
    }
    let login = if scenario == Scenario::Login { Some(bench_user(&channel).await?) } else { None };
    let mut tokens = Vec::new();
    if scenario == Scenario::SalesReport {
        let password = std::env::var("SHOP_ADMIN_PASSWORD")
            .with_context(|| format!("the sales-report scenario logs in as the admin {admin:?} (choose another with --admin): set SHOP_ADMIN_PASSWORD to its password"))?;
        let pair = IdentityServiceClient::new(channel.clone())
            .login(LoginRequest { username: admin.to_owned(), password })
            .await
            .with_context(|| {
                format!(
                    "logging in as the admin {admin:?} (choose another with --admin; `shop create-admin` makes one)"
                )
            })?
            .into_inner();
        tokens.push(pair.access_token);
    }
    if scenario == Scenario::Checkout {
        anyhow::ensure!(total.total_count > 0, "the catalog is empty: run `shop seed` first");
        for _ in 0..users {
            let (username, password) = bench_user(&channel).await?;
            let pair = IdentityServiceClient::new(channel.clone())
                .login(LoginRequest { username, password })
                .await
                .context("logging the bench user in")?
                .into_inner();
            tokens.push(pair.access_token);
        }
    }
    // Seeded ids run from 1 to about the total; misses show up as NOT_FOUND.
    Ok(Fixture {
        lines: args.lines.clone(),
        units: args.units.clone(),
        max_product_id: total.total_count.max(1),
        category_slugs,
        login,
        tokens,
        retries: args.retries,
        retried: Arc::default(),
    })
}

/// A shopper at the search box: the query being typed and how much of it is
/// in the box.
#[derive(Default)]
pub struct Typing {
    query: String,
    typed: usize,
}

impl Typing {
    /// What the box holds after the next keystroke (a new query once one is
    /// typed to its end).
    fn keystroke(&mut self) -> String {
        if self.typed >= self.query.len() {
            let mut rng = rand::rng();
            let mut words: Vec<String> = (0..rng.random_range(1..=2))
                .map(|_| SEARCH_WORDS[rng.random_range(0..SEARCH_WORDS.len())].to_owned())
                .collect();
            // One query in five has a swap of two letters in its last word.
            if let Some(last) = words.last_mut().filter(|last| last.len() >= 5 && rng.random_bool(0.2)) {
                let at = rng.random_range(1..last.len() - 1);
                let mut letters: Vec<char> = last.chars().collect();
                letters.swap(at, at + 1);
                *last = letters.into_iter().collect();
            }
            self.query = words.join(" ");
            self.typed = 0;
        }
        // The vocabulary is ASCII: a keystroke is a byte.
        self.typed += 1;
        self.query[..self.typed].to_owned()
    }
}

/// Registers a fresh customer; returns its username and password.
async fn bench_user(channel: &Channel) -> anyhow::Result<(String, String)> {
    let username = format!("bench-{}", rand::rng().random_range(0..u32::MAX));
    let password = "bench-Password-771".to_owned();
    IdentityServiceClient::new(channel.clone())
        .register(RegisterRequest {
            username: username.clone(),
            email: format!("{username}@bench.example.com"),
            password: password.clone(),
            password_confirm: password.clone(),
            is_admin: false,
        })
        .await
        .context("registering a bench user (lift identity's register rate limits: see bench/README.md)")?;
    Ok((username, password))
}

fn bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = MetadataValue::try_from(format!("Bearer {token}")) {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// One checkout round of a virtual user: `--lines` random products into the
/// cart (1-3), `--units` of each (1), then Checkout; returns the Checkout's
/// latency. A failed round empties what
/// it added so the next round starts clean.
async fn checkout_round(channel: &Channel, fixture: &Fixture, user: usize) -> (Duration, Result<(), tonic::Code>) {
    let token = &fixture.tokens[user];
    let mut cart = CartServiceClient::new(channel.clone());
    let lines: Vec<(i64, i32)> = {
        let mut rng = rand::rng();
        let count = rng.random_range(fixture.lines.clone());
        (0..count)
            .map(|_| (rng.random_range(1..=fixture.max_product_id), rng.random_range(fixture.units.clone())))
            .collect()
    };
    let ids: Vec<i64> = lines.iter().map(|(product_id, _)| *product_id).collect();
    let started = Instant::now();
    let mut outcome = Ok(());
    for &(product_id, quantity) in &lines {
        let added = with_retries(fixture, || {
            let (mut cart, request) = (cart.clone(), bearer(AddCartItemRequest { product_id, quantity }, token));
            async move { cart.add_cart_item(request).await }
        })
        .await;
        if let Err(status) = added {
            outcome = Err(status.code());
            break;
        }
    }
    let mut latency = started.elapsed();
    if outcome.is_ok() {
        let sent = Instant::now();
        let key = format!("{CHECKOUT_KEY_PREFIX}{}", rand::rng().random_range(0..u64::MAX));
        // Sent again with the same key: at most one order, however many tries.
        outcome = with_retries(fixture, || {
            let (mut cart, request) = (cart.clone(), bearer(CheckoutRequest { idempotency_key: key.clone() }, token));
            async move { cart.checkout(request).await }
        })
        .await
        .map(drop)
        .map_err(|status| status.code());
        latency = sent.elapsed();
    }
    if outcome.is_err() {
        for product_id in ids {
            let _ = cart.remove_cart_item(bearer(RemoveCartItemRequest { product_id }, token)).await;
        }
    }
    (latency, outcome)
}

/// One call (or, for checkout, one round) of the scenario and how long it
/// took; `Err` carries the gRPC code.
async fn call(
    scenario: Scenario,
    protocol: Protocol,
    channel: &Channel,
    fixture: &Fixture,
    user: usize,
    typing: &mut Typing,
) -> (Duration, Result<(), tonic::Code>) {
    let mut catalog = CatalogServiceClient::new(channel.clone());
    if protocol != Protocol::Grpc {
        let (path, message) = catalog_read(scenario, fixture, typing);
        let sent = Instant::now();
        let outcome = over(channel, protocol, path, message).await;
        return (sent.elapsed(), outcome);
    }
    let sent = Instant::now();
    let result = match scenario {
        Scenario::ListProducts => catalog.list_products(ListProductsRequest::default()).await.map(drop),
        Scenario::ListFiltered => {
            let request = {
                let mut rng = rand::rng();
                let floor: f64 = PRICE_FLOORS[rng.random_range(0..PRICE_FLOORS.len())].parse().unwrap_or(1.0);
                ListProductsRequest {
                    category: fixture.category_slugs[rng.random_range(0..fixture.category_slugs.len())].clone(),
                    min_price: format!("{floor:.2}"),
                    max_price: format!("{:.2}", floor * 4.0),
                    ordering: ORDERINGS[rng.random_range(0..ORDERINGS.len())].to_owned(),
                    ..Default::default()
                }
            };
            catalog.list_products(request).await.map(drop)
        }
        Scenario::Search => {
            let search = SEARCHES[rand::rng().random_range(0..SEARCHES.len())].to_owned();
            catalog.list_products(ListProductsRequest { search, ..Default::default() }).await.map(drop)
        }
        Scenario::SearchVaried => {
            let request = {
                let mut rng = rand::rng();
                let mut word = || SEARCH_WORDS[rng.random_range(0..SEARCH_WORDS.len())];
                let search =
                    if rand::rng().random_bool(0.5) { word().to_owned() } else { format!("{} {}", word(), word()) };
                let ordering = ORDERINGS[rand::rng().random_range(0..ORDERINGS.len())].to_owned();
                ListProductsRequest { search, ordering, page: rand::rng().random_range(1..=5), ..Default::default() }
            };
            catalog.list_products(request).await.map(drop)
        }
        Scenario::SearchBox => {
            let request = SearchProductsRequest { query: typing.keystroke(), ..Default::default() };
            catalog.search_products(request).await.map(drop)
        }
        // Refused by `measure`: never sent.
        Scenario::SearchQuality => Err(tonic::Status::invalid_argument("search-quality is not a load")),
        Scenario::GetProduct => {
            let id = rand::rng().random_range(1..=fixture.max_product_id);
            catalog.get_product(GetProductRequest { id }).await.map(drop)
        }
        Scenario::Login => {
            let (username, password) = fixture.login.clone().unwrap_or_default();
            IdentityServiceClient::new(channel.clone()).login(LoginRequest { username, password }).await.map(drop)
        }
        Scenario::Checkout => return checkout_round(channel, fixture, user).await,
        Scenario::SalesReport => {
            let request = bearer(GetProductSalesReportRequest::default(), &fixture.tokens[0]);
            ReportingServiceClient::new(channel.clone()).get_product_sales_report(request).await.map(drop)
        }
    };
    (sent.elapsed(), result.map_err(|status| status.code()))
}

/// A catalog read of the scenario as (path, binary message), for the
/// protocols other than native gRPC.
fn catalog_read(scenario: Scenario, fixture: &Fixture, typing: &mut Typing) -> (&'static str, Vec<u8>) {
    use prost::Message as _;
    const LIST: &str = "/shop.catalog.v1.CatalogService/ListProducts";
    let mut rng = rand::rng();
    match scenario {
        Scenario::GetProduct => (
            "/shop.catalog.v1.CatalogService/GetProduct",
            GetProductRequest { id: rng.random_range(1..=fixture.max_product_id) }.encode_to_vec(),
        ),
        Scenario::Search => {
            let search = SEARCHES[rng.random_range(0..SEARCHES.len())].to_owned();
            (LIST, ListProductsRequest { search, ..Default::default() }.encode_to_vec())
        }
        Scenario::SearchBox => (
            "/shop.catalog.v1.CatalogService/SearchProducts",
            SearchProductsRequest { query: typing.keystroke(), ..Default::default() }.encode_to_vec(),
        ),
        Scenario::SearchVaried => {
            let word = || SEARCH_WORDS[rand::rng().random_range(0..SEARCH_WORDS.len())];
            let search = format!("{} {}", word(), word());
            (LIST, ListProductsRequest { search, ..Default::default() }.encode_to_vec())
        }
        Scenario::ListFiltered => {
            let floor: f64 = PRICE_FLOORS[rng.random_range(0..PRICE_FLOORS.len())].parse().unwrap_or(1.0);
            let request = ListProductsRequest {
                category: fixture.category_slugs[rng.random_range(0..fixture.category_slugs.len())].clone(),
                min_price: format!("{floor:.2}"),
                max_price: format!("{:.2}", floor * 4.0),
                ordering: ORDERINGS[rng.random_range(0..ORDERINGS.len())].to_owned(),
                ..Default::default()
            };
            (LIST, request.encode_to_vec())
        }
        _ => (LIST, ListProductsRequest::default().encode_to_vec()),
    }
}

/// One unary call over gRPC-Web or Connect, on the channel's HTTP/2
/// connection; `Err` carries the call's code.
async fn over(channel: &Channel, protocol: Protocol, path: &str, message: Vec<u8>) -> Result<(), tonic::Code> {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let framed = |message: &[u8]| {
        let mut framed = Vec::with_capacity(message.len() + 5);
        framed.push(0);
        framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
        framed.extend_from_slice(message);
        framed
    };
    let (content_type, body) = match protocol {
        Protocol::GrpcWeb => ("application/grpc-web+proto", framed(&message)),
        Protocol::ConnectProto => ("application/proto", message),
        // The same message in the proto3 JSON mapping, by the contract's descriptors.
        Protocol::ConnectJson | Protocol::Grpc => ("application/json", to_json(path, &message)),
    };
    let mut request = http::Request::new(tonic::body::Body::new(http_body_util::Full::new(bytes::Bytes::from(body))));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = path.parse().map_err(|_| tonic::Code::Internal)?;
    request.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    let response = channel.clone().oneshot(request).await.map_err(|_| tonic::Code::Unavailable)?;
    let status = response.status();
    let collected = response.into_body().collect().await.map_err(|_| tonic::Code::Unavailable)?.to_bytes();
    match protocol {
        Protocol::GrpcWeb => {
            // The trailers come last, in a frame flagged 0x80: "grpc-status:0".
            let text = String::from_utf8_lossy(&collected);
            let code = text
                .split("grpc-status:")
                .nth(1)
                .and_then(|rest| rest.trim_start().split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|code| code.parse::<i32>().ok())
                .unwrap_or(2);
            if code == 0 { Ok(()) } else { Err(tonic::Code::from_i32(code)) }
        }
        _ if status == http::StatusCode::OK => Ok(()),
        _ if status == http::StatusCode::NOT_FOUND => Err(tonic::Code::NotFound),
        _ => Err(tonic::Code::Unknown),
    }
}

/// A binary message of the RPC at `path`, in the proto3 JSON mapping.
fn to_json(path: &str, message: &[u8]) -> Vec<u8> {
    let contract = match shop_proto::contract::contract() {
        Ok(contract) => contract,
        Err(_) => return b"{}".to_vec(),
    };
    let Some(rpc) = contract.rpc(path) else { return b"{}".to_vec() };
    prost_reflect::DynamicMessage::decode(rpc.method.input(), message)
        .ok()
        .and_then(|decoded| serde_json::to_vec(&decoded).ok())
        .unwrap_or_else(|| b"{}".to_vec())
}

/// CPU seconds this process has used (user + system), where Linux's
/// /proc tells: fields 14 and 15 of /proc/self/stat, in USER_HZ (100) ticks.
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after it do not.
    let mut after_name = stat.rsplit_once(')')?.1.split_whitespace();
    let user: f64 = after_name.nth(11)?.parse().ok()?;
    let system: f64 = after_name.next()?.parse().ok()?;
    Some((user + system) / 100.0)
}

/// What a run measured.
pub struct Report {
    pub requests: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
    /// Calls sent again after UNAVAILABLE (`--retries`); not errors.
    pub retried: u64,
    /// get-product: ids that hold no live product (archived, or a gap in the
    /// id range). The service answered correctly; not counted as errors.
    pub absent_ids: u64,
}

pub async fn measure(args: &BenchArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.concurrency > 0 && args.connections > 0, "--concurrency and --connections must be positive");
    anyhow::ensure!(args.scenario != Scenario::SearchQuality, "search-quality scores a judged set; it is not a load");
    let endpoint = args.tls.endpoint(&args.target).context("--target")?;
    let mut channels = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let channel = endpoint.clone().tcp_nodelay(true).connect().await;
        channels.push(channel.with_context(|| format!("cannot reach the gateway at {} (--target)", args.target))?);
    }
    let fixture = fixture(channels[0].clone(), args).await?;
    // On standard error, so `--json` output stays one object: bench/cpu-split
    // reads the machine's CPU counters at these two lines, leaving the setup
    // (registering users is argon2 work in identity) out of the split.
    eprintln!("run          started: {} users for {:?}", args.concurrency, args.duration);
    let cpu_at_start = own_cpu_seconds();
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut users = tokio::task::JoinSet::new();
    for user in 0..args.concurrency {
        let channel = channels[user % channels.len()].clone();
        let fixture = fixture.clone();
        let (scenario, protocol) = (args.scenario, args.protocol);
        users.spawn(async move {
            // Constant bounds that satisfy the crate's rules (low ≥ 1, high ≥ 2·low, 3 digits): cannot fail.
            let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
            let mut errors = BTreeMap::<String, u64>::new();
            let mut absent_ids = 0;
            let mut typing = Typing::default();
            while Instant::now() < deadline {
                let (mut took, mut outcome) = call(scenario, protocol, &channel, &fixture, user, &mut typing).await;
                // A checkout round retries its own calls, one by one.
                let mut left = if scenario == Scenario::Checkout { 0 } else { fixture.retries };
                while outcome == Err(tonic::Code::Unavailable) && fixture.may_retry(&mut left).await {
                    (took, outcome) = call(scenario, protocol, &channel, &fixture, user, &mut typing).await;
                }
                latency.saturating_record(took.as_micros() as u64);
                match outcome {
                    Ok(()) => {}
                    Err(tonic::Code::NotFound) if scenario == Scenario::GetProduct => absent_ids += 1,
                    Err(code) => *errors.entry(format!("{code:?}")).or_default() += 1,
                }
            }
            (latency, errors, absent_ids)
        });
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut errors = BTreeMap::new();
    let mut absent_ids = 0;
    while let Some(joined) = users.join_next().await {
        let (user_latency, user_errors, user_absent_ids) = joined?;
        latency.add(&user_latency)?;
        absent_ids += user_absent_ids;
        for (code, count) in user_errors {
            *errors.entry(code).or_default() += count;
        }
    }
    let elapsed = started.elapsed();
    match (cpu_at_start, own_cpu_seconds()) {
        (Some(before), Some(after)) => eprintln!(
            "run          finished after {:.1} s, the generator using {:.1} CPU s",
            elapsed.as_secs_f64(),
            after - before
        ),
        _ => eprintln!("run          finished after {:.1} s", elapsed.as_secs_f64()),
    }
    let retried = fixture.retried.load(std::sync::atomic::Ordering::Relaxed);
    Ok(Report { requests: latency.len(), elapsed, latency, errors, retried, absent_ids })
}

/// The run, then (checkout, unless `--skip-books`) its books balanced:
/// an error if they do not balance.
pub async fn measure_and_balance(args: &BenchArgs) -> anyhow::Result<(Report, Option<books::Balance>)> {
    let audit = if args.scenario == Scenario::Checkout && !args.skip_books {
        Some(books::Audit::open(&args.database, CHECKOUT_KEY_PREFIX).await?)
    } else {
        None
    };
    let report = measure(args).await?;
    let Some(audit) = audit else { return Ok((report, None)) };
    let errors: u64 = report.errors.values().sum();
    let refused = report.errors.get("FailedPrecondition").copied().unwrap_or_default();
    let answers = books::Answers { ok: report.requests - errors, uncertain: errors - refused };
    let balance = audit.close(answers).await?;
    Ok((report, Some(balance)))
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.scenario == Scenario::SearchQuality {
        let endpoint = args.tls.endpoint(&args.target).context("--target")?;
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot reach the gateway at {} (--target)", args.target))?;
        return quality::run(channel, &args.judged, args.json).await;
    }
    let (report, balance) = measure_and_balance(&args).await?;
    let millis = |quantile: f64| report.latency.value_at_quantile(quantile) as f64 / 1000.0;
    let per_second = report.requests as f64 / report.elapsed.as_secs_f64();
    let scenario = format!("{:?}", args.scenario);
    if args.json {
        let json = serde_json::json!({
            "scenario": scenario,
            "concurrency": args.concurrency,
            "duration_secs": report.elapsed.as_secs_f64(),
            "requests": report.requests,
            "requests_per_sec": per_second,
            "latency_ms": { "p50": millis(0.50), "p90": millis(0.90), "p99": millis(0.99), "max": report.latency.max() as f64 / 1000.0 },
            "errors": report.errors,
            "retried": report.retried,
            "absent_ids": report.absent_ids,
            "books": balance.as_ref().map(|balance| serde_json::json!({
                "balanced": true,
                "orders_placed": balance.orders_placed,
                "checkouts_ok": balance.checkouts_ok,
                "units_sold": balance.units_sold,
                "products_checked": balance.products_checked,
                "settled_after_secs": balance.settled_after_secs,
            })),
        });
        println!("{json}");
    } else {
        println!("scenario     {scenario} ({} users, {} connections)", args.concurrency, args.connections);
        println!("requests     {} in {:.1} s = {per_second:.0} req/s", report.requests, report.elapsed.as_secs_f64());
        println!(
            "latency ms   p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            millis(0.50),
            millis(0.90),
            millis(0.99),
            report.latency.max() as f64 / 1000.0
        );
        let errors: u64 = report.errors.values().sum();
        println!("errors       {errors} {:?}", report.errors);
        if report.retried > 0 {
            println!("retried      {} calls sent again after UNAVAILABLE (--retries)", report.retried);
        }
        if args.scenario == Scenario::Checkout && report.errors.contains_key("FailedPrecondition") {
            println!("             FailedPrecondition: a product sold out under load (expected; nothing changed)");
        }
        if args.scenario == Scenario::GetProduct {
            println!(
                "absent ids   {} NOT_FOUND for ids with no live product (archived, or a gap in the ids): correct answers, not errors",
                report.absent_ids
            );
        }
        if let Some(balance) = &balance {
            println!(
                "books        balanced: {} orders placed for {} checkouts answered OK; {} units in live orders = units sold; \
                 stock + sold unchanged for all {} products; nothing PENDING or owing stock ({:.1} s to settle)",
                balance.orders_placed,
                balance.checkouts_ok,
                balance.units_sold,
                balance.products_checked,
                balance.settled_after_secs
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod count_range_tests {
    use super::count_range;

    #[test]
    fn a_count_or_a_rising_range_from_one() {
        assert_eq!(count_range("1"), Ok(1..=1));
        assert_eq!(count_range("1-3"), Ok(1..=3));
        for bad in ["0", "3-1", "x", "1-", "-2"] {
            assert!(count_range(bad).is_err(), "{bad}");
        }
    }
}
