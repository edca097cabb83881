//! `shop bench search-quality`: how often the search box (SearchProducts)
//! puts the product a shopper meant first, and in the first five, for each
//! kind of query a shopper types: a product's exact title, the title with
//! one typo, with two, the title with its last word half typed, and two of
//! its words with its category and a price range around its price.
//!
//! The judged set is made from the running catalog (products drawn at
//! random, with a fixed seed) and kept in a file, so one set is scored
//! again and again as the ranking changes. A query is judged by title: a
//! product with the same title as the one meant is as right (the seed's
//! titles repeat, and no text tells two of them apart).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use shop_proto::catalog::catalog_service_client::CatalogServiceClient;
use shop_proto::catalog::{BatchGetProductsRequest, ListProductsRequest, Product, SearchProductsRequest};
use tonic::transport::Channel;

/// The kinds of query, in the order the table shows them.
pub const KINDS: [&str; 5] = ["exact", "one-typo", "two-typos", "prefix", "words+filters"];

/// One judged query: what is typed, the filters, and the title meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    pub kind: &'static str,
    pub query: String,
    pub category: String,
    pub min_price: String,
    pub max_price: String,
    pub expected_title: String,
}

/// A word of at least `from` letters in `words`, at random.
fn long_word(rng: &mut SmallRng, words: &[String], from: usize, besides: Option<usize>) -> Option<usize> {
    let long: Vec<usize> =
        (0..words.len()).filter(|at| words[*at].chars().count() >= from && Some(*at) != besides).collect();
    (!long.is_empty()).then(|| long[rng.random_range(0..long.len())])
}

/// `word` with one typo a hand makes: two neighbours swapped, a letter
/// replaced, dropped or doubled, anywhere but the first letter (shoppers
/// rarely miss that one): at a letter of `within` (from 1, before the end).
/// The word keeps at least `floor` letters: a typo that leaves it shorter
/// than the search box forgives is not one it is judged on.
fn typo(rng: &mut SmallRng, word: &str, within: std::ops::Range<usize>, floor: usize) -> String {
    loop {
        let typed = any_typo(rng, word, within.clone());
        if typed.chars().count() >= floor {
            return typed;
        }
    }
}

fn any_typo(rng: &mut SmallRng, word: &str, within: std::ops::Range<usize>) -> String {
    let mut letters: Vec<char> = word.chars().collect();
    let at = rng.random_range(within.start.max(1)..within.end.min(letters.len()));
    match rng.random_range(0..4) {
        0 if at + 1 < letters.len() && letters[at] != letters[at + 1] => letters.swap(at, at + 1),
        1 => {
            let replaced = letters[at];
            while letters[at] == replaced {
                letters[at] = rng.random_range(b'a'..=b'z') as char;
            }
        }
        2 if letters.len() > 2 => {
            letters.remove(at);
        }
        _ => letters.insert(at, letters[at]),
    }
    letters.into_iter().collect()
}

/// A judged query of `kind` for `product`, if one can be made from it.
fn judge(rng: &mut SmallRng, kind: &'static str, product: &Product) -> Option<Judged> {
    let title = product.title.to_lowercase();
    let mut words: Vec<String> = title.split_whitespace().map(str::to_owned).collect();
    let mut judged = Judged {
        kind,
        query: String::new(),
        category: String::new(),
        min_price: String::new(),
        max_price: String::new(),
        expected_title: product.title.clone(),
    };
    match kind {
        "exact" => {}
        "one-typo" => {
            let at = long_word(rng, &words, 5, None)?;
            words[at] = typo(rng, &words[at], 1..usize::MAX, 5);
        }
        "two-typos" => {
            // Two words with one each, or one long word with two.
            if let Some(first) = long_word(rng, &words, 5, None)
                && let Some(second) = long_word(rng, &words, 5, Some(first))
            {
                words[first] = typo(rng, &words[first], 1..usize::MAX, 5);
                words[second] = typo(rng, &words[second], 1..usize::MAX, 5);
            } else {
                // One in each half: the second cannot undo the first.
                let at = long_word(rng, &words, 9, None)?;
                let half = words[at].chars().count() / 2;
                let once = typo(rng, &words[at], half + 1..usize::MAX, 9);
                words[at] = typo(rng, &once, 1..half - 1, 9);
            }
        }
        "prefix" => {
            let last = words.last_mut()?;
            let letters: Vec<char> = last.chars().collect();
            if letters.len() < 3 {
                return None;
            }
            *last = letters[..rng.random_range(2..letters.len())].iter().collect();
        }
        _ => {
            // The material and the noun of a seeded title, in its category
            // and within a tenth of its price.
            if words.len() < 2 {
                return None;
            }
            words.remove(0);
            let cents: f64 = product.price.parse::<f64>().ok()? * 100.0;
            judged.category = product.category.as_ref()?.slug.clone();
            judged.min_price = format!("{:.2}", (cents * 0.9).floor() / 100.0);
            judged.max_price = format!("{:.2}", (cents * 1.1).ceil() / 100.0);
        }
    }
    judged.query = words.join(" ");
    if kind != "prefix" {
        // Typed to the end: a space after the last word.
        judged.query.push(' ');
    }
    Some(judged)
}

/// `per_kind` judged queries of each kind over `products`, drawn with `seed`.
pub fn make(products: &[Product], per_kind: usize, seed: u64) -> Vec<Judged> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut judged = Vec::with_capacity(per_kind * KINDS.len());
    for kind in KINDS {
        let mut made = 0;
        for _ in 0..per_kind * 20 {
            if made == per_kind || products.is_empty() {
                break;
            }
            let product = &products[rng.random_range(0..products.len())];
            if let Some(one) = judge(&mut rng, kind, product) {
                judged.push(one);
                made += 1;
            }
        }
    }
    judged
}

/// Up to `count` live products of the catalog, drawn at random by id.
pub async fn sample(channel: Channel, count: usize, seed: u64) -> anyhow::Result<Vec<Product>> {
    let mut catalog = CatalogServiceClient::new(channel);
    let total = catalog.list_products(ListProductsRequest { page_size: 1, ..Default::default() }).await?.into_inner();
    anyhow::ensure!(total.total_count > 0, "the catalog is empty: run `shop seed` first");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut products = Vec::with_capacity(count);
    for _ in 0..count.div_ceil(100) * 3 {
        if products.len() >= count {
            break;
        }
        let ids = (0..100).map(|_| rng.random_range(1..=total.total_count)).collect();
        products.extend(catalog.batch_get_products(BatchGetProductsRequest { ids }).await?.into_inner().products);
    }
    products.truncate(count);
    Ok(products)
}

/// The judged set as a file: a line per query, tab-separated fields.
pub fn to_tsv(judged: &[Judged]) -> String {
    let mut text = String::from("# kind\tquery\tcategory\tmin_price\tmax_price\texpected_title\n");
    for one in judged {
        let _ = writeln!(
            text,
            "{}\t{}\t{}\t{}\t{}\t{}",
            one.kind, one.query, one.category, one.min_price, one.max_price, one.expected_title
        );
    }
    text
}

pub fn from_tsv(text: &str) -> anyhow::Result<Vec<Judged>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.starts_with('#') && !line.trim().is_empty())
        .map(|(number, line)| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [kind, query, category, min_price, max_price, expected_title] = fields[..] else {
                anyhow::bail!("line {}: six tab-separated fields wanted", number + 1);
            };
            let kind = KINDS
                .iter()
                .find(|known| **known == kind)
                .with_context(|| format!("line {}: unknown kind {kind:?}", number + 1))?;
            Ok(Judged {
                kind,
                query: query.to_owned(),
                category: category.to_owned(),
                min_price: min_price.to_owned(),
                max_price: max_price.to_owned(),
                expected_title: expected_title.to_owned(),
            })
        })
        .collect()
}

/// How one kind of query fared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Score {
    pub kind: &'static str,
    pub queries: usize,
    pub first: usize,
    pub top_five: usize,
}

impl Score {
    pub fn first_share(&self) -> f64 {
        self.first as f64 / self.queries.max(1) as f64
    }

    pub fn top_five_share(&self) -> f64 {
        self.top_five as f64 / self.queries.max(1) as f64
    }
}

/// Asks every judged query (the first five hits) and scores each kind.
pub async fn score(channel: Channel, judged: &[Judged]) -> anyhow::Result<Vec<Score>> {
    let mut catalog = CatalogServiceClient::new(channel);
    let mut scores: Vec<Score> = KINDS.iter().map(|kind| Score { kind, ..Default::default() }).collect();
    for one in judged {
        let request = SearchProductsRequest {
            query: one.query.clone(),
            category: one.category.clone(),
            min_price: one.min_price.clone(),
            max_price: one.max_price.clone(),
            page: 1,
            page_size: 5,
        };
        let found = catalog.search_products(request).await.with_context(|| format!("searching {:?}", one.query))?;
        let rank = found
            .into_inner()
            .hits
            .iter()
            .position(|hit| hit.product.as_ref().is_some_and(|product| product.title == one.expected_title));
        let Some(score) = scores.iter_mut().find(|score| score.kind == one.kind) else { continue };
        score.queries += 1;
        score.first += usize::from(rank == Some(0));
        score.top_five += usize::from(rank.is_some());
    }
    Ok(scores)
}

/// `shop bench search-quality`: scores the judged set in `file`, making it
/// from the running catalog first when the file does not exist.
pub async fn run(channel: Channel, file: &Path, json: bool) -> anyhow::Result<()> {
    let judged = match std::fs::read_to_string(file) {
        Ok(text) => from_tsv(&text).with_context(|| format!("reading {}", file.display()))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let products = sample(channel.clone(), 600, 7).await?;
            let judged = make(&products, 60, 7);
            std::fs::write(file, to_tsv(&judged)).with_context(|| format!("writing {}", file.display()))?;
            eprintln!("judged set   made from the catalog: {} queries, written to {}", judged.len(), file.display());
            judged
        }
        Err(error) => return Err(error).with_context(|| format!("reading {}", file.display())),
    };
    let scores = score(channel, &judged).await?;
    if json {
        let rows: Vec<serde_json::Value> = scores
            .iter()
            .map(|score| {
                serde_json::json!({
                    "kind": score.kind,
                    "queries": score.queries,
                    "first": score.first_share(),
                    "top_five": score.top_five_share(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        println!("{:<14} {:>7} {:>8} {:>8}", "kind", "queries", "rank 1", "top 5");
        for score in &scores {
            println!(
                "{:<14} {:>7} {:>7.1}% {:>7.1}%",
                score.kind,
                score.queries,
                score.first_share() * 100.0,
                score.top_five_share() * 100.0
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(title: &str) -> Product {
        Product {
            title: title.into(),
            price: "40.00".into(),
            category: Some(shop_proto::catalog::Category { id: 1, name: "Lamps".into(), slug: "lamps".into() }),
            ..Default::default()
        }
    }

    #[test]
    fn each_kind_of_query_is_made_as_a_shopper_types_it() {
        let products = [product("Wireless leather headphones")];
        let judged = make(&products, 3, 1);
        assert_eq!(judged.len(), 15);
        for one in &judged {
            let words: Vec<&str> = one.query.split_whitespace().collect();
            let title: Vec<String> = one.expected_title.to_lowercase().split_whitespace().map(str::to_owned).collect();
            let differ = words.iter().zip(&title).filter(|(typed, meant)| **typed != meant.as_str()).count();
            match one.kind {
                "exact" => assert_eq!(one.query, "wireless leather headphones "),
                "one-typo" => {
                    assert_eq!(differ, 1, "{one:?}");
                    assert!(words.iter().all(|word| word.len() >= 5 || title.contains(&word.to_string())), "{one:?}");
                }
                "two-typos" => assert!((1..=2).contains(&differ), "{one:?}"),
                "prefix" => {
                    assert!(!one.query.ends_with(' '));
                    assert!("headphones".starts_with(words[2]) && words[2].len() >= 2 && words[2] != "headphones");
                }
                _ => {
                    assert_eq!(one.query, "leather headphones ");
                    assert_eq!(
                        (one.category.as_str(), one.min_price.as_str(), one.max_price.as_str()),
                        ("lamps", "36.00", "44.00")
                    );
                }
            }
        }
        assert_eq!(from_tsv(&to_tsv(&judged)).unwrap(), judged);
    }
}
