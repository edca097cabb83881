//! Catalog's words: products, categories, stock lines and events, free of
//! SQL, gRPC and I/O. Each value type is made only by its `parse`, so a
//! `Title` or `Slug` in hand has passed its rules; the gRPC layer names the
//! field when one is refused. Every room uses it and it uses none of them.

pub mod picture;
pub mod search_box;

use chrono::{DateTime, Utc};
use shop_platform::error::Invalid;
use shop_platform::kernel::money::Money;
use shop_platform::kernel::order_lines::OrderLine;
use shop_platform::kernel::text;

/// A product with its category, as every read returns it.
#[derive(Debug, Clone)]
pub struct Product {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub price: Money,
    pub stock: i32,
    pub image_url: String,
    pub category_id: i64,
    pub category_name: String,
    pub category_slug: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sold_count: i64,
}

#[derive(Debug, Clone)]
pub struct Category {
    pub id: i64,
    pub name: String,
    pub slug: String,
}

/// One line of a reservation: what was taken, and the product as it was at
/// that instant (the order's price snapshot).
#[derive(Debug, Clone)]
pub struct ReservedLine {
    pub product_id: i64,
    pub quantity: i32,
    pub title: String,
    pub unit_price: Money,
    pub category_name: String,
    pub category_slug: String,
}

/// A line a reservation cannot have: not enough units, or a product no
/// longer (or never) sold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    pub product_id: i64,
    pub wanted: i32,
    pub available: i32,
    /// `None` for a product that never existed.
    pub title: Option<String>,
    /// Whether the product is still sold (then only units are short).
    pub is_sold: bool,
}

impl std::fmt::Display for Shortage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { product_id, wanted, available, .. } = self;
        match (&self.title, self.is_sold) {
            (Some(title), true) => {
                write!(f, "product {product_id} ({title}) is out of stock: {available} left, {wanted} wanted")
            }
            (Some(title), false) => write!(f, "product {product_id} ({title}) is no longer sold"),
            (None, _) => write!(f, "product {product_id} not found"),
        }
    }
}

/// What the catalog tells its event stream's readers, in commit order.
#[derive(Debug, Clone)]
pub enum Event {
    ProductUpserted(Product),
    ProductArchived { product_id: i64 },
    CategoryUpserted(Category),
    CategoryDeleted { category_id: i64, slug: String },
    StockReserved { order_id: i64, lines: Vec<OrderLine> },
    StockReleased { order_id: i64, lines: Vec<OrderLine> },
}

/// Display name of a category: 1–100 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryName(String);

impl CategoryName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name = text::single_line(raw.trim())?;
        if !text::shows_something(name) {
            return Err(Invalid::new("is required (and must show something: not only spaces or blank characters)"));
        }
        match name.chars().count() {
            1..=100 => Ok(Self(name.to_owned())),
            _ => Err(Invalid::new("must be at most 100 characters")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// URL key of a category: 1–100 characters of `a-z`, `0-9` and `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(String);

impl Slug {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.is_empty() {
            return Err(Invalid::new("is required"));
        }
        if raw.len() > 100 {
            return Err(Invalid::new("must be at most 100 characters"));
        }
        if !raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(Invalid::new("may contain only lowercase letters a-z, digits and '-'"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// Django's slugify, which the old backend used: transliterate to ASCII,
    /// drop what is not a letter, digit, space or hyphen (so "Men's" becomes
    /// "mens"), lowercase, and join words with single hyphens.
    pub fn derive(name: &CategoryName) -> Result<Self, Invalid> {
        let ascii = deunicode::deunicode(name.as_str()).to_lowercase();
        let kept: String = ascii
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || c.is_whitespace() || *c == '-' || *c == '_')
            .collect();
        let slug = kept
            .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
            .filter(|word| !word.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let slug: String = slug.chars().take(100).collect();
        Self::parse(slug.trim_end_matches('-')).map_err(|_| Invalid::new("cannot be derived from the name; give one"))
    }

    /// The slug given, or the one derived from the name when empty.
    pub fn given_or_derived(raw: &str, name: &CategoryName) -> Result<Self, Invalid> {
        if raw.is_empty() { Self::derive(name) } else { Self::parse(raw) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Product title: 1–255 characters, not only white space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if !text::shows_something(raw) {
            return Err(Invalid::new("is required (and must show something: not only spaces or blank characters)"));
        }
        if raw.chars().count() > 255 {
            return Err(Invalid::new("must be at most 255 characters"));
        }
        Ok(Self(text::single_line(raw)?.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// At most 10 000 characters, lines allowed; may be empty.
pub fn parse_description(raw: &str) -> Result<&str, Invalid> {
    if raw.chars().count() > 10_000 {
        Err(Invalid::new("must be at most 10000 characters"))
    } else {
        text::multi_line(raw)
    }
}

/// Empty, or an absolute http(s) URL of at most 2048 characters.
pub fn parse_image_url(raw: &str) -> Result<&str, Invalid> {
    if raw.is_empty() {
        return Ok(raw);
    }
    if raw.len() > 2048 {
        return Err(Invalid::new("must be at most 2048 characters"));
    }
    let rest = raw.strip_prefix("https://").or_else(|| raw.strip_prefix("http://"));
    let host = rest.and_then(|rest| rest.split(['/', '?', '#']).next()).unwrap_or_default();
    if host.is_empty() || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Invalid::new("must be empty or an absolute http(s) URL"));
    }
    Ok(raw)
}

/// Units in stock: zero or more.
pub fn parse_stock(raw: i32) -> Result<i32, Invalid> {
    if raw < 0 { Err(Invalid::new("must not be negative")) } else { Ok(raw) }
}

pub fn parse_id(raw: i64) -> Result<i64, Invalid> {
    if raw <= 0 { Err(Invalid::new("must be a positive id")) } else { Ok(raw) }
}

/// Every field of a product an admin sets.
#[derive(Debug, Clone)]
pub struct ProductFields {
    pub title: Title,
    pub description: String,
    pub price: Money,
    pub stock: i32,
    pub category_id: i64,
    pub image_url: String,
}

/// The fields an update mask may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductField {
    Title,
    Description,
    Price,
    Stock,
    CategoryId,
    ImageUrl,
    /// The picture Shop keeps: changed only when a mask names it.
    Image,
}

impl ProductField {
    pub const ALL: [ProductField; 6] = [
        ProductField::Title,
        ProductField::Description,
        ProductField::Price,
        ProductField::Stock,
        ProductField::CategoryId,
        ProductField::ImageUrl,
    ];

    pub fn parse(path: &str) -> Result<Self, Invalid> {
        Ok(match path {
            "title" => ProductField::Title,
            "description" => ProductField::Description,
            "price" => ProductField::Price,
            "stock" => ProductField::Stock,
            "category_id" => ProductField::CategoryId,
            "image_url" => ProductField::ImageUrl,
            "image" => ProductField::Image,
            other => {
                return Err(Invalid::new(format!(
                    "unknown path {}; use title, description, price, stock, category_id, image_url, image",
                    shop_platform::kernel::text::echo(other)
                )));
            }
        })
    }
}

/// The sort orders ListProducts offers. Ties are broken by id in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ordering {
    Price,
    PriceDesc,
    CreatedAt,
    CreatedAtDesc,
    SoldCount,
    SoldCountDesc,
    Title,
    TitleDesc,
}

impl Ordering {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Ok(match raw {
            "price" => Ordering::Price,
            "-price" => Ordering::PriceDesc,
            "created_at" => Ordering::CreatedAt,
            "" | "-created_at" => Ordering::CreatedAtDesc,
            "sold_count" => Ordering::SoldCount,
            "-sold_count" => Ordering::SoldCountDesc,
            "title" => Ordering::Title,
            "-title" => Ordering::TitleDesc,
            other => {
                return Err(Invalid::new(format!(
                    "unknown ordering {}; use price, -price, created_at, -created_at, sold_count, -sold_count, title or -title",
                    shop_platform::kernel::text::echo(other)
                )));
            }
        })
    }

    pub fn is_by_sold_count(self) -> bool {
        matches!(self, Ordering::SoldCount | Ordering::SoldCountDesc)
    }

    /// The column and whether it sorts descending.
    pub fn column(self) -> (&'static str, bool) {
        match self {
            Ordering::Price => ("price", false),
            Ordering::PriceDesc => ("price", true),
            Ordering::CreatedAt => ("created_at", false),
            Ordering::CreatedAtDesc => ("created_at", true),
            Ordering::SoldCount => ("sold_count", false),
            Ordering::SoldCountDesc => ("sold_count", true),
            Ordering::Title => ("title", false),
            Ordering::TitleDesc => ("title", true),
        }
    }
}

/// Search words: split on white space, each must appear (any case).
pub fn parse_search(raw: &str) -> Result<Vec<String>, Invalid> {
    if raw.chars().count() > 200 {
        return Err(Invalid::new("must be at most 200 characters"));
    }
    if raw.contains('\0') {
        return Err(Invalid::new("must not contain NUL"));
    }
    // A term that another term contains adds nothing (a word holding the
    // longer one holds it too), and each costs the index a range of its
    // dictionary: "e e e …" is one term, "e ex" is "ex". Same answers.
    let mut terms: Vec<String> = raw.split_whitespace().map(str::to_lowercase).collect();
    terms.sort_unstable_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    terms.dedup();
    let mut needed: Vec<String> = Vec::with_capacity(terms.len());
    for term in terms {
        if !needed.iter().any(|longer| longer.contains(term.as_str())) {
            needed.push(term);
        }
    }
    Ok(needed)
}

/// What ListProducts filters by, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ProductFilter {
    pub terms: Vec<String>,
    pub category_id: Option<i64>,
    pub min_price: Option<Money>,
    pub max_price: Option<Money>,
}

impl ProductFilter {
    /// Only the category (or nothing) narrows it: its total is kept in a table.
    pub fn total_is_tracked(&self) -> bool {
        self.terms.is_empty() && self.min_price.is_none() && self.max_price.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slug_of(name: &str) -> String {
        Slug::derive(&CategoryName::parse(name).unwrap()).unwrap().as_str().to_owned()
    }

    #[test]
    fn slugs_are_derived_like_django() {
        assert_eq!(slug_of("Men's Fashion"), "mens-fashion");
        assert_eq!(slug_of("  Home & Garden  "), "home-garden");
        assert_eq!(slug_of("Café Crème"), "cafe-creme");
        assert_eq!(slug_of("Kids -- Toys"), "kids-toys");
        assert_eq!(slug_of("snake_case name"), "snake-case-name");
    }

    #[test]
    fn a_name_without_letters_or_digits_gives_no_slug() {
        assert!(Slug::derive(&CategoryName::parse("!!!").unwrap()).is_err());
    }

    #[test]
    fn given_slugs_must_be_lowercase_ascii_words() {
        assert!(Slug::parse("mens-fashion").is_ok());
        for bad in ["", "Mens", "men's", "men fashion", &"a".repeat(101)] {
            assert!(Slug::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn titles_are_1_to_255_characters() {
        assert!(Title::parse("Laptop").is_ok());
        assert!(Title::parse(&"é".repeat(255)).is_ok());
        for bad in ["", "   ", &"a".repeat(256)] {
            assert!(Title::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn image_urls_are_empty_or_absolute_http() {
        for good in ["", "https://img.example.com/a.png", "http://x.io"] {
            assert!(parse_image_url(good).is_ok(), "{good:?}");
        }
        for bad in ["ftp://x.io/a", "img.png", "https://", "https://a b.com", "javascript:alert(1)"] {
            assert!(parse_image_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_ordering_of_the_contract_parses_and_others_do_not() {
        for raw in ["price", "-price", "created_at", "-created_at", "sold_count", "-sold_count", "title", "-title", ""]
        {
            assert!(Ordering::parse(raw).is_ok(), "{raw:?}");
        }
        assert_eq!(Ordering::parse("").unwrap(), Ordering::CreatedAtDesc);
        for bad in ["id", "-id", "Price", "price desc"] {
            assert!(Ordering::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn search_splits_on_white_space_and_lowercases() {
        assert_eq!(parse_search("  Red\tCotton  shirt ").unwrap(), ["cotton", "shirt", "red"]);
        assert!(parse_search(&"a".repeat(201)).is_err());
    }

    #[test]
    fn search_terms_inside_other_terms_are_asked_once() {
        assert_eq!(parse_search(&"e ".repeat(100)).unwrap(), ["e"]);
        assert_eq!(parse_search("E ex Tex ex").unwrap(), ["tex"]);
        assert_eq!(parse_search("ab ba").unwrap(), ["ab", "ba"], "neither holds the other");
    }
}
