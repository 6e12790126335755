"""Example client of the auction.v1 API in Python (grpcio).

    python bid_client.py place AUCTION NAME PRICE     place a bid (retries UNAVAILABLE safely)
    python bid_client.py highest AUCTION              the current highest bid
    python bid_client.py watch AUCTION [--updates N]  follow the auction (stop after N updates)

Options: --target HOST:PORT (default 127.0.0.1:50051); --tls-ca FILE to connect with TLS, verifying
the server against that CA; --tls-cert FILE --tls-key FILE to present a client certificate.
Each command prints one JSON object per line.
"""
import argparse
import json
import pathlib
import sys
import time
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "generated"))

import grpc  # noqa: E402
from auction.v1 import auction_pb2, auction_pb2_grpc  # noqa: E402


def bid_json(bid):
    return {
        "bid_id": bid.bid_id,
        "auction_id": bid.auction_id,
        "name": bid.name,
        "price": bid.price,
        "bid_ts": bid.bid_ts.ToJsonString(),
    }


def state_json(state):
    return {
        "auction_id": state.auction_id,
        "highest_bid": bid_json(state.highest_bid) if state.HasField("highest_bid") else None,
        "minimum_next_bid": state.minimum_next_bid,
        "bid_count": state.bid_count,
    }


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


def place(stub, args):
    request = auction_pb2.PlaceBidRequest(
        auction_id=args.auction, name=args.name, price=args.price, request_id=str(uuid.uuid4())
    )
    # The same request_id on every attempt: a retry can never place the bid twice.
    for attempt in range(5):
        try:
            response = stub.PlaceBid(request, timeout=10)
            print(json.dumps({"accepted": True, "replayed": response.replayed, "bid": bid_json(response.bid),
                              "auction": state_json(response.auction)}))
            return 0
        except grpc.RpcError as error:
            if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED) and attempt < 4:
                time.sleep(0.2 * 2 ** attempt)
                continue
            print(json.dumps({"accepted": False, "code": error.code().name, "message": error.details()}))
            return 1
    return 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--tls-ca")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    commands = parser.add_subparsers(dest="command", required=True)
    place_parser = commands.add_parser("place")
    place_parser.add_argument("auction")
    place_parser.add_argument("name")
    place_parser.add_argument("price", type=int)
    commands.add_parser("highest").add_argument("auction")
    watch_parser = commands.add_parser("watch")
    watch_parser.add_argument("auction")
    watch_parser.add_argument("--updates", type=int, default=0, help="stop after this many updates (0: never)")
    args = parser.parse_args()

    with channel(args) as open_channel:
        stub = auction_pb2_grpc.BidServiceStub(open_channel)
        if args.command == "place":
            return place(stub, args)
        if args.command == "highest":
            response = stub.HighestBid(auction_pb2.HighestBidRequest(auction_id=args.auction), timeout=10)
            print(json.dumps(state_json(response.auction)))
            return 0
        seen = 0
        for update in stub.WatchAuction(auction_pb2.WatchAuctionRequest(auction_id=args.auction)):
            print(json.dumps(state_json(update.auction)), flush=True)
            seen += 1
            if args.updates and seen >= args.updates:
                break
        return 0


if __name__ == "__main__":
    sys.exit(main())
