//! Outcomes of `PlaceBid` calls by `request_id`, so that a retry returns the first outcome instead
//! of placing the bid again. Concurrent calls with the same id wait for the first one.
//!
//! Only final outcomes are kept (accepted, invalid, too low). UNAVAILABLE and RESOURCE_EXHAUSTED
//! are forgotten, because the client is told to retry with the same id; a bid whose delivery is
//! still undecided stays "in progress" until the producer knows, so that a retry cannot write it
//! a second time. Bounded: the oldest finished outcomes are evicted first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use auction_proto::v1::PlaceBidResponse;
use tokio::sync::watch;
use tonic::{Code, Status};
use uuid::Uuid;

/// The outcome of one call.
pub(crate) type Outcome = Result<PlaceBidResponse, Status>;

type Slot = watch::Sender<Option<Outcome>>;

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<Uuid, Slot>,
    finished: VecDeque<Uuid>,
}

/// Outcomes by request id.
#[derive(Debug, Clone)]
pub(crate) struct RequestOutcomes {
    inner: Arc<Mutex<Inner>>,
    capacity: usize,
}

/// What a call with a request id should do.
#[derive(Debug)]
pub(crate) enum Entry {
    /// First call with this id: place the bid, then [`Owner::finish`].
    Owner(Owner),
    /// Another call with this id is in progress or done: wait for its outcome.
    Follower(watch::Receiver<Option<Outcome>>),
}

/// The right (and duty) to record the outcome of a request id. Dropped unfinished, it forgets the
/// id, so that a retry places the bid.
#[derive(Debug)]
pub(crate) struct Owner {
    outcomes: RequestOutcomes,
    id: Uuid,
    done: bool,
}

impl RequestOutcomes {
    /// A table that keeps at most `capacity` finished outcomes.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Claims `id`, or joins the call that claimed it.
    pub(crate) fn begin(&self, id: Uuid) -> Entry {
        let mut inner = self.lock();
        if let Some(slot) = inner.slots.get(&id) {
            return Entry::Follower(slot.subscribe());
        }
        inner.slots.insert(id, watch::channel(None).0);
        Entry::Owner(Owner {
            outcomes: self.clone(),
            id,
            done: false,
        })
    }
}

/// Whether an outcome is final for the request (a retry would get the same answer).
fn is_final(outcome: &Outcome) -> bool {
    match outcome {
        Ok(_) => true,
        Err(status) => matches!(
            status.code(),
            Code::InvalidArgument | Code::FailedPrecondition
        ),
    }
}

impl Owner {
    /// Records the outcome and wakes the followers.
    pub(crate) fn finish(mut self, outcome: &Outcome) {
        self.done = true;
        let mut inner = self.outcomes.lock();
        if let Some(slot) = inner.slots.get(&self.id) {
            slot.send_replace(Some(outcome.clone()));
        }
        if is_final(outcome) {
            inner.finished.push_back(self.id);
            while inner.finished.len() > self.outcomes.capacity {
                if let Some(oldest) = inner.finished.pop_front() {
                    inner.slots.remove(&oldest);
                }
            }
        } else {
            inner.slots.remove(&self.id);
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        if !self.done {
            let mut inner = self.outcomes.lock();
            if let Some(slot) = inner.slots.remove(&self.id) {
                slot.send_replace(Some(Err(Status::unavailable(
                    "the first call with this request_id did not finish; retry with the same request_id",
                ))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_final_outcome_is_returned_to_every_retry() {
        let outcomes = RequestOutcomes::new(10);
        let id = Uuid::new_v4();
        let Entry::Owner(owner) = outcomes.begin(id) else {
            panic!("first call owns the id")
        };
        let Entry::Follower(mut waiting) = outcomes.begin(id) else {
            panic!("second call follows")
        };
        owner.finish(&Err(Status::failed_precondition("too low")));
        let seen = waiting.wait_for(Option::is_some).await.unwrap().clone();
        assert_eq!(seen.unwrap().unwrap_err().code(), Code::FailedPrecondition);
        let Entry::Follower(later) = outcomes.begin(id) else {
            panic!("a later retry follows")
        };
        assert_eq!(
            later.borrow().clone().unwrap().unwrap_err().code(),
            Code::FailedPrecondition
        );
    }

    #[tokio::test]
    async fn unavailable_is_forgotten_so_a_retry_tries_again() {
        let outcomes = RequestOutcomes::new(10);
        let id = Uuid::new_v4();
        let Entry::Owner(owner) = outcomes.begin(id) else {
            panic!()
        };
        owner.finish(&Err(Status::unavailable("kafka down")));
        assert!(matches!(outcomes.begin(id), Entry::Owner(_)));
    }

    #[test]
    fn finished_outcomes_are_bounded() {
        let outcomes = RequestOutcomes::new(2);
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        for id in &ids {
            let Entry::Owner(owner) = outcomes.begin(*id) else {
                panic!()
            };
            owner.finish(&Ok(PlaceBidResponse::default()));
        }
        assert!(
            matches!(outcomes.begin(ids[0]), Entry::Owner(_)),
            "the oldest was evicted"
        );
        assert!(matches!(outcomes.begin(ids[2]), Entry::Follower(_)));
    }
}
