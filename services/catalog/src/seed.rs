//! `shop seed`: fills the catalog with realistic random products, fast. Rows
//! go in through COPY, in one transaction with their outbox events and the
//! live-product counts, so readers of the event feed (reporting) see every
//! seeded product like any other. Idempotent in size: it only adds what is
//! missing to reach the target.
//!
//! A data generator, not a domain rule: its own room beside `domain`. It
//! makes categories through the domain's use case, writes the rows' COPY
//! text, and leaves every statement (the COPY itself, the table lock, the
//! index rebuild, the counts) to `repo`.

use std::collections::HashSet;
use std::fmt::Write as _;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use shop_platform::kernel::money::Money;
use sqlx::PgPool;

use crate::domain::categories::{Categories, CategoryFields};
use crate::error::Error;
use crate::model::{Category, CategoryName, Event, Product, Slug};
use crate::repo;

const CATEGORY_NAMES: &[&str] = &[
    "Electronics",
    "Books",
    "Garden",
    "Toys",
    "Kitchen",
    "Sports",
    "Outdoors",
    "Beauty",
    "Health",
    "Automotive",
    "Music",
    "Movies",
    "Games",
    "Office",
    "Pets",
    "Baby",
    "Jewelry",
    "Shoes",
    "Men's Fashion",
    "Women's Fashion",
    "Tools",
    "Home Decor",
    "Furniture",
    "Lighting",
    "Bedding",
    "Bath",
    "Grocery",
    "Snacks",
    "Beverages",
    "Crafts",
    "Art Supplies",
    "Stationery",
    "Travel",
    "Luggage",
    "Watches",
    "Phones",
    "Computers",
    "Cameras",
    "Audio",
    "Video",
    "Smart Home",
    "Fitness",
    "Cycling",
    "Camping",
    "Fishing",
    "Hunting",
    "Party",
    "Seasonal",
    "Collectibles",
    "Industrial",
];

const ADJECTIVES: &[&str] = &[
    "red",
    "blue",
    "green",
    "black",
    "white",
    "silver",
    "golden",
    "small",
    "large",
    "compact",
    "portable",
    "wireless",
    "classic",
    "modern",
    "vintage",
    "premium",
    "soft",
    "durable",
    "light",
    "heavy",
    "smart",
    "quiet",
    "fast",
    "warm",
    "cool",
    "organic",
    "handmade",
    "waterproof",
    "foldable",
    "ergonomic",
    "deluxe",
    "basic",
    "rustic",
    "sleek",
];
const MATERIALS: &[&str] = &[
    "cotton",
    "leather",
    "steel",
    "wooden",
    "ceramic",
    "glass",
    "bamboo",
    "wool",
    "linen",
    "plastic",
    "aluminium",
    "silk",
    "denim",
    "marble",
    "copper",
    "rubber",
    "canvas",
    "velvet",
];
const NOUNS: &[&str] = &[
    "shirt",
    "lamp",
    "chair",
    "table",
    "mug",
    "kettle",
    "speaker",
    "headphones",
    "backpack",
    "jacket",
    "watch",
    "camera",
    "blanket",
    "pillow",
    "bottle",
    "knife",
    "pan",
    "notebook",
    "pen",
    "keyboard",
    "mouse",
    "monitor",
    "tent",
    "ball",
    "racket",
    "helmet",
    "bicycle",
    "scarf",
    "boots",
    "sneakers",
    "wallet",
    "belt",
    "vase",
    "frame",
    "clock",
    "drill",
    "hammer",
    "brush",
    "candle",
    "rug",
    "shelf",
    "desk",
    "sofa",
    "mirror",
    "toaster",
    "blender",
    "puzzle",
    "doll",
    "guitar",
    "drum",
];
const PHRASES: &[&str] = &[
    "built to last",
    "easy to clean",
    "perfect gift",
    "for everyday use",
    "with a lifetime warranty",
    "made in small batches",
    "loved by customers",
    "great value",
    "for home and office",
    "designed for comfort",
    "ready to ship",
];

/// From this many new products on, indexes are rebuilt rather than updated.
const REBUILD_INDEXES_FROM: u64 = 100_000;

/// How many rows go in one COPY statement.
const COPY_BATCH: u64 = 50_000;

fn pick<'a>(rng: &mut SmallRng, words: &[&'a str]) -> &'a str {
    words[rng.random_range(0..words.len())]
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Every word a seeded title can hold (for load tests that search them).
pub fn vocabulary() -> impl Iterator<Item = &'static str> {
    ADJECTIVES.iter().chain(MATERIALS).chain(NOUNS).copied()
}

/// What a seed run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Seeded {
    pub categories_added: u64,
    /// Names the seed would have used that existing categories already had.
    pub categories_passed_over: u64,
    pub products_added: u64,
}

/// Brings the catalog to at least `categories` categories and `products` live
/// products. `progress` hears how many products were written so far, and
/// how many were missing (what this run adds).
pub async fn seed(
    pool: &PgPool,
    products: u64,
    categories: u64,
    progress: impl FnMut(u64, u64),
) -> anyhow::Result<Seeded> {
    let mut seeded = Seeded::default();
    let categories = fill_categories(pool, categories, &mut seeded).await?;
    anyhow::ensure!(!categories.is_empty() || products == 0, "products need at least one category");
    let live = repo::categories::live_count(&mut *pool.acquire().await?, None).await? as u64;
    let missing = products.saturating_sub(live);
    if missing > 0 {
        add_products(pool, &categories, missing, progress).await?;
        seeded.products_added = missing;
    }
    Ok(seeded)
}

/// Makes categories until there are `target`, through the domain's use case;
/// names and slugs already taken (by an admin, or an earlier seed) are passed
/// over: the seed's list goes on, then "Category N". Returns them all.
async fn fill_categories(pool: &PgPool, target: u64, seeded: &mut Seeded) -> anyhow::Result<Vec<Category>> {
    let catalog = Categories::new(pool.clone());
    let existing = catalog.categories().await?;
    let mut taken: HashSet<String> =
        existing.iter().flat_map(|category| [category.slug.clone(), category.name.to_lowercase()]).collect();
    let mut have = existing.len() as u64;
    let mut candidates = (0..)
        .map(|n: usize| CATEGORY_NAMES.get(n).map_or_else(|| format!("Category {}", n + 1), |name| name.to_string()));
    while have < target {
        let name = candidates.next().unwrap_or_default();
        let name = CategoryName::parse(&name).map_err(|reason| anyhow::anyhow!("category name {name}: {reason}"))?;
        let slug = Slug::derive(&name).map_err(|reason| anyhow::anyhow!("category slug of {name:?}: {reason}"))?;
        if taken.contains(slug.as_str()) || taken.contains(&name.as_str().to_lowercase()) {
            seeded.categories_passed_over += 1;
            continue;
        }
        let (name_taken, slug_text) = (name.as_str().to_lowercase(), slug.as_str().to_owned());
        match catalog.create_category(CategoryFields { name, slug }).await {
            Ok(_) => {}
            // Made meanwhile by someone else: pass it over too.
            Err(Error::AlreadyExists(_)) => {
                seeded.categories_passed_over += 1;
                continue;
            }
            Err(error) => return Err(anyhow::anyhow!("creating category {slug_text}: {error}")),
        }
        taken.extend([slug_text, name_taken]);
        seeded.categories_added += 1;
        have += 1;
    }
    Ok(catalog.categories().await?)
}

/// Adds `missing` random products spread over `categories`, in one
/// transaction with their events and the categories' counts.
async fn add_products(
    pool: &PgPool,
    categories: &[Category],
    missing: u64,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    // No one else inserts products or events while ids and sequences are handed out in bulk.
    let last_id = repo::products::lock_for_bulk_load(&mut tx).await?;
    // Building an index once is far cheaper than updating it a million times.
    let dropped_indexes = if missing >= REBUILD_INDEXES_FROM {
        repo::products::drop_secondary_indexes(&mut tx).await?
    } else {
        Vec::new()
    };
    let mut rng = SmallRng::seed_from_u64(last_id as u64);
    let now = chrono::Utc::now();
    let mut per_category = vec![0_i64; categories.len()];
    let mut written = 0_u64;
    while written < missing {
        let batch = COPY_BATCH.min(missing - written);
        let mut rows = CopyRows::with_capacity(batch);
        for n in 0..batch {
            let which = rng.random_range(0..categories.len());
            per_category[which] += 1;
            rows.push(random_product(&mut rng, last_id + (written + n + 1) as i64, &categories[which], now));
        }
        repo::products::copy_in(&mut tx, rows.products, rows.stock).await?;
        repo::outbox::append_many(&mut tx, &rows.events).await?;
        written += batch;
        progress(written, missing);
    }
    repo::products::create_indexes(&mut tx, &dropped_indexes).await?;
    repo::products::continue_ids_after(&mut tx, last_id + missing as i64).await?;
    for (category, added) in categories.iter().zip(&per_category) {
        repo::categories::add_to_count(&mut tx, category.id, *added).await?;
    }
    tx.commit().await?;
    repo::products::refresh_statistics(pool).await?;
    Ok(())
}

/// One COPY batch: the products' and the stock rows' text, and their events.
struct CopyRows {
    products: String,
    stock: String,
    events: Vec<Event>,
}

impl CopyRows {
    fn with_capacity(rows: u64) -> Self {
        Self {
            products: String::with_capacity(rows as usize * 200),
            stock: String::with_capacity(rows as usize * 12),
            events: Vec::with_capacity(rows as usize),
        }
    }

    fn push(&mut self, product: Product) {
        let _ = writeln!(
            self.products,
            "{}\t{}\t{}\t{}\t{}\t{}",
            product.id,
            product.title,
            product.description,
            product.price,
            product.category_id,
            product.created_at.to_rfc3339()
        );
        let _ = writeln!(self.stock, "{}\t{}", product.id, product.stock);
        self.events.push(Event::ProductUpserted(product));
    }
}

/// A product as a shop would have it: a title of three words, a short
/// description, a price from a long-tailed spread, some stock, a creation
/// date in the past year.
fn random_product(rng: &mut SmallRng, id: i64, category: &Category, now: chrono::DateTime<chrono::Utc>) -> Product {
    let title = format!("{} {} {}", capitalized(pick(rng, ADJECTIVES)), pick(rng, MATERIALS), pick(rng, NOUNS));
    let description = format!(
        "A {} {} {} {}, {}.",
        pick(rng, ADJECTIVES),
        pick(rng, ADJECTIVES),
        pick(rng, MATERIALS),
        pick(rng, NOUNS),
        pick(rng, PHRASES)
    );
    // Prices spread like a real shop's: many cheap, a few expensive.
    let cents = (10f64.powf(rng.random_range(2.0..5.3))) as i64;
    let price = Money::from_decimal(rust_decimal::Decimal::new(cents, 2));
    let stock: i32 = rng.random_range(0..500);
    // Created over the past year, so date orderings look like a real shop's.
    let created_at = now - chrono::Duration::seconds(rng.random_range(0..365 * 24 * 3600));
    Product {
        id,
        title,
        description,
        price,
        stock,
        image_url: String::new(),
        category_id: category.id,
        category_name: category.name.clone(),
        category_slug: category.slug.clone(),
        created_at,
        updated_at: created_at,
        sold_count: 0,
    }
}
