//! The `shop` command line. Every setting is also an env var; `shop --help`
//! and `shop <command> --help` list them all.

use std::io::{BufRead as _, IsTerminal as _};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret as _, SecretString};
use shop_identity::PasswordHashConfig;
use shop_platform::config::DatabaseConfig;
use shop_platform::observability::telemetry::LogFormat;

use crate::{ServiceName, SuiteConfig};

#[derive(Debug, Parser)]
#[command(
    name = "shop",
    version,
    about = "Shop: an e-commerce backend as a suite of gRPC services",
    long_about = "Shop: an e-commerce backend as a suite of gRPC services.\n\n\
        `shop up` starts everything locally; clients use the gateway (default 127.0.0.1:50051).\n\
        Postgres comes from DATABASE_URL (default postgres://postgres@127.0.0.1:5432/shop);\n\
        the database and each service's schema are created on start."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start every service and the gateway in one process, each on its own
    /// port; stops cleanly on Ctrl-C or SIGTERM.
    Up(Box<SuiteConfig>),
    /// Run one service alone (docker-compose, Kubernetes). Needs
    /// SHOP_SERVICE_TOKEN, the same for every service.
    Serve {
        /// Which service to run.
        #[arg(value_enum)]
        service: ServiceName,
        #[command(flatten)]
        config: Box<SuiteConfig>,
    },
    /// Fill the catalog with realistic random categories and products (bulk
    /// COPY, with their catalog events). Only adds what is missing to reach the
    /// targets, so running it twice is harmless.
    Seed {
        /// How many live products the catalog should hold.
        #[arg(long, default_value_t = 1000)]
        products: u64,
        /// How many categories the catalog should hold.
        #[arg(long, default_value_t = 20)]
        categories: u64,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Load-test a running suite through its gateway and print throughput and
    /// latency (p50/p90/p99/max). See bench/README.md.
    Bench(crate::bench::BenchArgs),
    /// Create the database if missing and run every service's migrations, then
    /// exit (the one-shot migrations step of docker-compose and Kubernetes).
    Migrate {
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Ask a Shop server whether it is serving (grpc.health.v1); exits 0 if
    /// so, 1 if not. For container health checks: images need no other tool.
    Healthcheck {
        /// The server's host:port.
        addr: String,
        /// A service to ask about (empty: the server as a whole).
        #[arg(long, default_value = "")]
        service: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout_secs: u64,
        /// Without --tls-ca, a process with internal TLS set
        /// (SHOP_INTERNAL_TLS_*) presents its own certificate.
        #[command(flatten)]
        tls: crate::ClientTlsArgs,
        #[command(flatten)]
        internal: shop_platform::config::InternalTlsConfig,
    },
    /// Make the secrets a cluster needs where they are missing: the service
    /// token, identity's signing key and throwaway TLS certificates (in
    /// tls/, as `shop certs` makes them), keys readable by their owner only
    /// (docker-compose's one-shot `secrets` service). Files already there are
    /// kept; files of the same name in --from are copied in instead of made.
    InitSecrets {
        /// Where the secrets live (a volume every service mounts).
        #[arg(long)]
        dir: std::path::PathBuf,
        /// Where an operator's own secret files may be.
        #[arg(long)]
        from: Option<std::path::PathBuf>,
    },
    /// Write a throwaway CA and a certificate for the gateway, each service
    /// and one client into DIR, for local clusters and tests (kept if DIR
    /// already holds ca.pem). Production certificates come from your own CA
    /// or cert-manager, not from here.
    Certs {
        /// Where to write ca.pem and NAME.pem / NAME.key for gateway,
        /// identity, catalog, cart-order, reporting and client.
        #[arg(long)]
        dir: std::path::PathBuf,
        /// Another name every certificate carries (the gateway's public host
        /// name, say); repeat for more.
        #[arg(long = "name", value_name = "NAME")]
        names: Vec<String>,
    },
    /// Print the OpenAPI 3.1 document of the gateway's Connect face (what
    /// `GET /openapi.json` serves; docs/openapi.json is a copy of it).
    Openapi,
    /// Create an admin user. The password is read from SHOP_ADMIN_PASSWORD, or
    /// else from standard input (never from the command line).
    CreateAdmin {
        /// The admin's username.
        #[arg(long)]
        username: String,
        /// The admin's email address.
        #[arg(long)]
        email: String,
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        password_hash: PasswordHashConfig,
    },
}

impl Cli {
    /// The command line and environment, parsed; on a bad value, exits with
    /// a message that names where the value came from: a flag, or the env
    /// var an operator set (the flag alone would send them looking in vain).
    pub fn parse_or_exit() -> Self {
        use clap::FromArgMatches as _;
        let parsed = readable(<Cli as clap::CommandFactory>::command())
            .try_get_matches()
            .and_then(|matches| Cli::from_arg_matches(&matches));
        parsed.unwrap_or_else(|error| {
            let command = <Cli as clap::CommandFactory>::command();
            if let Some(message) = env_value_refused(&error, &command, std::env::args_os()) {
                eprintln!("shop: {message}");
                std::process::exit(2);
            }
            error.exit()
        })
    }
}

/// The command line as people read its help: `-h` gives each setting's
/// first sentence, `--help` all of it; an env var shows as `[env: NAME]`,
/// not with its value (`NAME=` read as "set to empty", and a value may be
/// a secret).
fn readable(command: clap::Command) -> clap::Command {
    let settings = command.get_arguments().filter(|arg| arg.get_env().is_some()).count();
    let mut command = command.mut_args(|arg| {
        let arg = arg.hide_env_values(true);
        match arg.get_help().map(ToString::to_string) {
            Some(full) => {
                let first = first_sentence(&full);
                if first.len() < full.len() { arg.help(first).long_help(full) } else { arg }
            }
            None => arg,
        }
    });
    // `shop up -h` and `shop serve -h` show what a first run touches; the
    // rest of their settings (every limit of every service) wait in --help.
    if settings > FIRST_RUN.len() * 2 {
        command = command
            .mut_args(|arg| {
                let first_run = FIRST_RUN.contains(&arg.get_id().as_str());
                if arg.get_env().is_some() && !first_run { arg.hide_short_help(true) } else { arg }
            })
            .after_help(format!(
                "These are the settings a first run touches. `--help` shows all {settings}, each an env var; \
                 docs/CONFIGURATION.md explains them."
            ));
    }
    let names: Vec<String> = command.get_subcommands().map(|sub| sub.get_name().to_owned()).collect();
    names.into_iter().fold(command, |command, name| command.mut_subcommand(name, readable))
}

/// The settings `-h` shows for `up` and `serve`: where the database and the
/// gateway are, how long a token lasts (the walkthrough sets it), TLS at
/// the gateway, the service token (`shop serve`) and metrics.
const FIRST_RUN: &[&str] = &[
    "database-url",
    "gateway-addr",
    "identity-access-token-ttl-secs",
    "gateway-tls-cert-file",
    "gateway-tls-key-file",
    "service-token",
    "metrics-addr",
];

/// Up to the first ". ", ";" or ":" that ends a clause, or all of `text`.
fn first_sentence(text: &str) -> String {
    let end = [". ", "; ", ": "].iter().filter_map(|stop| text.find(stop)).min().unwrap_or(text.len());
    text[..end].trim_end_matches('.').to_owned()
}

/// For a value clap refused that came from an env var (its flag was not on
/// the command line): what was wrong, naming the variable.
fn env_value_refused(
    error: &clap::Error,
    command: &clap::Command,
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(error.kind(), ErrorKind::ValueValidation | ErrorKind::InvalidValue) {
        return None;
    }
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else { return None };
    let long = arg.split_whitespace().next()?.strip_prefix("--")?;
    let given_as_flag = args
        .into_iter()
        .any(|given| given.to_str().is_some_and(|given| given.split('=').next() == Some(&format!("--{long}"))));
    if given_as_flag {
        return None;
    }
    let env = find_env(command, long)?;
    let value = match error.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value)) => value.clone(),
        _ => return None,
    };
    let reason = std::error::Error::source(error)
        .map_or_else(|| "not one of the allowed values".to_owned(), ToString::to_string);
    Some(format!("{env}={value:?} is refused: {reason} (the same setting as --{long}; see `shop --help`)"))
}

/// The env var of the argument `--long`, in `command` or any subcommand.
fn find_env(command: &clap::Command, long: &str) -> Option<String> {
    command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long))
        .and_then(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .or_else(|| command.get_subcommands().find_map(|sub| find_env(sub, long)))
}

/// How long `shop up` run from a terminal retries reaching Postgres, unless
/// SHOP_DB_CONNECT_RETRY_SECS says otherwise (elsewhere: its default, 30 s).
const UP_ON_A_TERMINAL_CONNECT_RETRY_SECS: u64 = 5;

/// Where `shop create-admin` looks for the password before reading stdin.
pub const ADMIN_PASSWORD_ENV: &str = "SHOP_ADMIN_PASSWORD";

/// Runs the parsed command to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let service_name = match &cli.command {
        Command::Serve { service, .. } => format!("shop-{}", service.name()),
        _ => "shop".to_owned(),
    };
    // Kept to the end: dropping it flushes the spans not exported yet.
    let log_format = LogFormat::from_env()?;
    let _telemetry = shop_platform::observability::telemetry::init(&service_name, log_format);
    match cli.command {
        Command::Up(config) => up(*config, log_format).await,
        Command::Serve { service, config } => serve(service, *config).await,
        Command::Seed { products, categories, database } => seed(products, categories, &database, log_format).await,
        Command::Bench(args) => crate::bench::run(args).await,
        Command::Openapi => {
            print!("{}", shop_proto::OPENAPI_JSON);
            Ok(())
        }
        Command::Migrate { database } => {
            crate::migrate(&database).await?;
            announce(log_format, "Every schema is migrated.");
            Ok(())
        }
        Command::Healthcheck { addr, service, timeout_secs, tls, internal } => {
            healthcheck(&addr, &service, timeout_secs, tls, &internal).await
        }
        Command::Certs { dir, names } => {
            let made = crate::certs::make(&dir, &names)?;
            let what = if made { "made" } else { "kept (ca.pem is already there)" };
            announce(log_format, &format!("{}: throwaway CA and certificates {what}", dir.display()));
            Ok(())
        }
        Command::InitSecrets { dir, from } => init_secrets(&dir, from.as_deref(), log_format),
        Command::CreateAdmin { username, email, database, password_hash } => {
            create_admin(&username, &email, &database, &password_hash, log_format).await
        }
    }
}

/// `shop up`: the suite in this process, until Ctrl-C or SIGTERM.
async fn up(mut config: SuiteConfig, log_format: LogFormat) -> anyhow::Result<()> {
    // Someone at a terminal wants to hear soon that Postgres is not there;
    // containers and services wait longer for it to start.
    let retry_set = std::env::var_os("SHOP_DB_CONNECT_RETRY_SECS").is_some()
        || std::env::args().any(|arg| arg.starts_with("--db-connect-retry-secs"));
    if std::io::stderr().is_terminal() && !retry_set {
        config.database.connect_retry_secs = UP_ON_A_TERMINAL_CONNECT_RETRY_SECS;
    }
    if let Some(addr) = &config.metrics.addr {
        shop_platform::observability::metrics::serve(addr).await?;
    }
    let speaks = what_the_gateway_speaks(&config);
    let suite = crate::up(config, shop_platform::transport::server::shutdown_signal()).await?;
    announce(log_format, &format!("Shop is up. Gateway: {} ({speaks})", suite.gateway_addr));
    tracing::info!(
        gateway = %suite.gateway_addr,
        identity = %suite.identity_addr,
        catalog = %suite.catalog_addr,
        cart_order = %suite.cart_order_addr,
        reporting = %suite.reporting_addr,
        "all services listening"
    );
    suite.wait().await
}

/// "plaintext gRPC and gRPC-Web", "… over TLS; mutual TLS inside", …
fn what_the_gateway_speaks(config: &SuiteConfig) -> String {
    let edge = match (&config.gateway.tls_cert_file, &config.gateway.tls_client_ca_file) {
        (None, _) => "plaintext gRPC and gRPC-Web",
        (Some(_), None) => "gRPC and gRPC-Web over TLS",
        (Some(_), Some(_)) => "gRPC and gRPC-Web over TLS, client certificates required",
    };
    let inside =
        if config.credentials.internal_tls.internal_tls_ca_file.is_some() { "; mutual TLS inside" } else { "" };
    format!("{edge}{inside}")
}

/// `shop serve <service>`: one service alone, until SIGTERM.
async fn serve(service: ServiceName, config: SuiteConfig) -> anyhow::Result<()> {
    if let Some(addr) = &config.metrics.addr {
        shop_platform::observability::metrics::serve(addr).await?;
    }
    let running = crate::serve(service, config, shop_platform::transport::server::shutdown_signal()).await?;
    tracing::info!(service = ?service, addr = %running.addr, "listening");
    running.task.await.context("server task panicked")?
}

/// `shop seed`: what is missing of the targets, with progress on the way.
async fn seed(products: u64, categories: u64, database: &DatabaseConfig, log_format: LogFormat) -> anyhow::Result<()> {
    let database = &database.for_service("catalog");
    shop_platform::storage::db::ensure_database(database).await?;
    let pool = shop_catalog::SCHEMA.connect(database, 4).await?;
    let mut progress = SeedProgress::new();
    let seeded =
        shop_catalog::seed(&pool, products, categories, |written, missing| progress.show(written, missing)).await?;
    progress.bar.finish_and_clear();
    let passed_over = match seeded.categories_passed_over {
        0 => String::new(),
        n => format!("; {n} category names were taken already and passed over"),
    };
    announce(
        log_format,
        &format!(
            "Seeded {} categories and {} products in {:.1} s (targets: {categories} categories, {products} products){passed_over}.",
            seeded.categories_added,
            seeded.products_added,
            progress.started.elapsed().as_secs_f64(),
        ),
    );
    Ok(())
}

/// `shop healthcheck`: exits 0 when the server answers SERVING.
async fn healthcheck(
    addr: &str,
    service: &str,
    timeout_secs: u64,
    tls: crate::ClientTlsArgs,
    internal: &shop_platform::config::InternalTlsConfig,
) -> anyhow::Result<()> {
    let tls = tls.or_internal(internal.files()?.as_ref());
    let status = crate::healthcheck(addr, service, std::time::Duration::from_secs(timeout_secs), &tls).await?;
    println!("{addr}: {status}");
    anyhow::ensure!(status == "SERVING", "{addr} is not serving");
    Ok(())
}

/// `shop init-secrets`: what a cluster needs, made where missing.
fn init_secrets(dir: &std::path::Path, from: Option<&std::path::Path>, log_format: LogFormat) -> anyhow::Result<()> {
    // Made always (cheap), so TLS is a switch in the services' settings.
    let tls = dir.join(crate::secrets::TLS_DIR);
    let given = from.map(|from| from.join(crate::secrets::TLS_DIR));
    let outcome = crate::secrets::init_tls(&tls, given.as_deref())?;
    announce(log_format, &format!("{}: TLS certificates {}", tls.display(), outcome.describe()));
    for (name, outcome) in crate::secrets::init(dir, from)? {
        announce(log_format, &format!("{}: {}", dir.join(name).display(), outcome.describe()));
    }
    Ok(())
}

/// `shop create-admin`: the first admin, its password never from argv.
async fn create_admin(
    username: &str,
    email: &str,
    database: &DatabaseConfig,
    password_hash: &PasswordHashConfig,
    log_format: LogFormat,
) -> anyhow::Result<()> {
    // Deliberately not a clap argument: a flag would put it in argv.
    let password = match std::env::var(ADMIN_PASSWORD_ENV) {
        Ok(password) if !password.is_empty() => SecretString::from(password),
        _ => read_password()?,
    };
    let database = database.for_service("identity");
    let id = crate::create_admin(&database, password_hash, username, email, password.expose_secret()).await?;
    announce(log_format, &format!("Created admin {username} (id {id})."));
    Ok(())
}

/// `shop seed`'s progress toward what is missing: a bar on a terminal, else a
/// plain line every few seconds (logs, CI), both with whole-number rates.
struct SeedProgress {
    bar: indicatif::ProgressBar,
    on_terminal: bool,
    started: std::time::Instant,
    last_line: std::time::Instant,
}

impl SeedProgress {
    const LINE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

    fn new() -> Self {
        let bar = indicatif::ProgressBar::no_length();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} missing products added ({rate}, {eta} left) {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .with_key("rate", |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = write!(out, "{:.0}/s", state.per_sec());
            }),
        );
        let now = std::time::Instant::now();
        Self { bar, on_terminal: std::io::stderr().is_terminal(), started: now, last_line: now }
    }

    fn show(&mut self, written: u64, missing: u64) {
        self.bar.set_length(missing);
        self.bar.set_position(written);
        let done = written == missing;
        if done {
            self.bar.set_message("building indexes and committing");
        }
        if !self.on_terminal && (done || self.last_line.elapsed() >= Self::LINE_EVERY) {
            self.last_line = std::time::Instant::now();
            let rate = written as f64 / self.started.elapsed().as_secs_f64().max(0.001);
            let then = if done { "; building indexes and committing" } else { "" };
            eprintln!("seed: {written} of {missing} missing products added ({rate:.0}/s){then}");
        }
    }
}

/// A line for the person running the command: on standard output, or, when
/// logs are JSON, as a log line (so that every line is JSON).
fn announce(format: LogFormat, message: &str) {
    match format {
        LogFormat::Json => tracing::info!("{message}"),
        LogFormat::Text => println!("{message}"),
    }
}

fn read_password() -> anyhow::Result<SecretString> {
    let line = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password for the new admin: ")?
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the password from stdin")?;
        line
    };
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!password.is_empty(), "no password given: set SHOP_ADMIN_PASSWORD or write it to stdin");
    Ok(SecretString::from(password))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn short_help_fits_a_screen_and_long_help_lists_every_setting() {
        let mut command = readable(Cli::command());
        for name in ["up", "serve"] {
            let sub = command.find_subcommand_mut(name).unwrap();
            let short = sub.render_help().to_string();
            assert!(short.lines().count() <= 80, "`shop {name} -h` is {} lines:\n{short}", short.lines().count());
            assert!(short.contains("SHOP_GATEWAY_ADDR") && short.contains("DATABASE_URL"), "{short}");
            let long = sub.render_long_help().to_string();
            for env in
                ["SHOP_CATALOG_MAX_LISTING_DEPTH", "SHOP_GATEWAY_UNFINISHED_BODIES_MIB", "SHOP_REQUEST_TIMEOUT_SECS"]
            {
                assert!(!short.contains(env) && long.contains(env), "{env} belongs to --help only");
            }
        }
    }

    #[test]
    fn a_refused_value_names_its_env_var_unless_the_flag_was_given() {
        let error = Cli::try_parse_from(["shop", "up", "--catalog-addr", "nope"]).unwrap_err();
        let message = env_value_refused(&error, &Cli::command(), ["shop", "up"].map(Into::into)).unwrap();
        assert!(message.starts_with("SHOP_CATALOG_ADDR=\"nope\" is refused: "), "{message}");
        assert!(message.contains("host:port"), "{message}");
        let given = ["shop", "up", "--catalog-addr", "nope"].map(Into::into);
        assert_eq!(env_value_refused(&error, &Cli::command(), given), None, "the flag's own error stands");

        let error = Cli::try_parse_from(["shop", "migrate", "--db-statement-timeout-ms=abc"]).unwrap_err();
        let message = env_value_refused(&error, &Cli::command(), ["shop", "migrate"].map(Into::into)).unwrap();
        assert!(message.starts_with("SHOP_DB_STATEMENT_TIMEOUT_MS=\"abc\""), "{message}");
    }

    #[test]
    fn host_names_are_listen_addresses() {
        let cli = Cli::try_parse_from(["shop", "up", "--gateway-addr", "localhost:0"]).unwrap();
        let Command::Up(config) = cli.command else { panic!("up") };
        assert_eq!((config.gateway.listen_addr.host(), config.gateway.listen_addr.port()), ("localhost", 0));
    }

    #[test]
    fn create_admin_takes_only_what_it_uses() {
        let command = Cli::command();
        let create_admin = command.find_subcommand("create-admin").unwrap();
        let longs: Vec<&str> = create_admin.get_arguments().filter_map(|arg| arg.get_long()).collect();
        assert!(longs.contains(&"identity-argon2-memory-kib"), "{longs:?}");
        for unused in ["identity-addr", "identity-signing-key", "identity-access-token-ttl-secs", "gateway-addr"] {
            assert!(!longs.contains(&unused), "{unused} in {longs:?}");
        }
    }

    fn env_names(command: &clap::Command, names: &mut std::collections::BTreeSet<String>) {
        for arg in command.get_arguments() {
            if let Some(env) = arg.get_env() {
                names.insert(env.to_string_lossy().into_owned());
            }
        }
        for sub in command.get_subcommands() {
            env_names(sub, names);
        }
    }

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn short_help_is_one_clause_per_setting_and_shows_no_env_values() {
        let mut command = readable(Cli::command());
        let up = command.find_subcommand_mut("up").expect("up");
        let short = up.render_help().to_string();
        let long = up.render_long_help().to_string();
        assert!(short.len() * 5 < long.len() * 4, "-h is shorter: {} bytes, --help {}", short.len(), long.len());
        assert!(!short.contains("TIMEOUT_SECS=]"), "no empty env values: {short}");
        assert!(short.contains("Database:") && short.contains("Gateway:"), "grouped: {short}");
        assert!(long.contains("Catalog:"), "every group in --help");
        assert!(long.contains("services may start before their database is up"), "the long form says all");
        assert_eq!(first_sentence("Seconds to wait. More here"), "Seconds to wait");
    }

    #[test]
    fn the_configuration_page_lists_every_env_setting() {
        let readme = include_str!("../docs/CONFIGURATION.md");
        let mut names = std::collections::BTreeSet::from([ADMIN_PASSWORD_ENV.to_owned()]);
        env_names(&Cli::command(), &mut names);
        assert!(names.len() > 20, "{names:?}");
        let missing: Vec<_> = names.iter().filter(|name| !readme.contains(&format!("`{name}`"))).collect();
        assert!(missing.is_empty(), "docs/CONFIGURATION.md lacks {missing:?}");
    }
}
