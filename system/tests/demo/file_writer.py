"""The demo's CSV sink (file_writer.py): consumes bids from Kafka, checks them against its own
copy of the demo's schema, and appends each to a CSV file as a row name,price,bid_ts (no header),
flushed and synced to disk row by row.

Consumer settings as the demo's: auto-commit on (librdkafka's default), auto.offset.reset
earliest. SIGTERM or SIGINT stops it: the consumer is closed (committing what was consumed) and
"closed" printed.
"""
import csv
import os
import signal
import sys

from confluent_kafka import Consumer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

import settings

stopping = False


def stop(_signum, _frame):
    global stopping
    stopping = True


def on_assign(_consumer, partitions):
    print("assigned", partitions, flush=True)


def main():
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    out = open(settings.CSV, "a", newline="", encoding="utf-8")
    writer = csv.writer(out)

    deserializer = JSONDeserializer(settings.SCHEMA_STR, from_dict=lambda d, ctx: d)
    consumer = Consumer({
        "bootstrap.servers": settings.BOOTSTRAP,
        "group.id": settings.GROUP or "file_writer",
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([settings.TOPIC], on_assign=on_assign)

    while not stopping:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            print(msg.error(), flush=True)
            continue
        try:
            bid = deserializer(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
            if bid is None:
                raise ValueError("the record has no value")
        except Exception as e:
            print(f"cannot deserialize: {e}", file=sys.stderr, flush=True)
            continue
        writer.writerow([bid["name"], bid["price"], bid["bid_ts"]])
        out.flush()
        os.fsync(out.fileno())
        print("wrote", bid["name"], bid["price"], flush=True)

    consumer.close()
    out.close()
    print("closed", flush=True)


if __name__ == "__main__":
    main()
