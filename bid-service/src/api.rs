//! The `auction.v1.BidService` gRPC API, and the one place where errors become gRPC statuses:
//! INVALID_ARGUMENT (with `google.rpc.BadRequest`), FAILED_PRECONDITION (too low, with
//! `google.rpc.ErrorInfo`), UNAVAILABLE (Kafka, the registry or the auction's owner cannot take
//! the bid; retry with the same `request_id`) and RESOURCE_EXHAUSTED (overloaded). Never INTERNAL
//! for client input.
//!
//! `PlaceBid` goes to the owner of the auction's partition: the local one through
//! [`Ownership`], another replica's through the [`Forwarder`]. Reads answer from the
//! [`ReadCopy`].

use auction_proto::error_details::{BID_TOO_LOW, CURRENT_HIGHEST, DOMAIN, MINIMUM_NEXT_BID};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use auction_proto::v1::bid_service_server::BidService;
use auction_proto::v1::{
    AuctionState, Bid as ProtoBid, HighestBidRequest, HighestBidResponse, ListAuctionsRequest,
    ListAuctionsResponse, ListRecentBidsRequest, ListRecentBidsResponse, PlaceBidRequest,
    PlaceBidResponse, WatchAuctionRequest, WatchAuctionResponse,
};
use auction_schemas::{AuctionId, Bid, BidId, BidInput, FieldViolation};
use futures::{Stream, StreamExt};
use tokio::sync::{Semaphore, oneshot};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::auction::LoggedBid;
use crate::forward::{FORWARDED_HEADER, Forwarder};
use crate::kafka::partition_for;
use crate::metrics as m;
use crate::owner::{PlaceCommand, PlaceError, Placed};
use crate::ownership::{self, Ownership, Submit};
use crate::read_copy::{AuctionSnapshot, ReadCopy};

/// How often a call for a partition without a known owner looks again.
const OWNER_POLL: Duration = Duration::from_millis(20);

/// Time kept back from the client's deadline to send the answer.
const ANSWER_MARGIN: Duration = Duration::from_millis(20);

/// The parts the API works with.
#[derive(Debug)]
pub(crate) struct BidApi {
    /// Every auction's state.
    pub read_copy: Arc<ReadCopy>,
    /// The partitions this replica owns.
    pub ownership: Arc<Ownership>,
    /// Reaches the other owners.
    pub forwarder: Forwarder,
    /// This replica's own address (as the owner records name it).
    pub address: String,
    /// Partitions of the bid topic (the group consumer follows partitions added to it).
    pub partitions: Arc<AtomicI32>,
    /// Limits `PlaceBid` calls in progress.
    pub in_flight: Arc<Semaphore>,
    /// The deadline of a call that sets none.
    pub default_deadline: Duration,
    /// Ends `WatchAuction` streams at shutdown.
    pub shutdown: CancellationToken,
}

fn invalid_argument(violations: &[FieldViolation]) -> Status {
    let message = violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    let details = ErrorDetails::with_bad_request(
        violations
            .iter()
            .map(|v| tonic_types::FieldViolation::new(v.field, v.description.clone()))
            .collect::<Vec<_>>(),
    );
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid bid: {message}"),
        details,
    )
}

fn too_low(price: i32, current_highest: Option<i64>, minimum_next_bid: i64) -> Status {
    let message = match current_highest {
        Some(highest) => format!(
            "a bid of {price} is too low: the current highest bid is {highest}, so the minimum next bid is {minimum_next_bid}"
        ),
        None => format!(
            "a bid of {price} is too low: the auction has no bid yet and starts at {minimum_next_bid}"
        ),
    };
    let mut metadata = HashMap::new();
    metadata.insert(MINIMUM_NEXT_BID.to_owned(), minimum_next_bid.to_string());
    if let Some(highest) = current_highest {
        metadata.insert(CURRENT_HIGHEST.to_owned(), highest.to_string());
    }
    Status::with_error_details(
        Code::FailedPrecondition,
        message,
        ErrorDetails::with_error_info(BID_TOO_LOW, DOMAIN, metadata),
    )
}

fn parse_auction_id(raw: &str) -> Result<AuctionId, Status> {
    AuctionId::parse_optional(Some(raw)).map_err(|v| invalid_argument(&[v]))
}

/// The client's deadline from the `grpc-timeout` header (`<digits><H|M|S|m|u|n>`).
fn client_deadline(metadata: &MetadataMap) -> Option<Duration> {
    let raw = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = raw.split_at(raw.len().checked_sub(1)?);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The proto form of a logged bid.
pub(crate) fn proto_bid(logged: &LoggedBid) -> ProtoBid {
    let ts = logged.bid.bid_ts.get();
    ProtoBid {
        bid_id: logged.bid.bid_id.to_string(),
        auction_id: logged.bid.auction_id.to_string(),
        name: logged.bid.name.to_string(),
        price: i64::from(logged.bid.price.get()),
        bid_ts: Some(prost_types::Timestamp {
            seconds: ts.timestamp(),
            nanos: i32::try_from(ts.timestamp_subsec_nanos()).unwrap_or(0),
        }),
        partition: logged.partition,
        offset: logged.offset,
    }
}

/// The proto form of an auction's state.
pub(crate) fn proto_state(snapshot: &AuctionSnapshot) -> AuctionState {
    AuctionState {
        auction_id: snapshot.auction_id.to_string(),
        highest_bid: snapshot.highest.as_deref().map(proto_bid),
        minimum_next_bid: snapshot.minimum_next_bid,
        bid_count: snapshot.bid_count,
    }
}

/// The status of a bid that was not placed.
fn place_error(price: i32, error: PlaceError) -> Status {
    match error {
        PlaceError::TooLow {
            current_highest,
            minimum_next_bid,
        } => too_low(price, current_highest, minimum_next_bid),
        PlaceError::OutbidInLog {
            offset,
            minimum_next_bid,
        } => {
            let mut metadata = HashMap::new();
            metadata.insert(MINIMUM_NEXT_BID.to_owned(), minimum_next_bid.to_string());
            Status::with_error_details(
                Code::FailedPrecondition,
                format!(
                    "a bid of {price} is too low: a bid written by another producer just before it \
                     (it is at offset {offset}) raised the minimum next bid to {minimum_next_bid}"
                ),
                ErrorDetails::with_error_info(BID_TOO_LOW, DOMAIN, metadata),
            )
        }
        PlaceError::Overloaded => Status::resource_exhausted(
            "the service is overloaded; retry shortly with the same request_id",
        ),
        PlaceError::Unavailable(reason) => {
            Status::unavailable(format!("{reason}; retry with the same request_id"))
        }
    }
}

impl BidApi {
    fn accepted(&self, placed: &Placed) -> PlaceBidResponse {
        PlaceBidResponse {
            bid: Some(proto_bid(&placed.logged)),
            auction: Some(proto_state(
                &self.read_copy.snapshot(&placed.logged.bid.auction_id),
            )),
            replayed: placed.replayed,
        }
    }

    /// Places the bid through the owner of its auction's partition, waiting within `deadline`
    /// for one while the partition is being handed over.
    async fn place(
        self: Arc<Self>,
        request: PlaceBidRequest,
        request_id: Option<uuid::Uuid>,
        forwarded: bool,
        deadline: Duration,
    ) -> Result<PlaceBidResponse, Status> {
        let input = BidInput {
            auction_id: Some(request.auction_id.as_str()),
            name: &request.name,
            price: request.price,
        };
        let bid_id = request_id.map_or_else(BidId::new_random, BidId::from);
        let bid = Bid::new(&input, bid_id).map_err(|invalid| {
            metrics::counter!(m::BIDS_REJECTED, "reason" => "invalid").increment(1);
            invalid_argument(&invalid.violations)
        })?;
        let price = bid.price.get();
        let partition = partition_for(
            bid.auction_id.as_str(),
            self.partitions.load(Ordering::Relaxed),
        );
        let (reply, outcome) = oneshot::channel();
        let command = PlaceCommand {
            bid,
            request: request_id.is_some(),
            reply,
        };
        let mut command = command;
        let started = tokio::time::Instant::now();
        loop {
            match self.ownership.submit(partition, command) {
                Ok(()) => {
                    let placed = ownership::outcome(outcome)
                        .await
                        .map_err(|e| place_error(price, e))?;
                    return Ok(self.accepted(&placed));
                }
                Err(Submit::Overloaded) => {
                    metrics::counter!(m::BIDS_REJECTED, "reason" => "overloaded").increment(1);
                    return Err(place_error(price, PlaceError::Overloaded));
                }
                Err(Submit::NotOwner(returned)) => {
                    let owner = self.read_copy.owner(partition).filter(|_| !forwarded);
                    if let Some(owner) = owner.filter(|o| o.address != self.address) {
                        let left = deadline.saturating_sub(started.elapsed());
                        let forward = self.forwarder.place(&owner.address, request.clone(), left);
                        // A paused owner accepts the connection and never answers: watch for
                        // the partition's next owner meanwhile.
                        let moved = async {
                            loop {
                                tokio::time::sleep(OWNER_POLL).await;
                                let now = self.read_copy.owner(partition).map(|o| o.address);
                                if now.as_deref() != Some(owner.address.as_str()) {
                                    break;
                                }
                            }
                        };
                        tokio::select! {
                            forwarded = forward => match forwarded {
                                Ok(response) => return Ok(response),
                                Err(Some(status)) => return Err(status),
                                // The named owner is gone (stopped or moved): a new one will
                                // announce itself.
                                Err(None) => {}
                            },
                            () = moved => {
                                // The call may have reached the old owner: only a request id
                                // makes sending it again safe.
                                if request_id.is_none() {
                                    return Err(Status::unavailable(
                                        "the auction's partition moved to another replica while the \
                                         call waited for its owner; its outcome is unknown (send a \
                                         request_id to make retries safe)",
                                    ));
                                }
                            }
                        }
                    }
                    // No reachable owner known yet (the group is handing the partition over):
                    // wait for one within the deadline.
                    if forwarded || started.elapsed() + OWNER_POLL >= deadline {
                        metrics::counter!(m::BIDS_REJECTED, "reason" => "no_owner").increment(1);
                        return Err(Status::unavailable(format!(
                            "partition {partition}, which holds auction {}, has no owner that can take \
                             the bid right now (its ownership is moving); retry with the same request_id",
                            request.auction_id
                        )));
                    }
                    tokio::time::sleep(OWNER_POLL).await;
                    command = returned;
                }
            }
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchAuctionResponse, Status>> + Send>>;

/// The tonic service: a cheap handle on the shared [`BidApi`].
#[derive(Debug, Clone)]
pub(crate) struct BidGrpc(pub Arc<BidApi>);

#[tonic::async_trait]
impl BidService for BidGrpc {
    async fn place_bid(
        &self,
        request: Request<PlaceBidRequest>,
    ) -> Result<Response<PlaceBidResponse>, Status> {
        let deadline = client_deadline(request.metadata()).unwrap_or(self.0.default_deadline);
        let forwarded = request.metadata().contains_key(FORWARDED_HEADER);
        let request = request.into_inner();
        let request_id = match request.request_id.trim() {
            "" => None,
            raw => Some(
                uuid::Uuid::parse_str(raw)
                    .ok()
                    .filter(|id| !id.is_nil())
                    .ok_or_else(|| {
                        invalid_argument(&[FieldViolation {
                            field: "request_id",
                            description: "must be a UUID other than the nil UUID, such as \
                                 0b7c3a2e-5d1f-4c7e-9a8b-2f6d4e1c0a95, or empty"
                                .to_owned(),
                        }])
                    })?,
            ),
        };
        let Ok(permit) = Arc::clone(&self.0.in_flight).try_acquire_owned() else {
            metrics::counter!(m::BIDS_REJECTED, "reason" => "overloaded").increment(1);
            return Err(Status::resource_exhausted(
                "too many bids are in progress; retry shortly with the same request_id",
            ));
        };
        let wait = deadline.saturating_sub(ANSWER_MARGIN);
        // The work runs in its own task, so that a client that goes away cannot leave a bid
        // half-placed: a retry with the same request id learns its outcome either way.
        let task = tokio::spawn(Arc::clone(&self.0).place(request, request_id, forwarded, wait));
        let answer = tokio::time::timeout(wait, task).await;
        drop(permit);
        match answer {
            Ok(Ok(outcome)) => outcome.map(Response::new),
            Ok(Err(_)) => Err(Status::unavailable(
                "placing the bid failed; retry with the same request_id",
            )),
            Err(_) => Err(Status::unavailable(
                "the bid was not confirmed before the deadline; retry with the same request_id to learn its outcome",
            )),
        }
    }

    async fn highest_bid(
        &self,
        request: Request<HighestBidRequest>,
    ) -> Result<Response<HighestBidResponse>, Status> {
        let id = parse_auction_id(&request.get_ref().auction_id)?;
        Ok(Response::new(HighestBidResponse {
            auction: Some(proto_state(&self.0.read_copy.snapshot(&id))),
        }))
    }

    type WatchAuctionStream = WatchStream;

    async fn watch_auction(
        &self,
        request: Request<WatchAuctionRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let id = parse_auction_id(&request.get_ref().auction_id)?;
        let (current, updates) = self.0.read_copy.watch(&id);
        let read_copy = Arc::clone(&self.0.read_copy);
        let first = futures::stream::once(async move { current });
        let later = BroadcastStream::new(updates).map(move |update| match update {
            Ok(snapshot) => snapshot,
            // A slow watcher skips to the current state rather than falling further behind.
            Err(BroadcastStreamRecvError::Lagged(_)) => read_copy.snapshot(&id),
        });
        let stream = first
            .chain(later)
            .map(|snapshot| {
                Ok(WatchAuctionResponse {
                    auction: Some(proto_state(&snapshot)),
                })
            })
            .take_until(self.0.shutdown.clone().cancelled_owned());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_recent_bids(
        &self,
        request: Request<ListRecentBidsRequest>,
    ) -> Result<Response<ListRecentBidsResponse>, Status> {
        let request = request.into_inner();
        let id = parse_auction_id(&request.auction_id)?;
        let limit = match request.limit {
            0 => 20,
            n => n.min(100) as usize,
        };
        let bids = self
            .0
            .read_copy
            .recent(&id, limit)
            .iter()
            .map(|b| proto_bid(b))
            .collect();
        Ok(Response::new(ListRecentBidsResponse { bids }))
    }

    async fn list_auctions(
        &self,
        request: Request<ListAuctionsRequest>,
    ) -> Result<Response<ListAuctionsResponse>, Status> {
        let limit = match request.get_ref().limit {
            0 => 50,
            n => n.min(500) as usize,
        };
        let auctions = self
            .0
            .read_copy
            .auctions(limit)
            .iter()
            .map(proto_state)
            .collect();
        Ok(Response::new(ListAuctionsResponse { auctions }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_are_parsed_in_every_unit() {
        let mut metadata = MetadataMap::new();
        for (raw, expected) in [
            ("2S", Duration::from_secs(2)),
            ("150m", Duration::from_millis(150)),
            ("1M", Duration::from_secs(60)),
            ("10u", Duration::from_micros(10)),
        ] {
            metadata.insert("grpc-timeout", raw.parse().unwrap());
            assert_eq!(client_deadline(&metadata), Some(expected), "{raw}");
        }
        metadata.insert("grpc-timeout", "soon".parse().unwrap());
        assert_eq!(client_deadline(&metadata), None);
    }

    #[test]
    fn too_low_says_the_current_highest_and_the_minimum_next_bid() {
        let status = too_low(10, Some(12), 13);
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(
            status.message().contains("current highest bid is 12"),
            "{}",
            status.message()
        );
        assert!(
            status.message().contains("minimum next bid is 13"),
            "{}",
            status.message()
        );
        let info = status.get_details_error_info().unwrap();
        assert_eq!(
            info.metadata.get("minimum_next_bid").map(String::as_str),
            Some("13")
        );
    }
}
