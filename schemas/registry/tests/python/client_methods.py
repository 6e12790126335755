"""Every method of confluent-kafka-python's SchemaRegistryClient that maps onto the registry's REST
subset, called as a new user would, against the registry at URL.

    client_methods.py URL

Prints one line per public method: `ok NAME`, `failed NAME: WHY` (the call raised, or answered
something other than what Confluent's registry answers), `skipped NAME` (a method deliberately not
covered: see NOT_COVERED; the reasons are in tests/it/python_client.rs), or `unaccounted NAME` (a
public method this script neither calls nor skips, e.g. one a newer client added).
"""
import json
import sys
import traceback

from confluent_kafka.schema_registry import (
    ConfigCompatibilityLevel,
    Schema,
    SchemaRegistryClient,
    ServerConfig,
)

# Routes the registry does not implement (modes, contexts, guids, metadata, associations).
NOT_COVERED = (
    "create_association",
    "delete_associations",
    "get_associations_by_resource_name",
    "delete_mode",
    "get_mode",
    "update_mode",
    "get_global_mode",
    "update_global_mode",
    "get_contexts",
    "get_latest_with_metadata",
    "get_schema_by_guid",
)

SUBJECT = "bids-value"


def schema(document: dict) -> Schema:
    return Schema(json.dumps(document), schema_type="JSON")


BID_V1 = schema(
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "price": {"type": "integer"}},
        "required": ["name", "price"],
        "additionalProperties": False,
    }
)
# A new optional property in the closed model: BACKWARD compatible with v1.
BID_V2 = schema(
    {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "price": {"type": "integer"},
            "note": {"type": "string"},
        },
        "required": ["name", "price"],
        "additionalProperties": False,
    }
)
# A new required property: not BACKWARD compatible.
BID_REQUIRING_CURRENCY = schema(
    {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "price": {"type": "integer"},
            "currency": {"type": "string"},
        },
        "required": ["name", "price", "currency"],
        "additionalProperties": False,
    }
)


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def main() -> None:
    url = sys.argv[1]
    client = SchemaRegistryClient({"url": url})
    ids = {}

    def get_schema_types():
        expect("JSON" in client.get_schema_types(), "JSON is a supported type")

    def set_compatibility():
        answer = client.set_compatibility(level="backward")
        expect(answer == {"compatibility": "BACKWARD"}, f"answer {answer}")

    def get_compatibility():
        expect(client.get_compatibility() == "BACKWARD", "the global level")

    def register_schema():
        ids["v1"] = client.register_schema(SUBJECT, BID_V1)
        expect(ids["v1"] == 1, f"id {ids['v1']}")

    def register_schema_full_response():
        registered = client.register_schema_full_response(SUBJECT, BID_V2)
        ids["v2"] = registered.schema_id
        expect(ids["v2"] == 2, f"id {ids['v2']}")

    def get_schema():
        fetched = client.get_schema(ids["v1"])
        expect(fetched.schema_type == "JSON", f"type {fetched.schema_type}")
        expect(json.loads(fetched.schema_str) == json.loads(BID_V1.schema_str), "the text")

    def lookup_schema():
        found = client.lookup_schema(SUBJECT, BID_V1)
        expect((found.schema_id, found.version) == (ids["v1"], 1), f"found {found}")

    def get_subjects():
        expect(client.get_subjects() == [SUBJECT], "the subject list")

    def get_versions():
        expect(client.get_versions(SUBJECT) == [1, 2], "the versions")

    def get_version():
        version = client.get_version(SUBJECT, 1)
        expect((version.version, version.schema_id) == (1, ids["v1"]), f"version {version}")

    def get_latest_version():
        latest = client.get_latest_version(SUBJECT)
        expect((latest.version, latest.schema_id) == (2, ids["v2"]), f"latest {latest}")

    def get_schema_versions():
        pairs = [(v.subject, v.version) for v in client.get_schema_versions(ids["v2"])]
        expect(pairs == [(SUBJECT, 2)], f"pairs {pairs}")

    def get_subjects_by_schema_id():
        expect(client.get_subjects_by_schema_id(ids["v1"]) == [SUBJECT], "the subjects")

    def get_referenced_by():
        expect(client.get_referenced_by(SUBJECT, 1) == [], "no references")

    def test_compatibility():
        expect(client.test_compatibility(SUBJECT, BID_V2) is True, "v2 after v2")
        expect(
            client.test_compatibility(SUBJECT, BID_REQUIRING_CURRENCY, verbose=True) is False,
            "a new required property is refused",
        )
        expect(client.test_compatibility(SUBJECT, BID_V2, version=1) is True, "v2 after v1")

    def test_compatibility_all_versions():
        expect(client.test_compatibility_all_versions(SUBJECT, BID_V2) is True, "v2")
        expect(
            client.test_compatibility_all_versions(SUBJECT, BID_REQUIRING_CURRENCY) is False,
            "a new required property is refused",
        )

    def set_config():
        level = ConfigCompatibilityLevel.FULL_TRANSITIVE
        answer = client.set_config(SUBJECT, ServerConfig(compatibility_level=level))
        expect(answer == {"compatibility": "FULL_TRANSITIVE"}, f"answer {answer}")
        client.set_compatibility(SUBJECT, "full")

    def get_config():
        config = client.get_config(SUBJECT)
        expect(config.compatibility_level == ConfigCompatibilityLevel.FULL, f"config {config}")
        expect(client.get_compatibility(SUBJECT) == "FULL", "the subject level")

    def delete_config():
        previous = client.delete_config(SUBJECT)
        expect(previous.compatibility_level == ConfigCompatibilityLevel.FULL, f"previous {previous}")
        global_config = client.get_config()
        expect(global_config.compatibility_level == ConfigCompatibilityLevel.BACKWARD, "back to global")

    def delete_version():
        expect(client.delete_version(SUBJECT, 2) == 2, "soft delete")
        expect(client.get_versions(SUBJECT) == [1], "v2 hidden")
        expect(client.get_versions(SUBJECT, deleted=True) == [1, 2], "v2 kept")
        expect(client.delete_version(SUBJECT, 2, permanent=True) == 2, "hard delete")
        expect(client.get_versions(SUBJECT, deleted=True) == [1], "v2 gone")

    def delete_subject():
        expect(client.delete_subject(SUBJECT) == [1], "soft delete")
        expect(client.get_subjects() == [], "hidden")
        expect(client.get_subjects(deleted=True) == [SUBJECT], "kept")
        expect(client.delete_subject(SUBJECT, permanent=True) == [1], "hard delete")
        expect(client.get_subjects(deleted=True) == [], "gone")
        # The ids stay readable for records already written with them.
        client.clear_caches()
        expect(client.get_schema(ids["v1"]).schema_type == "JSON", "id 1 readable")

    def clear_latest_caches():
        client.clear_latest_caches()

    def clear_caches():
        client.clear_caches()

    def config():
        expect(client.config()["url"] == url, "the configuration given")

    def new_client():
        other = SchemaRegistryClient.new_client({"url": url})
        try:
            expect(other.get_schema_types() == ["JSON"], "a working client")
        finally:
            other.close()

    def close():
        client.close()

    steps = [
        get_schema_types,
        set_compatibility,
        get_compatibility,
        register_schema,
        register_schema_full_response,
        get_schema,
        lookup_schema,
        get_subjects,
        get_versions,
        get_version,
        get_latest_version,
        get_schema_versions,
        get_subjects_by_schema_id,
        get_referenced_by,
        test_compatibility,
        test_compatibility_all_versions,
        set_config,
        get_config,
        delete_config,
        delete_version,
        delete_subject,
        clear_latest_caches,
        clear_caches,
        config,
        new_client,
        close,
    ]
    called = set()
    for step in steps:
        called.add(step.__name__)
        try:
            step()
        except Exception as e:  # report every failure, then go on with the next method
            detail = traceback.format_exception_only(type(e), e)[-1].strip()
            print(f"failed {step.__name__}: {detail}", flush=True)
        else:
            print(f"ok {step.__name__}", flush=True)
    public = sorted(m for m in dir(SchemaRegistryClient) if not m.startswith("_"))
    for name in public:
        if name in NOT_COVERED:
            print(f"skipped {name}")
        elif name not in called:
            print(f"unaccounted {name}")


if __name__ == "__main__":
    main()
