//! The search box's words (SearchProducts): how text splits into words and
//! folds, the same for what the index holds and what a shopper types, what
//! a query may ask, and which parts of a product's text it matched.
//!
//! A word is a run of letters and digits; it folds to lowercase without
//! accents ("Straße" → "strasse", "Café" → "cafe"). ListProducts' exact
//! search keeps its own rule (white space only); this one is for people.

use std::collections::HashSet;

use crate::model::{Category, Product};
use shop_platform::error::Invalid;
use shop_platform::kernel::money::Money;
use tantivy::tokenizer::{AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer};

/// The index's name for [`analyzer`].
pub const TOKENIZER: &str = "words";
pub const MAX_QUERY_CHARS: usize = 200;
pub const MAX_QUERY_WORDS: usize = 10;
/// Longer words are not indexed, nor asked for (no product text is one word this long).
const MAX_WORD_BYTES: usize = 64;
/// The last word of a query also matches as the start of a word from this many characters.
pub const PREFIX_FROM_CHARS: usize = 2;

/// Splits into words and folds them; the index and the queries both use it.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_WORD_BYTES))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// One word of a text: folded, and where it stands (bytes of the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub folded: String,
    pub start: usize,
    pub end: usize,
}

pub fn words(text: &str) -> Vec<Word> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut found = Vec::new();
    stream.process(&mut |token| {
        found.push(Word { folded: token.text.clone(), start: token.offset_from, end: token.offset_to })
    });
    found
}

/// How many typos a word may have and still match: one from 5 letters,
/// two from 9 (a transposition is one).
pub fn typos_allowed(word: &str) -> u8 {
    match word.chars().count() {
        count if count >= 9 => 2,
        count if count >= 5 => 1,
        _ => 0,
    }
}

/// The edits that make `a` into `b` (insert, delete, replace, swap two
/// neighbours), each character touched once: the distance the index's
/// automata match with.
pub fn edits(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let width = b.len() + 1;
    let mut table = vec![0_usize; (a.len() + 1) * width];
    for (i, cell) in table.iter_mut().step_by(width).enumerate() {
        *cell = i;
    }
    for (j, cell) in table.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (table[(i - 1) * width + j] + 1)
                .min(table[i * width + j - 1] + 1)
                .min(table[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(table[(i - 2) * width + j - 2] + 1);
            }
            table[i * width + j] = best;
        }
    }
    table[a.len() * width + b.len()]
}

/// What a shopper typed, as words: each matches whole (or with its typos);
/// the last also as the start of a word while it is still being typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SearchText {
    /// Folded, each once, in the order typed.
    pub words: Vec<String>,
    /// The text did not end after its last word (no space or mark after
    /// it), and that word has at least [`PREFIX_FROM_CHARS`] characters.
    pub last_is_prefix: bool,
}

impl SearchText {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.chars().count() > MAX_QUERY_CHARS {
            return Err(Invalid::new("must be at most 200 characters"));
        }
        if raw.contains('\0') {
            return Err(Invalid::new("must not contain NUL"));
        }
        let found = words(raw);
        let mut text = SearchText::default();
        let mut seen = HashSet::new();
        for word in &found {
            if seen.insert(word.folded.as_str()) {
                text.words.push(word.folded.clone());
            }
        }
        if text.words.len() > MAX_QUERY_WORDS {
            return Err(Invalid::new("must be at most 10 words"));
        }
        // "head" is still being typed; "head " is done.
        text.last_is_prefix = found.last().is_some_and(|last| {
            last.end == raw.len()
                && last.folded.chars().count() >= PREFIX_FROM_CHARS
                && text.words.last() == Some(&last.folded)
        });
        Ok(text)
    }
}

/// What SearchProducts filters by, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SearchFilter {
    pub text: SearchText,
    pub category_id: Option<i64>,
    pub min_price: Option<Money>,
    pub max_price: Option<Money>,
}

/// Where the price bands of SearchProducts' facets meet, in cents: 0–25,
/// 25–50, 50–100, 100–250, 250 and up; a band holds its lower edge.
pub const PRICE_BAND_EDGES_CENTS: [i64; 4] = [2_500, 5_000, 10_000, 25_000];
pub const PRICE_BANDS: usize = PRICE_BAND_EDGES_CENTS.len() + 1;

pub fn price_band(cents: i64) -> usize {
    PRICE_BAND_EDGES_CENTS.iter().take_while(|edge| cents >= **edge).count()
}

/// The bounds of band `band`: its lowest price and, except for the last,
/// the price where the next one starts.
pub fn price_band_bounds(band: usize) -> (Money, Option<Money>) {
    let cents = |cents: i64| Money::from_decimal(rust_decimal::Decimal::new(cents, 2));
    let low = if band == 0 { 0 } else { PRICE_BAND_EDGES_CENTS[band - 1] };
    (cents(low), PRICE_BAND_EDGES_CENTS.get(band).map(|high| cents(*high)))
}

/// The index words a query matched anywhere: whole words (exactly or with
/// typos), and the prefix the last word matched as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matched {
    pub whole: HashSet<String>,
    pub prefix: Option<String>,
}

impl Matched {
    /// The character ranges `[start, end)` of `text` that these words match:
    /// a whole word, or the start of a word the prefix matched.
    pub fn ranges(&self, text: &str) -> Vec<(usize, usize)> {
        let mut ranges = Vec::new();
        for word in words(text) {
            let end = if self.whole.contains(&word.folded) {
                Some(word.end)
            } else {
                self.prefix
                    .as_deref()
                    .filter(|prefix| word.folded.starts_with(prefix))
                    .map(|prefix| prefix_end(&text[word.start..word.end], prefix) + word.start)
            };
            if let Some(end) = end {
                let start_char = text[..word.start].chars().count();
                ranges.push((start_char, start_char + text[word.start..end].chars().count()));
            }
        }
        ranges
    }
}

/// Where in `word` (bytes) the part that folds to `prefix` ends; the whole
/// word when no shorter part does (a letter that folds to two).
fn prefix_end(word: &str, prefix: &str) -> usize {
    word.char_indices()
        .map(|(at, character)| at + character.len_utf8())
        .find(|end| words(&word[..*end]).first().is_some_and(|folded| folded.folded.len() >= prefix.len()))
        .unwrap_or(word.len())
}

/// A run of characters a query matched in one field of a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Highlight {
    pub field: &'static str,
    pub start: usize,
    pub end: usize,
}

/// One product the search box found, and why.
#[derive(Debug, Clone)]
pub struct Hit {
    pub product: Product,
    pub highlights: Vec<Highlight>,
    pub matched_words: u32,
    pub typos: u32,
}

impl Hit {
    pub fn new(product: Product, matched: &Matched, matched_words: u32, typos: u32) -> Self {
        let highlights = [("title", &product.title), ("description", &product.description)]
            .into_iter()
            .flat_map(|(field, text)| {
                matched.ranges(text).into_iter().map(move |(start, end)| Highlight { field, start, end })
            })
            .collect();
        Self { product, highlights, matched_words, typos }
    }
}

/// One page of the search box's answer, with the counts over all pages.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    pub hits: Vec<Hit>,
    pub total: i64,
    /// Categories with products found, most first (then by name).
    pub categories: Vec<(Category, i64)>,
    /// Every band, in order: its bounds and the products found in it.
    pub price_bands: Vec<(Money, Option<Money>, i64)>,
    pub did_you_mean: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_on_anything_but_letters_and_digits_and_fold() {
        let found: Vec<String> = words("Straße-Café, T-shirt 4K!").into_iter().map(|word| word.folded).collect();
        assert_eq!(found, ["strasse", "cafe", "t", "shirt", "4k"]);
    }

    #[test]
    fn typos_allowed_grow_with_the_word() {
        assert_eq!([typos_allowed("lamp"), typos_allowed("chair"), typos_allowed("headphone")], [0, 1, 2]);
    }

    #[test]
    fn a_swap_of_neighbours_is_one_edit() {
        assert_eq!(edits("iphnoe", "iphone"), 1);
        assert_eq!(edits("keybaord", "keyboard"), 1);
        assert_eq!(edits("lamp", "lamp"), 0);
        assert_eq!(edits("kitten", "sitting"), 3);
        assert_eq!(edits("ca", "abc"), 3, "each character is touched once");
    }

    #[test]
    fn the_last_word_is_a_prefix_while_it_is_being_typed() {
        let typing = SearchText::parse("Wireless Hea").unwrap();
        assert_eq!(typing.words, ["wireless", "hea"]);
        assert!(typing.last_is_prefix);
        assert!(!SearchText::parse("wireless hea ").unwrap().last_is_prefix, "a space ends it");
        assert!(!SearchText::parse("wireless h").unwrap().last_is_prefix, "too short");
        assert!(!SearchText::parse("").unwrap().last_is_prefix);
        assert_eq!(SearchText::parse("lamp Lamp LAMP").unwrap().words, ["lamp"]);
    }

    #[test]
    fn a_query_is_bounded() {
        assert!(SearchText::parse(&"a".repeat(201)).is_err());
        assert!(SearchText::parse(&"w ".repeat(10)).is_ok(), "ten times one word is one word");
        let eleven: Vec<String> = (0..11).map(|n| format!("w{n}")).collect();
        assert!(SearchText::parse(&eleven.join(" ")).is_err());
        assert!(SearchText::parse("lamp\0").is_err());
    }

    #[test]
    fn prices_fall_in_bands_holding_their_lower_edge() {
        assert_eq!([price_band(0), price_band(2_499), price_band(2_500), price_band(25_000)], [0, 0, 1, 4]);
        assert_eq!(price_band_bounds(4).1, None);
        assert_eq!(price_band_bounds(1).0.to_string(), "25.00");
    }

    #[test]
    fn ranges_mark_whole_words_and_the_typed_start_in_characters() {
        let matched = Matched { whole: HashSet::from(["cafe".to_owned()]), prefix: Some("hea".into()) };
        assert_eq!(matched.ranges("Große Café headphones"), [(6, 10), (11, 14)]);
        assert_eq!(matched.ranges("nothing here"), []);
    }
}
