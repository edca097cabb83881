//! The search box (SearchProducts), through the gateway: typos, prefixes,
//! ranking, facets counted by hand, highlights, filters, archived products,
//! read-your-writes, the limits, and the JSON face.

use std::collections::BTreeMap;

use serde_json::Value;
use shop_proto::catalog::{
    CreateProductRequest, DeleteProductRequest, SearchProductsRequest, SearchProductsResponse, UpdateProductRequest,
};
use tonic::Code;

use crate::edge::http1;
use crate::harness::{TestShop, assert_invalid_field, bearer};

fn query(text: &str) -> SearchProductsRequest {
    SearchProductsRequest { query: text.into(), ..Default::default() }
}

fn titles(found: &SearchProductsResponse) -> Vec<String> {
    found.hits.iter().map(|hit| hit.product.as_ref().unwrap().title.clone()).collect()
}

fn described(title: &str, description: &str, price: &str, category_id: i64) -> CreateProductRequest {
    CreateProductRequest {
        title: title.into(),
        description: description.into(),
        price: price.into(),
        stock: 5,
        category_id,
        image_url: String::new(),
        image: Vec::new(),
    }
}

async fn search(shop: &TestShop, request: SearchProductsRequest) -> SearchProductsResponse {
    shop.catalog().search_products(request).await.unwrap().into_inner()
}

#[tokio::test]
async fn typed_misspelled_and_half_typed_queries_find_the_product_meant() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let phones = shop.create_category(&admin, "Phones").await;
    let audio = shop.create_category(&admin, "Audio").await;
    for (title, description, category) in [
        ("Apple iPhone 15", "The phone with a great camera", phones.id),
        ("Phone case", "Fits the iPhone 15 snugly", phones.id),
        ("Wireless headphones", "Over-ear, noise cancelling", audio.id),
        ("Head lamp", "For runners at night", audio.id),
        ("Café grinder", "Grinds coffee beans", audio.id),
    ] {
        shop.create_product(&admin, described(title, description, "49.00", category)).await;
    }

    // A swap of two letters is one typo; the title beats the description.
    let found = search(&shop, query("iphnoe")).await;
    assert_eq!(titles(&found)[..2], ["Apple iPhone 15", "Phone case"]);
    assert_eq!((found.hits[0].matched_words, found.hits[0].typos), (1, 1));
    assert_eq!(found.did_you_mean, "iphone");
    // Search as you type: the last word is a prefix.
    let typing = search(&shop, query("wireless hea")).await;
    assert_eq!(titles(&typing)[0], "Wireless headphones");
    let highlights: Vec<(&str, i32, i32)> = typing.hits[0]
        .highlights
        .iter()
        .map(|highlight| (highlight.field.as_str(), highlight.start, highlight.end))
        .collect();
    assert_eq!(highlights, [("title", 0, 8), ("title", 9, 12)], "the whole word and the typed start");
    assert_eq!(search(&shop, query("head")).await.hits.len(), 2, "head lamp and headphones");
    assert_eq!(titles(&search(&shop, query("head")).await)[0], "Head lamp", "a whole word before a prefix");
    // Accents fold, both ways.
    assert_eq!(titles(&search(&shop, query("cafe")).await), ["Café grinder"]);
    let accented = search(&shop, query("CAFÉ grind")).await;
    assert_eq!(accented.hits[0].highlights[0].end, 4, "characters, not bytes");
    // Nothing like it: empty, with the bands still there.
    let nothing = search(&shop, query("zzzzzz")).await;
    assert_eq!((nothing.total_count, nothing.hits.len(), nothing.price_bands.len()), (0, 0, 5));
    assert!(nothing.categories.is_empty());
}

#[tokio::test]
async fn facets_and_totals_equal_a_count_by_hand_under_every_filter() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let lamps = shop.create_category(&admin, "Lamps").await;
    let desks = shop.create_category(&admin, "Desks").await;
    let mut catalog = Vec::new();
    for n in 0..24_i64 {
        let (category, name) = if n % 3 == 0 { (&desks, "desk") } else { (&lamps, "lamp") };
        let title = format!("{} {name} {n}", if n % 2 == 0 { "Brass" } else { "Steel" });
        let price = format!("{}.50", 5 + n * 13);
        shop.create_product(&admin, described(&title, "", &price, category.id)).await;
        catalog.push((title.to_lowercase(), category.clone(), 5 + n * 13));
    }
    // Archived: never found, never counted.
    let gone = shop.create_product(&admin, described("Brass lamp gone", "", "10.00", lamps.id)).await;
    shop.catalog().delete_product(bearer(DeleteProductRequest { id: gone.id }, &admin)).await.unwrap();

    let bands = [(0, 25), (25, 50), (50, 100), (100, 250), (250, i64::MAX)];
    for (text, category, min, max) in [
        ("brass", None, None, None),
        ("brass lamp", None, None, None),
        ("stel", None, None, None),
        ("steel", Some(&lamps), None, None),
        ("brass", None, Some(50), Some(200)),
        ("", Some(&desks), Some(100), None),
    ] {
        let mut request = query(text);
        request.category = category.map(|category| category.slug.clone()).unwrap_or_default();
        request.min_price = min.map(|min: i64| format!("{min}.00")).unwrap_or_default();
        request.max_price = max.map(|max: i64| format!("{max}.00")).unwrap_or_default();
        request.page_size = 100;
        let found = search(&shop, request).await;

        // By hand: a word matches a title word whole, the last also as its
        // start (no title word here is within a typo of a query word).
        let words: Vec<&str> = text.split_whitespace().collect();
        let matches = |title: &str| {
            words.is_empty()
                || words.iter().enumerate().any(|(at, word)| {
                    title.split_whitespace().any(|have| {
                        have == *word || (at + 1 == words.len() && word.len() >= 2 && have.starts_with(word))
                    })
                })
        };
        let expected: Vec<&(String, shop_proto::catalog::Category, i64)> = catalog
            .iter()
            .filter(|(title, in_category, units)| {
                let cents = units * 100 + 50;
                matches(title)
                    && category.is_none_or(|category| category.id == in_category.id)
                    && min.is_none_or(|min| cents >= min * 100)
                    && max.is_none_or(|max| cents <= max * 100)
            })
            .collect();
        assert_eq!(found.total_count, expected.len() as i64, "{text:?} {min:?} {max:?}");
        assert_eq!(found.hits.len(), expected.len(), "{text:?}");
        let mut per_category: BTreeMap<String, i64> = BTreeMap::new();
        let mut per_band = [0_i64; 5];
        for (_, in_category, units) in &expected {
            *per_category.entry(in_category.slug.clone()).or_default() += 1;
            let cents = units * 100 + 50;
            per_band[bands
                .iter()
                .position(|(low, high)| cents >= low * 100 && cents < high.saturating_mul(100))
                .unwrap()] += 1;
        }
        let got: BTreeMap<String, i64> =
            found.categories.iter().map(|facet| (facet.slug.clone(), facet.count)).collect();
        assert_eq!(got, per_category, "{text:?}");
        let got_bands: Vec<i64> = found.price_bands.iter().map(|band| band.count).collect();
        assert_eq!(got_bands, per_band, "{text:?}");
        assert_eq!(found.price_bands[1].min_price, "25.00");
        assert_eq!(found.price_bands[4].max_price, "");
        assert!(titles(&found).iter().all(|title| title != "Brass lamp gone"));
    }
}

#[tokio::test]
async fn a_write_is_found_by_the_next_search_and_an_archived_product_is_not() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let toys = shop.create_category(&admin, "Toys").await;
    let kite = shop.create_product(&admin, described("Stunt kite", "", "20.00", toys.id)).await;
    assert_eq!(titles(&search(&shop, query("kite")).await), ["Stunt kite"]);
    let renamed = UpdateProductRequest {
        id: kite.id,
        title: "Stunt glider".into(),
        update_mask: Some(prost_types::FieldMask { paths: vec!["title".into()] }),
        ..Default::default()
    };
    shop.catalog().update_product(bearer(renamed, &admin)).await.unwrap();
    assert_eq!(search(&shop, query("kite")).await.total_count, 0);
    assert_eq!(titles(&search(&shop, query("glider")).await), ["Stunt glider"]);
    shop.catalog().delete_product(bearer(DeleteProductRequest { id: kite.id }, &admin)).await.unwrap();
    assert_eq!(search(&shop, query("glider")).await.total_count, 0);
}

#[tokio::test]
async fn bad_queries_filters_and_pages_are_refused_naming_the_field() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let toys = shop.create_category(&admin, "Toys").await;
    shop.create_product(&admin, described("Ball", "", "2.00", toys.id)).await;
    let refused = |request| async { shop.catalog().search_products(request).await.unwrap_err() };
    assert_invalid_field(&refused(query(&"a".repeat(201))).await, "query");
    let eleven: Vec<String> = (0..11).map(|n| format!("word{n}")).collect();
    assert_invalid_field(&refused(query(&eleven.join(" "))).await, "query");
    assert_invalid_field(
        &refused(SearchProductsRequest { min_price: "cheap".into(), ..query("ball") }).await,
        "min_price",
    );
    assert_invalid_field(&refused(SearchProductsRequest { page_size: 101, ..query("ball") }).await, "page_size");
    assert_invalid_field(&refused(SearchProductsRequest { page: -1, ..query("ball") }).await, "page");
    let unknown = refused(SearchProductsRequest { category: "nope".into(), ..query("ball") }).await;
    assert_eq!(unknown.code(), Code::NotFound);
    let empty_range =
        search(&shop, SearchProductsRequest { min_price: "5".into(), max_price: "1".into(), ..query("") }).await;
    assert_eq!(empty_range.total_count, 0);
}

#[tokio::test]
async fn pages_go_as_deep_as_listings_and_past_the_end_is_empty_with_the_counts() {
    let shop = TestShop::start_with(|config| config.catalog.max_listing_depth = 4).await;
    let admin = shop.admin("root").await;
    let toys = shop.create_category(&admin, "Toys").await;
    for n in 0..6 {
        shop.create_product(&admin, described(&format!("Ball {n}"), "", "2.00", toys.id)).await;
    }
    let page = |page, page_size| SearchProductsRequest { page, page_size, ..query("ball") };
    assert_eq!(search(&shop, page(2, 2)).await.hits.len(), 2);
    let too_deep = shop.catalog().search_products(page(2, 3)).await.unwrap_err();
    assert_eq!(too_deep.code(), Code::OutOfRange);
    assert!(too_deep.message().starts_with("page:"), "{too_deep:?}");
    let past_end = search(&shop, page(3, 3)).await;
    assert_eq!((past_end.hits.len(), past_end.total_count, past_end.categories[0].count), (0, 6, 6));
}

#[tokio::test]
async fn the_search_box_answers_over_connect_json_in_the_proto3_mapping() {
    let shop = TestShop::start().await;
    let admin = shop.admin("root").await;
    let lamps = shop.create_category(&admin, "Lamps").await;
    shop.create_product(&admin, described("Brass desk lamp", "Warm light", "19.90", lamps.id)).await;
    let answer = http1(
        shop.suite.gateway_addr,
        "POST",
        "/shop.catalog.v1.CatalogService/SearchProducts",
        &[("content-type", "application/json")],
        br#"{"query":"brsas desk "}"#,
    )
    .await;
    assert_eq!(answer.0, 200, "{}", String::from_utf8_lossy(&answer.2));
    let got: Value = serde_json::from_slice(&answer.2).unwrap();
    assert_eq!(got["totalCount"], "1");
    assert_eq!(got["hits"][0]["product"]["title"], "Brass desk lamp");
    assert_eq!((&got["hits"][0]["matchedWords"], &got["hits"][0]["typos"]), (&Value::from(2), &Value::from(1)));
    assert_eq!(got["didYouMean"], "brass desk");
    assert_eq!(got["categories"][0]["slug"], "lamps");
    assert_eq!(got["priceBands"].as_array().unwrap().len(), 5);
}
