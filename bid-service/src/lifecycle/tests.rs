//! The rules as a pure function of the calls: eBay's proxy examples, increment bands, soft close,
//! reserve, start and end, and replay from a state record.

use super::*;
use chrono::TimeZone;
use proptest::prelude::*;

const RULES: BidRules = BidRules {
    min_increment: 1,
    starting_price: 1,
    recent_limit: 5,
};

fn t(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
}

fn name(raw: &str) -> BidderName {
    BidderName::parse(raw).unwrap()
}

/// What happened in the log and the state, in order: what a restore replays.
#[derive(Debug, Clone)]
enum Event {
    Maximum(BidderName, i64, BidId),
    Record(Arc<LoggedBid>, bool),
}

/// An auction run by the owner's algorithm, one call after another.
struct Sim {
    state: AuctionState,
    events: Vec<Event>,
}

impl Sim {
    fn new(definition: Option<Definition>) -> Self {
        let mut state = AuctionState::new(AuctionId::parse("lot-1").unwrap(), 0);
        if let Some(definition) = definition {
            state.life.end = Some(definition.end);
            state.life.definition = Some(Arc::new(definition));
        }
        Self {
            state,
            events: Vec::new(),
        }
    }

    fn event(&mut self, event: Event) {
        apply_event(&mut self.state, &event);
        self.events.push(event);
    }

    fn write(&mut self, planned: &Planned, at: DateTime<Utc>) -> bool {
        let logged = synthetic(&self.state.id, planned, at, self.state.offset + 1).unwrap();
        self.event(Event::Record(Arc::clone(&logged), planned.automatic));
        self.state
            .highest
            .as_ref()
            .is_some_and(|h| Arc::ptr_eq(h, &logged))
    }

    /// A call; `Ok(true)` when the caller leads after it.
    fn bid(
        &mut self,
        who: &str,
        amount: i64,
        max: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<bool, Refused> {
        let plan = self.state.plan(&name(who), amount, max, at, None, &RULES)?;
        if let Some(max) = plan.maximum {
            self.event(Event::Maximum(name(who), max, BidId::new_random()));
        }
        for planned in &plan.bids {
            self.write(planned, at);
        }
        // What the owner does after applying: answer standing maxima until none calls.
        while let Some(answer) = self.state.reaction(&RULES) {
            let ts = self.state.highest.as_ref().unwrap().bid.bid_ts.get();
            assert!(
                self.write(&answer, ts),
                "an automatic bid must count: {answer:?}"
            );
        }
        Ok(self.leader() == Some(who.to_owned()))
    }

    /// A bid another producer wrote straight to the log.
    fn foreign(&mut self, who: &str, price: i64, at: DateTime<Utc>) {
        self.write(
            &Planned {
                name: name(who),
                price,
                automatic: false,
            },
            at,
        );
        while let Some(answer) = self.state.reaction(&RULES) {
            let ts = self.state.highest.as_ref().unwrap().bid.bid_ts.get();
            self.write(&answer, ts);
        }
    }

    fn price(&self) -> Option<i64> {
        self.state.highest_price()
    }

    fn leader(&self) -> Option<String> {
        self.state.highest.as_ref().map(|h| h.bid.name.to_string())
    }

    fn visible(&self) -> Vec<(String, i64)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Record(l, _) => Some((l.bid.name.to_string(), i64::from(l.bid.price.get()))),
                Event::Maximum(..) => None,
            })
            .collect()
    }
}

fn apply_event(state: &mut AuctionState, event: &Event) {
    match event {
        Event::Maximum(who, max, id) => state.register_maximum(who, *max, *id),
        Event::Record(logged, automatic) => {
            state.apply(logged, *automatic, &RULES);
        }
    }
}

fn definition(increments: IncrementTable, reserve: Option<i64>) -> Definition {
    Definition {
        title: "A lamp".into(),
        description: String::new(),
        seller: "sam".into(),
        starting_price: 10,
        reserve_price: reserve,
        increments,
        start: t(0),
        end: t(100),
        soft_close_window: chrono::Duration::seconds(2),
        extension: chrono::Duration::seconds(2),
        seller_key_sha256: seller_key_hash("key"),
    }
}

fn fixed(increment: i64) -> Option<Definition> {
    Some(definition(IncrementTable::fixed(increment), None))
}

#[test]
fn two_maxima_the_price_is_the_lower_maximum_plus_one_increment() {
    let mut sim = Sim::new(fixed(1));
    assert_eq!(sim.bid("ann", 0, Some(50), t(1)), Ok(true));
    assert_eq!(
        sim.price(),
        Some(10),
        "a lone maximum bids the starting price"
    );
    // Bob's maximum is lower: his bid stands at it, and Ann's answers one increment higher.
    assert_eq!(sim.bid("bob", 0, Some(30), t(2)), Ok(false));
    assert_eq!(sim.price(), Some(31));
    assert_eq!(sim.leader().as_deref(), Some("ann"));
    assert_eq!(
        sim.visible(),
        vec![("ann".into(), 10), ("bob".into(), 30), ("ann".into(), 31)],
        "each change of the visible price is a bid in the log"
    );
    // A higher maximum takes the lead at one increment over Ann's, capped by its own.
    assert_eq!(sim.bid("cid", 0, Some(80), t(3)), Ok(true));
    assert_eq!(sim.price(), Some(51));
    assert_eq!(sim.bid("dee", 0, Some(81), t(4)), Ok(true));
    assert_eq!(
        sim.price(),
        Some(81),
        "capped by the new leader's own maximum"
    );
}

#[test]
fn a_third_bidder_between_the_two_maxima() {
    let mut sim = Sim::new(fixed(2));
    sim.bid("ann", 0, Some(100), t(1)).unwrap();
    sim.bid("bob", 0, Some(60), t(2)).unwrap();
    assert_eq!(
        (sim.leader().as_deref(), sim.price()),
        (Some("ann"), Some(62))
    );
    // A plain bid above Ann's maximum wins outright; no maximum answers.
    assert_eq!(sim.bid("cid", 120, None, t(3)), Ok(true));
    assert_eq!(sim.price(), Some(120));
    // A plain bid below Ann's maximum is answered by her maximum (only when she can still bid).
    let mut sim = Sim::new(fixed(2));
    sim.bid("ann", 0, Some(100), t(1)).unwrap();
    assert_eq!(sim.bid("cid", 70, None, t(2)), Ok(false));
    assert_eq!(
        (sim.leader().as_deref(), sim.price()),
        (Some("ann"), Some(72))
    );
}

#[test]
fn equal_maxima_the_earlier_wins_at_that_price() {
    let mut sim = Sim::new(fixed(1));
    sim.bid("ann", 0, Some(40), t(1)).unwrap();
    assert_eq!(sim.bid("bob", 0, Some(40), t(2)), Ok(false));
    assert_eq!(
        (sim.leader().as_deref(), sim.price()),
        (Some("ann"), Some(40))
    );
    // A plain bid equal to a standing earlier maximum loses to it as well.
    let mut sim = Sim::new(fixed(1));
    sim.bid("ann", 0, Some(40), t(1)).unwrap();
    assert_eq!(sim.bid("cid", 40, None, t(2)), Ok(false));
    assert_eq!(
        (sim.leader().as_deref(), sim.price()),
        (Some("ann"), Some(40))
    );
}

#[test]
fn a_bidder_raising_their_own_maximum_never_outbids_themselves() {
    let mut sim = Sim::new(fixed(1));
    sim.bid("ann", 0, Some(40), t(1)).unwrap();
    sim.bid("bob", 0, Some(20), t(2)).unwrap();
    assert_eq!(sim.price(), Some(21));
    let records = sim.visible().len();
    assert_eq!(sim.bid("ann", 0, Some(90), t(3)), Ok(true));
    assert_eq!(sim.price(), Some(21), "the price does not move");
    assert_eq!(sim.visible().len(), records, "no bid is written");
    assert_eq!(
        sim.bid("ann", 0, Some(90), t(4)),
        Err(Refused::AlreadyLeading { maximum: 90 })
    );
    // The raised maximum is the one that answers.
    sim.bid("cid", 0, Some(60), t(5)).unwrap();
    assert_eq!(
        (sim.leader().as_deref(), sim.price()),
        (Some("ann"), Some(61))
    );
}

#[test]
fn a_maximum_below_the_minimum_next_bid_is_refused() {
    let mut sim = Sim::new(fixed(5));
    sim.bid("ann", 20, None, t(1)).unwrap();
    assert_eq!(
        sim.bid("bob", 0, Some(24), t(2)),
        Err(Refused::TooLow {
            current_highest: Some(20),
            minimum_next_bid: 25
        })
    );
}

#[test]
fn increment_tables_apply_by_band_of_the_current_price() {
    let table = IncrementTable::new(vec![(0, 1), (100, 5), (1000, 50)]).unwrap();
    assert_eq!(table.at(0), 1);
    assert_eq!(table.at(99), 1);
    assert_eq!(table.at(100), 5, "a band starts at its own price");
    assert_eq!(table.at(999), 5);
    assert_eq!(table.at(1000), 50);
    let mut sim = Sim::new(Some(definition(table, None)));
    sim.bid("ann", 99, None, t(1)).unwrap();
    assert_eq!(
        sim.state.minimum_next(&RULES),
        100,
        "99 is in the first band"
    );
    sim.bid("bob", 100, None, t(2)).unwrap();
    assert_eq!(
        sim.state.minimum_next(&RULES),
        105,
        "100 is in the second band"
    );
    assert!(matches!(
        sim.bid("cid", 104, None, t(3)),
        Err(Refused::TooLow {
            minimum_next_bid: 105,
            ..
        })
    ));
    assert!(
        IncrementTable::new(vec![(5, 1)]).is_err(),
        "must start at 0"
    );
    assert!(
        IncrementTable::new(vec![(0, 0)]).is_err(),
        "increments are positive"
    );
    assert!(
        IncrementTable::new(vec![(0, 1), (0, 2)]).is_err(),
        "bands are distinct"
    );
}

#[test]
fn soft_close_extends_only_within_the_window() {
    let mut sim = Sim::new(fixed(1));
    // end 100, window 2 s, extension 2 s.
    sim.bid("ann", 10, None, t(97)).unwrap();
    assert_eq!(
        sim.state.life.end,
        Some(t(100)),
        "3 s before the end is outside the window"
    );
    sim.bid("bob", 11, None, t(98)).unwrap();
    assert_eq!(
        sim.state.life.end,
        Some(t(100)),
        "98 + 2 does not move an end of 100"
    );
    sim.bid("ann", 12, None, t(98) + chrono::Duration::milliseconds(500))
        .unwrap();
    assert_eq!(
        sim.state.life.end,
        Some(t(100) + chrono::Duration::milliseconds(500))
    );
    assert_eq!(sim.state.life.extensions, 1);
    sim.bid("bob", 13, None, t(100)).unwrap();
    assert_eq!(
        sim.state.life.end,
        Some(t(102)),
        "a bid at the old end counts after an extension"
    );
    assert_eq!(sim.state.life.extensions, 2);
}

#[test]
fn bids_at_exactly_the_start_count_and_at_exactly_the_end_do_not() {
    let mut def = definition(IncrementTable::fixed(1), None);
    def.soft_close_window = chrono::Duration::zero();
    let mut sim = Sim::new(Some(def));
    assert_eq!(
        sim.bid("ann", 10, None, t(-1)),
        Err(Refused::NotOpen(NotOpen::NotStarted(t(0))))
    );
    assert_eq!(sim.bid("ann", 10, None, t(0)), Ok(true));
    assert_eq!(
        sim.bid("bob", 11, None, t(100) - chrono::Duration::milliseconds(1)),
        Ok(true)
    );
    assert_eq!(
        sim.bid("cid", 12, None, t(100)),
        Err(Refused::NotOpen(NotOpen::Ended(t(100))))
    );
    // A record another producer wrote with a time at the end does not count either.
    sim.foreign("eve", 50, t(100));
    assert_eq!(sim.leader().as_deref(), Some("bob"));
    assert!(sim.state.due_to_close(t(100)));
    assert!(!sim.state.due_to_close(t(99)));
}

#[test]
fn reserve_met_or_not_decides_the_sale() {
    let mut sim = Sim::new(Some(definition(IncrementTable::fixed(1), Some(50))));
    sim.bid("ann", 30, None, t(1)).unwrap();
    assert!(!sim.state.reserve_met());
    sim.state.close(t(100));
    assert!(
        matches!(sim.state.life.status, Status::Closed { winner: None, .. }),
        "no sale"
    );
    assert_eq!(
        sim.bid("bob", 99, None, t(1)),
        Err(Refused::NotOpen(NotOpen::Closed))
    );

    let mut sim = Sim::new(Some(definition(IncrementTable::fixed(1), Some(50))));
    // A maximum that meets the reserve bids the reserve at once.
    sim.bid("ann", 0, Some(70), t(1)).unwrap();
    assert_eq!(sim.price(), Some(50));
    assert!(sim.state.reserve_met());
    sim.state.close(t(100));
    match &sim.state.life.status {
        Status::Closed {
            winner: Some(w), ..
        } => assert_eq!((w.bid.name.as_str(), w.bid.price.get()), ("ann", 50)),
        other => panic!("{other:?}"),
    }

    // A leader raising their maximum past the reserve lifts the price to it.
    let mut sim = Sim::new(Some(definition(IncrementTable::fixed(1), Some(50))));
    sim.bid("ann", 0, Some(20), t(1)).unwrap();
    assert_eq!(sim.price(), Some(10));
    sim.bid("ann", 0, Some(60), t(2)).unwrap();
    assert_eq!(sim.price(), Some(50));
    assert!(sim.state.reserve_met());
}

#[test]
fn closing_and_cancelling_stop_bids_and_survive_the_record() {
    let mut sim = Sim::new(fixed(1));
    sim.bid("ann", 0, Some(30), t(1)).unwrap();
    sim.state.close(t(100));
    let restored = AuctionState::from_record(&sim.state.to_record()).unwrap();
    assert_eq!(restored.to_record(), sim.state.to_record());
    assert!(
        restored.life.maxima.is_empty(),
        "a closed auction keeps no secret maximum"
    );
    let mut sim = Sim::new(fixed(1));
    sim.state.cancel(t(5));
    assert_eq!(
        sim.bid("ann", 10, None, t(6)),
        Err(Refused::NotOpen(NotOpen::Cancelled))
    );
    let restored = AuctionState::from_record(&sim.state.to_record()).unwrap();
    assert_eq!(restored.life.status, Status::Cancelled { at: t(5) });
}

#[derive(Debug, Clone)]
enum Call {
    Proxy(u8, i64),
    Plain(u8, i64),
    Foreign(u8, i64),
}

fn calls() -> impl Strategy<Value = Vec<Call>> {
    prop::collection::vec(
        prop_oneof![
            (0u8..5, 10i64..400).prop_map(|(w, m)| Call::Proxy(w, m)),
            (0u8..5, 10i64..400).prop_map(|(w, p)| Call::Plain(w, p)),
            (0u8..5, 10i64..400).prop_map(|(w, p)| Call::Foreign(w, p)),
        ],
        1..40,
    )
}

fn run(calls: &[Call]) -> Sim {
    let table = IncrementTable::new(vec![(0, 1), (50, 5), (200, 10)]).unwrap();
    let mut sim = Sim::new(Some(definition(table, None)));
    for (i, call) in calls.iter().enumerate() {
        let at = t(1 + i as i64);
        let _ = match call {
            Call::Proxy(w, max) => sim.bid(&format!("b{w}"), 0, Some(*max), at).map(drop),
            Call::Plain(w, price) => sim.bid(&format!("b{w}"), *price, None, at).map(drop),
            Call::Foreign(w, price) => {
                sim.foreign(&format!("b{w}"), *price, at);
                Ok(())
            }
        };
    }
    sim
}

proptest! {
    #[test]
    fn replaying_the_state_record_and_the_tail_equals_seeing_every_bid(calls in calls(), cut in 0usize..200) {
        let sim = run(&calls);
        let cut = cut % (sim.events.len() + 1);
        let mut head = Sim::new(None);
        head.state = AuctionState::new(sim.state.id.clone(), 0);
        head.state.life.definition = Sim::new(Some(definition(IncrementTable::new(vec![(0, 1), (50, 5), (200, 10)]).unwrap(), None))).state.life.definition;
        head.state.life.end = Some(t(100));
        for event in &sim.events[..cut] {
            apply_event(&mut head.state, event);
        }
        let mut restored = AuctionState::from_record(&head.state.to_record()).unwrap();
        for event in &sim.events[cut..] {
            apply_event(&mut restored, event);
        }
        prop_assert_eq!(restored.to_record(), sim.state.to_record());
    }

    #[test]
    fn proxy_bidding_never_charges_more_than_the_second_maximum_plus_one_increment(
        maxima in prop::collection::vec(10i64..400, 1..8)
    ) {
        let table = IncrementTable::new(vec![(0, 1), (50, 5), (200, 10)]).unwrap();
        let mut sim = Sim::new(Some(definition(table.clone(), None)));
        let mut best: Vec<(i64, usize)> = Vec::new();
        for (i, max) in maxima.iter().enumerate() {
            if sim.bid(&format!("b{i}"), 0, Some(*max), t(1 + i as i64)).is_ok() {
                best.push((*max, i));
            }
        }
        let price = sim.price().unwrap();
        best.sort_by_key(|(max, i)| (std::cmp::Reverse(*max), *i));
        let (winner_max, winner) = best[0];
        prop_assert_eq!(sim.leader(), Some(format!("b{winner}")), "the highest (earliest) maximum leads");
        prop_assert!(price <= winner_max);
        let bound = match best.get(1) {
            Some((second, _)) => (*second + table.at(*second)).max(10),
            None => 10,
        };
        prop_assert!(price <= bound, "price {} over the bound {} ({:?})", price, bound, best);
    }
}
