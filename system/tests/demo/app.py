"""The demo's Flask producer (app.py): a form to submit bids, each sent to Kafka as JSON with
confluent-kafka's JSONSerializer and the demo's schema, one produce and one flush per request; the
page shows the highest bid read from MySQL.

GET /  -> the form and the highest bid (still renders if the table is missing, empty or MySQL down)
POST / -> 400 if the form is invalid; 200 "accepted" once Kafka acknowledged the bid; 503 if not.
"""
import datetime
import sys
import threading

import mysql.connector
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer
from flask import Flask, render_template_string, request

import settings

PAGE = """<!doctype html>
<html>
<head><title>Auction</title></head>
<body>
  <h1>Auction</h1>
  <form method="post" action="/">
    <label>Name <input name="name"></label>
    <label>Price <input name="price" type="number"></label>
    <button type="submit">Bid</button>
  </form>
  {% if highest %}
  <p>Highest bid: {{ highest[0] }} with {{ highest[1] }}</p>
  {% else %}
  <p>No bids yet.</p>
  {% endif %}
</body>
</html>
"""

app = Flask(__name__)
producer = Producer({"bootstrap.servers": settings.BOOTSTRAP})
serializer = JSONSerializer(settings.SCHEMA_STR, SchemaRegistryClient({"url": settings.REGISTRY_URL}))
context = SerializationContext(settings.TOPIC, MessageField.VALUE)
key_serializer = StringSerializer()


def highest_bid():
    """(name, price) of the highest bid in MySQL, or None if there is none or it cannot be read."""
    try:
        db = mysql.connector.connect(**settings.mysql_settings())
        try:
            cursor = db.cursor()
            cursor.execute(f"SELECT name, price FROM {settings.TABLE} ORDER BY price DESC LIMIT 1")
            return cursor.fetchone()
        finally:
            db.close()
    except mysql.connector.Error as e:
        print(f"cannot read the highest bid: {e}", file=sys.stderr, flush=True)
        return None


@app.get("/")
def index():
    return render_template_string(PAGE, highest=highest_bid())


@app.post("/")
def bid():
    name = request.form.get("name", "")
    price = request.form.get("price", "")
    if not name.strip():
        return "name must not be empty\n", 400
    try:
        price = int(price)
    except ValueError:
        return "price must be an integer\n", 400
    value = {"name": name, "price": price, "bid_ts": str(datetime.datetime.now())}

    reported = threading.Event()
    errors = []

    def delivered(err, _msg):
        if err is not None:
            errors.append(str(err))
        reported.set()

    producer.produce(
        settings.TOPIC,
        key=key_serializer(name),
        value=serializer(value, context),
        on_delivery=delivered,
    )
    # As the demo: wait for everything in flight. (Another request's flush may serve this bid's
    # delivery report, hence the event.)
    remaining = producer.flush()
    if remaining or not reported.wait(5) or errors:
        print(f"bid not delivered: {remaining} in flight, errors {errors}", file=sys.stderr, flush=True)
        return f"not delivered: {errors or 'still in flight'}\n", 503
    return "accepted"


if __name__ == "__main__":
    print(f"demo app listening on {settings.PORT}", flush=True)
    app.run(host="127.0.0.1", port=settings.PORT, threaded=True)
