"""The demo's MySQL sink (db_writer1.py / db_writer2.py): consumes bids from Kafka, checks them
against its own copy of the demo's schema, and inserts each into MySQL, one row per commit.

Consumer settings as the demo's: auto-commit on (librdkafka's default), auto.offset.reset
earliest. SIGTERM or SIGINT stops it: the consumer is closed (committing what was consumed) and
"closed" printed.
"""
import signal
import sys

import mysql.connector
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

    try:
        db = mysql.connector.connect(**settings.mysql_settings())
    except mysql.connector.Error as e:
        sys.exit(f"db_writer: cannot connect to MySQL at {settings.MYSQL_HOST}:{settings.MYSQL_PORT}: {e}")
    cursor = db.cursor()
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {settings.TABLE} (name VARCHAR(100), price INT, bid_ts DATETIME)"
    )
    db.commit()

    deserializer = JSONDeserializer(settings.SCHEMA_STR, from_dict=lambda d, ctx: d)
    consumer = Consumer({
        "bootstrap.servers": settings.BOOTSTRAP,
        "group.id": settings.GROUP or "db_writer",
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
        cursor.execute(
            f"INSERT INTO {settings.TABLE} (name, price, bid_ts) VALUES (%s, %s, %s)",
            (bid["name"], bid["price"], bid["bid_ts"]),
        )
        db.commit()
        print("wrote", bid["name"], bid["price"], flush=True)

    consumer.close()
    db.close()
    print("closed", flush=True)


if __name__ == "__main__":
    main()
