"""The original demo's producer, as its Flask app (app.py) sent bids: confluent-kafka's Producer
with a JSONSerializer and the demo's (version 1) schema, configured from the demo's own config.py
keys when one is given.

demo_producer.py [--config CONFIG_PY] BOOTSTRAP REGISTRY_URL TOPIC SCHEMA_FILE NAME:PRICE [...]

With --config, the Kafka and registry settings come from that file, read as the demo read its
config.py (BOOTSTRAP_SERVER, SECURITY_PROTOCOL, SSL_MECHANISM, API_KEY, API_SECRET_KEY,
ENDPOINT_SCHEMA_URL, SCHEMA_REGISTRY_API_KEY, SCHEMA_REGISTRY_API_SECRET) and mapped to
librdkafka's properties the way the demo mapped them; BOOTSTRAP and REGISTRY_URL are then ignored.
SSL_CA_LOCATION, if set there, is the CA that signs the broker's certificate (a test's own CA;
Confluent Cloud's certificates are signed by public CAs, which librdkafka finds by itself).

Prints the number of records the broker acknowledged; exits non-zero if any was not.
"""
import datetime
import runpy
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer


def settings(args):
    """(producer settings, registry settings, remaining arguments)."""
    if args[0] == "--config":
        config = runpy.run_path(args[1])
        producer = {
            "bootstrap.servers": config["BOOTSTRAP_SERVER"],
            "security.protocol": config["SECURITY_PROTOCOL"],
            "sasl.mechanisms": config["SSL_MECHANISM"],
            "sasl.username": config["API_KEY"],
            "sasl.password": config["API_SECRET_KEY"],
        }
        if config.get("SSL_CA_LOCATION"):
            producer["ssl.ca.location"] = config["SSL_CA_LOCATION"]
        registry = {
            "url": config["ENDPOINT_SCHEMA_URL"],
            "basic.auth.user.info": "{}:{}".format(
                config["SCHEMA_REGISTRY_API_KEY"], config["SCHEMA_REGISTRY_API_SECRET"]
            ),
        }
        return producer, registry, args[4:]
    producer = {"bootstrap.servers": args[0]}
    registry = {"url": args[1]}
    return producer, registry, args[2:]


def main() -> None:
    producer_settings, registry_settings, rest = settings(sys.argv[1:])
    topic, schema_file, bids = rest[0], rest[1], rest[2:]
    with open(schema_file, encoding="utf-8") as f:
        serializer = JSONSerializer(f.read(), SchemaRegistryClient(registry_settings))
    producer = Producer(producer_settings)
    context = SerializationContext(topic, MessageField.VALUE)
    acknowledged = []
    failures = []

    def delivered(err, _msg):
        if err is None:
            acknowledged.append(1)
        else:
            failures.append(str(err))

    for bid in bids:
        name, price = bid.rsplit(":", 1)
        value = {"name": name, "price": int(price), "bid_ts": str(datetime.datetime.now())}
        producer.produce(
            topic,
            key=StringSerializer()(name),
            value=serializer(value, context),
            on_delivery=delivered,
        )
        producer.poll(0)
    remaining = producer.flush(30)
    if failures or remaining:
        raise SystemExit(f"{remaining} bids were not delivered; failures: {failures}")
    print(len(acknowledged))


if __name__ == "__main__":
    main()
