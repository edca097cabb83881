//! The catalog's search index (tantivy), beside Postgres, which stays the
//! record: a document per live product with what listings filter and sort
//! by, and, committed with each change, how far into the catalog's outbox
//! the index has applied (and which database that outbox is in).
//!
//! Search is exact, the same as `lower(title || ' ' || description) LIKE
//! '%term%'` for every term: text is split on white space, lowercased word by
//! word (as the terms are), and every suffix of every word is a term; a
//! search term then matches a document when some indexed term starts with it,
//! a range `[term, term ++ 0xFF)` in the term dictionary (0xFF never occurs in
//! UTF-8). A term has no white space, so it can never span two words, nor
//! title and description. `%` and `_` are plain characters here.
//!
//! Every call here blocks (disk, CPU): run it on the blocking pool.

use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;

use tantivy::collector::sort_key::{ComparatorEnum, SortByStaticFastValue};
use tantivy::collector::{Collector, Count, SegmentCollector, TopDocs, TopNComputer};
use tantivy::columnar::{Column, StrColumn};
use tantivy::directory::error::OpenReadError;
use tantivy::directory::{Directory, INDEX_WRITER_LOCK, MmapDirectory};
use tantivy::indexer::{IndexWriterOptions, LogMergePolicy};
use tantivy::query::{
    AllQuery, BooleanQuery, EnableScoring, Explanation, Occur, Query, RangeQuery, Scorer, TermQuery, Weight,
};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};
use tantivy::{
    DocId, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Score, SegmentReader, TantivyDocument, Term,
};
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::model::search_box::{self, SearchFilter};
use crate::model::{Ordering, Product, ProductFilter};
use crate::repo::relevance::{self, FactsCache, Ranked};

/// Bumped whenever the schema, the tokenizer or the folding changes: an
/// index of another version is rebuilt.
pub const VERSION: u32 = 2;

/// The longest suffix indexed, in characters. A search term matches only
/// within this many characters of a word's start… of a suffix's start, so it
/// must be at least the longest folded term: search is at most 200
/// characters, and lowercasing at most doubles a character count ('İ').
const WINDOW_CHARS: usize = 400;
const SUFFIX_TOKENIZER: &str = "suffixes";
/// Per indexing thread; tantivy's floor is 15 MB. A segment is cut when
/// this fills: 64 MB keeps the segments of a rebuild as few as before the
/// search box's word fields came in (ListProducts' exact search walks each
/// segment's dictionary, so more segments cost it; 50 MB made six of 1M
/// products where it made five).
const WRITER_MEMORY_BYTES: usize = 64_000_000;

fn tantivy_error(error: tantivy::TantivyError) -> Error {
    if is_torn(&error) { Error::IndexTorn(error.to_string()) } else { Error::Index(error.to_string()) }
}

/// Empties `dir` under the writer's lock (so never under a running catalog).
fn start_over(dir: &Path) -> Result<(), Error> {
    let directory = MmapDirectory::open(dir).map_err(|error| Error::Index(error.to_string()))?;
    let _lock = directory
        .acquire_lock(&INDEX_WRITER_LOCK)
        .map_err(|error| Error::IndexBusy(format!("{error}; is another catalog using this SHOP_CATALOG_INDEX_DIR?")))?;
    // The meta first: stopped half-way, this leaves an empty index, not a torn one.
    let _ = std::fs::remove_file(dir.join("meta.json"));
    for entry in std::fs::read_dir(dir).map_err(|error| Error::Index(error.to_string()))? {
        let entry = entry.map_err(|error| Error::Index(error.to_string()))?;
        if entry.file_name() != INDEX_WRITER_LOCK.filepath.as_os_str() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

fn is_torn(error: &tantivy::TantivyError) -> bool {
    matches!(error, tantivy::TantivyError::OpenReadError(OpenReadError::FileDoesNotExist(_)))
}

/// An error met while opening the index; busy (worth a retry) when another
/// writer still holds the directory, or when a file the last commit named
/// is gone: a catalog that just stopped may still be finishing a merge,
/// whose clean-up deletes files the newest commit no longer needs, at any
/// step of the opening (meta, writer, segment readers).
fn opening_error(error: tantivy::TantivyError) -> Error {
    match error {
        tantivy::TantivyError::LockFailure(..) => {
            Error::IndexBusy(format!("{error}; is another catalog using this SHOP_CATALOG_INDEX_DIR?"))
        }
        error if is_torn(&error) => Error::IndexBusy(format!(
            "{error}; the index changed while it was opened (is a catalog that just stopped still finishing, or another catalog using this SHOP_CATALOG_INDEX_DIR?)"
        )),
        error => tantivy_error(error),
    }
}

/// Splits on white space (as search terms are split), lowercases each word
/// (as search terms are lowercased) and emits every suffix of it:
/// "Straße" → "straße", "traße", "raße", "aße", "ße", "e".
#[derive(Clone, Default)]
struct SuffixTokenizer {
    token: Token,
}

struct SuffixTokenStream<'a> {
    words: std::str::SplitWhitespace<'a>,
    word: String,
    /// Byte offset of each character of `word`, then `word.len()`.
    starts: Vec<usize>,
    next: usize,
    token: &'a mut Token,
}

impl Tokenizer for SuffixTokenizer {
    type TokenStream<'a> = SuffixTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> SuffixTokenStream<'a> {
        self.token.reset();
        SuffixTokenStream {
            words: text.split_whitespace(),
            word: String::new(),
            starts: vec![0],
            next: 0,
            token: &mut self.token,
        }
    }
}

impl TokenStream for SuffixTokenStream<'_> {
    fn advance(&mut self) -> bool {
        while self.next + 1 >= self.starts.len() {
            let Some(word) = self.words.next() else { return false };
            self.word = word.to_lowercase();
            self.starts.clear();
            self.starts.extend(self.word.char_indices().map(|(at, _)| at));
            self.starts.push(self.word.len());
            self.next = 0;
        }
        let start = self.starts[self.next];
        let end = self.starts[(self.next + WINDOW_CHARS).min(self.starts.len() - 1)];
        self.token.text.clear();
        self.token.text.push_str(&self.word[start..end]);
        self.token.position = self.token.position.wrapping_add(1);
        self.next += 1;
        true
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

pub(super) struct Fields {
    id: Field,
    search: Field,
    /// The search box's words ([`crate::model::search_box`]), with positions.
    pub(super) title_words: Field,
    pub(super) description_words: Field,
    title: Field,
    category_id: Field,
    price_cents: Field,
    created_at_us: Field,
    sold_count: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let id = builder.add_i64_field("id", INDEXED | FAST);
    // Title and description are two values of one field: a term cannot span
    // values, and one range per term covers both.
    let search = builder.add_text_field(
        "search",
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(SUFFIX_TOKENIZER)
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        ),
    );
    let words = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(search_box::TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let title_words = builder.add_text_field("title_words", words.clone());
    let description_words = builder.add_text_field("description_words", words);
    // A column of the raw title, for the title orderings.
    let title = builder.add_text_field("title", TextOptions::default().set_fast("raw"));
    // A column too, for the search box's facets.
    let category_id = builder.add_i64_field("category_id", INDEXED | FAST);
    let price_cents = builder.add_i64_field("price_cents", FAST);
    let created_at_us = builder.add_i64_field("created_at_us", FAST);
    let sold_count = builder.add_i64_field("sold_count", FAST);
    (
        builder.build(),
        Fields {
            id,
            search,
            title_words,
            description_words,
            title,
            category_id,
            price_cents,
            created_at_us,
            sold_count,
        },
    )
}

/// What a commit records beside the documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Which database's outbox the sequence counts in.
    pub database: String,
    /// The last outbox sequence whose changes the index holds.
    pub sequence: i64,
}

impl Applied {
    fn payload(&self) -> String {
        format!("v{VERSION} {} {}", self.sequence, self.database)
    }

    fn from_payload(payload: &str) -> Option<Self> {
        let mut parts = payload.splitn(3, ' ');
        if parts.next()? != format!("v{VERSION}") {
            return None;
        }
        let sequence = parts.next()?.parse().ok()?;
        Some(Self { sequence, database: parts.next()?.to_owned() })
    }
}

pub struct SearchIndex {
    index: Index,
    fields: Fields,
    writer: Mutex<IndexWriter>,
    reader: IndexReader,
    facts: FactsCache,
}

/// What [`SearchIndex::open`] does with an index whose last commit names a
/// file that is gone.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WhenTorn {
    /// Reports it busy: a catalog that just stopped may still be finishing.
    Wait,
    /// Starts the index over (it is rebuilt from the record): it has stayed
    /// torn longer than any stopping catalog takes.
    StartOver,
}

impl SearchIndex {
    /// The index in `dir` (created if missing; one of another version or
    /// schema is emptied, to be rebuilt; a torn one as `when_torn` says), or
    /// in memory when `dir` is `None`.
    pub fn open(dir: Option<&Path>, when_torn: WhenTorn) -> Result<Self, Error> {
        let Some(dir) = dir else {
            let (schema, fields) = schema();
            return Self::over(Index::create_in_ram(schema), fields).map_err(opening_error);
        };
        std::fs::create_dir_all(dir).map_err(|error| Error::Index(format!("{}: {error}", dir.display())))?;
        match Self::open_in(dir) {
            Err(tantivy::TantivyError::SchemaError(_)) => {
                tracing::warn!(dir = %dir.display(), "search index of another schema; rebuilding it");
                start_over(dir)?;
                Self::open_in(dir).map_err(opening_error)
            }
            Err(error) if is_torn(&error) && when_torn == WhenTorn::StartOver => {
                // A writer killed between a merge's clean-up and its commit
                // (tantivy skips the commit once killed) leaves this.
                tracing::warn!(dir = %dir.display(), %error, "search index names a file that is gone; rebuilding it");
                start_over(dir)?;
                Self::open_in(dir).map_err(opening_error)
            }
            opened => opened.map_err(opening_error),
        }
    }

    fn open_in(dir: &Path) -> tantivy::Result<Self> {
        let directory = MmapDirectory::open(dir)?;
        // An index of another schema is refused here, so the fields of ours
        // are the index's.
        let (schema, fields) = schema();
        Self::over(Index::open_or_create(directory, schema)?, fields)
    }

    fn over(index: Index, fields: Fields) -> tantivy::Result<Self> {
        // Tokenizers are not stored with the index.
        index.tokenizers().register(SUFFIX_TOKENIZER, SuffixTokenizer::default());
        index.tokenizers().register(search_box::TOKENIZER, search_box::analyzer());
        // One indexing thread: each commit then adds one segment, not one per
        // thread; one merge thread, for two cores.
        let options = IndexWriterOptions::builder()
            .num_worker_threads(1)
            .num_merge_threads(1)
            .memory_budget_per_thread(WRITER_MEMORY_BYTES)
            .build();
        let writer: IndexWriter = index.writer_with_options(options)?;
        // Every sale rewrites a document; without this, deleted documents
        // would pile up in the big segments (deletes alone never merge).
        let mut merges = LogMergePolicy::default();
        merges.set_del_docs_ratio_before_merge(0.2);
        writer.set_merge_policy(Box::new(merges));
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(Self { index, fields, writer: Mutex::new(writer), reader, facts: FactsCache::default() })
    }

    /// What the last commit holds; `None` for an empty (or foreign) index.
    pub fn applied(&self) -> Result<Option<Applied>, Error> {
        let metas = self.index.load_metas().map_err(tantivy_error)?;
        Ok(metas.payload.as_deref().and_then(Applied::from_payload))
    }

    fn document(&self, product: &Product) -> TantivyDocument {
        let fields = &self.fields;
        let mut document = TantivyDocument::default();
        document.add_i64(fields.id, product.id);
        document.add_text(fields.search, &product.title);
        document.add_text(fields.search, &product.description);
        document.add_text(fields.title_words, &product.title);
        document.add_text(fields.description_words, &product.description);
        document.add_text(fields.title, &product.title);
        document.add_i64(fields.category_id, product.category_id);
        document.add_i64(fields.price_cents, product.price.cents());
        document.add_i64(fields.created_at_us, product.created_at.timestamp_micros());
        document.add_i64(fields.sold_count, product.sold_count);
        document
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, IndexWriter> {
        // A panic while holding it cannot leave a half-applied batch visible:
        // only commits are.
        self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Puts `live` in (replacing their old documents), takes `gone` out, and
    /// commits with `applied`; readers see it all at once, right after.
    pub fn apply(&self, live: &[Product], gone: &[i64], applied: &Applied) -> Result<(), Error> {
        let mut writer = self.writer();
        for product in live {
            // A delete removes only what was added before it.
            writer.delete_term(Term::from_field_i64(self.fields.id, product.id));
            writer.add_document(self.document(product)).map_err(tantivy_error)?;
        }
        for id in gone {
            writer.delete_term(Term::from_field_i64(self.fields.id, *id));
        }
        Self::commit(&mut writer, applied)?;
        drop(writer);
        self.reader.reload().map_err(tantivy_error)
    }

    /// Starts a rebuild: every document goes, uncommitted, until
    /// [`SearchIndex::finish_rebuild`]; readers keep the old ones till then.
    pub fn start_rebuild(&self) -> Result<(), Error> {
        self.writer().delete_all_documents().map_err(tantivy_error).map(|_| ())
    }

    pub fn add(&self, products: &[Product]) -> Result<(), Error> {
        let writer = self.writer();
        for product in products {
            writer.add_document(self.document(product)).map_err(tantivy_error)?;
        }
        Ok(())
    }

    pub fn finish_rebuild(&self, applied: &Applied) -> Result<(), Error> {
        Self::commit(&mut self.writer(), applied)?;
        self.reader.reload().map_err(tantivy_error)
    }

    /// Forgets what was added since the last commit (a failed batch or rebuild).
    pub fn roll_back(&self) -> Result<(), Error> {
        self.writer().rollback().map_err(tantivy_error).map(|_| ())
    }

    fn commit(writer: &mut IndexWriter, applied: &Applied) -> Result<(), Error> {
        // A plain commit() would store no payload.
        let mut prepared = writer.prepare_commit().map_err(tantivy_error)?;
        prepared.set_payload(&applied.payload());
        prepared.commit().map_err(tantivy_error).map(|_| ())
    }

    fn query(&self, filter: &ProductFilter, abandoned: &CancellationToken) -> Box<dyn Query> {
        let fields = &self.fields;
        let mut must: Vec<Box<dyn Query>> = Vec::new();
        for term in &filter.terms {
            let lower = Term::from_field_text(fields.search, term);
            let mut upper = lower.clone();
            upper.append_bytes(&[0xFF]);
            // A short term's range can cover much of the dictionary: each is
            // a point where an abandoned search stops.
            let range = Box::new(RangeQuery::new(Bound::Included(lower), Bound::Excluded(upper)));
            must.push(Box::new(UntilAbandoned { inner: range, abandoned: abandoned.clone() }));
        }
        if let Some(category_id) = filter.category_id {
            let term = Term::from_field_i64(fields.category_id, category_id);
            must.push(Box::new(TermQuery::new(term, IndexRecordOption::Basic)));
        }
        if filter.min_price.is_some() || filter.max_price.is_some() {
            let bound = |price: Option<shop_platform::kernel::money::Money>| match price {
                Some(price) => Bound::Included(Term::from_field_i64(fields.price_cents, price.cents())),
                None => Bound::Unbounded,
            };
            must.push(Box::new(RangeQuery::new(bound(filter.min_price), bound(filter.max_price))));
        }
        match must.len() {
            0 => Box::new(AllQuery),
            1 => must.remove(0),
            _ => Box::new(BooleanQuery::new(must.into_iter().map(|query| (Occur::Must, query)).collect())),
        }
    }

    /// The ids of one page in `ordering` (ties by id in the same
    /// direction), and how many products match in all: one pass. Once
    /// `abandoned` is cancelled the search stops at its next segment or
    /// term, with [`Error::Abandoned`].
    pub fn search(
        &self,
        filter: &ProductFilter,
        ordering: Ordering,
        offset: usize,
        limit: usize,
        abandoned: &CancellationToken,
    ) -> Result<(i64, Vec<i64>), Error> {
        let failed = |error| if abandoned.is_cancelled() { Error::Abandoned } else { tantivy_error(error) };
        let searcher = self.reader.searcher();
        let query = UntilAbandoned { inner: self.query(filter, abandoned), abandoned: abandoned.clone() };
        // Collectors keep offset + limit entries per segment: past the last
        // document a page is empty anyway, and a huge page must not allocate.
        let offset = offset.min(searcher.num_docs() as usize);
        let limit = limit.max(1);
        let (column, descending) = ordering.column();
        let order = if descending { Order::Desc } else { Order::Asc };
        let (total, ids) = if column == "title" {
            searcher.search(&query, &(Count, ByTitle { offset, limit, order })).map_err(failed)?
        } else {
            let key = match column {
                "price" => "price_cents",
                "created_at" => "created_at_us",
                _ => "sold_count",
            };
            let top = TopDocs::with_limit(limit).and_offset(offset).order_by((
                (SortByStaticFastValue::<i64>::for_field(key), order),
                (SortByStaticFastValue::<i64>::for_field("id"), order),
            ));
            let (total, hits) = searcher.search(&query, &(Count, top)).map_err(failed)?;
            (total, hits.into_iter().filter_map(|((_, id), _)| id).collect())
        };
        Ok((total as i64, ids))
    }
}

impl SearchIndex {
    /// The search box's answer (SearchProducts): the page `[offset, offset +
    /// limit)` of the products found, best first, with the counts over all
    /// of them. Stops as [`SearchIndex::search`] does once `abandoned`.
    pub fn search_box(
        &self,
        filter: &SearchFilter,
        offset: usize,
        limit: usize,
        abandoned: &CancellationToken,
    ) -> Result<Ranked, Error> {
        let searcher = self.reader.searcher();
        relevance::rank(&searcher, &self.fields, &self.facts, filter, offset, limit, abandoned)
    }
}

/// A query that stops its search once its caller has left: each segment's
/// scorer (where a range of terms is read) is built only while the search
/// is still wanted. Work on the blocking pool cannot be cancelled from
/// outside, so it looks for itself.
#[derive(Debug)]
struct UntilAbandoned {
    inner: Box<dyn Query>,
    abandoned: CancellationToken,
}

impl Clone for UntilAbandoned {
    fn clone(&self) -> Self {
        Self { inner: self.inner.box_clone(), abandoned: self.abandoned.clone() }
    }
}

impl Query for UntilAbandoned {
    fn weight(&self, enable_scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let inner = self.inner.weight(enable_scoring)?;
        Ok(Box::new(UntilAbandonedWeight { inner, abandoned: self.abandoned.clone() }))
    }
}

struct UntilAbandonedWeight {
    inner: Box<dyn Weight>,
    abandoned: CancellationToken,
}

impl Weight for UntilAbandonedWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        if self.abandoned.is_cancelled() {
            return Err(tantivy::TantivyError::InvalidArgument("search abandoned by its caller".into()));
        }
        self.inner.scorer(reader, boost)
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        self.inner.explain(reader, doc)
    }
}

/// The top `offset + limit` by (title bytes, id), one direction. Within a
/// segment titles compare by their ordinal in the segment's dictionary
/// (sorted by bytes); each segment's survivors become bytes in one sorted
/// pass over its dictionary, and segments merge on the bytes.
struct ByTitle {
    offset: usize,
    limit: usize,
    order: Order,
}

struct ByTitleSegment {
    titles: StrColumn,
    ids: Column<i64>,
    top: TopNComputer<(u64, i64), DocId, (ComparatorEnum, ComparatorEnum)>,
}

impl Collector for ByTitle {
    type Fruit = Vec<i64>;
    type Child = ByTitleSegment;

    fn for_segment(&self, _ordinal: u32, reader: &SegmentReader) -> tantivy::Result<ByTitleSegment> {
        let titles = reader
            .fast_fields()
            .str("title")?
            .ok_or_else(|| tantivy::TantivyError::SchemaError("title is not a fast field".into()))?;
        let ids = reader.fast_fields().i64("id")?;
        let comparator = (ComparatorEnum::from(self.order), ComparatorEnum::from(self.order));
        let top = TopNComputer::new_with_comparator(self.offset + self.limit, comparator);
        Ok(ByTitleSegment { titles, ids, top })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, segments: Vec<Titled>) -> tantivy::Result<Vec<i64>> {
        let mut all: Titled = segments.into_iter().flatten().collect();
        // (title, id) is unique, as ids are.
        let in_order = |a: &(Vec<u8>, i64), b: &(Vec<u8>, i64)| match self.order {
            Order::Asc => a.cmp(b),
            Order::Desc => b.cmp(a),
        };
        let end = (self.offset + self.limit).min(all.len());
        if end < all.len() {
            all.select_nth_unstable_by(end, in_order);
            all.truncate(end);
        }
        all.sort_unstable_by(in_order);
        Ok(all.into_iter().skip(self.offset).map(|(_, id)| id).collect())
    }
}

/// What one segment of [`ByTitle`] keeps.
type Titled = Vec<(Vec<u8>, i64)>;

impl SegmentCollector for ByTitleSegment {
    type Fruit = Titled;

    fn collect(&mut self, doc: DocId, _score: Score) {
        // Every document has exactly one title and one id.
        let ordinal = self.titles.ords().first(doc).unwrap_or(0);
        let id = self.ids.first(doc).unwrap_or(0);
        self.top.push((ordinal, id), doc);
    }

    fn harvest(self) -> Titled {
        let hits = self.top.into_vec();
        let mut ordinals: Vec<u64> = hits.iter().map(|hit| hit.sort_key.0).collect();
        ordinals.sort_unstable();
        ordinals.dedup();
        let mut titles = Vec::with_capacity(ordinals.len());
        if self.titles.dictionary().sorted_ords_to_term_cb(&ordinals, |bytes| titles.push(bytes.to_vec())).is_err() {
            return Vec::new();
        }
        hits.into_iter()
            .filter_map(|hit| {
                let at = ordinals.binary_search(&hit.sort_key.0).ok()?;
                Some((titles.get(at)?.clone(), hit.sort_key.1))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lamp(id: i64) -> Product {
        let now = chrono::Utc::now();
        Product {
            id,
            title: format!("Lamp {id}"),
            description: "brass".into(),
            price: shop_platform::kernel::money::Money::parse("9.99").unwrap(),
            stock: 1,
            image_url: String::new(),
            category_id: 1,
            category_name: "Lamps".into(),
            category_slug: "lamps".into(),
            created_at: now,
            updated_at: now,
            sold_count: 0,
        }
    }

    #[test]
    fn a_search_whose_caller_has_gone_stops_with_abandoned() {
        let index = SearchIndex::open(None, WhenTorn::Wait).unwrap();
        let products: Vec<Product> = (1..=20).map(lamp).collect();
        index.apply(&products, &[], &Applied { database: "test".into(), sequence: 1 }).unwrap();
        let filter = ProductFilter { terms: vec!["lamp".into(), "brass".into()], ..Default::default() };
        let wanted = CancellationToken::new();
        let (total, ids) = index.search(&filter, Ordering::Title, 0, 5, &wanted).unwrap();
        assert_eq!((total, ids.len()), (20, 5));

        let gone = CancellationToken::new();
        gone.cancel();
        for ordering in [Ordering::Title, Ordering::PriceDesc] {
            let error = index.search(&filter, ordering, 0, 5, &gone).unwrap_err();
            assert!(matches!(error, Error::Abandoned), "{error:?}");
        }
    }

    #[test]
    fn an_index_naming_a_file_that_is_gone_waits_then_starts_over() {
        let dir = std::env::temp_dir().join(format!("shop-torn-index-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let index = SearchIndex::open(Some(&dir), WhenTorn::Wait).unwrap();
            let products: Vec<Product> = (1..=5).map(lamp).collect();
            index.apply(&products, &[], &Applied { database: "test".into(), sequence: 1 }).unwrap();
            assert!(index.applied().unwrap().is_some());
        }
        let segment_file = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.extension().is_some_and(|extension| extension == "term"))
            .expect("a committed segment");
        std::fs::remove_file(segment_file).unwrap();

        let error = SearchIndex::open(Some(&dir), WhenTorn::Wait).err().expect("torn");
        assert!(matches!(error, Error::IndexBusy(_)), "{error:?}");
        {
            // Never emptied under a catalog that still runs on it.
            let held = MmapDirectory::open(&dir).unwrap().acquire_lock(&INDEX_WRITER_LOCK).unwrap();
            let error = SearchIndex::open(Some(&dir), WhenTorn::StartOver).err().expect("locked");
            assert!(matches!(error, Error::IndexBusy(_)), "{error:?}");
            assert!(dir.join("meta.json").exists(), "nothing deleted");
            drop(held);
        }
        let index = SearchIndex::open(Some(&dir), WhenTorn::StartOver).unwrap();
        assert!(index.applied().unwrap().is_none(), "started over, to be rebuilt");
        drop(index);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
