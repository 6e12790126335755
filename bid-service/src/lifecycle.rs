//! An auction's life as pure rules (DESIGN §3): its definition (increment table, reserve, start,
//! end, soft close), its status and close, and proxy bidding, where the service bids for a bidder
//! as much as needed to lead, up to a secret maximum (eBay's rules).
//!
//! The owner of the auction's partition plans every bid with [`AuctionState::plan`] against the
//! state it projects (applied bids plus the ones in flight); the bids it writes are then applied
//! by [`AuctionState::apply`] like any other producer's, and [`AuctionState::reaction`] says
//! which automatic bid a standing maximum calls for after them. Each change of the visible price
//! is a bid in the log; the maxima live only in the auction's state record.
//!
//! Decisions written down where DESIGN is silent (eBay's way):
//! - a bid with a maximum from the current leader raises their maximum and writes no bid (a
//!   bidder never outbids themselves), except that it lifts the price to the reserve when the new
//!   maximum meets a reserve the price does not; a plain bid from the leader is a bid at its price,
//!   as the demo's bids always were;
//! - a new maximum first bids as much as needed: the minimum next bid, the reserve when the
//!   maximum meets it, or one increment over the leader's maximum (capped by its own); a maximum
//!   not above the leader's is bid in full, and the leader's maximum answers;
//! - an automatic bid carries the time of the bid it answers, so an answer to a bid placed just
//!   before the end still counts, and it may equal the current price when its maximum is the
//!   earlier of two equal ones (marked in the log by [`PROXY_HEADER`]);
//! - raising one's own maximum takes a new place in the order of equal maxima.

use std::sync::Arc;

use auction_schemas::state::{
    BandRecord, ClosedRecord, DefinitionRecord, LifecycleRecord, MaximumRecord,
};
use auction_schemas::{AuctionId, BidId, BidderName};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::auction::{AuctionState, BidRules, LoggedBid, logged_from, recorded};

/// The header that marks an automatic bid answering another bid on behalf of a maximum.
pub(crate) const PROXY_HEADER: &str = "auction-proxy";

/// A table of increments by band of the current price; one band is a fixed increment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IncrementTable(Vec<(i64, i64)>);

impl IncrementTable {
    /// A fixed increment.
    pub(crate) fn fixed(increment: i64) -> Self {
        Self(vec![(0, increment)])
    }

    /// A table from `(from_price, increment)` bands; `Err` says what is wrong.
    pub(crate) fn new(mut bands: Vec<(i64, i64)>) -> Result<Self, String> {
        if bands.is_empty() {
            return Err("needs at least one band".to_owned());
        }
        if bands.len() > 50 {
            return Err("has more than 50 bands".to_owned());
        }
        bands.sort_unstable();
        if bands[0].0 != 0 {
            return Err("must start with a band from price 0".to_owned());
        }
        for pair in bands.windows(2) {
            if pair[0].0 == pair[1].0 {
                return Err(format!("has two bands from price {}", pair[0].0));
            }
        }
        if let Some((from, increment)) = bands
            .iter()
            .find(|(from, inc)| *from < 0 || !(1..=1_000_000_000).contains(inc))
        {
            return Err(format!(
                "has a band from {from} with increment {increment}: increments are 1 to 1000000000 and bands start at 0 or above"
            ));
        }
        Ok(Self(bands))
    }

    /// The increment that applies to a current price of `price`.
    pub(crate) fn at(&self, price: i64) -> i64 {
        self.0
            .iter()
            .rev()
            .find(|(from, _)| *from <= price)
            .map_or(1, |(_, increment)| *increment)
    }

    /// The bands, lowest first.
    pub(crate) fn bands(&self) -> &[(i64, i64)] {
        &self.0
    }
}

/// What `CreateAuction` defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Definition {
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Seller.
    pub seller: String,
    /// The lowest first bid.
    pub starting_price: i64,
    /// The secret reserve.
    pub reserve_price: Option<i64>,
    /// Increments by band.
    pub increments: IncrementTable,
    /// When bidding opens.
    pub start: DateTime<Utc>,
    /// The end set at creation.
    pub end: DateTime<Utc>,
    /// A bid this close to the end extends the auction (zero: never).
    pub soft_close_window: chrono::Duration,
    /// How far past such a bid the end moves.
    pub extension: chrono::Duration,
    /// SHA-256 of the seller key, hex.
    pub seller_key_sha256: String,
}

/// The hex SHA-256 of a seller key.
pub(crate) fn seller_key_hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where an auction is (a scheduled auction is open with a start in the future).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Status {
    /// Taking bids (from its start on).
    #[default]
    Open,
    /// Closed by its owner.
    Closed {
        /// When.
        at: DateTime<Utc>,
        /// The winning bid, when the reserve was met.
        winner: Option<Arc<LoggedBid>>,
    },
    /// Cancelled by its seller.
    Cancelled {
        /// When.
        at: DateTime<Utc>,
    },
}

/// A bidder's secret maximum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Maximum {
    /// The bidder.
    pub name: BidderName,
    /// The most the service may bid for them.
    pub max_price: i64,
    /// Registration order.
    pub seq: u64,
    /// The call that set it.
    pub bid_id: BidId,
}

/// An auction's life; the default is an auction nobody created: open, with no end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Lifecycle {
    /// The definition, if created.
    pub definition: Option<Arc<Definition>>,
    /// The current end, moved by soft close.
    pub end: Option<DateTime<Utc>>,
    /// How often soft close moved the end.
    pub extensions: u32,
    /// Open, closed or cancelled.
    pub status: Status,
    /// Standing maxima, in registration order.
    pub maxima: Vec<Maximum>,
    /// The next registration number.
    pub next_seq: u64,
}

/// Why an auction takes no bid at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotOpen {
    /// Bidding opens later.
    NotStarted(DateTime<Utc>),
    /// The end has passed (the close may still be on its way).
    Ended(DateTime<Utc>),
    /// Closed.
    Closed,
    /// Cancelled.
    Cancelled,
}

impl std::fmt::Display for NotOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotStarted(at) => write!(f, "the auction opens at {}", rfc3339(*at)),
            Self::Ended(at) => write!(f, "the auction ended at {}", rfc3339(*at)),
            Self::Closed => f.write_str("the auction is closed"),
            Self::Cancelled => f.write_str("the auction was cancelled by its seller"),
        }
    }
}

impl NotOpen {
    /// The status word clients see in the error's metadata.
    pub(crate) fn status_word(&self) -> &'static str {
        match self {
            Self::NotStarted(_) => "scheduled",
            Self::Ended(_) | Self::Closed => "closed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Why a bid cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The auction takes no bid now.
    NotOpen(NotOpen),
    /// The amount (or maximum) is below the minimum next bid.
    TooLow {
        /// The current price.
        current_highest: Option<i64>,
        /// The lowest acceptable amount.
        minimum_next_bid: i64,
    },
    /// The bidder leads already with a maximum at least this high.
    AlreadyLeading {
        /// Their current maximum.
        maximum: i64,
    },
}

/// A bid the owner is to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned {
    /// The bidder.
    pub name: BidderName,
    /// The amount.
    pub price: i64,
    /// An automatic bid answering another (marked by [`PROXY_HEADER`]).
    pub automatic: bool,
}

/// What a call to place a bid comes to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Plan {
    /// The bids to write, in order: the caller's (if any), then an automatic answer.
    pub bids: Vec<Planned>,
    /// The caller's maximum to register.
    pub maximum: Option<i64>,
    /// Another bidder's maximum outbids the caller's bid at once.
    pub outbid: bool,
}

/// RFC 3339 with milliseconds.
pub(crate) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `at` at the precision the state record keeps (milliseconds, [`rfc3339`]): an owner's state
/// then says exactly what a replica that read the record says (a closed auction's time differed
/// in its nanoseconds between the owner's answer and a restored one).
fn as_stored(at: DateTime<Utc>) -> DateTime<Utc> {
    chrono::SubsecRound::trunc_subsecs(at, 3)
}

fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn millis(duration: chrono::Duration) -> u64 {
    u64::try_from(duration.num_milliseconds()).unwrap_or(0)
}

impl AuctionState {
    /// The increment over a current price of `price`.
    pub(crate) fn increment_at(&self, price: i64, rules: &BidRules) -> i64 {
        match &self.life.definition {
            Some(definition) => definition.increments.at(price),
            None => i64::from(rules.min_increment),
        }
    }

    /// The lowest acceptable bid after a current price of `highest`.
    pub(crate) fn minimum_after(&self, highest: Option<i64>, rules: &BidRules) -> i64 {
        match highest {
            Some(price) => price.saturating_add(self.increment_at(price, rules)),
            None => self
                .life
                .definition
                .as_ref()
                .map_or(i64::from(rules.starting_price), |d| d.starting_price),
        }
    }

    /// The lowest acceptable bid now.
    pub(crate) fn minimum_next(&self, rules: &BidRules) -> i64 {
        self.minimum_after(self.highest_price(), rules)
    }

    /// Whether a bid made at `at` may count.
    pub(crate) fn open_at(&self, at: DateTime<Utc>) -> Result<(), NotOpen> {
        match &self.life.status {
            Status::Closed { .. } => return Err(NotOpen::Closed),
            Status::Cancelled { .. } => return Err(NotOpen::Cancelled),
            Status::Open => {}
        }
        if let Some(definition) = &self.life.definition
            && at < definition.start
        {
            return Err(NotOpen::NotStarted(definition.start));
        }
        match self.life.end {
            Some(end) if at >= end => Err(NotOpen::Ended(end)),
            _ => Ok(()),
        }
    }

    /// Whether the current price meets the reserve (false without a bid).
    pub(crate) fn reserve_met(&self) -> bool {
        let reserve = self.life.definition.as_ref().and_then(|d| d.reserve_price);
        self.highest_price()
            .is_some_and(|price| reserve.is_none_or(|r| price >= r))
    }

    /// The standing maximum of `name`.
    fn maximum_of(&self, name: &BidderName) -> Option<&Maximum> {
        self.life.maxima.iter().find(|m| &m.name == name)
    }

    /// Folds the lifecycle part of a bid that the log holds at its position: `valid` says
    /// whether it counts (open at its time, high enough: the minimum next bid, or for an
    /// automatic bid the current price). Soft close moves the end after a valid bid.
    pub(crate) fn lifecycle_validity(
        &self,
        logged: &LoggedBid,
        automatic: bool,
        rules: &BidRules,
    ) -> bool {
        if self.open_at(logged.bid.bid_ts.get()).is_err() {
            return false;
        }
        let price = i64::from(logged.bid.price.get());
        match (automatic, self.highest_price()) {
            (true, Some(highest)) => price >= highest,
            _ => price >= self.minimum_next(rules),
        }
    }

    /// After a valid bid: soft close, and maxima that can no longer bid are dropped.
    pub(crate) fn after_valid_bid(&mut self, logged: &LoggedBid) {
        let price = i64::from(logged.bid.price.get());
        self.life.maxima.retain(|m| m.max_price >= price);
        let Some(definition) = &self.life.definition else {
            return;
        };
        let (Some(end), window) = (self.life.end, definition.soft_close_window) else {
            return;
        };
        let at = logged.bid.bid_ts.get();
        if window > chrono::Duration::zero() && at >= end - window {
            let moved = at + definition.extension;
            if moved > end {
                self.life.end = Some(moved);
                self.life.extensions += 1;
            }
        }
    }

    /// Plans a bid by `bidder` at `at`: `amount` (0: as little as needed) and an optional
    /// `maximum`; `floor` is a higher price of the same auction in another partition (the demo
    /// keys bids by bidder), which the bid must beat too.
    pub(crate) fn plan(
        &self,
        bidder: &BidderName,
        amount: i64,
        maximum: Option<i64>,
        at: DateTime<Utc>,
        floor: Option<i64>,
        rules: &BidRules,
    ) -> Result<Plan, Refused> {
        self.open_at(at).map_err(Refused::NotOpen)?;
        let highest = self.highest_price().max(floor);
        let minimum = self.minimum_after(highest, rules);
        let leader = self.highest.as_ref().map(|h| &h.bid.name);
        let too_low = Refused::TooLow {
            current_highest: highest,
            minimum_next_bid: minimum,
        };
        let Some(maximum) = maximum else {
            if amount < minimum {
                return Err(too_low);
            }
            return Ok(self.with_reaction(
                Plan {
                    bids: vec![Planned {
                        name: bidder.clone(),
                        price: amount,
                        automatic: false,
                    }],
                    ..Plan::default()
                },
                bidder,
                at,
                rules,
            ));
        };
        let reserve = self.life.definition.as_ref().and_then(|d| d.reserve_price);
        if leader == Some(bidder) {
            let standing = self
                .maximum_of(bidder)
                .map_or(highest, |m| Some(m.max_price));
            if let Some(standing) = standing.filter(|s| maximum <= *s) {
                return Err(Refused::AlreadyLeading { maximum: standing });
            }
            // A leader raising their maximum bids only to lift the price to a reserve it meets.
            let lift = reserve
                .filter(|r| highest.is_some_and(|h| h < *r) && maximum >= *r)
                .map(|r| r.max(minimum))
                .filter(|price| *price <= maximum);
            return Ok(Plan {
                bids: lift
                    .map(|price| Planned {
                        name: bidder.clone(),
                        price,
                        automatic: false,
                    })
                    .into_iter()
                    .collect(),
                maximum: Some(maximum),
                outbid: false,
            });
        }
        if maximum < minimum {
            return Err(too_low);
        }
        let mut price = minimum.max(amount);
        if let Some(r) = reserve.filter(|r| maximum >= *r && price < *r) {
            price = r;
        }
        if let Some(leader) = leader {
            let leader_max = self
                .maximum_of(leader)
                .map_or(highest.unwrap_or(0), |m| m.max_price);
            price = if maximum > leader_max {
                price.max(
                    maximum.min(leader_max.saturating_add(self.increment_at(leader_max, rules))),
                )
            } else {
                maximum
            };
        }
        let price = price.min(maximum);
        let plan = Plan {
            bids: vec![Planned {
                name: bidder.clone(),
                price,
                automatic: false,
            }],
            maximum: Some(maximum),
            outbid: false,
        };
        Ok(self.with_reaction(plan, bidder, at, rules))
    }

    /// Adds to `plan` the automatic answer its bids call for, found by applying them to a copy.
    fn with_reaction(
        &self,
        mut plan: Plan,
        bidder: &BidderName,
        at: DateTime<Utc>,
        rules: &BidRules,
    ) -> Plan {
        // Only a standing maximum answers a bid: without one, there is nothing to project.
        if plan.maximum.is_none() && self.life.maxima.is_empty() {
            return plan;
        }
        let mut projected = self.clone();
        if let Some(maximum) = plan.maximum {
            projected.register_maximum(bidder, maximum, BidId::from(uuid::Uuid::nil()));
        }
        for (i, planned) in plan.bids.iter().enumerate() {
            if let Some(logged) = synthetic(&self.id, planned, at, self.offset + 1 + i as i64) {
                projected.apply(&logged, planned.automatic, rules);
            }
        }
        if let Some(answer) = projected.reaction(rules) {
            plan.outbid = answer.name != *bidder;
            plan.bids.push(answer);
        }
        plan
    }

    /// The automatic bid that a standing maximum calls for against the current leader, if any:
    /// the best other maximum that is at least the current price takes the lead when it is
    /// higher than the leader's (or equal and earlier), at one increment over the leader's
    /// maximum (capped by its own); otherwise the leader's maximum answers it.
    pub(crate) fn reaction(&self, rules: &BidRules) -> Option<Planned> {
        let leading = self.highest.as_ref()?;
        let price = i64::from(leading.bid.price.get());
        let leader = &leading.bid.name;
        let (leader_max, leader_seq) = self
            .maximum_of(leader)
            .filter(|m| m.max_price >= price)
            .map_or((price, u64::MAX), |m| (m.max_price, m.seq));
        let challenger = self
            .life
            .maxima
            .iter()
            .filter(|m| &m.name != leader && m.max_price >= price)
            .max_by_key(|m| (m.max_price, std::cmp::Reverse(m.seq)))?;
        let wins = challenger.max_price > leader_max
            || (challenger.max_price == leader_max && challenger.seq < leader_seq);
        if wins {
            let answer = if challenger.max_price == leader_max {
                leader_max
            } else {
                challenger
                    .max_price
                    .min(leader_max.saturating_add(self.increment_at(leader_max, rules)))
            };
            return Some(Planned {
                name: challenger.name.clone(),
                price: answer,
                automatic: true,
            });
        }
        let answer = if challenger.max_price == leader_max {
            leader_max
        } else {
            leader_max.min(
                challenger
                    .max_price
                    .saturating_add(self.increment_at(challenger.max_price, rules)),
            )
        };
        (answer > price).then(|| Planned {
            name: leader.clone(),
            price: answer,
            automatic: true,
        })
    }

    /// Registers (or raises) `name`'s maximum, set by the call `bid_id`.
    pub(crate) fn register_maximum(&mut self, name: &BidderName, max_price: i64, bid_id: BidId) {
        let seq = self.life.next_seq;
        self.life.next_seq += 1;
        self.life.maxima.retain(|m| &m.name != name);
        self.life.maxima.push(Maximum {
            name: name.clone(),
            max_price,
            seq,
            bid_id,
        });
        self.revision += 1;
    }

    /// Forgets the maximum the call `bid_id` set (its bid was never placed).
    pub(crate) fn forget_maximum(&mut self, bid_id: BidId) -> bool {
        let before = self.life.maxima.len();
        self.life.maxima.retain(|m| m.bid_id != bid_id);
        let changed = self.life.maxima.len() != before;
        if changed {
            self.revision += 1;
        }
        changed
    }

    /// Whether the owner should close the auction at `now`.
    pub(crate) fn due_to_close(&self, now: DateTime<Utc>) -> bool {
        self.life.status == Status::Open && self.life.end.is_some_and(|end| now >= end)
    }

    /// Closes the auction: the leader wins if the reserve is met, else no sale.
    pub(crate) fn close(&mut self, at: DateTime<Utc>) {
        let at = as_stored(at);
        let winner = if self.reserve_met() {
            self.highest.clone()
        } else {
            None
        };
        self.life.status = Status::Closed { at, winner };
        self.life.maxima.clear();
        self.revision += 1;
    }

    /// How the auction ended, for the results topic; `None` unless it is a created auction
    /// that is closed.
    pub(crate) fn result(&self) -> Option<auction_schemas::result::AuctionResult> {
        let definition = self.life.definition.as_deref()?;
        let Status::Closed { at, winner } = &self.life.status else {
            return None;
        };
        Some(auction_schemas::result::AuctionResult {
            auction_id: self.id.to_string(),
            title: definition.title.clone(),
            seller: definition.seller.clone(),
            sold: winner.is_some(),
            winner: winner.as_ref().map(|w| w.bid.name.to_string()),
            final_price: winner.as_ref().map(|w| i64::from(w.bid.price.get())),
            winning_bid_id: winner.as_ref().map(|w| w.bid.bid_id.as_uuid()),
            bid_count: self.bid_count,
            closed_at: rfc3339(*at),
        })
    }

    /// Cancels the auction.
    pub(crate) fn cancel(&mut self, at: DateTime<Utc>) {
        self.life.status = Status::Cancelled { at: as_stored(at) };
        self.revision += 1;
    }

    /// The lifecycle part of the state record (`None` for an auction nobody created, with no
    /// maximum).
    pub(crate) fn lifecycle_record(&self) -> Option<LifecycleRecord> {
        let life = &self.life;
        if life == &Lifecycle::default() {
            return None;
        }
        let (closed, cancelled_at) = match &life.status {
            Status::Open => (None, None),
            Status::Closed { at, winner } => (
                Some(ClosedRecord {
                    closed_at: rfc3339(*at),
                    winner: winner.as_deref().map(recorded),
                }),
                None,
            ),
            Status::Cancelled { at } => (None, Some(rfc3339(*at))),
        };
        Some(LifecycleRecord {
            definition: life.definition.as_deref().map(|d| DefinitionRecord {
                title: d.title.clone(),
                description: d.description.clone(),
                seller: d.seller.clone(),
                starting_price: d.starting_price,
                reserve_price: d.reserve_price,
                increments: d
                    .increments
                    .bands()
                    .iter()
                    .map(|(from_price, increment)| BandRecord {
                        from_price: *from_price,
                        increment: *increment,
                    })
                    .collect(),
                start_time: rfc3339(d.start),
                end_time: rfc3339(d.end),
                soft_close_window_ms: millis(d.soft_close_window),
                extension_ms: millis(d.extension),
                seller_key_sha256: d.seller_key_sha256.clone(),
            }),
            end_time: life.end.map(rfc3339),
            extensions: life.extensions,
            closed,
            cancelled_at,
            maxima: life
                .maxima
                .iter()
                .map(|m| MaximumRecord {
                    name: m.name.to_string(),
                    max_price: m.max_price,
                    seq: m.seq,
                    bid_id: m.bid_id.as_uuid(),
                })
                .collect(),
            next_seq: life.next_seq,
        })
    }
}

/// The lifecycle a record stores; `None` when it is not valid.
pub(crate) fn lifecycle_from(
    record: Option<&LifecycleRecord>,
    auction: &AuctionId,
    partition: i32,
) -> Option<Lifecycle> {
    let Some(record) = record else {
        return Some(Lifecycle::default());
    };
    let definition = match &record.definition {
        Some(d) => Some(Arc::new(Definition {
            title: d.title.clone(),
            description: d.description.clone(),
            seller: d.seller.clone(),
            starting_price: d.starting_price,
            reserve_price: d.reserve_price,
            increments: IncrementTable::new(
                d.increments
                    .iter()
                    .map(|b| (b.from_price, b.increment))
                    .collect(),
            )
            .ok()?,
            start: parse_time(&d.start_time)?,
            end: parse_time(&d.end_time)?,
            soft_close_window: chrono::Duration::milliseconds(
                i64::try_from(d.soft_close_window_ms).ok()?,
            ),
            extension: chrono::Duration::milliseconds(i64::try_from(d.extension_ms).ok()?),
            seller_key_sha256: d.seller_key_sha256.clone(),
        })),
        None => None,
    };
    let status = match (&record.closed, &record.cancelled_at) {
        (Some(closed), _) => Status::Closed {
            at: parse_time(&closed.closed_at)?,
            winner: match &closed.winner {
                Some(bid) => Some(Arc::new(logged_from(auction, partition, bid)?)),
                None => None,
            },
        },
        (None, Some(at)) => Status::Cancelled {
            at: parse_time(at)?,
        },
        (None, None) => Status::Open,
    };
    let maxima = record
        .maxima
        .iter()
        .map(|m| {
            Some(Maximum {
                name: BidderName::parse(&m.name).ok()?,
                max_price: m.max_price,
                seq: m.seq,
                bid_id: BidId::from(m.bid_id),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Lifecycle {
        definition,
        end: match &record.end_time {
            Some(end) => Some(parse_time(end)?),
            None => None,
        },
        extensions: record.extensions,
        status,
        maxima,
        next_seq: record.next_seq,
    })
}

/// A bid of `planned` at `at`, for projections (not in the log, so its id is the nil UUID).
pub(crate) fn synthetic(
    auction: &AuctionId,
    planned: &Planned,
    at: DateTime<Utc>,
    offset: i64,
) -> Option<Arc<LoggedBid>> {
    Some(Arc::new(LoggedBid {
        bid: auction_schemas::Bid {
            bid_id: BidId::from(uuid::Uuid::nil()),
            auction_id: auction.clone(),
            name: planned.name.clone(),
            price: auction_schemas::Price::parse(planned.price).ok()?,
            bid_ts: at.into(),
        },
        partition: 0,
        offset,
    }))
}

#[cfg(test)]
mod tests;
