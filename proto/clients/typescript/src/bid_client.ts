// Example client of the auction.v1 API in TypeScript, over gRPC-Web with Connect.
//
//   npx tsx src/bid_client.ts place AUCTION NAME PRICE     place a bid (retries UNAVAILABLE safely)
//   npx tsx src/bid_client.ts highest AUCTION              the current highest bid
//   npx tsx src/bid_client.ts watch AUCTION [UPDATES]      follow the auction (stop after UPDATES)
//
// Environment: BID_SERVICE_URL (default http://127.0.0.1:50051; use https://... for TLS); for TLS,
// BID_SERVICE_CA (a PEM file to verify the server with) and, when the service requires client
// certificates, BID_SERVICE_CLIENT_CERT and BID_SERVICE_CLIENT_KEY (PEM files). In a browser, use
// `createGrpcWebTransport` from "@connectrpc/connect-web" with the same client code.
// Each command prints one JSON object per line.

import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { BidService, type AuctionState, type Bid } from "./gen/auction/v1/auction_pb.js";

const baseUrl = process.env.BID_SERVICE_URL ?? "http://127.0.0.1:50051";
const pem = (variable: string) => (process.env[variable] ? readFileSync(process.env[variable]!) : undefined);
const transport = createGrpcWebTransport({
  baseUrl,
  httpVersion: "1.1",
  nodeOptions: {
    ca: pem("BID_SERVICE_CA"),
    cert: pem("BID_SERVICE_CLIENT_CERT"),
    key: pem("BID_SERVICE_CLIENT_KEY"),
  },
});
const client = createClient(BidService, transport);

function bidJson(bid: Bid) {
  return {
    bid_id: bid.bidId,
    auction_id: bid.auctionId,
    name: bid.name,
    price: Number(bid.price),
    bid_ts: bid.bidTs ? timestampDate(bid.bidTs).toISOString() : null,
  };
}

function stateJson(state: AuctionState | undefined) {
  return {
    auction_id: state?.auctionId,
    highest_bid: state?.highestBid ? bidJson(state.highestBid) : null,
    minimum_next_bid: Number(state?.minimumNextBid ?? 0n),
    bid_count: Number(state?.bidCount ?? 0n),
  };
}

async function place(auctionId: string, name: string, price: bigint): Promise<number> {
  // The same requestId on every attempt: a retry can never place the bid twice.
  const requestId = randomUUID();
  for (let attempt = 0; ; attempt++) {
    try {
      const response = await client.placeBid({ auctionId, name, price, requestId }, { timeoutMs: 10_000 });
      console.log(JSON.stringify({
        accepted: true,
        replayed: response.replayed,
        bid: response.bid ? bidJson(response.bid) : null,
        auction: stateJson(response.auction),
      }));
      return 0;
    } catch (error) {
      const e = ConnectError.from(error);
      const retriable = e.code === Code.Unavailable || e.code === Code.ResourceExhausted;
      if (retriable && attempt < 4) {
        await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt));
        continue;
      }
      console.log(JSON.stringify({ accepted: false, code: Code[e.code], message: e.rawMessage }));
      return 1;
    }
  }
}

async function main(args: string[]): Promise<number> {
  const [command, auction = "", ...rest] = args;
  switch (command) {
    case "place":
      if (rest.length !== 2 || !/^-?\d+$/.test(rest[1])) break;
      return place(auction, rest[0], BigInt(rest[1]));
    case "highest": {
      const response = await client.highestBid({ auctionId: auction }, { timeoutMs: 10_000 });
      console.log(JSON.stringify(stateJson(response.auction)));
      return 0;
    }
    case "watch": {
      const limit = Number(rest[0] ?? 0);
      let seen = 0;
      for await (const update of client.watchAuction({ auctionId: auction })) {
        console.log(JSON.stringify(stateJson(update.auction)));
        seen += 1;
        if (limit > 0 && seen >= limit) break;
      }
      return 0;
    }
  }
  console.error("usage: bid_client.ts place AUCTION NAME PRICE | highest AUCTION | watch AUCTION [UPDATES]");
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    const e = ConnectError.from(error);
    console.error(`bid_client: ${Code[e.code]}: ${e.rawMessage}`);
    process.exit(1);
  },
);
