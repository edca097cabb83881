//! ListProducts, and the search index that answers most of it.
//!
//! Postgres stays the record. Each catalog replica keeps its own search index
//! ([`crate::repo::search_index`]) and feeds it from the catalog's outbox:
//! every event names the products it touched, and the indexer puts their
//! current rows in (or takes archived ones out), committing with the last
//! sequence applied. So a restart resumes where the last commit left off, a
//! crash at any point converges to the record, and an index that cannot
//! resume (none yet, another version, another database, too far behind) is
//! rebuilt from one snapshot of the products table and its outbox head.
//!
//! Routing: a listing with search terms, a price range or a sold-count
//! ordering is answered by the index (exact count and page in one pass, then
//! the page's rows read from Postgres by id, so they carry current values).
//! A plain listing (every product, or one category, by price, date or title)
//! stays on Postgres, whose (key, id) indexes stop after one page and whose
//! per-category counts are kept with every change: the index would have to
//! visit every product to sort them.
//!
//! Cost: no listing reads deeper than `max_depth` products (a deeper page is
//! OUT_OF_RANGE, unless it is past the end, which stays an empty page), and
//! index searches and deep Postgres pages each run within a concurrency
//! budget. A search's turn goes with its work onto the blocking pool, and
//! the work stops once its caller has gone (deadline, reset): an abandoned
//! call frees nothing before its work has stopped.
//!
//! Freshness: a write on this replica returns once the index holds it (read
//! your writes). Sales do not wait for the index (checkout would pay for
//! it); a ranking by units sold catches the index up instead, when its rows
//! show it is behind.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::time::Duration;

use shop_platform::kernel::paging::Page;
use shop_platform::transport::budget::WorkBudget;
use sqlx::{Connection as _, PgConnection, PgPool};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::model::search_box::{Hit, SearchFilter, SearchPage, price_band_bounds};
use crate::model::{Category, Ordering, Product, ProductFilter};
use crate::repo;
use crate::repo::relevance::Ranked;
use crate::repo::search_index::{Applied, SearchIndex, WhenTorn};

/// Least time between two commits of the index while nobody waits for one:
/// stock moves of many checkouts share a commit.
const COMMIT_INTERVAL: Duration = Duration::from_millis(100);
/// The outbox is read this often even without a notification.
const POLL: Duration = Duration::from_secs(1);
/// Outbox events applied in one commit, at most.
const BATCH: i64 = 10_000;
/// Products read from the table per query while rebuilding.
const REBUILD_BATCH: i64 = 20_000;
/// An index further behind than this is rebuilt rather than caught up.
const REBUILD_BEYOND: i64 = 200_000;
/// Longest a write waits for the index to hold it.
const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(10);
/// A Postgres page starting this deep reads enough index entries to need
/// a turn of its budget.
const DEEP_OFFSET: i64 = 1_000;
/// Tries, 100 ms apart, to open an index a stopping catalog still holds.
const OPEN_ATTEMPTS: u32 = 50;

/// What one listing may cost.
#[derive(Clone)]
pub struct ListingLimits {
    /// `offset + limit` of a page, at most.
    pub max_depth: i64,
    pub searches: WorkBudget,
    pub deep_pages: WorkBudget,
}

/// Shared by the listings (readers) and the indexer (the one writer).
struct Progress {
    /// The last outbox sequence the index holds; `None` until it is ready.
    applied: watch::Sender<Option<i64>>,
    /// Writers waiting to read their own write: the indexer does not wait
    /// for its commit interval then.
    waiting: AtomicUsize,
    urgent: Notify,
}

/// What one search asks for, in one state of the index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SearchKey {
    /// The outbox sequence the index held: its state.
    applied: i64,
    filter: ProductFilter,
    ordering: Ordering,
    offset: usize,
    limit: usize,
}

/// A search's answer: the total and the page's ids.
type Found = (i64, Arc<[i64]>);

/// What one search-box call asks for, in one state of the index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RankKey {
    applied: i64,
    filter: SearchFilter,
    offset: usize,
    limit: usize,
}

#[derive(Clone)]
pub struct Listings {
    pool: PgPool,
    index: Arc<SearchIndex>,
    progress: Arc<Progress>,
    limits: ListingLimits,
    /// Answers of recent searches in the index's current state. Exact: a key
    /// names the state it was answered in, and a commit makes a new state
    /// (so every write, and every sale, moves past the old answers).
    answers: Option<Arc<quick_cache::sync::Cache<SearchKey, Found>>>,
    /// The same for the search box: a keystroke's answer is often another
    /// shopper's keystroke's.
    rankings: Option<Arc<quick_cache::sync::Cache<RankKey, Arc<Ranked>>>>,
}

impl Listings {
    /// Opens the index in `dir` (in memory when `None`), remembering the
    /// answers of up to `cached_answers` searches. The index is not ready
    /// until [`Listings::spawn_indexer`] has brought it up to date. A process
    /// that just stopped may still hold the directory for a moment.
    pub async fn open(
        pool: PgPool,
        dir: Option<&Path>,
        cached_answers: usize,
        limits: ListingLimits,
    ) -> Result<Self, Error> {
        let mut attempts = 0;
        let index = loop {
            // The last try starts a torn index over: no stopping catalog
            // takes this long to finish.
            let when_torn = if attempts < OPEN_ATTEMPTS { WhenTorn::Wait } else { WhenTorn::StartOver };
            match SearchIndex::open(dir, when_torn) {
                Err(Error::IndexBusy(_)) if attempts < OPEN_ATTEMPTS => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                opened => break Arc::new(opened?),
            }
        };
        let progress = Arc::new(Progress {
            applied: watch::Sender::new(None),
            waiting: AtomicUsize::new(0),
            urgent: Notify::new(),
        });
        let answers = (cached_answers > 0).then(|| Arc::new(quick_cache::sync::Cache::new(cached_answers)));
        let rankings = (cached_answers > 0).then(|| Arc::new(quick_cache::sync::Cache::new(cached_answers)));
        Ok(Self { pool, index, progress, limits, answers, rankings })
    }

    /// Resolves once the index has caught up after the start.
    pub fn ready(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut applied = self.progress.applied.subscribe();
        async move {
            let _ = applied.wait_for(Option::is_some).await;
        }
    }

    /// One page and the total over all pages.
    pub async fn list(
        &self,
        filter: &ProductFilter,
        ordering: Ordering,
        page: Page,
    ) -> Result<(Vec<Product>, i64), Error> {
        let (limit, offset) = (page.limit(), page.offset());
        // A minimum above the maximum matches nothing; no need to ask.
        if let (Some(min), Some(max)) = (filter.min_price, filter.max_price)
            && min > max
        {
            return Ok((Vec::new(), 0));
        }
        let too_deep = offset.saturating_add(limit) > self.limits.max_depth;
        if filter.total_is_tracked() && !ordering.is_by_sold_count() {
            // Taken before the connection, so no connection waits for a turn.
            let deep = offset >= DEEP_OFFSET && !too_deep;
            let _turn = if deep { Some(self.limits.deep_pages.take().await?) } else { None };
            let mut conn = self.pool.acquire().await?;
            let total = repo::categories::live_count(&mut conn, filter.category_id).await?;
            if offset >= total {
                return Ok((Vec::new(), total));
            }
            if too_deep {
                return Err(Error::TooDeep { max_depth: self.limits.max_depth });
            }
            return Ok((repo::products::list(&mut conn, filter.category_id, ordering, limit, offset).await?, total));
        }
        if too_deep {
            // Past the end is still an empty page, not an error.
            let (_, (total, _)) = self.search(filter, ordering, 0, 1).await?;
            if offset >= total {
                return Ok((Vec::new(), total));
            }
            return Err(Error::TooDeep { max_depth: self.limits.max_depth });
        }
        let (offset, limit) = (usize::try_from(offset).unwrap_or(usize::MAX), usize::try_from(limit).unwrap_or(0));
        let (applied, (total, ids)) = self.search(filter, ordering, offset, limit).await?;
        if ids.is_empty() {
            return Ok((Vec::new(), total));
        }
        let mut conn = self.pool.acquire().await?;
        if !ordering.is_by_sold_count() {
            return Ok((repo::products::find_many(&mut conn, &ids).await?, total));
        }
        // A sale does not wait for the index (checkout would pay for it), so
        // the index may rank by older counts than the rows show. The rows
        // come with the last event committed when they were read: an index
        // behind it catches up first and ranks again, so the ranking takes in
        // every sale committed before this call, and (writes aside that land
        // meanwhile) agrees with the counts the page shows.
        let (page, head) = repo::products::find_many_at_head(&mut conn, &ids).await?;
        drop(conn);
        let Some(head) = head.filter(|head| *head > applied) else {
            return Ok((page, total));
        };
        self.wait_applied(head).await;
        let (_, (total, ids)) = self.search(filter, ordering, offset, limit).await?;
        if ids.is_empty() {
            return Ok((Vec::new(), total));
        }
        Ok((repo::products::find_many(&mut *self.pool.acquire().await?, &ids).await?, total))
    }

    /// The index's answer (from the answer cache when it has it) in its
    /// current state, and that state.
    async fn search(
        &self,
        filter: &ProductFilter,
        ordering: Ordering,
        offset: usize,
        limit: usize,
    ) -> Result<(i64, Found), Error> {
        let key = |applied| SearchKey { applied, filter: filter.clone(), ordering, offset, limit };
        let filter = filter.clone();
        self.answer(self.answers.as_deref(), key, move |index, abandoned| {
            let (total, ids) = index.search(&filter, ordering, offset, limit, abandoned)?;
            Ok((total, ids.into()))
        })
        .await
    }

    /// An answer of the index in its current state, and that state: from
    /// `cache` when it holds the state's `key`, else `work` on the blocking
    /// pool within the searches' budget.
    async fn answer<K: Eq + std::hash::Hash, V: Clone + Send + 'static>(
        &self,
        cache: Option<&quick_cache::sync::Cache<K, V>>,
        key: impl FnOnce(i64) -> K,
        work: impl FnOnce(&SearchIndex, &CancellationToken) -> Result<V, Error> + Send + 'static,
    ) -> Result<(i64, V), Error> {
        let Some(applied) = *self.progress.applied.borrow() else {
            return Err(Error::IndexNotReady);
        };
        let key = key(applied);
        if let Some(answer) = cache.and_then(|cache| cache.get(&key)) {
            return Ok((applied, answer));
        }
        let turn = self.limits.searches.take().await?;
        // Dropped with this call (its deadline passed, or the client reset
        // it): the work sees it and stops.
        let abandoned = CancellationToken::new();
        let _abandon_on_drop = abandoned.clone().drop_guard();
        let answer = self
            .blocking(move |index| {
                let _turn = turn;
                work(index, &abandoned)
            })
            .await?;
        if let Some(cache) = cache {
            cache.insert(key, answer.clone());
        }
        Ok((applied, answer))
    }

    /// SearchProducts: one page of the search box's answer, with the counts
    /// over all pages, bounded as listings are (depth, the searches' budget,
    /// abandonment). The rows are read as they are now.
    pub async fn search_box(&self, filter: &SearchFilter, page: Page) -> Result<SearchPage, Error> {
        let (limit, offset) = (page.limit(), page.offset());
        // A minimum above the maximum matches nothing; no need to ask.
        if let (Some(min), Some(max)) = (filter.min_price, filter.max_price)
            && min > max
        {
            return Ok(SearchPage::from_counts(&Ranked::default(), Vec::new(), None));
        }
        let too_deep = offset.saturating_add(limit) > self.limits.max_depth;
        let (offset, limit) = (usize::try_from(offset).unwrap_or(usize::MAX), usize::try_from(limit).unwrap_or(0));
        let ranked = self.rank(filter, if too_deep { 0 } else { offset }, if too_deep { 0 } else { limit }).await?;
        if too_deep && offset < usize::try_from(ranked.total).unwrap_or(usize::MAX) {
            return Err(Error::TooDeep { max_depth: self.limits.max_depth });
        }
        let ids: Vec<i64> = ranked.hits.iter().map(|hit| hit.id).collect();
        let mut conn = self.pool.acquire().await?;
        let mut products: std::collections::HashMap<i64, Product> = if ids.is_empty() {
            Default::default()
        } else {
            repo::products::find_many(&mut conn, &ids).await?.into_iter().map(|product| (product.id, product)).collect()
        };
        let categories =
            if ranked.categories.is_empty() { Vec::new() } else { repo::categories::list(&mut conn).await? };
        drop(conn);
        // A product archived since the index answered is left out.
        let hits = ranked
            .hits
            .iter()
            .filter_map(|hit| {
                let product = products.remove(&hit.id)?;
                Some(Hit::new(product, &ranked.matched, hit.matched_words, hit.typos))
            })
            .collect();
        Ok(SearchPage::from_counts(&ranked, hits, Some(categories)))
    }

    /// The index's ranking (from the cache when it has it) in its current state.
    async fn rank(&self, filter: &SearchFilter, offset: usize, limit: usize) -> Result<Arc<Ranked>, Error> {
        let key = |applied| RankKey { applied, filter: filter.clone(), offset, limit };
        let filter = filter.clone();
        let (_, ranked) = self
            .answer(self.rankings.as_deref(), key, move |index, abandoned| {
                Ok(Arc::new(index.search_box(&filter, offset, limit, abandoned)?))
            })
            .await?;
        Ok(ranked)
    }

    /// Waits until the index holds outbox event `sequence` (a write of this
    /// replica): the next listing shows it. A write is never failed for
    /// this; an index that lags that long is logged.
    pub async fn wait_applied(&self, sequence: i64) {
        let mut applied = self.progress.applied.subscribe();
        if applied.borrow().is_some_and(|applied| applied >= sequence) {
            return;
        }
        self.progress.waiting.fetch_add(1, AtomicOrdering::SeqCst);
        self.progress.urgent.notify_one();
        let waited = tokio::time::timeout(
            READ_YOUR_WRITES_WAIT,
            applied.wait_for(|applied| applied.is_some_and(|applied| applied >= sequence)),
        )
        .await;
        self.progress.waiting.fetch_sub(1, AtomicOrdering::SeqCst);
        if waited.is_err() {
            tracing::warn!(sequence, "the search index did not take a write in time");
        }
    }

    /// The search index's one async face: `work` runs on the blocking pool
    /// (with whatever it took along, such as a budget turn, dropped there).
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&SearchIndex) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || work(&index)).await.map_err(|error| Error::Index(error.to_string()))?
    }

    /// Brings the index up to date, then keeps it there, until aborted.
    /// `committed` is notified when catalog events may have been committed
    /// (the event feed's notifications).
    pub fn spawn_indexer(&self, committed: Arc<Notify>) -> JoinHandle<()> {
        let indexer = Indexer { listings: self.clone(), committed, start_over: AtomicBool::new(false) };
        tokio::spawn(async move { indexer.run().await })
    }
}

struct Indexer {
    listings: Listings,
    /// Notified when catalog events may have been committed (by any replica).
    committed: Arc<Notify>,
    /// The last run found the index torn: the next one rebuilds it.
    start_over: AtomicBool,
}

impl Indexer {
    async fn run(self) {
        shop_platform::observability::restart::keep_running("search indexer", || async {
            let stopped = self.keep_up().await;
            if matches!(stopped, Err(Error::IndexTorn(_))) {
                self.start_over.store(true, AtomicOrdering::SeqCst);
            }
            if stopped.is_err() {
                // What was added and not committed must not come in with the next commit.
                let _ = self.listings.blocking(SearchIndex::roll_back).await;
            }
            stopped
        })
        .await;
    }

    /// Opens (resumes or rebuilds), catches up, then follows the outbox.
    async fn keep_up(&self) -> Result<(), Error> {
        let listings = &self.listings;
        let mut conn = listings.pool.acquire().await?.detach();
        let database = repo::outbox::database_identity(&mut conn).await?;
        let head = repo::outbox::head(&mut conn).await?;
        let committed = if self.start_over.swap(false, AtomicOrdering::SeqCst) {
            tracing::warn!("search index names a file that is gone; rebuilding it");
            None
        } else {
            listings.blocking(SearchIndex::applied).await?
        };
        let mut applied = match committed {
            Some(applied)
                if applied.database == database && (head - REBUILD_BEYOND..=head).contains(&applied.sequence) =>
            {
                tracing::info!(sequence = applied.sequence, head, "search index resumes");
                applied.sequence
            }
            _ => self.rebuild(&mut conn, &database).await?,
        };
        // Catch up with what was committed meanwhile, then serve.
        while self.apply_next(&mut conn, &database, &mut applied).await? == BATCH as usize {}
        listings.progress.applied.send_replace(Some(applied));
        tracing::info!(sequence = applied, "search index is ready");

        let mut last_commit = Instant::now();
        loop {
            // Registered before reading, so an event committed meanwhile still wakes us.
            let notified = self.committed.notified();
            let urgent = listings.progress.urgent.notified();
            tokio::pin!(notified, urgent);
            notified.as_mut().enable();
            urgent.as_mut().enable();
            let before = applied;
            while self.apply_next(&mut conn, &database, &mut applied).await? == BATCH as usize {}
            if applied != before {
                listings.progress.applied.send_replace(Some(applied));
                last_commit = Instant::now();
            }
            let someone_waits = || listings.progress.waiting.load(AtomicOrdering::SeqCst) > 0;
            if applied == before || !someone_waits() {
                tokio::select! {
                    () = &mut notified => {}
                    () = &mut urgent => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
            // Let changes gather, unless a writer waits to read its write.
            if !someone_waits() {
                tokio::select! {
                    () = tokio::time::sleep_until(last_commit + COMMIT_INTERVAL) => {}
                    () = &mut urgent => {}
                }
            }
        }
    }

    /// Applies the next batch of outbox events after `applied`; returns how
    /// many there were (0: caught up).
    async fn apply_next(&self, conn: &mut PgConnection, database: &str, applied: &mut i64) -> Result<usize, Error> {
        let changes = repo::outbox::product_changes_after(conn, *applied, BATCH).await?;
        let Some(last) = changes.last().map(|(sequence, _)| *sequence) else { return Ok(0) };
        let mut touched: Vec<i64> = changes.iter().flat_map(|(_, ids)| ids.iter().copied()).collect();
        touched.sort_unstable();
        touched.dedup();
        // The rows as they are now: at least as new as the events.
        let live = repo::products::find_many(conn, &touched).await?;
        let found: std::collections::HashSet<i64> = live.iter().map(|product| product.id).collect();
        let gone: Vec<i64> = touched.into_iter().filter(|id| !found.contains(id)).collect();
        let next = Applied { database: database.to_owned(), sequence: last };
        self.listings.blocking(move |index| index.apply(&live, &gone, &next)).await?;
        *applied = last;
        Ok(changes.len())
    }

    /// Fills the index anew from one snapshot of the products table, and
    /// returns the outbox sequence that snapshot holds.
    async fn rebuild(&self, conn: &mut PgConnection, database: &str) -> Result<i64, Error> {
        let started = Instant::now();
        self.listings.blocking(SearchIndex::start_rebuild).await?;
        let mut snapshot = conn.begin().await?;
        // Writers append to the outbox last and commit in sequence order, so
        // this snapshot holds exactly the changes of events up to its head.
        let head = repo::products::snapshot_for_rebuild(&mut snapshot).await?;
        let (mut after_id, mut count) = (0, 0_usize);
        loop {
            let batch = repo::products::live_after(&mut snapshot, after_id, REBUILD_BATCH).await?;
            let Some(last) = batch.last() else { break };
            after_id = last.id;
            count += batch.len();
            self.listings.blocking(move |index| index.add(&batch)).await?;
        }
        snapshot.commit().await?;
        let applied = Applied { database: database.to_owned(), sequence: head };
        self.listings.blocking(move |index| index.finish_rebuild(&applied)).await?;
        tracing::info!(
            products = count,
            sequence = head,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "search index rebuilt"
        );
        Ok(head)
    }
}

impl SearchPage {
    /// The page of `hits` with the counts of `ranked`; a category facet
    /// names its category from `categories` (none: no counts).
    fn from_counts(ranked: &Ranked, hits: Vec<Hit>, categories: Option<Vec<Category>>) -> Self {
        let by_id: std::collections::HashMap<i64, Category> =
            categories.unwrap_or_default().into_iter().map(|category| (category.id, category)).collect();
        let mut facets: Vec<(Category, i64)> =
            ranked.categories.iter().filter_map(|(id, count)| Some((by_id.get(id)?.clone(), *count))).collect();
        facets.sort_by(|(a, a_count), (b, b_count)| b_count.cmp(a_count).then_with(|| a.name.cmp(&b.name)));
        let price_bands = ranked
            .price_bands
            .iter()
            .enumerate()
            .map(|(band, count)| {
                let (low, high) = price_band_bounds(band);
                (low, high, *count)
            })
            .collect();
        Self {
            hits,
            total: ranked.total,
            categories: facets,
            price_bands,
            did_you_mean: ranked.did_you_mean.as_ref().map(|words| words.join(" ")),
        }
    }
}
