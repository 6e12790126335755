"""Runs the ODBC sink's `hive` dialect statements on a HiveServer2-protocol server and reads back.

Usage: hive_statements.py HOST PORT STATEMENTS_JSON

STATEMENTS_JSON (written by the Rust test `hive` from the sink's own functions):
  {"table": "...", "create": "CREATE TABLE ...", "session": "SET ...",
   "inserts": [{"sql": "INSERT ... ?, ...", "parameters": [{"type": "text", "value": "..."}, ...]}],
   "lookup": {"sql": "SELECT bid_id ... IN (?, ...)", "parameters": [...]}}

HiveServer2 has no parameter binding: clients (PyHive here, the Hive ODBC drivers for the sink)
put each bound value into the statement text as a literal. The `?` markers are therefore handed to
PyHive's own parameter support (its `%s` markers) with each value typed as the sink binds it.

Prints one JSON object on stdout: the rows read back (bid_ts as the server prints it), the table's
partitions and the ids the look-up found. Progress goes to stderr.
"""

import datetime
import json
import sys
import time

from pyhive import hive


def log(message):
    print(f"[hive_statements] {message}", file=sys.stderr, flush=True)


def python_value(parameter):
    """A bound parameter as the Python value PyHive renders as the matching HiveQL literal."""
    kind, value = parameter["type"], parameter["value"]
    if kind in ("text", "wide_text"):
        return value
    if kind in ("integer", "bigint"):
        return int(value)
    if kind == "timestamp":
        return datetime.datetime.fromisoformat(value)
    raise ValueError(f"unknown parameter type {kind!r}")


def execute(cursor, sql, parameters=None):
    started = time.monotonic()
    if parameters is None:
        cursor.execute(sql)
    else:
        if "%" in sql:
            raise ValueError(f"a '%' in the statement would be read as a PyHive marker: {sql}")
        markers = sql.count("?")
        if markers != len(parameters):
            raise ValueError(f"{markers} markers but {len(parameters)} parameters: {sql}")
        cursor.execute(sql.replace("?", "%s"), tuple(python_value(p) for p in parameters))
    log(f"{time.monotonic() - started:.1f} s: {sql[:100]}{'...' if len(sql) > 100 else ''}")


def main():
    host, port, statements_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(statements_file, encoding="utf-8") as f:
        statements = json.load(f)
    table = statements["table"]

    # Spark's Thrift Server, like HiveServer2 by default, takes SASL PLAIN with any user ("NONE").
    connection = hive.connect(host=host, port=port, username="auction-sink", auth="NONE")
    cursor = connection.cursor()

    execute(cursor, statements["create"])
    execute(cursor, statements["session"])
    for insert in statements["inserts"]:
        execute(cursor, insert["sql"], insert["parameters"])
    # The sink creates the table on every connect: a second CREATE must leave the rows alone.
    execute(cursor, statements["create"])

    lookup = statements["lookup"]
    execute(cursor, lookup["sql"], lookup["parameters"])
    found = sorted(row[0] for row in cursor.fetchall())

    execute(
        cursor,
        "SELECT bid_id, auction_id, name, price, CAST(bid_ts AS STRING), kafka_partition, "
        f"kafka_offset, bid_date FROM {table} ORDER BY kafka_partition, kafka_offset",
    )
    columns = ["bid_id", "auction_id", "name", "price", "bid_ts", "kafka_partition",
               "kafka_offset", "bid_date"]
    rows = [dict(zip(columns, row)) for row in cursor.fetchall()]

    execute(cursor, f"SHOW PARTITIONS {table}")
    partitions = sorted(row[0] for row in cursor.fetchall())

    execute(cursor, f"DESCRIBE {table}")
    described = [[cell.strip() if isinstance(cell, str) else cell for cell in row[:2]]
                 for row in cursor.fetchall()]

    connection.close()
    print(json.dumps({"rows": rows, "partitions": partitions, "found": found,
                      "columns": described}))


if __name__ == "__main__":
    main()
