//! Page numbers of `list-new` at a cost that does not grow with the page number.
//!
//! Reads change the set of unread messages anywhere in a client's history, so no dense numbering
//! of them can be stored. Instead, table `unread_counts` keeps the count of unread messages per
//! block of the client's sequence at two levels: blocks of 256 sequence numbers and blocks of
//! 65,536. Triggers change the counts when a message is read, unread or deleted. The code that
//! inserts a message counts it ([`NewUnread`]) in the same transaction. An insert trigger made
//! SQLite keep a statement journal of every page that each insert changed.
//!
//! Finding the first message of page N walks these counts and steps through index entries only
//! inside two blocks of 256, the one holding the start and the one holding the page's first
//! message:
//!
//! 1. the rest of the level-1 block holding the start, entry by entry (at most 256 entries);
//! 2. the rest of the level-2 block, by level-1 counts (at most 256 rows);
//! 3. the following level-2 blocks by their counts (one row per 65,536 messages of the client),
//!    then down into one level-2 block by level-1 counts and into one level-1 block by entries.
//!
//! A client's message ids and sequence numbers grow together, so a range of sequence numbers is
//! also a range of ids in the `(client_id, read_at, id)` index of unread messages.
//!
//! The walk runs through rusqlite on a reader connection's own SQLite handle. At 1,000,000
//! messages it reads up to about 530 count rows in five queries. Through sea-orm and sqlx, each
//! query cost 14 to 35 µs and each row about 0.4 µs more. A middle page by number took a p50 of
//! 0.77 ms over HTTP then, against 0.46 ms now, about the time of a first page.
//!
//! NOTE: SQLite syntax and driver, like the group-commit batches. MariaDB and PostgreSQL need
//! the walk on their own drivers.

use std::collections::BTreeMap;

use rusqlite::OptionalExtension;
use sea_orm::{ConnectionTrait, DbErr, Statement};

/// Level 1 counts blocks of `1 << LEVEL1_SHIFT` sequence numbers.
const LEVEL1_SHIFT: u32 = 8;
/// Level 2 counts blocks of `1 << LEVEL2_SHIFT` sequence numbers.
const LEVEL2_SHIFT: u32 = 16;

/// Adds `?4` unread messages to the count of block `?3` at level `?2` of client `?1`.
///
/// NOTE: SQLite syntax (numbered placeholders, `excluded`), also on the sea-orm path
/// ([`NewUnread::store_on`]). PostgreSQL needs `$1` placeholders, and MariaDB needs
/// `ON DUPLICATE KEY UPDATE`.
const ADD_UNREAD: &str = "INSERT INTO unread_counts (client_id, level, bucket, unread) VALUES (?1, ?2, ?3, ?4) \
                          ON CONFLICT (client_id, level, bucket) DO UPDATE SET unread = unread + excluded.unread";

/// Unread messages inserted in one transaction, counted per client and block, to be added to
/// `unread_counts` before the transaction commits.
#[derive(Debug, Default)]
pub struct NewUnread {
    /// Messages per client and level-1 block.
    level1: BTreeMap<(i32, i64), i64>,
}

impl NewUnread {
    /// Counts an inserted message that is unread.
    pub fn add(&mut self, client_id: i32, client_seq: i64) {
        *self.level1.entry((client_id, client_seq >> LEVEL1_SHIFT)).or_default() += 1;
    }

    /// Returns the changes to store as (client, level, bucket, messages): one row per level-1
    /// block and one per level-2 block.
    fn rows(&self) -> Vec<(i32, i16, i64, i64)> {
        let mut level2: BTreeMap<(i32, i64), i64> = BTreeMap::new();
        for (&(client_id, bucket), &added) in &self.level1 {
            *level2.entry((client_id, bucket >> (LEVEL2_SHIFT - LEVEL1_SHIFT))).or_default() += added;
        }
        let first = self.level1.iter().map(|(&(client_id, bucket), &added)| (client_id, 1, bucket, added));
        let second = level2.into_iter().map(|((client_id, bucket), added)| (client_id, 2, bucket, added));
        first.chain(second).collect()
    }

    /// Adds the counted messages to `unread_counts` through rusqlite (the group-commit batch).
    pub fn store(&mut self, connection: &rusqlite::Connection) -> rusqlite::Result<()> {
        // Most batches of results and claims insert nothing, and the writer prepares its
        // statements again after each lock, so an empty batch prepares none.
        if self.level1.is_empty() {
            return Ok(());
        }
        let mut add = connection.prepare_cached(ADD_UNREAD)?;
        for row in self.rows() {
            add.execute(row)?;
        }
        self.level1.clear();
        Ok(())
    }

    /// Adds the counted messages to `unread_counts` through sea-orm.
    pub async fn store_on<C: ConnectionTrait>(&mut self, connection: &C) -> Result<(), DbErr> {
        let backend = connection.get_database_backend();
        for (client_id, level, bucket, added) in self.rows() {
            connection.execute(Statement::from_sql_and_values(backend, ADD_UNREAD, [client_id.into(), level.into(), bucket.into(), added.into()])).await?;
        }
        self.level1.clear();
        Ok(())
    }
}

/// Counts the unread messages of every client again from `messages`, in place of the stored
/// counts. For ledgers whose rows were written with plain SQL beside the engine, as tests do.
pub async fn recount<C: ConnectionTrait>(connection: &C) -> Result<(), DbErr> {
    connection.execute_unprepared("DELETE FROM unread_counts").await?;
    for (level, shift) in [(1, LEVEL1_SHIFT), (2, LEVEL2_SHIFT)] {
        connection
            .execute_unprepared(&format!(
                "INSERT INTO unread_counts (client_id, level, bucket, unread) \
                 SELECT client_id, {level}, client_seq >> {shift}, count(*) FROM messages \
                 WHERE read_at IS NULL GROUP BY client_id, client_seq >> {shift}"
            ))
            .await?;
    }
    Ok(())
}

/// Direction of a walk through a client's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// Upward from a first sequence number (inclusive).
    Up,
    /// Downward from below a sequence number (exclusive).
    Down,
}

impl Walk {
    /// Returns the part of the `shift`-sized block at `position` that the walk still has to pass,
    /// as a half-open range of sequence numbers.
    fn block_rest(self, position: i64, shift: u32) -> (i64, i64) {
        match self {
            Walk::Up => (position, ((position >> shift) + 1) << shift),
            Walk::Down => (((position - 1) >> shift) << shift, position),
        }
    }

    /// Returns the position the walk reaches after passing the range `(low, high)`.
    fn after(self, (low, high): (i64, i64)) -> i64 {
        match self {
            Walk::Up => high,
            Walk::Down => low,
        }
    }

    /// Returns the position at which the walk enters block `bucket` of size `1 << shift`.
    fn entry(self, bucket: i64, shift: u32) -> i64 {
        match self {
            Walk::Up => bucket << shift,
            Walk::Down => (bucket + 1) << shift,
        }
    }
}

/// The id of the client `?1`'s first message whose sequence number is `$seq` or above.
macro_rules! id_from {
    ($seq:literal) => {
        concat!("(SELECT id FROM messages WHERE client_id = ?1 AND client_seq >= ", $seq, " ORDER BY client_seq LIMIT 1)")
    };
}

/// Unread messages of client `?1` with a sequence number in `[?2, ?3)`. Without a message at `?3`
/// or above, the range runs to the client's last message.
pub(super) const COUNT_BETWEEN: &str = concat!(
    "SELECT count(*) FROM messages WHERE client_id = ?1 AND read_at IS NULL AND id >= ",
    id_from!("?2"),
    " AND id < coalesce(",
    id_from!("?3"),
    ", 9223372036854775807)"
);

/// Non-zero counts of client `?1` at level `?2` for the buckets in `[?3, ?4)`, upward.
pub(super) const COUNTS_UP: &str = "SELECT bucket, unread FROM unread_counts WHERE client_id = ?1 AND level = ?2 AND bucket >= ?3 AND bucket < ?4 \
                         AND unread > 0 ORDER BY bucket";
/// The same as [`COUNTS_UP`], downward.
pub(super) const COUNTS_DOWN: &str = "SELECT bucket, unread FROM unread_counts WHERE client_id = ?1 AND level = ?2 AND bucket >= ?3 AND bucket < ?4 \
                           AND unread > 0 ORDER BY bucket DESC";

/// The id of client `?1`'s unread message `?3` places up from sequence number `?2`.
pub(super) const NTH_UP: &str =
    concat!("SELECT id FROM messages WHERE client_id = ?1 AND read_at IS NULL AND id >= ", id_from!("?2"), " ORDER BY id LIMIT 1 OFFSET ?3");
/// The id of client `?1`'s unread message `?3` places down from below sequence number `?2`.
pub(super) const NTH_DOWN: &str = concat!(
    "SELECT id FROM messages WHERE client_id = ?1 AND read_at IS NULL AND id < coalesce(",
    id_from!("?2"),
    ", 9223372036854775807) ORDER BY id DESC LIMIT 1 OFFSET ?3"
);

/// A walk that could not finish.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("unread_counts of client {client_id} disagree between level-2 block {bucket} and its level-1 blocks")]
    Disagree { client_id: i32, bucket: i64 },
}

/// Unread messages of one client, walked by sequence number on a SQLite handle of the reader
/// pool ([`crate::db::Db::with_reader_handle`]). Each step is one short query, and rusqlite
/// returns a row for a fraction of what a query through sea-orm and sqlx costs.
///
/// The rusqlite connection lives for one page, so `prepare_cached` shares a statement only within
/// the page's walk, and each page prepares its statements again. Dropping the connection
/// finalizes them, which leaves nothing of rusqlite on the handle that sqlx gets back.
pub struct UnreadWalk<'c> {
    pub sqlite: &'c rusqlite::Connection,
    pub client_id: i32,
    pub walk: Walk,
}

impl UnreadWalk<'_> {
    /// Returns the id of the unread message that comes `skip` unread messages after `start` (0 is
    /// the first one at or after `start` upward, or below `start` downward), or none when fewer
    /// unread messages remain.
    pub fn locate(&self, start: i64, mut skip: u64) -> Result<Option<i64>, WalkError> {
        if self.walk == Walk::Down && start <= 0 {
            return Ok(None);
        }
        // 1. The rest of the level-1 block holding the start, entry by entry.
        let rest = self.walk.block_rest(start, LEVEL1_SHIFT);
        let unread = self.count_between(rest)?;
        if skip < unread {
            return Ok(self.nth(start, skip)?);
        }
        skip -= unread;

        // 2. The rest of the level-2 block, by level-1 counts.
        let (low, high) = self.walk.block_rest(self.walk.after(rest), LEVEL2_SHIFT);
        if let Some(found) = self.descend((low >> LEVEL1_SHIFT, high >> LEVEL1_SHIFT), &mut skip)? {
            return Ok(Some(found));
        }

        // 3. Whole level-2 blocks, then down into the one that holds the message.
        let position = self.walk.after((low, high)) >> LEVEL2_SHIFT;
        let level2 = match self.walk {
            Walk::Up => self.counts(2, (position, i64::MAX))?,
            Walk::Down => self.counts(2, (i64::MIN, position))?,
        };
        for (bucket, unread) in level2 {
            if skip < unread {
                let first = bucket << (LEVEL2_SHIFT - LEVEL1_SHIFT);
                let last = (bucket + 1) << (LEVEL2_SHIFT - LEVEL1_SHIFT);
                return match self.descend((first, last), &mut skip)? {
                    Some(found) => Ok(Some(found)),
                    None => Err(WalkError::Disagree { client_id: self.client_id, bucket }),
                };
            }
            skip -= unread;
        }
        Ok(None)
    }

    /// Passes the level-1 blocks in `buckets` by their counts, lowering `skip` by each block
    /// passed. Returns the message once the walk reaches the block that holds it.
    fn descend(&self, buckets: (i64, i64), skip: &mut u64) -> rusqlite::Result<Option<i64>> {
        for (bucket, unread) in self.counts(1, buckets)? {
            if *skip < unread {
                return self.nth(self.walk.entry(bucket, LEVEL1_SHIFT), *skip);
            }
            *skip -= unread;
        }
        Ok(None)
    }

    /// Returns the non-zero counts of `level` for the buckets in `[from, to)`, in walk order.
    fn counts(&self, level: i16, (from, to): (i64, i64)) -> rusqlite::Result<Vec<(i64, u64)>> {
        let sql = match self.walk {
            Walk::Up => COUNTS_UP,
            Walk::Down => COUNTS_DOWN,
        };
        let mut statement = self.sqlite.prepare_cached(sql)?;
        let rows = statement.query_map((self.client_id, level, from, to), |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)? as u64)))?;
        rows.collect()
    }

    /// Counts unread messages with a sequence number in `[low, high)`.
    fn count_between(&self, (low, high): (i64, i64)) -> rusqlite::Result<u64> {
        let mut statement = self.sqlite.prepare_cached(COUNT_BETWEEN)?;
        let counted: i64 = statement.query_row((self.client_id, low, high), |row| row.get(0))?;
        Ok(counted as u64)
    }

    /// Returns the id of the unread message `skip` places from `position` in walk order.
    fn nth(&self, position: i64, skip: u64) -> rusqlite::Result<Option<i64>> {
        let sql = match self.walk {
            Walk::Up => NTH_UP,
            Walk::Down => NTH_DOWN,
        };
        let mut statement = self.sqlite.prepare_cached(sql)?;
        statement.query_row((self.client_id, position, skip as i64), |row| row.get(0)).optional()
    }
}
