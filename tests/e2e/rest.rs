//! The old backend's REST routes on the gateway's port, spoken as its web
//! and mobile clients speak them (JSON over HTTP/1.1, `Authorization:
//! Bearer`): one sequence through every route, answers in the old shapes,
//! and the refusals in the old shapes too (docs/REST-COMPAT.md).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};

use crate::edge::http1;
use crate::harness::{PASSWORD, TestShop, eventually};

struct Rest {
    addr: SocketAddr,
}

type Answer = (u16, Vec<(String, String)>, Value);

impl Rest {
    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        let bearer = token.map(|token| format!("Bearer {token}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer.as_str()));
        }
        let body = body.map(|body| body.to_string()).unwrap_or_default();
        let (status, headers, raw) = http1(self.addr, method, path, &headers, body.as_bytes()).await;
        let json = if raw.is_empty() { Value::Null } else { serde_json::from_slice(&raw).unwrap_or(Value::Null) };
        (status, headers, json)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call("GET", path, token, None).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.call("POST", path, token, Some(body)).await
    }
}

/// A 1×1 PNG.
fn tiny_png() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image::RgbImage::new(1, 1)).write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
    answer.1.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

#[test]
fn an_old_client_registers_shops_and_is_refused_in_the_old_shapes() {
    // One long walk: in a debug build its polls need more than a test
    // thread's 2 MiB of stack.
    let walk = std::thread::Builder::new()
        .stack_size(32 << 20)
        .spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(an_old_client_walks_every_route());
        })
        .expect("a thread for the walk");
    if let Err(panic) = walk.join() {
        std::panic::resume_unwind(panic);
    }
}

async fn an_old_client_walks_every_route() {
    let shop = TestShop::start().await;
    let rest = Rest { addr: shop.suite.gateway_addr };
    let admin = shop.admin("root").await;

    // Register, log in, refresh: the old field names and answers.
    let registered = rest
        .post(
            "/api/auth/register/",
            None,
            json!({"username": "ann", "email": "ann@example.com", "password": PASSWORD, "password2": PASSWORD, "shoe_size": 41}),
        )
        .await;
    assert_eq!(registered.0, 201, "{:?}", registered.2);
    assert_eq!(registered.2, json!({"username": "ann", "email": "ann@example.com", "is_admin": false}));
    let mismatch = rest
        .post(
            "/api/auth/register/",
            None,
            json!({"username": "bob", "password": PASSWORD, "password2": "other-Word-99"}),
        )
        .await;
    assert_eq!(mismatch.0, 400, "{:?}", mismatch.2);
    assert!(mismatch.2.as_object().unwrap().values().all(|messages| messages.is_array()), "{:?}", mismatch.2);
    let login = rest.post("/api/auth/login/", None, json!({"username": "ann", "password": PASSWORD})).await;
    assert_eq!(login.0, 200, "{:?}", login.2);
    let access = login.2["access"].as_str().unwrap().to_owned();
    let refreshed = rest.post("/api/auth/refresh/", None, json!({"refresh": login.2["refresh"]})).await;
    assert_eq!(refreshed.0, 200, "{:?}", refreshed.2);
    assert!(refreshed.2["access"].is_string());
    let wrong = rest.post("/api/auth/login/", None, json!({"username": "ann", "password": "not-Her-Password-1"})).await;
    assert_eq!(wrong.0, 401);
    assert_eq!(wrong.2, json!({"detail": "No active account found with the given credentials"}));

    // Categories and products, written by the admin.
    let lamps = rest.post("/api/products/categories/", Some(&admin), json!({"name": "Lamps"})).await;
    assert_eq!(lamps.0, 201, "{:?}", lamps.2);
    assert_eq!(lamps.2["slug"], "lamps");
    let category_id = lamps.2["id"].as_i64().unwrap();
    let refused = rest.post("/api/products/categories/", Some(&access), json!({"name": "Chairs"})).await;
    assert_eq!(refused.0, 403);
    assert_eq!(refused.2, json!({"detail": "You do not have permission to perform this action."}));
    let anonymous = rest.post("/api/products/categories/", None, json!({"name": "Chairs"})).await;
    assert_eq!(anonymous.0, 401);
    assert_eq!(anonymous.2, json!({"detail": "Authentication credentials were not provided."}));
    assert_eq!(header(&anonymous, "www-authenticate"), Some("Bearer realm=\"api\""));

    let desk = rest
        .post(
            "/api/products/",
            Some(&admin),
            json!({"title": "Desk lamp", "description": "Warm light", "price": 12.5, "stock": "5", "category_id": category_id}),
        )
        .await;
    assert_eq!(desk.0, 201, "{:?}", desk.2);
    assert_eq!(desk.2["price"], "12.50");
    assert_eq!(desk.2["stock"], 5);
    assert_eq!(desk.2["image"], Value::Null);
    assert_eq!(desk.2["category"], json!({"id": category_id, "name": "Lamps", "slug": "lamps"}));
    assert!(desk.2.get("sold_count").is_none(), "the old create answered no sold_count: {:?}", desk.2);
    let desk_id = desk.2["id"].as_i64().unwrap();
    let floor = rest
        .post(
            "/api/products/",
            Some(&admin),
            json!({"title": "Floor lamp", "description": "Tall desk-free light", "price": "19", "stock": 2, "category_id": category_id}),
        )
        .await;
    assert_eq!(floor.0, 201, "{:?}", floor.2);
    let floor_id = floor.2["id"].as_i64().unwrap();
    let bad = rest
        .post(
            "/api/products/",
            Some(&admin),
            json!({"title": "X", "description": "Y", "price": "1", "stock": "many", "category_id": category_id}),
        )
        .await;
    assert_eq!((bad.0, &bad.2), (400, &json!({"stock": ["A valid integer is required."]})));
    let unknown_category = rest
        .post(
            "/api/products/",
            Some(&admin),
            json!({"title": "X", "description": "Y", "price": "1", "stock": 1, "category_id": 999_999}),
        )
        .await;
    assert_eq!(unknown_category.0, 400, "{:?}", unknown_category.2);
    assert!(unknown_category.2["category_id"].is_array(), "{:?}", unknown_category.2);

    // The listing: every query parameter, pages with absolute links.
    let listing = rest
        .get(
            "/api/products/?search=lamp&category=lamps&min_price=10&max_price=20&ordering=-price,bogus&page_size=1",
            None,
        )
        .await;
    assert_eq!(listing.0, 200, "{:?}", listing.2);
    assert_eq!(listing.2["count"], 2);
    assert_eq!(listing.2["results"][0]["title"], "Floor lamp");
    assert_eq!(listing.2["results"][0]["sold_count"], Value::Null);
    assert_eq!(listing.2["previous"], Value::Null);
    let host = rest.addr.to_string();
    assert_eq!(
        listing.2["next"],
        format!(
            "http://{host}/api/products/?category=lamps&max_price=20&min_price=10&ordering=-price%2Cbogus&page=2&page_size=1&search=lamp"
        )
    );
    let second = rest.get("/api/products/?ordering=-price&page_size=1&page=2", None).await;
    assert_eq!(second.2["results"][0]["title"], "Desk lamp");
    assert_eq!(second.2["previous"], format!("http://{host}/api/products/?ordering=-price&page_size=1"));
    assert_eq!(rest.get("/api/products/?page=9", None).await.2, json!({"detail": "Invalid page."}));
    let none = rest.get("/api/products/?category=nowhere", None).await;
    assert_eq!((none.0, &none.2), (200, &json!({"count": 0, "next": null, "previous": null, "results": []})));
    let priced = rest.get("/api/products/?min_price=abc", None).await;
    assert_eq!((priced.0, &priced.2), (400, &json!({"min_price": ["Enter a number."]})));
    // Bounds as django-filter read them: any decimal, rounded inwards; an
    // empty range is an empty page. Search terms split on commas too.
    let count = async |query: &str| rest.get(&format!("/api/products/?{query}"), None).await.2["count"].clone();
    assert_eq!(count("min_price=-5&max_price=1e6").await, json!(2));
    assert_eq!(count("max_price=-1").await, json!(0));
    assert_eq!(count("search=lamp,floor").await, json!(1));

    // One product: read, changed in part and in whole, routes as Django has them.
    let read = rest.get(&format!("/api/products/{desk_id}/"), None).await;
    assert_eq!((read.0, &read.2["title"]), (200, &json!("Desk lamp")));
    let missing = rest.get("/api/products/999999/", None).await;
    assert_eq!((missing.0, &missing.2), (404, &json!({"detail": "No Product matches the given query."})));
    assert_eq!(rest.get("/api/products/lamp/", None).await.0, 404);
    let unslashed = rest.get("/api/products?page=1", None).await;
    assert_eq!((unslashed.0, header(&unslashed, "location")), (301, Some("/api/products/?page=1")));
    let patched =
        rest.call("PATCH", &format!("/api/products/{desk_id}/"), Some(&admin), Some(json!({"price": "7"}))).await;
    assert_eq!(patched.0, 200, "{:?}", patched.2);
    assert_eq!((patched.2["price"].as_str(), patched.2["title"].as_str()), (Some("7.00"), Some("Desk lamp")));
    let partial_put =
        rest.call("PUT", &format!("/api/products/{desk_id}/"), Some(&admin), Some(json!({"title": "Lamp"}))).await;
    assert_eq!(partial_put.0, 400, "a PUT sets every field: {:?}", partial_put.2);

    // A picture, uploaded as the old clients upload it (multipart), served
    // on the request's host; what is not a picture, or not a whole form, is
    // refused in DRF's words and changes nothing.
    let form = |name: &str, content: &[u8]| {
        let mut body = format!(
            "--XyZ\r\ncontent-disposition: form-data; name=\"stock\"\r\n\r\n4\r\n--XyZ\r\ncontent-disposition: form-data; name=\"image\"; filename=\"{name}\"\r\ncontent-type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n--XyZ--\r\n");
        body
    };
    let bearer = format!("Bearer {admin}");
    let multipart = [("content-type", "multipart/form-data; boundary=XyZ"), ("authorization", bearer.as_str())];
    let desk = format!("/api/products/{desk_id}/");
    let (status, _, raw) = http1(rest.addr, "PATCH", &desk, &multipart, &form("desk.png", &tiny_png())).await;
    let uploaded: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!((status, &uploaded["stock"]), (200, &json!(4)), "{uploaded:?}");
    let image = uploaded["image"].as_str().expect("an image URL");
    let path = image.strip_prefix(&format!("http://{host}")).unwrap_or_else(|| panic!("{image} is not on {host}"));
    let (status, headers, _) = http1(rest.addr, "GET", path, &[], b"").await;
    assert_eq!(status, 200);
    assert!(headers.iter().any(|(name, value)| name == "content-type" && value == "image/png"), "{headers:?}");
    let (status, _, raw) = http1(rest.addr, "PATCH", &desk, &multipart, &form("notes.txt", b"not a picture")).await;
    assert_eq!(status, 400);
    let refused: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        refused,
        json!({"image": ["Upload a valid image. The file you uploaded was either not an image or a corrupted image."]})
    );
    let truncated = &form("desk.png", &tiny_png())[..60];
    let (status, _, raw) = http1(rest.addr, "PATCH", &desk, &multipart, truncated).await;
    let refused: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(status, 400, "{refused:?}");
    assert!(refused["detail"].as_str().unwrap().starts_with("Multipart form parse error"), "{refused:?}");
    let unchanged = rest.get(&desk, None).await;
    assert_eq!((&unchanged.2["image"], &unchanged.2["stock"]), (&json!(image), &json!(4)));
    // A browser's file input left empty sends no file: the picture stays.
    let (status, _, raw) = http1(rest.addr, "PATCH", &desk, &multipart, &form("", b"")).await;
    let kept: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!((status, &kept["image"]), (200, &json!(image)), "{kept:?}");
    // A PATCH naming nothing the product has: saved as it was, as Django did;
    // still an admin's route.
    let nothing = rest.call("PATCH", &desk, Some(&admin), Some(json!({"colour": "red"}))).await;
    assert_eq!((nothing.0, &nothing.2["title"], &nothing.2["image"]), (200, &json!("Desk lamp"), &json!(image)));
    let customer = rest.call("PATCH", &desk, Some(&access), Some(json!({}))).await;
    assert_eq!(customer.0, 403, "{:?}", customer.2);

    // Cart, checkout, orders, wishlist: the customer's own.
    let added = rest.post("/api/cart/add/", Some(&access), json!({"product_id": desk_id, "quantity": 2})).await;
    assert_eq!((added.0, &added.2), (200, &json!({"message": "Product added to cart"})));
    let unknown = rest.post("/api/cart/add/", Some(&access), json!({"product_id": 999_999})).await;
    assert_eq!((unknown.0, &unknown.2), (404, &json!({"error": "Invalid product ID"})));
    let cart = rest.get("/api/cart/", Some(&access)).await;
    assert_eq!(cart.0, 200, "{:?}", cart.2);
    assert_eq!(cart.2["items"], json!([{"id": desk_id, "product": "Desk lamp", "quantity": 2}]));
    assert!(cart.2["user"].is_i64());
    let checkout = rest.post("/api/cart/checkout/", Some(&access), json!({})).await;
    assert_eq!(checkout.0, 200, "{:?}", checkout.2);
    assert_eq!(checkout.2["message"], "Checkout successful");
    assert!(checkout.2["order_id"].is_i64() && checkout.2["ordered_at"].as_str().unwrap().ends_with('Z'));
    let empty = rest.post("/api/cart/checkout/", Some(&access), json!({})).await;
    assert_eq!(empty.0, 400, "{:?}", empty.2);
    assert!(empty.2["error"].is_string());
    let orders = rest.get("/api/orders/", Some(&access)).await;
    assert_eq!(orders.0, 200);
    assert_eq!(orders.2[0]["total_price"], json!(14.0));
    assert_eq!(orders.2[0]["items"], json!([{"id": desk_id, "product": "Desk lamp", "quantity": 2}]));
    let wished = rest.post("/api/wishlist/", Some(&access), json!({"product_id": floor_id})).await;
    assert_eq!((wished.0, &wished.2), (200, &json!({"message": "Product added to wishlist"})));
    assert_eq!(rest.get("/api/wishlist/", Some(&access)).await.2, json!({"products": ["Floor lamp"]}));
    let unwished = rest.call("DELETE", "/api/wishlist/", Some(&access), Some(json!({"product_id": floor_id}))).await;
    assert_eq!((unwished.0, &unwished.2), (200, &json!({"message": "Product removed from wishlist"})));

    // The admin's report: sold products, by title and category name.
    let sold = json!({"product": "Desk lamp", "category": "Lamps", "sold": 2});
    eventually("the sale in the report", Duration::from_secs(10), async || {
        let report = rest.get("/api/products/reports/products/?sort=most_sold", Some(&admin)).await;
        if report.2 == json!([sold]) { Ok(()) } else { Err(report.2) }
    })
    .await;
    assert_eq!(rest.get("/api/products/reports/products/", Some(&access)).await.0, 403);

    // Deleting, and the refusals of bad requests.
    let deleted = rest.call("DELETE", &format!("/api/products/{floor_id}/"), Some(&admin), None).await;
    assert_eq!((deleted.0, &deleted.2), (204, &Value::Null));
    assert_eq!(rest.get(&format!("/api/products/{floor_id}/"), None).await.0, 404);
    let (status, _, body) =
        http1(rest.addr, "POST", "/api/auth/login/", &[("content-type", "application/json")], b"{nope").await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().starts_with("JSON parse error - "), "{body}");
    let (status, _, _) = http1(rest.addr, "POST", "/api/auth/login/", &[("content-type", "text/plain")], b"hi").await;
    assert_eq!(status, 415);
    let wrong_method = rest.get("/api/cart/add/", Some(&access)).await;
    assert_eq!((wrong_method.0, &wrong_method.2), (405, &json!({"detail": "Method \"GET\" not allowed."})));
    assert_eq!(header(&wrong_method, "allow"), Some("POST, OPTIONS"));
    let stale = rest.get("/api/cart/", Some("not.a.token")).await;
    assert_eq!(stale.0, 401);
    assert_eq!(stale.2["code"], "token_not_valid");
    assert_eq!(
        rest.get("/api/cart/", None).await.2,
        json!({"detail": "Authentication credentials were not provided."})
    );
    assert!(rest.get("/api/nowhere/", None).await.0 == 404);
}

/// The request sequence of `tests/rest-replay/replay.py`, replayed against
/// this suite, answers as the old backend answered it (`django.json`, the
/// same script's transcript against the old backend): the same statuses, JSON
/// shapes and agreed values at every step, except the steps
/// `differences.json` lists, each with the way it differs and why.
#[tokio::test]
async fn the_old_backends_request_sequence_gets_the_old_backends_answers() {
    let shop = TestShop::start().await;
    let admin = "replay_admin";
    shop.admin(admin).await;
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rest-replay");
    let mut command = std::process::Command::new("python3");
    command.arg(folder.join("replay.py")).args(["--base", &format!("http://{}", shop.suite.gateway_addr)]).args([
        "--admin-username",
        admin,
        "--admin-password",
        PASSWORD,
    ]);
    // Off the runtime's thread: the suite under test runs on it.
    let replay = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the replay's thread")
        .expect("python3 runs the replay");
    assert!(replay.status.success(), "the replay failed: {}", String::from_utf8_lossy(&replay.stderr));
    let shop_steps: Vec<Value> = serde_json::from_slice(&replay.stdout).expect("the replay writes a JSON transcript");
    let read = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(folder.join(name)).expect("committed file")).expect("JSON")
    };
    let old_steps = read("django.json");
    let old_steps = old_steps.as_array().expect("a list of steps");
    let differences = read("differences.json");
    let differences = differences.as_object().expect("differences by step");

    assert_eq!(shop_steps.len(), old_steps.len(), "both transcripts replay the same sequence");
    let mut unexplained = Vec::new();
    for (old, new) in old_steps.iter().zip(&shop_steps) {
        let step = old["step"].as_str().expect("a step name");
        assert_eq!(new["step"], old["step"], "the steps come in the same order");
        let differ: Vec<&str> =
            ["status", "shape", "values"].into_iter().filter(|aspect| old.get(*aspect) != new.get(*aspect)).collect();
        let explained: Vec<&str> = differences
            .get(step)
            .map(|difference| {
                difference["differ"]
                    .as_array()
                    .expect("differ lists aspects")
                    .iter()
                    .filter_map(Value::as_str)
                    .collect()
            })
            .unwrap_or_default();
        if differ != explained {
            unexplained.push(format!(
                "{step}: differs in {differ:?}, differences.json says {explained:?}\n  old:  {}\n  shop: {}",
                json!({"status": old["status"], "shape": old["shape"], "values": old.get("values")}),
                json!({"status": new["status"], "shape": new["shape"], "values": new.get("values")}),
            ));
        }
    }
    for step in differences.keys() {
        assert!(
            old_steps.iter().any(|old| old["step"] == step.as_str()),
            "differences.json names an unknown step {step}"
        );
    }
    assert!(unexplained.is_empty(), "answers unlike the old backend's:\n{}", unexplained.join("\n"));
}
