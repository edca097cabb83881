//! Product pictures: uploaded over gRPC (and the old multipart route, in
//! rest.rs), proven to be pictures and stored re-encoded without their
//! metadata, served by the gateway with an ETag and a long cache life, and
//! deleted from the store when a product lets go of them. The same walk
//! runs on the local directory and on a real S3 protocol server (moto).

use std::io::Cursor;
use std::net::SocketAddr;
use std::time::Duration;

use image::{DynamicImage, ImageFormat, RgbImage};
use prost_types::FieldMask;
use shop_proto::catalog::{DeleteProductRequest, ListProductsRequest, Product, UpdateProductRequest};
use tonic::Code;

use crate::edge::http1;
use crate::harness::{TestShop, assert_invalid_field, bearer, eventually, product};

/// What an uploaded JPEG carries that must not be kept: an EXIF segment
/// with a location.
const SECRET: &[u8] = b"GPS 48.8584N 2.2945E";

fn picture(format: ImageFormat, width: u32, height: u32) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let pixels = RgbImage::from_fn(width, height, |x, y| image::Rgb([(x * 40) as u8, (y * 40) as u8, 90]));
    DynamicImage::ImageRgb8(pixels).write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A JPEG with an APP1 (EXIF) segment right after its start marker.
fn jpeg_with_location() -> Vec<u8> {
    let plain = picture(ImageFormat::Jpeg, 6, 4);
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend_from_slice(SECRET);
    let length = u16::try_from(exif.len() + 2).unwrap().to_be_bytes();
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1, length[0], length[1]]);
    out.extend_from_slice(&exif);
    out.extend_from_slice(&plain[2..]);
    out
}

/// A PNG whose header claims 100,000 × 100,000 pixels (40 GB decoded).
fn decompression_bomb() -> Vec<u8> {
    let mut bomb = picture(ImageFormat::Png, 1, 1);
    // IHDR's width and height, then its CRC over type and data.
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    bomb
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// The path a product's image_url names on the gateway.
fn picture_path(product: &Product) -> String {
    let at = product.image_url.find("/images/").unwrap_or_else(|| panic!("not a kept picture: {}", product.image_url));
    product.image_url[at..].to_owned()
}

struct Fetched {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Fetched {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

async fn fetch(gateway: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Fetched {
    let (status, headers, body) = http1(gateway, "GET", path, headers, b"").await;
    Fetched { status, headers, body }
}

/// Waits for the sweeper to delete the picture at `path` from the store.
async fn deleted(gateway: SocketAddr, path: &str) {
    eventually(&format!("{path} is deleted"), Duration::from_secs(10), async || {
        match fetch(gateway, path, &[]).await.status {
            404 => Ok(()),
            other => Err(other),
        }
    })
    .await;
}

fn set_image(id: i64, image: Vec<u8>) -> UpdateProductRequest {
    UpdateProductRequest {
        id,
        image,
        update_mask: Some(FieldMask { paths: vec!["image".into()] }),
        ..Default::default()
    }
}

/// The product after an admin gave it `image` (empty: no picture).
async fn new_picture(shop: &TestShop, admin: &str, id: i64, image: Vec<u8>) -> Product {
    shop.catalog().update_product(bearer(set_image(id, image), admin)).await.expect("set the picture").into_inner()
}

/// The whole life of pictures, on whatever store the suite was given.
async fn pictures_live_and_die_with_their_products(shop: &TestShop) {
    let admin = shop.admin("root").await;
    let lamps = shop.create_category(&admin, "Lamps").await;
    let gateway = shop.suite.gateway_addr;

    // Created with a JPEG that carries a location: kept without it.
    let mut request = product("Desk lamp", "19.90", 3, lamps.id);
    request.image = jpeg_with_location();
    let lamp = shop.create_product(&admin, request).await;
    let first = picture_path(&lamp);
    assert!(first.starts_with(&format!("/images/products/{}/", lamp.id)) && first.ends_with(".jpg"), "{first}");
    let served = fetch(gateway, &first, &[]).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.header("content-type"), Some("image/jpeg"));
    assert_eq!(served.header("cache-control"), Some("public, max-age=31536000, immutable"));
    assert!(image::load_from_memory(&served.body).is_ok(), "the served bytes are a picture");
    assert!(!served.body.windows(SECRET.len()).any(|window| window == SECRET), "the location was kept");
    let etag = served.header("etag").expect("an ETag").to_owned();
    let again = fetch(gateway, &first, &[("if-none-match", &etag)]).await;
    assert_eq!((again.status, again.body.len()), (304, 0));
    // Listings and reads show the same address.
    let listed = shop.catalog().list_products(ListProductsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.products[0].image_url, lamp.image_url);

    // Not pictures, or too big to decode: refused naming `image`, nothing written.
    for bad in [b"not a picture at all".to_vec(), picture(ImageFormat::Png, 4, 4)[..30].to_vec(), decompression_bomb()]
    {
        let refused = shop.catalog().update_product(bearer(set_image(lamp.id, bad.clone()), &admin)).await.unwrap_err();
        assert_invalid_field(&refused, "image");
        let mut create = product("Floor lamp", "9.90", 1, lamps.id);
        create.image = bad;
        assert_invalid_field(&shop.catalog().create_product(bearer(create, &admin)).await.unwrap_err(), "image");
    }
    let listed = shop.catalog().list_products(ListProductsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.total_count, 1, "a refused create wrote nothing");
    assert_eq!(listed.products[0].image_url, lamp.image_url, "a refused update changed nothing");

    // The same picture sent again is the same address, and nothing of it is
    // scheduled for deletion (a failed resend cannot lose the file).
    let resent = shop.catalog().update_product(bearer(set_image(lamp.id, jpeg_with_location()), &admin)).await.unwrap();
    assert_eq!(resent.into_inner().image_url, lamp.image_url);
    let scheduled: i64 =
        sqlx::query_scalar("SELECT count(*) FROM catalog.picture_deletions").fetch_one(&shop.db().await).await.unwrap();
    assert_eq!(scheduled, 0);
    let head = http1(gateway, "HEAD", &first, &[], b"").await;
    assert_eq!((head.0, head.2.len()), (200, 0));

    // Replaced by a PNG: a new address, and the old picture is deleted.
    let replaced = new_picture(shop, &admin, lamp.id, picture(ImageFormat::Png, 5, 5)).await;
    let second = picture_path(&replaced);
    assert_ne!(second, first);
    assert_eq!(fetch(gateway, &second, &[]).await.header("content-type"), Some("image/png"));
    deleted(gateway, &first).await;

    // A WebP, then removed (empty bytes): the product has no picture and the file goes.
    let webp = new_picture(shop, &admin, lamp.id, picture(ImageFormat::WebP, 3, 2)).await;
    let third = picture_path(&webp);
    assert_eq!(fetch(gateway, &third, &[]).await.header("content-type"), Some("image/webp"));
    let removed = new_picture(shop, &admin, lamp.id, Vec::new()).await;
    assert_eq!(removed.image_url, "");
    deleted(gateway, &third).await;

    // An archived product's picture goes with it.
    let mut request = product("Wall lamp", "29.90", 2, lamps.id);
    request.image = picture(ImageFormat::Png, 2, 2);
    let wall = shop.create_product(&admin, request).await;
    let fourth = picture_path(&wall);
    assert_eq!(fetch(gateway, &fourth, &[]).await.status, 200);
    shop.catalog().delete_product(bearer(DeleteProductRequest { id: wall.id }, &admin)).await.unwrap();
    deleted(gateway, &fourth).await;

    // Only admins upload; addresses that are not pictures' are not served.
    let customer = shop.customer("ann").await;
    let denied = shop
        .catalog()
        .update_product(bearer(set_image(lamp.id, picture(ImageFormat::Png, 2, 2)), &customer))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    for path in ["/images/products/1/../../etc/passwd", "/images/products/1/abc.svg", "/images/other"] {
        assert_eq!(fetch(gateway, path, &[]).await.status, 404, "{path}");
    }
}

#[tokio::test]
async fn pictures_in_a_local_directory() {
    let shop = TestShop::start().await;
    pictures_live_and_die_with_their_products(&shop).await;
}

/// moto's S3 server on a free port, stopped when dropped.
struct S3Server {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn s3_server() -> S3Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto_server runs (python3 -m pip install 'moto[server]'; .ci/run installs it)");
    let server = S3Server { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) };
    eventually("moto_server listens", Duration::from_secs(30), async || {
        tokio::net::TcpStream::connect(server.addr).await.map(drop).map_err(|error| error.kind())
    })
    .await;
    server
}

#[tokio::test]
async fn pictures_in_s3_compatible_storage() {
    if std::process::Command::new("moto_server").arg("--help").output().is_err() {
        // A developer machine may not have it; CI must.
        eprintln!("skipped: moto_server is not installed (python3 -m pip install 'moto[server]')");
        assert!(std::env::var_os("CI").is_none(), "CI must have moto_server (pip install 'moto[server]')");
        return;
    }
    let s3 = s3_server().await;
    let (status, _, body) = http1(s3.addr, "PUT", "/shop-pictures", &[], b"").await;
    assert_eq!(status, 200, "the bucket: {}", String::from_utf8_lossy(&body));
    let endpoint = format!("http://{}", s3.addr);
    let shop = TestShop::start_with(|config| {
        config.files.location = "s3://shop-pictures/catalog".into();
        config.files.s3_endpoint = endpoint.clone();
        config.files.s3_region = "us-east-1".into();
        config.files.s3_access_key_id = "shop-test".into();
        config.files.s3_secret_access_key = "shop-test-secret".to_owned().into();
    })
    .await;
    pictures_live_and_die_with_their_products(&shop).await;
    let bucket = async || {
        let (status, _, listing) = http1(s3.addr, "GET", "/shop-pictures?list-type=2&prefix=catalog/", &[], b"").await;
        assert_eq!(status, 200);
        String::from_utf8_lossy(&listing).into_owned()
    };
    // Every product let go of its picture: the bucket is empty again.
    let listing = bucket().await;
    assert!(listing.contains("<KeyCount>0</KeyCount>"), "{listing}");
    // A picture kept is in the bucket, under the prefix, by its address's key.
    let admin = shop.login("root").await.access_token;
    let mut request = product("Ceiling lamp", "39.90", 1, shop.create_category(&admin, "Ceiling").await.id);
    request.image = picture(ImageFormat::Png, 3, 3);
    let kept = shop.create_product(&admin, request).await;
    let key = picture_path(&kept).replacen("/images/", "catalog/", 1);
    let listing = bucket().await;
    assert!(listing.contains("<KeyCount>1</KeyCount>") && listing.contains(&format!("<Key>{key}</Key>")), "{listing}");
}
