//! The search box's matching and ranking (SearchProducts) over the index's
//! word fields ([`crate::model::search_box`] says what a word is).
//!
//! Each query word is expanded, segment by segment, into the index words it
//! matches in titles and descriptions: itself, those within its typos (the
//! term dictionary walked by a Levenshtein automaton, so no dictionary scan),
//! and, for the last word while it is typed, those it starts. The postings of
//! those words give each product found what the ranking needs (which query
//! words it matched, with how many typos, whole or as a prefix, in the title
//! or not, and a BM25 score); facets count every product that passes the
//! filters, so they and the total are exact. Positions (the closeness of the
//! words) are read only for the products that can still reach the page.
//!
//! Every call here blocks (CPU, disk): run it on the blocking pool. It stops
//! between segments and words once its caller has gone.

use rustc_hash::FxHashMap;
use tantivy::postings::TermInfo;
use tantivy::postings::{Postings as _, SegmentPostings};
use tantivy::query::{Bm25Weight, FuzzyTermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, DocSet as _, Searcher, SegmentReader, TERMINATED, Term};
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::model::search_box::{Matched, PRICE_BANDS, SearchFilter, edits, price_band, typos_allowed};
use crate::repo::search_index::Fields;

/// Two words further apart than this (positions) are as far as words go.
const FAR: u32 = 8;

/// What the search box found.
#[derive(Debug, Clone, Default)]
pub struct Ranked {
    /// Products found over all pages.
    pub total: i64,
    /// The page asked for, best first.
    pub hits: Vec<RankedHit>,
    /// (category id, products found) for each category with some.
    pub categories: Vec<(i64, i64)>,
    pub price_bands: [i64; PRICE_BANDS],
    /// The index words the query matched, to show where.
    pub matched: Matched,
    /// The query's words, each that matched only with typos replaced by its
    /// likeliest meaning; `None` when no word needed that.
    pub did_you_mean: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankedHit {
    pub id: i64,
    pub matched_words: u32,
    pub typos: u32,
}

fn index_error(error: impl std::fmt::Display) -> Error {
    Error::Index(error.to_string())
}

/// One index word a query word matches in one segment's field.
struct Expanded {
    text: String,
    info: TermInfo,
    typos: u8,
    /// Matched as a whole word (exactly or with typos), not as a prefix.
    whole: bool,
}

/// The index words `word` matches in one dictionary.
fn expand(
    inverted: &tantivy::InvertedIndexReader,
    field: Field,
    word: &str,
    as_prefix: bool,
) -> Result<Vec<Expanded>, Error> {
    let dictionary = inverted.terms();
    let budget = typos_allowed(word);
    let mut found: FxHashMap<String, Expanded> = FxHashMap::default();
    if budget == 0 {
        if let Some(info) = dictionary.get(word.as_bytes()).map_err(index_error)? {
            found.insert(word.to_owned(), Expanded { text: word.to_owned(), info, typos: 0, whole: true });
        }
    } else {
        let automaton =
            FuzzyTermQuery::new(Term::from_field_text(field, word), budget, true).automaton().map_err(index_error)?;
        let mut stream = dictionary.search(automaton).into_stream().map_err(index_error)?;
        while stream.advance() {
            let Ok(text) = std::str::from_utf8(stream.key()) else { continue };
            let typos = edits(word, text);
            if typos <= usize::from(budget) {
                let expanded =
                    Expanded { text: text.to_owned(), info: stream.value().clone(), typos: typos as u8, whole: true };
                found.insert(text.to_owned(), expanded);
            }
        }
    }
    if as_prefix {
        let mut upper = word.as_bytes().to_vec();
        // 0xFF never occurs in UTF-8: every word that starts with `word`.
        upper.push(0xFF);
        let mut stream = dictionary.range().ge(word.as_bytes()).lt(&upper).into_stream().map_err(index_error)?;
        while stream.advance() {
            let Ok(text) = std::str::from_utf8(stream.key()) else { continue };
            if text == word {
                continue;
            }
            // A prefix match has no typos: better than the same word met with some.
            let expanded = Expanded { text: text.to_owned(), info: stream.value().clone(), typos: 0, whole: false };
            found.insert(text.to_owned(), expanded);
        }
    }
    Ok(found.into_values().collect())
}

/// What one product matched, packed: it is kept for every product found.
#[derive(Clone, Copy)]
struct DocMatch {
    /// Per query word, two bits: its fewest typos (0-2), or 3 when unmatched.
    typos: u32,
    /// Query words matched as whole words (the rest matched as a prefix).
    whole: u16,
    /// Query words matched in the title.
    in_title: u16,
    score: f32,
}

impl DocMatch {
    const NOTHING: Self = Self { typos: u32::MAX, whole: 0, in_title: 0, score: 0.0 };

    fn note(&mut self, word: usize, expanded: &Expanded, in_title: bool, score: f32) {
        let shift = 2 * word;
        let typos = (self.typos >> shift) & 3;
        if u32::from(expanded.typos) < typos {
            self.typos = (self.typos & !(3 << shift)) | (u32::from(expanded.typos) << shift);
        }
        if expanded.whole {
            self.whole |= 1 << word;
        }
        if in_title {
            self.in_title |= 1 << word;
        }
        self.score += score;
    }

    fn matched(&self, words: usize) -> u32 {
        (0..words).filter(|word| (self.typos >> (2 * word)) & 3 != 3).count() as u32
    }

    fn typos(&self, words: usize) -> u32 {
        (0..words).map(|word| (self.typos >> (2 * word)) & 3).filter(|typos| *typos != 3).sum()
    }

    /// The first criteria at once, larger is better: words matched, fewer
    /// typos, fewer prefixes, more words in the title.
    fn key(&self, words: usize) -> u32 {
        let matched = self.matched(words);
        let prefixes = matched - (self.whole as u32 & ((1 << words) - 1)).count_ones().min(matched);
        let in_title = self.in_title.count_ones();
        (matched << 16) | ((31 - self.typos(words)) << 10) | ((15 - prefixes) << 5) | in_title
    }
}

/// A product found that may still reach the page.
struct Candidate {
    key: u32,
    score: f32,
    segment: u32,
    doc: DocId,
    proximity: u32,
    sold: i64,
    id: i64,
}

/// Per query word, what the index says about it over every segment: for
/// "did you mean".
#[derive(Default)]
struct WordEvidence {
    /// Matched exactly or as a prefix somewhere.
    without_typos: bool,
    /// Words within its typos, with their typos and how many products hold them.
    with_typos: FxHashMap<String, (u8, u64)>,
}

pub(super) fn rank(
    searcher: &Searcher,
    fields: &Fields,
    filter: &SearchFilter,
    offset: usize,
    limit: usize,
    abandoned: &CancellationToken,
) -> Result<Ranked, Error> {
    let words = &filter.text.words;
    let word_fields = [(fields.title_words, true), (fields.description_words, false)];
    let total_docs = searcher.num_docs().max(1);
    let mut average_norm = [0.0_f32; 2];
    for (at, (field, _)) in word_fields.iter().enumerate() {
        let mut tokens = 0_u64;
        for segment in searcher.segment_readers() {
            tokens += segment.inverted_index(*field).map_err(index_error)?.total_num_tokens();
        }
        average_norm[at] = tokens as f32 / total_docs as f32;
    }
    let mut weights: FxHashMap<(bool, String), Bm25Weight> = FxHashMap::default();
    let mut evidence: Vec<WordEvidence> = words.iter().map(|_| WordEvidence::default()).collect();
    let mut ranked = Ranked::default();
    let mut categories: FxHashMap<i64, i64> = FxHashMap::default();
    let mut candidates: Vec<Candidate> = Vec::new();
    // Each segment's expansions, kept for reading positions later.
    let mut expansions: Vec<Vec<Vec<(bool, Expanded)>>> = Vec::new();
    let min_cents = filter.min_price.map(|price| price.cents());
    let max_cents = filter.max_price.map(|price| price.cents());
    let category_filter = filter.category_id;

    for (ordinal, segment) in searcher.segment_readers().iter().enumerate() {
        let categories_column = segment.fast_fields().i64("category_id").map_err(index_error)?;
        let prices = segment.fast_fields().i64("price_cents").map_err(index_error)?;
        let passes = |doc: DocId, categories: &mut FxHashMap<i64, i64>, bands: &mut [i64; PRICE_BANDS]| {
            let category = categories_column.first(doc).unwrap_or(0);
            let cents = prices.first(doc).unwrap_or(0);
            let kept = category_filter.is_none_or(|wanted| wanted == category)
                && min_cents.is_none_or(|min| cents >= min)
                && max_cents.is_none_or(|max| cents <= max);
            if kept {
                *categories.entry(category).or_default() += 1;
                bands[price_band(cents)] += 1;
            }
            kept
        };
        let alive = |doc: DocId| segment.alive_bitset().is_none_or(|alive| alive.is_alive(doc));
        if words.is_empty() {
            for doc in (0..segment.max_doc()).filter(|doc| alive(*doc)) {
                if passes(doc, &mut categories, &mut ranked.price_bands) {
                    let nothing = DocMatch::NOTHING;
                    candidates.push(Candidate::new(nothing.key(0), 0.0, ordinal, doc));
                }
            }
            expansions.push(Vec::new());
            continue;
        }
        let mut found: FxHashMap<DocId, DocMatch> = FxHashMap::default();
        let mut segment_expansions = Vec::with_capacity(words.len());
        for (at, word) in words.iter().enumerate() {
            if abandoned.is_cancelled() {
                return Err(Error::Abandoned);
            }
            let as_prefix = filter.text.last_is_prefix && at + 1 == words.len();
            let mut word_expansions = Vec::new();
            for (field_at, (field, in_title)) in word_fields.iter().enumerate() {
                let inverted = segment.inverted_index(*field).map_err(index_error)?;
                let norms = segment.get_fieldnorms_reader(*field).map_err(index_error)?;
                for expanded in expand(&inverted, *field, word, as_prefix)? {
                    if expanded.typos == 0 {
                        evidence[at].without_typos = true;
                    } else {
                        let seen = evidence[at].with_typos.entry(expanded.text.clone()).or_insert((expanded.typos, 0));
                        seen.1 += u64::from(expanded.info.doc_freq);
                    }
                    let weight = match weights.get(&(*in_title, expanded.text.clone())) {
                        Some(weight) => weight.clone(),
                        None => {
                            let doc_freq = searcher
                                .doc_freq(&Term::from_field_text(*field, &expanded.text))
                                .map_err(index_error)?;
                            let weight =
                                Bm25Weight::for_one_term_without_explain(doc_freq, total_docs, average_norm[field_at]);
                            weights.insert((*in_title, expanded.text.clone()), weight.clone());
                            weight
                        }
                    };
                    let mut postings = inverted
                        .read_postings_from_terminfo(&expanded.info, IndexRecordOption::WithFreqs)
                        .map_err(index_error)?;
                    let mut doc = postings.doc();
                    while doc != TERMINATED {
                        if alive(doc) {
                            let score = weight.score(norms.fieldnorm_id(doc), postings.term_freq());
                            found.entry(doc).or_insert(DocMatch::NOTHING).note(at, &expanded, *in_title, score);
                        }
                        doc = postings.advance();
                    }
                    word_expansions.push((*in_title, expanded));
                }
            }
            segment_expansions.push(word_expansions);
        }
        for (doc, matched) in found {
            if passes(doc, &mut categories, &mut ranked.price_bands) {
                candidates.push(Candidate::new(matched.key(words.len()), matched.score, ordinal, doc));
            }
        }
        expansions.push(segment_expansions);
    }
    if abandoned.is_cancelled() {
        return Err(Error::Abandoned);
    }

    ranked.total = candidates.len() as i64;
    ranked.categories = categories.into_iter().collect();
    ranked.did_you_mean = did_you_mean(words, &evidence);
    ranked.matched = matched_words(filter, &expansions);
    let wanted = offset.saturating_add(limit);
    if offset >= candidates.len() || limit == 0 {
        return Ok(ranked);
    }
    // Only products whose first criteria tie with the page's last, or beat
    // it, can be on the page: the rest of the ranking is read for those.
    if candidates.len() > wanted {
        candidates.select_nth_unstable_by(wanted - 1, |a, b| b.key.cmp(&a.key));
        let threshold = candidates[wanted - 1].key;
        candidates.retain(|candidate| candidate.key >= threshold);
    }
    candidates.sort_unstable_by_key(|candidate| (candidate.segment, candidate.doc));
    for (ordinal, segment) in searcher.segment_readers().iter().enumerate() {
        let start = candidates.partition_point(|candidate| (candidate.segment as usize) < ordinal);
        let end = candidates.partition_point(|candidate| (candidate.segment as usize) <= ordinal);
        let chosen = &mut candidates[start..end];
        if chosen.is_empty() {
            continue;
        }
        if abandoned.is_cancelled() {
            return Err(Error::Abandoned);
        }
        let ids = segment.fast_fields().i64("id").map_err(index_error)?;
        let sold = segment.fast_fields().i64("sold_count").map_err(index_error)?;
        for candidate in chosen.iter_mut() {
            candidate.id = ids.first(candidate.doc).unwrap_or(0);
            candidate.sold = sold.first(candidate.doc).unwrap_or(0);
        }
        if words.len() > 1 {
            closeness(segment, fields, &expansions[ordinal], chosen, words.len())?;
        }
    }
    candidates.sort_unstable_by(|a, b| {
        b.key
            .cmp(&a.key)
            .then(a.proximity.cmp(&b.proximity))
            .then(b.score.total_cmp(&a.score))
            .then(b.sold.cmp(&a.sold))
            .then(a.id.cmp(&b.id))
    });
    ranked.hits = candidates
        .iter()
        .skip(offset)
        .take(limit)
        .map(|candidate| RankedHit {
            id: candidate.id,
            matched_words: candidate.key >> 16,
            typos: 31 - ((candidate.key >> 10) & 31),
        })
        .collect();
    Ok(ranked)
}

impl Candidate {
    fn new(key: u32, score: f32, segment: usize, doc: DocId) -> Self {
        Self { key, score, segment: segment as u32, doc, proximity: 0, sold: 0, id: 0 }
    }
}

/// Sets each candidate's proximity (lower is closer): over each pair of
/// neighbouring query words both matched, the fewest positions between
/// them in one field (one more when in the other order), at most [`FAR`].
/// `chosen` are one segment's candidates, by doc.
fn closeness(
    segment: &SegmentReader,
    fields: &Fields,
    expansions: &[Vec<(bool, Expanded)>],
    chosen: &mut [Candidate],
    words: usize,
) -> Result<(), Error> {
    // Per candidate, per word, per field (title, description): positions.
    let mut positions: Vec<Vec<[Vec<u32>; 2]>> = vec![vec![[Vec::new(), Vec::new()]; words]; chosen.len()];
    let mut buffer = Vec::new();
    for (word, word_expansions) in expansions.iter().enumerate() {
        for (in_title, expanded) in word_expansions {
            let field = if *in_title { fields.title_words } else { fields.description_words };
            let inverted = segment.inverted_index(field).map_err(index_error)?;
            let mut postings: SegmentPostings = inverted
                .read_postings_from_terminfo(&expanded.info, IndexRecordOption::WithFreqsAndPositions)
                .map_err(index_error)?;
            for (at, candidate) in chosen.iter().enumerate() {
                if postings.doc() > candidate.doc {
                    continue;
                }
                if postings.seek(candidate.doc) == TERMINATED {
                    break;
                }
                if postings.doc() == candidate.doc {
                    postings.positions(&mut buffer);
                    positions[at][word][usize::from(!*in_title)].extend_from_slice(&buffer);
                }
            }
        }
    }
    for (candidate, found) in chosen.iter_mut().zip(positions) {
        candidate.proximity = found
            .windows(2)
            .filter(|pair| pair.iter().all(|word| word.iter().any(|field| !field.is_empty())))
            .map(|pair| {
                (0..2)
                    .flat_map(|field| {
                        pair[0][field].iter().flat_map(move |first| {
                            pair[1][field]
                                .iter()
                                .map(move |second| if second > first { second - first } else { first - second + 1 })
                        })
                    })
                    .min()
                    .unwrap_or(FAR)
                    .min(FAR)
            })
            .sum();
    }
    Ok(())
}

/// The query with each word that matched only with typos replaced by the
/// likeliest word it meant: fewest typos, then held by most products.
fn did_you_mean(words: &[String], evidence: &[WordEvidence]) -> Option<Vec<String>> {
    let mut changed = false;
    let suggested = words
        .iter()
        .zip(evidence)
        .map(|(word, evidence)| {
            if evidence.without_typos {
                return word.clone();
            }
            let best = evidence.with_typos.iter().min_by(|(a_text, (a_typos, a_held)), (b_text, (b_typos, b_held))| {
                a_typos.cmp(b_typos).then(b_held.cmp(a_held)).then(a_text.cmp(b_text))
            });
            match best {
                Some((text, _)) => {
                    changed = true;
                    text.clone()
                }
                None => word.clone(),
            }
        })
        .collect();
    changed.then_some(suggested)
}

fn matched_words(filter: &SearchFilter, expansions: &[Vec<Vec<(bool, Expanded)>>]) -> Matched {
    let whole = expansions
        .iter()
        .flatten()
        .flatten()
        .filter(|(_, expanded)| expanded.whole)
        .map(|(_, expanded)| expanded.text.clone())
        .collect();
    let prefix = filter.text.last_is_prefix.then(|| filter.text.words.last().cloned()).flatten();
    Matched { whole, prefix }
}

#[cfg(test)]
mod tests {
    use shop_platform::kernel::money::Money;

    use super::*;
    use crate::model::Product;
    use crate::model::search_box::SearchText;
    use crate::repo::search_index::{Applied, SearchIndex, WhenTorn};

    fn product(id: i64, title: &str, description: &str, price: &str, category_id: i64, sold_count: i64) -> Product {
        let now = chrono::Utc::now();
        Product {
            id,
            title: title.into(),
            description: description.into(),
            price: Money::parse(price).unwrap(),
            stock: 1,
            image_url: String::new(),
            category_id,
            category_name: String::new(),
            category_slug: String::new(),
            created_at: now,
            updated_at: now,
            sold_count,
        }
    }

    fn index_of(products: &[Product]) -> SearchIndex {
        let index = SearchIndex::open(None, WhenTorn::Wait).unwrap();
        index.apply(products, &[], &Applied { database: "test".into(), sequence: 1 }).unwrap();
        index
    }

    fn search(index: &SearchIndex, query: &str) -> Ranked {
        let filter = SearchFilter { text: SearchText::parse(query).unwrap(), ..Default::default() };
        index.search_box(&filter, 0, 10, &CancellationToken::new()).unwrap()
    }

    fn ids(ranked: &Ranked) -> Vec<i64> {
        ranked.hits.iter().map(|hit| hit.id).collect()
    }

    #[test]
    fn a_typo_finds_the_word_meant_and_says_so() {
        let index = index_of(&[
            product(1, "Apple iPhone 15", "A phone", "799.00", 1, 0),
            product(2, "Phone case", "Fits the iPhone", "19.00", 1, 0),
            product(3, "Lamp", "Brass", "30.00", 2, 0),
        ]);
        let found = search(&index, "iphnoe ");
        assert_eq!(ids(&found), [1, 2], "title before description");
        assert_eq!(found.hits[0].typos, 1);
        assert_eq!(found.did_you_mean, Some(vec!["iphone".to_owned()]));
        assert_eq!(search(&index, "iphone ").did_you_mean, None, "nothing to correct");
        // Four letters allow no typo: "lamb" is not "lamp".
        assert_eq!(search(&index, "lamb ").total, 0);
    }

    #[test]
    fn two_typos_from_nine_letters_and_a_swap_is_one() {
        let index = index_of(&[product(1, "Wireless headphones", "", "99.00", 1, 0)]);
        assert_eq!(search(&index, "haedphnoes ").hits[0].typos, 2);
        assert_eq!(search(&index, "wirelses ").hits[0].typos, 1, "eight letters, one swap");
        assert_eq!(search(&index, "wirlses ").total, 0, "two typos need nine letters");
        assert_eq!(search(&index, "hxxdphones ").hits[0].typos, 2);
        assert_eq!(search(&index, "hxxxphones ").total, 0);
    }

    #[test]
    fn the_last_word_matches_as_a_prefix_while_typed() {
        let index = index_of(&[
            product(1, "Wireless headphones", "", "99.00", 1, 0),
            product(2, "Head lamp", "", "20.00", 1, 0),
            product(3, "Wireless mouse", "", "20.00", 1, 0),
        ]);
        let typing = search(&index, "wireless hea");
        assert_eq!(ids(&typing), [1, 3, 2], "both words first; then the whole word over the prefix");
        assert_eq!(typing.total, 3);
        assert_eq!(typing.matched.prefix.as_deref(), Some("hea"));
        assert_eq!(search(&index, "wireless hea ").total, 2, "a space ends the word: no prefix");
        assert_eq!(ids(&search(&index, "head")), [2, 1], "a whole word before a prefix");
        assert_eq!(search(&index, "h").total, 0, "one letter is no prefix");
    }

    #[test]
    fn ranking_follows_its_rules_in_order() {
        let index = index_of(&[
            // Both words, far apart in the description.
            product(1, "Kettle", "red enamel steel with a handle and a lid, a kettle", "40.00", 1, 0),
            // Both words, next to each other in the title.
            product(2, "Red kettle", "", "40.00", 1, 0),
            // Both words next to each other, in the description only.
            product(3, "Teapot", "a red kettle for tea", "40.00", 1, 0),
            // One word only.
            product(4, "Red lamp", "", "40.00", 1, 0),
            // Both words, one with a typo.
            product(5, "Red kettel", "", "40.00", 1, 0),
            // As 2, sold more.
            product(6, "Red kettle", "", "40.00", 1, 9),
        ]);
        let found = search(&index, "red kettle ");
        assert_eq!(ids(&found), [6, 2, 1, 3, 5, 4]);
        assert_eq!(found.hits.iter().map(|hit| hit.matched_words).collect::<Vec<_>>(), [2, 2, 2, 2, 2, 1]);
        // Order in the title counts: words in the typed order are closer.
        let index = index_of(&[
            product(1, "Kettle, red", "", "40.00", 1, 0),
            product(2, "Red kettle", "", "40.00", 1, 0),
            product(3, "Red enamel kettle", "", "40.00", 1, 0),
        ]);
        assert_eq!(ids(&search(&index, "red kettle ")), [2, 1, 3]);
    }

    #[test]
    fn facets_count_everything_found_within_the_filters() {
        let products: Vec<Product> = (1..=40)
            .map(|id| {
                let price = format!("{}.00", id * 10);
                product(id, &format!("Lamp {id}"), "", &price, id % 3 + 1, 0)
            })
            .collect();
        let index = index_of(&products);
        let filter = |min: Option<&str>, category: Option<i64>| SearchFilter {
            text: SearchText::parse("lamp").unwrap(),
            category_id: category,
            min_price: min.map(|min| Money::parse(min).unwrap()),
            max_price: None,
        };
        let found = index.search_box(&filter(None, None), 0, 5, &CancellationToken::new()).unwrap();
        assert_eq!((found.total, found.hits.len()), (40, 5));
        // 10-20 | 30-40 | 50-90 | 100-240 | 250-400
        assert_eq!(found.price_bands, [2, 2, 5, 15, 16]);
        let mut categories = found.categories.clone();
        categories.sort_unstable();
        assert_eq!(categories, [(1, 13), (2, 14), (3, 13)]);

        let narrowed = index.search_box(&filter(Some("100.00"), Some(2)), 0, 100, &CancellationToken::new()).unwrap();
        let expected: Vec<i64> = (10..=40).filter(|id| id % 3 + 1 == 2).collect();
        assert_eq!(narrowed.total, expected.len() as i64);
        assert_eq!(narrowed.categories, [(2, expected.len() as i64)]);
        assert_eq!(narrowed.price_bands.iter().sum::<i64>(), narrowed.total);
        let mut found_ids = ids(&narrowed);
        found_ids.sort_unstable();
        assert_eq!(found_ids, expected);
    }

    #[test]
    fn an_empty_query_lists_everything_by_units_sold_and_pages_are_exact() {
        let products: Vec<Product> =
            (1..=30).map(|id| product(id, &format!("Item {id}"), "", "5.00", 1, (id * 7) % 11)).collect();
        let index = index_of(&products);
        let filter = SearchFilter::default();
        let all = index.search_box(&filter, 0, 30, &CancellationToken::new()).unwrap();
        assert_eq!(all.total, 30);
        let mut expected = products.clone();
        expected.sort_by(|a, b| b.sold_count.cmp(&a.sold_count).then(a.id.cmp(&b.id)));
        assert_eq!(ids(&all), expected.iter().map(|product| product.id).collect::<Vec<_>>());
        let page = index.search_box(&filter, 10, 10, &CancellationToken::new()).unwrap();
        assert_eq!(ids(&page), ids(&all)[10..20]);
    }

    #[test]
    fn a_search_box_call_whose_caller_has_gone_stops() {
        let index = index_of(&[product(1, "Lamp", "", "5.00", 1, 0)]);
        let gone = CancellationToken::new();
        gone.cancel();
        let filter = SearchFilter { text: SearchText::parse("lamp").unwrap(), ..Default::default() };
        assert!(matches!(index.search_box(&filter, 0, 10, &gone), Err(Error::Abandoned)));
    }
}
