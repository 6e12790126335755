"""Settings of the rebuilt demo, from environment variables, with the demo's defaults; and the
demo's JSON Schema (version 1), byte for byte as its README gives it.

The demo's app.py and writers each held their own copy of these values (config.py held the Kafka
and registry ones); here they are read once, in one place, so a test can point them elsewhere.
"""
import os

BOOTSTRAP = os.environ.get("DEMO_BOOTSTRAP", "localhost:9092")
REGISTRY_URL = os.environ.get("DEMO_REGISTRY_URL", "http://localhost:8081")
TOPIC = os.environ.get("DEMO_TOPIC", "auction")
# Each consumer has its own default group ("db_writer", "file_writer"); this only overrides it.
GROUP = os.environ.get("DEMO_GROUP")

MYSQL_HOST = os.environ.get("DEMO_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("DEMO_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("DEMO_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("DEMO_MYSQL_PASSWORD", "")
MYSQL_DATABASE = os.environ.get("DEMO_MYSQL_DATABASE", "test")
TABLE = os.environ.get("DEMO_TABLE", "bid")

CSV = os.environ.get("DEMO_CSV", "output.csv")
PORT = int(os.environ.get("DEMO_PORT", "5000"))


def mysql_settings():
    """Keyword arguments for mysql.connector.connect."""
    return {
        "host": MYSQL_HOST,
        "port": MYSQL_PORT,
        "user": MYSQL_USER,
        "password": MYSQL_PASSWORD,
        "database": MYSQL_DATABASE,
    }


# The README's "JSON Schema to register (subject: `auction-value`)" block.
SCHEMA_STR = """{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "title": "Bid",
  "type": "object",
  "properties": {
    "name": { "type": "string" },
    "price": { "type": "integer" },
    "bid_ts": { "type": "string" }
  },
  "required": ["name", "price", "bid_ts"],
  "additionalProperties": false
}
"""
