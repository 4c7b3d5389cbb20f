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

use std::collections::BTreeMap;

use sea_orm::sea_query::{Expr, Func, Query, SimpleExpr};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, Statement};

use crate::db::{message, unread_count};

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

    fn order(self) -> Order {
        match self {
            Walk::Up => Order::Asc,
            Walk::Down => Order::Desc,
        }
    }
}

/// Unread messages of one client, walked by sequence number.
pub struct UnreadWalk<'c, C> {
    pub connection: &'c C,
    pub client_id: i32,
    pub walk: Walk,
}

impl<C: ConnectionTrait> UnreadWalk<'_, C> {
    /// Returns the id of the unread message that comes `skip` unread messages after `start` (0 is
    /// the first one at or after `start` upward, or below `start` downward), or none when fewer
    /// unread messages remain.
    pub async fn locate(&self, start: i64, mut skip: u64) -> Result<Option<i64>, DbErr> {
        if self.walk == Walk::Down && start <= 0 {
            return Ok(None);
        }
        // 1. The rest of the level-1 block holding the start, entry by entry.
        let rest = self.walk.block_rest(start, LEVEL1_SHIFT);
        let unread = self.count_between(rest).await?;
        if skip < unread {
            return self.nth(start, skip).await;
        }
        skip -= unread;

        // 2. The rest of the level-2 block, by level-1 counts.
        let (low, high) = self.walk.block_rest(self.walk.after(rest), LEVEL2_SHIFT);
        let level1 = self.counts(1, Some(low >> LEVEL1_SHIFT), Some(high >> LEVEL1_SHIFT)).await?;
        if let Some(found) = self.descend(level1, &mut skip).await? {
            return Ok(Some(found));
        }

        // 3. Whole level-2 blocks, then down into the one that holds the message.
        let position = self.walk.after((low, high));
        let level2 = match self.walk {
            Walk::Up => self.counts(2, Some(position >> LEVEL2_SHIFT), None).await?,
            Walk::Down => self.counts(2, None, Some(position >> LEVEL2_SHIFT)).await?,
        };
        for (bucket, unread) in level2 {
            if skip < unread {
                let first = bucket << (LEVEL2_SHIFT - LEVEL1_SHIFT);
                let last = (bucket + 1) << (LEVEL2_SHIFT - LEVEL1_SHIFT);
                let level1 = self.counts(1, Some(first), Some(last)).await?;
                return match self.descend(level1, &mut skip).await? {
                    Some(found) => Ok(Some(found)),
                    None => Err(DbErr::Custom(format!(
                        "unread_counts of client {} disagree between level 2 block {bucket} and its level-1 blocks",
                        self.client_id
                    ))),
                };
            }
            skip -= unread;
        }
        Ok(None)
    }

    /// Passes level-1 blocks by their counts; returns the message once the block holding it is
    /// reached, and otherwise lowers `skip` by every block passed.
    async fn descend(&self, level1: Vec<(i64, u64)>, skip: &mut u64) -> Result<Option<i64>, DbErr> {
        for (bucket, unread) in level1 {
            if *skip < unread {
                return self.nth(self.walk.entry(bucket, LEVEL1_SHIFT), *skip).await;
            }
            *skip -= unread;
        }
        Ok(None)
    }

    /// Returns the non-zero counts of `level` for the buckets in `[from, to)`, in walk order.
    async fn counts(&self, level: i16, from: Option<i64>, to: Option<i64>) -> Result<Vec<(i64, u64)>, DbErr> {
        let mut query = unread_count::Entity::find()
            .select_only()
            .column(unread_count::Column::Bucket)
            .column(unread_count::Column::Unread)
            .filter(unread_count::Column::ClientId.eq(self.client_id))
            .filter(unread_count::Column::Level.eq(level))
            .filter(unread_count::Column::Unread.gt(0));
        if let Some(from) = from {
            query = query.filter(unread_count::Column::Bucket.gte(from));
        }
        if let Some(to) = to {
            query = query.filter(unread_count::Column::Bucket.lt(to));
        }
        let rows: Vec<(i64, i64)> = query.order_by(unread_count::Column::Bucket, self.walk.order()).into_tuple().all(self.connection).await?;
        Ok(rows.into_iter().map(|(bucket, unread)| (bucket, unread as u64)).collect())
    }

    /// Returns a subquery for the id of the client's first message whose sequence number is
    /// `sequence` or above. With `or_last`, the subquery gives a value above every id when there
    /// is no such message.
    fn id_from(&self, sequence: i64, or_last: bool) -> SimpleExpr {
        let first = Query::select()
            .column(message::Column::Id)
            .from(message::Entity)
            .and_where(message::Column::ClientId.eq(self.client_id))
            .and_where(message::Column::ClientSeq.gte(sequence))
            .order_by(message::Column::ClientSeq, Order::Asc)
            .limit(1)
            .to_owned();
        let first = SimpleExpr::SubQuery(None, Box::new(first.into_sub_query_statement()));
        if or_last {
            Func::coalesce([first, Expr::value(i64::MAX)]).into()
        } else {
            first
        }
    }

    fn unread(&self) -> sea_orm::Select<message::Entity> {
        message::Entity::find()
            .select_only()
            .column(message::Column::Id)
            .filter(message::Column::ClientId.eq(self.client_id))
            .filter(message::Column::ReadAt.is_null())
    }

    /// Counts unread messages with a sequence number in `[low, high)`.
    async fn count_between(&self, (low, high): (i64, i64)) -> Result<u64, DbErr> {
        let counted: Option<i64> = self
            .unread()
            .filter(Expr::col(message::Column::Id).gte(self.id_from(low, false)))
            .filter(Expr::col(message::Column::Id).lt(self.id_from(high, true)))
            .select_only()
            .column_as(message::Column::Id.count(), "count")
            .into_tuple()
            .one(self.connection)
            .await?;
        Ok(counted.unwrap_or(0) as u64)
    }

    /// Returns the id of the unread message `skip` places from `position` in walk order.
    async fn nth(&self, position: i64, skip: u64) -> Result<Option<i64>, DbErr> {
        let bound = match self.walk {
            Walk::Up => Expr::col(message::Column::Id).gte(self.id_from(position, false)),
            Walk::Down => Expr::col(message::Column::Id).lt(self.id_from(position, true)),
        };
        self.unread().filter(bound).order_by(message::Column::Id, self.walk.order()).offset(skip).limit(1).into_tuple().one(self.connection).await
    }
}
