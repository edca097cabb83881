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

    /// The first criteria at once, larger is better: words matched, fewer
    /// typos, fewer prefixes, more words in the title ([`Key`]). Bit
    /// arithmetic: it runs for every product found.
    fn key(&self, words: usize) -> u32 {
        // One bit per word: the low and the high bit of its two.
        let ones = 0x5_5555_u32 & ((1_u32 << (2 * words)) - 1);
        let (low, high) = (self.typos & ones, (self.typos >> 1) & ones);
        let unmatched = low & high;
        let matched = words as u32 - unmatched.count_ones();
        let typos = (low & !unmatched).count_ones() + 2 * (high & !unmatched).count_ones();
        let whole = u32::from(self.whole) & ((1 << words) - 1);
        let prefixes = matched - whole.count_ones().min(matched);
        Key::of(matched, typos, prefixes, self.in_title.count_ones())
    }
}

/// The first criteria packed into one number that orders as they do (larger
/// is better) and indexes a table of counts: words matched (0-10), typos
/// (0-20), prefixes (0-10), words in the title (0-10).
struct Key;

impl Key {
    const TITLE: u32 = 11;
    const PREFIXES: u32 = 11 * Key::TITLE;
    const TYPOS: u32 = 21 * Key::PREFIXES;
    /// Every key is below this.
    const ALL: u32 = 11 * Key::TYPOS;

    fn of(matched: u32, typos: u32, prefixes: u32, in_title: u32) -> u32 {
        matched * Key::TYPOS + (20 - typos) * Key::PREFIXES + (10 - prefixes) * Key::TITLE + in_title
    }

    fn matched(key: u32) -> u32 {
        key / Key::TYPOS
    }

    fn typos(key: u32) -> u32 {
        20 - (key % Key::TYPOS) / Key::PREFIXES
    }
}

/// Every product one segment's postings name, with what it matched: a map
/// when they are few, else an array over the segment's documents (postings
/// come in document order, so filling it is a walk, not a hash per doc).
enum Board {
    Sparse(FxHashMap<DocId, DocMatch>),
    Dense {
        matches: Vec<DocMatch>,
        found: Vec<DocId>,
    },
    /// An empty query: every live document, none matching a word.
    Everything(Vec<DocId>),
}

impl Board {
    /// For `postings` postings to come in a segment of `max_doc` documents.
    fn new(max_doc: DocId, postings: u64) -> Self {
        if postings.saturating_mul(16) >= u64::from(max_doc) {
            Board::Dense { matches: vec![DocMatch::NOTHING; max_doc as usize], found: Vec::new() }
        } else {
            Board::Sparse(FxHashMap::with_capacity_and_hasher(postings as usize, Default::default()))
        }
    }

    fn at(&mut self, doc: DocId) -> &mut DocMatch {
        match self {
            Board::Sparse(map) => map.entry(doc).or_insert(DocMatch::NOTHING),
            Board::Everything(_) => unreachable!("no word is noted for an empty query"),
            Board::Dense { matches, found } => {
                let matched = &mut matches[doc as usize];
                // Every note marks a word matched: untouched is NOTHING.
                if matched.typos == DocMatch::NOTHING.typos {
                    found.push(doc);
                }
                matched
            }
        }
    }

    fn each(&self, mut visit: impl FnMut(DocId, &DocMatch)) {
        match self {
            Board::Sparse(map) => map.iter().for_each(|(doc, matched)| visit(*doc, matched)),
            Board::Dense { matches, found } => found.iter().for_each(|doc| visit(*doc, &matches[*doc as usize])),
            Board::Everything(docs) => docs.iter().for_each(|doc| visit(*doc, &DocMatch::NOTHING)),
        }
    }
}

/// A product found that may still reach the page.
#[derive(Clone)]
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

impl WordEvidence {
    fn note(&mut self, expanded: &Expanded) {
        if expanded.typos == 0 {
            self.without_typos = true;
        } else {
            let seen = self.with_typos.entry(expanded.text.clone()).or_insert((expanded.typos, 0));
            seen.1 += u64::from(expanded.info.doc_freq);
        }
    }
}

/// Each document's category and price in one segment, as plain arrays:
/// every product found is counted into the facets, and a fast field column
/// decodes each value it is asked for. Segments never change (a changed
/// product is a new document elsewhere), so these are built once per
/// segment and kept while it lives.
pub(super) struct SegmentFacts {
    /// Per document, which of `category_ids` its category is: counting by
    /// slot needs no hashing per product.
    category_slots: Vec<u32>,
    category_ids: Vec<i64>,
    prices: Vec<i64>,
}

impl SegmentFacts {
    fn category(&self, doc: DocId) -> i64 {
        self.category_ids[self.category_slots[doc as usize] as usize]
    }
}

/// [`SegmentFacts`] of the segments searched lately.
#[derive(Default)]
pub(super) struct FactsCache(std::sync::Mutex<FxHashMap<tantivy::index::SegmentId, std::sync::Arc<SegmentFacts>>>);

impl FactsCache {
    fn of(&self, segment: &SegmentReader) -> Result<std::sync::Arc<SegmentFacts>, Error> {
        let id = segment.segment_id();
        if let Some(facts) = self.lock().get(&id) {
            return Ok(facts.clone());
        }
        let categories = segment.fast_fields().i64("category_id").map_err(index_error)?;
        let prices = segment.fast_fields().i64("price_cents").map_err(index_error)?;
        let mut category_ids: Vec<i64> = Vec::new();
        let mut slots: FxHashMap<i64, u32> = FxHashMap::default();
        let mut category_slots = Vec::with_capacity(segment.max_doc() as usize);
        for doc in 0..segment.max_doc() {
            let category = categories.first(doc).unwrap_or(0);
            let slot = *slots.entry(category).or_insert_with(|| {
                category_ids.push(category);
                (category_ids.len() - 1) as u32
            });
            category_slots.push(slot);
        }
        let facts = std::sync::Arc::new(SegmentFacts {
            category_slots,
            category_ids,
            prices: (0..segment.max_doc()).map(|doc| prices.first(doc).unwrap_or(0)).collect(),
        });
        self.lock().insert(id, facts.clone());
        Ok(facts)
    }

    /// Forgets the segments `searcher` no longer has (merged away).
    fn keep_only(&self, searcher: &Searcher) {
        let live: rustc_hash::FxHashSet<_> = searcher.segment_readers().iter().map(SegmentReader::segment_id).collect();
        self.lock().retain(|id, _| live.contains(id));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FxHashMap<tantivy::index::SegmentId, std::sync::Arc<SegmentFacts>>> {
        // Only whole entries go in: a panic elsewhere leaves nothing half-made.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub(super) fn rank(
    searcher: &Searcher,
    fields: &Fields,
    facts: &FactsCache,
    filter: &SearchFilter,
    offset: usize,
    limit: usize,
    abandoned: &CancellationToken,
) -> Result<Ranked, Error> {
    let words = &filter.text.words;
    let stop_if_abandoned = || if abandoned.is_cancelled() { Err(Error::Abandoned) } else { Ok(()) };
    let mut scoring = Scoring::new(searcher, fields)?;
    let mut evidence: Vec<WordEvidence> = words.iter().map(|_| WordEvidence::default()).collect();
    let mut counts = Counts::default();
    // Per segment: its facts, what its postings found, and its expansions
    // (kept for reading positions later).
    let mut segments = Vec::with_capacity(searcher.segment_readers().len());
    for segment in searcher.segment_readers() {
        stop_if_abandoned()?;
        let segment_facts = facts.of(segment)?;
        let alive = |doc: DocId| segment.alive_bitset().is_none_or(|alive| alive.is_alive(doc));
        let mut expansions = Vec::with_capacity(words.len());
        for (at, word) in words.iter().enumerate() {
            let as_prefix = filter.text.last_is_prefix && at + 1 == words.len();
            let mut word_expansions = Vec::new();
            for (field, in_title) in [(fields.title_words, true), (fields.description_words, false)] {
                let inverted = segment.inverted_index(field).map_err(index_error)?;
                for expanded in expand(&inverted, field, word, as_prefix)? {
                    evidence[at].note(&expanded);
                    word_expansions.push((in_title, expanded));
                }
            }
            expansions.push(word_expansions);
        }
        let found = if words.is_empty() {
            Board::Everything((0..segment.max_doc()).filter(|doc| alive(*doc)).collect())
        } else {
            let postings: u64 =
                expansions.iter().flatten().map(|(_, expanded)| u64::from(expanded.info.doc_freq)).sum();
            let mut found = Board::new(segment.max_doc(), postings);
            for (at, word_expansions) in expansions.iter().enumerate() {
                stop_if_abandoned()?;
                for (in_title, expanded) in word_expansions {
                    let field = if *in_title { fields.title_words } else { fields.description_words };
                    let weight = scoring.weight(*in_title, &expanded.text)?;
                    let norms = segment.get_fieldnorms_reader(field).map_err(index_error)?;
                    let mut postings = segment
                        .inverted_index(field)
                        .map_err(index_error)?
                        .read_postings_from_terminfo(&expanded.info, IndexRecordOption::WithFreqs)
                        .map_err(index_error)?;
                    let mut doc = postings.doc();
                    while doc != TERMINATED {
                        if alive(doc) {
                            let score = weight.score(norms.fieldnorm_id(doc), postings.term_freq());
                            found.at(doc).note(at, expanded, *in_title, score);
                        }
                        doc = postings.advance();
                    }
                }
            }
            found
        };
        // Counted once, exactly: the total, the facets, and how many products
        // have each value of the first criteria.
        let mut per_slot = vec![0_i64; segment_facts.category_ids.len()];
        found.each(|doc, matched| {
            if filter_keeps(filter, &segment_facts, doc) {
                per_slot[segment_facts.category_slots[doc as usize] as usize] += 1;
                counts.add(segment_facts.prices[doc as usize], matched.key(words.len()));
            }
        });
        for (category, count) in segment_facts.category_ids.iter().zip(per_slot) {
            if count > 0 {
                *counts.categories.entry(*category).or_default() += count;
            }
        }
        segments.push((segment_facts, found, expansions));
    }
    facts.keep_only(searcher);
    stop_if_abandoned()?;

    let mut ranked = Ranked {
        total: counts.total,
        categories: counts.categories.iter().map(|(category, count)| (*category, *count)).collect(),
        price_bands: counts.price_bands,
        did_you_mean: did_you_mean(words, &evidence),
        matched: matched_words(filter, segments.iter().map(|(_, _, expansions)| expansions)),
        hits: Vec::new(),
    };
    let wanted = offset.saturating_add(limit);
    if offset as i64 >= counts.total || limit == 0 {
        return Ok(ranked);
    }
    // Only products whose first criteria tie with the page's last, or beat
    // it, can be on the page: the rest of the ranking is read for those.
    let threshold = counts.threshold(wanted);
    let mut candidates = Vec::new();
    for (ordinal, (segment_facts, found, _)) in segments.iter().enumerate() {
        found.each(|doc, matched| {
            let key = matched.key(words.len());
            if key >= threshold && filter_keeps(filter, segment_facts, doc) {
                candidates.push(Candidate::new(key, matched.score, ordinal, doc));
            }
        });
    }
    if words.len() > 1 {
        for (ordinal, segment) in searcher.segment_readers().iter().enumerate() {
            stop_if_abandoned()?;
            let chosen = of_segment(&mut candidates, ordinal);
            if !chosen.is_empty() {
                closeness(segment, fields, &segments[ordinal].2, chosen, words.len())?;
            }
        }
    }
    // Then the same again with closeness and BM25: units sold and ids are
    // read only for what can still reach the page.
    let before_sales = |a: &Candidate, b: &Candidate| {
        b.key.cmp(&a.key).then(a.proximity.cmp(&b.proximity)).then(b.score.total_cmp(&a.score))
    };
    if candidates.len() > wanted {
        candidates.select_nth_unstable_by(wanted - 1, before_sales);
        let last = candidates[wanted - 1].clone();
        candidates.retain(|candidate| before_sales(candidate, &last) != std::cmp::Ordering::Greater);
    }
    for (ordinal, segment) in searcher.segment_readers().iter().enumerate() {
        let chosen = of_segment(&mut candidates, ordinal);
        if chosen.is_empty() {
            continue;
        }
        let ids = segment.fast_fields().i64("id").map_err(index_error)?;
        let sold = segment.fast_fields().i64("sold_count").map_err(index_error)?;
        for candidate in chosen.iter_mut() {
            candidate.id = ids.first(candidate.doc).unwrap_or(0);
            candidate.sold = sold.first(candidate.doc).unwrap_or(0);
        }
    }
    candidates.sort_unstable_by(|a, b| before_sales(a, b).then(b.sold.cmp(&a.sold)).then(a.id.cmp(&b.id)));
    ranked.hits = candidates
        .iter()
        .skip(offset)
        .take(limit)
        .map(|candidate| RankedHit {
            id: candidate.id,
            matched_words: Key::matched(candidate.key),
            typos: Key::typos(candidate.key),
        })
        .collect();
    Ok(ranked)
}

/// The candidates of segment `ordinal`, by doc (sorting them all by
/// segment and doc first).
fn of_segment(candidates: &mut [Candidate], ordinal: usize) -> &mut [Candidate] {
    if !candidates.is_sorted_by_key(|candidate| (candidate.segment, candidate.doc)) {
        candidates.sort_unstable_by_key(|candidate| (candidate.segment, candidate.doc));
    }
    let start = candidates.partition_point(|candidate| (candidate.segment as usize) < ordinal);
    let end = candidates.partition_point(|candidate| (candidate.segment as usize) <= ordinal);
    &mut candidates[start..end]
}

fn filter_keeps(filter: &SearchFilter, facts: &SegmentFacts, doc: DocId) -> bool {
    filter.category_id.is_none_or(|wanted| wanted == facts.category(doc))
        && filter.min_price.is_none_or(|min| facts.prices[doc as usize] >= min.cents())
        && filter.max_price.is_none_or(|max| facts.prices[doc as usize] <= max.cents())
}

/// What is counted over every product found: the total, the facets, and
/// how many have each value of the first criteria.
struct Counts {
    total: i64,
    categories: FxHashMap<i64, i64>,
    price_bands: [i64; PRICE_BANDS],
    /// Products per key ([`Key`]).
    keys: Vec<usize>,
}

impl Default for Counts {
    fn default() -> Self {
        Self {
            total: 0,
            categories: FxHashMap::default(),
            price_bands: [0; PRICE_BANDS],
            keys: vec![0; Key::ALL as usize],
        }
    }
}

impl Counts {
    /// A product found at `cents` with first criteria `key` (its category is
    /// counted by the caller).
    fn add(&mut self, cents: i64, key: u32) {
        self.total += 1;
        self.price_bands[price_band(cents)] += 1;
        self.keys[key as usize] += 1;
    }

    /// The first criteria of the `wanted`th best product.
    fn threshold(&self, wanted: usize) -> u32 {
        let mut seen = 0;
        let mut lowest = 0;
        for (key, count) in self.keys.iter().enumerate().rev().filter(|(_, count)| **count > 0) {
            seen += count;
            lowest = key as u32;
            if seen >= wanted {
                break;
            }
        }
        lowest
    }
}

/// BM25 weights of the index words met, over the whole index.
struct Scoring<'a> {
    searcher: &'a Searcher,
    fields: &'a Fields,
    total_docs: u64,
    /// Title, description.
    average_norm: [f32; 2],
    weights: FxHashMap<(bool, String), Bm25Weight>,
}

impl<'a> Scoring<'a> {
    fn new(searcher: &'a Searcher, fields: &'a Fields) -> Result<Self, Error> {
        let total_docs = searcher.num_docs().max(1);
        let mut average_norm = [0.0_f32; 2];
        for (at, field) in [fields.title_words, fields.description_words].into_iter().enumerate() {
            let mut tokens = 0_u64;
            for segment in searcher.segment_readers() {
                tokens += segment.inverted_index(field).map_err(index_error)?.total_num_tokens();
            }
            average_norm[at] = tokens as f32 / total_docs as f32;
        }
        Ok(Self { searcher, fields, total_docs, average_norm, weights: FxHashMap::default() })
    }

    fn weight(&mut self, in_title: bool, text: &str) -> Result<Bm25Weight, Error> {
        if let Some(weight) = self.weights.get(&(in_title, text.to_owned())) {
            return Ok(weight.clone());
        }
        let (field, norm) = if in_title {
            (self.fields.title_words, self.average_norm[0])
        } else {
            (self.fields.description_words, self.average_norm[1])
        };
        let doc_freq = self.searcher.doc_freq(&Term::from_field_text(field, text)).map_err(index_error)?;
        let weight = Bm25Weight::for_one_term_without_explain(doc_freq, self.total_docs, norm);
        self.weights.insert((in_title, text.to_owned()), weight.clone());
        Ok(weight)
    }
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

fn matched_words<'a>(
    filter: &SearchFilter,
    expansions: impl Iterator<Item = &'a Vec<Vec<(bool, Expanded)>>>,
) -> Matched {
    let whole = expansions
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
    fn a_rare_word_and_a_common_one_are_counted_alike() {
        // One posting among many documents is kept in a map, many in an array.
        let mut products: Vec<Product> =
            (1..=300).map(|id| product(id, &format!("Plain mug {id}"), "", "5.00", 1, 0)).collect();
        products.push(product(301, "Zebra mug", "", "5.00", 2, 0));
        let index = index_of(&products);
        let rare = search(&index, "zebra mu");
        assert_eq!((rare.total, rare.hits[0].id, rare.hits[0].matched_words), (301, 301, 2));
        assert_eq!(search(&index, "zebra ").total, 1);
        assert_eq!(search(&index, "plain ").total, 300);
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
