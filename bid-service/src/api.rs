//! The `auction.v1.BidService` gRPC API, and the one place where errors become gRPC statuses:
//! INVALID_ARGUMENT (with `google.rpc.BadRequest`), FAILED_PRECONDITION (too low, with
//! `google.rpc.ErrorInfo`), UNAVAILABLE (Kafka, the registry or the auction's owner cannot take
//! the bid; retry with the same `request_id`) and RESOURCE_EXHAUSTED (overloaded, or a limit of
//! `limits.rs` reached: bids in flight, auctions opened by a first bid, open watch streams, bids
//! per client). Never INTERNAL for client input.
//!
//! `PlaceBid` goes to the owner of the auction's partition: the local one through
//! [`Ownership`], another replica's through the [`Forwarder`]. Reads answer from the
//! [`ReadCopy`].

use auction_proto::error_details::{
    ALREADY_LEADING, AUCTION_NOT_OPEN, BID_TOO_LOW, CURRENT_HIGHEST, DOMAIN, MINIMUM_NEXT_BID,
    STATUS,
};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use auction_process::Secret;
use auction_proto::v1::bid_service_server::BidService;
use auction_proto::v1::{
    AuctionDefinition, AuctionResult, AuctionState, AuctionStatus, Bid as ProtoBid,
    CancelAuctionRequest, CancelAuctionResponse, CreateAuctionRequest, CreateAuctionResponse,
    GetAuctionRequest, GetAuctionResponse, HighestBidRequest, HighestBidResponse, IncrementBand,
    ListAuctionsRequest, ListAuctionsResponse, ListRecentBidsRequest, ListRecentBidsResponse,
    PlaceBidRequest, PlaceBidResponse, WatchAuctionRequest, WatchAuctionResponse,
};
use auction_schemas::{AuctionId, Bid, BidId, BidInput, FieldViolation};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use tokio::sync::oneshot;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::auction::{BidRules, LoggedBid};
use crate::creation;
use crate::forward::{FORWARDED_HEADER, Forwarder};
use crate::kafka::partition_for;
use crate::lifecycle::Status as LifeStatus;
use crate::limits::{BidsInFlight, ImplicitRefusal, StreamRefusal, WatchStreams};
use crate::metrics as m;
use crate::owner::{OwnerCommand, PlaceCommand, PlaceError, Placed};
use crate::ownership::{self, Ownership, Submit};
use crate::read_copy::{AuctionSnapshot, ReadCopy};

/// How often a call for a partition without a known owner looks again.
const OWNER_POLL: Duration = Duration::from_millis(20);

/// Time kept back from the client's deadline to send the answer.
const ANSWER_MARGIN: Duration = Duration::from_millis(20);

/// A rate limit per client address (`None`: a connection without a known peer address).
pub(crate) type ClientRateLimiter = governor::DefaultKeyedRateLimiter<Option<std::net::IpAddr>>;

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
    /// Limits `PlaceBid` calls whose work runs.
    pub in_flight: Arc<BidsInFlight>,
    /// Limits open `WatchAuction` streams.
    pub watch_streams: Arc<WatchStreams>,
    /// Limits `PlaceBid` calls per client address, when set.
    pub bids_per_client: Option<ClientRateLimiter>,
    /// The deadline of a call that sets none.
    pub default_deadline: Duration,
    /// Ends `WatchAuction` streams at shutdown.
    pub shutdown: CancellationToken,
    /// `CreateAuction` needs this token, when set.
    pub creation_token: Option<Secret>,
    /// The rules of auctions nobody created (defaults for created ones).
    pub rules: BidRules,
}

fn invalid_argument(violations: &[FieldViolation]) -> Status {
    invalid("invalid bid", violations)
}

/// INVALID_ARGUMENT for a request other than a bid; `what` starts the message.
fn invalid(what: &str, violations: &[FieldViolation]) -> Status {
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
    Status::with_error_details(Code::InvalidArgument, format!("{what}: {message}"), details)
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

fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn duration(span: chrono::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: span.num_seconds(),
        nanos: span.subsec_nanos(),
    }
}

/// The status clients see at `now`.
pub(crate) fn status_at(snapshot: &AuctionSnapshot, now: DateTime<Utc>) -> AuctionStatus {
    let Some(life) = snapshot.lifecycle.as_deref().map(|s| &s.life) else {
        return AuctionStatus::Open;
    };
    match &life.status {
        LifeStatus::Closed { .. } => AuctionStatus::Closed,
        LifeStatus::Cancelled { .. } => AuctionStatus::Cancelled,
        LifeStatus::Open => match &life.definition {
            Some(definition) if now < definition.start => AuctionStatus::Scheduled,
            _ => AuctionStatus::Open,
        },
    }
}

/// The proto form of an auction's state (never its reserve or proxy maxima).
pub(crate) fn proto_state(snapshot: &AuctionSnapshot) -> AuctionState {
    let life = snapshot.lifecycle.as_deref().map(|s| &s.life);
    let definition = life.and_then(|l| l.definition.as_deref());
    AuctionState {
        auction_id: snapshot.auction_id.to_string(),
        highest_bid: snapshot.highest.as_deref().map(proto_bid),
        minimum_next_bid: snapshot.minimum_next_bid,
        bid_count: snapshot.bid_count,
        status: status_at(snapshot, Utc::now()) as i32,
        definition: definition.map(|d| AuctionDefinition {
            title: d.title.clone(),
            description: d.description.clone(),
            seller: d.seller.clone(),
            starting_price: d.starting_price,
            has_reserve: d.reserve_price.is_some(),
            increments: d
                .increments
                .bands()
                .iter()
                .map(|(from_price, increment)| IncrementBand {
                    from_price: *from_price,
                    increment: *increment,
                })
                .collect(),
            start_time: Some(timestamp(d.start)),
            scheduled_end_time: Some(timestamp(d.end)),
            soft_close_window: Some(duration(d.soft_close_window)),
            extension: Some(duration(d.extension)),
        }),
        end_time: life.and_then(|l| l.end).map(timestamp),
        reserve_met: snapshot.reserve_met,
        extensions: life.map_or(0, |l| l.extensions),
        result: life.and_then(|l| match &l.status {
            LifeStatus::Closed { at, winner } => Some(AuctionResult {
                sold: winner.is_some(),
                winning_bid: winner.as_deref().map(proto_bid),
                closed_at: Some(timestamp(*at)),
            }),
            _ => None,
        }),
    }
}

/// The status of a call the owner did not carry out (`price`: the bid's, for messages).
fn owner_error(price: i32, error: PlaceError) -> Status {
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
        PlaceError::NotOpen(why) => {
            let mut metadata = HashMap::new();
            metadata.insert(STATUS.to_owned(), why.status_word().to_owned());
            Status::with_error_details(
                Code::FailedPrecondition,
                format!("the bid was refused: {why}"),
                ErrorDetails::with_error_info(AUCTION_NOT_OPEN, DOMAIN, metadata),
            )
        }
        PlaceError::AlreadyLeading { maximum } => Status::with_error_details(
            Code::FailedPrecondition,
            format!(
                "you already lead this auction with a maximum of {maximum}; a new maximum must be higher"
            ),
            ErrorDetails::with_error_info(ALREADY_LEADING, DOMAIN, HashMap::new()),
        ),
        PlaceError::NotFound(message) => Status::not_found(message),
        PlaceError::AlreadyExists(message) => Status::already_exists(message),
        PlaceError::PermissionDenied(message) => Status::permission_denied(message),
        PlaceError::CannotCancel(message) => Status::failed_precondition(message),
        PlaceError::Overloaded => Status::resource_exhausted(
            "the service is overloaded; retry shortly with the same request_id",
        ),
        PlaceError::TooManyAuctions(ImplicitRefusal::Cap(cap)) => {
            Status::resource_exhausted(format!(
                "the bid would open a new auction, but this service already holds the most auctions \
                 opened by a first bid that it may ({cap}, AUCTION_MAX_IMPLICIT_AUCTIONS): bid on an \
                 existing auction, or create this one with CreateAuction"
            ))
        }
        PlaceError::TooManyAuctions(ImplicitRefusal::Rate(per_second)) => {
            Status::resource_exhausted(format!(
                "the bid would open a new auction, but this service opens at most {per_second} \
                 auctions on a first bid per second (AUCTION_IMPLICIT_AUCTIONS_PER_SEC): retry \
                 shortly with the same request_id"
            ))
        }
        PlaceError::Unavailable(reason) => {
            Status::unavailable(format!("{reason}; retry with the same request_id"))
        }
    }
}

/// Where a call for an owner went.
enum Routed<T> {
    /// To the owner on this replica: the answer comes on the command's reply channel.
    Local,
    /// To the owner on another replica, which answered.
    Forwarded(T),
}

impl BidApi {
    fn accepted(&self, placed: &Placed) -> PlaceBidResponse {
        PlaceBidResponse {
            bid: Some(proto_bid(&placed.logged)),
            auction: Some(proto_state(
                &self.read_copy.snapshot(&placed.logged.bid.auction_id),
            )),
            replayed: placed.replayed,
            outbid: placed.outbid,
        }
    }

    /// Hands `command` to the owner of `partition`: the local one, or another replica's through
    /// `forward` (given the owner's address and the time left), waiting within `deadline` for an
    /// owner while the partition is being handed over. `retry_safe`: sending the call again
    /// cannot do it twice (it carries a request id).
    #[allow(clippy::too_many_arguments)]
    async fn route<T, F, Fut>(
        &self,
        partition: i32,
        auction: &AuctionId,
        mut command: OwnerCommand,
        retry_safe: bool,
        forwarded: bool,
        deadline: Duration,
        forward: F,
    ) -> Result<Routed<T>, Status>
    where
        F: Fn(String, Duration) -> Fut,
        Fut: std::future::Future<Output = Result<T, Option<Status>>>,
    {
        let started = tokio::time::Instant::now();
        loop {
            match self.ownership.submit(partition, command) {
                Ok(()) => return Ok(Routed::Local),
                Err(Submit::Overloaded) => {
                    metrics::counter!(m::BIDS_REJECTED, "reason" => "overloaded").increment(1);
                    return Err(owner_error(0, PlaceError::Overloaded));
                }
                Err(Submit::NotOwner(returned)) => {
                    let owner = self.read_copy.owner(partition).filter(|_| !forwarded);
                    if let Some(owner) = owner.filter(|o| o.address != self.address) {
                        let left = deadline.saturating_sub(started.elapsed());
                        let call = forward(owner.address.clone(), left);
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
                            answered = call => match answered {
                                Ok(response) => return Ok(Routed::Forwarded(response)),
                                Err(Some(status)) => return Err(status),
                                // The named owner is gone (stopped or moved): a new one will
                                // announce itself.
                                Err(None) => {}
                            },
                            () = moved => {
                                // The call may have reached the old owner: only a request id
                                // makes sending it again safe.
                                if !retry_safe {
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
                            "partition {partition}, which holds auction {auction}, has no owner that can take \
                             the call right now (its ownership is moving); retry with the same request_id"
                        )));
                    }
                    tokio::time::sleep(OWNER_POLL).await;
                    command = returned;
                }
            }
        }
    }

    fn partition_of(&self, auction: &AuctionId) -> i32 {
        partition_for(auction.as_str(), self.partitions.load(Ordering::Relaxed))
    }

    /// Places the bid through the owner of its auction's partition.
    async fn place(
        self: Arc<Self>,
        request: PlaceBidRequest,
        request_id: Option<uuid::Uuid>,
        forwarded: bool,
        deadline: Duration,
    ) -> Result<PlaceBidResponse, Status> {
        let maximum = (request.max_price != 0).then_some(request.max_price);
        let mut violations = Vec::new();
        if let Some(max) = maximum {
            if !(1..=i64::from(i32::MAX)).contains(&max) {
                violations.push(FieldViolation {
                    field: "max_price",
                    description: format!(
                        "must be a whole number from 1 to 2147483647, or 0 for none; got {max}"
                    ),
                });
            } else if request.price > max {
                violations.push(FieldViolation {
                    field: "price",
                    description: format!(
                        "must not be above max_price ({max}); got {}",
                        request.price
                    ),
                });
            }
        }
        // With a maximum and no amount, the bid is validated at its maximum; the owner picks
        // the amount.
        let amount = request.price;
        let input = BidInput {
            auction_id: Some(request.auction_id.as_str()),
            name: &request.name,
            price: match maximum {
                Some(max) if amount == 0 => max,
                _ => amount,
            },
        };
        let bid_id = request_id.map_or_else(BidId::new_random, BidId::from);
        let bid = match Bid::new(&input, bid_id) {
            Ok(bid) if violations.is_empty() => bid,
            result => {
                if let Err(invalid) = result {
                    violations.extend(invalid.violations);
                }
                metrics::counter!(m::BIDS_REJECTED, "reason" => "invalid").increment(1);
                return Err(invalid_argument(&violations));
            }
        };
        let price = bid.price.get();
        let auction = bid.auction_id.clone();
        let partition = self.partition_of(&auction);
        let (reply, outcome) = oneshot::channel();
        let command = OwnerCommand::Place(PlaceCommand {
            bid,
            amount,
            maximum,
            request: request_id.is_some(),
            reply,
        });
        let routed = self
            .route(
                partition,
                &auction,
                command,
                request_id.is_some(),
                forwarded,
                deadline,
                |address, left| {
                    let request = request.clone();
                    let forwarder = &self.forwarder;
                    async move {
                        forwarder
                            .call(&address, request, left, |mut client, call| async move {
                                client.place_bid(call).await
                            })
                            .await
                    }
                },
            )
            .await?;
        match routed {
            Routed::Forwarded(response) => Ok(response),
            Routed::Local => {
                let placed = ownership::outcome(outcome)
                    .await
                    .map_err(|e| owner_error(price, e))?;
                Ok(self.accepted(&placed))
            }
        }
    }

    /// Creates an auction through the owner of its partition.
    async fn create(
        self: Arc<Self>,
        mut request: CreateAuctionRequest,
        forwarded: bool,
        deadline: Duration,
    ) -> Result<CreateAuctionResponse, Status> {
        if let Some(token) = &self.creation_token
            && !crate::owner::constant_time_eq(
                token.expose().as_bytes(),
                request.creation_token.as_bytes(),
            )
        {
            return Err(Status::permission_denied(
                "creating auctions needs the service's creation token (field creation_token)",
            ));
        }
        if request.auction_id.trim().is_empty() {
            request.auction_id = generated_auction_id();
        }
        let (auction, definition) = creation::definition(&request, &self.rules, Utc::now())
            .map_err(|violations| invalid("invalid auction", &violations))?;
        let seller_key = generated_seller_key();
        let definition = crate::lifecycle::Definition {
            seller_key_sha256: crate::lifecycle::seller_key_hash(&seller_key),
            ..definition
        };
        self.lifecycle_call(
            &auction,
            |reply| OwnerCommand::Create {
                auction: auction.clone(),
                definition: Box::new(definition),
                reply,
            },
            false,
            forwarded,
            deadline,
            request,
            |mut client, call| async move { client.create_auction(call).await },
            |state| CreateAuctionResponse {
                auction: Some(state),
                seller_key,
            },
        )
        .await
    }

    /// Cancels an auction through the owner of its partition.
    async fn cancel(
        self: Arc<Self>,
        request: CancelAuctionRequest,
        forwarded: bool,
        deadline: Duration,
    ) -> Result<CancelAuctionResponse, Status> {
        let auction =
            AuctionId::parse(&request.auction_id).map_err(|v| invalid("invalid request", &[v]))?;
        if request.seller_key.is_empty() {
            return Err(invalid(
                "invalid request",
                &[FieldViolation {
                    field: "seller_key",
                    description: "is required: the seller key CreateAuction handed back".to_owned(),
                }],
            ));
        }
        let seller_key_sha256 = crate::lifecycle::seller_key_hash(&request.seller_key);
        self.lifecycle_call(
            &auction,
            |reply| OwnerCommand::Cancel {
                auction: auction.clone(),
                seller_key_sha256,
                reply,
            },
            true,
            forwarded,
            deadline,
            request,
            |mut client, call| async move { client.cancel_auction(call).await },
            |state| CancelAuctionResponse {
                auction: Some(state),
            },
        )
        .await
    }

    /// Hands a lifecycle call (`command`, given its reply channel) to the owner of the auction's
    /// partition, or forwards `request` there with `method`; the local answer is made by `answer`
    /// from the state as committed.
    #[allow(clippy::too_many_arguments)]
    async fn lifecycle_call<Req, Resp, M, Fut>(
        &self,
        auction: &AuctionId,
        command: impl FnOnce(crate::owner::AuctionReply) -> OwnerCommand,
        retry_safe: bool,
        forwarded: bool,
        deadline: Duration,
        request: Req,
        method: M,
        answer: impl FnOnce(AuctionState) -> Resp,
    ) -> Result<Resp, Status>
    where
        Req: Clone,
        M: FnOnce(
                auction_proto::v1::bid_service_client::BidServiceClient<tonic::transport::Channel>,
                tonic::Request<Req>,
            ) -> Fut
            + Copy,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        let (reply, outcome) = oneshot::channel();
        let routed = self
            .route(
                self.partition_of(auction),
                auction,
                command(reply),
                retry_safe,
                forwarded,
                deadline,
                |address, left| {
                    let request = request.clone();
                    let forwarder = &self.forwarder;
                    async move { forwarder.call(&address, request, left, method).await }
                },
            )
            .await?;
        match routed {
            Routed::Forwarded(response) => Ok(response),
            Routed::Local => {
                let state = ownership::outcome(outcome)
                    .await
                    .map_err(|e| owner_error(0, e))?;
                self.read_copy.update_from_owner(Arc::clone(&state));
                Ok(answer(proto_state(&self.read_copy.snapshot(&state.id))))
            }
        }
    }
}

/// A new auction id: `lot-` and 12 random hex digits.
fn generated_auction_id() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("lot-{}", &random[..12])
}

/// A new seller key: a random (version 4) UUID's 122 random bits, hex.
fn generated_seller_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The answer of a call that ran in its own task within its deadline.
fn finish<T>(
    answer: Result<Result<Result<T, Status>, tokio::task::JoinError>, tokio::time::error::Elapsed>,
) -> Result<Response<T>, Status> {
    match answer {
        Ok(Ok(outcome)) => outcome.map(Response::new),
        Ok(Err(_)) => Err(Status::unavailable("the call failed; retry")),
        Err(_) => Err(Status::unavailable(
            "the call was not confirmed before the deadline; its outcome is unknown: look the auction up before retrying",
        )),
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
        // Calls forwarded by another replica were counted where the client called.
        if let Some(limiter) = &self.0.bids_per_client
            && !forwarded
            && limiter
                .check_key(&request.remote_addr().map(|a| a.ip()))
                .is_err()
        {
            metrics::counter!(m::BIDS_REJECTED, "reason" => "client_rate").increment(1);
            return Err(Status::resource_exhausted(
                "too many bids from this client address (BID_SERVICE_BIDS_PER_SEC_PER_CLIENT); \
                 retry shortly with the same request_id",
            ));
        }
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
        let Some(slot) = self.0.in_flight.try_admit() else {
            metrics::counter!(m::BIDS_REJECTED, "reason" => "overloaded").increment(1);
            return Err(Status::resource_exhausted(
                "too many bids are in progress; retry shortly with the same request_id",
            ));
        };
        let wait = deadline.saturating_sub(ANSWER_MARGIN);
        // The work runs in its own task, so that a client that goes away cannot leave a bid
        // half-placed: a retry with the same request id learns its outcome either way. The task
        // holds the call's slot until the work ends (not until the client's deadline), so the
        // in-flight limit bounds the work that runs, however short the deadlines.
        let api = Arc::clone(&self.0);
        let live = self.0.in_flight.live();
        let task = tokio::spawn(async move {
            let _slot = slot;
            let _live = live;
            api.place(request, request_id, forwarded, wait).await
        });
        let answer = tokio::time::timeout(wait, task).await;
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
        let client = request.remote_addr().map(|a| a.ip());
        let slot = self.0.watch_streams.try_open(client).map_err(|refusal| {
            let (reason, message) = match refusal {
                StreamRefusal::Total(cap) => (
                    "total",
                    format!(
                        "this service has the most WatchAuction streams open that it may ({cap}, \
                         BID_SERVICE_MAX_WATCH_STREAMS); retry later"
                    ),
                ),
                StreamRefusal::PerClient(cap) => (
                    "per_client",
                    format!(
                        "this client address has the most WatchAuction streams open that one \
                         client may ({cap}, BID_SERVICE_MAX_WATCH_STREAMS_PER_CLIENT); close one \
                         first"
                    ),
                ),
            };
            metrics::counter!(m::WATCH_STREAMS_REFUSED, "reason" => reason).increment(1);
            Status::resource_exhausted(message)
        })?;
        let (current, watch) = self.0.read_copy.watch(&id);
        let (updates, subscription) = watch.into_parts();
        let read_copy = Arc::clone(&self.0.read_copy);
        let first = futures::stream::once(async move { current });
        let later = BroadcastStream::new(updates).map(move |update| {
            // The subscription and the stream's slot end with the stream (a client that
            // leaves).
            let _subscription = &subscription;
            let _slot = &slot;
            match update {
                Ok(snapshot) => snapshot,
                // A slow watcher skips to the current state rather than falling further behind.
                Err(BroadcastStreamRecvError::Lagged(_)) => read_copy.snapshot(&id),
            }
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
            .map(proto_bid)
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
        let status = request.get_ref().status;
        let wanted = match AuctionStatus::try_from(status) {
            Ok(AuctionStatus::Unspecified) => None,
            Ok(status) => Some(status),
            Err(_) => {
                return Err(invalid(
                    "invalid request",
                    &[FieldViolation {
                        field: "status",
                        description: format!(
                            "must be one of the AuctionStatus values; got {status}"
                        ),
                    }],
                ));
            }
        };
        let now = Utc::now();
        let auctions = self
            .0
            .read_copy
            .auctions(limit, |snapshot| {
                wanted.is_none_or(|wanted| status_at(snapshot, now) == wanted)
            })
            .iter()
            .map(proto_state)
            .collect();
        Ok(Response::new(ListAuctionsResponse { auctions }))
    }

    async fn create_auction(
        &self,
        request: Request<CreateAuctionRequest>,
    ) -> Result<Response<CreateAuctionResponse>, Status> {
        let deadline = client_deadline(request.metadata()).unwrap_or(self.0.default_deadline);
        let forwarded = request.metadata().contains_key(FORWARDED_HEADER);
        let wait = deadline.saturating_sub(ANSWER_MARGIN);
        let task = tokio::spawn(Arc::clone(&self.0).create(request.into_inner(), forwarded, wait));
        finish(tokio::time::timeout(wait, task).await)
    }

    async fn get_auction(
        &self,
        request: Request<GetAuctionRequest>,
    ) -> Result<Response<GetAuctionResponse>, Status> {
        let id = parse_auction_id(&request.get_ref().auction_id)?;
        if !self.0.read_copy.exists(&id) {
            return Err(Status::not_found(format!(
                "auction {id} does not exist: nobody created it and it has no bid"
            )));
        }
        Ok(Response::new(GetAuctionResponse {
            auction: Some(proto_state(&self.0.read_copy.snapshot(&id))),
        }))
    }

    async fn cancel_auction(
        &self,
        request: Request<CancelAuctionRequest>,
    ) -> Result<Response<CancelAuctionResponse>, Status> {
        let deadline = client_deadline(request.metadata()).unwrap_or(self.0.default_deadline);
        let forwarded = request.metadata().contains_key(FORWARDED_HEADER);
        let wait = deadline.saturating_sub(ANSWER_MARGIN);
        let task = tokio::spawn(Arc::clone(&self.0).cancel(request.into_inner(), forwarded, wait));
        finish(tokio::time::timeout(wait, task).await)
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
