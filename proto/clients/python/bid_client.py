"""Example client of the auction.v1 API in Python (grpcio).

    python bid_client.py create TITLE SELLER STARTING_PRICE --ends-in SECONDS
                         [--reserve PRICE] [--soft-close SECONDS] [--extension SECONDS]
                         [--increment N] [--id AUCTION] [--description TEXT]
                                                     create an auction (prints its seller key)
    python bid_client.py place AUCTION NAME PRICE     place a bid (retries UNAVAILABLE safely)
    python bid_client.py place AUCTION NAME [PRICE] --max MAXIMUM
                                                     proxy bid: the service bids for you, up to MAXIMUM
    python bid_client.py highest AUCTION              the current highest bid
    python bid_client.py get AUCTION                  the auction's state (status, end, result, ...)
    python bid_client.py watch AUCTION [--updates N]  follow the auction until it is closed or
                                                     cancelled (or stop after N updates)
    python bid_client.py cancel AUCTION SELLER_KEY    cancel an auction that has no bid yet

Options: --target HOST:PORT (default 127.0.0.1:50051); --tls-ca FILE to connect with TLS, verifying
the server against that CA; --tls-cert FILE --tls-key FILE to present a client certificate.
Each command prints one JSON object per line; a refused call prints its gRPC code and message and
exits with status 1.
"""
import argparse
import datetime
import json
import pathlib
import sys
import time
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "generated"))

import grpc  # noqa: E402
from google.protobuf import duration_pb2, timestamp_pb2  # noqa: E402
from auction.v1 import auction_pb2, auction_pb2_grpc  # noqa: E402

# The states after which an auction never changes again.
FINAL = (auction_pb2.AUCTION_STATUS_CLOSED, auction_pb2.AUCTION_STATUS_CANCELLED)


def bid_json(bid):
    return {
        "bid_id": bid.bid_id,
        "auction_id": bid.auction_id,
        "name": bid.name,
        "price": bid.price,
        "bid_ts": bid.bid_ts.ToJsonString(),
    }


def status_name(status):
    """`OPEN` for AUCTION_STATUS_OPEN; the number for a status this client does not know."""
    try:
        return auction_pb2.AuctionStatus.Name(status).removeprefix("AUCTION_STATUS_")
    except ValueError:
        return status


def definition_json(definition):
    return {
        "title": definition.title,
        "description": definition.description,
        "seller": definition.seller,
        "starting_price": definition.starting_price,
        "has_reserve": definition.has_reserve,
        "increments": [{"from_price": band.from_price, "increment": band.increment}
                       for band in definition.increments],
        "start_time": definition.start_time.ToJsonString(),
        "scheduled_end_time": definition.scheduled_end_time.ToJsonString(),
        "soft_close_window": definition.soft_close_window.ToJsonString(),
        "extension": definition.extension.ToJsonString(),
    }


def result_json(result):
    return {
        "sold": result.sold,
        "winning_bid": bid_json(result.winning_bid) if result.HasField("winning_bid") else None,
        "closed_at": result.closed_at.ToJsonString(),
    }


def state_json(state):
    return {
        "auction_id": state.auction_id,
        "status": status_name(state.status),
        "highest_bid": bid_json(state.highest_bid) if state.HasField("highest_bid") else None,
        "minimum_next_bid": state.minimum_next_bid,
        "bid_count": state.bid_count,
        "reserve_met": state.reserve_met,
        "end_time": state.end_time.ToJsonString() if state.HasField("end_time") else None,
        "extensions": state.extensions,
        "definition": definition_json(state.definition) if state.HasField("definition") else None,
        "result": result_json(state.result) if state.HasField("result") else None,
    }


def error_json(error, **outcome):
    return json.dumps({**outcome, "code": error.code().name, "message": error.details()})


def channel(args):
    if args.tls_ca is None:
        return grpc.insecure_channel(args.target)
    read = lambda path: pathlib.Path(path).read_bytes() if path else None  # noqa: E731
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(args.tls_ca),
        private_key=read(args.tls_key),
        certificate_chain=read(args.tls_cert),
    )
    return grpc.secure_channel(args.target, credentials)


def seconds_after(seconds):
    """A protobuf Timestamp `seconds` from now."""
    at = timestamp_pb2.Timestamp()
    at.FromDatetime(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds))
    return at


def span(seconds):
    """A protobuf Duration of `seconds` (whole or decimal)."""
    duration = duration_pb2.Duration()
    duration.FromTimedelta(datetime.timedelta(seconds=seconds))
    return duration


def place(stub, args):
    request = auction_pb2.PlaceBidRequest(
        auction_id=args.auction, name=args.name, price=args.price or 0, max_price=args.max or 0,
        request_id=str(uuid.uuid4()),
    )
    # The same request_id on every attempt: a retry can never place the bid twice.
    for attempt in range(5):
        try:
            response = stub.PlaceBid(request, timeout=10)
            print(json.dumps({"accepted": True, "replayed": response.replayed, "outbid": response.outbid,
                              "bid": bid_json(response.bid), "auction": state_json(response.auction)}))
            return 0
        except grpc.RpcError as error:
            if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED) and attempt < 4:
                time.sleep(0.2 * 2 ** attempt)
                continue
            print(error_json(error, accepted=False))
            return 1
    return 1


def create(stub, args):
    request = auction_pb2.CreateAuctionRequest(
        auction_id=args.id or "",
        title=args.title,
        description=args.description or "",
        seller=args.seller,
        starting_price=args.starting_price,
        reserve_price=args.reserve or 0,
        fixed_increment=args.increment or 0,
        end_time=seconds_after(args.ends_in),
        soft_close_window=span(args.soft_close),
        extension=span(args.extension or 0),
        creation_token=args.creation_token or "",
    )
    # Not retried: a creation carries no request id, so a retry could create a second auction (or,
    # with --id, be refused as ALREADY_EXISTS). After UNAVAILABLE, look the auction up first.
    try:
        response = stub.CreateAuction(request, timeout=10)
    except grpc.RpcError as error:
        print(error_json(error, created=False))
        return 1
    print(json.dumps({"created": True, "seller_key": response.seller_key, "auction": state_json(response.auction)}))
    return 0


def cancel(stub, args):
    request = auction_pb2.CancelAuctionRequest(auction_id=args.auction, seller_key=args.seller_key)
    try:
        response = stub.CancelAuction(request, timeout=10)
    except grpc.RpcError as error:
        print(error_json(error, cancelled=False))
        return 1
    print(json.dumps({"cancelled": True, "auction": state_json(response.auction)}))
    return 0


def query(method, request):
    """Prints the auction state that a unary call answers with."""
    try:
        response = method(request, timeout=10)
    except grpc.RpcError as error:
        print(error_json(error))
        return 1
    print(json.dumps(state_json(response.auction)))
    return 0


def watch(stub, args):
    seen = 0
    try:
        for update in stub.WatchAuction(auction_pb2.WatchAuctionRequest(auction_id=args.auction)):
            print(json.dumps(state_json(update.auction)), flush=True)
            seen += 1
            # Nothing changes after the close or a cancellation: the watch ends there.
            if update.auction.status in FINAL or (args.updates and seen >= args.updates):
                return 0
    except grpc.RpcError as error:
        print(error_json(error), flush=True)
        return 1
    print(json.dumps({"code": "UNAVAILABLE", "message": "the service ended the watch"}), flush=True)
    return 1


def checked(parse, ok, kind):
    """An argparse type: a value that `ok` accepts, with a message that says what was wrong."""
    def convert(text):
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"must be {kind}; got {text!r}")
        return value
    return convert


MAX_PRICE = 2_147_483_647
PRICE = checked(int, lambda v: 1 <= v <= MAX_PRICE, "a whole number from 1 to 2147483647")
AMOUNT = checked(int, lambda v: 0 <= v <= MAX_PRICE, "a whole number from 0 to 2147483647")
COUNT = checked(int, lambda v: v >= 0, "a whole number, 0 or more")
SECONDS = checked(float, lambda v: 0 <= v <= 86_400, "a number of seconds from 0 to 86400 (one day)")
LATER = checked(float, lambda v: 0 < v <= 366 * 86_400, "a number of seconds above 0, at most 366 days")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="127.0.0.1:50051", help="the bid service's HOST:PORT")
    parser.add_argument("--tls-ca", metavar="FILE", help="connect with TLS, verifying the server against this CA")
    parser.add_argument("--tls-cert", metavar="FILE", help="a client certificate to present (PEM)")
    parser.add_argument("--tls-key", metavar="FILE", help="the client certificate's key (PEM)")
    commands = parser.add_subparsers(dest="command", required=True)

    create_parser = commands.add_parser("create", help="create an auction")
    create_parser.add_argument("title", metavar="TITLE")
    create_parser.add_argument("seller", metavar="SELLER")
    create_parser.add_argument("starting_price", metavar="STARTING_PRICE", type=PRICE)
    create_parser.add_argument("--ends-in", metavar="SECONDS", type=LATER, required=True,
                               help="bidding ends this many seconds from now")
    create_parser.add_argument("--reserve", metavar="PRICE", type=PRICE,
                               help="a secret reserve price: below it the auction ends with no sale")
    create_parser.add_argument("--soft-close", metavar="SECONDS", type=SECONDS, default=0,
                               help="a bid this close to the end extends the auction (default 0: no soft close)")
    create_parser.add_argument("--extension", metavar="SECONDS", type=SECONDS,
                               help="the end moves to such a bid's time plus this (default: the soft-close window)")
    create_parser.add_argument("--increment", metavar="N", type=PRICE,
                               help="a fixed increment (default: the service's)")
    create_parser.add_argument("--id", metavar="AUCTION", help="the auction's id (default: one the service makes up)")
    create_parser.add_argument("--description", metavar="TEXT")
    create_parser.add_argument("--creation-token", metavar="TOKEN",
                               help="when the service restricts creating auctions to holders of a token")

    place_parser = commands.add_parser("place", help="place a bid, or a proxy bid with --max")
    place_parser.add_argument("auction", metavar="AUCTION")
    place_parser.add_argument("name", metavar="NAME")
    place_parser.add_argument("price", metavar="PRICE", nargs="?", type=AMOUNT,
                              help="the amount; with --max, optional (the service bids as little as needed)")
    place_parser.add_argument("--max", metavar="MAXIMUM", type=PRICE,
                              help="proxy bidding: the most the service may bid for you")

    commands.add_parser("highest", help="the current highest bid").add_argument("auction", metavar="AUCTION")
    commands.add_parser("get", help="the auction's state").add_argument("auction", metavar="AUCTION")
    watch_parser = commands.add_parser("watch", help="follow an auction until it is closed or cancelled")
    watch_parser.add_argument("auction", metavar="AUCTION")
    watch_parser.add_argument("--updates", type=COUNT, default=0, help="stop after this many updates (0: never)")
    cancel_parser = commands.add_parser("cancel", help="cancel an auction that has no bid yet")
    cancel_parser.add_argument("auction", metavar="AUCTION")
    cancel_parser.add_argument("seller_key", metavar="SELLER_KEY", help="the seller key `create` printed")
    args = parser.parse_args()
    if args.command == "place" and args.price is None and args.max is None:
        place_parser.error("give a PRICE, a --max MAXIMUM, or both")
    if args.command == "place" and args.max is not None and args.price is not None and args.price > args.max:
        place_parser.error(f"PRICE ({args.price}) must not be above --max ({args.max})")

    with channel(args) as open_channel:
        stub = auction_pb2_grpc.BidServiceStub(open_channel)
        if args.command == "create":
            return create(stub, args)
        if args.command == "place":
            return place(stub, args)
        if args.command == "highest":
            return query(stub.HighestBid, auction_pb2.HighestBidRequest(auction_id=args.auction))
        if args.command == "get":
            return query(stub.GetAuction, auction_pb2.GetAuctionRequest(auction_id=args.auction))
        if args.command == "cancel":
            return cancel(stub, args)
        return watch(stub, args)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
