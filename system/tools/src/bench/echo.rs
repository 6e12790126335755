//! 1b. `PlaceBid`'s ceiling on this machine: a tonic server in this process whose `PlaceBid`
//! answers at once (the bid echoed back, no Kafka, no state), driven by the very closed loop that
//! measures `PlaceBid` (same callers, connections and requests); its calls/s and latency, and the
//! ratio `PlaceBid` (many auctions) / echo.

use auction_proto::v1::bid_service_server::{BidService, BidServiceServer};
use auction_proto::v1::{
    AuctionState, Bid, CancelAuctionRequest, CancelAuctionResponse, CreateAuctionRequest,
    CreateAuctionResponse, GetAuctionRequest, GetAuctionResponse, HighestBidRequest,
    HighestBidResponse, ListAuctionsRequest, ListAuctionsResponse, ListRecentBidsRequest,
    ListRecentBidsResponse, PlaceBidRequest, PlaceBidResponse, WatchAuctionRequest,
    WatchAuctionResponse,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use super::closed_loop::closed_loop;
use super::report::{ms, rate};
use super::{Bench, Outcome};

/// The echo: `PlaceBid` answers with the bid it was given; every other method is unimplemented.
#[derive(Debug, Clone, Copy)]
struct EchoBidService;

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("the echo answers PlaceBid only"))
}

#[tonic::async_trait]
impl BidService for EchoBidService {
    async fn place_bid(
        &self,
        request: Request<PlaceBidRequest>,
    ) -> Result<Response<PlaceBidResponse>, Status> {
        let request = request.into_inner();
        let bid = Bid {
            bid_id: request.request_id,
            auction_id: request.auction_id.clone(),
            name: request.name,
            price: request.price,
            ..Default::default()
        };
        Ok(Response::new(PlaceBidResponse {
            auction: Some(AuctionState {
                auction_id: request.auction_id,
                highest_bid: Some(bid.clone()),
                minimum_next_bid: bid.price.saturating_add(1),
                bid_count: 1,
                ..Default::default()
            }),
            bid: Some(bid),
            ..Default::default()
        }))
    }

    async fn highest_bid(
        &self,
        _: Request<HighestBidRequest>,
    ) -> Result<Response<HighestBidResponse>, Status> {
        unimplemented()
    }

    type WatchAuctionStream =
        tonic::codegen::tokio_stream::Empty<Result<WatchAuctionResponse, Status>>;

    async fn watch_auction(
        &self,
        _: Request<WatchAuctionRequest>,
    ) -> Result<Response<Self::WatchAuctionStream>, Status> {
        unimplemented()
    }

    async fn list_recent_bids(
        &self,
        _: Request<ListRecentBidsRequest>,
    ) -> Result<Response<ListRecentBidsResponse>, Status> {
        unimplemented()
    }

    async fn list_auctions(
        &self,
        _: Request<ListAuctionsRequest>,
    ) -> Result<Response<ListAuctionsResponse>, Status> {
        unimplemented()
    }

    async fn create_auction(
        &self,
        _: Request<CreateAuctionRequest>,
    ) -> Result<Response<CreateAuctionResponse>, Status> {
        unimplemented()
    }

    async fn get_auction(
        &self,
        _: Request<GetAuctionRequest>,
    ) -> Result<Response<GetAuctionResponse>, Status> {
        unimplemented()
    }

    async fn cancel_auction(
        &self,
        _: Request<CancelAuctionRequest>,
    ) -> Result<Response<CancelAuctionResponse>, Status> {
        unimplemented()
    }
}

/// Serves the echo on a free loopback port with the bid service's own HTTP/2 and TCP settings
/// (its defaults) until `stop` is cancelled; its address.
async fn serve_echo(bench: &Bench, stop: CancellationToken) -> Outcome<std::net::SocketAddr> {
    let defaults = auction_bid_service::Settings::new(&bench.bootstrap, &bench.registry_url);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| format!("the echo cannot listen on 127.0.0.1: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("the echo's listening address: {e}"))?;
    let router = Server::builder()
        .http2_keepalive_interval(defaults.http2_keepalive_interval)
        .http2_keepalive_timeout(Some(defaults.http2_keepalive_timeout))
        .max_concurrent_streams(defaults.max_concurrent_streams_per_connection)
        .accept_http1(true)
        .add_service(BidServiceServer::new(EchoBidService));
    let incoming = TcpIncoming::from(listener).with_keepalive(defaults.tcp_keepalive);
    tokio::spawn(async move {
        if let Err(e) = router
            .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
            .await
        {
            eprintln!("auction bench: the echo server failed: {e}");
        }
    });
    Ok(addr)
}

/// 1b: the echo with `PlaceBid`'s closed loop (the run's callers and call count, many auctions);
/// `place_bids_per_s` is `PlaceBid`'s rate in that loop with one replica.
pub(super) async fn measure(bench: &Bench, place_bids_per_s: f64) -> Outcome<Value> {
    let (progress, sizes) = (&bench.progress, &bench.sizes);
    progress.say(format!(
        "1b. a trivial tonic unary echo (PlaceBid answered at once), same closed loop: {} calls by {} callers",
        sizes.place_bids, sizes.callers
    ));
    let stop = bench.shutdown.child_token();
    let addr = serve_echo(bench, stop.clone()).await?;
    let echo = closed_loop(
        &[addr],
        sizes.callers,
        sizes.place_bids,
        false,
        progress,
        "echo",
    )
    .await;
    stop.cancel();
    let echo = echo?;
    let calls_per_s = rate(echo.accepted, echo.seconds);
    let ratio = place_bids_per_s / calls_per_s.max(1e-9);
    progress.say(format!(
        "   {calls_per_s:.0} calls/s, p50 {:.2} ms, p99 {:.2} ms; PlaceBid / echo = {:.0} %",
        ms(&echo.latency, 0.5),
        ms(&echo.latency, 0.99),
        ratio * 100.0
    ));
    let mut result = echo.json(sizes.callers);
    result["calls_per_s"] = json!(calls_per_s);
    result["place_bid_ratio"] = json!(ratio);
    result["server"] = json!(
        "tonic, in this process, the bid service's default HTTP/2 and TCP settings, no gRPC-web/CORS layers"
    );
    Ok(result)
}
