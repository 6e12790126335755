"""Produces bids the way the original demo's Flask app did: confluent-kafka's Producer with a
JSONSerializer and the demo's (version 1) schema.

demo_producer.py BOOTSTRAP REGISTRY_URL TOPIC SCHEMA_FILE NAME:PRICE [NAME:PRICE ...]
"""
import datetime
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer


def main() -> None:
    bootstrap, registry_url, topic, schema_file = sys.argv[1:5]
    with open(schema_file, encoding="utf-8") as f:
        schema_str = f.read()
    serializer = JSONSerializer(schema_str, SchemaRegistryClient({"url": registry_url}))
    producer = Producer({"bootstrap.servers": bootstrap})
    for bid in sys.argv[5:]:
        name, price = bid.rsplit(":", 1)
        value = {"name": name, "price": int(price), "bid_ts": str(datetime.datetime.now())}
        producer.produce(
            topic,
            key=StringSerializer()(name),
            value=serializer(value, SerializationContext(topic, MessageField.VALUE)),
        )
    remaining = producer.flush(30)
    if remaining:
        raise SystemExit(f"{remaining} bids were not delivered")


if __name__ == "__main__":
    main()
