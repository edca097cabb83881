//! Every catalog rule of API.md, through the gateway.

use prost_types::FieldMask;
use shop_proto::catalog::get_category_request::Key;
use shop_proto::catalog::{
    BatchGetProductsRequest, CreateCategoryRequest, CreateProductRequest, DeleteCategoryRequest, DeleteProductRequest,
    GetCategoryRequest, GetProductRequest, ListCategoriesRequest, ListCategoryCountsRequest, ListProductsRequest,
    UpdateCategoryRequest, UpdateProductRequest,
};
use tonic::Code;

use crate::harness::{TestShop, assert_invalid_field, bearer, product};

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask { paths: paths.iter().map(|path| path.to_string()).collect() })
}

#[tokio::test]
async fn a_category_slug_is_derived_from_its_name_when_empty() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Men's Fashion").await;
    assert_eq!(category.slug, "mens-fashion");
    assert_eq!(category.name, "Men's Fashion");
    let given = shop
        .catalog()
        .create_category(bearer(CreateCategoryRequest { name: "Shoes".into(), slug: "footwear".into() }, &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(given.slug, "footwear");
}

#[tokio::test]
async fn category_names_and_slugs_are_unique_and_validated() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    shop.create_category(&admin, "Books").await;
    let create =
        |name: &str, slug: &str| bearer(CreateCategoryRequest { name: name.into(), slug: slug.into() }, &admin);
    let same_slug = shop.catalog().create_category(create("Bookz", "books")).await.unwrap_err();
    assert_eq!(same_slug.code(), Code::AlreadyExists);
    let same_name = shop.catalog().create_category(create("BOOKS", "other-books")).await.unwrap_err();
    assert_eq!(same_name.code(), Code::AlreadyExists);
    assert_invalid_field(&shop.catalog().create_category(create("", "")).await.unwrap_err(), "name");
    assert_invalid_field(&shop.catalog().create_category(create(&"n".repeat(101), "")).await.unwrap_err(), "name");
    assert_invalid_field(&shop.catalog().create_category(create("Toys", "Toys!")).await.unwrap_err(), "slug");
    assert_invalid_field(&shop.catalog().create_category(create("!!!", "")).await.unwrap_err(), "slug");
}

#[tokio::test]
async fn category_counts_are_exact_by_name_and_leave_archived_products_out() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let toys = shop.create_category(&admin, "Toys").await;
    let books = shop.create_category(&admin, "books").await;
    shop.create_category(&admin, "Garden").await;
    for n in 0..3 {
        shop.create_product(&admin, product(&format!("Tome {n}"), "9.99", 1, books.id)).await;
    }
    let kite = shop.create_product(&admin, product("Kite", "19.99", 1, toys.id)).await;
    shop.create_product(&admin, product("Ball", "4.99", 1, toys.id)).await;
    shop.catalog().delete_product(bearer(DeleteProductRequest { id: kite.id }, &admin)).await.unwrap();

    // Public: no token needed.
    let counts = shop.catalog().list_category_counts(ListCategoryCountsRequest {}).await.unwrap().into_inner();
    let seen: Vec<(String, i64)> = counts
        .categories
        .iter()
        .map(|counted| (counted.category.as_ref().unwrap().name.clone(), counted.product_count))
        .collect();
    assert_eq!(seen, [("books".into(), 3), ("Garden".into(), 0), ("Toys".into(), 1)]);
}

#[tokio::test]
async fn categories_list_by_name_and_are_found_by_id_or_slug() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    for name in ["Toys", "books", "Garden"] {
        shop.create_category(&admin, name).await;
    }
    let listed = shop.catalog().list_categories(ListCategoriesRequest {}).await.unwrap().into_inner().categories;
    let names: Vec<&str> = listed.iter().map(|category| category.name.as_str()).collect();
    assert_eq!(names, ["books", "Garden", "Toys"]);
    let garden = &listed[1];
    let by_id = shop.catalog().get_category(GetCategoryRequest { key: Some(Key::Id(garden.id)) }).await.unwrap();
    assert_eq!(by_id.into_inner().slug, "garden");
    let by_slug =
        shop.catalog().get_category(GetCategoryRequest { key: Some(Key::Slug("toys".into())) }).await.unwrap();
    assert_eq!(by_slug.into_inner().name, "Toys");
    let unknown = shop.catalog().get_category(GetCategoryRequest { key: Some(Key::Slug("nope".into())) }).await;
    assert_eq!(unknown.unwrap_err().code(), Code::NotFound);
    let unknown = shop.catalog().get_category(GetCategoryRequest { key: Some(Key::Id(9999)) }).await;
    assert_eq!(unknown.unwrap_err().code(), Code::NotFound);
    let neither = shop.catalog().get_category(GetCategoryRequest { key: None }).await.unwrap_err();
    assert_invalid_field(&neither, "key");
}

#[tokio::test]
async fn updating_a_category_changes_only_what_the_mask_names() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Garden").await;
    let update = |name: &str, slug: &str, paths: &[&str]| {
        bearer(
            UpdateCategoryRequest { id: category.id, name: name.into(), slug: slug.into(), update_mask: mask(paths) },
            &admin,
        )
    };
    let renamed = shop.catalog().update_category(update("Garden & Patio", "", &["name"])).await.unwrap().into_inner();
    assert_eq!((renamed.name.as_str(), renamed.slug.as_str()), ("Garden & Patio", "garden"));
    let reslugged = shop.catalog().update_category(update("", "", &["slug"])).await.unwrap().into_inner();
    assert_eq!(reslugged.slug, "garden-patio");
    let replaced = shop.catalog().update_category(update("Outdoor", "outside", &[])).await.unwrap().into_inner();
    assert_eq!((replaced.name.as_str(), replaced.slug.as_str()), ("Outdoor", "outside"));
    let bad_path = shop.catalog().update_category(update("X", "", &["colour"])).await.unwrap_err();
    assert_invalid_field(&bad_path, "update_mask");
    let missing = UpdateCategoryRequest { id: 9999, name: "X".into(), slug: String::new(), update_mask: None };
    assert_eq!(shop.catalog().update_category(bearer(missing, &admin)).await.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn a_category_with_live_products_stays_and_one_with_only_archived_products_goes() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Books").await;
    let book = shop.create_product(&admin, product("Dune", "9.99", 5, category.id)).await;
    let alice = shop.customer("alice").await;
    crate::cart::add(&shop, &alice, book.id, 1).await.unwrap();
    let order = crate::checkout::checkout(&shop, &alice, "").await.unwrap();
    let delete = || bearer(DeleteCategoryRequest { id: category.id }, &admin);
    let refused = shop.catalog().delete_category(delete()).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("1 live product"), "{refused:?}");
    shop.catalog().delete_product(bearer(DeleteProductRequest { id: book.id }, &admin)).await.unwrap();
    shop.catalog().delete_category(delete()).await.expect("only archived products: it goes");
    let gone = shop.catalog().get_category(GetCategoryRequest { key: Some(Key::Slug("books".into())) }).await;
    assert_eq!(gone.unwrap_err().code(), Code::NotFound);
    // The order keeps its snapshot of the category.
    let kept = shop.orders().get_order(bearer(shop_proto::order::GetOrderRequest { id: order.id }, &alice)).await;
    assert_eq!(kept.unwrap().into_inner().items[0].category_slug, "books");

    let empty = shop.create_category(&admin, "Empty").await;
    shop.catalog().delete_category(bearer(DeleteCategoryRequest { id: empty.id }, &admin)).await.unwrap();
    let gone = shop.catalog().get_category(GetCategoryRequest { key: Some(Key::Id(empty.id)) }).await;
    assert_eq!(gone.unwrap_err().code(), Code::NotFound);
    let again = shop.catalog().delete_category(bearer(DeleteCategoryRequest { id: empty.id }, &admin)).await;
    assert_eq!(again.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn a_created_product_comes_back_with_exact_money_and_its_category() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Laptops").await;
    let mut request = product("ThinkPad", "750", 3, category.id);
    request.image_url = "https://img.example.com/tp.png".into();
    let created = shop.create_product(&admin, request).await;
    assert_eq!(created.price, "750.00");
    assert_eq!(created.stock, 3);
    assert_eq!(created.sold_count, 0);
    assert_eq!(created.category.as_ref().unwrap().slug, "laptops");
    let fetched = shop.catalog().get_product(GetProductRequest { id: created.id }).await.unwrap().into_inner();
    assert_eq!(fetched, created);
    let half = shop.create_product(&admin, product("Mouse", "750.5", 1, category.id)).await;
    assert_eq!(half.price, "750.50");
}

#[tokio::test]
async fn each_bad_product_field_is_named() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Misc").await;
    let with = |change: &dyn Fn(&mut CreateProductRequest)| {
        let mut request = product("Thing", "1.00", 1, category.id);
        change(&mut request);
        request
    };
    let cases: Vec<(CreateProductRequest, &str)> = vec![
        (with(&|r| r.title = String::new()), "title"),
        (with(&|r| r.title = "t".repeat(256)), "title"),
        (with(&|r| r.price = "1.999".into()), "price"),
        (with(&|r| r.price = "-1".into()), "price"),
        (with(&|r| r.price = "100000000".into()), "price"),
        (with(&|r| r.price = "abc".into()), "price"),
        (with(&|r| r.price = String::new()), "price"),
        (with(&|r| r.stock = -1), "stock"),
        (with(&|r| r.category_id = 0), "category_id"),
        (with(&|r| r.category_id = 9999), "category_id"),
        (with(&|r| r.image_url = "not a url".into()), "image_url"),
        (with(&|r| r.description = "d".repeat(10_001)), "description"),
    ];
    for (request, field) in cases {
        let status = shop.catalog().create_product(bearer(request.clone(), &admin)).await.unwrap_err();
        assert_invalid_field(&status, field);
    }
    let listed = shop.catalog().list_products(ListProductsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.total_count, 0, "nothing half-written");
}

#[tokio::test]
async fn updating_a_product_changes_only_the_masked_fields_or_all() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let books = shop.create_category(&admin, "Books").await;
    let toys = shop.create_category(&admin, "Toys").await;
    let created = shop.create_product(&admin, product("Dune", "9.99", 5, books.id)).await;
    let update = |request: UpdateProductRequest| bearer(request, &admin);
    let priced = shop
        .catalog()
        .update_product(update(UpdateProductRequest {
            id: created.id,
            price: "12.5".into(),
            update_mask: mask(&["price"]),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(priced.price, "12.50");
    assert_eq!((priced.title.as_str(), priced.stock), ("Dune", 5));

    let replaced = shop
        .catalog()
        .update_product(update(UpdateProductRequest {
            id: created.id,
            title: "Dune Messiah".into(),
            description: String::new(),
            price: "8".into(),
            stock: 2,
            category_id: toys.id,
            image_url: String::new(),
            image: Vec::new(),
            update_mask: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((replaced.title.as_str(), replaced.price.as_str(), replaced.stock), ("Dune Messiah", "8.00", 2));
    assert_eq!(replaced.category.unwrap().slug, "toys");

    // An empty mask replaces everything, so an empty title is refused.
    let empty = UpdateProductRequest { id: created.id, price: "1".into(), category_id: toys.id, ..Default::default() };
    assert_invalid_field(&shop.catalog().update_product(update(empty)).await.unwrap_err(), "title");
    let bad_path = UpdateProductRequest { id: created.id, update_mask: mask(&["colour"]), ..Default::default() };
    assert_invalid_field(&shop.catalog().update_product(update(bad_path)).await.unwrap_err(), "update_mask");
    let missing = UpdateProductRequest { id: 9999, update_mask: mask(&["stock"]), ..Default::default() };
    assert_eq!(shop.catalog().update_product(update(missing)).await.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn an_archived_product_is_gone_from_get_batch_and_listings() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Books").await;
    let kept = shop.create_product(&admin, product("Kept", "1", 1, category.id)).await;
    let archived = shop.create_product(&admin, product("Archived", "1", 1, category.id)).await;
    shop.catalog().delete_product(bearer(DeleteProductRequest { id: archived.id }, &admin)).await.unwrap();

    let get = shop.catalog().get_product(GetProductRequest { id: archived.id }).await;
    assert_eq!(get.unwrap_err().code(), Code::NotFound);
    let batch = shop
        .catalog()
        .batch_get_products(BatchGetProductsRequest { ids: vec![archived.id, kept.id] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.products.iter().map(|p| p.id).collect::<Vec<_>>(), [kept.id]);
    let listed = shop.catalog().list_products(ListProductsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.total_count, 1);
    assert_eq!(listed.products.iter().map(|p| p.id).collect::<Vec<_>>(), [kept.id]);
    let again = shop.catalog().delete_product(bearer(DeleteProductRequest { id: archived.id }, &admin)).await;
    assert_eq!(again.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn batch_get_keeps_request_order_answers_duplicates_once_and_caps_at_100() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Books").await;
    let a = shop.create_product(&admin, product("A", "1", 1, category.id)).await;
    let b = shop.create_product(&admin, product("B", "1", 1, category.id)).await;
    let found = shop
        .catalog()
        .batch_get_products(BatchGetProductsRequest { ids: vec![b.id, 9999, a.id, b.id] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.products.iter().map(|p| p.id).collect::<Vec<_>>(), [b.id, a.id]);
    let too_many = shop.catalog().batch_get_products(BatchGetProductsRequest { ids: (1..=101).collect() }).await;
    assert_invalid_field(&too_many.unwrap_err(), "ids");
}

/// Six products in two categories, for the listing tests.
async fn listing_fixture(shop: &TestShop) -> (String, Vec<shop_proto::catalog::Product>) {
    let admin = shop.admin("root").await;
    let books = shop.create_category(&admin, "Books").await;
    let garden = shop.create_category(&admin, "Garden").await;
    let mut created = Vec::new();
    for (title, description, price, category) in [
        ("Red Cotton Shirt", "soft and warm", "20.00", books.id),
        ("Blue shirt", "COTTON blend, red stitching", "15.50", books.id),
        ("Garden Hose", "green rubber", "15.50", garden.id),
        ("Rake", "steel, red handle", "30", garden.id),
        ("Cotton Gloves", "for gardening", "5", garden.id),
        ("Atlas", "maps of the world", "99.99", books.id),
    ] {
        let request = CreateProductRequest { description: description.into(), ..product(title, price, 10, category) };
        created.push(shop.create_product(&admin, request).await);
    }
    (admin, created)
}

async fn list(shop: &TestShop, request: ListProductsRequest) -> (Vec<String>, i64) {
    let response = shop.catalog().list_products(request).await.unwrap().into_inner();
    (response.products.into_iter().map(|p| p.title).collect(), response.total_count)
}

#[tokio::test]
async fn search_needs_every_term_in_title_or_description_in_any_case() {
    let shop = TestShop::start().await;
    listing_fixture(&shop).await;
    let search =
        |text: &str| ListProductsRequest { search: text.into(), ordering: "title".into(), ..Default::default() };
    assert_eq!(
        list(&shop, search("cotton")).await,
        (vec!["Blue shirt".into(), "Cotton Gloves".into(), "Red Cotton Shirt".into()], 3)
    );
    assert_eq!(list(&shop, search("RED   cotton")).await, (vec!["Blue shirt".into(), "Red Cotton Shirt".into()], 2));
    assert_eq!(list(&shop, search("shir")).await.1, 2, "terms match inside words");
    assert_eq!(list(&shop, search("100%")).await.1, 0, "LIKE wildcards are literal");
    assert_eq!(list(&shop, search("red zebra")).await.1, 0);
}

#[tokio::test]
async fn category_and_inclusive_price_filters_combine() {
    let shop = TestShop::start().await;
    listing_fixture(&shop).await;
    let filter = |category: &str, min: &str, max: &str| ListProductsRequest {
        category: category.into(),
        min_price: min.into(),
        max_price: max.into(),
        ordering: "title".into(),
        ..Default::default()
    };
    assert_eq!(list(&shop, filter("garden", "", "")).await.1, 3);
    assert_eq!(
        list(&shop, filter("", "15.5", "20")).await,
        (vec!["Blue shirt".into(), "Garden Hose".into(), "Red Cotton Shirt".into()], 3)
    );
    assert_eq!(list(&shop, filter("garden", "15.50", "30.00")).await, (vec!["Garden Hose".into(), "Rake".into()], 2));
    assert_eq!(list(&shop, filter("", "50", "10")).await.1, 0, "min above max is empty");
    let unknown = shop.catalog().list_products(filter("nope", "", "")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert_invalid_field(&shop.catalog().list_products(filter("", "1.001", "")).await.unwrap_err(), "min_price");
    assert_invalid_field(&shop.catalog().list_products(filter("", "", "-3")).await.unwrap_err(), "max_price");
}

#[tokio::test]
async fn every_ordering_sorts_with_ties_broken_by_id() {
    let shop = TestShop::start().await;
    let (_, created) = listing_fixture(&shop).await;
    let ids_in = |ordering: &str| {
        let shop = &shop;
        let ordering = ordering.to_owned();
        async move {
            let request = ListProductsRequest { ordering, page_size: 100, ..Default::default() };
            shop.catalog()
                .list_products(request)
                .await
                .unwrap()
                .into_inner()
                .products
                .into_iter()
                .map(|p| p.id)
                .collect::<Vec<_>>()
        }
    };
    let mut expected: Vec<_> = created.clone();
    // price, ties (15.50 twice) by id ascending
    expected.sort_by(|a, b| a.price.parse::<f64>().unwrap().total_cmp(&b.price.parse().unwrap()).then(a.id.cmp(&b.id)));
    assert_eq!(ids_in("price").await, expected.iter().map(|p| p.id).collect::<Vec<_>>());
    expected.reverse();
    assert_eq!(ids_in("-price").await, expected.iter().map(|p| p.id).collect::<Vec<_>>());
    let mut by_title: Vec<_> = created.clone();
    by_title.sort_by(|a, b| a.title.cmp(&b.title).then(a.id.cmp(&b.id)));
    let titles: Vec<i64> = by_title.iter().map(|p| p.id).collect();
    assert_eq!(ids_in("title").await, titles);
    let oldest_first: Vec<i64> = created.iter().map(|p| p.id).collect();
    assert_eq!(ids_in("created_at").await, oldest_first);
    let newest_first: Vec<i64> = oldest_first.iter().rev().copied().collect();
    assert_eq!(ids_in("-created_at").await, newest_first);
    assert_eq!(ids_in("").await, newest_first, "default is -created_at");
    // All sold_count are 0: ties broken by id, in the ordering's direction.
    assert_eq!(ids_in("sold_count").await, oldest_first);
    assert_eq!(ids_in("-sold_count").await, newest_first);
    let bad = shop.catalog().list_products(ListProductsRequest { ordering: "id".into(), ..Default::default() }).await;
    assert_invalid_field(&bad.unwrap_err(), "ordering");
}

#[tokio::test]
async fn pages_are_one_based_default_to_ten_and_cap_at_one_hundred() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let category = shop.create_category(&admin, "Books").await;
    for n in 0..12 {
        shop.create_product(&admin, product(&format!("Book {n:02}"), "1", 1, category.id)).await;
    }
    let page = |page: i32, page_size: i32| ListProductsRequest {
        page,
        page_size,
        ordering: "title".into(),
        ..Default::default()
    };
    let first = shop.catalog().list_products(page(0, 0)).await.unwrap().into_inner();
    assert_eq!((first.page, first.page_size, first.total_count, first.products.len()), (1, 10, 12, 10));
    let second = shop.catalog().list_products(page(2, 0)).await.unwrap().into_inner();
    assert_eq!(second.products.iter().map(|p| p.title.as_str()).collect::<Vec<_>>(), ["Book 10", "Book 11"]);
    let past_end = shop.catalog().list_products(page(5, 10)).await.unwrap().into_inner();
    assert!(past_end.products.is_empty());
    assert_eq!(past_end.total_count, 12);
    assert_invalid_field(&shop.catalog().list_products(page(1, 101)).await.unwrap_err(), "page_size");
    assert_invalid_field(&shop.catalog().list_products(page(-1, 10)).await.unwrap_err(), "page");
    let hundred = shop.catalog().list_products(page(1, 100)).await.unwrap().into_inner();
    assert_eq!(hundred.products.len(), 12);
}

#[tokio::test]
async fn totals_follow_creates_moves_and_archives() {
    let shop = TestShop::start().await;
    let (admin, created) = listing_fixture(&shop).await;
    let total = |category: &str| {
        let shop = &shop;
        let category = category.to_owned();
        async move {
            shop.catalog()
                .list_products(ListProductsRequest { category, ..Default::default() })
                .await
                .unwrap()
                .into_inner()
                .total_count
        }
    };
    assert_eq!((total("").await, total("books").await, total("garden").await), (6, 3, 3));
    let garden_id = created[2].category.as_ref().unwrap().id;
    let move_to_garden = UpdateProductRequest {
        id: created[0].id,
        category_id: garden_id,
        update_mask: mask(&["category_id"]),
        ..Default::default()
    };
    shop.catalog().update_product(bearer(move_to_garden, &admin)).await.unwrap();
    assert_eq!((total("").await, total("books").await, total("garden").await), (6, 2, 4));
    shop.catalog().delete_product(bearer(DeleteProductRequest { id: created[1].id }, &admin)).await.unwrap();
    assert_eq!((total("").await, total("books").await, total("garden").await), (5, 1, 4));
}

#[tokio::test]
async fn guests_browse_and_customers_cannot_change_the_catalog() {
    let shop = TestShop::start().await;
    let (_, created) = listing_fixture(&shop).await;
    shop.catalog().get_product(GetProductRequest { id: created[0].id }).await.unwrap();
    let customer = shop.customer("carl").await;
    let category_id = created[0].category.as_ref().unwrap().id;
    let denied = shop.catalog().create_product(bearer(product("Nope", "1", 1, category_id), &customer)).await;
    assert_eq!(denied.unwrap_err().code(), Code::PermissionDenied);
    let anonymous = shop.catalog().create_product(product("Nope", "1", 1, category_id)).await;
    assert_eq!(anonymous.unwrap_err().code(), Code::Unauthenticated);
}
