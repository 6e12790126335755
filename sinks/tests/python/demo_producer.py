"""The original demo's producer: confluent-kafka's Producer with JSONSerializer and the demo's
(version 1) schema, as app.py sent bids.

produce BOOTSTRAP REGISTRY_URL TOPIC SCHEMA_FILE COUNT NAME_PREFIX
Prints the number of acknowledged records.
"""
import datetime
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main() -> None:
    _, bootstrap, url, topic, schema_file, count, prefix = sys.argv
    with open(schema_file, encoding="utf-8") as f:
        serializer = JSONSerializer(f.read(), SchemaRegistryClient({"url": url}))
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    context = SerializationContext(topic, MessageField.VALUE)
    acknowledged = []

    def delivered(err, _msg):
        if err is not None:
            raise SystemExit(f"delivery failed: {err}")
        acknowledged.append(1)

    for i in range(int(count)):
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        bid = {"name": f"{prefix} {i}", "price": 100 + i, "bid_ts": now}
        producer.produce(topic, value=serializer(bid, context), on_delivery=delivered)
        producer.poll(0)
    remaining = producer.flush(30)
    if remaining:
        raise SystemExit(f"{remaining} records were not acknowledged")
    print(len(acknowledged))


if __name__ == "__main__":
    main()
