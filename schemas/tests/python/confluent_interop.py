"""Confluent's own Python client against the product's schema registry.

serialize URL SCHEMA_FILE JSON   -> prints the hex of the value JSONSerializer produces
deserialize URL HEX              -> prints the JSON that JSONDeserializer reads (writer schema by id)
demo-deserialize URL SCHEMA_FILE HEX
                                 -> as the demo's consumers read: JSONDeserializer with their own copy
                                    of the schema and no registry client; prints the JSON, or the
                                    deserializer's error on stderr with exit status 3
"""
import json
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main() -> None:
    mode, url = sys.argv[1], sys.argv[2]
    client = SchemaRegistryClient({"url": url})
    context = SerializationContext("auction", MessageField.VALUE)
    if mode == "serialize":
        with open(sys.argv[3], encoding="utf-8") as schema_file:
            schema_str = schema_file.read()
        serializer = JSONSerializer(schema_str, client)
        print(serializer(json.loads(sys.argv[4]), context).hex())
    elif mode == "deserialize":
        deserializer = JSONDeserializer(None, schema_registry_client=client)
        print(json.dumps(deserializer(bytes.fromhex(sys.argv[3]), context), sort_keys=True))
    elif mode == "demo-deserialize":
        with open(sys.argv[3], encoding="utf-8") as schema_file:
            deserializer = JSONDeserializer(schema_file.read(), from_dict=lambda d, ctx: d)
        try:
            value = deserializer(bytes.fromhex(sys.argv[4]), context)
        except Exception as e:  # what the demo's consumer would have met
            print(f"{type(e).__name__}: {e}", file=sys.stderr)
            raise SystemExit(3)
        print(json.dumps(value, sort_keys=True))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
