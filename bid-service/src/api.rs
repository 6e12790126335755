//! The `auction.v1.BidService` gRPC API, and the one place where errors become gRPC statuses:
//! INVALID_ARGUMENT (with `google.rpc.BadRequest`), FAILED_PRECONDITION (too low, with
//! `google.rpc.ErrorInfo`), UNAVAILABLE (Kafka or the registry cannot take the bid; retry with the
//! same `request_id`) and RESOURCE_EXHAUSTED (overloaded). Never INTERNAL for client input.

use auction_proto::error_details::{BID_TOO_LOW, CURRENT_HIGHEST, DOMAIN, MINIMUM_NEXT_BID};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auction_proto::v1::bid_service_server::BidService;
use auction_proto::v1::{
    AuctionState, Bid as ProtoBid, HighestBidRequest, HighestBidResponse, ListAuctionsRequest,
    ListAuctionsResponse, ListRecentBidsRequest, ListRecentBidsResponse, PlaceBidRequest,
    PlaceBidResponse, WatchAuctionRequest, WatchAuctionResponse,
};
use auction_schemas::{AuctionId, Bid, BidEncoder, BidId, BidInput, FieldViolation};
use futures::{Stream, StreamExt};
use tokio::sync::Semaphore;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::book::{AuctionBook, AuctionSnapshot, LoggedBid, ReserveError, TooLow};
use crate::idempotency::{Entry, Outcome, RequestOutcomes};
use crate::kafka::{EnqueueError, KafkaBidProducer};
use crate::metrics as m;
use crate::tailer::AppliedOffsets;

/// Time kept back from the client's deadline to send the answer.
const ANSWER_MARGIN: Duration = Duration::from_millis(20);

/// How long a bid the broker acknowledged at an offset may take to be read back from the log
/// before the call answers UNAVAILABLE instead of OK. The wait ends as soon as the tailer has
/// applied that offset (found or not), so this bound only matters while the tailer is stalled:
/// when the partition's leader fails, the new leader is elected only after the broker session
/// timeout (9 s by default). Meanwhile the request id stays "in progress", so that a retry waits
/// for this outcome instead of writing the bid a second time.
const READ_BACK_WAIT: Duration = Duration::from_secs(30);

/// The same bound for an acknowledgement without a position (librdkafka's implicit
/// acknowledgement): only finding the bid can end the wait, so it is kept short.
const UNPOSITIONED_READ_BACK_WAIT: Duration = Duration::from_secs(2);

/// The parts the API works with.
#[derive(Debug)]
pub(crate) struct BidApi {
    /// The auctions.
    pub book: Arc<AuctionBook>,
    /// Writes bids.
    pub producer: KafkaBidProducer,
    /// Encodes bids.
    pub encoder: Arc<BidEncoder>,
    /// Outcomes by request id.
    pub requests: RequestOutcomes,
    /// How far the log has been applied.
    pub applied: Arc<AppliedOffsets>,
    /// Limits `PlaceBid` calls in progress.
    pub in_flight: Arc<Semaphore>,
    /// The deadline of a call that sets none.
    pub default_deadline: Duration,
    /// How long the producer tries to deliver a bid.
    pub delivery_timeout: Duration,
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

fn too_low(price: i32, too_low: &TooLow) -> Status {
    let message = match too_low.current_highest {
        Some(highest) => format!(
            "a bid of {price} is too low: the current highest bid is {highest}, so the minimum next bid is {}",
            too_low.minimum_next_bid
        ),
        None => format!(
            "a bid of {price} is too low: the auction has no bid yet and starts at {}",
            too_low.minimum_next_bid
        ),
    };
    let mut metadata = HashMap::new();
    metadata.insert(
        MINIMUM_NEXT_BID.to_owned(),
        too_low.minimum_next_bid.to_string(),
    );
    if let Some(highest) = too_low.current_highest {
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

impl BidApi {
    async fn place(
        self: Arc<Self>,
        request: PlaceBidRequest,
        bid_id: BidId,
        replayable: bool,
    ) -> Outcome {
        if replayable {
            // Already in the log: placed before a restart, or through another replica.
            if let Some(found) = self.book.find_bid(&bid_id) {
                return Ok(self.accepted(&found, true));
            }
        }
        let input = BidInput {
            auction_id: Some(request.auction_id.as_str()),
            name: &request.name,
            price: request.price,
        };
        let bid = Bid::new(&input, bid_id).map_err(|invalid| {
            metrics::counter!(m::BIDS_REJECTED, "reason" => "invalid").increment(1);
            invalid_argument(&invalid.violations)
        })?;
        let payload = self.encoder.encode(&bid).await.map_err(|e| {
            metrics::counter!(m::BIDS_REJECTED, "reason" => "registry_unavailable").increment(1);
            tracing::warn!(error = %e, "cannot encode a bid");
            Status::unavailable(format!(
                "the bid cannot be written now ({e}); retry with the same request_id"
            ))
        })?;
        let started = Instant::now();
        let delivery = self
            .book
            .reserve(&bid, || self.producer.enqueue(&bid, &payload))
            .map_err(|e| match e {
                ReserveError::TooLow(low) => {
                    metrics::counter!(m::BIDS_REJECTED, "reason" => "too_low").increment(1);
                    too_low(bid.price.get(), &low)
                }
                ReserveError::Enqueue(EnqueueError::QueueFull) => {
                    metrics::counter!(m::BIDS_REJECTED, "reason" => "overloaded").increment(1);
                    Status::resource_exhausted(
                        "the service is overloaded; retry shortly with the same request_id",
                    )
                }
                ReserveError::Enqueue(EnqueueError::Refused(e)) => {
                    metrics::counter!(m::BIDS_REJECTED, "reason" => "kafka_unavailable")
                        .increment(1);
                    Status::unavailable(format!(
                        "Kafka cannot take the bid ({e}); retry with the same request_id"
                    ))
                }
            })?;
        let acknowledged = match KafkaBidProducer::acknowledged(delivery).await {
            Ok(acknowledged) => acknowledged,
            Err(undelivered) => {
                // A delivery that timed out may have written the bid (its produce request was in
                // flight, for example while a partition's leader failed over). Look for it in
                // the log for as long again as the delivery timeout before saying it is not
                // there; the request id stays in progress meanwhile, so a retry cannot write the
                // bid a second time.
                if let (true, Some(partition)) =
                    (undelivered.possibly_written, undelivered.partition)
                {
                    let wait = READ_BACK_WAIT.min(self.delivery_timeout);
                    if let Some(found) = self
                        .applied
                        .wait_for_bid(&self.book, &bid.bid_id, partition, -1, wait)
                        .await
                    {
                        tracing::info!(bid_id = %bid.bid_id, partition = found.partition, offset = found.offset,
                            "a bid whose delivery timed out is in the log");
                        metrics::counter!(m::BIDS_ACCEPTED).increment(1);
                        return Ok(self.accepted(&found, false));
                    }
                }
                self.book.release(&bid);
                metrics::counter!(m::BIDS_REJECTED, "reason" => "kafka_unavailable").increment(1);
                tracing::warn!(error = %undelivered.reason, "a bid was not acknowledged by Kafka");
                return Err(Status::unavailable(format!(
                    "Kafka did not acknowledge the bid ({}) and it is not in the log; retry with the same request_id",
                    undelivered.reason
                )));
            }
        };
        metrics::histogram!(m::PRODUCE_SECONDS).record(started.elapsed().as_secs_f64());
        let acknowledged_at = Instant::now();
        let read_back_wait = if acknowledged.offset >= 0 {
            READ_BACK_WAIT
        } else {
            UNPOSITIONED_READ_BACK_WAIT
        };
        let read_back = self
            .applied
            .wait_for_bid(
                &self.book,
                &bid.bid_id,
                acknowledged.partition,
                acknowledged.offset,
                read_back_wait,
            )
            .await;
        metrics::histogram!(m::APPLY_WAIT_SECONDS).record(acknowledged_at.elapsed().as_secs_f64());
        let Some(logged) = read_back else {
            // The broker acknowledged a bid that the log does not hold where it said (or at all,
            // within the bound): answering OK could acknowledge a bid that is not in Kafka.
            self.book.release(&bid);
            metrics::counter!(m::BIDS_REJECTED, "reason" => "not_readable").increment(1);
            tracing::warn!(
                bid_id = %bid.bid_id,
                partition = acknowledged.partition,
                offset = acknowledged.offset,
                "Kafka acknowledged a bid that the log does not hold where it said"
            );
            return Err(Status::unavailable(format!(
                "Kafka acknowledged the bid (partition {}, offset {}) but it could not be read back \
                 from the log within {} s, so it may not have been placed; retry with the same request_id",
                acknowledged.partition,
                acknowledged.offset,
                read_back_wait.as_secs()
            )));
        };
        if (logged.partition, logged.offset) != (acknowledged.partition, acknowledged.offset) {
            tracing::warn!(
                bid_id = %bid.bid_id,
                acknowledged_partition = acknowledged.partition,
                acknowledged_offset = acknowledged.offset,
                partition = logged.partition,
                offset = logged.offset,
                "a bid was read back at another position than Kafka acknowledged; answering with where it is"
            );
        }
        metrics::counter!(m::BIDS_ACCEPTED).increment(1);
        Ok(self.accepted(&logged, false))
    }

    fn accepted(&self, logged: &LoggedBid, replayed: bool) -> PlaceBidResponse {
        PlaceBidResponse {
            bid: Some(proto_bid(logged)),
            auction: Some(proto_state(&self.book.snapshot(&logged.bid.auction_id))),
            replayed,
        }
    }

    async fn place_once(
        self: Arc<Self>,
        request: PlaceBidRequest,
        request_id: Option<uuid::Uuid>,
    ) -> Outcome {
        let Some(id) = request_id else {
            return self.place(request, BidId::new_random(), false).await;
        };
        match self.requests.begin(id) {
            Entry::Owner(owner) => {
                let outcome = self.place(request, BidId::from(id), true).await;
                owner.finish(&outcome);
                outcome
            }
            Entry::Follower(mut first) => {
                let outcome = first
                    .wait_for(Option::is_some)
                    .await
                    .map(|o| o.clone())
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| Err(Status::unavailable("retry with the same request_id")));
                outcome.map(|mut response| {
                    response.replayed = true;
                    response
                })
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
        let request = request.into_inner();
        let request_id = match request.request_id.trim() {
            "" => None,
            raw => Some(uuid::Uuid::parse_str(raw).map_err(|_| {
                invalid_argument(&[FieldViolation {
                    field: "request_id",
                    description:
                        "must be a UUID such as 0b7c3a2e-5d1f-4c7e-9a8b-2f6d4e1c0a95, or empty"
                            .to_owned(),
                }])
            })?),
        };
        let Ok(permit) = Arc::clone(&self.0.in_flight).try_acquire_owned() else {
            metrics::counter!(m::BIDS_REJECTED, "reason" => "overloaded").increment(1);
            return Err(Status::resource_exhausted(
                "too many bids are in progress; retry shortly with the same request_id",
            ));
        };
        // The work runs in its own task, so that a client that goes away cannot leave a bid
        // half-placed: its outcome is recorded for a retry either way.
        let task = tokio::spawn(Arc::clone(&self.0).place_once(request, request_id));
        let answer = tokio::time::timeout(deadline.saturating_sub(ANSWER_MARGIN), task).await;
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
            auction: Some(proto_state(&self.0.book.snapshot(&id))),
        }))
    }

    type WatchAuctionStream = WatchStream;

    async fn watch_auction(
        &self,
        request: Request<WatchAuctionRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let id = parse_auction_id(&request.get_ref().auction_id)?;
        let (current, updates) = self.0.book.watch(&id);
        let book = Arc::clone(&self.0.book);
        let first = futures::stream::once(async move { current });
        let later = BroadcastStream::new(updates).map(move |update| match update {
            Ok(snapshot) => snapshot,
            // A slow watcher skips to the current state rather than falling further behind.
            Err(BroadcastStreamRecvError::Lagged(_)) => book.snapshot(&id),
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
            .book
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
            .book
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
        let status = too_low(
            10,
            &TooLow {
                current_highest: Some(12),
                minimum_next_bid: 13,
            },
        );
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
