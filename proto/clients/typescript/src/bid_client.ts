// Example client of the auction.v1 API in TypeScript, over gRPC-Web with Connect.
//
//   npx tsx src/bid_client.ts create TITLE SELLER STARTING_PRICE --ends-in SECONDS
//       [--reserve PRICE] [--soft-close SECONDS] [--extension SECONDS] [--increment N]
//       [--id AUCTION] [--description TEXT] [--creation-token TOKEN]
//                                                      create an auction (prints its seller key)
//   npx tsx src/bid_client.ts place AUCTION NAME PRICE     place a bid (retries UNAVAILABLE safely)
//   npx tsx src/bid_client.ts place AUCTION NAME [PRICE] --max MAXIMUM
//                                                      proxy bid: the service bids for you, up to MAXIMUM
//   npx tsx src/bid_client.ts highest AUCTION              the current highest bid
//   npx tsx src/bid_client.ts get AUCTION                  the auction's state (status, end, result, ...)
//   npx tsx src/bid_client.ts watch AUCTION [UPDATES]      follow the auction until it is closed or
//                                                          cancelled (or stop after UPDATES)
//   npx tsx src/bid_client.ts cancel AUCTION SELLER_KEY    cancel an auction that has no bid yet
//   npx tsx src/bid_client.ts --help                       this text
//
// Environment: BID_SERVICE_URL (default http://127.0.0.1:50051; use https://... for TLS); for TLS,
// BID_SERVICE_CA (a PEM file to verify the server with) and, when the service requires client
// certificates, BID_SERVICE_CLIENT_CERT and BID_SERVICE_CLIENT_KEY (PEM files). In a browser, use
// `createGrpcWebTransport` from "@connectrpc/connect-web" with the same client code.
// Each command prints one JSON object per line; a refused call prints its code and message and
// exits with status 1, bad arguments exit with status 2.

import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { type Duration, type Timestamp, durationFromMs, durationMs, timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  AuctionStatus,
  BidService,
  type AuctionDefinition,
  type AuctionResult,
  type AuctionState,
  type Bid,
} from "./gen/auction/v1/auction_pb.js";

const USAGE = `usage: bid_client.ts COMMAND ...
  create TITLE SELLER STARTING_PRICE --ends-in SECONDS [--reserve PRICE] [--soft-close SECONDS]
         [--extension SECONDS] [--increment N] [--id AUCTION] [--description TEXT]
         [--creation-token TOKEN]              create an auction (prints its seller key)
  place AUCTION NAME PRICE                     place a bid
  place AUCTION NAME [PRICE] --max MAXIMUM     proxy bid: the service bids for you, up to MAXIMUM
  highest AUCTION                              the current highest bid
  get AUCTION                                  the auction's state
  watch AUCTION [UPDATES]                      follow the auction until it is closed or cancelled
                                               (or stop after UPDATES updates)
  cancel AUCTION SELLER_KEY                    cancel an auction that has no bid yet
Environment: BID_SERVICE_URL (default http://127.0.0.1:50051), BID_SERVICE_CA,
BID_SERVICE_CLIENT_CERT, BID_SERVICE_CLIENT_KEY.`;

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

/** The states after which an auction never changes again. */
const FINAL = [AuctionStatus.CLOSED, AuctionStatus.CANCELLED];

const time = (t: Timestamp | undefined) => (t ? timestampDate(t).toISOString() : null);
const span = (d: Duration | undefined) => (d ? `${durationMs(d) / 1000}s` : null);

function bidJson(bid: Bid) {
  return {
    bid_id: bid.bidId,
    auction_id: bid.auctionId,
    name: bid.name,
    price: Number(bid.price),
    bid_ts: time(bid.bidTs),
  };
}

function definitionJson(definition: AuctionDefinition) {
  return {
    title: definition.title,
    description: definition.description,
    seller: definition.seller,
    starting_price: Number(definition.startingPrice),
    has_reserve: definition.hasReserve,
    increments: definition.increments.map((band) => ({
      from_price: Number(band.fromPrice),
      increment: Number(band.increment),
    })),
    start_time: time(definition.startTime),
    scheduled_end_time: time(definition.scheduledEndTime),
    soft_close_window: span(definition.softCloseWindow),
    extension: span(definition.extension),
  };
}

function resultJson(result: AuctionResult) {
  return {
    sold: result.sold,
    winning_bid: result.winningBid ? bidJson(result.winningBid) : null,
    closed_at: time(result.closedAt),
  };
}

function stateJson(state: AuctionState | undefined) {
  return {
    auction_id: state?.auctionId,
    // `OPEN` for AUCTION_STATUS_OPEN; the number for a status this client does not know.
    status: state ? (AuctionStatus[state.status] ?? state.status) : null,
    highest_bid: state?.highestBid ? bidJson(state.highestBid) : null,
    minimum_next_bid: Number(state?.minimumNextBid ?? 0n),
    bid_count: Number(state?.bidCount ?? 0n),
    reserve_met: state?.reserveMet ?? false,
    end_time: time(state?.endTime),
    extensions: state?.extensions ?? 0,
    definition: state?.definition ? definitionJson(state.definition) : null,
    result: state?.result ? resultJson(state.result) : null,
  };
}

function errorJson(error: unknown, outcome: Record<string, boolean> = {}) {
  const e = ConnectError.from(error);
  return JSON.stringify({ ...outcome, code: Code[e.code], message: e.rawMessage });
}

/** Bad arguments: printed with the usage, exit status 2. */
class UsageError extends Error {}

const MAX_PRICE = 2_147_483_647n;

/** A whole number from `min` to 2147483647. */
function whole(text: string, what: string, min: bigint): bigint {
  if (!/^\d+$/.test(text) || BigInt(text) < min || BigInt(text) > MAX_PRICE) {
    throw new UsageError(`${what} must be a whole number from ${min} to ${MAX_PRICE}; got ${JSON.stringify(text)}`);
  }
  return BigInt(text);
}

const DAY = 86_400;

/** A number of seconds, from 0 (or above 0 when `positive`) to `days` days. */
function seconds(text: string, what: string, days: number, positive = false): number {
  const value = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(value <= days * DAY) || (positive && value === 0)) {
    const most = days === 1 ? "one day" : `${days} days`;
    const range = positive ? `above 0, at most ${most}` : `from 0 to ${most}`;
    throw new UsageError(`${what} must be a number of seconds ${range}; got ${JSON.stringify(text)}`);
  }
  return value;
}

async function place(auctionId: string, name: string, price: bigint, maxPrice: bigint): Promise<number> {
  // The same requestId on every attempt: a retry can never place the bid twice.
  const requestId = randomUUID();
  for (let attempt = 0; ; attempt++) {
    try {
      const response = await client.placeBid({ auctionId, name, price, maxPrice, requestId }, { timeoutMs: 10_000 });
      console.log(JSON.stringify({
        accepted: true,
        replayed: response.replayed,
        outbid: response.outbid,
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
      console.log(errorJson(e, { accepted: false }));
      return 1;
    }
  }
}

type Options = Partial<Record<
  "ends-in" | "reserve" | "soft-close" | "extension" | "increment" | "id" | "description" | "creation-token" | "max",
  string
>>;

async function create(title: string, seller: string, startingPrice: string, options: Options): Promise<number> {
  if (options["ends-in"] === undefined) throw new UsageError("create needs --ends-in SECONDS");
  const endsIn = seconds(options["ends-in"], "--ends-in", 366, true);
  const window = seconds(options["soft-close"] ?? "0", "--soft-close", 1);
  const extension = seconds(options.extension ?? "0", "--extension", 1);
  const request = {
    auctionId: options.id ?? "",
    title,
    description: options.description ?? "",
    seller,
    startingPrice: whole(startingPrice, "STARTING_PRICE", 1n),
    reservePrice: options.reserve === undefined ? 0n : whole(options.reserve, "--reserve", 1n),
    fixedIncrement: options.increment === undefined ? 0n : whole(options.increment, "--increment", 1n),
    endTime: timestampFromMs(Math.round(Date.now() + endsIn * 1000)),
    softCloseWindow: durationFromMs(Math.round(window * 1000)),
    // Zero: the soft-close window itself.
    extension: durationFromMs(Math.round(extension * 1000)),
    creationToken: options["creation-token"] ?? "",
  };
  // Not retried: a creation carries no request id, so a retry could create a second auction (or,
  // with --id, be refused as ALREADY_EXISTS). After UNAVAILABLE, look the auction up first.
  try {
    const response = await client.createAuction(request, { timeoutMs: 10_000 });
    console.log(JSON.stringify({ created: true, seller_key: response.sellerKey, auction: stateJson(response.auction) }));
    return 0;
  } catch (error) {
    console.log(errorJson(error, { created: false }));
    return 1;
  }
}

async function cancel(auctionId: string, sellerKey: string): Promise<number> {
  try {
    const response = await client.cancelAuction({ auctionId, sellerKey }, { timeoutMs: 10_000 });
    console.log(JSON.stringify({ cancelled: true, auction: stateJson(response.auction) }));
    return 0;
  } catch (error) {
    console.log(errorJson(error, { cancelled: false }));
    return 1;
  }
}

/** Prints the auction state that a unary call answers with. */
async function query(call: Promise<{ auction?: AuctionState }>): Promise<number> {
  try {
    console.log(JSON.stringify(stateJson((await call).auction)));
    return 0;
  } catch (error) {
    console.log(errorJson(error));
    return 1;
  }
}

async function watch(auctionId: string, limit: number): Promise<number> {
  let seen = 0;
  try {
    for await (const update of client.watchAuction({ auctionId })) {
      console.log(JSON.stringify(stateJson(update.auction)));
      seen += 1;
      // Nothing changes after the close or a cancellation: the watch ends there.
      const status = update.auction?.status ?? AuctionStatus.UNSPECIFIED;
      if (FINAL.includes(status) || (limit > 0 && seen >= limit)) return 0;
    }
  } catch (error) {
    console.log(errorJson(error));
    return 1;
  }
  console.log(JSON.stringify({ code: Code[Code.Unavailable], message: "the service ended the watch" }));
  return 1;
}

/** The options each command takes. */
const OPTIONS: Record<string, (keyof Options)[]> = {
  create: ["ends-in", "reserve", "soft-close", "extension", "increment", "id", "description", "creation-token"],
  place: ["max"],
};

async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      help: { type: "boolean", short: "h" },
      ...Object.fromEntries(Object.values(OPTIONS).flat().map((name) => [name, { type: "string" as const }])),
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const [command = "", ...rest] = positionals;
  const options = values as Options;
  for (const name of Object.keys(options)) {
    if (name !== "help" && !(OPTIONS[command] ?? []).includes(name as keyof Options)) {
      throw new UsageError(`${command || "no command"} takes no --${name}`);
    }
  }
  const arity = (...counts: number[]) => {
    if (!counts.includes(rest.length)) throw new UsageError(`wrong number of arguments for ${command}`);
  };
  switch (command) {
    case "create":
      arity(3);
      return create(rest[0], rest[1], rest[2], options);
    case "place": {
      arity(2, 3);
      const maxPrice = options.max === undefined ? 0n : whole(options.max, "--max", 1n);
      if (rest.length === 2 && maxPrice === 0n) throw new UsageError("give a PRICE, a --max MAXIMUM, or both");
      const price = rest.length === 3 ? whole(rest[2], "PRICE", 0n) : 0n;
      if (maxPrice > 0n && price > maxPrice) {
        throw new UsageError(`PRICE (${price}) must not be above --max (${maxPrice})`);
      }
      return place(rest[0], rest[1], price, maxPrice);
    }
    case "highest":
      arity(1);
      return query(client.highestBid({ auctionId: rest[0] }, { timeoutMs: 10_000 }));
    case "get":
      arity(1);
      return query(client.getAuction({ auctionId: rest[0] }, { timeoutMs: 10_000 }));
    case "watch":
      arity(1, 2);
      return watch(rest[0], rest.length === 2 ? Number(whole(rest[1], "UPDATES", 0n)) : 0);
    case "cancel":
      arity(2);
      return cancel(rest[0], rest[1]);
  }
  throw new UsageError(command ? `unknown command ${JSON.stringify(command)}` : "no command");
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    // parseArgs reports unknown options and missing values with codes ERR_PARSE_ARGS_*.
    const parseError = String((error as { code?: unknown })?.code ?? "").startsWith("ERR_PARSE_ARGS");
    if (error instanceof UsageError || parseError) {
      console.error(`bid_client: ${error.message}\n${USAGE}`);
      process.exit(2);
    }
    const e = ConnectError.from(error);
    console.error(`bid_client: ${Code[e.code]}: ${e.rawMessage}`);
    process.exit(1);
  },
);
