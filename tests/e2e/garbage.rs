//! A garbage pass driven by the contract's own descriptors: every public
//! RPC, every string field (and those of the messages it holds) set in turn
//! to hostile values, sent through the gateway with no token, a customer's
//! and an admin's. No answer may be INTERNAL or UNKNOWN, and the suite must
//! serve normally afterwards.

use std::collections::HashMap;

use bytes::{Buf as _, BufMut as _};
use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};
use shop_proto::catalog::{
    CreateCategoryRequest, CreateProductRequest, ListProductsRequest, UpdateCategoryRequest, UpdateProductRequest,
};
use shop_proto::identity::LoginRequest;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::harness::{PASSWORD, TestShop, product, registration};

/// Sends and receives messages as raw bytes: the requests are built from
/// the descriptors, not from generated types.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let length = src.remaining();
        Ok(Some(src.copy_to_bytes(length).to_vec()))
    }
}

fn hostile_values() -> Vec<(&'static str, String)> {
    vec![
        ("NUL", "a\0b".to_owned()),
        ("control characters", "x\u{1}\u{8}\u{1b}[2J\u{7f}y".to_owned()),
        ("70 KB", "w".repeat(70 * 1024)),
        ("mixed scripts", "Ωmega кириллица 中文 🛒 עברית \u{202e}evil".to_owned()),
    ]
}

/// Every message of the contract by full name (".shop.catalog.v1.Product").
fn messages(set: &FileDescriptorSet) -> HashMap<String, DescriptorProto> {
    fn collect(prefix: &str, message: &DescriptorProto, into: &mut HashMap<String, DescriptorProto>) {
        let name = format!("{prefix}.{}", message.name());
        for nested in &message.nested_type {
            collect(&name, nested, into);
        }
        into.insert(name, message.clone());
    }
    let mut all = HashMap::new();
    for file in &set.file {
        for message in &file.message_type {
            collect(&format!(".{}", file.package()), message, &mut all);
        }
    }
    all
}

fn length_delimited(number: i32, bytes: &[u8], into: &mut Vec<u8>) {
    prost::encoding::encode_key(number as u32, prost::encoding::WireType::LengthDelimited, into);
    prost::encoding::encode_varint(bytes.len() as u64, into);
    into.extend_from_slice(bytes);
}

/// One encoded request per string field reachable in `message` (two levels
/// deep), that field set to `value` and nothing else set; with the path of
/// the field.
fn requests(
    message: &DescriptorProto,
    all: &HashMap<String, DescriptorProto>,
    value: &str,
    depth: usize,
) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for field in &message.field {
        let number = field.number();
        match field.r#type() {
            Type::String => {
                let mut bytes = Vec::new();
                length_delimited(number, value.as_bytes(), &mut bytes);
                if field.label() == Label::Repeated {
                    length_delimited(number, b"ok", &mut bytes);
                }
                found.push((field.name().to_owned(), bytes));
            }
            Type::Message if depth > 0 => {
                if let Some(nested) = all.get(field.type_name()) {
                    for (path, inner) in requests(nested, all, value, depth - 1) {
                        let mut bytes = Vec::new();
                        length_delimited(number, &inner, &mut bytes);
                        found.push((format!("{}.{path}", field.name()), bytes));
                    }
                }
            }
            _ => {}
        }
    }
    found
}

/// A valid request for `path`, where an otherwise empty one would be refused
/// before a hostile field got far: a hostile field appended to it replaces
/// the field's valid value (protobuf keeps the last one).
fn valid_base(path: &str, category_id: i64, product_id: i64) -> Vec<u8> {
    let method = path.rsplit('/').next().unwrap_or_default();
    match method {
        "CreateProduct" => product("Base lamp", "1.00", 1, category_id).encode_to_vec(),
        "UpdateProduct" => {
            let base = product("Base lamp", "1.00", 1, category_id);
            UpdateProductRequest {
                id: product_id,
                title: base.title,
                description: base.description,
                price: base.price,
                stock: base.stock,
                category_id,
                image_url: String::new(),
                update_mask: None,
                image: Vec::new(),
            }
            .encode_to_vec()
        }
        "CreateCategory" => CreateCategoryRequest { name: "Base".into(), slug: String::new() }.encode_to_vec(),
        "UpdateCategory" => {
            UpdateCategoryRequest { id: category_id, name: "Base".into(), slug: String::new(), update_mask: None }
                .encode_to_vec()
        }
        "Register" => registration("base_user").encode_to_vec(),
        "Login" => LoginRequest { username: "alice".into(), password: PASSWORD.into() }.encode_to_vec(),
        _ => Vec::new(),
    }
}

async fn call(shop: &TestShop, path: &str, token: Option<&str>, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(shop.gateway.clone());
    grpc.ready().await.map_err(|error| Status::unavailable(error.to_string()))?;
    let mut request = tonic::Request::new(body);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", MetadataValue::try_from(format!("Bearer {token}")).expect("ascii"));
    }
    let path: http::uri::PathAndQuery = path.parse().expect("path");
    grpc.unary(request, path, RawCodec).await.map(tonic::Response::into_inner)
}

#[tokio::test]
async fn hostile_strings_in_every_field_of_every_public_rpc_never_reach_internal() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let customer = shop.customer("alice").await;
    let category = shop.create_category(&admin, "Lamps").await;
    let lamp = shop.create_product(&admin, product("Desk lamp", "19.99", 5, category.id)).await;
    let tokens = [("no token", None), ("customer", Some(customer.as_str())), ("admin", Some(admin.as_str()))];

    let set = FileDescriptorSet::decode(shop_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let all = messages(&set);
    let mut calls = 0;
    let mut broken = Vec::new();
    for file in &set.file {
        for service in &file.service {
            let service_name = format!("{}.{}", file.package(), service.name());
            if !public_services().contains(&service_name) {
                continue;
            }
            for method in &service.method {
                let path = format!("/{service_name}/{}", method.name());
                let input = all.get(method.input_type()).expect("input type");
                let base = valid_base(&path, category.id, lamp.id);
                for (what, value) in hostile_values() {
                    for (field, hostile) in requests(input, &all, &value, 2) {
                        let body = [base.as_slice(), &hostile].concat();
                        for (who, token) in tokens {
                            calls += 1;
                            if let Err(status) = call(&shop, &path, token, body.clone()).await
                                && matches!(status.code(), Code::Internal | Code::Unknown)
                            {
                                broken.push(format!("{path} {field}={what} as {who}: {status:?}"));
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(calls >= 300, "only {calls} calls: the descriptors were not walked");
    assert!(broken.is_empty(), "{} of {calls} calls broke:\n{}", broken.len(), broken.join("\n"));

    // Everything still works.
    let page = shop.catalog().list_products(ListProductsRequest::default()).await.expect("list").into_inner();
    assert!(page.products.iter().any(|product| product.id == lamp.id));
    shop.login("alice").await;
}

#[tokio::test]
async fn nul_and_control_characters_are_refused_naming_the_field_or_name_nothing() {
    use shop_proto::cart::CheckoutRequest;
    use shop_proto::catalog::GetCategoryRequest;
    use shop_proto::catalog::get_category_request::Key;
    use shop_proto::reporting::GetProductSalesReportRequest;

    use crate::harness::{assert_invalid_field, bearer};

    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let customer = shop.customer("alice").await;
    let category = shop.create_category(&admin, "Lamps").await;
    let lamp = shop.create_product(&admin, product("Desk lamp", "19.99", 5, category.id)).await;
    let bad = "a\0b";

    // Lookups by something that cannot be a slug find nothing.
    let list = ListProductsRequest { category: bad.into(), ..Default::default() };
    assert_eq!(shop.catalog().list_products(list).await.unwrap_err().code(), Code::NotFound);
    let get = GetCategoryRequest { key: Some(Key::Slug(bad.into())) };
    assert_eq!(shop.catalog().get_category(get).await.unwrap_err().code(), Code::NotFound);
    let report = GetProductSalesReportRequest { category: bad.into(), ..Default::default() };
    let mut reporting =
        shop_proto::reporting::reporting_service_client::ReportingServiceClient::new(shop.gateway.clone());
    assert_eq!(reporting.get_product_sales_report(bearer(report, &admin)).await.unwrap_err().code(), Code::NotFound);

    // Names, titles, descriptions and keys name their field.
    let status = shop
        .catalog()
        .create_category(bearer(CreateCategoryRequest { name: bad.into(), slug: String::new() }, &admin))
        .await
        .unwrap_err();
    assert_invalid_field(&status, "name");
    let rename = UpdateCategoryRequest { id: category.id, name: "Lamps\u{1b}[2J".into(), ..Default::default() };
    assert_invalid_field(&shop.catalog().update_category(bearer(rename, &admin)).await.unwrap_err(), "name");
    for (field, title, description) in [("title", bad, "fine"), ("description", "Fine", "line\0two")] {
        let create = CreateProductRequest {
            title: title.into(),
            description: description.into(),
            ..product("x", "1", 1, category.id)
        };
        assert_invalid_field(&shop.catalog().create_product(bearer(create, &admin)).await.unwrap_err(), field);
        let update = UpdateProductRequest {
            id: lamp.id,
            title: title.into(),
            description: description.into(),
            price: "1.00".into(),
            stock: 1,
            category_id: category.id,
            ..Default::default()
        };
        assert_invalid_field(&shop.catalog().update_product(bearer(update, &admin)).await.unwrap_err(), field);
    }
    // Titles and names refuse tag, annotation and deprecated format
    // characters, and text that shows nothing (a blank Hangul filler).
    for (field, title, description) in [
        ("title", "Lamp\u{E0041}\u{E0042}", "fine"),
        ("title", "Lamp\u{FFF9}cheap\u{FFFB}", "fine"),
        ("title", "La\u{206A}mp", "fine"),
        ("title", "\u{3164}", "fine"),
        ("title", " \u{3164}\u{200D} ", "fine"),
        ("description", "Fine", "tagged\u{E0001}"),
    ] {
        let create = CreateProductRequest {
            title: title.into(),
            description: description.into(),
            ..product("x", "1", 1, category.id)
        };
        assert_invalid_field(&shop.catalog().create_product(bearer(create, &admin)).await.unwrap_err(), field);
    }
    let blank = CreateCategoryRequest { name: "\u{3164}".into(), slug: "blank".into() };
    assert_invalid_field(&shop.catalog().create_category(bearer(blank, &admin)).await.unwrap_err(), "name");
    // A flag that is an emoji tag sequence is a title like any other.
    let scottish = "Tartan \u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}";
    shop.catalog().create_product(bearer(product(scottish, "1", 1, category.id), &admin)).await.unwrap();
    // A description may hold line breaks and tabs.
    let multiline =
        CreateProductRequest { description: "one\r\ntwo\tthree".into(), ..product("Lines", "1", 1, category.id) };
    shop.catalog().create_product(bearer(multiline, &admin)).await.unwrap();
    let checkout = CheckoutRequest { idempotency_key: bad.into() };
    assert_invalid_field(&shop.cart().checkout(bearer(checkout, &customer)).await.unwrap_err(), "idempotency_key");
    let mut register = registration("bob");
    register.password = "tulip\0Orbit-42".into();
    register.password_confirm = register.password.clone();
    assert_invalid_field(&shop.identity().register(register).await.unwrap_err(), "password");
}

/// The services the gateway routes, as the contract says.
fn public_services() -> &'static [String] {
    shop_proto::contract::contract().expect("the contract").public_services()
}
