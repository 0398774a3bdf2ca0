"""Seeds the test ground for the demo: registry subjects (Avro with a reference,
JSON Schema, Protobuf) and a topic of Confluent-framed records.

Usage: seed.py KAFKA_BOOTSTRAP SR_URL
"""
import json
import struct
import sys
import urllib.request

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, sr_url = sys.argv[1], sys.argv[2].rstrip("/")


def register(subject, schema, schema_type=None, references=None):
    body = {"schema": schema}
    if schema_type:
        body["schemaType"] = schema_type
    if references:
        body["references"] = references
    req = urllib.request.Request(
        f"{sr_url}/subjects/{urllib.parse.quote(subject, safe='')}/versions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        method="POST",
    )
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)["id"]


address = json.dumps({"type": "record", "name": "Address", "namespace": "demo",
                      "fields": [{"name": "city", "type": "string"}]})
register("demo-address-value", address)
order_v1 = json.dumps({"type": "record", "name": "Order", "namespace": "demo",
                       "fields": [{"name": "id", "type": "long"},
                                  {"name": "ship_to", "type": "demo.Address"}]})
refs = [{"name": "demo.Address", "subject": "demo-address-value", "version": 1}]
v1 = register("demo-orders-value", order_v1, references=refs)
order_v2 = json.dumps({"type": "record", "name": "Order", "namespace": "demo",
                       "fields": [{"name": "id", "type": "long"},
                                  {"name": "ship_to", "type": "demo.Address"},
                                  {"name": "note", "type": "string", "default": ""}]})
v2 = register("demo-orders-value", order_v2, references=refs)
register("demo-payments-value", json.dumps({"type": "object", "properties": {"amount": {"type": "number"}}}), "JSON")
register("demo-events-value", 'syntax = "proto3";\npackage demo;\nmessage Event { string name = 1; }\n', "PROTOBUF")

admin = AdminClient({"bootstrap.servers": bootstrap})
for f in admin.create_topics([NewTopic("demo-orders", 3, 1, config={"retention.ms": "-1"})]).values():
    f.result()
producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
for i in range(3000):
    schema_id = v1 if i < 1500 else v2
    # a framed record: magic byte, 4-byte schema ID, payload
    value = b"\x00" + struct.pack(">i", schema_id) + f"order-{i}".encode()
    producer.produce("demo-orders", key=f"order-{i}".encode(), value=value, partition=i % 3,
                     headers=[("source", b"demo")])
producer.flush()
print(f"seeded 4 subjects (ids {v1}, {v2}, ...) and 3000 framed records in `demo-orders`")
